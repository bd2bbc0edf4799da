//! CPU time and memory from `/proc`.
//!
//! - A process's CPU time is `utime + stime` (fields 14 and 15 of
//!   `/proc/<pid>/stat`, in clock ticks; every thread included).
//! - Its memory is `VmRSS` (now) and `VmHWM` (the peak RSS since it started)
//!   from `/proc/<pid>/status`.
//! - The machine's busy time is what is not idle: online CPUs times the
//!   elapsed time, minus `idle` and `iowait` of `/proc/stat` (see
//!   [`MachineTicks`] for why not the sum of the busy columns).

use std::io;
use std::process::Command;
use std::time::Duration;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The calling process (`/proc/self`).
    Own,
    /// Another process.
    Pid(u32),
    /// One thread (task id) of the calling process.
    OwnThread(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Process::Own => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
            Process::OwnThread(tid) => format!("/proc/self/task/{tid}/{file}"),
        }
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux value on every
/// common architecture, when getconf is missing).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU time of a process (user + system, every thread), in clock ticks.
pub fn cpu_ticks(process: Process) -> io::Result<u64> {
    let stat = std::fs::read_to_string(process.path("stat"))?;
    parse_stat_ticks(&stat).ok_or_else(|| io::Error::other("unexpected /proc/<pid>/stat format"))
}

/// utime + stime from a `/proc/<pid>/stat` line, in clock ticks: the
/// daemons' own parser ([`hostpulse_ops::process::parse_stat`]) at one tick
/// per second and one byte per page, so its seconds are ticks.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    hostpulse_ops::process::parse_stat(stat, 1, 1).map(|u| u.cpu_seconds as u64)
}

/// A process's resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident set since the process started, in bytes.
    pub peak_rss_bytes: u64,
}

/// `VmRSS` and `VmHWM` of a process.
pub fn memory(process: Process) -> io::Result<Memory> {
    let status = std::fs::read_to_string(process.path("status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    match (kib("VmRSS:"), kib("VmHWM:")) {
        (Some(rss_bytes), Some(peak_rss_bytes)) => Ok(Memory {
            rss_bytes,
            peak_rss_bytes,
        }),
        _ => Err(io::Error::other("no VmRSS/VmHWM in /proc/<pid>/status")),
    }
}

/// The whole machine's idle time: busy cores over an interval are
/// `cpus - idle ticks / ticks per second / seconds`.
///
/// Busy time is derived from idle time because the kernel accounts idle time
/// exactly (tickless idle), while the `user` and `system` columns of
/// `/proc/stat` are sampled at each tick and miss work done in bursts shorter
/// than a tick, which is most of what an event-driven server does at low load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineTicks {
    /// Ticks spent idle or waiting for I/O, summed over every CPU.
    pub idle: u64,
    /// Online CPUs.
    pub cpus: u32,
}

impl MachineTicks {
    /// Average busy cores between `earlier` and `self`, `elapsed` apart.
    pub fn busy_cores_since(
        &self,
        earlier: &MachineTicks,
        ticks_per_second: u64,
        elapsed: Duration,
    ) -> f64 {
        let idle = cores(
            self.idle.saturating_sub(earlier.idle),
            ticks_per_second,
            elapsed,
        );
        (f64::from(self.cpus) - idle).max(0.0)
    }
}

/// Reads `/proc/stat`.
pub fn machine_ticks() -> io::Result<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    parse_machine_ticks(&stat).ok_or_else(|| io::Error::other("unexpected /proc/stat format"))
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait ...
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(MachineTicks {
        idle,
        cpus: u32::try_from(cpus).ok()?,
    })
}

/// CPU cores used on average: `ticks` over `elapsed`.
pub fn cores(ticks: u64, ticks_per_second: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 || ticks_per_second == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_second as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces() {
        let line = "4242 (tokio (runtime) x) S 1 2 3 4 5 6 7 8 9 10 1500 250 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(1750));
    }

    #[test]
    fn machine_busy_is_what_is_not_idle() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu1 1 2 3 4 5 6 7 8 9 10\nintr 1\n";
        let t = parse_machine_ticks(stat).unwrap();
        assert_eq!(
            t,
            MachineTicks {
                idle: 1020,
                cpus: 2
            }
        );
        let later = MachineTicks {
            idle: 1020 + 150,
            cpus: 2,
        };
        let busy = later.busy_cores_since(&t, 100, Duration::from_secs(1));
        assert!((busy - 0.5).abs() < 1e-9);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(memory(Process::Own).unwrap().peak_rss_bytes > 0);
        cpu_ticks(Process::Own).unwrap();
        assert!(machine_ticks().unwrap().cpus > 0);
    }
}
