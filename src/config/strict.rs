//! Files read as configuration are trusted like the daemon itself: whoever
//! can write one decides which addresses are banned (or never banned). So,
//! like sshd's StrictModes, a file that someone other than its owner may
//! write, or that root would read but does not own, is refused, and the
//! refusal says how to fix it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why `path` may not be read as configuration, with the command that fixes
/// it; `None` when it is safe. A file that cannot be inspected is left to
/// the read that follows, which reports it.
pub fn unsafe_reason(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let shown = path.display();
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "writable by {} (mode {mode:04o}): anyone who can write it decides whom \
             nftjail bans; fix with `chmod go-w {shown}`",
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    // Running as root, only root's files; otherwise root's or one's own.
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!(
            "owned by uid {}, not root: the daemon runs as root and must not read \
             another user's file as its configuration; fix with `chown root: {shown}`",
            meta.uid()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with_mode(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("f{mode:o}.toml"));
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn only_the_owner_may_write() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unsafe_reason(&file_with_mode(dir.path(), 0o644)), None);
        assert_eq!(unsafe_reason(&file_with_mode(dir.path(), 0o600)), None);
        let group = unsafe_reason(&file_with_mode(dir.path(), 0o664)).unwrap();
        assert!(
            group.contains("its group") && group.contains("chmod go-w"),
            "{group}"
        );
        let others = unsafe_reason(&file_with_mode(dir.path(), 0o646)).unwrap();
        assert!(
            others.contains("others") && others.contains("mode 0646"),
            "{others}"
        );
    }

    #[test]
    fn another_users_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), 0o644);
        // Root can give the file away; anyone else may read their own files.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let why = unsafe_reason(&path).unwrap();
            assert!(
                why.contains("uid 65534") && why.contains("chown root:"),
                "{why}"
            );
        } else {
            assert_eq!(unsafe_reason(&path), None, "one's own file is accepted");
        }
    }
}
