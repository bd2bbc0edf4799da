//! The read side: [`Reader`], an iterator over records from a position.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::iter::FusedIterator;
use std::path::PathBuf;

use crate::crc32c::{crc32c, crc32c_update};
use crate::error::{Damage, SpoolError};
use crate::format::{
    Position, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, segment_file_name,
};

/// Read buffer per open segment.
const READ_BUF: usize = 64 * 1024;

/// Iterates over the records of a [`Log`](crate::Log) from a position to the
/// end the log had when the reader was made (see [`Log::read_from`](crate::Log::read_from)).
///
/// Yields `(position, payload)` for each record, in log order, crossing
/// segment boundaries. Every record is verified; on damage or an I/O error it
/// yields one error and then ends. A segment removed (by
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
    /// The open segment, positioned at `pos.offset`.
    file: Option<BufReader<File>>,
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
            file: None,
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

    fn corrupt(&self, damage: Damage) -> SpoolError {
        SpoolError::Corrupt {
            segment: self.pos.segment,
            offset: self.pos.offset,
            damage,
        }
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
                        self.file = None;
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let path = self.dir.join(segment_file_name(id));
            if self.file.is_none() {
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Removed since the snapshot: skip it.
                        self.pos.offset = len;
                        continue;
                    }
                    Err(e) => return Err(SpoolError::io("open", path, e)),
                };
                let mut reader = BufReader::with_capacity(READ_BUF, file);
                reader
                    .seek(SeekFrom::Start(self.pos.offset))
                    .map_err(|e| SpoolError::io("seek in", &path, e))?;
                self.file = Some(reader);
            }
            let Some(reader) = self.file.as_mut() else {
                return Ok(None);
            };
            let remaining = len - self.pos.offset;
            if remaining < RECORD_HEADER_LEN {
                return Err(self.corrupt(Damage::TruncatedHeader { remaining }));
            }
            let mut bytes = [0u8; 8];
            if let Err(e) = reader.read_exact(&mut bytes) {
                return Err(self.read_error(path, e, Damage::TruncatedHeader { remaining }));
            }
            let header = RecordHeader::decode(bytes);
            let Some(payload_len) = header.checked_len() else {
                return Err(self.corrupt(Damage::LengthTooLarge { len: header.len }));
            };
            let after_header = remaining - RECORD_HEADER_LEN;
            if payload_len > after_header {
                return Err(self.corrupt(Damage::Truncated {
                    len: header.len,
                    remaining: after_header,
                }));
            }
            // At most MAX_RECORD, checked above.
            let mut payload = vec![0u8; header.len as usize];
            if let Err(e) = reader.read_exact(&mut payload) {
                let damage = Damage::Truncated {
                    len: header.len,
                    remaining: after_header,
                };
                return Err(self.read_error(path, e, damage));
            }
            let computed = crc32c_update(crc32c(&header.len.to_le_bytes()), &payload);
            if computed != header.crc {
                return Err(self.corrupt(Damage::Checksum {
                    stored: header.crc,
                    computed,
                }));
            }
            let at = self.pos;
            self.pos.offset += RECORD_HEADER_LEN + payload_len;
            return Ok(Some((at, payload)));
        }
    }

    /// A short read means the file is shorter than the log said: damage.
    fn read_error(&self, path: PathBuf, e: io::Error, damage: Damage) -> SpoolError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.corrupt(damage)
        } else {
            SpoolError::io("read", path, e)
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
            Err(e) => {
                self.done = true;
                self.file = None;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Reader {}
