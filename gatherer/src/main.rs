//! The `gatherer` binary: parses the command line and runs the serverless loop.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use gatherer::cli::{self, Args};
use gatherer::collect::{Collectors, node_info};
use gatherer::json::Context;
use gatherer::run::{self, Options, Stopped};
use gatherer::stream::buffer::{Buffer, BufferOptions};
use gatherer::stream::credentials::Credentials;
use gatherer::stream::targets::Target;
use gatherer::stream::{self, SharedBuffer, StreamOptions};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = cli::check_labels(&args.labels) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let settings = args.settings();
    let node = args
        .node_id
        .clone()
        .unwrap_or_else(|| node_info::default_node_id(&settings.roots));
    let collectors = Collectors::new(&args.collectors.0, &settings);
    if !args.reporter.is_empty() {
        return streaming(args, settings, collectors, node);
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

    // One thread is enough: collection is a few hundred microseconds of file
    // reads per cycle, and a second runtime thread would cost memory on every node.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tracing::info!(
            node = %options.context.node,
            interval = ?options.interval,
            "gatherer started in serverless mode (JSON lines on stdout)"
        );
        run::serverless(collectors, options, std::io::stdout(), shutdown_signal()).await
    });
    match result {
        Ok(Stopped::Signal) => {
            tracing::info!("stopping on signal");
            ExitCode::SUCCESS
        }
        Ok(Stopped::Done | Stopped::OutputClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Streaming mode: to the reporters given with --reporter.
fn streaming(
    args: Args,
    settings: gatherer::collect::Settings,
    collectors: Collectors,
    node: String,
) -> ExitCode {
    let mut targets = Vec::new();
    for url in &args.reporter {
        match Target::parse(url) {
            Ok(t) => targets.push(t),
            Err(e) => {
                eprintln!("error: --reporter: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let credentials = match Credentials::new(
        args.tls_ca.clone(),
        args.tls_cert.clone(),
        args.tls_key.clone(),
        args.token_file.clone(),
        &targets,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let buffer = match Buffer::open(BufferOptions {
        dir: args.buffer_dir.clone(),
        max_bytes: args.buffer_max_bytes,
        memory_bytes: args.buffer_memory_bytes,
    }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = StreamOptions {
        targets,
        node_id: node,
        labels: args.labels.clone(),
        interval: args.interval,
        families: args.collectors.0.clone(),
        cycles: args.cycles,
        credentials,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
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
    });
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM; if the handlers cannot be installed, never
/// (the default disposition then still stops the process).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
