//! The thin I/O shell under the parsers: reading one file under a root.
//!
//! Files are read whole into a reused buffer and handed to the parsers as
//! text. Bytes that are not UTF-8 are replaced (U+FFFD) rather than rejected:
//! a stray byte in an interface name must not hide a whole family, and the
//! parsers reject whatever no longer makes sense.

use std::io::Read;
use std::path::Path;

use super::error::CollectError;

/// Reads `path` into `buf` (cleared first). A missing file is
/// [`CollectError::Unavailable`], any other failure [`CollectError::Read`].
pub fn read_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    // Read into the String's own allocation, so a collector's buffer really is
    // reused from cycle to cycle.
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    let mut file = std::fs::File::open(path).map_err(|e| CollectError::from_io(path, e))?;
    file.read_to_end(&mut bytes)
        .map_err(|source| CollectError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    *buf = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok(())
}

/// Reads a whole file as text.
pub fn read_string(path: &Path) -> Result<String, CollectError> {
    let mut buf = String::new();
    read_into(path, &mut buf)?;
    Ok(buf)
}

/// Reads a small optional file (a sysfs attribute): `None` when it is absent
/// or unreadable, the trimmed content otherwise. Used where one missing
/// attribute (a virtual NIC without `speed`) must not fail the family.
pub fn read_optional(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// Converts bytes to text the way [`read_into`] does; property tests feed
/// random bytes through this to the parsers.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
