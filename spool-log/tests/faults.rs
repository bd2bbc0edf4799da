//! Fault injection through the `FileOps` seam: ENOSPC mid-write, failed
//! rollbacks, failed syncs.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use hostpulse_spool::{FileOps, Log, Options, Position, SpoolError};

/// Real file operations with switchable faults.
#[derive(Debug, Default)]
struct Faulty {
    /// The next `write_at` writes at most this many bytes (and returns that
    /// count, like a short `pwrite`); the call after it fails with ENOSPC.
    cut_next_write: Mutex<Option<usize>>,
    fail_next_write: AtomicBool,
    /// This many next `set_len` calls fail with EIO.
    fail_set_len: AtomicU32,
    /// The next `sync_data` fails with EIO.
    fail_sync: AtomicBool,
    /// The next `sync_dir` fails with EIO.
    fail_sync_dir: AtomicBool,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl Faulty {
    fn cut_next_write(&self, n: usize) {
        *self.cut_next_write.lock().unwrap() = Some(n);
    }
}

impl FileOps for Faulty {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(enospc());
        }
        if let Some(n) = self.cut_next_write.lock().unwrap().take() {
            let n = n.min(buf.len());
            if n == 0 {
                return Err(enospc());
            }
            file.write_all_at(&buf[..n], offset)?;
            self.fail_next_write.store(true, Ordering::SeqCst);
            return Ok(n);
        }
        file.write_at(buf, offset)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        let failing = self
            .fail_set_len
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(eio());
        }
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        if self.fail_sync.swap(false, Ordering::SeqCst) {
            return Err(eio());
        }
        file.sync_data()
    }

    fn sync_dir(&self, dir: &File) -> io::Result<()> {
        if self.fail_sync_dir.swap(false, Ordering::SeqCst) {
            return Err(eio());
        }
        dir.sync_all()
    }
}

fn open(dir: &Path, max: u64) -> (Log, Arc<Faulty>) {
    let faults = Arc::new(Faulty::default());
    let options = Options {
        segment_max_bytes: max,
        file_ops: faults.clone(),
    };
    let (log, recovery) = Log::open(dir, options).unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    (log, faults)
}

fn all(log: &Log) -> Vec<(Position, Vec<u8>)> {
    log.read_from(log.first())
        .collect::<Result<Vec<_>, _>>()
        .expect("read")
}

fn seg_len(dir: &Path, id: u64) -> u64 {
    fs::metadata(dir.join(format!("{id:020}.seg")))
        .unwrap()
        .len()
}

#[test]
fn enospc_part_way_through_a_write_leaves_the_log_valid() {
    let record = vec![0x5Au8; 300];
    for cut in [0, 1, 7, 8, 9, 150, 307] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, faults) = open(tmp.path(), 1 << 20);
        let mut expected = Vec::new();
        for i in 0..3u8 {
            expected.push((log.append(&[i; 50]).unwrap(), vec![i; 50]));
        }
        let end = log.end();
        faults.cut_next_write(cut);
        let err = log.append(&record).unwrap_err();
        assert!(err.is_no_space(), "cut {cut}: {err:?}");
        assert!(matches!(err, SpoolError::NoSpace { .. }));
        // The half-written record is gone, from the file too.
        assert_eq!(log.end(), end);
        assert_eq!(seg_len(tmp.path(), 1), end.offset, "cut {cut}");
        assert_eq!(all(&log), expected);
        // Later appends are fine and land where the failed one would have.
        let pos = log.append(b"after").unwrap();
        assert_eq!(pos, end);
        expected.push((pos, b"after".to_vec()));
        log.sync().unwrap();
        drop(log);
        let (log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
        assert!(recovery.is_clean(), "cut {cut}: {recovery:?}");
        assert_eq!(all(&log), expected);
    }
}

#[test]
fn enospc_while_starting_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 100);
    let a = log.append(&[1; 60]).unwrap();
    // The next record needs a new segment; its header write fails half-way.
    faults.cut_next_write(3);
    let err = log.append(&[2; 60]).unwrap_err();
    assert!(err.is_no_space());
    assert_eq!(log.segments(), 1);
    assert_eq!(log.end(), Position::new(1, 88));
    assert!(!tmp.path().join("00000000000000000002.seg").exists());
    // Header written, record write fails: the new segment stays, empty.
    faults.cut_next_write(8 + 10);
    assert!(log.append(&[3; 60]).unwrap_err().is_no_space());
    assert_eq!(log.segments(), 2);
    assert_eq!(log.end(), Position::new(2, 8));
    assert_eq!(seg_len(tmp.path(), 2), 8);
    let b = log.append(&[4; 60]).unwrap();
    assert_eq!(b, Position::new(2, 8));
    log.sync().unwrap();
    drop(log);
    let (log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(all(&log), vec![(a, vec![1; 60]), (b, vec![4; 60])]);
}

#[test]
fn failed_rollback_is_retried_before_anything_else_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 1 << 20);
    let a = log.append(b"first").unwrap();
    let end = log.end();
    faults.cut_next_write(20);
    faults.fail_set_len.store(2, Ordering::SeqCst);
    assert!(log.append(&[9; 100]).unwrap_err().is_no_space());
    // The garbage is still there...
    assert_eq!(seg_len(tmp.path(), 1), end.offset + 20);
    // ...and the next append retries the truncation first, fails, writes nothing.
    let err = log.append(b"second").unwrap_err();
    assert!(matches!(err, SpoolError::Io { .. }), "{err:?}");
    assert_eq!(seg_len(tmp.path(), 1), end.offset + 20);
    // Then the truncation works and the append lands where it should.
    let b = log.append(b"second").unwrap();
    assert_eq!(b, end);
    log.sync().unwrap();
    drop(log);
    let (log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(
        all(&log),
        vec![(a, b"first".to_vec()), (b, b"second".to_vec())]
    );
}

#[test]
fn a_crash_before_the_rollback_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 1 << 20);
    let a = log.append(b"first").unwrap();
    faults.cut_next_write(50);
    faults.fail_set_len.store(1, Ordering::SeqCst);
    assert!(log.append(&[9; 100]).is_err());
    drop(log); // "crash": the partial record stays in the file
    let (log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(recovery.truncated_bytes, 50);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(all(&log), vec![(a, b"first".to_vec())]);
}

#[test]
fn failed_sync_poisons_until_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 1 << 20);
    let a = log.append(b"synced").unwrap();
    log.sync().unwrap();
    let b = log.append(b"not synced").unwrap();
    faults.fail_sync.store(true, Ordering::SeqCst);
    let err = log.sync().unwrap_err();
    assert!(matches!(err, SpoolError::Io { .. }), "{err:?}");
    assert!(matches!(log.sync(), Err(SpoolError::Poisoned)));
    assert!(matches!(log.append(b"x"), Err(SpoolError::Poisoned)));
    // Reading still works.
    assert_eq!(all(&log).len(), 2);
    drop(log);
    let (mut log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
    assert!(recovery.is_clean());
    assert_eq!(
        all(&log),
        vec![(a, b"synced".to_vec()), (b, b"not synced".to_vec())]
    );
    log.append(b"x").unwrap();
    log.sync().unwrap();
}

#[test]
fn failed_directory_sync_poisons() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 1 << 20);
    log.append(b"creates segment 1").unwrap();
    faults.fail_sync_dir.store(true, Ordering::SeqCst);
    assert!(log.sync().is_err());
    assert!(matches!(log.append(b"x"), Err(SpoolError::Poisoned)));
}

#[test]
fn failed_sync_before_rotation_poisons_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, faults) = open(tmp.path(), 100);
    log.append(&[1; 60]).unwrap();
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert!(log.append(&[2; 60]).is_err());
    assert!(!tmp.path().join("00000000000000000002.seg").exists());
    assert!(matches!(log.append(b"x"), Err(SpoolError::Poisoned)));
}
