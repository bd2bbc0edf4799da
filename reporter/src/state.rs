//! The reporter's application state: what every stream, the Admin service
//! and the self-report share ([`Shared`]), and the per-stream limits.
//!
//! Built once by `main` from the command line; everything else borrows it
//! through an `Arc`. It imports only leaf modules (intake, registry, tail,
//! config, metrics, admission, budget), so no room below it imports upward.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::intake::Intake;
use crate::registry::Registry;
use crate::tail::Tail;

/// Per-stream limits.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// How long a new stream may take to send its Hello.
    pub hello_timeout: Duration,
    /// Row keys plus series one stream may define.
    pub max_definitions: usize,
    /// The reporter-wide memory budget the stream's definitions and batches
    /// in flight are charged against ([`crate::budget`]).
    pub memory: Arc<crate::budget::MemoryBudget>,
    /// Streams end (UNAVAILABLE) after this age, scaled by a random factor in
    /// 0.85..1.0 per stream, so reconnections spread out and a Kubernetes
    /// Service rebalances them across replicas.
    pub max_age: Duration,
}

/// What every stream shares.
pub struct Shared {
    /// Where accepted batches go.
    pub intake: Arc<dyn Intake>,
    /// Connected streams.
    pub registry: Registry,
    /// Live rows for Admin.Tail.
    pub tail: Tail,
    /// The gatherers' configuration.
    pub config: watch::Receiver<Arc<Config>>,
    /// Set to true when the reporter is stopping.
    pub shutdown: watch::Receiver<bool>,
    /// This replica's name, sent in Welcome.
    pub reporter_id: String,
    /// Per-stream limits.
    pub limits: StreamLimits,
    /// The spool, when batches go through one (Admin.Status reports it).
    pub spool: Option<Arc<crate::spool::Spool>>,
    /// Self-metrics of the streams.
    pub metrics: crate::metrics::Metrics,
    /// Authentication refusals (counted by the auth layer and the acceptor).
    pub auth: Arc<crate::auth::AuthStats>,
    /// What a batch may contain (checked before the acknowledgement).
    pub admission: crate::admission::Admission,
}
