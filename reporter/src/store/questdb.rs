//! The QuestDB store: rows as InfluxDB line protocol (ILP), over HTTP(S) by
//! preference, or over TCP. Any ILP-over-HTTP server works the same way
//! (the tests run against QuestDB 9.3.5 and VictoriaMetrics). The reporter
//! wraps it in [`super::questdb_schema::CheckedStore`], which lets it write
//! only once QuestDB's tables are as the schema wants.
//!
//! # Configuration
//!
//! [`QuestDbStore::new`] takes a questdb-rs configuration string, the format
//! every QuestDB client shares: `SCHEME::key=value;key=value;...`.
//!
//! - `http::addr=questdb.internal:9000;` (recommended; the port defaults to
//!   9000) and `https::addr=...;` (TLS, checked against the Mozilla roots, or
//!   against the PEM certificates of `tls_roots=/path/ca.pem`).
//! - Authentication: `username=...;password=...;` (HTTP basic) or
//!   `token=...;` (bearer), over http/https.
//! - `request_timeout` (ms, default 10 000) and `request_min_throughput`
//!   (bytes/s, default 102 400): a request may take `request_timeout` plus
//!   its size divided by the throughput.
//! - `retry_timeout` (ms) and `retry_max_backoff_millis` (ms, default 1 000):
//!   how long one [`Store::write`] keeps retrying a failure that may pass
//!   before reporting it. The default here is **0**, not questdb-rs's 10 s:
//!   the drainer owns the retries (with its own backoff, forever), so a
//!   write reports at once and the drainer decides.
//! - `max_buf_size` (bytes, default 100 MiB): the largest request; the rows
//!   of one write are sent in as few requests as fit. `init_buf_size`,
//!   `max_name_len` (default 127, QuestDB's `cairo.max.file.name.length`),
//!   `auto_flush=off` (the only value questdb-rs accepts) are understood too.
//! - `tcp::addr=host:9009;` and `tcps::` (TLS; ECDSA authentication with
//!   `username`, `token`, `token_x`, `token_y`; `auth_timeout`,
//!   `bind_interface`): supported, but **not recommended**. ILP over TCP has
//!   no acknowledgement: a flush only means the bytes reached the local
//!   socket. After the server closes the connection (a restart, a bad row),
//!   the next flush can still "succeed" and its rows are lost; only the one
//!   after fails. A TCP [`Store::write`] therefore cannot honour the store
//!   contract ("returns when the database accepted the rows") and the store
//!   logs a warning when it is built.
//!
//! Every key is checked when the store is built: an unknown key (a typo such
//! as `reqest_timeout`, which questdb-rs itself would silently ignore), a
//! value of the wrong form, an unreadable `tls_roots` file or an incomplete
//! credential is an error at once, worth stopping the reporter for. No
//! connection is made then: the database may well be down at start, and the
//! spool absorbs that. Error messages never repeat credentials.
//!
//! # Protocol version
//!
//! ILP protocol version 1 (text) is used unless the string names another
//! (`protocol_version=2` sends doubles in binary: QuestDB only). The
//! questdb-rs default, detecting the version by asking the server's
//! `/settings` at start, is refused (`protocol_version=auto`): it needs the
//! server up when the reporter starts, and servers other than QuestDB that
//! speak ILP (VictoriaMetrics, InfluxDB) answer that request with an error,
//! which would make the configuration unusable with them, while version 2
//! is misread by them. Version 1 is what every ILP server understands.
//!
//! # Types
//!
//! Row `table` → table; the batch's `node` and every tag (the family's, then
//! the operator's labels) → SYMBOL columns, `node` first; [`Value::Int`] →
//! ILP integer (QuestDB LONG); [`Value::Float`] → ILP double (DOUBLE);
//! [`Value::Text`] → ILP string (QuestDB VARCHAR; tags stay SYMBOL); the
//! row's `ts` (Unix ns) → the designated timestamp. Details:
//!
//! - LONG is signed: an integer above `i64::MAX` (2^63-1) is **clamped** to
//!   `i64::MAX`. Such values are counters the gatherer already saturated at
//!   `u64::MAX`; sending them as doubles instead would clash with the LONG
//!   column the same field has in every other row (QuestDB rejects the
//!   request) and lose exactness for every value above 2^53 anyway.
//!   `i64::MIN` (QuestDB's LONG NULL) can never be produced.
//! - A non-finite float (the wire can carry one) is left out of its row, as
//!   every hostpulse encoder does; a row left with no field is not sent.
//! - A tag with an empty value is left out (NULL), as VictoriaMetrics and
//!   InfluxDB treat empty labels.
//! - Text fields go only to QuestDB. With [`QuestDbStore::skip_text`]
//!   (the reporter sets it with `--questdb-schema off`, i.e. for ILP servers
//!   other than QuestDB: VictoriaMetrics stores a string as 0) they are left
//!   out, counted in `hostpulse_reporter_store_skipped_text_fields_total`
//!   ([`super::skipped_text`]), and a row left with no field is not sent:
//!   never a failed batch.
//! - QuestDB keeps microseconds: the nanoseconds below are truncated by the
//!   server.
//!
//! Rows that cannot be written as they are make the whole write
//! [`StoreError::Rejected`], before anything is sent: a row breaking
//! [`hostpulse_proto::rules`] (which the reporter enforces before
//! acknowledging, so only an older spool holds such rows), a name QuestDB
//! does not allow or longer than `max_name_len`, a negative timestamp, an
//! empty node. The drainer then splits the write until the refused row is
//! alone and keeps only it in its rejected-rows file. The same field twice
//! in a row (same spelling) is sent once, with its last value, as SQLite
//! stores it. So is a single row
//! larger than `max_buf_size` (the rows before it in the write may already be
//! stored; writing them again is harmless).
//!
//! # Idempotency
//!
//! The drainer may write the same batches again after a crash. The tables of
//! `deploy/questdb/schema.sql` ([`SCHEMA_SQL`]) are WAL tables with
//! `DEDUP UPSERT KEYS(ts, node, <the family's tags>)`: a row written again
//! replaces itself, so a replay changes nothing. Apply the schema before the
//! first write ([`apply_schema`], `reporter --questdb-schema apply`); a table
//! that ILP creates on the fly has no dedup keys, which is why the reporter
//! checks the tables before writing ([`super::questdb_schema`]).
//!
//! # Errors
//!
//! Over HTTP every request's status decides, which is why this store sends
//! its requests itself (with `ureq`, the HTTP client questdb-rs uses) and uses
//! questdb-rs for the configuration, the line protocol and TCP: questdb-rs's
//! HTTP sender reports every HTTP error status but 401, 403 and 404 the same
//! way (`ErrorCode::ServerFlushError`, the status code dropped: see
//! `parse_http_error` in its `ingress/sender/http.rs`), so a 400 for a bad
//! row could not be told from a 503 of a proxy or a restarting server.
//!
//! - 2xx: accepted.
//! - 400 and the other 4xx not listed below: [`StoreError::Rejected`] with the
//!   server's message (QuestDB's JSON error, or the body text).
//! - 413 (too large): the rows are split in halves and sent again; a single
//!   row refused as too large is rejected.
//! - 401, 403, 407 (credentials), 404 (not an ILP endpoint: the wrong port or
//!   path), 408, 421 (a read-only replica), 425, 429: [`StoreError::Unavailable`]:
//!   the rows are fine and the spool keeps them until the setup is fixed.
//! - 5xx, 3xx (a redirect is not followed: a POST body must not turn into a
//!   GET), connection refused or reset, DNS failure, TLS failure, timeout:
//!   [`StoreError::Unavailable`].
//!
//! Over TCP every failure is [`StoreError::Unavailable`] (the server's
//! reasons are only in its log); the connection is dropped and a new one
//! made on the next write, as questdb-rs's TCP sender cannot reconnect
//! (`must_close`).
//!
//! # Threads
//!
//! Everything here blocks: questdb-rs and ureq are synchronous, and a write
//! waits for the server's answer, up to the request timeout (a TCP connect to
//! a silent host can block for the kernel's SYN timeout). A store therefore
//! runs on a thread of its own, owned by its drainer, never on the async
//! runtime's workers; [`apply_schema`] is meant for the start of the process,
//! before the runtime serves anything.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostpulse_proto::codec::DecodedRow;
use hostpulse_proto::row::Value;
use questdb::ingress::{
    Buffer, ColumnName, ProtocolVersion, Sender, SenderBuilder, TableName, TimestampNanos,
};

use super::{Store, StoreError};
use crate::intake::AcceptedBatch;

/// The tables of the row model (`deploy/questdb/schema.sql`), for
/// [`apply_schema`].
pub const SCHEMA_SQL: &str = include_str!("../../../deploy/questdb/schema.sql");

/// `User-Agent` of the HTTP requests.
const USER_AGENT: &str = concat!("hostpulse-reporter/", env!("CARGO_PKG_VERSION"));

const DEFAULT_HTTP_PORT: u16 = 9000;
const DEFAULT_TCP_PORT: u16 = 9009;
/// questdb-rs's defaults, kept.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MIN_THROUGHPUT: u64 = 100 * 1024;
const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_INIT_BUF_SIZE: usize = 64 * 1024;
const DEFAULT_MAX_BUF_SIZE: usize = 100 * 1024 * 1024;
const DEFAULT_MAX_NAME_LEN: usize = 127;
/// Longest duration a key accepts (one day): anything longer is a mistake,
/// and it keeps every deadline computation far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// First pause of the in-write retries (`retry_timeout`), doubled each time
/// up to `retry_max_backoff_millis`, never below [`MIN_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(1);
/// Most bytes `init_buf_size` allocates up front.
const MAX_INIT_BUF_SIZE: usize = 16 * 1024 * 1024;
/// A buffer grown beyond this by a large write is given back afterwards.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// How much of an error response is read.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// How much of a query's answer is read (`tables()`, `show columns`).
const QUERY_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// How much of a server's message goes into an error.
const MESSAGE_LIMIT: usize = 2000;

/// Keys of an `http::`/`https::` configuration.
const HTTP_KEYS: &[&str] = &[
    "addr",
    "auto_flush",
    "init_buf_size",
    "max_buf_size",
    "max_name_len",
    "password",
    "protocol_version",
    "request_min_throughput",
    "request_timeout",
    "retry_max_backoff_millis",
    "retry_timeout",
    "tls_ca",
    "tls_roots",
    "tls_verify",
    "token",
    "username",
];

/// Keys of a `tcp::`/`tcps::` configuration.
const TCP_KEYS: &[&str] = &[
    "addr",
    "auth_timeout",
    "auto_flush",
    "bind_interface",
    "init_buf_size",
    "max_buf_size",
    "max_name_len",
    "protocol_version",
    "tls_ca",
    "tls_roots",
    "tls_verify",
    "token",
    "token_x",
    "token_y",
    "username",
];

/// A configuration string that cannot be used. The message names the key and
/// the reason, never a credential's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("QuestDB configuration: {0}")]
pub struct QuestDbConfigError(String);

impl QuestDbConfigError {
    fn new(message: impl Into<String>) -> Self {
        QuestDbConfigError(message.into())
    }
}

/// Why [`apply_schema`] stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// The configuration string cannot be used (or is not HTTP).
    #[error(transparent)]
    Config(#[from] QuestDbConfigError),
    /// The SQL text holds no statement.
    #[error("the schema holds no SQL statement")]
    Empty,
    /// The server could not be reached or did not answer in time.
    #[error("QuestDB at {endpoint} is unreachable (statement {number}): {message}")]
    Unreachable {
        /// `scheme://host:port`.
        endpoint: String,
        /// The statement being sent, from 1.
        number: usize,
        /// The transport error.
        message: String,
    },
    /// The server refused a statement; the statements before it were applied.
    #[error("QuestDB refused statement {number} ({head}): HTTP {status}: {message}")]
    Refused {
        /// The statement, from 1.
        number: usize,
        /// Its beginning, for the message.
        head: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// The transport a configuration string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Tcp,
    Tcps,
}

impl Scheme {
    fn parse(service: &str) -> Result<Self, QuestDbConfigError> {
        match service {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            "tcp" => Ok(Scheme::Tcp),
            "tcps" => Ok(Scheme::Tcps),
            "ws" | "wss" | "udp" => Err(QuestDbConfigError::new(format!(
                "the {service}:: transport (QWP) is not supported; use http:: or https:: (recommended), or tcp::/tcps::"
            ))),
            other => Err(QuestDbConfigError::new(format!(
                "unknown transport {other:?}; use http:: or https:: (recommended), or tcp::/tcps::"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
            Scheme::Tcps => "tcps",
        }
    }

    fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }

    fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Tcps)
    }
}

/// A parsed and validated configuration.
struct Settings {
    scheme: Scheme,
    /// `host:port` as the URL or the log shows it (IPv6 in brackets).
    authority: String,
    protocol_version: ProtocolVersion,
    max_name_len: usize,
    init_buf_size: usize,
    max_buf_size: usize,
    /// HTTP only: the `Authorization` header value (a secret).
    auth: Option<String>,
    request_timeout: Duration,
    min_throughput: u64,
    retry_timeout: Duration,
    retry_max_backoff: Duration,
    /// The root certificates of `tls_roots` (TLS only).
    tls_roots: Option<Vec<ureq::tls::Certificate<'static>>>,
    /// TCP only: what connects (questdb-rs).
    tcp_builder: Option<SenderBuilder>,
}

impl Settings {
    fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme.name(), self.authority)
    }

    fn parse(conf: &str) -> Result<Self, QuestDbConfigError> {
        let parsed = questdb_confstr::parse_conf_str(conf)
            .map_err(|e| QuestDbConfigError::new(format!("cannot parse the string: {e}")))?;
        let scheme = Scheme::parse(parsed.service())?;
        let params = parsed.params();
        let known = if scheme.is_http() {
            HTTP_KEYS
        } else {
            TCP_KEYS
        };
        let mut unknown: Vec<&str> = params
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(QuestDbConfigError::new(format!(
                "unknown key(s) {} for {}:: (known: {})",
                unknown
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                scheme.name(),
                known.join(", ")
            )));
        }
        let protocol_version = match parsed.get("protocol_version") {
            None | Some("1") => ProtocolVersion::V1,
            Some("2") => ProtocolVersion::V2,
            Some("3") => ProtocolVersion::V3,
            Some("auto") => {
                return Err(QuestDbConfigError::new(
                    "protocol_version=auto is not supported: it asks the server at start, which \
                     fails when it is down and with ILP servers other than QuestDB; name the \
                     version (1, understood by every ILP server, is the default)",
                ));
            }
            Some(other) => {
                return Err(QuestDbConfigError::new(format!(
                    "protocol_version must be 1, 2 or 3, not {other:?}"
                )));
            }
        };

        // questdb-rs checks every value (numbers, TLS options, credential
        // combinations, HTTP-only keys on TCP...).
        let builder = SenderBuilder::from_conf(conf)
            .and_then(|b| b.protocol_version(protocol_version))
            .map_err(|e| QuestDbConfigError::new(e.msg().to_string()))?;
        if scheme.is_http() {
            // With the protocol version set, building an HTTP sender does no
            // I/O: it only checks the credentials and loads the TLS roots.
            builder
                .build()
                .map_err(|e| QuestDbConfigError::new(e.msg().to_string()))?;
        }

        let default_port = if scheme.is_http() {
            DEFAULT_HTTP_PORT
        } else {
            DEFAULT_TCP_PORT
        };
        let addr = parsed
            .get("addr")
            .ok_or_else(|| QuestDbConfigError::new("the \"addr\" key is missing"))?;
        let authority = parse_addr(addr, default_port)?;
        if !scheme.is_http() && authority.starts_with('[') {
            // questdb-rs splits addr at its first ':'.
            return Err(QuestDbConfigError::new(
                "the TCP sender cannot take an IPv6 address in addr; use a host name",
            ));
        }

        let number = |key: &str| -> Result<Option<u64>, QuestDbConfigError> {
            parsed
                .get(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        QuestDbConfigError::new(format!("{key} must be a whole number, not {v:?}"))
                    })
                })
                .transpose()
        };
        let millis = |key: &str, default: Duration| -> Result<Duration, QuestDbConfigError> {
            match number(key)? {
                None => Ok(default),
                Some(ms) => {
                    let d = Duration::from_millis(ms);
                    if d > MAX_DURATION {
                        Err(QuestDbConfigError::new(format!(
                            "{key} must be at most {} ms (one day), not {ms}",
                            MAX_DURATION.as_millis()
                        )))
                    } else {
                        Ok(d)
                    }
                }
            }
        };
        let size = |key: &str, default: usize| -> Result<usize, QuestDbConfigError> {
            match number(key)? {
                None => Ok(default),
                Some(n) => usize::try_from(n)
                    .map_err(|_| QuestDbConfigError::new(format!("{key} is too large: {n}"))),
            }
        };

        let request_timeout = millis("request_timeout", DEFAULT_REQUEST_TIMEOUT)?;
        if request_timeout.is_zero() {
            return Err(QuestDbConfigError::new("request_timeout must be above 0"));
        }
        let max_buf_size = size("max_buf_size", DEFAULT_MAX_BUF_SIZE)?;
        // An allocation made up front: a hint, bounded.
        let init_buf_size = size("init_buf_size", DEFAULT_INIT_BUF_SIZE)?
            .min(max_buf_size)
            .min(MAX_INIT_BUF_SIZE);
        let max_name_len = size("max_name_len", DEFAULT_MAX_NAME_LEN)?;

        let auth = if scheme.is_http() {
            match (
                parsed.get("username"),
                parsed.get("password"),
                parsed.get("token"),
            ) {
                (Some(user), Some(password), None) => Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{password}").as_bytes())
                )),
                (None, None, Some(token)) => Some(format!("Bearer {token}")),
                (None, None, None) => None,
                // questdb-rs refused every other combination above.
                _ => {
                    return Err(QuestDbConfigError::new(
                        "give either username and password, or token",
                    ));
                }
            }
        } else {
            let present = ["username", "token", "token_x", "token_y"]
                .iter()
                .filter(|k| parsed.get(k).is_some())
                .count();
            if present != 0 && present != 4 {
                return Err(QuestDbConfigError::new(
                    "TCP authentication needs all of username, token, token_x and token_y",
                ));
            }
            None
        };

        if let Some(value) = &auth
            && ureq::http::HeaderValue::from_str(value).is_err()
        {
            return Err(QuestDbConfigError::new(
                "username, password or token holds a character an HTTP header cannot carry",
            ));
        }
        if scheme.is_http() {
            let url = format!("{}://{authority}/write", scheme.name());
            if ureq::http::Uri::try_from(url.as_str()).is_err() {
                return Err(QuestDbConfigError::new(format!(
                    "addr {addr:?} does not make a valid URL"
                )));
            }
        }

        let tls_roots = match parsed.get("tls_roots") {
            Some(path) if scheme.is_tls() => Some(load_roots(Path::new(path))?),
            // questdb-rs refuses TLS keys without TLS.
            _ => None,
        };

        Ok(Settings {
            scheme,
            authority,
            protocol_version,
            max_name_len,
            init_buf_size,
            max_buf_size,
            auth,
            request_timeout,
            min_throughput: number("request_min_throughput")?.unwrap_or(DEFAULT_MIN_THROUGHPUT),
            // The drainer retries; a write reports at once unless asked.
            retry_timeout: millis("retry_timeout", Duration::ZERO)?,
            retry_max_backoff: millis("retry_max_backoff_millis", DEFAULT_RETRY_MAX_BACKOFF)?,
            tls_roots,
            tcp_builder: (!scheme.is_http()).then_some(builder),
        })
    }
}

/// `host[:port]` or `[v6]:port` → `host:port` for a URL.
fn parse_addr(addr: &str, default_port: u16) -> Result<String, QuestDbConfigError> {
    let bad = || {
        QuestDbConfigError::new(format!(
            "addr {addr:?} is not HOST, HOST:PORT or [IPV6]:PORT"
        ))
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{v6}]"), port)
    } else {
        let (host, port) = match addr.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (addr, None),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(bad());
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(QuestDbConfigError::new(format!(
                    "the port of addr {addr:?} is not a number from 1 to 65535"
                )));
            }
        },
    };
    Ok(format!("{host}:{port}"))
}

/// The certificates of a PEM file (`tls_roots`).
fn load_roots(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, QuestDbConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        QuestDbConfigError::new(format!("reading tls_roots {}: {e}", path.display()))
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(QuestDbConfigError::new(format!(
                    "tls_roots {}: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(QuestDbConfigError::new(format!(
            "tls_roots {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Standard base64 with padding (HTTP basic authentication).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server's message made fit for one log line.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.trim().chars().enumerate() {
        if count >= MESSAGE_LIMIT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    if out.is_empty() {
        out.push_str("(no message)");
    }
    out
}

/// The HTTP side: one agent (keeps connections alive), the endpoint, the
/// credentials.
struct Http {
    agent: ureq::Agent,
    endpoint: String,
    auth: Option<String>,
    request_timeout: Duration,
    min_throughput: u64,
    retry_timeout: Duration,
    retry_max_backoff: Duration,
}

/// How one HTTP request failed.
#[derive(Debug)]
enum Failure {
    /// 413: the server (or a proxy) wants smaller requests.
    TooLarge(String),
    /// Anything else; `retry` when another attempt in the same write may pass.
    Failed { error: StoreError, retry: bool },
}

impl Http {
    fn new(settings: &Settings) -> Self {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirected POST would be replayed as a GET (body dropped) or
            // not at all: answer with the 3xx instead.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // questdb-rs ignores proxy variables too.
            .proxy(None)
            .user_agent(USER_AGENT)
            .no_delay(true)
            .timeout_connect(Some(settings.request_timeout));
        if settings.scheme == Scheme::Https {
            let roots = match &settings.tls_roots {
                Some(certs) => ureq::tls::RootCerts::new_with_certs(certs),
                None => ureq::tls::RootCerts::WebPki,
            };
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(roots)
                    .build(),
            );
        }
        Http {
            agent: config.build().new_agent(),
            endpoint: settings.endpoint(),
            auth: settings.auth.clone(),
            request_timeout: settings.request_timeout,
            min_throughput: settings.min_throughput,
            retry_timeout: settings.retry_timeout,
            retry_max_backoff: settings.retry_max_backoff,
        }
    }

    /// Sends `body` to `/write`, retrying within `retry_timeout`.
    fn write(&self, body: &[u8]) -> Result<(), Failure> {
        let deadline = Instant::now().checked_add(self.retry_timeout);
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            match self.write_once(body) {
                Err(Failure::Failed { retry: true, error }) if !self.retry_timeout.is_zero() => {
                    let jittered = pause.mul_f64(0.75 + fastrand::f64() / 2.0);
                    match (deadline, Instant::now().checked_add(jittered)) {
                        (Some(end), Some(wake)) if wake < end => {
                            std::thread::sleep(jittered);
                            pause = pause
                                .saturating_mul(2)
                                .min(self.retry_max_backoff)
                                .max(MIN_RETRY_PAUSE);
                        }
                        _ => return Err(Failure::Failed { error, retry: true }),
                    }
                }
                other => return other,
            }
        }
    }

    fn write_once(&self, body: &[u8]) -> Result<(), Failure> {
        // questdb-rs's rule: the timeout grows with the body at
        // `request_min_throughput`.
        let extra_ms = match self.min_throughput {
            0 => 0,
            t => (body.len() as u128 * 1000 / u128::from(t)).min(MAX_DURATION.as_millis()),
        };
        let timeout = self
            .request_timeout
            .saturating_add(Duration::from_millis(extra_ms as u64));
        let mut request = self
            .agent
            .post(format!("{}/write", self.endpoint))
            .query("precision", "n")
            .content_type("text/plain; charset=utf-8");
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let request = request.config().timeout_global(Some(timeout)).build();
        match request.send(body) {
            Ok(mut response) => {
                let status = response.status();
                if status.is_success() {
                    // Read the (empty) body so the connection is reused.
                    let _ = response.body_mut().read_to_vec();
                    return Ok(());
                }
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = read_error_body(response.body_mut());
                Err(classify(
                    status.as_u16(),
                    &text,
                    location.as_deref(),
                    &self.endpoint,
                ))
            }
            Err(e) => Err(Failure::Failed {
                error: StoreError::Unavailable(format!(
                    "QuestDB at {} is unreachable: {}",
                    self.endpoint,
                    transport_message(&e, timeout)
                )),
                retry: true,
            }),
        }
    }

    /// Runs one SQL statement through `/exec`.
    fn exec(&self, number: usize, sql: &str) -> Result<(), SchemaError> {
        self.query(number, sql).map(drop)
    }

    /// Runs one SQL statement through `/exec` and returns the server's JSON
    /// answer as text.
    fn query(&self, number: usize, sql: &str) -> Result<String, SchemaError> {
        let mut request = self
            .agent
            .get(format!("{}/exec", self.endpoint))
            .query("query", sql);
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let request = request
            .config()
            .timeout_global(Some(self.request_timeout))
            .build();
        match request.call() {
            Ok(mut response) => {
                let status = response.status();
                if status.is_success() {
                    return response
                        .body_mut()
                        .with_config()
                        .limit(QUERY_BODY_LIMIT)
                        .read_to_string()
                        .map_err(|e| SchemaError::Unreachable {
                            endpoint: self.endpoint.clone(),
                            number,
                            message: format!("reading the answer: {e}"),
                        });
                }
                let text = read_error_body(response.body_mut());
                Err(SchemaError::Refused {
                    number,
                    head: statement_head(sql),
                    status: status.as_u16(),
                    message: one_line(&text),
                })
            }
            Err(e) => Err(SchemaError::Unreachable {
                endpoint: self.endpoint.clone(),
                number,
                message: transport_message(&e, self.request_timeout),
            }),
        }
    }
}

/// Up to [`ERROR_BODY_LIMIT`] bytes of a response, as text.
fn read_error_body(body: &mut ureq::Body) -> String {
    let mut bytes = Vec::new();
    // A body cut short still says something; the read error itself does not.
    let _ = body
        .as_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn transport_message(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within {timeout:?} ({e})"),
        ureq::Error::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

/// The first words of a statement, for messages.
fn statement_head(sql: &str) -> String {
    let mut head: String = sql.chars().take(60).collect();
    if head.len() < sql.len() {
        head.push('…');
    }
    head
}

/// What an HTTP error status means for the rows (see the module doc).
fn classify(status: u16, body: &str, location: Option<&str>, endpoint: &str) -> Failure {
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let said = one_line(body);
    let unavailable = |what: String, retry: bool| Failure::Failed {
        error: StoreError::Unavailable(what),
        retry,
    };
    match status {
        413 => Failure::TooLarge(format!(
            "QuestDB at {endpoint} refused the request as too large (HTTP 413): {said}"
        )),
        401 | 403 | 407 => unavailable(
            format!(
                "QuestDB at {endpoint} refused the credentials (HTTP {status} {reason}): {said}; \
                 fix username/password/token, the rows are kept"
            ),
            false,
        ),
        404 => unavailable(
            format!(
                "no ILP endpoint at {endpoint}/write (HTTP 404): is addr QuestDB's HTTP port \
                 (9000 by default)? {said}"
            ),
            false,
        ),
        408 | 421 | 425 | 429 => unavailable(
            format!(
                "QuestDB at {endpoint} cannot take the rows now (HTTP {status} {reason}): {said}"
            ),
            true,
        ),
        400..=499 => Failure::Failed {
            error: StoreError::Rejected(format!(
                "QuestDB at {endpoint} rejected the rows (HTTP {status} {reason}): {said}"
            )),
            retry: false,
        },
        500..=599 => unavailable(
            format!("QuestDB at {endpoint} failed (HTTP {status} {reason}): {said}"),
            true,
        ),
        300..=399 => unavailable(
            format!(
                "QuestDB at {endpoint} redirects (HTTP {status}) to {}: redirects are not \
                 followed, set addr to the final address",
                location.unwrap_or("an unnamed location")
            ),
            false,
        ),
        _ => unavailable(
            format!("QuestDB at {endpoint} answered HTTP {status}: {said}"),
            false,
        ),
    }
}

/// The TCP side: questdb-rs's sender, made again after any failure.
struct Tcp {
    builder: SenderBuilder,
    sender: Option<Sender>,
    endpoint: String,
}

impl Tcp {
    fn write(&mut self, buf: &Buffer) -> Result<(), StoreError> {
        if self.sender.as_ref().is_some_and(Sender::must_close) {
            self.sender = None;
        }
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(self.builder.build().map_err(|e| {
                StoreError::Unavailable(format!(
                    "connecting to QuestDB at {}: {}",
                    self.endpoint,
                    e.msg()
                ))
            })?),
        };
        match sender.flush_and_keep(buf) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.sender = None;
                Err(StoreError::Unavailable(format!(
                    "writing to QuestDB at {} over TCP: {}",
                    self.endpoint,
                    e.msg()
                )))
            }
        }
    }
}

enum Transport {
    Http(Http),
    /// Boxed: questdb-rs's builder and sender are large.
    Tcp(Box<Tcp>),
}

impl Transport {
    fn send(&mut self, buf: &Buffer) -> Result<(), Failure> {
        match self {
            Transport::Http(http) => http.write(buf.as_bytes()),
            Transport::Tcp(tcp) => tcp.write(buf).map_err(|error| Failure::Failed {
                error,
                retry: false,
            }),
        }
    }
}

/// Writes rows into QuestDB (or any ILP server) through one connection
/// configuration. See the module doc.
pub struct QuestDbStore {
    endpoint: String,
    protocol_version: ProtocolVersion,
    max_name_len: usize,
    init_buf_size: usize,
    max_buf_size: usize,
    transport: Transport,
    buf: Buffer,
    skip_text: bool,
}

impl fmt::Debug for QuestDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuestDbStore")
            .field("endpoint", &self.endpoint)
            .field("protocol_version", &self.protocol_version)
            .finish_non_exhaustive()
    }
}

/// One row to write and the node it belongs to.
type RowRef<'a> = (&'a str, &'a DecodedRow);

impl QuestDbStore {
    /// Checks `conf` (a questdb-rs configuration string, see the module doc)
    /// and prepares the store. Connects to nothing: the first write does.
    pub fn new(conf: &str) -> Result<Self, QuestDbConfigError> {
        let settings = Settings::parse(conf)?;
        let endpoint = settings.endpoint();
        let transport = match settings.scheme {
            Scheme::Http | Scheme::Https => Transport::Http(Http::new(&settings)),
            Scheme::Tcp | Scheme::Tcps => {
                tracing::warn!(
                    endpoint,
                    "QuestDB over TCP: ILP/TCP has no acknowledgement, rows can be lost when the \
                     server closes the connection; prefer http:: or https::"
                );
                let builder = settings.tcp_builder.clone().ok_or_else(|| {
                    QuestDbConfigError::new("internal: no TCP sender configuration")
                })?;
                Transport::Tcp(Box::new(Tcp {
                    builder,
                    sender: None,
                    endpoint: endpoint.clone(),
                }))
            }
        };
        Ok(QuestDbStore {
            protocol_version: settings.protocol_version,
            max_name_len: settings.max_name_len,
            init_buf_size: settings.init_buf_size,
            max_buf_size: settings.max_buf_size,
            buf: Buffer::with_init_capacity_and_max_name_len(
                settings.protocol_version,
                settings.init_buf_size,
                settings.max_name_len,
            ),
            transport,
            endpoint,
            skip_text: false,
        })
    }

    /// Leaves text fields out of every row, counting them (a metric-only ILP
    /// server such as VictoriaMetrics).
    pub fn skip_text(mut self) -> Self {
        self.skip_text = true;
        self
    }

    /// `scheme://host:port`, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Encodes `rows` into as few requests as `max_buf_size` allows and sends
    /// them.
    fn send_rows(&mut self, rows: &[RowRef<'_>]) -> Result<(), StoreError> {
        let QuestDbStore {
            transport,
            buf,
            max_buf_size,
            protocol_version,
            max_name_len,
            ..
        } = self;
        let limit = *max_buf_size;
        buf.clear();
        let mut start = 0;
        for (i, row) in rows.iter().enumerate() {
            push_row(buf, *row)?;
            if buf.len() <= limit {
                continue;
            }
            buf.rewind_to_marker().map_err(internal)?;
            if buf.row_count() > 0 {
                send_range(
                    transport,
                    buf,
                    &rows[start..i],
                    *protocol_version,
                    *max_name_len,
                )?;
            }
            buf.clear();
            start = i;
            push_row(buf, *row)?;
            if buf.len() > limit {
                return Err(StoreError::Rejected(format!(
                    "a {} row of node {} takes {} bytes, more than max_buf_size ({limit})",
                    row.1.key.table,
                    row.0,
                    buf.len()
                )));
            }
        }
        if buf.row_count() > 0 {
            send_range(
                transport,
                buf,
                &rows[start..],
                *protocol_version,
                *max_name_len,
            )?;
        }
        buf.clear();
        Ok(())
    }
}

/// Sends the encoded `rows`; on a 413, sends each half on its own.
fn send_range(
    transport: &mut Transport,
    buf: &Buffer,
    rows: &[RowRef<'_>],
    protocol_version: ProtocolVersion,
    max_name_len: usize,
) -> Result<(), StoreError> {
    match transport.send(buf) {
        Ok(()) => Ok(()),
        Err(Failure::Failed { error, .. }) => Err(error),
        Err(Failure::TooLarge(message)) if rows.len() <= 1 => Err(StoreError::Rejected(message)),
        Err(Failure::TooLarge(_)) => {
            let (left, right) = rows.split_at(rows.len() / 2);
            for half in [left, right] {
                let mut part = Buffer::with_max_name_len(protocol_version, max_name_len);
                for row in half {
                    push_row(&mut part, *row)?;
                }
                if part.row_count() > 0 {
                    send_range(transport, &part, half, protocol_version, max_name_len)?;
                }
            }
            Ok(())
        }
    }
}

/// A questdb-rs error the checks of [`check_row`] should have made
/// impossible: the rows are refused with the library's reason.
fn internal(e: questdb::Error) -> StoreError {
    StoreError::Rejected(format!("cannot encode the rows: {}", e.msg()))
}

/// Appends one row (a marker is set before it, so the caller can take it
/// back). A row without a finite field is not written.
fn push_row(buf: &mut Buffer, (node, row): RowRef<'_>) -> Result<(), StoreError> {
    buf.set_marker().map_err(internal)?;
    if !row.fields.iter().any(|(_, v)| sendable(v)) {
        return Ok(());
    }
    let result = (|| -> questdb::Result<()> {
        buf.table(row.key.table.as_str())?.symbol("node", node)?;
        for (name, value) in &row.key.tags {
            if !value.is_empty() {
                buf.symbol(name.as_str(), value)?;
            }
        }
        for (i, (name, value)) in row.fields.iter().enumerate() {
            // The same field again later in the row: the last value wins.
            if row.fields[i + 1..].iter().any(|(later, _)| later == name) {
                continue;
            }
            match value {
                Value::Int(v) => {
                    buf.column_i64(&**name, i64::try_from(*v).unwrap_or(i64::MAX))?;
                }
                Value::Float(v) if v.is_finite() => {
                    buf.column_f64(&**name, *v)?;
                }
                Value::Float(_) => {}
                Value::Text(t) => {
                    buf.column_str(&**name, t)?;
                }
            }
        }
        buf.at(TimestampNanos::new(row.ts))
    })();
    result.map_err(|e| {
        // Take the half-written row back so the buffer stays usable.
        let _ = buf.rewind_to_marker();
        internal(e)
    })
}

fn sendable(v: &Value) -> bool {
    match v {
        Value::Int(_) | Value::Text(_) => true,
        Value::Float(f) => f.is_finite(),
    }
}

/// Why QuestDB could not take `row` as it is, if it could not (see the
/// module doc).
fn check_row(node: &str, row: &DecodedRow, max_name_len: usize) -> Result<(), String> {
    if node.is_empty() {
        return Err("the node id is empty".to_string());
    }
    let table = row.key.table.as_str();
    hostpulse_proto::rules::check_row(
        table,
        row.key.tags.iter().map(|(k, _)| k.as_str()),
        row.fields.iter().map(|(f, _)| &**f),
    )
    .map_err(|e| format!("{table:?}: {e}"))?;
    TableName::new(table).map_err(|e| e.msg().to_string())?;
    if table.len() > max_name_len {
        return Err(format!(
            "table name {table:?} is longer than max_name_len ({max_name_len})"
        ));
    }
    if row.ts < 0 {
        return Err(format!("{table} row has a negative timestamp ({})", row.ts));
    }
    let tags = row.key.tags.iter().map(|(k, _)| k.as_str());
    for name in tags.chain(row.fields.iter().map(|(k, _)| &**k)) {
        ColumnName::new(name).map_err(|e| format!("{table}: {}", e.msg()))?;
        if name.len() > max_name_len {
            return Err(format!(
                "{table}: column name {name:?} is longer than max_name_len ({max_name_len})"
            ));
        }
        if name == "node" || name == "ts" {
            return Err(format!(
                "{table}: a tag or field is named {name:?}, a column the store sets itself"
            ));
        }
    }
    // Two names of one column were refused by the rules above; the same
    // field twice is sent once, by push_row.
    Ok(())
}

impl Store for QuestDbStore {
    fn name(&self) -> &'static str {
        "questdb"
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        let mut rows: Vec<RowRef<'_>> = Vec::new();
        // Rows with their text fields left out, when text is skipped.
        let mut numeric: Vec<(&str, DecodedRow)> = Vec::new();
        let mut skipped = 0u64;
        for batch in batches {
            for row in &batch.decoded.rows {
                if self.skip_text && row.fields.iter().any(|(_, v)| v.as_text().is_some()) {
                    let mut kept = row.clone();
                    kept.fields.retain(|(_, v)| v.as_text().is_none());
                    skipped += (row.fields.len() - kept.fields.len()) as u64;
                    numeric.push((&batch.node, kept));
                    continue;
                }
                check_row(&batch.node, row, self.max_name_len).map_err(|why| {
                    StoreError::Rejected(format!(
                        "batch {} of node {}: {why}",
                        batch.decoded.sequence, batch.node
                    ))
                })?;
                rows.push((&batch.node, row));
            }
        }
        for (node, row) in &numeric {
            check_row(node, row, self.max_name_len).map_err(StoreError::Rejected)?;
            rows.push((node, row));
        }
        if rows.is_empty() {
            super::skipped_text::count(self.name(), skipped);
            return Ok(());
        }
        let result = self.send_rows(&rows);
        if result.is_ok() {
            super::skipped_text::count(self.name(), skipped);
        }
        if self.buf.capacity() > KEEP_BUFFER_BYTES.max(self.init_buf_size) {
            self.buf = Buffer::with_init_capacity_and_max_name_len(
                self.protocol_version,
                self.init_buf_size,
                self.max_name_len,
            );
        }
        result
    }
}

/// Runs every statement of `sql` (statements end with `;`; `--` and `/* */`
/// comments are dropped) through QuestDB's HTTP SQL endpoint `/exec`, in
/// order, at the address and with the credentials and TLS settings of `conf`
/// (an `http::` or `https::` configuration string). Stops at the first
/// statement the server refuses. Meant for [`SCHEMA_SQL`], whose statements
/// are all `CREATE TABLE IF NOT EXISTS`: applying it again changes nothing.
pub fn apply_schema(conf: &str, sql: &str) -> Result<(), SchemaError> {
    let endpoint = SqlEndpoint::new(conf)?;
    let statements = split_sql(sql);
    if statements.is_empty() {
        return Err(SchemaError::Empty);
    }
    for (i, statement) in statements.iter().enumerate() {
        endpoint.http.exec(i + 1, statement)?;
        tracing::info!(
            endpoint = endpoint.http.endpoint,
            "applied SQL statement {}/{}: {}",
            i + 1,
            statements.len(),
            statement_head(statement)
        );
    }
    Ok(())
}

/// QuestDB's HTTP SQL endpoint (`/exec`) at the address, with the
/// credentials and TLS settings of a configuration string: what applies and
/// checks the schema ([`apply_schema`], [`super::questdb_schema`]).
pub struct SqlEndpoint {
    http: Http,
}

impl fmt::Debug for SqlEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlEndpoint")
            .field("endpoint", &self.http.endpoint)
            .finish_non_exhaustive()
    }
}

impl SqlEndpoint {
    /// Checks `conf`, which must be `http::` or `https::` (the SQL endpoint is
    /// HTTP). Connects to nothing.
    pub fn new(conf: &str) -> Result<Self, SchemaError> {
        let settings = Settings::parse(conf)?;
        if !settings.scheme.is_http() {
            return Err(QuestDbConfigError::new(format!(
                "the schema is applied and checked through QuestDB's HTTP SQL endpoint (/exec); \
                 give an http:: or https:: configuration for the same server (port 9000 by \
                 default), not {}::",
                settings.scheme.name()
            ))
            .into());
        }
        Ok(SqlEndpoint {
            http: Http::new(&settings),
        })
    }

    /// `scheme://host:port`, for messages.
    pub fn endpoint(&self) -> &str {
        &self.http.endpoint
    }

    /// Runs one statement and returns the server's JSON answer as text.
    pub fn query(&self, sql: &str) -> Result<String, SchemaError> {
        self.http.query(1, sql)
    }
}

/// Splits SQL text into statements: at `;` outside quotes, comments
/// removed, runs of white space made one space.
pub(crate) fn split_sql(sql: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Single,
        Double,
        Line,
        Block,
    }
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut state = State::Code;
    let mut chars = sql.chars().peekable();
    let push_space = |s: &mut String| {
        if !s.is_empty() && !s.ends_with(' ') {
            s.push(' ');
        }
    };
    while let Some(c) = chars.next() {
        match state {
            State::Code => match c {
                '-' if chars.peek() == Some(&'-') => {
                    chars.next();
                    state = State::Line;
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    state = State::Block;
                }
                ';' => {
                    let statement = current.trim().to_string();
                    if !statement.is_empty() {
                        statements.push(statement);
                    }
                    current.clear();
                }
                '\'' => {
                    current.push(c);
                    state = State::Single;
                }
                '"' => {
                    current.push(c);
                    state = State::Double;
                }
                c if c.is_whitespace() => push_space(&mut current),
                c => current.push(c),
            },
            State::Single | State::Double => {
                current.push(c);
                if (state == State::Single && c == '\'') || (state == State::Double && c == '"') {
                    state = State::Code;
                }
            }
            State::Line => {
                if c == '\n' {
                    push_space(&mut current);
                    state = State::Code;
                }
            }
            State::Block => {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    push_space(&mut current);
                    state = State::Code;
                }
            }
        }
    }
    let last = current.trim();
    if !last.is_empty() {
        statements.push(last.to_string());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("admin:quest", "YWRtaW46cXVlc3Q="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    fn rejected(e: Failure) -> String {
        match e {
            Failure::Failed {
                error: StoreError::Rejected(m),
                retry: false,
            } => m,
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    fn unavailable(e: Failure) -> (String, bool) {
        match e {
            Failure::Failed {
                error: StoreError::Unavailable(m),
                retry,
            } => (m, retry),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn statuses_map_to_rejected_or_unavailable() {
        let ep = "http://127.0.0.1:9000";
        let json = r#"{"code":"invalid","message":"failed to parse line protocol:errors encountered on line(s):
error in line 1: table: cpu, column: usage_percent; cast error from protocol type: FLOAT to column type: LONG","line":1,"errorId":"abc-1"}"#;
        let m = rejected(classify(400, json, None, ep));
        assert!(m.contains("HTTP 400 Bad Request"), "{m}");
        assert!(m.contains("cast error"), "{m}");
        assert!(!m.contains('\n'), "one line: {m}");
        rejected(classify(422, "bad", None, ep));
        rejected(classify(415, "", None, ep));

        for status in [500, 502, 503, 504, 507, 599] {
            let (m, retry) = unavailable(classify(status, "down", None, ep));
            assert!(retry && m.contains(&status.to_string()), "{m}");
        }
        for status in [408, 421, 429] {
            assert!(unavailable(classify(status, "", None, ep)).1);
        }
        for status in [401, 403, 404] {
            let (m, retry) = unavailable(classify(status, "no", None, ep));
            assert!(!retry, "{m}");
        }
        let (m, _) = unavailable(classify(301, "", Some("https://q:9000/write"), ep));
        assert!(m.contains("https://q:9000/write"), "{m}");
        assert!(matches!(
            classify(413, "too big", None, ep),
            Failure::TooLarge(_)
        ));
        let (m, _) = unavailable(classify(600, "", None, ep));
        assert!(m.contains("600"), "{m}");
    }

    #[test]
    fn server_messages_are_cut_and_kept_on_one_line() {
        let long = "x\n".repeat(5000);
        let m = one_line(&long);
        assert!(m.chars().count() <= MESSAGE_LIMIT + 1);
        assert!(!m.contains('\n'));
        assert_eq!(one_line("  "), "(no message)");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("localhost", 9000).unwrap(), "localhost:9000");
        assert_eq!(parse_addr("10.0.0.1:9001", 9000).unwrap(), "10.0.0.1:9001");
        assert_eq!(parse_addr("[::1]:9001", 9000).unwrap(), "[::1]:9001");
        assert_eq!(parse_addr("[::1]", 9009).unwrap(), "[::1]:9009");
        for bad in [
            "",
            ":9000",
            "host:0",
            "host:70000",
            "host:x",
            "ho st",
            "a/b:9000",
            "user@host",
            "[nope]:1",
            "[::1]9000",
        ] {
            assert!(parse_addr(bad, 9000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sql_is_split_at_semicolons_outside_quotes_and_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE \"a;b\" (x SYMBOL); /* block; */\n\
                   INSERT INTO t VALUES ('it''s; fine');\n  ;\nSELECT 1 -- trailing";
        assert_eq!(
            split_sql(sql),
            vec![
                "CREATE TABLE \"a;b\" (x SYMBOL)",
                "INSERT INTO t VALUES ('it''s; fine')",
                "SELECT 1",
            ]
        );
        assert!(split_sql("-- nothing\n/* at all */ ;").is_empty());
    }

    fn err(conf: &str) -> String {
        match QuestDbStore::new(conf) {
            Ok(s) => panic!("{conf:?} was accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn configurations_are_checked_when_the_store_is_built() {
        QuestDbStore::new("http::addr=127.0.0.1:9000;").unwrap();
        QuestDbStore::new("http::addr=localhost;").unwrap();
        QuestDbStore::new("https::addr=db.example:9000;username=a;password=b;").unwrap();
        QuestDbStore::new("http::addr=h:1;token=abc;request_timeout=500;retry_timeout=0;").unwrap();
        QuestDbStore::new("http::addr=h:1;protocol_version=2;max_buf_size=2048;").unwrap();
        QuestDbStore::new("tcp::addr=127.0.0.1:1;").unwrap();

        assert!(err("nonsense").contains("QuestDB configuration"));
        assert!(err("http::addr=h:1;reqest_timeout=5;").contains("\"reqest_timeout\""));
        assert!(err("ftp::addr=h:1;").contains("unknown transport"));
        assert!(err("ws::addr=h:1;").contains("not supported"));
        assert!(err("http::addr=h:1;protocol_version=auto;").contains("auto"));
        assert!(err("http::addr=h:1;protocol_version=9;").contains("protocol_version"));
        assert!(err("http::request_timeout=5;").contains("addr"));
        assert!(err("http::addr=h:x;").contains("port"));
        assert!(err("http::addr=h:1;request_timeout=abc;").contains("request_timeout"));
        assert!(err("http::addr=h:1;request_timeout=0;").contains("request_timeout"));
        assert!(err("http::addr=h:1;retry_timeout=999999999999;").contains("one day"));
        assert!(err("http::addr=h:1;username=a;").contains("password"));
        assert!(err("http::addr=h:1;tls_roots=/nonexistent.pem;").contains("tls"));
        assert!(err("tcp::addr=h:1;password=x;").contains("\"password\""));
        assert!(err("tcp::addr=[::1]:9009;").contains("IPv6"));
        QuestDbStore::new("http::addr=[::1]:9000;").unwrap();
        assert!(err("http::addr=h:1;token=a\x01;").contains("invalid char"));
        assert!(err("tcp::addr=h:1;username=a;token=b;").contains("token_x"));
        assert!(err("https::addr=h:1;tls_roots=/nonexistent/ca.pem;").contains("ca.pem"));
        // Credentials never appear in messages.
        let secret = err("http::addr=h:1;username=admin;password=hunter2;tls_ca=nope;");
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    /// The type a row-model field has, by its name (the conventions of the
    /// README's "The row model"; `boot_time_seconds` is whole Unix seconds).
    fn expected_type(column: &str) -> &'static str {
        let float = column.ends_with("_per_second")
            || column.ends_with("_percent")
            || column.ends_with("_celsius")
            || column.ends_with("_seconds_total")
            || (column.ends_with("_seconds") && column != "boot_time_seconds")
            || matches!(column, "load1" | "load5" | "load15");
        if column == "message" {
            // node_events' text.
            "VARCHAR"
        } else if float {
            "DOUBLE"
        } else {
            "LONG"
        }
    }

    #[test]
    fn the_schema_follows_the_row_model() {
        for statement in split_sql(SCHEMA_SQL) {
            let open = statement.find('(').unwrap();
            let close = statement.find(") TIMESTAMP(ts) PARTITION BY ").unwrap();
            let table = statement[..open].trim().rsplit(' ').next().unwrap();
            let mut columns = Vec::new();
            for def in statement[open + 1..close].split(',') {
                let mut words = def.split_whitespace();
                let name = words.next().unwrap().trim_matches('"');
                let kind = words.next().unwrap();
                columns.push((name, kind));
            }
            assert_eq!(columns[0], ("ts", "TIMESTAMP"), "{table}");
            assert_eq!(columns[1], ("node", "SYMBOL"), "{table}");
            let mut names: Vec<&str> = columns.iter().map(|c| c.0).collect();
            names.sort_unstable();
            assert!(
                names.windows(2).all(|w| w[0] != w[1]),
                "{table}: a duplicate column"
            );
            for &(name, kind) in &columns[2..] {
                if kind != "SYMBOL" {
                    assert_eq!(kind, expected_type(name), "{table}.{name}");
                }
            }
            let tail = &statement[close..];
            let keys_at = tail.find(" DEDUP UPSERT KEYS(").unwrap();
            let clauses = &tail[..keys_at];
            assert!(
                clauses == ") TIMESTAMP(ts) PARTITION BY DAY TTL 30 DAYS WAL"
                    || ((table == "\"node_info\"" || table == "\"node_events\"")
                        && clauses == ") TIMESTAMP(ts) PARTITION BY MONTH TTL 2 YEARS WAL"),
                "{table}: {clauses}"
            );
            let keys = tail[keys_at + 19..].trim_end_matches(')');
            let keys: Vec<&str> = keys.split(", ").collect();
            assert_eq!(&keys[..2], ["ts", "node"], "{table}");
            for key in &keys[2..] {
                assert!(columns.contains(&(key, "SYMBOL")), "{table}: key {key}");
            }
        }
    }

    #[test]
    fn the_embedded_schema_splits_into_one_create_per_table() {
        let statements = split_sql(SCHEMA_SQL);
        let tables: Vec<&str> = statements
            .iter()
            .map(|s| {
                let rest = s
                    .strip_prefix("CREATE TABLE IF NOT EXISTS \"")
                    .unwrap_or_else(|| panic!("not a CREATE TABLE IF NOT EXISTS: {s}"));
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        let mut sorted = tables.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "cpu",
                "disk",
                "filesystem",
                "hostpulse_self",
                "hwmon",
                "load",
                "memory",
                "netstat",
                "network",
                "node_events",
                "node_info",
                "pressure",
                "processes",
                "swap",
                "system",
                "vmstat"
            ]
        );
    }
}
