//! The admin port (`--admin-listen`): `GET /metrics` (Prometheus text) and
//! `GET /healthz`, over HTTP/1.1 and HTTP/2 cleartext.
//!
//! It is a tonic server accepting HTTP/1.1 too, so the same port can also
//! answer gRPC (the reporter adds `grpc.health.v1` here: kubelet's native gRPC
//! probes speak plaintext only, while the gatherer-facing port may be TLS).
//! Nothing on this port changes state or reveals collected data.

use std::future::Future;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::metrics::Exposition;

/// What the admin port reports.
pub trait Report: Send + Sync + 'static {
    /// Writes this binary's metrics into `page` (the `process_*` families are
    /// added by the admin server).
    fn metrics(&self, page: &mut Exposition);

    /// `Ok` while the process does its job; `Err(reason)` makes `/healthz`
    /// answer 503 with the reason (a liveness probe restarts the process).
    fn health(&self) -> Result<(), String>;

    /// Conditions an operator should see that are not a liveness failure (a
    /// restart would not fix them, e.g. a store holding its rows): listed, one
    /// per line, after `ok` in `/healthz`'s 200 answer.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Serves the admin port on `listener` until `shutdown` resolves. `grpc`
/// adds gRPC services (routes) to the same port.
pub async fn serve(
    listener: TcpListener,
    report: Arc<dyn Report>,
    grpc: Option<Routes>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let metrics = {
        let report = Arc::clone(&report);
        move || {
            let report = Arc::clone(&report);
            async move {
                let mut page = Exposition::new();
                page.family(
                    "hostpulse_build_info",
                    crate::metrics::Kind::Gauge,
                    "Always 1; the labels say which build answers.",
                );
                page.sample(
                    "hostpulse_build_info",
                    &[("version", env!("CARGO_PKG_VERSION"))],
                    1.0,
                );
                report.metrics(&mut page);
                page.process();
                if crate::telemetry::exporting() {
                    page.single(
                        "hostpulse_trace_export_failures_total",
                        crate::metrics::Kind::Counter,
                        "OTLP trace exports that failed (their spans were dropped).",
                        crate::telemetry::export_failures() as f64,
                    );
                }
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    page.finish(),
                )
            }
        }
    };
    let healthz = move || {
        let report = Arc::clone(&report);
        async move {
            match report.health() {
                Ok(()) => {
                    let mut body = "ok\n".to_string();
                    for note in report.notes() {
                        body.push_str(&note);
                        body.push('\n');
                    }
                    (StatusCode::OK, body)
                }
                Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            }
        }
    };
    let router = grpc
        .unwrap_or_default()
        .into_axum_router()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        // Not gRPC's "unimplemented" with HTTP 200 for a mistyped path.
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /metrics or /healthz\n",
            )
        });
    Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
