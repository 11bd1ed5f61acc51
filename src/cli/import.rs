//! `nftjail import-fail2ban [DIR]`: turns a fail2ban configuration into an
//! nftjail.toml, so a migration is one command.
//!
//! fail2ban's files are read by [`JailConfig`] (its INI and `%(x)s` rules);
//! this module decides what each enabled jail's options become. The filter
//! is always `fail2ban:NAME[opts]`: the daemon runs fail2ban's own filter
//! file as fail2ban runs it, `.local` customisations and jail-level
//! `failregex`/`ignoreregex`/`datepattern`/`maxlines` included, so the
//! migrated jails match exactly what they matched before. (Our built-in
//! filters are faster but not line-for-line the same; switching a jail to
//! one is a deliberate second step, checked with `nftjail test`.)
//! A `backend = systemd` jail reads the journal with the filter's
//! `journalmatch`. Whatever has no nftjail equivalent (actions, mail) is
//! written as a TOML comment, never dropped silently.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use nftjail::config::{ignore, port, Config, JournalMatch};
use nftjail::filter::fail2ban::{self, parse_bool, Fail2banFilter, JailConfig};

/// Jail options whose value is carried over or deliberately dropped; any
/// other option a jail sets itself is listed as "not imported".
const HANDLED: &[&str] = &[
    "enabled",
    "filter",
    "logpath",
    "backend",
    "port",
    "protocol",
    "maxretry",
    "findtime",
    "bantime",
    "ignoreip",
    "ignoreself",
    "banaction",
    "banaction_allports",
    "blocktype",
    "action",
    // Consumed by `filter = %(__name__)s[mode=%(mode)s]`.
    "mode",
    // fail2ban's count of matches kept for actions: no nftjail meaning.
    "maxmatches",
    // Read lossily as UTF-8 by nftjail, which is what `auto` does on
    // a UTF-8 system.
    "logencoding",
];

/// Filter options a jail may set itself; fail2ban lets them override the
/// filter file's, and so does a spec option.
const FILTER_KEYS: &[&str] = &[
    "failregex",
    "ignoreregex",
    "prefregex",
    "datepattern",
    "maxlines",
    "usedns",
    "journalmatch",
];

/// fail2ban's `bantime.*` options and nftjail's names for them (a TOML key
/// cannot be both `bantime` and a table).
const INCREMENT: &[(&str, &str)] = &[
    ("bantime.increment", "bantime_increment"),
    ("bantime.factor", "bantime_factor"),
    ("bantime.formula", "bantime_formula"),
    ("bantime.multipliers", "bantime_multipliers"),
    ("bantime.maxtime", "bantime_maxtime"),
    ("bantime.rndtime", "bantime_rndtime"),
    ("bantime.overalljails", "bantime_overalljails"),
];

/// A permanent fail2ban ban (`bantime = -1`) becomes this: nftjail bans
/// live in kernel set elements with timeouts.
const PERMANENT: &str = "365d";

pub fn run(dir: &Path, output: Option<&Path>) -> Result<()> {
    let text = import(dir)?;
    // Our own output must pass our own check; if not, that is our bug,
    // but the admin still gets the text to fix by hand.
    let check = Config::parse(&text, Path::new("<imported>"));
    match output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    check.map_err(|e| anyhow!("the imported config does not pass `nftjail check`: {e}"))?;
    Ok(())
}

/// The whole nftjail.toml for fail2ban directory `dir`.
pub fn import(dir: &Path) -> Result<String> {
    // Filter paths in the output must not depend on the daemon's cwd.
    let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let config = JailConfig::read(dir)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nftjail.toml written by `nftjail import-fail2ban {}`.",
        dir.display()
    );
    let _ = writeln!(out, "# Read, in fail2ban's order:");
    for f in config.files() {
        let _ = writeln!(out, "#   {}", f.display());
    }
    let _ = writeln!(
        out,
        "# Each enabled jail runs fail2ban's own filter file as fail2ban runs it\n\
         # (filter = \"fail2ban:NAME[opts]\"). Bans go into nftjail's own nftables\n\
         # table, not through fail2ban's actions. Options without an nftjail\n\
         # equivalent are kept below as comments. Check: nftjail check -c FILE\n"
    );
    let filter_dir = dir.join("filter.d");
    let mut enabled = 0;
    let mut tables: Vec<String> = Vec::new();
    for name in config.jail_names() {
        let on = config
            .get(&name, "enabled")
            .map_err(|e| jail_error(&config, &name, e.into()))?
            .and_then(|v| parse_bool(&v))
            .unwrap_or(false);
        if !on {
            continue;
        }
        enabled += 1;
        // Two fail2ban names may clean up to the same nftjail name.
        let mut table = toml_name(&name);
        let mut n = 1;
        while tables.contains(&table) {
            n += 1;
            table = format!("{}-{n}", toml_name(&name));
        }
        tables.push(table.clone());
        let jail =
            jail(&config, &name, &table, &filter_dir).map_err(|e| jail_error(&config, &name, e))?;
        out.push_str(&jail);
    }
    if enabled == 0 {
        let _ = writeln!(out, "# fail2ban has no enabled jail here.");
    }
    Ok(out)
}

fn jail_error(config: &JailConfig, name: &str, e: anyhow::Error) -> anyhow::Error {
    let file = config
        .file_of(name)
        .map(|f| format!(" ({})", f.display()))
        .unwrap_or_default();
    e.context(format!("jail [{name}]{file}"))
}

/// One `[jail.NAME]` table with its comments.
fn jail(config: &JailConfig, name: &str, table: &str, filter_dir: &Path) -> Result<String> {
    let get = |key: &str| -> Result<Option<String>> {
        config
            .get(name, key)
            .with_context(|| format!("option {key}"))
    };
    let mut t = String::new();
    let mut notes: Vec<String> = Vec::new();
    let _ = writeln!(t, "[jail.{table}]");
    if table != name {
        notes.push(format!(
            "fail2ban names this jail {name:?}; nftjail jail names are A-Z a-z 0-9 _ -"
        ));
    }

    let backend = get("backend")?.unwrap_or_else(|| "auto".into());
    let journal = backend.trim().starts_with("systemd");
    let logpaths = if journal {
        Vec::new()
    } else {
        logpaths(&get("logpath")?.unwrap_or_default(), &mut notes)
    };
    let spec = filter_spec(config, name, filter_dir, &mut notes)?;
    let matches = if journal {
        journal_matches(&spec, filter_dir)
    } else {
        Ok(Vec::new())
    };
    match &matches {
        Err(why) if journal => {
            let _ = writeln!(
                t,
                "# backend = {backend}: {why}.\n\
                 # Give the journal matches (journal = [\"_SYSTEMD_UNIT=x.service\"])\n\
                 # or a log file as logpath, then enable the jail.\nenabled = false"
            );
        }
        _ if !journal && logpaths.is_empty() => {
            let _ = writeln!(
                t,
                "# No log file of this jail exists now (see below); fail2ban would not\n\
                 # start it either. Give logpath and enable the jail.\nenabled = false"
            );
        }
        _ => {
            let _ = writeln!(t, "enabled = true");
        }
    }

    let _ = writeln!(t, "filter = {}", quote(&format!("fail2ban:{spec}")));
    if let Ok(m) = &matches {
        if !m.is_empty() {
            let _ = writeln!(t, "journal = {}", list(m));
        }
    }
    if !logpaths.is_empty() {
        let _ = writeln!(t, "logpath = {}", list(&logpaths));
    }

    let banaction = get("banaction")?.unwrap_or_default();
    let allports = banaction.contains("allports");
    let protocol = get("protocol")?.unwrap_or_else(|| "tcp".into());
    match get("port")? {
        _ if allports => notes.push(format!(
            "banaction = {banaction}: every port is blocked (no port key)"
        )),
        None => {}
        Some(p) => match ports(&p, &protocol) {
            Ok(None) => notes.push(format!("port = {p}: every port (no port key)")),
            Ok(Some(v)) => {
                let _ = writeln!(t, "port = {}", quote(&v));
            }
            Err(e) => notes.push(format!("not imported: port = {p} ({e})")),
        },
    }
    if let Some(v) = get("maxretry")? {
        match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => {
                let _ = writeln!(t, "maxretry = {n}");
            }
            _ => notes.push(format!("not imported: maxretry = {v} (not a count from 1)")),
        }
    }
    for key in ["findtime", "bantime"] {
        let Some(v) = get(key)? else { continue };
        match seconds(&v) {
            Ok(s) if s > 0 => {
                let _ = writeln!(t, "{key} = {}", quote(&duration(s as u64)));
            }
            Ok(_) if key == "bantime" => {
                let _ = writeln!(t, "bantime = {}", quote(PERMANENT));
                notes.push(format!(
                    "bantime = {v} is permanent in fail2ban; nftjail bans expire, so {PERMANENT}"
                ));
            }
            Ok(_) => notes.push(format!("not imported: {key} = {v} (not positive)")),
            Err(e) => notes.push(format!("not imported: {key} = {v} ({e})")),
        }
    }
    if let Some(v) = get("ignoreip")? {
        let mut nets = Vec::new();
        for item in v.split([',', ' ', '\t', '\n']).filter(|w| !w.is_empty()) {
            match ignore::parse_net(item) {
                Ok(_) => nets.push(item.to_string()),
                Err(_) => notes.push(format!(
                    "not imported: ignoreip entry {item:?} (nftjail takes addresses and networks only)"
                )),
            }
        }
        if !nets.is_empty() {
            let _ = writeln!(t, "ignoreip = {}", list(&nets));
        }
    }
    if let Some(v) = get("ignoreself")? {
        if parse_bool(&v) == Some(false) {
            let _ = writeln!(t, "ignoreself = false");
        }
    }
    let blocktype = blocktype(&banaction, &get("blocktype")?.unwrap_or_default());
    let _ = writeln!(t, "blocktype = {}", quote(blocktype));
    notes.push(format!(
        "banaction = {banaction}: nftjail's own nftables sets, blocktype {blocktype:?}"
    ));
    match config.raw(name, "action") {
        Some(a) if a.trim() == "%(action_)s" || a.trim().is_empty() => {}
        Some(a) => notes.push(format!(
            "not imported: action = {} (nftjail runs no actions: no mail, no reports)",
            one_line(&get("action").unwrap_or(None).unwrap_or(a))
        )),
        None => {}
    }
    for (theirs, ours) in INCREMENT {
        let Some(v) = get(theirs)? else { continue };
        let v = v.trim().to_string();
        let line = match *ours {
            "bantime_increment" | "bantime_overalljails" => {
                parse_bool(&v).map(|b| format!("{ours} = {b}"))
            }
            "bantime_factor" => v
                .parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && f.is_finite())
                .map(|f| format!("{ours} = {f}")),
            "bantime_multipliers" => Some(format!("{ours} = {}", quote(&v))),
            "bantime_maxtime" | "bantime_rndtime" => match seconds(&v) {
                Ok(s) if s > 0 => Some(format!("{ours} = {}", quote(&duration(s as u64)))),
                _ => None,
            },
            // A Python expression: nftjail's growth is the default formula's
            // (bantime * factor * 2^n) or multipliers.
            _ => None,
        };
        match line {
            Some(l) => {
                let _ = writeln!(t, "{l}");
            }
            None => notes.push(format!("not imported: {theirs} = {}", one_line(&v))),
        }
    }
    for key in config.own_options(name) {
        let known = HANDLED.contains(&key.as_str())
            || FILTER_KEYS.contains(&key.as_str())
            || INCREMENT.iter().any(|(k, _)| *k == key);
        if !known {
            let v = config.raw(name, &key).unwrap_or_default();
            notes.push(format!("not imported: {key} = {}", one_line(&v)));
        }
    }
    for n in notes {
        for line in n.lines() {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let _ = writeln!(t, "# {line}");
        }
    }
    t.push('\n');
    Ok(t)
}

/// The `fail2ban:` spec: the jail's `filter` value with the filter options
/// the jail sets itself appended, as a path when `filter.d` is not the
/// one the daemon looks in. Loading it here makes a missing or broken
/// filter an error of the import, naming the jail.
/// fail2ban's `journalmatch` of the jail's filter as nftjail `journal`
/// matches: `A=1 + B=2` is two alternatives, like journalctl's `+`.
fn journal_matches(spec: &str, filter_dir: &Path) -> Result<Vec<String>, String> {
    let filter = Fail2banFilter::load(spec, filter_dir)
        .map_err(|e| format!("its filter cannot be read for its journalmatch ({e})"))?;
    let mut out = Vec::new();
    for line in filter.journalmatch() {
        for alt in line.split(" + ").map(str::trim).filter(|a| !a.is_empty()) {
            let m = JournalMatch::parse(alt)
                .map_err(|e| format!("journalmatch {alt:?} is not one nftjail reads ({e})"))?;
            let m = m.to_string();
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        return Err("its filter has no journalmatch to select journal entries with".into());
    }
    Ok(out)
}

fn filter_spec(
    config: &JailConfig,
    name: &str,
    filter_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<String> {
    let value = config.get(name, "filter")?.unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        bail!("no filter: fail2ban would run this jail without one; nftjail needs one");
    }
    let (base, opts) = match value.find('[') {
        Some(i) => (&value[..i], value[i + 1..].strip_suffix(']').unwrap_or("")),
        None => (value, ""),
    };
    // The jail's own options stay as written (quoted values may hold commas).
    let mut options: Vec<String> = Some(opts.trim())
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect();
    let own = config.own_options(name);
    for key in FILTER_KEYS {
        if !own.iter().any(|k| k == key) {
            continue;
        }
        let Some(v) = config.get(name, key)? else {
            continue;
        };
        match [('"', '\''), ('\'', '"')].iter().find(|(q, _)| !v.contains(*q)) {
            Some((q, _)) => options.push(format!("{key}={q}{v}{q}")),
            None => notes.push(format!(
                "not imported: {key} (holds both quote characters; move it to filter.d/{base}.local)"
            )),
        }
    }
    let default_dir = Path::new(fail2ban::DEFAULT_FILTER_DIR);
    let same_dir = filter_dir
        .canonicalize()
        .ok()
        .zip(default_dir.canonicalize().ok())
        .is_some_and(|(a, b)| a == b);
    let base = if same_dir || base.contains('/') {
        base.to_string()
    } else {
        filter_dir
            .join(format!("{base}.conf"))
            .display()
            .to_string()
    };
    let spec = if options.is_empty() {
        base
    } else {
        format!("{base}[{}]", options.join(", "))
    };
    Fail2banFilter::load(&spec, filter_dir).with_context(|| format!("filter {value:?}"))?;
    Ok(spec)
}

/// fail2ban's `logpath` lines (`PATH [head|tail]`), globs expanded the
/// way fail2ban expands them when it starts.
fn logpaths(value: &str, notes: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.rsplit_once(' ') {
            Some((p, "head" | "tail")) => p.trim(),
            _ => line,
        };
        if !path.contains(['*', '?', '[']) {
            out.push(path.to_string());
            continue;
        }
        let found: Vec<String> = glob::glob(path)
            .map(|paths| {
                paths
                    .filter_map(|p| p.ok())
                    .filter(|p| p.exists())
                    .map(|p: PathBuf| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if found.is_empty() {
            notes.push(format!("logpath {path}: no file matches now"));
        } else {
            notes.push(format!(
                "logpath {path}: the files it matches now; nftjail does not expand globs, add new ones by hand"
            ));
        }
        out.extend(found);
    }
    out
}

/// `port` and `protocol` in nftjail's syntax; `None` for every port.
fn ports(value: &str, protocol: &str) -> Result<Option<String>, String> {
    let items: Vec<&str> = value
        .split([',', ' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
        .collect();
    if items.is_empty()
        || items
            .iter()
            .any(|i| matches!(*i, "0:65535" | "1:65535" | "all" | "any"))
    {
        return Ok(None);
    }
    let protos: &[&str] = match protocol.trim() {
        "tcp" | "" => &[""],
        "udp" => &["/udp"],
        "all" => &["/tcp", "/udp"],
        other => return Err(format!("protocol {other} (nftjail blocks tcp and udp)")),
    };
    let with_proto: Vec<String> = items
        .iter()
        .flat_map(|i| protos.iter().map(move |p| format!("{i}{p}")))
        .collect();
    let refs: Vec<&str> = with_proto.iter().map(String::as_str).collect();
    port::parse_ports(&refs)?;
    Ok(Some(with_proto.join(",")))
}

/// fail2ban's time syntax (`600`, `10m`, `1h 30m`, `1d12h`, `2 weeks`,
/// `1mo`, `1y`, `-1`) in seconds; negative means permanent.
fn seconds(value: &str) -> Result<i64, String> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("not a time fail2ban's way ({v:?})");
    let mut total: i64 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', '+']);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest[..letters].to_lowercase();
        rest = &rest[letters..];
        // fail2ban's units: a year is 365.25 days, a month a twelfth of it.
        let factor = match unit.as_str() {
            "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1,
            "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60,
            "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3_600,
            "d" | "dd" | "da" | "day" | "days" => 86_400,
            "w" | "ww" | "we" | "wee" | "week" | "weeks" => 604_800,
            "mo" | "mon" | "month" | "months" => 2_629_800,
            "y" | "yy" | "ye" | "yea" | "year" | "years" => 31_557_600,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(factor)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Seconds in the largest whole unit nftjail's duration syntax has.
fn duration(secs: u64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// `drop` when the ban action drops (a `blocktype` saying DROP, or a
/// blackhole route), else `reject` as fail2ban's iptables and nftables
/// actions do by default.
fn blocktype(banaction: &str, blocktype: &str) -> &'static str {
    let b = format!("{banaction} {blocktype}").to_lowercase();
    if b.contains("drop") || b.contains("blackhole") || b.starts_with("route") {
        "drop"
    } else {
        "reject"
    }
}

/// A jail name nftjail accepts: other characters become `-`.
fn toml_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if clean.is_empty() {
        "jail".into()
    } else {
        clean
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    if let [one] = items {
        return quote(one);
    }
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Multi-line values (action lists) on one comment line.
fn one_line(v: &str) -> String {
    v.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_times() {
        assert_eq!(seconds("600"), Ok(600));
        assert_eq!(seconds("10m"), Ok(600));
        assert_eq!(seconds("1h 30m"), Ok(5400));
        assert_eq!(seconds("1d12h"), Ok(129_600));
        assert_eq!(seconds("2 weeks"), Ok(1_209_600));
        assert_eq!(seconds("1mo"), Ok(2_629_800));
        assert_eq!(seconds("1y"), Ok(31_557_600));
        assert_eq!(seconds("-1"), Ok(-1));
        assert!(seconds("10x").is_err());
        assert!(seconds("1h-5m").is_err());
        assert_eq!(duration(600), "10m");
        assert_eq!(duration(172_800), "2d");
        assert_eq!(duration(1_209_600), "2w");
        assert_eq!(duration(90), "90s");
    }

    #[test]
    fn ports_and_protocols() {
        assert_eq!(ports("ssh", "tcp"), Ok(Some("ssh".into())));
        assert_eq!(
            ports("smtp,465,submission", "tcp"),
            Ok(Some("smtp,465,submission".into()))
        );
        assert_eq!(ports("53", "udp"), Ok(Some("53/udp".into())));
        assert_eq!(ports("53", "all"), Ok(Some("53/tcp,53/udp".into())));
        assert_eq!(ports("0:65535", "tcp"), Ok(None));
        assert!(ports("nosuchservice", "tcp").is_err());
        assert!(ports("22", "sctp").is_err());
    }

    #[test]
    fn blocktypes() {
        assert_eq!(blocktype("iptables-multiport", ""), "reject");
        assert_eq!(blocktype("nftables[blocktype=drop]", ""), "drop");
        assert_eq!(blocktype("iptables-multiport", "DROP"), "drop");
        assert_eq!(blocktype("route", ""), "drop");
    }

    #[test]
    fn names_and_values() {
        assert_eq!(toml_name("nginx.http"), "nginx-http");
        assert_eq!(one_line("a\n  b\n"), "a ; b");
    }
}
