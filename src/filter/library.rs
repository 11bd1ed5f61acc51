//! The built-in filter library: `config/filters/*.toml`, compiled into the
//! binary so a jail can name a filter on a machine with no filter files.

const LIBRARY: &[(&str, &str)] = &[
    (
        "postfix-sasl",
        include_str!("../../config/filters/postfix-sasl.toml"),
    ),
    ("sshd", include_str!("../../config/filters/sshd.toml")),
];

/// The TOML text of a built-in filter.
pub fn library(name: &str) -> Option<&'static str> {
    LIBRARY.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn library_names() -> Vec<&'static str> {
    LIBRARY.iter().map(|(n, _)| *n).collect()
}
