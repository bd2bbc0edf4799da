//! The flags every hostpulse daemon has, flattened into each binary's own
//! `Args` (`#[command(flatten)] ops: OpsArgs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::telemetry::TelemetryArgs;

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

    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}
