//! The start of both daemons' `main`: settings, then a Tokio runtime with
//! logs and traces installed inside it, then the daemon's own work, then the
//! trace flush.
//!
//! Every reason a daemon cannot start is one [`StartError`], whose variant
//! sets the exit code ([`exit_codes_help!`] is the table both `--help`s
//! print), so a supervisor or an operator can tell a typo from a busy port
//! without reading the log.

use std::future::Future;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::OpsArgs;
use crate::settings::{self, Loaded, SettingsError};
use crate::telemetry;

/// The exit codes of both daemons, for their `--help` (`after_help`).
#[macro_export]
macro_rules! exit_codes_help {
    () => {
        "Exit codes: 0 stopped as asked; 1 failed while running; 2 the command line, \
an HOSTPULSE_* variable, the --config file or a credential file is wrong (fix it; \
a restart will not); 3 a store could not be opened; 4 the spool (reporter) or buffer \
(gatherer) directory could not be opened (locked by another process, unreadable); \
5 a port could not be bound (in use, not permitted)."
    };
}

/// Why a daemon did not start; each cause has its own exit code (see
/// [`exit_codes_help!`]). The message names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The command line, an `HOSTPULSE_*` variable, the `--config` file or a
    /// file it names (certificates, tokens) is wrong: the operator fixes it;
    /// restarting will not help. Exit code 2.
    #[error("configuration: {0}")]
    Config(String),
    /// A store (database, file) could not be opened: its file, server or
    /// schema is at fault. Exit code 3.
    #[error("{0}")]
    Store(String),
    /// The disk log (the reporter's spool, the gatherer's buffer) could not
    /// be opened: another process holds it, or it is unreadable. Exit code 4.
    #[error("{0}")]
    Disk(String),
    /// A port could not be bound: in use or not permitted. Exit code 5.
    #[error("{0}")]
    Port(String),
    /// The process itself could not start (runtime, threads). Exit code 1.
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    /// The exit code of this cause.
    pub fn code(&self) -> u8 {
        match self {
            StartError::Runtime(_) => 1,
            StartError::Config(_) => 2,
            StartError::Store(_) => 3,
            StartError::Disk(_) => 4,
            StartError::Port(_) => 5,
        }
    }

    /// Prints the error on stderr and returns its exit code.
    pub fn exit(&self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.code())
    }
}

/// Loads the settings of `A` from the command line, the environment and
/// `--config` (skipping the tables in `sections`). `--help`, `--version` and
/// command-line mistakes exit here with clap's codes (2 for a mistake); file
/// mistakes are returned as [`StartError::Config`].
pub fn settings<A>(sections: &[&str]) -> Result<Loaded<A>, StartError>
where
    A: CommandFactory + FromArgMatches,
{
    match settings::load::<A>(std::env::args_os(), sections) {
        Ok(l) => Ok(l),
        Err(SettingsError::Clap(e)) => e.exit(),
        Err(e) => Err(StartError::Config(e.to_string())),
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
/// the runtime) and flushed after `work` returns. `work`'s start-up failure
/// is printed and becomes its exit code.
pub fn run<F, Fut>(service: &str, ops: &OpsArgs, threads: Threads, work: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<ExitCode, StartError>>,
{
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return StartError::Runtime(format!("cannot start the runtime: {e}")).exit(),
    };
    runtime.block_on(async move {
        let telemetry = match telemetry::init(service, &ops.telemetry) {
            Ok(t) => t,
            Err(e) => return StartError::Config(e.to_string()).exit(),
        };
        let code = work().await.unwrap_or_else(|e| e.exit());
        telemetry.shutdown().await;
        code
    })
}
