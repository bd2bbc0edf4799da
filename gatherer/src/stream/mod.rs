//! Streaming mode: batches to a reporter over one bidirectional gRPC stream.
//!
//! ```text
//!  collection task ──push──► Buffer (memory + disk) ◄──ack── session task ◄── reporter
//!        ▲                      │ next_after(seq)                │ Hello / Batch ──►
//!        └── GathererConfig ◄───┴────────────────────────────────┘ (watch channel)
//! ```
//!
//! - The collection task never waits for the network: it encodes each cycle
//!   into the buffer and goes back to sleep.
//! - The session task connects (targets in turn, exponential backoff with
//!   jitter, 1 s to 30 s), sends Hello, waits for Welcome, then sends every
//!   unacknowledged batch in sequence order, at most [`WINDOW`] ahead of the
//!   acknowledgements, and new ones as they come.
//! - Acknowledgements free buffered batches. A configuration from the
//!   reporter (in Welcome or pushed later) reaches the collection task, which
//!   changes its interval and families without restarting or reconnecting.
//! - HTTP/2 keepalive (PING every 10 s, 10 s to answer) detects a dead
//!   reporter within 30 s even when no batch is due.
//! - [`credentials`]: `--tls-ca`, `--tls-cert/--tls-key` and `--token-file`
//!   are read again at each connection attempt, so rotated files need no
//!   restart; a refusal (UNAUTHENTICATED) is an error in the log, never a
//!   reason to stop collecting.

pub use hostpulse_proto::backoff;
pub mod buffer;
pub mod credentials;
pub mod session;
pub mod targets;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hostpulse_proto::pb;
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use crate::collect::{Collectors, Family, Settings};
use crate::node_events::NodeEvents;
use crate::run::collect_cycle;
use buffer::Buffer;
use targets::Target;

/// Batches sent ahead of the acknowledgements.
pub const WINDOW: usize = 64;

/// How long a stopping gatherer waits for outstanding acknowledgements.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The buffer, shared by the two tasks.
#[derive(Clone)]
pub struct SharedBuffer {
    inner: Arc<Mutex<Buffer>>,
    /// Wakes the session when a batch was pushed.
    pub pushed: Arc<Notify>,
    /// Wakes a drain when a batch was acknowledged.
    pub acked: Arc<Notify>,
}

impl SharedBuffer {
    /// Shares `buffer`.
    pub fn new(buffer: Buffer) -> Self {
        SharedBuffer {
            inner: Arc::new(Mutex::new(buffer)),
            pushed: Arc::new(Notify::new()),
            acked: Arc::new(Notify::new()),
        }
    }

    /// Locks the buffer (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock cannot leave the buffer torn (each
        // method restores its invariants before any fallible step).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Streaming-mode settings.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Reporters to use in turn.
    pub targets: Vec<Target>,
    /// This node's id.
    pub node_id: String,
    /// Static labels on every row.
    pub labels: Vec<(String, String)>,
    /// The command line's interval (used until the reporter says otherwise).
    pub interval: Duration,
    /// The command line's families.
    pub families: Vec<Family>,
    /// Stop after this many cycles, once they are acknowledged (tests, benchmarks).
    pub cycles: Option<u64>,
    /// TLS trust, client certificate and bearer token.
    pub credentials: credentials::Credentials,
}

/// Runs collection and the session until `shutdown` flips to true (or the
/// cycle limit is reached and delivered).
pub async fn run(
    collectors: Collectors,
    settings: Settings,
    buffer: SharedBuffer,
    options: StreamOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let (config_tx, config_rx) = watch::channel::<Option<pb::GathererConfig>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let session = tokio::spawn(session::run(
        buffer.clone(),
        options.clone(),
        settings.roots.clone(),
        config_tx,
        stop_rx.clone(),
    ));
    let collection = collect_loop(
        collectors,
        settings,
        buffer.clone(),
        options.clone(),
        config_rx,
        stop_rx,
    );
    tokio::pin!(collection);
    tokio::select! {
        () = &mut collection => {
            // --cycles reached: give the session time to deliver the rest.
            drain(&buffer, DRAIN_TIMEOUT * 2, Some(&mut shutdown)).await;
        }
        _ = shutdown.changed() => {
            // The stop event: delivered by the drain if the stream still
            // works, else kept on disk with the rest.
            let mut events = NodeEvents::new();
            let mut rows = Vec::new();
            {
                let mut b = buffer.lock();
                events.stopping(b.len());
                events.take(&mut rows);
                b.push(&rows, &options.labels);
            }
            buffer.pushed.notify_one();
            drain(&buffer, DRAIN_TIMEOUT, None).await;
        }
    }
    let _ = stop_tx.send(true);
    let _ = session.await;
    // Whatever is still unacknowledged survives on disk (when configured).
    let mut b = buffer.lock();
    b.spill_all();
    if !b.is_empty() {
        tracing::info!(
            batches = b.len(),
            "stopping with unacknowledged batches kept in the buffer"
        );
    }
}

/// Waits until every batch is acknowledged, `limit` passed, or a shutdown.
async fn drain(
    buffer: &SharedBuffer,
    limit: Duration,
    mut shutdown: Option<&mut watch::Receiver<bool>>,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let acked = buffer.acked.notified();
        if buffer.lock().is_empty() {
            return;
        }
        let stop = async {
            match shutdown.as_mut() {
                Some(rx) => {
                    let _ = rx.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = acked => {}
            () = tokio::time::sleep_until(deadline) => return,
            () = stop => return,
        }
    }
}

/// Collects every interval into the buffer; applies pushed configuration.
async fn collect_loop(
    mut collectors: Collectors,
    settings: Settings,
    buffer: SharedBuffer,
    options: StreamOptions,
    mut config: watch::Receiver<Option<pb::GathererConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = options.interval;
    crate::metrics::metrics()
        .interval_ms
        .set(interval.as_millis() as i64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rows = Vec::new();
    let mut cycles = 0u64;
    let mut events = NodeEvents::new();
    events.started(&collectors.families(), interval, buffer.lock().len());
    let mut generation = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                collect_cycle(&mut collectors, &mut rows);
                events.observe_families(&collectors);
                {
                    let b = buffer.lock();
                    events.observe_buffer(b.spilled(), b.dropped(), b.len());
                }
                events.take(&mut rows);
                let seq = {
                    let mut b = buffer.lock();
                    let seq = b.push(&rows, &options.labels);
                    crate::metrics::metrics().observe_buffer(b.len(), b.bytes(), b.dropped());
                    seq
                };
                tracing::debug!(sequence = seq, rows = rows.len(), "batch buffered");
                buffer.pushed.notify_one();
                cycles += 1;
                if options.cycles.is_some_and(|n| cycles >= n) {
                    return;
                }
            }
            changed = config.changed() => {
                if changed.is_err() {
                    // The session is gone (stopping); keep collecting until told.
                    std::future::pending::<()>().await;
                }
                let Some(c) = config.borrow_and_update().clone() else { continue };
                let wanted = if c.interval_ms > 0 { Duration::from_millis(c.interval_ms) } else { options.interval };
                if wanted != interval {
                    interval = wanted;
                    crate::metrics::metrics().interval_ms.set(interval.as_millis() as i64);
                    ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
                let families = if c.collectors.is_empty() {
                    options.families.clone()
                } else {
                    match Family::parse_list(&c.collectors.join(",")) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "pushed configuration names an unknown collector; keeping the current ones");
                            collectors.families()
                        }
                    }
                };
                let before = collectors.families();
                collectors.select(&families, &settings);
                // Welcome repeats the configuration at every reconnection:
                // an event only when it is a new generation.
                if c.generation != generation {
                    generation = c.generation;
                    events.config_applied(c.generation, interval, &before, &collectors.families());
                }
                tracing::info!(
                    generation = c.generation, ?interval,
                    collectors = %families.iter().map(|f| f.name()).collect::<Vec<_>>().join(","),
                    "applied the reporter's configuration"
                );
            }
            _ = stop.changed() => return,
        }
    }
}
