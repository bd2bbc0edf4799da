//! The log's API: round trips, rotation, removal, readers, limits.

use std::fs;
use std::path::{Path, PathBuf};

use hostpulse_spool::{
    Log, MAX_RECORD, Options, Position, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SpoolError,
};

fn opts(segment_max_bytes: u64) -> Options {
    Options {
        segment_max_bytes,
        ..Options::default()
    }
}

fn open(dir: &Path, segment_max_bytes: u64) -> Log {
    let (log, recovery) = Log::open(dir, opts(segment_max_bytes)).expect("open");
    assert!(recovery.is_clean(), "{recovery:?}");
    log
}

fn all(log: &Log) -> Vec<(Position, Vec<u8>)> {
    log.read_from(log.first())
        .collect::<Result<Vec<_>, _>>()
        .expect("read")
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn append_sync_reopen_read_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!(log.first(), log.end());
    assert_eq!(all(&log), vec![]);
    let mut expected = Vec::new();
    for i in 0..50 {
        let data = payload(i, i * 13);
        let pos = log.append(&data).unwrap();
        expected.push((pos, data));
    }
    log.sync().unwrap();
    assert_eq!(expected[0].0, Position::new(1, SEGMENT_HEADER_LEN));
    assert!(expected.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(all(&log), expected);
    let end = log.end();
    let bytes = log.bytes();
    drop(log);

    let (log, recovery) = Log::open(tmp.path(), opts(1 << 20)).unwrap();
    assert!(recovery.is_clean());
    assert_eq!(recovery.records, 50);
    assert_eq!(recovery.segments, 1);
    assert_eq!(log.end(), end);
    assert_eq!(log.bytes(), bytes);
    assert_eq!(all(&log), expected);
    // Reading from the middle.
    let from = expected[20].0;
    let tail: Vec<_> = log.read_from(from).map(Result::unwrap).collect();
    assert_eq!(tail, expected[20..]);
}

#[test]
fn rotation_across_many_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 300;
    let mut log = open(tmp.path(), max);
    let mut expected = Vec::new();
    for i in 0..200 {
        let data = payload(i, 20 + (i * 37) % 90);
        let pos = log.append(&data).unwrap();
        expected.push((pos, data));
    }
    log.sync().unwrap();
    assert!(log.segments() > 30, "{}", log.segments());
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), log.segments());
    let mut total = 0;
    for f in &files {
        let len = fs::metadata(f).unwrap().len();
        assert!(len <= max, "{} is {len} bytes", f.display());
        total += len;
    }
    assert_eq!(total, log.bytes());
    // Segment ids are consecutive from 1, records start right after a header
    // when the segment changes.
    for w in expected.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        if a.segment != b.segment {
            assert_eq!(b, Position::new(a.segment + 1, SEGMENT_HEADER_LEN));
        } else {
            assert_eq!(b.offset, a.offset + RECORD_HEADER_LEN + w[0].1.len() as u64);
        }
    }
    assert_eq!(all(&log), expected);
    drop(log);
    let log = open(tmp.path(), max);
    assert_eq!(all(&log), expected);
}

#[test]
fn remove_before_deletes_exactly_the_drained_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 200);
    let mut positions = Vec::new();
    for i in 0..60 {
        positions.push(log.append(&payload(i, 28)).unwrap());
    }
    log.sync().unwrap();
    // 48-byte records, 4 per 200-byte segment (8 + 4 * 48 = 200).
    assert_eq!(log.segments(), 15);
    let before = log.bytes();

    // A position in segment 3: segments 1 and 2 go, 3 stays.
    let pos = positions[9];
    assert_eq!(pos.segment, 3);
    let freed = log.remove_before(pos).unwrap();
    assert_eq!(freed, 400);
    assert_eq!(log.bytes(), before - 400);
    assert_eq!(log.segments(), 13);
    assert_eq!(log.first(), Position::new(3, SEGMENT_HEADER_LEN));
    assert!(!tmp.path().join("00000000000000000002.seg").exists());
    assert!(tmp.path().join("00000000000000000003.seg").exists());

    // The same again frees nothing.
    assert_eq!(log.remove_before(pos).unwrap(), 0);

    // The position right after segment 3's last record drains segment 3.
    let after3 = Position::new(3, 200);
    assert_eq!(log.remove_before(after3).unwrap(), 200);
    assert_eq!(log.first(), Position::new(4, SEGMENT_HEADER_LEN));

    // Reading from a removed segment starts at the first live record.
    let records: Vec<_> = log.read_from(positions[0]).map(Result::unwrap).collect();
    assert_eq!(records.len(), 60 - 12);
    assert_eq!(records[0].0, positions[12]);

    // Everything: the active segment stays.
    let freed = log
        .remove_before(Position::new(u64::MAX, u64::MAX))
        .unwrap();
    assert_eq!(freed, 11 * 200);
    assert_eq!(log.segments(), 1);
    assert_eq!(log.first(), Position::new(15, SEGMENT_HEADER_LEN));
    assert_eq!(segment_files(tmp.path()).len(), 1);
    assert_eq!(all(&log).len(), 60 - 56);

    // The log goes on, and reopens with the same content.
    let pos = log.append(b"more").unwrap();
    assert_eq!(pos.segment, 16);
    log.sync().unwrap();
    let kept = all(&log);
    drop(log);
    let log = open(tmp.path(), 200);
    assert_eq!(all(&log), kept);
    assert_eq!(log.first(), Position::new(15, SEGMENT_HEADER_LEN));
}

#[test]
fn zero_length_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 148);
    let mut positions = Vec::new();
    for _ in 0..20 {
        positions.push(log.append(b"").unwrap());
    }
    log.sync().unwrap();
    // 8 + 7 * 20 = 148: seven empty records per segment.
    assert_eq!(positions[6], Position::new(1, 128));
    assert_eq!(positions[7], Position::new(2, 8));
    drop(log);
    let log = open(tmp.path(), 148);
    let records = all(&log);
    assert_eq!(records.len(), 20);
    assert!(records.iter().all(|(_, p)| p.is_empty()));
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), positions);
}

#[test]
fn record_exactly_at_the_segment_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 1000;
    let mut log = open(tmp.path(), max);
    let exact = (max - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN) as usize;
    let a = log.append(&payload(1, exact)).unwrap();
    assert_eq!(a, Position::new(1, 8));
    assert_eq!(log.end(), Position::new(1, max));
    // Full: the next record, even empty, starts segment 2.
    let b = log.append(b"").unwrap();
    assert_eq!(b, Position::new(2, 8));
    // A record that fills segment 2 exactly stays in it.
    let c = log.append(&payload(2, exact - 20)).unwrap();
    assert_eq!(c, Position::new(2, 28));
    assert_eq!(log.end(), Position::new(2, max));
    // One byte more than fits goes to the next segment.
    let d = log.append(&payload(3, 1)).unwrap();
    assert_eq!(d, Position::new(3, 8));
    log.sync().unwrap();
    drop(log);
    let log = open(tmp.path(), max);
    let records = all(&log);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].1, payload(1, exact));
}

#[test]
fn record_larger_than_the_segment_limit_gets_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 100);
    let small = log.append(b"small").unwrap();
    let big = log.append(&payload(9, 5000)).unwrap();
    let after = log.append(b"after").unwrap();
    assert_eq!(small, Position::new(1, 8));
    assert_eq!(big, Position::new(2, 8));
    assert_eq!(after, Position::new(3, 8));
    // A big record as the very first record of a fresh segment stays there.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut log2 = open(tmp2.path(), 100);
    assert_eq!(log2.append(&payload(1, 300)).unwrap(), Position::new(1, 8));
    assert_eq!(log2.append(b"x").unwrap(), Position::new(2, 8));
    log.sync().unwrap();
    drop(log);
    let log = open(tmp.path(), 100);
    let records = all(&log);
    assert_eq!(records[1], (big, payload(9, 5000)));
    assert_eq!(
        fs::metadata(tmp.path().join("00000000000000000002.seg"))
            .unwrap()
            .len(),
        8 + 20 + 5000
    );
}

#[test]
fn record_over_max_record_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    let huge = vec![0u8; MAX_RECORD + 1];
    let err = log.append(&huge).unwrap_err();
    assert!(
        matches!(err, SpoolError::RecordTooLarge { len, max } if len == MAX_RECORD + 1 && max == MAX_RECORD)
    );
    assert_eq!(log.bytes(), 0, "no segment was created");
    log.append(b"ok").unwrap();
    assert_eq!(all(&log).len(), 1);
}

#[test]
fn reader_is_a_snapshot_and_works_on_another_thread_while_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 4096);
    let mut expected = Vec::new();
    for i in 0..300 {
        let data = payload(i, 100);
        expected.push((log.append(&data).unwrap(), data));
    }
    let reader = log.read_from(log.first());
    let end_at_snapshot = log.end();
    let handle = std::thread::spawn(move || {
        let mut reader = reader;
        let records: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
        (records, reader.position())
    });
    for i in 300..1000 {
        log.append(&payload(i, 100)).unwrap();
    }
    log.sync().unwrap();
    let (records, position) = handle.join().unwrap();
    assert_eq!(records, expected);
    assert_eq!(position, end_at_snapshot);
    // Resuming from the reader's position picks up exactly the rest.
    let rest: Vec<_> = log.read_from(position).map(Result::unwrap).collect();
    assert_eq!(rest.len(), 700);
    assert_eq!(rest[0].1, payload(300, 100));
}

#[test]
fn reader_position_tracks_consumption_and_skips_removed_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 100);
    let mut positions = Vec::new();
    for i in 0..10 {
        positions.push(log.append(&payload(i, 18)).unwrap());
    }
    // 38-byte records, 2 per segment.
    let mut reader = log.read_from(Position::new(0, 0));
    assert_eq!(reader.position(), positions[0]);
    let (p, _) = reader.next().unwrap().unwrap();
    assert_eq!(p, positions[0]);
    assert_eq!(reader.position(), Position::new(1, 8 + 38));
    // Remove segments 2 and 3 behind the reader's back: they are skipped.
    log.remove_before(Position::new(4, 0)).unwrap();
    let rest: Vec<_> = reader.by_ref().map(|r| r.unwrap().0).collect();
    assert_eq!(rest[0], positions[1], "segment 1 was open already");
    assert_eq!(rest[1..], positions[6..]);
    assert_eq!(reader.position(), log.end());
}

#[test]
fn read_from_positions_outside_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    let end = log.end();
    // At the end: nothing, position stays.
    let mut r = log.read_from(end);
    assert!(r.next().is_none());
    assert_eq!(r.position(), end);
    // Beyond the end: nothing.
    let beyond = Position::new(7, 0);
    let mut r = log.read_from(beyond);
    assert!(r.next().is_none());
    assert_eq!(r.position(), beyond);
    // Inside the segment header: from the first record.
    assert_eq!(log.read_from(Position::new(1, 3)).count(), 2);
    // Not a record boundary: a typed error, then the next record.
    let mut r = log.read_from(Position::new(1, 9));
    assert!(matches!(
        r.next(),
        Some(Err(SpoolError::Corrupt {
            segment: 1,
            offset: 9,
            ..
        }))
    ));
    assert!(matches!(r.next(), Some(Ok(_))));
    assert!(r.next().is_none());
}

#[test]
fn corruption_after_open_is_skipped_and_counted_by_the_reader() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    let a = log.append(b"first record").unwrap();
    let b = log.append(b"second record").unwrap();
    let c = log.append(b"third record").unwrap();
    log.sync().unwrap();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("00000000000000000001.seg"))
        .unwrap();
    file.write_all_at(b"X", b.offset + 10).unwrap();
    let mut r = log.read_from(log.first());
    assert_eq!(r.next().unwrap().unwrap(), (a, b"first record".to_vec()));
    match r.next() {
        Some(Err(SpoolError::Corrupt {
            segment: 1,
            offset,
            bytes,
            records: 1,
            damage: hostpulse_spool::Damage::Checksum { .. },
        })) => {
            assert_eq!(offset, b.offset);
            assert_eq!(bytes, RECORD_HEADER_LEN + b"second record".len() as u64);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.next().unwrap().unwrap(), (c, b"third record".to_vec()));
    assert!(r.next().is_none());
}

#[test]
fn one_writer_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), 1 << 20);
    match Log::open(tmp.path(), Options::default()) {
        Err(SpoolError::Locked { dir }) => assert_eq!(dir, tmp.path()),
        other => panic!("{other:?}"),
    }
    drop(log);
    open(tmp.path(), 1 << 20);
}

#[test]
fn stray_files_are_ignored_and_the_directory_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/spool");
    let mut log = open(&dir, 1 << 20);
    log.append(b"x").unwrap();
    log.sync().unwrap();
    drop(log);
    for stray in [
        "notes.txt",
        "1.seg",
        "00000000000000000005.seg.tmp",
        "0000000000000000000x.seg",
        "sink-a.cursor",
    ] {
        fs::write(dir.join(stray), b"garbage").unwrap();
    }
    fs::create_dir(dir.join("00000000000000000009.seg")).unwrap();
    let log = open(&dir, 1 << 20);
    assert_eq!(log.segments(), 1);
    assert_eq!(all(&log), vec![(Position::new(1, 8), b"x".to_vec())]);
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn empty_log_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), 1 << 20);
    assert_eq!(log.segments(), 0);
    assert_eq!(log.bytes(), 0);
    assert_eq!(log.end(), Position::new(1, 8));
    assert_eq!(log.first(), log.end());
    assert_eq!(log.remove_before(log.end()).unwrap(), 0);
    log.sync().unwrap();
    assert_eq!(log.append(b"x").unwrap(), Position::new(1, 8));
    assert_eq!(log.segments(), 1);
    assert_eq!(log.bytes(), 8 + 20 + 1);
}

#[test]
fn log_and_reader_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Log>();
    assert_send::<hostpulse_spool::Reader>();
    assert_send_sync::<SpoolError>();
}

#[test]
fn bytes_from_measures_what_a_reader_has_left() {
    let dir = tempfile::tempdir().unwrap();
    let options = hostpulse_spool::Options {
        segment_max_bytes: 64,
        ..Default::default()
    };
    let (mut log, _) = hostpulse_spool::Log::open(dir.path(), options).unwrap();
    let first = log.append(&[1u8; 8]).unwrap();
    let second = log.append(&[2u8; 8]).unwrap();
    let third = log.append(&[3u8; 8]).unwrap();
    assert_eq!(log.bytes_from(log.end()), 0);
    assert_eq!(
        log.bytes_from(log.first()),
        log.bytes() - 8,
        "all but the first header"
    );
    assert_eq!(log.bytes_from(third), 28);
    assert!(log.bytes_from(second) > log.bytes_from(third));
    assert!(log.bytes_from(first) >= log.bytes_from(second));
}
