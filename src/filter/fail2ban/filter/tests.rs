//! The filter's own tests: each judges lines as fail2ban's `processLine`
//! would, against hand-written filters and the stock ones with samples.

use super::*;

/// A directory holding one filter file, `t.conf`, with `text`.
fn conf_dir(text: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("t.conf"), text).unwrap();
    d
}

fn filter(definition: &str) -> Fail2banFilter {
    let d = conf_dir(&format!("[Definition]\n{definition}"));
    Fail2banFilter::load("t", d.path()).unwrap()
}

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_124_013_600)
}

#[test]
fn prefregex_content_and_ignoreregex() {
    let mut f = filter(
        "prefregex = ^svc: <F-CONTENT>.+</F-CONTENT>$\n\
             failregex = ^bad login for <F-USER>\\S+</F-USER> from <HOST>$\n\
             ignoreregex = for admin\n",
    );
    let m = f
        .process("svc: bad login for bob from 192.0.2.7", at())
        .unwrap();
    assert_eq!(m.addr, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(m.user.as_deref(), Some("bob"));
    assert_eq!(m.time, None);
    assert!(f
        .process("other: bad login for bob from 192.0.2.7", at())
        .is_none());
    assert!(f
        .process("svc: bad login for admin from 192.0.2.7", at())
        .is_none());
}

#[test]
fn last_line_reports_ignoreregex_nofail_and_own_date() {
    let mut f = filter(
        "failregex = <F-NOFAIL>hello</F-NOFAIL> from <HOST>$\n\
             \x20           bad from <HOST>$\n\
             ignoreregex = ^nothing$\n\
             \x20             bad from 192\\.0\\.2\\.9$\n",
    );
    assert_eq!(
        f.failregex_text(),
        [
            "<F-NOFAIL>hello</F-NOFAIL> from <HOST>$",
            "bad from <HOST>$"
        ]
    );
    assert!(f
        .process("2005-08-14 11:59:00 bad from 192.0.2.9", at())
        .is_none());
    let r = f.last_line().clone();
    assert_eq!((r.ignoreregex, r.nofail, r.dated), (vec![1], vec![], true));
    assert!(r.time.is_some());
    assert!(f.last_date_template().is_some());
    assert!(f
        .process("2005-08-14 11:59:01 hello from 192.0.2.9", at())
        .is_none());
    assert_eq!(f.last_line().nofail, [0]);
    assert!(f.last_line().ignoreregex.is_empty());
    // No date of its own: the recent one is lent, but the line is not dated.
    let m = f.process("bad from 192.0.2.10", at()).unwrap();
    assert_eq!(m.regex, 1);
    assert!(!f.last_line().dated && f.last_line().time.is_some());
    assert_eq!(f.last_date_template(), None);
}

#[test]
fn dns_host_stays_text_and_fid_is_the_id() {
    let mut f = filter("failregex = ^x <HOST>$\n            ^y <F-ID>\\w+</F-ID> <HOST>$\n");
    let m = f.process("x host.example.org", at()).unwrap();
    assert_eq!(m.host.as_deref(), Some("host.example.org"));
    assert_eq!(m.addr, None);
    let m = f.process("y sess1 192.0.2.1", at()).unwrap();
    assert_eq!(m.id, "sess1");
    assert_eq!(m.regex, 1);
}

#[test]
fn maxlines_joins_lines_and_consumes_them() {
    let mut f = filter("maxlines = 3\nfailregex = ^conn from <HOST>$<SKIPLINES>^auth failed$\n");
    assert!(f.process("conn from 192.0.2.9", at()).is_none());
    assert!(f.process("noise", at()).is_none());
    let m = f.process("auth failed", at()).unwrap();
    assert_eq!(m.host.as_deref(), Some("192.0.2.9"));
    // The matched lines left the buffer; the skipped one stayed.
    assert!(f.process("auth failed", at()).is_none());
}

#[test]
fn mlfid_joins_a_connection_and_success_cancels() {
    let defs = "failregex = ^\\[<F-MLFID>\\d+</F-MLFID>\\] <F-NOFAIL>connect from</F-NOFAIL> <HOST>$\n\
                    \x20           ^\\[<F-MLFID>\\d+</F-MLFID>\\] auth failed$\n\
                    \x20           ^\\[<F-MLFID>\\d+</F-MLFID>\\] <F-NOFAIL><F-MLFFORGET>closed</F-MLFFORGET></F-NOFAIL>$\n";
    let mut f = filter(defs);
    assert!(f.process("[7] connect from 192.0.2.3", at()).is_none());
    let m = f.process("[7] auth failed", at()).unwrap();
    assert_eq!(m.host.as_deref(), Some("192.0.2.3"));
    // A no-failure line ends the connection: a later failure on the
    // same id has no address to count against.
    assert!(f.process("[7] closed", at()).is_none());
    assert!(f.process("[7] auth failed", at()).is_none());
}

/// In operation the first failregex that matches decides the line: a
/// connection still waiting for its address ends it there, where
/// check-all mode goes on to the next failregex.
#[test]
fn the_first_matching_failregex_decides_in_operation() {
    let defs = "failregex = ^\\[<F-MLFID>\\d+</F-MLFID>\\] auth failed$\n\
                    \x20           ^\\[<F-ID>\\d+</F-ID>\\] auth failed$\n";
    let mut f = filter(defs);
    let all = f.failures("[7] auth failed", at());
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].regex, all[0].id.as_str()), (1, "7"));
    let mut f = filter(defs);
    assert_eq!(f.process("[7] auth failed", at()), None);
    // The text a line needs is looked for in the whole line, date and
    // all: a line without it is turned away before its date is read.
    let f = filter("failregex = ^bad from <HOST>$\n");
    assert!(f.may_match("2005-08-14 11:59:00 bad from 192.0.2.9"));
    assert!(!f.may_match("2005-08-14 11:59:00 good from 192.0.2.9"));
}

#[test]
fn filter_options_reach_init_tags() {
    let d = conf_dir("[Init]\nword = normal\n[Definition]\nfailregex = ^<word> <HOST>$\n");
    let mut f = Fail2banFilter::load("t[word=odd]", d.path()).unwrap();
    assert!(f.process("odd 192.0.2.1", at()).is_some());
    assert!(f.process("normal 192.0.2.1", at()).is_none());
}

/// The lines of fail2ban's sample log `name`, without its comments.
fn sample_lines(logs: &Path, name: &str) -> Vec<String> {
    let bytes = std::fs::read(logs.join(name)).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Sample lines of four common programs: lines most filters must turn away.
fn foreign_lines(logs: &Path) -> Vec<String> {
    ["sshd", "postfix", "dovecot", "apache-auth"]
        .iter()
        .flat_map(|n| sample_lines(logs, n))
        .collect()
}

/// fail2ban's filter directory, its sample logs, and the names of the
/// stock filters that have a sample log, sorted; None when either is
/// not installed.
fn stock_filters_with_samples() -> Option<(&'static Path, &'static Path, Vec<String>)> {
    let filters = Path::new(super::super::DEFAULT_FILTER_DIR);
    let logs = Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs");
    if !filters.is_dir() || !logs.is_dir() {
        return None;
    }
    let mut names: Vec<String> = std::fs::read_dir(logs)
        .ok()?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|n| filters.join(format!("{n}.conf")).is_file())
        .collect();
    names.sort();
    Some((filters, logs, names))
}

/// The gate changes nothing a filter finds or reports: each stock
/// filter with a sample log, over its own log and other programs'
/// (lines it must turn away), finds the same with its gate as with
/// every line judged; and the gate turns most foreign lines away.
#[test]
fn the_gate_turns_away_only_lines_that_cannot_match() {
    let Some((filters, logs, names)) = stock_filters_with_samples() else {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    };
    let read = |name: &str| sample_lines(logs, name);
    let foreign = foreign_lines(logs);
    let (mut compared, mut turned_away) = (0, 0);
    for name in &names {
        let Ok(mut gated) = Fail2banFilter::load(name, filters) else {
            continue;
        };
        let mut open = Fail2banFilter::load(name, filters).unwrap();
        open.gate = LineGate::open();
        for line in read(name).iter().chain(&foreign) {
            let key = |m: &Fail2banMatch| (m.id.clone(), m.time, m.regex, m.addr);
            let want: Vec<_> = open.failures(line, at()).iter().map(key).collect();
            let got: Vec<_> = gated.failures(line, at()).iter().map(key).collect();
            assert_eq!(got, want, "{name}: {line}");
            assert_eq!(gated.last_line(), open.last_line(), "{name}: {line}");
            compared += 1;
            turned_away += usize::from(!gated.admits(line));
        }
    }
    assert!(compared > 10_000, "{compared}");
    assert!(turned_away * 2 > compared, "{turned_away} of {compared}");
}

/// A prefregex ending in the content to the end of the line is run
/// without that end (see [`Fail2banFilter::prefix_hit`]): every stock
/// filter with a sample log finds and reports the same either way.
#[test]
fn the_prefregex_head_alone_finds_what_the_whole_finds() {
    let Some((filters, logs, names)) = stock_filters_with_samples() else {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    };
    let (mut headed, mut found) = (0, 0);
    for name in &names {
        let Ok(mut head) = Fail2banFilter::load(name, filters) else {
            continue;
        };
        if head.pref_head.is_none() {
            continue;
        }
        headed += 1;
        let mut whole = Fail2banFilter::load(name, filters).unwrap();
        whole.pref_head = None;
        let bytes = std::fs::read(logs.join(name)).unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let key = |m: &Fail2banMatch| (m.id.clone(), m.time, m.regex, m.user.clone());
            let want: Vec<_> = whole.failures(line, at()).iter().map(key).collect();
            let got: Vec<_> = head.failures(line, at()).iter().map(key).collect();
            assert_eq!(got, want, "{name}: {line}");
            assert_eq!(head.last_line(), whole.last_line(), "{name}: {line}");
            found += want.len();
        }
    }
    // sshd, postfix, dovecot, sendmail and others.
    assert!(
        headed >= 10 && found > 250,
        "{headed} filters, {found} failures"
    );
    // A head whose own match leaves no content: the whole regex decides.
    let def = "prefregex = ^svc:(?: x)?<F-CONTENT>.+</F-CONTENT>$\n\
                   failregex = ^ (?:x )?from <HOST>$\n\
                   \x20           ^ <F-ID>x</F-ID>$\n";
    let (mut head, mut whole) = (filter(def), filter(def));
    assert!(head.pref_head.is_some());
    whole.pref_head = None;
    let mut hits = 0;
    for line in [
        "svc: x",
        "svc: x from 192.0.2.7",
        "svc: from 192.0.2.8",
        "svc:",
        "other: x",
    ] {
        let want = whole.failures(line, at());
        assert_eq!(head.failures(line, at()), want, "{line}");
        hits += want.len();
    }
    assert_eq!(hits, 3);
}

/// A success that ends a connection the cache does not hold is judged
/// from the match alone (see [`Fail2banFilter::forget_unseen`]), and
/// while the cache is empty from whether it matches at all:
/// sshd, in both its usual and its aggressive mode, finds and reports
/// the same with either shortcut as without, over its sample log with an
/// accepted login after every line, on that line's connection (held
/// in the cache or not) and on one never seen.
#[test]
fn a_success_on_an_unseen_connection_changes_what_it_would() {
    let (filters, logs) = (
        Path::new(super::super::DEFAULT_FILTER_DIR),
        Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs"),
    );
    if !filters.join("sshd.conf").is_file() || !logs.join("sshd").is_file() {
        eprintln!("SKIPPED: fail2ban's sshd filter or sample log is not installed");
        return;
    }
    let bytes = std::fs::read(logs.join("sshd")).unwrap();
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        lines.push(line.to_string());
        if let Some(at) = line.find("]: ") {
            let head = &line[..at + 3];
            lines.push(format!(
                "{head}Accepted publickey for bob from 192.0.2.1 port 22 ssh2"
            ));
            let program = head.rsplit_once('[').map_or(head, |(p, _)| p);
            lines.push(format!(
                "{program}[99999]: Accepted password for eve from 192.0.2.2 port 22 ssh2"
            ));
        }
    }
    // Also with the cache emptied before each line: every accepted
    // login then takes the quicker shortcut.
    for (spec, empty) in [
        ("sshd", false),
        ("sshd[mode=aggressive]", false),
        ("sshd", true),
    ] {
        for mode in [Mode::All, Mode::First] {
            let mut fast = Fail2banFilter::load(spec, filters).unwrap();
            assert!(fast.gains_and_forgets.contains(&true), "{spec}");
            assert!(fast.always_forgets.contains(&true), "{spec}");
            let mut mid = Fail2banFilter::load(spec, filters).unwrap();
            mid.always_forgets.fill(false);
            let mut slow = Fail2banFilter::load(spec, filters).unwrap();
            slow.gains_and_forgets.fill(false);
            let (mut found, mut nofail, mut quick) = (0, 0, 0);
            for line in &lines {
                if empty {
                    for f in [&mut fast, &mut mid, &mut slow] {
                        f.mlfid.clear();
                    }
                }
                let feed = |f: &mut Fail2banFilter| {
                    let dated = f.dates.find(line, at());
                    let placed = Placed::new(line, dated, &mut f.last_date, at());
                    let text = placed.text();
                    f.judge(&placed, &text, at(), mode, false, None)
                };
                let want = feed(&mut slow);
                assert_eq!(feed(&mut fast), want, "{spec} {mode:?}: {line}");
                assert_eq!(feed(&mut mid), want, "{spec} {mode:?}: {line}");
                assert_eq!(fast.last_line(), slow.last_line(), "{spec}: {line}");
                assert_eq!(mid.last_line(), slow.last_line(), "{spec}: {line}");
                let ids = |f: &Fail2banFilter| -> Vec<String> {
                    f.mlfid.iter().map(|(k, _, _)| k.clone()).collect()
                };
                assert_eq!(ids(&fast), ids(&slow), "{spec}: {line}");
                assert_eq!(ids(&mid), ids(&slow), "{spec}: {line}");
                let forgot = fast.last_line().nofail.iter();
                quick += forgot.filter(|&&i| fast.always_forgets[i]).count();
                found += want.len();
                nofail += fast.last_line().nofail.len();
            }
            // Emptied, the cache joins no connection's lines: fewer
            // failures, but each accepted login is quick.
            assert!(
                (found > 100 || empty) && nofail > 100,
                "{spec}: {found} {nofail}"
            );
            assert!(quick > 100 || !empty, "{spec}: {quick}");
        }
    }
}

/// A failregex anchored at the start of the content is not tried on
/// content that starts with none of the texts its matches start with:
/// a filter whose failregexes share beginnings, do not, or have none
/// known (not anchored, a look-behind, or beginning with too many ways)
/// finds and reports the same with that check as without, in check-all
/// mode and as in operation.
#[test]
fn the_start_check_skips_only_failregexes_that_cannot_match() {
    let def = "prefregex = ^svc\\[\\d+\\]: <F-CONTENT>.+</F-CONTENT>$\n\
                   failregex = ^Accepted \\w+ for <F-USER>\\S+</F-USER> from <HOST>(?: port \\d+)?$\n\
                   \x20           ^[aA]uth(?:entication)? failure from <HOST>$\n\
                   \x20           ^Failed \\S+ for <F-USER>\\S+</F-USER> from <HOST>\n\
                   \x20           ^(?:x|)<F-ID>\\w+</F-ID> login refused$\n\
                   \x20           (?<=user )<F-ID>\\w+</F-ID> denied from <HOST>$\n\
                   \x20           from <HOST> port \\d+$\n\
                   \x20           ^<F-NOFAIL>Accepted</F-NOFAIL> key from <HOST>$\n\
                   \x20           ^Denied (?!root )<F-USER>\\S+</F-USER> from <HOST>$\n";
    let (mut with, mut without) = (filter(def), filter(def));
    assert_eq!(
        without.gate.forget_starts(),
        [true, true, true, false, false, false, true, true]
    );
    let lines = [
        "svc[1]: Accepted password for bob from 192.0.2.1 port 22",
        "svc[1]: Accepted key from 192.0.2.2",
        "svc[1]: Authentication failure from 192.0.2.3",
        "svc[1]: auth failure from 192.0.2.4",
        "svc[1]: Failed password for eve from 192.0.2.5 port 22",
        "svc[1]: xroot login refused",
        "svc[1]: root login refused",
        "svc[1]: user mallory denied from 192.0.2.6",
        "svc[1]: anything from 192.0.2.7 port 22",
        "svc[1]: Authentication failure from 192.0.2.8 port 22",
        "svc[1]: \u{e9}t\u{e9} from 192.0.2.9 port 22",
        "svc[1]: Denied bob from 192.0.2.10",
        "svc[1]: Denied root from 192.0.2.11",
        "svc[1]: Denie bob from 192.0.2.12",
        "svc[1]:  Accepted password for bob from 192.0.2.1",
        "other[1]: Accepted password for bob from 192.0.2.1",
    ];
    let key = |m: &Fail2banMatch| (m.id.clone(), m.regex, m.user.clone(), m.addr);
    let (mut found, mut several) = (0, 0);
    for line in lines {
        let want: Vec<_> = without.failures(line, at()).iter().map(key).collect();
        let got: Vec<_> = with.failures(line, at()).iter().map(key).collect();
        assert_eq!(got, want, "{line}");
        assert_eq!(with.last_line(), without.last_line(), "{line}");
        found += want.len();
        several += usize::from(want.len() > 1);
        let want = without.process(line, at()).as_ref().map(key);
        assert_eq!(with.process(line, at()).as_ref().map(key), want, "{line}");
        assert_eq!(with.last_line(), without.last_line(), "{line}");
    }
    assert!(found >= 10 && several >= 2, "{found} {several}");
    // What the check asks of the content: how it starts.
    let gate = &with.gate;
    assert!(gate.admits_failregex(7, "Denied bob from 192.0.2.10"));
    assert!(!gate.admits_failregex(7, "Denie bob from 192.0.2.10"));
    assert!(!gate.admits_failregex(0, "Accepte password for bob from 192.0.2.1"));
    assert!(gate.admits_failregex(1, "auth failure from 192.0.2.4"));
    assert!(!gate.admits_failregex(1, "Bauth failure from 192.0.2.4"));
    assert!(!gate.admits_failregex(0, ""));
    assert!(gate.admits_failregex(3, "root login refused"));
}

#[test]
fn bad_regex_names_filter_key_and_line() {
    let d = conf_dir("[Definition]\nfailregex = ^ok <HOST>$\n            ^bad ( <HOST>$\n");
    let e = Fail2banFilter::load("t", d.path()).unwrap_err().to_string();
    assert!(e.contains("filter t: failregex line 2"), "{e}");
}

/// Every linear regex of each stock filter with a sample log (prefregex,
/// failregexes, ignoreregexes) takes the same captures by the
/// backtracker alone as `regex::Regex::captures` takes, every group's
/// span included, on each sample line and on the prefregex's content of
/// it (the text a failregex sees), by both its readings (Unicode, and
/// bytes on an all-ASCII line); the same on those lines with a
/// non-ASCII character in (a no-break space, which `\s` matches, or a
/// letter), which only the Unicode reading takes, and on lines too long
/// for one reading or both; and its search, whichever way it goes as the
/// share of matching lines moves, reports the same.
#[test]
fn the_backtracker_alone_captures_as_the_regex_crate_does() {
    let Some((filters, logs, names)) = stock_filters_with_samples() else {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    };
    let (mut bodies, mut matched, mut compared) = (0, 0, 0);
    // Answers of the Unicode and byte readings compared, and those that
    // matched; lines one reading or both found too long.
    let (mut unicode, mut ascii, mut too_long) = ([0, 0], [0, 0], 0);
    // postfix's `auth` mode has a failregex with a trailing look-ahead.
    let auth = ("postfix[mode=auth]".to_string(), "postfix".to_string());
    let specs = names.iter().map(|n| (n.clone(), n.clone())).chain([auth]);
    for (name, log) in specs {
        let Ok(f) = Fail2banFilter::load(&name, filters) else {
            continue;
        };
        let bytes = std::fs::read(logs.join(log)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let mut hays: Vec<String> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let content = f.prefregex.as_ref().and_then(|p| {
                let hit = p.re.search(line)?;
                line.get(hit.range_of("content")?)
            });
            for hay in std::iter::once(line).chain(content) {
                hays.push(hay.to_string());
                hays.push(hay.replacen(' ', "\u{a0}", 1));
                hays.push(hay.replacen('a', "\u{e4}", 1));
                // Longer than the Unicode reading of a large regex takes,
                // then longer than either takes (a few: they are slow).
                if i < 4 {
                    for n in [3000, 300_000] {
                        hays.push(hay.replacen(' ', &" ".repeat(n), 1));
                    }
                }
            }
        }
        hays.dedup();
        let rules = f.prefregex.iter().chain(&f.failregex).chain(&f.ignoreregex);
        // A look-ahead's body too: its own captures are the whole's.
        let res = rules.flat_map(|r| {
            let body = r.re.ahead_body().map(|b| (b, true));
            std::iter::once((&r.re, false)).chain(body)
        });
        for (re, body) in res {
            let Some(_) = re.backtracker_groups("") else {
                continue;
            };
            bodies += usize::from(body);
            // Only a regex anchored at the start goes this way (see
            // `Direct`): an unanchored one's answer is the regex crate's.
            assert!(re.is_anchored(), "{name}: {}", re.pattern());
            let crate_re = regex::RegexBuilder::new(re.pattern())
                .size_limit(64 << 20)
                .build()
                .unwrap();
            for hay in &hays {
                let hay = hay.as_str();
                let want = crate_re.captures(hay).map(|caps| {
                    (0..caps.len())
                        .map(|i| caps.get(i).map(|m| m.range()))
                        .collect::<Vec<_>>()
                });
                let got = re.backtracker_groups(hay).unwrap();
                let ways = usize::from(hay.is_ascii() && re.has_ascii_way()) + 1;
                too_long += usize::from(got.len() < ways);
                for answer in &got {
                    assert_eq!(*answer, want, "{name}: {}: {hay}", re.pattern());
                }
                // The Unicode reading answers first when it takes the line.
                if got.len() == ways {
                    unicode[usize::from(want.is_some())] += 1;
                }
                if ways == 2 && !got.is_empty() {
                    ascii[usize::from(want.is_some())] += 1;
                }
                let named = |spans: &[Option<std::ops::Range<usize>>]| -> Vec<_> {
                    let names = crate_re.capture_names().enumerate();
                    names
                        .filter_map(|(i, n)| Some((n?.to_string(), spans[i].clone())))
                        .collect()
                };
                let want = want.map(|spans| (spans[0].clone(), named(&spans)));
                let got = re.search(hay).map(|hit| {
                    let groups: Vec<_> = hit.groups().map(|(n, r)| (n.to_string(), r)).collect();
                    (Some(hit.span), groups)
                });
                assert_eq!(got, want, "{name}: {}: {hay}", re.pattern());
                compared += 1;
                matched += usize::from(want.is_some());
            }
        }
    }
    // postfix's look-ahead body.
    assert!(bodies >= 1, "{bodies} look-ahead bodies");
    assert!(
        matched > 500 && compared > matched,
        "{matched} of {compared}"
    );
    // Each reading both matched and refused lines, and some lines were
    // too long for one.
    assert!(
        unicode.iter().chain(&ascii).all(|&n| n > 100) && too_long > 50,
        "unicode {unicode:?}, ascii {ascii:?}, {too_long} too long"
    );
}

/// A line that holds one of a filter's keys is judged without asking the
/// gate (see [`Fail2banFilter::judge`]): each stock filter with a sample
/// log, over its own log and other programs', finds, reports and caches
/// the same so as asking it, in check-all mode and as in operation; and
/// some of those lines are ones the gate would turn away.
#[test]
fn a_line_holding_a_key_is_judged_as_the_gate_would_have_it() {
    let Some((filters, logs, names)) = stock_filters_with_samples() else {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    };
    let read = |name: &str| sample_lines(logs, name);
    let foreign = foreign_lines(logs);
    let (mut keyed, mut turned_away, mut found) = (0, 0, 0);
    for name in &names {
        for mode in [Mode::All, Mode::First] {
            let Ok(mut trusting) = Fail2banFilter::load(name, filters) else {
                continue;
            };
            let mut asking = Fail2banFilter::load(name, filters).unwrap();
            let Some(keys) = asking.gate_keys() else {
                continue;
            };
            for line in read(name).iter().chain(&foreign) {
                let holds = keys.iter().any(|k| line.contains(k.as_str()));
                let feed = |f: &mut Fail2banFilter, keys_found: bool| {
                    let dated = f.dates.find(line, at());
                    let placed = Placed::new(line, dated, &mut f.last_date, at());
                    let text = placed.text();
                    f.judge(&placed, &text, at(), mode, keys_found, None)
                };
                let want = feed(&mut asking, false);
                assert_eq!(feed(&mut trusting, holds), want, "{name}: {line}");
                assert_eq!(trusting.last_line(), asking.last_line(), "{name}: {line}");
                let ids = |f: &Fail2banFilter| -> Vec<String> {
                    f.mlfid.iter().map(|(k, _, _)| k.clone()).collect()
                };
                assert_eq!(ids(&trusting), ids(&asking), "{name}: {line}");
                keyed += usize::from(holds);
                turned_away += usize::from(holds && !asking.may_match(line));
                found += want.len();
            }
        }
    }
    assert!(
        keyed > 1000 && turned_away > 20 && found > 500,
        "{keyed} {turned_away} {found}"
    );
}
