//! The `gatherer` binary: loads the settings, then collects in serverless
//! mode (JSON lines on stdout) or streams to the reporters given with
//! `--reporter`, with the admin port beside either.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use gatherer::cli::{self, Args};
use gatherer::collect::{Collectors, node_info};
use gatherer::json::Context;
use gatherer::metrics::metrics;
use gatherer::run::{self, Options, Stopped};
use gatherer::stream::buffer::{Buffer, BufferOptions};
use gatherer::stream::credentials::Credentials;
use gatherer::stream::targets::Target;
use gatherer::stream::{self, SharedBuffer, StreamOptions};
use hostpulse_ops::admin;
use hostpulse_ops::daemon::{self, StartError, Threads};
use hostpulse_ops::metrics::Exposition;

fn main() -> ExitCode {
    let loaded = match daemon::settings::<Args>(&[]) {
        Ok(l) => l,
        Err(e) => return e.exit(),
    };
    if loaded.args.ops.print_config {
        print!("{}", loaded.render("gatherer", &|_, v| v.to_string()));
        return ExitCode::SUCCESS;
    }
    let args = loaded.args;
    if let Err(e) = cli::check_labels(&args.labels) {
        return StartError::Config(e.to_string()).exit();
    }
    let ops = args.ops.clone();
    daemon::run("hostpulse-gatherer", &ops, Threads::One, || async move {
        let (stop_admin, admin) = start_admin(args.ops.admin_listen, args.interval).await?;
        let code = run(args).await;
        let _ = stop_admin.send(());
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        code
    })
}

/// Serverless or streaming, until done or signalled; `Err` when it cannot start.
async fn run(args: Args) -> Result<ExitCode, StartError> {
    let settings = args.settings();
    let node = args
        .node_id
        .clone()
        .unwrap_or_else(|| node_info::default_node_id(&settings.roots));
    let collectors = Collectors::new(&args.collectors.0, &settings);
    if !args.reporter.is_empty() {
        return streaming(args, settings, collectors, node).await;
    }
    let options = Options {
        interval: args.interval,
        once: args.once,
        cycles: args.cycles,
        context: Context {
            node,
            labels: args.labels.clone(),
        },
    };
    tracing::info!(
        node = %options.context.node,
        interval = ?options.interval,
        "gatherer started in serverless mode (JSON lines on stdout)"
    );
    let result = run::serverless(collectors, options, std::io::stdout(), shutdown_signal()).await;
    Ok(match result {
        Ok(Stopped::Signal) => {
            tracing::info!("stopping on signal");
            ExitCode::SUCCESS
        }
        Ok(Stopped::Done | Stopped::OutputClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    })
}

/// The admin port, when --admin-listen is given: returns the sender that
/// stops it and its task.
async fn start_admin(
    listen: Option<std::net::SocketAddr>,
    interval: Duration,
) -> Result<(oneshot::Sender<()>, Option<tokio::task::JoinHandle<()>>), StartError> {
    let (tx, rx) = oneshot::channel::<()>();
    let Some(addr) = listen else {
        return Ok((tx, None));
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Port(format!("--admin-listen {addr}: {e}")))?;
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        "admin port: /metrics, /healthz"
    );
    let report = Arc::new(GathererReport {
        started: Instant::now(),
        interval,
    });
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = admin::serve(listener, report, None, stop).await {
            tracing::error!(error = %e, "admin port failed");
        }
    });
    Ok((tx, Some(task)))
}

/// What the gatherer's admin port reports.
struct GathererReport {
    started: Instant,
    interval: Duration,
}

impl admin::Report for GathererReport {
    fn metrics(&self, page: &mut Exposition) {
        metrics().write(page);
    }

    /// See [`gatherer::metrics::stalled`].
    fn health(&self) -> Result<(), String> {
        let interval = self.interval.max(metrics().interval());
        gatherer::metrics::stalled(
            metrics().since_last_cycle(),
            self.started.elapsed(),
            interval,
        )
    }
}

/// Streaming mode: to the reporters given with --reporter.
async fn streaming(
    args: Args,
    settings: gatherer::collect::Settings,
    collectors: Collectors,
    node: String,
) -> Result<ExitCode, StartError> {
    let mut targets = Vec::new();
    for url in &args.reporter {
        let target =
            Target::parse(url).map_err(|e| StartError::Config(format!("--reporter: {e}")))?;
        targets.push(target);
    }
    let credentials = Credentials::new(
        args.tls_ca.clone(),
        args.tls_cert.clone(),
        args.tls_key.clone(),
        args.token_file.clone(),
        &targets,
    )
    .map_err(|e| StartError::Config(e.to_string()))?;
    if let Some(warning) = credentials.node_id_mismatch(&node) {
        tracing::warn!("{warning}");
    }
    let buffer = Buffer::open(BufferOptions {
        dir: args.buffer_dir.clone(),
        max_bytes: args.buffer_max_bytes,
        memory_bytes: args.buffer_memory_bytes,
    })
    .map_err(|e| StartError::Disk(e.to_string()))?;
    metrics().observe_buffer(buffer.len(), buffer.bytes(), buffer.dropped());
    let options = StreamOptions {
        targets,
        node_id: node,
        labels: args.labels.clone(),
        interval: args.interval,
        families: args.collectors.0.clone(),
        cycles: args.cycles,
        credentials,
    };
    tracing::info!(
        node = %options.node_id, reporters = %args.reporter.join(","),
        interval = ?options.interval, buffer_dir = ?args.buffer_dir,
        "gatherer started in streaming mode"
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping on signal");
        let _ = tx.send(true);
    });
    stream::run(collectors, settings, SharedBuffer::new(buffer), options, rx).await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM; if the handlers cannot be installed, never
/// (the default disposition then still stops the process).
///
/// SIGHUP, whose default disposition would kill the process, is caught and
/// explained instead: an operator who "reloads" a gatherer (`kill -HUP`, a
/// habit from daemons that re-read their files) must not stop its collection.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => tracing::warn!(
                    "SIGHUP ignored: the gatherer reads --config at start (restart it to apply a change); what the reporter pushes applies live"
                ),
            }
        },
        _ => std::future::pending().await,
    }
}
