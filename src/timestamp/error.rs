//! Errors of the timestamp module.

use thiserror::Error;

/// A `datepattern` value that cannot be used.
#[derive(Debug, Error)]
pub enum DatePatternError {
    #[error("datepattern is empty")]
    Empty,
    #[error("datepattern {pattern:?}: unknown or unsupported directive %{directive}")]
    UnknownDirective { pattern: String, directive: String },
    #[error("datepattern {pattern:?}: regex does not compile: {source}")]
    Regex {
        pattern: String,
        #[source]
        source: Box<fancy_regex::Error>,
    },
}

/// A zone name that is neither in the tz database nor a fixed offset.
#[derive(Debug, Error)]
pub enum ZoneError {
    #[error("unknown time zone {0:?}")]
    Unknown(String),
}
