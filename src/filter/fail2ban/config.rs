//! The merged view of a filter's files: `NAME.conf`, `NAME.conf.d/*.conf`,
//! `NAME.local`, `NAME.conf.d/*.local`, each preceded by its `[INCLUDES]
//! before` files and followed by its `after` files, later files overriding
//! earlier ones key by key. fail2ban keeps the overridden values in a
//! `KNOWN/<section>` shadow so that a `.local` can extend the stock regexes
//! with `%(known/failregex)s`; we do the same.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::Fail2banError;
use super::ini::IniFile;

/// Python's configparser refuses deeper `%(...)s` chains; so do we, which
/// also ends any cycle with an error naming the key.
const MAX_INTERPOLATION_DEPTH: usize = 10;
/// Include chains deeper than this are a loop the path check missed.
const MAX_INCLUDE_DEPTH: usize = 16;

pub type Options = Vec<(String, String)>;

#[derive(Debug, Default)]
pub struct ConfigSet {
    defaults: Options,
    sections: HashMap<String, Options>,
    /// Section names in the order they first appeared (jails are listed
    /// in the order an admin wrote them).
    order: Vec<String>,
    /// Files read, in reading order; for messages and tests.
    pub files: Vec<PathBuf>,
}

fn set(options: &mut Options, key: &str, value: &str) {
    match options.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => options.push((key.to_string(), value.to_string())),
    }
}

fn lookup<'a>(options: &'a Options, key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl ConfigSet {
    /// Reads the files of one filter whose stem path is `base` (without
    /// `.conf`).
    pub fn read(base: &Path) -> Result<ConfigSet, Fail2banError> {
        let mut candidates = vec![with_suffix(base, ".conf")];
        let dir = with_suffix(base, ".d");
        candidates.extend(sorted_glob(&dir, "conf"));
        candidates.push(with_suffix(base, ".local"));
        candidates.extend(sorted_glob(&dir, "local"));
        let existing: Vec<PathBuf> = candidates.into_iter().filter(|p| p.is_file()).collect();
        if existing.is_empty() {
            return Err(Fail2banError::NotFound {
                path: with_suffix(base, ".conf"),
            });
        }
        let mut order = Vec::new();
        includes(&existing, &mut Vec::new(), &mut order, 0)?;
        let mut set = ConfigSet::default();
        for file in order {
            let ini = parse_file(&file)?;
            set.merge(ini);
            set.files.push(file);
        }
        Ok(set)
    }

    fn merge(&mut self, ini: IniFile) {
        for (k, v) in &ini.defaults {
            set(&mut self.defaults, k, v);
        }
        for (name, options) in ini.sections {
            // `[Init?family=inet6]`: options that apply only under a
            // condition are kept under `key?cond` names, which plain
            // lookups never hit.
            let (name, options) = match conditional(&name) {
                Some((base, cond)) => (
                    base.to_string(),
                    options
                        .into_iter()
                        .map(|(k, v)| (format!("{k}{cond}"), v))
                        .collect(),
                ),
                None => (name, options),
            };
            if let Some(existing) = self.sections.get(&name) {
                let known: Options = existing
                    .iter()
                    .filter(|(k, _)| lookup(&options, k).is_some())
                    .cloned()
                    .collect();
                let shadow = self.sections.entry(format!("KNOWN/{name}")).or_default();
                for (k, v) in &known {
                    set(shadow, k, v);
                }
            }
            if !self.order.contains(&name) {
                self.order.push(name.clone());
            }
            let target = self.sections.entry(name).or_default();
            for (k, v) in &options {
                set(target, k, v);
            }
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// Section names in first-appearance order, without `[DEFAULT]`
    /// and the `KNOWN/` shadows.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// A section's own option names, without `[DEFAULT]`'s.
    pub fn own_options(&self, section: &str) -> Vec<String> {
        self.sections
            .get(section)
            .map(|o| o.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// The raw value as configparser's chain sees it: `vars`, then the
    /// section, then `[DEFAULT]`.
    pub fn raw<'a>(&'a self, section: &str, key: &str, vars: &'a Options) -> Option<&'a str> {
        lookup(vars, key)
            .or_else(|| self.sections.get(section).and_then(|o| lookup(o, key)))
            .or_else(|| lookup(&self.defaults, key))
    }

    /// `section/key` references (`%(known/failregex)s`, `%(default/x)s`,
    /// `%(Definition/x)s`) resolved the way fail2ban's parser maps them.
    fn section_ref(&self, section: &str, name: &str) -> Option<&str> {
        let (sec, key) = name.split_once('/')?;
        let from_defaults = || lookup(&self.defaults, key);
        match sec.to_lowercase().as_str() {
            "default" => from_defaults(),
            "known" => self
                .sections
                .get(&format!("KNOWN/{section}"))
                .and_then(|o| lookup(o, key))
                .or_else(from_defaults),
            _ => self.sections.get(sec).and_then(|o| lookup(o, key)),
        }
    }

    /// The value of `key` in `section` with `%(name)s` interpolated, or
    /// `None` if the key is not there.
    pub fn get(
        &self,
        section: &str,
        key: &str,
        vars: &Options,
    ) -> Result<Option<String>, Fail2banError> {
        let key = key.to_lowercase();
        let Some(raw) = self.raw(section, &key, vars) else {
            return Ok(None);
        };
        let mut out = String::new();
        self.interpolate(section, &key, raw, vars, 1, &mut out)?;
        Ok(Some(out))
    }

    /// `get` extended by fail2ban's `sec/opt` names: `known/x` looks in the
    /// shadow of overridden values first, `default/x` in `[DEFAULT]`. A
    /// named section that exists answers as configparser does, with
    /// `[DEFAULT]` behind its own options, interpolated in that section
    /// (`<lt_file/failregex>` is `[DEFAULT]`'s `failregex` with
    /// `[lt_file]`'s `__prefix_line`).
    pub fn get_ex(
        &self,
        section: &str,
        key: &str,
        vars: &Options,
    ) -> Result<Option<String>, Fail2banError> {
        if let Some((sec, opt)) = key.split_once('/') {
            let tries: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".to_string()],
                _ => vec![sec.to_string()],
            };
            for sec in tries {
                if sec == "DEFAULT" || self.sections.contains_key(&sec) {
                    let opt = opt.to_lowercase();
                    let found = if sec == "DEFAULT" {
                        lookup(&self.defaults, &opt)
                    } else {
                        self.sections
                            .get(&sec)
                            .and_then(|o| lookup(o, &opt))
                            .or_else(|| lookup(&self.defaults, &opt))
                    };
                    if let Some(raw) = found {
                        let mut out = String::new();
                        self.interpolate(&sec, &opt, raw, &Vec::new(), 1, &mut out)?;
                        return Ok(Some(out));
                    }
                }
            }
        }
        self.get(section, key, vars)
    }

    fn interpolate(
        &self,
        section: &str,
        key: &str,
        raw: &str,
        vars: &Options,
        depth: usize,
        out: &mut String,
    ) -> Result<(), Fail2banError> {
        let error = |message: String| Fail2banError::Interpolation {
            section: section.to_string(),
            key: key.to_string(),
            message,
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(error(format!(
                "%(...)s references nest deeper than {MAX_INTERPOLATION_DEPTH} (a cycle?)"
            )));
        }
        let mut rest = raw;
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            rest = &rest[pos..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("%(") {
                let close = after
                    .find(")s")
                    .ok_or_else(|| error(format!("bad interpolation at {rest:?}")))?;
                let name = after[..close].to_lowercase();
                rest = &after[close + 2..];
                let value = self
                    .raw(section, &name, vars)
                    .or_else(|| self.section_ref(section, &name))
                    .ok_or_else(|| error(format!("%({name})s is not defined")))?;
                self.interpolate(section, key, value, vars, depth + 1, out)
                    .map_err(|e| match e {
                        Fail2banError::Interpolation { message, .. } => error(message),
                        other => other,
                    })?;
            } else {
                return Err(error(format!(
                    "'%' must be followed by '%' or '(', found {rest:?}"
                )));
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sorted_glob(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn conditional(name: &str) -> Option<(&str, &str)> {
    let q = name.find('?')?;
    let base = &name[..q];
    (!base.is_empty()
        && base.chars().all(|c| c.is_alphanumeric() || c == '_')
        && q + 1 < name.len())
    .then(|| (base, &name[q..]))
}

fn parse_file(path: &Path) -> Result<IniFile, Fail2banError> {
    let text = std::fs::read_to_string(path).map_err(|source| Fail2banError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    IniFile::parse(&text, path)
}

/// Appends `files` and everything they include to `order`, in fail2ban's
/// order: before-files, the file, its `.local` (unless listed already),
/// after-files.
fn includes(
    files: &[PathBuf],
    seen: &mut Vec<PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), Fail2banError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(Fail2banError::Syntax {
            path: files.first().cloned().unwrap_or_default(),
            line: 0,
            message: "includes nest too deep".into(),
        });
    }
    let mut expanded = Vec::new();
    for file in files {
        expanded.push(file.clone());
        let local = file.with_extension("local");
        if !files.contains(&local) && local.is_file() {
            expanded.push(local);
        }
    }
    for resource in expanded {
        if !resource.is_file() {
            continue;
        }
        let ini = parse_file(&resource)?;
        let dir = resource.parent().map(Path::to_path_buf).unwrap_or_default();
        let list = |which: &str| -> Vec<PathBuf> {
            ini.sections
                .iter()
                .filter(|(n, _)| n == "INCLUDES")
                .flat_map(|(_, o)| lookup(o, which).map(str::to_string))
                .flat_map(|v| {
                    v.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| dir.join(l.trim()))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        seen.push(resource.clone());
        for before in list("before") {
            if !seen.contains(&before) {
                includes(&[before], seen, order, depth + 1)?;
            }
        }
        order.push(resource.clone());
        for after in list("after") {
            if !seen.contains(&after) {
                includes(&[after], seen, order, depth + 1)?;
            }
        }
        seen.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn includes_local_override_and_known() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "common.conf", "[DEFAULT]\npre = P\n");
        write(
            d.path(),
            "f.conf",
            "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = %(pre)s-a\n",
        );
        write(
            d.path(),
            "f.local",
            "[Definition]\nfailregex = %(known/failregex)s\n            b\n",
        );
        let set = ConfigSet::read(&d.path().join("f")).unwrap();
        let v = set.get("Definition", "failregex", &Vec::new()).unwrap();
        assert_eq!(v.as_deref(), Some("P-a\nb"));
    }

    #[test]
    fn named_section_falls_back_to_default() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "f.conf",
            "[DEFAULT]\nre = %(pre)s-x\npre = D\n[lt_a]\npre = A\n[Definition]\nre = y\n",
        );
        let set = ConfigSet::read(&d.path().join("f")).unwrap();
        let get = |k: &str| set.get_ex("Definition", k, &Vec::new()).unwrap();
        assert_eq!(get("lt_a/re").as_deref(), Some("A-x"));
        assert_eq!(get("lt_a/pre").as_deref(), Some("A"));
        // A section that does not exist: the key as a plain name.
        assert_eq!(get("lt_b/re"), None);
        assert_eq!(get("re").as_deref(), Some("y"));
    }

    #[test]
    fn cycle_names_the_key() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "f.conf", "[Definition]\na = %(b)s\nb = %(a)s\n");
        let set = ConfigSet::read(&d.path().join("f")).unwrap();
        let e = set.get("Definition", "a", &Vec::new()).unwrap_err();
        assert!(e.to_string().contains("] a:"), "{e}");
    }

    #[test]
    fn vars_win_over_section() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "f.conf",
            "[Definition]\nmode = normal\nx = m=%(mode)s\n",
        );
        let set = ConfigSet::read(&d.path().join("f")).unwrap();
        let vars = vec![("mode".to_string(), "aggressive".to_string())];
        assert_eq!(
            set.get("Definition", "x", &vars).unwrap().as_deref(),
            Some("m=aggressive")
        );
    }
}
