//! Scenario 5: farm mode. Two daemons in their own network namespaces and a
//! real `redis-server`, as `tests/cluster.rs` builds them: propagation
//! latency A → C over 1,000 bans and a 10,000-ban burst. The scenario is
//! that test's ignored `measure`, run in a release build, so the harness
//! and the tests share one way of building a farm.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::cargo::cargo_command;

pub fn farm_section(report: &mut String, root: &Path) -> Result<()> {
    let mut cmd = cargo_command(root);
    cmd.args([
        "test",
        "--release",
        "--test",
        "cluster",
        "measure",
        "--",
        "--ignored",
        "--nocapture",
    ]);
    eprintln!("+ {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("cannot run the farm measure")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the farm measure failed: {}\n{text}", out.status);
    }
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("MEASURE "))
        .collect();
    if lines.len() != 2 {
        bail!(
            "the farm measure printed {} result lines: {text}",
            lines.len()
        );
    }
    let _ = write!(
        report,
        "\n## 5. Farm: two nodes and a real redis-server, each node in its own network namespace\n\n\
         Decisive line appended to A's log (maxretry 1) → C's enforcer has the ban in C's kernel set \
         (its `from the farm` log line, written once the kernel accepted it). \
         Command: `cargo test --release --test cluster measure -- --ignored --nocapture`.\n\n\
         - {}\n- {}\n",
        lines[0], lines[1]
    );
    Ok(())
}
