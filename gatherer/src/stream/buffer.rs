//! Every batch the reporter has not acknowledged yet.
//!
//! ```text
//!   oldest ───────────────────────────────────────────────► newest
//!   [ disk tier: self-contained batches ][ memory tier: compact batches ]
//!     --buffer-dir/NNN.seg (spool log)      bounded by --buffer-memory
//! ```
//!
//! - New batches enter the memory tier. While connected they are normally
//!   acknowledged within milliseconds and never touch the disk.
//! - While disconnected, every batch is spilled to the disk tier at once, so a
//!   `kill -9` during a reporter outage loses nothing; a memory tier over its
//!   bound spills its oldest batches; SIGTERM spills everything.
//! - Both tiers together hold at most `--buffer-max-bytes`. Beyond it the
//!   oldest batches are dropped and counted; the count goes to the reporter in
//!   the next Hello and into the log.
//! - Disk records are self-contained (they carry their series definitions),
//!   so a restarted gatherer with a fresh dictionary adopts them on reading.
//! - `state` in the buffer directory (replaced by rename) holds a sequence
//!   bound and the highest acknowledged sequence, so sequences keep
//!   increasing across restarts and acknowledged records are not resent. It
//!   is written only when it must change, never per batch while connected:
//!   - the bound is a lease: no sequence at or above it was handed out. A
//!     batch kept in memory whose sequence reaches it writes a new one
//!     [`SEQUENCE_LEASE`] ahead, so a restart after `kill -9` while
//!     connected skips at most that many unused sequences (gaps between
//!     streams are allowed; going backwards is not). A batch spilled to
//!     disk needs no lease: recovery continues after the highest sequence
//!     on disk. Spilling everything (disconnect, shutdown) writes the exact
//!     next sequence.
//!   - the acknowledged sequence is written when an acknowledgement frees a
//!     disk record (the only records recovery reads) and on spilling
//!     everything; acknowledgements of memory-only batches need no write.
//!
//! Invariant: every sequence in the disk tier is below every sequence in the
//! memory tier, so sending disk first, then memory, sends in sequence order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use hostpulse_proto::codec::Dictionary;
use hostpulse_proto::pb;
use hostpulse_proto::row::Row;
use hostpulse_spool::{Log, Options as LogOptions, Position};
use prost::Message;

/// Segment size of the disk tier: small, so acknowledged data is freed soon.
const SEGMENT_BYTES: u64 = 256 * 1024;

/// Sequences reserved by one write of `state`: one write per 1,024 batches
/// (about 3 hours at the default 10 s interval) instead of one per batch.
pub const SEQUENCE_LEASE: u64 = 1024;

/// Buffer settings.
#[derive(Debug, Clone)]
pub struct BufferOptions {
    /// Directory of the disk tier; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    /// Both tiers together, in bytes.
    pub max_bytes: u64,
    /// The memory tier, in bytes.
    pub memory_bytes: u64,
}

/// Why the buffer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The buffer directory cannot be created or opened (permissions, a file
    /// in its place). The gatherer exits: fix the path or drop --buffer-dir.
    #[error("buffer directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: hostpulse_spool::SpoolError,
    },
}

struct Entry {
    sequence: u64,
    batch: pb::Batch,
    bytes: u64,
}

struct Disk {
    log: Log,
    /// (sequence, position, record bytes) of every unacknowledged record.
    index: VecDeque<(u64, Position, u64)>,
    /// Sum of the record bytes in `index`.
    bytes: u64,
    state: PathBuf,
    /// The sequence bound last written to `state`.
    leased: u64,
}

/// The buffer of unacknowledged batches.
pub struct Buffer {
    dict: Dictionary,
    next_sequence: u64,
    acked: u64,
    dropped: u64,
    /// Batches spilled to the disk tier since start (node_events).
    spilled: u64,
    memory: VecDeque<Entry>,
    memory_bytes: u64,
    disk: Option<Disk>,
    options: BufferOptions,
    connected: bool,
}

impl Buffer {
    /// Opens the buffer, recovering the disk tier of a previous run.
    pub fn open(options: BufferOptions) -> Result<Self, BufferError> {
        let mut buffer = Buffer {
            dict: Dictionary::new(),
            next_sequence: 1,
            acked: 0,
            dropped: 0,
            spilled: 0,
            memory: VecDeque::new(),
            memory_bytes: 0,
            disk: None,
            options,
            connected: false,
        };
        if let Some(dir) = buffer.options.dir.clone() {
            buffer.disk = Some(buffer.recover(&dir)?);
        }
        Ok(buffer)
    }

    fn recover(&mut self, dir: &Path) -> Result<Disk, BufferError> {
        let dir_error = |source| BufferError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        let (log, recovery) = Log::open(
            dir,
            LogOptions {
                segment_max_bytes: SEGMENT_BYTES,
                ..LogOptions::default()
            },
        )
        .map_err(dir_error)?;
        if !recovery.is_clean() {
            tracing::warn!(
                truncated_bytes = recovery.truncated_bytes,
                quarantined = recovery.quarantined.len(),
                damaged_ranges = recovery.damaged.len(),
                skipped_bytes = recovery.skipped_bytes(),
                skipped_records = recovery.skipped_records(),
                "buffer recovered from a crash or damage: a torn tail was cut, or damaged ranges were skipped (copies in quarantine/)"
            );
        }
        let state = dir.join("state");
        let saved = read_state(&state);
        if let Some((next, acked)) = saved {
            // max: when reopening after an I/O failure, what this process
            // already used must not be handed out again.
            self.next_sequence = self.next_sequence.max(next).max(1);
            self.acked = self.acked.max(acked);
        }
        let mut index = VecDeque::new();
        let mut bytes_held = 0u64;
        let mut unreadable = 0u64;
        for record in log.read_from(log.first()) {
            // A damaged range is skipped and reading goes on after it; an
            // I/O error ends the reader.
            let Ok((position, bytes)) = record else {
                unreadable += 1;
                continue;
            };
            match pb::Batch::decode(bytes.as_slice()) {
                Ok(batch) if batch.sequence > self.acked => {
                    self.next_sequence = self.next_sequence.max(batch.sequence + 1);
                    index.push_back((batch.sequence, position, bytes.len() as u64));
                    bytes_held += bytes.len() as u64;
                }
                Ok(_) => {}
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "buffer records that could not be read were skipped"
            );
        }
        if !index.is_empty() {
            tracing::info!(batches = index.len(), dir = %dir.display(), "unacknowledged batches recovered from disk; they are sent first");
        }
        Ok(Disk {
            log,
            index,
            bytes: bytes_held,
            state,
            leased: saved.map_or(0, |(next, _)| next),
        })
    }

    /// Encodes a cycle's rows as the next batch and keeps it.
    pub fn push(&mut self, rows: &[Row], labels: &[(String, String)]) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let batch = self.dict.encode(sequence, rows, labels);
        let bytes = batch.encoded_len() as u64;
        self.memory.push_back(Entry {
            sequence,
            batch,
            bytes,
        });
        self.memory_bytes += bytes;
        self.enforce();
        // A batch spilled to disk carries its own sequence into recovery; one
        // kept in memory (connected) may be sent, so its sequence is leased.
        let in_memory = self.memory.back().is_some_and(|e| e.sequence == sequence);
        if in_memory
            && self
                .disk
                .as_ref()
                .is_some_and(|d| self.next_sequence > d.leased)
        {
            self.save_state(self.next_sequence + SEQUENCE_LEASE);
        }
        sequence
    }

    /// Marks the stream up or down. Going down spills the memory tier.
    pub fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        if !connected {
            self.spill_all();
        }
    }

    /// Moves every in-memory batch to disk and syncs it (shutdown).
    pub fn spill_all(&mut self) {
        while !self.memory.is_empty() && self.disk.is_some() {
            if !self.spill_oldest() {
                break;
            }
        }
        let mut reopen = false;
        if let Some(disk) = &mut self.disk {
            if let Err(e) = disk.log.sync() {
                tracing::warn!(error = %e, "syncing the buffer failed; reopening it");
                reopen = true;
            }
        }
        if reopen {
            self.reopen_disk();
        }
        self.save_state(self.next_sequence);
    }

    /// After a failed sync the log refuses writes until reopened (the kernel
    /// may report later syncs as successful without the data); reopening
    /// re-verifies what is on disk and rebuilds the index from it.
    fn reopen_disk(&mut self) {
        let Some(dir) = self.options.dir.clone() else {
            return;
        };
        self.disk = None; // releases the directory lock
        match self.recover(&dir) {
            Ok(disk) => self.disk = Some(disk),
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the buffer directory; keeping batches in memory only")
            }
        }
    }

    /// Keeps both bounds: spill or drop the oldest batches.
    fn enforce(&mut self) {
        let must_spill = |b: &Buffer| {
            !b.memory.is_empty() && (!b.connected || b.memory_bytes > b.options.memory_bytes)
        };
        while must_spill(self) && self.disk.is_some() {
            if !self.spill_oldest() {
                break;
            }
        }
        while self.bytes() > self.options.max_bytes && self.len() > 1 {
            self.drop_oldest();
        }
    }

    /// Writes the oldest memory batch to disk; false if that failed (it then
    /// stays in memory: a full disk must not lose it).
    fn spill_oldest(&mut self) -> bool {
        let (Some(disk), Some(entry)) = (self.disk.as_mut(), self.memory.front()) else {
            return false;
        };
        let stored = self.dict.complete(&entry.batch).encode_to_vec();
        match disk.log.append(&stored) {
            Ok(position) => {
                disk.index
                    .push_back((entry.sequence, position, stored.len() as u64));
                disk.bytes += stored.len() as u64;
                self.memory_bytes -= entry.bytes;
                self.memory.pop_front();
                self.spilled += 1;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot spill to the buffer directory; keeping batches in memory");
                if matches!(e, hostpulse_spool::SpoolError::Poisoned) {
                    self.reopen_disk();
                }
                false
            }
        }
    }

    fn drop_oldest(&mut self) {
        let dropped =
            if let Some((seq, _, bytes)) = self.disk.as_mut().and_then(|d| d.index.pop_front()) {
                if let Some(d) = self.disk.as_mut() {
                    d.bytes -= bytes;
                }
                self.trim_disk();
                seq
            } else if let Some(e) = self.memory.pop_front() {
                self.memory_bytes -= e.bytes;
                e.sequence
            } else {
                return;
            };
        self.dropped += 1;
        if self.dropped == 1 || self.dropped.is_power_of_two() {
            tracing::warn!(
                sequence = dropped,
                dropped_total = self.dropped,
                limit = self.options.max_bytes,
                "buffer full: dropped the oldest batch (raise --buffer-max-bytes to ride out longer outages)"
            );
        }
    }

    /// Deletes disk segments holding nothing still needed.
    fn trim_disk(&mut self) {
        if let Some(disk) = &mut self.disk {
            let keep = disk
                .index
                .front()
                .map_or_else(|| disk.log.end(), |(_, p, _)| *p);
            if let Err(e) = disk.log.remove_before(keep) {
                tracing::warn!(error = %e, "cannot delete acknowledged buffer segments");
            }
        }
    }

    /// The first batch with a sequence above `after`, compact (definitions
    /// are added per stream by the caller).
    pub fn next_after(&mut self, after: u64) -> Option<(u64, pb::Batch)> {
        if let Some(disk) = &self.disk {
            let i = disk.index.partition_point(|(s, ..)| *s <= after);
            if let Some(&(sequence, position, _)) = disk.index.get(i) {
                let record = disk.log.read_from(position).next();
                let batch = match record {
                    Some(Ok((_, bytes))) => pb::Batch::decode(bytes.as_slice()).ok(),
                    _ => None,
                };
                match batch.map(|b| self.dict.adopt(&b)) {
                    Some(Ok(compact)) => return Some((sequence, compact)),
                    _ => {
                        tracing::warn!(
                            sequence,
                            "a buffered batch could not be read back; skipped"
                        );
                        return self.next_after(sequence);
                    }
                }
            }
        }
        let i = self.memory.partition_point(|e| e.sequence <= after);
        self.memory.get(i).map(|e| (e.sequence, e.batch.clone()))
    }

    /// The reporter holds every batch up to `sequence`.
    pub fn ack(&mut self, sequence: u64) {
        self.acked = self.acked.max(sequence);
        while self.memory.front().is_some_and(|e| e.sequence <= sequence) {
            if let Some(e) = self.memory.pop_front() {
                self.memory_bytes -= e.bytes;
            }
        }
        let mut trimmed = false;
        if let Some(disk) = &mut self.disk {
            while disk.index.front().is_some_and(|(s, ..)| *s <= sequence) {
                if let Some((_, _, bytes)) = disk.index.pop_front() {
                    disk.bytes -= bytes;
                }
                trimmed = true;
            }
        }
        if trimmed {
            self.trim_disk();
            // Recovery must not resend the disk records just acknowledged.
            let bound = self.disk.as_ref().map_or(0, |d| d.leased);
            self.save_state(bound.max(self.next_sequence));
        }
    }

    /// The dictionary (per-stream definitions are drawn from it).
    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    /// Unacknowledged batches held.
    pub fn len(&self) -> usize {
        self.memory.len() + self.disk.as_ref().map_or(0, |d| d.index.len())
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in both tiers.
    pub fn bytes(&self) -> u64 {
        self.memory_bytes + self.disk.as_ref().map_or(0, |d| d.bytes)
    }

    /// Batches written to the disk tier since start.
    pub fn spilled(&self) -> u64 {
        self.spilled
    }

    /// Batches dropped since start because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The oldest sequence held (0 if none).
    pub fn first_sequence(&self) -> u64 {
        let disk = self
            .disk
            .as_ref()
            .and_then(|d| d.index.front())
            .map(|(s, ..)| *s);
        disk.or_else(|| self.memory.front().map(|e| e.sequence))
            .unwrap_or(0)
    }

    /// The highest acknowledged sequence.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Writes `state`: `bound` (no sequence at or above it handed out; at
    /// least `next_sequence`) and the acknowledged sequence.
    fn save_state(&mut self, bound: u64) {
        let acked = self.acked;
        if let Some(disk) = &mut self.disk {
            let text =
                format!("hostpulse gatherer buffer v1\nnext_sequence {bound}\nacked {acked}\n");
            let tmp = disk.state.with_extension("tmp");
            let written =
                std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &disk.state));
            match written {
                Ok(()) => disk.leased = bound,
                // The lease is not extended, so the next push tries again.
                Err(e) => tracing::warn!(error = %e, "cannot save the buffer state"),
            }
        }
    }
}

/// Reads `state`: (next sequence, acked). A missing or garbled file is `None`.
fn read_state(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut next = None;
    let mut acked = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("next_sequence", v)) => next = v.trim().parse().ok(),
            Some(("acked", v)) => acked = v.trim().parse().ok(),
            _ => {}
        }
    }
    Some((next?, acked?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostpulse_proto::codec::{StreamDefs, StreamSent};

    fn rows(n: u64) -> Vec<Row> {
        let mut row = Row::new("load", 1_000 + n as i64);
        row.int("tasks", n);
        vec![row]
    }

    fn options(dir: Option<&Path>, max: u64, memory: u64) -> BufferOptions {
        BufferOptions {
            dir: dir.map(Path::to_path_buf),
            max_bytes: max,
            memory_bytes: memory,
        }
    }

    /// Sends everything after `after` through a fresh stream; the decoded task counts.
    fn drain(b: &mut Buffer, mut after: u64) -> Vec<(u64, u64)> {
        let mut sent = StreamSent::new();
        let mut defs = StreamDefs::new(1000);
        let mut out = Vec::new();
        while let Some((seq, batch)) = b.next_after(after) {
            let wire = sent.wire_batch(b.dictionary(), &batch);
            let decoded = defs.decode(&wire).unwrap();
            let tasks = decoded.rows[0].fields[0].1.as_f64() as u64;
            out.push((seq, tasks));
            after = seq;
        }
        out
    }

    #[test]
    fn batches_wait_until_acknowledged_and_go_in_order() {
        let mut b = Buffer::open(options(None, 1 << 20, 1 << 20)).unwrap();
        for n in 1..=3 {
            assert_eq!(b.push(&rows(n), &[]), n);
        }
        assert_eq!(drain(&mut b, 0), vec![(1, 1), (2, 2), (3, 3)]);
        b.ack(2);
        assert_eq!(drain(&mut b, 0), vec![(3, 3)]);
        assert_eq!(b.first_sequence(), 3);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts() {
        let one = {
            let mut b = Buffer::open(options(None, u64::MAX, u64::MAX)).unwrap();
            b.push(&rows(1), &[]);
            b.bytes()
        };
        let mut b = Buffer::open(options(None, one * 3, u64::MAX)).unwrap();
        for n in 1..=5 {
            b.push(&rows(n), &[]);
        }
        assert_eq!(b.dropped(), 2);
        assert_eq!(
            drain(&mut b, 0).iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }

    #[test]
    fn disconnected_batches_survive_a_restart_and_keep_their_sequence() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
            b.set_connected(true);
            b.push(&rows(1), &[]);
            b.ack(1);
            b.set_connected(false);
            b.push(&rows(2), &[]);
            b.push(&rows(3), &[]);
            // Dropped without spill_all: what a kill -9 does.
        }
        let mut b = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(drain(&mut b, 0), vec![(2, 2), (3, 3)]);
        assert_eq!(
            b.push(&rows(4), &[]),
            4,
            "sequences continue across restarts"
        );
        b.ack(3);
        assert_eq!(drain(&mut b, 0), vec![(4, 4)]);
        drop(b);
        let b = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(b.acked(), 3);
    }

    #[test]
    fn connected_batches_lease_sequences_instead_of_writing_state_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        {
            let mut b = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
            b.set_connected(true);
            b.push(&rows(1), &[]);
            let leased = read_state(&state).expect("the first batch leases sequences");
            for n in 2..=10 {
                b.push(&rows(n), &[]);
            }
            b.ack(10);
            assert_eq!(
                read_state(&state),
                Some(leased),
                "ten connected batches, one write of the state file"
            );
            // Dropped without spill_all: what a kill -9 does.
        }
        let mut b = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
        let next = b.push(&rows(11), &[]);
        assert!(
            (11..=11 + SEQUENCE_LEASE).contains(&next),
            "after a kill -9 sequences keep increasing, skipping at most one lease: {next}"
        );
    }

    #[test]
    fn a_second_gatherer_cannot_share_a_buffer_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20)).unwrap();
        let second = Buffer::open(options(Some(dir.path()), 1 << 20, 1 << 20));
        let err = second.err().expect("refused").to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_small_memory_tier_spills_to_disk_while_connected() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(options(Some(dir.path()), 1 << 20, 1)).unwrap();
        b.set_connected(true);
        for n in 1..=4 {
            b.push(&rows(n), &[]);
        }
        assert!(b.memory.len() <= 1);
        assert_eq!(drain(&mut b, 0).len(), 4);
        b.ack(4);
        assert!(b.is_empty());
    }
}
