//! The QuestDB store against real servers on 127.0.0.1: VictoriaMetrics (the
//! Debian `victoria-metrics` package: ILP over HTTP and TCP, and with
//! `-dedup.minScrapeInterval` one sample per series and timestamp, as QuestDB's
//! DEDUP keeps one row) and, for what VictoriaMetrics never does (5xx, 401,
//! 413, redirects, TLS, the SQL endpoint), a small scripted HTTP(S) server.
//!
//! The tests fail, never skip, when `victoria-metrics` is not installed.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hostpulse_proto::codec::DecodedRow;
use hostpulse_proto::pb;
use hostpulse_proto::row::Value;
use hostpulse_testkit::batch::{decoded, decoded_row as row};
use hostpulse_testkit::{Tsdb, free_port};
use reporter::intake::AcceptedBatch;
use reporter::store::questdb::{QuestDbStore, SCHEMA_SQL, SchemaError, apply_schema};
use reporter::store::{Store, StoreError};

// ---------------------------------------------------------------- harness

/// VictoriaMetrics ([`Tsdb`]) as these tests address and read it.
trait VmExt {
    /// The questdb-rs configuration for its ILP/HTTP endpoint, with no
    /// protocol version (the store's own detection runs).
    fn http_conf(&self) -> String;
    /// Every sample of the series whose name matches `regex`:
    /// labels → (timestamps in ms, values).
    fn samples(&self, regex: &str) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;
}

impl VmExt for Tsdb {
    fn http_conf(&self) -> String {
        format!("http::addr=127.0.0.1:{};", self.port)
    }

    fn samples(&self, regex: &str) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> {
        self.export(&format!("{{__name__=~\"{regex}\"}}"))
            .into_iter()
            .map(|(metric, values, ts)| {
                let labels = metric
                    .as_object()
                    .expect("metric")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, ts.into_iter().zip(values).collect())
            })
            .collect()
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A whole millisecond a few minutes ago, in ns (VictoriaMetrics keeps ms).
fn recent_ns(minutes_ago: i64) -> i64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now_ms - minutes_ago * 60_000) * 1_000_000
}

fn batch(node: &str, sequence: u64, rows: Vec<DecodedRow>) -> Arc<AcceptedBatch> {
    Arc::new(AcceptedBatch {
        node: Arc::from(node),
        decoded: decoded(sequence, rows),
        stored: pb::Batch::default(),
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cpu_batch(node: &str, ts: i64) -> Arc<AcceptedBatch> {
    batch(
        node,
        7,
        vec![
            row(
                "cpu",
                &[("cpu", "0"), ("region", "eu-west")],
                ts,
                &[
                    ("user_percent", Value::Float(3.25)),
                    ("user_seconds_total", Value::Float(4449.05)),
                ],
            ),
            row(
                "cpu",
                &[("cpu", "total"), ("region", "eu-west")],
                ts,
                &[("user_percent", Value::Float(1.5))],
            ),
        ],
    )
}

// ---------------------------------------------------------------- VictoriaMetrics

#[test]
fn rows_read_back_with_their_values_timestamps_and_tags() {
    let vm = Tsdb::start_with(&[]);
    let mut store = QuestDbStore::new(&vm.http_conf()).expect("a valid configuration");
    assert_eq!(store.name(), "questdb");
    let t1 = recent_ns(10);
    let t2 = t1 + 15_000_000_000;
    let batches = [
        cpu_batch("web-1", t1),
        batch(
            "web-1",
            8,
            vec![
                row(
                    "cpu",
                    &[("cpu", "0"), ("region", "eu-west")],
                    t2,
                    &[
                        ("user_percent", Value::Float(-0.125)),
                        ("user_seconds_total", Value::Float(4450.5)),
                        // Left out: neither ILP nor the row model carries them.
                        ("steal_percent", Value::Float(f64::NAN)),
                        ("guest_percent", Value::Float(f64::INFINITY)),
                    ],
                ),
                // Integers, exact and clamped; an empty tag is left out.
                row(
                    "cpu",
                    &[("cpu", "1"), ("empty", "")],
                    t2,
                    &[
                        ("irq_count_total", Value::Int(12_345_678_901)),
                        ("huge_total", Value::Int(u64::MAX)),
                    ],
                ),
                // Only non-finite fields: the row is not sent.
                row(
                    "cpu",
                    &[("cpu", "2")],
                    t2,
                    &[("user_percent", Value::Float(f64::NAN))],
                ),
            ],
        ),
        batch(
            "db-1",
            1,
            vec![row(
                "cpu",
                &[("cpu", "total")],
                t2,
                &[("user_percent", Value::Float(99.999))],
            )],
        ),
    ];
    store.write(&batches).expect("the rows are accepted");

    let got = vm.samples("cpu_.*");
    let (ms1, ms2) = (t1 / 1_000_000, t2 / 1_000_000);
    let web_cpu0 = [("node", "web-1"), ("cpu", "0"), ("region", "eu-west")];
    let expect = |name: &str, tags: &[(&str, &str)]| {
        let mut l = labels(tags);
        l.insert("__name__".into(), name.into());
        l
    };
    let want: BTreeMap<_, Vec<(i64, f64)>> = [
        (
            expect("cpu_user_percent", &web_cpu0),
            vec![(ms1, 3.25), (ms2, -0.125)],
        ),
        (
            expect("cpu_user_seconds_total", &web_cpu0),
            vec![(ms1, 4449.05), (ms2, 4450.5)],
        ),
        (
            expect(
                "cpu_user_percent",
                &[("node", "web-1"), ("cpu", "total"), ("region", "eu-west")],
            ),
            vec![(ms1, 1.5)],
        ),
        (
            expect("cpu_irq_count_total", &[("node", "web-1"), ("cpu", "1")]),
            vec![(ms2, 12_345_678_901.0)],
        ),
        (
            expect("cpu_huge_total", &[("node", "web-1"), ("cpu", "1")]),
            vec![(ms2, i64::MAX as f64)],
        ),
        (
            expect("cpu_user_percent", &[("node", "db-1"), ("cpu", "total")]),
            vec![(ms2, 99.999)],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_batch_written_twice_is_stored_once() {
    let vm = Tsdb::start_with(&[]);
    let mut store = QuestDbStore::new(&vm.http_conf()).unwrap();
    let ts = recent_ns(20);
    let b = cpu_batch("web-2", ts);
    store.write(std::slice::from_ref(&b)).unwrap();
    // A replay after a crash: the same batch again, alone and with a new one.
    store.write(std::slice::from_ref(&b)).unwrap();
    store
        .write(&[b.clone(), cpu_batch("web-2", ts + 10_000_000_000)])
        .unwrap();
    let got = vm.samples("cpu_.*");
    assert_eq!(got.len(), 3, "{got:?}");
    let ms = ts / 1_000_000;
    for (series, samples) in &got {
        let at_ts: Vec<_> = samples.iter().filter(|(t, _)| *t == ms).collect();
        assert_eq!(at_ts.len(), 1, "{series:?}: {samples:?}");
    }
    let total = labels(&[
        ("__name__", "cpu_user_percent"),
        ("node", "web-2"),
        ("cpu", "total"),
        ("region", "eu-west"),
    ]);
    assert_eq!(got[&total], vec![(ms, 1.5), (ms + 10_000, 1.5)]);
}

#[test]
fn a_stopped_server_is_unavailable_and_writing_resumes_when_it_is_back() {
    let mut vm = Tsdb::start_with(&[]);
    let mut store = QuestDbStore::new(&vm.http_conf()).unwrap();
    let ts = recent_ns(30);
    store.write(&[cpu_batch("web-3", ts)]).unwrap();

    vm.stop();
    let later = cpu_batch("web-3", ts + 5_000_000_000);
    for _ in 0..3 {
        match store.write(std::slice::from_ref(&later)) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains(&format!("127.0.0.1:{}", vm.port)), "{m}");
            }
            other => panic!("expected Unavailable with the server down, got {other:?}"),
        }
    }

    vm.resume();
    store
        .write(std::slice::from_ref(&later))
        .expect("the server is back");
    let got = vm.samples("cpu_user_percent");
    let total = labels(&[
        ("__name__", "cpu_user_percent"),
        ("node", "web-3"),
        ("cpu", "total"),
        ("region", "eu-west"),
    ]);
    let ms = ts / 1_000_000;
    assert_eq!(got[&total], vec![(ms, 1.5), (ms + 5_000, 1.5)]);
}

#[test]
fn a_400_from_the_server_is_rejected_with_its_message() {
    // VictoriaMetrics answers 400 to a line longer than -influx.maxLineSize
    // (when the line is also longer than its read block: it silently skips
    // shorter ones).
    let vm = Tsdb::start_with(&["-influx.maxLineSize=1000"]);
    let mut store = QuestDbStore::new(&vm.http_conf()).unwrap();
    let long = "x".repeat(100_000);
    let b = batch(
        "web-4",
        1,
        vec![row(
            "cpu",
            &[("cpu", &long)],
            recent_ns(5),
            &[("user_percent", Value::Float(1.0))],
        )],
    );
    match store.write(&[b]) {
        Err(StoreError::Rejected(m)) => {
            assert!(m.contains("HTTP 400"), "{m}");
            assert!(m.contains("too long line"), "the server's own words: {m}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // The store stays usable.
    store.write(&[cpu_batch("web-4", recent_ns(5))]).unwrap();
}

#[test]
fn ilp_over_tcp_writes_and_reconnects_after_a_restart() {
    let mut vm = Tsdb::start_with(&[]);
    let conf = format!("tcp::addr=127.0.0.1:{};", vm.influx_port);
    let mut store = QuestDbStore::new(&conf).unwrap();
    let ts = recent_ns(40);
    store.write(&[cpu_batch("tcp-1", ts)]).unwrap();

    vm.stop();
    // ILP/TCP has no acknowledgement: the first write after the peer went
    // away may still "succeed" (into the socket); a later one fails.
    let later = cpu_batch("tcp-1", ts + 5_000_000_000);
    let mut failed = false;
    for _ in 0..5 {
        match store.write(std::slice::from_ref(&later)) {
            Err(StoreError::Unavailable(_)) => {
                failed = true;
                break;
            }
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(()) => thread::sleep(Duration::from_millis(100)),
        }
    }
    assert!(failed, "writes over a dead TCP connection never failed");

    vm.resume();
    store
        .write(std::slice::from_ref(&later))
        .expect("a new connection");
    // TCP ingestion is asynchronous on the server side.
    let total = labels(&[
        ("__name__", "cpu_user_percent"),
        ("node", "tcp-1"),
        ("cpu", "total"),
        ("region", "eu-west"),
    ]);
    let ms = ts / 1_000_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = vm.samples("cpu_user_percent");
        if got.get(&total) == Some(&vec![(ms, 1.5), (ms + 5_000, 1.5)]) {
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}\n{}", vm.log_text());
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writes_without_rows_succeed_without_a_server() {
    let port = free_port(); // nothing listens there
    let mut store = QuestDbStore::new(&format!("http::addr=127.0.0.1:{port};")).unwrap();
    store.write(&[]).unwrap();
    store.write(&[batch("web-5", 1, vec![])]).unwrap();
    // Rows whose every value is non-finite send nothing either.
    let nan = row(
        "cpu",
        &[],
        recent_ns(1),
        &[("user_percent", Value::Float(f64::NAN))],
    );
    store.write(&[batch("web-5", 2, vec![nan])]).unwrap();
    // A real row needs the server: refused connection → Unavailable.
    match store.write(&[cpu_batch("web-5", recent_ns(1))]) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn malformed_configurations_fail_at_construction_with_a_reason() {
    let cases = [
        ("", "QuestDB configuration"),
        ("http:addr=127.0.0.1:9000;", "QuestDB configuration"),
        (
            "http::addr=127.0.0.1:9000;request_timout=1000;",
            "request_timout",
        ),
        ("http::addr=127.0.0.1:notaport;", "port"),
        (
            "http::addr=127.0.0.1:9000;protocol_version=auto;",
            "protocol_version",
        ),
        (
            "http::addr=127.0.0.1:9000;request_timeout=soon;",
            "request_timeout",
        ),
        (
            "http::addr=127.0.0.1:9000;password=secret-value;",
            "username",
        ),
        (
            "https::addr=127.0.0.1:9000;tls_roots=/no/such/ca.pem;",
            "/no/such/ca.pem",
        ),
        ("http::", "addr"),
        ("udp::addr=127.0.0.1:9007;", "not supported"),
    ];
    for (conf, needle) in cases {
        match QuestDbStore::new(conf) {
            Ok(store) => panic!("{conf:?} was accepted: {store:?}"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(needle), "{conf:?}: {m}");
                assert!(!m.contains("secret-value"), "a credential leaked: {m}");
            }
        }
    }
}

#[test]
fn malformed_rows_are_rejected_before_anything_is_sent() {
    let port = free_port(); // nothing listens: a request would be Unavailable
    let mut store = QuestDbStore::new(&format!("http::addr=127.0.0.1:{port};")).unwrap();
    let ts = recent_ns(1);
    let f = [("user_percent", Value::Float(1.0))];
    let bad = [
        row("cpu/bad", &[], ts, &f),
        row("cpu", &[("node", "other")], ts, &f),
        row("cpu", &[], ts, &[("ts", Value::Int(1))]),
        row("cpu", &[("cpu", "0")], ts, &[("cpu", Value::Int(1))]),
        row("cpu", &[], -1, &f),
        row("cpu", &[("bad/tag", "x")], ts, &f),
        row(&"t".repeat(200), &[], ts, &f),
    ];
    for r in bad {
        let table = r.key.table.clone();
        let good = cpu_batch("web-6", ts);
        match store.write(&[good, batch("web-6", 9, vec![r])]) {
            Err(StoreError::Rejected(m)) => assert!(m.contains("batch 9 of node web-6"), "{m}"),
            other => panic!("{table}: expected Rejected, got {other:?}"),
        }
    }
    match store.write(&[cpu_batch("", ts)]) {
        Err(StoreError::Rejected(m)) => assert!(m.contains("node"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[test]
fn apply_schema_reaches_the_sql_endpoint_and_reports_a_refusal() {
    // VictoriaMetrics has no /exec: a real server refusing the first statement.
    let vm = Tsdb::start_with(&[]);
    match apply_schema(&vm.http_conf(), SCHEMA_SQL) {
        Err(SchemaError::Refused {
            number: 1,
            status: 400,
            message,
            head,
        }) => {
            assert!(message.contains("/exec"), "{message}");
            assert!(head.starts_with("CREATE TABLE IF NOT EXISTS"), "{head}");
        }
        other => panic!("expected the first statement refused, got {other:?}"),
    }
    // Over TCP there is no SQL endpoint.
    let conf = format!("tcp::addr=127.0.0.1:{};", vm.influx_port);
    assert!(matches!(
        apply_schema(&conf, SCHEMA_SQL),
        Err(SchemaError::Config(_))
    ));
    // Nothing listening: Unreachable, not a panic.
    let conf = format!("http::addr=127.0.0.1:{};", free_port());
    assert!(matches!(
        apply_schema(&conf, SCHEMA_SQL),
        Err(SchemaError::Unreachable { number: 1, .. })
    ));
    assert!(matches!(
        apply_schema(&vm.http_conf(), "-- nothing\n"),
        Err(SchemaError::Empty)
    ));
}

// ---------------------------------------------------------------- scripted HTTP server

/// One request a [`Scripted`] server received.
#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = Box<dyn Fn(&Request) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// An HTTP/1.1 server on 127.0.0.1 that answers each request with what
/// `answer` says and records them all. Stops when dropped.
struct Scripted {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(answer: Answer) -> Scripted {
        Scripted::start_with(answer, None)
    }

    /// Serves HTTPS with the certificate of tests/fixtures/tls/leaf.pem.
    fn start_tls(answer: Answer) -> Scripted {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(fixture("leaf.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("leaf.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Scripted::start_with(answer, Some(Arc::new(config)))
    }

    fn start_with(answer: Answer, tls: Option<Arc<rustls::ServerConfig>>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(2)))
                            .unwrap();
                        match &tls {
                            None => serve(stream, &answer, &log),
                            Some(config) => {
                                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(config))
                                else {
                                    continue;
                                };
                                serve(rustls::StreamOwned::new(conn, stream), &answer, &log);
                            }
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Scripted {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn conf(&self, extra: &str) -> String {
        format!("http::addr=127.0.0.1:{};{extra}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve<S: Read + Write>(stream: S, answer: &Answer, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            line: line.trim_end().to_string(),
            headers,
            body,
        };
        let (status, extra, text) = answer(&request);
        log.lock().unwrap().push(request);
        let mut response = format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n",
            text.len()
        );
        for (k, v) in extra {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&text);
        let writer = reader.get_mut();
        if writer.write_all(response.as_bytes()).is_err() || writer.flush().is_err() {
            return;
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn fixed(status: u16, text: &'static str) -> Answer {
    Box::new(move |_| (status, Vec::new(), text.to_string()))
}

#[test]
fn requests_carry_the_protocol_the_credentials_and_every_row() {
    let server = Scripted::start(fixed(204, ""));
    let mut store = QuestDbStore::new(&server.conf("token=tok-123;")).unwrap();
    let ts = 1_700_000_000_123_456_789;
    store
        .write(&[cpu_batch("web-7", ts), cpu_batch("web-8", ts)])
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one request per write");
    let r = &requests[0];
    assert_eq!(r.line, "POST /write?precision=n HTTP/1.1");
    assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        body,
        "cpu,node=web-7,cpu=0,region=eu-west user_percent=3.25,user_seconds_total=4449.05 1700000000123456789\n\
         cpu,node=web-7,cpu=total,region=eu-west user_percent=1.5 1700000000123456789\n\
         cpu,node=web-8,cpu=0,region=eu-west user_percent=3.25,user_seconds_total=4449.05 1700000000123456789\n\
         cpu,node=web-8,cpu=total,region=eu-west user_percent=1.5 1700000000123456789\n"
    );

    // Basic authentication.
    let server = Scripted::start(fixed(204, ""));
    let mut store = QuestDbStore::new(&server.conf("username=admin;password=quest;")).unwrap();
    store.write(&[cpu_batch("web-7", ts)]).unwrap();
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic YWRtaW46cXVlc3Q=")
    );
}

#[test]
fn server_errors_are_unavailable_and_client_errors_rejected() {
    let ts = recent_ns(1);
    let cases: [(u16, &'static str, bool); 8] = [
        (
            500,
            "{\"code\":\"internal error\",\"message\":\"disk full\"}",
            false,
        ),
        (502, "<html>Bad Gateway</html>", false),
        (503, "overloaded", false),
        (401, "who are you", false),
        (404, "Not Found", false),
        (429, "slow down", false),
        (
            400,
            "{\"code\":\"invalid\",\"message\":\"cast error\"}",
            true,
        ),
        (422, "unprocessable", true),
    ];
    for (status, text, rejected) in cases {
        let server = Scripted::start(fixed(status, text));
        let mut store = QuestDbStore::new(&server.conf("")).unwrap();
        let result = store.write(&[cpu_batch("web-9", ts)]);
        match (&result, rejected) {
            (Err(StoreError::Rejected(m)), true) | (Err(StoreError::Unavailable(m)), false) => {
                assert!(m.contains(&format!("HTTP {status}")), "{m}");
            }
            _ => panic!("HTTP {status}: got {result:?}"),
        }
        // Only one attempt: retries belong to the drainer by default.
        assert_eq!(server.requests().len(), 1, "HTTP {status}");
    }
}

#[test]
fn retry_timeout_retries_within_one_write_when_asked() {
    let calls = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&calls);
    let server = Scripted::start(Box::new(move |_| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        if *n < 3 {
            (503, Vec::new(), "restarting".into())
        } else {
            (204, Vec::new(), String::new())
        }
    }));
    let mut store = QuestDbStore::new(&server.conf("retry_timeout=5000;")).unwrap();
    store.write(&[cpu_batch("web-10", recent_ns(1))]).unwrap();
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[test]
fn redirects_are_not_followed() {
    let server = Scripted::start(Box::new(|_| {
        (
            307,
            vec![("Location".into(), "http://elsewhere:9000/write".into())],
            String::new(),
        )
    }));
    let mut store = QuestDbStore::new(&server.conf("")).unwrap();
    match store.write(&[cpu_batch("web-11", recent_ns(1))]) {
        Err(StoreError::Unavailable(m)) => {
            assert!(m.contains("http://elsewhere:9000/write"), "{m}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn too_large_requests_are_split_until_they_fit() {
    // A proxy that takes at most 300 bytes per request.
    let server = Scripted::start(Box::new(|r| {
        if r.body.len() > 300 {
            (413, Vec::new(), "Payload Too Large".into())
        } else {
            (204, Vec::new(), String::new())
        }
    }));
    let mut store = QuestDbStore::new(&server.conf("")).unwrap();
    let ts = recent_ns(1);
    let batches: Vec<_> = (0..5).map(|i| cpu_batch(&format!("n{i}"), ts)).collect();
    store.write(&batches).unwrap();
    let accepted: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.body.len() <= 300)
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    let lines: Vec<&str> = accepted.iter().flat_map(|b| b.lines()).collect();
    assert_eq!(lines.len(), 10, "every row once: {lines:?}");
    for i in 0..5 {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("cpu,node=n{i},")))
                .count(),
            2
        );
    }

    // One row that alone is too large: rejected.
    let server = Scripted::start(fixed(413, "Payload Too Large"));
    let mut store = QuestDbStore::new(&server.conf("")).unwrap();
    let one = batch(
        "n",
        1,
        vec![row("cpu", &[], ts, &[("user_percent", Value::Float(1.0))])],
    );
    assert!(matches!(store.write(&[one]), Err(StoreError::Rejected(_))));
}

#[test]
fn max_buf_size_splits_a_write_into_several_requests() {
    let server = Scripted::start(fixed(204, ""));
    let mut store = QuestDbStore::new(&server.conf("max_buf_size=1024;")).unwrap();
    let ts = recent_ns(1);
    let batches: Vec<_> = (0..40).map(|i| cpu_batch(&format!("n{i}"), ts)).collect();
    store.write(&batches).unwrap();
    let requests = server.requests();
    assert!(requests.len() > 1, "{}", requests.len());
    assert!(requests.iter().all(|r| r.body.len() <= 1024));
    let rows: usize = requests
        .iter()
        .map(|r| r.body.iter().filter(|b| **b == b'\n').count())
        .sum();
    assert_eq!(rows, 80);
}

#[test]
fn apply_schema_sends_every_statement_in_order() {
    let server = Scripted::start(fixed(200, "{\"ddl\":\"OK\"}"));
    apply_schema(&server.conf("username=admin;password=quest;"), SCHEMA_SQL).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 16, "one statement per table");
    let mut tables = Vec::new();
    for r in &requests {
        assert_eq!(r.header("authorization"), Some("Basic YWRtaW46cXVlc3Q="));
        let target = r.line.split(' ').nth(1).unwrap();
        let query = target
            .strip_prefix("/exec?query=")
            .unwrap_or_else(|| panic!("{target}"));
        let sql = decode(query);
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \""), "{sql}");
        assert!(sql.contains(" TIMESTAMP(ts) PARTITION BY "), "{sql}");
        // QuestDB 9.3.5 refuses `WAL TTL ...`: the TTL comes first.
        let (ttl, wal) = (sql.find(" TTL ").unwrap(), sql.find(" WAL ").unwrap());
        assert!(ttl < wal, "TTL before WAL: {sql}");
        assert!(sql.contains(" DEDUP UPSERT KEYS(ts, node"), "{sql}");
        assert!(!sql.contains("--"), "comments are stripped: {sql}");
        tables.push(sql.split('"').nth(1).unwrap().to_string());
    }
    assert_eq!(tables[0], "cpu");
    assert_eq!(tables[14], "node_info");
    assert_eq!(tables[15], "node_events");

    // A refusal stops at its statement and says which.
    let calls = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&calls);
    let server = Scripted::start(Box::new(move |_| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        if *n == 3 {
            (
                400,
                Vec::new(),
                "{\"query\":\"...\",\"error\":\"unexpected token\",\"position\":12}".into(),
            )
        } else {
            (200, Vec::new(), "{\"ddl\":\"OK\"}".into())
        }
    }));
    match apply_schema(&server.conf(""), SCHEMA_SQL) {
        Err(SchemaError::Refused {
            number: 3,
            status: 400,
            message,
            ..
        }) => assert!(message.contains("unexpected token"), "{message}"),
        other => panic!("expected statement 3 refused, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn https_verifies_the_server_against_tls_roots() {
    let server = Scripted::start_tls(fixed(204, ""));
    let ca = fixture("ca.pem");
    let conf = format!(
        "https::addr=127.0.0.1:{};tls_roots={};username=admin;password=quest;",
        server.port,
        ca.display()
    );
    let mut store = QuestDbStore::new(&conf).unwrap();
    store.write(&[cpu_batch("tls-1", recent_ns(1))]).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].line, "POST /write?precision=n HTTP/1.1");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic YWRtaW46cXVlc3Q=")
    );

    // Without the private CA the certificate is unknown: Unavailable (the
    // operator fixes tls_roots; the spool keeps the rows).
    let conf = format!("https::addr=127.0.0.1:{};", server.port);
    let mut store = QuestDbStore::new(&conf).unwrap();
    match store.write(&[cpu_batch("tls-1", recent_ns(1))]) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("https://127.0.0.1"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        1,
        "no request without a trusted server"
    );

    // TLS to a plain HTTP server: Unavailable, no panic.
    let plain = Scripted::start(fixed(204, ""));
    let conf = format!(
        "https::addr=127.0.0.1:{};tls_roots={};",
        plain.port,
        ca.display()
    );
    let mut store = QuestDbStore::new(&conf).unwrap();
    assert!(matches!(
        store.write(&[cpu_batch("tls-2", recent_ns(1))]),
        Err(StoreError::Unavailable(_))
    ));

    // A roots file without a certificate is refused at construction.
    let conf = format!(
        "https::addr=127.0.0.1:{};tls_roots={};",
        server.port,
        fixture("README.md").display()
    );
    let e = QuestDbStore::new(&conf).unwrap_err().to_string();
    assert!(e.contains("README.md"), "{e}");
}

/// Through the spool, as the reporter drains it: a refused row is split
/// from its batch, and only it goes to the rejected-rows file.
#[tokio::test(flavor = "multi_thread")]
async fn one_bad_row_costs_only_itself_on_the_line_protocol_path() {
    use reporter::intake::Intake;
    use reporter::spool::{Spool, SpoolOptions};
    let vm = Tsdb::start_with(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = QuestDbStore::new(&vm.http_conf()).unwrap();
    let spool = Spool::open(
        SpoolOptions {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 20,
        },
        vec![Box::new(store)],
    )
    .unwrap();
    let ts = recent_ns(5);
    let rows: Vec<DecodedRow> = ["good1", "good2", "good3", "Bad Table", "good4"]
        .iter()
        .map(|t| row(t, &[("k", "v")], ts, &[("value", Value::Int(1))]))
        .collect();
    // A self-contained batch, as the spool stores it.
    let mut stored = pb::Batch {
        sequence: 1,
        base_ts: ts,
        ..Default::default()
    };
    let mut group = pb::Group::default();
    for (i, r) in rows.iter().enumerate() {
        let id = i as u32;
        stored.row_keys.push(pb::RowKey {
            id,
            table: r.key.table.clone(),
            tags: vec![pb::Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        });
        stored.series.push(pb::Series {
            id,
            row_key: id,
            field: "value".into(),
            kind: pb::ValueKind::Int as i32,
        });
        group.series_delta.push(i32::from(i > 0));
        group.ints.push(1);
    }
    stored.groups.push(group);
    let b = batch("n1", 1, rows);
    spool
        .write(Arc::new(AcceptedBatch {
            node: Arc::clone(&b.node),
            decoded: b.decoded.clone(),
            stored,
        }))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Handled once rejected and the cursor moved past it (the rows after the
    // refused one are written after it is set aside).
    while spool.status().stores[0].rejected_batches < 1 || spool.status().stores[0].lag_bytes > 0 {
        assert!(Instant::now() < deadline, "{:?}", spool.status());
        thread::sleep(Duration::from_millis(20));
    }
    let got = vm.samples("good.*");
    let names: Vec<&str> = got.keys().map(|l| l["__name__"].as_str()).collect();
    assert_eq!(
        names,
        ["good1_value", "good2_value", "good3_value", "good4_value"]
    );
    let rejected = std::fs::read_to_string(dir.path().join("rejected-questdb.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.contains("Bad Table"), "{rejected}");
    spool.shutdown(Duration::from_secs(1));
}

#[test]
fn text_fields_are_ilp_strings_or_skipped_and_counted_for_a_numbers_only_server() {
    let ts = recent_ns(1);
    let events = || {
        batch(
            "web-1",
            1,
            vec![
                row(
                    "node_events",
                    &[("event", "start")],
                    ts,
                    &[
                        ("message", Value::Text("started \"now\"\nok".into())),
                        ("batches", Value::Int(2)),
                    ],
                ),
                row(
                    "node_events",
                    &[("event", "stop")],
                    ts + 1_000,
                    &[("message", Value::Text("bye".into()))],
                ),
            ],
        )
    };
    let server = Scripted::start(fixed(204, ""));
    let mut store = QuestDbStore::new(&server.conf("")).unwrap();
    store.write(&[events()]).unwrap();
    let body = String::from_utf8(server.requests()[0].body.clone()).unwrap();
    assert!(
        body.contains(
            r#"message="started \"now\"\
ok""#
        ) && body.contains(r#"message="bye""#),
        "{body}"
    );

    // A numbers-only server: the numbers go, the text is counted.
    let before: u64 = reporter::store::skipped_text::counts()
        .iter()
        .map(|(_, n)| n)
        .sum();
    let server = Scripted::start(fixed(204, ""));
    let mut store = QuestDbStore::new(&server.conf("")).unwrap().skip_text();
    store.write(&[events()]).unwrap();
    let requests = server.requests();
    let body = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(!body.contains("message"), "{body}");
    assert_eq!(
        body.lines().count(),
        1,
        "the text-only row is not sent: {body}"
    );
    assert!(body.contains("batches=2i"), "{body}");
    let after: u64 = reporter::store::skipped_text::counts()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(after - before, 2);
}
