//! `[metrics]`: where Prometheus metrics are served, if anywhere. Off
//! unless `listen` is given, and on loopback only unless the admin says
//! otherwise: the counters name jails and log files, which is nobody
//! else's business.

use std::net::SocketAddr;

use super::raw::RawMetrics;
use super::Checker;

/// Where `GET /metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

impl Checker<'_> {
    pub(super) fn metrics_config(&mut self, raw: Option<&RawMetrics>) -> Option<MetricsConfig> {
        let raw = raw?;
        let listen = raw.listen.as_ref()?;
        let public = raw.allow_public.unwrap_or(false);
        let addr = match listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.problem(
                    listen.span(),
                    "metrics.listen",
                    "expected ADDRESS:PORT, e.g. \"127.0.0.1:9716\" or \"[::1]:9716\"",
                );
                return None;
            }
        };
        if addr.port() == 0 {
            self.problem(listen.span(), "metrics.listen", "give a port other than 0");
            return None;
        }
        if !addr.ip().is_loopback() && !public {
            let what = if addr.ip().is_unspecified() {
                "every interface"
            } else {
                "a non-loopback address"
            };
            self.problem(
                listen.span(),
                "metrics.listen",
                format!(
                    "{addr} is {what}: metrics would be open to the network; listen on \
                     127.0.0.1 or [::1], or set allow_public = true in [metrics] if a \
                     firewall guards the port"
                ),
            );
            return None;
        }
        Some(MetricsConfig { listen: addr })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn parse(metrics: &str) -> Result<Config, ConfigError> {
        let text = format!("[metrics]\n{metrics}\n");
        Config::parse(&text, Path::new("t.toml"))
    }

    #[test]
    fn loopback_is_taken_and_absent_means_off() {
        let c = parse("listen = \"127.0.0.1:9716\"").unwrap();
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9716".parse().unwrap());
        let c = parse("listen = \"[::1]:9716\"").unwrap();
        assert!(c.metrics.is_some());
        let c = Config::parse("", Path::new("t.toml")).unwrap();
        assert!(c.metrics.is_none());
    }

    #[test]
    fn a_public_address_needs_allow_public() {
        for addr in ["0.0.0.0:9716", "[::]:9716", "192.0.2.1:9716"] {
            let e = parse(&format!("listen = \"{addr}\""))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t.toml:2:10: metrics.listen: "), "{e}");
            assert!(e.contains("allow_public"), "{e}");
        }
        let c = parse("listen = \"0.0.0.0:9716\"\nallow_public = true").unwrap();
        assert_eq!(c.metrics.unwrap().listen, "0.0.0.0:9716".parse().unwrap());
    }

    #[test]
    fn bad_spellings_are_refused_with_the_key() {
        let e = parse("listen = \"localhost\"").unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "{e}");
        let e = parse("listen = \"127.0.0.1:0\"").unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "{e}");
        let e = parse("listen = \"127.0.0.1:9716\"\nport = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
    }
}
