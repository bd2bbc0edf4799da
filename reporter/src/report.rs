//! What the reporter says about itself, in the two places it is read:
//!
//! - `/metrics` on the admin port (`--admin-listen`), through
//!   [`ReporterReport`] (an [`hostpulse_ops::admin::Report`]): the stream
//!   counters of [`crate::metrics`], connections, the memory budget, the
//!   spool and its stores, the QuestDB schema verdict, authentication;
//! - the `hostpulse_self` table: every `--self-interval` the reporter writes a
//!   row with tag `component = "reporter"` (plus one per store, tag `store`)
//!   through its own intake (the spool), so its health is stored, drained and
//!   deduplicated exactly like the gatherers' rows ([`self_rows`],
//!   [`write_self_rows`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hostpulse_ops::admin::Report;
use hostpulse_ops::metrics::{Described, Exposition, Kind};
use hostpulse_proto::codec::{Dictionary, StreamDefs};
use hostpulse_proto::row::Row;

use crate::intake::AcceptedBatch;
use crate::metrics::Metrics;
use crate::state::Shared;

/// The prefix of the reporter's metric names on `/metrics`.
const PREFIX: &str = "hostpulse_reporter_";

/// The stream figures, described once for `/metrics` and the
/// `hostpulse_self` row ([`Described`]).
fn stream_figures(m: &Metrics) -> [(Described, u64); 5] {
    let d = |name, kind, help| Described { name, kind, help };
    [
        (
            d("streams_open", Kind::Gauge, "Gatherer streams open now."),
            m.streams_open.get().max(0) as u64,
        ),
        (
            d(
                "streams_total",
                Kind::Counter,
                "Gatherer streams accepted (past their Hello).",
            ),
            m.streams_opened.get(),
        ),
        (
            d(
                "batches_total",
                Kind::Counter,
                "Batches acknowledged (durable in the spool).",
            ),
            m.batches.get(),
        ),
        (
            d(
                "samples_total",
                Kind::Counter,
                "Samples in acknowledged batches.",
            ),
            m.samples.get(),
        ),
        (
            d(
                "intake_refused_batches_total",
                Kind::Counter,
                "Batches the spool did not take (not acknowledged; the gatherer resends).",
            ),
            m.intake_errors.get(),
        ),
    ]
}

/// The admin port's view of a running reporter.
pub struct ReporterReport {
    /// What the streams share (metrics, registry, spool, configuration).
    pub shared: Arc<Shared>,
    /// The QuestDB store's schema verdict (`None`: no check).
    pub questdb_schema: Option<crate::store::questdb_schema::SchemaWatch>,
}

impl Report for ReporterReport {
    fn metrics(&self, page: &mut Exposition) {
        let m = &self.shared.metrics;
        page.described(PREFIX, &stream_figures(m));
        page.family(
            "hostpulse_reporter_streams_ended_total",
            Kind::Counter,
            "Gatherer streams ended, by gRPC status (OK: the gatherer closed it).",
        );
        for (code, n) in m.ended() {
            page.sample(
                "hostpulse_reporter_streams_ended_total",
                &[("code", code)],
                n as f64,
            );
        }
        connection_metrics(page, m);
        budget_metrics(page, &self.shared.limits.memory);
        let a = &self.shared.auth;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
        page.family(
            "hostpulse_reporter_unauthenticated_total",
            Kind::Counter,
            "Calls refused with UNAUTHENTICATED, by reason.",
        );
        for (reason, c) in [
            ("no_client_cert", &a.rejected_no_client_cert),
            ("bad_client_cert", &a.rejected_bad_client_cert),
            ("missing_token", &a.rejected_missing_token),
            ("invalid_token", &a.rejected_invalid_token),
        ] {
            page.sample(
                "hostpulse_reporter_unauthenticated_total",
                &[("reason", reason)],
                load(c),
            );
        }
        page.single(
            "hostpulse_reporter_node_id_refused_total",
            Kind::Counter,
            "Hellos refused with PERMISSION_DENIED: the credential does not allow the node id.",
            load(&a.node_id_refused),
        );
        page.single(
            "hostpulse_reporter_plaintext_connections_total",
            Kind::Counter,
            "Plaintext connections to the TLS listener (refused).",
            load(&a.plaintext_connections),
        );
        page.single(
            "hostpulse_reporter_tls_handshake_failures_total",
            Kind::Counter,
            "TLS handshakes that failed.",
            load(&a.handshake_failures),
        );
        page.single(
            "hostpulse_reporter_credential_reloads_total",
            Kind::Counter,
            "Certificates or token files reloaded.",
            load(&a.reloads_total),
        );
        page.single(
            "hostpulse_reporter_credential_reload_failures_total",
            Kind::Counter,
            "Reloads that failed (the previous material stays in force).",
            load(&a.reload_failures_total),
        );
        page.family(
            "hostpulse_reporter_ack_seconds",
            Kind::Histogram,
            "From a batch's arrival to its acknowledgement: decode, spool append and fsync.",
        );
        page.histogram("hostpulse_reporter_ack_seconds", &[], &m.ack_seconds);
        page.single(
            "hostpulse_reporter_config_generation",
            Kind::Gauge,
            "Generation of the gatherers' configuration in force.",
            self.shared.config.borrow().generation as f64,
        );
        self.shared.admission.write_metrics(page);
        if let Some(spool) = &self.shared.spool {
            spool.write_metrics(page);
        }
        crate::store::skipped_text::write_metrics(page);
        if let Some(schema) = &self.questdb_schema {
            schema.write_metrics(page);
        }
    }

    fn notes(&self) -> Vec<String> {
        self.questdb_schema
            .iter()
            .filter_map(|s| s.health_note())
            .chain(self.shared.limits.memory.health_note())
            .collect()
    }

    fn health(&self) -> Result<(), String> {
        // Alive as long as it answers: a full spool or an unreachable
        // database are readiness matters (gRPC health NOT_SERVING), and a
        // restart would fix neither.
        Ok(())
    }
}

fn connection_metrics(page: &mut Exposition, m: &Metrics) {
    let c = &m.connections;
    page.single(
        "hostpulse_reporter_streams_waiting_hello",
        Kind::Gauge,
        "Ingest streams opened and waiting for their Hello (not yet counted against --max-streams).",
        m.streams_waiting.get().map_or(0, |l| l.streams_waiting()) as f64,
    );
    page.single(
        "hostpulse_reporter_connections_open",
        Kind::Gauge,
        "Connections past their handshake, open now.",
        c.open.load(Ordering::Relaxed) as f64,
    );
    page.single(
        "hostpulse_reporter_handshakes_pending",
        Kind::Gauge,
        "Connections accepted whose HTTP/2 preface or TLS handshake is not complete.",
        c.pending.load(Ordering::Relaxed) as f64,
    );
    page.single(
        "hostpulse_reporter_handshake_timeouts_total",
        Kind::Counter,
        "Connections closed for not completing their handshake within --handshake-timeout.",
        c.handshake_timeouts.load(Ordering::Relaxed) as f64,
    );
    page.single(
        "hostpulse_reporter_connections_refused_pending_total",
        Kind::Counter,
        "Connections closed at accept: --max-pending-connections handshakes were in progress.",
        c.refused_pending.load(Ordering::Relaxed) as f64,
    );
    page.single(
        "hostpulse_reporter_accept_errors_total",
        Kind::Counter,
        "accept() failures (the descriptor limit, most likely); the listener backs off 10 ms to 1 s.",
        c.accept_errors.load(Ordering::Relaxed) as f64,
    );
}

fn budget_metrics(page: &mut Exposition, budget: &crate::budget::MemoryBudget) {
    use crate::budget::Purpose;
    page.single(
        "hostpulse_reporter_memory_budget_bytes",
        Kind::Gauge,
        "--memory-budget: what stream definitions and batches in flight may hold.",
        budget.limit() as f64,
    );
    page.single(
        "hostpulse_reporter_memory_budget_used_bytes",
        Kind::Gauge,
        "Estimated bytes held now by stream definitions and batches in flight.",
        budget.used() as f64,
    );
    page.family(
        "hostpulse_reporter_memory_budget_refused_total",
        Kind::Counter,
        "Streams ended with RESOURCE_EXHAUSTED because the memory budget was exhausted, by what asked.",
    );
    for purpose in [Purpose::Definitions, Purpose::Batch] {
        page.sample(
            "hostpulse_reporter_memory_budget_refused_total",
            &[("what", purpose.label())],
            budget.refused(purpose) as f64,
        );
    }
}

/// The reporter's `hostpulse_self` rows at `ts` (Unix nanoseconds).
pub fn self_rows(shared: &Shared, ts: i64) -> Vec<Row> {
    let m = &shared.metrics;
    let mut row = Row::new("hostpulse_self", ts).tag("component", "reporter");
    for (d, value) in stream_figures(m) {
        row.int(d.name, value);
    }
    row.int(
        "unauthenticated_total",
        shared.auth.rejected_total.load(Ordering::Relaxed),
    );
    row.float("ack_seconds_total", m.ack_seconds.sum_seconds());

    if let Some(usage) = hostpulse_ops::process::usage() {
        row.float("cpu_seconds_total", usage.cpu_seconds);
        row.int("rss_bytes", usage.rss_bytes);
    }
    let mut rows = Vec::new();
    if let Some(spool) = &shared.spool {
        let (fields, stores) = spool.self_fields();
        for (name, value) in fields {
            row.int(name, value);
        }
        rows.push(row);
        for (store, fields) in stores {
            let mut r = Row::new("hostpulse_self", ts)
                .tag("component", "reporter")
                .tag("store", store);
            for (name, value) in fields {
                r.int(name, value);
            }
            rows.push(r);
        }
    } else {
        rows.push(row);
    }
    rows
}

/// Writes the reporter's rows through its own intake every `interval`, until
/// the reporter stops. A batch the spool refuses (full) is skipped: self
/// rows never compete with the gatherers' data for space.
pub async fn write_self_rows(shared: Arc<Shared>, interval: Duration) {
    let node: Arc<str> = Arc::from(shared.reporter_id.as_str());
    let mut shutdown = shared.shutdown.clone();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        sequence += 1;
        let ts = crate::registry::now_ms().saturating_mul(1_000_000);
        let rows = self_rows(&shared, ts);
        // Encoded like a gatherer's batch, so the spool and every store
        // treat it the same way (one fresh dictionary: self-contained).
        let mut dict = Dictionary::new();
        let compact = dict.encode(sequence, &rows, &[]);
        let batch = dict.complete(&compact);
        let Ok(decoded) = StreamDefs::new(usize::MAX).decode(&batch) else {
            tracing::warn!("could not encode the reporter's own rows");
            continue;
        };
        let accepted = Arc::new(AcceptedBatch {
            node: Arc::clone(&node),
            decoded,
            stored: batch,
        });
        if let Err(e) = shared.intake.write(accepted).await {
            tracing::debug!(error = %e, "the reporter's own rows were not stored");
        }
    }
}
