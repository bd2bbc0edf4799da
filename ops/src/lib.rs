//! What both hostpulse daemons share to be operated.
//!
//! - [`cli`]: the flags both daemons share (`--config`, `--admin-listen`,
//!   `--log-format`...).
//! - [`daemon`]: the start of both `main`s: settings, runtime, telemetry.
//! - [`settings`]: flag > `HOSTPULSE_*` variable > `--config` file > default,
//!   unknown keys refused, `--print-config`.
//! - [`metrics`]: counters, gauges and latency histograms with Prometheus
//!   text exposition; [`process`]: this process's own CPU, memory, fds.
//! - [`certificate`]: TLS files checked at start and on reload, with errors
//!   naming the side and file at fault and the fix.
//! - [`admin`]: the `--admin-listen` port: `/metrics`, `/healthz`, and
//!   optionally gRPC health for kubelet probes.
//! - [`reload`]: `Load`/`Reloadable` values read from files, and the one
//!   reload loop (SIGHUP, or a file's fingerprint changed) that serves the
//!   reporter's configuration, TLS material and tokens alike.
//! - [`telemetry`]: logs (text or JSON lines on stderr) and traces (OTLP over
//!   gRPC, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).

#![forbid(unsafe_code)]

pub mod admin;
pub mod certificate;
pub mod cli;
pub mod daemon;
pub mod metrics;
pub mod process;
pub mod reload;
pub mod settings;
pub mod telemetry;
