//! What each control request does inside the daemon. The stages keep their
//! own state; this asks them through their channels and never touches the
//! log readers' hot path.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use super::JailSlots;
use crate::config::ignore::Protected;
use crate::config::Config;
use crate::control::protocol::{
    BanInfo, ErrorCode, GoneJail, JailStatus, Reply, Request, Response,
};
use crate::control::server::{error, Handler};
use crate::enforce::enforcer::{show, EnforcerMsg, JailBans, Lifted};
use crate::enforce::record::is_host;
use crate::enforce::{Applied, EnforceError};
use crate::pipeline::Sources;
use crate::tracker::task::TrackerCtl;

pub struct Handle {
    pub(super) config: RwLock<Arc<Config>>,
    /// The file reloads read again (None: the default lookup).
    pub(super) config_path: Option<PathBuf>,
    /// `run --state-dir`: it stands over what a reloaded file says.
    pub(super) state_dir: Option<PathBuf>,
    pub(super) slots: Mutex<JailSlots>,
    pub(super) sources: tokio::sync::Mutex<Sources>,
    pub(super) tracker: mpsc::Sender<TrackerCtl>,
    pub(super) enforcer: mpsc::Sender<EnforcerMsg>,
    /// Told when the jails or the bans changed by request, so systemd's
    /// STATUS= follows at once (see `service`).
    pub(super) status_changed: tokio::sync::Notify,
}

type Answer = Result<Reply, Response>;

impl Handler for Handle {
    async fn handle(&self, req: Request) -> Response {
        let answer = match req {
            Request::Status { jail: None } => self.jails().await,
            Request::Status { jail: Some(j) } => self.status(&j).await,
            Request::Ban {
                jail,
                addr,
                seconds,
                force,
                permanent,
            } => {
                let seconds = if permanent { None } else { Some(seconds) };
                let answer = self.ban(&jail, &addr, seconds, force).await;
                self.status_changed.notify_one();
                answer
            }
            Request::Unban { jail, addr } => {
                let answer = self.unban(jail, addr).await;
                self.status_changed.notify_one();
                answer
            }
            Request::Banned { addr } => self.banned(addr).await,
            Request::Reload => self.reload().await,
            Request::UnbanGone => {
                let answer = self.unban_gone().await;
                self.status_changed.notify_one();
                answer
            }
            Request::Version => Ok(Reply::Version {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        };
        answer.map_or_else(|e| e, Response::Ok)
    }
}

impl Handle {
    pub(super) fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The running config and the named jail's index in it.
    fn known_jail(&self, jail: &str) -> Result<(Arc<Config>, usize), Response> {
        let config = self.config();
        match config.jails.iter().position(|j| &*j.name == jail) {
            Some(i) => Ok((config, i)),
            None => Err(error(
                ErrorCode::UnknownJail,
                format!(
                    "no jail {jail:?} (jails: {})",
                    config.jail_names().join(", ")
                ),
            )),
        }
    }

    /// Sends a request to a stage and waits for its answer.
    pub(super) async fn ask<T, M>(
        &self,
        to: &mpsc::Sender<M>,
        make: impl FnOnce(oneshot::Sender<T>) -> M,
    ) -> Result<T, Response> {
        let (tx, rx) = oneshot::channel();
        let gone = || error(ErrorCode::Failed, "the daemon is stopping");
        to.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    async fn lists(&self) -> Result<Vec<JailBans>, Response> {
        self.ask(&self.enforcer, |reply| EnforcerMsg::InKernel { reply })
            .await
    }

    /// The configured jails, and those gone with bans still running.
    async fn jails(&self) -> Answer {
        // The record is enough for counts shown this often; a dump of every
        // set is kept for the listings.
        let gone = self
            .ask(&self.enforcer, |reply| EnforcerMsg::List { reply })
            .await?
            .into_iter()
            .filter(|b| b.gone)
            .map(|b| GoneJail {
                jail: b.jail,
                bans: b.bans.len() as u64,
            })
            .collect();
        Ok(Reply::Jails {
            jails: self
                .config()
                .jail_names()
                .into_iter()
                .map(String::from)
                .collect(),
            gone,
            degraded: crate::state::writer::degraded(),
            farm: crate::cluster::status(),
        })
    }

    /// A jail no longer configured whose bans still run: those bans.
    async fn gone_status(&self, jail: &str) -> Option<Answer> {
        let bans = match self.lists().await {
            Ok(l) => l.into_iter().find(|b| b.gone && b.jail == jail)?,
            Err(e) => return Some(Err(e)),
        };
        let banned: Vec<String> = bans.bans.iter().map(|(a, _)| show(a)).collect();
        let foreign: Vec<String> = bans.foreign.iter().map(|(a, _)| show(a)).collect();
        let banned: Vec<String> = banned.into_iter().chain(foreign.iter().cloned()).collect();
        Some(Ok(Reply::JailStatus(Box::new(JailStatus {
            jail: jail.to_string(),
            currently_failed: 0,
            total_failed: 0,
            files: Vec::new(),
            currently_banned: banned.len() as u64,
            total_banned: bans.total,
            permanent: permanent(&bans),
            banned,
            gone: true,
            foreign,
            accounts: Vec::new(),
        }))))
    }

    async fn unban_gone(&self) -> Answer {
        let lifted = self
            .ask(&self.enforcer, |reply| EnforcerMsg::UnbanGone { reply })
            .await?
            .map_err(|e| error(ErrorCode::Failed, e.to_string()))?;
        Ok(Reply::Unbanned {
            bans: lifted.into_iter().map(info).collect(),
        })
    }

    async fn status(&self, jail: &str) -> Answer {
        let (config, index) = match self.known_jail(jail) {
            Ok(known) => known,
            Err(unknown) => return self.gone_status(jail).await.unwrap_or(Err(unknown)),
        };
        let id = self.slot_of(jail);
        let counts = self
            .ask(&self.tracker, |reply| TrackerCtl::Counts { reply })
            .await?;
        let counts = id
            .and_then(|id| counts.get(id).copied())
            .unwrap_or_default();
        let accounts = match id {
            Some(jail) => {
                self.ask(&self.tracker, |reply| TrackerCtl::UnderAttack {
                    jail,
                    reply,
                })
                .await?
            }
            None => Vec::new(),
        };
        let bans = self.lists().await?.into_iter().find(|b| b.jail == jail);
        let sources = &config.jails[index];
        // Every source, as fail2ban lists files or journal matches.
        let files = sources
            .logpaths
            .iter()
            .map(|p| p.display().to_string())
            .chain(sources.journal.iter().map(|m| format!("journal: {m}")))
            .chain(sources.syslog.iter().map(|p| format!("syslog: {p}")))
            .collect();
        let permanent = bans.as_ref().map_or(0, permanent);
        let (total_banned, banned, foreign): (u64, Vec<String>, Vec<String>) = match bans {
            Some(b) => (
                b.total,
                b.bans
                    .iter()
                    .chain(&b.foreign)
                    .map(|(a, _)| show(a))
                    .collect(),
                b.foreign.iter().map(|(a, _)| show(a)).collect(),
            ),
            None => (0, Vec::new(), Vec::new()),
        };
        Ok(Reply::JailStatus(Box::new(JailStatus {
            jail: jail.to_string(),
            currently_failed: counts.current,
            total_failed: counts.total,
            files,
            currently_banned: banned.len() as u64,
            total_banned,
            banned,
            gone: false,
            foreign,
            permanent,
            accounts,
        })))
    }

    fn slot_of(&self, jail: &str) -> Option<usize> {
        let slots = self.slots.lock().ok()?;
        slots.names.iter().position(|n| &**n == jail)
    }

    /// `seconds` None: permanent; Some(None): the jail's bantime.
    async fn ban(
        &self,
        jail: &str,
        addr: &str,
        seconds: Option<Option<u64>>,
        force: bool,
    ) -> Answer {
        let (config, index) = self.known_jail(jail)?;
        let target = parse_target(addr)?;
        let j = &config.jails[index];
        // `[daemon] never` is the enforcer's to refuse, --force or not.
        let protected = j.ignore.protected(&target);
        if let Some((hit, _)) = protected.filter(|(_, why)| !force && *why != Protected::Never) {
            return Err(error(
                ErrorCode::Refused,
                format!(
                    "{} covers {hit}, which jail {jail} never bans (ignoreip/ignoreself); use --force to ban it anyway",
                    show(&target)
                ),
            ));
        }
        let bantime = match seconds {
            Some(Some(0)) => return Err(error(ErrorCode::BadRequest, "a ban of 0 seconds")),
            Some(Some(s)) => Some(Duration::from_secs(s)),
            Some(None) => Some(j.bantime),
            None => None,
        };
        let name = Arc::clone(&j.name);
        let outcome = self
            .ask(&self.enforcer, |reply| match bantime {
                Some(bantime) => EnforcerMsg::Manual {
                    jail: Arc::clone(&name),
                    target,
                    bantime,
                    reply,
                },
                None => EnforcerMsg::Permanent {
                    jail: Arc::clone(&name),
                    target,
                    reply,
                },
            })
            .await?
            .map_err(|e| match e {
                EnforceError::Overlap { .. } | EnforceError::Never { .. } => {
                    error(ErrorCode::Refused, e.to_string())
                }
                e => error(ErrorCode::Failed, e.to_string()),
            })?;
        if let (Applied::Added, true, Some(bantime)) = (outcome, is_host(&target), bantime) {
            // Counts for bantime increment, where the tracker decides it.
            let _ = self
                .tracker
                .send(TrackerCtl::BannedByHand {
                    jail: name,
                    addr: target.addr(),
                    bantime,
                })
                .await;
        }
        Ok(Reply::Ban {
            jail: jail.to_string(),
            addr: show(&target),
            seconds: bantime.map_or(0, |b| b.as_secs()),
            permanent: bantime.is_none(),
            outcome: match outcome {
                Applied::Added => "added",
                Applied::Extended => "extended",
                Applied::Unchanged => "unchanged",
            }
            .to_string(),
        })
    }

    async fn unban(&self, jail: Option<String>, addr: Option<String>) -> Answer {
        if let Some(j) = &jail {
            self.known_jail(j)?;
        }
        let target = addr.as_deref().map(parse_target).transpose()?;
        let lifted = self
            .ask(&self.enforcer, |reply| EnforcerMsg::Unban {
                jail,
                target,
                reply,
            })
            .await?
            .map_err(|e| error(ErrorCode::Failed, e.to_string()))?;
        let hosts: Vec<(String, IpAddr)> = lifted
            .iter()
            .filter(|l| is_host(&l.addr))
            .map(|l| (l.jail.clone(), l.addr.addr()))
            .collect();
        if !hosts.is_empty() {
            let _ = self.tracker.send(TrackerCtl::Unbanned(hosts)).await;
        }
        Ok(Reply::Unbanned {
            bans: lifted.into_iter().map(info).collect(),
        })
    }

    async fn banned(&self, addr: Option<String>) -> Answer {
        let target = addr.as_deref().map(parse_target).transpose()?;
        let mut bans = Vec::new();
        for jail in self.lists().await? {
            let ours = jail.bans.into_iter().map(|b| (b, false));
            for ((a, remaining), foreign) in ours.chain(jail.foreign.into_iter().map(|b| (b, true)))
            {
                // An address asks which bans cover it, prefixes included.
                if target.is_none_or(|want| want == a || a.contains(&want)) {
                    bans.push(BanInfo {
                        foreign,
                        ..info(Lifted {
                            jail: jail.jail.clone(),
                            addr: a,
                            remaining,
                        })
                    });
                }
            }
        }
        Ok(Reply::Banned { bans })
    }
}

/// A jail's bans without timeout, ours and foreign.
fn permanent(bans: &JailBans) -> u64 {
    let all = bans.bans.iter().chain(&bans.foreign);
    all.filter(|(_, left)| left.is_none()).count() as u64
}

fn info(l: Lifted) -> BanInfo {
    BanInfo {
        jail: l.jail,
        addr: show(&l.addr),
        remaining: l.remaining.map(|d| d.as_secs()),
        foreign: false,
    }
}

/// An address, or a CIDR prefix (host bits are an error: `192.0.2.7/24` is
/// more likely a typo than a wish to ban 192.0.2.0/24).
fn parse_target(text: &str) -> Result<IpNet, Response> {
    let text = text.trim();
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(a.to_canonical()));
    }
    match text.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => Err(error(
            ErrorCode::BadAddress,
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        )),
        Ok(net) if net.prefix_len() == 0 => Err(error(
            ErrorCode::BadAddress,
            format!("{net} would ban every address"),
        )),
        Ok(IpNet::V6(n)) if n.addr().to_ipv4_mapped().is_some() => Err(error(
            ErrorCode::BadAddress,
            format!("{n}: write IPv4-mapped prefixes as IPv4"),
        )),
        Ok(net) => Ok(net),
        Err(_) => Err(error(
            ErrorCode::BadAddress,
            format!("{text:?} is not an IPv4 or IPv6 address or CIDR prefix"),
        )),
    }
}
