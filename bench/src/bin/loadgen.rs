//! `loadgen`: drives a real reporter with simulated gatherer streams and
//! measures what it sustains.
//!
//! ```text
//! cargo build --release -p reporter -p hostpulse-bench
//! cargo run --release -p hostpulse-bench --bin loadgen -- --streams 1000 --interval 1s --duration 20s
//! cargo run --release -p hostpulse-bench --bin loadgen -- --streams 100 --max-rate --duration 20s
//! # the same streams over mutual TLS with a bearer token, trace export on, admin port open
//! loadgen --mtls --token --reporter-env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \
//!     --reporter-arg --admin-listen=127.0.0.1:9100
//! ```
//!
//! # What it measures
//!
//! - **Throughput**: batches and samples acknowledged per second during the
//!   measured window.
//! - **Acknowledgement latency**: for every batch sent during the window,
//!   the time from handing it to the stream (after encoding, before HTTP/2
//!   and, with `--gzip`, tonic's compression) to receiving an `Ack` covering it, as a gatherer would
//!   see it: p50, p90, p99, max (nearest rank over all batches).
//! - **Reporter cost**: its CPU time during the window (`utime + stime` of
//!   `/proc/<pid>/stat`, every thread, clock ticks from `getconf CLK_TCK`)
//!   as cores used, and samples per second per reporter core; its RSS when
//!   idle, once every stream is open (before any batch), at the end of the
//!   window, and its peak (`VmHWM`), plus the growth per stream.
//! - **Opening**: the time from the first connection attempt until every
//!   connection is established (TCP, plus the TLS handshake with `--tls`),
//!   and until every stream has its `Welcome`; and the reporter's CPU time
//!   over that (clock ticks: 10 ms resolution). With the default 100
//!   streams per connection there are few handshakes; `--streams-per-connection 1`
//!   gives each simulated gatherer its own connection, as real gatherers have.
//! - **Context**: the load generator's own CPU over the same window, and the
//!   whole machine's busy time (`/proc/stat`), so a reader can tell when the
//!   generator (or anything else on the machine) competed with the reporter.
//!
//! # How
//!
//! 1. Collects real cycles from this host (see [`hostpulse_bench::cycles`]):
//!    cycle 1 (facts, no rates), then `--cycles` steady-state cycles 100 ms
//!    apart, 1 s after it.
//! 2. Starts the reporter binary (`--reporter-bin`, by default `reporter`
//!    next to this executable) on a free `127.0.0.1` port with
//!    `--ingest discard --log-level warn --max-streams <streams + 64>
//!    --max-connection-age 24h` (then the security flags below, then every
//!    `--reporter-arg`, with every `--reporter-env` in its environment), and
//!    waits until it accepts connections. A
//!    guard kills it when this program ends, on Ctrl-C or SIGTERM, and when
//!    it panics (not when it is itself killed with SIGKILL).
//! 3. Opens `--streams` streams over `ceil(streams / --streams-per-connection)`
//!    HTTP/2 connections, all connecting at once as gatherers do after a
//!    reporter restart, batches uncompressed like a gatherer (`--gzip` as
//!    older gatherers sent them). Each stream is
//!    one simulated gatherer: its own node id in `Hello`, its own
//!    [`Dictionary`] and [`StreamSent`], and it waits for `Welcome`.
//! 4. Once every stream is open, each sends one batch per `--interval`, its
//!    first one staggered uniformly across the first interval. Batch 1 is
//!    cycle 1 (with every definition it uses), later batches rotate through
//!    the steady-state cycles, encoded per stream (`Dictionary::encode`,
//!    then `StreamSent::wire_batch`) exactly like a gatherer, with the
//!    batch's base timestamp set to the send time. At most `--window`
//!    batches per stream are unacknowledged (64 by default, the gatherer's
//!    window); a tick that finds the window full sends as soon as room frees.
//!    With `--max-rate` a stream instead keeps its window (8 by default) full
//!    all the time: the ceiling of the reporter. `--encode-once` encodes the
//!    batches once up front and gives every stream the same bytes, which are
//!    exactly the bytes each stream's own dictionary would produce (a unit
//!    test checks this); it only makes the generator cheaper.
//! 5. After `--warmup` (default: five intervals and at least 5 s; 3 s with
//!    `--max-rate`), measures for `--duration`, then stops sending, waits up
//!    to 5 s for outstanding acknowledgements, closes the streams and stops
//!    the reporter. Batches sent in the window and never acknowledged, and
//!    streams that failed, are reported. The warm-up is long because every
//!    stream's first two batches carry its definitions (about 10 KB and
//!    7 KB, several times the work of a steady batch): at 5,000 streams the
//!    backlog they leave takes a few seconds to clear, and measuring it
//!    would report the start-up, not the steady state.
//!
//! # Security and self-telemetry
//!
//! What issue 5 added to the reporter, driven as gatherers drive it:
//!
//! - `--tls`: the `openssl` CLI makes a CA, a server certificate for
//!   `127.0.0.1` and a client certificate in a temporary directory (removed at
//!   the end; see [`hostpulse_bench::pki`]); the reporter gets `--tls-cert`/`--tls-key`,
//!   connections use `https://` and trust only that CA. Measures TLS record
//!   encryption on every byte, and the handshakes (see *Opening*).
//! - `--mtls` (implies `--tls`): the reporter also gets `--tls-client-ca`;
//!   every connection presents the client certificate, which the reporter
//!   verifies at the handshake and its auth layer checks on every call.
//! - `--token`: a token file is written and passed as `--token-file`; every
//!   stream sends `authorization: Bearer <token>`, compared per call (once per
//!   stream, not per batch).
//! - `--reporter-env KEY=VALUE` (repeatable): e.g.
//!   `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317` turns on OTLP trace
//!   export (one `batch` span per batch at the default `--trace-level debug`);
//!   the `otlp_sink` binary is a receiver that counts what arrives.
//! - `--reporter-arg ARG` (repeatable): any other reporter flag, e.g.
//!   `--reporter-arg --admin-listen=127.0.0.1:9100` (scrape it yourself; the
//!   generator does not).
//!
//! The report's `security` line says which were on.
//!
//! # Worst-case memory per stream
//!
//! `--fill-rows N` adds N synthetic rows (table `fill`, passed to the
//! reporter as `--custom-tables fill`) to every cycle (2N definitions per
//! stream, N more samples per batch); `--cycles-per-batch G` makes each batch
//! carry G copies of its cycle (G groups): together they drive streams to
//! their `--max-series-per-stream` and `--max-message-bytes` limits, and the
//! report's RSS lines show what that costs (README "Scaling and its limits").
//!
//! The load generator runs on the same machine as the reporter and competes
//! with it for CPU (it encodes every batch, as real gatherers
//! would on their own hosts): compare the reporter's cores with the
//! generator's and the machine's in the report. At 5,000 streams the
//! generator needs most of a core when every stream encodes its own batches
//! (`--encode-once` roughly halves that), and its own delays then show in the
//! latency: a generator thread that is busy reads acknowledgements late.
//! `--threads 1` keeps it to one core. File descriptors: one per
//! connection on each side (5,000 streams over 50 connections need 50), so
//! `ulimit -n` matters only with `--streams-per-connection 1`.
//!
//! # Output
//!
//! Progress once a second on stderr (unless `--quiet`), then a Markdown
//! table on stdout (or one JSON object with `--json`). The exit status is 0
//! only when no stream failed and every batch sent in the window was
//! acknowledged.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hostpulse_bench::cycles::{self, Cycles};
use hostpulse_bench::pki::{Pki, TempDir};
use hostpulse_bench::procstat::{self, Process};
use hostpulse_proto::PROTOCOL_VERSION;
use hostpulse_proto::codec::{Dictionary, StreamSent};
use hostpulse_proto::pb::{self, gatherer_message, ingest_client::IngestClient, reporter_message};
use hostpulse_proto::row::Row;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The gatherer's window of unacknowledged batches.
const GATHERER_WINDOW: usize = 64;
/// How long stopping streams wait for outstanding acknowledgements.
const DRAIN: Duration = Duration::from_secs(5);

/// Drives a reporter with simulated gatherer streams; measures throughput,
/// acknowledgement latency, and the reporter's CPU and memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", max_term_width = 100)]
struct Args {
    /// Simulated gatherers, one stream each.
    #[arg(long, default_value_t = 1000)]
    streams: usize,

    /// Streams sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: usize,

    /// Time between a stream's batches (ignored with --max-rate).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,

    /// Length of the measured window.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,

    /// Time from the first batch to the start of the measured window
    /// [default: 5 intervals, at least 5 s; 3 s with --max-rate].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,

    /// Send as fast as acknowledgements allow, keeping --window batches
    /// unacknowledged per stream: the reporter's ceiling.
    #[arg(long)]
    max_rate: bool,

    /// Unacknowledged batches per stream [default: 8 with --max-rate,
    /// otherwise 64 like the gatherer].
    #[arg(long)]
    window: Option<usize>,

    /// Encode each cycle once and give every stream the same bytes (only
    /// sequence and timestamp set per batch) instead of running one
    /// dictionary per stream. The wire is byte-for-byte the same; the
    /// generator spends less CPU.
    #[arg(long)]
    encode_once: bool,

    /// Gzip every batch, as gatherers did before they sent batches
    /// uncompressed (gzip cost them more CPU than collecting). Answers are
    /// accepted gzip-compressed either way.
    #[arg(long)]
    gzip: bool,

    /// The reporter binary [default: `reporter` next to this executable].
    #[arg(long)]
    reporter_bin: Option<PathBuf>,

    /// The reporter's --ingest (`discard`: the stream path alone; `spool`).
    #[arg(long, visible_alias = "sink", default_value = "discard")]
    ingest: String,

    /// Distinct real steady-state cycles the batches rotate through.
    #[arg(long, default_value_t = 10)]
    cycles: usize,

    /// Print the result as one JSON object (progress still goes to stderr).
    #[arg(long)]
    json: bool,

    /// Worker threads of the generator's runtime [default: one per CPU].
    /// `--threads 1` caps the generator at one core, leaving the rest to
    /// the reporter, but one thread saturates at about 5,000 streams.
    #[arg(long)]
    threads: Option<usize>,

    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,

    /// TLS as gatherers use it: a CA, a server certificate for 127.0.0.1 and
    /// a client certificate are made with the `openssl` CLI in a temporary
    /// directory; the reporter gets --tls-cert/--tls-key, the connections
    /// use https:// and trust that CA.
    #[arg(long)]
    tls: bool,

    /// Mutual TLS (implies --tls): the reporter also gets --tls-client-ca,
    /// every connection presents the client certificate.
    #[arg(long)]
    mtls: bool,

    /// Bearer token: a token file is written and passed as --token-file,
    /// every stream sends `authorization: Bearer <token>`.
    #[arg(long)]
    token: bool,

    /// Worst-case memory: add this many synthetic rows (table `fill`, a
    /// distinct tag `slot` each, one field) to every cycle, so each stream
    /// defines two definitions (a row key and a series) per row on top of the
    /// real ones and sends that many more samples per batch.
    #[arg(long, default_value_t = 0)]
    fill_rows: usize,

    /// Worst-case memory: each batch carries this many copies of its cycle,
    /// 1 ms apart (one group each), as a large backlog would: batches as
    /// large as --max-message-bytes allows.
    #[arg(long, default_value_t = 1)]
    cycles_per_batch: usize,

    /// KEY=VALUE added to the reporter's environment (repeatable), e.g.
    /// OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317.
    #[arg(long = "reporter-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    reporter_env: Vec<(String, String)>,

    /// An extra reporter argument (repeatable), after loadgen's own; give a
    /// flag and its value as one: --reporter-arg --admin-listen=127.0.0.1:9100.
    #[arg(long = "reporter-arg", value_name = "ARG", allow_hyphen_values = true)]
    reporter_arg: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 1s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

impl Args {
    fn window(&self) -> usize {
        self.window
            .unwrap_or(if self.max_rate { 8 } else { GATHERER_WINDOW })
    }

    fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(if self.max_rate {
            Duration::from_secs(3)
        } else {
            (self.interval * 5).max(Duration::from_secs(5))
        })
    }

    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    fn tls(&self) -> bool {
        self.tls || self.mtls
    }

    /// One line for the report: what protects the streams.
    fn security(&self) -> &'static str {
        match (self.tls(), self.mtls, self.token) {
            (false, _, false) => "plaintext",
            (false, _, true) => "plaintext, bearer token",
            (true, false, false) => "TLS",
            (true, false, true) => "TLS, bearer token",
            (true, true, false) => "mutual TLS",
            (true, true, true) => "mutual TLS, bearer token",
        }
    }

    fn connections(&self) -> usize {
        self.streams.div_ceil(self.streams_per_connection)
    }

    fn check(&self) -> Result<(), String> {
        if self.streams == 0 || self.streams_per_connection == 0 {
            return Err("--streams and --streams-per-connection must be at least 1".into());
        }
        if self.window() == 0
            || self.cycles == 0
            || self.threads() == 0
            || self.cycles_per_batch == 0
        {
            return Err(
                "--window, --cycles, --cycles-per-batch and --threads must be at least 1".into(),
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- reporter

/// The reporter child process; killed when dropped.
struct Reporter {
    child: Mutex<Child>,
    pid: u32,
}

impl Reporter {
    fn start(
        bin: &Path,
        addr: SocketAddr,
        args: &Args,
        security: &Security,
    ) -> std::io::Result<Reporter> {
        let child = Command::new(bin)
            .args(reporter_args(addr, args, security))
            .envs(args.reporter_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        Ok(Reporter {
            child: Mutex::new(child),
            pid,
        })
    }

    /// The exit status, if it has exited.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child.try_wait().ok().flatten()
    }

    /// Waits until it accepts connections on `addr` (10 s at most).
    async fn wait_listening(&self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("the reporter exited at start ({status})"));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the reporter does not listen on {addr} after 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// The reporter's command line: loadgen's settings, then the security
/// flags, then `--reporter-arg`s.
fn reporter_args(addr: SocketAddr, args: &Args, security: &Security) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["--listen".into(), addr.to_string().into()];
    for a in ["--ingest", &args.ingest, "--log-level", "warn"] {
        out.push(a.into());
    }
    out.push("--max-streams".into());
    out.push((args.streams + 64).to_string().into());
    // Streams end themselves at 85-100% of this age; keep them for the run.
    out.push("--max-connection-age".into());
    out.push("24h".into());
    if args.fill_rows > 0 {
        // The synthetic rows' table is not a hostpulse family.
        out.push("--custom-tables".into());
        out.push("fill".into());
    }
    if let Some(pki) = &security.pki {
        out.push("--tls-cert".into());
        out.push(pki.server_cert.clone().into());
        out.push("--tls-key".into());
        out.push(pki.server_key.clone().into());
        if security.mtls {
            out.push("--tls-client-ca".into());
            out.push(pki.ca.clone().into());
        }
    }
    if let Some(file) = &security.token_file {
        out.push("--token-file".into());
        out.push(file.clone().into());
    }
    out.extend(args.reporter_arg.iter().map(OsString::from));
    out
}

// ---------------------------------------------------------------- security

/// The token every stream sends with `--token` (any printable ASCII works;
/// its length is a realistic one, 32 random bytes in hex).
const TOKEN: &str = "6c6f616467656e2d62656e63682d746f6b656e2d30313233343536373839616263";

/// What `--tls`, `--mtls` and `--token` set up, on both sides.
struct Security {
    /// Holds the generated files; removed when dropped.
    _dir: Option<TempDir>,
    /// The certificates, with --tls or --mtls.
    pki: Option<Pki>,
    mtls: bool,
    /// The reporter's --token-file, with --token.
    token_file: Option<PathBuf>,
    /// What each stream sends, with --token.
    authorization: Option<AsciiMetadataValue>,
}

impl Security {
    fn prepare(args: &Args) -> Result<Security, String> {
        if !args.tls() && !args.token {
            return Ok(Security {
                _dir: None,
                pki: None,
                mtls: false,
                token_file: None,
                authorization: None,
            });
        }
        let dir = TempDir::new("hostpulse-loadgen")
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let pki = if args.tls() {
            Some(Pki::generate(dir.path()))
        } else {
            None
        };
        let (token_file, authorization) = if args.token {
            let file = dir
                .write("token", format!("{TOKEN}\n").as_bytes())
                .map_err(|e| format!("writing the token file: {e}"))?;
            let value = AsciiMetadataValue::try_from(format!("Bearer {TOKEN}"))
                .map_err(|e| e.to_string())?;
            (Some(file), Some(value))
        } else {
            (None, None)
        };
        Ok(Security {
            _dir: Some(dir),
            pki,
            mtls: args.mtls,
            token_file,
            authorization,
        })
    }

    /// The endpoint every connection is made from: https:// and the CA
    /// (plus the client identity with --mtls) when TLS is on.
    fn endpoint(&self, addr: SocketAddr) -> Result<Endpoint, String> {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(pki) = &self.pki {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            let mut tls = ClientTlsConfig::new()
                .domain_name(addr.ip().to_string())
                .ca_certificate(Certificate::from_pem(read(&pki.ca)?));
            if self.mtls {
                tls = tls.identity(Identity::from_pem(
                    read(&pki.client_cert)?,
                    read(&pki.client_key)?,
                ));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS settings: {e}"))?;
        }
        Ok(endpoint)
    }
}

fn default_reporter_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("reporter")))
        .unwrap_or_else(|| PathBuf::from("reporter"))
}

/// A port on 127.0.0.1 nobody listens on (bound and released; the reporter
/// binds it a moment later).
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------- streams

/// What every stream shares.
struct Plan {
    first: Vec<Row>,
    first_samples: u64,
    steady: Vec<(Vec<Row>, u64)>,
    templates: Option<Templates>,
    streams: usize,
    interval: Duration,
    max_rate: bool,
    window: usize,
    /// `authorization` metadata of every stream (`--token`).
    authorization: Option<AsciiMetadataValue>,
    /// `--gzip`: batches gzip-compressed (older gatherers) or not.
    gzip: bool,
    counters: Counters,
}

/// Batches encoded once and shared by every stream (`--encode-once`).
///
/// Every stream sends the same cycles in the same order, so every stream's
/// [`Dictionary`] assigns the same ids and its [`StreamSent`] adds the same
/// definitions to the same sequences: one template stream, encoded up front,
/// yields byte-for-byte the batches each stream would encode (only `sequence`
/// and `base_ts` differ, and are set per batch).
struct Templates {
    /// Wire batches of sequences 1 ..= 1 + steady cycles: the first pass
    /// over every cycle, which carries every definition.
    first_pass: Vec<pb::Batch>,
    /// Compact batches of the steady cycles, for every later pass.
    compact: Vec<pb::Batch>,
}

impl Templates {
    fn build(first: &[Row], steady: &[(Vec<Row>, u64)]) -> Templates {
        let mut dict = Dictionary::new();
        let mut sent = StreamSent::new();
        let mut first_pass = Vec::with_capacity(steady.len() + 1);
        let compact = dict.encode(1, first, &[]);
        first_pass.push(sent.wire_batch(&dict, &compact));
        for (i, (rows, _)) in steady.iter().enumerate() {
            let compact = dict.encode(i as u64 + 2, rows, &[]);
            first_pass.push(sent.wire_batch(&dict, &compact));
        }
        let compact = steady
            .iter()
            .map(|(rows, _)| dict.encode(0, rows, &[]))
            .collect();
        Templates {
            first_pass,
            compact,
        }
    }

    /// The wire batch of `sequence` (1-based), base timestamp still to set.
    fn batch(&self, sequence: u64) -> pb::Batch {
        let index = (sequence - 1) as usize;
        let mut batch = match self.first_pass.get(index) {
            Some(b) => b.clone(),
            None => self.compact[(index - 1) % self.compact.len()].clone(),
        };
        batch.sequence = sequence;
        batch
    }
}

/// Live totals, for the progress lines.
#[derive(Default)]
struct Counters {
    acked_batches: AtomicU64,
    acked_samples: AtomicU64,
    sent_batches: AtomicU64,
    open_streams: AtomicUsize,
    failed_streams: AtomicUsize,
}

/// When things happen, decided once every stream is open.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    /// The first batches go out from here (staggered over one interval).
    start: Instant,
    window_start: Instant,
    window_end: Instant,
}

impl Timeline {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.window_start && t < self.window_end
    }
}

/// What one stream measured.
#[derive(Debug, Default)]
struct StreamResult {
    /// Send-to-Ack latency of batches sent in the window, microseconds.
    latencies_us: Vec<u32>,
    /// Batches sent in the window.
    sent_in_window: u64,
    /// Batches sent in the window and never acknowledged.
    unacked_in_window: u64,
    /// Batches acknowledged in the window.
    acked_batches: u64,
    /// Samples acknowledged in the window.
    acked_samples: u64,
    /// Why the stream failed, if it did.
    error: Option<String>,
}

/// A batch waiting for its acknowledgement.
struct InFlight {
    sequence: u64,
    sent: Instant,
    samples: u64,
    in_window: bool,
}

/// One simulated gatherer.
struct Gatherer {
    plan: Arc<Plan>,
    dict: Dictionary,
    sent: StreamSent,
    sequence: u64,
}

impl Gatherer {
    /// The next batch as the wire carries it, and its sample count.
    fn next_batch(&mut self) -> (pb::GathererMessage, u64) {
        self.sequence += 1;
        let (rows, samples) = if self.sequence == 1 {
            (&self.plan.first, self.plan.first_samples)
        } else {
            let i = (self.sequence - 2) as usize % self.plan.steady.len();
            let (rows, samples) = &self.plan.steady[i];
            (rows, *samples)
        };
        let mut batch = match &self.plan.templates {
            Some(t) => t.batch(self.sequence),
            None => {
                let compact = self.dict.encode(self.sequence, rows, &[]);
                self.sent.wire_batch(&self.dict, &compact)
            }
        };
        // Every row of a cycle shares one timestamp: the batch's base.
        batch.base_ts = unix_nanos();
        let msg = pb::GathererMessage {
            message: Some(gatherer_message::Message::Batch(batch)),
        };
        (msg, samples)
    }
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn hello(index: usize) -> pb::GathererMessage {
    pb::GathererMessage {
        message: Some(gatherer_message::Message::Hello(pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: format!("loadgen-{index:05}"),
            hostname: format!("loadgen-{index:05}.bench.invalid"),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            first_sequence: 1,
            ..Default::default()
        })),
    }
}

/// Runs one stream: open, wait for the timeline, send and count, drain.
async fn stream_task(
    plan: Arc<Plan>,
    index: usize,
    channel: Channel,
    ready: mpsc::Sender<Result<(), String>>,
    mut go: watch::Receiver<Option<Timeline>>,
    mut stop: watch::Receiver<bool>,
) -> StreamResult {
    let mut result = StreamResult::default();
    let mut client = IngestClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
    if plan.gzip {
        client = client.send_compressed(CompressionEncoding::Gzip);
    }
    let (tx, rx) = mpsc::channel::<pb::GathererMessage>(plan.window + 4);
    let _ = tx.send(hello(index)).await;
    let opened = async {
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(value) = &plan.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        let mut inbound = client
            .stream(request)
            .await
            .map_err(|s| format!("opening: {:?}: {}", s.code(), s.message()))?
            .into_inner();
        match inbound.message().await {
            Ok(Some(pb::ReporterMessage {
                message: Some(reporter_message::Message::Welcome(_)),
            })) => Ok(inbound),
            Ok(_) => Err("the first message was not a Welcome".to_string()),
            Err(s) => Err(format!(
                "waiting for Welcome: {:?}: {}",
                s.code(),
                s.message()
            )),
        }
    };
    let mut inbound = match tokio::time::timeout(Duration::from_secs(60), opened).await {
        Ok(Ok(inbound)) => inbound,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e.clone())).await;
            result.error = Some(e);
            return result;
        }
        Err(_) => {
            let e = "no Welcome within 60 s".to_string();
            let _ = ready.send(Err(e.clone())).await;
            result.error = Some(e);
            return result;
        }
    };
    plan.counters.open_streams.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Ok(())).await;
    drop(ready);

    let timeline = match go.wait_for(Option::is_some).await {
        Ok(t) => match *t {
            Some(t) => t,
            None => return result,
        },
        // The run ended before sending started.
        Err(_) => return result,
    };
    // Stagger first batches uniformly over one interval (100 ms with --max-rate).
    let spread = if plan.max_rate {
        Duration::from_millis(100)
    } else {
        plan.interval
    };
    let offset = spread.mul_f64(index as f64 / plan.streams as f64);
    let first_at = timeline.start + offset;
    let mut ticker = tokio::time::interval_at(first_at, plan.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    if plan.max_rate {
        tokio::time::sleep_until(first_at).await;
    }

    let mut gatherer = Gatherer {
        plan: Arc::clone(&plan),
        dict: Dictionary::new(),
        sent: StreamSent::new(),
        sequence: 0,
    };
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut due: u64 = 0;
    let mut drain_until: Option<Instant> = None;
    loop {
        // Send what is due (everything the window allows with --max-rate).
        while drain_until.is_none() && (plan.max_rate || due > 0) && in_flight.len() < plan.window {
            let (msg, samples) = gatherer.next_batch();
            let sent = Instant::now();
            if tx.send(msg).await.is_err() {
                result.error = Some("the stream closed while sending".into());
                break;
            }
            plan.counters.sent_batches.fetch_add(1, Ordering::Relaxed);
            let in_window = timeline.in_window(sent);
            result.sent_in_window += u64::from(in_window);
            in_flight.push_back(InFlight {
                sequence: gatherer.sequence,
                sent,
                samples,
                in_window,
            });
            due = due.saturating_sub(1);
        }
        if result.error.is_some() || (drain_until.is_some() && in_flight.is_empty()) {
            break;
        }
        tokio::select! {
            _ = ticker.tick(), if !plan.max_rate && drain_until.is_none() => due += 1,
            msg = inbound.message() => match msg {
                Ok(Some(pb::ReporterMessage { message: Some(reporter_message::Message::Ack(ack)) })) => {
                    let now = Instant::now();
                    let counted = timeline.in_window(now);
                    while in_flight.front().is_some_and(|b| b.sequence <= ack.sequence) {
                        let Some(b) = in_flight.pop_front() else { break };
                        if b.in_window {
                            let us = now.duration_since(b.sent).as_micros();
                            result.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        if counted {
                            result.acked_batches += 1;
                            result.acked_samples += b.samples;
                        }
                        plan.counters.acked_batches.fetch_add(1, Ordering::Relaxed);
                        plan.counters.acked_samples.fetch_add(b.samples, Ordering::Relaxed);
                    }
                }
                Ok(Some(_)) => {} // a pushed configuration: nothing to apply here
                Ok(None) => {
                    result.error = Some("the reporter closed the stream".into());
                    break;
                }
                Err(s) => {
                    result.error = Some(format!("{:?}: {}", s.code(), s.message()));
                    break;
                }
            },
            _ = stop.changed(), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN);
            }
            () = sleep_until_opt(drain_until) => break,
        }
    }
    result.unacked_in_window = in_flight.iter().filter(|b| b.in_window).count() as u64;
    plan.counters.open_streams.fetch_sub(1, Ordering::Relaxed);
    if result.error.is_some() {
        plan.counters.failed_streams.fetch_add(1, Ordering::Relaxed);
    }
    // Dropping the sender ends the request stream; the reporter then ends
    // its response. Waiting for that end (rather than dropping the response,
    // which resets the HTTP/2 stream) closes the stream cleanly on both sides.
    drop(tx);
    if result.error.is_none() {
        let closed = async { while let Ok(Some(_)) = inbound.message().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
    }
    result
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------- the run

/// CPU and memory readings at one instant.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    reporter: u64,
    own: u64,
    machine: procstat::MachineTicks,
}

fn read_now(pid: u32) -> Result<Reading, String> {
    let at = Instant::now();
    let reporter = procstat::cpu_ticks(Process::Pid(pid))
        .map_err(|e| format!("reading the reporter's CPU time: {e}"))?;
    let own =
        procstat::cpu_ticks(Process::Own).map_err(|e| format!("reading own CPU time: {e}"))?;
    let machine = procstat::machine_ticks().map_err(|e| format!("reading /proc/stat: {e}"))?;
    Ok(Reading {
        at,
        reporter,
        own,
        machine,
    })
}

/// Everything measured.
#[derive(Debug)]
struct Report {
    streams: usize,
    connections: usize,
    /// From the first connect() to every connection established.
    connect_seconds: f64,
    /// From the first connect() to every stream's Welcome.
    open_seconds: f64,
    /// The reporter's CPU time over `open_seconds`.
    open_reporter_cpu_seconds: f64,
    window_seconds: f64,
    warmup_seconds: f64,
    acked_batches: u64,
    acked_samples: u64,
    sent_in_window: u64,
    unacked_in_window: u64,
    failed_streams: usize,
    errors: Vec<String>,
    latencies_us: Vec<u32>,
    reporter_cores: f64,
    own_cores: f64,
    machine_cores: f64,
    machine_cpus: f64,
    reporter_rss_idle: u64,
    reporter_rss_open: u64,
    reporter_rss: u64,
    reporter_peak_rss: u64,
    reporter_rss_closed: u64,
}

async fn run(
    args: &Args,
    plan: Arc<Plan>,
    reporter: &Reporter,
    addr: SocketAddr,
    security: &Security,
) -> Result<Report, String> {
    reporter.wait_listening(addr).await?;
    let ticks = procstat::clock_ticks_per_second();
    let rss_idle = reporter_memory(reporter.pid)?.rss_bytes;
    let endpoint = security.endpoint(addr)?;
    let opening = Instant::now();
    let reporter_ticks_before_open = procstat::cpu_ticks(Process::Pid(reporter.pid))
        .map_err(|e| format!("reading the reporter's CPU time: {e}"))?;
    // All at once, as gatherers reconnect after a reporter restart; every
    // connect() is its own HTTP/2 connection (and TLS handshake).
    let connecting: Vec<_> = (0..args.connections())
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move { endpoint.connect().await })
        })
        .collect();
    let mut channels = Vec::with_capacity(args.connections());
    for c in connecting {
        channels.push(
            c.await
                .map_err(|e| format!("a connection task failed: {e}"))?
                .map_err(|e| format!("connecting to {addr}: {}", error_chain(&e)))?,
        );
    }
    let connect_seconds = opening.elapsed().as_secs_f64();

    let (ready_tx, mut ready_rx) = mpsc::channel(args.streams);
    let (go_tx, go_rx) = watch::channel::<Option<Timeline>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = (0..args.streams)
        .map(|i| {
            tokio::spawn(stream_task(
                Arc::clone(&plan),
                i,
                channels[i / args.streams_per_connection].clone(),
                ready_tx.clone(),
                go_rx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    let mut failed_open = Vec::new();
    while let Some(r) = ready_rx.recv().await {
        if let Err(e) = r {
            failed_open.push(e);
        }
    }
    if !failed_open.is_empty() {
        return Err(format!(
            "{} of {} streams failed to open; first: {}",
            failed_open.len(),
            args.streams,
            failed_open[0]
        ));
    }
    let open_seconds = opening.elapsed().as_secs_f64();
    let open_reporter_cpu_seconds = procstat::cpu_ticks(Process::Pid(reporter.pid))
        .map_err(|e| format!("reading the reporter's CPU time: {e}"))?
        .saturating_sub(reporter_ticks_before_open) as f64
        / ticks as f64;
    let rss_open = reporter_memory(reporter.pid)?.rss_bytes;
    note(
        args,
        &format!(
            "{} streams open over {} connections ({}) in {open_seconds:.2} s (connections {connect_seconds:.2} s, reporter CPU {open_reporter_cpu_seconds:.2} s); sending",
            args.streams,
            args.connections(),
            args.security(),
        ),
    );

    let start = Instant::now() + Duration::from_millis(50);
    let window_start = start + args.warmup();
    let timeline = Timeline {
        start,
        window_start,
        window_end: window_start + args.duration,
    };
    let _ = go_tx.send(Some(timeline));
    let progress = tokio::spawn(progress(
        Arc::clone(&plan),
        reporter.pid,
        ticks,
        args.quiet,
        start,
    ));

    tokio::time::sleep_until(timeline.window_start).await;
    let before = read_now(reporter.pid)?;
    tokio::time::sleep_until(timeline.window_end).await;
    let after = read_now(reporter.pid)?;
    let memory = reporter_memory(reporter.pid)?;
    let _ = stop_tx.send(true);
    note(args, "window closed; draining outstanding acknowledgements");

    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| format!("a stream task failed: {e}"))?,
        );
    }
    progress.abort();
    if let Some(status) = reporter.exited() {
        return Err(format!("the reporter exited during the run ({status})"));
    }
    // What the reporter keeps once every stream has ended (allocator caches).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_closed = reporter_memory(reporter.pid)?.rss_bytes;

    let elapsed = after.at.duration_since(before.at);
    let cores = |t: u64| procstat::cores(t, ticks, elapsed);
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut report = Report {
        streams: args.streams,
        connections: args.connections(),
        connect_seconds,
        open_seconds,
        open_reporter_cpu_seconds,
        window_seconds: elapsed.as_secs_f64(),
        warmup_seconds: args.warmup().as_secs_f64(),
        acked_batches: 0,
        acked_samples: 0,
        sent_in_window: 0,
        unacked_in_window: 0,
        failed_streams: 0,
        errors: Vec::new(),
        latencies_us: Vec::new(),
        reporter_cores: cores(after.reporter - before.reporter),
        own_cores: cores(after.own - before.own),
        machine_cores: after
            .machine
            .busy_cores_since(&before.machine, ticks, elapsed),
        machine_cpus: f64::from(after.machine.cpus),
        reporter_rss_idle: rss_idle,
        reporter_rss_open: rss_open,
        reporter_rss: memory.rss_bytes,
        reporter_peak_rss: memory.peak_rss_bytes,
        reporter_rss_closed: rss_closed,
    };
    for r in results {
        report.acked_batches += r.acked_batches;
        report.acked_samples += r.acked_samples;
        report.sent_in_window += r.sent_in_window;
        report.unacked_in_window += r.unacked_in_window;
        latencies_us.extend(r.latencies_us);
        if let Some(e) = r.error {
            report.failed_streams += 1;
            if errors.len() < 5 && !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    latencies_us.sort_unstable();
    report.latencies_us = latencies_us;
    report.errors = errors;
    Ok(report)
}

/// An error and its sources on one line (tonic's transport error alone says
/// only "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn reporter_memory(pid: u32) -> Result<procstat::Memory, String> {
    procstat::memory(Process::Pid(pid)).map_err(|e| format!("reading the reporter's memory: {e}"))
}

/// One line per second on stderr: what was acknowledged in that second.
async fn progress(plan: Arc<Plan>, pid: u32, ticks: u64, quiet: bool, start: Instant) {
    if quiet {
        return;
    }
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let c = &plan.counters;
    let mut last = (
        Instant::now(),
        c.acked_batches.load(Ordering::Relaxed),
        c.acked_samples.load(Ordering::Relaxed),
        procstat::cpu_ticks(Process::Pid(pid)).unwrap_or(0),
    );
    loop {
        tick.tick().await;
        let now = (
            Instant::now(),
            c.acked_batches.load(Ordering::Relaxed),
            c.acked_samples.load(Ordering::Relaxed),
            procstat::cpu_ticks(Process::Pid(pid)).unwrap_or(0),
        );
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        eprintln!(
            "[{:6.1}s] streams open {:5}  failed {:3}  acked {:8.0} batches/s {:10.0} samples/s  reporter {:.2} cores",
            now.0.duration_since(start).as_secs_f64(),
            c.open_streams.load(Ordering::Relaxed),
            c.failed_streams.load(Ordering::Relaxed),
            (now.1 - last.1) as f64 / secs,
            (now.2 - last.2) as f64 / secs,
            procstat::cores(
                now.3.saturating_sub(last.3),
                ticks,
                now.0.duration_since(last.0)
            ),
        );
        last = now;
    }
}

fn note(args: &Args, text: &str) {
    if !args.quiet {
        eprintln!("{text}");
    }
}

// ---------------------------------------------------------------- output

/// Nearest-rank percentile of sorted values, in milliseconds.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_report(args: &Args, plan: &Plan, r: &Report) {
    let secs = r.window_seconds.max(1e-9);
    let batches_s = r.acked_batches as f64 / secs;
    let samples_s = r.acked_samples as f64 / secs;
    let per_core = if r.reporter_cores > 0.0 {
        samples_s / r.reporter_cores
    } else {
        f64::NAN
    };
    let lat = |q| percentile_ms(&r.latencies_us, q);
    let max = r
        .latencies_us
        .last()
        .map_or(f64::NAN, |&v| f64::from(v) / 1000.0);
    let encoding = format!(
        "{}, {} generator thread(s)",
        if args.encode_once {
            "encoded once, shared"
        } else {
            "encoded per stream"
        },
        args.threads()
    );
    let mode = if args.max_rate {
        format!(
            "max rate, window {} batches per stream; {encoding}",
            plan.window
        )
    } else {
        format!(
            "1 batch per stream every {}, window {}; {encoding}",
            humantime::format_duration(args.interval),
            plan.window
        )
    };
    let expected = if args.max_rate {
        String::new()
    } else {
        format!(
            " (nominal {:.0})",
            args.streams as f64 / args.interval.as_secs_f64()
        )
    };
    let steady_samples =
        plan.steady.iter().map(|(_, s)| *s).sum::<u64>() as f64 / plan.steady.len() as f64;
    let others = (r.machine_cores - r.reporter_cores - r.own_cores).max(0.0);
    let per_stream_rss =
        r.reporter_rss.saturating_sub(r.reporter_rss_idle) as f64 / r.streams as f64;

    if args.json {
        let out = serde_json::json!({
            "streams": r.streams,
            "connections": r.connections,
            "max_rate": args.max_rate,
            "interval_ms": args.interval.as_millis() as u64,
            "window_per_stream": plan.window,
            "samples_per_batch": steady_samples,
            "warmup_s": r.warmup_seconds,
            "measured_s": r.window_seconds,
            "security": args.security(),
            "connections_established_s": r.connect_seconds,
            "streams_open_s": r.open_seconds,
            "streams_open_reporter_cpu_s": r.open_reporter_cpu_seconds,
            "batches_sent_per_s": r.sent_in_window as f64 / secs,
            "batches_acked_per_s": batches_s,
            "samples_acked_per_s": samples_s,
            "reporter_cores": r.reporter_cores,
            "samples_per_s_per_reporter_core": per_core,
            "ack_latency_ms": {
                "p50": lat(0.50), "p90": lat(0.90), "p99": lat(0.99), "max": max,
                "count": r.latencies_us.len(),
            },
            "encode_once": args.encode_once,
            "gzip": args.gzip,
            "generator_threads": args.threads(),
            "reporter_rss_idle_bytes": r.reporter_rss_idle,
            "reporter_rss_streams_open_bytes": r.reporter_rss_open,
            "reporter_rss_bytes": r.reporter_rss,
            "reporter_rss_per_stream_bytes": per_stream_rss,
            "reporter_peak_rss_bytes": r.reporter_peak_rss,
            "reporter_rss_after_close_bytes": r.reporter_rss_closed,
            "loadgen_cores": r.own_cores,
            "machine_busy_cores": r.machine_cores,
            "machine_cpus": r.machine_cpus,
            "other_processes_cores": others,
            "failed_streams": r.failed_streams,
            "unacked_batches": r.unacked_in_window,
            "errors": r.errors,
        });
        println!("{out}");
        return;
    }
    println!("| loadgen | |");
    println!("|---|---:|");
    println!(
        "| streams / HTTP/2 connections | {} / {} |",
        r.streams, r.connections
    );
    println!("| mode | {mode} |");
    println!("| security | {} |", args.security());
    println!(
        "| opening: connections established / streams open (Welcome) / reporter CPU | {:.3} s / {:.3} s / {:.2} s |",
        r.connect_seconds, r.open_seconds, r.open_reporter_cpu_seconds
    );
    println!("| samples per batch (steady state) | {steady_samples:.0} |");
    println!(
        "| measured window | {:.1} s after {:.1} s warm-up (streams opened in {:.2} s) |",
        r.window_seconds, r.warmup_seconds, r.open_seconds
    );
    println!(
        "| batches/s sent{expected} | {:.0} |",
        r.sent_in_window as f64 / secs
    );
    println!("| **batches/s acknowledged** | **{batches_s:.0}** |");
    println!("| **samples/s acknowledged** | **{samples_s:.0}** |");
    println!("| reporter CPU | {:.2} cores |", r.reporter_cores);
    println!("| **samples/s per reporter core** | **{per_core:.0}** |");
    println!(
        "| **ack latency p50 / p90 / p99 / max** | **{:.2} / {:.2} / {:.2} / {max:.2} ms** ({} batches) |",
        lat(0.50),
        lat(0.90),
        lat(0.99),
        r.latencies_us.len()
    );
    println!(
        "| reporter RSS: idle / streams open / end of window / peak (VmHWM) | {:.1} / {:.1} / {:.1} / {:.1} MiB |",
        mib(r.reporter_rss_idle),
        mib(r.reporter_rss_open),
        mib(r.reporter_rss),
        mib(r.reporter_peak_rss)
    );
    println!(
        "| reporter RSS per stream (end of window minus idle) | {:.0} KiB |",
        per_stream_rss / 1024.0
    );
    println!(
        "| reporter RSS 2 s after every stream closed | {:.1} MiB |",
        mib(r.reporter_rss_closed)
    );
    println!("| loadgen CPU (same machine) | {:.2} cores |", r.own_cores);
    println!(
        "| machine busy, all processes | {:.2} of {:.0} cores (other processes {others:.2}) |",
        r.machine_cores, r.machine_cpus
    );
    println!(
        "| failed streams / batches never acknowledged | {} / {} |",
        r.failed_streams, r.unacked_in_window
    );
    for e in &r.errors {
        println!("\nstream error: {e}");
    }
}

// ---------------------------------------------------------------- main

/// `rows` with `fill` synthetic rows added, repeated `copies` times 1 ms
/// apart (`--fill-rows`, `--cycles-per-batch`).
fn fatten(mut rows: Vec<Row>, fill: usize, copies: usize) -> Vec<Row> {
    let ts = rows.first().map_or(0, |r| r.ts);
    for slot in 0..fill {
        let mut row = Row::new("fill", ts).tag("slot", slot.to_string());
        row.int("v", slot as u64);
        rows.push(row);
    }
    let one = rows.clone();
    for copy in 1..copies {
        rows.extend(one.iter().map(|r| {
            let mut r = r.clone();
            r.ts += copy as i64 * 1_000_000;
            r
        }));
    }
    rows
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let bin = args
        .reporter_bin
        .clone()
        .unwrap_or_else(default_reporter_bin);
    if !bin.is_file() {
        eprintln!(
            "error: no reporter binary at {}: build it (cargo build --release -p reporter) or pass --reporter-bin",
            bin.display()
        );
        return ExitCode::from(2);
    }

    note(
        &args,
        &format!(
            "collecting 1 + {} real cycles from this host...",
            args.cycles
        ),
    );
    let cycles = Cycles::collect(
        args.cycles,
        Duration::from_secs(1),
        Duration::from_millis(100),
    );
    let mut cycles = cycles;
    cycles.first = fatten(cycles.first, args.fill_rows, args.cycles_per_batch);
    let steady: Vec<(Vec<Row>, u64)> = cycles
        .steady
        .into_iter()
        .map(|rows| fatten(rows, args.fill_rows, args.cycles_per_batch))
        .map(|rows| {
            let n = cycles::samples(&rows) as u64;
            (rows, n)
        })
        .collect();
    let security = match Security::prepare(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = Arc::new(Plan {
        first_samples: cycles::samples(&cycles.first) as u64,
        templates: args
            .encode_once
            .then(|| Templates::build(&cycles.first, &steady)),
        steady,
        first: cycles.first,
        streams: args.streams,
        interval: args.interval,
        max_rate: args.max_rate,
        window: args.window(),
        authorization: security.authorization.clone(),
        gzip: args.gzip,
        counters: Counters::default(),
    });

    let addr = match free_port() {
        Ok(port) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Err(e) => {
            eprintln!("error: no free port on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Killed when dropped: explicitly below, or while unwinding from a panic.
    let reporter = match Reporter::start(&bin, addr, &args, &security) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting {}: {e}", bin.display());
            return ExitCode::FAILURE;
        }
    };
    note(
        &args,
        &format!(
            "reporter {} (pid {}) on {addr}",
            bin.display(),
            reporter.pid
        ),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(&args, Arc::clone(&plan), &reporter, addr, &security) => r,
            () = hostpulse_bench::interrupted() => Err("interrupted".to_string()),
        }
    });
    // Streams are closed by now, except after an interrupt: stop the
    // reporter first, so it does not log every stream the runtime's shutdown
    // cuts off.
    drop(reporter);
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(report) => {
            print_report(&args, &plan, &report);
            if report.failed_streams > 0 || report.unacked_in_window > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostpulse_proto::row::Value;

    fn row(table: &'static str, tag: &str, fields: &[(&'static str, Value)]) -> Row {
        let mut r = Row::new(table, 1_000).tag("device", tag);
        r.fields.extend_from_slice(fields);
        r
    }

    #[test]
    fn templates_are_what_each_stream_would_encode() {
        let first = vec![
            row("node_info", "host", &[("cores", Value::Int(2))]),
            row("cpu", "0", &[("user_seconds_total", Value::Int(5))]),
        ];
        let steady_rows = [
            vec![row(
                "cpu",
                "0",
                &[
                    ("user_seconds_total", Value::Int(6)),
                    ("user_percent", Value::Float(1.5)),
                ],
            )],
            vec![row("cpu", "0", &[("user_seconds_total", Value::Int(7))])],
            // A field seen first in the third steady cycle.
            vec![row(
                "cpu",
                "0",
                &[
                    ("user_seconds_total", Value::Int(8)),
                    ("idle_percent", Value::Float(97.25)),
                ],
            )],
        ];
        let steady: Vec<(Vec<Row>, u64)> = steady_rows
            .iter()
            .map(|r| (r.clone(), cycles::samples(r) as u64))
            .collect();
        let templates = Templates::build(&first, &steady);
        let mut dict = Dictionary::new();
        let mut sent = StreamSent::new();
        for sequence in 1..=20u64 {
            let rows = if sequence == 1 {
                &first
            } else {
                &steady[(sequence - 2) as usize % steady.len()].0
            };
            let compact = dict.encode(sequence, rows, &[]);
            let expected = sent.wire_batch(&dict, &compact);
            assert_eq!(templates.batch(sequence), expected, "sequence {sequence}");
        }
    }

    #[test]
    fn reporter_env_is_key_equals_value() {
        assert_eq!(
            parse_env("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317"),
            Ok((
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                "http://127.0.0.1:4317".to_string()
            ))
        );
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("NOVALUE").is_err());
        assert!(parse_env("=x").is_err());
    }

    fn parse(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("loadgen").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn security_flags_reach_the_reporter_and_reporter_args_come_last() {
        let dir = TempDir::new("hostpulse-loadgen-test").unwrap();
        let args = parse(&[
            "--mtls",
            "--token",
            "--reporter-arg",
            "--admin-listen=127.0.0.1:0",
            "--reporter-env",
            "A=b",
        ]);
        assert!(args.tls());
        assert_eq!(args.security(), "mutual TLS, bearer token");
        assert_eq!(args.reporter_env, vec![("A".to_string(), "b".to_string())]);
        let pki = Pki {
            ca: dir.path().join("ca.pem"),
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
            client_cert: dir.path().join("client.pem"),
            client_key: dir.path().join("client.key"),
        };
        let security = Security {
            _dir: None,
            pki: Some(pki.clone()),
            mtls: true,
            token_file: Some(dir.path().join("token")),
            authorization: None,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let argv: Vec<String> = reporter_args(addr, &args, &security)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let value = |flag: &str| {
            let i = argv.iter().position(|a| a == flag).unwrap();
            argv[i + 1].clone()
        };
        assert_eq!(value("--listen"), "127.0.0.1:9");
        assert_eq!(value("--tls-cert"), pki.server_cert.to_str().unwrap());
        assert_eq!(value("--tls-key"), pki.server_key.to_str().unwrap());
        assert_eq!(value("--tls-client-ca"), pki.ca.to_str().unwrap());
        assert!(value("--token-file").ends_with("token"));
        assert_eq!(argv.last().unwrap(), "--admin-listen=127.0.0.1:0");

        let plain = parse(&["--token"]);
        let security = Security {
            pki: None,
            mtls: false,
            ..security
        };
        let argv = reporter_args(addr, &plain, &security);
        assert!(
            !argv
                .iter()
                .any(|a| a.to_str().unwrap().starts_with("--tls"))
        );
        assert_eq!(plain.security(), "plaintext, bearer token");
    }

    #[test]
    fn a_token_run_writes_the_file_the_streams_send() {
        let security = Security::prepare(&parse(&["--token"])).unwrap();
        let file = std::fs::read_to_string(security.token_file.as_ref().unwrap()).unwrap();
        let sent = security.authorization.as_ref().unwrap().to_str().unwrap();
        assert_eq!(sent, format!("Bearer {}", file.trim()));
        assert!(security.pki.is_none());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.50), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
    }
}
