//! The thin I/O shell under the parsers: reading one file under a root.
//!
//! Files are read whole into a reused buffer and handed to the parsers as
//! text. Bytes that are not UTF-8 are replaced (U+FFFD) rather than rejected:
//! a stray byte in an interface name must not hide a whole family, and the
//! parsers reject whatever no longer makes sense.
//!
//! A file read every cycle is a [`KernelFile`]: its descriptor stays open and
//! each cycle reads it again from offset 0 (procfs and sysfs regenerate the
//! content on every read from the start). That costs one `pread` and the
//! read that sees the end, instead of open, statx, lseek, reads and close: about 20
//! files a cycle, four fewer system calls each, and no path lookup in /proc.
//! The kernel rewrites these files in place; a file *replaced* by a rename (a
//! fixture tree under `--procfs` updated that way) would keep being read
//! from the replaced inode until a read fails.
//!
//! A file more than one family reads (`meminfo` by `memory` and `swap`,
//! `vmstat` by `vmstat` and `swap`, `stat` by `cpu` and `processes`) is a
//! [`CycleFile`]: the families hold handles on one [`KernelFile`] from the
//! registry [`SharedFiles`] (one per [`super::Settings`], so per gatherer),
//! and the kernel generates its text once per cycle, not once per family.
//! The first handle to ask in a cycle reads the file; the others get a copy
//! of those bytes (same [`super::Cycle::at`]). A handle that asks twice in
//! one cycle reads the kernel again, so nothing older than the cycle is ever
//! served. Parsing stays with the families.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

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
    *buf = text(bytes);
    Ok(())
}

/// A kernel file read every cycle through one descriptor kept open.
#[derive(Debug)]
pub struct KernelFile {
    path: PathBuf,
    file: Option<File>,
    /// What the last read returned and room beyond it, kept initialized
    /// from cycle to cycle: `pread` fills it with no zeroing per read
    /// (`read_to_end` would clear up to 8 KiB twice per file per cycle).
    bytes: Vec<u8>,
}

impl KernelFile {
    /// The file at `path`, opened at its first read.
    pub fn new(path: PathBuf) -> Self {
        KernelFile {
            path,
            file: None,
            bytes: Vec::new(),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file into `buf` (cleared first), as [`read_into`]
    /// does. A read that fails on the kept descriptor (the file went away,
    /// a device was removed) closes it and opens the path again once, so the
    /// error is the one a fresh open gives; an absent file is tried once per
    /// call.
    pub fn read_into(&mut self, buf: &mut String) -> Result<(), CollectError> {
        buf.clear();
        let kept = self.file.is_some();
        let n = match self.read_all() {
            Err(_) if kept => {
                self.file = None;
                self.read_all()?
            }
            result => result?,
        };
        let read = &self.bytes[..n];
        match std::str::from_utf8(read) {
            Ok(s) => buf.push_str(s),
            Err(_) => buf.push_str(&String::from_utf8_lossy(read)),
        }
        Ok(())
    }

    /// Reads from offset 0 to the end into `self.bytes`; returns the length.
    /// `pread` leaves the descriptor's position alone, so no lseek either.
    fn read_all(&mut self) -> Result<usize, CollectError> {
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = File::open(&self.path).map_err(|e| CollectError::from_io(&self.path, e))?;
                self.file.insert(f)
            }
        };
        if self.bytes.is_empty() {
            self.bytes.resize(4096, 0);
        }
        let mut n = 0;
        loop {
            if n == self.bytes.len() {
                self.bytes.resize(n * 2, 0);
            }
            match file.read_at(&mut self.bytes[n..], n as u64) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CollectError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }
}

/// The kernel files shared by families, by path: see the module doc.
/// Clones share the registry.
#[derive(Debug, Clone, Default)]
pub struct SharedFiles(Arc<Mutex<Vec<Arc<Mutex<Shared>>>>>);

/// One shared file and the text of its last read.
#[derive(Debug)]
struct Shared {
    file: KernelFile,
    text: String,
    /// The cycle [`Shared::text`] was read in; `None` after a failed read.
    read_in: Option<Instant>,
}

impl SharedFiles {
    /// A handle on the file at `path`: every handle on one path shares
    /// one read per cycle.
    pub fn file(&self, path: PathBuf) -> CycleFile {
        let mut files = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let found = files
            .iter()
            .find(|f| f.lock().unwrap_or_else(PoisonError::into_inner).file.path() == path);
        let shared = match found {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(Mutex::new(Shared {
                    file: KernelFile::new(path.clone()),
                    text: String::new(),
                    read_in: None,
                }));
                files.push(Arc::clone(&shared));
                shared
            }
        };
        CycleFile {
            path,
            shared,
            last: None,
        }
    }
}

/// One family's handle on a file read once per cycle ([`SharedFiles`]).
#[derive(Debug)]
pub struct CycleFile {
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
    /// The cycle this handle last read in.
    last: Option<Instant>,
}

impl CycleFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text in the cycle `at` into `buf` (cleared first): the
    /// bytes another handle read in this cycle, or a fresh read. Errors as
    /// [`KernelFile::read_into`]; a failed read is not shared.
    pub fn read_into(&mut self, at: Instant, buf: &mut String) -> Result<(), CollectError> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = &mut *shared;
        if shared.read_in != Some(at) || self.last == Some(at) {
            shared.read_in = None;
            shared.file.read_into(&mut shared.text)?;
            shared.read_in = Some(at);
        }
        self.last = Some(at);
        buf.clear();
        buf.push_str(&shared.text);
        Ok(())
    }
}

fn text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_is_read_again_from_the_start_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, "MemTotal: 1 kB\n").unwrap();
        let mut file = KernelFile::new(path.clone());
        let mut buf = String::new();
        file.read_into(&mut buf).unwrap();
        assert_eq!(buf, "MemTotal: 1 kB\n");
        // Rewritten in place (as the kernel regenerates it) and longer than
        // the buffer's capacity: the whole new content, from offset 0.
        let long = "MemFree: 2 kB\n".repeat(1000);
        std::fs::write(&path, &long).unwrap();
        file.read_into(&mut buf).unwrap();
        assert_eq!(buf, long);
        std::fs::write(&path, "MemTotal: 3 kB\n").unwrap();
        file.read_into(&mut buf).unwrap();
        assert_eq!(
            buf, "MemTotal: 3 kB\n",
            "nothing left over from the longer read"
        );
    }

    #[test]
    fn a_shared_file_is_read_once_per_cycle_and_never_served_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmstat");
        std::fs::write(&path, "pswpin 1\n").unwrap();
        let files = SharedFiles::default();
        let (mut vmstat, mut swap) = (files.file(path.clone()), files.file(path.clone()));
        let (mut a, mut b) = (String::new(), String::new());
        let cycle = Instant::now();
        vmstat.read_into(cycle, &mut a).unwrap();
        std::fs::write(&path, "pswpin 2\n").unwrap();
        swap.read_into(cycle, &mut b).unwrap();
        assert_eq!(
            b, "pswpin 1\n",
            "the second family of a cycle shares the first read"
        );
        vmstat.read_into(cycle, &mut a).unwrap();
        assert_eq!(
            a, "pswpin 2\n",
            "a handle asking twice in a cycle reads again"
        );
        let next = cycle + std::time::Duration::from_millis(1);
        std::fs::write(&path, "pswpin 3\n").unwrap();
        swap.read_into(next, &mut b).unwrap();
        assert_eq!(b, "pswpin 3\n", "a new cycle reads the kernel again");

        let absent = dir.path().join("pressure/irq");
        let (mut first, mut second) = (files.file(absent.clone()), files.file(absent));
        assert!(first.read_into(next, &mut a).is_err());
        let err = second.read_into(next, &mut b).unwrap_err();
        assert!(
            matches!(err, CollectError::Unavailable { .. }),
            "each family sees the failure: {err:?}"
        );
    }

    #[test]
    fn an_absent_kernel_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KernelFile::new(dir.path().join("pressure/irq"));
        let mut buf = String::new();
        let err = file.read_into(&mut buf).unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }), "{err:?}");
    }
}
