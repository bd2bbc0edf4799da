//! The TLS listener: terminates TLS itself and hands established connections
//! to tonic (`Server::serve_with_incoming_shutdown`).
//!
//! ```text
//! accept ──► peek 1st byte ──0x16──► handshake (current material) ──ok──► tonic
//!                 │                        └─fails──► warn (peer, rustls reason), close
//!                 └─other──► plaintext: "PRI" (HTTP/2) ──► UNAUTHENTICATED "use https://"
//!                                       anything else  ──► HTTP/1.1 400, close
//! ```
//!
//! Doing it here rather than with tonic's `tls_config` gives three things:
//! handshake failures are logged with the peer address and the reason; each
//! handshake takes the material in force ([`TlsState::current`]), so reloaded
//! certificates apply to new connections without a restart; and a plaintext
//! client gets a gRPC status that says what to change instead of a protocol
//! error. Each connection is handled on its own task by the shared accept
//! loop ([`crate::listener`]), so a slow or silent peer never delays the
//! others; one that has not completed its handshake within
//! `--handshake-timeout` (or sends nothing for [`HANDSHAKE_TIMEOUT`]) is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::Status;

use crate::auth::AuthStats;
use crate::listener::{peek_at_least, read_preface};
use crate::tls::TlsState;

/// How long a new connection may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plaintext client is told.
pub const PLAINTEXT_MESSAGE: &str = "this reporter accepts TLS only: use https:// (the gatherer's --reporter https://HOST:PORT, grpcurl without -plaintext)";

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

/// Established TLS connections, for `serve_with_incoming_shutdown`.
pub type Incoming = crate::listener::Incoming<TlsStream<TcpStream>>;

/// Accepts on `listener` through the shared accept loop
/// ([`crate::listener::incoming`]: back-off, handshake timeout, pending cap)
/// until the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    limits: crate::listener::ConnectionLimits,
    connections: Arc<crate::listener::ConnectionStats>,
    tls: Arc<TlsState>,
    stats: Arc<AuthStats>,
) -> Incoming {
    crate::listener::incoming(listener, limits, connections, move |stream, peer| {
        let (tls, stats) = (Arc::clone(&tls), Arc::clone(&stats));
        // The preface is awaited within the same timeout: a peer that
        // completes TLS and then says nothing holds nothing for long.
        async move { read_preface(handshake(stream, peer, &tls, &stats).await?).await }
    })
}

/// Classifies the connection by its first byte and completes the handshake.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &TlsState,
    stats: &AuthStats,
) -> Option<TlsStream<TcpStream>> {
    let mut first = [0u8; 3];
    let seen = match tokio::time::timeout(HANDSHAKE_TIMEOUT, peek_at_least(&stream, &mut first, 1))
        .await
    {
        // A TCP probe (load balancer, kubelet) connects and closes: not worth a line.
        Ok(Ok(0)) => return None,
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection failed before its first byte");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no byte within {HANDSHAKE_TIMEOUT:?}; closing");
            return None;
        }
    };
    if seen > 0 && first[0] != TLS_HANDSHAKE {
        stats.plaintext_connections.fetch_add(1, Ordering::Relaxed);
        stats.rejected_total.fetch_add(1, Ordering::Relaxed);
        plaintext(stream, peer).await;
        return None;
    }
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.current().server));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(established)) => Some(established),
        Ok(Err(e)) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, reason = %crate::tls::handshake_failure(&e), "TLS handshake failed");
            None
        }
        Err(_) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "TLS handshake not completed within {HANDSHAKE_TIMEOUT:?}");
            None
        }
    }
}

/// Answers a plaintext client on the TLS listener and closes.
async fn plaintext(mut stream: TcpStream, peer: SocketAddr) {
    let mut head = [0u8; 3];
    let http2 = matches!(
        tokio::time::timeout(HANDSHAKE_TIMEOUT, peek_at_least(&stream, &mut head, 3)).await,
        Ok(Ok(3))
    ) && &head == b"PRI";
    tracing::warn!(
        %peer,
        protocol = if http2 { "HTTP/2 (gRPC)" } else { "not HTTP/2" },
        "a plaintext connection to the TLS listener: answered that TLS is required"
    );
    if http2 {
        // A real HTTP/2 server so the client sees a gRPC status: every call
        // on this connection gets a trailers-only UNAUTHENTICATED.
        let service = hyper::service::service_fn(|_request| async {
            Ok::<_, Infallible>(
                Status::unauthenticated(PLAINTEXT_MESSAGE).into_http::<tonic::body::Body>(),
            )
        });
        let connection =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, connection).await;
    } else {
        let body = format!("{PLAINTEXT_MESSAGE}\n");
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
}
