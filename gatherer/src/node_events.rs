//! The `node_events` table: what happened to the gatherer itself, each with
//! a human message (a text field), so an operator reads a node's story next
//! to its metrics.
//!
//! | `event` tag | when | fields besides `message` |
//! |---|---|---|
//! | `start` | streaming mode starts | `batches` (unacknowledged batches found in the buffer) |
//! | `stop` | SIGTERM/SIGINT: queued before the last drain, so it is delivered if the stream still works, else kept in the disk buffer (`--buffer-dir`) for the next start | `batches` (unacknowledged then) |
//! | `config` | a configuration pushed by the reporter was applied | `generation`, `interval_seconds` |
//! | `family_enabled`, `family_disabled` | a family was added or removed by a pushed configuration, or disabled because its files are missing | |
//! | `spill` | the buffer has been writing batches to disk for two cycles in a row (reporter unreachable, memory tier full; once per episode) | `batches` (spilled so far) |
//! | `drop` | the buffer dropped its oldest batches (full); again each time the total reaches a power of two | `batches` (dropped so far) |
//!
//! Serverless mode (`--stdout`) writes no events: they describe the stream.
//!
//! Each event gets its own timestamp, at least one microsecond after the
//! previous one: rows are deduplicated on `(ts, node, tags)` and QuestDB
//! keeps microseconds, so two events of one cycle never replace each other.
//! Events are queued here and leave with the next batch ([`NodeEvents::take`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_proto::NODE_EVENTS_TABLE;

use crate::collect::{Collectors, Family};
use crate::row::Row;

/// The tag naming the kind of event.
pub const EVENT_TAG: &str = "event";

/// Events waiting for the next batch, and what the previous observations saw.
#[derive(Debug, Default)]
pub struct NodeEvents {
    pending: Vec<Row>,
    last_ts: i64,
    /// Buffer figures at the previous observation.
    spilled: u64,
    dropped: u64,
    /// Consecutive observations that saw batches spilled.
    spill_streak: u32,
    /// Families disabled (files missing) at the previous observation, in
    /// the collectors' order.
    disabled: Vec<&'static str>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn names(families: &[Family]) -> String {
    families
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(",")
}

impl NodeEvents {
    /// No event yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues an event now (at least 1 µs after the previous one).
    fn push(&mut self, event: &'static str, message: String) -> &mut Row {
        let ts = now_ns().max(self.last_ts.saturating_add(1_000));
        self.last_ts = ts;
        tracing::debug!(event, %message, "node event");
        let mut row = Row::new(NODE_EVENTS_TABLE, ts).tag(EVENT_TAG, event);
        row.text("message", message);
        self.pending.push(row);
        self.pending.last_mut().expect("pushed above")
    }

    /// Streaming mode started with `families` every `interval`; `buffered`
    /// unacknowledged batches were found in the buffer.
    pub fn started(&mut self, families: &[Family], interval: Duration, buffered: usize) {
        let kept = if buffered > 0 {
            format!("; {buffered} unacknowledged batches from before will be sent first")
        } else {
            String::new()
        };
        let message = format!(
            "gatherer {} started (pid {}): collecting {} every {}{kept}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            names(families),
            humantime::format_duration(interval),
        );
        self.push("start", message).int("batches", buffered as u64);
    }

    /// The gatherer is stopping (a signal); `buffered` batches are not yet
    /// acknowledged.
    pub fn stopping(&mut self, buffered: usize) {
        let message = format!(
            "gatherer {} stopping on a signal with {buffered} unacknowledged batches \
             (kept in the disk buffer when one is configured)",
            env!("CARGO_PKG_VERSION"),
        );
        self.push("stop", message).int("batches", buffered as u64);
    }

    /// A configuration pushed by the reporter was applied: generation,
    /// interval, and the families before and after.
    pub fn config_applied(
        &mut self,
        generation: u64,
        interval: Duration,
        before: &[Family],
        after: &[Family],
    ) {
        let message = format!(
            "applied the reporter's configuration generation {generation}: collecting {} every {}",
            names(after),
            humantime::format_duration(interval),
        );
        let row = self.push("config", message);
        row.int("generation", generation);
        row.float("interval_seconds", interval.as_secs_f64());
        for f in after.iter().filter(|f| !before.contains(f)) {
            let message = format!(
                "family {} enabled by the reporter's configuration generation {generation}",
                f.name()
            );
            self.push("family_enabled", message);
        }
        for f in before.iter().filter(|f| !after.contains(f)) {
            let message = format!(
                "family {} disabled by the reporter's configuration generation {generation}",
                f.name()
            );
            self.push("family_disabled", message);
        }
    }

    /// Notes families that became disabled (their files are missing) or
    /// came back since the previous call.
    pub fn observe_families(&mut self, collectors: &Collectors) {
        let disabled = || {
            collectors
                .status()
                .filter(|s| s.disabled)
                .map(|s| s.family.name())
        };
        // Every cycle calls this: nothing is allocated unless something changed.
        if disabled().eq(self.disabled.iter().copied()) {
            return;
        }
        let now: Vec<&'static str> = disabled().collect();
        let before = std::mem::take(&mut self.disabled);
        for name in now.iter().filter(|n| !before.contains(n)) {
            self.push(
                "family_disabled",
                format!("family {name} disabled: the files it reads are missing on this host"),
            );
        }
        for name in before.iter().filter(|n| !now.contains(n)) {
            self.push(
                "family_enabled",
                format!("family {name} enabled again: its files are back"),
            );
        }
        self.disabled = now;
    }

    /// Notes the buffer's totals: batches spilled to disk and dropped since
    /// start, and batches held now. A spill is reported once per episode,
    /// when two observations in a row saw batches spilled (a gatherer's first
    /// batch always spills, since it is collected before the stream is up:
    /// that alone is no event); drops when they start and each time their
    /// total reaches a power of two.
    pub fn observe_buffer(&mut self, spilled: u64, dropped: u64, held: usize) {
        self.spill_streak = if spilled > self.spilled {
            self.spill_streak + 1
        } else {
            0
        };
        if self.spill_streak == 2 {
            let message = format!(
                "buffer spilling to disk: {} batches written so far, {held} held \
                 (the reporter is unreachable or the memory tier is full)",
                spilled
            );
            self.push("spill", message).int("batches", spilled);
        }
        self.spilled = spilled;
        let crossed = (self.dropped + 1..=dropped).any(u64::is_power_of_two);
        if dropped > self.dropped && (self.dropped == 0 || crossed) {
            let message = format!(
                "buffer full: dropped {} of its oldest batches so far ({held} held); \
                 raise --buffer-max-bytes to ride out longer outages",
                dropped
            );
            self.push("drop", message).int("batches", dropped);
        }
        self.dropped = dropped;
    }

    /// Appends the queued events to `rows`.
    pub fn take(&mut self, rows: &mut Vec<Row>) {
        rows.append(&mut self.pending);
    }

    /// Whether events are queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Value;

    fn kinds(events: &mut NodeEvents) -> Vec<String> {
        let mut rows = Vec::new();
        events.take(&mut rows);
        let mut last = i64::MIN;
        for row in &rows {
            assert!(row.ts >= last.saturating_add(1_000), "1 µs apart");
            last = row.ts;
            assert!(matches!(row.field("message"), Some(Value::Text(m)) if !m.is_empty()));
        }
        rows.iter()
            .map(|r| r.tag_value(EVENT_TAG).unwrap().to_string())
            .collect()
    }

    #[test]
    fn start_config_and_families_are_told() {
        let mut e = NodeEvents::new();
        e.started(&[Family::Cpu], Duration::from_secs(10), 3);
        e.config_applied(
            4,
            Duration::from_secs(5),
            &[Family::Cpu, Family::Load],
            &[Family::Cpu, Family::Memory],
        );
        let mut rows = Vec::new();
        e.take(&mut rows);
        assert_eq!(rows[0].field("batches"), Some(Value::Int(3)));
        let Some(Value::Text(m)) = rows[1].field("message") else {
            panic!()
        };
        assert!(
            m.contains("generation 4") && m.contains("cpu,memory"),
            "{m}"
        );
        e.pending = rows;
        assert_eq!(
            kinds(&mut e),
            ["start", "config", "family_enabled", "family_disabled"]
        );
        assert!(e.is_empty());
    }

    #[test]
    fn spills_are_told_once_per_episode_and_drops_at_powers_of_two() {
        let mut e = NodeEvents::new();
        e.observe_buffer(1, 0, 1); // the first batch, before the stream is up
        e.observe_buffer(1, 0, 0);
        assert_eq!(kinds(&mut e), Vec::<String>::new());
        e.observe_buffer(2, 0, 2);
        e.observe_buffer(3, 0, 3);
        e.observe_buffer(4, 0, 4);
        e.observe_buffer(4, 0, 0);
        e.observe_buffer(5, 0, 1);
        e.observe_buffer(6, 0, 2);
        assert_eq!(kinds(&mut e), ["spill", "spill"]);
        e.observe_buffer(3, 1, 1);
        e.observe_buffer(3, 2, 1);
        e.observe_buffer(3, 3, 1);
        e.observe_buffer(3, 5, 1);
        e.observe_buffer(3, 7, 1);
        assert_eq!(kinds(&mut e), ["drop", "drop", "drop"]);
        e.stopping(2);
        assert_eq!(kinds(&mut e), ["stop"]);
    }
}

#[cfg(test)]
mod family_tests {
    use super::*;
    use crate::collect::{Cycle, Settings};
    use crate::roots::Roots;

    #[test]
    fn a_family_whose_files_are_missing_is_told_once() {
        let empty = tempfile::tempdir().unwrap();
        let settings = Settings {
            roots: Roots::under(empty.path()),
            ..Settings::default()
        };
        let mut collectors = Collectors::new(&[Family::Load], &settings);
        let mut events = NodeEvents::new();
        let mut rows = Vec::new();
        for _ in 0..3 {
            collectors.collect(&Cycle::now(), &mut rows);
            events.observe_families(&collectors);
        }
        events.take(&mut rows);
        let told: Vec<_> = rows
            .iter()
            .filter(|r| r.table == NODE_EVENTS_TABLE)
            .map(|r| r.field("message"))
            .collect();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            matches!(&told[0], Some(crate::row::Value::Text(m)) if m.starts_with("family load disabled")),
            "{told:?}"
        );
    }
}
