//! The reporter's promise against a real database: once a batch is
//! acknowledged it reaches the database, whatever fails in between.
//! VictoriaMetrics is the second line-protocol server the QuestDB store
//! writes to (QuestDB itself: `questdb.rs`); the embedded SQLite store is
//! checked with the `sqlite3` command.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use hostpulse_testkit::{Daemon, Tsdb, free_port, grpcurl, last_acked, wait_for, wait_listening};

use hostpulse_testkit::args as s;

fn reporter(port: u16, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--spool-dir"]);
    args.push(dir.join("spool").display().to_string());
    // VictoriaMetrics has no SQL endpoint to check a QuestDB schema with.
    args.extend(s(&["--questdb-schema", "off"]));
    args.extend(s(extra));
    let d = Daemon::start("reporter", &args, dir);
    wait_listening(port);
    d
}

fn gatherer(port: u16, run: &str, dir: &Path, interval: &str) -> Daemon {
    let mut args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        "db-node",
        "--label",
        &format!("run={run}"),
        "--collectors",
        "load",
        "--interval",
        interval,
        "--buffer-dir",
    ]);
    args.push(dir.join(format!("buffer-{run}")).display().to_string());
    Daemon::start("gatherer", &args, dir)
}

/// The gatherer's `cycles_total` values that reached the database.
fn db_cycles(tsdb: &Tsdb, run: &str) -> BTreeSet<u64> {
    tsdb.export(&format!(
        "{{__name__=\"hostpulse_self_cycles_total\",run=\"{run}\"}}"
    ))
    .into_iter()
    .flat_map(|(_, values, _)| values)
    .map(|v| v as u64)
    .collect()
}

fn max(c: &BTreeSet<u64>) -> u64 {
    c.iter().max().copied().unwrap_or(0)
}

fn assert_contiguous(c: &BTreeSet<u64>, what: &str) {
    let missing: Vec<u64> = (1..=max(c)).filter(|n| !c.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{what}: cycles missing from the database: {missing:?} (of 1..={})",
        max(c)
    );
}

fn health(port: u16) -> String {
    let (_, out, err) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "grpc.health.v1.Health/Check",
    ]);
    format!("{out}{err}")
}

#[test]
fn a_database_outage_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut tsdb = Tsdb::start();
    let port = free_port();
    let _r = reporter(port, dir.path(), &["--questdb", &tsdb.conf()]);
    let g = gatherer(port, "a", dir.path(), "100ms");
    wait_for(Duration::from_secs(30), "rows in the database", || {
        db_cycles(&tsdb, "a").len() >= 5
    });
    tsdb.stop();
    // The reporter keeps acknowledging into its spool meanwhile.
    let acked_before = last_acked(port);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        last_acked(port) >= acked_before + 15,
        "acknowledgements continue during the outage"
    );
    tsdb.resume();
    let target = last_acked(port);
    wait_for(
        Duration::from_secs(60),
        "the backlog in the database",
        || max(&db_cycles(&tsdb, "a")) >= target,
    );
    assert!(g.stop().success());
    assert_contiguous(&db_cycles(&tsdb, "a"), "after a database outage");
}

#[test]
fn a_reporter_killed_while_draining_a_backlog_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut tsdb = Tsdb::start();
    tsdb.stop();
    let port = free_port();
    let conf = tsdb.conf();
    let r = reporter(port, dir.path(), &["--questdb", &conf]);
    let g = gatherer(port, "a", dir.path(), "20ms");
    // A backlog builds in the spool while the database is down.
    wait_for(
        Duration::from_secs(30),
        "a backlog of acknowledged batches",
        || last_acked(port) >= 150,
    );
    assert!(g.stop().success());
    let acked = last_acked(port);
    tsdb.resume();
    // Let the drain start, then kill the reporter in the middle of it.
    std::thread::sleep(Duration::from_millis(150));
    r.kill9();
    let _r = reporter(port, dir.path(), &["--questdb", &conf]);
    wait_for(
        Duration::from_secs(60),
        "every acknowledged batch in the database",
        || max(&db_cycles(&tsdb, "a")) >= acked,
    );
    let got = db_cycles(&tsdb, "a");
    assert_contiguous(&got, "after kill -9 mid-drain");
    assert!(
        max(&got) >= acked,
        "acknowledged up to {acked}, stored up to {}",
        max(&got)
    );
}

#[test]
fn a_full_spool_stops_acknowledging_and_recovers_when_the_database_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut tsdb = Tsdb::start();
    tsdb.stop();
    let port = free_port();
    let r = reporter(
        port,
        dir.path(),
        &["--questdb", &tsdb.conf(), "--spool-max-bytes", "48KiB"],
    );
    let g = gatherer(port, "a", dir.path(), "50ms");
    wait_for(Duration::from_secs(30), "health NOT_SERVING", || {
        health(port).contains("NOT_SERVING")
    });
    let (ok, out, _) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/Status",
    ]);
    assert!(ok && out.contains("\"spoolFull\": true"), "{out}");
    // Acknowledgements have stopped: the gatherer holds the rest.
    let acked = last_acked(port);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        last_acked(port) <= acked + 1,
        "no acknowledgements while full"
    );
    assert!(r.log_text().contains("spool full"), "the reporter says why");
    tsdb.resume();
    wait_for(Duration::from_secs(30), "health SERVING again", || {
        let h = health(port);
        h.contains("SERVING") && !h.contains("NOT_SERVING")
    });
    // Everything the gatherer buffered flows once it reconnects (its backoff may be at 30 s).
    wait_for(
        Duration::from_secs(90),
        "the gatherer's buffer delivered",
        || last_acked(port) >= acked + 40,
    );
    assert!(g.stop().success());
    let target = last_acked(port);
    wait_for(
        Duration::from_secs(30),
        "everything in the database",
        || max(&db_cycles(&tsdb, "a")) >= target,
    );
    assert_contiguous(&db_cycles(&tsdb, "a"), "after the spool was full");
}

fn sqlite(db: &Path, sql: &str) -> String {
    hostpulse_testkit::try_sqlite(db, sql).unwrap_or_else(|| panic!("query failed: {sql}"))
}

#[test]
fn the_embedded_store_is_queryable_and_prunes_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hostpulse.db");
    let port = free_port();
    let _r = reporter(
        port,
        dir.path(),
        &["--sqlite", db.to_str().unwrap(), "--retention", "2s"],
    );
    let g = gatherer(port, "a", dir.path(), "100ms");
    wait_for(Duration::from_secs(30), "rows in SQLite", || {
        hostpulse_testkit::try_sqlite(&db, "select count(*) from hostpulse_self")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            >= 5
    });
    let row = sqlite(
        &db,
        "select node, run, tasks from load order by ts desc limit 1",
    );
    assert!(row.starts_with("db-node|a|"), "{row}");
    // Retention: rows older than 2 s go, recent ones stay.
    std::thread::sleep(Duration::from_secs(4));
    let cutoff = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64)
        - 3_000_000_000;
    wait_for(Duration::from_secs(20), "old rows pruned", || {
        sqlite(
            &db,
            &format!("select count(*) from load where ts < {cutoff}"),
        ) == "0"
    });
    assert_ne!(
        sqlite(&db, "select count(*) from load"),
        "0",
        "recent rows stay"
    );
    assert!(g.stop().success());
}

#[test]
fn a_line_protocol_server_that_is_not_questdb_is_written_only_once_the_check_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::start();
    let port = free_port();
    // No --questdb-schema: the default verifies, and VictoriaMetrics has no
    // QuestDB tables to verify.
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--questdb",
        &tsdb.conf(),
    ]);
    args.push("--spool-dir".into());
    args.push(dir.path().join("spool").display().to_string());
    let r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "a", dir.path(), "100ms");
    wait_for(Duration::from_secs(30), "acknowledgements", || {
        last_acked(port) >= 10
    });
    let log = r.log_text();
    assert!(
        log.contains("--questdb-schema off"),
        "the reporter says what to do: {log}"
    );
    assert!(
        db_cycles(&tsdb, "a").is_empty(),
        "nothing written unchecked"
    );
    drop(r);
    // With the check off, the spool's backlog drains into it.
    let _r = reporter(port, dir.path(), &["--questdb", &tsdb.conf()]);
    assert!(g.stop().success());
    let acked = last_acked(port);
    wait_for(
        Duration::from_secs(60),
        "the backlog in VictoriaMetrics",
        || max(&db_cycles(&tsdb, "a")) >= acked,
    );
    assert_contiguous(&db_cycles(&tsdb, "a"), "after the check was turned off");
}
