//! The order of the daemon's code in the binary: the functions it runs to
//! start and while idle first, side by side, then the rest.
//!
//! The kernel maps a program's text in blocks around each page it faults
//! on, so the code a daemon touches at start and at rest, scattered over
//! the whole text, makes nearly all of it resident. Laid out together, it
//! keeps the resident part near the size of the code that runs.
//! `link/start-and-idle.order` lists those functions: the symbols of the
//! release binary holding an instruction that callgrind saw run while the
//! daemon started and idled with one jail. A name the build no longer has
//! is skipped, so a stale list costs memory, never correctness.
//!
//! The relative relocations of the position-independent binary are packed
//! (DT_RELR) where the C library can read them: the loader reads every
//! relocation at start, and packed they are a few KiB where a table of
//! them is hundreds, all resident.

fn main() {
    println!("cargo:rerun-if-changed=link/start-and-idle.order");
    println!("cargo:rerun-if-changed=build.rs");
    // Only where rustc links with its own lld (x86_64 Linux, its default):
    // GNU ld has no such option and would refuse the link.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!(
        "cargo:rustc-link-arg-bin=nftjail=-Wl,--symbol-ordering-file={dir}/link/start-and-idle.order"
    );
    println!("cargo:rustc-link-arg-bin=nftjail=-Wl,--no-warn-symbol-ordering");
    if glibc_reads_packed_relocations() {
        println!("cargo:rustc-link-arg-bin=nftjail=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C library the binary is built against (the build machine's,
/// as only a native build gets here) reads DT_RELR: glibc 2.36 and later.
/// An older one would ignore the packed table and start with its pointers
/// unrelocated, so anything unknown answers no.
// The build script asks the build machine; the daemon never forks.
#[allow(clippy::disallowed_methods)]
fn glibc_reads_packed_relocations() -> bool {
    if std::env::var("HOST").ok() != std::env::var("TARGET").ok() {
        return false;
    }
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
