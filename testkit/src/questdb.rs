//! A real QuestDB for the tests: 9.3.5, one jar, started with Java 17.
//!
//! # Where the QuestDB comes from
//!
//! - `HOSTPULSE_QUESTDB_JAR`: the jar to start (`questdb-9.3.5.jar`; the
//!   `server.conf` beside it is the template, its ports rewritten); else
//!   `<repository>/../shared/questdb/questdb-9.3.5.jar`, where CI keeps it
//!   beside the fresh clone. Each test gets its own server: a fresh temporary
//!   root, four free ports on 127.0.0.1, stopped (SIGTERM) when dropped.
//! - `HOSTPULSE_QUESTDB_ADDR=host:port`: an already running QuestDB (its HTTP
//!   port). Tests that can share a server ([`Need::Shared`]: they use node
//!   ids of their own and the schema's tables) use it; tests that stop,
//!   restart or damage their server ([`Need::Own`]) still need the jar.
//!
//! A QuestDB the test started is restarted on new ports (a listening port
//! closed with connections in TIME_WAIT cannot be bound again at once, and
//! QuestDB does not set SO_REUSEADDR), so the reporter reaches it through a
//! [`Forwarder`] on a port that stays: [`QuestDb::conf`]. While QuestDB is
//! stopped, the forwarder closes every connection it accepts.
//!
//! When neither is there, a QuestDB test fails with these instructions,
//! unless `HOSTPULSE_QUESTDB_SKIP_FILE` names a file: then it appends its name
//! and why it did not run, and returns. `tests/run.sh` sets that variable only
//! when it found no QuestDB, and prints the file loudly at the end: a run
//! never passes silently without QuestDB.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, http, url_encode, wait_for};

/// The jar's file name under `../shared/questdb`.
const JAR: &str = "questdb-9.3.5.jar";

/// What a test needs of its QuestDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A server it may share (`HOSTPULSE_QUESTDB_ADDR` will do).
    Shared,
    /// A server of its own: the test stops, restarts or alters it.
    Own,
}

/// A QuestDB server: started from the jar (stopped on drop) or already
/// running at `HOSTPULSE_QUESTDB_ADDR`.
pub struct QuestDb {
    /// Its HTTP port (`/exec`, ILP `/write`, `/ping`).
    pub http_port: u16,
    /// `None` for an already running server.
    own: Option<Own>,
}

struct Own {
    jar: PathBuf,
    root: tempfile::TempDir,
    child: Option<Child>,
    forwarder: Forwarder,
}

/// A TCP port on 127.0.0.1 whose connections are relayed to another one
/// (QuestDB's HTTP port of the moment); stops on drop.
pub struct Forwarder {
    /// The port that stays.
    pub port: u16,
    target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Relays to `target` from a new free port.
    pub fn start(target: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a forwarder port");
        let port = listener.local_addr().expect("its address").port();
        let target = Arc::new(AtomicU16::new(target));
        let stop = Arc::new(AtomicBool::new(false));
        let (to, halt) = (Arc::clone(&target), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", to.load(Ordering::Relaxed)))
                else {
                    // QuestDB is down: the client sees its connection closed.
                    continue;
                };
                for (mut from, mut into) in [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Write);
                        let _ = from.shutdown(Shutdown::Read);
                    });
                }
            }
        });
        Forwarder { port, target, stop }
    }

    /// Relays new connections to `target` from now on.
    pub fn retarget(&self, target: u16) {
        self.target.store(target, Ordering::Relaxed);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The jar to start: `HOSTPULSE_QUESTDB_JAR`, else `../shared/questdb/` beside
/// the repository. `None` when it is not there.
pub fn jar() -> Option<PathBuf> {
    let path = match std::env::var_os("HOSTPULSE_QUESTDB_JAR") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/questdb")
            .join(JAR),
    };
    path.is_file().then_some(path)
}

/// The port of `HOSTPULSE_QUESTDB_ADDR` (`127.0.0.1:PORT`: tests talk to
/// loopback only).
fn external() -> Option<u16> {
    let addr = std::env::var("HOSTPULSE_QUESTDB_ADDR").ok()?;
    let port = addr
        .strip_prefix("127.0.0.1:")
        .or_else(|| addr.strip_prefix("localhost:"))
        .and_then(|p| p.parse().ok());
    assert!(
        port.is_some(),
        "HOSTPULSE_QUESTDB_ADDR={addr:?}: give 127.0.0.1:PORT (QuestDB's HTTP port; tests talk to loopback only)"
    );
    port
}

const HOW: &str = "point the tests at a QuestDB 9.3.5: HOSTPULSE_QUESTDB_JAR=/path/to/questdb-9.3.5.jar \
     (needs java 17), or put it at ../shared/questdb/ beside the repository, or \
     HOSTPULSE_QUESTDB_ADDR=127.0.0.1:9000 for a running one (tests that restart QuestDB still need the jar)";

impl QuestDb {
    /// The QuestDB for test `test`, or `None` when it must not run (recorded
    /// in `HOSTPULSE_QUESTDB_SKIP_FILE`); panics with instructions when no
    /// QuestDB can be found and no skip file is set.
    pub fn for_test(test: &str, need: Need) -> Option<QuestDb> {
        if need == Need::Shared
            && let Some(port) = external()
        {
            let mut q = QuestDb {
                http_port: port,
                own: None,
            };
            q.wait_ready(Duration::from_secs(30));
            return Some(q);
        }
        if let Some(jar) = jar() {
            return Some(QuestDb::start(&jar));
        }
        let why = match (need, external()) {
            (Need::Own, Some(_)) => {
                "it stops or alters its QuestDB, so HOSTPULSE_QUESTDB_ADDR is not enough: it needs the jar"
            }
            _ => "no QuestDB found",
        };
        match std::env::var_os("HOSTPULSE_QUESTDB_SKIP_FILE") {
            Some(file) => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&file)
                    .expect("the skip file");
                writeln!(f, "{test}: {why}").expect("write the skip file");
                None
            }
            None => panic!("{test}: {why}; {HOW}"),
        }
    }

    /// Starts the jar on free ports with a fresh root.
    pub fn start(jar: &Path) -> QuestDb {
        let http_port = free_port();
        let mut q = QuestDb {
            http_port,
            own: Some(Own {
                jar: jar.to_path_buf(),
                root: tempfile::tempdir().expect("a QuestDB root"),
                child: None,
                forwarder: Forwarder::start(http_port),
            }),
        };
        q.resume();
        q
    }

    /// `server.conf` from the one beside the jar, every port a free one.
    fn write_conf(&self) {
        let own = self.own.as_ref().expect("own server");
        let template = own
            .jar
            .parent()
            .map(|d| d.join("server.conf"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let mut conf: Vec<String> = template
            .lines()
            .filter(|l| {
                ![
                    "http.net.bind.to",
                    "http.min.net.bind.to",
                    "pg.net.bind.to",
                    "line.tcp.net.bind.to",
                    "line.udp.bind.to",
                ]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
            })
            .map(str::to_string)
            .collect();
        conf.push(format!("http.net.bind.to=127.0.0.1:{}", self.http_port));
        for key in [
            "http.min.net.bind.to",
            "pg.net.bind.to",
            "line.tcp.net.bind.to",
            "line.udp.bind.to",
        ] {
            conf.push(format!("{key}=127.0.0.1:{}", free_port()));
        }
        for fixed in ["line.udp.enabled=false", "telemetry.enabled=false"] {
            if !conf.iter().any(|l| l.trim() == fixed) {
                conf.push(fixed.into());
            }
        }
        let dir = own.root.path().join("conf");
        std::fs::create_dir_all(&dir).expect("conf dir");
        std::fs::write(dir.join("server.conf"), conf.join("\n") + "\n").expect("server.conf");
    }

    /// (Re)starts the server on its root, on new ports behind the same
    /// forwarder; returns once `/exec` answers `select 1`.
    pub fn resume(&mut self) {
        assert!(
            self.own
                .as_ref()
                .expect("a QuestDB started by the test")
                .child
                .is_none(),
            "already running"
        );
        self.http_port = free_port();
        self.write_conf();
        let own = self.own.as_mut().expect("a QuestDB started by the test");
        own.forwarder.retarget(self.http_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(own.root.path().join("java.log"))
            .expect("log file");
        let child = Command::new("java")
            .args(["-Xms128m", "-Xmx1g", "-XX:+UseParallelGC", "-p"])
            .arg(&own.jar)
            .args(["-m", "io.questdb/io.questdb.ServerMain", "-d"])
            .arg(own.root.path())
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("java is installed (tests/run.sh installs openjdk-17-jre-headless)");
        own.child = Some(child);
        self.wait_ready(Duration::from_secs(90));
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.sql("select 1").is_ok() {
                return;
            }
            if let Some(child) = self.own.as_mut().and_then(|o| o.child.as_mut())
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("QuestDB exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "QuestDB at 127.0.0.1:{} did not answer `select 1` within {limit:?}:\n{}",
                self.http_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the server logged (own servers).
    pub fn log(&self) -> String {
        self.own
            .as_ref()
            .and_then(|o| std::fs::read_to_string(o.root.path().join("java.log")).ok())
            .unwrap_or_default()
    }

    /// Whether the test started this server (and may stop it).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// SIGTERM (a clean shutdown) and wait.
    pub fn stop(&mut self) {
        self.end("TERM");
    }

    /// SIGKILL: QuestDB dies mid-write.
    pub fn kill9(&mut self) {
        self.end("KILL");
    }

    fn end(&mut self, signal: &str) {
        if let Some(mut child) = self.own.as_mut().and_then(|o| o.child.take()) {
            crate::end(&mut child, signal, Duration::from_secs(30));
        }
    }

    /// The questdb-rs configuration string for the reporter (through the
    /// forwarder for a server the test started: it survives restarts).
    pub fn conf(&self) -> String {
        let port = self
            .own
            .as_ref()
            .map_or(self.http_port, |o| o.forwarder.port);
        format!("http::addr=127.0.0.1:{port};")
    }

    /// Runs `query` through `/exec`: the JSON answer, or QuestDB's error.
    pub fn sql(&self, query: &str) -> Result<Value, String> {
        let path = format!("/exec?query={}", url_encode(query));
        let (code, body) = http(self.http_port, "GET", &path, "")
            .ok_or_else(|| format!("QuestDB at port {} is not answering", self.http_port))?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}: {body}"))?;
        if code != 200 || v.get("error").is_some() {
            return Err(format!("HTTP {code}: {body}"));
        }
        Ok(v)
    }

    /// The rows of `query` (panics with QuestDB's error).
    pub fn rows(&self, query: &str) -> Vec<Vec<Value>> {
        let v = self.sql(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        v["dataset"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Runs a statement (DDL), panicking with QuestDB's error.
    pub fn exec(&self, statement: &str) {
        self.sql(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Waits until `query`'s first value, as an integer, satisfies `check`.
    pub fn wait_value(&self, limit: Duration, query: &str, check: impl Fn(i64) -> bool) -> i64 {
        let mut last = None;
        wait_for(limit, query, || {
            last = self
                .sql(query)
                .ok()
                .and_then(|v| v["dataset"][0][0].as_i64());
            last.is_some_and(&check)
        });
        last.unwrap_or_default()
    }
}

impl Drop for QuestDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node id no other test (or earlier run on a shared QuestDB) uses:
/// `name`, this process's id and the clock's nanoseconds.
pub fn unique_node(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}
