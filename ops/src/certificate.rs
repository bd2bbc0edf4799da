//! Checks of TLS files at start and on reload, with errors that say whose
//! file is wrong, what is wrong and how to fix it.
//!
//! rustls (through tonic) reports most of these problems as a bare
//! "transport error", or only at the peer during a handshake, where the
//! operator sees "the reporter refused this gatherer". Checked here, before
//! any connection:
//!
//! | check | leaf (`--tls-cert`) | CA file (`--tls-ca`, `--tls-client-ca`) |
//! |---|---|---|
//! | PEM holds a decodable certificate | yes | every certificate |
//! | X.509 v3 (rustls refuses v1) | yes | v1 roots accepted, as rustls does |
//! | within its validity dates | yes | yes |
//! | extended key usage, if present, has clientAuth / serverAuth | yes | - |
//! | not a CA certificate | yes | must be one (basicConstraints CA:TRUE) |
//! | subjectAltName present (servers) | reporter only | - |
//! | the key (`--tls-key`) is the certificate's | yes | - |
//!
//! Parsing apart from I/O: [`check_identity`] and [`check_ca`] take the PEM
//! bytes and the time; the callers read the files.
//!
//! x509-cert (RustCrypto) decodes the certificates: rustls' own parser
//! (webpki) refuses v1 certificates outright and does not expose validity
//! dates, extended key usage or the subject's CN, which these messages and
//! the reporter's node binding need.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::Certificate;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;

const SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A gatherer's (or grpcurl's) client certificate: `clientAuth`.
    Client,
    /// The reporter's certificate: `serverAuth`, and a subjectAltName.
    Server,
}

impl Usage {
    fn eku_name(self) -> &'static str {
        match self {
            Usage::Client => "clientAuth",
            Usage::Server => "serverAuth",
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Usage::Client => CLIENT_AUTH,
            Usage::Server => SERVER_AUTH,
        }
    }

    /// The openssl extensions file that makes a certificate for this usage.
    fn extfile(self) -> &'static str {
        match self {
            Usage::Client => "the line `extendedKeyUsage=clientAuth`",
            Usage::Server => {
                "the lines `extendedKeyUsage=serverAuth` and `subjectAltName=DNS:reporter,IP:10.0.0.5` (the names gatherers dial)"
            }
        }
    }
}

/// One file, as messages name it: whose it is, the flag and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File<'a> {
    /// "this gatherer's", "this reporter's".
    pub owner: &'static str,
    /// The flag that names the file (`--tls-cert`).
    pub flag: &'static str,
    /// The file.
    pub path: &'a Path,
}

/// A TLS file that cannot work. Displayed as one line: the side and file at
/// fault, what is wrong, and how to fix it. The daemon refuses to start
/// with it (exit code 2); on a reload the previous material stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{owner} {flag} {}: {problem}", path.display())]
pub struct CertError {
    /// Whose file it is ("this gatherer's").
    pub owner: &'static str,
    /// The flag naming it.
    pub flag: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: Box<Problem>,
}

/// What is wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Unreadable (missing, permissions).
    #[error("cannot read it: {0}")]
    Read(String),
    /// Not PEM, or a PEM block that does not decode.
    #[error("not a PEM certificate file: {0}")]
    Pem(String),
    /// No `BEGIN CERTIFICATE` block (a key given as the certificate?).
    #[error("no CERTIFICATE block found")]
    NoCertificate,
    /// No private key block (a certificate given as the key?).
    #[error("no private key found ({0})")]
    NoKey(String),
    /// A key type rustls cannot sign with.
    #[error("the private key cannot be used: {0}")]
    UnusableKey(String),
    /// A certificate block whose DER does not decode.
    #[error("certificate {index} does not decode as X.509: {reason}")]
    Undecodable {
        /// 1-based position in the file.
        index: usize,
        /// The decoder's reason.
        reason: String,
    },
    /// An X.509 v1 (or v2) leaf: rustls refuses it.
    #[error(
        "{subject} is an X.509 v{version} certificate; TLS here needs v3. `openssl x509 -req` makes v1 when it is given no extensions (OpenSSL 3.0 without -extfile): reissue it with `openssl x509 -req -in REQ.csr -CA ca.pem -CAkey ca.key -days 365 -extfile EXT -out CERT.pem`, EXT holding {extfile}"
    )]
    NotV3 {
        /// The certificate's subject.
        subject: String,
        /// 1 or 2.
        version: u8,
        /// The extensions to give.
        extfile: &'static str,
    },
    /// Before its notBefore.
    #[error(
        "{subject} is not valid before {not_before} (now {now}): check this machine's clock, or wait"
    )]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// Its notBefore.
        not_before: String,
        /// The time of the check.
        now: String,
    },
    /// After its notAfter.
    #[error("{subject} expired on {not_after} (now {now}): issue a new one")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// Its notAfter.
        not_after: String,
        /// The time of the check.
        now: String,
    },
    /// Its extended key usage does not allow the use.
    #[error(
        "{subject} is not for {needed}: its extended key usage is {has}; reissue it with `extendedKeyUsage={needed}` in the -extfile"
    )]
    WrongUsage {
        /// The certificate's subject.
        subject: String,
        /// clientAuth or serverAuth.
        needed: &'static str,
        /// What it allows.
        has: String,
    },
    /// A CA certificate where a leaf is expected.
    #[error(
        "{subject} is a CA certificate (basicConstraints CA:TRUE), not a {usage} certificate: give the certificate issued by the CA, not the CA's"
    )]
    CaAsLeaf {
        /// The certificate's subject.
        subject: String,
        /// "client" or "server".
        usage: &'static str,
    },
    /// A leaf where a CA certificate is expected.
    #[error(
        "{subject} is not a CA certificate (no basicConstraints CA:TRUE): give the certificate of the CA that issued {issued}, not {issued} itself"
    )]
    NotCa {
        /// The certificate's subject.
        subject: String,
        /// Whose certificates the CA issues.
        issued: &'static str,
    },
    /// A server certificate without subjectAltName.
    #[error(
        "{subject} has no subjectAltName: gatherers and grpcurl check the name they dial against those names and ignore the CN; reissue it with `subjectAltName=DNS:reporter,IP:10.0.0.5` (the names gatherers dial) in the -extfile"
    )]
    NoSubjectAltName {
        /// The certificate's subject.
        subject: String,
    },
    /// The key is not the certificate's.
    #[error(
        "the key does not belong to {subject} in {cert_flag} {cert}: their public keys differ; give the key generated with that certificate's request"
    )]
    KeyMismatch {
        /// The certificate's subject.
        subject: String,
        /// The certificate's flag.
        cert_flag: &'static str,
        /// The certificate's file.
        cert: String,
    },
}

/// What the checks and the reporter's node binding read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// 1, 2 or 3.
    pub version: u8,
    /// The subject, RFC 4514 (`CN=web-1,O=acme`).
    pub subject: String,
    /// Every CN of the subject.
    pub common_names: Vec<String>,
    /// Every DNS name of the subjectAltName.
    pub dns_names: Vec<String>,
    /// Whether a subjectAltName extension is present (DNS, IP or other names).
    pub has_subject_alt_name: bool,
    /// notBefore and notAfter, seconds since the epoch.
    pub not_before: SystemTime,
    /// See `not_before`.
    pub not_after: SystemTime,
    /// notBefore, as text.
    pub not_before_text: String,
    /// notAfter, as text.
    pub not_after_text: String,
    /// The extended key usage OIDs, when the extension is present.
    pub eku: Option<Vec<ObjectIdentifier>>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl Facts {
    /// Decodes one DER certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<Facts, String> {
        let cert = Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
        let tbs = cert.tbs_certificate();
        let ext = |e: String| format!("an extension does not decode: {e}");
        let eku = tbs
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| ext(e.to_string()))?
            .map(|(_, e)| e.0);
        let is_ca = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| ext(e.to_string()))?
            .is_some_and(|(_, b)| b.ca);
        let san = tbs
            .get_extension::<SubjectAltName>()
            .map_err(|e| ext(e.to_string()))?;
        let dns_names = san
            .as_ref()
            .map(|(_, s)| {
                s.0.iter()
                    .filter_map(|n| match n {
                        GeneralName::DnsName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = tbs.validity();
        Ok(Facts {
            version: tbs.version() as u8 + 1,
            subject: tbs.subject().to_string(),
            common_names: common_names(tbs.subject()),
            dns_names,
            has_subject_alt_name: san.is_some_and(|(_, s)| !s.0.is_empty()),
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            not_before_text: validity.not_before.to_date_time().to_string(),
            not_after_text: validity.not_after.to_date_time().to_string(),
            eku,
            is_ca,
            spki: tbs
                .subject_public_key_info()
                .to_der()
                .map_err(|e| e.to_string())?,
        })
    }

    /// How messages name it: its subject, or "the certificate" if empty.
    fn name(&self) -> String {
        if self.subject.is_empty() {
            "the certificate (empty subject)".to_string()
        } else {
            format!("certificate {}", self.subject)
        }
    }

    fn dates(&self, now: SystemTime) -> Result<(), Problem> {
        if now < self.not_before {
            return Err(Problem::NotYetValid {
                subject: self.name(),
                not_before: self.not_before_text.clone(),
                now: format_time(now),
            });
        }
        if now > self.not_after {
            return Err(Problem::Expired {
                subject: self.name(),
                not_after: self.not_after_text.clone(),
                now: format_time(now),
            });
        }
        Ok(())
    }
}

impl Facts {
    /// The node ids the certificate names, for the reporter's node binding:
    /// every CN of its subject, then every DNS name of its subjectAltName.
    pub fn node_names(&self) -> Vec<String> {
        let mut names = self.common_names.clone();
        names.extend(self.dns_names.iter().cloned());
        names
    }
}

/// Whether a certificate name or node pattern allows `node` (the
/// reporter's node binding): ASCII case-insensitive,
/// `*` any run of characters but `.`. Iterative with single-star
/// backtracking (linear in practice, never exponential).
pub fn name_matches(pattern: &str, node: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), node.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i].eq_ignore_ascii_case(&t[j]) {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star.filter(|&(_, sj)| t[sj] != b'.') {
            // Let the star swallow one more character, unless it is a dot.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

fn common_names(name: &Name) -> Vec<String> {
    name.iter()
        .filter(|atv| atv.oid == COMMON_NAME)
        .filter_map(|atv| {
            x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value)
                .ok()
                .map(|s| s.value().into_owned())
        })
        .collect()
}

fn format_time(t: SystemTime) -> String {
    x509_cert::der::DateTime::from_system_time(t)
        .map_or_else(|_| format!("{t:?}"), |d| d.to_string())
}

/// The certificates of a PEM file.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(Problem::NoCertificate);
    }
    Ok(certs)
}

/// Reads a file for the checks.
pub fn read(file: &File<'_>) -> Result<Vec<u8>, CertError> {
    std::fs::read(file.path).map_err(|e| error(file, Problem::Read(e.to_string())))
}

fn error(file: &File<'_>, problem: Problem) -> CertError {
    CertError {
        owner: file.owner,
        flag: file.flag,
        path: file.path.to_path_buf(),
        problem: Box::new(problem),
    }
}

/// A checked certificate chain and its key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's facts.
    pub leaf: Facts,
}

/// Checks a certificate chain (`cert_pem`, leaf first) and its key for
/// `usage` at time `now` (see the module doc for what is checked).
pub fn check_identity(
    cert: &File<'_>,
    cert_pem: &[u8],
    key: &File<'_>,
    key_pem: &[u8],
    usage: Usage,
    now: SystemTime,
) -> Result<Identity, CertError> {
    let chain = pem_certificates(cert_pem).map_err(|p| error(cert, p))?;
    let leaf = Facts::parse(&chain[0]).map_err(|reason| {
        error(
            cert,
            Problem::Undecodable {
                index: 1,
                reason: reason.clone(),
            },
        )
    })?;
    let private_key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| error(key, Problem::NoKey(e.to_string())))?;
    if leaf.version < 3 {
        return Err(error(
            cert,
            Problem::NotV3 {
                subject: leaf.name(),
                version: leaf.version,
                extfile: usage.extfile(),
            },
        ));
    }
    leaf.dates(now).map_err(|p| error(cert, p))?;
    if leaf.is_ca {
        return Err(error(
            cert,
            Problem::CaAsLeaf {
                subject: leaf.name(),
                usage: match usage {
                    Usage::Client => "client",
                    Usage::Server => "server",
                },
            },
        ));
    }
    if let Some(eku) = leaf.eku.as_ref().filter(|e| !e.contains(&usage.oid())) {
        return Err(error(
            cert,
            Problem::WrongUsage {
                subject: leaf.name(),
                needed: usage.eku_name(),
                has: eku_names(eku),
            },
        ));
    }
    if usage == Usage::Server && !leaf.has_subject_alt_name {
        return Err(error(
            cert,
            Problem::NoSubjectAltName {
                subject: leaf.name(),
            },
        ));
    }
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|e| error(key, Problem::UnusableKey(e.to_string())))?;
    if let Some(public) = signer.public_key() {
        if public.as_ref() != leaf.spki.as_slice() {
            return Err(error(
                key,
                Problem::KeyMismatch {
                    subject: leaf.name(),
                    cert_flag: cert.flag,
                    cert: cert.path.display().to_string(),
                },
            ));
        }
    }
    Ok(Identity {
        chain,
        key: private_key,
        leaf,
    })
}

/// Checks a CA file: every certificate decodes, is a CA (or a v1 root) and
/// is within its dates. `issued` names whose certificates it should have
/// issued ("the reporter's certificate").
pub fn check_ca(
    file: &File<'_>,
    pem: &[u8],
    issued: &'static str,
    now: SystemTime,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = pem_certificates(pem).map_err(|p| error(file, p))?;
    for (i, der) in certs.iter().enumerate() {
        let facts = Facts::parse(der).map_err(|reason| {
            error(
                file,
                Problem::Undecodable {
                    index: i + 1,
                    reason,
                },
            )
        })?;
        if facts.version == 3 && !facts.is_ca {
            return Err(error(
                file,
                Problem::NotCa {
                    subject: facts.name(),
                    issued,
                },
            ));
        }
        facts.dates(now).map_err(|p| error(file, p))?;
    }
    Ok(certs)
}

/// What rustls' verdict on a peer's certificate means, as the end of a
/// sentence whose subject is the certificate ("the reporter's certificate
/// expired on ..."). `trust` names the CA file it was checked against.
pub fn verdict(e: &rustls::CertificateError, trust: &str) -> String {
    use rustls::CertificateError as E;
    let at = |t: &rustls::pki_types::UnixTime| {
        format_time(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()))
    };
    match e {
        E::UnknownIssuer => format!("is not issued by a CA in {trust} (UnknownIssuer)"),
        E::ExpiredContext { time, not_after } => {
            format!("expired on {} (now {}): renew it", at(not_after), at(time))
        }
        E::Expired => "expired: renew it".to_string(),
        E::NotValidYetContext { time, not_before } => format!(
            "is not valid before {} (now {}): check the clocks",
            at(not_before),
            at(time)
        ),
        E::NotValidYet => "is not valid yet: check the clocks".to_string(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            format!("is not meant for this use (extended key usage): {e}")
        }
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = expected.to_str();
            // rustls writes them as `DnsName("x")`, `IpAddress(1.2.3.4)`.
            let presented: Vec<&str> = presented
                .iter()
                .map(|p| {
                    p.split_once('(').map_or(p.as_str(), |(_, v)| {
                        v.trim_end_matches(')').trim_matches('"')
                    })
                })
                .collect();
            format!(
                "does not name {expected:?} (it names {}): dial one of those names or add {expected:?} to its subjectAltName",
                presented.join(", ")
            )
        }
        E::BadSignature => "has a bad signature (damaged, or not signed by its issuer)".to_string(),
        other => format!("is refused: {other}"),
    }
}

fn eku_names(eku: &[ObjectIdentifier]) -> String {
    let names: Vec<String> = eku
        .iter()
        .map(|oid| match *oid {
            o if o == SERVER_AUTH => "serverAuth".to_string(),
            o if o == CLIENT_AUTH => "clientAuth".to_string(),
            o => o.to_string(),
        })
        .collect();
    if names.is_empty() {
        "empty".to_string()
    } else {
        names.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file<'a>(flag: &'static str, path: &'a Path) -> File<'a> {
        File {
            owner: "this gatherer's",
            flag,
            path,
        }
    }

    fn identity(
        pki: &hostpulse_testkit::Pki,
        cert: &str,
        key: &str,
        usage: Usage,
        now: SystemTime,
    ) -> Result<Identity, CertError> {
        let (c, k) = (pki.pem(cert), pki.key(key));
        let (c, k) = (Path::new(&c), Path::new(&k));
        let (cf, kf) = (file("--tls-cert", c), file("--tls-key", k));
        check_identity(
            &cf,
            &read(&cf).unwrap(),
            &kf,
            &read(&kf).unwrap(),
            usage,
            now,
        )
    }

    #[test]
    fn good_material_passes_and_its_names_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let now = SystemTime::now();
        let id = identity(&pki, "client", "client", Usage::Client, now).unwrap();
        assert_eq!(id.leaf.common_names, ["client"]);
        assert_eq!(id.leaf.version, 3);
        let id = identity(&pki, "server", "server", Usage::Server, now).unwrap();
        assert_eq!(id.leaf.dns_names, ["localhost"]);
        let ca = pki.pem("ca1");
        let ca = Path::new(&ca);
        let f = file("--tls-ca", ca);
        assert_eq!(check_ca(&f, &read(&f).unwrap(), "x", now).unwrap().len(), 1);
    }

    #[test]
    fn each_problem_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        let now = SystemTime::now();
        let msg = |r: Result<Identity, CertError>| r.unwrap_err().to_string();

        pki.leaf_v1("v1", "ca1");
        let text = msg(identity(&pki, "v1", "v1", Usage::Client, now));
        assert!(
            text.starts_with(&format!(
                "this gatherer's --tls-cert {}: certificate CN=v1 is an X.509 v1 certificate",
                pki.pem("v1")
            )),
            "{text}"
        );
        assert!(
            text.contains("-extfile EXT") && text.contains("extendedKeyUsage=clientAuth"),
            "{text}"
        );

        let text = msg(identity(&pki, "client", "server", Usage::Client, now));
        assert!(
            text.starts_with(&format!(
                "this gatherer's --tls-key {}: the key does not belong to certificate CN=client in --tls-cert {}",
                pki.key("server"),
                pki.pem("client")
            )),
            "{text}"
        );

        let text = msg(identity(&pki, "server", "server", Usage::Client, now));
        assert!(
            text.contains("CN=server is not for clientAuth: its extended key usage is serverAuth"),
            "{text}"
        );
        let text = msg(identity(&pki, "client", "client", Usage::Server, now));
        assert!(text.contains("is not for serverAuth"), "{text}");
        let text = msg(identity(&pki, "ca1", "ca1", Usage::Client, now));
        assert!(text.contains("is a CA certificate"), "{text}");

        let later = now + Duration::from_secs(3 * 86400);
        let text = msg(identity(&pki, "client", "client", Usage::Client, later));
        assert!(
            text.contains("CN=client expired on ") && text.contains("issue a new one"),
            "{text}"
        );
        let earlier = now - Duration::from_secs(86400);
        let text = msg(identity(&pki, "client", "client", Usage::Client, earlier));
        assert!(text.contains("CN=client is not valid before "), "{text}");

        // A server certificate without subjectAltName.
        pki.leaf("nosan", "ca1", "serverAuth", None);
        // Issued after `now`: check it at a later time.
        let text = msg(identity(
            &pki,
            "nosan",
            "nosan",
            Usage::Server,
            SystemTime::now(),
        ));
        assert!(text.contains("has no subjectAltName"), "{text}");

        // A leaf given as the CA.
        let leaf = pki.pem("server");
        let leaf = Path::new(&leaf);
        let f = file("--tls-ca", leaf);
        let text = check_ca(&f, &read(&f).unwrap(), "the reporter's certificate", now)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("CN=server is not a CA certificate")
                && text.contains("the reporter's certificate"),
            "{text}"
        );
        // A key given as the certificate, a certificate as the key.
        let text = msg(
            identity(&pki, "client", "client", Usage::Client, now).and_then(|_| {
                let k = pki.key("client");
                let k = Path::new(&k);
                let f = file("--tls-cert", k);
                check_identity(&f, &read(&f).unwrap(), &f, b"", Usage::Client, now)
            }),
        );
        assert!(text.contains("no CERTIFICATE block found"), "{text}");
    }
}
