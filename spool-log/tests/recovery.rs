//! Crash recovery and damage handling at open.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hostpulse_spool::{
    Damage, Log, Options, Position, QUARANTINE_DIR, RECORD_HEADER_LEN, Recovery, SEGMENT_MAGIC,
    SpoolError,
};

fn opts(segment_max_bytes: u64) -> Options {
    Options {
        segment_max_bytes,
        ..Options::default()
    }
}

fn seg(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Every record a reader delivers (damaged ranges skipped).
fn all(log: &Log) -> Vec<(Position, Vec<u8>)> {
    log.read_from(log.first())
        .filter_map(|r| match r {
            Ok(record) => Some(record),
            Err(SpoolError::Corrupt { .. }) => None,
            Err(e) => panic!("read: {e}"),
        })
        .collect()
}

/// Flips one byte of a segment file.
fn flip(path: &Path, at: u64) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 131 + j * 17 + 1) as u8).collect()
}

/// Writes `n` records of `len` bytes into a fresh log; returns them.
fn fill(dir: &Path, max: u64, n: usize, len: usize) -> Vec<(Position, Vec<u8>)> {
    let (mut log, _) = Log::open(dir, opts(max)).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let data = payload(i, len);
        out.push((log.append(&data).unwrap(), data));
    }
    log.sync().unwrap();
    out
}

fn reopen(dir: &Path, max: u64) -> (Log, Recovery) {
    Log::open(dir, opts(max)).expect("open never fails on content")
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 5, 100);
    let path = seg(tmp.path(), 1);
    let full = fs::read(&path).unwrap();
    let last = records[4].0.offset as usize;
    assert_eq!(full.len() as u64, last as u64 + RECORD_HEADER_LEN + 100);
    for cut in last..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
        assert!(recovery.quarantined.is_empty(), "cut {cut}: {recovery:?}");
        assert_eq!(recovery.truncated_bytes, (cut - last) as u64, "cut {cut}");
        assert_eq!(recovery.records, 4);
        assert_eq!(all(&log), records[..4], "cut {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len(), last as u64);
        // The log goes on where the torn record was.
        assert_eq!(log.end(), records[4].0);
        assert_eq!(log.append(&records[4].1).unwrap(), records[4].0);
        log.sync().unwrap();
        drop(log);
        assert_eq!(fs::read(&path).unwrap(), full);
    }
}

#[test]
fn torn_tail_in_last_of_many_segments_leaves_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 300, 40, 50);
    let last = records.last().unwrap().0;
    let path = seg(tmp.path(), last.segment);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(last.offset + 20).unwrap();
    let (log, recovery) = reopen(tmp.path(), 300);
    assert_eq!(recovery.truncated_bytes, 20);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(all(&log), records[..39]);
}

#[test]
fn bad_checksum_at_the_very_end_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 3, 64);
    let path = seg(tmp.path(), 1);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Damage the last byte of the last record's payload.
    let end = fs::metadata(&path).unwrap().len();
    file.write_all_at(&[0xAA], end - 1).unwrap();
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.truncated_bytes, RECORD_HEADER_LEN + 64);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(all(&log), records[..2]);
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    // What a filesystem may leave after a crash: the size grew, the data
    // blocks did not make it.
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 3, 64);
    let path = seg(tmp.path(), 1);
    let end = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(end + 4096)
        .unwrap();
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.truncated_bytes, 4096);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(all(&log), records);
}

#[test]
fn flipped_byte_in_a_middle_record_of_a_non_last_segment_loses_only_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 8 + 8 * 60;
    let records = fill(tmp.path(), max, 30, 40);
    // 60-byte records, 8 per segment: segments 1..=4.
    let victim: Vec<_> = records.iter().filter(|r| r.0.segment == 2).collect();
    assert_eq!(victim.len(), 8);
    let target = victim[3].0;
    let path = seg(tmp.path(), 2);
    flip(&path, target.offset + 30);

    let (log, recovery) = reopen(tmp.path(), max);
    assert_eq!(recovery.truncated_bytes, 0);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(recovery.damaged.len(), 1, "{recovery:?}");
    let d = &recovery.damaged[0];
    assert_eq!(
        (d.segment, d.offset, d.bytes, d.records),
        (2, target.offset, 60, 1)
    );
    assert!(matches!(d.damage, Damage::Checksum { .. }));
    assert_eq!(recovery.skipped_bytes(), 60);
    assert_eq!(recovery.skipped_records(), 1);
    // The damaged segment stays live; a copy is kept for inspection.
    let copy = tmp
        .path()
        .join(QUARANTINE_DIR)
        .join(format!("00000000000000000002.seg.at-{}", target.offset));
    assert_eq!(d.copy.as_deref(), Some(copy.as_path()));
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&path).unwrap());
    assert_eq!(recovery.segments, 4);
    let expected: Vec<_> = records.iter().filter(|r| r.0 != target).cloned().collect();
    assert_eq!(all(&log), expected);
    assert_eq!(recovery.records, expected.len() as u64);
    // A cursor at the damaged record: the range, then the next record.
    let mut r = log.read_from(target);
    assert!(matches!(
        r.next(),
        Some(Err(SpoolError::Corrupt { segment: 2, offset, bytes: 60, records: 1, .. })) if offset == target.offset
    ));
    assert_eq!(r.next().unwrap().unwrap().0, victim[4].0);
    // A second open finds the same range and keeps the one copy.
    drop(log);
    let (_log, again) = reopen(tmp.path(), max);
    assert_eq!(again.damaged.len(), 1);
    assert_eq!(
        fs::read_dir(tmp.path().join(QUARANTINE_DIR))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn bad_record_followed_by_valid_ones_in_the_last_segment_is_skipped_not_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 10, 40);
    let path = seg(tmp.path(), 1);
    flip(&path, records[4].0.offset + 25);
    let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.skipped_records(), 1);
    assert_eq!(recovery.segments, 1);
    let mut expected = records.clone();
    expected.remove(4);
    assert_eq!(all(&log), expected);
    // Appends go on in the same segment.
    let end = log.end();
    assert_eq!(log.append(b"x").unwrap(), end);
}

#[test]
fn damaged_length_in_the_last_segment_with_valid_records_after_it_is_not_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 10, 40);
    let path = seg(tmp.path(), 1);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    // A length pointing past the end of the file: framing alone would call
    // this a torn tail; the marker search finds the records behind it.
    file.write_all_at(&0x00ff_0000u32.to_le_bytes(), records[3].0.offset + 4)
        .unwrap();
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.damaged.len(), 1);
    assert_eq!(recovery.damaged[0].records, 1);
    assert!(matches!(
        recovery.damaged[0].damage,
        Damage::Truncated { .. }
    ));
    assert_eq!(all(&log).len(), 9);
}

#[test]
fn length_over_max_record_in_a_non_last_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 200, 10, 40);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(seg(tmp.path(), 1))
        .unwrap();
    file.write_all_at(&u32::MAX.to_le_bytes(), records[1].0.offset + 4)
        .unwrap();
    let (log, recovery) = reopen(tmp.path(), 200);
    assert_eq!(recovery.damaged.len(), 1);
    assert_eq!(
        recovery.damaged[0].damage,
        Damage::LengthTooLarge { len: u32::MAX }
    );
    assert_eq!(all(&log).len(), 9);
}

#[test]
fn bad_header_with_valid_records_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 200, 10, 40);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(seg(tmp.path(), 1))
        .unwrap();
    file.write_all_at(b"HPSPOOLX", 0).unwrap();
    let (log, recovery) = reopen(tmp.path(), 200);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(recovery.damaged.len(), 1);
    let d = &recovery.damaged[0];
    assert_eq!((d.segment, d.offset, d.bytes, d.records), (1, 0, 8, 0));
    assert_eq!(d.damage, Damage::BadHeader);
    assert_eq!(all(&log), records);
}

#[test]
fn bad_header_of_the_last_segment_keeps_its_records_and_seals_it() {
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 200, 10, 40);
    let last = records.last().unwrap().0.segment;
    let file = fs::OpenOptions::new()
        .write(true)
        .open(seg(tmp.path(), last))
        .unwrap();
    file.write_all_at(b"\0\0\0\0", 0).unwrap();
    let (mut log, recovery) = reopen(tmp.path(), 200);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(all(&log), records);
    // A segment with a damaged header is not appended to.
    assert_eq!(log.append(b"x").unwrap(), Position::new(last + 1, 8));
}

#[test]
fn garbage_files_named_like_segments() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(seg(tmp.path(), 1), b"this is not a spool segment at all").unwrap();
    fs::write(seg(tmp.path(), 2), vec![0u8; 10_000]).unwrap();
    fs::write(seg(tmp.path(), 3), b"HPS\xff").unwrap();
    let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.quarantined.len(), 3);
    assert!(
        recovery
            .quarantined
            .iter()
            .all(|q| q.damage == Damage::BadHeader)
    );
    assert_eq!(log.segments(), 0);
    assert_eq!(log.append(b"x").unwrap(), Position::new(4, 8));
}

#[test]
fn garbage_after_a_valid_header() {
    let tmp = tempfile::tempdir().unwrap();
    let mut content = SEGMENT_MAGIC.to_vec();
    content.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    // Non-last: one damaged range over all of it.
    fs::write(seg(tmp.path(), 1), &content).unwrap();
    // Last: garbage with nothing valid in it is a torn tail.
    fs::write(seg(tmp.path(), 2), &content).unwrap();
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(recovery.damaged.len(), 1);
    assert_eq!(
        (recovery.damaged[0].segment, recovery.damaged[0].bytes),
        (1, 5000)
    );
    assert_eq!(recovery.truncated_bytes, 5000);
    assert_eq!(log.segments(), 2);
    assert_eq!(log.end(), Position::new(2, 8));
}

#[test]
fn empty_and_short_segment_files() {
    // An interrupted creation of the last segment (empty file, or part of the
    // header) holds no record: removed.
    for content in [&b""[..], b"H", b"HPSPOOL"] {
        let tmp = tempfile::tempdir().unwrap();
        let records = fill(tmp.path(), 1 << 20, 3, 10);
        fs::write(seg(tmp.path(), 2), content).unwrap();
        let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
        assert!(recovery.quarantined.is_empty(), "{content:?}");
        assert_eq!(recovery.truncated_bytes, content.len() as u64);
        assert!(!seg(tmp.path(), 2).exists());
        assert_eq!(all(&log), records);
        // Segment 1 is sealed; the id 2 is not reused.
        assert_eq!(log.append(b"x").unwrap(), Position::new(3, 8));
    }
    // An empty non-last segment is not a crash artefact: quarantined.
    let tmp = tempfile::tempdir().unwrap();
    let records = fill(tmp.path(), 1 << 20, 3, 10);
    fs::write(seg(tmp.path(), 0), b"").unwrap();
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.quarantined.len(), 1);
    assert_eq!(recovery.quarantined[0].segment, 0);
    assert_eq!(all(&log), records);
    // A header-only segment is a valid, empty segment.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(seg(tmp.path(), 1), SEGMENT_MAGIC).unwrap();
    let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
    assert!(recovery.is_clean());
    assert_eq!(log.append(b"x").unwrap(), Position::new(1, 8));
}

#[test]
fn quarantine_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let qdir = tmp.path().join(QUARANTINE_DIR);
    fs::create_dir(&qdir).unwrap();
    fs::write(qdir.join("00000000000000000001.seg"), b"earlier").unwrap();
    fs::write(qdir.join("00000000000000000001.seg.1"), b"earlier too").unwrap();
    fs::write(seg(tmp.path(), 1), b"garbage!").unwrap();
    let (_log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(
        recovery.quarantined[0].path,
        qdir.join("00000000000000000001.seg.2")
    );
    assert_eq!(
        fs::read(qdir.join("00000000000000000001.seg")).unwrap(),
        b"earlier"
    );
    assert_eq!(
        fs::read(&recovery.quarantined[0].path).unwrap(),
        b"garbage!"
    );
}

#[test]
fn random_damage_never_panics_and_keeps_good_segments() {
    // Overwrite random ranges of random segments; open must always succeed,
    // and every record it then yields must be one that was written.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let records = fill(tmp.path(), 500, 40, 30 + round);
        let segments = records.last().unwrap().0.segment;
        for _ in 0..(1 + rand() % 3) {
            let id = 1 + rand() % segments;
            let path = seg(tmp.path(), id);
            let len = fs::metadata(&path).unwrap().len();
            let at = rand() % len;
            let n = 1 + rand() % 16;
            let junk: Vec<u8> = (0..n).map(|_| rand() as u8).collect();
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&junk, at).unwrap();
            if rand() % 4 == 0 {
                file.set_len(rand() % (len + 1)).unwrap();
            }
        }
        let (mut log, recovery) = reopen(tmp.path(), 500);
        let got = all(&log);
        for r in &got {
            assert!(records.contains(r), "round {round}: {r:?} {recovery:?}");
        }
        log.append(b"still works").unwrap();
        log.sync().unwrap();
        drop(log);
        let (_log, again) = reopen(tmp.path(), 500);
        assert_eq!(again.truncated_bytes, 0, "round {round}: {again:?}");
        assert!(again.quarantined.is_empty(), "round {round}: {again:?}");
    }
}

#[test]
fn torn_large_record_of_zero_rich_data_is_recovered_quickly() {
    // Protobuf-like content: mostly zeros and small numbers, so a byte-wise
    // search meets many plausible lengths. Recovery must still call it torn.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), opts(8 << 20)).unwrap();
    let small = log.append(b"before").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| if i % 7 == 0 { (i % 5) as u8 } else { 0 })
        .collect();
    let pos = log.append(&big).unwrap();
    log.sync().unwrap();
    drop(log);
    let path = seg(tmp.path(), 1);
    let cut = pos.offset + 2_000_000;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let started = std::time::Instant::now();
    let (log, recovery) = reopen(tmp.path(), 8 << 20);
    let took = started.elapsed();
    assert!(recovery.quarantined.is_empty(), "{recovery:?}");
    assert_eq!(recovery.truncated_bytes, cut - pos.offset);
    assert_eq!(all(&log), vec![(small, b"before".to_vec())]);
    assert!(took.as_secs() < 30, "recovery took {took:?}");
}

/// A segment as the first release wrote it: "HPSPOOL1", then `len | crc`
/// records (crc over the length bytes and the payload).
fn v1_segment(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"HPSPOOL1".to_vec();
    for p in payloads {
        let len = (p.len() as u32).to_le_bytes();
        let crc = hostpulse_spool::crc32c_update(hostpulse_spool::crc32c(&len), p);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn segments_of_the_previous_release_are_read_and_never_appended_to() {
    let tmp = tempfile::tempdir().unwrap();
    let first: Vec<Vec<u8>> = (0..5).map(|i| payload(i, 30 + i)).collect();
    let second: Vec<Vec<u8>> = (5..9).map(|i| payload(i, 50)).collect();
    fs::write(seg(tmp.path(), 1), v1_segment(&first)).unwrap();
    fs::write(seg(tmp.path(), 2), v1_segment(&second)).unwrap();
    let (mut log, recovery) = reopen(tmp.path(), 1 << 20);
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(recovery.records, 9);
    let got: Vec<Vec<u8>> = all(&log).into_iter().map(|r| r.1).collect();
    assert_eq!(got, [first.clone(), second.clone()].concat());
    // The next append starts an HPSPOOL2 segment after them.
    let pos = log.append(b"new").unwrap();
    assert_eq!(pos, Position::new(3, 8));
    log.sync().unwrap();
    assert_eq!(&fs::read(seg(tmp.path(), 3)).unwrap()[..8], b"HPSPOOL2");
    drop(log);
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(all(&log).len(), 10);
}

#[test]
fn a_damaged_record_of_the_previous_format_is_skipped_too() {
    let tmp = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..6).map(|i| payload(i, 40)).collect();
    let bytes = v1_segment(&payloads);
    fs::write(seg(tmp.path(), 1), &bytes).unwrap();
    fs::write(seg(tmp.path(), 2), v1_segment(&[payload(9, 10)])).unwrap();
    // Third record: 8 + 2 * 48, its payload's tenth byte.
    flip(&seg(tmp.path(), 1), 8 + 2 * 48 + 8 + 10);
    let (log, recovery) = reopen(tmp.path(), 1 << 20);
    assert_eq!(recovery.damaged.len(), 1, "{recovery:?}");
    assert_eq!(recovery.damaged[0].bytes, 48);
    let got: Vec<Vec<u8>> = all(&log).into_iter().map(|r| r.1).collect();
    let mut expected = payloads.clone();
    expected.remove(2);
    expected.push(payload(9, 10));
    assert_eq!(got, expected);
}
