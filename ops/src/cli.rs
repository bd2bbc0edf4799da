//! The flags every hostpulse daemon has, flattened into each binary's own
//! `Args` (`#[command(flatten)] ops: OpsArgs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::telemetry::LogFormat;

/// Configuration file, admin port, logs and traces.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// A TOML file whose keys are these long flag names (`log-level = "debug"`;
    /// lists as arrays). Precedence: flag > HOSTPULSE_* variable > file > default.
    #[arg(long, env = "HOSTPULSE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (as a TOML file, each value with its
    /// source) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Serve GET /metrics (Prometheus text) and GET /healthz on this address
    /// [default: off].
    #[arg(long, env = "HOSTPULSE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

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
