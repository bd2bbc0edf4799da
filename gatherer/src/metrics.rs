//! The gatherer's self-metrics: one process-wide set of atomics, recorded
//! where things happen (collection, buffer, session) and read twice: by
//! `/metrics` on the admin port (Prometheus text) and by the
//! `hostpulse_self` row of every cycle, which travels to the database with
//! the node's own data.
//!
//! A static rather than a handle threaded through every call: there is one
//! gatherer per process, and recording must stay a relaxed atomic add.
//!
//! This module takes numbers, never the collectors or the buffer: the
//! collection loop and the stream hand it what they counted, so nothing here
//! imports upward.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use hostpulse_ops::metrics::{Counter, Exposition, Gauge, Histogram, Kind};

/// The gatherer's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Collection cycles completed.
    pub cycles: Counter,
    /// Samples (fields of rows) collected.
    pub samples_collected: Counter,
    /// Wall time of one collection cycle.
    pub cycle_seconds: Histogram,
    /// Batches written on a stream (resends included).
    pub batches_sent: Counter,
    /// Batches the reporter acknowledged.
    pub batches_acked: Counter,
    /// Samples in acknowledged batches (or written to stdout in serverless mode).
    pub samples_sent: Counter,
    /// From writing a batch on the stream to its acknowledgement.
    pub ack_seconds: Histogram,
    /// Unacknowledged batches held (memory and disk).
    pub batches_buffered: Gauge,
    /// Bytes of unacknowledged batches held.
    pub buffer_bytes: Gauge,
    /// Batches dropped because the buffer was full (oldest first), since the buffer was created.
    pub batches_dropped: Gauge,
    /// Stream attempts after the first.
    pub reconnects: Counter,
    /// Text fields left out of batches sent to a reporter that does not
    /// store text (one from before text values).
    pub texts_not_sent: Counter,
    /// Attempts that failed before or after a Welcome.
    pub stream_failures: Counter,
    /// 1 while a stream is established.
    pub connected: Gauge,
    /// The collection interval in force, milliseconds (the reporter may change it).
    pub interval_ms: Gauge,
    /// When the last cycle completed (for /healthz).
    last_cycle: Mutex<Option<Instant>>,
    /// Per family: cycles in which it failed, as of the last cycle.
    family_errors: Mutex<Vec<(&'static str, u64)>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Records a completed cycle: its duration, the samples it collected and
    /// each family's errors since start (`(family, errors_total)`).
    pub fn cycle_done(
        &self,
        took: Duration,
        samples: u64,
        family_errors: impl IntoIterator<Item = (&'static str, u64)>,
    ) {
        self.cycles.inc();
        self.samples_collected.add(samples);
        self.cycle_seconds.observe(took);
        *self.last_cycle.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let errors = family_errors.into_iter().collect();
        *self.family_errors.lock().unwrap_or_else(|p| p.into_inner()) = errors;
    }

    /// The collection interval in force (zero before the first cycle).
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.get().max(0) as u64)
    }

    /// Time since the last completed cycle, if any.
    pub fn since_last_cycle(&self) -> Option<Duration> {
        self.last_cycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    /// Sets the buffer gauges: unacknowledged batches and their bytes, and
    /// batches dropped since the buffer was created.
    pub fn observe_buffer(&self, batches: usize, bytes: u64, dropped: u64) {
        self.batches_buffered
            .set(i64::try_from(batches).unwrap_or(i64::MAX));
        self.buffer_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.batches_dropped
            .set(i64::try_from(dropped).unwrap_or(i64::MAX));
    }

    /// Writes every family for `/metrics`.
    pub fn write(&self, page: &mut Exposition) {
        let families = self
            .family_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let counters: [(&str, &str, &Counter); 8] = [
            (
                "hostpulse_gatherer_texts_not_sent_total",
                "Text fields (node_events messages) left out of batches because the reporter does not store text (a version from before text values).",
                &self.texts_not_sent,
            ),
            (
                "hostpulse_gatherer_cycles_total",
                "Collection cycles completed.",
                &self.cycles,
            ),
            (
                "hostpulse_gatherer_samples_collected_total",
                "Samples (fields of rows) collected.",
                &self.samples_collected,
            ),
            (
                "hostpulse_gatherer_samples_sent_total",
                "Samples delivered: acknowledged by a reporter, or written to stdout.",
                &self.samples_sent,
            ),
            (
                "hostpulse_gatherer_batches_sent_total",
                "Batches written on a stream, resends included.",
                &self.batches_sent,
            ),
            (
                "hostpulse_gatherer_batches_acked_total",
                "Batches a reporter acknowledged (stored durably).",
                &self.batches_acked,
            ),
            (
                "hostpulse_gatherer_reconnects_total",
                "Stream attempts after the first.",
                &self.reconnects,
            ),
            (
                "hostpulse_gatherer_stream_failures_total",
                "Stream attempts that failed or ended with an error.",
                &self.stream_failures,
            ),
        ];
        for (name, help, c) in counters {
            page.single(name, Kind::Counter, help, c.get() as f64);
        }
        page.single(
            "hostpulse_gatherer_batches_buffered",
            Kind::Gauge,
            "Unacknowledged batches held in memory and on disk.",
            self.batches_buffered.get() as f64,
        );
        page.single(
            "hostpulse_gatherer_buffer_bytes",
            Kind::Gauge,
            "Bytes of unacknowledged batches held.",
            self.buffer_bytes.get() as f64,
        );
        page.single(
            "hostpulse_gatherer_batches_dropped_total",
            Kind::Counter,
            "Batches dropped because the buffer was full (lost data).",
            self.batches_dropped.get() as f64,
        );
        page.single(
            "hostpulse_gatherer_connected",
            Kind::Gauge,
            "1 while a stream to a reporter is established.",
            self.connected.get() as f64,
        );
        page.family(
            "hostpulse_gatherer_cycle_seconds",
            Kind::Histogram,
            "Wall time of one collection cycle.",
        );
        page.histogram("hostpulse_gatherer_cycle_seconds", &[], &self.cycle_seconds);
        page.family(
            "hostpulse_gatherer_ack_seconds",
            Kind::Histogram,
            "From writing a batch on the stream to its acknowledgement.",
        );
        page.histogram("hostpulse_gatherer_ack_seconds", &[], &self.ack_seconds);
        page.family(
            "hostpulse_gatherer_collector_errors_total",
            Kind::Counter,
            "Cycles in which a family failed (malformed or unreadable files).",
        );
        for (family, errors) in families {
            page.sample(
                "hostpulse_gatherer_collector_errors_total",
                &[("family", family)],
                errors as f64,
            );
        }
    }
}

/// The liveness verdict: collection has stalled when no cycle completed for
/// three intervals plus 30 s (`since_last` is `None` before the first cycle,
/// when the process's age counts instead). Delivery problems are not
/// liveness problems: a restart would not make an unreachable reporter
/// reachable, and the buffer is replayed anyway.
pub fn stalled(
    since_last: Option<Duration>,
    uptime: Duration,
    interval: Duration,
) -> Result<(), String> {
    let limit = interval * 3 + Duration::from_secs(30);
    let since = since_last.unwrap_or(uptime);
    if since > limit {
        return Err(format!(
            "no collection cycle completed for {}s (limit {}s)",
            since.as_secs(),
            limit.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_fails_only_when_collection_stalls() {
        let s = Duration::from_secs;
        assert!(stalled(Some(s(5)), s(500), s(10)).is_ok());
        assert!(stalled(Some(s(59)), s(500), s(10)).is_ok());
        let err = stalled(Some(s(61)), s(500), s(10)).unwrap_err();
        assert!(err.contains("61s") && err.contains("limit 60s"), "{err}");
        // Before the first cycle the process's age counts.
        assert!(stalled(None, s(20), s(10)).is_ok());
        assert!(stalled(None, s(90), s(10)).is_err());
        // A long interval pushed by the reporter widens the limit.
        assert!(stalled(Some(s(200)), s(500), s(60)).is_ok());
    }
}
