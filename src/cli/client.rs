//! Client commands: ask the daemon over its socket and print the answer the
//! way fail2ban-client does, so runbooks and scripts that grep its output keep
//! working; `--json` prints the daemon's reply as is, for new scripts.

use std::path::Path;

use nftjail::control::client::{request, ClientError};
use nftjail::control::protocol::{BanInfo, GoneJail, JailStatus, Reply, Request};

/// How a reply is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Our own words (and fail2ban's layout for `status`).
    Human,
    Json,
    /// fail2ban-client's terse answers (`set JAIL banip` prints a count...).
    Fail2ban,
}

pub fn run(socket: &Path, req: Request, style: Style) -> Result<(), ClientError> {
    let reply = request(socket, &req)?;
    if style == Style::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reply).unwrap_or_else(|_| "{}".into())
        );
        return Ok(());
    }
    let fail2ban = style == Style::Fail2ban;
    match reply {
        Reply::Jails {
            jails,
            gone,
            degraded,
            farm,
        } => {
            println!("Status");
            println!("|- Number of jail:\t{}", jails.len());
            println!("`- Jail list:\t{}", jails.join(", "));
            if !gone.is_empty() && !fail2ban {
                println!(
                    "Jails no longer configured, bans kept until they expire \
                     (`nftjail unban --jail-gone` lifts them): {}",
                    gone_list(&gone)
                );
            }
            if let Some(why) = degraded {
                // On stderr too under fail2ban's layout: scripts parse stdout.
                eprintln!("WARNING: state persistence degraded: {why}");
            }
            if let Some(farm) = farm.filter(|_| !fail2ban) {
                print_farm(&farm);
            }
        }
        Reply::JailStatus(s) => print_status(&s),
        Reply::Banned { bans } => print_bans(&bans),
        Reply::Ban {
            jail,
            addr,
            seconds,
            outcome,
            permanent,
        } => {
            if fail2ban {
                // fail2ban-client prints how many addresses it banned.
                println!("{}", u8::from(outcome != "unchanged"));
            } else {
                let what = match outcome.as_str() {
                    "added" => "banned",
                    "extended" => "ban extended",
                    _ => "already banned for at least as long",
                };
                let how_long = if permanent {
                    "permanent".to_string()
                } else {
                    nftjail::bantime::human_secs(seconds)
                };
                println!("{jail}: {addr} {what} ({how_long})");
            }
        }
        Reply::Unbanned { bans } => {
            if fail2ban {
                println!("{}", bans.len());
            } else if bans.is_empty() {
                println!("nothing was banned");
            } else {
                for b in &bans {
                    println!("{}: {} unbanned", b.jail, b.addr);
                }
            }
        }
        Reply::Reloaded {
            jails,
            added,
            removed,
            kept,
        } => {
            if fail2ban {
                println!("OK");
            } else {
                println!("reloaded: {} jail(s): {}", jails.len(), jails.join(", "));
                if !added.is_empty() {
                    println!("added: {}", added.join(", "));
                }
                let lifted: Vec<&String> = removed
                    .iter()
                    .filter(|r| !kept.iter().any(|k| k.jail == **r))
                    .collect();
                if !lifted.is_empty() {
                    let names: Vec<&str> = lifted.iter().map(|s| s.as_str()).collect();
                    println!("removed: {}", names.join(", "));
                }
                if !kept.is_empty() {
                    println!(
                        "removed, bans kept until they expire (`nftjail unban --jail-gone` lifts them): {}",
                        gone_list(&kept)
                    );
                }
            }
        }
        Reply::Version { version } => {
            if fail2ban {
                println!("{version}");
            } else {
                println!("nftjail {} (daemon {version})", env!("CARGO_PKG_VERSION"));
            }
        }
    }
    Ok(())
}

/// `a (3 bans), b (1 ban)`.
fn gone_list(gone: &[GoneJail]) -> String {
    gone.iter()
        .map(|g| {
            let s = if g.bans == 1 { "" } else { "s" };
            format!("{} ({} ban{s})", g.jail, g.bans)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_status(s: &JailStatus) {
    println!("Status for the jail: {}", s.jail);
    if s.gone {
        println!(
            "|- No longer configured: its bans are kept until they expire \
             (`nftjail unban --jail-gone` lifts them)"
        );
    }
    println!("|- Filter");
    println!("|  |- Currently failed:\t{}", s.currently_failed);
    println!("|  |- Total failed:\t{}", s.total_failed);
    if !s.accounts.is_empty() {
        println!("|  |- Accounts under attack:\t{}", s.accounts.join(" "));
    }
    println!("|  `- File list:\t{}", s.files.join(" "));
    println!("`- Actions");
    println!("   |- Currently banned:\t{}", s.currently_banned);
    println!("   |- Total banned:\t{}", s.total_banned);
    if s.permanent > 0 {
        // Counted and listed above too: blocklist entries, `ban --permanent`.
        println!("   |- Permanent (no timeout):\t{}", s.permanent);
    }
    if !s.foreign.is_empty() {
        // Counted and listed above too: they block like our bans.
        println!("   |- Not banned by nftjail:\t{}", s.foreign.join(" "));
    }
    println!("   `- Banned IP list:\t{}", s.banned.join(" "));
}

fn print_bans(bans: &[BanInfo]) {
    if bans.is_empty() {
        println!("no active bans");
        return;
    }
    for b in bans {
        let left = match b.remaining {
            Some(s) => format!("{} left", nftjail::bantime::human_secs(s)),
            None => "permanent".into(),
        };
        if b.foreign {
            println!("{}\t{}\t{left}\tnot banned by nftjail", b.jail, b.addr);
        } else {
            println!("{}\t{}\t{left}", b.jail, b.addr);
        }
    }
}

/// fail2ban-client's argument forms that runbooks use, mapped to requests.
/// Returns the requests to send (several for `set JAIL banip A B`).
pub fn fail2ban_forms(args: &[String]) -> Result<Vec<Request>, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let addrs = |list: &[&str]| -> Result<Vec<String>, String> {
        if list.is_empty() {
            Err("an address is needed".into())
        } else {
            Ok(list.iter().map(|s| s.to_string()).collect())
        }
    };
    Ok(match a.as_slice() {
        ["status"] => vec![Request::Status { jail: None }],
        ["status", jail] | ["status", jail, _] => vec![Request::Status {
            jail: Some(jail.to_string()),
        }],
        ["set", jail, "banip", rest @ ..] => addrs(rest)?
            .into_iter()
            .map(|addr| Request::Ban {
                jail: jail.to_string(),
                addr,
                seconds: None,
                force: false,
                permanent: false,
            })
            .collect(),
        ["set", jail, "unbanip", rest @ ..] => addrs(rest)?
            .into_iter()
            .map(|addr| Request::Unban {
                jail: Some(jail.to_string()),
                addr: Some(addr),
            })
            .collect(),
        ["unban", "--all"] | ["unban", "-a"] => vec![Request::Unban {
            jail: None,
            addr: None,
        }],
        ["unban", rest @ ..] => addrs(rest)?
            .into_iter()
            .map(|addr| Request::Unban {
                jail: None,
                addr: Some(addr),
            })
            .collect(),
        ["banned"] => vec![Request::Banned { addr: None }],
        ["banned", addr] => vec![Request::Banned {
            addr: Some(addr.to_string()),
        }],
        ["reload", ..] => vec![Request::Reload],
        ["version"] | ["ping"] => vec![Request::Version],
        _ => {
            return Err(format!(
                "unsupported fail2ban-client command {:?}; supported: status [JAIL], set JAIL banip|unbanip ADDR..., unban ADDR...|--all, banned [ADDR], reload, ping, version",
                args.join(" ")
            ))
        }
    })
}

/// The farm block of `status`: the link to Redis, the nodes seen, what
/// went each way.
fn print_farm(f: &nftjail::control::protocol::FarmStatus) {
    println!("Farm");
    let link = if f.connected {
        "connected".to_string()
    } else {
        format!(
            "NOT connected ({})",
            f.error.as_deref().unwrap_or("unknown")
        )
    };
    println!("|- Redis:\t{} {link}", f.redis);
    println!("|- Node:\t{}", f.node);
    let nodes: Vec<String> = f
        .nodes
        .iter()
        .map(|n| format!("{} ({}s ago)", n.node, n.seen_secs_ago))
        .collect();
    println!("|- Nodes seen:\t{}", nodes.join(", "));
    println!("|- Bans received:\t{}", f.received);
    println!("|- Bans sent:\t{}", f.sent);
    println!("|- Records refused:\t{}", f.refused);
    println!(
        "|- Shared counting:\t{}",
        if f.shared_counting { "on" } else { "off" }
    );
    if f.dropped > 0 {
        println!("|- Dropped (queue full):\t{}", f.dropped);
    }
    println!("`- Queued for Redis:\t{}", f.queued);
    if !f.connected {
        eprintln!(
            "WARNING: farm: Redis unreachable; bans go on here, {} queued for the farm",
            f.queued
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(s: &str) -> Result<Vec<Request>, String> {
        fail2ban_forms(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn runbook_lines_map_to_requests() {
        assert_eq!(
            forms("status").unwrap(),
            vec![Request::Status { jail: None }]
        );
        assert_eq!(
            forms("set sshd banip 203.0.113.1 203.0.113.2")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            forms("set sshd unbanip 203.0.113.1").unwrap(),
            vec![Request::Unban {
                jail: Some("sshd".into()),
                addr: Some("203.0.113.1".into())
            }]
        );
        assert_eq!(
            forms("unban --all").unwrap(),
            vec![Request::Unban {
                jail: None,
                addr: None
            }]
        );
        assert!(forms("set sshd banip").is_err());
        assert!(forms("start sshd").is_err());
    }
}
