//! Durability benchmarks of the reporter: what the disk spool costs on the
//! acknowledgement path, how fast it drains into an ILP database, and how
//! fast it catches up after the database was down.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-durability cargo bench -p reporter --bench durability -- [SECTION...] [OPTIONS]
//!   SECTION   append | drain | catchup | all (default: all)
//!   --runs N          runs of every measurement (default 3); tables show each run and the median
//!   --secs S          length of one append run (default 10)
//!   --writers 1,16,256  concurrent writers of the append section
//!   --nodes N         simulated nodes (default 100)
//!   --cycles C        cycles per node for drain and catchup (default 60 = 10 minutes at 10 s)
//!   --hold S          catchup: seconds the database stays down after the spool is filled (default 60)
//!   --dir PATH        where spools and VictoriaMetrics data go (default: the temp dir)
//!   --no-verify       do not count the samples in VictoriaMetrics after a run
//! ```
//!
//! It prints Markdown: the machine (CPU, kernel, the filesystem and block
//! device of `--dir`, the load average at start), the workload, then one
//! table per section with every run and one with the medians (the median of
//! each column on its own). `DURABILITY_DEBUG=1` also prints perf's raw output.
//!
//! # Workload
//!
//! Two real collection cycles of this host (every gatherer family, default
//! settings), one second apart, so that rates exist; the second one's rows
//! are the cycle every simulated node sends (no labels). For node `n` and
//! cycle `c` the rows get `ts = base + c * 10 s` (base: `cycles x 10 s`
//! before the bench started) and are encoded by that node's own
//! `hostpulse_proto::codec::Dictionary` as batch `c + 1`; the batch is made
//! self-contained with `Dictionary::complete` and decoded again with a fresh
//! `StreamDefs`: exactly the `AcceptedBatch { node, decoded, stored }` the
//! ingest session hands to its intake (the spool). Values are the same for every node and
//! cycle (only node and ts differ), which makes VictoriaMetrics' compression
//! a little easier than real data would.
//!
//! # `append`: the spool on the acknowledgement path
//!
//! A `Spool` in a fresh directory with one store that accepts every write
//! at once (so its drainer keeps trimming, as in production, and competes
//! for the CPU: it decodes every record). K tokio tasks (K = 1, 16, 256; the
//! runtime has one worker per core) each call `Intake::write` in a loop for
//! `--secs` seconds, awaiting each acknowledgement before the next write, as
//! an ingest session does. Reported: acknowledged batches/s, samples/s,
//! MB/s of spool records (10^6 bytes: the `SpooledBatch` protobuf plus the
//! record header, as appended), the latency of one `write` (p50/p99), and
//! the `fdatasync` calls of the spool's writer thread, counted exactly with
//! `perf stat -e syscalls:sys_enter_fdatasync` on that thread (the group
//! commit: batches per fdatasync; "n/a" when perf cannot attach), the
//! `fsync`s of the writer (the directory, when a segment is created) and of
//! the drainer thread (its cursor file and directory after each group), and
//! the CPU time of the writer and drainer threads (`/proc/self/task/TID/stat`;
//! 100 % = one core). The writer thread encodes every `SpooledBatch` record
//! (clone, protobuf, CRC32C) before its `pwrite`; the fdatasync covers the
//! whole group. "lag at stop" is what the drainer had not yet taken when
//! the writers stopped (MB of records).
//!
//! # `drain`: spool drain vs writing the rows directly
//!
//! The same `nodes x cycles` batches, cycle-major, into a fresh
//! VictoriaMetrics each time (ILP over HTTP, `/write`):
//!
//! - direct: the rows, already decoded in memory, through a questdb-rs
//!   `Sender` (`http::addr=...;protocol_version=1;`), flushed every 512
//!   batches' worth of rows (the drainer's group size), one thread, as fast
//!   as the server answers. Encoding (building the ILP buffer) and flushing
//!   (HTTP request until the server's answer) are timed apart.
//! - spool: the batches are first written into a spool that has no store
//!   (100 concurrent writers, fsync'ed, not timed), which is closed and
//!   reopened with the reporter's `QuestDbStore`; the time runs from that
//!   `Spool::open` until `Spool::status()` shows `lag_bytes == 0` (polled
//!   every 5 ms): reading the segments, decoding every record, writing 512
//!   batches per request, persisting the cursor after each, trimming. The
//!   store is wrapped to time each `Store::write` ("in store": ILP encoding,
//!   HTTP, server), the rest is the drainer's own work (of which
//!   `Spool::open`, its recovery scan of every segment, is shown apart). The
//!   segments were just written, so they are read from the page cache, as
//!   they mostly would be after an outage of minutes.
//!
//! Rows/s and samples/s are the rows and samples of the workload over that
//! time; the ratio is spool/direct. The CPU seconds of this process (all
//! threads) and of VictoriaMetrics during the timed part are shown, from
//! `/proc/PID/stat`. After each run, VictoriaMetrics is flushed and
//! `sum(count_over_time(...))` must equal the samples sent.
//!
//! # `catchup`: a ten-minute outage of 100 gatherers
//!
//! `nodes x cycles` batches (100 x 60: ten minutes of a 10 s interval) are
//! acknowledged into a spool whose `QuestDbStore` points at a port where
//! nothing listens yet: 100 concurrent writers, one per node, each writing
//! its 60 batches in order, each awaiting its acknowledgement (the ingest
//! side of a reconnecting fleet, in process: no gRPC). The database then
//! stays down `--hold` seconds more, so the drainer's retry backoff reaches
//! its 30 s ceiling as it would after ten minutes. Then VictoriaMetrics
//! starts on that port; from the moment it answers `/health`, the time until
//! `lag_bytes == 0` and every batch delivered is "back → lag 0". The wait
//! for the drainer's next retry (at most 30 s, drawn at random) is part of
//! it and shown apart ("retry wait": until the first successful
//! `Store::write` began); "drain" is the rest. Catch-up rate = the outage
//! (`cycles x 10 s` = 600 s) / that time, both ways. The drainer's first
//! attempt during the outage took the few batches then in the spool and
//! retries exactly those, so the first successful request is small (one
//! more request than `batches / 512`).
//!
//! Every child process (VictoriaMetrics, perf) is stopped by a guard on
//! drop; VictoriaMetrics with SIGTERM (it may lose acknowledged samples on
//! SIGKILL). Everything listens on 127.0.0.1 only.

#![forbid(unsafe_code)]

use hostpulse_testkit::{Tsdb, procstat};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatherer::collect::{Collectors, Family, Settings};
use gatherer::run::collect_cycle;
use hostpulse_proto::codec::{DecodedRow, Dictionary};
use hostpulse_proto::pb;
use hostpulse_proto::row::{Row, Value};
use prost::Message;
use questdb::ingress::{Buffer, Sender, TimestampNanos};
use reporter::intake::{AcceptedBatch, Intake};
use reporter::spool::{Spool, SpoolOptions};
use reporter::store::questdb::QuestDbStore;
use reporter::store::{Store, StoreError};

/// Batches per direct flush: the drainer's group size.
const GROUP: usize = reporter::spool::drain::MAX_BATCHES;
/// Simulated collection interval.
const INTERVAL_NS: i64 = 10_000_000_000;
/// The spool limit used everywhere (never reached).
const SPOOL_MAX_BYTES: u64 = 16 << 30;
/// Writers that pre-fill a spool.
const FILL_WRITERS: usize = 100;
/// Status polling period.
const POLL: Duration = Duration::from_millis(5);
/// Longest wait for a drain before giving up.
const DRAIN_LIMIT: Duration = Duration::from_secs(900);

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    print_machine(&args.dir);
    let rows = host_rows();
    let work = Arc::new(Workload::build(&rows, args.nodes, args.cycles));
    work.describe(&rows);
    if args.sections.contains(&Section::Append) {
        append_section(&rt, &args, &work);
    }
    if args.sections.contains(&Section::Drain) {
        drain_section(&rt, &args, &work);
    }
    if args.sections.contains(&Section::Catchup) {
        catchup_section(&rt, &args, &work);
    }
}

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Append,
    Drain,
    Catchup,
}

struct Args {
    sections: Vec<Section>,
    runs: usize,
    secs: u64,
    writers: Vec<usize>,
    nodes: usize,
    cycles: usize,
    hold: u64,
    dir: PathBuf,
    verify: bool,
}

impl Args {
    fn parse() -> Args {
        let mut a = Args {
            sections: Vec::new(),
            runs: 3,
            secs: 10,
            writers: vec![1, 16, 256],
            nodes: 100,
            cycles: 60,
            hold: 60,
            dir: std::env::temp_dir(),
            verify: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value =
                |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
            match arg.as_str() {
                "append" => a.sections.push(Section::Append),
                "drain" => a.sections.push(Section::Drain),
                "catchup" => a.sections.push(Section::Catchup),
                "all" => a
                    .sections
                    .extend([Section::Append, Section::Drain, Section::Catchup]),
                "--runs" => a.runs = number(&value("--runs")),
                "--secs" => a.secs = number(&value("--secs")),
                "--nodes" => a.nodes = number(&value("--nodes")),
                "--cycles" => a.cycles = number(&value("--cycles")),
                "--hold" => a.hold = number(&value("--hold")),
                "--dir" => a.dir = PathBuf::from(value("--dir")),
                "--writers" => {
                    a.writers = value("--writers").split(',').map(number).collect();
                }
                "--no-verify" => a.verify = false,
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                other => panic!("unknown argument {other:?} (see the module doc)"),
            }
        }
        if a.sections.is_empty() {
            a.sections = vec![Section::Append, Section::Drain, Section::Catchup];
        }
        assert!(a.runs > 0 && a.nodes > 0 && a.cycles > 0 && a.secs > 0);
        a
    }
}

fn number<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a number"))
}

// ---------------------------------------------------------------- machine

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

fn print_machine(dir: &Path) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let debian = std::fs::read_to_string("/etc/debian_version").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let dir_text = dir.display().to_string();
    println!("# hostpulse reporter durability benchmarks\n");
    println!(
        "- command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "- machine: {cores} vCPU {cpu}, Linux {}, Debian {}",
        command_output("uname", &["-r"]),
        debian.trim()
    );
    println!("- load average at start: {}", load.trim());
    println!(
        "- spool and database directory: {} on `{}`",
        dir.display(),
        command_output(
            "findmnt",
            &["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", &dir_text]
        )
    );
    let df = command_output("df", &["-h", "--output=source,size,avail", &dir_text]);
    println!("- df: {}", df.lines().last().unwrap_or("").trim());
    let device = command_output("findmnt", &["-n", "-o", "SOURCE", "-T", &dir_text]);
    let name = device.rsplit('/').next().unwrap_or("");
    let cache =
        std::fs::read_to_string(format!("/sys/block/{name}/queue/write_cache")).unwrap_or_default();
    let rotational =
        std::fs::read_to_string(format!("/sys/block/{name}/queue/rotational")).unwrap_or_default();
    println!(
        "- block device {name}: write_cache={}, rotational={} (a virtio disk of a KVM guest)",
        cache.trim(),
        rotational.trim()
    );
    println!(
        "- VictoriaMetrics: {}",
        command_output(
            "dpkg-query",
            &["-W", "-f", "${Version}", "victoria-metrics"]
        )
    );
    println!();
}

// ---------------------------------------------------------------- workload

/// Two cycles of this host, one second apart: the second one's rows.
fn host_rows() -> Vec<Row> {
    let mut collectors = Collectors::new(&Family::ALL, &Settings::default());
    let mut rows = Vec::new();
    collect_cycle(&mut collectors, &mut rows);
    std::thread::sleep(Duration::from_secs(1));
    collect_cycle(&mut collectors, &mut rows);
    rows
}

/// Every batch of every simulated node.
struct Workload {
    nodes: usize,
    cycles: usize,
    /// Cycle-major: index `cycle * nodes + node`.
    batches: Vec<Arc<AcceptedBatch>>,
    /// Spool record size of each batch (`SpooledBatch` + record header).
    record_bytes: Vec<u64>,
    /// Rows and samples VictoriaMetrics should receive per batch (rows with a
    /// sendable field; finite values).
    rows_per_batch: u64,
    samples_per_batch: u64,
    first_ts: i64,
    last_ts: i64,
}

impl Workload {
    fn build(rows: &[Row], nodes: usize, cycles: usize) -> Workload {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        let first_ts = (now - cycles as i64 * 10) * 1_000_000_000;
        let mut slots: Vec<Option<Arc<AcceptedBatch>>> = vec![None; nodes * cycles];
        for node in 0..nodes {
            let name: Arc<str> = Arc::from(format!("bench-node-{node:03}").as_str());
            let mut dict = Dictionary::new();
            for cycle in 0..cycles {
                let ts = first_ts + cycle as i64 * INTERVAL_NS;
                let cycle_rows: Vec<Row> = rows.iter().map(|r| Row { ts, ..r.clone() }).collect();
                let sequence = cycle as u64 + 1;
                let compact = dict.encode(sequence, &cycle_rows, &[]);
                let stored = dict.complete(&compact);
                let decoded = hostpulse_testkit::batch::decoded_rows(sequence, &cycle_rows);
                slots[cycle * nodes + node] = Some(Arc::new(AcceptedBatch {
                    node: Arc::clone(&name),
                    decoded,
                    stored,
                }));
            }
        }
        let batches: Vec<Arc<AcceptedBatch>> = slots.into_iter().flatten().collect();
        let received_ms = now * 1000;
        let record_bytes = batches
            .iter()
            .map(|b| {
                let record = pb::SpooledBatch {
                    node: b.node.to_string(),
                    batch: Some(b.stored.clone()),
                    received_ms,
                };
                record.encoded_len() as u64 + hostpulse_spool::RECORD_HEADER_LEN
            })
            .collect();
        let one = &batches[0].decoded.rows;
        let rows_per_batch = one
            .iter()
            .filter(|r| r.fields.iter().any(|(_, v)| sendable(v)))
            .count() as u64;
        let samples_per_batch = one
            .iter()
            .map(|r| r.fields.iter().filter(|(_, v)| sendable(v)).count())
            .sum::<usize>() as u64;
        Workload {
            nodes,
            cycles,
            batches,
            record_bytes,
            rows_per_batch,
            samples_per_batch,
            first_ts,
            last_ts: first_ts + (cycles as i64 - 1) * INTERVAL_NS,
        }
    }

    fn len(&self) -> usize {
        self.batches.len()
    }

    fn rows(&self) -> u64 {
        self.rows_per_batch * self.len() as u64
    }

    fn samples(&self) -> u64 {
        self.samples_per_batch * self.len() as u64
    }

    fn describe(&self, rows: &[Row]) {
        let mut tables: Vec<(&str, usize)> = Vec::new();
        for r in rows {
            match tables.iter_mut().find(|(t, _)| *t == r.table) {
                Some((_, n)) => *n += 1,
                None => tables.push((r.table, 1)),
            }
        }
        let wire = self.batches[0].stored.encoded_len();
        let mean_record =
            self.record_bytes.iter().sum::<u64>() as f64 / self.record_bytes.len() as f64;
        println!("## Workload\n");
        println!(
            "- one cycle of this host: {} rows, {} samples (rows by table: {})",
            rows.len(),
            rows.iter().map(|r| r.fields.len()).sum::<usize>(),
            tables
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "- one batch: {} rows / {} samples to store; self-contained protobuf {} B; spool record {:.0} B",
            self.rows_per_batch, self.samples_per_batch, wire, mean_record
        );
        println!(
            "- drain and catchup workload: {} nodes x {} cycles = {} batches, {} rows, {} samples, {:.1} MB of spool records",
            self.nodes,
            self.cycles,
            self.len(),
            self.rows(),
            self.samples(),
            self.record_bytes.iter().sum::<u64>() as f64 / 1e6
        );
        println!();
    }
}

fn sendable(v: &Value) -> bool {
    match v {
        Value::Int(_) | Value::Text(_) => true,
        Value::Float(f) => f.is_finite(),
    }
}

// ---------------------------------------------------------------- helpers

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// User + system CPU seconds of a process (all its threads); NaN when
/// unreadable.
fn cpu_seconds(pid: u32) -> f64 {
    seconds(procstat::cpu_ticks(procstat::Process::Pid(pid)))
}

/// User + system CPU seconds of one thread of this process.
fn thread_cpu(tid: u32) -> f64 {
    seconds(procstat::cpu_ticks(procstat::Process::OwnThread(tid)))
}

fn seconds(ticks: std::io::Result<u64>) -> f64 {
    ticks.map_or(f64::NAN, |t| {
        t as f64 / procstat::clock_ticks_per_second() as f64
    })
}

fn self_cpu() -> f64 {
    cpu_seconds(std::process::id())
}

/// Thread ids of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let tid = e.file_name().to_str()?.parse().ok()?;
            comm.trim().starts_with(prefix).then_some(tid)
        })
        .collect()
}

/// `perf stat` counting the fdatasync and fsync calls of given threads.
/// Stopped (SIGINT, then SIGKILL) on drop.
struct SyncCounter {
    child: Option<Child>,
}

/// Counts per thread id: (fdatasync, fsync).
type SyncCounts = Vec<(u32, u64, u64)>;

impl SyncCounter {
    fn start(tids: &[u32]) -> SyncCounter {
        let list = tids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "--per-thread",
                "-e",
                "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync",
                "-t",
                &list,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok();
        // Let perf attach before anything is measured.
        std::thread::sleep(Duration::from_millis(300));
        SyncCounter { child }
    }

    /// Stops perf and parses its counts; `None` if perf is unavailable.
    fn finish(mut self) -> Option<SyncCounts> {
        let child = self.child.take()?;
        signal(child.id(), "INT");
        let output = wait_child(child, Duration::from_secs(10))?;
        if std::env::var_os("DURABILITY_DEBUG").is_some() {
            eprintln!("perf output:\n{output}");
        }
        let mut counts: SyncCounts = Vec::new();
        for line in output.lines() {
            // comm-tid,count,,event,...
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 4 {
                continue;
            }
            let Some(tid) = f[0].rsplit('-').next().and_then(|t| t.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(n) = f[1].parse::<u64>() else { continue };
            let entry = match counts.iter_mut().position(|(t, _, _)| *t == tid) {
                Some(i) => &mut counts[i],
                None => {
                    counts.push((tid, 0, 0));
                    counts.last_mut().expect("just pushed")
                }
            };
            if f[3].ends_with("fdatasync") {
                entry.1 += n;
            } else if f[3].ends_with("fsync") {
                entry.2 += n;
            }
        }
        (!counts.is_empty()).then_some(counts)
    }
}

impl Drop for SyncCounter {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit (killing it after `limit`), returning its stderr.
fn wait_child(mut child: Child, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    let stderr = child.stderr.take()?;
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        text.push_str(&line);
        text.push('\n');
    }
    Some(text)
}

/// A VictoriaMetrics on 127.0.0.1 with its own data directory under the
/// bench's `--dir`, stopped with SIGTERM on drop: the tests' guard
/// ([`Tsdb`]), without deduplication.
type Vm = Tsdb;

/// How the bench reads a [`Vm`].
trait VmExt {
    /// User + system CPU seconds of the server so far (NaN when stopped).
    fn cpu(&self) -> f64;
    /// `GET path_and_query`: the body of a 2xx answer.
    fn get(&self, path_and_query: &str) -> Option<String>;
    /// Samples stored between the workload's first and last timestamps.
    fn count_samples(&self, work: &Workload) -> Option<u64>;
}

impl VmExt for Vm {
    fn cpu(&self) -> f64 {
        self.pid().map_or(f64::NAN, cpu_seconds)
    }

    fn get(&self, path_and_query: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.port);
        let mut response = ureq::get(&url).call().ok()?;
        response.body_mut().read_to_string().ok()
    }

    fn count_samples(&self, work: &Workload) -> Option<u64> {
        self.get("/internal/force_flush")?;
        let window_s = (work.last_ts - work.first_ts) / 1_000_000_000 + 5;
        let at = work.last_ts as f64 / 1e9 + 1.0;
        let query = format!("sum(count_over_time({{__name__=~\".+\"}}[{window_s}s]))");
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let mut response = ureq::get(&url)
            .query("query", &query)
            .query("time", format!("{at:.3}"))
            .call()
            .ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f as u64)
    }
}

/// Shuts the spool down on drop (its threads run until then).
struct SpoolGuard(Arc<Spool>);

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        self.0.shutdown(Duration::from_secs(5));
    }
}

fn spool_dir(base: &Path) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("durability-spool-")
        .tempdir_in(base)
        .expect("spool directory")
}

fn open_spool(dir: &Path, stores: Vec<Box<dyn Store>>) -> SpoolGuard {
    SpoolGuard(Arc::new(
        Spool::open(
            SpoolOptions {
                dir: dir.to_path_buf(),
                max_bytes: SPOOL_MAX_BYTES,
            },
            stores,
        )
        .expect("spool opens"),
    ))
}

/// Writes every batch of `work` into `spool`: one task per node, each
/// writing its batches in cycle order and awaiting every acknowledgement.
async fn fill(spool: Arc<Spool>, work: Arc<Workload>, writers: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let spool = Arc::clone(&spool);
        let work = Arc::clone(&work);
        tasks.push(tokio::spawn(async move {
            for node in (w..work.nodes).step_by(writers) {
                for cycle in 0..work.cycles {
                    let b = &work.batches[cycle * work.nodes + node];
                    spool
                        .write(Arc::clone(b))
                        .await
                        .expect("the spool acknowledges");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
}

/// Waits until the spool's only store has no lag and delivered `total`.
fn wait_drained(spool: &Spool, total: u64) -> Instant {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let status = spool.status();
        let store = &status.stores[0];
        if store.lag_bytes == 0 && store.delivered_batches >= total {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "not drained after {DRAIN_LIMIT:?}: {status:?}"
        );
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------- stores

/// Accepts every write at once.
struct InstantStore;

impl Store for InstantStore {
    fn name(&self) -> &'static str {
        "instant"
    }

    fn write(&mut self, _batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One `Store::write`: when it began, how long it took, whether it succeeded.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    start: Instant,
    took: Duration,
    ok: bool,
}

/// Times every write of the store it wraps.
struct Timed<S> {
    inner: S,
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl<S: Store> Store for Timed<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.write(batches);
        let attempt = Attempt {
            start,
            took: start.elapsed(),
            ok: result.is_ok(),
        };
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(attempt);
        result
    }
}

fn timed_questdb(conf: &str) -> (Box<dyn Store>, Arc<Mutex<Vec<Attempt>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let store = Timed {
        inner: QuestDbStore::new(conf).expect("store configuration"),
        log: Arc::clone(&log),
    };
    (Box::new(store), log)
}

fn attempts(log: &Mutex<Vec<Attempt>>) -> Vec<Attempt> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

// ---------------------------------------------------------------- append

struct AppendRun {
    secs: f64,
    batches: u64,
    samples: u64,
    bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// fdatasync calls of the spool writer thread, fsync calls of it and of the drainer.
    writer_fdatasync: Option<u64>,
    writer_fsync: Option<u64>,
    drainer_fsync: Option<u64>,
    lag_mb: f64,
    /// CPU seconds of the spool's writer and drainer threads during the run.
    writer_cpu: f64,
    drainer_cpu: f64,
}

impl AppendRun {
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.secs
    }

    fn fsyncs_per_s(&self) -> f64 {
        self.writer_fdatasync.map_or(f64::NAN, |n| self.per_s(n))
    }

    fn per_commit(&self) -> f64 {
        self.writer_fdatasync
            .map_or(f64::NAN, |n| self.batches as f64 / n.max(1) as f64)
    }
}

fn append_section(rt: &tokio::runtime::Runtime, args: &Args, work: &Arc<Workload>) {
    println!("## 1. Spool append throughput (fdatasync per group commit)\n");
    println!(
        "{} s per run, {} run(s) per K; a store that accepts at once drains concurrently. \
         MB = 10^6 bytes of spool records.\n",
        args.secs, args.runs
    );
    println!(
        "| K writers | run | batches/s | samples/s | MB/s | writer fdatasync/s | batches per fdatasync | ack p50 ms | ack p99 ms | writer fsync (dir) | writer thread CPU % | drainer thread CPU % | drainer fsync/s | lag at stop MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for &k in &args.writers {
        let mut runs = Vec::new();
        for run in 0..args.runs {
            let r = append_run(rt, args, work, k);
            println!(
                "| {k} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.1} | {:.1} |",
                run + 1,
                r.per_s(r.batches),
                r.per_s(r.samples),
                r.per_s(r.bytes) / 1e6,
                r.fsyncs_per_s(),
                r.per_commit(),
                r.p50_ms,
                r.p99_ms,
                r.writer_fsync.map_or("n/a".into(), |n| n.to_string()),
                100.0 * r.writer_cpu / r.secs,
                100.0 * r.drainer_cpu / r.secs,
                r.drainer_fsync.map_or(f64::NAN, |n| r.per_s(n)),
                r.lag_mb,
            );
            runs.push(r);
        }
        summary.push((k, runs));
    }
    println!("\nMedians:\n");
    println!(
        "| K writers | batches/s | samples/s | MB/s | fdatasync/s | batches per fdatasync | ack p50 ms | ack p99 ms | writer thread CPU % |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (k, runs) in &summary {
        let m = |f: &dyn Fn(&AppendRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        println!(
            "| {k} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} | {:.0} |",
            m(&|r| r.per_s(r.batches)),
            m(&|r| r.per_s(r.samples)),
            m(&|r| r.per_s(r.bytes) / 1e6),
            m(&AppendRun::fsyncs_per_s),
            m(&AppendRun::per_commit),
            m(&|r| r.p50_ms),
            m(&|r| r.p99_ms),
            m(&|r| 100.0 * r.writer_cpu / r.secs),
        );
    }
    println!();
}

fn append_run(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    work: &Arc<Workload>,
    k: usize,
) -> AppendRun {
    let dir = spool_dir(&args.dir);
    let guard = open_spool(dir.path(), vec![Box::new(InstantStore)]);
    let spool = Arc::clone(&guard.0);
    // A thread names itself once running: wait for both.
    let named = Instant::now();
    let (writer_tids, drainer_tids) = loop {
        let found = (
            threads_named("hostpulse-spool"),
            threads_named("hostpulse-drain"),
        );
        if (!found.0.is_empty() && !found.1.is_empty()) || named.elapsed() > Duration::from_secs(2)
        {
            break found;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let tids: Vec<u32> = writer_tids.iter().chain(&drainer_tids).copied().collect();
    if std::env::var_os("DURABILITY_DEBUG").is_some() {
        eprintln!("writer {writer_tids:?} drainer {drainer_tids:?}");
    }
    let counter = SyncCounter::start(&tids);
    let threads_cpu = || {
        (
            writer_tids.iter().map(|t| thread_cpu(*t)).sum::<f64>(),
            drainer_tids.iter().map(|t| thread_cpu(*t)).sum::<f64>(),
        )
    };
    let cpu0 = threads_cpu();
    let secs = args.secs;
    let (elapsed, batches, samples, bytes, mut latencies) = rt.block_on(async {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for w in 0..k {
            let spool = Arc::clone(&spool);
            let work = Arc::clone(work);
            tasks.push(tokio::spawn(async move {
                let (mut batches, mut samples, mut bytes) = (0u64, 0u64, 0u64);
                let mut latencies: Vec<u32> = Vec::new();
                let mut i = w;
                while Instant::now() < deadline {
                    let index = i % work.len();
                    let b = &work.batches[index];
                    let t = Instant::now();
                    spool
                        .write(Arc::clone(b))
                        .await
                        .expect("the spool acknowledges");
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    batches += 1;
                    samples += b.decoded.samples as u64;
                    bytes += work.record_bytes[index];
                    i += k;
                }
                (batches, samples, bytes, latencies)
            }));
        }
        let (mut batches, mut samples, mut bytes) = (0u64, 0u64, 0u64);
        let mut latencies = Vec::new();
        for t in tasks {
            let (b, s, by, l) = t.await.expect("writer task");
            batches += b;
            samples += s;
            bytes += by;
            latencies.extend(l);
        }
        (start.elapsed(), batches, samples, bytes, latencies)
    });
    let cpu1 = threads_cpu();
    let status = spool.status();
    let counts = counter.finish();
    assert_eq!(
        status.appended_batches, batches,
        "every write acknowledged once"
    );
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
    };
    let of = |tids: &[u32], pick: fn(&(u32, u64, u64)) -> u64| {
        counts.as_ref().map(|c| {
            c.iter()
                .filter(|e| tids.contains(&e.0))
                .map(pick)
                .sum::<u64>()
        })
    };
    let run = AppendRun {
        secs: elapsed.as_secs_f64(),
        batches,
        samples,
        bytes,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        writer_fdatasync: of(&writer_tids, |e| e.1),
        writer_fsync: of(&writer_tids, |e| e.2),
        drainer_fsync: of(&drainer_tids, |e| e.2 + e.1),
        lag_mb: status
            .stores
            .first()
            .map_or(0.0, |s| s.lag_bytes as f64 / 1e6),
        writer_cpu: cpu1.0 - cpu0.0,
        drainer_cpu: cpu1.1 - cpu0.1,
    };
    drop(guard);
    drop(dir);
    run
}

// ---------------------------------------------------------------- drain

struct DrainRun {
    secs: f64,
    /// Seconds inside `Store::write` / flushes; for direct, also the encoding.
    store_secs: f64,
    encode_secs: f64,
    /// Spool only: `Spool::open` (recovery scan of every segment), part of `secs`.
    open_secs: f64,
    requests: usize,
    self_cpu: f64,
    vm_cpu: f64,
    verified: Option<u64>,
}

fn drain_section(rt: &tokio::runtime::Runtime, args: &Args, work: &Arc<Workload>) {
    println!("## 2. Drain into VictoriaMetrics: direct questdb-rs Sender vs spool drain\n");
    println!(
        "{} batches ({} rows, {} samples), {GROUP} batches per request, a fresh VictoriaMetrics per measurement:",
        work.len(),
        work.rows(),
        work.samples()
    );
    println!("`{}`\n", Vm::reserve_in(&args.dir, &[]).command_line());
    println!(
        "| run | path | seconds | rows/s | samples/s | requests | in flush / Store::write s | ILP encoding s | drainer's own s (of which Spool::open) | bench CPU s | VM CPU s | samples in VM |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut direct_runs = Vec::new();
    let mut spool_runs = Vec::new();
    for run in 0..args.runs {
        // Alternate the order, so neither path always runs on a warmer machine.
        let order = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for direct in order {
            let r = if direct {
                drain_direct(args, work)
            } else {
                drain_spool(rt, args, work)
            };
            let own = if direct {
                "".to_string()
            } else {
                format!("{:.2} ({:.2})", r.secs - r.store_secs, r.open_secs)
            };
            println!(
                "| {} | {} | {:.2} | {:.0} | {:.0} | {} | {:.2} | {} | {own} | {:.1} | {:.1} | {} |",
                run + 1,
                if direct { "direct" } else { "spool" },
                r.secs,
                work.rows() as f64 / r.secs,
                work.samples() as f64 / r.secs,
                r.requests,
                r.store_secs,
                if direct {
                    format!("{:.2}", r.encode_secs)
                } else {
                    "(in Store::write)".into()
                },
                r.self_cpu,
                r.vm_cpu,
                verified_text(r.verified, work.samples()),
            );
            if direct {
                direct_runs.push(r);
            } else {
                spool_runs.push(r);
            }
        }
    }
    let rate = |runs: &[DrainRun]| {
        median(
            &runs
                .iter()
                .map(|r| work.rows() as f64 / r.secs)
                .collect::<Vec<_>>(),
        )
    };
    let (d, s) = (rate(&direct_runs), rate(&spool_runs));
    let spr = work.samples_per_batch as f64 / work.rows_per_batch as f64;
    println!("\nMedians:\n");
    println!("| path | rows/s | samples/s |");
    println!("|---|---:|---:|");
    println!("| direct (questdb-rs Sender) | {d:.0} | {:.0} |", d * spr);
    println!("| spool drain (QuestDbStore) | {s:.0} | {:.0} |", s * spr);
    println!(
        "\nRatio spool drain / direct (median rows/s): **{:.2}** (target >= 0.5)\n",
        s / d
    );
}

fn verified_text(found: Option<u64>, expected: u64) -> String {
    match found {
        None => "not checked".into(),
        Some(n) if n == expected => format!("{n} (all)"),
        Some(n) => format!("{n} of {expected} (MISMATCH)"),
    }
}

fn drain_direct(args: &Args, work: &Workload) -> DrainRun {
    let mut vm = Vm::reserve_in(&args.dir, &[]);
    vm.resume();
    let mut sender = Sender::from_conf(vm.conf()).expect("questdb-rs sender");
    let mut buf = sender.new_buffer();
    let (cpu0, vm_cpu0) = (self_cpu(), vm.cpu());
    let start = Instant::now();
    let (mut encode, mut flush, mut requests) = (Duration::ZERO, Duration::ZERO, 0);
    for group in work.batches.chunks(GROUP) {
        let t = Instant::now();
        for b in group {
            for row in &b.decoded.rows {
                push_row(&mut buf, &b.node, row).expect("a row of this host encodes");
            }
        }
        let t2 = Instant::now();
        encode += t2 - t;
        sender
            .flush(&mut buf)
            .expect("VictoriaMetrics takes the rows");
        flush += t2.elapsed();
        requests += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let (self_cpu, vm_cpu) = (self_cpu() - cpu0, vm.cpu() - vm_cpu0);
    let verified = args.verify.then(|| vm.count_samples(work)).flatten();
    DrainRun {
        secs,
        store_secs: flush.as_secs_f64(),
        encode_secs: encode.as_secs_f64(),
        open_secs: f64::NAN,
        requests,
        self_cpu,
        vm_cpu,
        verified,
    }
}

/// The row as `QuestDbStore` writes it (node symbol first, empty tags left
/// out, integers clamped to i64, non-finite floats left out).
fn push_row(buf: &mut Buffer, node: &str, row: &DecodedRow) -> questdb::Result<()> {
    if !row.fields.iter().any(|(_, v)| sendable(v)) {
        return Ok(());
    }
    buf.table(row.key.table.as_str())?.symbol("node", node)?;
    for (name, value) in &row.key.tags {
        if !value.is_empty() {
            buf.symbol(name.as_str(), value)?;
        }
    }
    for (name, value) in &row.fields {
        match value {
            Value::Int(v) => {
                buf.column_i64(&**name, i64::try_from(*v).unwrap_or(i64::MAX))?;
            }
            Value::Float(v) if v.is_finite() => {
                buf.column_f64(&**name, *v)?;
            }
            Value::Float(_) => {}
            Value::Text(t) => {
                buf.column_str(&**name, t)?;
            }
        }
    }
    buf.at(TimestampNanos::new(row.ts))
}

fn drain_spool(rt: &tokio::runtime::Runtime, args: &Args, work: &Arc<Workload>) -> DrainRun {
    let dir = spool_dir(&args.dir);
    {
        let guard = open_spool(dir.path(), Vec::new());
        rt.block_on(fill(Arc::clone(&guard.0), Arc::clone(work), FILL_WRITERS));
    }
    let mut vm = Vm::reserve_in(&args.dir, &[]);
    vm.resume();
    let (store, log) = timed_questdb(&vm.conf());
    let (cpu0, vm_cpu0) = (self_cpu(), vm.cpu());
    let start = Instant::now();
    let guard = open_spool(dir.path(), vec![store]);
    let open_secs = start.elapsed().as_secs_f64();
    let done = wait_drained(&guard.0, work.len() as u64);
    let secs = (done - start).as_secs_f64();
    let (self_cpu, vm_cpu) = (self_cpu() - cpu0, vm.cpu() - vm_cpu0);
    drop(guard);
    let tries = attempts(&log);
    assert!(tries.iter().all(|a| a.ok), "a write failed: {tries:?}");
    let verified = args.verify.then(|| vm.count_samples(work)).flatten();
    DrainRun {
        secs,
        store_secs: tries.iter().map(|a| a.took.as_secs_f64()).sum(),
        encode_secs: f64::NAN,
        open_secs,
        requests: tries.len(),
        self_cpu,
        vm_cpu,
        verified,
    }
}

// ---------------------------------------------------------------- catchup

struct CatchupRun {
    fill_secs: f64,
    failed_attempts: usize,
    wait_secs: f64,
    drain_secs: f64,
    total_secs: f64,
    requests: usize,
    store_secs: f64,
    verified: Option<u64>,
}

fn catchup_section(rt: &tokio::runtime::Runtime, args: &Args, work: &Arc<Workload>) {
    let outage = work.cycles as f64 * INTERVAL_NS as f64 / 1e9;
    println!(
        "## 3. Catch-up after a {:.0}-minute outage of {} gatherers (10 s interval)\n",
        outage / 60.0,
        work.nodes
    );
    println!(
        "{} batches ({} rows, {} samples) acknowledged into the spool while the database is down \
         ({} concurrent writers, one per node, in process); the database then stays down {} s more \
         (after about 60 s of failures the drainer's retry backoff is at its 30 s ceiling, as after a \
         real 10-minute outage), then starts.\n",
        work.len(),
        work.rows(),
        work.samples(),
        work.nodes,
        args.hold
    );
    println!(
        "| run | ingest: acked batches/s | failed store attempts | retry wait s | drain s | back → lag 0 s | catch-up (back → lag 0) | catch-up (drain only) | requests | in Store::write s | samples in VM |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for run in 0..args.runs {
        let r = catchup_run(rt, args, work);
        println!(
            "| {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.1}x | {:.1}x | {} | {:.2} | {} |",
            run + 1,
            work.len() as f64 / r.fill_secs,
            r.failed_attempts,
            r.wait_secs,
            r.drain_secs,
            r.total_secs,
            outage / r.total_secs,
            outage / r.drain_secs,
            r.requests,
            r.store_secs,
            verified_text(r.verified, work.samples()),
        );
        runs.push(r);
    }
    let m = |f: &dyn Fn(&CatchupRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    println!("\nMedians:\n");
    println!(
        "| ingest batches/s | retry wait s | drain s | back → lag 0 s | catch-up (back → lag 0) | catch-up (drain only) | drain rows/s | drain samples/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.2} | {:.2} | {:.2} | {:.1}x | {:.1}x | {:.0} | {:.0} |\n",
        m(&|r| work.len() as f64 / r.fill_secs),
        m(&|r| r.wait_secs),
        m(&|r| r.drain_secs),
        m(&|r| r.total_secs),
        m(&|r| outage / r.total_secs),
        m(&|r| outage / r.drain_secs),
        m(&|r| work.rows() as f64 / r.drain_secs),
        m(&|r| work.samples() as f64 / r.drain_secs),
    );
}

fn catchup_run(rt: &tokio::runtime::Runtime, args: &Args, work: &Arc<Workload>) -> CatchupRun {
    let dir = spool_dir(&args.dir);
    let mut vm = Vm::reserve_in(&args.dir, &[]);
    let (store, log) = timed_questdb(&vm.conf());
    let guard = open_spool(dir.path(), vec![store]);
    let start = Instant::now();
    rt.block_on(fill(Arc::clone(&guard.0), Arc::clone(work), work.nodes));
    let fill_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(args.hold));
    vm.resume();
    let back = Instant::now();
    let done = wait_drained(&guard.0, work.len() as u64);
    drop(guard);
    let tries = attempts(&log);
    let failed_attempts = tries.iter().filter(|a| !a.ok).count();
    let first_ok = tries
        .iter()
        .find(|a| a.ok)
        .map_or(back, |a| a.start.max(back));
    let ok: Vec<&Attempt> = tries.iter().filter(|a| a.ok).collect();
    let verified = args.verify.then(|| vm.count_samples(work)).flatten();
    CatchupRun {
        fill_secs,
        failed_attempts,
        wait_secs: (first_ok - back).as_secs_f64(),
        drain_secs: (done - first_ok).as_secs_f64(),
        total_secs: (done - back).as_secs_f64(),
        requests: ok.len(),
        store_secs: ok.iter().map(|a| a.took.as_secs_f64()).sum(),
        verified,
    }
}
