//! One INI file read the way Python's `configparser` (as fail2ban sets it
//! up) reads it, because filter files rely on its quirks: indented lines
//! continue a value, `;` after whitespace starts a comment but `#` only at a
//! line's start, keys are case-folded, section names are not.

use std::path::Path;

use super::error::Fail2banError;

/// Sections in file order; options in each section in file order.
#[derive(Debug, Default, Clone)]
pub struct IniFile {
    /// `[DEFAULT]` options.
    pub defaults: Vec<(String, String)>,
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

/// Where the parser currently appends.
enum Target {
    None,
    Default,
    Section(usize),
}

impl IniFile {
    pub fn parse(text: &str, path: &Path) -> Result<IniFile, Fail2banError> {
        let mut ini = IniFile::default();
        let mut target = Target::None;
        // Index of the current option in its list, with the value lines so far.
        let mut current: Option<(usize, Vec<String>)> = None;
        let mut indent_level = usize::MAX;
        let syntax = |line: usize, message: &str| Fail2banError::Syntax {
            path: path.to_path_buf(),
            line,
            message: message.to_string(),
        };
        for (number, raw) in text.lines().enumerate() {
            let number = number + 1;
            let comment_start = comment_start(raw);
            let value = raw[..comment_start.unwrap_or(raw.len())].trim();
            if value.is_empty() {
                // configparser keeps blank lines inside a value (they
                // vanish again if nothing follows), but not comment lines.
                if comment_start.is_none() {
                    if let Some((_, lines)) = current.as_mut() {
                        lines.push(String::new());
                    }
                }
                continue;
            }
            let indent = raw.len() - raw.trim_start().len();
            if current.is_some() && indent > indent_level {
                if let Some((_, lines)) = current.as_mut() {
                    lines.push(value.to_string());
                }
                continue;
            }
            ini.flush(&target, current.take());
            indent_level = indent;
            if let Some(header) = section_header(value) {
                target = if header == "DEFAULT" {
                    Target::Default
                } else if let Some(i) = ini.sections.iter().position(|(n, _)| n == header) {
                    Target::Section(i)
                } else {
                    ini.sections.push((header.to_string(), Vec::new()));
                    Target::Section(ini.sections.len() - 1)
                };
                continue;
            }
            if matches!(target, Target::None) {
                return Err(syntax(number, "option before any [section]"));
            }
            let Some(sep) = value.find(['=', ':']) else {
                return Err(syntax(number, "expected `key = value`"));
            };
            let key = value[..sep].trim_end().to_lowercase();
            if key.is_empty() {
                return Err(syntax(number, "empty option name"));
            }
            let first = value[sep + 1..].trim().to_string();
            let options = ini.options_mut(&target);
            let index = match options.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    options.push((key, String::new()));
                    options.len() - 1
                }
            };
            current = Some((index, vec![first]));
        }
        ini.flush(&target, current.take());
        Ok(ini)
    }

    fn options_mut(&mut self, target: &Target) -> &mut Vec<(String, String)> {
        match target {
            Target::Section(i) => &mut self.sections[*i].1,
            _ => &mut self.defaults,
        }
    }

    fn flush(&mut self, target: &Target, current: Option<(usize, Vec<String>)>) {
        if let Some((index, lines)) = current {
            let value = lines.join("\n").trim_end().to_string();
            if let Some(slot) = self.options_mut(target).get_mut(index) {
                slot.1 = value;
            }
        }
    }
}

/// Byte offset where a comment starts: a whole line starting with `#` or
/// `;`, or a `;` preceded by whitespace.
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    let bytes = line.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b';' && (i == 0 || (bytes[i - 1] as char).is_ascii_whitespace()))
}

/// `[name]` with the name running to the last `]`, as configparser's
/// greedy section pattern takes it.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> IniFile {
        IniFile::parse(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn continuation_lines_join_with_newline_and_comments_drop() {
        let ini = parse(
            "[Definition]\nfailregex = ^a$\n  # note\n            ^b$\n\nIgnoreRegex = x ; why\nk: v\n",
        );
        let (name, opts) = &ini.sections[0];
        assert_eq!(name, "Definition");
        assert_eq!(opts[0], ("failregex".into(), "^a$\n^b$".into()));
        assert_eq!(opts[1], ("ignoreregex".into(), "x".into()));
        assert_eq!(opts[2], ("k".into(), "v".into()));
    }

    #[test]
    fn default_section_and_hash_inside_value_kept() {
        let ini = parse("[DEFAULT]\na = 1 # not a comment\n[Init]\nb=\n");
        assert_eq!(ini.defaults, vec![("a".into(), "1 # not a comment".into())]);
        assert_eq!(ini.sections[0].1, vec![("b".into(), String::new())]);
    }

    #[test]
    fn option_outside_section_is_an_error() {
        assert!(IniFile::parse("a = 1\n", Path::new("t.conf")).is_err());
    }
}
