//! The pipeline against a real QuestDB 9.3.5 (see `hostpulse_testkit::questdb` for where
//! it comes from): the schema as QuestDB really makes it, a reporter that
//! refuses to write into tables made without it, outages, restarts and
//! kill -9 with zero gaps and zero duplicates, and every query of the shipped
//! Grafana dashboard. Real `reporter` and `gatherer` binaries; each test has
//! node ids of its own, so tests that share a server do not see each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_testkit::questdb::Need;
use hostpulse_testkit::{
    Daemon, QuestDb, fixture, free_port, grpcurl, http, last_acked, root_args, wait_for,
    wait_listening,
};
use serde_json::Value;

use hostpulse_testkit::args as s;

use hostpulse_testkit::unique_node as node;

struct Reporter {
    daemon: Daemon,
    admin: u16,
}

fn reporter(q: &QuestDb, port: u16, dir: &Path, mode: &str) -> Reporter {
    let admin = free_port();
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--sqlite",
        "none",
        "--questdb",
        &q.conf(),
        "--questdb-schema",
        mode,
        "--self-interval",
        "1s",
        "--spool-dir",
    ]);
    args.push(dir.join("spool").display().to_string());
    let daemon = Daemon::start("reporter", &args, dir);
    wait_listening(port);
    Reporter { daemon, admin }
}

fn gatherer(port: u16, node: &str, dir: &Path, collectors: &str, interval: &str) -> Daemon {
    let mut args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        node,
        "--collectors",
        collectors,
        "--interval",
        interval,
        "--buffer-dir",
    ]);
    args.push(dir.join(format!("buffer-{node}")).display().to_string());
    Daemon::start("gatherer", &args, dir)
}

/// The tables of `deploy/questdb/schema.sql`: name → (column → type), and
/// the dedup keys.
fn schema() -> BTreeMap<String, (BTreeMap<String, String>, Vec<String>)> {
    let mut tables = BTreeMap::new();
    for statement in schema_statements() {
        let name = statement.split('"').nth(1).unwrap().to_string();
        let open = statement.find('(').unwrap();
        let close = statement.find(") TIMESTAMP(ts)").unwrap();
        let columns = statement[open + 1..close]
            .split(',')
            .map(|def| {
                let mut w = def.split_whitespace();
                let column = w.next().unwrap().trim_matches('"').to_string();
                (column, w.next().unwrap().to_string())
            })
            .collect();
        let keys = statement[statement.find("KEYS(").unwrap() + 5..]
            .trim_end_matches(')')
            .split(',')
            .map(|k| k.trim().to_string())
            .collect();
        tables.insert(name, (columns, keys));
    }
    tables
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// (count(), count_distinct(ts)) of `table` for `node`.
fn counts(q: &QuestDb, table: &str, node: &str) -> (i64, i64) {
    let r = q.rows(&format!(
        "select count(), count_distinct(ts) from \"{table}\" where node = '{node}'"
    ));
    (int(&r[0][0]), int(&r[0][1]))
}

/// The gatherer's cycles stored for `node`: (rows, distinct ts, distinct
/// cycles, min cycle, max cycle).
fn cycles(q: &QuestDb, node: &str) -> [i64; 5] {
    let r = q.rows(&format!(
        "select count(), count_distinct(ts), count_distinct(cycles_total), min(cycles_total), \
         max(cycles_total) from hostpulse_self where node = '{node}' and component = 'gatherer'"
    ));
    let v = |i: usize| r[0][i].as_i64().unwrap_or(0);
    [v(0), v(1), v(2), v(3), v(4)]
}

/// Waits until QuestDB holds every cycle up to at least `target`, then
/// asserts zero gaps and zero duplicates for `node`: in `hostpulse_self`
/// (cycles 1..=N, one row each) and in `load` (one row per cycle). Returns N.
fn assert_complete(q: &QuestDb, node: &str, target: i64, what: &str) -> i64 {
    wait_for(
        Duration::from_secs(90),
        &format!("{what}: cycle {target} in QuestDB"),
        || cycles(q, node)[4] >= target,
    );
    // Let the WAL apply what is in flight (each table on its own), then read
    // figures that no longer change.
    let mut last = ([0; 5], (0, 0));
    wait_for(Duration::from_secs(30), "stable counts", || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = (cycles(q, node), counts(q, "load", node));
        let stable = now == last && now.1.0 >= now.0[4];
        last = now;
        stable
    });
    let ([rows, distinct_ts, distinct_cycles, min, max], (load, load_ts)) = last;
    assert_eq!(min, 1, "{what}: the first cycle is missing");
    assert_eq!(distinct_cycles, max, "{what}: gaps in cycles 1..={max}");
    assert_eq!(rows, distinct_ts, "{what}: duplicated hostpulse_self rows");
    assert_eq!(rows, max, "{what}: hostpulse_self rows vs cycles");
    assert_eq!(load, load_ts, "{what}: duplicated load rows");
    assert_eq!(load, max, "{what}: load rows vs the gatherer's cycles");
    max
}

/// The last sequence acknowledged, comparable with QuestDB's counts.
fn acked(port: u16) -> i64 {
    i64::try_from(last_acked(port)).unwrap_or(i64::MAX)
}

fn status(port: u16) -> Value {
    let (ok, out, err) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/Status",
    ]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn questdb_sink(status: &Value) -> Value {
    status["stores"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "questdb"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn metric(admin: u16, name: &str) -> Option<f64> {
    let (_, text) = http(admin, "GET", "/metrics", "")?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- (a) + (f)

/// Grafana's macros as the QuestDB data source expands them
/// (`$__timeFilter(c)`: `c >= cast(<from µs> as timestamp) AND c <= cast(<to
/// µs> as timestamp)`; `$__sampleByInterval`: the panel's interval).
fn expand(sql: &str, node: &str) -> String {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let (from, to) = (now_us - 3_600_000_000, now_us + 60_000_000);
    sql.replace(
        "$__timeFilter(ts)",
        &format!("ts >= cast({from} as timestamp) AND ts <= cast({to} as timestamp)"),
    )
    .replace("$__sampleByInterval", "1s")
    .replace("$node", node)
}

/// Every SQL query of the dashboards in `deploy/grafana`: (title, SQL), the
/// query variables (`$node`) first.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    let mut out = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                out.insert(
                    0,
                    (
                        format!("variable ${}", v["name"].as_str().unwrap()),
                        v["query"].as_str().unwrap().to_string(),
                    ),
                );
            }
        }
        panels(&d["panels"], &mut out);
    }
    out
}

/// The panels' `rawSql`, nested rows included.
fn panels(list: &Value, out: &mut Vec<(String, String)>) {
    for p in list.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(sql) = t["rawSql"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("?").to_string(),
                    sql.to_string(),
                ));
            }
        }
        panels(&p["panels"], out);
    }
}

#[test]
fn the_schema_gives_every_table_dedup_and_ts_and_every_dashboard_query_returns_rows() {
    let Some(q) = QuestDb::for_test(
        "the_schema_gives_every_table_dedup_and_ts_and_every_dashboard_query_returns_rows",
        Need::Shared,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = reporter(&q, port, dir.path(), "apply");
    // A captured Debian VM (every family but hwmon) and a host with sensors,
    // streamed as real gatherers do.
    let vm = node("qdb-vm");
    let sensors = node("qdb-sensors");
    let mut gatherers = Vec::new();
    for (id, tree) in [(&vm, "debian12-vm"), (&sensors, "edge-psi-hwmon")] {
        let mut args = s(&[
            "--reporter",
            &format!("http://127.0.0.1:{port}"),
            "--node-id",
            id,
            "--interval",
            "200ms",
            "--label",
            "run=questdb-e2e",
        ]);
        args.extend(root_args(&fixture(tree)));
        gatherers.push(Daemon::start("gatherer", &args, dir.path()));
    }
    let expected = schema();
    wait_for(
        Duration::from_secs(60),
        "cycles of both nodes in QuestDB",
        || cycles(&q, &vm)[4] >= 5 && cycles(&q, &sensors)[4] >= 5,
    );

    // (a) Every table of the schema, as QuestDB made it.
    let found: BTreeMap<String, (bool, String)> = q
        .rows("select table_name, dedup, designatedTimestamp from tables()")
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                (r[1] == true, r[2].as_str().unwrap_or_default().to_string()),
            )
        })
        .collect();
    for name in expected.keys() {
        assert_eq!(
            found.get(name),
            Some(&(true, "ts".to_string())),
            "table {name}: (dedup, designated timestamp) in tables()"
        );
    }
    if q.is_own() {
        // Nothing was created by ILP on the fly: every table the gatherers
        // and the reporter filled is in the schema.
        let names: BTreeSet<&String> = found.keys().collect();
        assert_eq!(names, expected.keys().collect(), "tables() vs schema.sql");
    }
    for (name, (columns, keys)) in &expected {
        let shown = q.rows(&format!("show columns from \"{name}\""));
        let mut upsert = Vec::new();
        for c in &shown {
            let (column, kind) = (c[0].as_str().unwrap(), c[1].as_str().unwrap());
            if c[8] == true {
                upsert.push(column.to_string());
            }
            match columns.get(column) {
                Some(want) => assert_eq!(kind, want, "{name}.{column}"),
                // The operator label is the one column ILP may add.
                None => assert_eq!(
                    (column, kind),
                    ("run", "SYMBOL"),
                    "{name}: column {column} is not in schema.sql (ILP added it)"
                ),
            }
        }
        let mut want = keys.clone();
        want.sort();
        upsert.sort();
        assert_eq!(upsert, want, "{name}: upsert keys");
    }
    assert_eq!(
        metric(
            r.admin,
            "hostpulse_reporter_store_schema_ok{store=\"questdb\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        http(r.admin, "GET", "/healthz", ""),
        Some((200, "ok\n".into()))
    );

    // (f) Every query of the shipped dashboard returns rows.
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    // hwmon rows: the sensors host.
    // (Each table's WAL is applied on its own: rows of one may show later.)
    wait_for(Duration::from_secs(30), "hwmon rows", || {
        counts(&q, "hwmon", &sensors).0 > 0
    });
    for (title, sql) in &queries {
        let sql = expand(sql, &vm);
        assert!(!sql.contains('$'), "{title}: a macro left in {sql}");
        let mut rows = Value::Null;
        wait_for(
            Duration::from_secs(30),
            &format!("rows from {title}: {sql}"),
            || {
                rows = q
                    .sql(&sql)
                    .unwrap_or_else(|e| panic!("{title}: {e}\n{sql}"));
                rows["count"].as_i64().unwrap_or(0) > 0
            },
        );
        if title == "variable $node" {
            let nodes: Vec<&str> = rows["dataset"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r[0].as_str())
                .collect();
            assert!(nodes.contains(&vm.as_str()), "{nodes:?}");
        }
    }
    drop(gatherers);
    drop(r);
}

// ---------------------------------------------------------------- (b)

#[test]
fn a_reporter_holds_its_rows_while_a_table_lacks_the_schema_and_drains_once_fixed() {
    let Some(q) = QuestDb::for_test(
        "a_reporter_holds_its_rows_while_a_table_lacks_the_schema_and_drains_once_fixed",
        Need::Own,
    ) else {
        return;
    };
    // `load` made by hand without DEDUP; `swap` made by ILP (designated
    // timestamp `timestamp`), as a reporter without a schema left them.
    q.exec(
        "CREATE TABLE \"load\" (ts TIMESTAMP, node SYMBOL, load1 DOUBLE, load5 DOUBLE, \
         load15 DOUBLE, tasks_runnable LONG, tasks LONG) TIMESTAMP(ts) PARTITION BY DAY WAL",
    );
    let (code, body) = http(
        q.http_port,
        "POST",
        "/write?precision=n",
        "swap,node=old total_bytes=1i 1700000000000000000\n",
    )
    .unwrap();
    assert_eq!(code, 204, "{body}");
    q.wait_value(Duration::from_secs(20), "select count() from swap", |n| {
        n == 1
    });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = reporter(&q, port, dir.path(), "apply");
    let id = node("qdb-broken");
    let g = gatherer(port, &id, dir.path(), "load,swap", "100ms");

    // Said at start, with the fixes.
    wait_for(Duration::from_secs(30), "the problems in the log", || {
        let log = r.daemon.log_text();
        log.contains(r#"ALTER TABLE "load" DEDUP ENABLE UPSERT KEYS(ts, node);"#)
            && log.contains(r#"RENAME TABLE "swap" TO "swap_old""#)
    });
    // Status, /metrics and /healthz say it too.
    wait_for(Duration::from_secs(30), "the problem in Status", || {
        let sink = questdb_sink(&status(port));
        let e = sink["lastError"].as_str().unwrap_or_default();
        e.contains("\"load\" has DEDUP off") && e.contains("designated timestamp \"timestamp\"")
    });
    assert_eq!(
        metric(
            r.admin,
            "hostpulse_reporter_store_schema_ok{store=\"questdb\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            r.admin,
            "hostpulse_reporter_store_schema_problems{store=\"questdb\"}"
        ),
        Some(2.0)
    );
    let (code, health) = http(r.admin, "GET", "/healthz", "").unwrap();
    assert_eq!(code, 200, "alive: a restart would not fix it");
    assert!(
        health.starts_with("ok\n")
            && health.contains("store questdb")
            && health.contains("holds its rows"),
        "{health}"
    );
    // Batches are acknowledged meanwhile, and nothing reaches QuestDB.
    wait_for(Duration::from_secs(30), "acknowledgements", || {
        acked(port) >= 20
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        counts(&q, "load", &id).0,
        0,
        "nothing written into the table without dedup"
    );
    assert_eq!(
        counts(&q, "hostpulse_self", &id).0,
        0,
        "nothing written anywhere"
    );

    // The operator applies the fixes the reporter gave; no restart.
    q.exec("ALTER TABLE \"load\" DEDUP ENABLE UPSERT KEYS(ts, node)");
    q.exec("RENAME TABLE \"swap\" TO \"swap_old\"");
    wait_for(Duration::from_secs(60), "the store writing again", || {
        metric(
            r.admin,
            "hostpulse_reporter_store_schema_ok{store=\"questdb\"}",
        ) == Some(1.0)
    });
    assert!(g.stop().success());
    let acked = acked(port);
    let n = assert_complete(&q, &id, acked, "after the schema was fixed");
    assert!(n >= acked);
    let swap = q.rows("select dedup, designatedTimestamp from tables() where table_name = 'swap'");
    assert_eq!(
        swap,
        vec![vec![Value::Bool(true), Value::from("ts")]],
        "swap re-created by the schema"
    );
    // (swap's WAL is applied on its own.)
    wait_for(Duration::from_secs(30), "swap rows of every cycle", || {
        counts(&q, "swap", &id).0 >= n
    });
    assert_eq!(counts(&q, "swap", &id), (n, n), "swap: one row per cycle");
    assert!(
        r.daemon.log_text().contains("QuestDB schema verified"),
        "{}",
        r.daemon.log_text()
    );
}

// ---------------------------------------------------------------- (c) (e)

#[test]
fn questdb_stopped_under_ingest_leaves_no_gap_and_no_duplicate() {
    let Some(mut q) = QuestDb::for_test(
        "questdb_stopped_under_ingest_leaves_no_gap_and_no_duplicate",
        Need::Own,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = reporter(&q, port, dir.path(), "apply");
    let id = node("qdb-outage");
    let g = gatherer(port, &id, dir.path(), "load", "100ms");
    wait_for(Duration::from_secs(60), "rows in QuestDB", || {
        cycles(&q, &id)[4] >= 10
    });
    q.stop();
    // The reporter keeps acknowledging into its spool meanwhile.
    let before = acked(port);
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        acked(port) >= before + 40,
        "acknowledgements go on during the outage"
    );
    let sink = questdb_sink(&status(port));
    assert!(
        sink["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("QuestDB"),
        "{sink}"
    );
    q.resume();
    assert!(g.stop().success());
    let acked = acked(port);
    assert_complete(&q, &id, acked, "after a QuestDB outage under ingest");
    drop(r);
}

#[test]
fn questdb_killed_and_restarted_mid_ingest_leaves_no_gap_and_no_duplicate() {
    let Some(mut q) = QuestDb::for_test(
        "questdb_killed_and_restarted_mid_ingest_leaves_no_gap_and_no_duplicate",
        Need::Own,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = reporter(&q, port, dir.path(), "verify");
    // verify: the tables come from an operator, not the reporter.
    for statement in schema_statements() {
        q.exec(&statement);
    }
    let id = node("qdb-restart");
    let g = gatherer(port, &id, dir.path(), "load", "50ms");
    wait_for(Duration::from_secs(60), "rows in QuestDB", || {
        cycles(&q, &id)[4] >= 20
    });
    for round in 0..2 {
        // Mid-ingest: kill -9 (round 0) or a clean restart (round 1), at once back.
        if round == 0 {
            q.kill9();
        } else {
            q.stop();
        }
        q.resume();
        let target = acked(port) + 20;
        wait_for(Duration::from_secs(60), "ingest after the restart", || {
            cycles(&q, &id)[4] >= target
        });
    }
    assert!(g.stop().success());
    let acked = acked(port);
    assert_complete(&q, &id, acked, "after QuestDB restarts mid-ingest");
    // The reporter waited for the operator's tables instead of letting ILP
    // make its own.
    assert_eq!(
        q.rows("select dedup, designatedTimestamp from tables() where table_name = 'load'"),
        vec![vec![Value::Bool(true), Value::from("ts")]]
    );
    drop(r);
}

/// The statements of schema.sql, as an operator would paste them.
fn schema_statements() -> Vec<String> {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/questdb/schema.sql"),
    )
    .unwrap();
    let code: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------- (d)

#[test]
fn a_reporter_killed_mid_ingest_leaves_no_gap_and_no_duplicate_in_questdb() {
    let Some(q) = QuestDb::for_test(
        "a_reporter_killed_mid_ingest_leaves_no_gap_and_no_duplicate_in_questdb",
        Need::Shared,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut r = reporter(&q, port, dir.path(), "apply");
    let id = node("qdb-kill9");
    let g = gatherer(port, &id, dir.path(), "load", "20ms");
    for round in 1..=3 {
        wait_for(Duration::from_secs(60), "rows flowing into QuestDB", || {
            cycles(&q, &id)[4] >= round * 40
        });
        r.daemon.kill9();
        r = reporter(&q, port, dir.path(), "apply");
    }
    wait_for(Duration::from_secs(60), "the gatherer back", || {
        acked(port) > 0
    });
    assert!(g.stop().success());
    let acked = acked(port);
    assert_complete(&q, &id, acked, "after three kill -9 of the reporter");
    drop(r);
}
