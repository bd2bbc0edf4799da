//! Which reporter to connect to next.
//!
//! `--reporter` takes one or more URLs (`http://` or `https://`). Each
//! attempt resolves the next URL's host name and tries its addresses in turn;
//! a name resolving to several addresses (a headless Kubernetes Service, a
//! DNS round robin) thus spreads reconnections over all of them. The URL's
//! host stays the TLS server name and the `:authority`, whatever address is dialled.

use std::net::SocketAddr;

use http::Uri;

/// A `--reporter` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL with scheme, host and port.
    #[error("{0:?} is not a reporter URL like http://reporter:8675")]
    NotAUrl(String),
    /// A scheme other than http or https.
    #[error("{0:?}: only http:// and https:// are supported")]
    Scheme(String),
}

/// One configured reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub uri: Uri,
    /// Whether to use TLS.
    pub tls: bool,
    /// Host name (for DNS, SNI and :authority).
    pub host: String,
    /// Port (8675 when the URL has none).
    pub port: u16,
}

impl Target {
    /// Parses a URL.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let uri: Uri = text
            .parse()
            .map_err(|_| TargetError::NotAUrl(text.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(_) => return Err(TargetError::Scheme(text.to_string())),
            None => return Err(TargetError::NotAUrl(text.to_string())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TargetError::NotAUrl(text.to_string()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(8675);
        Ok(Target {
            uri,
            tls,
            host,
            port,
        })
    }
}

/// The rotation over targets and their resolved addresses.
pub struct Targets {
    targets: Vec<Target>,
    next_target: usize,
    pending: Vec<(usize, SocketAddr)>,
}

impl Targets {
    /// A rotation over `targets` (at least one).
    pub fn new(targets: Vec<Target>) -> Self {
        Targets {
            targets,
            next_target: 0,
            pending: Vec::new(),
        }
    }

    /// The next (target, address) to dial, resolving names as needed.
    /// `Err` carries the resolution error of a target with no address.
    pub async fn next(&mut self) -> Result<(Target, SocketAddr), String> {
        if let Some((i, addr)) = self.pending.pop() {
            return Ok((self.targets[i].clone(), addr));
        }
        let i = self.next_target % self.targets.len().max(1);
        self.next_target = self.next_target.wrapping_add(1);
        let target = self.targets.get(i).ok_or("no reporter configured")?;
        let mut addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("resolving {}: {e}", target.host))?
                .collect();
        addrs.dedup();
        // Start at a random address so replicas behind one name share the load.
        if !addrs.is_empty() {
            let start = fastrand::usize(..addrs.len());
            addrs.rotate_left(start);
        }
        self.pending = addrs.into_iter().rev().map(|a| (i, a)).collect();
        match self.pending.pop() {
            Some((i, addr)) => Ok((self.targets[i].clone(), addr)),
            None => Err(format!("{} resolves to no address", target.host)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated() {
        let t = Target::parse("https://reporter.example:9000").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("reporter.example", 9000));
        assert_eq!(Target::parse("http://10.0.0.1").unwrap().port, 8675);
        assert_eq!(Target::parse("http://[::1]:1").unwrap().host, "::1");
        assert!(matches!(
            Target::parse("ftp://x:1"),
            Err(TargetError::Scheme(_))
        ));
        assert!(Target::parse("reporter:8675").is_err());
        assert!(Target::parse("").is_err());
    }

    #[tokio::test]
    async fn targets_are_used_in_turn() {
        let mut t = Targets::new(vec![
            Target::parse("http://127.0.0.1:1").unwrap(),
            Target::parse("http://127.0.0.2:2").unwrap(),
        ]);
        let ports: Vec<u16> = [(); 4].iter().map(|_| 0).collect();
        let mut seen = Vec::new();
        for _ in ports {
            seen.push(t.next().await.unwrap().1.port());
        }
        assert_eq!(seen, vec![1, 2, 1, 2]);
    }
}
