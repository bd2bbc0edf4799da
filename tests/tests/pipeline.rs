//! The whole pipeline as an operator runs it: a reporter and gatherers as real
//! processes on 127.0.0.1, faults made with real signals, inspected with grpcurl.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use hostpulse_testkit::{Daemon, Rows, free_port, grpcurl, sink_rows, wait_for, wait_listening};

use hostpulse_testkit::args as s;

/// A reporter spooling to `dir/spool` and writing JSON lines to `sink`.
fn reporter(port: u16, sink: &Path, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--jsonl"]);
    args.push(sink.display().to_string());
    args.push("--spool-dir".into());
    args.push(dir.join("spool").display().to_string());
    args.push("--sqlite".into());
    args.push(dir.join("hostpulse.db").display().to_string());
    args.extend(s(extra));
    let d = Daemon::start("reporter", &args, dir);
    wait_listening(port);
    d
}

/// A gatherer streaming to `port`; `extra` may override `--collectors`
/// (default `load`) and `--interval` (default `100ms`).
fn gatherer(port: u16, node: &str, run: &str, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        node,
        "--label",
        &format!("run={run}"),
    ]);
    for (flag, default) in [("--collectors", "load"), ("--interval", "100ms")] {
        if !extra.contains(&flag) {
            args.extend(s(&[flag, default]));
        }
    }
    args.extend(s(extra));
    Daemon::start("gatherer", &args, dir)
}

/// `cycles_total` of the hostpulse_self rows of one gatherer run, as a sorted set.
fn cycles(rows: &Rows, run: &str) -> BTreeSet<u64> {
    rows.table("hostpulse_self")
        .iter()
        .filter(|r| r["tags"]["run"] == run)
        .map(|r| r["fields"]["cycles_total"].as_u64().expect("cycles_total"))
        .collect()
}

/// Every cycle from 1 to the highest one is present.
fn assert_contiguous(c: &BTreeSet<u64>, what: &str) {
    let max = *c.iter().max().unwrap_or(&0);
    let missing: Vec<u64> = (1..=max).filter(|n| !c.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{what}: cycles missing from the sink: {missing:?} (of 1..={max})"
    );
}

fn list_nodes(port: u16) -> serde_json::Value {
    let (ok, out, err) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/ListNodes",
    ]);
    assert!(ok, "ListNodes: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn rows_flow_end_to_end_and_operators_see_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let _r = reporter(port, &sink, dir.path(), &[]);
    let g = gatherer(
        port,
        "e2e-node",
        "a",
        dir.path(),
        &["--collectors", "load,memory,cpu"],
    );
    wait_for(Duration::from_secs(20), "three cycles in the sink", || {
        cycles(&sink_rows(&sink), "a").len() >= 3
    });

    let rows = sink_rows(&sink);
    for table in ["load", "memory", "cpu", "hostpulse_self"] {
        assert!(!rows.table(table).is_empty(), "{table} rows arrive");
    }
    assert!(
        rows.0
            .iter()
            .all(|r| r["node"] == "e2e-node" && r["tags"]["run"] == "a")
    );
    // The same row model as serverless mode: a cpu row has per-mode fields.
    let total = rows
        .table("cpu")
        .into_iter()
        .find(|r| r["tags"]["cpu"] == "total")
        .unwrap()
        .clone();
    assert!(total["fields"]["idle_seconds_total"].is_number());

    let nodes = list_nodes(port);
    let node = &nodes["nodes"][0];
    assert_eq!(node["nodeId"], "e2e-node");
    assert!(node["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        node["lastAckedSequence"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 3
    );
    assert!(node["samplesPerSecond"].as_f64().unwrap() > 0.0);
    assert_eq!(node["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert!(g.stop().success());
}

#[test]
fn grpcurl_lists_describes_and_checks_health() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _r = reporter(port, &dir.path().join("rows.jsonl"), dir.path(), &[]);
    let addr = format!("127.0.0.1:{port}");
    let (ok, out, err) = grpcurl(&["-plaintext", &addr, "list"]);
    assert!(ok, "{err}");
    for service in [
        "hostpulse.v1.Ingest",
        "hostpulse.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(out.lines().any(|l| l == service), "{service} listed: {out}");
    }
    let (ok, out, err) = grpcurl(&["-plaintext", &addr, "describe", "hostpulse.v1.Hello"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("The protocol version the gatherer speaks"),
        "comments travel: {out}"
    );
    let (ok, out, _) = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && out.contains("SERVING"), "{out}");
    let (ok, out, _) = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"service":"hostpulse.v1.Ingest"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(ok && out.contains("SERVING"), "{out}");
    let (ok, out, _) = grpcurl(&["-plaintext", &addr, "hostpulse.v1.Admin/GetConfig"]);
    assert!(ok, "{out}");
}

#[test]
fn a_reporter_killed_for_seconds_loses_no_sample() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let buffer = dir.path().join("buffer");
    let port = free_port();
    let r = reporter(port, &sink, dir.path(), &[]);
    let g = gatherer(
        port,
        "n1",
        "a",
        dir.path(),
        &["--buffer-dir", buffer.to_str().unwrap()],
    );
    wait_for(Duration::from_secs(20), "cycles before the outage", || {
        cycles(&sink_rows(&sink), "a").len() >= 5
    });
    r.kill9();
    let before = *cycles(&sink_rows(&sink), "a").iter().max().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _r = reporter(port, &sink, dir.path(), &[]);
    // About 30 cycles were collected during the outage; all must arrive.
    wait_for(Duration::from_secs(40), "catch-up after the outage", || {
        cycles(&sink_rows(&sink), "a")
            .iter()
            .max()
            .copied()
            .unwrap_or(0)
            >= before + 40
    });
    assert!(g.stop().success());
    let got = cycles(&sink_rows(&sink), "a");
    assert_contiguous(&got, "after a reporter kill -9");
}

#[test]
fn a_gatherer_restarted_during_an_outage_replays_its_disk_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let buffer = dir.path().join("buffer");
    let port = free_port();
    let r = reporter(port, &sink, dir.path(), &[]);
    let buf = buffer.to_str().unwrap();
    let g1 = gatherer(port, "n1", "first", dir.path(), &["--buffer-dir", buf]);
    wait_for(Duration::from_secs(20), "first run streaming", || {
        cycles(&sink_rows(&sink), "first").len() >= 3
    });
    r.kill9();
    let before = *cycles(&sink_rows(&sink), "first").iter().max().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        g1.stop().success(),
        "the gatherer stops cleanly while the reporter is down"
    );
    let g2 = gatherer(port, "n1", "second", dir.path(), &["--buffer-dir", buf]);
    std::thread::sleep(Duration::from_millis(500));
    let _r = reporter(port, &sink, dir.path(), &[]);
    wait_for(Duration::from_secs(40), "the second run streaming", || {
        cycles(&sink_rows(&sink), "second").len() >= 3
    });
    assert!(g2.stop().success());
    let first = cycles(&sink_rows(&sink), "first");
    assert_contiguous(&first, "the first run, replayed from disk by the second");
    assert!(
        *first.iter().max().unwrap() >= before + 10,
        "cycles the first run collected during the outage arrived (max {:?}, before the outage {before})",
        first.iter().max()
    );
    assert_contiguous(&cycles(&sink_rows(&sink), "second"), "the second run");
}

#[test]
fn a_reloaded_configuration_changes_the_interval_without_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let config = dir.path().join("gatherers.toml");
    std::fs::write(&config, "[gatherers]\ninterval = \"500ms\"\n").unwrap();
    let port = free_port();
    let r = reporter(
        port,
        &sink,
        dir.path(),
        &["--config", config.to_str().unwrap()],
    );
    // The gatherer's own interval is 10 s: the reporter's 500 ms must win.
    let _g = gatherer(port, "n1", "a", dir.path(), &["--interval", "10s"]);
    wait_for(
        Duration::from_secs(20),
        "cycles at the configured interval",
        || cycles(&sink_rows(&sink), "a").len() >= 3,
    );
    let connected = list_nodes(port)["nodes"][0]["connectedSinceMs"].clone();
    let (ok, out, _) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/GetConfig",
    ]);
    assert!(ok && out.contains("\"intervalMs\": \"500\""), "{out}");

    std::fs::write(
        &config,
        "[gatherers]\ninterval = \"100ms\"\ncollectors = [\"load\", \"memory\"]\n",
    )
    .unwrap();
    let reloaded_at = sink_rows(&sink).table("hostpulse_self").len();
    r.signal("HUP");
    wait_for(
        Duration::from_secs(20),
        "faster cycles after the reload",
        || sink_rows(&sink).table("hostpulse_self").len() >= reloaded_at + 15,
    );
    let rows = sink_rows(&sink);
    let ts: Vec<i64> = rows
        .table("hostpulse_self")
        .iter()
        .map(|r| r["ts"].as_i64().unwrap())
        .collect();
    let mut gaps: Vec<i64> = ts[reloaded_at + 3..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    gaps.sort_unstable();
    let median_ms = gaps[gaps.len() / 2] / 1_000_000;
    assert!(
        (80..=200).contains(&median_ms),
        "interval after the reload: {median_ms} ms"
    );
    assert!(
        !rows.table("memory").is_empty(),
        "the pushed collector list applies too"
    );
    let node = &list_nodes(port)["nodes"][0];
    assert_eq!(
        node["connectedSinceMs"], connected,
        "the same stream: no reconnection"
    );
    assert_eq!(node["configGeneration"], "2");
}

/// Messages sent with grpcurl on one stream, and the status that ends it.
fn stream_status(port: u16, messages: &[&str], extra: &[&str]) -> String {
    let addr = format!("127.0.0.1:{port}");
    let data = messages.join("\n");
    let mut args = vec!["-plaintext", "-max-msg-sz", "67108864", "-d", data.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[addr.as_str(), "hostpulse.v1.Ingest/Stream"]);
    let (_, out, err) = grpcurl(&args);
    format!("{out}{err}")
}

#[test]
fn protocol_violations_end_only_their_stream_with_a_precise_status() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let _r = reporter(port, &sink, dir.path(), &["--max-message-bytes", "65536"]);
    let g = gatherer(port, "healthy", "a", dir.path(), &[]);
    wait_for(
        Duration::from_secs(20),
        "the healthy gatherer streaming",
        || cycles(&sink_rows(&sink), "a").len() >= 2,
    );

    let hello = r#"{"hello":{"protocolVersion":1,"nodeId":"bad"}}"#;
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![r#"{"batch":{"sequence":"1"}}"#.into()],
            "FailedPrecondition",
            "before Hello",
        ),
        (
            vec![r#"{"hello":{"protocolVersion":7,"nodeId":"bad"}}"#.into()],
            "FailedPrecondition",
            "version 7",
        ),
        (
            vec![hello.into(), hello.into()],
            "FailedPrecondition",
            "second Hello",
        ),
        (
            vec![
                hello.into(),
                r#"{"batch":{"sequence":"1","groups":[{"seriesDelta":[5],"ints":["1"]}]}}"#.into(),
            ],
            "InvalidArgument",
            "series id 5",
        ),
        (
            vec![
                hello.into(),
                r#"{"batch":{"sequence":"5"}}"#.into(),
                r#"{"batch":{"sequence":"4"}}"#.into(),
            ],
            "FailedPrecondition",
            "backwards",
        ),
        (
            vec![format!(
                r#"{{"hello":{{"protocolVersion":1,"nodeId":"bad","hostname":"{}"}}}}"#,
                "x".repeat(100_000)
            )],
            "ResourceExhausted",
            "exceeds",
        ),
        (
            vec![r#"{"hello":{"protocolVersion":1}}"#.into()],
            "InvalidArgument",
            "node_id",
        ),
    ];
    for (messages, code, detail) in &cases {
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        let text = stream_status(port, &refs, &[]);
        assert!(
            text.contains(code) && text.contains(detail),
            "{code}/{detail}: {}",
            &text[..text.len().min(400)]
        );
    }

    // Garbage bytes where a protobuf message belongs.
    let status = hostpulse_testkit::raw_stream_status(port, b"\xff\xff\xff\xff not protobuf");
    assert!(status.contains("InvalidArgument"), "{status}");

    // The healthy stream never noticed.
    let before = cycles(&sink_rows(&sink), "a").len();
    wait_for(
        Duration::from_secs(10),
        "the healthy gatherer still streaming",
        || cycles(&sink_rows(&sink), "a").len() >= before + 5,
    );
    let nodes = list_nodes(port);
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes["nodes"][0]["nodeId"], "healthy");
    assert!(g.stop().success());
}

#[test]
fn an_edited_configuration_file_is_picked_up_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatherers.toml");
    std::fs::write(&config, "[gatherers]\ninterval = \"5s\"\n").unwrap();
    let port = free_port();
    let _r = reporter(
        port,
        &dir.path().join("rows.jsonl"),
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--config-check-interval",
            "100ms",
        ],
    );
    let addr = format!("127.0.0.1:{port}");
    let interval = || {
        let (ok, out, err) = grpcurl(&["-plaintext", &addr, "hostpulse.v1.Admin/GetConfig"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["config"]["intervalMs"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(interval(), "5000");
    // A typo is ignored: the previous configuration stays in force.
    std::fs::write(&config, "[gatherers]\ninterval = \n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(interval(), "5000");
    std::fs::write(&config, "[gatherers]\ninterval = \"2s\"\n").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the edited file to be picked up",
        || interval() == "2000",
    );
}

/// A Hello message encoded as a gRPC payload (protobuf bytes).
fn hello_bytes(node: &str) -> Vec<u8> {
    use prost::Message;
    let hello = hostpulse_proto::pb::Hello {
        protocol_version: hostpulse_proto::PROTOCOL_VERSION,
        node_id: node.into(),
        ..Default::default()
    };
    hostpulse_proto::pb::GathererMessage {
        message: Some(hostpulse_proto::pb::gatherer_message::Message::Hello(hello)),
    }
    .encode_to_vec()
}

#[test]
fn stream_limits_refuse_extra_streams_and_end_silent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let _r = reporter(
        port,
        &sink,
        dir.path(),
        // 3 s: time enough for grpcurl to start twice on a busy machine.
        &["--max-streams", "1", "--idle-timeout", "3s"],
    );
    // A silent peer holds the only slot until the idle timeout ends its stream.
    let started = std::time::Instant::now();
    let silent = std::thread::spawn(move || {
        hostpulse_testkit::silent_stream_status(port, &hello_bytes("silent"))
    });
    wait_for(
        Duration::from_secs(10),
        "the silent stream registered",
        || {
            list_nodes(port)["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == 1)
        },
    );
    let refused = stream_status(
        port,
        &[r#"{"hello":{"protocolVersion":1,"nodeId":"second"}}"#],
        &[],
    );
    assert!(
        refused.contains("ResourceExhausted") && refused.contains("maximum of 1 streams"),
        "{refused}"
    );
    let status = silent.join().unwrap();
    assert!(
        status.contains("DeadlineExceeded") && status.contains("no message for"),
        "{status}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    // The slot is free again.
    let g = gatherer(port, "after", "a", dir.path(), &[]);
    wait_for(Duration::from_secs(20), "a new stream accepted", || {
        cycles(&sink_rows(&sink), "a").len() >= 2
    });
    assert!(g.stop().success());
}

#[test]
fn tail_streams_live_rows_filtered_by_table() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let _r = reporter(port, &sink, dir.path(), &[]);
    let g = gatherer(
        port,
        "tailed",
        "a",
        dir.path(),
        &["--collectors", "load,memory"],
    );
    wait_for(Duration::from_secs(20), "rows flowing", || {
        cycles(&sink_rows(&sink), "a").len() >= 2
    });
    let (_, out, _) = grpcurl(&[
        "-plaintext",
        "-max-time",
        "2",
        "-d",
        r#"{"tables":["memory"],"nodes":["tailed"]}"#,
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/Tail",
    ]);
    assert!(out.contains("\"table\": \"memory\""), "{out}");
    assert!(
        !out.contains("\"table\": \"load\""),
        "the filter holds: {out}"
    );
    assert!(out.contains("\"total_bytes\""), "{out}");
    assert!(g.stop().success());
}

#[test]
fn recycled_streams_rebalance_without_losing_or_duplicating_beyond_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    // Streams live about a second: several reconnections in a few seconds.
    let r = reporter(
        port,
        &sink,
        dir.path(),
        &[
            "--max-connection-age",
            "1s",
            "--max-connection-age-grace",
            "1s",
        ],
    );
    let g = gatherer(port, "n1", "a", dir.path(), &[]);
    wait_for(
        Duration::from_secs(30),
        "cycles across recycled streams",
        || cycles(&sink_rows(&sink), "a").len() >= 50,
    );
    assert!(g.stop().success());
    let recycles = r.log_text().matches("maximum age").count();
    assert!(recycles >= 2, "streams were recycled ({recycles})");
    let rows = sink_rows(&sink);
    let all: Vec<u64> = rows
        .table("hostpulse_self")
        .iter()
        .map(|r| r["fields"]["cycles_total"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_contiguous(&unique, "across recycled streams");
    // Duplicates can only be batches of the unacknowledged window (64).
    assert!(
        all.len() - unique.len() <= 64 * recycles,
        "{} duplicates over {recycles} recycles",
        all.len() - unique.len()
    );
}

#[test]
fn a_stream_defining_too_many_series_is_refused_with_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _r = reporter(
        port,
        &dir.path().join("rows.jsonl"),
        dir.path(),
        &["--max-series-per-stream", "2"],
    );
    let hello = r#"{"hello":{"protocolVersion":1,"nodeId":"greedy"}}"#;
    // One row key and two series: three definitions, one over the cap.
    let batch = r#"{"batch":{"sequence":"1","rowKeys":[{"id":0,"table":"load"}],"series":[{"id":0,"rowKey":0,"field":"a","kind":"VALUE_KIND_INT"},{"id":1,"rowKey":0,"field":"b","kind":"VALUE_KIND_INT"}],"groups":[{"seriesDelta":[0,1],"ints":["1","2"]}]}}"#;
    let text = stream_status(port, &[hello, batch], &[]);
    assert!(
        text.contains("ResourceExhausted") && text.contains("more than 2 definitions"),
        "{text}"
    );
}

/// Messages of a client written from the .proto alone.
use hostpulse_testkit::batch as client;

#[test]
fn hostile_batches_are_refused_before_the_acknowledgement_and_nothing_of_them_is_stored() {
    use hostpulse_proto::row::{Row, Value};
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let admin = free_port();
    let admin_listen = format!("127.0.0.1:{admin}");
    let _r = reporter(
        port,
        &sink,
        dir.path(),
        &[
            "--custom-tables",
            "app_queue",
            "--admin-listen",
            &admin_listen,
        ],
    );
    let g = gatherer(
        port,
        "healthy",
        "a",
        dir.path(),
        &["--collectors", "load,cpu,filesystem"],
    );
    wait_for(
        Duration::from_secs(20),
        "the healthy gatherer streaming",
        || cycles(&sink_rows(&sink), "a").len() >= 2,
    );

    let now = client::now_ns();
    let good = |table: &'static str| {
        Row::from_parts(table, now, &[("k", "v")], &[("value", Value::Int(1))])
    };
    let many_tags: Vec<(&'static str, String)> = (0..2100)
        .map(|i| {
            (
                &*Box::leak(format!("t{i}").into_boxed_str()),
                "x".to_string(),
            )
        })
        .collect();
    let mut wide = good("cpu");
    wide.tags = many_tags;
    let float = |v: f64| {
        Row::from_parts(
            "load",
            now,
            &[],
            &[("load1", Value::Float(0.5)), ("load5", Value::Float(v))],
        )
    };
    let mut far_series = client::batch(1, &[good("cpu")]);
    let mut far = far_series.series[0].clone();
    far.id = 1 << 31;
    far_series.series.push(far);
    let cases: Vec<(hostpulse_proto::pb::Batch, &str)> = vec![
        (
            client::batch(
                1,
                &[
                    good("cpu"),
                    good("load"),
                    good("memory"),
                    good("Bad Table"),
                    good("disk"),
                ],
            ),
            r#"row 3 (table "Bad Table", tags {k="v"}): table name "Bad Table" is not [a-z0-9_]{1,64}"#,
        ),
        (
            client::batch(1, &[good("t\u{e9}")]),
            "is not [a-z0-9_]{1,64}",
        ),
        (client::batch(1, &[wide]), "2100 tags (at most 32)"),
        (
            client::batch(1, &[float(f64::NAN)]),
            r#"field "load5" is NaN: only finite floats"#,
        ),
        (
            client::batch(1, &[float(f64::INFINITY)]),
            r#"field "load5" is +Inf"#,
        ),
        (
            client::batch(1, &[float(f64::NEG_INFINITY)]),
            r#"field "load5" is -Inf"#,
        ),
        (
            client::batch(1, &[good("my_own")]),
            r#"table "my_own" is not accepted here: gatherers may write the hostpulse families, hostpulse_self (component=gatherer) and the reporter's --custom-tables (app_queue)"#,
        ),
        (
            client::batch(
                1,
                &[Row::from_parts(
                    "hostpulse_self",
                    now,
                    &[("component", "reporter")],
                    &[("streams_open", Value::Int(9))],
                )],
            ),
            r#"hostpulse_self rows from a stream must have tag component="gatherer""#,
        ),
        (
            client::batch(
                1,
                &[Row::from_parts(
                    "cpu",
                    now,
                    &[("Node", "x")],
                    &[("f", Value::Int(1))],
                )],
            ),
            "is reserved",
        ),
        (far_series, "series id 2147483648 is not below 2^31"),
    ];
    for (i, (batch, detail)) in cases.into_iter().enumerate() {
        let node = format!("hostile-{i}");
        let reply = hostpulse_testkit::stream_messages(
            port,
            vec![client::hello(&node), client::message(batch)],
        );
        assert!(
            reply.status.starts_with("InvalidArgument") && reply.status.contains(detail),
            "case {i}: want {detail}: {}",
            reply.status
        );
        assert!(
            reply.acks().is_empty(),
            "case {i}: refused before the acknowledgement"
        );
    }
    let reply = hostpulse_testkit::stream_messages(port, vec![client::hello("  padded  ")]);
    assert!(
        reply.status.starts_with("InvalidArgument")
            && reply.status.contains("leading or trailing whitespace"),
        "{}",
        reply.status
    );

    // A configured custom table is accepted and stored.
    let reply = hostpulse_testkit::stream_messages(
        port,
        vec![
            client::hello("custom"),
            client::message(client::batch(1, &[good("app_queue")])),
        ],
    );
    assert_eq!(
        (reply.status.as_str(), reply.acks().len()),
        ("Ok", 1),
        "{reply:?}"
    );
    let db = dir.path().join("hostpulse.db");
    wait_for(Duration::from_secs(10), "the custom table stored", || {
        hostpulse_testkit::try_sqlite(&db, "SELECT count(*) FROM app_queue WHERE node = 'custom'")
            .as_deref()
            == Some("1")
    });

    // Nothing of a refused batch was stored anywhere, and no store refused anything.
    let rows = sink_rows(&sink);
    assert!(
        rows.0
            .iter()
            .all(|r| !r["node"].as_str().unwrap().starts_with("hostile")),
        "refused rows were stored"
    );
    let tables = hostpulse_testkit::try_sqlite(
        &db,
        "SELECT group_concat(name) FROM sqlite_schema WHERE type = 'table'",
    )
    .unwrap();
    assert!(
        !tables.contains("Bad") && !tables.contains("my_own"),
        "{tables}"
    );
    assert!(!dir.path().join("spool/rejected-sqlite.jsonl").exists());
    let (_, metrics) = hostpulse_testkit::http(admin, "GET", "/metrics", "").unwrap();
    for (rule, n) in [
        ("names", 4),
        ("non_finite", 3),
        ("table", 1),
        ("self_component", 1),
    ] {
        let line = format!("hostpulse_reporter_refused_batches_total{{rule=\"{rule}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line}{metrics}");
    }

    // The well-behaved gatherer was never disturbed.
    let before = cycles(&sink_rows(&sink), "a").len();
    wait_for(
        Duration::from_secs(10),
        "the healthy gatherer still streaming",
        || cycles(&sink_rows(&sink), "a").len() >= before + 3,
    );
    assert_contiguous(&cycles(&sink_rows(&sink), "a"), "the healthy gatherer");
    assert!(g.stop().success());
}

#[test]
fn timestamps_big_integers_odd_tag_values_gaps_and_replays_behave_as_documented() {
    use hostpulse_proto::row::{Row, Value};
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    let _r = reporter(
        port,
        &sink,
        dir.path(),
        &["--max-sample-age", "30d", "--max-clock-skew", "10m"],
    );
    let db = dir.path().join("hostpulse.db");
    let sql = |q: &str| hostpulse_testkit::try_sqlite(&db, q).unwrap_or_default();
    let now = client::now_ns();
    let day = 86_400_000_000_000i64;
    let load =
        |ts: i64, v: u64| Row::from_parts("load", ts, &[("run", "t")], &[("tasks", Value::Int(v))]);

    // Timestamps: 0, negative, i64::MAX and 11 minutes ahead are dropped; a
    // 5-day-old sample (a gatherer replaying its buffer) and now are kept.
    let rows = [
        load(0, 1),
        load(now - 5 * day, 2),
        load(i64::MAX, 4),
        load(-1, 3),
        load(now + 11 * 60 * 1_000_000_000, 5),
        load(now, 6),
    ];
    let reply = hostpulse_testkit::stream_messages(
        port,
        vec![
            client::hello("clock"),
            client::message(client::batch(1, &rows)),
        ],
    );
    let acks = reply.acks();
    assert_eq!(acks.len(), 1, "{reply:?}");
    assert_eq!(acks[0].dropped_samples, 4);
    assert!(
        acks[0].dropped_reason.starts_with(
            "timestamp 0 (1970-01-01T00:00:00Z) is older than --max-sample-age (30days)"
        ),
        "{}",
        acks[0].dropped_reason
    );
    wait_for(Duration::from_secs(10), "the kept samples stored", || {
        sql(
            "SELECT group_concat(tasks) FROM (SELECT tasks FROM load WHERE node = 'clock' ORDER BY ts)",
        ) == "2,6"
    });

    // Normalised: a tag value with a newline is escaped; an integer above
    // i64::MAX is stored as i64::MAX.
    let odd = Row::from_parts(
        "filesystem",
        now,
        &[("mountpoint", "/mnt/a\nb")],
        &[("size_bytes", Value::Int(u64::MAX))],
    );
    let reply = hostpulse_testkit::stream_messages(
        port,
        vec![
            client::hello("odd"),
            client::message(client::batch(1, &[odd])),
        ],
    );
    assert_eq!(reply.acks().len(), 1, "{reply:?}");
    wait_for(Duration::from_secs(10), "the odd row stored", || {
        sql("SELECT mountpoint, typeof(size_bytes), size_bytes FROM filesystem WHERE node = 'odd'")
            == format!("/mnt/a\\012b|integer|{}", i64::MAX)
    });

    // A sequence gap (a gatherer's buffer dropped batches) is acknowledged.
    let reply = hostpulse_testkit::stream_messages(
        port,
        vec![
            client::hello("gaps"),
            client::message(client::batch(1, &[load(now, 1)])),
            client::message(client::batch(5, &[load(now + 1, 5)])),
        ],
    );
    let acked: Vec<u64> = reply.acks().iter().map(|a| a.sequence).collect();
    assert_eq!(acked, vec![1, 5], "{reply:?}");

    // A replay: the same sequence after a reconnect, with another value. It
    // is acknowledged and stored again: the last write of a (table, ts,
    // node, tags) wins, as in QuestDB's DEDUP UPSERT (README: replays).
    for value in [10, 20] {
        let reply = hostpulse_testkit::stream_messages(
            port,
            vec![
                client::hello("replay"),
                client::message(client::batch(1, &[load(now, value)])),
            ],
        );
        assert_eq!(reply.acks().len(), 1, "{reply:?}");
        wait_for(Duration::from_secs(10), "the replay stored", || {
            sql("SELECT count(*), max(tasks) FROM load WHERE node = 'replay'")
                == format!("1|{value}")
        });
    }
}

#[test]
fn a_gatherer_whose_samples_are_out_of_the_window_keeps_streaming_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("rows.jsonl");
    let port = free_port();
    // Every sample is older than 1 ns when it arrives: all are dropped.
    let _r = reporter(port, &sink, dir.path(), &["--max-sample-age", "1ns"]);
    let g = gatherer(port, "late", "a", dir.path(), &[]);
    wait_for(Duration::from_secs(20), "acknowledgements flowing", || {
        list_nodes(port)["nodes"][0]["lastAckedSequence"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().unwrap_or(0) >= 3)
    });
    let log = g.log_text();
    assert!(
        log.contains("the reporter stored this batch without some samples")
            && log.contains("older than --max-sample-age (1ns)"),
        "{log}"
    );
    assert!(
        sink_rows(&sink).0.iter().all(|r| r["node"] != "late"),
        "nothing stored"
    );
    assert!(g.stop().success());
}
