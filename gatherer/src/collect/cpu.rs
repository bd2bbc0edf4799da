//! `cpu`: time spent in each CPU mode, per CPU and for the host, from `/proc/stat`.
//!
//! Reads the `cpu` lines of `{procfs}/stat`. Table `cpu`, one row per line,
//! tag `cpu`: the CPU's number as the kernel prints it (`"0"`, `"1"`, ...), or
//! `"total"` for the aggregate line, which sums all CPUs. Offline CPUs have no
//! line, so the numbers can have gaps (`0`, `2`, `3`); the tag always is the
//! kernel's number, never a position.
//!
//! Modes, in column order: `user` (user space, including `guest`), `nice`
//! (niced user space, including `guest_nice`), `system` (kernel), `idle`,
//! `iowait` (idle while IO was outstanding; an unreliable hint, especially per
//! CPU), `irq` (hard interrupts), `softirq`, `steal` (time a hypervisor ran
//! something else while this virtual CPU wanted to run), `guest` (running a
//! guest's virtual CPU), `guest_nice` (a niced guest). Fields, for each mode
//! the line has:
//!
//! - `{mode}_seconds_total`: float seconds spent in the mode since boot (the
//!   kernel's USER_HZ ticks divided by ticks per second; for `total`, the sum
//!   over CPUs, so it grows by up to the CPU count per second).
//! - `{mode}_percent` (from the second sample on): the mode's share of the
//!   interval, 0-100: its tick delta over the sum of the deltas of `user`
//!   through `steal`. `guest` and `guest_nice` are left out of that sum
//!   because `user` and `nice` already contain them, so `guest_percent` is
//!   the part of `user_percent` spent in guests.
//! - `usage_percent` (from the second sample on): `100 - idle_percent -
//!   iowait_percent`, the share of the interval the CPU was busy.
//!
//! Old kernels print fewer columns: 4 before 2.5.41 (`user`..`idle`), 7 from
//! 2.6.0 (to `softirq`), 8 from 2.6.11 (`steal`), 9 from 2.6.24 (`guest`), 10
//! from 2.6.33. Only the modes present are reported; columns beyond the ten
//! known ones are ignored. A percentage needs the same mode in both samples.
//! When any counter of a line went backwards (a CPU unplugged and plugged back,
//! or the NO_HZ idle/iowait accounting stepping back) or no tick elapsed, that
//! line has no `_percent` fields for the cycle.

use std::fmt;

use super::error::{CollectError, ParseError, parse_u64};
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// The modes of a `cpu` line, in column order.
pub const MODES: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

const SECONDS_FIELDS: [&str; 10] = [
    "user_seconds_total",
    "nice_seconds_total",
    "system_seconds_total",
    "idle_seconds_total",
    "iowait_seconds_total",
    "irq_seconds_total",
    "softirq_seconds_total",
    "steal_seconds_total",
    "guest_seconds_total",
    "guest_nice_seconds_total",
];

const PERCENT_FIELDS: [&str; 10] = [
    "user_percent",
    "nice_percent",
    "system_percent",
    "idle_percent",
    "iowait_percent",
    "irq_percent",
    "softirq_percent",
    "steal_percent",
    "guest_percent",
    "guest_nice_percent",
];

const IDLE: usize = 3;
const IOWAIT: usize = 4;
/// `user` through `steal`: the modes that partition a CPU's time.
const PARTITION: usize = 8;
/// Columns every kernel prints (`user nice system idle`).
const MIN_MODES: usize = 4;

/// Which line a reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuId {
    /// The aggregate `cpu ` line.
    Total,
    /// A `cpuN` line, with the kernel's number `N`.
    Cpu(u32),
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuId::Total => f.write_str("total"),
            CpuId::Cpu(n) => write!(f, "{n}"),
        }
    }
}

/// The tick counters of one `cpu` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTimes {
    /// Which CPU.
    pub id: CpuId,
    /// Ticks per mode in [`MODES`] order; only the first `modes` are meaningful.
    pub ticks: [u64; MODES.len()],
    /// How many modes the line had (4 to 10).
    pub modes: usize,
}

impl CpuTimes {
    /// The counters the line had.
    pub fn present(&self) -> &[u64] {
        self.ticks.get(..self.modes).unwrap_or(&self.ticks)
    }

    /// Each mode's share of the time between `prev` and `self`, in percent
    /// (0 to 100), for the modes both readings have; `None` when a counter
    /// went backwards or no tick elapsed.
    pub fn percent_since(&self, prev: &CpuTimes) -> Option<CpuShares> {
        let modes = self.modes.min(prev.modes);
        let mut deltas = [0u64; MODES.len()];
        for ((d, now), before) in deltas.iter_mut().zip(self.present()).zip(prev.present()) {
            *d = now.checked_sub(*before)?;
        }
        let elapsed = deltas
            .iter()
            .take(PARTITION)
            .fold(0u64, |sum, d| sum.saturating_add(*d));
        if elapsed == 0 {
            return None;
        }
        // `guest` is inside `user`; a racy reading could still put it above
        // the whole interval, hence the clamp.
        let percent = deltas.map(|d| (d as f64 / elapsed as f64 * 100.0).min(100.0));
        Some(CpuShares { percent, modes })
    }
}

/// Each mode's share of an interval, from [`CpuTimes::percent_since`].
#[derive(Debug, Clone, PartialEq)]
pub struct CpuShares {
    /// Percent per mode in [`MODES`] order; only the first `modes` are meaningful.
    pub percent: [f64; MODES.len()],
    /// How many modes both readings had.
    pub modes: usize,
}

impl CpuShares {
    /// The shares of the modes both readings had.
    pub fn present(&self) -> &[f64] {
        self.percent.get(..self.modes).unwrap_or(&self.percent)
    }

    /// `100 - idle - iowait`: the share of the interval the CPU was busy.
    pub fn usage(&self) -> f64 {
        let share = |i: usize| self.present().get(i).copied().unwrap_or(0.0);
        (100.0 - share(IDLE) - share(IOWAIT)).clamp(0.0, 100.0)
    }
}

/// Parses the `cpu` lines of `/proc/stat`, in file order.
///
/// Written here because procfs's `KernelStats` numbers CPUs by position,
/// which mislabels every CPU after an offline one.
pub fn parse_stat_cpus(text: &str) -> Result<Vec<CpuTimes>, ParseError> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        if !line.starts_with("cpu") {
            // The kernel prints every cpu line first; stop before the long `intr` line.
            if cpus.is_empty() {
                continue;
            }
            break;
        }
        cpus.push(parse_cpu_line(line)?);
    }
    if cpus.is_empty() {
        return Err(ParseError::missing("cpu lines"));
    }
    Ok(cpus)
}

fn parse_cpu_line(line: &str) -> Result<CpuTimes, ParseError> {
    let mut cols = line.split_ascii_whitespace();
    let name = cols.next().unwrap_or_default();
    let id = match name.strip_prefix("cpu").unwrap_or(name) {
        "" => CpuId::Total,
        n if n.bytes().all(|b| b.is_ascii_digit()) => CpuId::Cpu(
            n.parse()
                .map_err(|_| ParseError::bad_number("cpu number", name))?,
        ),
        _ => return Err(ParseError::bad_number("cpu number", name)),
    };
    let mut ticks = [0u64; MODES.len()];
    let mut modes = 0;
    for (slot, (col, mode)) in ticks.iter_mut().zip(cols.zip(MODES)) {
        *slot = parse_u64(mode, col)?;
        modes += 1;
    }
    if modes < MIN_MODES {
        return Err(ParseError::missing(format!(
            "{name}: columns user nice system idle"
        )));
    }
    Ok(CpuTimes { id, ticks, modes })
}

/// The `cpu` collector.
pub struct Cpu {
    path: source::CycleFile,
    buf: String,
    ticks_per_second: f64,
    prev: Vec<CpuTimes>,
}

impl Cpu {
    /// A collector reading `stat` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        // USER_HZ, fixed for the life of the kernel; 100 on every mainstream
        // arch, and the fallback should the query ever answer 0.
        let hz = match procfs::ticks_per_second() {
            0 => 100,
            hz => hz,
        };
        Cpu {
            path: settings.shared_files.file(settings.roots.proc("stat")),
            buf: String::new(),
            ticks_per_second: hz as f64,
            prev: Vec::new(),
        }
    }

    fn previous(&self, index: usize, id: CpuId) -> Option<&CpuTimes> {
        // Lines keep their order from one reading to the next unless a CPU
        // came or went; only then search.
        match self.prev.get(index) {
            Some(p) if p.id == id => Some(p),
            _ => self.prev.iter().find(|p| p.id == id),
        }
    }
}

impl Collector for Cpu {
    fn family(&self) -> Family {
        Family::Cpu
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(cycle.at, &mut self.buf)?;
        let cpus = parse_stat_cpus(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        for (index, cur) in cpus.iter().enumerate() {
            let mut row = Row::new("cpu", cycle.ts).tag("cpu", cur.id.to_string());
            for (field, ticks) in SECONDS_FIELDS.iter().zip(cur.present()) {
                row.float(field, *ticks as f64 / self.ticks_per_second);
            }
            let shares = self
                .previous(index, cur.id)
                .and_then(|p| cur.percent_since(p));
            if let Some(shares) = shares {
                for (field, pct) in PERCENT_FIELDS.iter().zip(shares.present()) {
                    row.float(field, *pct);
                }
                row.float("usage_percent", shares.usage());
            }
            out.push(row);
        }
        // Replacing the whole list forgets CPUs that went offline.
        self.prev = cpus;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use crate::collect::fixtures::settings as fixture;

    fn float(row: &Row, name: &str) -> f64 {
        match row.field(name) {
            Some(Value::Float(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn tags(rows: &[Row]) -> Vec<&str> {
        rows.iter().filter_map(|r| r.tag_value("cpu")).collect()
    }

    /// Runs the collector over successive `/proc/stat` contents, 2 s apart.
    fn run_over(stats: &[&str]) -> Vec<Vec<Row>> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hostpulse-cpu-{}-{run}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        let mut c = Cpu::new(&Settings {
            roots: Roots::under(&dir),
            ..Settings::default()
        });
        let t0 = Instant::now();
        let mut cycles = Vec::new();
        for (i, stat) in stats.iter().enumerate() {
            std::fs::write(dir.join("proc/stat"), stat).unwrap();
            let mut out = Vec::new();
            let at = t0 + Duration::from_secs(2 * i as u64);
            c.collect(&Cycle { ts: i as i64, at }, &mut out).unwrap();
            cycles.push(out);
        }
        let _ = std::fs::remove_dir_all(&dir);
        cycles
    }

    #[test]
    fn parses_the_captured_stat() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm/proc/stat"
        );
        let cpus = parse_stat_cpus(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(cpus.len(), 3);
        assert_eq!(cpus[0].id, CpuId::Total);
        assert_eq!(
            cpus[0].present(),
            [7752, 0, 1938, 73322, 311, 0, 21, 29, 0, 0]
        );
        assert_eq!(cpus[2].id, CpuId::Cpu(1));
        assert_eq!(cpus[2].ticks[3], 36189);
    }

    #[test]
    fn collector_on_the_captured_tree() {
        let mut c = Cpu::new(&fixture("debian12-vm"));
        c.ticks_per_second = 100.0;
        let t0 = Instant::now();
        let mut out = Vec::new();
        c.collect(&Cycle { ts: 1, at: t0 }, &mut out).unwrap();
        assert_eq!(tags(&out), ["total", "0", "1"]);
        assert!(out.iter().all(|r| r.table == "cpu" && r.fields.len() == 10));
        assert_eq!(float(&out[0], "user_seconds_total"), 77.52);
        assert_eq!(float(&out[2], "iowait_seconds_total"), 2.69);
        out.clear();
        c.collect(
            &Cycle {
                ts: 2,
                at: t0 + Duration::from_secs(2),
            },
            &mut out,
        )
        .unwrap();
        // The same file again: no tick elapsed, so no share can be computed.
        assert!(out.iter().all(|r| r.fields.len() == 10));
    }

    #[test]
    fn percentages_from_the_second_sample() {
        let a = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\nintr 1\n";
        let b = "cpu  160 10 120 880 20 5 5 0 40 0\ncpu0 160 10 120 880 20 5 5 0 40 0\nintr 2\n";
        let cycles = run_over(&[a, b]);
        assert!(cycles[0].iter().all(|r| r.field("user_percent").is_none()));
        let row = &cycles[1][1];
        assert_eq!(row.tag_value("cpu"), Some("0"));
        // Deltas user..steal: 60 10 20 80 20 5 5 0 = 200 ticks.
        assert_eq!(float(row, "user_percent"), 30.0);
        assert_eq!(float(row, "idle_percent"), 40.0);
        assert_eq!(float(row, "iowait_percent"), 10.0);
        assert_eq!(float(row, "guest_percent"), 20.0);
        assert_eq!(float(row, "usage_percent"), 50.0);
        assert_eq!(row.fields.len(), 21);
    }

    #[test]
    fn offline_cpus_keep_their_numbers_and_hot_replug_skips_percentages() {
        let a = "cpu  30 0 0 300\ncpu0 10 0 0 100\ncpu1 10 0 0 100\ncpu2 10 0 0 100\n";
        // cpu1 goes offline: no line, and cpu2 keeps its number.
        let b = "cpu  40 0 0 400\ncpu0 15 0 0 150\ncpu2 15 0 0 145\n";
        // cpu1 comes back with reset counters.
        let c = "cpu  50 0 0 500\ncpu0 20 0 0 200\ncpu1 1 0 0 2\ncpu2 20 0 0 200\n";
        let cycles = run_over(&[a, b, c]);
        assert_eq!(tags(&cycles[1]), ["total", "0", "2"]);
        assert_eq!(float(&cycles[1][2], "user_percent"), 10.0);
        assert_eq!(tags(&cycles[2]), ["total", "0", "1", "2"]);
        assert!(
            cycles[2][2].field("user_percent").is_none(),
            "cpu1 was forgotten while offline"
        );
        assert!(cycles[2][3].field("usage_percent").is_some());
        let d = "cpu  50 0 0 500\ncpu0 20 0 0 200\ncpu1 0 0 0 1\ncpu2 20 0 0 200\n";
        let cycles = run_over(&[c, d]);
        assert!(
            cycles[1][2].field("user_percent").is_none(),
            "counter went backwards"
        );
    }

    #[test]
    fn old_kernels_report_only_their_columns() {
        let cpus = parse_stat_cpus("cpu  1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(cpus[1].present(), [1, 2, 3, 4]);
        for n in [4, 7, 8, 9] {
            let cols: Vec<String> = (1..=n).map(|v| v.to_string()).collect();
            let cpus = parse_stat_cpus(&format!("cpu {}\n", cols.join(" "))).unwrap();
            assert_eq!(cpus[0].modes, n);
        }
        let a = "cpu  10 0 10 80\n";
        let b = "cpu  20 0 20 160\n";
        let cycles = run_over(&[a, b]);
        let row = &cycles[1][0];
        assert_eq!(row.fields.len(), 4 + 4 + 1);
        assert_eq!(float(row, "usage_percent"), 20.0);
        assert!(row.field("iowait_seconds_total").is_none());
    }

    #[test]
    fn the_edge_trees() {
        let mut c = Cpu::new(&fixture("edge-old-kernel"));
        let mut out = Vec::new();
        c.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(tags(&out), ["total", "0", "2", "3"]);
        assert!(out.iter().all(|r| r.fields.len() == 8));
        assert!(out[0].field("steal_seconds_total").is_some());
        assert!(out[0].field("guest_seconds_total").is_none());
        let mut c = Cpu::new(&fixture("edge-huge-counters-a"));
        c.ticks_per_second = 100.0;
        out.clear();
        c.collect(&Cycle::now(), &mut out).unwrap();
        c.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(
            float(&out[0], "user_seconds_total"),
            u64::MAX as f64 / 100.0
        );
        assert!(out.iter().all(|r| r.field("usage_percent").is_none()));
    }

    #[test]
    fn future_columns_are_ignored() {
        let cpus = parse_stat_cpus("cpu 1 2 3 4 5 6 7 8 9 10 11 x y\n").unwrap();
        assert_eq!(cpus[0].modes, 10);
        assert_eq!(cpus[0].ticks[9], 10);
    }

    #[test]
    fn summing_huge_deltas_saturates() {
        let prev = parse_stat_cpus("cpu 0 0 0 0\n").unwrap().remove(0);
        let cur = parse_stat_cpus(&format!("cpu {m} {m} 0 0\n", m = u64::MAX))
            .unwrap()
            .remove(0);
        let shares = cur.percent_since(&prev).unwrap();
        assert!(
            shares
                .present()
                .iter()
                .all(|p| p.is_finite() && *p <= 100.0)
        );
    }

    #[test]
    fn truncated_and_garbage_files_are_rejected() {
        assert_eq!(parse_stat_cpus(""), Err(ParseError::missing("cpu lines")));
        assert!(parse_stat_cpus("intr 1 2 3\nctxt 5\n").is_err());
        assert!(parse_stat_cpus("cpu  1 2 3\n").is_err());
        assert!(parse_stat_cpus("cpu  1 2 3 x\n").is_err());
        assert!(parse_stat_cpus("cpu  1 2 3 -4\n").is_err());
        assert!(parse_stat_cpus("cpux 1 2 3 4\n").is_err());
        assert!(parse_stat_cpus("cpu99999999999 1 2 3 4\n").is_err());
        assert!(parse_stat_cpus("cpu+1 1 2 3 4\n").is_err());
        assert!(parse_stat_cpus("cpu  1 2 3 4\ncpu0 1 2").is_err());
        // Only the leading cpu block is read: garbage after it does not matter.
        assert!(parse_stat_cpus("cpu 1 2 3 4\nintr x\ncpu9 junk\n").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            if let Ok(cpus) = parse_stat_cpus(&text) {
                for pair in cpus.windows(2) {
                    let _ = pair[1].percent_since(&pair[0]);
                }
            }
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(
            n in 0u32..4096,
            ticks in proptest::array::uniform10(proptest::num::u64::ANY),
            modes in 4usize..=10,
        ) {
            let cols: Vec<String> = ticks.iter().take(modes).map(u64::to_string).collect();
            let text = format!("cpu  {}\ncpu{n} {}\nintr 0\n", cols.join(" "), cols.join(" "));
            let cpus = parse_stat_cpus(&text).unwrap();
            proptest::prop_assert_eq!(cpus.len(), 2);
            proptest::prop_assert_eq!(cpus[1].id, CpuId::Cpu(n));
            proptest::prop_assert_eq!(cpus[1].present(), &ticks[..modes]);
        }

        #[test]
        fn shares_stay_within_0_and_100(
            a in proptest::array::uniform10(0u64..1 << 40),
            d in proptest::array::uniform10(0u64..1 << 40),
        ) {
            let prev = CpuTimes { id: CpuId::Total, ticks: a, modes: 10 };
            let cur = CpuTimes { id: CpuId::Total, ticks: std::array::from_fn(|i| a[i] + d[i]), modes: 10 };
            if let Some(shares) = cur.percent_since(&prev) {
                let partition: f64 = shares.present()[..PARTITION].iter().sum();
                proptest::prop_assert!((partition - 100.0).abs() < 1e-6);
                proptest::prop_assert!(shares.present().iter().all(|p| (0.0..=100.0).contains(p)));
                proptest::prop_assert!((0.0..=100.0).contains(&shares.usage()));
            }
        }
    }
}
