//! Errors of reading and compiling a fail2ban filter.

use std::path::PathBuf;

/// Everything that can go wrong between a filter spec and a working filter.
/// Each variant names the file, section, key or regex line so that an admin
/// can find the offending spot without reading our source.
#[derive(Debug, thiserror::Error)]
pub enum Fail2banError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no filter file {path}")]
    NotFound { path: PathBuf },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("bad filter spec {spec:?}: {message}")]
    Spec { spec: String, message: String },
    #[error("[{section}] {key}: {message}")]
    Interpolation {
        section: String,
        key: String,
        message: String,
    },
    #[error("filter {filter}: tag <{tag}> in {key} refers back to itself (cycle)")]
    TagCycle {
        filter: String,
        key: String,
        tag: String,
    },
    #[error("filter {filter}: {key} line {line}: {message}")]
    Regex {
        filter: String,
        key: String,
        line: usize,
        message: String,
    },
    #[error("filter {filter}: {key} = {value:?}: {message}")]
    Value {
        filter: String,
        key: String,
        value: String,
        message: String,
    },
}
