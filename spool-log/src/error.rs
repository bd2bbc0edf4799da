//! The crate's error type and the description of damaged records.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What is wrong with a record (or a segment header) that failed verification.
///
/// Reported in [`Recovery`](crate::Recovery) for quarantined segments and in
/// [`SpoolError::Corrupt`] for damage discovered while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The segment file starts with neither `HPSPOOL2` nor `HPSPOOL1` (its
    /// records, if any valid one is found, are still read).
    BadHeader,
    /// No record marker where a record should start (`HPSPOOL2` segments).
    NoMarker,
    /// A valid record whose sequence number is not above the one before it:
    /// a copy of earlier bytes (a misdirected or repeated write).
    Duplicate {
        /// The record's sequence number.
        seq: u64,
        /// The sequence number of the record delivered before it.
        after: u64,
    },
    /// Fewer than the bytes of a record header remain before the end of the segment.
    TruncatedHeader {
        /// Bytes left in the segment at the record's start.
        remaining: u64,
    },
    /// The record's length field exceeds [`MAX_RECORD`](crate::MAX_RECORD).
    LengthTooLarge {
        /// The length found.
        len: u32,
    },
    /// The record's payload runs past the end of the segment.
    Truncated {
        /// The length found.
        len: u32,
        /// Bytes left in the segment after the record header.
        remaining: u64,
    },
    /// The stored checksum does not match the record's length and payload.
    Checksum {
        /// The checksum stored in the record header.
        stored: u32,
        /// The checksum computed over the length and payload read back.
        computed: u32,
    },
    /// The segment file could not be read at all (open recovery only).
    Unreadable {
        /// The kind of the I/O error that stopped the scan.
        kind: io::ErrorKind,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Damage::BadHeader => f.write_str("segment header is neither HPSPOOL2 nor HPSPOOL1"),
            Damage::NoMarker => f.write_str("no record marker"),
            Damage::Duplicate { seq, after } => {
                write!(f, "record {seq} repeated after record {after}")
            }
            Damage::TruncatedHeader { remaining } => {
                write!(f, "record header cut short ({remaining} bytes left)")
            }
            Damage::LengthTooLarge { len } => {
                write!(
                    f,
                    "record length {len} exceeds the {} byte limit",
                    crate::MAX_RECORD
                )
            }
            Damage::Truncated { len, remaining } => write!(
                f,
                "record of {len} bytes runs past the end of the segment ({remaining} bytes left)"
            ),
            Damage::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Damage::Unreadable { kind } => write!(f, "segment unreadable: {kind}"),
        }
    }
}

/// Everything that can go wrong in the spool.
///
/// Every variant says what caused it and what the caller should do. Unless a
/// variant says otherwise, the log on disk is still valid after the error: a
/// failed [`append`](crate::Log::append) leaves no partial record behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The filesystem is full (`ENOSPC`) or the user's disk quota is exhausted
    /// (`EDQUOT`).
    ///
    /// Caused by: an append, a segment rotation or a cursor store that needed
    /// space. A failed append was rolled back; nothing was written.
    ///
    /// The caller should apply backpressure: stop accepting new data, free space
    /// (drain sinks and [`remove_before`](crate::Log::remove_before)), and retry
    /// later. If it came from [`sync`](crate::Log::sync), the log is also
    /// poisoned (see [`SpoolError::Poisoned`]).
    #[error("no space left on device while trying to {op} {path}: {source}")]
    NoSpace {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// Any other I/O error (`EIO`, permissions, a vanished directory...).
    ///
    /// Caused by: the operation named in `op` failing on `path`. A failed append
    /// was rolled back (if even the rollback failed, the next append or sync
    /// retries it first and fails again until it succeeds). If it came from
    /// [`sync`](crate::Log::sync) or a segment rotation, the log is poisoned.
    ///
    /// The caller should log it and retry later; if it persists, the disk or
    /// the configuration needs an operator.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// The payload is larger than [`MAX_RECORD`](crate::MAX_RECORD).
    ///
    /// Caused by: the caller. Nothing was written. The caller should split the
    /// data into smaller records (or drop it and report it).
    #[error("record of {len} bytes exceeds the {max} byte limit")]
    RecordTooLarge {
        /// The payload length offered.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Another [`Log`](crate::Log), in this process or another, has the
    /// directory open.
    ///
    /// Caused by: two writers configured with the same spool directory (the
    /// lock is an `flock` on `dir/LOCK`). The caller should refuse to start:
    /// two writers would corrupt each other's segments.
    #[error("spool directory {dir} is locked by another writer")]
    Locked {
        /// The spool directory.
        dir: PathBuf,
    },

    /// An earlier `fsync`/`fdatasync` failed, so the writer refuses to go on.
    ///
    /// Caused by: a failed [`sync`](crate::Log::sync) (or the sync done before a
    /// segment rotation or after a removal). After a failed fsync the kernel may
    /// have dropped the dirty pages, and a later fsync may report success
    /// without the data being on disk, so no later sync can be trusted.
    ///
    /// The caller must treat every record appended since the last successful
    /// sync as not durable (do not acknowledge it), drop the `Log` and open it
    /// again: recovery then scans what really is in the files.
    #[error("spool writer is poisoned by an earlier failed sync; reopen the log")]
    Poisoned,

    /// A range of a segment holds no valid record; the reader skipped it.
    ///
    /// Caused by: damage on disk (flipped bytes, zeroed blocks, repeated
    /// bytes) found while reading, or a `from` position that is not a record
    /// boundary (positions must come from the log itself). Unlike every other
    /// error this one does not end the reader: it resumes at the next valid
    /// record (see the crate doc, "resynchronisation"), which it yields next.
    ///
    /// The caller should count and report it (`bytes`, `records`) and may
    /// keep a copy of the segment with [`keep_damaged`](crate::keep_damaged).
    #[error(
        "damaged spool range in segment {segment} at offset {offset}: {bytes} bytes, \
         {records} records skipped ({damage})"
    )]
    Corrupt {
        /// The segment id.
        segment: u64,
        /// The byte offset where the damaged range starts.
        offset: u64,
        /// Length of the range: the reader resumed at `offset + bytes`.
        bytes: u64,
        /// Records lost in the range: exact when the records on both sides
        /// carry sequence numbers, else the record markers found in it (a
        /// lower bound).
        records: u64,
        /// What was wrong at `offset`.
        damage: Damage,
    },

    /// Every segment id up to `u64::MAX` is taken.
    ///
    /// Caused by: a segment file named with an id near `u64::MAX` (never by
    /// normal operation: that would take billions of years). The caller should
    /// report it; an operator must rename or move the segments.
    #[error("segment ids exhausted")]
    IdsExhausted,

    /// A cursor file exists but does not hold a well-formed position.
    ///
    /// Caused by: the file being edited, damaged, or not a cursor file at all
    /// (cursor stores are atomic, so a crash cannot cause this). The caller
    /// should report it and decide: replay from [`Log::first`](crate::Log::first)
    /// (duplicates) or start at [`Log::end`](crate::Log::end) (loss).
    #[error("cursor file {path} is garbled: {reason}")]
    CursorCorrupt {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SpoolError {
    /// Wraps an I/O error, turning `ENOSPC`/`EDQUOT` into [`SpoolError::NoSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            SpoolError::NoSpace { op, path, source }
        } else {
            SpoolError::Io { op, path, source }
        }
    }

    /// True for [`SpoolError::NoSpace`]: the disk (or quota) is full, and the
    /// caller should apply backpressure rather than treat it as a failure.
    #[must_use]
    pub fn is_no_space(&self) -> bool {
        matches!(self, SpoolError::NoSpace { .. })
    }
}

/// `ENOSPC` or `EDQUOT` (std maps the OS error numbers to these kinds).
fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_is_classified() {
        let e = SpoolError::io("write", "/x", io::Error::from_raw_os_error(28));
        assert!(e.is_no_space());
        let e = SpoolError::io("write", "/x", io::Error::from(io::ErrorKind::StorageFull));
        assert!(e.is_no_space());
        let e = SpoolError::io("write", "/x", io::Error::from_raw_os_error(122));
        assert!(e.is_no_space());
        let e = SpoolError::io("write", "/x", io::Error::from_raw_os_error(5));
        assert!(!e.is_no_space());
        assert!(matches!(e, SpoolError::Io { .. }));
    }
}
