use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_proto::codec::DecodedRow;
use hostpulse_proto::pb;
use hostpulse_proto::row::Value;
use hostpulse_testkit::batch::{decoded, decoded_row as row};
use rusqlite::Connection;

use super::*;

fn now_ns() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_nanos()).unwrap()
}

fn batch(node: &str, sequence: u64, rows: Vec<DecodedRow>) -> Arc<AcceptedBatch> {
    Arc::new(AcceptedBatch {
        node: Arc::from(node),
        decoded: decoded(sequence, rows),
        stored: pb::Batch::default(),
    })
}

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostpulse.db");
        Db { _dir: dir, path }
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path, Duration::ZERO).unwrap()
    }

    fn open_with(&self, options: SqliteOptions) -> SqliteStore {
        SqliteStore::open_with(&self.path, options).unwrap()
    }

    /// A second connection, as an operator's `sqlite3` would be.
    fn sql(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }

    fn count(&self, table: &str) -> i64 {
        self.sql()
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn tables(&self) -> Vec<String> {
        let conn = self.sql();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Column name and declared type, in table order.
    fn columns(&self, table: &str) -> Vec<(String, String)> {
        let conn = self.sql();
        let mut stmt = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
            .unwrap();
        stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn cpu_row(ts: i64, cpu: &str, usage: f64, user_total: u64) -> DecodedRow {
    row(
        "cpu",
        &[("cpu", cpu), ("region", "eu-west")],
        ts,
        &[
            ("user_seconds_total", Value::Int(user_total)),
            ("usage_percent", Value::Float(usage)),
        ],
    )
}

fn rejected(result: Result<(), StoreError>) -> String {
    match result {
        Err(StoreError::Rejected(m)) => m,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[test]
fn rows_are_queryable_with_plain_sql() {
    let db = Db::new();
    let mut store = db.open();
    assert_eq!(store.name(), "sqlite");
    let ts = now_ns() - 60_000_000_000;
    let web = batch(
        "web-1",
        1,
        vec![
            cpu_row(ts, "0", 12.5, 100),
            cpu_row(ts, "total", 7.25, 400),
            row(
                "memory",
                &[],
                ts,
                &[
                    ("total_bytes", Value::Int(16 << 30)),
                    ("used_percent", Value::Float(41.5)),
                ],
            ),
            row(
                "node_info",
                &[
                    ("hostname", "web-1.example"),
                    ("kernel", "6.1.0"),
                    ("os_pretty_name", "Debian GNU/Linux 12"),
                    ("cpu_model", "EPYC"),
                ],
                ts,
                &[
                    ("logical_cores", Value::Int(8)),
                    ("memory_total_bytes", Value::Int(16 << 30)),
                ],
            ),
            row(
                "node_info",
                &[("interface", "eth0"), ("mac", "aa:bb"), ("operstate", "up")],
                ts,
                &[("mtu", Value::Int(1500)), ("carrier", Value::Int(1))],
            ),
            row(
                "hostpulse_self",
                &[],
                ts,
                &[
                    ("rows", Value::Int(12)),
                    ("cycle_seconds", Value::Float(0.01)),
                ],
            ),
        ],
    );
    let db1 = batch(
        "db-1",
        1,
        vec![
            cpu_row(ts - 10_000_000_000, "total", 50.0, 900),
            cpu_row(ts, "total", 90.5, 1000),
        ],
    );
    store.write(&[web, db1]).unwrap();

    let conn = db.sql();
    let tags: String = conn
        .query_row(
            "SELECT tags FROM cpu WHERE node = 'web-1' AND cpu = '0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tags, "cpu=0,region=eu-west");
    let (user, usage, t_user, t_usage): (i64, f64, String, String) = conn
        .query_row(
            "SELECT user_seconds_total, usage_percent, typeof(user_seconds_total), \
             typeof(usage_percent) FROM cpu WHERE node = 'web-1' AND cpu = 'total'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((user, usage), (400, 7.25));
    assert_eq!((t_user.as_str(), t_usage.as_str()), ("integer", "real"));
    assert_eq!(db.count("cpu"), 4);
    assert_eq!(db.count("memory"), 1);
    assert_eq!(
        db.columns("cpu"),
        [
            ("ts", "INTEGER"),
            ("node", "TEXT"),
            ("tags", "TEXT"),
            ("cpu", "TEXT"),
            ("region", "TEXT"),
            ("user_seconds_total", "INTEGER"),
            ("usage_percent", "REAL"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // The module doc's queries, as an operator types them.
    let last: Vec<(String, f64)> = conn
        .prepare(
            "SELECT node, datetime(max(ts) / 1000000000, 'unixepoch') AS at, usage_percent \
             FROM cpu \
             WHERE cpu = 'total' AND ts > (strftime('%s', 'now') - 300) * 1000000000 \
             GROUP BY node ORDER BY usage_percent DESC",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        last,
        [("db-1".to_string(), 90.5), ("web-1".to_string(), 7.25)]
    );
    let inventory: (String, String, String, i64, f64) = conn
        .query_row(
            "SELECT node, hostname, kernel, logical_cores, \
                    round(memory_total_bytes / 1073741824.0, 1) AS memory_gib, \
                    datetime(max(ts) / 1000000000, 'unixepoch') AS reported \
             FROM node_info WHERE hostname IS NOT NULL GROUP BY node",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        inventory,
        (
            "web-1".into(),
            "web-1.example".into(),
            "6.1.0".into(),
            8,
            16.0
        )
    );
    let interface: (Option<String>, String, i64) = conn
        .query_row(
            "SELECT hostname, interface, mtu FROM node_info WHERE interface IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(interface, (None, "eth0".into(), 1500));
    let stale: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT node FROM hostpulse_self GROUP BY node \
             HAVING max(ts) < (strftime('%s', 'now') - 600) * 1000000000)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stale, 0);
    for query in [
        "SELECT DISTINCT tags FROM cpu",
        "SELECT node, cpu, max(usage_percent) AS peak FROM cpu \
         WHERE ts > (strftime('%s', 'now') - 3600) * 1000000000 \
         GROUP BY node, cpu ORDER BY peak DESC LIMIT 10",
    ] {
        conn.prepare(query)
            .unwrap()
            .query_map([], |_| Ok(()))
            .unwrap()
            .for_each(|r| r.unwrap());
    }
    // The time-bounded queries use the ts-first index.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT * FROM cpu WHERE ts > 5",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("cpu:dedup"), "{plan}");
}

#[test]
fn new_fields_and_tags_add_columns() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch(
            "n",
            1,
            vec![row(
                "disk",
                &[("device", "sda")],
                ts,
                &[("reads_total", Value::Int(5))],
            )],
        )])
        .unwrap();
    // A kernel upgrade brings discards; an operator adds a label; the first
    // sample had no rate.
    store
        .write(&[batch(
            "n",
            2,
            vec![row(
                "disk",
                &[("device", "sda"), ("rack", "r7")],
                ts + 1,
                &[
                    ("reads_total", Value::Int(6)),
                    ("reads_per_second", Value::Float(0.1)),
                    ("discards_total", Value::Int(3)),
                ],
            )],
        )])
        .unwrap();
    let names: Vec<String> = db.columns("disk").into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "ts",
            "node",
            "tags",
            "device",
            "reads_total",
            "rack",
            "reads_per_second",
            "discards_total"
        ]
    );
    let rows: Vec<(Option<String>, Option<i64>, i64)> = db
        .sql()
        .prepare("SELECT rack, discards_total, reads_total FROM disk ORDER BY ts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [(None, None, 5), (Some("r7".into()), Some(3), 6)]);
}

#[test]
fn replayed_batches_leave_one_row_per_key() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    let b = batch(
        "web-1",
        7,
        vec![
            cpu_row(ts, "0", 1.0, 10),
            cpu_row(ts, "1", 2.0, 20),
            row("load", &[], ts, &[("load1", Value::Float(0.5))]),
        ],
    );
    store.write(std::slice::from_ref(&b)).unwrap();
    store.write(std::slice::from_ref(&b)).unwrap();
    store.write(&[Arc::clone(&b), Arc::clone(&b)]).unwrap();
    assert_eq!(db.count("cpu"), 2);
    assert_eq!(db.count("load"), 1);

    // Same key, other node or other tags: other rows.
    store
        .write(&[
            batch("web-2", 7, vec![cpu_row(ts, "0", 1.0, 10)]),
            batch("web-1", 8, vec![cpu_row(ts + 1, "0", 1.0, 10)]),
        ])
        .unwrap();
    assert_eq!(db.count("cpu"), 4);

    // An upsert: a resent row carries the latest values, and a key split in
    // two rows of one batch merges their fields.
    store
        .write(&[batch(
            "web-1",
            9,
            vec![
                row(
                    "load",
                    &[],
                    ts,
                    &[("load1", Value::Float(0.75)), ("load5", Value::Float(0.25))],
                ),
                row("load", &[], ts, &[("load15", Value::Float(0.125))]),
            ],
        )])
        .unwrap();
    let load: (f64, f64, f64) = db
        .sql()
        .query_row("SELECT load1, load5, load15 FROM load", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(load, (0.75, 0.25, 0.125));
    assert_eq!(db.count("load"), 1);
}

#[test]
fn tags_key_is_injective() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    let f = [("v", Value::Int(1))];
    store
        .write(&[batch(
            "n",
            1,
            vec![
                row("t", &[("a", "x,b=y")], ts, &f),
                row("t", &[("a", "x"), ("b", "y")], ts, &f),
                row("t", &[("a", "x\\"), ("b", "y")], ts, &f),
                row("t", &[("a", "x\\,b=y")], ts, &f),
                row("t", &[("b", "y"), ("a", "x")], ts, &f),
                row("t", &[], ts, &f),
            ],
        )])
        .unwrap();
    assert_eq!(db.count("t"), 5, "tag order does not matter, content does");
    let keys: Vec<String> = db
        .sql()
        .prepare("SELECT tags FROM t ORDER BY tags")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        keys,
        ["", "a=x,b=y", "a=x\\,b=y", "a=x\\\\,b=y", "a=x\\\\\\,b=y",]
    );
}

#[test]
fn hostile_names_are_rejected_and_nothing_is_written() {
    let db = Db::new();
    let mut store = db.open();
    let commits = store.commits();
    let ts = now_ns();
    let good = || cpu_row(ts, "0", 1.0, 1);
    let long = "a".repeat(65);
    let cases: Vec<DecodedRow> = vec![
        row("cpu; DROP TABLE cpu; --", &[], ts, &[("x", Value::Int(1))]),
        row("cpu\"", &[], ts, &[("x", Value::Int(1))]),
        row("Cpu", &[], ts, &[("x", Value::Int(1))]),
        row("", &[], ts, &[("x", Value::Int(1))]),
        row(&long, &[], ts, &[("x", Value::Int(1))]),
        row("sqlite_master", &[], ts, &[("x", Value::Int(1))]),
        row("t", &[("a\"b", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[("a b", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[], ts, &[("x\"); DROP TABLE t; --", Value::Int(1))]),
        row("t", &[], ts, &[("é", Value::Int(1))]),
        row("t", &[], ts, &[(&long, Value::Int(1))]),
        row("t", &[], ts, &[("", Value::Int(1))]),
        row("t", &[("ts", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[("NODE", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[], ts, &[("tags", Value::Int(1))]),
        row("t", &[], ts, &[("rowid", Value::Int(1))]),
        row("t", &[("x", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[("X", "1")], ts, &[("x", Value::Int(1))]),
        row("t", &[("a", "1"), ("a", "2")], ts, &[("x", Value::Int(1))]),
        row("t", &[("a", "1"), ("A", "2")], ts, &[("x", Value::Int(1))]),
        row(
            "t",
            &[],
            ts,
            &[("rx", Value::Int(1)), ("Rx", Value::Int(2))],
        ),
    ];
    for (i, bad) in cases.into_iter().enumerate() {
        let message = rejected(store.write(&[
            batch("n", 1, vec![good()]),
            batch("n", 2, vec![good(), bad]),
        ]));
        assert!(message.contains("batch 2"), "case {i}: {message}");
    }
    assert!(db.tables().is_empty(), "{:?}", db.tables());
    assert_eq!(store.commits(), commits);

    // The store still works, and a tag cannot later become a field (nor the
    // reverse); the refused write leaves no trace, not even its other tables.
    store.write(&[batch("n", 3, vec![good()])]).unwrap();
    let message = rejected(store.write(&[batch(
        "n",
        4,
        vec![
            row("memory", &[], ts, &[("free_bytes", Value::Int(1))]),
            row("cpu", &[], ts, &[("region", Value::Int(1))]),
        ],
    )]));
    assert!(message.contains("region"), "{message}");
    let message = rejected(store.write(&[batch(
        "n",
        5,
        vec![row(
            "cpu",
            &[("usage_percent", "high")],
            ts,
            &[("x", Value::Int(1))],
        )],
    )]));
    assert!(message.contains("usage_percent"), "{message}");
    assert_eq!(db.tables(), ["cpu"]);
    assert_eq!(db.count("cpu"), 1);
    assert_eq!(db.columns("cpu").len(), 7);

    // An operator's own table of the same name is not written to.
    db.sql()
        .execute_batch("CREATE TABLE mine (a INTEGER)")
        .unwrap();
    let message = rejected(store.write(&[batch(
        "n",
        6,
        vec![row("mine", &[], ts, &[("a", Value::Int(1))])],
    )]));
    assert!(message.contains("not created by hostpulse"), "{message}");
    assert_eq!(db.count("mine"), 0);
}

#[test]
fn keywords_capitals_and_odd_values_are_plain_data() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch(
            "node'); DROP TABLE excluded; --",
            1,
            vec![
                row(
                    "excluded",
                    &[("group", "a'b\"c"), ("Region", "eu\0west")],
                    ts,
                    &[("order", Value::Int(1)), ("select", Value::Float(2.5))],
                ),
                row(
                    "excluded",
                    &[("region", "us")],
                    ts,
                    &[("order", Value::Int(2))],
                ),
            ],
        )])
        .unwrap();
    // Written twice: the upsert on a table named like the upsert's pseudo-table.
    store
        .write(&[batch(
            "node'); DROP TABLE excluded; --",
            2,
            vec![row(
                "excluded",
                &[("group", "a'b\"c"), ("Region", "eu\0west")],
                ts,
                &[("order", Value::Int(3))],
            )],
        )])
        .unwrap();
    assert_eq!(db.count("excluded"), 2);
    let (node, group, region, order): (String, String, String, i64) = db
        .sql()
        .query_row(
            "SELECT node, \"group\", region, \"order\" FROM excluded WHERE \"group\" IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(node, "node'); DROP TABLE excluded; --");
    assert_eq!(group, "a'b\"c");
    assert_eq!(region, "eu\0west");
    assert_eq!(order, 3);
}

#[test]
fn huge_integers_and_non_finite_floats() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    let big = i64::MAX as u64;
    store
        .write(&[batch(
            "n",
            1,
            vec![
                row(
                    "vmstat",
                    &[("k", "max")],
                    ts,
                    &[
                        ("counter_total", Value::Int(u64::MAX)),
                        ("nan", Value::Float(f64::NAN)),
                        ("inf", Value::Float(f64::INFINITY)),
                    ],
                ),
                row(
                    "vmstat",
                    &[("k", "i64")],
                    ts,
                    &[("counter_total", Value::Int(big))],
                ),
                row(
                    "vmstat",
                    &[("k", "over")],
                    ts,
                    &[("counter_total", Value::Int(big + 1))],
                ),
                row(
                    "vmstat",
                    &[("k", "zero")],
                    ts,
                    &[("counter_total", Value::Int(0))],
                ),
                // Only a NaN: nothing to store.
                row(
                    "vmstat",
                    &[("k", "none")],
                    ts,
                    &[("other", Value::Float(f64::NAN))],
                ),
            ],
        )])
        .unwrap();
    let conn = db.sql();
    let get = |k: &str| -> (String, rusqlite::types::Value) {
        conn.query_row(
            "SELECT typeof(counter_total), counter_total FROM vmstat WHERE k = ?1",
            [k],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    use rusqlite::types::Value as V;
    // Above i64::MAX: saturated at i64::MAX, as QuestDB's LONG (the rules).
    assert_eq!(get("max"), ("integer".into(), V::Integer(i64::MAX)));
    assert_eq!(get("i64"), ("integer".into(), V::Integer(i64::MAX)));
    assert_eq!(get("over"), ("integer".into(), V::Integer(i64::MAX)));
    assert_eq!(get("zero"), ("integer".into(), V::Integer(0)));
    assert_eq!(db.count("vmstat"), 4);
    let names: Vec<String> = db.columns("vmstat").into_iter().map(|(n, _)| n).collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "nan" || n == "inf" || n == "other")
    );

    // A field that changes kind is stored by SQLite's affinity, not refused.
    store
        .write(&[batch(
            "n",
            2,
            vec![row(
                "vmstat",
                &[("k", "flip")],
                ts,
                &[("counter_total", Value::Float(1.5))],
            )],
        )])
        .unwrap();
    assert_eq!(get("flip"), ("real".into(), V::Real(1.5)));
}

#[test]
fn retention_deletes_old_rows_in_chunks() {
    let db = Db::new();
    let mut store = db.open_with(SqliteOptions {
        retention: Duration::from_secs(3600),
        prune_chunk: 3,
        ..SqliteOptions::default()
    });
    let now = now_ns();
    let hour = 3_600_000_000_000i64;
    let mut rows = Vec::new();
    for i in 0..10 {
        rows.push(cpu_row(now - 2 * hour - i, "0", 1.0, 1));
        rows.push(row(
            "load",
            &[],
            now - 25 * hour - i,
            &[("load1", Value::Float(1.0))],
        ));
    }
    for i in 0..4 {
        rows.push(cpu_row(now - 60_000_000_000 - i, "0", 1.0, 1));
    }
    rows.push(row("load", &[], now, &[("load1", Value::Float(1.0))]));
    rows.push(row(
        "load",
        &[],
        now + hour,
        &[("load1", Value::Float(1.0))],
    ));
    store.write(&[batch("n", 1, rows)]).unwrap();
    assert_eq!((db.count("cpu"), db.count("load")), (14, 12));

    let before = store.commits();
    store.maintain().unwrap();
    assert_eq!((db.count("cpu"), db.count("load")), (4, 2));
    assert_eq!(
        store.last_prune(),
        PruneReport {
            deleted: 20,
            incomplete: false
        }
    );
    // 10 rows per table in chunks of 3: 4 chunks each, one transaction each.
    assert!(
        store.commits() - before >= 8,
        "{}",
        store.commits() - before
    );
    let oldest: i64 = db
        .sql()
        .query_row("SELECT min(ts) FROM cpu", [], |r| r.get(0))
        .unwrap();
    assert!(oldest > now - hour);

    store.maintain().unwrap();
    assert_eq!(store.last_prune().deleted, 0);
    // The WAL was checkpointed and truncated.
    let wal = db.path.with_extension("db-wal");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
}

#[test]
fn retention_zero_keeps_everything_and_budget_bounds_a_call() {
    let db = Db::new();
    let mut store = db.open();
    store
        .write(&[batch("n", 1, vec![cpu_row(1, "0", 1.0, 1)])])
        .unwrap();
    store.maintain().unwrap();
    assert_eq!(db.count("cpu"), 1);
    drop(store);

    let mut store = db.open_with(SqliteOptions {
        retention: Duration::from_secs(1),
        prune_budget: Duration::ZERO,
        ..SqliteOptions::default()
    });
    store.maintain().unwrap();
    assert!(store.last_prune().incomplete);
    assert_eq!(db.count("cpu"), 1);
    drop(store);

    let mut store = db.open_with(SqliteOptions {
        retention: Duration::MAX,
        ..SqliteOptions::default()
    });
    store.maintain().unwrap();
    assert_eq!(db.count("cpu"), 1);
}

#[test]
fn cutoff_is_now_minus_retention_and_never_overflows() {
    let now = UNIX_EPOCH + Duration::from_secs(100);
    assert_eq!(cutoff_ns(Duration::ZERO, now), None);
    assert_eq!(
        cutoff_ns(Duration::from_secs(40), now),
        Some(60_000_000_000)
    );
    assert_eq!(
        cutoff_ns(Duration::from_secs(400), now),
        Some(-300_000_000_000)
    );
    assert_eq!(cutoff_ns(Duration::MAX, now), None);
    let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
    assert_eq!(
        cutoff_ns(Duration::from_secs(5), before_epoch),
        Some(-10_000_000_000)
    );
    let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    assert_eq!(cutoff_ns(Duration::from_nanos(1), far), Some(i64::MAX));
}

#[test]
fn a_locked_database_is_unavailable_then_works() {
    let db = Db::new();
    let mut store = db.open_with(SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        retention: Duration::from_secs(60),
        ..SqliteOptions::default()
    });
    store
        .write(&[batch("n", 1, vec![cpu_row(1, "0", 1.0, 1)])])
        .unwrap();
    let other = db.sql();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let b = batch("n", 2, vec![cpu_row(now_ns(), "0", 1.0, 1)]);
    match store.write(std::slice::from_ref(&b)) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("locked"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(store.maintain(), Err(StoreError::Unavailable(_))));
    other.execute_batch("ROLLBACK").unwrap();
    store.write(std::slice::from_ref(&b)).unwrap();
    store.maintain().unwrap();
    assert_eq!(
        db.count("cpu"),
        1,
        "the old row is pruned, the new one kept"
    );
}

#[test]
fn reopening_keeps_working() {
    let db = Db::new();
    let ts = now_ns();
    let first = batch("n", 1, vec![cpu_row(ts, "0", 1.0, 1)]);
    {
        let mut store = db.open();
        store.write(std::slice::from_ref(&first)).unwrap();
    }
    let mut store = db.open();
    let commits = store.commits();
    // A replay after the restart, a new field, a new table.
    store
        .write(&[
            Arc::clone(&first),
            batch(
                "n",
                2,
                vec![
                    row(
                        "cpu",
                        &[("cpu", "0"), ("region", "eu-west")],
                        ts + 1,
                        &[("steal_percent", Value::Float(0.5))],
                    ),
                    row("swap", &[], ts, &[("free_bytes", Value::Int(1))]),
                ],
            ),
        ])
        .unwrap();
    assert_eq!(store.commits() - commits, 1, "no failed first attempt");
    assert_eq!(db.count("cpu"), 2);
    assert_eq!(db.columns("cpu").len(), 8);
    assert_eq!(db.tables(), ["cpu", "swap"]);
    let version: i64 = db
        .sql()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = db
        .sql()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // synchronous is per connection: ask the store's own.
    let conn = store.conn.as_ref().unwrap();
    let synchronous: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    let busy: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 5000);
}

#[test]
fn another_process_changing_the_schema_is_followed() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch("n", 1, vec![cpu_row(ts, "0", 1.0, 1)])])
        .unwrap();
    db.sql()
        .execute_batch("ALTER TABLE cpu ADD COLUMN steal_percent REAL; DROP INDEX \"cpu:dedup\";")
        .unwrap();
    let b = batch(
        "n",
        2,
        vec![row(
            "cpu",
            &[("cpu", "0"), ("region", "eu-west")],
            ts,
            &[("steal_percent", Value::Float(0.5))],
        )],
    );
    store.write(std::slice::from_ref(&b)).unwrap();
    store.write(std::slice::from_ref(&b)).unwrap();
    assert_eq!(db.count("cpu"), 1);
    let steal: f64 = db
        .sql()
        .query_row("SELECT steal_percent FROM cpu", [], |r| r.get(0))
        .unwrap();
    assert_eq!(steal, 0.5);
}

#[test]
fn a_database_file_deleted_under_the_store_is_recreated() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch("n", 1, vec![cpu_row(ts, "0", 1.0, 1)])])
        .unwrap();
    std::fs::remove_file(&db.path).unwrap();
    let _ = std::fs::remove_file(db.path.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.path.with_extension("db-shm"));
    // SQLite alone would keep writing into the unlinked file.
    store
        .write(&[batch("n", 2, vec![cpu_row(ts + 1, "0", 1.0, 1)])])
        .unwrap();
    assert_eq!(db.count("cpu"), 1);

    // Replaced by another database (and nobody opens the new file before
    // the store: a stale WAL beside a replaced file is replayed into it by
    // whichever connection opens it first): written to the new one.
    let other = db.path.with_extension("new");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (a INTEGER)")
        .unwrap();
    std::fs::rename(&other, &db.path).unwrap();
    store
        .write(&[batch("n", 3, vec![cpu_row(ts + 2, "0", 1.0, 1)])])
        .unwrap();
    assert_eq!(db.tables(), ["cpu", "unrelated"]);
    assert_eq!(db.count("cpu"), 1);
}

#[test]
fn one_transaction_for_a_hundred_batches() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    let batches: Vec<Arc<AcceptedBatch>> = (0..100u64)
        .map(|b| {
            let rows = (0..30u64)
                .map(|r| {
                    row(
                        "network",
                        &[("interface", &format!("eth{r}"))],
                        ts + b as i64 * 10_000_000_000,
                        &[
                            ("rx_bytes_total", Value::Int(b * 1000 + r)),
                            ("rx_bytes_per_second", Value::Float(r as f64 / 4.0)),
                        ],
                    )
                })
                .collect();
            batch("web-1", b, rows)
        })
        .collect();
    let before = store.commits();
    store.write(&batches).unwrap();
    assert_eq!(store.commits() - before, 1);
    assert_eq!(db.count("network"), 3000);
    let sum: i64 = db
        .sql()
        .query_row("SELECT sum(rx_bytes_total) FROM network", [], |r| r.get(0))
        .unwrap();
    let expected: u64 = (0..100u64)
        .flat_map(|b| (0..30u64).map(move |r| b * 1000 + r))
        .sum();
    assert_eq!(sum as u64, expected);

    // An empty write commits nothing.
    store.write(&[]).unwrap();
    store.write(&[batch("n", 1, Vec::new())]).unwrap();
    assert_eq!(store.commits() - before, 1);
}

#[test]
fn schema_growth_is_bounded() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch("n", 1, vec![cpu_row(ts, "0", 1.0, 1)])])
        .unwrap();
    // Rows within the rules (at most 512 fields each) that together grow a
    // table past its column limit.
    let names: Vec<String> = (0..MAX_COLUMNS).map(|i| format!("f{i}")).collect();
    let fields: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), Value::Int(1))).collect();
    let half = MAX_COLUMNS / 2;
    let message = rejected(store.write(&[
        batch("n", 2, vec![cpu_row(ts + 1, "0", 1.0, 1)]),
        batch(
            "n",
            3,
            vec![
                row("wide", &[], ts, &fields[..half]),
                row("wide", &[], ts + 1, &fields[half..]),
            ],
        ),
    ]));
    assert!(message.contains("at most 1000"), "{message}");
    let tables: Vec<DecodedRow> = (0..MAX_TABLES)
        .map(|i| row(&format!("t{i}"), &[], ts, &[("x", Value::Int(1))]))
        .collect();
    let message = rejected(store.write(&[batch("n", 4, tables)]));
    assert!(message.contains("at most 256"), "{message}");
    assert_eq!(db.count("cpu"), 1);
    assert_eq!(db.tables(), ["cpu"]);
}

#[test]
fn a_row_the_database_refuses_is_rejected_atomically() {
    let db = Db::new();
    let mut store = db.open();
    let ts = now_ns();
    store
        .write(&[batch("n", 1, vec![cpu_row(ts, "0", 1.0, 1)])])
        .unwrap();
    db.sql()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON cpu WHEN NEW.user_seconds_total = 666 \
             BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
        )
        .unwrap();
    let message = rejected(store.write(&[
        batch("n", 2, vec![cpu_row(ts + 1, "0", 1.0, 1)]),
        batch(
            "n",
            3,
            vec![
                row("memory", &[], ts, &[("free_bytes", Value::Int(1))]),
                cpu_row(ts + 2, "0", 1.0, 666),
            ],
        ),
    ]));
    assert!(message.contains("refused by a trigger"), "{message}");
    assert_eq!(db.count("cpu"), 1);
    assert_eq!(db.tables(), ["cpu"], "the new table was rolled back too");
    store
        .write(&[batch("n", 4, vec![cpu_row(ts + 3, "0", 1.0, 1)])])
        .unwrap();
    assert_eq!(db.count("cpu"), 2);
}

#[test]
fn open_errors_are_reported_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    match SqliteStore::open(&dir.path().join("missing/dir/x.db"), Duration::ZERO) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("missing/dir"), "{m}"),
        other => panic!("{other:?}"),
    }
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&garbage, Duration::ZERO),
        Err(StoreError::Unavailable(_))
    ));
    let newer = dir.path().join("newer.db");
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    match SqliteStore::open(&newer, Duration::ZERO) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Absurd options are clamped, not a panic.
    let mut store = SqliteStore::open_with(
        &dir.path().join("ok.db"),
        SqliteOptions {
            busy_timeout: Duration::MAX,
            prune_chunk: 0,
            prune_budget: Duration::MAX,
            retention: Duration::from_nanos(1),
        },
    )
    .unwrap();
    store
        .write(&[batch("n", 1, vec![cpu_row(1, "0", 1.0, 1)])])
        .unwrap();
    store.maintain().unwrap();
    assert_eq!(store.last_prune().deleted, 1);
}

#[test]
fn text_fields_are_text_columns_kept_exactly() {
    let db = Db::new();
    let mut store = db.open();
    let message = "line one\nline \"two\"\u{1} é";
    let ts = now_ns();
    let event = row(
        "node_events",
        &[("event", "start")],
        ts,
        &[
            ("message", Value::Text(message.into())),
            ("batches", Value::Int(2)),
        ],
    );
    store
        .write(&[batch("web-1", 1, vec![event.clone()])])
        .unwrap();
    // A replay changes nothing.
    store.write(&[batch("web-1", 1, vec![event])]).unwrap();
    let (kind, got, batches): (String, String, i64) = db
        .sql()
        .query_row(
            "SELECT typeof(message), message, batches FROM node_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), got.as_str(), batches), ("text", message, 2));
    assert_eq!(db.count("node_events"), 1);
    // A text value for a numeric column is refused (the drainer keeps the
    // row in its rejected-rows file), not stored as something else.
    let clash = row(
        "node_events",
        &[("event", "stop")],
        ts + 1,
        &[("batches", Value::Text("many".into()))],
    );
    let err = store.write(&[batch("web-1", 2, vec![clash])]).unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
}
