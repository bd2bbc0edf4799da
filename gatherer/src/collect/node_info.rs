//! `node_info`: the host's facts, reported at start and again when they change.
//!
//! Table `node_info`. The facts are read at the first cycle and re-read at most
//! every `--facts-refresh`; between refreshes the collector reads nothing. Rows
//! are pushed at the first read and then only when a fact changed (a kernel
//! update after a reboot, memory hot-plugged, an interface that appeared or
//! changed state); then every row is pushed again, so the latest set of rows
//! is always the whole picture. Boot time moves by a second or two as the
//! clock is disciplined (the kernel derives `btime` from the wall clock), so a
//! change of at most 2 s is not a change.
//!
//! Missing facts are omitted, never fatal; the family is disabled only when
//! neither the kernel release nor the hostname can be read.
//!
//! **Host row**, tags (each omitted when unknown):
//!
//! - `hostname`: `/proc/sys/kernel/hostname` (the UTS name of the gatherer's
//!   namespace: run it in the host's), else `/etc/hostname`.
//! - `kernel`: the kernel release, `/proc/sys/kernel/osrelease` (`6.1.0-18-amd64`).
//! - `os_name`, `os_version`, `os_pretty_name`: `NAME`, `VERSION_ID` and
//!   `PRETTY_NAME` of `/etc/os-release`, else `/usr/lib/os-release`.
//! - `cpu_model`: `model name` of `/proc/cpuinfo`, else the `Processor`,
//!   `cpu model`, `uarch` or `cpu` line other architectures print; on arm64,
//!   which prints none of these, the implementer and part (`ARM Neoverse-N1`).
//! - `arch`: `/proc/sys/kernel/arch` (`x86_64`, `aarch64`; Linux 6.1 and later).
//!
//! Host row fields (integers, each omitted when unknown):
//!
//! - `logical_cores`: CPUs the kernel runs on (`processor` entries of cpuinfo).
//! - `physical_cores`: distinct (package, core) pairs, from cpuinfo's
//!   `physical id`/`core id`, else sysfs `cpuN/topology`, else `logical_cores`.
//! - `sockets`: distinct physical packages, from the same sources.
//! - `memory_total_bytes`: usable RAM (`MemTotal` of `/proc/meminfo`).
//! - `boot_time_seconds`: boot time as Unix seconds (`btime` of `/proc/stat`).
//!
//! **One row per network interface** of `/sys/class/net` (except those
//! matching `--network-exclude`), tags `interface`, `mac` (the `address`
//! attribute; omitted when empty) and `operstate` (`up`, `down`, `unknown`,
//! `lowerlayerdown`, ...); fields `mtu` (bytes), `speed_mbps` (negotiated link
//! speed in Mbit/s; omitted when the driver does not know it) and `carrier`
//! (1 when the link has carrier, 0 when not; omitted when the interface is
//! administratively down, where the kernel refuses to answer).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::CollectError;
use super::patterns::Patterns;
use super::{Collector, Cycle, Family, Settings, source};
use crate::roots::Roots;
use crate::row::Row;

/// A boot time moving by at most this much is clock discipline, not a reboot.
const BOOT_TIME_JITTER_SECONDS: u64 = 2;

/// One network interface's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceFacts {
    /// The kernel's interface name.
    pub name: String,
    /// Hardware address (`aa:bb:cc:dd:ee:ff`); `None` when absent or empty.
    pub mac: Option<String>,
    /// RFC 2863 operational state as the kernel names it.
    pub operstate: Option<String>,
    /// MTU in bytes.
    pub mtu: Option<u64>,
    /// Link speed in Mbit/s; `None` when unknown (the kernel's `-1`).
    pub speed_mbps: Option<u64>,
    /// Whether the link has carrier; `None` when the kernel does not say.
    pub carrier: Option<bool>,
}

/// Everything the gatherer knows about its host; absent facts are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Hostname.
    pub hostname: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// os-release `NAME`.
    pub os_name: Option<String>,
    /// os-release `VERSION_ID`.
    pub os_version: Option<String>,
    /// os-release `PRETTY_NAME`.
    pub os_pretty_name: Option<String>,
    /// CPU model name.
    pub cpu_model: Option<String>,
    /// Machine architecture.
    pub arch: Option<String>,
    /// Logical CPUs.
    pub logical_cores: Option<u64>,
    /// Physical cores.
    pub physical_cores: Option<u64>,
    /// CPU packages.
    pub sockets: Option<u64>,
    /// Usable RAM in bytes.
    pub memory_total_bytes: Option<u64>,
    /// Boot time, Unix seconds.
    pub boot_time_seconds: Option<u64>,
    /// Network interfaces, sorted by name.
    pub interfaces: Vec<InterfaceFacts>,
}

/// The three os-release values reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `NAME`.
    pub name: Option<String>,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

/// Parses os-release(5): `KEY=value` lines with shell-style quoting (double
/// quotes with `\"`, `\\`, `\$`, `` \` `` escapes, single quotes taken
/// literally, backslash escapes outside quotes). Comments, blank and malformed
/// lines are skipped; a later assignment wins; empty values are `None`. Never
/// fails: os-release is optional.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let slot = match key.trim() {
            "NAME" => &mut out.name,
            "VERSION_ID" => &mut out.version_id,
            "PRETTY_NAME" => &mut out.pretty_name,
            _ => continue,
        };
        let value = shell_unquote(raw);
        *slot = (!value.is_empty()).then_some(value);
    }
    out
}

/// One shell word's value, as systemd's env-file reader understands it
/// (whitespace inside an unquoted value is kept; an unterminated quote runs
/// to the end of the line).
fn shell_unquote(raw: &str) -> String {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = String::with_capacity(raw.len());
    let mut quote = Quote::None;
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match (&quote, c) {
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '\\') => out.extend(chars.next()),
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::Double, '\\') => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            (_, c) => out.push(c),
        }
    }
    out
}

/// What `/proc/cpuinfo` says about the CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfoSummary {
    /// The model name (see the module documentation for the keys tried).
    pub model: Option<String>,
    /// `processor` entries (s390's `processor N:` lines count too).
    pub logical: u64,
    /// Distinct (`physical id`, `core id`) pairs; 0 when cpuinfo has none.
    pub cores: u64,
    /// Distinct `physical id`s; 0 when cpuinfo has none.
    pub packages: u64,
}

/// Summarises `/proc/cpuinfo` of any architecture. Procfs's `CpuInfo` is not
/// used: it drops lines before each block's `processor` line (arm32's
/// `Processor`, s390's header) and asserts on odd input. Never fails.
pub fn parse_cpuinfo(text: &str) -> CpuInfoSummary {
    // Lower rank wins: `model name` anywhere beats `cpu` anywhere.
    const MODEL_KEYS: [&str; 5] = ["model name", "Processor", "cpu model", "uarch", "cpu"];
    let mut model: Option<(usize, &str)> = None;
    let (mut implementer, mut part) = (None, None);
    let mut logical = 0u64;
    let mut cores = BTreeSet::new();
    let mut packages = BTreeSet::new();
    // The current block's (physical id, core id).
    let mut block: (Option<&str>, Option<&str>) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "processor" || is_s390_processor(key) {
            flush(&mut block, &mut cores);
            logical += 1;
            continue;
        }
        match key {
            "physical id" => {
                packages.insert(value);
                block.0 = Some(value);
            }
            "core id" => block.1 = Some(value),
            "CPU implementer" => {
                implementer = implementer.or(Some(value));
            }
            "CPU part" => part = part.or(Some(value)),
            _ => {
                let rank = MODEL_KEYS.iter().position(|k| *k == key);
                if let Some(rank) = rank.filter(|_| !value.is_empty()) {
                    if model.is_none_or(|(r, _)| rank < r) {
                        model = Some((rank, value));
                    }
                }
            }
        }
    }
    flush(&mut block, &mut cores);
    let model = match model {
        Some((_, m)) => Some(m.split_whitespace().collect::<Vec<_>>().join(" ")),
        None => implementer.zip(part).and_then(|(i, p)| arm_model(i, p)),
    };
    CpuInfoSummary {
        model,
        logical,
        cores: cores.len() as u64,
        packages: packages.len() as u64,
    }
}

/// Records the finished block's (package, core) pair.
fn flush<'a>(
    block: &mut (Option<&'a str>, Option<&'a str>),
    cores: &mut BTreeSet<(&'a str, &'a str)>,
) {
    if let (Some(p), Some(c)) = (block.0.take(), block.1.take()) {
        cores.insert((p, c));
    }
}

/// s390 prints one `processor N: version = ...` line per CPU.
fn is_s390_processor(key: &str) -> bool {
    key.strip_prefix("processor ")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Names an arm64 CPU from cpuinfo's `CPU implementer` and `CPU part` (hex),
/// for the cores servers and boards commonly use; others get their numbers.
fn arm_model(implementer: &str, part: &str) -> Option<String> {
    let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let (imp, prt) = (hex(implementer)?, hex(part)?);
    let vendor = match imp {
        0x41 => "ARM",
        0x42 => "Broadcom",
        0x43 => "Cavium",
        0x46 => "Fujitsu",
        0x48 => "HiSilicon",
        0x4e => "NVIDIA",
        0x50 => "APM",
        0x51 => "Qualcomm",
        0x61 => "Apple",
        0x6d => "Microsoft",
        0xc0 => "Ampere",
        _ => return Some(format!("CPU implementer {imp:#x} part {prt:#x}")),
    };
    let name = match (imp, prt) {
        // Microsoft's Cobalt reports Arm's own part numbers.
        (0x41 | 0x6d, 0xd03) => "Cortex-A53",
        (0x41 | 0x6d, 0xd04) => "Cortex-A35",
        (0x41 | 0x6d, 0xd05) => "Cortex-A55",
        (0x41 | 0x6d, 0xd07) => "Cortex-A57",
        (0x41 | 0x6d, 0xd08) => "Cortex-A72",
        (0x41 | 0x6d, 0xd09) => "Cortex-A73",
        (0x41 | 0x6d, 0xd0a) => "Cortex-A75",
        (0x41 | 0x6d, 0xd0b) => "Cortex-A76",
        (0x41 | 0x6d, 0xd0c) => "Neoverse-N1",
        (0x41 | 0x6d, 0xd0d) => "Cortex-A77",
        (0x41 | 0x6d, 0xd40) => "Neoverse-V1",
        (0x41 | 0x6d, 0xd41) => "Cortex-A78",
        (0x41 | 0x6d, 0xd46) => "Cortex-A510",
        (0x41 | 0x6d, 0xd47) => "Cortex-A710",
        (0x41 | 0x6d, 0xd49) => "Neoverse-N2",
        (0x41 | 0x6d, 0xd4f) => "Neoverse-V2",
        (0x41 | 0x6d, 0xd80) => "Cortex-A520",
        (0x41 | 0x6d, 0xd81) => "Cortex-A720",
        (0x41 | 0x6d, 0xd84) => "Neoverse-V3",
        (0x41 | 0x6d, 0xd8e) => "Neoverse-N3",
        (0x43, 0x0af) => "ThunderX2",
        (0x46, 0x001) => "A64FX",
        (0x48, 0xd01) => "Kunpeng-920",
        (0xc0, 0xac3) => "Ampere-1",
        (0xc0, 0xac4) => "Ampere-1a",
        _ => return Some(format!("{vendor} part {prt:#x}")),
    };
    Some(format!("{vendor} {name}"))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// `btime` of `/proc/stat`: boot time in Unix seconds.
pub fn parse_btime(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("btime "))?;
    rest.trim().parse().ok()
}

/// `logical_cores`, `physical_cores` and `sockets` from cpuinfo's summary
/// and, when cpuinfo lacks topology, sysfs's (package, core) pairs.
fn cpu_counts(
    cpuinfo: Option<&CpuInfoSummary>,
    sysfs: impl FnOnce() -> Vec<(String, String)>,
) -> (Option<u64>, Option<u64>, Option<u64>) {
    let logical = cpuinfo.map(|c| c.logical).filter(|&n| n > 0);
    let (mut cores, mut packages) = cpuinfo.map_or((0, 0), |c| (c.cores, c.packages));
    if cores == 0 || packages == 0 {
        let pairs = sysfs();
        if cores == 0 {
            cores = pairs.iter().collect::<BTreeSet<_>>().len() as u64;
        }
        if packages == 0 {
            packages = pairs.iter().map(|p| &p.0).collect::<BTreeSet<_>>().len() as u64;
        }
    }
    let physical = (cores > 0).then_some(cores).or(logical);
    (logical, physical, (packages > 0).then_some(packages))
}

/// (package, core) of every `cpuN` under `{sysfs}/devices/system/cpu`.
fn sysfs_topology(roots: &Roots) -> Vec<(String, String)> {
    let dir = roots.sys("devices/system/cpu");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let topology = entry.path().join("topology");
        let package = source::read_optional(&topology.join("physical_package_id"));
        let core = source::read_optional(&topology.join("core_id"));
        if let (Some(p), Some(c)) = (package, core) {
            out.push((p, c));
        }
    }
    out
}

/// The interfaces of `{sysfs}/class/net`, sorted by name. Entries are
/// symlinks to the device (or directories in older or fixture trees); plain
/// files such as `bonding_masters` are not interfaces.
fn read_interfaces(roots: &Roots) -> Vec<InterfaceFacts> {
    let Ok(entries) = std::fs::read_dir(roots.sys("class/net")) else {
        return Vec::new();
    };
    let mut out: Vec<InterfaceFacts> = entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .map(|e| {
            let dir = e.path();
            let attr = |name: &str| source::read_optional(&dir.join(name));
            InterfaceFacts {
                name: e.file_name().to_string_lossy().into_owned(),
                mac: attr("address").filter(|s| !s.is_empty()),
                operstate: attr("operstate").filter(|s| !s.is_empty()),
                mtu: attr("mtu").and_then(|s| s.parse().ok()),
                speed_mbps: attr("speed")
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|v| u64::try_from(v).ok()),
                carrier: attr("carrier").and_then(|s| match s.as_str() {
                    "0" => Some(false),
                    "1" => Some(true),
                    _ => None,
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A hostname file's name: its first line that is not a comment.
fn hostname_from(text: Option<String>) -> Option<String> {
    let text = text?;
    let name = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    // The kernel's "(none)" means nobody set a hostname.
    (name != "(none)").then(|| name.to_string())
}

fn nonempty(text: Option<String>) -> Option<String> {
    text.filter(|s| !s.is_empty())
}

fn hostname(roots: &Roots) -> Option<String> {
    hostname_from(source::read_optional(&roots.proc("sys/kernel/hostname")))
        .or_else(|| hostname_from(source::read_optional(&roots.root("/etc/hostname"))))
}

/// Reads every fact under `roots`. Never fails: what cannot be read is
/// `None` (or an empty interface list).
pub fn read_facts(roots: &Roots) -> Facts {
    let os = source::read_optional(&roots.root("/etc/os-release"))
        .or_else(|| source::read_optional(&roots.root("/usr/lib/os-release")))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let cpuinfo = source::read_optional(&roots.proc("cpuinfo")).map(|t| parse_cpuinfo(&t));
    let (logical_cores, physical_cores, sockets) =
        cpu_counts(cpuinfo.as_ref(), || sysfs_topology(roots));
    Facts {
        hostname: hostname(roots),
        kernel: nonempty(source::read_optional(&roots.proc("sys/kernel/osrelease"))),
        os_name: os.name,
        os_version: os.version_id,
        os_pretty_name: os.pretty_name,
        cpu_model: cpuinfo.and_then(|c| c.model),
        arch: nonempty(source::read_optional(&roots.proc("sys/kernel/arch"))),
        logical_cores,
        physical_cores,
        sockets,
        memory_total_bytes: source::read_optional(&roots.proc("meminfo"))
            .and_then(|t| parse_mem_total(&t)),
        boot_time_seconds: source::read_optional(&roots.proc("stat")).and_then(|t| parse_btime(&t)),
        interfaces: read_interfaces(roots),
    }
}

/// A valid machine id: 32 hexadecimal characters (systemd writes
/// `uninitialized` during first boot).
fn machine_id(text: Option<String>) -> Option<String> {
    text.filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The node id used when the operator gives none: `/etc/machine-id`, else
/// `/var/lib/dbus/machine-id`, else the hostname, else `unknown-node`.
pub fn default_node_id(roots: &Roots) -> String {
    machine_id(source::read_optional(&roots.root("/etc/machine-id")))
        .or_else(|| {
            machine_id(source::read_optional(
                &roots.root("/var/lib/dbus/machine-id"),
            ))
        })
        .or_else(|| hostname(roots))
        .unwrap_or_else(|| "unknown-node".to_string())
}

/// Pushes the `node_info` rows for `facts`: the host row, then one row per
/// interface in `facts.interfaces`.
pub fn facts_rows(facts: &Facts, ts: i64, out: &mut Vec<Row>) {
    let mut host = Row::new("node_info", ts);
    let tags = [
        ("hostname", &facts.hostname),
        ("kernel", &facts.kernel),
        ("os_name", &facts.os_name),
        ("os_version", &facts.os_version),
        ("os_pretty_name", &facts.os_pretty_name),
        ("cpu_model", &facts.cpu_model),
        ("arch", &facts.arch),
    ];
    for (name, value) in tags {
        if let Some(v) = value {
            host.tags.push((name, v.clone()));
        }
    }
    host.int_opt("logical_cores", facts.logical_cores);
    host.int_opt("physical_cores", facts.physical_cores);
    host.int_opt("sockets", facts.sockets);
    host.int_opt("memory_total_bytes", facts.memory_total_bytes);
    host.int_opt("boot_time_seconds", facts.boot_time_seconds);
    out.push(host);

    for iface in &facts.interfaces {
        let mut row = Row::new("node_info", ts).tag("interface", iface.name.as_str());
        if let Some(mac) = &iface.mac {
            row.tags.push(("mac", mac.clone()));
        }
        if let Some(state) = &iface.operstate {
            row.tags.push(("operstate", state.clone()));
        }
        row.int_opt("mtu", iface.mtu);
        row.int_opt("speed_mbps", iface.speed_mbps);
        row.int_opt("carrier", iface.carrier.map(u64::from));
        out.push(row);
    }
}

/// The `node_info` collector.
pub struct NodeInfo {
    roots: Roots,
    exclude: Patterns,
    refresh: Duration,
    last_read: Option<Instant>,
    last: Option<Facts>,
}

impl NodeInfo {
    /// A collector reading the facts under the configured roots.
    pub fn new(settings: &Settings) -> Self {
        NodeInfo {
            roots: settings.roots.clone(),
            exclude: settings.network_exclude.clone(),
            refresh: settings.facts_refresh,
            last_read: None,
            last: None,
        }
    }
}

impl Collector for NodeInfo {
    fn family(&self) -> Family {
        Family::NodeInfo
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        if let Some(last) = self.last_read {
            if cycle.at.saturating_duration_since(last) < self.refresh {
                return Ok(());
            }
        }
        self.last_read = Some(cycle.at);
        let mut facts = read_facts(&self.roots);
        if facts.kernel.is_none() && facts.hostname.is_none() {
            return Err(CollectError::Unavailable {
                path: self.osrelease_path(),
            });
        }
        facts.interfaces.retain(|i| !self.exclude.matches(&i.name));
        if let Some(last) = &self.last {
            if let (Some(before), Some(now)) = (last.boot_time_seconds, facts.boot_time_seconds) {
                if before.abs_diff(now) <= BOOT_TIME_JITTER_SECONDS {
                    facts.boot_time_seconds = Some(before);
                }
            }
            if *last == facts {
                return Ok(());
            }
        }
        facts_rows(&facts, cycle.ts, out);
        self.last = Some(facts);
        Ok(())
    }
}

impl NodeInfo {
    fn osrelease_path(&self) -> PathBuf {
        self.roots.proc("sys/kernel/osrelease")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn roots(dir: &str) -> Roots {
        Roots::under(format!("{FIXTURES}/{dir}"))
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn reads_the_captured_hosts_facts() {
        let facts = read_facts(&roots("debian12-vm"));
        assert_eq!(facts.hostname, some("vm"));
        assert_eq!(facts.kernel, some("6.18.44-fc-v595"));
        assert_eq!(facts.os_name, some("Debian GNU/Linux"));
        assert_eq!(facts.os_version, some("12"));
        assert_eq!(facts.os_pretty_name, some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(facts.cpu_model, some("Intel(R) Xeon(R) Processor"));
        assert_eq!(facts.arch, None);
        assert_eq!(facts.logical_cores, Some(2));
        assert_eq!(facts.physical_cores, Some(2));
        assert_eq!(facts.sockets, Some(1));
        assert_eq!(facts.memory_total_bytes, Some(24_684_096 * 1024));
        assert_eq!(facts.boot_time_seconds, Some(1_795_560_027));
        let names: Vec<_> = facts.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "ifb0", "ifb1", "lo"]);
        let eth0 = &facts.interfaces[0];
        assert_eq!(eth0.mac, some("02:fc:00:00:00:01"));
        assert_eq!(eth0.operstate, some("up"));
        assert_eq!(eth0.mtu, Some(1400));
        assert_eq!(eth0.speed_mbps, None); // -1: virtio does not know
        assert_eq!(eth0.carrier, Some(true));
        assert_eq!(facts.interfaces[1].carrier, None);
        assert_eq!(
            default_node_id(&roots("debian12-vm")),
            "3d1219c7c4c5404aaa1f6d2a48adfda4"
        );
    }

    #[test]
    fn reads_a_minimal_arm64_host() {
        let r = roots("edge-minimal-host");
        let facts = read_facts(&r);
        assert_eq!(facts.hostname, some("minimal-pi"));
        assert_eq!(facts.kernel, some("6.6.31+rpt-rpi-v8"));
        assert_eq!(facts.os_name, some("Minimal Linux"));
        assert_eq!(facts.os_version, some("3.20.1"));
        assert_eq!(
            facts.os_pretty_name,
            some("Minimal \"Edge\" Linux 3.20 (it's $HOME)")
        );
        assert_eq!(facts.cpu_model, some("ARM Cortex-A72"));
        assert_eq!(facts.logical_cores, Some(4));
        assert_eq!(facts.physical_cores, Some(4)); // from sysfs topology
        assert_eq!(facts.sockets, Some(1));
        assert_eq!(facts.memory_total_bytes, Some(3_884_360 * 1024));
        assert_eq!(facts.boot_time_seconds, Some(1_700_000_000));
        let eth0 = &facts.interfaces[0];
        assert_eq!((eth0.speed_mbps, eth0.carrier), (Some(1000), Some(true)));
        // No machine-id anywhere: the hostname from /etc/hostname.
        assert_eq!(default_node_id(&r), "minimal-pi");
    }

    #[test]
    fn reads_odd_interfaces() {
        let facts = read_facts(&roots("edge-odd-interfaces"));
        let names: Vec<_> = facts.interfaces.iter().map(|i| i.name.as_str()).collect();
        // bonding_masters is a file, not an interface; the symlink is followed.
        assert_eq!(
            names,
            [
                "br-1a2b3c4d5e6f",
                "eth0.100",
                "lo",
                "verylongifname0",
                "wg0"
            ]
        );
        let [br, vlan, _, long, wg] = facts.interfaces.as_slice() else {
            panic!("five interfaces expected");
        };
        assert_eq!((br.speed_mbps, br.carrier), (None, Some(false)));
        assert_eq!(vlan.speed_mbps, Some(10_000));
        assert_eq!(long.speed_mbps, None); // garbage
        assert_eq!(long.operstate, some("lowerlayerdown"));
        assert_eq!(long.mtu, Some(9000));
        assert_eq!(long.carrier, None); // absent
        assert_eq!(wg.mac, None); // empty address
        assert_eq!(wg.speed_mbps, None); // absent
        assert_eq!(facts.cpu_model, None);
        assert_eq!(facts.logical_cores, None);
        assert_eq!(facts.physical_cores, None);
    }

    #[test]
    fn nothing_readable_gives_empty_facts_and_unknown_node() {
        let r = Roots::under("/nonexistent");
        assert_eq!(read_facts(&r), Facts::default());
        assert_eq!(default_node_id(&r), "unknown-node");
        let settings = Settings {
            roots: r,
            ..Settings::default()
        };
        let err = NodeInfo::new(&settings)
            .collect(&Cycle::now(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    #[test]
    fn os_release_quoting() {
        let text = "NAME=\"Fedora Linux\"\nVERSION_ID=40\nPRETTY_NAME='It''s \"x\"'\n";
        let os = parse_os_release(text);
        assert_eq!(os.name, some("Fedora Linux"));
        assert_eq!(os.version_id, some("40"));
        assert_eq!(os.pretty_name, some("Its \"x\""));
        let os = parse_os_release("NAME=a\\ b\\\"c\nNAME=\"late \\\\ \\n \\`\"\nVERSION_ID=\"\"\n");
        assert_eq!(os.name, some("late \\ \\n `"));
        assert_eq!(os.version_id, None);
        let os = parse_os_release(
            "NAME=\"unterminated\nPRETTY_NAME=Plain words  \n#NAME=no\n=x\nNAME\n",
        );
        assert_eq!(os.name, some("unterminated"));
        assert_eq!(os.pretty_name, some("Plain words"));
        assert_eq!(parse_os_release("NAME=a\\ b").name, some("a b"));
    }

    #[test]
    fn cpuinfo_of_other_architectures() {
        let arm32 = "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 38.40\n\nprocessor\t: 1\n\nHardware\t: BCM2709\n";
        let c = parse_cpuinfo(arm32);
        assert_eq!(
            (c.model.as_deref(), c.logical),
            (Some("ARMv7 Processor rev 4 (v7l)"), 2)
        );
        let riscv = "processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc\nmmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n";
        assert_eq!(parse_cpuinfo(riscv).model.as_deref(), Some("sifive,u74-mc"));
        let ppc = "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\nclock\t\t: 2166.000000MHz\n\ntimebase\t: 512000000\nmodel\t\t: 8335-GTH\n";
        assert_eq!(
            parse_cpuinfo(ppc).model.as_deref(),
            Some("POWER9 (raw), altivec supported")
        );
        let mips = "system type\t\t: MediaTek MT7621\nprocessor\t\t: 0\ncpu model\t\t: MIPS 1004Kc V2.15\n";
        assert_eq!(
            parse_cpuinfo(mips).model.as_deref(),
            Some("MIPS 1004Kc V2.15")
        );
        let s390 = "vendor_id       : IBM/S390\n# processors    : 2\nprocessor 0: version = FF\nprocessor 1: version = FF\n";
        assert_eq!(parse_cpuinfo(s390).logical, 2);
        let old_intel =
            "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU           E5-2620 0 @ 2.00GHz\n";
        assert_eq!(
            parse_cpuinfo(old_intel).model.as_deref(),
            Some("Intel(R) Xeon(R) CPU E5-2620 0 @ 2.00GHz")
        );
        let graviton = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(
            parse_cpuinfo(graviton).model.as_deref(),
            Some("ARM Neoverse-N1")
        );
        let unknown = "processor\t: 0\nCPU implementer\t: 0x99\nCPU part\t: 0x1\n";
        assert_eq!(
            parse_cpuinfo(unknown).model.as_deref(),
            Some("CPU implementer 0x99 part 0x1")
        );
        assert_eq!(
            parse_cpuinfo("processor : 0\nCPU implementer : zz\nCPU part : 1\n").model,
            None
        );
    }

    #[test]
    fn two_sockets_with_hyperthreads() {
        let mut text = String::new();
        for cpu in 0..8 {
            let (package, core) = (cpu / 4, cpu % 2);
            text.push_str(&format!(
                "processor\t: {cpu}\nmodel name\t: X\nphysical id\t: {package}\ncore id\t\t: {core}\n\n"
            ));
        }
        let c = parse_cpuinfo(&text);
        assert_eq!((c.logical, c.cores, c.packages), (8, 4, 2));
        let none = || -> Vec<(String, String)> { panic!("sysfs must not be read") };
        assert_eq!(cpu_counts(Some(&c), none), (Some(8), Some(4), Some(2)));
    }

    #[test]
    fn topology_fallbacks() {
        let c = parse_cpuinfo("processor : 0\nprocessor : 1\nprocessor : 2\n");
        assert_eq!(cpu_counts(Some(&c), Vec::new), (Some(3), Some(3), None));
        let sysfs = || {
            vec![
                ("-1".to_string(), "0".to_string()),
                ("-1".to_string(), "0".to_string()),
                ("-1".to_string(), "1".to_string()),
            ]
        };
        assert_eq!(cpu_counts(Some(&c), sysfs), (Some(3), Some(2), Some(1)));
        assert_eq!(cpu_counts(None, Vec::new), (None, None, None));
        // physical id without core id: sockets from cpuinfo, cores from sysfs.
        let c = parse_cpuinfo("processor : 0\nphysical id : 0\nprocessor : 1\nphysical id : 1\n");
        assert_eq!(cpu_counts(Some(&c), sysfs), (Some(2), Some(2), Some(2)));
    }

    #[test]
    fn meminfo_stat_hostname_and_machine_id() {
        assert_eq!(
            parse_mem_total("MemTotal: 18446744073709551615 kB\n"),
            Some(u64::MAX)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
        assert_eq!(parse_btime("cpu 1 2\nbtime 42\n"), Some(42));
        assert_eq!(parse_btime("btime -1\n"), None);
        assert_eq!(hostname_from(Some("(none)".into())), None);
        assert_eq!(
            hostname_from(Some("# c\n\n  web-1  \n".into())),
            some("web-1")
        );
        assert_eq!(machine_id(Some("uninitialized".into())), None);
        assert_eq!(
            machine_id(Some("3d1219c7c4c5404aaa1f6d2a48adfdaz".into())),
            None
        );
        assert_eq!(
            machine_id(Some("3D1219C7C4C5404AAA1F6D2A48ADFDA4".into())),
            some("3D1219C7C4C5404AAA1F6D2A48ADFDA4")
        );
    }

    #[test]
    fn facts_become_rows() {
        let facts = Facts {
            hostname: some("h"),
            kernel: some("6.1"),
            logical_cores: Some(4),
            interfaces: vec![InterfaceFacts {
                name: "eth0".into(),
                mac: some("aa:bb:cc:dd:ee:ff"),
                operstate: some("up"),
                mtu: Some(1500),
                speed_mbps: None,
                carrier: Some(false),
            }],
            ..Facts::default()
        };
        let mut rows = Vec::new();
        facts_rows(&facts, 7, &mut rows);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].table, "node_info");
        assert_eq!(rows[0].ts, 7);
        assert_eq!(
            rows[0].tags,
            vec![("hostname", "h".to_string()), ("kernel", "6.1".to_string())]
        );
        assert_eq!(rows[0].fields, vec![("logical_cores", Value::Int(4))]);
        assert_eq!(
            rows[1].tags,
            vec![
                ("interface", "eth0".to_string()),
                ("mac", "aa:bb:cc:dd:ee:ff".to_string()),
                ("operstate", "up".to_string())
            ]
        );
        assert_eq!(
            rows[1].fields,
            vec![("mtu", Value::Int(1500)), ("carrier", Value::Int(0))]
        );
    }

    fn cycle(base: &Cycle, secs: u64) -> Cycle {
        Cycle {
            ts: base.ts + i64::try_from(secs).unwrap() * 1_000_000_000,
            at: base.at + Duration::from_secs(secs),
        }
    }

    #[test]
    fn pushes_at_start_then_only_on_change_and_only_after_the_refresh() {
        let settings = Settings {
            roots: roots("debian12-vm"),
            network_exclude: Patterns::parse("ifb*"),
            facts_refresh: Duration::from_secs(60),
            ..Settings::default()
        };
        let mut info = NodeInfo::new(&settings);
        let t0 = Cycle::now();
        let mut rows = Vec::new();
        info.collect(&t0, &mut rows).unwrap();
        assert_eq!(rows.len(), 3); // host, eth0, lo
        let host = &rows[0];
        assert_eq!(host.tag_value("hostname"), Some("vm"));
        assert_eq!(host.tag_value("os_version"), Some("12"));
        assert_eq!(host.field("physical_cores"), Some(Value::Int(2)));
        assert_eq!(rows[1].tag_value("interface"), Some("eth0"));
        assert_eq!(rows[1].field("speed_mbps"), None);
        assert_eq!(rows[2].tag_value("interface"), Some("lo"));

        rows.clear();
        info.collect(&cycle(&t0, 10), &mut rows).unwrap();
        info.collect(&cycle(&t0, 60), &mut rows).unwrap();
        assert!(rows.is_empty(), "unchanged facts are not pushed again");
        assert_eq!(info.last_read, Some(cycle(&t0, 60).at));

        // Between refreshes nothing is read: pointing at an empty root does
        // not even make it Unavailable.
        info.roots = Roots::under("/nonexistent");
        info.collect(&cycle(&t0, 100), &mut rows).unwrap();
        assert!(rows.is_empty());

        // A changed fact pushes every row again.
        info.roots = roots("edge-minimal-host");
        info.collect(&cycle(&t0, 120), &mut rows).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].tag_value("hostname"), Some("minimal-pi"));
    }

    #[test]
    fn a_boot_time_moving_by_a_second_is_not_a_change() {
        let settings = Settings {
            roots: roots("debian12-vm"),
            facts_refresh: Duration::ZERO,
            ..Settings::default()
        };
        let mut info = NodeInfo::new(&settings);
        let t0 = Cycle::now();
        let mut rows = Vec::new();
        info.collect(&t0, &mut rows).unwrap();
        if let Some(last) = info.last.as_mut() {
            last.boot_time_seconds = last.boot_time_seconds.map(|b| b + 1);
        }
        rows.clear();
        info.collect(&cycle(&t0, 1), &mut rows).unwrap();
        assert!(rows.is_empty());
        if let Some(last) = info.last.as_mut() {
            last.boot_time_seconds = last.boot_time_seconds.map(|b| b + 100);
        }
        info.collect(&cycle(&t0, 2), &mut rows).unwrap();
        assert_eq!(
            rows[0].field("boot_time_seconds"),
            Some(Value::Int(1_795_560_027))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_os_release(&text);
            let _ = parse_cpuinfo(&text);
            let _ = parse_mem_total(&text);
            let _ = parse_btime(&text);
            let _ = hostname_from(Some(text));
        }

        #[test]
        fn double_quoted_values_round_trip(value in "[ -~]{0,40}") {
            let mut quoted = String::from("\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    quoted.push('\\');
                }
                quoted.push(c);
            }
            quoted.push('"');
            let os = parse_os_release(&format!("NAME={quoted}\n"));
            let expected = (!value.is_empty()).then(|| value.clone());
            proptest::prop_assert_eq!(os.name, expected);
        }

        #[test]
        fn processor_count_matches(n in 0u64..64) {
            let text: String = (0..n).map(|i| format!("processor\t: {i}\nmodel name\t: M\n\n")).collect();
            proptest::prop_assert_eq!(parse_cpuinfo(&text).logical, n);
        }
    }
}
