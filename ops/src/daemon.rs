//! The start of both daemons' `main`: settings, then a Tokio runtime with
//! logs and traces installed inside it, then the daemon's own work, then the
//! trace flush. Exit codes: 2 for a configuration mistake, 1 for a failure
//! to start, otherwise what the work returns.

use std::future::Future;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::OpsArgs;
use crate::settings::{self, Loaded, SettingsError};
use crate::telemetry;

/// Loads the settings of `A` from the command line, the environment and
/// `--config` (skipping the tables in `sections`). `--help`, `--version` and
/// command-line mistakes exit here with clap's codes; file mistakes are
/// printed and returned as exit code 2.
pub fn settings<A>(sections: &[&str]) -> Result<Loaded<A>, ExitCode>
where
    A: CommandFactory + FromArgMatches,
{
    match settings::load::<A>(std::env::args_os(), sections) {
        Ok(l) => Ok(l),
        Err(SettingsError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: configuration: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// How many runtime threads a daemon needs.
#[derive(Debug, Clone, Copy)]
pub enum Threads {
    /// One: the gatherer (a few hundred microseconds of work per cycle; a
    /// second thread would cost memory on every node).
    One,
    /// One per core: the reporter.
    PerCore,
}

/// Runs `work` on a Tokio runtime, with logging and trace export for
/// `service` installed inside it (the OTLP exporter's connection lives on
/// the runtime) and flushed after `work` returns.
pub fn run<F, Fut>(service: &str, ops: &OpsArgs, threads: Threads, work: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry = match telemetry::init(service, ops) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let code = work().await;
        telemetry.shutdown().await;
        code
    })
}
