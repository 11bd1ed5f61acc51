#![allow(clippy::unwrap_used, clippy::expect_used)]
//! fail2ban filter files compiled into the matcher ([`Fail2banFilter::fold`],
//! as a daemon route runs them) find exactly what fail2ban's sequential
//! engine finds: every filter that folds, on fail2ban's own sample logs
//! (all of them, one stream), alone and all together, and on those lines
//! again with the host each failure named swapped for hosts of every kind
//! (a name, a bad address, IPv4-mapped IPv6, IPv6).
//!
//! fail2ban's filters and logs come from the Debian `fail2ban` package, or
//! from the fail2ban source tree `NFTJAIL_F2B_TREE` names; skipped, loudly,
//! without either.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use nftjail::filter::fail2ban::{Fail2banFilter, Fail2banFilters, Fail2banMatch, FoldedJudge};
use nftjail::filter::Filter;
use nftjail::matcher::Matcher;

fn dirs() -> Option<(PathBuf, PathBuf)> {
    let (filters, logs) = match std::env::var_os("NFTJAIL_F2B_TREE") {
        Some(tree) => {
            let tree = PathBuf::from(tree);
            (
                tree.join("config/filter.d"),
                tree.join("fail2ban/tests/files/logs"),
            )
        }
        None => (
            PathBuf::from("/etc/fail2ban/filter.d"),
            PathBuf::from("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs"),
        ),
    };
    (filters.is_dir() && logs.is_dir()).then_some((filters, logs))
}

fn fold(filters: Vec<Filter>) -> Option<Box<dyn FoldedJudge>> {
    let jails = filters.into_iter().map(Arc::new).enumerate().collect();
    Some(Box::new(Matcher::new(jails)))
}

type Seen = (usize, usize, Fail2banMatch);

/// Every failure `filters` find in `lines`, by line.
fn run(mut filters: Fail2banFilters<usize>, lines: &[String]) -> Vec<Seen> {
    let now = UNIX_EPOCH + Duration::from_secs(1_124_013_600);
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let mut this: Vec<Seen> = Vec::new();
        filters.scan(line, now, |k, m| this.push((n, k, m)));
        // The folded filters report after the others: the order within a
        // line is not what is compared.
        this.sort_by_key(|s| s.1);
        out.extend(this);
    }
    out
}

/// The lines again with the host of each failure found in them swapped
/// for another of each kind.
fn with_other_hosts(lines: &[String], found: &[Seen]) -> Vec<String> {
    let hosts = [
        "mail.example.com",
        "999.1.2.3",
        "::ffff:192.0.2.77",
        "2001:db8::77",
        "192.0.2.78",
        "[192.0.2.79]",
        "",
    ];
    let mut out = Vec::new();
    for (n, _, m) in found {
        let Some(host) = m.host.as_deref().filter(|h| !h.is_empty()) else {
            continue;
        };
        for other in hosts {
            out.push(lines[*n].replacen(host, other, 1));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn assert_same(what: &str, lines: &[String], engine: &[Seen], folded: &[Seen]) {
    for (a, b) in engine.iter().zip(folded) {
        assert_eq!(a, b, "{what}: line {:?}", lines[a.0]);
    }
    assert_eq!(engine.len(), folded.len(), "{what}: number of failures");
}

#[test]
fn folded_filters_find_what_the_engine_finds() {
    let Some((filter_dir, log_dir)) = dirs() else {
        eprintln!("SKIPPED: fail2ban's filters or sample logs are not installed");
        return;
    };
    let lines = common::samples::lines(&log_dir);
    assert!(lines.len() > 1000, "{}", lines.len());
    let mut names: Vec<String> = std::fs::read_dir(&filter_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".conf")?.to_string())
        })
        .collect();
    names.sort();
    // Modes choose other regexes (and prefregexes) of the same file.
    names.extend(
        [
            "postfix[mode=normal]",
            "postfix[mode=auth]",
            "postfix[mode=aggressive]",
            "postfix[mode=ddos]",
            "postfix[mode=rbl]",
            "sshd[mode=aggressive]",
        ]
        .map(str::to_string),
    );
    let load = |name: &str| Fail2banFilter::load(name, &filter_dir).ok();
    let mut folds = Vec::new();
    let mut stays = Vec::new();
    for name in &names {
        let Some(f) = load(name) else { continue };
        match f.fold() {
            Ok(_) => folds.push(name.clone()),
            Err(why) => stays.push(format!("{name}: {why}")),
        }
    }
    eprintln!(
        "compiled into the matcher ({}): {}",
        folds.len(),
        folds.join(" ")
    );
    eprintln!(
        "on fail2ban's engine ({}):\n  {}",
        stays.len(),
        stays.join("\n  ")
    );
    // Most stock filters are of one line, without a prefregex.
    assert!(folds.len() > stays.len(), "{} fold", folds.len());

    let build = |names: &[String], folded: bool| {
        let filters = names
            .iter()
            .enumerate()
            .map(|(k, n)| (k, load(n).unwrap()))
            .collect();
        let mut fold = fold;
        if folded {
            let built = Fail2banFilters::with_fold(filters, &mut fold);
            assert_eq!(built.folded_count(), names.len());
            built
        } else {
            Fail2banFilters::new(filters)
        }
    };
    let mut hits = 0;
    let mut filters_hit = 0;
    for name in &folds {
        let one = std::slice::from_ref(name);
        let engine = run(build(one, false), &lines);
        let folded = run(build(one, true), &lines);
        assert_same(name, &lines, &engine, &folded);
        hits += engine.len();
        filters_hit += usize::from(!engine.is_empty());
        let other = with_other_hosts(&lines, &engine);
        let engine = run(build(one, false), &other);
        let folded = run(build(one, true), &other);
        assert_same(&format!("{name}, other hosts"), &other, &engine, &folded);
    }
    // Their sample logs hold failures for nearly all of them.
    assert!(
        filters_hit * 10 >= folds.len() * 8,
        "{filters_hit} of {}",
        folds.len()
    );
    assert!(hits > 150, "{hits}");
    // All of them in one route, folded or not, as a daemon runs them.
    let all: Vec<String> = names
        .iter()
        .filter(|n| load(n).is_some())
        .cloned()
        .collect();
    let engine = run(build(&all, false), &lines);
    let mixed = {
        let filters = all
            .iter()
            .enumerate()
            .map(|(k, n)| (k, load(n).unwrap()))
            .collect();
        let mut fold = fold;
        let built = Fail2banFilters::with_fold(filters, &mut fold);
        assert_eq!(built.folded_count(), folds.len());
        run(built, &lines)
    };
    assert_same("all together", &lines, &engine, &mixed);
}
