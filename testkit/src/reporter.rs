//! The real reporter library served inside the test process (feature
//! `reporter`), as mini-redis's `tests/server.rs` starts its server: the
//! same Ingest and Admin services, limits and auth layers as the binary,
//! on 127.0.0.1:0, with a temporary spool drained into a JSON-lines store.
//!
//! Flags are the binary's own (`reporter::cli::Args`), so a test states
//! its configuration the way an operator would (`--max-series-per-stream
//! 10`); `--listen`, `--spool-dir` and `--jsonl` are set here. TLS flags
//! work too (give `--tls-cert`/`--tls-key` paths from [`crate::Pki`]).
//!
//! What is not started: the admin HTTP port, signal handling and
//! configuration reloads, and the `hostpulse_self` rows: the binary's
//! `main` wires those, and the end-to-end tests cover them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use reporter::admission::Admission;
use reporter::cli::Args;
use reporter::config::ConfigStore;
use reporter::registry::Registry;
use reporter::security::Security;
use reporter::server::{self, ServerOptions};
use reporter::spool::{Spool, SpoolOptions};
use reporter::state::{Shared, StreamLimits};
use reporter::store::Store;
use reporter::store::jsonl::JsonlStore;
use reporter::tail::Tail;
use tokio::sync::watch;

/// A reporter serving inside this process; stopped when dropped (its
/// streams are ended, the spool drained and closed, the directory removed).
pub struct InProcessReporter {
    /// Where it serves gRPC (127.0.0.1, a port the OS chose).
    pub addr: SocketAddr,
    /// The JSON-lines store the spool drains into ([`crate::sink_rows`]
    /// reads it).
    pub jsonl: PathBuf,
    /// What every stream shares: the registry, metrics, spool.
    pub shared: Arc<Shared>,
    spool: Arc<Spool>,
    shutdown: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl InProcessReporter {
    /// `http://127.0.0.1:PORT`, for a tonic endpoint or a gatherer's
    /// `--reporter`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for InProcessReporter {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        self.spool.shutdown(Duration::from_secs(5));
    }
}

/// Starts the reporter with the binary's `flags` on 127.0.0.1:0 (or the
/// `--listen` address among them: a reporter restarted on the same port);
/// must be called inside a Tokio runtime (`#[tokio::test]`). Panics with the
/// reporter's own message when the flags are refused.
pub async fn start_reporter(flags: &[&str]) -> (SocketAddr, InProcessReporter) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spool_dir = dir.path().join("spool");
    let jsonl = dir.path().join("rows.jsonl");
    let mut argv = vec![
        "reporter".to_string(),
        format!("--spool-dir={}", spool_dir.display()),
        format!("--jsonl={}", jsonl.display()),
    ];
    if !flags.iter().any(|f| f.starts_with("--listen")) {
        argv.push("--listen=127.0.0.1:0".to_string());
    }
    argv.extend(flags.iter().map(|f| f.to_string()));
    let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("reporter flags: {e}"));

    let security = Arc::new(Security::from_args(&args).unwrap_or_else(|e| panic!("{e}")));
    let config = ConfigStore::open(None).expect("the default configuration");
    let store = JsonlStore::open(&jsonl.display().to_string()).expect("the JSON-lines store");
    let stores: Vec<Box<dyn Store>> = vec![Box::new(store)];
    let spool = Arc::new(
        Spool::open(
            SpoolOptions {
                dir: spool_dir,
                max_bytes: args.spool_max_bytes,
            },
            stores,
        )
        .unwrap_or_else(|e| panic!("opening the spool: {e}")),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("its address");

    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        intake: Arc::clone(&spool) as Arc<dyn reporter::intake::Intake>,
        registry: Registry::default(),
        tail: Tail::default(),
        config: config.subscribe(),
        shutdown: shutdown_rx,
        reporter_id: "in-process".to_string(),
        limits: StreamLimits {
            hello_timeout: args.hello_timeout,
            max_definitions: args.max_series_per_stream,
            memory: reporter::budget::MemoryBudget::new(args.memory_budget),
            max_age: args.max_connection_age,
        },
        spool: Some(Arc::clone(&spool)),
        metrics: reporter::metrics::Metrics::default(),
        auth: Arc::clone(&security.stats),
        admission: Admission::new(args.admission_options()),
    });
    let options = ServerOptions::from_args(&args);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let full = spool.full();
    let served = Arc::clone(&shared);
    let task = tokio::spawn(async move {
        // The config store must outlive the server: it owns the sender the
        // streams' configuration receivers watch.
        let _config = config;
        let stop = async move {
            let _ = stopped.await;
        };
        if let Err(e) = server::serve(served, options, listener, Some(full), &security, stop).await
        {
            panic!("the in-process reporter failed: {e}");
        }
    });
    let reporter = InProcessReporter {
        addr,
        jsonl,
        shared,
        spool,
        shutdown,
        stop: Some(stop),
        task,
        _dir: dir,
    };
    (addr, reporter)
}
