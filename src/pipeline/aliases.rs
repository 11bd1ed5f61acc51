//! One file, one count per jail. A jail may reach a file through two of its
//! logpaths: `["mail.log", "*.log"]`, two globs that both match, a glob
//! matching a symlink to a file it names. Each source is read on its own,
//! so without care each line would count twice for that jail, and it would
//! ban at half its maxretry. The config check refuses two plain paths to
//! one file; a glob's matches are only known while running, so here, when
//! a glob starts reading a file, the jails that already read that file
//! through another of their logpaths (a plain path, or a glob listed
//! before this one) are left out of what it counts. Files are told apart
//! by device and inode, as the readers know them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::sources::is_glob;
use crate::message::JailId;

/// For one glob source: per jail reading it (id and name), the jail's
/// logpaths that come first (its plain paths, and the globs listed before
/// this one).
pub(super) type Claims = Vec<(JailId, Arc<str>, Vec<PathBuf>)>;

/// The jails of `claims` that already read `file` through another
/// logpath, by id and name.
pub(super) fn read_elsewhere(claims: &Claims, file: &Path) -> Vec<(JailId, Arc<str>)> {
    let Some(id) = identity(file) else {
        return Vec::new();
    };
    claims
        .iter()
        .filter(|(_, _, paths)| paths.iter().any(|p| names(p, id)))
        .map(|(jail, name, _)| (*jail, Arc::clone(name)))
        .collect()
}

/// The logpaths of `jail_paths` that come before `glob` and so claim the
/// files they name: every plain path, and the globs listed earlier.
pub(super) fn before(jail_paths: &[PathBuf], glob: &Path) -> Vec<PathBuf> {
    let at = jail_paths
        .iter()
        .position(|p| p == glob)
        .unwrap_or(jail_paths.len());
    jail_paths
        .iter()
        .enumerate()
        .filter(|(i, p)| !is_glob(p) || *i < at)
        .filter(|(_, p)| p.as_path() != glob)
        .map(|(_, p)| p.clone())
        .collect()
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| (m.dev(), m.ino()))
}

/// Whether logpath `p` (a plain path or a glob) names the file `id`.
fn names(p: &Path, id: (u64, u64)) -> bool {
    if !is_glob(p) {
        return identity(p) == Some(id);
    }
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return false;
    };
    let Ok(pattern) = glob::Pattern::new(&name.to_string_lossy()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_str().is_some_and(|n| pattern.matches(n))
            && identity(&e.path()) == Some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_left_to_the_logpath_that_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("mail.log"), "").unwrap();
        std::fs::write(d.join("other.log"), "").unwrap();
        std::os::unix::fs::symlink("other.log", d.join("x-alias.txt")).unwrap();
        let glob = d.join("*.log");
        let paths = vec![d.join("mail.log"), glob.clone(), d.join("x-*.txt")];
        assert_eq!(before(&paths, &glob), [d.join("mail.log")]);
        let ids = |v: Vec<(JailId, Arc<str>)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        let claims: Claims = vec![
            (0, "j".into(), before(&paths, &glob)),
            (1, "k".into(), Vec::new()),
        ];
        assert_eq!(ids(read_elsewhere(&claims, &d.join("mail.log"))), [0]);
        assert!(read_elsewhere(&claims, &d.join("other.log")).is_empty());
        // The later glob defers to the earlier one, also through a symlink.
        let later = d.join("x-*.txt");
        let claims: Claims = vec![(0, "j".into(), before(&paths, &later))];
        assert_eq!(ids(read_elsewhere(&claims, &d.join("x-alias.txt"))), [0]);
    }
}
