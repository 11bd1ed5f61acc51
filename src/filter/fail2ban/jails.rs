//! fail2ban's jail configuration, read as fail2ban reads it: `jail.conf`,
//! `jail.d/*.conf`, `jail.local`, `jail.d/*.local`, each with its
//! `[INCLUDES]` (Debian's `paths-debian.conf` and `paths-common.conf`,
//! which define `%(sshd_log)s` and the like), later files overriding
//! earlier ones key by key, `[DEFAULT]` under every jail and `%(name)s`
//! interpolated in the jail's context. The same [`ConfigSet`] reads filter
//! files, so both follow one set of configparser rules.
//!
//! This is the reading half of `nftjail import-fail2ban`; what each option
//! becomes in nftjail's config is the command's business.

use std::path::{Path, PathBuf};

use super::config::{ConfigSet, Options};
use super::error::Fail2banError;
use super::ini::IniFile;

/// What `%(fail2ban_version)s` stands for: the version Debian 12 ships,
/// whose jail.conf this reader is tested against.
const VERSION: &str = "1.0.2";

/// All jail sections of one fail2ban configuration directory.
#[derive(Debug)]
pub struct JailConfig {
    set: ConfigSet,
    dir: PathBuf,
}

impl JailConfig {
    /// Reads `dir` (usually `/etc/fail2ban`).
    pub fn read(dir: &Path) -> Result<JailConfig, Fail2banError> {
        let conf = dir.join("jail.conf");
        if !conf.is_file() && !dir.join("jail.local").is_file() {
            let source = if dir.is_dir() {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no jail.conf nor jail.local there: is this fail2ban's directory?",
                )
            } else {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory")
            };
            return Err(Fail2banError::Read { path: conf, source });
        }
        let set = ConfigSet::read(&dir.join("jail"))?;
        Ok(JailConfig {
            set,
            dir: dir.to_path_buf(),
        })
    }

    /// The files read, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.set.files
    }

    /// Jail names in the order they first appear (`[INCLUDES]` is none).
    pub fn jail_names(&self) -> Vec<String> {
        self.set
            .section_names()
            .filter(|n| *n != "INCLUDES" && !n.starts_with("KNOWN/"))
            .map(str::to_string)
            .collect()
    }

    /// What `%(__name__)s`, `%(fail2ban_version)s` and
    /// `%(fail2ban_confpath)s` stand for in jail `name`.
    fn vars(&self, name: &str) -> Options {
        vec![
            ("__name__".to_string(), name.to_string()),
            ("fail2ban_version".to_string(), VERSION.to_string()),
            (
                "fail2ban_confpath".to_string(),
                self.dir.display().to_string(),
            ),
        ]
    }

    /// The value of `key` in jail `name` (its own, else `[DEFAULT]`'s),
    /// interpolated; `None` when neither sets it.
    pub fn get(&self, name: &str, key: &str) -> Result<Option<String>, Fail2banError> {
        self.set.get(name, key, &self.vars(name))
    }

    /// The value as written, before interpolation.
    pub fn raw(&self, name: &str, key: &str) -> Option<String> {
        let vars = Vec::new();
        self.set
            .raw(name, &key.to_lowercase(), &vars)
            .map(str::to_string)
    }

    /// Option names the jail's own section sets (not `[DEFAULT]`'s).
    pub fn own_options(&self, name: &str) -> Vec<String> {
        self.set.own_options(name)
    }

    /// The last file that writes a `[name]` section: where an admin would
    /// look first when a jail is wrong.
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        self.set
            .files
            .iter()
            .rev()
            .find(|f| {
                std::fs::read_to_string(f)
                    .ok()
                    .and_then(|t| IniFile::parse(&t, f).ok())
                    .is_some_and(|ini| ini.sections.iter().any(|(n, _)| n == name))
            })
            .cloned()
    }
}

impl JailConfig {
    /// The options of fail2ban action `name` (`action.d/NAME.conf`, its
    /// `.local` and `.d/` files) as fail2ban starts from them: `[Init]`
    /// over `[Definition]`, interpolated; a jail's `name[k=v]` overrides
    /// them. `None` when no such action file exists.
    pub fn action_options(&self, name: &str) -> Result<Option<Options>, Fail2banError> {
        if name.contains('/') || name.contains("..") {
            return Ok(None);
        }
        let set = match ConfigSet::read(&self.dir.join("action.d").join(name)) {
            Ok(set) => set,
            Err(Fail2banError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out: Options = Vec::new();
        for section in ["Definition", "Init"] {
            for key in set.own_options(section) {
                // A value fail2ban could not interpolate either (a shell
                // line with a stray `%`) is of no use to an import: skipped.
                if let Ok(Some(v)) = set.get(section, &key, &Vec::new()) {
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = v,
                        None => out.push((key, v)),
                    }
                }
            }
        }
        Ok(Some(out))
    }
}

/// fail2ban's boolean words (`true`, `yes`, `on`, `1` and their opposites).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "enabled" => Some(true),
        "false" | "no" | "off" | "0" | "disabled" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_overrides_conf_and_default_interpolates_in_the_jail() {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(d.path().join(name), text).unwrap();
        std::fs::create_dir(d.path().join("jail.d")).unwrap();
        w("paths.conf", "[DEFAULT]\nsvc_log = /var/log/svc.log\n");
        w(
            "jail.conf",
            "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\nmode = normal\n\
             filter = %(__name__)s[mode=%(mode)s]\nmaxretry = 5\n\
             [svc]\nlogpath = %(svc_log)s\n[other]\nport = 1\n",
        );
        w("jail.d/a.conf", "[svc]\nenabled = true\n");
        w("jail.local", "[svc]\nmode = extra\nmaxretry = 3\n");
        let c = JailConfig::read(d.path()).unwrap();
        assert_eq!(c.jail_names(), ["svc", "other"]);
        let get = |k: &str| c.get("svc", k).unwrap();
        assert_eq!(get("filter").as_deref(), Some("svc[mode=extra]"));
        assert_eq!(get("logpath").as_deref(), Some("/var/log/svc.log"));
        assert_eq!(get("maxretry").as_deref(), Some("3"));
        assert_eq!(get("enabled").as_deref(), Some("true"));
        assert_eq!(c.get("other", "enabled").unwrap(), None);
        assert_eq!(c.file_of("svc"), Some(d.path().join("jail.local")));
        assert_eq!(c.raw("svc", "logpath").as_deref(), Some("%(svc_log)s"));
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = JailConfig::read(Path::new("/nonexistent/f2b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/f2b/jail.conf"), "{e}");
        assert!(e.contains("no such directory"), "{e}");
    }

    #[test]
    fn action_options_are_init_over_definition_with_local_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("action.d")).unwrap();
        std::fs::write(d.path().join("jail.local"), "[x]\nenabled = true\n").unwrap();
        std::fs::write(
            d.path().join("action.d/ufw.conf"),
            "[Definition]\nactionban = ufw <add>\n[Init]\nadd = prepend\nblocktype = reject\napplication =\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("action.d/ufw.local"),
            "[Init]\napplication = zimbra-submission\n",
        )
        .unwrap();
        let c = JailConfig::read(d.path()).unwrap();
        let o = c.action_options("ufw").unwrap().unwrap();
        let get = |k: &str| o.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("application"), Some("zimbra-submission"));
        assert_eq!(get("add"), Some("prepend"));
        assert_eq!(get("actionban"), Some("ufw <add>"));
        assert!(c.action_options("nope").unwrap().is_none());
        assert!(c.action_options("../jail").unwrap().is_none());
    }
}
