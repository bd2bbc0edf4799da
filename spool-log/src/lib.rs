//! hostpulse spool: an append-only log of opaque records in segment files, with
//! checksums and crash recovery.
//!
//! It serves the gatherer's disk buffer (unacknowledged batches, removed once
//! acknowledged) and the reporter's disk spool (group commit: several
//! [`Log::append`]s, then one [`Log::sync`]; each sink drains from its own
//! [`CursorFile`]; drained segments go with [`Log::remove_before`]).
//!
//! ```no_run
//! use hostpulse_spool::{CursorFile, Log, Options};
//!
//! # fn main() -> Result<(), hostpulse_spool::SpoolError> {
//! let (mut log, recovery) = Log::open("/var/lib/hostpulse/spool", Options::default())?;
//! if !recovery.is_clean() {
//!     eprintln!("spool recovery: {recovery:?}");
//! }
//! log.append(b"batch 1")?;
//! log.append(b"batch 2")?;
//! log.sync()?; // both durable now
//!
//! let cursor = CursorFile::new("/var/lib/hostpulse/spool/sink-a.cursor");
//! let mut reader = log.read_from(cursor.load()?.unwrap_or(log.first()));
//! for record in reader.by_ref() {
//!     let (_position, _payload) = record?;
//!     // ... deliver the payload ...
//! }
//! cursor.store(reader.position())?;
//! log.remove_before(reader.position())?;
//! # Ok(())
//! # }
//! ```
//!
//! # On-disk format
//!
//! ```text
//! dir/
//!   LOCK                        flock'ed by the one Log that has dir open
//!   00000000000000000001.seg    segment files: {id:020}.seg, id: u64, first is 1,
//!   00000000000000000002.seg    increasing, never reused; the last one is active
//!   quarantine/                 damaged segments moved aside by recovery
//!   (anything else)             ignored (cursor files may live here)
//!
//! segment = "HPSPOOL1" (8 bytes) record*
//! record  = len: u32 LE | crc: u32 LE | payload: len bytes
//!           crc = CRC-32C (Castagnoli, reflected 0x82F63B78) over the 4 len bytes
//!                 followed by the payload
//!           len > MAX_RECORD (64 MiB) is corruption
//!
//! position = { segment: u64, offset: u64 }: the byte offset of a record's start
//!            in segment file {segment}; ordered by (segment, offset).
//!            end() = { active segment, its length }.
//!
//! rotation: an append goes to the active (last) segment unless that segment
//!           already holds a record and header + records + this record would
//!           exceed segment_max_bytes (default 8 MiB); then the active segment
//!           is fdatasync'ed (and the directory fsync'ed if its entry is new),
//!           and segment id+1 is created with its header. A record larger than
//!           the limit gets a segment of its own. So every non-last segment is
//!           complete on disk before its successor exists.
//!
//! durability: append = one pwrite of header+payload; sync = fdatasync of the
//!           active segment + fsync of dir if a segment was created since.
//!           A failed (partial) append is truncated away at once.
//!
//! cursor file (CursorFile), one line, replaced by write tmp + fsync + rename
//!           + fsync dir:    "HPCURSOR1 <segment> <offset> <crc32c-hex8>\n"
//!
//! recovery (Log::open), for every segment in id order:
//!   - all records valid                      -> kept
//!   - header not "HPSPOOL1", or unreadable   -> quarantined
//!   - last segment shorter than 8 bytes and a
//!     prefix of "HPSPOOL1" (creation cut)    -> removed, counted as truncated
//!   - first bad record (short header, len over MAX_RECORD, payload past end of
//!     file, bad checksum) at offset o:
//!       non-last segment                     -> quarantined
//!       last segment, torn tail              -> truncated to o, counted
//!       last segment, valid data after o     -> quarantined
//!     "torn tail": no valid record after o, looking both along the chain of
//!     length fields from o and at every byte offset after o (the latter
//!     hashes at most 64 MiB; candidates beyond that budget are skipped).
//!   quarantined = moved to dir/quarantine/{id:020}.seg (".N" appended if taken).
//!   The next new segment id is above every id seen, quarantined ones included.
//!   Open never fails on file content; only on the directory or a failed repair.
//! ```
//!
//! The format deliberately checksums the length field with the payload: a
//! block of zeros (what some filesystems leave at the end of a file after a
//! crash) would otherwise read as a run of valid empty records.
//!
//! # Concurrency
//!
//! One [`Log`] per directory (the lock makes a second [`Log::open`] fail with
//! [`SpoolError::Locked`]). [`Reader`]s own their file handles and a snapshot
//! of the segment list, so they can run on other threads while the log
//! appends; they see records up to the end the log had when they were made.
//!
//! # Fault injection
//!
//! Every write, truncation and sync the writer does goes through the
//! [`FileOps`] trait in [`Options::file_ops`]; tests substitute an
//! implementation that fails part-way (see `tests/faults.rs`).
//!
//! Unix only (positional I/O, `fdatasync`, `flock`).
#![forbid(unsafe_code)]

mod crc32c;
mod cursor;
mod error;
mod format;
mod log;
mod reader;
mod scan;

pub use crate::crc32c::{crc32c, crc32c_update};
pub use crate::cursor::CursorFile;
pub use crate::error::{Damage, SpoolError};
pub use crate::format::{
    DEFAULT_SEGMENT_MAX_BYTES, MAX_RECORD, Position, QUARANTINE_DIR, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
pub use crate::log::{FileOps, Log, Options, Quarantined, Recovery, StdFileOps};
pub use crate::reader::Reader;
