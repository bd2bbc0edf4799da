//! The reporter's TLS material: certificate, key and client CA, loaded from
//! PEM files and swapped atomically on reload.
//!
//! # Client certificates: decided at the gRPC layer, not in the handshake
//!
//! With `--tls-client-ca`, the handshake *asks* for a client certificate but
//! does not require one, and [`PermissiveClientVerifier`] lets a certificate
//! from an unknown issuer through the handshake. A rejected handshake only
//! gives the client a TLS alert (a bare transport error in its log); this way
//! the connection is established and [`crate::auth`] answers every protected
//! call with UNAUTHENTICATED and the reason, and logs it with the peer address.
//!
//! What the handshake still guarantees: a client that presents a certificate
//! proves it holds the private key (the CertificateVerify signature is checked
//! by the real WebPKI verifier, to which the signature methods delegate). What
//! is deferred: whether the chain leads to the client CA, its validity period
//! and key usage, which [`ClientCa::check`] verifies with the same WebPKI
//! verifier for each request.
//!
//! # Reload
//!
//! [`TlsState::reload`] reads all three files again and replaces the material
//! only if everything passes the checks done at start
//! ([`hostpulse_ops::certificate`]: X.509 v3, validity dates, serverAuth,
//! subjectAltName, the key matching the certificate, a client CA that is a
//! CA); otherwise the previous material stays in force. New connections use the new material;
//! established connections keep theirs until they are recycled
//! (`--max-connection-age`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use hostpulse_ops::certificate::{self, CertError, File, Usage};

use hostpulse_ops::reload::{Load, Reloadable};

/// Whose files these are, in messages.
const OWNER: &str = "this reporter's";

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is not PEM of the expected kind (a key given as the
    /// certificate, a truncated file).
    #[error("{flag} {path}: {reason}")]
    Pem {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate, key or CA file that cannot work (v1, expired, wrong
    /// usage, key mismatch...): the message says which and how to fix it.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// rustls refused the material: the key does not match the certificate,
    /// an unsupported key type, a CA that is not a usable trust anchor.
    #[error("{0}")]
    Rustls(String),
}

/// Where the material is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) client certificates must chain to.
    pub client_ca: Option<PathBuf>,
}

/// The client CA, as the strict WebPKI verifier the auth layer consults.
#[derive(Debug, Clone)]
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
}

/// Why a client certificate is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertRejection {
    /// The client presented no certificate.
    #[error(
        "a client certificate is required (the gatherer's --tls-cert and --tls-key; grpcurl -cert and -key)"
    )]
    Missing,
    /// The certificate does not chain to the client CA, is expired, or is
    /// not meant for client authentication. The text says which, as the end
    /// of a sentence about the gatherer's certificate.
    #[error(
        "the client certificate is not accepted by this reporter's --tls-client-ca: the gatherer's certificate {0}"
    )]
    Invalid(String),
}

impl ClientCa {
    /// The verifier for the CA certificates in `roots`.
    fn new(roots: RootCertStore) -> Result<Self, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Rustls(format!("--tls-client-ca: {e}")))?;
        Ok(ClientCa { verifier })
    }

    /// Whether the chain the client presented (leaf first) is accepted now.
    pub fn check(&self, chain: Option<&[CertificateDer<'_>]>) -> Result<(), ClientCertRejection> {
        let Some((leaf, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return Err(ClientCertRejection::Missing);
        };
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| {
                ClientCertRejection::Invalid(match &e {
                    rustls::Error::InvalidCertificate(c) => {
                        certificate::verdict(c, "the reporter's --tls-client-ca")
                    }
                    other => format!("is refused: {other}"),
                })
            })
    }
}

/// Asks for a client certificate, does not require one, and accepts any
/// issuer in the handshake while still verifying the client's signature, so
/// that possession of the private key is proven (see the module doc).
#[derive(Debug)]
pub struct PermissiveClientVerifier {
    strict: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for PermissiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Clients that pick a certificate by the CAs named here (Go's
        // crypto/tls, so grpcurl) find theirs.
        self.strict.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain is judged per request by the auth layer (ClientCa::check).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}

/// One generation of material.
#[derive(Debug, Clone)]
pub struct Material {
    /// What the acceptor hands to each new connection.
    pub server: Arc<ServerConfig>,
    /// The client CA, when client certificates are required.
    pub client_ca: Option<ClientCa>,
}

impl Material {
    /// Reads and checks every file ([`hostpulse_ops::certificate`]: version,
    /// dates, key usage, subjectAltName, key match, CA).
    pub fn load(files: &TlsFiles) -> Result<Material, TlsError> {
        let now = std::time::SystemTime::now();
        let cert_file = File {
            owner: OWNER,
            flag: "--tls-cert",
            path: &files.cert,
        };
        let key_file = File {
            owner: OWNER,
            flag: "--tls-key",
            path: &files.key,
        };
        let identity = certificate::check_identity(
            &cert_file,
            &certificate::read(&cert_file)?,
            &key_file,
            &certificate::read(&key_file)?,
            Usage::Server,
            now,
        )?;
        let client_ca = match &files.client_ca {
            None => None,
            Some(path) => {
                let file = File {
                    owner: OWNER,
                    flag: "--tls-client-ca",
                    path,
                };
                let certs = certificate::check_ca(
                    &file,
                    &certificate::read(&file)?,
                    "the gatherers' client certificates",
                    now,
                )?;
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots.add(cert).map_err(|e| TlsError::Pem {
                        flag: "--tls-client-ca",
                        path: path.clone(),
                        reason: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                Some(ClientCa::new(roots)?)
            }
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match &client_ca {
            Some(ca) => builder.with_client_cert_verifier(Arc::new(PermissiveClientVerifier {
                strict: Arc::clone(&ca.verifier),
            })),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| {
                TlsError::Rustls(format!(
                    "this reporter's --tls-cert {} with --tls-key {}: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Material {
            server: Arc::new(server),
            client_ca,
        })
    }
}

/// The material in force, replaced as a whole on a successful reload.
pub type TlsState = Reloadable<Material>;

impl Load for Material {
    type Source = TlsFiles;
    type Error = TlsError;

    fn load(files: &TlsFiles) -> Result<Material, TlsError> {
        Material::load(files)
    }
}

/// Why a client's TLS handshake failed, naming the side at fault, for the
/// reporter's log line: the client distrusting this reporter's certificate,
/// a client that speaks no common TLS, or the network.
pub fn handshake_failure(e: &std::io::Error) -> String {
    use rustls::AlertDescription as A;
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("network: {e}");
    };
    match tls {
        rustls::Error::AlertReceived(
            alert @ (A::UnknownCA
            | A::BadCertificate
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::UnsupportedCertificate),
        ) => format!(
            "the client refused this reporter's certificate ({alert:?}): its CA file (the gatherer's --tls-ca, grpcurl -cacert) must hold the CA that issued --tls-cert, and the name it dials must be in that certificate's subjectAltName"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("the client ended the handshake ({alert:?}): {e}")
        }
        rustls::Error::PeerIncompatible(_) => format!(
            "the client shares no TLS version or cipher suite with this reporter (TLS 1.2 and 1.3 only): {e}"
        ),
        _ => format!(
            "the client's handshake is not acceptable TLS (a scanner, or not a TLS client): {e}"
        ),
    }
}

/// The crypto provider (ring, as the gatherer uses).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::ResolvesClientCert;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use rustls::sign::CertifiedKey;

    /// A client that presents `cert` signed with `key`, whether they match
    /// or not (rustls' own client refuses a mismatch; an attacker would not).
    #[derive(Debug)]
    struct Presents(Option<Arc<CertifiedKey>>);

    impl ResolvesClientCert for Presents {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            self.0.clone()
        }

        fn has_certs(&self) -> bool {
            self.0.is_some()
        }
    }

    fn client(
        pki: &hostpulse_testkit::Pki,
        identity: Option<(&str, &str)>,
    ) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.pem("ca1")).unwrap() {
            let ca = ca.unwrap();
            roots.add(ca).unwrap();
        }
        let identity = identity.map(|(cert, key)| {
            let chain = CertificateDer::pem_file_iter(pki.pem(cert))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(pki.key(key)).unwrap();
            let key = provider().key_provider.load_private_key(key).unwrap();
            Arc::new(CertifiedKey::new(chain, key))
        });
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Presents(identity)));
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// Runs one handshake in memory: the server's result.
    async fn handshake(
        server: &Material,
        client: tokio_rustls::TlsConnector,
    ) -> Result<(), String> {
        let (a, b) = tokio::io::duplex(64 << 10);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&server.server));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (served, _) = tokio::join!(acceptor.accept(a), client.connect(name, b));
        served.map(|_| ()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn the_handshake_defers_the_issuer_but_proves_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let material = Material::load(&TlsFiles {
            cert: pki.pem("server").into(),
            key: pki.key("server").into(),
            client_ca: Some(pki.pem("ca1").into()),
        })
        .unwrap();
        let ok = |r: Result<(), String>| r.unwrap();
        ok(handshake(&material, client(&pki, Some(("client", "client")))).await);
        // No certificate, or another CA's: through the handshake, refused by
        // the auth layer with UNAUTHENTICATED (crate::auth tests).
        ok(handshake(&material, client(&pki, None)).await);
        ok(handshake(&material, client(&pki, Some(("rogue", "rogue")))).await);
        // A good certificate without its private key does not get through.
        let err = handshake(&material, client(&pki, Some(("client", "rogue"))))
            .await
            .unwrap_err();
        assert!(err.contains("BadSignature"), "{err}");
    }

    #[test]
    fn bad_material_is_refused_with_the_flag_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let files = |cert: &str, key: &str| TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        };
        let err = Material::load(&files(&pki.key("server"), &pki.key("server"))).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "this reporter's --tls-cert {}: no CERTIFICATE block found",
                pki.key("server")
            )),
            "{err}"
        );
        let err = Material::load(&files(&pki.pem("server"), &pki.pem("server"))).unwrap_err();
        assert!(err.to_string().contains("no private key found"), "{err}");
        let err = Material::load(&files(&pki.pem("server"), &pki.key("client"))).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "this reporter's --tls-key {}: the key does not belong to certificate CN=server",
                pki.key("client")
            )),
            "{err}"
        );
        let err = Material::load(&files("/nonexistent.pem", &pki.key("server"))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("this reporter's --tls-cert /nonexistent.pem: cannot read it"),
            "{err}"
        );
        // A client certificate as the server's, and a leaf as the client CA.
        let err = Material::load(&files(&pki.pem("client"), &pki.key("client"))).unwrap_err();
        assert!(err.to_string().contains("is not for serverAuth"), "{err}");
        let err = Material::load(&TlsFiles {
            client_ca: Some(pki.pem("client").into()),
            ..files(&pki.pem("server"), &pki.key("server"))
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "this reporter's --tls-client-ca {}: certificate CN=client is not a CA certificate",
                pki.pem("client")
            )),
            "{err}"
        );
    }
}
