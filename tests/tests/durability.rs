//! The reporter's promise on disk: a damaged spool never stops it and costs
//! only the damaged records (counted, kept for `reporter spool
//! inspect|replay`), and nothing it acknowledged is lost across a graceful
//! stop.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use hostpulse_proto::codec::StreamDefs;
use hostpulse_proto::pb;
use hostpulse_spool::{Entry, RECORD_HEADER_LEN, SegmentEntries};
use hostpulse_testkit::{
    Daemon, binary, free_port, grpcurl, http, sink_rows, wait_for, wait_listening,
};
use prost::Message;

use hostpulse_testkit::args as s;

/// A self-contained batch of one `load` row whose `tasks` field is `n`.
fn record(n: u64) -> Vec<u8> {
    let batch = pb::Batch {
        sequence: n,
        base_ts: 1_700_000_000_000_000_000 + n as i64,
        row_keys: vec![pb::RowKey {
            id: 0,
            table: "load".into(),
            tags: vec![],
        }],
        series: vec![pb::Series {
            id: 0,
            row_key: 0,
            field: "tasks".into(),
            kind: pb::ValueKind::Int as i32,
        }],
        groups: vec![pb::Group {
            ts_delta: 0,
            series_delta: vec![0],
            ints: vec![n],
            milli: vec![],
            wide: vec![],
            texts: vec![],
        }],
        strings: vec![],
    };
    pb::SpooledBatch {
        node: "spooled".into(),
        batch: Some(batch),
        received_ms: 0,
    }
    .encode_to_vec()
}

/// A gatherer of node n1 sending its `load` rows every `interval`.
fn gatherer(port: u16, interval: &str, log_dir: &Path) -> Daemon {
    let reporter = format!("http://127.0.0.1:{port}");
    let args = [
        "--reporter",
        &reporter,
        "--collectors",
        "load",
        "--interval",
        interval,
        "--node-id",
        "n1",
    ];
    Daemon::start("gatherer", &s(&args), log_dir)
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_damaged_spool_loses_only_the_damaged_record_and_the_reporter_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Three segments of three records each, written as a crashed reporter left them.
    {
        let options = hostpulse_spool::Options {
            segment_max_bytes: 200,
            ..Default::default()
        };
        let (mut log, _) = hostpulse_spool::Log::open(&spool, options).unwrap();
        for n in 1..=9 {
            log.append(&record(n)).unwrap();
        }
        log.sync().unwrap();
    }
    let segs = segments(&spool);
    assert!(segs.len() >= 3, "{segs:?}");
    // Flip a byte inside the first segment's last record...
    let mut first = std::fs::read(&segs[0]).unwrap();
    let i = first.len() - 10;
    first[i] ^= 0xff;
    std::fs::write(&segs[0], &first).unwrap();
    // ...and cut the last segment in the middle of its last record.
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--jsonl"]);
    args.push(sink.display().to_string());
    args.push("--spool-dir".into());
    args.push(spool.display().to_string());
    args.extend(s(&["--sqlite", "none"]));
    let r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let addr = format!("127.0.0.1:{port}");
    let (ok, out, err) = grpcurl(&["-plaintext", &addr, "hostpulse.v1.Admin/Status"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The damaged record is skipped and counted; its segment stays live.
    assert_eq!(
        status["quarantined"].as_array().map(Vec::len),
        None,
        "{status}"
    );
    assert_eq!(status["skippedRecords"].as_str(), Some("1"), "{status}");
    assert_eq!(
        status["damaged"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert!(
        status["truncatedBytes"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{status}"
    );
    assert!(spool.join("quarantine").read_dir().unwrap().count() == 1);
    let (ok, out, _) = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && out.contains("SERVING"), "{out}");
    // Every other record was delivered: 9, less the damaged one and the
    // torn last one (never acknowledged).
    wait_for(
        Duration::from_secs(10),
        "the intact records delivered",
        || sink_rows(&sink).table("load").len() >= 7,
    );
    std::thread::sleep(Duration::from_millis(300));
    let tasks: Vec<u64> = sink_rows(&sink)
        .table("load")
        .iter()
        .map(|r| r["fields"]["tasks"].as_u64().unwrap())
        .collect();
    assert_eq!(tasks.len(), 7, "{tasks:?}");
    assert!(!tasks.contains(&9), "{tasks:?}");
    let log = r.log_text();
    assert!(log.contains("damaged range skipped"), "{log}");
    assert!(log.contains("torn tail"), "{log}");
}

#[test]
fn sigterm_stores_everything_acknowledged_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--jsonl"]);
    args.push(sink.display().to_string());
    args.push("--spool-dir".into());
    args.push(dir.path().join("spool").display().to_string());
    args.push("--sqlite".into());
    args.push(dir.path().join("hostpulse.db").display().to_string());
    let r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "50ms", dir.path());
    wait_for(Duration::from_secs(20), "rows flowing", || {
        sink_rows(&sink).table("hostpulse_self").len() >= 10
    });
    assert!(r.stop().success(), "the reporter exits cleanly on SIGTERM");
    // Everything acknowledged is in the sink: the gatherer's acked count is in
    // its own log, the sink holds at least as many cycles, contiguous from 1.
    let rows = sink_rows(&sink);
    let mut cycles: Vec<u64> = rows
        .table("hostpulse_self")
        .iter()
        .map(|r| r["fields"]["cycles_total"].as_u64().unwrap())
        .collect();
    cycles.sort_unstable();
    cycles.dedup();
    assert_eq!(cycles, (1..=cycles.len() as u64).collect::<Vec<_>>());
    drop(g);
}

/// `reporter spool ARGS`: (success, stdout, stderr).
fn spool_tool(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary("reporter"))
        .arg("spool")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(port: u16) -> serde_json::Value {
    let addr = format!("127.0.0.1:{port}");
    let (ok, out, err) = grpcurl(&["-plaintext", &addr, "hostpulse.v1.Admin/Status"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// A uint64 of a Status reply (JSON carries them as strings; absent is 0).
fn number(v: &serde_json::Value) -> u64 {
    v.as_str().map_or(0, |s| s.parse().unwrap())
}

/// The value of an unlabelled sample on the admin port's /metrics.
fn metric(admin: u16, name: &str) -> Option<f64> {
    let (_, page) = http(admin, "GET", "/metrics", "")?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Timestamps of node n1's `load` rows in a spool record.
fn load_ts(payload: &[u8]) -> Vec<i64> {
    let record = pb::SpooledBatch::decode(payload).unwrap();
    let batch = StreamDefs::new(usize::MAX)
        .decode(&record.batch.unwrap())
        .unwrap();
    batch
        .rows
        .iter()
        .filter(|r| r.key.table == "load")
        .map(|r| r.ts)
        .collect()
}

/// Node n1's `load` timestamps in a JSON-lines sink.
fn stored_ts(sink: &Path) -> BTreeSet<i64> {
    sink_rows(sink)
        .table("load")
        .iter()
        .filter(|r| r["node"] == "n1")
        .map(|r| r["ts"].as_i64().unwrap())
        .collect()
}

#[test]
fn acknowledged_batches_around_damage_reach_the_store_after_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spool_arg = spool.display().to_string();
    // 1. A reporter whose only store is down acknowledges batches into its
    //    spool (4 KiB segments) and is killed before draining any.
    let (port, down) = (free_port(), free_port());
    let questdb = format!("http::addr=127.0.0.1:{down};protocol_version=1;");
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--sqlite", "none"]);
    args.extend(s(&["--questdb", &questdb, "--spool-max-bytes", "64KiB"]));
    args.extend(s(&["--spool-dir", &spool_arg]));
    let r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "20ms", dir.path());
    wait_for(Duration::from_secs(30), "batches acknowledged", || {
        number(&status(port)["appendedBatches"]) >= 80
    });
    r.kill9();
    drop(g);

    // 2. Bytes rot in the middle of a full segment: one record's payload.
    let segs = segments(&spool);
    assert!(segs.len() >= 2, "{segs:?}");
    let victim = &segs[0];
    let records: Vec<(u64, Vec<u8>)> = SegmentEntries::open(victim)
        .unwrap()
        .map(|e| match e.unwrap() {
            Entry::Record {
                offset, payload, ..
            } => (offset, payload),
            other => panic!("the spool was damaged before the test: {other:?}"),
        })
        .collect();
    assert!(records.len() >= 5, "{}", records.len());
    let (offset, payload) = records[records.len() / 2].clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap();
    let middle = offset + RECORD_HEADER_LEN + payload.len() as u64 / 2;
    file.write_all_at(b"\xde\xad\xbe\xef", middle).unwrap();
    drop(file);
    let lost: BTreeSet<i64> = load_ts(&payload).into_iter().collect();
    let mut intact = BTreeSet::new();
    for seg in &segs {
        for e in SegmentEntries::open(seg).unwrap() {
            if let Entry::Record { payload, .. } = e.unwrap() {
                intact.extend(load_ts(&payload));
            }
        }
    }
    assert!(!lost.is_empty() && intact.is_disjoint(&lost));

    // 3. Restarted with a store that works: every intact batch arrives.
    let sink = dir.path().join("rows.jsonl");
    let (port, admin) = (free_port(), free_port());
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--sqlite", "none"]);
    args.extend(s(&["--admin-listen", &format!("127.0.0.1:{admin}")]));
    args.extend(s(&[
        "--jsonl",
        &sink.display().to_string(),
        "--spool-dir",
        &spool_arg,
    ]));
    let r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    wait_for(Duration::from_secs(30), "every intact batch stored", || {
        stored_ts(&sink).is_superset(&intact)
    });
    let stored = stored_ts(&sink);
    assert!(
        stored.is_disjoint(&lost),
        "the damaged batch cannot come back"
    );

    // Counted exactly: one record, its bytes; listed with where it is.
    let skipped = RECORD_HEADER_LEN + payload.len() as u64;
    let st = status(port);
    assert_eq!(number(&st["skippedBytes"]), skipped, "{st}");
    assert_eq!(number(&st["skippedRecords"]), 1, "{st}");
    let damaged = st["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{st}");
    assert_eq!(number(&damaged[0]["offset"]), offset, "{st}");
    assert!(
        st["quarantined"].as_array().is_none_or(Vec::is_empty),
        "{st}"
    );
    assert_eq!(
        metric(admin, "hostpulse_reporter_spool_skipped_bytes_total"),
        Some(skipped as f64)
    );
    assert_eq!(
        metric(admin, "hostpulse_reporter_spool_skipped_records_total"),
        Some(1.0)
    );
    let log = r.log_text();
    assert!(log.contains("damaged range skipped"), "{log}");
    assert!(log.contains(&format!("offset={offset}")), "{log}");

    // 4. The damaged segment is kept; inspect shows the damage and the batches.
    let copy = damaged[0]["copy"].as_str().unwrap().to_string();
    assert!(
        copy.contains("/quarantine/") && copy.ends_with(&format!(".at-{offset}")),
        "{copy}"
    );
    let (ok, out, err) = spool_tool(&["inspect", &copy]);
    assert!(ok, "{err}");
    assert!(out.contains("DAMAGED RANGE: 1 records lost"), "{out}");
    assert!(out.contains("node=n1 sequence="), "{out}");
    assert!(
        out.contains(&format!("{} valid records", records.len() - 1)),
        "{out}"
    );

    // 5. Replay refuses the spool a running reporter holds...
    let (ok, _, err) = spool_tool(&["replay", &copy, "--spool-dir", &spool_arg]);
    assert!(!ok);
    assert!(err.contains("stop that reporter first"), "{err}");
    drop(r);
    // ...and replays the intact batches into another spool, drained by a reporter there.
    let other = dir.path().join("replayed");
    let other_arg = other.display().to_string();
    let (ok, out, err) = spool_tool(&["replay", &copy, "--spool-dir", &other_arg]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("replayed {} batches", records.len() - 1)),
        "{out}"
    );
    let sink2 = dir.path().join("replayed.jsonl");
    let port = free_port();
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--sqlite", "none"]);
    args.extend(s(&["--jsonl", &sink2.display().to_string()]));
    args.extend(s(&["--spool-dir", &other.display().to_string()]));
    let _r = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let from_victim: BTreeSet<i64> = records
        .iter()
        .filter(|(o, _)| *o != offset)
        .flat_map(|(_, p)| load_ts(p))
        .collect();
    wait_for(
        Duration::from_secs(30),
        "the replayed batches stored",
        || stored_ts(&sink2) == from_victim,
    );
}
