//! The read side: [`Reader`], an iterator over records from a position.

use std::fs::File;
use std::io;
use std::iter::FusedIterator;
use std::path::PathBuf;

use crate::entries::Entry;
use crate::error::SpoolError;
use crate::format::{Position, SEGMENT_HEADER_LEN, segment_file_name};
use crate::segment::{SegmentFile, Walker};

/// Iterates over the records of a [`Log`](crate::Log) from a position to the
/// end the log had when the reader was made (see [`Log::read_from`](crate::Log::read_from)).
///
/// Yields `(position, payload)` for each record, in log order, crossing
/// segment boundaries. Every record is verified. A damaged range yields one
/// [`SpoolError::Corrupt`] (its offset, length and the records lost in it)
/// and the reader carries on with the next valid record after it (see the
/// crate doc, "resynchronisation"); an I/O error is yielded and ends the
/// reader. A segment removed (by
/// [`Log::remove_before`](crate::Log::remove_before)) before the reader got to
/// it is skipped. Segment files are opened lazily, one at a time, read-only.
///
/// [`Reader::position`] is the position to resume from (a cursor to persist
/// once the records yielded so far are processed). Use `by_ref()` or
/// `while let` to keep access to it while iterating.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    /// Snapshot of the live segments: (id, length), ascending.
    segments: Vec<(u64, u64)>,
    /// Index in `segments` of the segment being read.
    idx: usize,
    /// Where the next record starts.
    pos: Position,
    /// The open segment, its walker at `pos.offset`.
    walker: Option<Walker>,
    /// Sequence number of the last record yielded (carried across segments).
    last_seq: Option<u64>,
    done: bool,
}

impl Reader {
    pub(crate) fn new(
        dir: PathBuf,
        segments: Vec<(u64, u64)>,
        end: Position,
        from: Position,
    ) -> Self {
        let idx = segments.partition_point(|&(id, _)| id < from.segment);
        let pos = match segments.get(idx) {
            Some(&(id, _)) if id == from.segment => {
                Position::new(id, from.offset.max(SEGMENT_HEADER_LEN))
            }
            Some(&(id, _)) => Position::new(id, SEGMENT_HEADER_LEN),
            None => from.max(end),
        };
        Reader {
            dir,
            segments,
            idx,
            pos,
            walker: None,
            last_seq: None,
            done: false,
        }
    }

    /// Where the next record would start: after the last record yielded (or
    /// the normalized start position if none was yielded yet). After the
    /// reader is exhausted this is the position after the last record of its
    /// snapshot (or `from`, if that was further): a valid cursor to resume
    /// from later.
    #[must_use]
    pub fn position(&self) -> Position {
        self.pos
    }

    fn read_next(&mut self) -> Result<Option<(Position, Vec<u8>)>, SpoolError> {
        loop {
            let Some(&(id, len)) = self.segments.get(self.idx) else {
                return Ok(None);
            };
            if self.pos.offset >= len {
                match self.segments.get(self.idx + 1) {
                    Some(&(next, _)) => {
                        self.idx += 1;
                        self.pos = Position::new(next, SEGMENT_HEADER_LEN);
                        self.walker = None;
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let path = self.dir.join(segment_file_name(id));
            let walker = match &mut self.walker {
                Some(w) => w,
                None => {
                    let file = match File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            // Removed since the snapshot: skip it.
                            self.pos.offset = len;
                            continue;
                        }
                        Err(e) => return Err(SpoolError::io("open", path, e)),
                    };
                    let seg = SegmentFile::new(file, len)
                        .map_err(|e| SpoolError::io("read", &path, e))?;
                    self.walker
                        .insert(Walker::new(seg, self.pos.offset, self.last_seq))
                }
            };
            let item = walker
                .next()
                .map_err(|e| SpoolError::io("read", &path, e))?;
            self.pos.offset = walker.offset.max(self.pos.offset);
            self.last_seq = walker.last_seq;
            match item {
                None => self.pos.offset = len,
                Some(Entry::Record {
                    offset, payload, ..
                }) => return Ok(Some((Position::new(id, offset), payload))),
                Some(Entry::Damaged {
                    offset,
                    bytes,
                    records,
                    damage,
                }) => {
                    return Err(SpoolError::Corrupt {
                        segment: id,
                        offset,
                        bytes,
                        records,
                        damage,
                    });
                }
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<(Position, Vec<u8>), SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_next() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            // Damage was skipped: the reader goes on after it.
            Err(e @ SpoolError::Corrupt { .. }) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                self.walker = None;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Reader {}
