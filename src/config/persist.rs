//! Keys about what outlives the process: the state directory, what a stop
//! does to bans, and bantime increment for repeat offenders.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawDaemon, RawIncrement};
use super::Checker;
use crate::bantime::Increment;

/// Where bans, ban history and read positions are kept.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nftjail";
/// fail2ban's default `dbpurgeage`: history older than this is forgotten.
pub const DEFAULT_DBPURGEAGE: Duration = Duration::from_secs(86_400);
/// How long failures and bans are kept for `report` and `explain`: a
/// week, so Monday's report still shows the weekend.
pub const DEFAULT_REPORT_KEEP: Duration = Duration::from_secs(7 * 86_400);

/// What SIGTERM does to the bans in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStop {
    /// They stay and expire on their own; a restart finds them again.
    #[default]
    Keep,
    /// Our table is deleted and the stored bans forgotten.
    Flush,
}

impl Checker<'_> {
    pub(super) fn state_dir(&mut self, d: &RawDaemon) -> PathBuf {
        match d.state_dir.as_ref() {
            None => PathBuf::from(DEFAULT_STATE_DIR),
            Some(p) if Path::new(p.get_ref()).is_absolute() => PathBuf::from(p.get_ref()),
            Some(p) => {
                self.problem(p.span(), "daemon.state_dir", "must be an absolute path");
                PathBuf::from(DEFAULT_STATE_DIR)
            }
        }
    }

    pub(super) fn report_keep(&mut self, d: &RawDaemon) -> Duration {
        self.duration(d.report_keep.as_ref(), "daemon.report_keep")
            .unwrap_or(DEFAULT_REPORT_KEEP)
    }

    pub(super) fn on_stop(&mut self, d: &RawDaemon) -> OnStop {
        match d.on_stop.as_ref() {
            None => OnStop::Keep,
            Some(v) => match v.get_ref().as_str() {
                "keep" => OnStop::Keep,
                "flush" => OnStop::Flush,
                other => {
                    self.problem(
                        v.span(),
                        "daemon.on_stop",
                        format!("unknown value {other:?} (use \"keep\" or \"flush\")"),
                    );
                    OnStop::Keep
                }
            },
        }
    }

    /// The jail's increment settings over the defaults'; None when
    /// `bantime_increment` is off.
    pub(super) fn increment(
        &mut self,
        defaults: &RawIncrement,
        jail: &RawIncrement,
        prefix: &str,
    ) -> Option<Increment> {
        let on = jail
            .bantime_increment
            .or(defaults.bantime_increment)
            .unwrap_or(false);
        let key = |k: &str, own: bool| {
            if own {
                format!("{prefix}.{k}")
            } else {
                format!("defaults.{k}")
            }
        };
        let mut inc = Increment::default();
        let (v, own) = pick(&jail.bantime_factor, &defaults.bantime_factor);
        if let Some(v) = v {
            match number(v.get_ref()) {
                Some(f) if f > 0.0 && f.is_finite() => inc.factor = f,
                _ => self.problem(
                    v.span(),
                    &key("bantime_factor", own),
                    "must be a number above 0",
                ),
            }
        }
        let (v, own) = pick(&jail.bantime_multipliers, &defaults.bantime_multipliers);
        if let Some(v) = v {
            let k = key("bantime_multipliers", own);
            let items: Option<Vec<f64>> = match v.get_ref() {
                toml::Value::String(s) => s
                    .split([' ', ',', '\t'])
                    .filter(|w| !w.is_empty())
                    .map(|w| w.parse::<f64>().ok())
                    .collect(),
                toml::Value::Array(a) => a.iter().map(number).collect(),
                _ => None,
            };
            match items {
                Some(m) if !m.is_empty() && m.iter().all(|x| *x > 0.0 && x.is_finite()) => {
                    inc.multipliers = m
                }
                _ => self.problem(
                    v.span(),
                    &k,
                    "expected numbers above 0, as \"1 2 4 8 16 32 64\" or a list",
                ),
            }
        }
        let (v, own) = pick(&jail.bantime_maxtime, &defaults.bantime_maxtime);
        inc.maxtime = self.duration(v, &key("bantime_maxtime", own));
        let (v, own) = pick(&jail.bantime_rndtime, &defaults.bantime_rndtime);
        inc.rndtime = self.duration(v, &key("bantime_rndtime", own));
        inc.overalljails = jail
            .bantime_overalljails
            .or(defaults.bantime_overalljails)
            .unwrap_or(false);
        on.then_some(inc)
    }
}

/// The jail's own value if it has one (and says so), else the default.
fn pick<'a, T>(own: &'a Option<T>, default: &'a Option<T>) -> (Option<&'a T>, bool) {
    match own {
        Some(v) => (Some(v), true),
        None => (default.as_ref(), false),
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(n) => Some(*n as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}
