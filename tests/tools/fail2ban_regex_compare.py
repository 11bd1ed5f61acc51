#!/usr/bin/env python3
"""Every filter of a fail2ban tree over its own sample log, judged line by
line by that tree's `fail2ban-regex` and by `nftjail test --json`.

    python3 tests/tools/fail2ban_regex_compare.py NFTJAIL TREE [FILTER...]
    python3 tests/tools/fail2ban_regex_compare.py NFTJAIL debian [FILTER...]

TREE is a fail2ban source tree (its `config/filter.d`, its
`fail2ban/tests/files/logs`, its own Python code); `debian` is the
installed package. fail2ban-regex runs as its command line does, in its
default report mode with `-r` (names are not resolved: nothing here may
look a name up), zone Europe/Zurich for both. A line agrees when both find
a failure with the same failure id, or neither does. A line the report of
fail2ban-regex counts as ignored only because a later `<F-NOFAIL>` regex
also matched it (its check-all mode) still counts as the failure
fail2ban-server takes, and is listed apart.
"""
import json, os, subprocess, sys

ROWS_ENV = "NFTJAIL_F2B_ROWS"


def rows_mode(argv):
    """Runs fail2ban-regex's command line; writes one JSON row per line."""
    import atexit
    from fail2ban.client import fail2banregex as fr
    rows = []
    orig = fr.Fail2banRegex.testRegex

    def test_regex(self, line, date=None):
        res = orig(self, line, date)
        ret = res[1] or []
        # Pending multi-line parts (no failure id yet) are no failure.
        fids = [str(r[1]) for r in ret if r[1] is not None]
        rows.append({"line": line, "fid": fids[0] if fids else None,
                     "nofail_too": bool(fids) and bool(res[2]) and not self._lineIgnored})
        return res

    fr.Fail2banRegex.testRegex = test_regex

    @atexit.register
    def dump():
        with open(os.environ[ROWS_ENV], "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    fr.exec_command_line(argv)


def layout(tree):
    if tree == "debian":
        py = "/usr/lib/python3/dist-packages"
        return "/etc/fail2ban/filter.d", py + "/fail2ban/tests/files/logs", py
    return (os.path.join(tree, "config/filter.d"),
            os.path.join(tree, "fail2ban/tests/files/logs"), tree)


def is_name(host):
    return host is not None and ":" not in host and not host.replace(".", "").isdigit()


def main():
    nftjail, tree, only = sys.argv[1], sys.argv[2], sys.argv[3:]
    fdir, ldir, py = layout(tree)
    rows_file = "/tmp/nftjail-f2b-rows-%d.json" % os.getpid()
    env = dict(os.environ, PYTHONPATH=py, TZ="Europe/Zurich", **{ROWS_ENV: rows_file})
    names = sorted(n[:-5] for n in os.listdir(fdir)
                   if n.endswith(".conf") and not n.endswith("common.conf")
                   and os.path.isfile(os.path.join(ldir, n[:-5])))
    agree = names_total = report_only = 0
    dns = []
    for n in names:
        if only and n not in only:
            continue
        names_total += 1
        log, flt = os.path.join(ldir, n), os.path.join(fdir, n + ".conf")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--rows", "-r", log, flt],
                       env=env, capture_output=True)
        f2b = [json.loads(l) for l in open(rows_file)]
        q = subprocess.run([nftjail, "test", "--json", flt, log], env=env,
                           capture_output=True, text=True, errors="replace")
        ours = [json.loads(l) for l in q.stdout.splitlines()]
        diffs = []
        if q.returncode != 0:
            diffs.append("nftjail: " + (q.stderr.strip().splitlines() or ["?"])[-1])
        elif len(ours) != len(f2b):
            diffs.append("fail2ban-regex judged %d lines, nftjail %d" % (len(f2b), len(ours)))
        else:
            for a, b in zip(f2b, ours):
                mine = b["host"] if b["match"] else None
                if a["fid"] != mine:
                    diffs.append("fail2ban-regex %r, nftjail %r: %s" % (a["fid"], mine, a["line"]))
                    continue
                report_only += a["nofail_too"]
                if is_name(mine):
                    dns.append((n, mine))
        if diffs:
            print("== %s: %d lines differ" % (n, len(diffs)))
            for d in diffs:
                print("  " + d)
        else:
            agree += 1
    os.unlink(rows_file)
    print("%d of %d filters agree on every line" % (agree, names_total))
    print("%d failures whose line fail2ban-regex's report counts as ignored "
          "(a later <F-NOFAIL> regex matched it too)" % report_only)
    print("%d failures name a host by DNS name (%s)"
          % (len(dns), ", ".join(sorted({"%s: %s" % d for d in dns}))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rows"]:
        rows_mode(sys.argv[2:])
    else:
        main()
