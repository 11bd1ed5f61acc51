//! The words the config and the backends share about what to block: the
//! ports a jail covers ([`PortRange`]), what happens to a banned address's
//! packets ([`BlockType`]) and one jail's rules ([`JailRules`]).
//!
//! A leaf: the config produces these values and the backends consume them,
//! so neither has to import the other.

use std::fmt;

/// Transport protocol a port rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// An inclusive destination-port range for one protocol (`first == last` for one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub proto: Proto,
    pub first: u16,
    pub last: u16,
}

/// What the kernel does to a banned address's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockType {
    /// TCP reset / ICMP port unreachable: the client fails at once.
    #[default]
    Reject,
    /// Silently drop: the client times out.
    Drop,
}

/// What a backend needs to know about one jail to build its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailRules {
    /// Jail name; sets are named `<name>-v4` / `<name>-v6`.
    pub name: String,
    /// Empty means every port and protocol.
    pub ports: Vec<PortRange>,
    pub blocktype: BlockType,
    /// A ufw application profile whose ports the ban covers instead of
    /// `ports` (only the ufw backend has profiles; the others ignore it).
    pub app: Option<String>,
}
