//! What a journal reader selects: which journal, and which entries
//! (journalctl's `FIELD=value` matches). Parsed here, beside the reader that
//! applies them, so the reader needs nothing from the config.

use std::path::PathBuf;

/// Which journal is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct JournalConfig {
    /// A directory of `*.journal` files; None: the system journal.
    pub dir: Option<PathBuf>,
}

/// One `journal` entry: every `FIELD=value` term must hold (journalctl's AND
/// within one argument list); a jail's entries are alternatives (OR).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JournalMatch {
    pub terms: Vec<(String, String)>,
}

impl JournalMatch {
    /// Parses `"_SYSTEMD_UNIT=ssh.service _PID=12"`.
    pub fn parse(text: &str) -> Result<JournalMatch, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let Some((field, value)) = word.split_once('=') else {
                return Err(format!("{word:?} is not FIELD=value"));
            };
            if !valid_field(field) {
                return Err(format!(
                    "{field:?} is not a journal field name (A-Z 0-9 _, not starting with a digit)"
                ));
            }
            terms.push((field.to_string(), value.to_string()));
        }
        if terms.is_empty() {
            return Err("an empty match would read every entry; give FIELD=value".into());
        }
        terms.sort();
        terms.dedup();
        Ok(JournalMatch { terms })
    }
}

impl std::fmt::Display for JournalMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// As journald accepts them: upper-case letters, digits and underscores, not
/// starting with a digit, at most 64 bytes.
fn valid_field(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 64
        && !f.as_bytes()[0].is_ascii_digit()
        && f.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
