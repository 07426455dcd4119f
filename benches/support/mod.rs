//! What several benchmarks share. Included with `mod support;` (cargo builds only
//! `benches/*.rs` as benchmarks, so this file is not one).

#![allow(dead_code)] // each benchmark uses a part

use std::collections::BTreeMap;

/// CPU seconds used so far by each thread of this process, summed by thread name (from
/// `/proc/self/task/*/stat`, 10 ms resolution). Shows where the work goes (API server thread,
/// committer, HTTP workers, clients) independently of how busy the machine is.
pub fn thread_cpu() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, secs)) = stat_cpu(&stat) {
            *out.entry(name.to_string()).or_insert(0.0) += secs;
        }
    }
    out
}

/// CPU seconds used so far by another process (e.g. an etcd server the benchmark started),
/// from `/proc/<pid>/stat`; 0 if it cannot be read.
pub fn pid_cpu(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu(&stat).map(|(_, secs)| secs))
        .unwrap_or(0.0)
}

/// The name and the CPU seconds (user + system) of a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> Option<(&str, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // "<tid> (<comm>) <state> …": the name may hold spaces and parentheses; utime and stime
    // are the 12th and 13th fields after the last ')'.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    if f.len() <= 12 {
        return None;
    }
    let secs = (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / ticks;
    Some((&stat[open + 1..close], secs))
}

/// CPU seconds per thread name used between two [`thread_cpu`] readings (threads that ended
/// in between are missing from `after` and so are left out).
pub fn cpu_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(name, secs)| {
            (
                name.clone(),
                secs - before.get(name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, secs)| *secs > 0.0)
        .collect()
}
