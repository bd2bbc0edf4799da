//! Constants and encodings of the on-disk format, and the [`Position`] type.

use std::ffi::OsStr;
use std::fmt;

use crate::crc32c::{crc32c, crc32c_update};

/// The largest payload a record may carry: 64 MiB. A length field above it is
/// corruption.
pub const MAX_RECORD: usize = 64 << 20;

/// The default segment size limit: 8 MiB.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 8 << 20;

/// The 8 bytes every segment this version writes starts with.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HPSPOOL2";

/// The header of segments written by the first release (records without
/// marker or sequence number). Still read; never written.
pub const SEGMENT_MAGIC_V1: [u8; 8] = *b"HPSPOOL1";

/// Length of the segment header: the offset of a segment's first record.
pub const SEGMENT_HEADER_LEN: u64 = SEGMENT_MAGIC.len() as u64;

/// The 4 bytes every record starts with (`HPSPOOL2`). `0xFE` never occurs in
/// UTF-8 text, and none of the bytes is 0x00 or 0xFF (what blank or erased
/// blocks hold).
pub const RECORD_MARKER: [u8; 4] = [0xFE, 0x68, 0x70, 0xA5];

/// Length of a record header: `marker | len: u32 LE | seq: u64 LE | crc: u32 LE`.
pub const RECORD_HEADER_LEN: u64 = 20;

/// Length of a record header in an `HPSPOOL1` segment: `len | crc`.
pub const RECORD_HEADER_LEN_V1: u64 = 8;

/// The subdirectory of the spool directory that damaged segments are moved to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The lock file in the spool directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Where a record starts: a segment id and a byte offset in that segment file.
///
/// Positions are totally ordered in log order (segment first, then offset), and
/// stay valid across reopen: segment ids are never reused. The position just
/// after a segment's last record, `{ segment, offset: segment length }`, is a
/// valid cursor too: reading from it continues with the next segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The segment id (the number in the segment's file name).
    pub segment: u64,
    /// The byte offset in the segment file (at least [`SEGMENT_HEADER_LEN`] for
    /// a record).
    pub offset: u64,
}

impl Position {
    /// A position from its parts.
    #[must_use]
    pub const fn new(segment: u64, offset: u64) -> Self {
        Position { segment, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// `{id:020}.seg`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The id of a file named exactly `{id:020}.seg`, else `None`.
pub(crate) fn parse_segment_name(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(".seg")?;
    parse_id_digits(digits)
}

/// The id of a file in the quarantine directory: `{id:020}.seg` with an
/// optional `.N` suffix added to avoid overwriting an earlier one.
pub(crate) fn parse_quarantined_name(name: &OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let digits = name.get(..20)?;
    let rest = name.get(20..)?;
    if rest == ".seg" || rest.starts_with(".seg.") {
        parse_id_digits(digits)
    } else {
        None
    }
}

fn parse_id_digits(digits: &str) -> Option<u64> {
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The two record layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// `HPSPOOL1`: `len | crc(len, payload)`.
    V1,
    /// `HPSPOOL2`: `marker | len | seq | crc(len, seq, payload)`.
    V2,
}

impl Version {
    /// The version a segment header names, if it names one.
    pub(crate) fn from_magic(magic: &[u8]) -> Option<Version> {
        if magic == SEGMENT_MAGIC {
            Some(Version::V2)
        } else if magic == SEGMENT_MAGIC_V1 {
            Some(Version::V1)
        } else {
            None
        }
    }

    pub(crate) fn header_len(self) -> u64 {
        match self {
            Version::V1 => RECORD_HEADER_LEN_V1,
            Version::V2 => RECORD_HEADER_LEN,
        }
    }

    /// Decodes a record header (`bytes` holds at least [`Version::header_len`]
    /// bytes); `None` when a V2 header lacks the marker.
    pub(crate) fn decode(self, bytes: &[u8]) -> Option<RecordHeader> {
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_le_bytes(b)
        };
        match self {
            Version::V1 => Some(RecordHeader {
                len: u32_at(0),
                seq: None,
                crc: u32_at(4),
            }),
            Version::V2 => {
                if bytes[..4] != RECORD_MARKER {
                    return None;
                }
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&bytes[8..16]);
                Some(RecordHeader {
                    len: u32_at(4),
                    seq: Some(u64::from_le_bytes(seq)),
                    crc: u32_at(16),
                })
            }
        }
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordHeader {
    pub(crate) len: u32,
    /// The record's sequence number (`None` in V1 segments).
    pub(crate) seq: Option<u64>,
    pub(crate) crc: u32,
}

impl RecordHeader {
    /// The length as a byte count, if it is within [`MAX_RECORD`].
    pub(crate) fn checked_len(self) -> Option<u64> {
        (self.len as usize <= MAX_RECORD).then_some(u64::from(self.len))
    }

    /// The checksum this header's length and sequence, followed by `payload`,
    /// must have.
    pub(crate) fn computed_crc(self, payload: &[u8]) -> u32 {
        let mut crc = crc32c(&self.len.to_le_bytes());
        if let Some(seq) = self.seq {
            crc = crc32c_update(crc, &seq.to_le_bytes());
        }
        crc32c_update(crc, payload)
    }
}

/// Appends the encoded `HPSPOOL2` record (header and payload) to `out`. The
/// payload must be at most [`MAX_RECORD`] bytes (the caller checks).
pub(crate) fn encode_record(payload: &[u8], seq: u64, out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_RECORD);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let header = RecordHeader {
        len,
        seq: Some(seq),
        crc: 0,
    };
    out.extend_from_slice(&RECORD_MARKER);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&header.computed_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(
                parse_segment_name(OsStr::new(&segment_file_name(id))),
                Some(id)
            );
        }
        for stray in [
            "1.seg",
            "00000000000000000001.seg.tmp",
            "0000000000000000000a.seg",
            "99999999999999999999.seg",
            "+0000000000000000001.seg",
            "LOCK",
            "quarantine",
        ] {
            assert_eq!(parse_segment_name(OsStr::new(stray)), None, "{stray}");
        }
        assert_eq!(
            parse_quarantined_name(OsStr::new("00000000000000000007.seg.3")),
            Some(7)
        );
        assert_eq!(
            parse_quarantined_name(OsStr::new("00000000000000000007.seg")),
            Some(7)
        );
        assert_eq!(
            parse_quarantined_name(OsStr::new("00000000000000000007.segx")),
            None
        );
    }

    #[test]
    fn record_encoding() {
        let mut out = Vec::new();
        encode_record(b"abc", 7, &mut out);
        assert_eq!(out.len(), 23);
        let header = Version::V2.decode(&out[..20]).unwrap();
        assert_eq!(header.len, 3);
        assert_eq!(header.seq, Some(7));
        let mut covered = vec![3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
        covered.extend_from_slice(b"abc");
        assert_eq!(header.crc, crc32c(&covered));
        assert_eq!(&out[20..], b"abc");
        // An all-zero header is never a record.
        assert!(Version::V2.decode(&[0; 20]).is_none());
        let v1 = Version::V1.decode(&[0; 8]).unwrap();
        assert_ne!(v1.computed_crc(b""), 0);
    }

    #[test]
    fn positions_order_by_segment_then_offset() {
        assert!(Position::new(1, 900) < Position::new(2, 8));
        assert!(Position::new(2, 8) < Position::new(2, 9));
        assert_eq!(Position::new(3, 17).to_string(), "3:17");
    }
}
