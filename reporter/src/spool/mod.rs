//! The reporter's disk spool: every batch is durable here before it is
//! acknowledged, and stays until every store has it.
//!
//! ```text
//!  ingest sessions ──write──► queue ──► writer thread: append, append, ... one fdatasync ──► acks
//!                                            │ (group commit)       │ notify
//!                                            ▼                      ▼
//!                              --spool-dir/NNN.seg        drainer thread per store
//!                                                         read from its cursor ─► Store::write
//!                                                         ─► cursor.store ─► remove_before(min cursor)
//! ```
//!
//! - Records are [`pb::SpooledBatch`]es (node + self-contained batch), in the
//!   segment log of the `hostpulse-spool` crate, whose crate doc shows the
//!   record layout (length, CRC32C, payload), rotation and recovery rule.
//! - Each store drains from its own cursor file, `--spool-dir/<store>.cursor`,
//!   advanced only after the store confirmed the write. Segments every
//!   cursor has passed are deleted.
//! - Damage (see `damage`): the spool crate truncates a torn tail at start
//!   and skips damaged ranges, at start and while draining, delivering every
//!   intact record around them; each range is counted once (bytes, records),
//!   logged once with its segment, offset and length, and its segment copied
//!   into `quarantine/` for `reporter spool inspect|replay` (see `inspect`).
//!   `Admin.Status` and `/metrics` report them. The reporter always starts.
//! - The limit: an append that would take the spool past `--spool-max-bytes`,
//!   or a full disk (ENOSPC), is refused: the batch is not acknowledged (the
//!   gatherer keeps it), the spool is marked full, which turns health to
//!   NOT_SERVING, until drains bring it under 90 % of the limit.

mod damage;
pub mod drain;
pub mod inspect;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_ops::metrics::{Counter, Exposition, Histogram, Kind};
use hostpulse_proto::pb;
use hostpulse_spool::{CursorFile, Log, Options as LogOptions, Position, Recovery};
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};

use crate::intake::{AcceptedBatch, Intake, IntakeError, IntakeFuture};
use crate::store::Store;
use drain::{DrainStatus, Drainer};

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// The spool directory.
    pub dir: PathBuf,
    /// Most bytes of live segments.
    pub max_bytes: u64,
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolOpenError {
    /// The directory cannot be created or locked (another reporter uses it,
    /// permissions). The reporter exits: give each replica its own directory.
    #[error("spool directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: hostpulse_spool::SpoolError,
    },
    /// A store's cursor file exists but is damaged; it was not trusted.
    #[error("cursor {}: {source}", path.display())]
    Cursor {
        /// The cursor file.
        path: PathBuf,
        /// What failed.
        source: hostpulse_spool::SpoolError,
    },
}

/// An encoded spool record and where to report its fate. Records are encoded
/// by the caller (a runtime worker), not by the single writer thread, which
/// then only appends: at many streams the encoding was its bottleneck.
type Job = (Vec<u8>, oneshot::Sender<Result<(), IntakeError>>);

/// What the writer and the drainers share.
pub(crate) struct Shared {
    /// `None` only while a poisoned log is being reopened, or if reopening failed.
    log: Mutex<Option<Log>>,
    /// Bumped after every sync; drainers wait on it.
    appended: Mutex<u64>,
    appended_cv: Condvar,
    max_bytes: u64,
    full: AtomicBool,
    full_tx: watch::Sender<bool>,
    appended_batches: AtomicU64,
    /// One cursor position per drainer, for trimming.
    cursors: Mutex<Vec<Position>>,
    drains: Vec<Arc<Mutex<DrainStatus>>>,
    quarantined: Mutex<Vec<pb::QuarantinedSegment>>,
    /// Damaged ranges skipped, each counted once.
    damage: Mutex<damage::Ledger>,
    truncated_bytes: u64,
    /// Drainers stop when this is set and they are caught up (or at the deadline).
    stopping: Mutex<Option<std::time::Instant>>,
    dir: PathBuf,
    pub(crate) metrics: SpoolMetrics,
}

/// Self-metrics of the spool (`/metrics`, `hostpulse_self`).
#[derive(Debug, Default)]
pub(crate) struct SpoolMetrics {
    /// One group commit: append of every queued batch plus one fdatasync.
    pub(crate) commit: Histogram,
    /// Batches refused because the spool or the disk was full.
    pub(crate) refused_full: Counter,
    /// Appends or syncs that failed with an I/O error.
    pub(crate) io_errors: Counter,
    /// Per store, in drainer order.
    pub(crate) stores: Vec<StoreMetrics>,
}

/// Self-metrics of one store's drainer.
#[derive(Debug, Default)]
pub(crate) struct StoreMetrics {
    /// One `Store::write` call that succeeded.
    pub(crate) write: Histogram,
    /// `Store::write` calls that failed (unavailable or rejected).
    pub(crate) errors: Counter,
    /// Rows the store confirmed.
    pub(crate) rows: Counter,
}

impl Shared {
    /// Runs `f` on the log, reopening it first if a failed sync poisoned it
    /// (after a failed fsync the kernel may report later ones as successful,
    /// so the spool crate refuses writes until the log is reopened and
    /// re-verified). `None` if the log cannot be reopened.
    pub(crate) fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        // Each method of Log leaves it valid on error, so a poisoned lock is usable.
        let mut slot = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match Log::open(&self.dir, log_options(self.max_bytes)) {
                Ok((log, recovery)) => {
                    tracing::warn!("spool reopened after an I/O failure");
                    report_recovery(&recovery);
                    Shared::lock(&self.damage).recovered(&recovery);
                    *slot = Some(log);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the spool");
                    return None;
                }
            }
        }
        slot.as_mut().map(f)
    }

    /// Drops a poisoned log so that the next use reopens it.
    fn reset_log(&self) {
        let mut slot = self.log.lock().unwrap_or_else(|p| p.into_inner());
        *slot = None;
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes segments every drainer has passed; clears `full` when there is room again.
    pub(crate) fn trim(&self) {
        let min = Shared::lock(&self.cursors).iter().min().copied();
        let Some(bytes) = self.with_log(|log| {
            if let Some(min) = min {
                if let Err(e) = log.remove_before(min) {
                    tracing::warn!(error = %e, "cannot delete drained spool segments");
                }
            }
            log.bytes()
        }) else {
            return;
        };
        if self.full.load(Ordering::Relaxed) && bytes < self.max_bytes / 10 * 9 {
            self.full.store(false, Ordering::Relaxed);
            self.full_tx.send_replace(false);
            tracing::info!(
                bytes,
                limit = self.max_bytes,
                "spool below 90% of its limit: accepting batches again"
            );
        }
    }

    fn set_full(&self, reason: &str) {
        if !self.full.swap(true, Ordering::Relaxed) {
            self.full_tx.send_replace(true);
            tracing::warn!(
                reason,
                limit = self.max_bytes,
                "spool full: not acknowledging batches (gatherers keep them), health NOT_SERVING until the stores drain it"
            );
        }
    }

    /// Waits until something new was synced after generation `seen`, or `timeout`.
    pub(crate) fn wait_appended(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = Shared::lock(&self.appended);
        let (guard, _) = self
            .appended_cv
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    pub(crate) fn generation(&self) -> u64 {
        *Shared::lock(&self.appended)
    }

    /// A drainer skipped a damaged range: counted, logged and kept once.
    pub(crate) fn damaged(&self, range: &damage::Range, store: &str) {
        Shared::lock(&self.damage).met(&self.dir, range, store);
    }

    pub(crate) fn stop_deadline(&self) -> Option<std::time::Instant> {
        *Shared::lock(&self.stopping)
    }

    pub(crate) fn set_cursor(&self, index: usize, position: Position) {
        if let Some(c) = Shared::lock(&self.cursors).get_mut(index) {
            *c = position;
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The spool: the [`Intake`] for the ingest sessions, drained into stores.
pub struct Spool {
    shared: Arc<Shared>,
    /// `None` once shut down: the writer exits when the queue closes.
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Spool {
    /// Opens (recovering) the spool and starts its writer and one drainer per store.
    pub fn open(
        options: SpoolOptions,
        stores: Vec<Box<dyn Store>>,
    ) -> Result<Self, SpoolOpenError> {
        let (log, recovery) =
            Log::open(&options.dir, log_options(options.max_bytes)).map_err(|source| {
                SpoolOpenError::Dir {
                    dir: options.dir.clone(),
                    source,
                }
            })?;
        report_recovery(&recovery);
        let mut cursors = Vec::new();
        let mut cursor_files = Vec::new();
        for store in &stores {
            let file = CursorFile::new(options.dir.join(format!("{}.cursor", store.name())));
            let position = match file.load() {
                Ok(Some(p)) => p,
                Ok(None) => log.first(),
                Err(source) => {
                    // Replaying from the start is safe (stores are idempotent);
                    // skipping ahead could lose rows.
                    tracing::error!(path = %file.path().display(), error = %source, "damaged cursor file: replaying this store from the start of the spool");
                    log.first()
                }
            };
            cursors.push(position.max(log.first()));
            cursor_files.push(file);
        }
        let (full_tx, _) = watch::channel(false);
        let drains: Vec<Arc<Mutex<DrainStatus>>> = stores
            .iter()
            .map(|s| Arc::new(Mutex::new(DrainStatus::new(s.name()))))
            .collect();
        let quarantined = recovery
            .quarantined
            .iter()
            .map(|q| pb::QuarantinedSegment {
                path: q.path.display().to_string(),
                valid_records: q.valid_records,
                bytes: q.bytes,
                damage: format!("{:?} at offset {}", q.damage, q.damage_offset),
            })
            .collect();
        let shared = Arc::new(Shared {
            log: Mutex::new(Some(log)),
            appended: Mutex::new(0),
            appended_cv: Condvar::new(),
            max_bytes: options.max_bytes,
            full: AtomicBool::new(false),
            full_tx,
            appended_batches: AtomicU64::new(0),
            cursors: Mutex::new(cursors.clone()),
            drains: drains.clone(),
            quarantined: Mutex::new(quarantined),
            damage: Mutex::new(damage::Ledger::from_recovery(&recovery)),
            truncated_bytes: recovery.truncated_bytes,
            stopping: Mutex::new(None),
            dir: options.dir.clone(),
            metrics: SpoolMetrics {
                stores: stores.iter().map(|_| StoreMetrics::default()).collect(),
                ..SpoolMetrics::default()
            },
        });
        let (queue, rx) = mpsc::channel::<Job>(8192);
        let mut threads = Vec::new();
        let writer_shared = Arc::clone(&shared);
        threads.push(spawn("hostpulse-spool-writer", move || {
            writer(&writer_shared, rx)
        }));
        for (index, ((store, cursor), status)) in
            stores.into_iter().zip(cursor_files).zip(drains).enumerate()
        {
            let drainer = Drainer::new(
                index,
                store,
                cursor,
                cursors[index],
                Arc::clone(&shared),
                status,
            );
            threads.push(spawn(
                &format!("hostpulse-drain-{}", drainer.name()),
                move || drainer.run(),
            ));
        }
        shared.trim();
        Ok(Spool {
            shared,
            queue: Mutex::new(Some(queue)),
            threads: Mutex::new(threads),
        })
    }

    /// Receives `true` while the spool is full.
    pub fn full(&self) -> watch::Receiver<bool> {
        self.shared.full_tx.subscribe()
    }

    /// The spool and its stores, for `Admin.Status`.
    pub fn status(&self) -> pb::StatusResponse {
        let cursors = Shared::lock(&self.shared.cursors).clone();
        let (spool_bytes, lags) = self
            .shared
            .with_log(|log| {
                (
                    log.bytes(),
                    cursors
                        .iter()
                        .map(|c| log.bytes_from(*c))
                        .collect::<Vec<_>>(),
                )
            })
            .unwrap_or_default();
        let stores = self
            .shared
            .drains
            .iter()
            .zip(lags.into_iter().chain(std::iter::repeat(0)))
            .map(|(d, lag_bytes)| {
                let d = Shared::lock(d);
                pb::StoreStatus {
                    name: d.name.to_string(),
                    lag_bytes,
                    delivered_batches: d.delivered,
                    rejected_batches: d.rejected,
                    last_error: d.last_error.clone(),
                    failing_attempts: d.failing,
                }
            })
            .collect();
        let damage = Shared::lock(&self.shared.damage);
        pb::StatusResponse {
            spool_bytes,
            spool_max_bytes: self.shared.max_bytes,
            spool_full: self.shared.full.load(Ordering::Relaxed),
            appended_batches: self.shared.appended_batches.load(Ordering::Relaxed),
            quarantined: Shared::lock(&self.shared.quarantined).clone(),
            stores,
            truncated_bytes: self.shared.truncated_bytes,
            skipped_bytes: damage.bytes,
            skipped_records: damage.records,
            damaged: damage.listed(),
            ..Default::default()
        }
    }

    /// Writes the spool's and each store's metrics (`/metrics`).
    pub fn write_metrics(&self, page: &mut Exposition) {
        let status = self.status();
        let segments = self.shared.with_log(|log| log.segments()).unwrap_or(0);
        let m = &self.shared.metrics;
        page.single(
            "hostpulse_reporter_spool_bytes",
            Kind::Gauge,
            "Bytes in the spool (acknowledged, not yet drained into every store).",
            status.spool_bytes as f64,
        );
        page.single(
            "hostpulse_reporter_spool_max_bytes",
            Kind::Gauge,
            "The spool's limit (--spool-max-bytes).",
            status.spool_max_bytes as f64,
        );
        page.single(
            "hostpulse_reporter_spool_segments",
            Kind::Gauge,
            "Segment files in the spool.",
            segments as f64,
        );
        page.single(
            "hostpulse_reporter_spool_full",
            Kind::Gauge,
            "1 while the spool is full and batches are not acknowledged.",
            f64::from(u8::from(status.spool_full)),
        );
        page.single(
            "hostpulse_reporter_spool_appended_batches_total",
            Kind::Counter,
            "Batches made durable in the spool.",
            status.appended_batches as f64,
        );
        page.single(
            "hostpulse_reporter_spool_refused_batches_total",
            Kind::Counter,
            "Batches not acknowledged because the spool or the disk was full.",
            m.refused_full.get() as f64,
        );
        page.single(
            "hostpulse_reporter_spool_io_errors_total",
            Kind::Counter,
            "Spool appends or syncs that failed.",
            m.io_errors.get() as f64,
        );
        page.single(
            "hostpulse_reporter_spool_quarantined_segments",
            Kind::Gauge,
            "Segment files with no valid record, set aside at open.",
            status.quarantined.len() as f64,
        );
        page.single(
            "hostpulse_reporter_spool_skipped_bytes_total",
            Kind::Counter,
            "Bytes of damaged spool ranges skipped (each range once); the intact records around them were delivered.",
            status.skipped_bytes as f64,
        );
        page.single(
            "hostpulse_reporter_spool_skipped_records_total",
            Kind::Counter,
            "Records lost in damaged spool ranges (exact where sequence numbers survive, else a lower bound).",
            status.skipped_records as f64,
        );
        page.single(
            "hostpulse_reporter_spool_damaged_ranges_total",
            Kind::Counter,
            "Damaged spool ranges skipped (listed in Admin.Status, logged, copied into quarantine/).",
            Shared::lock(&self.shared.damage).ranges() as f64,
        );
        page.single(
            "hostpulse_reporter_spool_truncated_bytes",
            Kind::Gauge,
            "Bytes of torn tail cut off at start (a crash mid-append; never acknowledged).",
            status.truncated_bytes as f64,
        );
        page.family(
            "hostpulse_reporter_spool_commit_seconds",
            Kind::Histogram,
            "One group commit: appends plus fdatasync, before the acknowledgements.",
        );
        page.histogram("hostpulse_reporter_spool_commit_seconds", &[], &m.commit);
        let stores: Vec<(&pb::StoreStatus, &StoreMetrics)> =
            status.stores.iter().zip(&m.stores).collect();
        page.family(
            "hostpulse_reporter_store_lag_bytes",
            Kind::Gauge,
            "Spool bytes the store has not confirmed yet.",
        );
        for (s, _) in &stores {
            page.sample(
                "hostpulse_reporter_store_lag_bytes",
                &[("store", &s.name)],
                s.lag_bytes as f64,
            );
        }
        page.family(
            "hostpulse_reporter_store_batches_total",
            Kind::Counter,
            "Batches the store confirmed.",
        );
        for (s, _) in &stores {
            page.sample(
                "hostpulse_reporter_store_batches_total",
                &[("store", &s.name)],
                s.delivered_batches as f64,
            );
        }
        page.family(
            "hostpulse_reporter_store_rows_total",
            Kind::Counter,
            "Rows the store confirmed.",
        );
        for (s, sm) in &stores {
            page.sample(
                "hostpulse_reporter_store_rows_total",
                &[("store", &s.name)],
                sm.rows.get() as f64,
            );
        }
        page.family(
            "hostpulse_reporter_store_rejected_batches_total",
            Kind::Counter,
            "Batches the store refused for good (kept in rejected-<store>.jsonl).",
        );
        for (s, _) in &stores {
            page.sample(
                "hostpulse_reporter_store_rejected_batches_total",
                &[("store", &s.name)],
                s.rejected_batches as f64,
            );
        }
        page.family(
            "hostpulse_reporter_store_errors_total",
            Kind::Counter,
            "Store writes that failed (retried, or split when rejected).",
        );
        for (s, sm) in &stores {
            page.sample(
                "hostpulse_reporter_store_errors_total",
                &[("store", &s.name)],
                sm.errors.get() as f64,
            );
        }
        page.family(
            "hostpulse_reporter_store_write_seconds",
            Kind::Histogram,
            "One successful store write (up to 512 batches).",
        );
        for (s, sm) in &stores {
            page.histogram(
                "hostpulse_reporter_store_write_seconds",
                &[("store", &s.name)],
                &sm.write,
            );
        }
    }

    /// Figures for the reporter's `hostpulse_self` rows: the spool's, and
    /// each store's (by store name).
    #[allow(clippy::type_complexity)]
    pub fn self_fields(
        &self,
    ) -> (
        Vec<(&'static str, u64)>,
        Vec<(String, Vec<(&'static str, u64)>)>,
    ) {
        let status = self.status();
        let m = &self.shared.metrics;
        let spool = vec![
            ("spool_bytes", status.spool_bytes),
            ("spool_full", u64::from(status.spool_full)),
            ("spool_appended_batches_total", status.appended_batches),
            ("spool_refused_batches_total", m.refused_full.get()),
            ("spool_io_errors_total", m.io_errors.get()),
        ];
        let stores = status
            .stores
            .iter()
            .zip(&m.stores)
            .map(|(s, sm)| {
                (
                    s.name.clone(),
                    vec![
                        ("lag_bytes", s.lag_bytes),
                        ("batches_total", s.delivered_batches),
                        ("rows_total", sm.rows.get()),
                        ("errors_total", sm.errors.get()),
                        ("rejected_batches_total", s.rejected_batches),
                    ],
                )
            })
            .collect();
        (spool, stores)
    }

    /// Stops: the writer finishes what is queued; drainers keep draining
    /// until caught up or `drain_timeout` passed. Blocks until they are done.
    pub fn shutdown(&self, drain_timeout: Duration) {
        // Closing the queue lets the writer commit what is queued and exit;
        // then the drainers drain until caught up or the deadline.
        Shared::lock(&self.queue).take();
        let mut threads = std::mem::take(&mut *Shared::lock(&self.threads)).into_iter();
        if let Some(writer) = threads.next() {
            let _ = writer.join();
        }
        *Shared::lock(&self.shared.stopping) = Some(std::time::Instant::now() + drain_timeout);
        self.shared.appended_cv.notify_all();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Segments of 1/16 of the limit (at most 8 MiB): the active segment is
/// never deleted, so space comes back only in whole sealed segments, and a
/// full spool must be able to fall well below 90 % once drained.
fn log_options(max_bytes: u64) -> LogOptions {
    LogOptions {
        segment_max_bytes: (max_bytes / 16).clamp(1, 8 << 20),
        ..LogOptions::default()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    match std::thread::Builder::new().name(name.to_string()).spawn(f) {
        Ok(h) => h,
        // Threads are created once at start; failing here means the system
        // is out of resources before serving anything.
        Err(e) => panic!("cannot start thread {name}: {e}"),
    }
}

fn report_recovery(r: &Recovery) {
    if r.truncated_bytes > 0 {
        tracing::warn!(
            truncated_bytes = r.truncated_bytes,
            "spool: a torn tail (crash mid-write) was cut off; those batches were never acknowledged"
        );
    }
    for q in &r.quarantined {
        tracing::error!(
            path = %q.path.display(), bytes = q.bytes, damage = %q.damage,
            "spool: a file with no valid record was moved to quarantine; the reporter carries on"
        );
    }
    tracing::info!(
        segments = r.segments,
        records = r.records,
        damaged_ranges = r.damaged.len(),
        skipped_bytes = r.skipped_bytes(),
        skipped_records = r.skipped_records(),
        "spool opened"
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

/// The writer: group commit of everything queued.
fn writer(shared: &Shared, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::new();
    while let Some(job) = rx.blocking_recv() {
        group.push(job);
        while group.len() < 4096 {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let mut appended = Vec::with_capacity(group.len());
        let mut poisoned = false;
        let started = std::time::Instant::now();
        let span = tracing::debug_span!("spool.commit", batches = group.len());
        let _entered = span.enter();
        let ran = shared.with_log(|log| {
            for (record, done) in group.drain(..) {
                if shared.full.load(Ordering::Relaxed) || log.bytes() + record.len() as u64 > shared.max_bytes {
                    shared.set_full("size limit");
                    shared.metrics.refused_full.inc();
                    let _ = done.send(Err(IntakeError::Full("spool")));
                    continue;
                }
                match log.append(&record) {
                    Ok(_) => appended.push(done),
                    Err(e) if e.is_no_space() => {
                        shared.set_full("disk full (ENOSPC)");
                        shared.metrics.refused_full.inc();
                        let _ = done.send(Err(IntakeError::Full("spool")));
                    }
                    Err(e) => {
                        poisoned |= matches!(e, hostpulse_spool::SpoolError::Poisoned);
                        shared.metrics.io_errors.inc();
                        let _ = done.send(Err(IntakeError::Io { intake: "spool", message: e.to_string() }));
                    }
                }
            }
            if !appended.is_empty() {
                if let Err(e) = log.sync() {
                    if e.is_no_space() {
                        shared.set_full("disk full (ENOSPC) on sync");
                    }
                    poisoned = true;
                    shared.metrics.io_errors.inc();
                    tracing::error!(error = %e, batches = appended.len(), "spool sync failed: batches not acknowledged");
                    for done in appended.drain(..) {
                        let _ = done.send(Err(IntakeError::Io { intake: "spool", message: e.to_string() }));
                    }
                }
            }
        });
        if ran.is_none() {
            for (_, done) in group.drain(..) {
                let _ = done.send(Err(IntakeError::Io {
                    intake: "spool",
                    message: "the spool cannot be opened".into(),
                }));
            }
        }
        if poisoned {
            shared.reset_log();
        }
        if !appended.is_empty() {
            shared.metrics.commit.observe(started.elapsed());
            shared
                .appended_batches
                .fetch_add(appended.len() as u64, Ordering::Relaxed);
            *Shared::lock(&shared.appended) += 1;
            shared.appended_cv.notify_all();
            for done in appended {
                let _ = done.send(Ok(()));
            }
        }
    }
}

impl Intake for Spool {
    fn name(&self) -> &'static str {
        "spool"
    }

    fn write(&self, batch: Arc<AcceptedBatch>) -> IntakeFuture {
        let queue = Shared::lock(&self.queue).clone();
        Box::pin(async move {
            let queue = queue.ok_or(IntakeError::Closed("spool"))?;
            let record = pb::SpooledBatch {
                node: batch.node.to_string(),
                batch: Some(batch.stored.clone()),
                received_ms: now_ms(),
            }
            .encode_to_vec();
            let (done, wait) = oneshot::channel();
            queue
                .send((record, done))
                .await
                .map_err(|_| IntakeError::Closed("spool"))?;
            wait.await.map_err(|_| IntakeError::Closed("spool"))?
        })
    }
}

#[cfg(test)]
mod tests;
