//! A real VictoriaMetrics on 127.0.0.1 ([`Tsdb`]).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::{http, url_encode};
use crate::process::{end, free_port, wait_for};

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
