//! The enforcer's side of the metrics: active bans are counted from its
//! ban record when scraped, so a flood pays nothing for them and expired
//! bans (the kernel's business) drop out on their own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::enforcer::{EnforcerMsg, JailBans};
use super::record::is_host;
use crate::metrics::{ActiveBans, SetCount};

/// Asks the enforcer for its bans at each scrape. A weak sender: the
/// metrics server must not keep the enforcer's queue open at stop.
pub fn active_bans(tx: &mpsc::Sender<EnforcerMsg>) -> ActiveBans {
    let tx = tx.downgrade();
    Arc::new(move || {
        let tx = tx.clone();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            tx.upgrade()?.send(EnforcerMsg::List { reply }).await.ok()?;
            Some(count(rx.await.ok()?))
        })
    })
}

/// Every jail's four sets, empty ones too, so a gauge falls back to 0.
fn count(jails: Vec<JailBans>) -> Vec<SetCount> {
    let mut out = Vec::with_capacity(jails.len() * 4);
    for j in jails {
        let mut n = [0u64; 4];
        for (net, _) in &j.bans {
            let i = match (net, is_host(net)) {
                (ipnet::IpNet::V4(_), true) => 0,
                (ipnet::IpNet::V6(_), true) => 1,
                (ipnet::IpNet::V4(_), false) => 2,
                (ipnet::IpNet::V6(_), false) => 3,
            };
            n[i] += 1;
        }
        for (set, count) in ["v4", "v6", "net4", "net6"].into_iter().zip(n) {
            out.push(SetCount {
                jail: j.jail.clone(),
                set,
                count,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bans_are_counted_by_set() {
        let bans = [
            "192.0.2.1/32",
            "192.0.2.2/32",
            "2001:db8::1/128",
            "198.51.100.0/24",
        ]
        .iter()
        .map(|n| (n.parse().unwrap(), None))
        .collect();
        let counts = count(vec![JailBans {
            jail: "sshd".into(),
            total: 4,
            bans,
            gone: false,
            foreign: Vec::new(),
        }]);
        let got: Vec<(&str, u64)> = counts.iter().map(|c| (c.set, c.count)).collect();
        assert_eq!(got, [("v4", 2), ("v6", 1), ("net4", 1), ("net6", 0)]);
    }
}
