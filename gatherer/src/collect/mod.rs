//! Collectors: one module per metric family, each turning kernel files into rows.
//!
//! # Layout
//!
//! - [`Family`]: the families an operator can select with `--collectors`, and
//!   the table(s) each one writes.
//! - [`Collector`]: what every family implements. A collector owns its previous
//!   readings (for rates) and its reused buffers; it reads through
//!   [`Settings::roots`], never a literal `/proc`.
//! - [`Collectors`]: runs the selected families once per cycle, disables a
//!   family whose files are missing (one info line), and logs and counts every
//!   other failure without letting it stop the other families.
//! - [`source`]: the I/O shell; [`error`]: the failures; [`rates`]: counters to
//!   per-second rates; [`patterns`]: include/exclude globs.
//! - One file per family (`cpu.rs`, `memory.rs`, ...). Each splits a pure
//!   `parse_*` function (fed by fixtures and property tests) from the code
//!   that opens files.
//!
//! # Invariants
//!
//! - A row is pushed whole or not at all; a family that fails mid-way may have
//!   pushed complete rows before the failure, never half a row.
//! - Counters are reported as `*_total` and, from the second observation on, as
//!   `*_per_second`; a counter that went backwards gets no rate that cycle.
//! - Nothing here panics on file content: every parser returns a
//!   [`error::ParseError`] instead.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::roots::Roots;
use crate::row::Row;

pub mod error;
#[cfg(test)]
pub(crate) mod fixtures;
pub use hostpulse_proto::patterns;
pub mod rates;
pub mod source;

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod hwmon;
pub mod load;
pub mod memory;
pub mod netstat;
pub mod network;
pub mod node_info;
pub mod pressure;
pub mod processes;
pub mod swap;
pub mod system;
pub mod vmstat;

pub use error::{CollectError, ParseError};
use patterns::Patterns;

/// One collection instant, shared by every family in a cycle so that all rows
/// of a cycle carry the same timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Cycle {
    /// Unix time in nanoseconds: the rows' `ts`.
    pub ts: i64,
    /// Monotonic time, for rates (immune to wall-clock steps).
    pub at: Instant,
}

impl Cycle {
    /// The current instant.
    pub fn now() -> Self {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Cycle {
            ts,
            at: Instant::now(),
        }
    }
}

/// What every family's collector implements.
pub trait Collector: Send {
    /// The family this collector implements.
    fn family(&self) -> Family;

    /// Reads the family's files and pushes complete rows onto `out`.
    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError>;
}

/// Options the families read; built once from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where /proc, /sys and / are.
    pub roots: Roots,
    /// Block devices to skip (`disk`), by kernel name.
    pub disk_exclude: Patterns,
    /// Whether partitions are reported as well as whole disks (`disk`).
    pub disk_partitions: bool,
    /// Filesystem types to skip (`filesystem`): pseudo and overlay filesystems.
    pub fs_types_exclude: Patterns,
    /// Mount points to skip (`filesystem`): container and kubelet internals.
    pub mountpoints_exclude: Patterns,
    /// Interfaces to skip (`network`).
    pub network_exclude: Patterns,
    /// How long one `statvfs` may take before its mount is skipped as hung
    /// (a dead NFS server must not stall the whole cycle).
    pub statfs_timeout: Duration,
    /// How often the `node_info` facts are re-read to notice a change.
    pub facts_refresh: Duration,
    /// How often `processes` lists the process directories for its
    /// `total` (the rows between carry the last count).
    pub process_count_every: Duration,
    /// Kernel files several families read, read once per cycle.
    pub shared_files: source::SharedFiles,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            roots: Roots::default(),
            disk_exclude: Patterns::parse(DEFAULT_DISK_EXCLUDE),
            disk_partitions: false,
            fs_types_exclude: Patterns::parse(DEFAULT_FS_TYPES_EXCLUDE),
            mountpoints_exclude: Patterns::parse(DEFAULT_MOUNTPOINTS_EXCLUDE),
            network_exclude: Patterns::parse(""),
            statfs_timeout: Duration::from_secs(1),
            facts_refresh: Duration::from_secs(60),
            process_count_every: Duration::from_secs(DEFAULT_PROCESS_COUNT_EVERY_SECS),
            shared_files: source::SharedFiles::default(),
        }
    }
}

/// `--process-count-every` by default, in seconds.
pub const DEFAULT_PROCESS_COUNT_EVERY_SECS: u64 = 30;

/// Block devices skipped by default: loop and RAM disks, floppies, optical drives.
pub const DEFAULT_DISK_EXCLUDE: &str = "loop*,ram*,fd*,sr*";

/// Filesystem types skipped by default: kernel pseudo filesystems and the
/// overlay/squashfs layers of containers and snaps.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "autofs,binfmt_misc,bpf,cgroup,cgroup2,configfs,debugfs,devpts,devtmpfs,efivarfs,erofs,fusectl,fuse.lxcfs,fuse.gvfsd-fuse,fuse.portal,hugetlbfs,mqueue,nsfs,overlay,proc,procfs,pstore,ramfs,rpc_pipefs,securityfs,selinuxfs,squashfs,sysfs,tracefs,nfsd";

/// Mount points skipped by default: kernel trees and container runtimes' internals.
pub const DEFAULT_MOUNTPOINTS_EXCLUDE: &str = "/proc,/proc/*,/sys,/sys/*,/dev,/dev/*,/run/credentials/*,/run/containerd/*,/run/netns/*,/run/docker/*,/var/lib/docker/*,/var/lib/containers/*,/var/lib/kubelet/*,/snap/*";

/// The metric families, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `cpu`: seconds and percent per mode, per core and total.
    Cpu,
    /// `load`: load averages and task counts.
    Load,
    /// `memory`: /proc/meminfo in bytes.
    Memory,
    /// `swap`: swap space and swap-in/out.
    Swap,
    /// `vmstat`: paging and faults.
    Vmstat,
    /// `network`: per-interface traffic.
    Network,
    /// `netstat`: TCP/UDP protocol counters and socket counts.
    Netstat,
    /// `disk`: per-device IO.
    Disk,
    /// `filesystem`: per-mount space and inodes.
    Filesystem,
    /// `pressure`: PSI stall information.
    Pressure,
    /// `processes`: process counts, forks, context switches, open files.
    Processes,
    /// `system`: uptime, boot time, entropy.
    System,
    /// `hwmon`: temperatures.
    Hwmon,
    /// `node_info`: the host's facts, at start and on change.
    NodeInfo,
}

impl Family {
    /// Every family, in output order.
    pub const ALL: [Family; 14] = [
        Family::NodeInfo,
        Family::Cpu,
        Family::Load,
        Family::Memory,
        Family::Swap,
        Family::Vmstat,
        Family::Network,
        Family::Netstat,
        Family::Disk,
        Family::Filesystem,
        Family::Pressure,
        Family::Processes,
        Family::System,
        Family::Hwmon,
    ];

    /// The family's name on the command line, which is also its table's name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Cpu => "cpu",
            Family::Load => "load",
            Family::Memory => "memory",
            Family::Swap => "swap",
            Family::Vmstat => "vmstat",
            Family::Network => "network",
            Family::Netstat => "netstat",
            Family::Disk => "disk",
            Family::Filesystem => "filesystem",
            Family::Pressure => "pressure",
            Family::Processes => "processes",
            Family::System => "system",
            Family::Hwmon => "hwmon",
            Family::NodeInfo => "node_info",
        }
    }

    /// The `hostpulse_self` table's error-counter field for this family.
    pub fn errors_field(self) -> &'static str {
        match self {
            Family::Cpu => "cpu_errors_total",
            Family::Load => "load_errors_total",
            Family::Memory => "memory_errors_total",
            Family::Swap => "swap_errors_total",
            Family::Vmstat => "vmstat_errors_total",
            Family::Network => "network_errors_total",
            Family::Netstat => "netstat_errors_total",
            Family::Disk => "disk_errors_total",
            Family::Filesystem => "filesystem_errors_total",
            Family::Pressure => "pressure_errors_total",
            Family::Processes => "processes_errors_total",
            Family::System => "system_errors_total",
            Family::Hwmon => "hwmon_errors_total",
            Family::NodeInfo => "node_info_errors_total",
        }
    }

    /// A fresh collector for this family.
    pub fn collector(self, settings: &Settings) -> Box<dyn Collector> {
        match self {
            Family::Cpu => Box::new(cpu::Cpu::new(settings)),
            Family::Load => Box::new(load::Load::new(settings)),
            Family::Memory => Box::new(memory::Memory::new(settings)),
            Family::Swap => Box::new(swap::Swap::new(settings)),
            Family::Vmstat => Box::new(vmstat::Vmstat::new(settings)),
            Family::Network => Box::new(network::Network::new(settings)),
            Family::Netstat => Box::new(netstat::Netstat::new(settings)),
            Family::Disk => Box::new(disk::Disk::new(settings)),
            Family::Filesystem => Box::new(filesystem::Filesystem::new(settings)),
            Family::Pressure => Box::new(pressure::Pressure::new(settings)),
            Family::Processes => Box::new(processes::Processes::new(settings)),
            Family::System => Box::new(system::System::new(settings)),
            Family::Hwmon => Box::new(hwmon::Hwmon::new(settings)),
            Family::NodeInfo => Box::new(node_info::NodeInfo::new(settings)),
        }
    }

    /// Parses a comma-separated list of family names; `all` selects every family.
    pub fn parse_list(list: &str) -> Result<Vec<Family>, UnknownFamily> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                out.extend(Family::ALL);
            } else {
                out.push(name.parse()?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_contract_lists_exactly_these_families() {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, hostpulse_proto::FAMILIES);
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--collectors` entry that names no family.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown collector {0:?}; known: all, cpu, load, memory, swap, vmstat, network, netstat, disk, filesystem, pressure, processes, system, hwmon, node_info"
)]
pub struct UnknownFamily(pub String);

impl FromStr for Family {
    type Err = UnknownFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFamily(s.to_string()))
    }
}

/// The state of one selected family.
struct Slot {
    collector: Box<dyn Collector>,
    errors_total: u64,
    failing: bool,
    disabled: bool,
}

/// The selected families, run together once per cycle.
pub struct Collectors {
    slots: Vec<Slot>,
    cycles: u64,
    /// The gatherer's own `/proc/self/stat`, for its `hostpulse_self` row.
    own: crate::agent::OwnStat,
}

/// What one family reported about itself, for the `hostpulse_self` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyStatus {
    /// The family.
    pub family: Family,
    /// Failed cycles since start.
    pub errors_total: u64,
    /// Whether it was disabled because its files are missing.
    pub disabled: bool,
}

impl Collectors {
    /// Collectors for `families` (output order follows [`Family::ALL`]).
    pub fn new(families: &[Family], settings: &Settings) -> Self {
        let mut families = families.to_vec();
        families.sort();
        families.dedup();
        let order = |f: &Family| Family::ALL.iter().position(|x| x == f);
        families.sort_by_key(order);
        Collectors {
            cycles: 0,
            own: crate::agent::OwnStat::default(),
            slots: families
                .into_iter()
                .map(|f| Slot {
                    collector: f.collector(settings),
                    errors_total: 0,
                    failing: false,
                    disabled: false,
                })
                .collect(),
        }
    }

    /// Runs every enabled family once, pushing their rows onto `out`.
    /// Returns how many families failed this cycle.
    pub fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> usize {
        self.cycles += 1;
        let mut failed = 0;
        for slot in self.slots.iter_mut().filter(|s| !s.disabled) {
            let family = slot.collector.family();
            let before = out.len();
            let result = slot.collector.collect(cycle, out);
            // A row without fields (an interface whose every attribute was
            // unreadable) has nothing to store; line protocol cannot carry it.
            let mut i = before;
            while i < out.len() {
                if out[i].fields.is_empty() {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
            match result {
                Ok(()) => {
                    if slot.failing {
                        tracing::info!(%family, "collection recovered");
                    }
                    slot.failing = false;
                }
                Err(CollectError::Unavailable { path }) => {
                    slot.disabled = true;
                    tracing::info!(
                        %family,
                        path = %path.display(),
                        "family disabled: its source is not present on this host"
                    );
                }
                Err(error) => {
                    failed += 1;
                    slot.errors_total += 1;
                    // Warn once per streak of failures; the counter in the
                    // `hostpulse_self` table carries the rest without flooding the log.
                    if slot.failing {
                        tracing::debug!(%family, %error, "collection failed again");
                    } else {
                        tracing::warn!(%family, %error, "collection failed; other families unaffected");
                    }
                    slot.failing = true;
                }
            }
        }
        failed
    }

    /// The gatherer's own process figures (for [`crate::agent::row`]).
    pub fn own_stat(&mut self) -> &mut crate::agent::OwnStat {
        &mut self.own
    }

    /// Cycles run since start.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// The selected families.
    pub fn families(&self) -> Vec<Family> {
        self.slots.iter().map(|s| s.collector.family()).collect()
    }

    /// Changes the selection: families still selected keep their state (and
    /// so their rates); new ones start fresh; dropped ones are forgotten.
    pub fn select(&mut self, families: &[Family], settings: &Settings) {
        let mut wanted = families.to_vec();
        wanted.sort_by_key(|f| Family::ALL.iter().position(|x| x == f));
        wanted.dedup();
        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        for family in wanted {
            match old.iter().position(|s| s.collector.family() == family) {
                Some(i) => self.slots.push(old.swap_remove(i)),
                None => self.slots.push(Slot {
                    collector: family.collector(settings),
                    errors_total: 0,
                    failing: false,
                    disabled: false,
                }),
            }
        }
    }

    /// The status of every selected family.
    pub fn status(&self) -> impl Iterator<Item = FamilyStatus> + '_ {
        self.slots.iter().map(|s| FamilyStatus {
            family: s.collector.family(),
            errors_total: s.errors_total,
            disabled: s.disabled,
        })
    }
}
