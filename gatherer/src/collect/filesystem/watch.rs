//! Knowing when the mount table changed, without regenerating it every cycle.
//!
//! The kernel renders mountinfo afresh on every read (a path walk per mount),
//! which made it most of a cycle's cost on hosts with many mounts. An open
//! procfs mount-table file reports POLLPRI once after every change of its
//! mount namespace (fs/proc_namespace.c `mounts_poll`, the mechanism systemd
//! uses), so the file is kept open and re-read only when that is signalled.
//! A file not on procfs (a fixture tree) cannot signal and is re-read every
//! cycle; so is every file once per [`FORCE_REREAD`] as a safety net.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{PROC_SUPER_MAGIC, fstatfs};

/// Longest time a cached mount table is trusted without a change signal.
pub const FORCE_REREAD: Duration = Duration::from_secs(300);

/// An open mount-table file and when it was last read.
pub struct MountWatch {
    file: File,
    on_procfs: bool,
    last_read: Option<Instant>,
}

impl MountWatch {
    /// Opens `path` for watching.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let on_procfs = fstatfs(&file).is_ok_and(|s| s.f_type as u64 == PROC_SUPER_MAGIC as u64);
        Ok(MountWatch {
            file,
            on_procfs,
            last_read: None,
        })
    }

    /// Whether the content must be read again: never read, changed since,
    /// not a procfs file, or cached for longer than [`FORCE_REREAD`].
    pub fn stale(&mut self, now: Instant) -> bool {
        let Some(last) = self.last_read else {
            return true;
        };
        if !self.on_procfs || now.saturating_duration_since(last) >= FORCE_REREAD {
            return true;
        }
        let mut fds = [PollFd::new(&self.file, PollFlags::PRI)];
        match poll(
            &mut fds,
            Some(&Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        ) {
            Ok(_) => fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR),
            Err(_) => true,
        }
    }

    /// Reads the whole file again into `buf` (replacing its content).
    pub fn read(&mut self, now: Instant, buf: &mut String) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut bytes = std::mem::take(buf).into_bytes();
        bytes.clear();
        self.file.read_to_end(&mut bytes)?;
        *buf = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        self.last_read = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_mount_table_is_cached_until_it_changes() {
        let mut w = MountWatch::open(Path::new("/proc/self/mountinfo")).unwrap();
        let now = Instant::now();
        assert!(w.stale(now), "never read");
        let mut buf = String::new();
        w.read(now, &mut buf).unwrap();
        assert!(buf.contains(" - "), "{buf}");
        assert!(!w.stale(now), "no mount changed since the read");
        assert!(w.stale(now + FORCE_REREAD), "trusted only so long");
    }

    #[test]
    fn a_plain_file_is_read_every_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mountinfo");
        std::fs::write(&path, "a\n").unwrap();
        let mut w = MountWatch::open(&path).unwrap();
        let mut buf = String::new();
        let now = Instant::now();
        w.read(now, &mut buf).unwrap();
        std::fs::write(&path, "b\n").unwrap();
        assert!(w.stale(now));
        w.read(now, &mut buf).unwrap();
        assert_eq!(buf, "b\n");
    }
}
