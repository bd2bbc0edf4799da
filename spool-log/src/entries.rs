//! [`SegmentEntries`]: one segment file read on its own, records and damaged
//! ranges alike (for tools that inspect or replay a quarantined copy).

use std::fs::File;
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use crate::error::{Damage, SpoolError};
use crate::format::{SEGMENT_HEADER_LEN, Version};
use crate::segment::{SegmentFile, Walker};

/// What [`SegmentEntries`] finds, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record whose marker, length and checksum are valid.
    Record {
        /// Byte offset of the record in the file.
        offset: u64,
        /// Its sequence number (`None` in an `HPSPOOL1` segment).
        seq: Option<u64>,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// A range holding no valid record (the same ranges a
    /// [`Reader`](crate::Reader) skips).
    Damaged {
        /// Byte offset where the range starts (0: the segment header).
        offset: u64,
        /// Its length.
        bytes: u64,
        /// Records lost in it (see [`SpoolError::Corrupt`]).
        records: u64,
        /// What was wrong at `offset`.
        damage: Damage,
    },
}

/// Iterates over a segment file (live, or a copy in quarantine) without a
/// [`Log`](crate::Log): no lock is taken and nothing is repaired.
#[derive(Debug)]
pub struct SegmentEntries {
    path: PathBuf,
    walker: Walker,
    header_pending: bool,
    done: bool,
}

impl SegmentEntries {
    /// Opens `path`. Fails only when the file cannot be opened or read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SpoolError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| SpoolError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| SpoolError::io("stat", &path, e))?
            .len();
        let seg = SegmentFile::new(file, len).map_err(|e| SpoolError::io("read", &path, e))?;
        let header_pending = !seg.header_ok();
        Ok(SegmentEntries {
            path,
            walker: Walker::new(seg, SEGMENT_HEADER_LEN, None),
            header_pending,
            done: false,
        })
    }

    /// The format: `"HPSPOOL2"` or `"HPSPOOL1"`, as the header says or, when
    /// the header is damaged, as the records found say.
    #[must_use]
    pub fn format(&self) -> &'static str {
        match self.walker.seg.version() {
            Version::V1 => "HPSPOOL1",
            Version::V2 => "HPSPOOL2",
        }
    }

    /// The file's length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.walker.seg.end()
    }

    /// True for an empty file.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for SegmentEntries {
    type Item = Result<Entry, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.header_pending {
            self.header_pending = false;
            return Some(Ok(Entry::Damaged {
                offset: 0,
                bytes: SEGMENT_HEADER_LEN.min(self.len()),
                records: 0,
                damage: Damage::BadHeader,
            }));
        }
        match self.walker.next() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(SpoolError::io("read", &self.path, e)))
            }
        }
    }
}

impl FusedIterator for SegmentEntries {}
