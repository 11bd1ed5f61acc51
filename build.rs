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
}
