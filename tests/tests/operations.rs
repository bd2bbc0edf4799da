//! Operating the daemons: configuration files and their precedence, the admin
//! port (/metrics, /healthz, gRPC health for kubelet), the `hostpulse_self`
//! table, JSON logs, and traces exported over OTLP to a collector the test
//! serves.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostpulse_testkit::{Daemon, binary, free_port, grpcurl, http, wait_for, wait_listening};

use hostpulse_testkit::args as s;

/// Runs `bin` to completion: (exit code, stdout, stderr).
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(binary(bin))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("HOSTPULSE_CONFIG")
        .output()
        .expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `--print-config` output for `key`.
fn line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{printed}"))
}

#[test]
fn settings_come_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reporter.toml");
    std::fs::write(
        &file,
        r#"
listen = "127.0.0.1:1111"
max-streams = 50
max_message_bytes = 1000000
log-level = "debug"
questdb = "http::addr=db:9000;username=admin;password=hunter2;"

[gatherers]
interval = "5s"
"#,
    )
    .unwrap();
    let (code, out, err) = run(
        "reporter",
        &[
            "--config",
            file.to_str().unwrap(),
            "--print-config",
            "--log-level",
            "warn",
        ],
        &[
            ("HOSTPULSE_MAX_STREAMS", "70"),
            ("HOSTPULSE_LOG_LEVEL", "error"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&out, "listen"), "listen = \"127.0.0.1:1111\"  # file");
    assert_eq!(line(&out, "max-streams"), "max-streams = \"70\"  # env");
    assert_eq!(
        line(&out, "max-message-bytes"),
        "max-message-bytes = \"1000000\"  # file"
    );
    assert_eq!(line(&out, "log-level"), "log-level = \"warn\"  # flag");
    assert_eq!(
        line(&out, "spool-dir"),
        "spool-dir = \"./spool\"  # default"
    );
    assert!(out.contains("# sqlite =  # unset"), "{out}");
    // Credentials in the QuestDB string are not printed.
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        line(&out, "questdb").contains("password=<redacted>"),
        "{out}"
    );
    // The pushed configuration is shown too.
    assert!(
        out.contains("[gatherers]") && out.contains("interval = \"5s\""),
        "{out}"
    );

    // The printed text is itself a configuration file giving the same result.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, out.replace("<redacted>", "x")).unwrap();
    let (code, again, err) = run(
        "reporter",
        &["--config", printed.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&again, "max-streams"), "max-streams = \"70\"  # file");
    assert_eq!(line(&again, "log-level"), "log-level = \"warn\"  # file");

    // The gatherer layers the same way; repeatable flags take arrays.
    let gfile = dir.path().join("gatherer.toml");
    std::fs::write(
        &gfile,
        "interval = \"3s\"\nlabel = [\"zone=a\", \"rack=7\"]\nnode-id = \"from-file\"\n",
    )
    .unwrap();
    let (code, out, err) = run(
        "gatherer",
        &["--config", gfile.to_str().unwrap(), "--print-config"],
        &[("HOSTPULSE_NODE_ID", "from-env")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&out, "interval"), "interval = \"3s\"  # file");
    assert_eq!(
        line(&out, "label"),
        "label = [\"zone=a\", \"rack=7\"]  # file"
    );
    assert_eq!(line(&out, "node-id"), "node-id = \"from-env\"  # env");
}

#[test]
fn configuration_mistakes_name_the_key_and_the_file_and_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 6] = [
        (
            "reporter",
            "listne = \"127.0.0.1:1\"\n",
            "unknown key `listne`",
        ),
        ("reporter", "max-streams = \"many\"\n", "--max-streams"),
        ("reporter", "[gatherers]\nintervall = \"1s\"\n", "intervall"),
        (
            "reporter",
            "[gatherers]\ncollectors = [\"gpu\"]\n",
            "unknown collector \"gpu\"",
        ),
        (
            "gatherer",
            "once = \"yes\"\n",
            "key `once`: takes true or false",
        ),
        (
            "gatherer",
            "interval = [\"1s\", \"2s\"]\n",
            "key `interval`: takes one value",
        ),
    ];
    for (i, (bin, text, expected)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = run(
            bin,
            &["--config", file.to_str().unwrap(), "--print-config"],
            &[],
        );
        assert_eq!(code, 2, "{bin} with {text:?} should refuse to start: {err}");
        assert!(err.contains(expected), "{bin} {text:?}: {err}");
        assert!(
            err.contains(&file.display().to_string()),
            "the file is named: {err}"
        );
    }
    let (code, _, err) = run("reporter", &["--config", "/nonexistent/reporter.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/reporter.toml"), "{err}");
}

/// A reporter on `port` with its admin port, spooling into SQLite under `dir`.
fn reporter(port: u16, admin: u16, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut args = s(&[
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--spool-dir",
        &dir.join("spool").display().to_string(),
        "--sqlite",
        &dir.join("hostpulse.db").display().to_string(),
        "--reporter-id",
        "reporter-a",
    ]);
    args.extend(s(extra));
    let d = Daemon::start_with_env("reporter", &args, env, dir);
    wait_listening(port);
    wait_listening(admin);
    d
}

fn gatherer(port: u16, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut args = s(&[
        "--reporter",
        &format!("http://127.0.0.1:{port}"),
        "--node-id",
        "node-1",
        "--collectors",
        "load,memory",
        "--interval",
        "100ms",
    ]);
    args.extend(s(extra));
    Daemon::start_with_env("gatherer", &args, env, dir)
}

/// The value of one sample line (`name` with its labels, exactly) of a page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn metrics(port: u16) -> String {
    let (code, body) = http(port, "GET", "/metrics", "").expect("admin port answers");
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn admin_ports_serve_metrics_health_and_kubelet_grpc_health() {
    let dir = tempfile::tempdir().unwrap();
    let (port, radmin, gadmin) = (free_port(), free_port(), free_port());
    let reporter = reporter(port, radmin, dir.path(), &[], &[]);
    let gatherer = gatherer(
        port,
        dir.path(),
        &["--admin-listen", &format!("127.0.0.1:{gadmin}")],
        &[],
    );
    wait_listening(gadmin);
    wait_for(Duration::from_secs(20), "5 acknowledged batches", || {
        sample(&metrics(gadmin), "hostpulse_gatherer_batches_acked_total").unwrap_or(0.0) >= 5.0
    });

    let g = metrics(gadmin);
    assert_eq!(sample(&g, "hostpulse_gatherer_connected"), Some(1.0), "{g}");
    assert!(
        sample(&g, "hostpulse_gatherer_samples_sent_total").unwrap() > 0.0,
        "{g}"
    );
    assert!(
        sample(&g, "hostpulse_gatherer_ack_seconds_count").unwrap() >= 5.0,
        "{g}"
    );
    assert_eq!(
        sample(&g, "hostpulse_gatherer_batches_dropped_total"),
        Some(0.0),
        "{g}"
    );
    assert_eq!(
        sample(
            &g,
            "hostpulse_gatherer_collector_errors_total{family=\"load\"}"
        ),
        Some(0.0),
        "{g}"
    );
    assert!(
        g.contains("# TYPE hostpulse_gatherer_ack_seconds histogram"),
        "{g}"
    );
    assert!(
        sample(&g, "process_resident_memory_bytes").unwrap() > 0.0,
        "{g}"
    );
    let version = format!(
        "hostpulse_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&g, &version), Some(1.0), "{g}");

    let r = metrics(radmin);
    assert_eq!(
        sample(&r, "hostpulse_reporter_streams_open"),
        Some(1.0),
        "{r}"
    );
    assert!(
        sample(&r, "hostpulse_reporter_batches_total").unwrap() >= 5.0,
        "{r}"
    );
    assert!(
        sample(&r, "hostpulse_reporter_spool_segments").unwrap() >= 1.0,
        "{r}"
    );
    assert!(
        sample(&r, "hostpulse_reporter_spool_commit_seconds_count").unwrap() >= 5.0,
        "{r}"
    );
    assert_eq!(
        sample(
            &r,
            "hostpulse_reporter_store_errors_total{store=\"sqlite\"}"
        ),
        Some(0.0),
        "{r}"
    );
    assert!(
        r.contains("hostpulse_reporter_store_write_seconds_bucket{store=\"sqlite\",le=\"+Inf\"}"),
        "{r}"
    );
    assert_eq!(
        sample(
            &r,
            "hostpulse_reporter_unauthenticated_total{reason=\"missing_token\"}"
        ),
        Some(0.0),
        "{r}"
    );

    for admin in [radmin, gadmin] {
        assert_eq!(
            http(admin, "GET", "/healthz", ""),
            Some((200, "ok\n".into()))
        );
        assert_eq!(http(admin, "GET", "/nope", "").map(|r| r.0), Some(404));
    }
    // What kubelet's native gRPC probes ask, in plaintext, on the admin port.
    let target = format!("127.0.0.1:{radmin}");
    let (ok, out, err) = grpcurl(&["-plaintext", &target, "grpc.health.v1.Health/Check"]);
    assert!(ok && out.contains("SERVING"), "{out}{err}");
    let (ok, out, err) = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"service":"liveness"}"#,
        &target,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(ok && out.contains("SERVING"), "{out}{err}");
    // Nothing but health there: the data services stay on the gRPC port.
    let (ok, out, _) = grpcurl(&["-plaintext", &target, "list"]);
    assert!(ok && !out.contains("hostpulse.v1"), "{out}");

    // A gatherer that leaves is counted as a clean end.
    assert!(gatherer.stop().success());
    wait_for(Duration::from_secs(10), "the stream to close", || {
        sample(&metrics(radmin), "hostpulse_reporter_streams_open") == Some(0.0)
    });
    assert_eq!(
        sample(
            &metrics(radmin),
            "hostpulse_reporter_streams_ended_total{code=\"OK\"}"
        ),
        Some(1.0)
    );
    assert!(reporter.stop().success());
}

fn sqlite(db: &Path, query: &str) -> String {
    hostpulse_testkit::try_sqlite(db, query).unwrap_or_default()
}

#[test]
fn the_pipeline_stores_its_own_health_in_hostpulse_self() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let reporter = reporter(port, admin, dir.path(), &["--self-interval", "200ms"], &[]);
    let gatherer = gatherer(port, dir.path(), &["--cycles", "5"], &[]);
    let db = dir.path().join("hostpulse.db");
    wait_for(
        Duration::from_secs(20),
        "self rows of both components",
        || {
            sqlite(&db, "SELECT count(DISTINCT component) FROM hostpulse_self") == "2"
            && sqlite(&db, "SELECT count(*) FROM hostpulse_self WHERE component = 'gatherer'") == "5"
            && sqlite(&db, "SELECT max(batches_total) FROM hostpulse_self WHERE component = 'reporter' AND store IS NULL")
                .parse::<u64>()
                .is_ok_and(|n| n >= 5)
        },
    );
    drop(gatherer);
    // The gatherer's rows: its cycles, and what its stream delivered.
    assert_eq!(
        sqlite(
            &db,
            "SELECT group_concat(cycles_total) FROM (SELECT cycles_total FROM hostpulse_self WHERE component = 'gatherer' ORDER BY ts)"
        ),
        "1,2,3,4,5"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT max(batches_acked_total) >= 3, max(batches_dropped_total), min(node) FROM hostpulse_self WHERE component = 'gatherer'"
        ),
        "1|0|node-1"
    );
    // The reporter's rows: its own node id, its spool, one row per store.
    assert_eq!(
        sqlite(
            &db,
            "SELECT DISTINCT node FROM hostpulse_self WHERE component = 'reporter'"
        ),
        "reporter-a"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT max(rows_total) > 0, max(errors_total) FROM hostpulse_self WHERE component = 'reporter' AND store = 'sqlite'"
        ),
        "1|0"
    );
    assert!(reporter.stop().success());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let reporter = reporter(port, admin, dir.path(), &["--log-format", "json"], &[]);
    let gatherer = gatherer(
        port,
        dir.path(),
        &["--cycles", "2"],
        &[("HOSTPULSE_LOG_FORMAT", "json")],
    );
    wait_for(Duration::from_secs(20), "the gatherer to connect", || {
        reporter.log_text().contains("gatherer connected")
    });
    drop(gatherer);
    let log = reporter.log_text();
    assert!(reporter.stop().success());
    let mut messages = BTreeSet::new();
    for l in log.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        messages.insert(v["message"].as_str().unwrap_or_default().to_string());
        if v["message"] == "gatherer connected" {
            assert_eq!(v["node"], "node-1", "fields are keys: {l}");
        }
    }
    assert!(messages.contains("reporter serving"), "{messages:?}");
}

/// An OTLP trace collector, served by the test: records every span's
/// service and name.
mod collector {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    pub(crate) type Spans = Arc<Mutex<Vec<(String, String)>>>;

    struct Collector(Spans);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut spans = self.0.lock().unwrap();
            for rs in request.into_inner().resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        spans.push((service.clone(), span.name));
                    }
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Serves on a free port until the runtime is dropped.
    pub(crate) fn start() -> (tokio::runtime::Runtime, u16, Spans) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let spans: Spans = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let service = TraceServiceServer::new(Collector(Arc::clone(&spans)));
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (rt, port, spans)
    }
}

#[test]
fn traces_reach_an_otlp_collector_when_one_is_configured() {
    let (_rt, otlp, spans) = collector::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{otlp}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let (port, admin) = (free_port(), free_port());
    let traced = reporter(port, admin, dir.path(), &[], &env);
    let g = gatherer(port, dir.path(), &["--cycles", "3"], &env);
    let gatherer_log = g.log.clone();
    // It exits by itself once its 3 batches are acknowledged, flushing its spans.
    assert!(g.wait_exit(Duration::from_secs(30)).success());
    let gatherer_log = std::fs::read_to_string(gatherer_log).unwrap_or_default();
    assert!(traced.stop().success());
    let names: BTreeSet<(String, String)> = spans.lock().unwrap().iter().cloned().collect();
    for (service, span) in [
        ("hostpulse-reporter", "stream"),
        ("hostpulse-reporter", "batch"),
        ("hostpulse-reporter", "spool.commit"),
        ("hostpulse-reporter", "store.flush"),
        ("hostpulse-gatherer", "stream"),
        ("hostpulse-gatherer", "cycle"),
    ] {
        assert!(
            names.contains(&(service.to_string(), span.to_string())),
            "{service}/{span} not exported; got {names:?}\ngatherer log:\n{gatherer_log}"
        );
    }

    // Only hostpulse's own spans: not the HTTP/2 and gRPC libraries' ones.
    let ours = ["stream", "batch", "spool.commit", "store.flush", "cycle"];
    let foreign: Vec<_> = names
        .iter()
        .filter(|(_, n)| !ours.contains(&n.as_str()))
        .collect();
    assert!(foreign.is_empty(), "exported: {foreign:?}");

    // A collector that does not answer is visible: warned once, counted.
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let (port, admin) = (free_port(), free_port());
    let lost = reporter(port, admin, dir.path(), &[], &env);
    let g = gatherer(port, dir.path(), &[], &[]);
    wait_for(
        Duration::from_secs(60),
        "a failed export to be counted",
        || sample(&metrics(admin), "hostpulse_trace_export_failures_total").unwrap_or(0.0) >= 1.0,
    );
    drop(g);
    let log = lost.log_text();
    assert!(lost.stop().success());
    assert_eq!(
        log.matches("OTLP trace export failing").count(),
        1,
        "one warning per streak: {log}"
    );

    // Without the variable nothing is exported and nothing says so.
    let dir = tempfile::tempdir().unwrap();
    let before = spans.lock().unwrap().len();
    let (port, admin) = (free_port(), free_port());
    let quiet = reporter(port, admin, dir.path(), &[], &[]);
    let g = gatherer(port, dir.path(), &["--cycles", "2"], &[]);
    wait_for(Duration::from_secs(20), "the gatherer to connect", || {
        quiet.log_text().contains("gatherer connected")
    });
    let quiet_metrics = metrics(admin);
    drop(g);
    let log = quiet.log_text();
    assert!(quiet.stop().success());
    assert!(!log.contains("exporting traces"), "{log}");
    assert_eq!(spans.lock().unwrap().len(), before);
    assert!(sample(&quiet_metrics, "hostpulse_trace_export_failures_total").is_none());
}

#[test]
fn applying_the_schema_fails_with_the_reason_when_questdb_is_unreachable() {
    // What a Kubernetes Job sees before QuestDB is up: a failure (the Job
    // retries), the reason, and no server left running.
    let port = free_port();
    let conf = format!("http::addr=127.0.0.1:{port};");
    let (code, _, err) = run(
        "reporter",
        &["--questdb", &conf, "--apply-schema-and-exit"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("could not apply the QuestDB schema"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the address is named: {err}"
    );
    // Without a database to apply it to, the flag is refused outright.
    let (code, _, err) = run("reporter", &["--apply-schema-and-exit"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--questdb"), "{err}");
}

#[test]
fn a_gatherer_survives_sighup_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let g = Daemon::start(
        "gatherer",
        &s(&[
            "--stdout",
            "--interval",
            "100ms",
            "--collectors",
            "load",
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ]),
        dir.path(),
    );
    wait_listening(admin);
    let cycles = || sample(&metrics(admin), "hostpulse_gatherer_cycles_total").unwrap_or(0.0);
    wait_for(Duration::from_secs(10), "a first cycle", || cycles() >= 1.0);
    g.signal("HUP");
    let after = cycles();
    wait_for(Duration::from_secs(10), "collection to go on", || {
        cycles() >= after + 3.0
    });
    assert!(g.log_text().contains("SIGHUP ignored"), "{}", g.log_text());
    assert!(g.stop().success());
}

#[test]
fn a_stopping_reporter_is_not_ready_but_alive_while_it_drains() {
    // The database is down, so the drain after SIGTERM lasts --drain-timeout:
    // meanwhile kubelet must see "not ready" (no new streams) and "alive" (no
    // kill before the drain ends).
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let questdb = format!("http::addr=127.0.0.1:{};", free_port());
    let target = format!("127.0.0.1:{admin}");
    // Not `reporter()`: that one stores into SQLite, which would drain at once.
    let r = Daemon::start(
        "reporter",
        &s(&[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &target,
            "--spool-dir",
            &dir.path().join("spool").display().to_string(),
            "--sqlite",
            "none",
            "--questdb",
            &questdb,
            "--drain-timeout",
            "6s",
        ]),
        dir.path(),
    );
    wait_listening(port);
    let g = gatherer(port, dir.path(), &["--cycles", "2"], &[]);
    assert!(g.wait_exit(Duration::from_secs(20)).success());
    let health = |service: &str| {
        let body = format!(r#"{{"service":"{service}"}}"#);
        grpcurl(&[
            "-plaintext",
            "-d",
            &body,
            &target,
            "grpc.health.v1.Health/Check",
        ])
        .1
    };
    assert!(health("").contains("\"SERVING\""), "{}", health(""));
    r.signal("TERM");
    wait_for(Duration::from_secs(10), "readiness to drop", || {
        health("").contains("NOT_SERVING")
    });
    assert!(
        health("liveness").contains("\"SERVING\""),
        "{}",
        health("liveness")
    );
    assert!(
        r.log_text().contains("draining the spool"),
        "{}",
        r.log_text()
    );
    assert!(r.wait_exit(Duration::from_secs(40)).success());
}

#[test]
fn a_taken_admin_port_or_a_malformed_otlp_endpoint_stops_the_daemon_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (bin, extra) in [
        ("gatherer", vec!["--once", "--interval", "100ms"]),
        (
            "reporter",
            vec!["--listen", "127.0.0.1:0", "--ingest", "discard"],
        ),
    ] {
        let mut args = vec!["--admin-listen", addr.as_str()];
        args.extend(extra.iter().copied());
        let (code, _, err) = run(bin, &args, &[]);
        assert_eq!(code, 5, "{bin}: a taken port has its own exit code: {err}");
        assert!(
            err.contains(&format!("--admin-listen {addr}")),
            "{bin}: {err}"
        );
        assert!(
            !err.contains("reporter serving"),
            "{bin} claimed to serve: {err}"
        );

        let (code, _, err) = run(
            bin,
            &extra,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://not a url")],
        );
        assert_eq!(code, 2, "{bin}: {err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{bin}: {err}");
    }
}

#[test]
fn sigterm_closes_streams_still_open_after_the_shutdown_timeout() {
    // A stream that never sends Hello has no session to end after its
    // current batch; with --hello-timeout 10m only --shutdown-timeout ends
    // it, and then the reporter drains its spool and exits as usual.
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let r = reporter(
        port,
        admin,
        dir.path(),
        &["--hello-timeout", "10m", "--shutdown-timeout", "1s"],
        &[],
    );
    let mute = std::thread::spawn(move || hostpulse_testkit::mute_stream_status(port));
    wait_for(
        Duration::from_secs(10),
        "the mute stream to wait for its Hello",
        || {
            hostpulse_testkit::metric(admin, "hostpulse_reporter_streams_waiting_hello")
                == Some(1.0)
        },
    );
    r.signal("TERM");
    wait_for(
        Duration::from_secs(20),
        "the shutdown timeout to close the stream",
        || r.log_text().contains("still open after --shutdown-timeout"),
    );
    assert!(
        r.log_text().contains("draining the spool"),
        "{}",
        r.log_text()
    );
    assert!(r.wait_exit(Duration::from_secs(20)).success());
    let status = mute.join().expect("the mute stream's thread");
    assert_ne!(status, "Ok", "the stream was cut, not ended cleanly");
}
