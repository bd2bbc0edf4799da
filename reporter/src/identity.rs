//! Which node ids a stream's credentials may claim in its Hello.
//!
//! Without this, any holder of a valid credential could send Hello with
//! another node's id: the reporter would end the real node's stream (a newer
//! stream replaces an older one of the same node) and store rows under its
//! name. So the credential that authenticated a stream also bounds the node
//! ids it may use:
//!
//! | credential | node ids it allows |
//! |---|---|
//! | client certificate (mutual TLS) | its subject CN and every DNS name of its subjectAltName |
//! | token line `TOKEN node=web-*,db-1` | the listed patterns |
//! | token line `TOKEN` (no `node=`) | any |
//!
//! With both a certificate and a token, both must allow the node id.
//!
//! # Matching
//!
//! A name or pattern matches a node id compared ASCII case-insensitively
//! (node ids default to host names, which are). `*` matches any run of
//! characters other than `.`, as a TLS wildcard covers one DNS label:
//! `*.prod.example` allows `web-1.prod.example` but not `a.b.prod.example`,
//! `web-*` allows `web-1` and `web-eu-2`, and a certificate naming several
//! nodes allows each of them. A certificate shared by every node names a
//! pattern that covers them (`loadgen-*`), or the reporter runs with
//! `--node-binding off`.
//!
//! # Modes (`--node-binding`)
//!
//! - `auto` (default): the rules above. Without mutual TLS and with plain
//!   token lines nothing is bound, as before.
//! - `require`: as `auto`, and a stream whose credentials bind nothing (a
//!   token line without `node=`) is refused.
//! - `off`: node ids are not checked (one certificate shared by all nodes).
//!
//! # Invariants
//!
//! - The check runs on the Hello, *before* the stream is registered, so a
//!   refused claim never ends the real node's stream.
//! - A refusal is PERMISSION_DENIED naming the node id and what the
//!   credential allows (certificate names, token patterns; never the
//!   token), logged with the peer and counted
//!   (`hostpulse_reporter_node_id_refused_total`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustls::pki_types::CertificateDer;
use tonic::Status;

use crate::auth::AuthStats;
pub use hostpulse_ops::certificate::name_matches;

/// How node ids are bound to credentials (`--node-binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Binding {
    /// Not checked.
    Off,
    /// Client certificates and token lines with `node=` bind; others allow any node.
    #[default]
    Auto,
    /// As `auto`, and credentials that bind nothing are refused.
    Require,
}

/// A comma-separated list of node-id patterns (`web-*,db-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePatterns(Vec<String>);

impl NodePatterns {
    /// Parses `web-*,db-1`; `None` when the list names no pattern.
    pub fn parse(list: &str) -> Option<NodePatterns> {
        let patterns: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        (!patterns.is_empty()).then_some(NodePatterns(patterns))
    }

    /// Whether any pattern matches `node`.
    pub fn matches(&self, node: &str) -> bool {
        self.0.iter().any(|p| name_matches(p, node))
    }
}

impl std::fmt::Display for NodePatterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// What authenticated a call, put in the request's extensions by the auth
/// layer ([`crate::auth`]) for the Hello check.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The mode in force.
    pub binding: Binding,
    /// The client certificate (leaf) that passed the client CA, under mutual TLS.
    pub client_cert: Option<CertificateDer<'static>>,
    /// The bearer token's line: `Some(None)` for a line without `node=`.
    pub token_nodes: Option<Option<NodePatterns>>,
}

/// A Hello whose node id the stream's credentials do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdRefusal {
    /// The client certificate names other nodes.
    #[error(
        "node id {node:?} is not allowed by this gatherer's client certificate, which names {names} (its CN and DNS subjectAltNames): use one of those as --node-id, or issue a certificate for {node:?}"
    )]
    Certificate {
        /// The claimed node id.
        node: String,
        /// What the certificate names ("nothing" when it names no node).
        names: String,
    },
    /// The token line is bound to other nodes.
    #[error(
        "node id {node:?} is not allowed by this gatherer's bearer token, which the reporter's --token-file binds to node={patterns}"
    )]
    Token {
        /// The claimed node id.
        node: String,
        /// The token line's patterns.
        patterns: String,
    },
    /// `--node-binding require` and a credential that binds nothing.
    #[error(
        "node id {node:?} refused: the reporter runs with --node-binding require and this gatherer's bearer token is not bound to nodes (add node=PATTERN to its line in the reporter's --token-file)"
    )]
    Unbound {
        /// The claimed node id.
        node: String,
    },
}

impl Credential {
    /// Whether these credentials may send a Hello with `node`.
    pub fn allows(&self, node: &str) -> Result<(), NodeIdRefusal> {
        if self.binding == Binding::Off {
            return Ok(());
        }
        let mut bound = false;
        if let Some(cert) = &self.client_cert {
            bound = true;
            let names = certificate_names(cert);
            if !names.iter().any(|n| name_matches(n, node)) {
                return Err(NodeIdRefusal::Certificate {
                    node: node.to_string(),
                    names: if names.is_empty() {
                        "no node".to_string()
                    } else {
                        names.join(", ")
                    },
                });
            }
        }
        if let Some(Some(patterns)) = &self.token_nodes {
            bound = true;
            if !patterns.matches(node) {
                return Err(NodeIdRefusal::Token {
                    node: node.to_string(),
                    patterns: patterns.to_string(),
                });
            }
        }
        if self.binding == Binding::Require && !bound {
            return Err(NodeIdRefusal::Unbound {
                node: node.to_string(),
            });
        }
        Ok(())
    }
}

/// The names a client certificate binds: every CN of its subject, then every
/// DNS name of its subjectAltName. An undecodable certificate (it passed the
/// client CA, so this does not happen) names nothing.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    hostpulse_ops::certificate::Facts::parse(cert)
        .map(|f| f.node_names())
        .unwrap_or_default()
}

/// The Hello check: `Ok` when `credential` (what the auth layer recorded, if
/// anything) allows `node`; otherwise logged with `peer`, counted in
/// `stats`, and PERMISSION_DENIED.
pub fn admit(
    credential: Option<&Credential>,
    node: &str,
    peer: &str,
    stats: &Arc<AuthStats>,
) -> Result<(), Status> {
    let Some(credential) = credential else {
        return Ok(());
    };
    credential.allows(node).map_err(|refusal| {
        stats.node_id_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, reason = %refusal, "refused a Hello: the node id is not the credential's");
        Status::permission_denied(refusal.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn stars_match_within_one_label_and_case_is_ignored() {
        let yes = [
            ("web-1", "web-1"),
            ("web-1", "WEB-1"),
            ("web-*", "web-1"),
            ("web-*", "web-"),
            ("web-*", "web-eu-2"),
            ("*.prod.example", "web-1.prod.example"),
            ("*-db", "eu-db"),
            ("a*b*c", "axxbyyc"),
        ];
        for (p, n) in yes {
            assert!(name_matches(p, n), "{p} should allow {n}");
        }
        let no = [
            ("web-1", "web-10"),
            ("web-1", "web-"),
            ("web-*", "db-1"),
            ("web-*", "web-1.evil"),
            ("*.prod.example", "a.b.prod.example"),
            ("*.prod.example", "prod.example"),
            ("*", "a.b"),
            ("", "a"),
        ];
        for (p, n) in no {
            assert!(!name_matches(p, n), "{p} should refuse {n}");
        }
        // Long inputs stay linear-ish: no exponential blow-up.
        let node = "a".repeat(4000);
        assert!(!name_matches("*a*a*a*a*a*b", &node));
    }

    #[test]
    fn pattern_lists_parse() {
        let p = NodePatterns::parse(" web-*, db-1 ,").unwrap();
        assert_eq!(p.to_string(), "web-*,db-1");
        assert!(p.matches("db-1") && p.matches("web-9") && !p.matches("db-2"));
        assert_eq!(NodePatterns::parse(" , "), None);
    }

    fn token(binding: Binding, nodes: Option<&str>) -> Credential {
        Credential {
            binding,
            client_cert: None,
            token_nodes: Some(nodes.map(|n| NodePatterns::parse(n).unwrap())),
        }
    }

    #[test]
    fn token_lines_bind_when_they_say_so() {
        assert_eq!(token(Binding::Auto, None).allows("anything"), Ok(()));
        assert_eq!(token(Binding::Auto, Some("web-*")).allows("web-3"), Ok(()));
        let err = token(Binding::Auto, Some("web-*"))
            .allows("db-1")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node id \"db-1\" is not allowed by this gatherer's bearer token, which the reporter's --token-file binds to node=web-*"
        );
        assert!(matches!(
            token(Binding::Require, None).allows("web-1"),
            Err(NodeIdRefusal::Unbound { .. })
        ));
        assert_eq!(
            token(Binding::Require, Some("web-*")).allows("web-1"),
            Ok(())
        );
        assert_eq!(token(Binding::Off, Some("web-*")).allows("db-1"), Ok(()));
    }

    fn cert(pki: &hostpulse_testkit::Pki, name: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(pki.pem(name)).unwrap()
    }

    #[test]
    fn certificates_bind_their_cn_and_dns_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = hostpulse_testkit::Pki::new(dir.path());
        // CN=client, no SAN.
        let by_cn = |binding, token_nodes| Credential {
            binding,
            client_cert: Some(cert(&pki, "client")),
            token_nodes,
        };
        assert_eq!(by_cn(Binding::Auto, None).allows("client"), Ok(()));
        assert_eq!(by_cn(Binding::Require, None).allows("client"), Ok(()));
        let err = by_cn(Binding::Auto, None).allows("web-1").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("node id \"web-1\" is not allowed by this gatherer's client certificate, which names client "),
            "{err}"
        );
        assert_eq!(by_cn(Binding::Off, None).allows("web-1"), Ok(()));
        // With a token as well, both must allow the node id.
        let both = by_cn(Binding::Auto, Some(NodePatterns::parse("db-*")));
        assert!(matches!(
            both.allows("client"),
            Err(NodeIdRefusal::Token { .. })
        ));
        // Several names and a wildcard in the subjectAltName.
        pki.leaf(
            "multi",
            "ca1",
            "clientAuth",
            Some("DNS:web-1,DNS:*.prod.example"),
        );
        let multi = Credential {
            binding: Binding::Auto,
            client_cert: Some(cert(&pki, "multi")),
            token_nodes: None,
        };
        for ok in ["multi", "web-1", "db-9.prod.example"] {
            assert_eq!(multi.allows(ok), Ok(()), "{ok}");
        }
        for refused in ["web-2", "a.b.prod.example", "prod.example"] {
            assert!(multi.allows(refused).is_err(), "{refused}");
        }
        assert_eq!(
            certificate_names(&cert(&pki, "multi")),
            ["multi", "web-1", "*.prod.example"]
        );
    }
}
