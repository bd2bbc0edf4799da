//! One store draining the spool from its own cursor, on its own thread.
//!
//! ```text
//! loop:
//!   read up to MAX_BATCHES records after the cursor (waiting for appends when caught up)
//!   decode each SpooledBatch (self-contained) into rows
//!   store.write(all of them)
//!     Ok                -> cursor := after the last one; persist it; trim the spool
//!     Unavailable       -> wait (exponential backoff with jitter, 100 ms to 5 s), retry the same
//!     Rejected          -> split the group in halves, then a lone batch's rows in halves,
//!                          until the refused rows are alone: append those to
//!                          <spool-dir>/rejected-<store>.jsonl, count, move on
//! ```
//!
//! A store refuses rows, not batches: one bad row never costs its neighbours.
//! The pieces of a split batch carry its node and sequence and no stored form
//! (stores read only the decoded rows). Each refused piece counts once in
//! `rejected_batches`; a batch with a refused row does not count in
//! `delivered_batches`. Ingest refuses what breaks the rules of
//! [`hostpulse_proto::rules`] before acknowledging, so what is refused here
//! is what only the database knows (a column's type, its column limit) or a
//! spool written by an older reporter.
//!
//! A damaged range met while reading (bytes that rotted after the spool
//! opened, or found at open) is skipped: the reader resumes at the next valid
//! record, so only the damaged records are lost; the range is counted,
//! logged and kept once (`super::damage`), whichever store meets it first.
//! A read failing with an I/O error is retried from the same place; after
//! [`UNREADABLE_ATTEMPTS`] failures in a row the rest of that segment is
//! skipped and counted as damage, so that a bad sector cannot stall a store.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostpulse_proto::backoff::Backoff;
use hostpulse_proto::codec::StreamDefs;
use hostpulse_proto::pb;
use hostpulse_spool::{CursorFile, Position, SpoolError};
use prost::Message;

use super::Shared;
use super::damage::Range;
use crate::intake::AcceptedBatch;
use crate::store::{Store, StoreError};

/// Longest wait between two attempts on an unavailable store. A retry is one
/// cheap request; a long ceiling would dominate the catch-up after an outage
/// (the first attempt after the database returns could be 30 s away).
pub const RETRY_CEILING: Duration = Duration::from_secs(5);

/// Reads failing with an I/O error at the same place before the rest of that
/// segment is skipped (about one attempt a second).
pub const UNREADABLE_ATTEMPTS: u32 = 10;

/// Most batches handed to one `Store::write`.
pub const MAX_BATCHES: usize = 512;

/// What a drainer reports (Admin.Status).
#[derive(Debug, Clone)]
pub struct DrainStatus {
    /// The store's name.
    pub name: &'static str,
    /// Batches stored since start.
    pub delivered: u64,
    /// Batches refused for good.
    pub rejected: u64,
    /// The last error (empty after a success).
    pub last_error: String,
    /// Failed attempts since the last success.
    pub failing: u64,
}

impl DrainStatus {
    pub(crate) fn new(name: &'static str) -> Self {
        DrainStatus {
            name,
            delivered: 0,
            rejected: 0,
            last_error: String::new(),
            failing: 0,
        }
    }
}

/// A drainer.
pub(crate) struct Drainer {
    index: usize,
    store: Box<dyn Store>,
    cursor_file: CursorFile,
    cursor: Position,
    shared: Arc<Shared>,
    status: Arc<Mutex<DrainStatus>>,
    last_maintain: Instant,
    /// Where reading last failed with an I/O error, and how many times in a row.
    read_failure: Option<(Position, u32)>,
}

impl Drainer {
    pub(crate) fn new(
        index: usize,
        store: Box<dyn Store>,
        cursor_file: CursorFile,
        cursor: Position,
        shared: Arc<Shared>,
        status: Arc<Mutex<DrainStatus>>,
    ) -> Self {
        Drainer {
            index,
            store,
            cursor_file,
            cursor,
            shared,
            status,
            last_maintain: Instant::now(),
            read_failure: None,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.store.name()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, DrainStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn run(mut self) {
        let mut seen = self.shared.generation();
        let Ok(mut backoff) = Backoff::new(Duration::from_millis(100), RETRY_CEILING) else {
            return;
        };
        loop {
            self.maintain();
            let (batches, next) = self.read();
            if batches.is_empty() {
                if let Some(deadline) = self.shared.stop_deadline() {
                    let _ = deadline;
                    return; // caught up and stopping
                }
                let idle = self
                    .store
                    .maintain_interval()
                    .clamp(Duration::from_millis(100), Duration::from_secs(1));
                seen = self.shared.wait_appended(seen, idle);
                continue;
            }
            if !self.deliver(&batches, &mut backoff) {
                tracing::warn!(
                    store = self.name(),
                    "stopping before this store caught up; it resumes from its cursor at the next start"
                );
                return;
            }
            self.advance(next);
        }
    }

    /// Writes `batches`, retrying while the store is unavailable. A rejected
    /// group is split in halves until the refused batches are alone, so one
    /// bad batch sends only itself to the rejected file. False if the
    /// shutdown deadline passed first.
    fn deliver(&mut self, batches: &[Arc<AcceptedBatch>], backoff: &mut Backoff) -> bool {
        self.deliver_counted(batches, backoff, true)
    }

    /// [`Drainer::deliver`]; `whole` is false for the pieces of a split
    /// batch, which do not count as delivered batches.
    fn deliver_counted(
        &mut self,
        batches: &[Arc<AcceptedBatch>],
        backoff: &mut Backoff,
        whole: bool,
    ) -> bool {
        loop {
            if self
                .shared
                .stop_deadline()
                .is_some_and(|d| Instant::now() >= d)
            {
                return false;
            }
            let rows: usize = batches.iter().map(|b| b.decoded.rows.len()).sum();
            let span = tracing::debug_span!(
                "store.flush",
                store = self.name(),
                batches = batches.len(),
                rows
            );
            let started = Instant::now();
            let written = span.in_scope(|| self.store.write(batches));
            let metrics = &self.shared.metrics.stores[self.index];
            if written.is_ok() {
                metrics.write.observe(started.elapsed());
                metrics.rows.add(rows as u64);
            } else {
                metrics.errors.inc();
            }
            match written {
                Ok(()) => {
                    backoff.reset();
                    let mut s = self.status();
                    if whole {
                        s.delivered += batches.len() as u64;
                    }
                    if s.failing > 0 {
                        tracing::info!(
                            store = s.name,
                            failed_attempts = s.failing,
                            "store reachable again; catching up"
                        );
                    }
                    s.failing = 0;
                    s.last_error.clear();
                    return true;
                }
                Err(StoreError::Unavailable(e)) => {
                    let delay = backoff.next_delay();
                    let failing = {
                        let mut s = self.status();
                        s.failing += 1;
                        s.last_error.clone_from(&e);
                        s.failing
                    };
                    if failing == 1 || failing.is_power_of_two() {
                        tracing::warn!(store = self.name(), error = %e, attempts = failing, retry_in = ?delay, "store unavailable; the spool holds the batches");
                    }
                    std::thread::sleep(delay);
                }
                Err(StoreError::Rejected(e)) if batches.len() > 1 => {
                    tracing::debug!(store = self.name(), error = %e, batches = batches.len(), "rejected: splitting to find the refused batches");
                    let (a, b) = batches.split_at(batches.len() / 2);
                    return self.deliver_counted(a, backoff, whole)
                        && self.deliver_counted(b, backoff, whole);
                }
                Err(StoreError::Rejected(e))
                    if batches.first().is_some_and(|b| b.decoded.rows.len() > 1) =>
                {
                    tracing::debug!(store = self.name(), error = %e, rows = batches[0].decoded.rows.len(), "rejected: splitting the batch's rows to find the refused ones");
                    let (a, b) = split_rows(&batches[0]);
                    return self.deliver_counted(&[a], backoff, false)
                        && self.deliver_counted(&[b], backoff, false);
                }
                Err(StoreError::Rejected(e)) => {
                    self.reject(batches, &e);
                    return true;
                }
            }
        }
    }

    /// Reads up to MAX_BATCHES records after the cursor; returns them and
    /// the position after the last one read.
    fn read(&mut self) -> (Vec<Arc<AcceptedBatch>>, Position) {
        let Some(mut reader) = self.shared.with_log(|log| log.read_from(self.cursor)) else {
            return (Vec::new(), self.cursor);
        };
        let mut out = Vec::new();
        let mut next = self.cursor;
        while out.len() < MAX_BATCHES {
            let Some(record) = reader.next() else { break };
            match record {
                Ok((_, payload)) => {
                    match decode(&payload) {
                        Some(b) => out.push(Arc::new(b)),
                        None => tracing::error!(
                            store = self.name(),
                            "a spool record with a valid checksum does not decode; skipped"
                        ),
                    }
                    next = reader.position();
                }
                Err(SpoolError::Corrupt {
                    segment,
                    offset,
                    bytes,
                    records,
                    damage,
                }) => {
                    let range = Range {
                        segment,
                        offset,
                        bytes,
                        records,
                        damage: damage.to_string(),
                    };
                    self.shared.damaged(&range, self.name());
                    next = reader.position();
                }
                Err(e) => {
                    next = self.unreadable(reader.position(), &e).unwrap_or(next);
                    break;
                }
            }
        }
        if out.is_empty() && next != self.cursor {
            // Only undecodable or damaged records: move past them.
            self.advance(next);
        }
        (out, next)
    }

    /// An I/O error reading at `at`: retried from there at the next read;
    /// after [`UNREADABLE_ATTEMPTS`] in a row, the rest of the segment is
    /// skipped and counted as damage (a bad sector must not stall the store
    /// for good). Returns where to go on from when skipping.
    fn unreadable(&mut self, at: Position, e: &SpoolError) -> Option<Position> {
        let attempts = match self.read_failure {
            Some((p, n)) if p == at => n + 1,
            _ => 1,
        };
        self.read_failure = Some((at, attempts));
        if attempts < UNREADABLE_ATTEMPTS {
            tracing::warn!(store = self.name(), error = %e, attempts, "cannot read the spool; retrying");
            return None;
        }
        self.read_failure = None;
        let path = self.shared.dir().join(format!("{:020}.seg", at.segment));
        let len = std::fs::metadata(&path).map_or(at.offset, |m| m.len());
        let range = Range {
            segment: at.segment,
            offset: at.offset,
            bytes: len.saturating_sub(at.offset),
            records: 0,
            damage: format!("unreadable ({e}): the rest of the segment is skipped"),
        };
        self.shared.damaged(&range, self.name());
        Some(Position::new(at.segment + 1, 0))
    }

    fn advance(&mut self, next: Position) {
        self.cursor = next;
        if let Err(e) = self.cursor_file.store(next) {
            tracing::warn!(store = self.name(), error = %e, "cannot persist the drain cursor; a restart will rewrite some batches (idempotent)");
        }
        self.shared.set_cursor(self.index, next);
        self.shared.trim();
    }

    fn reject(&self, batches: &[Arc<AcceptedBatch>], reason: &str) {
        let path = self
            .shared
            .dir()
            .join(format!("rejected-{}.jsonl", self.name()));
        let mut text = String::new();
        for b in batches {
            for row in &b.decoded.rows {
                let tags = row.key.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let fields = row.fields.iter().map(|(k, v)| (k.as_ref(), v));
                hostpulse_proto::json::write_parts(
                    &mut text,
                    &row.key.table,
                    row.ts,
                    &b.node,
                    tags,
                    fields,
                );
            }
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_data()));
        let mut s = self.status();
        s.rejected += batches.len() as u64;
        tracing::error!(
            store = s.name, reason, batches = batches.len(), file = %path.display(),
            saved = written.is_ok(), "the store refused these batches for good; their rows are kept in the rejected file"
        );
    }

    fn maintain(&mut self) {
        if self.last_maintain.elapsed() >= self.store.maintain_interval() {
            self.last_maintain = Instant::now();
            if let Err(e) = self.store.maintain() {
                tracing::warn!(store = self.name(), error = %e, "store housekeeping failed");
            }
        }
    }
}

/// The two halves of a batch's rows, as batches of the same node and
/// sequence without a stored form.
fn split_rows(batch: &AcceptedBatch) -> (Arc<AcceptedBatch>, Arc<AcceptedBatch>) {
    let (a, b) = batch.decoded.rows.split_at(batch.decoded.rows.len() / 2);
    let piece = |rows: &[hostpulse_proto::codec::DecodedRow]| {
        Arc::new(AcceptedBatch {
            node: Arc::clone(&batch.node),
            decoded: hostpulse_proto::codec::DecodedBatch {
                sequence: batch.decoded.sequence,
                rows: rows.to_vec(),
                samples: rows.iter().map(|r| r.fields.len()).sum(),
            },
            stored: pb::Batch::default(),
        })
    };
    (piece(a), piece(b))
}

/// A spool record back into an accepted batch (`None` if it does not decode).
pub fn decode(payload: &[u8]) -> Option<AcceptedBatch> {
    let record = pb::SpooledBatch::decode(payload).ok()?;
    let stored = record.batch?;
    let decoded = StreamDefs::new(usize::MAX).decode(&stored).ok()?;
    Some(AcceptedBatch {
        node: Arc::from(record.node.as_str()),
        decoded,
        stored,
    })
}
