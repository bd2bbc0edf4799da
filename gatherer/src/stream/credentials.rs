//! How the gatherer proves who it is and checks who the reporter is:
//! `--tls-ca`, `--tls-cert`/`--tls-key` and `--token-file`.
//!
//! Every file is read at start (a mistake stops the gatherer with exit code
//! 2) and again at each connection attempt, so a rotated client certificate,
//! CA bundle or token is picked up at the next reconnection without a
//! restart. A rotated TLS file that fails the checks is logged as an error
//! and the files that last passed stay in use (as the reporter keeps its
//! previous material); a token file that became unreadable fails that
//! attempt only, and the gatherer keeps collecting and buffering and tries
//! again with backoff.
//!
//! This gatherer's own files are checked before any connection
//! ([`hostpulse_ops::certificate`]: X.509 v3, validity dates, clientAuth,
//! the key matching the certificate, `--tls-ca` holding CA certificates);
//! every message starts with the side at fault ("this gatherer's --tls-cert
//! FILE: ...", "the reporter's certificate ...").
//!
//! Connection failures caused by TLS are explained ([`Credentials::explain`]):
//! an untrusted reporter certificate names the `--tls-ca` file, an expired one
//! its dates, a plaintext reporter reached with https:// (or the reverse)
//! says which scheme to use.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hostpulse_ops::certificate::{self, File, Usage};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::targets::Target;

/// Whose files these are, in messages.
const OWNER: &str = "this gatherer's";

/// The credential flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// CA certificates (PEM) that sign the reporter's certificate; without
    /// it, the system's roots.
    pub ca: Option<PathBuf>,
    /// This gatherer's client certificate and key (PEM), for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// A file whose first non-empty line is the bearer token.
    pub token_file: Option<PathBuf>,
    /// The TLS files as they last passed the checks: used when a rotated
    /// file does not (logged), as the reporter keeps its previous material.
    pub last_good: LastGood,
}

/// The PEM bytes of the TLS files that last passed the checks, shared by the
/// clones of one [`Credentials`]. Never part of equality.
#[derive(Debug, Clone, Default)]
pub struct LastGood(Arc<Mutex<Option<TlsPems>>>);

impl PartialEq for LastGood {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LastGood {}

/// The checked contents of `--tls-ca` and `--tls-cert`/`--tls-key`.
#[derive(Debug, Clone)]
struct TlsPems {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Flags that cannot work; the gatherer does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A certificate without its key or the reverse.
    #[error("--tls-cert and --tls-key go together: give both or neither")]
    HalfIdentity,
    /// TLS flags while a reporter URL is plaintext.
    #[error("{flag} is given but --reporter {url} is plaintext: use https://")]
    PlaintextUrl {
        /// The TLS flag.
        flag: &'static str,
        /// The http:// URL.
        url: String,
    },
    /// A file cannot be read or parsed (the message names flag and file).
    #[error("{0}")]
    File(String),
}

impl Credentials {
    /// Checks the combination against the reporter URLs and reads every
    /// file once.
    pub fn new(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        token_file: Option<PathBuf>,
        targets: &[Target],
    ) -> Result<Credentials, CredentialsError> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(CredentialsError::HalfIdentity),
        };
        let creds = Credentials {
            ca,
            identity,
            token_file,
            last_good: LastGood::default(),
        };
        let tls_flag = if creds.ca.is_some() {
            Some("--tls-ca")
        } else {
            creds.identity.as_ref().map(|_| "--tls-cert")
        };
        if let (Some(flag), Some(plain)) = (tls_flag, targets.iter().find(|t| !t.tls)) {
            return Err(CredentialsError::PlaintextUrl {
                flag,
                url: plain.uri.to_string(),
            });
        }
        if let Some(t) = targets
            .iter()
            .find(|t| !t.tls)
            .filter(|_| creds.token_file.is_some())
        {
            tracing::warn!(reporter = %t.uri, "--token-file with a plaintext reporter URL: the token travels in clear text");
        }
        if let Some(first) = targets.iter().find(|t| t.tls) {
            creds
                .tls_config(&first.host)
                .map_err(CredentialsError::File)?;
        }
        creds.authorization().map_err(CredentialsError::File)?;
        Ok(creds)
    }

    /// The TLS settings for a connection to `host`, from the files as they
    /// are now, checked first ([`hostpulse_ops::certificate`]): a v1 or
    /// expired certificate, a key that is not the certificate's, a
    /// certificate not meant for clientAuth, a `--tls-ca` that is not a CA
    /// are explained here, naming this gatherer's file, instead of failing
    /// later as a bare "transport error".
    ///
    /// Once files have passed, a later failure (a rotation that wrote a bad
    /// file) is logged as an error and the files that last passed are used.
    pub fn tls_config(&self, host: &str) -> Result<ClientTlsConfig, String> {
        let mut last_good = self.last_good.0.lock().unwrap_or_else(|p| p.into_inner());
        let pems = match self.checked_pems() {
            Ok(pems) => {
                *last_good = Some(pems.clone());
                pems
            }
            Err(reason) => match last_good.as_ref() {
                Some(previous) => {
                    tracing::error!(%reason, "TLS files NOT reloaded; the previous ones stay in use");
                    previous.clone()
                }
                None => return Err(reason),
            },
        };
        let mut tls = ClientTlsConfig::new().domain_name(host.to_string());
        tls = match pems.ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
            None => tls.with_native_roots(),
        };
        if let Some((cert, key)) = pems.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(tls)
    }

    /// Reads and checks the TLS files.
    fn checked_pems(&self) -> Result<TlsPems, String> {
        let now = std::time::SystemTime::now();
        let file = |flag, path| File {
            owner: OWNER,
            flag,
            path,
        };
        let ca = match &self.ca {
            Some(ca) => {
                let ca = file("--tls-ca", ca);
                let pem = certificate::read(&ca).map_err(|e| e.to_string())?;
                certificate::check_ca(&ca, &pem, "the reporter's certificate", now)
                    .map_err(|e| e.to_string())?;
                Some(pem)
            }
            None => None,
        };
        let identity = match &self.identity {
            Some((cert, key)) => {
                let (cert, key) = (file("--tls-cert", cert), file("--tls-key", key));
                let cert_pem = certificate::read(&cert).map_err(|e| e.to_string())?;
                let key_pem = certificate::read(&key).map_err(|e| e.to_string())?;
                certificate::check_identity(&cert, &cert_pem, &key, &key_pem, Usage::Client, now)
                    .map_err(|e| e.to_string())?;
                Some((cert_pem, key_pem))
            }
            None => None,
        };
        Ok(TlsPems { ca, identity })
    }

    /// A warning when `node` is not a name of this gatherer's client
    /// certificate: a reporter with `--node-binding auto` (its default)
    /// would refuse every stream with PERMISSION_DENIED.
    pub fn node_id_mismatch(&self, node: &str) -> Option<String> {
        let (cert, _) = self.identity.as_ref()?;
        let pem = std::fs::read(cert).ok()?;
        let leaf = certificate::pem_certificates(&pem)
            .ok()?
            .into_iter()
            .next()?;
        let names = certificate::Facts::parse(&leaf).ok()?.node_names();
        if names.iter().any(|n| certificate::name_matches(n, node)) {
            return None;
        }
        Some(format!(
            "--node-id {node:?} is not a name of this gatherer's --tls-cert {} (it names {}): a reporter with --node-binding auto (its default) refuses its streams with PERMISSION_DENIED; give --node-id one of those names, or a certificate for {node:?}",
            cert.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    }

    /// The `authorization` header value, from the token file as it is now.
    pub fn authorization(&self) -> Result<Option<AsciiMetadataValue>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = read("--token-file", path)?;
        let text = String::from_utf8_lossy(&text);
        let token = first_token(&text)
            .ok_or_else(|| format!("this gatherer's --token-file {} holds no token (blank lines and # comments are skipped)", path.display()))?;
        let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            format!(
                "--token-file {}: the token is not printable ASCII",
                path.display()
            )
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// An operator's explanation of a failed connection to `target`, or the
    /// error chain as it is when TLS is not involved.
    pub fn explain(&self, target: &Target, error: &(dyn StdError + 'static)) -> Explained {
        let chain = error_chain(error);
        if let Some(tls) = find_rustls_error(error) {
            let trust = match &self.ca {
                Some(ca) => format!("this gatherer's --tls-ca {}", ca.display()),
                None => "the system's CA roots (a private CA? give --tls-ca)".to_string(),
            };
            let reason = match tls {
                rustls::Error::InvalidCertificate(
                    e @ (rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }),
                ) => format!(
                    "the reporter's certificate is not valid for the name {:?} in --reporter: {}",
                    target.host,
                    certificate::verdict(e, &trust)
                ),
                rustls::Error::InvalidCertificate(e) => format!(
                    "the reporter's certificate {}",
                    certificate::verdict(e, &trust)
                ),
                rustls::Error::InvalidMessage(_) => format!(
                    "the reporter does not answer with TLS: is it serving plaintext? use http://{}:{} or start the reporter with --tls-cert ({chain})",
                    target.host, target.port
                ),
                rustls::Error::AlertReceived(alert) => format!(
                    "the reporter (or a proxy in front of it) refused the TLS handshake ({alert:?}): it may require a client certificate this gatherer does not have (--tls-cert/--tls-key) or refuse this one ({chain})"
                ),
                other => format!(
                    "the TLS handshake with the reporter failed: {other} (neither certificate was refused: a proxy or load balancer on the path speaking TLS itself?)"
                ),
            };
            return Explained::Credentials(reason);
        }
        if target.tls && chain.contains("tls handshake eof") {
            return Explained::Credentials(format!(
                "the reporter closed the connection during the TLS handshake: is it serving plaintext? use http://{}:{} ({chain})",
                target.host, target.port
            ));
        }
        Explained::Transport(chain)
    }
}

/// A connection failure, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explained {
    /// Fixing it needs the operator (certificates, CA, scheme): logged as an error.
    Credentials(String),
    /// The network or the reporter is down: retried quietly.
    Transport(String),
}

/// The token of the first line that is neither blank nor a `#` comment,
/// trimmed; a ` node=PATTERNS` suffix (the reporter's token file format) is
/// dropped, so one file can serve both in a lab.
pub fn first_token(text: &str) -> Option<&str> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    Some(match line.rsplit_once([' ', '\t']) {
        Some((token, last)) if last.starts_with("node=") => token.trim_end(),
        _ => line,
    })
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
}

/// The rustls error somewhere in the chain; tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips it, so look inside those too.
fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(tls) = find_rustls_error(inner) {
                return Some(tls);
            }
        }
        current = e.source();
    }
    None
}

/// An error and its sources, "outer: inner: innermost".
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn the_first_non_empty_line_is_the_token() {
        assert_eq!(first_token("\n  \n new \nold\n"), Some("new"));
        assert_eq!(first_token("\n\n"), None);
        assert_eq!(first_token("# tokens\n  # more\ns3cret\n"), Some("s3cret"));
        assert_eq!(first_token("# only comments\n"), None);
        assert_eq!(first_token("s3cret node=web-*\n"), Some("s3cret"));
    }

    #[test]
    fn flag_combinations_are_checked() {
        let https = [target("https://r:1")];
        let http = [target("http://r:1")];
        let p = || Some(PathBuf::from("/nonexistent"));
        assert_eq!(
            Credentials::new(None, p(), None, None, &https),
            Err(CredentialsError::HalfIdentity)
        );
        assert!(matches!(
            Credentials::new(p(), None, None, None, &http),
            Err(CredentialsError::PlaintextUrl {
                flag: "--tls-ca",
                ..
            })
        ));
        let err = Credentials::new(p(), None, None, None, &https).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("this gatherer's --tls-ca /nonexistent: cannot read it"),
            "{err}"
        );
        assert_eq!(
            Credentials::new(None, None, None, None, &http),
            Ok(Credentials::default())
        );
    }

    #[test]
    fn the_token_travels_as_a_bearer_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n s3cret \nolder\n").unwrap();
        let creds = Credentials {
            token_file: Some(path.clone()),
            ..Credentials::default()
        };
        let value = creds.authorization().unwrap().unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
        assert!(value.is_sensitive());
        std::fs::write(&path, "\n").unwrap();
        assert!(
            creds
                .authorization()
                .unwrap_err()
                .contains("holds no token")
        );
    }

    #[test]
    fn a_rotated_file_that_fails_the_checks_keeps_the_previous_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::copy(pki.pem("client"), &cert).unwrap();
        std::fs::copy(pki.key("client"), &key).unwrap();
        let targets = [target("https://127.0.0.1:1")];
        let creds = Credentials::new(
            Some(pki.pem("ca1").into()),
            Some(cert.clone()),
            Some(key.clone()),
            None,
            &targets,
        )
        .unwrap();
        pki.leaf_v1("v1", "ca1");
        std::fs::copy(pki.pem("v1"), &cert).unwrap();
        std::fs::copy(pki.key("v1"), &key).unwrap();
        assert!(creds.tls_config("127.0.0.1").is_ok());
        // A gatherer started with those files refuses to start.
        let err = Credentials::new(
            Some(pki.pem("ca1").into()),
            Some(cert),
            Some(key),
            None,
            &targets,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("is an X.509 v1 certificate"),
            "{err}"
        );
    }

    #[test]
    fn a_node_id_the_certificate_does_not_name_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let creds = Credentials {
            identity: Some((pki.pem("client").into(), pki.key("client").into())),
            ..Credentials::default()
        };
        assert_eq!(creds.node_id_mismatch("client"), None);
        let text = creds.node_id_mismatch("web-1").unwrap();
        assert!(
            text.starts_with("--node-id \"web-1\" is not a name of this gatherer's --tls-cert")
                && text.contains("(it names client)"),
            "{text}"
        );
        assert_eq!(Credentials::default().node_id_mismatch("web-1"), None);
    }

    #[test]
    fn untrusted_certificates_name_the_ca_file() {
        let creds = Credentials {
            ca: Some(PathBuf::from("/etc/ca.pem")),
            ..Credentials::default()
        };
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let Explained::Credentials(text) = creds.explain(&target("https://r:1"), &io) else {
            panic!("not classified as a credentials problem");
        };
        assert!(
            text.starts_with(
                "the reporter's certificate is not issued by a CA in this gatherer's --tls-ca /etc/ca.pem"
            ),
            "{text}"
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            creds.explain(&target("https://r:1"), &plain),
            Explained::Transport(_)
        ));
    }
}
