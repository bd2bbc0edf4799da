//! [`CursorFile`]: a position persisted atomically in a small file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::crc32c::crc32c;
use crate::error::SpoolError;
use crate::format::Position;

/// First word of a cursor file.
const MAGIC: &str = "HPCURSOR1";
/// Longer files are not cursors (the longest valid one is 60 bytes).
const MAX_LEN: u64 = 128;

/// A [`Position`] persisted in a file, e.g. how far a sink has drained.
///
/// The file holds one line, `HPCURSOR1 <segment> <offset> <crc>\n`, where
/// `<crc>` is 8 lowercase hex digits of the CRC-32C of the text before the
/// last space. [`CursorFile::store`] replaces it atomically: write
/// `<path>.tmp`, `fsync` it, rename it over `<path>`, `fsync` the directory.
/// After a crash the file holds either the old or the new position.
///
/// Persist only positions of records that are durable in the log (after
/// [`Log::sync`](crate::Log::sync)); a cursor past the durable end may point
/// into the middle of records appended after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// A cursor stored at `path` (not touched until load or store). It may live
    /// in the spool directory: the log ignores files not named like segments.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CursorFile { path: path.into() }
    }

    /// The cursor file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored position; `None` if the file does not exist (never stored).
    ///
    /// A file that exists but is not a well-formed cursor is
    /// [`SpoolError::CursorCorrupt`].
    pub fn load(&self) -> Result<Option<Position>, SpoolError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpoolError::io("open", &self.path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| SpoolError::io("read", &self.path, e))?;
        decode(&bytes)
            .map(Some)
            .map_err(|reason| SpoolError::CursorCorrupt {
                path: self.path.clone(),
                reason,
            })
    }

    /// Replaces the stored position, atomically and durably.
    pub fn store(&self, pos: Position) -> Result<(), SpoolError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(encode(pos).as_bytes())?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::io("write", &tmp, e));
        }
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::io("rename into place", &self.path, e));
        }
        let parent = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| SpoolError::io("sync", parent, e))
    }
}

fn body(pos: Position) -> String {
    format!("{MAGIC} {} {}", pos.segment, pos.offset)
}

fn encode(pos: Position) -> String {
    let body = body(pos);
    let crc = crc32c(body.as_bytes());
    format!("{body} {crc:08x}\n")
}

fn decode(bytes: &[u8]) -> Result<Position, &'static str> {
    if bytes.len() as u64 > MAX_LEN {
        return Err("too long to be a cursor");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text")?;
    let line = text
        .strip_suffix('\n')
        .ok_or("no trailing newline (truncated?)")?;
    let (body, crc) = line.rsplit_once(' ').ok_or("missing checksum")?;
    let mut words = body.split(' ');
    if words.next() != Some(MAGIC) {
        return Err("does not start with HPCURSOR1");
    }
    let (Some(segment), Some(offset), None) = (words.next(), words.next(), words.next()) else {
        return Err("expected a segment and an offset");
    };
    let segment: u64 = segment.parse().map_err(|_| "segment is not a number")?;
    let offset: u64 = offset.parse().map_err(|_| "offset is not a number")?;
    if crc.len() != 8 || !crc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("checksum is not 8 lowercase hex digits");
    }
    let stored = u32::from_str_radix(crc, 16).map_err(|_| "checksum is not hex")?;
    if stored != crc32c(body.as_bytes()) {
        return Err("checksum mismatch");
    }
    let pos = Position::new(segment, offset);
    // Only the canonical spelling is accepted ("+5" or "05" are not).
    if self::body(pos) != body {
        return Err("numbers not in canonical form");
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        for pos in [
            Position::new(0, 0),
            Position::new(1, 8),
            Position::new(u64::MAX, u64::MAX),
        ] {
            let text = encode(pos);
            assert!(text.len() as u64 <= MAX_LEN);
            assert_eq!(decode(text.as_bytes()), Ok(pos));
        }
    }

    #[test]
    fn rejects_garbled_text() {
        let good = encode(Position::new(3, 4096));
        let bad_crc = good.replace(" 3 ", " 4 ");
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\n".to_vec(),
            good.trim_end().as_bytes().to_vec(),
            bad_crc.into_bytes(),
            good.replace("HPCURSOR1", "HPCURSOR2").into_bytes(),
            vec![0xff; 20],
            vec![b'1'; 200],
            format!("{MAGIC} 3 4096\n").into_bytes(),
            format!("{MAGIC} 3 4096 5 {:08x}\n", 0).into_bytes(),
        ];
        for case in cases {
            assert!(decode(&case).is_err(), "{case:?}");
        }
        // A correct checksum over a non-canonical spelling is still refused.
        let body = format!("{MAGIC} 03 4096");
        let text = format!("{body} {:08x}\n", crc32c(body.as_bytes()));
        assert_eq!(
            decode(text.as_bytes()),
            Err("numbers not in canonical form")
        );
        // Flipping any single bit is detected.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone().into_bytes();
                b[i] ^= 1 << bit;
                assert!(decode(&b).is_err(), "byte {i} bit {bit}");
            }
        }
    }
}
