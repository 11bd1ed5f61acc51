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
//!
//! Jails that banned through fail2ban's `ufw` action move with what ufw
//! knew ([`ufw`]): the ports of the application profile they named, the
//! networks ufw lets in wholesale (offered as `ignoreip`) and the admin's
//! hand-made `reject from NET` rules (offered as a blocklist file, and
//! moved out of ufw by a second run with `--move-ufw-rules` once the daemon
//! holds them: [`ufw_move`]). Every
//! imported filter is run on its jail's own log beside our built-in filter
//! for the service ([`compare`]). A summary on stderr says what was done,
//! what was left and why.

mod compare;
mod policy;
mod ufw;
pub mod ufw_move;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use nftjail::config::{ignore, Config, JournalMatch};
use nftjail::filter::fail2ban::{self, parse_bool, Fail2banFilter, JailConfig};
use policy::{blocktype, duration, list, logpaths, one_line, ports, quote, seconds, toml_name};
use ufw::UfwHost;

/// The file the admin's hand-made ufw refusals are written to, beside the
/// generated config.
const BLOCKLIST_FILE: &str = "ufw-blocklist.txt";

/// Which firewall the jails imported from fail2ban's ufw action ban in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportBackend {
    /// nftjail's own nftables table (ufw's chains stay as they are).
    Nft,
    /// Rules in ufw's own files, as fail2ban's ufw action made them.
    Ufw,
}

pub struct Options {
    pub backend: ImportBackend,
    /// ufw's directory (`user.rules`, `applications.d`).
    pub ufw_dir: PathBuf,
    /// Put the networks ufw lets in wholesale into each ufw jail's ignoreip.
    pub ignore_ufw_allowed: bool,
}

/// What the import did, what it left and why: printed on stderr.
#[derive(Debug, Default)]
struct Summary {
    did: Vec<String>,
    left: Vec<String>,
    warnings: Vec<String>,
}

impl Summary {
    fn print(&self) {
        let mut s = String::new();
        for (title, items) in [
            ("Done", &self.did),
            ("Left as it is", &self.left),
            ("Warnings", &self.warnings),
        ] {
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(s, "{title}:");
            for i in items {
                let _ = writeln!(s, "  - {}", i.replace('\n', "\n    "));
            }
        }
        if !s.is_empty() {
            eprint!("import-fail2ban summary\n{s}");
        }
    }
}

/// What the ufw jails share: the admin's rules and what becomes of them.
struct UfwContext<'a> {
    host: Option<&'a UfwHost>,
    /// Why ufw's rules could not be read.
    unread: Option<String>,
    opts: &'a Options,
    /// Table names of the jails imported from the ufw action.
    jails: Vec<String>,
}

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

pub fn run(dir: &Path, output: Option<&Path>, opts: &Options) -> Result<()> {
    let mut summary = Summary::default();
    let blocklist = output.map(|o| {
        let o = std::path::absolute(o).unwrap_or_else(|_| o.to_path_buf());
        o.with_file_name(BLOCKLIST_FILE)
    });
    let text = import(dir, opts, blocklist.as_deref(), &mut summary)?;
    // Our own output must pass our own check; if not, that is our bug,
    // but the admin still gets the text to fix by hand.
    let check = Config::parse(&text, Path::new("<imported>"));
    // A `blocklist` key this build does not know yet is left as a comment.
    let (text, check) = match check {
        Err(e) if e.to_string().contains("blocklist") && text.contains("\nblocklist = ") => {
            let text = text.replace(
                "\nblocklist = ",
                "\n# (this nftjail has no blocklist key yet; enable it after an upgrade)\n# blocklist = ",
            );
            let check = Config::parse(&text, Path::new("<imported>"));
            summary.left.push(
                "the blocklist key is written as a comment: this nftjail does not know it".into(),
            );
            (text, check)
        }
        other => (text, other),
    };
    match output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    summary.print();
    check.map_err(|e| anyhow!("the imported config does not pass `nftjail check`: {e}"))?;
    Ok(())
}

/// The whole nftjail.toml for fail2ban directory `dir`.
fn import(
    dir: &Path,
    opts: &Options,
    blocklist: Option<&Path>,
    summary: &mut Summary,
) -> Result<String> {
    // Filter paths in the output must not depend on the daemon's cwd.
    let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let config = JailConfig::read(dir)?;
    // Needed only when a jail banned through ufw: an unreadable ufw
    // directory is said then, not for every import.
    let (host, unread) = match UfwHost::read(&opts.ufw_dir) {
        Ok(h) => (h, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let mut ufw = UfwContext {
        host: host.as_ref(),
        unread,
        opts,
        jails: Vec::new(),
    };
    let mut body = String::new();
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
    let out_head = std::mem::take(&mut out);
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
        let jail = jail(&config, &name, &table, &filter_dir, &mut ufw, summary)
            .map_err(|e| jail_error(&config, &name, e))?;
        body.push_str(&jail);
    }
    if enabled == 0 {
        let _ = writeln!(body, "# fail2ban has no enabled jail here.");
    }
    let prelude = ufw::prelude(&ufw, blocklist, summary)?;
    Ok(format!("{out_head}{prelude}{body}"))
}

fn jail_error(config: &JailConfig, name: &str, e: anyhow::Error) -> anyhow::Error {
    let file = config
        .file_of(name)
        .map(|f| format!(" ({})", f.display()))
        .unwrap_or_default();
    e.context(format!("jail [{name}]{file}"))
}

/// One `[jail.NAME]` table with its comments.
fn jail(
    config: &JailConfig,
    name: &str,
    table: &str,
    filter_dir: &Path,
    ufw: &mut UfwContext,
    summary: &mut Summary,
) -> Result<String> {
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
    let base = spec.split('[').next().unwrap_or_default();
    let base = Path::new(base)
        .file_stem()
        .map_or(base.to_string(), |s| s.to_string_lossy().into_owned());
    for log in &logpaths {
        let Some(builtin) = compare::builtin_for(&[&base, name]) else {
            break;
        };
        let compared = compare::compare(&spec, filter_dir, builtin, log);
        if let Some(w) = compared.and_then(|c| c.warning(table)) {
            let first = w.lines().next().unwrap_or_default();
            notes.push(format!(
                "warning: {}",
                first.trim_end_matches(" For example:")
            ));
            summary.warnings.push(w);
        }
    }
    let action = ufw::action_of(config, name)?;
    if let Some(a) = &action {
        ufw.jails.push(table.to_string());
        summary.did.push(format!(
            "jail {table}: from fail2ban's `{}` (blocktype {}, application {})",
            a.spec,
            a.blocktype,
            a.application.as_deref().unwrap_or("none")
        ));
    }
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
    let app = action.as_ref().and_then(|a| a.application.clone());
    let app_ports = app.as_ref().map(|app| match ufw.host {
        Some(h) => h.app_ports(app),
        None => Err(format!(
            "no ufw directory at {}",
            ufw.opts.ufw_dir.display()
        )),
    });
    match get("port")? {
        _ if matches!(app_ports, Some(Ok(_))) => {
            let app = app.as_deref().unwrap_or_default();
            let p = app_ports
                .as_ref()
                .and_then(|p| p.as_ref().ok())
                .cloned()
                .unwrap_or_default();
            if ufw.opts.backend == ImportBackend::Ufw {
                let _ = writeln!(t, "app = {}", quote(app));
            } else {
                let _ = writeln!(t, "port = {}", quote(&p));
            }
            notes.push(format!(
                "ufw application profile {app:?} ({p}), as fail2ban's ufw action banned it"
            ));
        }
        Some(p)
            if action.is_some()
                && app.is_none()
                && ports(&p, &protocol).is_ok_and(|v| v.is_some()) =>
        {
            if let Ok(Some(v)) = ports(&p, &protocol) {
                let _ = writeln!(t, "port = {}", quote(&v));
            }
            notes.push(format!(
                "fail2ban's ufw action refused every port (it does not read port = {p}); \
                 this jail refuses its ports only: remove the port key to refuse every port again"
            ));
        }
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
    let mut nets = Vec::new();
    if let Some(v) = get("ignoreip")? {
        for item in v.split([',', ' ', '\t', '\n']).filter(|w| !w.is_empty()) {
            match ignore::parse_net(item) {
                Ok(_) => nets.push(item.to_string()),
                Err(_) => notes.push(format!(
                    "not imported: ignoreip entry {item:?} (nftjail takes addresses and networks only)"
                )),
            }
        }
    }
    for r in ufw
        .host
        .filter(|_| action.is_some())
        .map_or(&[][..], |h| &h.allowed)
    {
        let net = r.net.to_string();
        if nets.contains(&net) {
            continue;
        }
        if ufw.opts.ignore_ufw_allowed {
            nets.push(net);
            notes.push(format!("ignoreip has {} from {}", r.net, r.describe()));
        } else {
            notes.push(format!(
                "ufw lets {} in wholesale ({}): to never ban it, add it to ignoreip",
                r.net,
                r.describe()
            ));
            summary.left.push(format!(
                "ignoreip suggestion for jail {table}: {} ({}); import again with \
                 --ignore-ufw-allowed to add it",
                r.net,
                r.describe()
            ));
        }
    }
    if !nets.is_empty() {
        let _ = writeln!(t, "ignoreip = {}", list(&nets));
    }
    if let Some(v) = get("ignoreself")? {
        if parse_bool(&v) == Some(false) {
            let _ = writeln!(t, "ignoreself = false");
        }
    }
    let blocktype = match &action {
        Some(a) if a.blocktype.starts_with("deny") => "drop",
        Some(_) => "reject",
        None => blocktype(&banaction, &get("blocktype")?.unwrap_or_default()),
    };
    let _ = writeln!(t, "blocktype = {}", quote(blocktype));
    match &action {
        Some(a) => {
            notes.push(format!(
                "{}: ufw's {} is blocktype {blocktype:?}",
                a.spec, a.blocktype
            ));
            if let Some(p) = &a.position {
                notes.push(if ufw.opts.backend == ImportBackend::Ufw {
                    format!(
                        "{p}: nftjail puts a ban just above the first ALLOW rule of its \
                         family (daemon.ufw_position sets another place)"
                    )
                } else {
                    format!(
                        "{p}: no place to choose: nftjail's own table refuses whatever ufw's order"
                    )
                });
            }
            if let Some(k) = &a.kill_mode {
                notes.push(format!(
                    "kill-mode = {k}: nftjail deletes a banned address's connections itself"
                ));
            }
        }
        None => notes.push(format!(
            "banaction = {banaction}: nftjail's own nftables sets, blocktype {blocktype:?}"
        )),
    }
    let only_ufw = action.is_some()
        && get("action")?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with("ufw"));
    match config.raw(name, "action") {
        Some(a) if a.trim() == "%(action_)s" || a.trim().is_empty() => {}
        Some(_) if only_ufw => {}
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
