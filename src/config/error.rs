//! Configuration errors that point at the file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, e.g. `jail.sshd.bantime`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.key,
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The reason is in the message, not chained as a source, so it is
    /// said once however the error is printed.
    #[error("cannot read config {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A FIFO, device or directory where the config file should be.
    #[error("refusing config {}: it {what}, not a regular file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    /// A config file someone other than root may change (see `strict`).
    #[error("refusing config {}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: String },
    /// Every problem found, so an admin fixes them all in one round.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// Turns byte offsets of one source text into located problems.
pub(crate) struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn at(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..start].chars().count() + 1;
        Problem {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        }
    }

    /// For serde/TOML errors, which carry a span but not the key path: rebuild the
    /// path from the last `[table]` header and the `key =` on the span's line.
    pub fn key_path_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header = |l: &str| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']'))
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        };
        if let Some(h) = header(line) {
            return h;
        }
        let table = self.text[..line_start].lines().rev().find_map(header);
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
        match (table, key) {
            (Some(t), Some(k)) => format!("{t}.{k}"),
            (None, Some(k)) => k,
            (Some(t), None) => t,
            (None, None) => "(top level)".into(),
        }
    }
}
