//! The writer side: [`Log`], its [`Options`], the [`FileOps`] seam and the
//! [`Recovery`] report of [`Log::open`].

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entries::Entry;
use crate::error::{Damage, SpoolError};
use crate::format::{
    DEFAULT_SEGMENT_MAX_BYTES, LOCK_FILE, MAX_RECORD, Position, QUARANTINE_DIR, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_MAGIC_V1, Version, encode_record,
    parse_quarantined_name, parse_segment_name, segment_file_name,
};
use crate::reader::Reader;
use crate::segment::{SegmentFile, Walker};

/// The file operations the writer performs, as a seam for fault injection.
///
/// [`Log`] calls these for every write, truncation and sync of segment files
/// and for syncing directories; everything else (listing, renaming into
/// quarantine, removing, reading) uses `std::fs` directly. Every method has
/// the obvious default, so a test implements only what it wants to break, e.g.
/// a `write_at` that writes half the buffer and then returns `ENOSPC`. The
/// methods take `&self`: keep fault state in atomics or a mutex.
///
/// Production code uses [`StdFileOps`], the default in [`Options`].
pub trait FileOps: fmt::Debug + Send + Sync {
    /// Creates a segment file (truncating any leftover of a failed creation),
    /// open for reading and writing.
    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Opens an existing segment file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    /// Writes some of `buf` at `offset` (one `pwrite`): returns the number of
    /// bytes written, which may be fewer than `buf.len()`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(file, buf, offset)
    }

    /// Truncates (or extends) the file to `len` bytes.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    /// Makes a directory's entries durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &File) -> io::Result<()> {
        dir.sync_all()
    }
}

/// The real file operations (all of [`FileOps`]'s defaults).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileOps;

impl FileOps for StdFileOps {}

/// How to open a [`Log`].
#[derive(Debug, Clone)]
pub struct Options {
    /// A new segment is started when appending a record to the active segment
    /// would make it longer than this (header included). A segment always
    /// takes at least one record, so a record larger than this gets a segment
    /// of its own. Default: [`DEFAULT_SEGMENT_MAX_BYTES`] (8 MiB).
    pub segment_max_bytes: u64,
    /// The file operations used by the writer. Default: [`StdFileOps`]. Tests
    /// substitute an implementation that injects faults.
    pub file_ops: Arc<dyn FileOps>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            file_ops: Arc::new(StdFileOps),
        }
    }
}

/// What [`Log::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Live segments after recovery.
    pub segments: usize,
    /// Valid records in the live segments.
    pub records: u64,
    /// Bytes cut off the end of the last segment (a torn tail), plus the size
    /// of a last segment whose creation was interrupted (removed).
    pub truncated_bytes: u64,
    /// Files named like segments that hold no valid record at all (a bad
    /// header and nothing recognisable after it), moved into
    /// `dir/quarantine/`.
    pub quarantined: Vec<Quarantined>,
    /// Damaged ranges in live segments: readers skip them and deliver the
    /// records around them. Each damaged segment was copied into
    /// `dir/quarantine/` first.
    pub damaged: Vec<DamagedRange>,
}

impl Recovery {
    /// True when nothing had to be repaired.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0 && self.quarantined.is_empty() && self.damaged.is_empty()
    }

    /// Bytes of the damaged ranges in live segments.
    #[must_use]
    pub fn skipped_bytes(&self) -> u64 {
        self.damaged.iter().map(|d| d.bytes).sum()
    }

    /// Records lost in the damaged ranges of live segments.
    #[must_use]
    pub fn skipped_records(&self) -> u64 {
        self.damaged.iter().map(|d| d.records).sum()
    }
}

/// A range of a live segment that holds no deliverable record, found by
/// [`Log::open`]. Readers skip it the same way (a [`SpoolError::Corrupt`]
/// with the same segment and offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment id.
    pub segment: u64,
    /// Byte offset where the range starts (0 for a damaged segment header).
    pub offset: u64,
    /// Length of the range in bytes.
    pub bytes: u64,
    /// Records lost in it (see [`SpoolError::Corrupt`]).
    pub records: u64,
    /// What was wrong at `offset`.
    pub damage: Damage,
    /// The copy of the whole segment kept in `dir/quarantine/` for
    /// inspection (`None` if copying failed; the failure is in `copy_error`).
    pub copy: Option<PathBuf>,
    /// Why the copy could not be made.
    pub copy_error: Option<String>,
}

/// A segment moved into quarantine by [`Log::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The segment id.
    pub segment: u64,
    /// Where the file is now (in `dir/quarantine/`).
    pub path: PathBuf,
    /// Valid records before the damage (lost to the log, still in the file).
    pub valid_records: u64,
    /// Byte offset of the damage in the file.
    pub damage_offset: u64,
    /// Size of the file.
    pub bytes: u64,
    /// What was wrong.
    pub damage: Damage,
}

/// A sealed segment: no longer written.
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    len: u64,
}

/// The segment appends go to.
#[derive(Debug)]
struct Active {
    id: u64,
    len: u64,
    file: File,
}

/// An append-only log of opaque records in segment files. See the crate
/// documentation for the format and the recovery rules.
///
/// One `Log` per directory (enforced by a lock). Appends reach the OS at once
/// and are durable after [`Log::sync`]. Readers ([`Log::read_from`]) are
/// independent of the `Log` and can be used on other threads while it appends.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    segment_max_bytes: u64,
    ops: Arc<dyn FileOps>,
    /// Holds the `flock` on `dir/LOCK` for the life of the `Log`.
    _lock: File,
    dir_file: File,
    /// Sealed segments, ascending ids, all below the active one.
    sealed: VecDeque<Segment>,
    sealed_bytes: u64,
    /// `None` until the first append after opening an empty directory (or
    /// one whose last segment was quarantined or removed).
    active: Option<Active>,
    /// The id of the next segment to create (`None`: ids exhausted).
    next_id: Option<u64>,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    /// The active segment has writes (or a rollback) not yet synced.
    unsynced: bool,
    /// A failed append could not be rolled back yet: the active file may hold
    /// garbage past `active.len`; nothing is written until it is truncated.
    needs_rollback: bool,
    /// A sync failed: see [`SpoolError::Poisoned`].
    poisoned: bool,
    /// Encoding buffer of `append`.
    scratch: Vec<u8>,
    /// Sequence number of the next record appended: one above every
    /// sequence number found at open.
    next_seq: u64,
}

/// What open does with one segment file.
enum Verdict {
    Keep {
        len: u64,
        records: u64,
        /// Appends may go on in it (HPSPOOL2 with an intact header).
        appendable: bool,
        damaged: Vec<DamagedRange>,
    },
    Truncate {
        at: u64,
        records: u64,
        file_len: u64,
        appendable: bool,
        damaged: Vec<DamagedRange>,
    },
    Discard {
        file_len: u64,
    },
    Quarantine {
        offset: u64,
        records: u64,
        file_len: u64,
        damage: Damage,
    },
}

/// Scratch buffers above this are released after use.
const SCRATCH_KEEP: usize = 1 << 20;

impl Log {
    /// Opens (creating if needed) the spool in `dir`, verifies every segment
    /// and repairs what a crash or damage left behind (see the crate docs for
    /// the rules). Returns the log and a report of the repairs.
    ///
    /// Damaged segments never make this fail: they are truncated or
    /// quarantined. It fails only when the directory itself cannot be used
    /// (created, locked, listed, synced) or a repair cannot be carried out
    /// (truncate, rename, remove): [`SpoolError::Io`]/[`SpoolError::NoSpace`];
    /// or when another `Log` holds the directory: [`SpoolError::Locked`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<(Log, Recovery), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        let ops = options.file_ops;
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io("create", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| SpoolError::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked { dir }),
            Err(TryLockError::Error(e)) => return Err(SpoolError::io("lock", &lock_path, e)),
        }
        let dir_file = File::open(&dir).map_err(|e| SpoolError::io("open", &dir, e))?;
        let ids = list_segments(&dir)?;
        let quarantine_dir = dir.join(QUARANTINE_DIR);
        let mut max_seen = max_quarantined_id(&quarantine_dir)?;

        let mut recovery = Recovery::default();
        let mut sealed = VecDeque::new();
        let mut sealed_bytes = 0u64;
        let mut active = None;
        let mut dir_changed = false;
        let mut quarantine_changed = false;
        let last_id = ids.last().copied();
        let mut seqs = SeqTrack::default();

        for &id in &ids {
            max_seen = max_seen.max(Some(id));
            let is_last = Some(id) == last_id;
            let path = dir.join(segment_file_name(id));
            let verdict = match inspect(&path, id, is_last, &mut seqs) {
                Ok(Some(v)) => v,
                // Vanished since the listing: nothing to recover.
                Ok(None) => continue,
                Err(e) => Verdict::Quarantine {
                    offset: 0,
                    records: 0,
                    file_len: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    damage: Damage::Unreadable { kind: e.kind() },
                },
            };
            let mut appendable = true;
            let kept_len = match verdict {
                Verdict::Keep {
                    len,
                    records,
                    appendable: a,
                    damaged,
                } => {
                    appendable = a;
                    recovery.records += records;
                    recovery.damaged.extend(keep_copies(&dir, damaged));
                    Some(len)
                }
                Verdict::Truncate {
                    at,
                    records,
                    file_len,
                    appendable: a,
                    damaged,
                } => {
                    appendable = a;
                    recovery.damaged.extend(keep_copies(&dir, damaged));
                    let file = ops
                        .open(&path)
                        .map_err(|e| SpoolError::io("open", &path, e))?;
                    ops.set_len(&file, at)
                        .map_err(|e| SpoolError::io("truncate torn tail of", &path, e))?;
                    ops.sync_data(&file)
                        .map_err(|e| SpoolError::io("sync", &path, e))?;
                    recovery.records += records;
                    recovery.truncated_bytes += file_len - at;
                    Some(at)
                }
                Verdict::Discard { file_len } => {
                    fs::remove_file(&path).map_err(|e| SpoolError::io("remove", &path, e))?;
                    recovery.truncated_bytes += file_len;
                    dir_changed = true;
                    None
                }
                Verdict::Quarantine {
                    offset,
                    records,
                    file_len,
                    damage,
                } => {
                    fs::create_dir_all(&quarantine_dir)
                        .map_err(|e| SpoolError::io("create", &quarantine_dir, e))?;
                    let dest = quarantine_path(&quarantine_dir, id)?;
                    fs::rename(&path, &dest)
                        .map_err(|e| SpoolError::io("move into quarantine", &path, e))?;
                    dir_changed = true;
                    quarantine_changed = true;
                    recovery.quarantined.push(Quarantined {
                        segment: id,
                        path: dest,
                        valid_records: records,
                        damage_offset: offset,
                        bytes: file_len,
                        damage,
                    });
                    None
                }
            };
            if let Some(len) = kept_len {
                // An HPSPOOL1 segment, or one with a damaged header, is never
                // appended to: the next append starts a new HPSPOOL2 segment.
                if is_last && appendable {
                    let file = ops
                        .open(&path)
                        .map_err(|e| SpoolError::io("open", &path, e))?;
                    active = Some(Active { id, len, file });
                } else {
                    sealed.push_back(Segment { id, len });
                    sealed_bytes += len;
                }
            }
        }

        if quarantine_changed {
            let qdir = File::open(&quarantine_dir)
                .map_err(|e| SpoolError::io("open", &quarantine_dir, e))?;
            ops.sync_dir(&qdir)
                .map_err(|e| SpoolError::io("sync", &quarantine_dir, e))?;
        }
        if dir_changed {
            ops.sync_dir(&dir_file)
                .map_err(|e| SpoolError::io("sync", &dir, e))?;
        }

        recovery.segments = sealed.len() + usize::from(active.is_some());
        let next_id = match max_seen {
            None => Some(1),
            Some(max) => max.checked_add(1),
        };
        let log = Log {
            dir,
            segment_max_bytes: options.segment_max_bytes,
            ops,
            _lock: lock,
            dir_file,
            sealed,
            sealed_bytes,
            active,
            next_id,
            dir_dirty: false,
            unsynced: false,
            needs_rollback: false,
            poisoned: false,
            scratch: Vec::new(),
            next_seq: seqs.max.map_or(1, |m| m.saturating_add(1)),
        };
        Ok((log, recovery))
    }

    /// Appends a record and returns its position.
    ///
    /// The record is handed to the OS (readers see it at once) but is durable
    /// only after [`Log::sync`]. Starts a new segment first when the record
    /// would not fit in the active one (syncing the active one, so that a
    /// segment is complete on disk before its successor exists).
    ///
    /// On failure nothing of the record remains: a partial write is truncated
    /// away. `ENOSPC` comes back as [`SpoolError::NoSpace`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, SpoolError> {
        if self.poisoned {
            return Err(SpoolError::Poisoned);
        }
        if payload.len() > MAX_RECORD {
            return Err(SpoolError::RecordTooLarge {
                len: payload.len(),
                max: MAX_RECORD,
            });
        }
        self.rollback()?;
        let total = RECORD_HEADER_LEN + payload.len() as u64;
        let rotate = match &self.active {
            Some(a) => {
                a.len > SEGMENT_HEADER_LEN && a.len.saturating_add(total) > self.segment_max_bytes
            }
            None => true,
        };
        if rotate {
            self.start_segment()?;
        }
        let Some(active) = self.active.as_mut() else {
            // start_segment() leaves an active segment or fails.
            return Err(SpoolError::io(
                "append to",
                &self.dir,
                io::Error::other("no active segment"),
            ));
        };
        let path = self.dir.join(segment_file_name(active.id));
        self.scratch.clear();
        encode_record(payload, self.next_seq, &mut self.scratch);
        let offset = active.len;
        self.unsynced = true;
        let written = write_all_at(&*self.ops, &active.file, &self.scratch, offset);
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        match written {
            Ok(()) => {
                active.len += total;
                self.next_seq += 1;
                Ok(Position::new(active.id, offset))
            }
            Err(e) => {
                if self.ops.set_len(&active.file, offset).is_err() {
                    self.needs_rollback = true;
                }
                Err(SpoolError::io("append to", path, e))
            }
        }
    }

    /// Makes every record appended so far durable: `fdatasync` of the active
    /// segment, and `fsync` of the directory if a segment was created since the
    /// last sync. Call it once after a group of appends (group commit).
    ///
    /// If it fails the log is poisoned ([`SpoolError::Poisoned`]): records
    /// appended since the last successful sync must not be acknowledged.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.poisoned {
            return Err(SpoolError::Poisoned);
        }
        self.rollback()?;
        if self.unsynced
            && let Some(active) = &self.active
        {
            if let Err(e) = self.ops.sync_data(&active.file) {
                self.poisoned = true;
                return Err(SpoolError::io(
                    "sync",
                    self.dir.join(segment_file_name(active.id)),
                    e,
                ));
            }
            self.unsynced = false;
        }
        self.sync_dir_if_dirty()
    }

    /// The position of the first record (equal to [`Log::end`] when the log
    /// holds no segment).
    #[must_use]
    pub fn first(&self) -> Position {
        match (self.sealed.front(), &self.active) {
            (Some(s), _) => Position::new(s.id, SEGMENT_HEADER_LEN),
            (None, Some(a)) => Position::new(a.id, SEGMENT_HEADER_LEN),
            (None, None) => self.end(),
        }
    }

    /// The position after the last record: where the next append goes unless
    /// it starts a new segment.
    #[must_use]
    pub fn end(&self) -> Position {
        match &self.active {
            Some(a) => Position::new(a.id, a.len),
            None => Position::new(self.next_id.unwrap_or(u64::MAX), SEGMENT_HEADER_LEN),
        }
    }

    /// Total size of the live segment files, headers included.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.sealed_bytes + self.active.as_ref().map_or(0, |a| a.len)
    }

    /// Bytes of live segments from `pos` to the end: how far a reader at
    /// `pos` is behind (a sink's lag). Segments before `pos` count nothing;
    /// in `pos`'s own segment, only what follows `pos.offset`.
    #[must_use]
    pub fn bytes_from(&self, pos: Position) -> u64 {
        let active = self.active.as_ref().map(|a| Segment {
            id: a.id,
            len: a.len,
        });
        self.sealed
            .iter()
            .copied()
            .chain(active)
            .filter(|s| s.id >= pos.segment)
            .map(|s| {
                if s.id == pos.segment {
                    s.len.saturating_sub(pos.offset)
                } else {
                    s.len
                }
            })
            .sum()
    }

    /// Number of live segment files.
    #[must_use]
    pub fn segments(&self) -> usize {
        self.sealed.len() + usize::from(self.active.is_some())
    }

    /// The spool directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A reader of every record from `from` (inclusive) to the end of the log
    /// as of now. A `from` inside a removed segment starts at the first live
    /// record after it; a `from` before the log starts at its first record.
    /// The reader opens the files itself: it does not borrow the log and may
    /// be moved to another thread while the log keeps appending.
    #[must_use]
    pub fn read_from(&self, from: Position) -> Reader {
        let mut segments: Vec<(u64, u64)> = self.sealed.iter().map(|s| (s.id, s.len)).collect();
        if let Some(a) = &self.active {
            segments.push((a.id, a.len));
        }
        Reader::new(self.dir.clone(), segments, self.end(), from)
    }

    /// Deletes every segment whose records all lie before `pos` (never the
    /// active segment) and returns the bytes freed. With the position a
    /// consumer has read up to (its cursor), this frees what it has drained;
    /// with several consumers, pass the smallest of their cursors.
    ///
    /// Removals are made durable (directory `fsync`) before returning; a
    /// failure of that sync poisons the log. On an error, the segments removed
    /// before it stay removed.
    pub fn remove_before(&mut self, pos: Position) -> Result<u64, SpoolError> {
        let mut freed = 0u64;
        let mut failure = None;
        while let Some(&seg) = self.sealed.front() {
            let drained = seg.id < pos.segment || (seg.id == pos.segment && seg.len <= pos.offset);
            if !drained {
                break;
            }
            let path = self.dir.join(segment_file_name(seg.id));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    failure = Some(SpoolError::io("remove", path, e));
                    break;
                }
            }
            self.sealed.pop_front();
            self.sealed_bytes -= seg.len;
            freed += seg.len;
        }
        if freed > 0 {
            self.dir_dirty = true;
            self.sync_dir_if_dirty()?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(freed),
        }
    }

    /// Retries the truncation a failed append could not do.
    fn rollback(&mut self) -> Result<(), SpoolError> {
        if !self.needs_rollback {
            return Ok(());
        }
        if let Some(active) = &self.active {
            self.ops.set_len(&active.file, active.len).map_err(|e| {
                SpoolError::io(
                    "truncate failed append in",
                    self.dir.join(segment_file_name(active.id)),
                    e,
                )
            })?;
        }
        self.needs_rollback = false;
        Ok(())
    }

    fn sync_dir_if_dirty(&mut self) -> Result<(), SpoolError> {
        if !self.dir_dirty {
            return Ok(());
        }
        if let Err(e) = self.ops.sync_dir(&self.dir_file) {
            self.poisoned = true;
            return Err(SpoolError::io("sync", &self.dir, e));
        }
        self.dir_dirty = false;
        Ok(())
    }

    /// Seals the active segment (making it durable first) and creates the
    /// next one with its header. On failure the active segment is unchanged.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let id = self.next_id.ok_or(SpoolError::IdsExhausted)?;
        if let Some(active) = &self.active {
            // The predecessor must be complete on disk before the new segment
            // can exist: recovery treats damage in a non-last segment as
            // corruption, not as a torn tail.
            if self.unsynced {
                if let Err(e) = self.ops.sync_data(&active.file) {
                    self.poisoned = true;
                    return Err(SpoolError::io(
                        "sync",
                        self.dir.join(segment_file_name(active.id)),
                        e,
                    ));
                }
                self.unsynced = false;
            }
            // And its directory entry too, if it is new.
            self.sync_dir_if_dirty()?;
        }
        let path = self.dir.join(segment_file_name(id));
        let file = self
            .ops
            .create(&path)
            .map_err(|e| SpoolError::io("create", &path, e))?;
        if let Err(e) = write_all_at(&*self.ops, &file, &SEGMENT_MAGIC, 0) {
            drop(file);
            // Best effort: a leftover is truncated by the next create of this
            // id, or removed by recovery as an interrupted creation.
            let _ = fs::remove_file(&path);
            return Err(SpoolError::io("write header of", &path, e));
        }
        self.dir_dirty = true;
        self.unsynced = true;
        self.next_id = id.checked_add(1);
        let new = Active {
            id,
            len: SEGMENT_HEADER_LEN,
            file,
        };
        if let Some(old) = self.active.replace(new) {
            self.sealed.push_back(Segment {
                id: old.id,
                len: old.len,
            });
            self.sealed_bytes += old.len;
        }
        Ok(())
    }
}

/// Writes all of `buf` at `offset` through the seam, retrying short writes.
fn write_all_at(ops: &dyn FileOps, file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match ops.write_at(file, buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sequence numbers seen by open, in segment order.
#[derive(Debug, Default)]
struct SeqTrack {
    /// The last record's, carried from one segment to the next so that the
    /// records lost at a segment's start are counted exactly.
    last: Option<u64>,
    /// The highest.
    max: Option<u64>,
}

/// Scans one segment file and decides what to do with it. `Ok(None)`: the
/// file no longer exists.
fn inspect(
    path: &Path,
    id: u64,
    is_last: bool,
    seqs: &mut SeqTrack,
) -> io::Result<Option<Verdict>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    if file_len < SEGMENT_HEADER_LEN {
        let mut buf = [0u8; 8];
        let prefix = &mut buf[..usize::try_from(file_len).unwrap_or(0)];
        file.read_exact_at(prefix, 0)?;
        let creation_cut =
            SEGMENT_MAGIC.starts_with(prefix) || SEGMENT_MAGIC_V1.starts_with(prefix);
        return Ok(Some(if creation_cut && is_last {
            Verdict::Discard { file_len }
        } else {
            Verdict::Quarantine {
                offset: 0,
                records: 0,
                file_len,
                damage: Damage::BadHeader,
            }
        }));
    }
    let seg = SegmentFile::new(file, file_len)?;
    let version = seg.version();
    let header_ok = seg.header_ok();
    let mut walker = Walker::new(seg, SEGMENT_HEADER_LEN, seqs.last);
    let mut records = 0u64;
    let mut damaged = Vec::new();
    if !header_ok {
        damaged.push(range(id, 0, SEGMENT_HEADER_LEN, 0, Damage::BadHeader));
    }
    while let Some(item) = walker.next()? {
        match item {
            Entry::Record { seq, .. } => {
                records += 1;
                seqs.max = seqs.max.max(seq);
            }
            Entry::Damaged {
                offset,
                bytes,
                records: lost,
                damage,
            } => damaged.push(range(id, offset, bytes, lost, damage)),
        }
    }
    seqs.last = walker.last_seq;
    if !header_ok && records == 0 {
        return Ok(Some(Verdict::Quarantine {
            offset: 0,
            records: 0,
            file_len,
            damage: Damage::BadHeader,
        }));
    }
    // A damaged range running to the end of the last segment is a torn tail
    // (a crash mid-append): those records were never acknowledged.
    if is_last
        && let Some(tail) = damaged.last()
        && tail.offset > 0
        && tail.offset + tail.bytes == file_len
    {
        let at = tail.offset;
        damaged.pop();
        return Ok(Some(Verdict::Truncate {
            at,
            records,
            file_len,
            appendable: header_ok && version == Version::V2,
            damaged,
        }));
    }
    Ok(Some(Verdict::Keep {
        len: file_len,
        records,
        appendable: header_ok && version == Version::V2,
        damaged,
    }))
}

fn range(segment: u64, offset: u64, bytes: u64, records: u64, damage: Damage) -> DamagedRange {
    DamagedRange {
        segment,
        offset,
        bytes,
        records,
        damage,
        copy: None,
        copy_error: None,
    }
}

/// Copies each segment that has damaged ranges into quarantine (once per
/// segment, named after its first damaged offset).
fn keep_copies(dir: &Path, mut damaged: Vec<DamagedRange>) -> Vec<DamagedRange> {
    if let Some(first) = damaged.first() {
        let copied = keep_damaged(dir, first.segment, first.offset);
        for d in &mut damaged {
            match &copied {
                Ok(path) => d.copy = Some(path.clone()),
                Err(e) => d.copy_error = Some(e.to_string()),
            }
        }
    }
    damaged
}

/// Copies segment `segment` of the spool in `dir` into
/// `dir/quarantine/{segment:020}.seg.at-{offset}` for inspection (a damaged
/// range starts at `offset`), unless that copy exists already, and returns
/// the copy's path. The live segment stays: its intact records are still
/// delivered. The copy is made durable (file and directory `fsync`).
pub fn keep_damaged(dir: &Path, segment: u64, offset: u64) -> Result<PathBuf, SpoolError> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir).map_err(|e| SpoolError::io("create", &qdir, e))?;
    let dest = qdir.join(format!("{}.at-{offset}", segment_file_name(segment)));
    if dest.exists() {
        return Ok(dest);
    }
    let src = dir.join(segment_file_name(segment));
    let mut tmp = dest.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let copy = || -> io::Result<()> {
        fs::copy(&src, &tmp)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &dest)?;
        File::open(&qdir)?.sync_all()
    };
    copy().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        SpoolError::io("copy into quarantine", &src, e)
    })?;
    Ok(dest)
}

/// Ids of the regular files named like segments, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut ids = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| SpoolError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io("list", dir, e))?;
        let Some(id) = parse_segment_name(&entry.file_name()) else {
            continue;
        };
        let file_type = entry
            .file_type()
            .map_err(|e| SpoolError::io("stat", entry.path(), e))?;
        if file_type.is_file() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The largest segment id in the quarantine directory: ids are never reused,
/// even after every segment was quarantined.
fn max_quarantined_id(qdir: &Path) -> Result<Option<u64>, SpoolError> {
    let entries = match fs::read_dir(qdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SpoolError::io("list", qdir, e)),
    };
    let mut max = None;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io("list", qdir, e))?;
        max = max.max(parse_quarantined_name(&entry.file_name()));
    }
    Ok(max)
}

/// A name in quarantine that does not overwrite an earlier quarantined file.
fn quarantine_path(qdir: &Path, id: u64) -> Result<PathBuf, SpoolError> {
    let name = segment_file_name(id);
    let free =
        |p: &Path| matches!(fs::symlink_metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound);
    let first = qdir.join(&name);
    if free(&first) {
        return Ok(first);
    }
    for n in 1..10_000u32 {
        let candidate = qdir.join(format!("{name}.{n}"));
        if free(&candidate) {
            return Ok(candidate);
        }
    }
    Err(SpoolError::io(
        "find a free name in",
        qdir,
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}
