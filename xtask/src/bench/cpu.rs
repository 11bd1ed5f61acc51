//! CPU time as /proc counts it, for the scenarios that report what their
//! runs cost beside how long they took.

/// Clock ticks per second of /proc's times (USER_HZ).
fn ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Fields of /proc/PID/stat after the command name, from field 3 on.
fn stat_fields(pid: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    text.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds process `pid`'s running threads have spent, to the
/// nanosecond (the scheduler's own count, `/proc/PID/task/*/schedstat`):
/// clock ticks are too coarse for runs of a tenth of a second.
pub(super) fn threads_cpu(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// User and system CPU seconds of process `pid`, all its threads.
pub(super) fn process_cpu(pid: u32) -> f64 {
    let f = stat_fields(&pid.to_string());
    // utime and stime: fields 14 and 15.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / ticks()
}

/// CPU seconds of this process's waited-for children so far.
pub(super) fn children_cpu() -> f64 {
    let f = stat_fields("self");
    // cutime and cstime: fields 16 and 17.
    (f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)) as f64 / ticks()
}
