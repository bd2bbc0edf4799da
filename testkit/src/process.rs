//! Real binaries as child processes: [`binary`] finds a workspace binary
//! next to the running test, [`Process`] (stdout piped) and [`Daemon`]
//! (logs to a file) kill and reap it when dropped, so a failing test never
//! leaves one behind; [`free_port`], [`wait_for`] and [`wait_listening`] are
//! how a test waits for one to come up (generous deadlines, never timing
//! assertions).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::rows::Rows;

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

/// Command-line arguments from string literals.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|x| x.to_string()).collect()
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
        let ticks = crate::procstat::cpu_ticks(crate::procstat::Process::Pid(self.pid()))
            .expect("the daemon's /proc/<pid>/stat");
        ticks as f64 / crate::procstat::clock_ticks_per_second() as f64
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
