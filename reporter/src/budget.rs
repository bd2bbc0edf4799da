//! The reporter-wide memory budget (`--memory-budget`): one byte count that
//! every stream's definitions and every batch in flight are charged against,
//! so the sum of what clients within their per-stream limits can make the
//! reporter hold stays bounded.
//!
//! ```text
//! stream:  Hello ──► Charge(0) ── each batch: grow by the cost of its new definitions ──► end: returned
//! batch:   decoded by tonic ──► Charge(batch_bytes) ──► decode, spool append, ack ──► returned
//!             └─ would exceed the budget ──► RESOURCE_EXHAUSTED for that stream (counted, logged)
//! ```
//!
//! Invariants: `used` is the sum of the live [`Charge`]s; a charge gives its
//! bytes back when dropped, whatever way the stream ends, so nothing leaks.
//! The costs are estimates of heap bytes (struct sizes, allocator overhead,
//! hash-table slack) derived from the decoded types, not measurements of the
//! allocator: README "Scaling and its limits" compares them with RSS.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hostpulse_proto::pb;

/// Heap bytes one allocation costs besides its payload (glibc: a 16-byte
/// header and rounding).
const ALLOCATION: u64 = 32;

/// What a charge is for (named in the refusal and the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A stream's definitions (row keys and series it declared).
    Definitions,
    /// A batch between its decoding and its acknowledgement.
    Batch,
}

impl Purpose {
    /// The label on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Definitions => "definitions",
            Purpose::Batch => "batch",
        }
    }
}

/// A charge would take the reporter past its budget; the caller ends the
/// stream with [`Exceeded::status`] (RESOURCE_EXHAUSTED), others go on.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "this reporter's memory budget is exhausted: {what} needs {needed} more bytes, \
     {used} of {limit} bytes are in use; other streams go on. Send fewer definitions or smaller \
     batches, or connect to another replica (operator: raise --memory-budget with the pod's memory)"
)]
pub struct Exceeded {
    /// What asked.
    pub purpose: Purpose,
    what: &'static str,
    needed: u64,
    used: u64,
    limit: u64,
}

impl Exceeded {
    /// The status the stream ends with.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::resource_exhausted(self.to_string())
    }
}

/// The budget: shared by every stream.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    refused_definitions: AtomicU64,
    refused_batches: AtomicU64,
    last_refusal: Mutex<Option<String>>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
            refused_definitions: AtomicU64::new(0),
            refused_batches: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
        })
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges refused since start, for `purpose`.
    pub fn refused(&self, purpose: Purpose) -> u64 {
        match purpose {
            Purpose::Definitions => self.refused_definitions.load(Ordering::Relaxed),
            Purpose::Batch => self.refused_batches.load(Ordering::Relaxed),
        }
    }

    /// The last refusal's message, for health detail and Status.
    pub fn last_refusal(&self) -> Option<String> {
        self.last_refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A line for `/healthz`'s detail when the budget matters: nearly used up
    /// (90 % or more), or streams refused since start (with the last reason).
    /// `None` while neither is true.
    pub fn health_note(&self) -> Option<String> {
        let (used, limit) = (self.used(), self.limit);
        let refused = self.refused(Purpose::Definitions) + self.refused(Purpose::Batch);
        let nearly_full = limit > 0 && used.saturating_mul(10) >= limit.saturating_mul(9);
        if !nearly_full && refused == 0 {
            return None;
        }
        let mut note = format!(
            "memory budget: {:.1} of {:.1} MiB used (--memory-budget)",
            used as f64 / 1_048_576.0,
            limit as f64 / 1_048_576.0
        );
        if refused > 0 {
            note.push_str(&format!("; {refused} stream(s) refused since start"));
            if let Some(last) = self.last_refusal() {
                note.push_str(&format!(", last: {last}"));
            }
        }
        Some(note)
    }

    /// The budget as `Admin.Status` reports it.
    pub fn status(&self) -> pb::MemoryBudget {
        pb::MemoryBudget {
            limit_bytes: self.limit,
            used_bytes: self.used(),
            refused_definitions: self.refused(Purpose::Definitions),
            refused_batches: self.refused(Purpose::Batch),
            last_refusal: self.last_refusal().unwrap_or_default(),
        }
    }

    /// An empty charge against this budget.
    pub fn charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }

    /// A charge of `bytes` for `purpose`, or the refusal.
    pub fn reserve(self: &Arc<Self>, bytes: u64, purpose: Purpose) -> Result<Charge, Exceeded> {
        let mut charge = self.charge();
        charge.resize(bytes, purpose)?;
        Ok(charge)
    }

    fn try_add(&self, n: u64, purpose: Purpose) -> Result<(), Exceeded> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(n);
            if next > self.limit {
                let counter = match purpose {
                    Purpose::Definitions => &self.refused_definitions,
                    Purpose::Batch => &self.refused_batches,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let e = Exceeded {
                    purpose,
                    what: match purpose {
                        Purpose::Definitions => "this stream's definitions",
                        Purpose::Batch => "this batch",
                    },
                    needed: n,
                    used,
                    limit: self.limit,
                };
                *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                return Err(e);
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => used = actual,
            }
        }
    }
}

/// Bytes held against the budget; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Charge {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `bytes` from now on: growing may be refused (the charge is then
    /// unchanged), shrinking never is.
    pub fn resize(&mut self, bytes: u64, purpose: Purpose) -> Result<(), Exceeded> {
        if bytes > self.bytes {
            self.budget.try_add(bytes - self.bytes, purpose)?;
        } else {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// One stream's charges: its definitions for its whole life, and each batch
/// while it is in flight.
#[derive(Debug)]
pub struct StreamCharge {
    definitions: Charge,
    /// Definitions held when the last batch was charged, and what the
    /// charge was before it.
    before: (usize, u64),
    /// Definitions the last batch carried, and their estimated cost.
    carried: (usize, u64),
}

impl StreamCharge {
    /// A stream holding nothing yet.
    pub fn new(budget: &Arc<MemoryBudget>) -> Self {
        StreamCharge {
            definitions: budget.charge(),
            before: (0, 0),
            carried: (0, 0),
        }
    }

    /// Before `batch` is decoded (the stream holds `held` definitions):
    /// charges its definitions as if all were new and the batch itself; the
    /// returned charge is the batch's, to keep until it is acknowledged.
    pub fn before_decode(&mut self, batch: &pb::Batch, held: usize) -> Result<Charge, Exceeded> {
        let cost = definition_bytes(batch);
        self.before = (held, self.definitions.bytes());
        self.carried = (batch.row_keys.len() + batch.series.len(), cost);
        self.definitions
            .resize(self.before.1 + cost, Purpose::Definitions)?;
        self.definitions
            .budget
            .reserve(batch_bytes(batch), Purpose::Batch)
    }

    /// After the decoding (the stream now holds `held` definitions, the
    /// batch expanded to `rows` rows): keeps only the share of the batch's
    /// definitions that were new, and brings the batch's charge from its
    /// worst case (a row per sample) down to its `rows`.
    pub fn after_decode(
        &mut self,
        held: usize,
        batch: &pb::Batch,
        rows: usize,
        in_flight: &mut Charge,
    ) {
        let _ = in_flight.resize(
            batch_bytes(batch).min(decoded_batch_bytes(batch, rows)),
            Purpose::Batch,
        );
        let added = held.saturating_sub(self.before.0) as u64;
        let (count, cost) = self.carried;
        let kept = if count == 0 {
            0
        } else {
            cost * added.min(count as u64) / count as u64
        };
        let _ = self
            .definitions
            .resize(self.before.1 + kept, Purpose::Definitions);
    }
}

/// Estimated heap bytes the reporter keeps for the definitions `batch`
/// carries (`StreamDefs`: a hash-table entry, the shared row key or series
/// value and their strings, hash-table growth), each counted as if new.
pub fn definition_bytes(batch: &pb::Batch) -> u64 {
    let keys: u64 = batch
        .row_keys
        .iter()
        .map(|rk| {
            // Entry (with slack) + Arc<RowKeyDef> + table + tag vector.
            let tags: u64 = rk
                .tags
                .iter()
                .map(|t| 48 + 2 * ALLOCATION + (t.key.len() + t.value.len()) as u64)
                .sum();
            32 + (64 + ALLOCATION) + (rk.table.len() as u64 + ALLOCATION) + ALLOCATION + tags
        })
        .sum();
    let series: u64 = batch
        .series
        .iter()
        // Entry (with slack) + Arc<str> field.
        .map(|s| 96 + 16 + ALLOCATION + s.field.len() as u64)
        .sum();
    // Calibrated: the sum above is ~80 % of the RSS that 16 streams of
    // 19,560 definitions each added (bench/loadgen --fill-rows 9500).
    (keys + series) * 5 / 4
}

/// Estimated heap bytes a batch holds from its decoding by tonic to its
/// acknowledgement: the decoded message, the copy stored with its
/// definitions, and the expanded rows (each sample a field, at worst each
/// its own row).
pub fn batch_bytes(batch: &pb::Batch) -> u64 {
    let groups: u64 = batch
        .groups
        .iter()
        .map(|g| {
            64 + 4 * ALLOCATION
                + 4 * g.series_delta.len() as u64
                + 8 * (g.ints.len() + g.milli.len() + g.wide.len()) as u64
        })
        .sum();
    let samples: u64 = batch
        .groups
        .iter()
        .map(|g| g.series_delta.len() as u64)
        .sum();
    // The message and its stored copy; each sample as a field (32 bytes) in
    // a row of its own (40 bytes and a vector) at worst.
    2 * (groups + definition_bytes(batch)) + samples * (32 + 40 + ALLOCATION)
}

/// [`batch_bytes`] once the batch is known to expand to `rows` rows.
pub fn decoded_batch_bytes(batch: &pb::Batch, rows: usize) -> u64 {
    let samples: u64 = batch
        .groups
        .iter()
        .map(|g| g.series_delta.len() as u64)
        .sum();
    let worst = batch_bytes(batch);
    // Replace the worst case's row per sample by the real rows.
    worst - samples * (40 + ALLOCATION) + rows as u64 * (40 + 2 * ALLOCATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_however_they_end() {
        let budget = MemoryBudget::new(1000);
        let a = budget.reserve(400, Purpose::Batch).unwrap();
        let mut b = budget.charge();
        b.resize(500, Purpose::Definitions).unwrap();
        assert_eq!(budget.used(), 900);
        let refused = b.resize(700, Purpose::Definitions).unwrap_err();
        assert_eq!(refused.purpose, Purpose::Definitions);
        assert_eq!(refused.status().code(), tonic::Code::ResourceExhausted);
        assert!(refused.to_string().contains("--memory-budget"), "{refused}");
        assert_eq!(
            b.bytes(),
            500,
            "a refused growth leaves the charge as it was"
        );
        assert_eq!(budget.used(), 900);
        assert!(budget.reserve(101, Purpose::Batch).is_err());
        assert_eq!(budget.refused(Purpose::Batch), 1);
        assert_eq!(budget.refused(Purpose::Definitions), 1);
        assert!(budget.last_refusal().unwrap().contains("this batch"));
        b.resize(100, Purpose::Definitions).unwrap();
        assert_eq!(budget.used(), 500);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn health_detail_speaks_only_when_the_budget_is_nearly_used_or_has_refused() {
        let budget = MemoryBudget::new(1000);
        let low = budget.reserve(800, Purpose::Batch).unwrap();
        assert_eq!(budget.health_note(), None, "80 % used and nothing refused");
        let high = budget.reserve(150, Purpose::Batch).unwrap();
        let note = budget.health_note().expect("95 % used");
        assert!(
            note.contains("--memory-budget") && !note.contains("refused"),
            "{note}"
        );
        drop(high);
        assert!(budget.reserve(300, Purpose::Definitions).is_err());
        let note = budget.health_note().expect("a refusal since start");
        assert!(
            note.contains("1 stream(s) refused since start") && note.contains("last:"),
            "{note}"
        );
        drop(low);
    }

    #[test]
    fn a_stream_keeps_only_its_new_definitions_and_gives_all_back() {
        let budget = MemoryBudget::new(1 << 20);
        let mut batch = pb::Batch::default();
        for id in 0..10 {
            batch.series.push(pb::Series {
                id,
                row_key: 1,
                field: "f".into(),
                kind: 1,
            });
        }
        let all = definition_bytes(&batch);
        let mut stream = StreamCharge::new(&budget);
        let mut in_flight = stream.before_decode(&batch, 0).unwrap();
        assert_eq!(budget.used(), all + in_flight.bytes());
        let worst = in_flight.bytes();
        stream.after_decode(10, &batch, 0, &mut in_flight);
        assert!(in_flight.bytes() <= worst);
        drop(in_flight);
        assert_eq!(budget.used(), all);
        // The same definitions again (a resend): nothing more is kept.
        let mut in_flight = stream.before_decode(&batch, 10).unwrap();
        stream.after_decode(10, &batch, 0, &mut in_flight);
        drop(in_flight);
        assert_eq!(budget.used(), all);
        drop(stream);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_batch_past_the_budget_is_refused_and_leaves_nothing_charged() {
        let mut batch = pb::Batch::default();
        batch.groups.push(pb::Group {
            series_delta: vec![1; 10_000],
            ints: vec![7; 10_000],
            ..Default::default()
        });
        let budget = MemoryBudget::new(batch_bytes(&batch) - 1);
        let mut stream = StreamCharge::new(&budget);
        let refused = stream.before_decode(&batch, 0).unwrap_err();
        assert_eq!(refused.purpose, Purpose::Batch);
        drop(stream);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn concurrent_charges_never_pass_the_limit_and_all_come_back() {
        let budget = MemoryBudget::new(10_000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..2_000u64 {
                        if let Ok(c) = budget.reserve(1 + i % 97, Purpose::Batch) {
                            assert!(budget.used() <= 10_000);
                            held.push(c);
                        }
                        if held.len() > 50 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_decoded_batch_is_charged_for_its_real_rows() {
        let mut batch = pb::Batch::default();
        batch.groups.push(pb::Group {
            series_delta: vec![1; 1000],
            ints: vec![7; 1000],
            ..Default::default()
        });
        let worst = batch_bytes(&batch);
        assert_eq!(decoded_batch_bytes(&batch, 1000), worst + 1000 * ALLOCATION);
        assert!(decoded_batch_bytes(&batch, 50) < worst * 2 / 3);
    }

    #[test]
    fn costs_grow_with_what_a_batch_carries() {
        let mut batch = pb::Batch::default();
        let empty = batch_bytes(&batch);
        batch.row_keys.push(pb::RowKey {
            id: 1,
            table: "cpu".into(),
            tags: vec![pb::Tag {
                key: "cpu".into(),
                value: "0".into(),
            }],
        });
        batch.series.push(pb::Series {
            id: 1,
            row_key: 1,
            field: "user".into(),
            kind: 1,
        });
        let defs = definition_bytes(&batch);
        assert!((200..1000).contains(&defs), "{defs}");
        batch.groups.push(pb::Group {
            series_delta: vec![1; 1000],
            ints: vec![7; 1000],
            ..Default::default()
        });
        assert!(batch_bytes(&batch) > empty + 1000 * 100);
    }
}
