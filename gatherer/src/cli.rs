//! The command line. Every flag also reads an `HOSTPULSE_*` environment
//! variable, so a DaemonSet can configure the gatherer without arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hostpulse_proto::rules;

use crate::collect::patterns::Patterns;
use crate::collect::{
    DEFAULT_DISK_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNTPOINTS_EXCLUDE, Family, Settings,
};
use crate::roots::Roots;

/// hostpulse gatherer: samples this host's /proc and /sys every interval.
///
/// Without a reporter it prints one JSON object per row on stdout
/// (serverless mode): {"table","ts","node","tags","fields"}.
#[derive(Debug, Parser)]
#[command(
    name = "gatherer",
    version,
    max_term_width = 100,
    after_help = hostpulse_ops::exit_codes_help!()
)]
pub struct Args {
    /// Collect one round (waiting one interval first, so rates exist), print
    /// it as JSON lines and exit.
    #[arg(long, env = "HOSTPULSE_ONCE", conflicts_with = "stdout")]
    pub once: bool,

    /// Serverless mode: print JSON lines every interval until stopped. This is
    /// what the gatherer does when no reporter is configured.
    #[arg(long, env = "HOSTPULSE_STDOUT")]
    pub stdout: bool,

    /// Stream to these reporters (comma-separated URLs, http:// or https://,
    /// used in turn; a name resolving to several addresses uses each). Without
    /// it the gatherer prints JSON lines (serverless mode).
    #[arg(long, env = "HOSTPULSE_REPORTER", value_delimiter = ',', conflicts_with_all = ["once", "stdout"])]
    pub reporter: Vec<String>,

    /// Directory where unacknowledged batches are kept on disk (while the
    /// reporter is unreachable, when memory is full, and across restarts).
    /// Without it they are kept in memory only.
    #[arg(long, env = "HOSTPULSE_BUFFER_DIR")]
    pub buffer_dir: Option<PathBuf>,

    /// Most bytes of unacknowledged batches kept (memory and disk together);
    /// beyond it the oldest are dropped and counted.
    #[arg(long, env = "HOSTPULSE_BUFFER_MAX_BYTES", default_value_t = 64 << 20)]
    pub buffer_max_bytes: u64,

    /// Most bytes of unacknowledged batches kept in memory before they spill
    /// to --buffer-dir.
    #[arg(long, env = "HOSTPULSE_BUFFER_MEMORY_BYTES", default_value_t = 4 << 20)]
    pub buffer_memory_bytes: u64,

    /// Time between two collections (humantime: 500ms, 10s, 1m).
    #[arg(long, env = "HOSTPULSE_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub interval: Duration,

    /// This node's id in every row [default: the host's machine-id, else its hostname].
    #[arg(long, env = "HOSTPULSE_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Families to collect, comma-separated, or "all": cpu, load, memory,
    /// swap, vmstat, network, netstat, disk, filesystem, pressure, processes,
    /// system, hwmon, node_info.
    #[arg(long, env = "HOSTPULSE_COLLECTORS", default_value = "all", value_parser = parse_families)]
    pub collectors: FamilyList,

    /// A static tag added to every row, KEY=VALUE (repeatable; in the
    /// environment, comma-separated): region, zone, cluster...
    #[arg(long = "label", env = "HOSTPULSE_LABELS", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Where the host's procfs is mounted (/host/proc in a DaemonSet).
    #[arg(long, env = "HOSTPULSE_PROCFS", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Where the host's sysfs is mounted (/host/sys in a DaemonSet).
    #[arg(long, env = "HOSTPULSE_SYSFS", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// Where the host's root filesystem is mounted (/host/root in a DaemonSet):
    /// os-release, machine-id and the mount points statvfs is called on.
    #[arg(long, env = "HOSTPULSE_ROOTFS", default_value = "/")]
    pub rootfs: PathBuf,

    /// Block devices not to report (comma-separated globs).
    #[arg(long, env = "HOSTPULSE_DISK_EXCLUDE", default_value = DEFAULT_DISK_EXCLUDE)]
    pub disk_exclude: String,

    /// Report partitions as well as whole disks.
    #[arg(long, env = "HOSTPULSE_DISK_PARTITIONS")]
    pub disk_partitions: bool,

    /// Filesystem types not to report (comma-separated globs).
    #[arg(long, env = "HOSTPULSE_FS_TYPES_EXCLUDE", default_value = DEFAULT_FS_TYPES_EXCLUDE)]
    pub fs_types_exclude: String,

    /// Mount points not to report (comma-separated globs; * crosses /).
    #[arg(long, env = "HOSTPULSE_MOUNTPOINTS_EXCLUDE", default_value = DEFAULT_MOUNTPOINTS_EXCLUDE)]
    pub mountpoints_exclude: String,

    /// Network interfaces not to report (comma-separated globs, e.g. veth*).
    #[arg(long, env = "HOSTPULSE_NETWORK_EXCLUDE", default_value = "")]
    pub network_exclude: String,

    /// How long statvfs may block on one mount (a dead NFS server) before that
    /// mount is skipped until it answers again.
    #[arg(long, env = "HOSTPULSE_STATFS_TIMEOUT", default_value = "1s", value_parser = parse_interval)]
    pub statfs_timeout: Duration,

    /// How often the host facts (node_info) are re-read to notice a change.
    #[arg(long, env = "HOSTPULSE_FACTS_REFRESH", default_value = "1m", value_parser = parse_interval)]
    pub facts_refresh: Duration,

    /// How often the processes family lists the process directories of
    /// --procfs to count processes (its `total`); the rows in between carry
    /// the last count. Listing /proc is the costliest read of a cycle.
    #[arg(long, env = "HOSTPULSE_PROCESS_COUNT_EVERY", default_value = "30s", value_parser = parse_interval)]
    pub process_count_every: Duration,

    /// Stop after this many cycles (benchmarks and tests).
    #[arg(long, env = "HOSTPULSE_CYCLES")]
    pub cycles: Option<u64>,

    /// CA certificates (PEM) that sign the reporter's certificate, for
    /// https:// reporters with a private CA. Re-read at each reconnection
    /// [default: the system's roots].
    #[arg(long, env = "HOSTPULSE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// This gatherer's client certificate (PEM), for reporters that require
    /// mutual TLS. Re-read at each reconnection, so a rotated one needs no restart.
    #[arg(long, env = "HOSTPULSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "HOSTPULSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A file whose first non-empty line is the reporter's bearer token (sent
    /// as `authorization: Bearer <token>`). Re-read at each reconnection.
    #[arg(long, env = "HOSTPULSE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Configuration file, admin port, logs and traces.
    #[command(flatten)]
    pub ops: hostpulse_ops::cli::OpsArgs,
}

/// The parsed `--collectors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyList(pub Vec<Family>);

impl Args {
    /// The collection settings these arguments describe.
    pub fn settings(&self) -> Settings {
        Settings {
            roots: self.roots(),
            disk_exclude: Patterns::parse(&self.disk_exclude),
            disk_partitions: self.disk_partitions,
            fs_types_exclude: Patterns::parse(&self.fs_types_exclude),
            mountpoints_exclude: Patterns::parse(&self.mountpoints_exclude),
            network_exclude: Patterns::parse(&self.network_exclude),
            statfs_timeout: self.statfs_timeout,
            facts_refresh: self.facts_refresh,
            process_count_every: self.process_count_every,
            shared_files: Default::default(),
        }
    }

    /// The three roots.
    pub fn roots(&self) -> Roots {
        Roots {
            procfs: self.procfs.clone(),
            sysfs: self.sysfs.clone(),
            rootfs: self.rootfs.clone(),
        }
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 1m)"))?;
    if d < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(d)
}

fn parse_families(s: &str) -> Result<FamilyList, String> {
    let list = Family::parse_list(s).map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Err("names no collector".into());
    }
    Ok(FamilyList(list))
}

/// Tag names the families use, plus the row model's own keys: a label may not
/// shadow any of them, or a row would carry two values for one column.
pub const RESERVED_TAGS: &[&str] = &[
    // SQLite's implicit row id names: a column of that name would shadow it.
    "rowid",
    "oid",
    "_rowid_",
    "table",
    "ts",
    "node",
    "tags",
    "fields",
    "cpu",
    "device",
    "interface",
    "mountpoint",
    "fstype",
    "resource",
    "chip",
    "sensor",
    "hostname",
    "kernel",
    "os_name",
    "os_version",
    "os_pretty_name",
    "cpu_model",
    "arch",
    "mac",
    "operstate",
    // hostpulse_self's tags.
    "component",
    "store",
];

/// Longest label name the stores accept.
pub const MAX_LABEL_NAME: usize = rules::MAX_NAME_BYTES;

/// A node id the reporter accepts ([`rules::check_node_id`]).
fn parse_node_id(s: &str) -> Result<String, String> {
    rules::check_node_id(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let valid_key = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_key {
        return Err(format!(
            "label name {key:?} must start with a letter or _ and hold only letters, digits and _"
        ));
    }
    if key.len() > MAX_LABEL_NAME {
        return Err(format!(
            "label name {key:?} is longer than {MAX_LABEL_NAME} characters"
        ));
    }
    rules::check_name("label", key).map_err(|e| e.to_string())?;
    // SQLite column names ignore case: `CPU` would collide with `cpu`.
    if RESERVED_TAGS.iter().any(|r| r.eq_ignore_ascii_case(key)) {
        return Err(format!(
            "label name {key:?} is already a tag or key of the row model"
        ));
    }
    if value.is_empty() {
        return Err(format!("label {key:?} has an empty value"));
    }
    if !rules::is_normal_tag_value(value) {
        return Err(format!(
            "label {key:?}: the value holds control characters or is longer than {} bytes",
            rules::MAX_TAG_VALUE_BYTES
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Rejects a label given twice, and more than [`rules::MAX_LABELS`] labels
/// (clap checks each value alone).
pub fn check_labels(labels: &[(String, String)]) -> Result<(), String> {
    if labels.len() > rules::MAX_LABELS {
        return Err(format!(
            "{} labels: at most {} (every row carries them as tags)",
            labels.len(),
            rules::MAX_LABELS
        ));
    }
    for (i, (k, _)) in labels.iter().enumerate() {
        if labels[..i].iter().any(|(other, _)| other == k) {
            return Err(format!("label {k:?} is given more than once"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("gatherer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.interval, Duration::from_secs(10));
        assert_eq!(a.collectors.0.len(), Family::ALL.len());
        assert_eq!(a.roots(), Roots::default());
    }

    #[test]
    fn labels_and_collectors_parse() {
        let a = parse(&[
            "--label",
            "region=eu",
            "--label",
            "zone=b",
            "--collectors",
            "cpu, memory",
        ])
        .unwrap();
        assert_eq!(
            a.labels,
            vec![("region".into(), "eu".into()), ("zone".into(), "b".into())]
        );
        assert_eq!(a.collectors.0, vec![Family::Cpu, Family::Memory]);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = parse(&["--collectors", "cpu,gpu"]).unwrap_err().to_string();
        assert!(err.contains("unknown collector \"gpu\""), "{err}");
        let err = parse(&["--label", "cpu=1"]).unwrap_err().to_string();
        assert!(err.contains("already a tag"), "{err}");
        assert!(parse(&["--label", "nope"]).is_err());
        assert!(parse(&["--label", "9x=1"]).is_err());
        assert!(
            parse(&["--label", "CPU=1"]).is_err(),
            "case-insensitive clash with a tag"
        );
        assert!(parse(&["--label", "rowid=1"]).is_err());
        assert!(parse(&["--label", &format!("{}=1", "x".repeat(65))]).is_err());
        assert!(parse(&["--interval", "0s"]).is_err());
        assert!(parse(&["--interval", "soon"]).is_err());
        assert!(check_labels(&[("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    }

    #[test]
    fn labels_and_node_ids_follow_the_reporters_rules() {
        for (label, why) in [
            ("timestamp=1", "reserved"),
            ("Component=x", "already a tag"),
            ("store=x", "already a tag"),
            ("a=b\nc", "control characters"),
        ] {
            let err = parse(&["--label", label]).unwrap_err().to_string();
            assert!(err.contains(why), "{label:?}: {err}");
        }
        let long = format!("a={}", "v".repeat(rules::MAX_TAG_VALUE_BYTES + 1));
        assert!(parse(&["--label", &long]).is_err());
        let many: Vec<(String, String)> = (0..=rules::MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".into()))
            .collect();
        assert!(check_labels(&many[..rules::MAX_LABELS]).is_ok());
        assert!(check_labels(&many).unwrap_err().contains("at most 16"));
        let err = parse(&["--node-id", " web-1"]).unwrap_err().to_string();
        assert!(err.contains("leading or trailing whitespace"), "{err}");
        assert!(parse(&["--node-id", "web-1"]).is_ok());
    }
}
