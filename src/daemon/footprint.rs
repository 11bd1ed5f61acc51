//! Gives back, once the daemon is ready, the memory only start-up needed.
//!
//! Start-up runs a lot of code once (argument parsing, TOML, SQLite's open
//! and schema, regex compilation) and the kernel maps the binary in large
//! folios, so after "ready" nearly all of the binary's text is resident
//! though the steady state runs a small part of it. The same goes for the
//! heap: compilation temporaries are freed but their pages stay.
//!
//! So, a second after ready (and after each reload): `malloc_trim` returns free heap
//! pages to the kernel, and `MADV_PAGEOUT` (Linux ≥ 5.4) drops the binary's
//! clean file-backed pages; whatever the daemon runs from then on is
//! faulted back from the page cache on first use (minor faults). Both are
//! advice: failure changes nothing but the footprint.

use std::fs;
use std::time::Duration;

/// How long after "ready" the start-up memory is given back: by then the
/// code that only runs once has run.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Trims the heap and pages out this executable's read-only mappings.
pub fn shed_startup_memory() {
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in own_readonly_mappings(&maps, &exe.to_string_lossy()) {
        // SAFETY: advice on mappings of our own executable that stay mapped;
        // MADV_PAGEOUT never changes their contents (clean file pages are
        // read back on the next touch).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}

/// The address ranges of `exe`'s mappings that are not writable: text and
/// read-only data, whose pages are clean and backed by the file.
fn own_readonly_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_read_only_mappings_of_the_executable() {
        let maps = "\
55cfa0a5d000-55cfa0c9f000 r--p 00000000 fe:00 5350454 /usr/sbin/nftjail
55cfa0c9f000-55cfa133f000 r-xp 00241000 fe:00 5350454 /usr/sbin/nftjail
55cfa139e000-55cfa13a4000 rw-p 0093e000 fe:00 5350454 /usr/sbin/nftjail
55cfbacc0000-55cfbaf53000 rw-p 00000000 00:00 0 [heap]
7f2d73728000-7f2d7387e000 r-xp 00028000 fe:00 12 /usr/lib/x86_64-linux-gnu/libc.so.6
7f2d73aee000-7f2d73af0000 r-xp 00000000 fe:00 13 /usr/sbin/nftjail-other
";
        assert_eq!(
            own_readonly_mappings(maps, "/usr/sbin/nftjail"),
            vec![
                (0x55cfa0a5d000, 0x55cfa0c9f000),
                (0x55cfa0c9f000, 0x55cfa133f000)
            ]
        );
    }
}
