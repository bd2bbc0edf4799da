//! One segment file read record by record, in either format, with the
//! resynchronisation after damage. Recovery ([`Log::open`](crate::Log::open)),
//! [`Reader`](crate::Reader) and [`SegmentEntries`] all walk segments
//! through [`Walker`], so damage is framed and counted the same way
//! everywhere.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::entries::Entry;
use crate::error::Damage;
use crate::format::{RECORD_HEADER_LEN, RECORD_MARKER, SEGMENT_HEADER_LEN, Version};

/// Bytes read from the file at a time (records smaller than this are served
/// from the window without another `pread`).
const WINDOW: u64 = 256 * 1024;
/// Bytes the resynchronisation search of an `HPSPOOL1` segment may hash per
/// damaged range: there is no marker, so every byte offset is a candidate,
/// and this bounds the time spent on a range full of plausible lengths.
const V1_RESYNC_BUDGET: u64 = 64 << 20;

/// An open segment file and the end up to which it is read.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    file: File,
    /// Bytes of the file that belong to the segment (a reader's snapshot of
    /// the active segment ends before the writer's latest appends).
    end: u64,
    version: Version,
    /// The header names a format (otherwise `version` was guessed from the
    /// records found).
    header_ok: bool,
    win: Vec<u8>,
    win_start: u64,
}

/// The outcome of checking for a record at an offset.
enum Check {
    Valid {
        seq: Option<u64>,
        payload: Vec<u8>,
        total: u64,
    },
    Bad(Damage),
}

impl SegmentFile {
    /// Opens a segment whose first `end` bytes are to be read. A header that
    /// names no format is not an error: the version is then guessed from the
    /// first valid record found (an `HPSPOOL2` marker search first).
    pub(crate) fn new(file: File, end: u64) -> io::Result<Self> {
        let mut seg = SegmentFile {
            file,
            end,
            version: Version::V2,
            header_ok: false,
            win: Vec::new(),
            win_start: 0,
        };
        let named = if end >= SEGMENT_HEADER_LEN {
            seg.read(0, SEGMENT_HEADER_LEN)?
                .and_then(|magic| Version::from_magic(&magic))
        } else {
            None
        };
        if let Some(v) = named {
            seg.version = v;
            if matches!(seg.check(SEGMENT_HEADER_LEN)?, Check::Valid { .. })
                || seg.end == SEGMENT_HEADER_LEN
            {
                seg.header_ok = true;
                return Ok(seg);
            }
        }
        // No header, or no valid record where the header says the first one
        // is (a damaged header can name the other format): the records found
        // decide, HPSPOOL2's marker search first.
        for v in [Version::V2, Version::V1] {
            seg.version = v;
            if seg.find_valid(SEGMENT_HEADER_LEN, None)?.is_some() {
                seg.header_ok = named == Some(v);
                return Ok(seg);
            }
        }
        seg.version = named.unwrap_or(Version::V2);
        seg.header_ok = named.is_some();
        Ok(seg)
    }

    pub(crate) fn version(&self) -> Version {
        self.version
    }

    pub(crate) fn header_ok(&self) -> bool {
        self.header_ok
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// `n` bytes at `off`, `None` if the file ends first.
    fn read(&mut self, off: u64, n: u64) -> io::Result<Option<Vec<u8>>> {
        Ok(self.slice(off, n)?.map(<[u8]>::to_vec))
    }

    /// `n` bytes at `off` (from the window when they fit), `None` if the
    /// file ends first.
    fn slice(&mut self, off: u64, n: u64) -> io::Result<Option<&[u8]>> {
        let in_window = off >= self.win_start && off + n <= self.win_start + self.win.len() as u64;
        if !in_window {
            let want = n.max(WINDOW).min(self.end.saturating_sub(off)).max(n);
            if want <= WINDOW && self.win.capacity() as u64 > 2 * WINDOW {
                // Do not keep a large record's buffer around.
                self.win = Vec::new();
            }
            self.win
                .resize(usize::try_from(want).unwrap_or(usize::MAX), 0);
            let got = read_full(&self.file, &mut self.win, off)?;
            self.win.truncate(got);
            self.win_start = off;
            if (got as u64) < n {
                return Ok(None);
            }
        }
        let start = usize::try_from(off - self.win_start).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
        Ok(self.win.get(start..end))
    }

    /// The bytes from `p` to the end of the window, reloading it at `p`
    /// unless it holds at least a record header's worth from there; `None`
    /// if the file ends first.
    fn window_from(&mut self, p: u64) -> io::Result<Option<&[u8]>> {
        let win_end = self.win_start + self.win.len() as u64;
        if p >= self.win_start && p + RECORD_HEADER_LEN <= win_end {
            let start = usize::try_from(p - self.win_start).unwrap_or(usize::MAX);
            return Ok(self.win.get(start..));
        }
        let n = WINDOW.min(self.end.saturating_sub(p));
        self.slice(p, n)
    }

    /// Checks for a record at `off`.
    fn check(&mut self, off: u64) -> io::Result<Check> {
        let hl = self.version.header_len();
        let remaining = self.end.saturating_sub(off);
        if remaining < hl {
            return Ok(Check::Bad(Damage::TruncatedHeader { remaining }));
        }
        let version = self.version;
        let Some(bytes) = self.slice(off, hl)? else {
            return Ok(Check::Bad(Damage::TruncatedHeader { remaining: 0 }));
        };
        let Some(header) = version.decode(bytes) else {
            return Ok(Check::Bad(Damage::NoMarker));
        };
        let Some(len) = header.checked_len() else {
            return Ok(Check::Bad(Damage::LengthTooLarge { len: header.len }));
        };
        if len > remaining - hl {
            return Ok(Check::Bad(Damage::Truncated {
                len: header.len,
                remaining: remaining - hl,
            }));
        }
        let Some(payload) = self.read(off + hl, len)? else {
            return Ok(Check::Bad(Damage::Truncated {
                len: header.len,
                remaining: 0,
            }));
        };
        let computed = header.computed_crc(&payload);
        if computed != header.crc {
            return Ok(Check::Bad(Damage::Checksum {
                stored: header.crc,
                computed,
            }));
        }
        Ok(Check::Valid {
            seq: header.seq,
            payload,
            total: hl + len,
        })
    }

    /// Where reading resumes at or after `from`: the first offset holding a
    /// valid record acceptable after `last` (see [`acceptable`]), with its
    /// sequence number.
    fn find_valid(
        &mut self,
        from: u64,
        last: Option<u64>,
    ) -> io::Result<Option<(u64, Option<u64>)>> {
        let version = self.version;
        let hl = version.header_len();
        let mut budget = V1_RESYNC_BUDGET;
        let mut p = from;
        while p + hl <= self.end {
            // Next candidate: a marker (V2), or any offset with a plausible
            // length within the budget (V1).
            let candidate = match self.version {
                Version::V2 => {
                    let Some(window) = self.window_from(p)? else {
                        break;
                    };
                    let n = window.len() as u64;
                    match window.windows(4).position(|w| w == RECORD_MARKER) {
                        Some(i) => p + i as u64,
                        None => {
                            // The last 3 bytes may start a marker.
                            p += n.saturating_sub(3).max(1);
                            continue;
                        }
                    }
                }
                Version::V1 => {
                    let Some(bytes) = self.slice(p, hl)? else {
                        break;
                    };
                    let plausible = Version::V1.decode(bytes).and_then(|h| h.checked_len());
                    match plausible {
                        Some(len) if len <= self.end - p - hl && len <= budget => {
                            budget -= len;
                            p
                        }
                        _ => {
                            p += 1;
                            continue;
                        }
                    }
                }
            };
            // A copy of a delivered record is not worth a checksum.
            if let (Some(l), Some(bytes)) = (last, self.slice(candidate, hl)?)
                && version
                    .decode(bytes)
                    .and_then(|h| h.seq)
                    .is_some_and(|seq| seq <= l)
            {
                p = candidate + 1;
                continue;
            }
            if let Check::Valid { seq, .. } = self.check(candidate)?
                && acceptable(seq, last)
            {
                return Ok(Some((candidate, seq)));
            }
            p = candidate + 1;
        }
        Ok(None)
    }

    /// Record markers in `[from, to)`: the records whose headers survive in
    /// a damaged range.
    fn markers(&mut self, from: u64, to: u64) -> io::Result<u64> {
        let mut count = 0;
        let mut p = from;
        while p + 4 <= to {
            let n = WINDOW.min(to - p);
            let Some(window) = self.slice(p, n)? else {
                break;
            };
            count += window.windows(4).filter(|w| *w == RECORD_MARKER).count() as u64;
            p += n.saturating_sub(3).max(1);
        }
        Ok(count)
    }
}

/// Whether a valid record with sequence `seq` may follow the last delivered
/// record: its number must be above the last one, else it is a copy of
/// earlier bytes.
fn acceptable(seq: Option<u64>, last: Option<u64>) -> bool {
    match (seq, last) {
        (Some(seq), Some(last)) => seq > last,
        _ => true,
    }
}

/// Reads into all of `buf` at `off` unless the file ends first; returns the
/// bytes read.
fn read_full(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Walks one segment from an offset: records, and damaged ranges between
/// them. Carries the last sequence number delivered so that copies of
/// earlier records are skipped and the records lost in a range are counted
/// exactly.
#[derive(Debug)]
pub(crate) struct Walker {
    pub(crate) seg: SegmentFile,
    /// Where the next record should start.
    pub(crate) offset: u64,
    /// The sequence number of the last record delivered (across segments
    /// when the caller carries it over).
    pub(crate) last_seq: Option<u64>,
    /// A record of this segment was delivered, so the records lost in a
    /// damaged range are the gap in sequence numbers around it (at a
    /// segment's start they are not: a segment before may be gone).
    delivered_here: bool,
}

impl Walker {
    pub(crate) fn new(seg: SegmentFile, offset: u64, last_seq: Option<u64>) -> Self {
        Walker {
            seg,
            offset: offset.max(SEGMENT_HEADER_LEN),
            last_seq,
            delivered_here: false,
        }
    }

    /// The next record or damaged range; `None` at the end.
    pub(crate) fn next(&mut self) -> io::Result<Option<Entry>> {
        let at = self.offset;
        if at >= self.seg.end {
            return Ok(None);
        }
        let damage = match self.seg.check(at)? {
            Check::Valid {
                seq,
                payload,
                total,
            } => match (seq, self.last_seq) {
                (Some(s), Some(last)) if s <= last => Damage::Duplicate {
                    seq: s,
                    after: last,
                },
                _ => {
                    self.delivered_here = true;
                    self.offset = at + total;
                    self.last_seq = seq.or(self.last_seq);
                    return Ok(Some(Entry::Record {
                        offset: at,
                        seq,
                        payload,
                    }));
                }
            },
            Check::Bad(damage) => damage,
        };
        let found = self.seg.find_valid(at + 1, self.last_seq)?;
        let resume = found.map_or(self.seg.end, |(p, _)| p);
        let records = match (found, self.last_seq) {
            (Some((_, Some(next))), Some(last)) if self.delivered_here => next - last - 1,
            _ if self.seg.version == Version::V1 => 1,
            _ => {
                let markers = self.seg.markers(at, resume)?;
                if matches!(damage, Damage::Duplicate { .. }) {
                    markers.saturating_sub(1)
                } else {
                    markers.max(1)
                }
            }
        };
        self.offset = resume;
        Ok(Some(Entry::Damaged {
            offset: at,
            bytes: resume - at,
            records,
            damage,
        }))
    }
}
