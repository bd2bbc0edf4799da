//! The `reporter` binary.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use hostpulse_ops::daemon::{self, StartError, Threads};
use reporter::admission::Admission;
use reporter::cli::{Args, Ingest};
use reporter::config::{self, ConfigStore};
use reporter::intake::{Discard, Intake};
use reporter::metrics::Metrics;
use reporter::registry::Registry;
use reporter::report::{ReporterReport, write_self_rows};
use reporter::security::Security;
use reporter::server::{self, ServerOptions};
use reporter::spool::{Spool, SpoolOptions};
use reporter::state::{Shared, StreamLimits};
use reporter::store::Store;
use reporter::store::jsonl::JsonlStore;
use reporter::store::questdb;
use reporter::store::questdb_schema::{self, SchemaMode, SchemaWatch};
use reporter::store::sqlite::SqliteStore;
use reporter::tail::Tail;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

fn main() -> ExitCode {
    if let Some(code) = reporter::spool::inspect::run_if_invoked() {
        return code;
    }
    let loaded = match daemon::settings::<Args>(&[config::SECTION]) {
        Ok(l) => l,
        Err(e) => return e.exit(),
    };
    if loaded.args.ops.print_config {
        // The pushed table is checked as at start, so a CI step running
        // --print-config catches its mistakes too.
        if let Some(path) = &loaded.args.ops.config {
            if let Err(e) = config::Config::load(path) {
                return StartError::Config(e.to_string()).exit();
            }
        }
        print!("{}", loaded.render("reporter", &redact));
        if let Some((_, table)) = &loaded.file {
            if let Some(section) = table.get(config::SECTION) {
                let mut pushed = toml::Table::new();
                pushed.insert(config::SECTION.to_string(), section.clone());
                print!("\n# pushed to gatherers (reloaded on SIGHUP and on change)\n{pushed}");
            }
        }
        return ExitCode::SUCCESS;
    }
    let args = loaded.args;
    let ops = args.ops.clone();
    daemon::run(
        "hostpulse-reporter",
        &ops,
        Threads::PerCore,
        || async move {
            if args.apply_schema_and_exit {
                Ok(apply_schema_and_exit(&args).await)
            } else {
                run(args).await
            }
        },
    )
}

/// Hides secrets of a QuestDB configuration string in --print-config.
fn redact(key: &str, value: &str) -> String {
    if key != "questdb" {
        return value.to_string();
    }
    value
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((k, _)) if ["password", "token", "token_x", "token_y"].contains(&k.trim()) => {
                format!("{k}=<redacted>")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `--apply-schema-and-exit`: for a Kubernetes Job or an install script.
async fn apply_schema_and_exit(args: &Args) -> ExitCode {
    let Some(conf) = args.questdb.clone() else {
        return ExitCode::from(2);
    };
    let applied =
        tokio::task::spawn_blocking(move || questdb::apply_schema(&conf, questdb::SCHEMA_SQL))
            .await;
    match applied {
        Ok(Ok(())) => {
            tracing::info!("QuestDB schema applied");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not apply the QuestDB schema");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "applying the QuestDB schema failed");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM; `Err` when it cannot start.
async fn run(args: Args) -> Result<ExitCode, StartError> {
    let config = ConfigStore::open(args.ops.config.as_deref())
        .map_err(|e| StartError::Config(e.to_string()))?;
    // Before the spool: a wrong certificate path stops the reporter at once.
    let security =
        Arc::new(Security::from_args(&args).map_err(|e| StartError::Config(e.to_string()))?);
    let mut questdb_schema = None;
    let (intake, spool): (Arc<dyn Intake>, Option<Arc<Spool>>) = if args.ingest == Ingest::Discard {
        (Arc::new(Discard), None)
    } else {
        let options = SpoolOptions {
            dir: args.spool_dir.clone(),
            max_bytes: args.spool_max_bytes,
        };
        let setup = {
            let args = args.clone();
            // Opening stores may talk to a database (schema): not on the runtime.
            tokio::task::spawn_blocking(move || {
                let (stores, watch) = build_stores(&args)?;
                let spool = Spool::open(options, stores)
                    .map_err(|e| StartError::Disk(format!("--spool-dir: {e}")))?;
                Ok((spool, watch))
            })
        };
        match setup.await {
            Ok(Ok((spool, watch))) => {
                questdb_schema = watch;
                let spool = Arc::new(spool);
                (Arc::clone(&spool) as Arc<dyn Intake>, Some(spool))
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(StartError::Runtime(format!("opening the spool: {e}"))),
        }
    };
    let listener = listen(args.listen)
        .map_err(|e| StartError::Port(format!("--listen {}: {e}", args.listen)))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let reporter_id = args.reporter_id.clone().unwrap_or_else(hostname);
    let shared = Arc::new(Shared {
        intake,
        registry: Registry::default(),
        tail: Tail::default(),
        config: config.subscribe(),
        shutdown: shutdown_rx,
        reporter_id: reporter_id.clone(),
        limits: StreamLimits {
            hello_timeout: args.hello_timeout,
            max_definitions: args.max_series_per_stream,
            memory: reporter::budget::MemoryBudget::new(args.memory_budget),
            max_age: args.max_connection_age,
        },
        spool: spool.clone(),
        metrics: Metrics::default(),
        auth: Arc::clone(&security.stats),
        admission: Admission::new(args.admission_options()),
    });
    let options = ServerOptions::from_args(&args);
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signals = tokio::spawn(handle_signals(stop_tx));
    // One loop reloads the configuration, the TLS files and the tokens.
    let mut watched = security.watched();
    watched.push(Arc::new(config) as Arc<dyn hostpulse_ops::reload::Watched>);
    let reloader = tokio::spawn(hostpulse_ops::reload::run(
        watched,
        args.config_check_interval,
    ));
    let shutdown_timeout = args.shutdown_timeout;
    let health = options.health.clone();
    let shutdown = async move {
        let _ = stop_rx.await;
        // Readiness fails at once (the admin port keeps answering while the
        // spool drains), so load balancers stop sending new streams here.
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health
            .set_service_status(
                "hostpulse.v1.Ingest",
                tonic_health::ServingStatus::NotServing,
            )
            .await;
        tracing::info!("shutting down: ending streams after their current batch");
        let _ = shutdown_tx.send(true);
    };
    // Kubelet's liveness probe asks for "liveness": SERVING while the process
    // answers at all. Readiness asks for "" (overall), which turns NOT_SERVING
    // when the spool is full or the reporter stops: a restart would fix
    // neither, so liveness must not follow it.
    options
        .health
        .set_service_status("liveness", tonic_health::ServingStatus::Serving)
        .await;
    let admin = match args.ops.admin_listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(listen = %addr, "admin port: /metrics, /healthz, grpc.health.v1");
                let report = Arc::new(ReporterReport {
                    shared: Arc::clone(&shared),
                    questdb_schema: questdb_schema.clone(),
                });
                let mut routes =
                    tonic::service::Routes::new(server::health_service(&options.health));
                // grpcurl finds the health service without a .proto file.
                if let Ok(reflection) = tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                    .build_v1alpha()
                {
                    routes = routes.add_service(reflection);
                }
                let mut stopping = shared.shutdown.clone();
                Some(tokio::spawn(async move {
                    // The admin port outlives the gRPC port's shutdown until
                    // the spool has drained; it stops with the process.
                    let stop = async move {
                        let _ = stopping.wait_for(|s| *s).await;
                        std::future::pending::<()>().await;
                    };
                    if let Err(e) =
                        hostpulse_ops::admin::serve(listener, report, Some(routes), stop).await
                    {
                        tracing::error!(error = %e, "admin port failed");
                    }
                }))
            }
            Err(e) => return Err(StartError::Port(format!("--admin-listen {addr}: {e}"))),
        },
    };
    tracing::info!(
        listen = %local, ingest = shared.intake.name(), reporter_id = %reporter_id,
        config = ?args.ops.config, generation = shared.config.borrow().generation,
        security = security.describe(), "reporter serving"
    );
    let self_rows = tokio::spawn(write_self_rows(Arc::clone(&shared), args.self_interval));
    let full = spool.as_ref().map(|s| s.full());
    let mut stopping = shared.shutdown.clone();
    let registry = Arc::clone(&shared);
    let served = server::serve(shared, options, listener, full, &security, shutdown);
    tokio::pin!(served);
    // --shutdown-timeout counts from SIGTERM; past it the server future is
    // dropped, which closes the connections still open.
    let overdue = async {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    let result = tokio::select! {
        r = &mut served => r,
        () = overdue => {
            tracing::warn!(
                timeout = ?shutdown_timeout, open_streams = registry.registry.len(),
                "streams still open after --shutdown-timeout: closing their connections"
            );
            Ok(())
        }
    };
    drop(registry);
    signals.abort();
    self_rows.abort();
    reloader.abort();
    if let Some(spool) = spool {
        let drain_timeout = args.drain_timeout;
        tracing::info!(timeout = ?drain_timeout, "draining the spool into the stores");
        let _ = tokio::task::spawn_blocking(move || spool.shutdown(drain_timeout)).await;
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    })
}

/// Resolves on SIGINT or SIGTERM (never, if the handlers cannot be
/// installed: the default disposition then still stops the process).
/// SIGHUP belongs to the reload loop ([`hostpulse_ops::reload`]).
async fn handle_signals(stop: tokio::sync::oneshot::Sender<()>) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop.send(());
}

/// The stores, and the QuestDB store's schema verdict (`None`: not checked).
type Stores = (Vec<Box<dyn Store>>, Option<SchemaWatch>);

/// The stores the spool drains into, from the command line: SQLite unless
/// --questdb is given or --sqlite is `none`, plus QuestDB and JSON lines when
/// asked; and the QuestDB store's schema verdict.
fn build_stores(args: &Args) -> Result<Stores, StartError> {
    let mut watch = None;
    let mut stores: Vec<Box<dyn Store>> = Vec::new();
    let sqlite = match args.sqlite.as_deref() {
        Some("none") => None,
        Some(path) => Some(path.to_string()),
        None if args.questdb.is_none() => Some("./hostpulse.db".to_string()),
        None => None,
    };
    if let Some(path) = sqlite {
        let store = SqliteStore::open(std::path::Path::new(&path), args.retention)
            .map_err(|e| StartError::Store(format!("--sqlite {path}: {e}")))?;
        stores.push(Box::new(store));
    }
    if let Some(conf) = &args.questdb {
        let mode = if args.questdb_apply_schema {
            SchemaMode::Apply
        } else {
            args.questdb_schema
                .parse::<SchemaMode>()
                .map_err(StartError::Config)?
        };
        let (store, checked) = questdb_schema::open(conf, mode).map_err(StartError::Store)?;
        watch = checked;
        stores.push(store);
    }
    if let Some(target) = &args.jsonl {
        let store = JsonlStore::open(target)
            .map_err(|e| StartError::Store(format!("--jsonl {target}: {e}")))?;
        stores.push(Box::new(store));
    }
    if stores.is_empty() {
        return Err(StartError::Config(
            "no store to drain the spool into: give --sqlite, --questdb or --jsonl".into(),
        ));
    }
    Ok((stores, watch))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "reporter".to_string())
}

/// Binds the gRPC port with a deep accept queue. After a reporter restart
/// every gatherer of the replica reconnects within a second; tokio's default
/// backlog (1024) overflowed with 1,000 simultaneous connections in the load
/// generator (TcpExtListenOverflows), and a dropped SYN costs the gatherer a
/// 1 s retransmission. The kernel caps it at net.core.somaxconn.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}
