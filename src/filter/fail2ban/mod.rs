//! fail2ban's own filter files (`/etc/fail2ban/filter.d/*.conf`), read as they
//! are: includes, interpolation, tags, `prefregex`, options and date patterns.
//!
//! The stages mirror fail2ban's so each can be checked on its own: [`ini`]
//! reads one file as Python's configparser does, [`config`] merges a
//! filter's files and interpolates `%(name)s`, [`options`] applies the
//! spec's options and `<tag>` substitution, [`tags`] and [`pyregex`] turn a
//! fail2ban regex into one for Rust's engines, [`filter`] judges lines.

mod config;
mod dates;
mod engine;
mod error;
mod filter;
mod ini;
mod matched;
mod options;
mod pyregex;
mod tags;

pub use error::Fail2banError;
pub use filter::Fail2banFilter;
pub use matched::Fail2banMatch;

/// Where Debian and most distributions keep fail2ban's filters.
pub const DEFAULT_FILTER_DIR: &str = "/etc/fail2ban/filter.d";
