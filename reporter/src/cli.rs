//! The reporter's command line; every flag has an `HOSTPULSE_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// hostpulse reporter: accepts gatherer streams over gRPC, stores every batch
/// before acknowledging it, pushes configuration to gatherers.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "reporter",
    version,
    max_term_width = 100,
    after_help = concat!(
        "Spool tools: `reporter spool inspect FILE`, `reporter spool replay FILE --spool-dir DIR` (see `reporter spool --help`).\n\n",
        hostpulse_ops::exit_codes_help!()
    )
)]
pub struct Args {
    /// Address to serve gRPC on (Ingest, Admin, health, reflection).
    #[arg(long, env = "HOSTPULSE_LISTEN", default_value = "0.0.0.0:8675")]
    pub listen: SocketAddr,

    /// Where acknowledged batches go (formerly `--sink`, still accepted).
    #[arg(
        long,
        visible_alias = "sink",
        env = "HOSTPULSE_INGEST",
        value_enum,
        default_value_t = Ingest::Spool
    )]
    pub ingest: Ingest,

    /// The spool directory (one per replica: it is locked while in use).
    #[arg(long, env = "HOSTPULSE_SPOOL_DIR", default_value = "./spool")]
    pub spool_dir: PathBuf,

    /// Most bytes the spool holds. At the limit the reporter stops
    /// acknowledging (gatherers keep their batches) and reports NOT_SERVING.
    #[arg(long, env = "HOSTPULSE_SPOOL_MAX_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub spool_max_bytes: u64,

    /// The embedded SQLite store: a database file, or `none`. The default
    /// store unless --questdb is given [default: ./hostpulse.db].
    #[arg(long, env = "HOSTPULSE_SQLITE")]
    pub sqlite: Option<String>,

    /// How long the SQLite store keeps rows (pruned in the background; 0s keeps everything).
    #[arg(long, env = "HOSTPULSE_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// Drain into QuestDB: any questdb-rs configuration string, e.g.
    /// `http::addr=questdb:9000;` (https, tcp, tcps, auth and TLS keys too).
    /// protocol_version=1 is used unless the string names one.
    #[arg(long, env = "HOSTPULSE_QUESTDB")]
    pub questdb: Option<String>,

    /// Create missing QuestDB tables (deploy/questdb/schema.sql through
    /// QuestDB's HTTP /exec), then verify them: the same as --questdb-schema apply.
    #[arg(
        long,
        env = "HOSTPULSE_QUESTDB_APPLY_SCHEMA",
        requires = "questdb",
        conflicts_with = "questdb_schema"
    )]
    pub questdb_apply_schema: bool,

    /// `verify`: QuestDB is written only while every table of the schema exists
    /// with DEDUP and designated timestamp ts (checked at start, after failures
    /// and every minute; until then the spool keeps the rows). `apply`: create
    /// missing tables first. `off`: no check (ILP servers other than QuestDB).
    #[arg(long, env = "HOSTPULSE_QUESTDB_SCHEMA", default_value = "verify", value_parser = ["apply", "verify", "off"])]
    pub questdb_schema: String,

    /// Also write every row as a JSON line: `stdout` or a file path (fsync'ed).
    #[arg(long, env = "HOSTPULSE_JSONL")]
    pub jsonl: Option<String>,

    /// How long SIGTERM waits for the stores to drain the spool before exiting
    /// (what is left is drained at the next start).
    #[arg(long, env = "HOSTPULSE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How often the configuration file is checked for changes (a Kubernetes
    /// ConfigMap update, an edit); a change is reloaded as on SIGHUP.
    #[arg(long, env = "HOSTPULSE_CONFIG_CHECK_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub config_check_interval: Duration,

    /// This replica's name in Welcome messages [default: the hostname].
    #[arg(long, env = "HOSTPULSE_REPORTER_ID")]
    pub reporter_id: Option<String>,

    /// Maximum concurrent gatherer streams on this replica.
    #[arg(long, env = "HOSTPULSE_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,

    /// Largest message a gatherer may send, in bytes.
    #[arg(long, env = "HOSTPULSE_MAX_MESSAGE_BYTES", default_value_t = 4 << 20)]
    pub max_message_bytes: usize,

    /// Row keys plus series one stream may define (a gatherer on a large
    /// host defines a few thousand; each costs ~150-400 bytes of --memory-budget).
    #[arg(
        long,
        env = "HOSTPULSE_MAX_SERIES_PER_STREAM",
        default_value_t = 20_000
    )]
    pub max_series_per_stream: usize,

    /// Memory all streams together may hold in definitions and batches in
    /// flight (estimated heap bytes); past it the stream asking for more gets
    /// RESOURCE_EXHAUSTED and the others go on. The default suits a 1 GiB pod.
    #[arg(long, env = "HOSTPULSE_MEMORY_BUDGET", default_value = "640MiB", value_parser = parse_size)]
    pub memory_budget: u64,

    /// How long a new stream may take to send its Hello; until then it holds
    /// a place under --max-pending-streams, not a --max-streams slot.
    #[arg(long, env = "HOSTPULSE_HELLO_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub hello_timeout: Duration,

    /// Most streams waiting for their Hello at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "HOSTPULSE_MAX_PENDING_STREAMS", default_value_t = 1_000)]
    pub max_pending_streams: usize,

    /// How long a new connection may take to complete its TLS handshake
    /// (with --tls-cert) and send the HTTP/2 preface before it is closed.
    #[arg(long, env = "HOSTPULSE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Most connections in their handshake at once; more are closed at
    /// accept [default: a quarter of the open-file limit, at most 1024].
    #[arg(long, env = "HOSTPULSE_MAX_PENDING_CONNECTIONS")]
    pub max_pending_connections: Option<usize>,

    /// Samples older than this (by the reporter's clock) are dropped at
    /// ingest, counted and reported in the Ack; the rest of the batch is kept.
    /// Cover the longest outage a gatherer's buffer rides out.
    #[arg(long, env = "HOSTPULSE_MAX_SAMPLE_AGE", default_value = "30d", value_parser = parse_duration)]
    pub max_sample_age: Duration,

    /// Samples further ahead of the reporter's clock than this are dropped
    /// at ingest, counted and reported in the Ack.
    #[arg(long, env = "HOSTPULSE_MAX_CLOCK_SKEW", default_value = "10m", value_parser = parse_duration)]
    pub max_clock_skew: Duration,

    /// Tables gatherers may write besides the hostpulse families and
    /// hostpulse_self, comma-separated ([a-z0-9_]{1,64} each); a row of any
    /// other table is refused with INVALID_ARGUMENT (empty: none).
    #[arg(long, env = "HOSTPULSE_CUSTOM_TABLES", default_value = "", value_parser = crate::admission::parse_custom_tables)]
    pub custom_tables: crate::admission::CustomTables,

    /// A stream silent this long is ended (must exceed the gatherers' interval).
    #[arg(long, env = "HOSTPULSE_IDLE_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Streams and connections are recycled after about this age (each stream
    /// at a random 85-100% of it), so gatherers spread across replicas.
    #[arg(long, env = "HOSTPULSE_MAX_CONNECTION_AGE", default_value = "15m", value_parser = parse_duration)]
    pub max_connection_age: Duration,

    /// Grace period for requests on a connection past its age.
    #[arg(long, env = "HOSTPULSE_MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,

    /// How long SIGTERM waits for streams to end (each ends after its current
    /// batch; Tail streams and streams that never sent Hello do not) before
    /// closing their connections and draining the spool (--drain-timeout).
    #[arg(long, env = "HOSTPULSE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Serve TLS with this certificate chain (PEM, leaf first). Re-read on
    /// SIGHUP and when the file changes; new connections use the new one
    /// [default: plaintext].
    #[arg(long, env = "HOSTPULSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HOSTPULSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: calls other than health and reflection need a client
    /// certificate issued by one of these CAs (PEM); others get UNAUTHENTICATED.
    #[arg(long, env = "HOSTPULSE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Calls other than health and reflection need `authorization: Bearer
    /// <token>` with a token that is a line of this file (several lines:
    /// rotation; `# comments`; `TOKEN node=web-*` binds a token to node ids).
    /// Re-read on SIGHUP and when the file changes.
    #[arg(long, env = "HOSTPULSE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Which node ids a stream's credentials may claim in Hello. `auto`: a
    /// client certificate allows its CN and DNS subjectAltNames, a token line
    /// with `node=` its patterns, others any node; `require`: also refuse
    /// credentials that bind nothing; `off`: no check (one certificate
    /// shared by all nodes). Refusals get PERMISSION_DENIED.
    #[arg(long, env = "HOSTPULSE_NODE_BINDING", value_enum, default_value_t = crate::identity::Binding::Auto)]
    pub node_binding: crate::identity::Binding,

    /// Apply the QuestDB schema (--questdb required) and exit: 0 once every
    /// statement succeeded, 1 otherwise (a Kubernetes Job retries). Nothing is served.
    #[arg(long, env = "HOSTPULSE_APPLY_SCHEMA_AND_EXIT", requires = "questdb")]
    pub apply_schema_and_exit: bool,

    /// How often the reporter writes its own metrics into the stores (table
    /// `hostpulse_self`, component `reporter`), through the spool like any batch.
    #[arg(long, env = "HOSTPULSE_SELF_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub self_interval: Duration,

    /// Configuration file (its top-level keys are these flags; its
    /// `[gatherers]` table is pushed to gatherers and reloaded on SIGHUP and
    /// on change), admin port, logs and traces.
    #[command(flatten)]
    pub ops: hostpulse_ops::cli::OpsArgs,
}

impl Args {
    /// What a batch may contain, from `--max-sample-age`, `--max-clock-skew`
    /// and `--custom-tables`.
    pub fn admission_options(&self) -> crate::admission::AdmissionOptions {
        crate::admission::AdmissionOptions {
            max_sample_age: self.max_sample_age,
            max_clock_skew: self.max_clock_skew,
            custom_tables: self.custom_tables.0.clone(),
        }
    }
}

/// `--ingest`: what the reporter does with a batch before acknowledging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ingest {
    /// Every batch is fsync'ed to the disk spool before it is acknowledged,
    /// then drained into the stores (--sqlite, --questdb, --jsonl).
    Spool,
    /// Acknowledge and discard, storing nothing (benchmarks of the stream
    /// path). `null` is the old name.
    #[value(alias = "null")]
    Discard,
}

/// Sizes like `1073741824`, `512MiB`, `1GiB`, `64M` (K/M/G/T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1GiB, 512MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
    };
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 15m)"))?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
