//! The gatherer's own health, reported as the `hostpulse_self` table every cycle.
//!
//! Fields: `cycles_total` (cycles since the process started: a gap in it
//! downstream is a lost batch), `cycle_seconds` (wall time the last collection took), `rows` (rows
//! it produced), `families_failed` (families that failed in it),
//! `families_disabled` (families whose files are missing on this host),
//! `{family}_errors_total` for every selected family (failed cycles since
//! start), the process's own `cpu_seconds_total` and `rss_bytes`, and
//! delivery figures from [`crate::metrics`]: `samples_collected_total`,
//! `samples_sent_total`, `batches_sent_total`, `batches_acked_total`,
//! `batches_buffered`, `buffer_bytes`, `batches_dropped_total`,
//! `reconnects_total`, `connected`, `ack_seconds_total`. Tag `component` is
//! `gatherer` (the reporter writes `reporter` rows into the same table).
//!
//! A row reports the delivery figures as they were when its cycle ended: the
//! batch carrying it is not yet acknowledged, so it counts in
//! `batches_buffered` of the next row, not its own.
//!
//! The process figures come from the gatherer's own `/proc/self/stat`, which
//! is deliberately not read through `--procfs`: that root is the host's, and
//! inside a container `/host/proc/self` does not name this process.

use std::time::Duration;

use procfs::FromRead;

use crate::collect::Collectors;
use crate::collect::source::KernelFile;
use crate::row::Row;

/// Builds the `hostpulse_self` row for a cycle.
pub fn row(
    ts: i64,
    cycle: Duration,
    rows: usize,
    failed: usize,
    collectors: &mut Collectors,
) -> Row {
    let own = collectors.own_stat().read();
    let mut row = Row::new("hostpulse_self", ts).tag("component", "gatherer");
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
    if let Some(own) = own {
        row.float("cpu_seconds_total", own.cpu_seconds);
        row.int("rss_bytes", own.rss_bytes);
    }
    // Delivery: what the buffer holds and how the stream fares (all zero in
    // serverless mode but samples_sent_total).
    let m = crate::metrics::metrics();
    row.int("samples_collected_total", m.samples_collected.get());
    row.int("samples_sent_total", m.samples_sent.get());
    row.int("batches_sent_total", m.batches_sent.get());
    row.int("batches_acked_total", m.batches_acked.get());
    row.int("batches_buffered", m.batches_buffered.get().max(0) as u64);
    row.int("buffer_bytes", m.buffer_bytes.get().max(0) as u64);
    row.int(
        "batches_dropped_total",
        m.batches_dropped.get().max(0) as u64,
    );
    row.int("reconnects_total", m.reconnects.get());
    row.int("connected", m.connected.get().max(0) as u64);
    row.float("ack_seconds_total", m.ack_seconds.sum_seconds());
    row
}

/// CPU time and resident memory of this process.
struct OwnUsage {
    cpu_seconds: f64,
    rss_bytes: u64,
}

/// This process's `/proc/self/stat`, kept open and re-read each cycle.
pub struct OwnStat {
    file: KernelFile,
    buf: String,
}

impl Default for OwnStat {
    fn default() -> Self {
        OwnStat {
            file: KernelFile::new("/proc/self/stat".into()),
            buf: String::new(),
        }
    }
}

impl OwnStat {
    fn read(&mut self) -> Option<OwnUsage> {
        self.file.read_into(&mut self.buf).ok()?;
        let stat = procfs::process::Stat::from_read(self.buf.as_bytes()).ok()?;
        let ticks = procfs::ticks_per_second().max(1) as f64;
        Some(OwnUsage {
            cpu_seconds: (stat.utime.saturating_add(stat.stime)) as f64 / ticks,
            rss_bytes: stat.rss.saturating_mul(procfs::page_size()),
        })
    }
}
