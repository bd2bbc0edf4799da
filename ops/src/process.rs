//! This process's own CPU time, memory, threads and descriptors.
//!
//! Always read from the real `/proc/self`, never through the gatherer's
//! `--procfs`: that root is the host's, and inside a container
//! `/host/proc/self` does not name this process.

/// Figures of this process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors (`None` if /proc/self/fd is unreadable).
    pub open_fds: Option<u64>,
}

/// Reads this process's figures; `None` if /proc/self/stat is unreadable.
pub fn usage() -> Option<Usage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut usage = parse_stat(&stat, ticks_per_second(), page_size())?;
    usage.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    Some(usage)
}

fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str, ticks: u64, page: u64) -> Option<Usage> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": state is field 3; utime 14, stime 15, num_threads 20, rss 24.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = ticks.max(1) as f64;
    Some(Usage {
        cpu_seconds: (field(14)?.saturating_add(field(15)?)) as f64 / ticks,
        rss_bytes: field(24)?.saturating_mul(page),
        threads: field(20)?,
        open_fds: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_an_odd_command_name_parses() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let u = parse_stat(line, 100, 4096).unwrap();
        assert_eq!(u.cpu_seconds, 3.0);
        assert_eq!(u.threads, 3);
        assert_eq!(u.rss_bytes, 900 * 4096);
        assert!(parse_stat("garbage", 100, 4096).is_none());
        assert!(parse_stat("1 (x) S 1 2", 100, 4096).is_none());
    }

    #[test]
    fn this_process_is_measured() {
        let u = usage().unwrap();
        assert!(u.rss_bytes > 0 && u.threads >= 1);
        assert!(u.open_fds.unwrap() >= 3);
    }
}
