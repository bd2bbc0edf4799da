//! Clients that connect and say nothing: idle sockets, partial HTTP/2
//! prefaces, streams without a Hello, and enough sockets to reach the
//! reporter's descriptor limit; and clients within every per-stream limit
//! that would take the reporter past its `--memory-budget`. Each test checks
//! what an operator would notice: a well-behaved gatherer is still served and
//! acknowledged, the idle peers are closed, the reporter does not burn a core,
//! refuses only the stream at fault, and says what happened.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use hostpulse_proto::pb::{self, gatherer_message::Message};
use hostpulse_testkit::{Daemon, free_port, http, metric, sink_rows, wait_for, wait_listening};
use prost::Message as _;

/// The HTTP/2 client preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame: what a client sends right after the preface.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

use hostpulse_testkit::args as s;

/// Reporter arguments: gRPC on `port`, admin on `admin`, JSON lines to
/// `dir/rows.jsonl`, no SQLite (fewer descriptors), then `extra`.
fn reporter_args(port: u16, admin: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--jsonl",
        &dir.join("rows.jsonl").display().to_string(),
        "--spool-dir",
        &dir.join("spool").display().to_string(),
        "--sqlite",
        "none",
    ]);
    args.extend(s(extra));
    args
}

/// A gatherer of the `load` family every 100 ms, labelled `run=<run>`.
fn gatherer(port: u16, run: &str, dir: &Path) -> Daemon {
    gatherer_to(&format!("http://127.0.0.1:{port}"), run, dir, &[])
}

/// Like [`gatherer`], to `url`, with `extra` flags.
fn gatherer_to(url: &str, run: &str, dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = s(&[
        "--reporter",
        url,
        "--node-id",
        run,
        "--label",
        &format!("run={run}"),
        "--collectors",
        "load",
        "--interval",
        "100ms",
    ]);
    args.extend(s(extra));
    Daemon::start("gatherer", &args, dir)
}

/// Rows of run `run` stored so far (each was acknowledged first).
fn rows_of(dir: &Path, run: &str) -> usize {
    sink_rows(&dir.join("rows.jsonl"))
        .table("hostpulse_self")
        .iter()
        .filter(|r| r["tags"]["run"] == run)
        .count()
}

/// Whether the server closed `conn` (EOF or reset) within `limit`.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            // A server may answer before closing (an HTTP/2 GOAWAY): read on.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_partial_connections_are_closed_and_cannot_starve_a_gatherer() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    // 128 descriptors: the issue's starvation took 300 idle sockets at 256.
    let args = reporter_args(port, admin, dir.path(), &["--handshake-timeout", "2s"]);
    let reporter = Daemon::start_with_open_files("reporter", &args, 128, dir.path());
    wait_listening(port);
    // 300 sockets (bounded): a third send nothing, a third part of the
    // preface, a third the whole preface but no SETTINGS.
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..300 {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        match i % 3 {
            1 => drop(conn.write_all(&PREFACE[..10])),
            2 => drop(conn.write_all(PREFACE)),
            _ => {}
        }
        idle.push(conn);
    }
    let opened = Instant::now();
    // A gatherer is served while they are open.
    let g = gatherer(port, "wellbehaved", dir.path());
    wait_for(
        Duration::from_secs(30),
        "the gatherer's rows acknowledged and stored",
        || rows_of(dir.path(), "wellbehaved") >= 3,
    );
    // Every idle socket is closed by the reporter (at accept when too many
    // are pending, else after --handshake-timeout).
    for conn in &mut idle {
        assert!(
            closed_within(conn, Duration::from_secs(15)),
            "an idle connection still open {:?} after it was opened",
            opened.elapsed()
        );
    }
    let timeouts = metric(admin, "hostpulse_reporter_handshake_timeouts_total").unwrap();
    let refused = metric(
        admin,
        "hostpulse_reporter_connections_refused_pending_total",
    )
    .unwrap();
    assert!(timeouts >= 1.0, "handshake timeouts counted: {timeouts}");
    // The gatherer's own first attempts may be among the refused.
    assert!(
        timeouts + refused >= 300.0,
        "every idle socket accounted for: {timeouts} + {refused}"
    );
    assert_eq!(
        metric(admin, "hostpulse_reporter_handshakes_pending"),
        Some(0.0)
    );
    let log = reporter.log_text();
    assert!(
        log.contains("did not complete its handshake in time"),
        "{log}"
    );
    assert!(g.stop().success());
}

#[test]
fn the_tls_listener_closes_unfinished_handshakes_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = hostpulse_testkit::Pki::new(dir.path());
    let (port, admin) = (free_port(), free_port());
    let (cert, key) = (pki.pem("server"), pki.key("server"));
    let args = reporter_args(
        port,
        admin,
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--handshake-timeout",
            "1s",
        ],
    );
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    // Silent sockets, and sockets that start a TLS record and stop.
    let mut idle: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 1 {
                conn.write_all(&[0x16, 0x03, 0x01]).unwrap();
            }
            conn
        })
        .collect();
    // And peers that complete the TLS handshake, then send nothing (stdin
    // held open): `openssl s_client` exits once the reporter closes.
    let mut completed: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new("openssl")
                .args(["s_client", "-quiet", "-connect"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-CAfile")
                .arg(pki.pem("ca1"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let opened = Instant::now();
    let g = gatherer_to(
        &format!("https://127.0.0.1:{port}"),
        "tls",
        dir.path(),
        &["--tls-ca", &pki.pem("ca1")],
    );
    wait_for(
        Duration::from_secs(30),
        "the TLS gatherer acknowledged",
        || rows_of(dir.path(), "tls") >= 2,
    );
    for conn in &mut idle {
        assert!(closed_within(conn, Duration::from_secs(8)), "still open");
    }
    for client in &mut completed {
        wait_for(Duration::from_secs(8), "a silent TLS peer closed", || {
            client.try_wait().unwrap().is_some()
        });
    }
    // The configured 1 s, not the former fixed 10 s, closed them.
    assert!(
        opened.elapsed() < Duration::from_secs(9),
        "{:?}",
        opened.elapsed()
    );
    let timeouts = metric(admin, "hostpulse_reporter_handshake_timeouts_total").unwrap();
    assert!(timeouts >= 43.0, "{timeouts}");
    assert!(
        reporter
            .log_text()
            .contains("did not complete its handshake in time")
    );
    assert!(g.stop().success());
}

#[test]
fn streams_without_hello_wait_apart_and_never_take_a_gatherers_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let args = reporter_args(
        port,
        admin,
        dir.path(),
        &[
            "--max-streams",
            "1",
            "--max-pending-streams",
            "4",
            "--hello-timeout",
            "8s",
        ],
    );
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let started = Instant::now();
    let mute: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || hostpulse_testkit::mute_stream_status(port)))
        .collect();
    wait_for(Duration::from_secs(10), "three streams waiting", || {
        metric(admin, "hostpulse_reporter_streams_waiting_hello") == Some(3.0)
    });
    // The only --max-streams slot is still free for a real gatherer.
    let g = gatherer(port, "real", dir.path());
    wait_for(Duration::from_secs(20), "the gatherer acknowledged", || {
        rows_of(dir.path(), "real") >= 2
    });
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "served before the mute streams' Hello deadline"
    );
    // Three wait; one more may; a fifth finds no waiting place.
    let fourth = std::thread::spawn(move || hostpulse_testkit::mute_stream_status(port));
    wait_for(Duration::from_secs(10), "four streams waiting", || {
        metric(admin, "hostpulse_reporter_streams_waiting_hello") == Some(4.0)
    });
    let fifth = hostpulse_testkit::mute_stream_status(port);
    assert!(
        fifth.contains("ResourceExhausted") && fifth.contains("waiting for their Hello"),
        "{fifth}"
    );
    for m in mute.into_iter().chain([fourth]) {
        let status = m.join().unwrap();
        assert!(
            status.contains("DeadlineExceeded") && status.contains("no Hello within 8s"),
            "{status}"
        );
    }
    assert_eq!(
        metric(admin, "hostpulse_reporter_streams_waiting_hello"),
        Some(0.0)
    );
    let log = reporter.log_text();
    assert!(
        log.contains("no Hello within 8s") && log.contains("peer"),
        "the refusals are logged with the peer: {log}"
    );
    // The gatherer kept its stream throughout.
    let before = rows_of(dir.path(), "real");
    wait_for(Duration::from_secs(10), "more rows", || {
        rows_of(dir.path(), "real") > before
    });
    assert!(g.stop().success());
}

#[test]
fn at_the_descriptor_limit_the_reporter_backs_off_logs_and_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    // No cap on handshakes in progress: every connection gets a descriptor.
    let args = reporter_args(
        port,
        admin,
        dir.path(),
        &["--max-pending-connections", "1000"],
    );
    let reporter = Daemon::start_with_open_files("reporter", &args, 64, dir.path());
    wait_listening(port);
    // Connections that send the preface and SETTINGS and then idle are
    // served connections: they hold descriptors until the reporter runs out.
    let mut held = Vec::new();
    for _ in 0..120 {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.write_all(PREFACE);
            let _ = conn.write_all(&SETTINGS);
            held.push(conn);
        }
    }
    wait_for(
        Duration::from_secs(20),
        "the reporter to log the failing accept",
        || {
            reporter
                .log_text()
                .contains("accepting a connection failed")
        },
    );
    // The kernel keeps queueing connections the reporter cannot accept: the
    // loop must wait, not spin.
    let (cpu0, t0) = (reporter.cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (reporter.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "the reporter used {:.0} % of a core while at its descriptor limit",
        share * 100.0
    );
    drop(held);
    // Served again once the connections are gone.
    let g = gatherer(port, "after", dir.path());
    wait_for(Duration::from_secs(30), "the gatherer acknowledged", || {
        rows_of(dir.path(), "after") >= 2
    });
    let errors = metric(admin, "hostpulse_reporter_accept_errors_total").unwrap();
    assert!(errors >= 1.0, "accept errors counted: {errors}");
    assert!(g.stop().success());
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
        ..Default::default()
    }))
}

#[test]
fn streams_past_the_memory_budget_are_refused_while_a_normal_gatherer_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let args = reporter_args(port, admin, dir.path(), &["--memory-budget", "1MiB"]);
    let reporter = Daemon::start("reporter", &args, dir.path());
    wait_listening(port);
    let g = gatherer(port, "normal", dir.path());
    wait_for(Duration::from_secs(20), "the gatherer acknowledged", || {
        rows_of(dir.path(), "normal") >= 2
    });

    // 8,000 definitions (~1.2 MB estimated), within --max-series-per-stream.
    let fat_definitions =
        hostpulse_testkit::raw_messages_status(port, vec![hello("fat-defs"), batch(8_000, 1)]);
    assert!(
        fat_definitions.contains("ResourceExhausted")
            && fat_definitions.contains("memory budget is exhausted")
            && fat_definitions.contains("this stream's definitions"),
        "{fat_definitions}"
    );
    // One series, 20,000 samples: ~60 KB on the wire, megabytes decoded.
    let fat_batch =
        hostpulse_testkit::raw_messages_status(port, vec![hello("fat-batch"), batch(1, 20_000)]);
    assert!(
        fat_batch.contains("ResourceExhausted") && fat_batch.contains("this batch"),
        "{fat_batch}"
    );

    let (_, page) = http(admin, "GET", "/metrics", "").unwrap();
    for what in ["definitions", "batch"] {
        let line = format!("hostpulse_reporter_memory_budget_refused_total{{what=\"{what}\"}} 1");
        assert!(page.contains(&line), "{line} in:\n{page}");
    }
    // Operators see it in Admin.Status too.
    let (ok, status, err) = hostpulse_testkit::grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/Status",
    ]);
    assert!(ok, "{err}");
    assert!(
        status.contains(r#""refusedDefinitions": "1""#)
            && status.contains(r#""refusedBatches": "1""#)
            && status.contains("memory budget is exhausted"),
        "{status}"
    );
    // And in the health detail, while the reporter stays alive.
    let (code, health) = http(admin, "GET", "/healthz", "").unwrap();
    assert_eq!(code, 200, "{health}");
    assert!(
        health.contains("memory budget:") && health.contains("2 stream(s) refused since start"),
        "{health}"
    );
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
