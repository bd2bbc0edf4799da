//! The reporter's promise on disk: a damaged spool never stops it, and
//! nothing it acknowledged is lost across a graceful stop.

use std::path::Path;
use std::time::Duration;

use e2e::{Daemon, free_port, grpcurl, sink_rows, wait_for, wait_listening};
use hostpulse_proto::pb;
use prost::Message;

fn s(list: &[&str]) -> Vec<String> {
    list.iter().map(|x| x.to_string()).collect()
}

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
        }],
    };
    pb::SpooledBatch {
        node: "spooled".into(),
        batch: Some(batch),
        received_ms: 0,
    }
    .encode_to_vec()
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
    let g = Daemon::start(
        "gatherer",
        &s(&[
            "--reporter",
            &format!("http://127.0.0.1:{port}"),
            "--collectors",
            "load",
            "--interval",
            "50ms",
            "--node-id",
            "n1",
        ]),
        dir.path(),
    );
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
