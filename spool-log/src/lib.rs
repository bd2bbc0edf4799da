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
//!     match record {
//!         Ok((_position, _payload)) => { /* ... deliver the payload ... */ }
//!         // A damaged range: counted, skipped; the reader goes on after it.
//!         Err(e @ hostpulse_spool::SpoolError::Corrupt { .. }) => eprintln!("{e}"),
//!         Err(e) => return Err(e),
//!     }
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
//!   quarantine/                 {id:020}.seg[.N]: files with no valid record, moved
//!                               {id:020}.seg.at-{offset}: copies of damaged segments
//!   (anything else)             ignored (cursor files may live here)
//!
//! segment = "HPSPOOL2" (8 bytes) record*
//! record  = marker: FE 68 70 A5 | len: u32 LE | seq: u64 LE | crc: u32 LE | payload: len bytes
//!           (a 20-byte header)
//!           crc = CRC-32C (Castagnoli, reflected 0x82F63B78) over the 4 len
//!                 bytes, the 8 seq bytes, then the payload
//!           seq = 1 + the highest seq found at open (1 in an empty log):
//!                 +1 per record, across segments
//!           len > MAX_RECORD (64 MiB) is corruption
//!
//! legacy  = "HPSPOOL1" (8 bytes) record1*, written by the first release:
//! record1 = len: u32 LE | crc: u32 LE | payload   (crc over len, payload)
//!           read like any segment (resync below: every byte offset is a
//!           candidate); never appended to: after an upgrade the next append
//!           starts a new HPSPOOL2 segment.
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
//! reading (Reader, recovery, SegmentEntries: one walker), from a record start,
//! L = the seq of the last record this walk delivered (carried across segments):
//!   valid record = marker, len <= MAX_RECORD and within the segment, crc matches
//!   delivered if  seq > L, or L unknown (a reader's first record)
//!   seq <= L      is a copy of earlier bytes (Damage::Duplicate): skipped
//!   anything else at the expected start opens a DAMAGED RANGE, which ends at
//!   the resynchronisation point:
//!
//! resynchronisation after damage at d: the first offset p > d in the segment
//!     where the 4 marker bytes occur (HPSPOOL1: any offset), len is plausible
//!     (<= MAX_RECORD, fits before the segment's end), the crc matches and
//!     seq > L. No such p: the range runs to the segment's end; reading goes on
//!     with the next segment. A false resync needs a 32-bit marker and a 32-bit
//!     CRC to match by chance (2^-64 per offset) with a plausible length.
//!     HPSPOOL1 has no marker: 2^-32 per offset with a plausible length, and
//!     the search hashes at most 64 MiB per range.
//!   So every record whose bytes are intact is delivered once, in order, when
//!     damage flips, zeroes, cuts or repeats earlier bytes (tests/damage.rs).
//!     Not covered: a copy of NEWER records written over older ones (a
//!     misdirected write from a later segment into an earlier one) passes for
//!     those records, and the records between then read as duplicates.
//!   records lost in a range = next seq - L - 1 when both are known within the
//!     segment (exact, even for destroyed headers); else the markers found in
//!     it (at least 1 unless it is a duplicate), a lower bound.
//!   A reader yields SpoolError::Corrupt { segment, offset, bytes, records }
//!   for the range, then the record at p: it never stops on damage.
//!
//! recovery (Log::open), every segment in id order, walked as above (seq
//! carried across segments):
//!   - all records valid                      -> kept
//!   - damaged ranges                         -> kept live (readers skip the ranges,
//!                                               every intact record is delivered),
//!                                               reported in Recovery::damaged, and the
//!                                               segment copied to quarantine/ as
//!                                               {id:020}.seg.at-{first damaged offset}
//!   - header neither HPSPOOL2 nor HPSPOOL1   -> its format is guessed from the first
//!                                               valid record (a marker search first);
//!                                               reported as a range {offset 0, 8 bytes}
//!   - no valid record and a bad header, or
//!     unreadable                             -> moved to quarantine/{id:020}.seg[.N]
//!   - last segment shorter than 8 bytes and a
//!     prefix of a magic (creation cut)       -> removed, counted as truncated
//!   - last segment, a damaged range running
//!     to its end ("torn tail": a crash mid-append; those records were never
//!     synced, so never acknowledged)         -> truncated to the range start, counted
//!   The next new segment id is above every id seen, quarantined ones included.
//!   Open never fails on file content; only on the directory or a failed repair.
//! ```
//!
//! The format checksums the length field with the payload, and every record
//! starts with a non-zero marker: a block of zeros (what some filesystems
//! leave at the end of a file after a crash) is never a run of valid empty
//! records. The sequence number makes a copy of earlier bytes (a misdirected
//! or repeated write) detectable, so no record is delivered twice by one
//! reader, and makes the count of lost records exact.
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
mod entries;
mod error;
mod format;
mod log;
mod reader;
mod segment;

pub use crate::crc32c::{crc32c, crc32c_update};
pub use crate::cursor::CursorFile;
pub use crate::entries::{Entry, SegmentEntries};
pub use crate::error::{Damage, SpoolError};
pub use crate::format::{
    DEFAULT_SEGMENT_MAX_BYTES, MAX_RECORD, Position, QUARANTINE_DIR, RECORD_HEADER_LEN,
    RECORD_HEADER_LEN_V1, RECORD_MARKER, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_MAGIC_V1,
};
pub use crate::log::{
    DamagedRange, FileOps, Log, Options, Quarantined, Recovery, StdFileOps, keep_damaged,
};
pub use crate::reader::Reader;
