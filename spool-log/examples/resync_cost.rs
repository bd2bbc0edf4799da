//! What damage costs a reader: an 8 MiB segment of 4,000 records of 2,000
//! bytes is opened (recovery scan) and read in full, clean and then with 4 KiB
//! overwritten in the middle of it (three records lost, the rest delivered).
//!
//! `cargo run --release -p hostpulse-spool --example resync_cost`

use hostpulse_spool::{Log, Options, SpoolError};
use std::os::unix::fs::FileExt;
use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), Options::default()).unwrap();
    let payload: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut positions = Vec::new();
    for _ in 0..4000 {
        positions.push(log.append(&payload).unwrap());
    }
    log.sync().unwrap();
    drop(log);
    let read_all = |label: &str| {
        let t = Instant::now();
        let (log, rec) = Log::open(dir.path(), Options::default()).unwrap();
        let open = t.elapsed();
        let t = Instant::now();
        let mut n = 0;
        let mut skipped = 0;
        for r in log.read_from(log.first()) {
            match r {
                Ok(_) => n += 1,
                Err(SpoolError::Corrupt { bytes, .. }) => skipped += bytes,
                Err(e) => panic!("{e}"),
            }
        }
        println!(
            "{label}: open {:?} ({} ranges), read {n} records in {:?}, skipped {skipped} bytes",
            open,
            rec.damaged.len(),
            t.elapsed()
        );
    };
    read_all("clean");
    let mid = positions[positions.len() / 4];
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(format!("{:020}.seg", mid.segment)))
        .unwrap();
    f.write_all_at(&[0xAA; 4096], mid.offset + 100).unwrap();
    drop(f);
    read_all("4 KiB overwritten in the middle of the segment");
}
