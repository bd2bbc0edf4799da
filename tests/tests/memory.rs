//! The reporter-wide memory budget (`--memory-budget`) seen from outside:
//! streams that would take the reporter past it end with RESOURCE_EXHAUSTED,
//! counted and logged, while a normal gatherer goes on being acknowledged,
//! and what the refused streams held is given back.

use std::path::Path;
use std::time::Duration;

use e2e::{Daemon, free_port, http, metric, sink_rows, wait_for, wait_listening};
use hostpulse_proto::pb::{self, gatherer_message::Message};
use prost::Message as _;

fn s(list: &[&str]) -> Vec<String> {
    list.iter().map(|x| x.to_string()).collect()
}

fn encode(message: Message) -> Vec<u8> {
    pb::GathererMessage {
        message: Some(message),
    }
    .encode_to_vec()
}

fn hello(node: &str) -> Vec<u8> {
    encode(Message::Hello(pb::Hello {
        protocol_version: hostpulse_proto::PROTOCOL_VERSION,
        node_id: node.into(),
        ..Default::default()
    }))
}

/// A batch defining `series` series of one row key, with `samples` samples
/// in one group (all of series 0 when `series` is 1).
fn batch(series: u32, samples: usize) -> Vec<u8> {
    let defs = (0..series)
        .map(|id| pb::Series {
            id,
            row_key: 0,
            field: format!("field_{id}"),
            kind: pb::ValueKind::Int as i32,
        })
        .collect();
    let deltas = (0..samples)
        .map(|i| i32::from(i > 0 && series > 1))
        .collect();
    encode(Message::Batch(pb::Batch {
        sequence: 1,
        row_keys: vec![pb::RowKey {
            id: 0,
            table: "fat".into(),
            tags: Vec::new(),
        }],
        series: defs,
        groups: vec![pb::Group {
            series_delta: deltas,
            ints: vec![1; samples],
            ..Default::default()
        }],
        base_ts: 1_700_000_000_000_000_000,
    }))
}

fn rows_of(dir: &Path, run: &str) -> usize {
    sink_rows(&dir.join("rows.jsonl"))
        .table("hostpulse_self")
        .iter()
        .filter(|r| r["tags"]["run"] == run)
        .count()
}

#[test]
fn streams_past_the_memory_budget_are_refused_while_a_normal_gatherer_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--jsonl",
        &dir.path().join("rows.jsonl").display().to_string(),
        "--spool-dir",
        &dir.path().join("spool").display().to_string(),
        "--sqlite",
        "none",
        "--memory-budget",
        "1MiB",
    ]);
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let gatherer_args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        "normal",
        "--label",
        "run=normal",
        "--collectors",
        "load",
        "--interval",
        "100ms",
    ]);
    let g = Daemon::start("gatherer", &gatherer_args, dir.path());
    wait_for(Duration::from_secs(20), "the gatherer acknowledged", || {
        rows_of(dir.path(), "normal") >= 2
    });

    // 8,000 definitions (~1.2 MB estimated), within --max-series-per-stream.
    let fat_definitions = e2e::raw_messages_status(port, vec![hello("fat-defs"), batch(8_000, 1)]);
    assert!(
        fat_definitions.contains("ResourceExhausted")
            && fat_definitions.contains("memory budget is exhausted")
            && fat_definitions.contains("this stream's definitions"),
        "{fat_definitions}"
    );
    // One series, 20,000 samples: ~60 KB on the wire, megabytes decoded.
    let fat_batch = e2e::raw_messages_status(port, vec![hello("fat-batch"), batch(1, 20_000)]);
    assert!(
        fat_batch.contains("ResourceExhausted") && fat_batch.contains("this batch"),
        "{fat_batch}"
    );

    let (_, page) = http(admin, "GET", "/metrics", "").unwrap();
    for what in ["definitions", "batch"] {
        let line = format!("hostpulse_reporter_memory_budget_refused_total{{what=\"{what}\"}} 1");
        assert!(page.contains(&line), "{line} in:\n{page}");
    }
    // What the refused streams held came back: only the gatherer's few
    // definitions (and a batch in flight) remain charged.
    let used = metric(admin, "hostpulse_reporter_memory_budget_used_bytes").unwrap();
    assert!(used < 64.0 * 1024.0, "{used} bytes still charged");
    let log = reporter.log_text();
    assert!(
        log.contains("memory budget is exhausted") && log.contains("peer"),
        "the refusals are logged with the peer: {log}"
    );
    // The gatherer was never disturbed.
    let before = rows_of(dir.path(), "normal");
    wait_for(
        Duration::from_secs(10),
        "more of the gatherer's rows",
        || rows_of(dir.path(), "normal") > before,
    );
    assert_eq!(
        metric(admin, "hostpulse_reporter_streams_open"),
        Some(1.0),
        "the gatherer's stream is still the one open"
    );
    assert!(g.stop().success());
}
