//! Logs and traces.
//!
//! Logs go to stderr as text (the default; coloured on a terminal) or as one
//! JSON object per line (`--log-format json`, for log shippers), filtered by
//! `--log-level`.
//!
//! Traces: spans (stream lifecycle, batches, sink flushes) are exported over
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

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

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

/// Installs logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, trace
/// export for `service` (overridden by `OTEL_SERVICE_NAME`).
pub fn init(
    service: &str,
    log_level: Level,
    format: LogFormat,
    trace_level: Level,
) -> Result<Telemetry, TelemetryError> {
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
            let service =
                std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name(service).build())
                .build();
            let tracer = provider.tracer("hostpulse");
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(LevelFilter::from_level(trace_level));
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))?;
    if provider.is_some() {
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
