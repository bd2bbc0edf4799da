//! Model check: random sequences of operations on a real log compared with an
//! in-memory model of what it must contain.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hostpulse_spool::{
    FileOps, Log, Options, Position, RECORD_HEADER_LEN, RECORD_MARKER, SEGMENT_HEADER_LEN,
    crc32c_update,
};
use proptest::prelude::*;

const HEADER: u64 = SEGMENT_HEADER_LEN;
const RECORD: u64 = RECORD_HEADER_LEN;

#[derive(Debug, Clone)]
enum Pick {
    /// A position handed out earlier (index modulo their number), possibly in
    /// a segment removed since.
    Seen(usize),
    First,
    End,
    Zero,
    Beyond,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    /// The write fails with ENOSPC after `cut` bytes.
    FailedAppend(Vec<u8>, usize),
    Sync,
    Reopen,
    /// Close, leave the first `cut` bytes of a record at the end of the last
    /// segment (a crash mid-append), reopen.
    TearAndReopen(Vec<u8>, usize),
    RemoveBefore(Pick),
    ReadFrom(Pick),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<usize>().prop_map(Pick::Seen),
        1 => Just(Pick::First),
        1 => Just(Pick::End),
        1 => Just(Pick::Zero),
        1 => Just(Pick::Beyond),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..60),
        1 => prop::collection::vec(any::<u8>(), 60..400),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => payload().prop_map(Op::Append),
        2 => (payload(), any::<usize>()).prop_map(|(p, c)| Op::FailedAppend(p, c)),
        4 => Just(Op::Sync),
        2 => Just(Op::Reopen),
        1 => (payload(), any::<usize>()).prop_map(|(p, c)| Op::TearAndReopen(p, c)),
        3 => pick().prop_map(Op::RemoveBefore),
        4 => pick().prop_map(Op::ReadFrom),
    ]
}

/// Real file operations; `cut` makes the next write stop part-way with ENOSPC.
#[derive(Debug, Default)]
struct Faults {
    cut: Mutex<Option<usize>>,
    fail_next: AtomicBool,
}

impl FileOps for Faults {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28));
        }
        if let Some(n) = self.cut.lock().unwrap().take() {
            let n = n.min(buf.len());
            if n == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            file.write_all_at(&buf[..n], offset)?;
            self.fail_next.store(true, Ordering::SeqCst);
            return Ok(n);
        }
        file.write_at(buf, offset)
    }
}

/// What the log must contain.
#[derive(Debug)]
struct Model {
    max: u64,
    /// Live segments: id -> length.
    segments: BTreeMap<u64, u64>,
    active: Option<u64>,
    next_id: u64,
    records: Vec<(Position, Vec<u8>)>,
    seen: Vec<Position>,
}

impl Model {
    fn new(max: u64) -> Self {
        Model {
            max,
            segments: BTreeMap::new(),
            active: None,
            next_id: 1,
            records: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Whether a record of `len` bytes starts a new segment.
    fn rotates(&self, len: usize) -> bool {
        match self.active {
            Some(id) => {
                let seg = self.segments[&id];
                seg > HEADER && seg + RECORD + len as u64 > self.max
            }
            None => true,
        }
    }

    fn rotate(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        self.segments.insert(id, HEADER);
        self.active = Some(id);
    }

    fn append(&mut self, payload: &[u8]) -> Position {
        let total = RECORD + payload.len() as u64;
        if self.rotates(payload.len()) {
            self.rotate();
        }
        let id = self.active.unwrap();
        let len = self.segments.get_mut(&id).unwrap();
        let pos = Position::new(id, *len);
        *len += total;
        self.records.push((pos, payload.to_vec()));
        self.seen.push(pos);
        pos
    }

    fn end(&self) -> Position {
        match self.active {
            Some(id) => Position::new(id, self.segments[&id]),
            None => Position::new(self.next_id, HEADER),
        }
    }

    fn first(&self) -> Position {
        match self.segments.keys().next() {
            Some(&id) => Position::new(id, HEADER),
            None => self.end(),
        }
    }

    fn remove_before(&mut self, pos: Position) -> u64 {
        let mut freed = 0;
        while let Some((&id, &len)) = self.segments.iter().next() {
            let drained = id < pos.segment || (id == pos.segment && len <= pos.offset);
            if Some(id) == self.active || !drained {
                break;
            }
            self.segments.remove(&id);
            self.records.retain(|r| r.0.segment != id);
            freed += len;
        }
        freed
    }

    fn resolve(&self, pick: &Pick) -> Position {
        match *pick {
            Pick::Seen(i) if !self.seen.is_empty() => self.seen[i % self.seen.len()],
            Pick::Seen(_) | Pick::End => self.end(),
            Pick::First => self.first(),
            Pick::Zero => Position::new(0, 0),
            Pick::Beyond => Position::new(self.end().segment + 1, 0),
        }
    }
}

/// An `HPSPOOL2` record, encoded by hand from the crate doc.
fn encode(payload: &[u8], seq: u64) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut record = RECORD_MARKER.to_vec();
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32c_update(crc32c_update(0, &len.to_le_bytes()), &seq.to_le_bytes());
    let crc = crc32c_update(crc, payload);
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(payload);
    record
}

fn open(dir: &Path, max: u64, faults: &Arc<Faults>) -> Log {
    let options = Options {
        segment_max_bytes: max,
        file_ops: faults.clone(),
    };
    let (log, recovery) = Log::open(dir, options).unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    log
}

fn check(log: &Log, model: &Model) {
    assert_eq!(log.end(), model.end());
    assert_eq!(log.first(), model.first());
    assert_eq!(log.segments(), model.segments.len());
    assert_eq!(log.bytes(), model.segments.values().sum::<u64>());
}

fn run(max: u64, ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = Arc::new(Faults::default());
    let mut log = open(dir, max, &faults);
    let mut model = Model::new(max);
    for op in ops {
        match op {
            Op::Append(payload) => {
                let pos = log.append(&payload).unwrap();
                assert_eq!(pos, model.append(&payload));
            }
            Op::FailedAppend(payload, cut) => {
                let cut = cut % (RECORD as usize + payload.len());
                *faults.cut.lock().unwrap() = Some(cut);
                let err = log.append(&payload).unwrap_err();
                assert!(err.is_no_space(), "{err:?}");
                assert!(!faults.fail_next.load(Ordering::SeqCst));
                // A new segment is kept when its header was written in full
                // (the cut hits the first write: the header's).
                if model.rotates(payload.len()) && cut >= HEADER as usize {
                    model.rotate();
                }
            }
            Op::Sync => log.sync().unwrap(),
            Op::Reopen => {
                drop(log);
                let (reopened, recovery) = Log::open(
                    dir,
                    Options {
                        segment_max_bytes: max,
                        file_ops: faults.clone(),
                    },
                )
                .unwrap();
                assert!(recovery.is_clean(), "{recovery:?}");
                assert_eq!(recovery.records, model.records.len() as u64);
                assert_eq!(recovery.segments, model.segments.len());
                log = reopened;
            }
            Op::TearAndReopen(payload, cut) => {
                drop(log);
                let record = encode(&payload, u64::MAX);
                let cut = 1 + cut % (record.len() - 1);
                let torn = if let Some(id) = model.active {
                    let path = dir.join(format!("{id:020}.seg"));
                    let mut f = OpenOptions::new().append(true).open(path).unwrap();
                    f.write_all(&record[..cut]).unwrap();
                    cut as u64
                } else {
                    0
                };
                let (reopened, recovery) = Log::open(
                    dir,
                    Options {
                        segment_max_bytes: max,
                        file_ops: faults.clone(),
                    },
                )
                .unwrap();
                assert!(recovery.quarantined.is_empty(), "{recovery:?}");
                assert_eq!(recovery.truncated_bytes, torn);
                log = reopened;
            }
            Op::RemoveBefore(pick) => {
                let pos = model.resolve(&pick);
                let freed = log.remove_before(pos).unwrap();
                assert_eq!(freed, model.remove_before(pos), "remove_before {pos}");
            }
            Op::ReadFrom(pick) => {
                let from = model.resolve(&pick);
                let mut reader = log.read_from(from);
                let got: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
                let expected: Vec<_> = model
                    .records
                    .iter()
                    .filter(|r| r.0 >= from)
                    .cloned()
                    .collect();
                assert_eq!(got, expected, "read_from {from}");
                assert_eq!(reader.position(), from.max(model.end()));
            }
        }
        check(&log, &model);
    }
    // Whatever happened, a final reopen sees exactly the model.
    log.sync().unwrap();
    drop(log);
    let log = open(dir, max, &faults);
    check(&log, &model);
    let got: Vec<_> = log.read_from(log.first()).map(Result::unwrap).collect();
    assert_eq!(got, model.records);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(max in 40u64..700, ops in prop::collection::vec(op(), 1..60)) {
        run(max, ops);
    }
}
