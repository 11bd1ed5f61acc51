//! ufw application profiles (`/etc/ufw/applications.d`): a jail that
//! names one (`app = "OpenSSH"`) bans the ports the profile lists, as
//! `ufw reject from ADDR to any app NAME` would.
//!
//! A profile file is INI: `[Name]` then `ports=80,443/tcp|5060/udp|5298`,
//! entries split by `|`, each a port list with an optional protocol (none:
//! tcp and udp).

use std::path::Path;

use super::tuple::{chunks, PortGroup};
use crate::rules::Proto;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot read {dir}: {source}")]
    Read {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no ufw application profile {0:?} in {1} (see `ufw app list`)")]
    Missing(String, String),
    #[error("ufw application profile {name:?}: bad ports {ports:?}")]
    Bad { name: String, ports: String },
}

/// The port groups of profile `name`, read from the files of `dir`.
pub fn ports(dir: &Path, name: &str) -> Result<Vec<PortGroup>, AppError> {
    let read_err = |source| AppError::Read {
        dir: dir.display().to_string(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if let Some(ports) = profile_ports(&text, name) {
            return parse(&ports).ok_or_else(|| AppError::Bad {
                name: name.to_string(),
                ports,
            });
        }
    }
    Err(AppError::Missing(
        name.to_string(),
        dir.display().to_string(),
    ))
}

/// The `ports=` value of section `[name]` of one file.
fn profile_ports(text: &str, name: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section == name;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "ports" {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

fn parse(ports: &str) -> Option<Vec<PortGroup>> {
    let mut out = Vec::new();
    for entry in ports.split('|').map(str::trim) {
        let (list, proto) = match entry.rsplit_once('/') {
            Some((l, "tcp")) => (l, Some(Proto::Tcp)),
            Some((l, "udp")) => (l, Some(Proto::Udp)),
            Some(_) => return None,
            None => (entry, None),
        };
        let list: Vec<String> = list.split(',').map(|p| p.trim().to_string()).collect();
        let valid = |p: &str| {
            p.split(':').count() <= 2 && p.split(':').all(|n| n.parse::<u16>().is_ok_and(|n| n > 0))
        };
        if list.iter().any(|p| !valid(p)) {
            return None;
        }
        out.extend(chunks(proto, &list));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "[KTorrent]\ntitle=KTorrent\nports=6881/tcp|4444/udp\n\n[Transmission]\nports=51413\n";

    #[test]
    fn a_profile_gives_a_group_per_entry() {
        let p = parse(&profile_ports(FILE, "KTorrent").unwrap()).unwrap();
        assert_eq!(
            p,
            vec![
                PortGroup {
                    proto: Some(Proto::Tcp),
                    ports: "6881".into()
                },
                PortGroup {
                    proto: Some(Proto::Udp),
                    ports: "4444".into()
                }
            ]
        );
        let t = parse(&profile_ports(FILE, "Transmission").unwrap()).unwrap();
        assert_eq!(t[0].proto, None);
        assert_eq!(profile_ports(FILE, "Deluge"), None);
        assert_eq!(parse("80/sctp"), None);
    }
}
