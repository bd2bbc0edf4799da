//! Verification of segment files at open: the sequential scan, and the rule
//! that tells a torn tail from damage in the middle.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use crate::crc32c::{crc32c, crc32c_update};
use crate::error::Damage;
use crate::format::{RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

/// Read buffer of the sequential scan.
const SCAN_BUF: usize = 256 * 1024;
/// Chunk in which payloads are hashed (never the whole payload in memory).
const CHUNK: usize = 64 * 1024;
/// Window of the byte-by-byte resynchronisation search.
const WINDOW: u64 = 1 << 20;
/// Bytes the resynchronisation search may hash: bounds the time spent on a
/// torn tail full of plausible-looking lengths.
const RESYNC_HASH_BUDGET: u64 = 64 << 20;

/// What the scan of one segment file found.
#[derive(Debug)]
pub(crate) enum SegmentScan {
    /// A good header and nothing but valid records up to the end of the file.
    Clean { len: u64, records: u64 },
    /// A file shorter than the segment header whose bytes are a prefix of it:
    /// a segment whose creation was interrupted. It holds no record.
    TornHeader { file_len: u64 },
    /// The header or a record at `offset` is bad; `records` valid records
    /// precede it.
    Damaged {
        offset: u64,
        records: u64,
        file_len: u64,
        damage: Damage,
    },
}

/// Result of checking the record that starts at some offset.
enum Check {
    /// A valid record of `total` bytes (header included).
    Valid { total: u64 },
    /// A record that fits in the file but whose checksum is wrong.
    Framed { total: u64, damage: Damage },
    /// No record can be framed here (short header, length too large or past the end).
    Unframed(Damage),
}

/// Checks the record at the reader's position; `remaining` is the number of
/// bytes from there to the end of the file. Reads exactly the record (or its
/// header only when the length is implausible).
fn check_record(r: &mut impl Read, remaining: u64, chunk: &mut [u8]) -> io::Result<Check> {
    if remaining < RECORD_HEADER_LEN {
        return Ok(Check::Unframed(Damage::TruncatedHeader { remaining }));
    }
    let mut bytes = [0u8; 8];
    r.read_exact(&mut bytes)?;
    let header = RecordHeader::decode(bytes);
    let Some(len) = header.checked_len() else {
        return Ok(Check::Unframed(Damage::LengthTooLarge { len: header.len }));
    };
    let after_header = remaining - RECORD_HEADER_LEN;
    if len > after_header {
        return Ok(Check::Unframed(Damage::Truncated {
            len: header.len,
            remaining: after_header,
        }));
    }
    let mut crc = crc32c(&header.len.to_le_bytes());
    let mut left = len;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        r.read_exact(&mut chunk[..n])?;
        crc = crc32c_update(crc, &chunk[..n]);
        left -= n as u64;
    }
    let total = RECORD_HEADER_LEN + len;
    if crc == header.crc {
        Ok(Check::Valid { total })
    } else {
        Ok(Check::Framed {
            total,
            damage: Damage::Checksum {
                stored: header.crc,
                computed: crc,
            },
        })
    }
}

/// Scans a whole segment file, verifying the header and every record.
pub(crate) fn scan_segment(file: &File) -> io::Result<SegmentScan> {
    let file_len = file.metadata()?.len();
    if file_len < SEGMENT_HEADER_LEN {
        let mut buf = [0u8; 8];
        let prefix = &mut buf[..usize::try_from(file_len).unwrap_or(0)];
        file.read_exact_at(prefix, 0)?;
        return Ok(if SEGMENT_MAGIC.starts_with(prefix) {
            SegmentScan::TornHeader { file_len }
        } else {
            SegmentScan::Damaged {
                offset: 0,
                records: 0,
                file_len,
                damage: Damage::BadHeader,
            }
        });
    }
    let mut reader = BufReader::with_capacity(SCAN_BUF, file);
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic)?;
    if magic != SEGMENT_MAGIC {
        return Ok(SegmentScan::Damaged {
            offset: 0,
            records: 0,
            file_len,
            damage: Damage::BadHeader,
        });
    }
    let mut chunk = vec![0u8; CHUNK];
    let mut offset = SEGMENT_HEADER_LEN;
    let mut records = 0u64;
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(SegmentScan::Clean {
                len: offset,
                records,
            });
        }
        match check_record(&mut reader, remaining, &mut chunk)? {
            Check::Valid { total } => {
                offset += total;
                records += 1;
            }
            Check::Framed { damage, .. } | Check::Unframed(damage) => {
                return Ok(SegmentScan::Damaged {
                    offset,
                    records,
                    file_len,
                    damage,
                });
            }
        }
    }
}

/// Reads a file from a position with `pread`, leaving the file cursor alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Decides whether the damage at `bad` in the last segment is a torn tail
/// (true: safe to truncate at `bad`) or damage with valid data after it
/// (false: the segment must be quarantined).
///
/// A tail is torn when no valid record can be found after `bad`:
/// 1. following the length fields from `bad` (the framing a torn group of
///    appends leaves; zero-filled blocks frame as 8-byte records that never
///    verify, since the checksum covers the length) finds no valid record, and
/// 2. a search at every byte offset after `bad` (which catches a damaged
///    length field with good records behind it) finds no valid record, within
///    [`RESYNC_HASH_BUDGET`] hashed bytes; candidates that would exceed the
///    budget are skipped.
pub(crate) fn tail_is_torn(file: &File, bad: u64, file_len: u64) -> io::Result<bool> {
    let mut chunk = vec![0u8; CHUNK];

    // 1. Follow the framing.
    let mut q = bad;
    while q < file_len {
        let mut r = ReadAt { file, pos: q };
        match check_record(&mut r, file_len - q, &mut chunk)? {
            Check::Valid { .. } => return Ok(false),
            Check::Framed { total, .. } => q += total,
            Check::Unframed(_) => break,
        }
    }

    // 2. Search every byte offset.
    let mut budget = RESYNC_HASH_BUDGET;
    let mut window: Vec<u8> = Vec::new();
    let mut win_start = 0u64;
    let mut p = bad + 1;
    while p + RECORD_HEADER_LEN <= file_len {
        if p < win_start || p + RECORD_HEADER_LEN > win_start + window.len() as u64 {
            let want = WINDOW.min(file_len - p);
            window.resize(usize::try_from(want).unwrap_or(0), 0);
            file.read_exact_at(&mut window, p)?;
            win_start = p;
        }
        let i = usize::try_from(p - win_start).unwrap_or(usize::MAX);
        let Some(bytes) = window
            .get(i..i + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        else {
            // Unreachable: the window was just made to cover [p, p + 8).
            break;
        };
        let header = RecordHeader::decode(bytes);
        if let Some(len) = header.checked_len()
            && len <= file_len - p - RECORD_HEADER_LEN
            && len <= budget
        {
            budget -= len;
            let mut crc = crc32c(&header.len.to_le_bytes());
            let start = i + 8;
            let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l));
            if let Some(payload) = end.and_then(|end| window.get(start..end)) {
                crc = crc32c_update(crc, payload);
            } else {
                let mut r = ReadAt {
                    file,
                    pos: p + RECORD_HEADER_LEN,
                };
                let mut left = len;
                while left > 0 {
                    let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    r.read_exact(&mut chunk[..n])?;
                    crc = crc32c_update(crc, &chunk[..n]);
                    left -= n as u64;
                }
            }
            if crc == header.crc {
                return Ok(false);
            }
        }
        p += 1;
    }
    Ok(true)
}
