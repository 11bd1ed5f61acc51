//! fail2ban's sample logs (`fail2ban/tests/files/logs`), read from the
//! system at test time, never copied into this repository.

use std::path::Path;

/// Every line of every sample log in `dir`, files in name order, without
/// fail2ban's `#` annotation lines: one stream, so each filter also sees
/// the other programs' lines it must turn away.
pub fn lines(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("the sample log directory reads")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut lines = Vec::new();
    for p in names {
        let bytes = std::fs::read(&p).expect("a sample log reads");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        lines.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    lines
}
