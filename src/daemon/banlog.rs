//! The log lines of automatic bans. One line per ban, as fail2ban writes
//! them, while bans come a few at a time; a flood's bans are grouped, many
//! addresses to a line. At 100,000 bans a line each cost the enforcer about
//! 1 µs per ban in formatting and a queue push, and the log writer thread as
//! much again: a fifth of the time the flood took to reach the kernel. Every
//! address is still written (so `grep ADDRESS` on the log finds its ban).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::human;
use crate::message::BanOrder;

/// Runs of at least this many alike bans (same verb, jail, failures and
/// bantime) are grouped.
const GROUP_AT: usize = 16;
/// Addresses per grouped line: about 2 KiB of IPv4, well under journald's
/// 48 KiB line limit even for long IPv6 addresses.
const PER_LINE: usize = 128;

#[derive(Default)]
pub struct BanLog {
    bans: Vec<(&'static str, Arc<str>, u32, Duration, IpAddr)>,
}

impl BanLog {
    pub fn push(&mut self, verb: &'static str, order: &BanOrder) {
        self.bans.push((
            verb,
            Arc::clone(&order.jail),
            order.failures,
            order.bantime,
            order.addr,
        ));
    }

    /// Writes the lines and forgets the bans.
    pub fn flush(&mut self) {
        for line in self.lines() {
            info!("{line}");
        }
        self.bans.clear();
    }

    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let alike = |a: &(&str, Arc<str>, u32, Duration, IpAddr),
                     b: &(&str, Arc<str>, u32, Duration, IpAddr)| {
            a.0 == b.0 && a.1 == b.1 && a.2 == b.2 && a.3 == b.3
        };
        for run in self.bans.chunk_by(alike) {
            let (verb, jail, failures, bantime, _) = &run[0];
            let bantime = human(*bantime);
            if run.len() < GROUP_AT {
                for (.., addr) in run {
                    out.push(format!(
                        "{verb}: jail={jail} addr={addr} failures={failures} bantime={bantime}"
                    ));
                }
                continue;
            }
            for part in run.chunks(PER_LINE) {
                let mut line = format!(
                    "{verb}: jail={jail} failures={failures} bantime={bantime} count={} addrs=",
                    part.len()
                );
                for (i, (.., addr)) in part.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    let _ = write!(line, "{addr}");
                }
                out.push(line);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(jail: &str, addr: IpAddr, failures: u32) -> BanOrder {
        BanOrder {
            jail: jail.into(),
            addr,
            bantime: Duration::from_secs(3600),
            failures,
            line: None,
        }
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::from((0xc000_0200 + i).to_be_bytes())
    }

    #[test]
    fn a_few_bans_get_a_line_each() {
        let mut log = BanLog::default();
        log.push("ban", &order("ssh", v4(1), 3));
        log.push("ban extended", &order("ssh", v4(2), 3));
        assert_eq!(
            log.lines(),
            [
                "ban: jail=ssh addr=192.0.2.1 failures=3 bantime=1h",
                "ban extended: jail=ssh addr=192.0.2.2 failures=3 bantime=1h",
            ]
        );
    }

    #[test]
    fn a_flood_is_grouped_and_every_address_is_written_once() {
        let mut log = BanLog::default();
        for i in 0..300 {
            log.push("ban", &order("smtp", v4(i), 5));
        }
        // A different jail in the middle of the flood breaks the run.
        log.push("ban", &order("ssh", v4(1000), 5));
        log.push("ban", &order("smtp", v4(2000), 5));
        let lines = log.lines();
        assert_eq!(lines.len(), 3 + 2, "{lines:#?}");
        assert!(lines[0].starts_with(
            "ban: jail=smtp failures=5 bantime=1h count=128 addrs=192.0.2.0,192.0.2.1,"
        ));
        assert!(lines[2].contains("count=44 addrs="));
        assert_eq!(
            lines[3],
            "ban: jail=ssh addr=192.0.5.232 failures=5 bantime=1h"
        );
        let written: Vec<IpAddr> = lines[..3]
            .iter()
            .flat_map(|l| l.split("addrs=").nth(1).unwrap_or("").split(','))
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(written, (0..300).map(v4).collect::<Vec<_>>());
    }
}
