//! Logs and traces.
//!
//! Logs go to stderr as text (the default; coloured on a terminal) or as one
//! JSON object per line (`--log-format json`, for log shippers), filtered by
//! `--log-level`.
//!
//! Traces: spans (stream lifecycle, batches, store writes) are exported over
//! OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the standard
//! `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`...) apply. Without
//! the variable no exporter, thread or connection exists, and spans below the
//! log level cost one relaxed load each. Spans are exported at `--trace-level`
//! (default debug, which includes one span per batch), independently of the
//! log level.
//!
//! The exporter needs the Tokio runtime: call [`init`] inside it, and
//! [`Telemetry::shutdown`] before the runtime ends, so the last spans are sent.
//!
//! Export failures are not silent: the first failure of a streak is logged as
//! a warning (spans are dropped while it lasts), the recovery as info, and
//! every failed export is counted ([`export_failures`], exposed on /metrics as
//! `hostpulse_trace_export_failures_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The crates whose spans are exported.
const OWN_TARGETS: [&str; 5] = [
    "gatherer",
    "reporter",
    "hostpulse_ops",
    "hostpulse_spool",
    "hostpulse_proto",
];

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The logging and tracing flags, flattened into [`crate::cli::OpsArgs`].
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log level on stderr: error, warn, info, debug, trace.
    #[arg(long, env = "HOSTPULSE_LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,

    /// Log lines as `text` or `json` (one object per line, for log shippers).
    #[arg(long, env = "HOSTPULSE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Level of the spans exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
    /// is set (debug includes one span per batch).
    #[arg(long, env = "HOSTPULSE_TRACE_LEVEL", default_value = "debug")]
    pub trace_level: tracing::Level,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, message, fields, span.
    Json,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a malformed endpoint URL).
    #[error("OTLP trace exporter ({OTLP_ENDPOINT}): {0}")]
    Exporter(String),
    /// A global subscriber was already installed (a programming error).
    #[error("logging was already initialised: {0}")]
    Init(String),
}

/// Keeps the trace pipeline alive; [`shutdown`](Self::shutdown) flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs logging as `--log-level`/`--log-format` say and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, trace export at `--trace-level` for
/// `service` (overridden by `OTEL_SERVICE_NAME`).
pub fn init(service: &str, flags: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
    let (log_level, format, trace_level) = (flags.log_level, flags.log_format, flags.trace_level);
    let ansi = format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(LevelFilter::from_level(log_level));

    let endpoint = std::env::var(OTLP_ENDPOINT)
        .ok()
        .filter(|e| !e.trim().is_empty());
    let (otel, provider) = match endpoint {
        None => (None, None),
        Some(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let exporter = Reporting {
                inner: exporter,
                failing: AtomicU64::new(0),
            };
            let service =
                std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name(service).build())
                .build();
            let tracer = provider.tracer("hostpulse");
            // Only hostpulse's own spans: the HTTP/2 and gRPC libraries have
            // debug spans too, and the exporter's own connection would
            // otherwise trace itself.
            let ours = tracing_subscriber::filter::Targets::new()
                .with_targets(OWN_TARGETS.iter().map(|t| (*t, trace_level)));
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(ours);
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))?;
    if provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(
            endpoint = %std::env::var(OTLP_ENDPOINT).unwrap_or_default(),
            level = %trace_level,
            "exporting traces over OTLP"
        );
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter (waits up to 5 s).
    /// Runs the blocking flush off the runtime's threads, which must keep
    /// driving the exporter's connection meanwhile.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(std::time::Duration::from_secs(5))
        })
        .await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: flushing traces: {e}");
        }
    }
}

/// Whether this process exports traces (set once by [`init`]).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether traces are exported (for /metrics).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Failed OTLP exports since start (each drops one batch of spans).
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Failed OTLP exports since the process started.
pub fn export_failures() -> u64 {
    EXPORT_FAILURES.load(Ordering::Relaxed)
}

/// Wraps the OTLP exporter to make its failures visible: the SDK drops a
/// batch that fails to export, and without this nobody would know.
#[derive(Debug)]
struct Reporting<E> {
    inner: E,
    /// Failed exports in the current streak.
    failing: AtomicU64,
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                let failed = self.failing.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    tracing::info!(failed_exports = failed, "OTLP trace export recovered");
                }
            }
            Err(e) => {
                EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
                if self.failing.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        error = %e, spans,
                        "OTLP trace export failing: spans are dropped until the collector answers"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
