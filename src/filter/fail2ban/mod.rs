//! fail2ban's own filter files (`/etc/fail2ban/filter.d/*.conf`), read as they
//! are: includes, interpolation, tags, `prefregex`, options and date patterns.
//!
//! The stages mirror fail2ban's so each can be checked on its own: [`ini`]
//! reads one file as Python's configparser does, [`config`] merges a
//! filter's files and interpolates `%(name)s`, [`options`] applies the
//! spec's options and `<tag>` substitution, [`tags`] and [`pyregex`] turn a
//! fail2ban regex into one for Rust's engines, [`filter`] judges lines.
//! [`jails`] reads jail.conf and friends with the same rules, for
//! `nftjail import-fail2ban`.

mod config;
mod dates;
mod engine;
mod error;
mod filter;
mod fold;
mod gate;
mod group;
mod ini;
mod jails;
mod keys;
mod literals;
mod matched;
mod options;
// Public for the fuzz target (fuzz/fuzz_targets/pyregex.rs), not an API.
#[doc(hidden)]
pub mod pyregex;
mod tags;

pub use error::Fail2banError;
pub use filter::{Fail2banFilter, LineReport};
pub use fold::{Fold, FoldedHit, FoldedJudge, FAIL2BAN_HOST_GROUPS};
pub use group::{key_search, Fail2banFilters};
pub use jails::{parse_bool, JailConfig};
pub use keys::KeySet;
pub use matched::Fail2banMatch;
pub use options::parse_spec;

/// Where Debian and most distributions keep fail2ban's filters.
pub const DEFAULT_FILTER_DIR: &str = "/etc/fail2ban/filter.d";
