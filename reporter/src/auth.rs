//! Who may call the reporter: one tower layer in front of every service.
//!
//! # Invariants
//!
//! - **Deny by default.** Every path is protected except the three listed in
//!   [`OPEN_SERVICES`]: gRPC health (load balancers and kubelet probes carry
//!   no credentials) and the two reflection services (`grpcurl list` and
//!   `describe` show only the schema, which is public in the repository). A
//!   service added later is protected without anyone remembering to.
//! - **Every configured check applies.** With `--tls-client-ca` the client's
//!   certificate chain must lead to that CA ([`crate::tls::ClientCa`]); with
//!   `--token-file` an `authorization: Bearer` header must carry one of the
//!   file's tokens ([`crate::token`]). With both, both are required.
//! - **A refusal is precise and local.** The call gets UNAUTHENTICATED with
//!   the reason (never the token), the reporter logs a warning with the peer
//!   address and counts it in [`AuthStats`]; other streams are not affected.
//! - The checks read the material in force at the time of the call, so a
//!   reloaded client CA or token file applies to the next call.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::identity::{Binding, Credential};
use crate::tls::{ClientCertRejection, TlsState};
use crate::token::{TokenState, bearer};

/// Path prefixes served without credentials (see the module doc for why).
pub const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Counters of refused peers and of reloads, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// Calls refused with UNAUTHENTICATED, for any reason.
    pub rejected_total: AtomicU64,
    /// ...because no client certificate was presented.
    pub rejected_no_client_cert: AtomicU64,
    /// ...because the client certificate is not accepted by the client CA.
    pub rejected_bad_client_cert: AtomicU64,
    /// ...because no bearer token was sent.
    pub rejected_missing_token: AtomicU64,
    /// ...because the bearer token is not in the token file.
    pub rejected_invalid_token: AtomicU64,
    /// Plaintext connections to the TLS listener (answered UNAUTHENTICATED).
    pub plaintext_connections: AtomicU64,
    /// TLS handshakes that failed (wrong CA on the client, a scanner...).
    pub handshake_failures: AtomicU64,
    /// Hellos refused because the credential does not allow the node id
    /// ([`crate::identity`]); not counted in `rejected_total`
    /// (PERMISSION_DENIED, not UNAUTHENTICATED).
    pub node_id_refused: AtomicU64,
    /// Successful reloads of the TLS material or the token file.
    pub reloads_total: AtomicU64,
    /// Reloads that failed (the previous material stayed in force).
    pub reload_failures_total: AtomicU64,
}

impl AuthStats {
    fn count(&self, which: &AtomicU64) {
        which.fetch_add(1, Ordering::Relaxed);
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client certificate is missing or not accepted.
    #[error("{0}")]
    ClientCert(#[from] ClientCertRejection),
    /// No `authorization: Bearer` header (the token file is configured).
    #[error(
        "missing bearer token: this reporter requires `authorization: Bearer <token>` (the gatherer's --token-file)"
    )]
    MissingToken,
    /// A bearer token that is not in the token file.
    #[error("invalid bearer token: not one of this reporter's --token-file tokens")]
    InvalidToken,
}

/// What the layer checks.
#[derive(Debug, Default)]
pub struct Policy {
    /// TLS material, whose client CA (if any) client chains must lead to.
    pub tls: Option<Arc<TlsState>>,
    /// The accepted bearer tokens.
    pub tokens: Option<Arc<TokenState>>,
    /// Where refusals are counted.
    pub stats: Arc<AuthStats>,
    /// How node ids are bound to the credentials (checked at Hello).
    pub binding: Binding,
}

impl Policy {
    /// Whether any credential is required at all.
    pub fn requires_credentials(&self) -> bool {
        self.tokens.is_some()
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.current().client_ca.is_some())
    }

    /// The decision for one call: `path` is the request's path,
    /// `client_chain` the certificates the client presented in the TLS
    /// handshake (leaf first), `authorization` the header's value. On
    /// success, what authenticated it (for the node-id check at Hello).
    pub fn check(
        &self,
        path: &str,
        client_chain: Option<&[CertificateDer<'_>]>,
        authorization: Option<&[u8]>,
    ) -> Result<Credential, Refusal> {
        let mut credential = Credential {
            binding: self.binding,
            client_cert: None,
            token_nodes: None,
        };
        if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
            return Ok(credential);
        }
        if let Some(ca) = self
            .tls
            .as_ref()
            .and_then(|t| t.current().client_ca.clone())
        {
            ca.check(client_chain)?;
            credential.client_cert = client_chain
                .and_then(<[_]>::first)
                .map(|c| c.clone().into_owned());
        }
        if let Some(tokens) = &self.tokens {
            let presented = authorization
                .and_then(bearer)
                .ok_or(Refusal::MissingToken)?;
            let tokens = tokens.current();
            let nodes = tokens.find(presented).ok_or(Refusal::InvalidToken)?;
            credential.token_nodes = Some(nodes.cloned());
        }
        Ok(credential)
    }

    fn count(&self, refusal: &Refusal) {
        let s = &self.stats;
        match refusal {
            Refusal::ClientCert(ClientCertRejection::Missing) => {
                s.count(&s.rejected_no_client_cert)
            }
            Refusal::ClientCert(ClientCertRejection::Invalid(_)) => {
                s.count(&s.rejected_bad_client_cert)
            }
            Refusal::MissingToken => s.count(&s.rejected_missing_token),
            Refusal::InvalidToken => s.count(&s.rejected_invalid_token),
        }
    }
}

/// The layer.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: Arc<Policy>,
}

impl AuthLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        AuthLayer { policy }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service the layer produces.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Service<http::Request<Body>> for Auth<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let chain = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes);
        match self.policy.check(
            request.uri().path(),
            chain.as_deref().map(Vec::as_slice),
            authorization,
        ) {
            Ok(credential) => {
                request.extensions_mut().insert(credential);
                // The clone that was polled ready is the one to call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(refusal) => {
                self.policy.count(&refusal);
                let peer = peer_addr(&request);
                tracing::warn!(
                    peer = %peer.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
                    path = request.uri().path(),
                    reason = %refusal,
                    "refused an unauthenticated call"
                );
                let status = Status::unauthenticated(refusal.to_string());
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The peer's address, over TLS or not.
fn peer_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let ext = request.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsFiles;
    use rustls::pki_types::pem::PemObject;

    fn chain(pki: &hostpulse_testkit::Pki, name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(pki.pem(name))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn policy(
        pki: &hostpulse_testkit::Pki,
        client_ca: bool,
        tokens: Option<&str>,
    ) -> (Policy, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsState::open(TlsFiles {
            cert: pki.pem("server").into(),
            key: pki.key("server").into(),
            client_ca: client_ca.then(|| pki.pem("ca1").into()),
        })
        .unwrap();
        let tokens = tokens.map(|t| {
            let path = dir.path().join("tokens");
            std::fs::write(&path, t).unwrap();
            Arc::new(TokenState::open(path).unwrap())
        });
        let policy = Policy {
            tls: Some(Arc::new(tls)),
            tokens,
            stats: Arc::default(),
            binding: Binding::Auto,
        };
        (policy, dir)
    }

    #[test]
    fn client_certificates_are_judged_against_the_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let (policy, _t) = policy(&pki, true, None);
        let admin = "/hostpulse.v1.Admin/ListNodes";
        assert_eq!(
            policy
                .check(admin, Some(&chain(&pki, "client")), None)
                .map(drop),
            Ok(())
        );
        assert_eq!(
            policy.check(admin, None, None).map(drop),
            Err(Refusal::ClientCert(ClientCertRejection::Missing))
        );
        assert_eq!(
            policy.check(admin, Some(&[]), None).map(drop),
            Err(Refusal::ClientCert(ClientCertRejection::Missing))
        );
        let Err(Refusal::ClientCert(ClientCertRejection::Invalid(why))) = policy
            .check(admin, Some(&chain(&pki, "rogue")), None)
            .map(drop)
        else {
            panic!("another CA's certificate accepted");
        };
        assert!(why.contains("UnknownIssuer"), "{why}");
        // A certificate of the right CA but for servers only is not a client's.
        assert!(matches!(
            policy
                .check(admin, Some(&chain(&pki, "server")), None)
                .map(drop),
            Err(Refusal::ClientCert(ClientCertRejection::Invalid(_)))
        ));
    }

    #[test]
    fn everything_but_health_and_reflection_is_protected() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let (policy, _t) = policy(&pki, true, Some("t0k\n"));
        for open in [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(policy.check(open, None, None).map(drop), Ok(()), "{open}");
        }
        // Deny by default: paths no one listed, lookalikes, a future service.
        for closed in [
            "/hostpulse.v1.Ingest/Stream",
            "/hostpulse.v1.Admin/Tail",
            "/hostpulse.v2.Something/New",
            "/grpc.health.v1.Healthy/Check",
            "/",
            "",
        ] {
            assert!(
                policy
                    .check(closed, None, Some(b"Bearer t0k"))
                    .map(drop)
                    .is_err(),
                "{closed}"
            );
        }
        // Both credentials are required when both are configured.
        let good = chain(&pki, "client");
        let ingest = "/hostpulse.v1.Ingest/Stream";
        assert_eq!(
            policy
                .check(ingest, Some(&good), Some(b"Bearer t0k"))
                .map(drop),
            Ok(())
        );
        assert_eq!(
            policy.check(ingest, Some(&good), None).map(drop),
            Err(Refusal::MissingToken)
        );
        assert_eq!(
            policy
                .check(ingest, Some(&good), Some(b"Bearer t0kk"))
                .map(drop),
            Err(Refusal::InvalidToken)
        );
        assert!(matches!(
            policy.check(ingest, None, Some(b"Bearer t0k")).map(drop),
            Err(Refusal::ClientCert(ClientCertRejection::Missing))
        ));
    }

    #[test]
    fn the_credential_that_passed_bounds_the_node_ids_of_the_hello() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let (policy, _t) = policy(&pki, true, Some("# staff\nt0k node=cl*\n"));
        let ingest = "/hostpulse.v1.Ingest/Stream";
        let credential = policy
            .check(ingest, Some(&chain(&pki, "client")), Some(b"Bearer t0k"))
            .unwrap();
        assert!(credential.client_cert.is_some());
        assert_eq!(credential.allows("client"), Ok(()));
        assert!(credential.allows("web-1").is_err());
        // The comment line is not a token.
        assert_eq!(
            policy
                .check(
                    ingest,
                    Some(&chain(&pki, "client")),
                    Some(b"Bearer # staff")
                )
                .map(drop),
            Err(Refusal::InvalidToken)
        );
    }

    #[test]
    fn without_a_client_ca_or_tokens_nothing_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let (policy, _t) = policy(&pki, false, None);
        assert!(!policy.requires_credentials());
        assert_eq!(
            policy
                .check("/hostpulse.v1.Ingest/Stream", None, None)
                .map(drop),
            Ok(())
        );
        assert!(
            Policy::default()
                .check("/hostpulse.v1.Admin/Status", None, None)
                .is_ok()
        );
    }
}
