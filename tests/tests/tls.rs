//! TLS, mutual TLS and bearer tokens as an operator sets them up: real
//! processes on 127.0.0.1, certificates made with `openssl` at test time,
//! inspected with grpcurl and the processes' logs.

use std::path::Path;
use std::time::Duration;

use hostpulse_testkit::{
    Daemon, Pki, free_port, grpcurl, http, run, sink_rows, wait_for, wait_listening,
};

use hostpulse_testkit::args as s;

/// A reporter writing JSON lines to `dir/rows.jsonl`, with `security` flags.
fn reporter(port: u16, dir: &Path, security: &[&str]) -> Daemon {
    let mut args = s(&["--listen", &format!("127.0.0.1:{port}"), "--jsonl"]);
    args.push(dir.join("rows.jsonl").display().to_string());
    args.push("--spool-dir".into());
    args.push(dir.join("spool").display().to_string());
    args.push("--sqlite".into());
    args.push("none".into());
    // Reloads are also tested through file changes: check often.
    args.extend(s(&["--config-check-interval", "200ms"]));
    args.extend(s(security));
    let d = Daemon::start("reporter", &args, dir);
    wait_listening(port);
    d
}

/// A reporter serving TLS with the PKI's `server` certificate, plus `extra` flags.
fn tls_reporter(port: u16, dir: &Path, pki: &Pki, extra: &[&str]) -> Daemon {
    let (cert, key) = (pki.pem("server"), pki.key("server"));
    let mut flags = vec!["--tls-cert", &cert, "--tls-key", &key];
    flags.extend_from_slice(extra);
    reporter(port, dir, &flags)
}

/// Writes `text` to `dir/name` and returns its path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A plaintext reporter whose `--token-file` holds `tokens`, plus `extra` flags.
fn token_reporter(port: u16, dir: &Path, tokens: &str, extra: &[&str]) -> Daemon {
    let file = write(dir, "tokens", tokens);
    let mut flags = vec!["--token-file", &file];
    flags.extend_from_slice(extra);
    reporter(port, dir, &flags)
}

/// A gatherer (node `node`, tagged `run=node`) streaming to `url`.
fn gatherer(url: &str, node: &str, dir: &Path, security: &[&str]) -> Daemon {
    let mut args = s(&[
        "--reporter",
        url,
        "--node-id",
        node,
        "--label",
        &format!("run={node}"),
        "--collectors",
        "load",
        "--interval",
        "100ms",
    ]);
    args.extend(s(security));
    Daemon::start("gatherer", &args, dir)
}

/// How many hostpulse_self rows of node `node` reached the sink.
fn rows_of(dir: &Path, node: &str) -> usize {
    sink_rows(&dir.join("rows.jsonl"))
        .table("hostpulse_self")
        .iter()
        .filter(|r| r["node"] == node)
        .count()
}

fn wait_log(daemon: &Daemon, what: &str, needle: &str) {
    wait_for(Duration::from_secs(20), what, || {
        daemon.log_text().contains(needle)
    });
}

#[test]
fn mutual_tls_streams_and_refuses_gatherers_without_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = free_port();
    let ca = pki.pem("ca1");
    let r = tls_reporter(port, dir.path(), &pki, &["--tls-client-ca", &ca]);
    let url = format!("https://127.0.0.1:{port}");
    let (client, client_key) = (pki.pem("client"), pki.key("client"));
    // Its node id is its certificate's CN (--node-binding auto).
    let _good = gatherer(
        &url,
        "client",
        dir.path(),
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &client,
            "--tls-key",
            &client_key,
        ],
    );
    wait_for(Duration::from_secs(20), "rows over mutual TLS", || {
        rows_of(dir.path(), "client") >= 3
    });

    let no_cert = gatherer(&url, "no-cert", dir.path(), &["--tls-ca", &ca]);
    let (rogue, rogue_key) = (pki.pem("rogue"), pki.key("rogue"));
    let rogue = gatherer(
        &url,
        "rogue",
        dir.path(),
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &rogue,
            "--tls-key",
            &rogue_key,
        ],
    );
    wait_log(
        &no_cert,
        "the gatherer without a certificate to be refused",
        "Unauthenticated: a client certificate is required",
    );
    wait_log(
        &rogue,
        "the gatherer with another CA's certificate to be refused",
        "Unauthenticated: the client certificate is not accepted by this reporter's --tls-client-ca",
    );
    let log = r.log_text();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused an unauthenticated call"))
        .collect();
    assert!(
        refusals.iter().any(
            |l| l.contains("peer=127.0.0.1:") && l.contains("a client certificate is required")
        ),
        "{log}"
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("peer=127.0.0.1:") && l.contains("UnknownIssuer")),
        "{log}"
    );
    // The good gatherer streams on beside the refused ones, which store nothing.
    let before = rows_of(dir.path(), "client");
    wait_for(
        Duration::from_secs(20),
        "more rows from the good gatherer",
        || rows_of(dir.path(), "client") >= before + 5,
    );
    assert_eq!(rows_of(dir.path(), "no-cert"), 0);
    assert_eq!(rows_of(dir.path(), "rogue"), 0);
    // Operators see the mTLS peer as for plaintext ones.
    let (ok, out, err) = grpcurl(&[
        "-cacert",
        &ca,
        "-cert",
        &client,
        "-key",
        &client_key,
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/ListNodes",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"nodeId\": \"client\"") && out.contains("\"peer\": \"127.0.0.1:"),
        "{out}"
    );
    // A refused gatherer keeps its batches and keeps retrying.
    assert!(no_cert.log_text().contains("buffered_batches="));
    assert!(
        r.stop().success(),
        "a TLS reporter stops cleanly on SIGTERM"
    );
}

#[test]
fn a_refused_gatherer_delivers_its_batches_once_its_certificate_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = free_port();
    let ca = pki.pem("ca1");
    let _r = tls_reporter(port, dir.path(), &pki, &["--tls-client-ca", &ca]);
    // The gatherer's own files, as a mounted Secret: first another CA's.
    let (cert, key) = (dir.path().join("node.crt"), dir.path().join("node.key"));
    std::fs::copy(pki.pem("rogue"), &cert).unwrap();
    std::fs::copy(pki.key("rogue"), &key).unwrap();
    let (cert_flag, key_flag) = (cert.display().to_string(), key.display().to_string());
    let g = gatherer(
        &format!("https://127.0.0.1:{port}"),
        "client",
        dir.path(),
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert_flag,
            "--tls-key",
            &key_flag,
            "--buffer-dir",
            &dir.path().join("buffer").display().to_string(),
        ],
    );
    wait_log(
        &g,
        "the first refusal",
        "Unauthenticated: the client certificate is not accepted",
    );
    std::fs::copy(pki.key("client"), &key).unwrap();
    std::fs::copy(pki.pem("client"), &cert).unwrap();
    // The next retry reads the new files; what was collected meanwhile arrives.
    wait_log(
        &g,
        "the stream with the new certificate",
        "streaming to reporter",
    );
    wait_for(Duration::from_secs(30), "the buffered cycles", || {
        let rows = sink_rows(&dir.path().join("rows.jsonl"));
        let cycles: Vec<u64> = rows
            .table("hostpulse_self")
            .iter()
            .filter(|r| r["node"] == "client")
            .filter_map(|r| r["fields"]["cycles_total"].as_u64())
            .collect();
        cycles.contains(&1) && cycles.len() >= 10
    });
}

#[test]
fn wrong_trust_and_wrong_schemes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = free_port();
    let r = tls_reporter(port, dir.path(), &pki, &[]);
    let ca2 = pki.pem("ca2");
    let wrong_ca = gatherer(
        &format!("https://127.0.0.1:{port}"),
        "wrong-ca",
        dir.path(),
        &["--tls-ca", &ca2],
    );
    wait_log(
        &wrong_ca,
        "the untrusted reporter certificate to be explained",
        &format!(
            "the reporter's certificate is not issued by a CA in this gatherer's --tls-ca {ca2}"
        ),
    );
    let plaintext = gatherer(
        &format!("http://127.0.0.1:{port}"),
        "plain",
        dir.path(),
        &[],
    );
    wait_log(
        &plaintext,
        "the plaintext gatherer to be told to use TLS",
        "Unauthenticated: this reporter accepts TLS only: use https://",
    );
    wait_log(
        &r,
        "the reporter to log the plaintext connection",
        "a plaintext connection to the TLS listener",
    );
    wait_log(
        &r,
        "the reporter to log the failed handshake",
        "TLS handshake failed",
    );
    assert!(
        r.log_text()
            .contains("the client refused this reporter's certificate (UnknownCA)"),
        "{}",
        r.log_text()
    );

    // The reverse: https:// to a plaintext reporter.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain_port = free_port();
    let _plain = reporter(plain_port, plain_dir.path(), &[]);
    let https = gatherer(
        &format!("https://127.0.0.1:{plain_port}"),
        "https",
        dir.path(),
        &["--tls-ca", &pki.pem("ca1")],
    );
    wait_log(
        &https,
        "https to a plaintext reporter to be explained",
        "is it serving plaintext? use http://127.0.0.1",
    );
    assert_eq!(rows_of(dir.path(), "wrong-ca"), 0);
}

#[test]
fn bearer_tokens_are_required_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "old-secret-1\n\nnew-secret-2\n").unwrap();
    let port = free_port();
    let r = tls_reporter(
        port,
        dir.path(),
        &pki,
        &["--token-file", tokens.to_str().unwrap()],
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca = pki.pem("ca1");
    let token_file = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path.display().to_string()
    };
    let old = token_file("old", "old-secret-1");
    let new = token_file("new", "new-secret-2");
    let wrong = token_file("wrong", "guess-3");
    let _old = gatherer(
        &url,
        "old",
        dir.path(),
        &["--tls-ca", &ca, "--token-file", &old],
    );
    let _new = gatherer(
        &url,
        "new",
        dir.path(),
        &["--tls-ca", &ca, "--token-file", &new],
    );
    let wrong = gatherer(
        &url,
        "wrong",
        dir.path(),
        &["--tls-ca", &ca, "--token-file", &wrong],
    );
    let missing = gatherer(&url, "missing", dir.path(), &["--tls-ca", &ca]);
    wait_for(Duration::from_secs(20), "rows with both tokens", || {
        rows_of(dir.path(), "old") >= 3 && rows_of(dir.path(), "new") >= 3
    });
    wait_log(
        &wrong,
        "the wrong token to be refused",
        "Unauthenticated: invalid bearer token",
    );
    wait_log(
        &missing,
        "the missing token to be refused",
        "Unauthenticated: missing bearer token",
    );
    assert_eq!(
        rows_of(dir.path(), "wrong") + rows_of(dir.path(), "missing"),
        0
    );
    let log = r.log_text();
    assert!(
        log.contains("refused an unauthenticated call peer=127.0.0.1:"),
        "{log}"
    );
    for secret in ["old-secret-1", "new-secret-2", "guess-3"] {
        assert!(
            !log.contains(secret),
            "a token in the reporter's log: {log}"
        );
    }

    // Rotation, end: the old token is removed and SIGHUP reloads the file.
    let addr = format!("127.0.0.1:{port}");
    let admin = |token: &str| {
        grpcurl(&[
            "-cacert",
            &ca,
            "-H",
            &format!("authorization: Bearer {token}"),
            &addr,
            "hostpulse.v1.Admin/ListNodes",
        ])
    };
    assert!(
        admin("old-secret-1").0,
        "the old token works before the rotation"
    );
    std::fs::write(&tokens, "new-secret-2\n").unwrap();
    r.signal("HUP");
    wait_log(
        &r,
        "the token file to be reloaded",
        "token file reloaded tokens=1",
    );
    let (ok, _, err) = admin("old-secret-1");
    assert!(!ok && err.contains("Unauthenticated"), "{err}");
    let (ok, out, err) = admin("new-secret-2");
    assert!(ok, "{err}");
    assert!(out.contains("\"nodeId\": \"new\""), "{out}");
}

#[test]
fn grpcurl_works_with_tls_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = free_port();
    let ca = pki.pem("ca1");
    let _r = tls_reporter(port, dir.path(), &pki, &["--tls-client-ca", &ca]);
    let addr = format!("127.0.0.1:{port}");
    let (client, client_key) = (pki.pem("client"), pki.key("client"));
    let mtls = ["-cacert", &ca, "-cert", &client, "-key", &client_key];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = mtls.to_vec();
        args.extend_from_slice(extra);
        grpcurl(&args)
    };
    let (ok, out, err) = with(&[&addr, "list"]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "hostpulse.v1.Admin"), "{out}");
    let (ok, out, err) = with(&[&addr, "hostpulse.v1.Admin/ListNodes"]);
    assert!(ok, "{err}");
    assert!(out.starts_with('{'), "{out}");
    let (ok, _, err) = with(&[&addr, "hostpulse.v1.Admin/Status"]);
    assert!(ok, "{err}");

    // Without a client certificate: Admin is refused, health and reflection answer.
    let (ok, _, err) = grpcurl(&["-cacert", &ca, &addr, "hostpulse.v1.Admin/ListNodes"]);
    assert!(!ok, "Admin without a client certificate");
    assert!(
        err.contains("Unauthenticated") && err.contains("a client certificate is required"),
        "{err}"
    );
    let (ok, out, err) = grpcurl(&["-cacert", &ca, &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && out.contains("SERVING"), "{out} {err}");
    let (ok, out, err) = grpcurl(&["-cacert", &ca, &addr, "describe", "hostpulse.v1.Hello"]);
    assert!(ok && out.contains("protocol_version"), "{out} {err}");

    // -plaintext against the TLS port: a clear answer, not a protocol error.
    let (ok, _, err) = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(!ok);
    assert!(
        err.contains("this reporter accepts TLS only: use https://"),
        "{err}"
    );
}

#[test]
fn certificates_reload_on_sighup_and_file_change_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // The reporter's files live apart, as a mounted Secret would.
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let (cert, key) = (live.join("tls.crt"), live.join("tls.key"));
    std::fs::copy(pki.pem("server"), &cert).unwrap();
    std::fs::copy(pki.key("server"), &key).unwrap();
    let port = free_port();
    let (cert_flag, key_flag) = (cert.display().to_string(), key.display().to_string());
    let r = reporter(
        port,
        dir.path(),
        &["--tls-cert", &cert_flag, "--tls-key", &key_flag],
    );
    let addr = format!("127.0.0.1:{port}");
    let health = |ca: &str| {
        grpcurl(&[
            "-cacert",
            &pki.pem(ca),
            &addr,
            "grpc.health.v1.Health/Check",
        ])
        .0
    };
    assert!(
        health("ca1") && !health("ca2"),
        "served by ca1's certificate"
    );

    // A new certificate from another CA, then SIGHUP.
    pki.leaf(
        "server2",
        "ca2",
        "serverAuth",
        Some("IP:127.0.0.1,DNS:localhost"),
    );
    std::fs::copy(pki.key("server2"), &key).unwrap();
    std::fs::copy(pki.pem("server2"), &cert).unwrap();
    r.signal("HUP");
    wait_log(
        &r,
        "the certificate to be reloaded",
        "TLS material reloaded",
    );
    assert!(
        health("ca2") && !health("ca1"),
        "new connections see the new certificate"
    );

    // A broken certificate: logged, and the previous one stays in force.
    // (The file check may have seen the key alone change above and logged a
    // refusal then: count the refusals from here.)
    let refusals = || r.log_text().matches("TLS material NOT reloaded").count();
    let before = refusals();
    std::fs::write(&cert, "not a certificate\n").unwrap();
    r.signal("HUP");
    wait_for(
        Duration::from_secs(20),
        "the bad certificate to be refused",
        || refusals() > before,
    );
    assert!(health("ca2"), "the previous certificate still serves");
    // A v1 certificate with its key: refused with the reason, the old one stays.
    pki.leaf_v1("server-v1", "ca1");
    std::fs::copy(pki.key("server-v1"), &key).unwrap();
    std::fs::copy(pki.pem("server-v1"), &cert).unwrap();
    r.signal("HUP");
    wait_log(
        &r,
        "the v1 certificate to be refused with its reason",
        "certificate CN=server-v1 is an X.509 v1 certificate",
    );
    assert!(health("ca2"), "the previous certificate still serves");

    // No signal at all: a changed file is noticed by the periodic check
    // (cert-manager renewing a Secret).
    let reloads = || r.log_text().matches("TLS material reloaded").count();
    let before = reloads();
    std::fs::copy(pki.key("server"), &key).unwrap();
    std::fs::copy(pki.pem("server"), &cert).unwrap();
    wait_for(
        Duration::from_secs(20),
        "the changed files to be reloaded",
        || reloads() > before && health("ca1"),
    );
    assert!(!health("ca2"));
}

#[test]
fn inconsistent_flags_stop_both_binaries_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let out = run("reporter", &s(&["--tls-client-ca", &pki.pem("ca1")]), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--tls-cert"), "{}", out.stderr);
    let out = run(
        "reporter",
        &s(&[
            "--listen",
            "127.0.0.1:0",
            "--sqlite",
            "none",
            "--jsonl",
            "stdout",
            "--spool-dir",
            &dir.path().join("spool").display().to_string(),
            "--tls-cert",
            &pki.pem("server"),
            "--tls-key",
            &pki.key("client"),
        ]),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains(&format!(
            "this reporter's --tls-key {}: the key does not belong to certificate CN=server",
            pki.key("client")
        )),
        "{}",
        out.stderr
    );
    let out = run(
        "gatherer",
        &s(&[
            "--reporter",
            "http://127.0.0.1:1",
            "--tls-ca",
            &pki.pem("ca1"),
        ]),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains(
            "--tls-ca is given but --reporter http://127.0.0.1:1/ is plaintext: use https://"
        ),
        "{}",
        out.stderr
    );
    let out = run(
        "gatherer",
        &s(&[
            "--reporter",
            "https://127.0.0.1:1",
            "--token-file",
            "/nonexistent/token",
        ]),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr
            .contains("cannot read --token-file /nonexistent/token"),
        "{}",
        out.stderr
    );
}

/// Validity of an expired certificate, for [`Pki::leaf_dated`].
const EXPIRED: (&str, &str) = ("20200101000000Z", "20200102000000Z");
/// Validity of a certificate not valid yet.
const FUTURE: (&str, &str) = ("20990101000000Z", "20990102000000Z");

/// The reporter's flags for a start that must fail at its TLS files.
fn reporter_start(dir: &Path, cert: &str, key: &str, extra: &[&str]) -> hostpulse_testkit::Output {
    let mut args = s(&[
        "--listen",
        "127.0.0.1:0",
        "--sqlite",
        "none",
        "--jsonl",
        "stdout",
        "--spool-dir",
        &dir.join("spool").display().to_string(),
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    args.extend(s(extra));
    run("reporter", &args, &[])
}

/// The gatherer's flags for a start that must fail at its TLS files.
fn gatherer_start(pki: &Pki, cert: &str, key: &str, ca: &str) -> hostpulse_testkit::Output {
    run(
        "gatherer",
        &s(&[
            "--reporter",
            "https://127.0.0.1:1",
            "--tls-ca",
            &pki.pem(ca),
            "--tls-cert",
            &pki.pem(cert),
            "--tls-key",
            &pki.key(key),
        ]),
        &[],
    )
}

#[test]
fn certificate_problems_stop_both_daemons_at_start_naming_the_side_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.leaf_v1("v1", "ca1");
    pki.leaf_dated("old-client", "ca1", "clientAuth", None, EXPIRED);
    pki.leaf_dated(
        "old-server",
        "ca1",
        "serverAuth",
        Some("IP:127.0.0.1"),
        EXPIRED,
    );
    pki.leaf_dated("future", "ca1", "serverAuth", Some("IP:127.0.0.1"), FUTURE);
    let fails = |out: hostpulse_testkit::Output, needles: &[&str]| {
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{needle:?} in:\n{}",
                out.stderr
            );
        }
    };

    // The gatherer: its own files, before it contacts anyone.
    fails(
        gatherer_start(&pki, "v1", "v1", "ca1"),
        &[
            &format!(
                "this gatherer's --tls-cert {}: certificate CN=v1 is an X.509 v1 certificate; TLS here needs v3",
                pki.pem("v1")
            ),
            "-extfile EXT",
            "extendedKeyUsage=clientAuth",
        ],
    );
    fails(
        gatherer_start(&pki, "old-client", "old-client", "ca1"),
        &[
            &format!(
                "this gatherer's --tls-cert {}: certificate CN=old-client expired on 2020-01-02T00:00:00Z (now 20",
                pki.pem("old-client")
            ),
            "issue a new one",
        ],
    );
    fails(
        gatherer_start(&pki, "client", "rogue", "ca1"),
        &[&format!(
            "this gatherer's --tls-key {}: the key does not belong to certificate CN=client in --tls-cert {}",
            pki.key("rogue"),
            pki.pem("client")
        )],
    );
    fails(
        gatherer_start(&pki, "server", "server", "ca1"),
        &["certificate CN=server is not for clientAuth: its extended key usage is serverAuth"],
    );
    fails(
        gatherer_start(&pki, "client", "client", "server"),
        &[&format!(
            "this gatherer's --tls-ca {}: certificate CN=server is not a CA certificate",
            pki.pem("server")
        )],
    );

    // The reporter: its certificate and its client CA.
    let spool = dir.path();
    fails(
        reporter_start(spool, &pki.pem("v1"), &pki.key("v1"), &[]),
        &[
            &format!(
                "this reporter's --tls-cert {}: certificate CN=v1 is an X.509 v1 certificate",
                pki.pem("v1")
            ),
            "extendedKeyUsage=serverAuth",
        ],
    );
    fails(
        reporter_start(spool, &pki.pem("old-server"), &pki.key("old-server"), &[]),
        &["certificate CN=old-server expired on 2020-01-02T00:00:00Z"],
    );
    fails(
        reporter_start(spool, &pki.pem("future"), &pki.key("future"), &[]),
        &[
            "certificate CN=future is not valid before 2099-01-01T00:00:00Z (now 20",
            "check this machine's clock",
        ],
    );
    fails(
        reporter_start(spool, &pki.pem("client"), &pki.key("client"), &[]),
        &["certificate CN=client is not for serverAuth"],
    );
    pki.leaf("no-san", "ca1", "serverAuth", None);
    fails(
        reporter_start(spool, &pki.pem("no-san"), &pki.key("no-san"), &[]),
        &[
            "certificate CN=no-san has no subjectAltName",
            "subjectAltName=DNS:",
        ],
    );
    let leaf_as_ca = pki.pem("client");
    fails(
        reporter_start(
            spool,
            &pki.pem("server"),
            &pki.key("server"),
            &["--tls-client-ca", &leaf_as_ca],
        ),
        &[&format!(
            "this reporter's --tls-client-ca {leaf_as_ca}: certificate CN=client is not a CA certificate"
        )],
    );
}

#[test]
fn an_expired_reporter_certificate_is_explained_on_the_gatherer() {
    // The reporter refuses to start with an expired certificate, so one that
    // expired while a server ran is played by `openssl s_server`.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.leaf_dated(
        "old-server",
        "ca1",
        "serverAuth",
        Some("IP:127.0.0.1"),
        EXPIRED,
    );
    // An https server with the expired certificate: openssl s_server, as a
    // stand-in for a reporter started before its certificate expired.
    let port = free_port();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &pki.pem("old-server"),
            "-key",
            &pki.key("old-server"),
            "-alpn",
            "h2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_listening(port);
    let g = gatherer(
        &format!("https://127.0.0.1:{port}"),
        "n",
        dir.path(),
        &["--tls-ca", &pki.pem("ca1")],
    );
    wait_log(
        &g,
        "the expired reporter certificate to be explained",
        "the reporter's certificate expired on 2020-01-02T00:00:00Z (now 20",
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_comment_line_of_the_token_file_is_not_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _r = token_reporter(
        port,
        dir.path(),
        "# hostpulse tokens, one per line\n\n   # rotated 2026-12\nreal-token\n",
        &[],
    );
    let addr = format!("127.0.0.1:{port}");
    let admin = |header: &str| {
        grpcurl(&[
            "-plaintext",
            "-H",
            header,
            &addr,
            "hostpulse.v1.Admin/Status",
        ])
    };
    for comment in [
        "authorization: Bearer # hostpulse tokens, one per line",
        "authorization: Bearer # rotated 2026-12",
        "authorization: Bearer #",
    ] {
        let (ok, _, err) = admin(comment);
        assert!(!ok, "{comment} was accepted");
        assert!(
            err.contains("Unauthenticated") && err.contains("invalid bearer token"),
            "{err}"
        );
    }
    let (ok, _, err) = admin("authorization: Bearer real-token");
    assert!(ok, "{err}");
    // (A gatherer cannot present one: it skips comments in its own file.)
}

/// `/metrics` of a reporter's admin port.
fn metrics(admin_port: u16) -> String {
    http(admin_port, "GET", "/metrics", "")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

#[test]
fn a_certificate_binds_its_node_id_and_a_false_claim_does_not_end_the_real_stream() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.leaf("web-1", "ca1", "clientAuth", None);
    pki.leaf("fleet", "ca1", "clientAuth", Some("DNS:*.prod.example"));
    let port = free_port();
    let admin_port = free_port();
    let ca = pki.pem("ca1");
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let r = tls_reporter(
        port,
        dir.path(),
        &pki,
        &["--tls-client-ca", &ca, "--admin-listen", &admin_addr],
    );
    let url = format!("https://127.0.0.1:{port}");
    let with_cert = |node: &str, cert: &str| {
        let (c, k) = (pki.pem(cert), pki.key(cert));
        gatherer(
            &url,
            node,
            dir.path(),
            &["--tls-ca", &ca, "--tls-cert", &c, "--tls-key", &k],
        )
    };
    let real = with_cert("web-1", "web-1");
    let wildcard = with_cert("db-3.prod.example", "fleet");
    wait_for(Duration::from_secs(20), "rows of both nodes", || {
        rows_of(dir.path(), "web-1") >= 3 && rows_of(dir.path(), "db-3.prod.example") >= 3
    });
    // Another node's valid certificate claiming web-1.
    let impostor = with_cert("web-1", "client");
    wait_log(
        &impostor,
        "the false claim to be refused",
        "PermissionDenied",
    );
    let text = impostor.log_text();
    assert!(
        text.contains("web-1")
            && text.contains(
                "is not allowed by this gatherer's client certificate, which names client"
            ),
        "{text}"
    );
    // The gatherer said so itself at start.
    assert!(
        text.contains("WARN") && text.contains("is not a name of this gatherer's --tls-cert"),
        "{text}"
    );
    assert!(!real.log_text().contains("is not a name of"));
    let wrong_label = with_cert("a.b.prod.example", "fleet");
    wait_log(
        &wrong_label,
        "the two-label claim to be refused",
        "PermissionDenied",
    );
    // The real node's stream was never replaced: it keeps streaming on one stream.
    let before = rows_of(dir.path(), "web-1");
    wait_for(
        Duration::from_secs(20),
        "more rows from the real web-1",
        || rows_of(dir.path(), "web-1") >= before + 5,
    );
    assert!(
        !r.log_text()
            .contains("a newer stream from the same node replaced"),
        "{}",
        r.log_text()
    );
    assert_eq!(real.log_text().matches("streaming to reporter").count(), 1);
    assert!(wildcard.log_text().contains("streaming to reporter"));
    let log = r.log_text();
    assert!(
        log.lines().any(|l| l.contains("refused a Hello")
            && l.contains("peer=127.0.0.1:")
            && l.contains("which names client")),
        "{log}"
    );
    let m = metrics(admin_port);
    let refused: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("hostpulse_reporter_node_id_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 2.0, "{m}");
}

#[test]
fn a_token_line_binds_node_patterns_without_leaking_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = token_reporter(
        port,
        dir.path(),
        "# web nodes only\nweb-secret-1 node=web-*\nany-secret-2\n",
        &[],
    );
    let url = format!("http://127.0.0.1:{port}");
    let web = write(dir.path(), "web", "web-secret-1\n");
    let any = write(dir.path(), "any", "any-secret-2\n");
    let _web = gatherer(&url, "web-7", dir.path(), &["--token-file", &web]);
    let _any = gatherer(&url, "db-1", dir.path(), &["--token-file", &any]);
    wait_for(Duration::from_secs(20), "rows of both", || {
        rows_of(dir.path(), "web-7") >= 3 && rows_of(dir.path(), "db-1") >= 3
    });
    let claim = gatherer(&url, "db-1", dir.path(), &["--token-file", &web]);
    wait_log(
        &claim,
        "the web token claiming db-1 to be refused",
        "which the reporter's --token-file binds to node=web-*",
    );
    assert!(claim.log_text().contains("PermissionDenied"));
    let before = rows_of(dir.path(), "db-1");
    wait_for(
        Duration::from_secs(20),
        "more rows from the real db-1",
        || rows_of(dir.path(), "db-1") >= before + 5,
    );
    for log in [r.log_text(), claim.log_text()] {
        for secret in ["web-secret-1", "any-secret-2"] {
            assert!(!log.contains(secret), "a token in a log: {log}");
        }
    }
}

#[test]
fn node_binding_require_refuses_unbound_tokens_and_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "reporter",
        &s(&[
            "--listen",
            "127.0.0.1:0",
            "--sqlite",
            "none",
            "--jsonl",
            "stdout",
            "--spool-dir",
            &dir.path().join("spool").display().to_string(),
            "--node-binding",
            "require",
        ]),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr
            .contains("--node-binding require needs credentials to bind"),
        "{}",
        out.stderr
    );
    let port = free_port();
    let _r = token_reporter(
        port,
        dir.path(),
        "bound node=n-*\nunbound\n",
        &["--node-binding", "require"],
    );
    let url = format!("http://127.0.0.1:{port}");
    let bound = write(dir.path(), "b", "bound\n");
    let unbound = write(dir.path(), "u", "unbound\n");
    let _ok = gatherer(&url, "n-1", dir.path(), &["--token-file", &bound]);
    let refused = gatherer(&url, "n-2", dir.path(), &["--token-file", &unbound]);
    wait_log(
        &refused,
        "the unbound token to be refused",
        "the reporter runs with --node-binding require",
    );
    wait_for(Duration::from_secs(20), "rows of the bound node", || {
        rows_of(dir.path(), "n-1") >= 3
    });
    assert_eq!(rows_of(dir.path(), "n-2"), 0);
}

#[test]
fn a_reporter_certificate_for_another_name_is_explained_on_the_gatherer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.leaf(
        "elsewhere",
        "ca1",
        "serverAuth",
        Some("DNS:reporter.elsewhere"),
    );
    let port = free_port();
    let (cert, key) = (pki.pem("elsewhere"), pki.key("elsewhere"));
    let _r = reporter(port, dir.path(), &["--tls-cert", &cert, "--tls-key", &key]);
    let g = gatherer(
        &format!("https://127.0.0.1:{port}"),
        "n",
        dir.path(),
        &["--tls-ca", &pki.pem("ca1")],
    );
    wait_log(
        &g,
        "the name mismatch to be explained",
        "the reporter's certificate is not valid for the name \"127.0.0.1\" in --reporter: does not name \"127.0.0.1\" (it names reporter.elsewhere)",
    );
}
