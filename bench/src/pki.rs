//! Throw-away TLS material for benchmarks: a CA, a server certificate for
//! `127.0.0.1` and a client certificate, made with the `openssl` CLI exactly
//! as README.md's "TLS and authentication" shows (EC P-256, the server with
//! `serverAuth` and `IP:127.0.0.1`, the client with `clientAuth`).
//!
//! ```text
//! <temp dir>/
//!   ca.pem  ca.key                 the CA (signs both below)
//!   server.pem  server.key         reporter: --tls-cert / --tls-key
//!   client.pem  client.key         mutual TLS client identity
//!   token                          bearer token file (TempDir::write)
//! ```
//!
//! Everything lives in a [`TempDir`], removed when it is dropped.

use std::io;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A directory under the system's temporary directory, removed with
/// everything in it when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<nanos>`.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside it and returns the file's path.
    pub fn write(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        let file = self.path.join(name);
        std::fs::write(&file, contents)?;
        Ok(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The generated files (paths inside the directory given to [`Pki::generate`]).
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate: the client's trust root and the reporter's
    /// `--tls-client-ca`.
    pub ca: PathBuf,
    /// The server certificate (SAN `IP:127.0.0.1`): `--tls-cert`.
    pub server_cert: PathBuf,
    /// Its key: `--tls-key`.
    pub server_key: PathBuf,
    /// The client certificate (`clientAuth`), for mutual TLS.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl Pki {
    /// Runs `openssl` in `dir` to make the CA and both certificates (a few
    /// tens of milliseconds), with the tests' certificate maker
    /// ([`hostpulse_testkit::Pki`]); panics with openssl's own message.
    pub fn generate(dir: &Path) -> Pki {
        let make = hostpulse_testkit::Pki {
            dir: dir.to_path_buf(),
        };
        make.ca("ca");
        make.leaf_for(
            "server",
            "reporter",
            "ca",
            "serverAuth",
            Some("IP:127.0.0.1,DNS:localhost"),
        );
        // One certificate for every simulated node: its CN is a pattern
        // that allows their node ids (loadgen-00000...) under the reporter's
        // default --node-binding auto.
        make.leaf_for("client", "loadgen-*", "ca", "clientAuth", None);
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(dir: &Path, purpose: &str, cert: &Path) -> String {
        let out = Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(dir.join("ca.pem"))
            .arg(cert)
            .output()
            .expect("openssl verify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn certificates_chain_to_the_ca_with_their_purposes() {
        let dir = TempDir::new("hostpulse-pki-test").unwrap();
        let pki = Pki::generate(dir.path());
        assert!(verify(dir.path(), "sslserver", &pki.server_cert).contains("OK"));
        assert!(verify(dir.path(), "sslclient", &pki.client_cert).contains("OK"));
        for key in [&pki.server_key, &pki.client_key] {
            let text = std::fs::read_to_string(key).unwrap();
            assert!(text.contains("PRIVATE KEY"), "{text}");
        }
        let san = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&pki.server_cert)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&san.stdout).contains("IP Address:127.0.0.1"));
    }

    #[test]
    fn the_directory_goes_away_when_dropped() {
        let dir = TempDir::new("hostpulse-pki-test").unwrap();
        let token = dir.write("token", b"t\n").unwrap();
        assert_eq!(std::fs::read(&token).unwrap(), b"t\n");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }
}
