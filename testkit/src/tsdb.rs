//! A real VictoriaMetrics on 127.0.0.1 ([`Tsdb`]).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::{http, url_encode};
use crate::process::{end, free_port, wait_for};

/// A real VictoriaMetrics (Debian package `victoria-metrics`) on 127.0.0.1,
/// taking InfluxDB line protocol on `/write` (HTTP) and on a TCP port: the
/// second line-protocol server the QuestDB store is tested with (reporters
/// writing to it need `--questdb-schema off`: it has no SQL endpoint).
/// Stopped on drop; `stop` and `resume` keep its ports and data.
pub struct Tsdb {
    /// Its HTTP port.
    pub port: u16,
    /// Its InfluxDB line protocol TCP port (`-influxListenAddr`).
    pub influx_port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Tsdb {
    /// Starts one on free ports with a fresh data directory.
    pub fn start() -> Tsdb {
        Tsdb::start_with(&[])
    }

    /// Like [`Tsdb::start`], with extra `victoria-metrics` flags
    /// (`-influx.maxLineSize=1000`). Samples are deduplicated per series and
    /// millisecond (`-dedup.minScrapeInterval=1ms`), as QuestDB's DEDUP keeps
    /// one row.
    pub fn start_with(extra: &[&str]) -> Tsdb {
        let mut all = vec!["-dedup.minScrapeInterval=1ms"];
        all.extend(extra);
        let mut t = Tsdb::reserve(tempfile::tempdir().expect("data dir"), &all);
        t.resume();
        t
    }

    /// Reserves ports and a data directory under `parent` (benchmarks put it
    /// on the disk they measure) with exactly the `extra` flags given (no
    /// deduplication); starts nothing: [`Tsdb::resume`] does.
    pub fn reserve_in(parent: &std::path::Path, extra: &[&str]) -> Tsdb {
        let dir = tempfile::Builder::new()
            .prefix("hostpulse-vm-")
            .tempdir_in(parent)
            .expect("VictoriaMetrics data directory");
        Tsdb::reserve(dir, extra)
    }

    fn reserve(dir: tempfile::TempDir, extra: &[&str]) -> Tsdb {
        Tsdb {
            port: free_port(),
            influx_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its flags.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("-httpListenAddr=127.0.0.1:{}", self.port),
            format!("-influxListenAddr=127.0.0.1:{}", self.influx_port),
            format!(
                "-storageDataPath={}",
                self.dir.path().join("data").display()
            ),
            "-retentionPeriod=100y".to_string(),
            "-search.latencyOffset=0s".to_string(),
            "-loggerLevel=ERROR".to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The command it runs, as a report shows it.
    pub fn command_line(&self) -> String {
        format!("victoria-metrics {}", self.args().join(" "))
    }

    /// (Re)starts it on its ports and data; waits until `/health` answers
    /// and the TCP port listens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.log_path()).expect("a log file");
        let child = Command::new("victoria-metrics")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("victoria-metrics is installed (tests/run.sh installs the Debian package)");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(30), "VictoriaMetrics to answer", || {
            http(port, "GET", "/health", "").is_some_and(|(code, _)| code == 200)
        });
        let influx = self.influx_port;
        wait_for(Duration::from_secs(10), "its line protocol port", || {
            std::net::TcpStream::connect(("127.0.0.1", influx)).is_ok()
        });
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("victoria-metrics.log")
    }

    /// What it logged (errors only).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
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
