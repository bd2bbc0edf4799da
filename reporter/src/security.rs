//! TLS and authentication settings from the command line, checked once at
//! start, and their reloads (SIGHUP, or a file changed on disk, which is how
//! cert-manager and Kubernetes Secrets rotate them).
//!
//! | flags | what the reporter does |
//! |---|---|
//! | none | plaintext, no credentials (as before) |
//! | `--tls-cert --tls-key` | TLS; plaintext clients are told to use https:// |
//! | `+ --tls-client-ca` | mutual TLS: protected calls need a client certificate from that CA |
//! | `--token-file` | protected calls need `authorization: Bearer <token>` (with or without TLS) |
//! | `--node-binding` | which node ids the credentials allow in Hello ([`crate::identity`]) |
//!
//! Which calls are protected is [`crate::auth`]'s business (deny by default).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hostpulse_ops::reload::{Fingerprint, Watched, Why, fingerprint};

use crate::auth::{AuthStats, Policy};
use crate::cli::Args;
use crate::identity::Binding;
use crate::tls::{TlsError, TlsFiles, TlsState};
use crate::token::{TokenError, TokenState};

/// Why the security settings cannot be used; the reporter does not start.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Flags that do not make sense together (a certificate without its key,
    /// a client CA without a server certificate).
    #[error("{0}")]
    Flags(&'static str),
    /// The TLS material does not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The token file does not load.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The loaded settings, shared by the listener, the auth layer and the reloader.
#[derive(Debug)]
pub struct Security {
    /// TLS material, when the reporter serves TLS.
    pub tls: Option<Arc<TlsState>>,
    /// Accepted bearer tokens, when required.
    pub tokens: Option<Arc<TokenState>>,
    /// Refusal and reload counters.
    pub stats: Arc<AuthStats>,
    /// How node ids are bound to credentials.
    pub binding: Binding,
}

impl Security {
    /// Checks the flag combinations and loads every file once.
    pub fn from_args(args: &Args) -> Result<Security, SecurityError> {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }),
            (Some(_), None) => return Err(SecurityError::Flags("--tls-cert needs --tls-key")),
            (None, Some(_)) => return Err(SecurityError::Flags("--tls-key needs --tls-cert")),
            (None, None) if args.tls_client_ca.is_some() => {
                return Err(SecurityError::Flags(
                    "--tls-client-ca needs --tls-cert and --tls-key: client certificates are verified inside TLS",
                ));
            }
            (None, None) => None,
        };
        let tls = tls.map(TlsState::open).transpose()?.map(Arc::new);
        let tokens = args
            .token_file
            .clone()
            .map(TokenState::open)
            .transpose()?
            .map(Arc::new);
        if args.node_binding == Binding::Require && tokens.is_none() && args.tls_client_ca.is_none()
        {
            return Err(SecurityError::Flags(
                "--node-binding require needs credentials to bind: --tls-client-ca or --token-file",
            ));
        }
        if tokens.is_some() && tls.is_none() {
            tracing::warn!(
                "--token-file without --tls-cert: bearer tokens travel in clear text (fine behind a TLS-terminating mesh, not on an open network)"
            );
        }
        Ok(Security {
            tls,
            tokens,
            stats: Arc::new(AuthStats::default()),
            binding: args.node_binding,
        })
    }

    /// What the auth layer enforces.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::new(Policy {
            tls: self.tls.clone(),
            tokens: self.tokens.clone(),
            stats: Arc::clone(&self.stats),
            binding: self.binding,
        })
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> &'static str {
        let mtls = self
            .tls
            .as_ref()
            .is_some_and(|t| t.current().client_ca.is_some());
        match (self.tls.is_some(), mtls, self.tokens.is_some()) {
            (false, _, false) => "plaintext, no authentication",
            (false, _, true) => "plaintext, bearer token",
            (true, false, false) => "TLS, no client authentication",
            (true, false, true) => "TLS, bearer token",
            (true, true, false) => "mutual TLS",
            (true, true, true) => "mutual TLS and bearer token",
        }
    }

    /// Re-reads the TLS material (if `tls`) and the token file (if
    /// `tokens`); a failure is logged and the previous material stays.
    pub fn reload(&self, tls: bool, tokens: bool) {
        let stats = &self.stats;
        if let Some(state) = self.tls.as_ref().filter(|_| tls) {
            match state.reload() {
                Ok(_) => {
                    stats.reloads_total.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(cert = %state.source().cert.display(), "TLS material reloaded; new connections use it");
                }
                Err(e) => {
                    stats.reload_failures_total.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "TLS material NOT reloaded; the previous certificate stays in force");
                }
            }
        }
        if let Some(state) = self.tokens.as_ref().filter(|_| tokens) {
            match state.reload() {
                Ok(tokens) => {
                    stats.reloads_total.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(tokens = tokens.len(), "token file reloaded");
                }
                Err(e) => {
                    stats.reload_failures_total.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "token file NOT reloaded; the previous tokens stay in force");
                }
            }
        }
    }

    /// What the reload loop ([`hostpulse_ops::reload`]) watches: the TLS
    /// files and the token file, each reloaded on its own change and on SIGHUP.
    pub fn watched(self: &Arc<Self>) -> Vec<Arc<dyn Watched>> {
        let mut watched: Vec<Arc<dyn Watched>> = Vec::new();
        if self.tls.is_some() {
            watched.push(Arc::new(TlsFilesWatch(Arc::clone(self))));
        }
        if self.tokens.is_some() {
            watched.push(Arc::new(TokenFileWatch(Arc::clone(self))));
        }
        watched
    }
}

/// The TLS certificate, key and client CA, for the reload loop.
struct TlsFilesWatch(Arc<Security>);

impl Watched for TlsFilesWatch {
    fn fingerprints(&self) -> Vec<Option<Fingerprint>> {
        self.0.tls.as_ref().map_or_else(Vec::new, |t| {
            let f = t.source();
            let mut paths = vec![fingerprint(&f.cert), fingerprint(&f.key)];
            if let Some(ca) = &f.client_ca {
                paths.push(fingerprint(ca));
            }
            paths
        })
    }

    fn reload(&self, why: Why) {
        if why == Why::Changed {
            tracing::info!("TLS files changed on disk");
        }
        self.0.reload(true, false);
    }
}

/// The token file, for the reload loop.
struct TokenFileWatch(Arc<Security>);

impl Watched for TokenFileWatch {
    fn fingerprints(&self) -> Vec<Option<Fingerprint>> {
        vec![self.0.tokens.as_ref().and_then(|t| fingerprint(t.source()))]
    }

    fn reload(&self, why: Why) {
        if why == Why::Changed {
            tracing::info!("token file changed on disk");
        }
        self.0.reload(false, true);
    }
}
