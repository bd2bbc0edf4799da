//! The spool with scripted stores: outages, rejections, limits, restarts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostpulse_proto::codec::{Dictionary, StreamDefs};
use hostpulse_proto::row::Row;

use super::{Spool, SpoolOptions};
use crate::intake::{AcceptedBatch, Intake, IntakeError};
use crate::store::{Store, StoreError};

/// A store that records what it got and fails as scripted.
#[derive(Clone, Default)]
struct Scripted {
    got: Arc<Mutex<Vec<u64>>>,
    /// Fail with Unavailable this many times first.
    unavailable: Arc<AtomicUsize>,
    /// Reject batches whose `tasks` value is this.
    reject: Option<u64>,
    /// The store's name (cursor file), "scripted" by default.
    name: Option<&'static str>,
}

impl Store for Scripted {
    fn name(&self) -> &'static str {
        self.name.unwrap_or("scripted")
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) > 0 {
            self.unavailable.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("scripted outage".into()));
        }
        let values: Vec<u64> = batches
            .iter()
            .map(|b| b.decoded.rows[0].fields[0].1.as_f64() as u64)
            .collect();
        if self.reject.is_some_and(|r| values.contains(&r)) {
            return Err(StoreError::Rejected("scripted rejection".into()));
        }
        self.got.lock().unwrap().extend(values);
        Ok(())
    }
}

fn batch(dict: &mut Dictionary, n: u64) -> Arc<AcceptedBatch> {
    let mut row = Row::new("load", 1_000 + n as i64);
    row.int("tasks", n);
    let compact = dict.encode(n, &[row], &[]);
    let stored = dict.complete(&compact);
    let decoded = StreamDefs::new(100).decode(&stored).unwrap();
    Arc::new(AcceptedBatch {
        node: "n1".into(),
        decoded,
        stored,
    })
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open(dir: &std::path::Path, max: u64, store: Scripted) -> Spool {
    Spool::open(
        SpoolOptions {
            dir: dir.to_path_buf(),
            max_bytes: max,
        },
        vec![Box::new(store)],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_batch_reaches_a_store_that_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = Scripted::default();
    store.unavailable.store(3, Ordering::SeqCst);
    let spool = open(dir.path(), 1 << 20, store.clone());
    let mut dict = Dictionary::new();
    for n in 1..=20 {
        spool.write(batch(&mut dict, n)).await.unwrap();
    }
    wait("all delivered", || store.got.lock().unwrap().len() == 20);
    assert_eq!(
        *store.got.lock().unwrap(),
        (1..=20).collect::<Vec<_>>(),
        "in order, none lost"
    );
    let status = spool.status();
    assert_eq!(status.stores[0].delivered_batches, 20);
    assert_eq!(status.stores[0].failing_attempts, 0);
    wait("lag back to zero", || {
        spool.status().stores[0].lag_bytes == 0
    });
    spool.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_batch_is_kept_aside_and_does_not_block_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Scripted {
        reject: Some(2),
        ..Scripted::default()
    };
    let spool = open(dir.path(), 1 << 20, store.clone());
    let mut dict = Dictionary::new();
    // One write each, so batch 2 is alone in its store call.
    for n in 1..=3 {
        spool.write(batch(&mut dict, n)).await.unwrap();
        wait("delivered or rejected", || {
            let s = spool.status();
            s.stores[0].delivered_batches + s.stores[0].rejected_batches == n
        });
    }
    assert_eq!(*store.got.lock().unwrap(), vec![1, 3]);
    let rejected = std::fs::read_to_string(dir.path().join("rejected-scripted.jsonl")).unwrap();
    assert!(rejected.contains("\"tasks\":2"), "{rejected}");
    assert_eq!(spool.status().stores[0].rejected_batches, 1);
    spool.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_refuses_batches_until_the_store_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Scripted::default();
    store.unavailable.store(usize::MAX / 2, Ordering::SeqCst);
    let spool = open(dir.path(), 600, store.clone());
    let mut full = spool.full();
    let mut dict = Dictionary::new();
    let mut accepted = 0u64;
    let mut refused = None;
    for n in 1..=50 {
        match spool.write(batch(&mut dict, n)).await {
            Ok(()) => accepted += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(matches!(refused, Some(IntakeError::Full(_))), "{refused:?}");
    assert!(*full.borrow_and_update(), "health goes NOT_SERVING");
    assert!(spool.status().spool_full);
    // The store comes back: everything accepted arrives, and the spool takes batches again.
    store.unavailable.store(0, Ordering::SeqCst);
    wait("drained", || {
        store.got.lock().unwrap().len() as u64 == accepted
    });
    wait("not full", || !*full.borrow());
    spool.write(batch(&mut dict, 999)).await.unwrap();
    spool.shutdown(Duration::from_secs(5));
    assert_eq!(store.got.lock().unwrap().last(), Some(&999));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_each_store_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let first = Scripted::default();
    let mut dict = Dictionary::new();
    {
        let spool = open(dir.path(), 1 << 20, first.clone());
        for n in 1..=5 {
            spool.write(batch(&mut dict, n)).await.unwrap();
        }
        wait("first five delivered", || {
            first.got.lock().unwrap().len() == 5
        });
        // The store goes down; five more are acknowledged but not stored.
        first.unavailable.store(usize::MAX / 2, Ordering::SeqCst);
        for n in 6..=10 {
            spool.write(batch(&mut dict, n)).await.unwrap();
        }
        spool.shutdown(Duration::from_millis(200));
    }
    let second = Scripted::default();
    let spool = open(dir.path(), 1 << 20, second.clone());
    wait("the backlog delivered after the restart", || {
        second.got.lock().unwrap().len() >= 5
    });
    assert_eq!(
        *second.got.lock().unwrap(),
        vec![6, 7, 8, 9, 10],
        "resumes at the cursor: no loss, no replay of stored ones"
    );
    spool.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_batch_in_a_group_is_isolated_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Scripted {
        reject: Some(3),
        ..Scripted::default()
    };
    store.unavailable.store(usize::MAX / 2, Ordering::SeqCst);
    let spool = open(dir.path(), 1 << 20, store.clone());
    let mut dict = Dictionary::new();
    for n in 1..=6 {
        spool.write(batch(&mut dict, n)).await.unwrap();
    }
    // The store returns with a backlog: the drainer writes it as groups and
    // must split the one holding batch 3.
    store.unavailable.store(0, Ordering::SeqCst);
    wait("all handled", || {
        let s = spool.status();
        s.stores[0].delivered_batches + s.stores[0].rejected_batches == 6
    });
    assert_eq!(*store.got.lock().unwrap(), vec![1, 2, 4, 5, 6]);
    assert_eq!(spool.status().stores[0].rejected_batches, 1);
    spool.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_row_costs_only_itself_in_a_real_store() {
    use crate::store::sqlite::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hostpulse.db");
    let store = SqliteStore::open(&db, Duration::ZERO).unwrap();
    let spool = Spool::open(
        SpoolOptions {
            dir: dir.path().join("spool"),
            max_bytes: 1 << 20,
        },
        vec![Box::new(store)],
    )
    .unwrap();
    // Written straight to the spool, as an older reporter could have
    // acknowledged it (ingest now refuses it before the acknowledgement).
    let rows: Vec<Row> = ["good1", "good2", "good3", "Bad Table", "good4"]
        .iter()
        .map(|table| {
            let mut row = Row::new(table, 1_000);
            row.int("value", 1);
            row
        })
        .collect();
    let mut dict = Dictionary::new();
    let compact = dict.encode(1, &rows, &[]);
    let stored = dict.complete(&compact);
    let decoded = StreamDefs::new(100).decode(&stored).unwrap();
    spool
        .write(Arc::new(AcceptedBatch {
            node: "n1".into(),
            decoded,
            stored,
        }))
        .await
        .unwrap();
    wait("the batch handled", || {
        let s = spool.status();
        s.stores[0].rejected_batches == 1 && s.stores[0].lag_bytes == 0
    });
    let conn = rusqlite::Connection::open(&db).unwrap();
    for table in ["good1", "good2", "good3", "good4"] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{table} is stored");
    }
    let rejected = std::fs::read_to_string(dir.path().join("spool/rejected-sqlite.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.contains("\"table\":\"Bad Table\""), "{rejected}");
    assert_eq!(
        spool.status().stores[0].delivered_batches,
        0,
        "not wholly delivered"
    );
    spool.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_rotting_after_open_cost_one_record_counted_once_for_two_stores() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let stores = [("one", Scripted::default()), ("two", Scripted::default())].map(|(name, s)| {
        // Down, so both drainers hold batch 1 while the rest is written.
        s.unavailable.store(usize::MAX, Ordering::SeqCst);
        Scripted {
            name: Some(name),
            ..s
        }
    });
    let spool = Spool::open(
        SpoolOptions {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 20,
        },
        stores
            .iter()
            .map(|s| Box::new(s.clone()) as Box<dyn Store>)
            .collect(),
    )
    .unwrap();
    let mut dict = Dictionary::new();
    spool.write(batch(&mut dict, 1)).await.unwrap();
    wait("both drainers retrying batch 1", || {
        spool.status().stores.iter().all(|s| s.failing_attempts > 0)
    });
    for n in 2..=10 {
        spool.write(batch(&mut dict, n)).await.unwrap();
    }
    // Rot in the middle of batch 5's record, after the spool opened.
    let seg = dir.path().join("00000000000000000001.seg");
    let records: Vec<(u64, usize)> = hostpulse_spool::SegmentEntries::open(&seg)
        .unwrap()
        .map(|e| match e.unwrap() {
            hostpulse_spool::Entry::Record {
                offset, payload, ..
            } => (offset, payload.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    let (offset, len) = records[4];
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.write_all_at(b"rot", offset + 20 + len as u64 / 2)
        .unwrap();
    for s in &stores {
        s.unavailable.store(0, Ordering::SeqCst);
    }
    for s in &stores {
        wait("the intact batches delivered", || {
            s.got.lock().unwrap().len() == 9
        });
        assert_eq!(*s.got.lock().unwrap(), [1, 2, 3, 4, 6, 7, 8, 9, 10]);
    }
    let status = spool.status();
    assert_eq!(status.skipped_records, 1, "{status:?}");
    assert_eq!(status.skipped_bytes, 20 + len as u64);
    assert_eq!(status.damaged.len(), 1, "counted once for both stores");
    assert!(status.damaged[0].found.starts_with("while draining into"));
    let copy = std::path::Path::new(&status.damaged[0].copy);
    assert_eq!(
        copy.file_name().unwrap().to_str().unwrap(),
        format!("00000000000000000001.seg.at-{offset}")
    );
    assert!(copy.exists());
    spool.shutdown(Duration::from_secs(1));
}
