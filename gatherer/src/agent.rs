//! The gatherer's own health, reported as the `agent` table every cycle.
//!
//! Fields: `cycles_total` (cycles since the process started: a gap in it
//! downstream is a lost batch), `cycle_seconds` (wall time the last collection took), `rows` (rows
//! it produced), `families_failed` (families that failed in it),
//! `families_disabled` (families whose files are missing on this host),
//! `{family}_errors_total` for every selected family (failed cycles since
//! start), and the process's own `cpu_seconds_total` and `rss_bytes`.
//!
//! The process figures come from the gatherer's own `/proc/self/stat`, which
//! is deliberately not read through `--procfs`: that root is the host's, and
//! inside a container `/host/proc/self` does not name this process.

use std::path::Path;
use std::time::Duration;

use procfs::FromRead;

use crate::collect::Collectors;
use crate::row::Row;

/// Builds the `agent` row for a cycle.
pub fn row(ts: i64, cycle: Duration, rows: usize, failed: usize, collectors: &Collectors) -> Row {
    let mut row = Row::new("agent", ts);
    row.int("cycles_total", collectors.cycles());
    row.float("cycle_seconds", cycle.as_secs_f64());
    row.int("rows", rows as u64);
    row.int("families_failed", failed as u64);
    let mut disabled = 0;
    for status in collectors.status() {
        row.int(status.family.errors_field(), status.errors_total);
        disabled += u64::from(status.disabled);
    }
    row.int("families_disabled", disabled);
    if let Some(own) = own_usage(Path::new("/proc/self/stat")) {
        row.float("cpu_seconds_total", own.cpu_seconds);
        row.int("rss_bytes", own.rss_bytes);
    }
    row
}

/// CPU time and resident memory of this process.
struct OwnUsage {
    cpu_seconds: f64,
    rss_bytes: u64,
}

fn own_usage(stat: &Path) -> Option<OwnUsage> {
    let bytes = std::fs::read(stat).ok()?;
    let stat = procfs::process::Stat::from_read(bytes.as_slice()).ok()?;
    let ticks = procfs::ticks_per_second().max(1) as f64;
    Some(OwnUsage {
        cpu_seconds: (stat.utime.saturating_add(stat.stime)) as f64 / ticks,
        rss_bytes: stat.rss.saturating_mul(procfs::page_size()),
    })
}
