//! Where the CPU went during a measured phase: every process's user and
//! system time from Linux `/proc`, read when the phase starts and when it
//! ends, summed by process name (all Postgres backends are `postgres`). With
//! the server, Redis, Postgres and this load generator on one machine, this
//! says which of them saturates the cores. Where `/proc` cannot be read (not
//! Linux) there are no figures.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc` times (USER_HZ: 100 in Linux's ABI).
const TICKS_PER_S: f64 = 100.0;

/// CPU counters at one moment.
pub struct CpuSample {
    at: Instant,
    /// pid -> (name, user + system ticks).
    processes: HashMap<u32, (String, u64)>,
    /// The whole machine: (busy, total) ticks over all cores.
    machine: (u64, u64),
}

/// What a phase used.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// Busy share of all cores, percent.
    pub machine_busy_percent: f64,
    /// Percent of one core by process name, for names above 1%.
    pub by_process: BTreeMap<String, f64>,
}

/// Busy and total ticks of all cores, from `/proc/stat`'s first line
/// (user nice system idle iowait irq softirq steal).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let idle = cpu.get(3)? + cpu.get(4)?;
    let total = cpu.iter().take(8).sum::<u64>();
    Some((total - idle, total))
}

/// Name and user + system ticks from the text of `/proc/<pid>/stat`. The
/// name is in parentheses and may itself hold spaces or parentheses, so the
/// fields are counted from the last ')'.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After the name: state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime ...
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

impl CpuSample {
    /// Reads every process's counters; `None` where `/proc` cannot be read.
    pub fn take() -> Option<CpuSample> {
        let machine = machine_ticks()?;
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            // A process may end between the listing and the read: skip it.
            if let Some(p) = std::fs::read_to_string(entry.path().join("stat")).ok().as_deref().and_then(parse_stat) {
                processes.insert(pid, p);
            }
        }
        Some(CpuSample { at: Instant::now(), processes, machine })
    }

    /// What was used from `before` to this sample. A process that started in
    /// between counts from zero; one that ended in between is missing.
    pub fn since(&self, before: &CpuSample) -> CpuUse {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let mut ticks: BTreeMap<String, u64> = BTreeMap::new();
        for (pid, (name, now)) in &self.processes {
            // By pid only: a kernel worker's name changes with its work.
            let was = before.processes.get(pid).map_or(0, |(_, t)| *t);
            *ticks.entry(group(name).to_owned()).or_default() += now.saturating_sub(was);
        }
        let by_process = ticks
            .into_iter()
            .map(|(name, t)| (name, round1(t as f64 / TICKS_PER_S / secs * 100.0)))
            .filter(|(_, pct)| *pct >= 1.0)
            .collect();
        let busy = self.machine.0.saturating_sub(before.machine.0) as f64;
        let total = self.machine.1.saturating_sub(before.machine.1).max(1) as f64;
        CpuUse { machine_busy_percent: round1(busy / total * 100.0), by_process }
    }
}

/// The name a process is counted under: kernel workers (`kworker/1:0-events`,
/// whose suffix changes with their work) as one.
fn group(name: &str) -> &str {
    if name.starts_with("kworker/") { "kworker" } else { name }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// One line for humans: the processes by share, largest first.
pub fn describe(label: &str, cpu: &CpuUse) -> String {
    let mut by: Vec<(&String, &f64)> = cpu.by_process.iter().collect();
    by.sort_by(|a, b| b.1.total_cmp(a.1));
    let list: Vec<String> = by.iter().map(|(n, p)| format!("{n} {p:.0}%")).collect();
    format!(
        "{label} CPU (share of one core, from /proc): {}; all cores {:.0}% busy",
        list.join(", "),
        cpu.machine_busy_percent
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_user_plus_system_ticks() {
        let line = "4242 (redis-server) S 1 4242 4242 0 -1 4194560 1510 0 0 0 731 215 0 0 20 0 5 0 9999 0 0";
        assert_eq!(parse_stat(line), Some(("redis-server".to_owned(), 731 + 215)));
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_to_the_last_parenthesis() {
        let line = "7 (odd (name) x) R 1 7 7 0 -1 0 0 0 0 0 12 3 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(line), Some(("odd (name) x".to_owned(), 15)));
    }

    #[test]
    fn a_short_or_garbled_line_gives_nothing() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parentheses at all"), None);
        assert_eq!(parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3"), None);
    }

    #[test]
    fn shares_are_per_name_per_second_by_pid_and_count_new_processes_from_zero() {
        let t0 = Instant::now();
        let before = CpuSample {
            at: t0,
            processes: HashMap::from([
                (1, ("postgres".to_owned(), 100)),
                (2, ("postgres".to_owned(), 50)),
                (3, ("stockd".to_owned(), 10)),
                (9, ("gone".to_owned(), 500)),
                (6, ("kworker/0:1-events".to_owned(), 1000)),
                (7, ("kworker/u8:2-flush".to_owned(), 10)),
            ]),
            machine: (1000, 4000),
        };
        let after = CpuSample {
            at: t0 + std::time::Duration::from_secs(2),
            processes: HashMap::from([
                (1, ("postgres".to_owned(), 140)),
                (2, ("postgres".to_owned(), 90)),
                (3, ("stockd".to_owned(), 130)),
                (4, ("stockd-bench".to_owned(), 60)),
                (5, ("idle".to_owned(), 0)),
                (6, ("kworker/0:1-writeback".to_owned(), 1010)),
                (7, ("kworker/u8:2-events".to_owned(), 20)),
            ]),
            machine: (1300, 4400),
        };
        let used = after.since(&before);
        // postgres: (40 + 40) ticks over 2 s = 0.4 s/s; stockd 120 ticks = 0.6 s/s.
        assert_eq!(used.by_process.get("postgres"), Some(&40.0));
        assert_eq!(used.by_process.get("stockd"), Some(&60.0));
        assert_eq!(used.by_process.get("stockd-bench"), Some(&30.0));
        assert!(!used.by_process.contains_key("idle"), "under 1% is left out");
        assert!(!used.by_process.contains_key("gone"), "ended processes are missing");
        assert_eq!(used.by_process.get("kworker"), Some(&10.0), "renamed kernel workers by pid, as one");
        assert_eq!(used.machine_busy_percent, 75.0);
    }
}
