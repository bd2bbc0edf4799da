//! Assembles the gRPC server: Ingest and Admin, health, reflection (v1 and
//! v1alpha, since grpcurl 1.8 speaks only v1alpha), gzip both ways, HTTP/2
//! keepalive, connection age, the auth layer (outermost: a refused call
//! takes no stream slot) and the Ingest limits layer; connections come from
//! the shared accept loop ([`crate::listener`]: back-off, handshake timeout),
//! through our own TLS [`crate::acceptor`] when configured.

use std::sync::Arc;
use std::time::Duration;

use hostpulse_proto::pb::admin_server::AdminServer;
use hostpulse_proto::pb::ingest_server::IngestServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::acceptor;
use crate::admin::AdminService;
use crate::auth::AuthLayer;
use crate::ingest::IngestService;
use crate::limits::IngestLimitsLayer;
use crate::listener;
use crate::security::Security;
use crate::state::Shared;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Maximum concurrent Ingest streams (past their Hello).
    pub max_streams: usize,
    /// Maximum Ingest streams waiting for their Hello.
    pub max_pending_streams: usize,
    /// Handshake timeout and pending cap of the listener.
    pub connections: crate::listener::ConnectionLimits,
    /// Largest inbound message, in bytes (on the wire and decompressed).
    pub max_message_bytes: usize,
    /// A stream silent for this long is ended.
    pub idle_timeout: Duration,
    /// Connections are closed (GOAWAY) after this age...
    pub max_connection_age: Duration,
    /// ...leaving their requests this long to finish.
    pub max_connection_age_grace: Duration,
    /// HTTP/2 PING interval, to detect dead peers.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered.
    pub keepalive_timeout: Duration,
    /// Health statuses, shared with the admin port's gRPC health service.
    pub health: tonic_health::server::HealthReporter,
}

impl ServerOptions {
    /// The settings the command line gives (HTTP/2 PINGs every 10 s, 10 s
    /// to answer), with a fresh health reporter.
    pub fn from_args(args: &crate::cli::Args) -> ServerOptions {
        ServerOptions {
            max_streams: args.max_streams,
            max_pending_streams: args.max_pending_streams,
            connections: crate::listener::ConnectionLimits {
                handshake_timeout: args.handshake_timeout,
                max_pending: args
                    .max_pending_connections
                    .unwrap_or_else(crate::listener::default_max_pending),
            },
            max_message_bytes: args.max_message_bytes,
            idle_timeout: args.idle_timeout,
            // Streams end themselves at 85-100% of the age; the transport's own
            // age is the backstop for everything else (Tail streams, idle connections).
            max_connection_age: args.max_connection_age,
            max_connection_age_grace: args.max_connection_age_grace,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(10),
            health: tonic_health::server::HealthReporter::new(),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Building the reflection service failed (a broken descriptor set).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A `grpc.health.v1.Health` service answering from `reporter`'s statuses
/// (the gRPC port and the admin port answer alike).
pub fn health_service(
    reporter: &tonic_health::server::HealthReporter,
) -> tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService> {
    tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
    )
}

/// Serves on `listener` until `shutdown` resolves and every stream has ended.
pub async fn serve(
    shared: Arc<Shared>,
    options: ServerOptions,
    listener: TcpListener,
    spool_full: Option<watch::Receiver<bool>>,
    security: &Security,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let health = options.health.clone();
    let health_service = health_service(&health);
    health.set_serving::<IngestServer<IngestService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    if let Some(mut full) = spool_full {
        // A full spool cannot take batches: tell load balancers (the overall
        // "" service and Ingest) so they prefer other replicas. Admin stays up.
        let health = health.clone();
        tokio::spawn(async move {
            loop {
                let is_full = *full.borrow_and_update();
                let status = if is_full {
                    ServingStatus::NotServing
                } else {
                    ServingStatus::Serving
                };
                health.set_service_status("", status).await;
                health
                    .set_service_status("hostpulse.v1.Ingest", status)
                    .await;
                if full.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hostpulse_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    // Acks are a few bytes: compressing them makes them larger and costs a
    // deflate state per message, so Ingest only accepts compression.
    let ingest = IngestServer::new(IngestService::new(Arc::clone(&shared)))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(options.max_message_bytes);
    let admin = AdminServer::new(AdminService::new(Arc::clone(&shared)))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);

    let limits = IngestLimitsLayer::new(
        options.max_streams,
        options.max_pending_streams,
        options.max_message_bytes,
        options.idle_timeout,
    );
    shared.metrics.set_streams_waiting(limits.clone());
    let connections = Arc::clone(&shared.metrics.connections);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(options.keepalive_timeout))
        .max_connection_age(options.max_connection_age)
        .max_connection_age_grace(options.max_connection_age_grace)
        .layer(AuthLayer::new(security.policy()))
        .layer(limits);
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(admin);
    // Nagle stays on: an ack may wait up to ~40 ms, far inside the
    // budget, while at 5,000 streams over 50 connections it coalesces
    // the acks of many streams into few segments (bench/loadgen).
    match &security.tls {
        Some(tls) => {
            let incoming = acceptor::incoming(
                listener,
                options.connections,
                connections,
                Arc::clone(tls),
                Arc::clone(&security.stats),
            );
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    listener::incoming(
                        listener,
                        options.connections,
                        connections,
                        listener::http2_preface,
                    ),
                    shutdown,
                )
                .await?;
        }
    }
    Ok(())
}
