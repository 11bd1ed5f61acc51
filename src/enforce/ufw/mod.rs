//! The ufw backend: each ban a rule in ufw's own files (`user.rules`,
//! `user6.rules`), so `ufw status numbered` lists it and `ufw reload` keeps
//! it, and in ufw's live chains. For hosts whose kernel has no nf_tables,
//! and for hosts whose admins want bans where ufw shows them.
//!
//! Files: `tuple` writes and reads one ban as ufw writes a rule, `file`
//! cuts a rules file into the admin's rules and ours, `apps` reads ufw's
//! application profiles, `live` takes ufw's lock, `load` picks how the live
//! chains are changed: over netlink where iptables runs on nf_tables
//! (`nftchain`, with `xtrule` writing each rule as iptables-nft does), with
//! one `iptables-restore` per file elsewhere.
//!
//! One batch is one update: under ufw's lock, both files are read, our
//! rules are written again from the ban record at their place, and each
//! live chain is brought to its new file (over netlink: only the rules
//! that changed, in one transaction). The admin's rules keep their bytes
//! and their order.
//!
//! ufw has no timeouts: the end of each ban is in its comment, a timer
//! thread wakes the enforcer when the next one is due ([`Backend::expire`]),
//! and a start drops those whose time ran out while nftjail was down.

pub mod apps;
mod conntrack;
mod file;
mod live;
mod load;
mod nftchain;
mod xtrule;
// Public for `nftjail import-fail2ban`, which reads the admin's rules.
pub mod tuple;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tracing::{debug, warn};

use super::{Applied, Backend, EnforceError, Restore};
use crate::message::BanOrder;
use crate::rules::JailRules;
use file::RulesFile;
use tuple::Target;

/// How soon expiry is tried again after it failed (ufw's files unreadable,
/// the restore refused).
const EXPIRY_RETRY: Duration = Duration::from_secs(10);

/// Where ufw keeps its files, its lock and the tools that load its chains.
#[derive(Debug, Clone)]
pub struct UfwPaths {
    /// `/etc/ufw`: `ufw.conf`, `user.rules`, `user6.rules`, `applications.d`.
    pub dir: PathBuf,
    /// `/run/ufw.lock`, which the `ufw` command takes too.
    pub lock: PathBuf,
    pub iptables_restore: PathBuf,
    pub ip6tables_restore: PathBuf,
    /// ufw's boot-time loader, to start ufw's chains again after someone
    /// flushed the whole ruleset.
    pub ufw_init: PathBuf,
}

impl Default for UfwPaths {
    fn default() -> Self {
        UfwPaths {
            dir: "/etc/ufw".into(),
            lock: "/run/ufw.lock".into(),
            iptables_restore: "/usr/sbin/iptables-restore".into(),
            ip6tables_restore: "/usr/sbin/ip6tables-restore".into(),
            ufw_init: "/lib/ufw/ufw-init".into(),
        }
    }
}

/// One address family's file and chain.
struct Family {
    file: &'static str,
    chain: &'static str,
    v6: bool,
}

const FAMILIES: [Family; 2] = [
    Family {
        file: "user.rules",
        chain: "ufw-user-input",
        v6: false,
    },
    Family {
        file: "user6.rules",
        chain: "ufw6-user-input",
        v6: true,
    },
];

/// A jail's bans: net → end in unix seconds (None: permanent).
type Bans = BTreeMap<IpNet, Option<u64>>;

/// When the next ban is due to end, shared with the timer thread.
#[derive(Default)]
struct Deadline {
    at: Mutex<Option<Instant>>,
    changed: Condvar,
}

pub struct UfwBackend {
    paths: UfwPaths,
    /// Where ours go among the admin's rules (1-based, per family); None:
    /// just above the admin's first rule that lets traffic in.
    position: Option<usize>,
    targets: HashMap<String, Target>,
    bans: HashMap<String, Bans>,
    deadline: Arc<Deadline>,
    live: load::Live,
}

fn ufw_err(what: impl std::fmt::Display) -> EnforceError {
    EnforceError::Ufw(what.to_string())
}

/// Whether `ufw.conf` in `dir` says ufw is enabled.
fn enabled(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("ufw.conf")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim().replace(['"', '\''], "") == "ENABLED=yes")
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl UfwBackend {
    /// The ufw backend, if ufw is installed and enabled (the reason is the
    /// error otherwise).
    pub fn open(paths: UfwPaths, position: Option<usize>) -> Result<Self, EnforceError> {
        let conf = paths.dir.join("ufw.conf");
        std::fs::metadata(&conf)
            .map_err(|e| ufw_err(format!("ufw is not installed ({}: {e})", conf.display())))?;
        if !enabled(&paths.dir) {
            return Err(ufw_err(format!(
                "ufw is not enabled ({} has no ENABLED=yes; `ufw enable`)",
                conf.display()
            )));
        }
        for f in &FAMILIES {
            let p = paths.dir.join(f.file);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ufw_err(format!("{}: {e}", p.display())))?;
            RulesFile::parse(&text).map_err(|e| ufw_err(format!("{}: {e}", p.display())))?;
        }
        Ok(UfwBackend {
            live: load::Live::detect(&paths),
            paths,
            position,
            targets: HashMap::new(),
            bans: HashMap::new(),
            deadline: Arc::default(),
        })
    }

    fn known(&self, jail: &str) -> Result<(), EnforceError> {
        if self.targets.contains_key(jail) {
            Ok(())
        } else {
            Err(EnforceError::UnknownJail(jail.to_string()))
        }
    }

    /// Records a ban ending at `until`; what it did to the record.
    fn put(&mut self, jail: &str, net: IpNet, until: Option<u64>, now: u64) -> Applied {
        let bans = self.bans.entry(jail.to_string()).or_default();
        match bans.get(&net).copied() {
            Some(None) => Applied::Unchanged,
            Some(Some(old)) if old > now && until.is_some_and(|u| u <= old) => Applied::Unchanged,
            Some(Some(old)) if old > now => {
                bans.insert(net, until);
                Applied::Extended
            }
            _ => {
                bans.insert(net, until);
                Applied::Added
            }
        }
    }

    fn lift(&mut self, jail: &str, net: &IpNet) -> Result<bool, EnforceError> {
        let now = unix_now();
        let Some(until) = self.bans.get(jail).and_then(|b| b.get(net)).copied() else {
            return Ok(false);
        };
        self.apply(|me| me.bans.get_mut(jail).map(|b| b.remove(net)))?;
        Ok(until.is_none_or(|u| u > now))
    }

    /// Runs `change` on the record and writes the result; on failure the
    /// record is put back as it was, so it still says what ufw holds.
    fn apply<T>(&mut self, change: impl FnOnce(&mut Self) -> T) -> Result<T, EnforceError> {
        let before = self.bans.clone();
        let out = change(self);
        if let Err(e) = self.sync(false) {
            self.bans = before;
            return Err(e);
        }
        Ok(out)
    }

    /// Writes our rules, from the record, into ufw's files and live chains,
    /// under ufw's lock. With `adopt`, bans of ours found in the files that
    /// the record lacks are taken into it first (at start: the files are
    /// what the last run left). Bans whose time is up are dropped. Returns
    /// how many were dropped.
    fn sync(&mut self, adopt: bool) -> Result<usize, EnforceError> {
        let _lock = live::lock(&self.paths.lock)
            .map_err(|e| ufw_err(format!("taking {}: {e}", self.paths.lock.display())))?;
        let mut files = Vec::with_capacity(2);
        for f in &FAMILIES {
            let path = self.paths.dir.join(f.file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ufw_err(format!("{}: {e}", path.display())))?;
            let parsed =
                RulesFile::parse(&text).map_err(|e| ufw_err(format!("{}: {e}", path.display())))?;
            if adopt {
                for (jail, net, until) in &parsed.ours {
                    if self.targets.contains_key(jail) && file::is_v6(net) == f.v6 {
                        self.bans
                            .entry(jail.clone())
                            .or_default()
                            .entry(*net)
                            .or_insert(*until);
                    }
                }
            }
            files.push((f, path, text, parsed));
        }
        let now = unix_now();
        let mut expired = 0;
        for bans in self.bans.values_mut() {
            let before = bans.len();
            bans.retain(|_, until| until.is_none_or(|u| u > now));
            expired += before - bans.len();
        }
        let mut jails: Vec<&String> = self.bans.keys().collect();
        jails.sort();
        for (f, path, old, parsed) in files {
            let mut ours = String::new();
            for jail in &jails {
                let Some(target) = self.targets.get(*jail) else {
                    continue;
                };
                for (net, until) in &self.bans[*jail] {
                    if file::is_v6(net) == f.v6 {
                        let c = tuple::comment(jail, *until);
                        tuple::render(&mut ours, target, net, &c, f.v6);
                    }
                }
            }
            let new = parsed.render(&ours, self.position);
            if new == old && !self.live.checks() {
                continue;
            }
            if new != old {
                write_file(&path, &new).map_err(|e| ufw_err(format!("{}: {e}", path.display())))?;
            }
            if let Err(e) = self.live.load(f, &self.paths, &old, &new) {
                // The file goes back to what the chain still holds, so ufw's
                // files and its chains keep saying the same.
                if new != old {
                    let _ = write_file(&path, &old);
                }
                return Err(ufw_err(e));
            }
        }
        self.set_deadline(now);
        if expired > 0 {
            debug!(expired, "ufw rules of bans whose time was up removed");
        }
        Ok(expired)
    }

    /// Tells the timer thread when the next ban ends.
    fn set_deadline(&self, now: u64) {
        let next = self.bans.values().flat_map(|b| b.values()).flatten().min();
        let at = next.map(|u| Instant::now() + Duration::from_secs(u.saturating_sub(now)));
        *self
            .deadline
            .at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = at;
        self.deadline.changed.notify_all();
    }
}

impl UfwBackend {
    /// Deletes the conntrack entries of sessions the new bans refuse, so an
    /// attacker already connected is cut off (ufw accepts established
    /// sessions before any user rule). A failure is logged: the bans stand.
    fn cut_sessions(&self, added: &[(&str, IpNet)]) {
        for (family, v6) in [(libc::AF_INET, false), (libc::AF_INET6, true)] {
            let bans: Vec<(IpNet, &Target)> = added
                .iter()
                .filter(|(_, net)| file::is_v6(net) == v6)
                .filter_map(|(jail, net)| Some((*net, self.targets.get(*jail)?)))
                .collect();
            if bans.is_empty() {
                continue;
            }
            let pick = |f: &conntrack::Flow| {
                bans.iter()
                    .any(|(net, t)| net.contains(&f.src) && t.covers(f.proto, f.dport))
            };
            match conntrack::cut(family, &pick) {
                Ok(0) => {}
                Ok(n) => debug!(sessions = n, "open sessions of banned addresses cut"),
                Err(e) => warn!("open sessions of banned addresses not cut (ctnetlink: {e})"),
            }
        }
    }
}

/// Replaces a file whole (a reader never sees half of it), keeping its mode.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("rules");
    let tmp = path.with_file_name(format!(".{name}.nftjail"));
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, mode)?;
    std::fs::rename(&tmp, path)
}

impl Backend for UfwBackend {
    fn reconcile(&mut self, jails: &[JailRules]) -> Result<(), EnforceError> {
        let mut targets = HashMap::new();
        for j in jails {
            let mut target = Target::from_ports(&j.ports, j.blocktype);
            if let Some(app) = &j.app {
                target.groups = apps::ports(&self.paths.dir.join("applications.d"), app)
                    .map_err(|e| ufw_err(format!("jail {:?}: {e}", j.name)))?;
                target.app = Some(app.clone());
            }
            targets.insert(j.name.clone(), target);
        }
        let first = self.targets.is_empty();
        self.targets = targets;
        let targets = &self.targets;
        self.bans.retain(|j, _| targets.contains_key(j));
        self.sync(first)?;
        Ok(())
    }

    fn ban(&mut self, orders: &[BanOrder]) -> Result<Vec<Applied>, EnforceError> {
        for o in orders {
            self.known(&o.jail)?;
        }
        let now = SystemTime::now();
        let secs = unix_now();
        let applied = self.apply(|me| {
            orders
                .iter()
                .map(|o| {
                    let net = o.target.trunc();
                    me.put(&o.jail, net, tuple::until(now, o.bantime), secs)
                })
                .collect::<Vec<_>>()
        })?;
        let added: Vec<(&str, IpNet)> = orders
            .iter()
            .zip(&applied)
            .filter(|(_, a)| **a == Applied::Added)
            .map(|(o, _)| (&*o.jail, o.target.trunc()))
            .collect();
        self.cut_sessions(&added);
        Ok(applied)
    }

    fn unban(&mut self, jail: &str, addr: IpAddr) -> Result<bool, EnforceError> {
        self.lift(jail, &IpNet::from(addr.to_canonical()))
    }

    fn remaining(&self, jail: &str, addr: IpAddr) -> Option<Duration> {
        let until = *self
            .bans
            .get(jail)?
            .get(&IpNet::from(addr.to_canonical()))?;
        left(until)?.or(Some(Duration::MAX))
    }

    fn list(&self, jail: &str) -> Vec<(IpNet, Option<Duration>)> {
        self.bans
            .get(jail)
            .into_iter()
            .flatten()
            .filter_map(|(net, until)| Some((*net, left(*until)?)))
            .collect()
    }

    fn ban_net(
        &mut self,
        jail: &str,
        net: IpNet,
        bantime: Duration,
    ) -> Result<Applied, EnforceError> {
        self.known(jail)?;
        let until = tuple::until(SystemTime::now(), bantime);
        let secs = unix_now();
        let applied = self.apply(|me| me.put(jail, net.trunc(), until, secs))?;
        if applied == Applied::Added {
            self.cut_sessions(&[(jail, net.trunc())]);
        }
        Ok(applied)
    }

    fn unban_net(&mut self, jail: &str, net: IpNet) -> Result<bool, EnforceError> {
        self.lift(jail, &net.trunc())
    }

    fn restore(&mut self, bans: &[Restore]) -> Result<usize, EnforceError> {
        for b in bans {
            self.known(&b.jail)?;
        }
        let now = SystemTime::now();
        let secs = unix_now();
        self.apply(|me| {
            let mut n = 0;
            for b in bans {
                let net = b.net.trunc();
                let held = me
                    .bans
                    .get(&b.jail)
                    .and_then(|j| j.get(&net))
                    .is_some_and(|u| u.is_none_or(|u| u > secs));
                if held {
                    continue;
                }
                let until = b.remaining.and_then(|r| tuple::until(now, r));
                me.bans
                    .entry(b.jail.clone())
                    .or_default()
                    .insert(net, until);
                n += 1;
            }
            n
        })
    }

    /// A rule without expiry: the timer never lifts it.
    fn ban_permanent(&mut self, jail: &str, nets: &[IpNet]) -> crate::enforce::PermanentOutcomes {
        self.known(jail)?;
        let secs = unix_now();
        let applied = self.apply(|me| {
            nets.iter()
                .map(|n| me.put(jail, n.trunc(), None, secs))
                .collect::<Vec<_>>()
        })?;
        let added: Vec<(&str, IpNet)> = nets
            .iter()
            .zip(&applied)
            .filter(|(_, a)| **a == Applied::Added)
            .map(|(n, _)| (jail, n.trunc()))
            .collect();
        self.cut_sessions(&added);
        Ok(applied.into_iter().map(Ok).collect())
    }

    /// One write of ufw's files for them all, not one per entry.
    fn lift_many(&mut self, jail: &str, nets: &[IpNet]) -> Result<usize, EnforceError> {
        let held = |me: &Self, n: &IpNet| me.bans.get(jail).is_some_and(|b| b.contains_key(n));
        let gone: Vec<IpNet> = nets
            .iter()
            .map(|n| n.trunc())
            .filter(|n| held(self, n))
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.apply(|me| {
            if let Some(b) = me.bans.get_mut(jail) {
                b.retain(|n, _| !gone.contains(n));
            }
        })?;
        Ok(gone.len())
    }

    fn remove_all(&mut self) -> Result<(), EnforceError> {
        self.apply(|me| me.bans.clear())
    }

    /// The timer: ufw has no timeouts, so a thread sleeps until the next
    /// ban ends and wakes the enforcer, which calls [`Backend::expire`].
    /// Where ufw's chains are nf_tables chains, a change of them by someone
    /// else wakes it too: [`Backend::expire`] brings them back to the files.
    fn watch_for_tampering(
        &mut self,
        wake: Box<dyn Fn() -> bool + Send>,
    ) -> Result<(), EnforceError> {
        let wake = Arc::new(Mutex::new(wake));
        let shared = Arc::clone(&wake);
        self.live
            .watch(Box::new(move || {
                (shared.lock().unwrap_or_else(PoisonError::into_inner))()
            }))
            .map_err(EnforceError::Watch)?;
        let wake = move || (wake.lock().unwrap_or_else(PoisonError::into_inner))();
        let deadline = Arc::clone(&self.deadline);
        std::thread::Builder::new()
            .name("ufw-expiry".into())
            .spawn(move || loop {
                let mut at = deadline.at.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let now = Instant::now();
                    match *at {
                        Some(t) if t <= now => break,
                        Some(t) => {
                            at = deadline
                                .changed
                                .wait_timeout(at, t - now)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        None => {
                            at = deadline
                                .changed
                                .wait(at)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                }
                *at = None;
                drop(at);
                if !wake() {
                    return;
                }
            })
            .map_err(EnforceError::Watch)?;
        Ok(())
    }

    fn expire(&mut self) -> Option<Result<usize, EnforceError>> {
        let result = self.sync(false);
        if result.is_err() {
            *self
                .deadline
                .at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + EXPIRY_RETRY);
            self.deadline.changed.notify_all();
        }
        Some(result)
    }
}

/// Time left on a ban ending at `until`: None once over; Some(None) for a
/// permanent one.
fn left(until: Option<u64>) -> Option<Option<Duration>> {
    match until {
        None => Some(None),
        Some(u) => {
            let end = UNIX_EPOCH + Duration::from_secs(u);
            let d = end.duration_since(SystemTime::now()).ok()?;
            (!d.is_zero()).then_some(Some(d))
        }
    }
}
