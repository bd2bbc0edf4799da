//! `CursorFile`: store/load round trip, missing, garbled.

use std::fs;

use hostpulse_spool::{CursorFile, Log, Options, Position, SpoolError};

#[test]
fn store_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let cursor = CursorFile::new(tmp.path().join("sink-a.cursor"));
    assert_eq!(cursor.load().unwrap(), None);
    for pos in [
        Position::new(1, 8),
        Position::new(42, 1 << 40),
        Position::new(u64::MAX, u64::MAX),
        Position::new(0, 0),
    ] {
        cursor.store(pos).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(pos));
        assert_eq!(CursorFile::new(cursor.path()).load().unwrap(), Some(pos));
    }
    // No temporary file left behind.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["sink-a.cursor"]);
}

#[test]
fn missing_directory_is_an_error_on_store_and_none_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let cursor = CursorFile::new(tmp.path().join("nope/cursor"));
    assert_eq!(cursor.load().unwrap(), None);
    assert!(matches!(
        cursor.store(Position::new(1, 8)),
        Err(SpoolError::Io { .. })
    ));
}

#[test]
fn garbled_files_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cursor");
    let cursor = CursorFile::new(&path);
    cursor.store(Position::new(3, 4096)).unwrap();
    let good = fs::read(&path).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage".to_vec(),
        vec![0; 28],
        vec![0xff; 4096],
        good[..good.len() - 1].to_vec(),
        good[..10].to_vec(),
    ];
    let mut flipped = good.clone();
    flipped[10] ^= 1;
    cases.push(flipped);
    let mut doubled = good.clone();
    doubled.extend_from_slice(&good);
    cases.push(doubled);
    for case in cases {
        fs::write(&path, &case).unwrap();
        match cursor.load() {
            Err(SpoolError::CursorCorrupt { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(!reason.is_empty());
            }
            other => panic!("{case:?}: {other:?}"),
        }
    }
    // A directory where the file should be is an I/O error, not a panic.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert!(cursor.load().is_err());
}

#[test]
fn cursor_files_live_beside_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), Options::default()).unwrap();
    let cursor = CursorFile::new(tmp.path().join("sink.cursor"));
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    log.sync().unwrap();
    let mut reader = log.read_from(cursor.load().unwrap().unwrap_or(log.first()));
    assert_eq!(reader.next().unwrap().unwrap().1, b"a");
    cursor.store(reader.position()).unwrap();
    drop(reader);
    drop(log);
    let (log, recovery) = Log::open(tmp.path(), Options::default()).unwrap();
    assert!(recovery.is_clean());
    let rest: Vec<_> = log
        .read_from(cursor.load().unwrap().unwrap())
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(rest, vec![b"b".to_vec()]);
}
