//! The built-in filter library: `config/filters/*.toml`, compiled into the
//! binary so a jail can name a filter on a machine with no filter files.
//! The binary and its filters are then one version: an upgrade cannot pair
//! a new daemon with stale filter files. An admin's `FILTER_DIR/NAME.toml`
//! (/etc/nftjail/filters) replaces a built-in filter of the same name; the
//! package's /usr/share/nftjail/filters is the library as shipped, to read
//! and copy from, and is never read by the daemon.

/// One list, so a name and its text cannot drift apart.
macro_rules! filters {
    ($($name:literal),* $(,)?) => {
        const NAMES: &[&str] = &[$($name),*];
        const TEXTS: &[&str] = &[$(include_str!(concat!("../../config/filters/", $name, ".toml"))),*];
    };
}

filters!(
    "apache-auth",
    "courier-auth",
    "cyrus-imap",
    "dovecot",
    "exim",
    "kopano-webapp",
    "nginx-http-auth",
    "postfix",
    "postfix-sasl",
    "recidive",
    "roundcube-auth",
    "sasl",
    "sogo-auth",
    "sshd",
    "sshd-aggressive",
    "zimbra-submission",
);

/// The TOML text of a built-in filter.
pub fn library(name: &str) -> Option<&'static str> {
    NAMES.iter().position(|n| *n == name).map(|i| TEXTS[i])
}

/// The names of the built-in filters, sorted.
pub fn library_names() -> &'static [&'static str] {
    NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_have_text() {
        assert!(NAMES.windows(2).all(|w| w[0] < w[1]));
        for name in library_names() {
            assert!(library(name).is_some_and(|t| t.contains("failregex")));
        }
        assert_eq!(library("nope"), None);
    }
}
