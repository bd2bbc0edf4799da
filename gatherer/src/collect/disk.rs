//! `disk`: per-device IO from `/proc/diskstats`.
//!
//! One row per block device, table `disk`, tag `device` (the kernel name as
//! diskstats prints it: `sda`, `nvme0n1`, `dm-0`, `cciss/c0d0`). Devices
//! matching `--disk-exclude` (default `loop*,ram*,fd*,sr*`) are skipped, and
//! so are partitions (devices with a `/sys/class/block/<name>/partition`
//! attribute) unless partitions were asked for.
//!
//! Counters, each as `NAME_total` and, from the second sample on, as
//! `NAME_per_second` (the rate of a `*_seconds_total` counter is thus
//! `*_seconds_per_second`: seconds spent per second of wall time):
//!
//! - `reads`, `writes`: requests completed.
//! - `reads_merged`, `writes_merged`: adjacent requests merged into one.
//! - `read_bytes`, `written_bytes`: bytes transferred (512-byte sectors × 512,
//!   whatever the device's logical block size).
//! - `read_time_seconds`, `write_time_seconds`: seconds spent by all requests
//!   of that direction (summed over concurrent requests, float).
//! - `io_time_seconds`: seconds during which the device had at least one
//!   request in flight (float).
//! - `weighted_io_time_seconds`: in-flight requests integrated over time, in
//!   seconds (its rate is the average queue depth).
//! - Kernel 4.18+: `discards`, `discards_merged`, `discarded_bytes`,
//!   `discard_time_seconds`, as for reads.
//! - Kernel 5.5+: `flushes` (flush requests completed), `flush_time_seconds`.
//!
//! Gauges:
//!
//! - `in_flight`: requests issued to the driver and not yet completed.
//! - `utilization_percent`: share of the last interval the device was busy
//!   (`io_time` delta / elapsed × 100, clamped to 0..=100), from the second
//!   sample on.
//!
//! Integer counters are exact; byte counters saturate at `u64::MAX` rather
//! than wrap.

use std::collections::HashMap;

use super::error::{CollectError, ParseError, parse_u64};
use super::patterns::Patterns;
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::roots::Roots;
use crate::row::Row;

/// Columns of a diskstats line before kernel 4.18 (major, minor, name and 11 numbers).
const BASE_COLUMNS: usize = 14;

/// Discard statistics (kernel 4.18+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discards {
    /// Discards completed.
    pub count: u64,
    /// Discards merged.
    pub merged: u64,
    /// 512-byte sectors discarded.
    pub sectors: u64,
    /// Milliseconds spent discarding.
    pub ms: u64,
}

/// Flush statistics (kernel 5.5+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushes {
    /// Flush requests completed.
    pub count: u64,
    /// Milliseconds spent flushing.
    pub ms: u64,
}

/// One line of `/proc/diskstats`, the name borrowed from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStat<'a> {
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Kernel device name.
    pub name: &'a str,
    /// Reads completed.
    pub reads: u64,
    /// Reads merged.
    pub reads_merged: u64,
    /// 512-byte sectors read.
    pub read_sectors: u64,
    /// Milliseconds spent reading.
    pub read_ms: u64,
    /// Writes completed.
    pub writes: u64,
    /// Writes merged.
    pub writes_merged: u64,
    /// 512-byte sectors written.
    pub written_sectors: u64,
    /// Milliseconds spent writing.
    pub write_ms: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Milliseconds with at least one request in flight.
    pub io_ms: u64,
    /// Weighted milliseconds doing IO.
    pub weighted_io_ms: u64,
    /// Discard columns, when the kernel prints them.
    pub discards: Option<Discards>,
    /// Flush columns, when the kernel prints them.
    pub flushes: Option<Flushes>,
}

/// Parses one diskstats line: 14 columns (before 4.18), 18 (4.18+) or 20
/// (5.5+). Columns beyond the 20th (future kernels) are ignored; fewer than 14
/// is an error.
///
/// Our own parser rather than procfs's `DiskStat::from_line`: procfs turns a
/// garbled discard/flush column into a silent `None`, and allocates the name.
pub fn parse_diskstats_line(line: &str) -> Result<DiskStat<'_>, ParseError> {
    let mut cols = line.split_ascii_whitespace();
    let mut text = [""; 20];
    let mut n = 0;
    for (slot, col) in text.iter_mut().zip(&mut cols) {
        *slot = col;
        n += 1;
    }
    if n < BASE_COLUMNS {
        return Err(ParseError::missing(format!(
            "diskstats columns: {n} of at least {BASE_COLUMNS} in {:?}",
            cut(line)
        )));
    }
    let num = |i: usize, what: &str| parse_u64(what, text.get(i).copied().unwrap_or(""));
    let device_number = |i: usize, what: &str| {
        let t = text.get(i).copied().unwrap_or("");
        t.parse::<u32>()
            .map_err(|_| ParseError::bad_number(what, t))
    };
    let discards = if n >= 18 {
        Some(Discards {
            count: num(14, "discards")?,
            merged: num(15, "discards merged")?,
            sectors: num(16, "sectors discarded")?,
            ms: num(17, "discard ms")?,
        })
    } else {
        None
    };
    let flushes = if n >= 20 {
        Some(Flushes {
            count: num(18, "flushes")?,
            ms: num(19, "flush ms")?,
        })
    } else {
        None
    };
    Ok(DiskStat {
        major: device_number(0, "major")?,
        minor: device_number(1, "minor")?,
        name: text[2],
        reads: num(3, "reads")?,
        reads_merged: num(4, "reads merged")?,
        read_sectors: num(5, "sectors read")?,
        read_ms: num(6, "read ms")?,
        writes: num(7, "writes")?,
        writes_merged: num(8, "writes merged")?,
        written_sectors: num(9, "sectors written")?,
        write_ms: num(10, "write ms")?,
        in_flight: num(11, "in flight")?,
        io_ms: num(12, "io ms")?,
        weighted_io_ms: num(13, "weighted io ms")?,
        discards,
        flushes,
    })
}

/// Parses the whole of `/proc/diskstats`; blank lines are ignored, any bad
/// line fails the file.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStat<'_>>, ParseError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_diskstats_line)
        .collect()
}

fn cut(line: &str) -> &str {
    let mut end = line.len().min(80);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// How a counter's raw unit becomes the reported one.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Sectors,
    Millis,
}

impl Unit {
    /// The factor from the raw unit to the reported one.
    fn scale(self) -> f64 {
        match self {
            Unit::Count => 1.0,
            Unit::Sectors => 512.0,
            Unit::Millis => 0.001,
        }
    }
}

/// Every counter: total name, rate name, unit. The order matches
/// [`counters`]; the base ten come first, then discards, then flushes.
const COUNTERS: [(&str, &str, Unit); 16] = [
    ("reads_total", "reads_per_second", Unit::Count),
    ("reads_merged_total", "reads_merged_per_second", Unit::Count),
    ("read_bytes_total", "read_bytes_per_second", Unit::Sectors),
    (
        "read_time_seconds_total",
        "read_time_seconds_per_second",
        Unit::Millis,
    ),
    ("writes_total", "writes_per_second", Unit::Count),
    (
        "writes_merged_total",
        "writes_merged_per_second",
        Unit::Count,
    ),
    (
        "written_bytes_total",
        "written_bytes_per_second",
        Unit::Sectors,
    ),
    (
        "write_time_seconds_total",
        "write_time_seconds_per_second",
        Unit::Millis,
    ),
    (
        "io_time_seconds_total",
        "io_time_seconds_per_second",
        Unit::Millis,
    ),
    (
        "weighted_io_time_seconds_total",
        "weighted_io_time_seconds_per_second",
        Unit::Millis,
    ),
    ("discards_total", "discards_per_second", Unit::Count),
    (
        "discards_merged_total",
        "discards_merged_per_second",
        Unit::Count,
    ),
    (
        "discarded_bytes_total",
        "discarded_bytes_per_second",
        Unit::Sectors,
    ),
    (
        "discard_time_seconds_total",
        "discard_time_seconds_per_second",
        Unit::Millis,
    ),
    ("flushes_total", "flushes_per_second", Unit::Count),
    (
        "flush_time_seconds_total",
        "flush_time_seconds_per_second",
        Unit::Millis,
    ),
];

/// Index of `io_time_seconds` in [`COUNTERS`], for `utilization_percent`.
const IO_TIME: usize = 8;

/// The raw counters of `d` in [`COUNTERS`] order, and how many are present.
fn counters(d: &DiskStat<'_>) -> ([u64; 16], usize) {
    let mut v = [0u64; 16];
    let base = [
        d.reads,
        d.reads_merged,
        d.read_sectors,
        d.read_ms,
        d.writes,
        d.writes_merged,
        d.written_sectors,
        d.write_ms,
        d.io_ms,
        d.weighted_io_ms,
    ];
    v[..10].copy_from_slice(&base);
    let mut n = 10;
    if let Some(x) = d.discards {
        v[10..14].copy_from_slice(&[x.count, x.merged, x.sectors, x.ms]);
        n = 14;
        if let Some(f) = d.flushes {
            v[14..16].copy_from_slice(&[f.count, f.ms]);
            n = 16;
        }
    }
    (v, n)
}

/// Whether a device is reported, decided once per name.
struct Known {
    report: bool,
    seen: u64,
}

/// The `disk` collector.
pub struct Disk {
    path: source::KernelFile,
    roots: Roots,
    exclude: Patterns,
    partitions: bool,
    buf: String,
    rates: Rates<String>,
    known: HashMap<String, Known>,
    generation: u64,
}

impl Disk {
    /// A collector reading `diskstats` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Disk {
            path: source::KernelFile::new(settings.roots.proc("diskstats")),
            roots: settings.roots.clone(),
            exclude: settings.disk_exclude.clone(),
            partitions: settings.disk_partitions,
            buf: String::new(),
            rates: Rates::default(),
            known: HashMap::new(),
            generation: 0,
        }
    }

    /// Whether `name` is reported; asks sysfs only for names not seen before,
    /// so a steady set of devices costs no stat per cycle.
    fn reported(&mut self, name: &str) -> bool {
        let generation = self.generation;
        if let Some(k) = self.known.get_mut(name) {
            k.seen = generation;
            return k.report;
        }
        let report = !self.exclude.matches(name) && (self.partitions || !self.is_partition(name));
        self.known.insert(
            name.to_string(),
            Known {
                report,
                seen: generation,
            },
        );
        report
    }

    fn is_partition(&self, name: &str) -> bool {
        // sysfs spells the '/' of names like cciss/c0d0 as '!'.
        let sys_name = name.replace('/', "!");
        self.roots
            .sys(format!("class/block/{sys_name}/partition"))
            .exists()
    }
}

impl Collector for Disk {
    fn family(&self) -> Family {
        Family::Disk
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(&mut self.buf)?;
        let buf = std::mem::take(&mut self.buf);
        let result = self.emit(&buf, cycle, out);
        self.buf = buf;
        result
    }
}

impl Disk {
    fn emit(&mut self, text: &str, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        // Parse everything first so a bad line fails the cycle before any row.
        let stats = parse_diskstats(text).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        self.generation = self.generation.wrapping_add(1);
        for d in &stats {
            if !self.reported(d.name) {
                continue;
            }
            let (values, n) = counters(d);
            let values = &values[..n];
            let rates = self.rates.observe(d.name, cycle.at, values);
            let mut row = Row::new("disk", cycle.ts).tag("device", d.name);
            for (i, (&(total, rate_name, unit), &raw)) in COUNTERS.iter().zip(values).enumerate() {
                let rate = rates.get(i).copied().flatten();
                match unit {
                    Unit::Count => row.int(total, raw),
                    Unit::Sectors => row.int(total, raw.saturating_mul(512)),
                    Unit::Millis => row.float(total, raw as f64 / 1000.0),
                }
                row.float_opt(rate_name, rate.map(|r| r * unit.scale()));
            }
            row.int("in_flight", d.in_flight);
            // io_time advances by at most 1000 ms per second; the clamp hides
            // the jitter of sampling the counter and the clock separately.
            let busy = rates.get(IO_TIME).copied().flatten();
            row.float_opt(
                "utilization_percent",
                busy.map(|ms| (ms / 10.0).clamp(0.0, 100.0)),
            );
            out.push(row);
        }
        self.rates.sweep();
        if self.known.len() > stats.len() {
            let generation = self.generation;
            self.known.retain(|_, k| k.seen == generation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Value;
    use std::time::Duration;

    const DEBIAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/debian12-vm/proc/diskstats"
    );
    const EDGE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/edge-disks-mounts"
    );

    #[test]
    fn parses_the_captured_diskstats() {
        let text = std::fs::read_to_string(DEBIAN).unwrap();
        let stats = parse_diskstats(&text).unwrap();
        assert_eq!(stats.len(), 10);
        let vda = stats.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!((vda.major, vda.minor), (254, 0));
        assert_eq!(
            (vda.reads, vda.reads_merged, vda.read_sectors, vda.read_ms),
            (8893, 4637, 2506906, 7760)
        );
        assert_eq!(
            (
                vda.writes,
                vda.writes_merged,
                vda.written_sectors,
                vda.write_ms
            ),
            (1475, 12171, 1220528, 3211)
        );
        assert_eq!(
            (vda.in_flight, vda.io_ms, vda.weighted_io_ms),
            (0, 3804, 11190)
        );
        assert_eq!(
            vda.discards,
            Some(Discards {
                count: 3403,
                merged: 31,
                sectors: 40784,
                ms: 216
            })
        );
        assert_eq!(vda.flushes, Some(Flushes { count: 18, ms: 0 }));
    }

    #[test]
    fn old_kernels_have_no_discards_or_flushes() {
        let d = parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11").unwrap();
        assert_eq!((d.name, d.weighted_io_ms), ("sda", 11));
        assert_eq!((d.discards, d.flushes), (None, None));
        let d = parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15").unwrap();
        assert_eq!(d.discards.map(|x| x.ms), Some(15));
        assert_eq!(d.flushes, None);
        // 15-17 columns are no known format: the partial discard set is not reported.
        let d = parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13").unwrap();
        assert_eq!(d.discards, None);
    }

    #[test]
    fn future_columns_are_ignored() {
        let d = parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x y")
            .unwrap();
        assert_eq!(d.flushes, Some(Flushes { count: 16, ms: 17 }));
    }

    #[test]
    fn rejects_short_and_garbled_lines() {
        assert!(matches!(
            parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10"),
            Err(ParseError::Missing(_))
        ));
        assert!(parse_diskstats_line("8 0 sda 1 2 3 x 5 6 7 8 9 10 11").is_err());
        assert!(parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 -1 15").is_err());
        assert!(parse_diskstats_line("x 0 sda 1 2 3 4 5 6 7 8 9 10 11").is_err());
        assert!(parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 1 sda1 1\n").is_err());
        assert_eq!(parse_diskstats("\n  \n").unwrap(), vec![]);
    }

    #[test]
    fn huge_counters_saturate_instead_of_wrapping() {
        let max = u64::MAX;
        let line = format!("8 0 sda {max} {max} {max} {max} 0 0 0 0 0 0 0");
        let d = parse_diskstats_line(&line).unwrap();
        assert_eq!(d.read_sectors, max);
        assert_eq!(d.read_sectors.saturating_mul(512), max);
    }

    fn settings(dir: &str) -> Settings {
        Settings {
            roots: Roots::under(dir),
            ..Settings::default()
        }
    }

    fn f(row: &Row, name: &str) -> f64 {
        row.field(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .as_f64()
    }

    #[test]
    fn collects_twice_with_rates_on_the_second_run() {
        let mut disk = Disk::new(&settings(EDGE));
        let t0 = Cycle::now();
        let mut out = Vec::new();
        disk.collect(&t0, &mut out).unwrap();
        let names: Vec<_> = out.iter().map(|r| r.tag_value("device").unwrap()).collect();
        // loop0 and sr0 are excluded; sda1, nvme0n1p1 and cciss/c0d0p1 are partitions.
        assert_eq!(names, ["sda", "nvme0n1", "cciss/c0d0", "dm-0", "vdb"]);
        let sda = &out[0];
        assert_eq!(sda.table, "disk");
        assert_eq!(sda.field("reads_total"), Some(Value::Int(15_000)));
        assert_eq!(
            sda.field("read_bytes_total"),
            Some(Value::Int(4_000_000 * 512))
        );
        assert_eq!(f(sda, "read_time_seconds_total"), 12.5);
        assert!(out.iter().all(|r| r.field("reads_per_second").is_none()));
        assert!(out.iter().all(|r| r.field("utilization_percent").is_none()));
        // 14 columns: no discard or flush fields.
        let cciss = &out[2];
        assert!(cciss.field("discards_total").is_none());
        assert!(cciss.field("flushes_total").is_none());
        assert!(cciss.field("io_time_seconds_total").is_some());
        // 18 columns: discards but no flushes.
        let dm = &out[3];
        assert!(dm.field("discards_total").is_some());
        assert!(dm.field("flushes_total").is_none());
        // Huge counters: the byte count saturates.
        let vdb = &out[4];
        assert_eq!(vdb.field("read_bytes_total"), Some(Value::Int(u64::MAX)));
        assert_eq!(vdb.field("reads_total"), Some(Value::Int(u64::MAX)));

        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        out.clear();
        disk.collect(&t1, &mut out).unwrap();
        // Same file: every rate is zero, and present.
        let sda = &out[0];
        assert_eq!(f(sda, "reads_per_second"), 0.0);
        assert_eq!(f(sda, "read_bytes_per_second"), 0.0);
        assert_eq!(f(sda, "read_time_seconds_per_second"), 0.0);
        assert_eq!(f(sda, "flush_time_seconds_per_second"), 0.0);
        assert_eq!(f(sda, "utilization_percent"), 0.0);
        assert_eq!(sda.field("in_flight"), Some(Value::Int(3)));
    }

    #[test]
    fn collects_the_captured_tree() {
        let mut disk = Disk::new(&settings(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm"
        )));
        let mut out = Vec::new();
        disk.collect(&Cycle::now(), &mut out).unwrap();
        let names: Vec<_> = out.iter().map(|r| r.tag_value("device").unwrap()).collect();
        assert_eq!(names, ["vda", "zram0"]);
        assert_eq!(
            out[0].field("written_bytes_total"),
            Some(Value::Int(1_220_528 * 512))
        );
        assert_eq!(
            out[0].field("discarded_bytes_total"),
            Some(Value::Int(40_784 * 512))
        );
        assert_eq!(f(&out[0], "io_time_seconds_total"), 3.804);
        assert_eq!(out[0].field("flushes_total"), Some(Value::Int(18)));
    }

    #[test]
    fn rates_and_utilization_follow_the_counters() {
        let dir = std::env::temp_dir().join(format!("hostpulse-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        let write = |io_ms: u64, sectors: u64| {
            let line = format!("8 0 sda 100 0 {sectors} 1000 0 0 0 0 0 {io_ms} 0 0 0 0 0 0 0\n");
            std::fs::write(dir.join("proc/diskstats"), line).unwrap();
        };
        let mut disk = Disk::new(&settings(dir.to_str().unwrap()));
        let t0 = Cycle::now();
        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        let t2 = Cycle {
            ts: t1.ts + 2_000_000_000,
            at: t1.at + Duration::from_secs(2),
        };
        let mut out = Vec::new();
        write(1000, 0);
        disk.collect(&t0, &mut out).unwrap();
        write(2000, 4096);
        out.clear();
        disk.collect(&t1, &mut out).unwrap();
        assert_eq!(f(&out[0], "utilization_percent"), 50.0);
        assert_eq!(f(&out[0], "io_time_seconds_per_second"), 0.5);
        assert_eq!(f(&out[0], "read_bytes_per_second"), 4096.0 * 512.0 / 2.0);
        // More busy time than wall time (counter and clock sampled apart): clamped.
        write(10_000, 4096);
        out.clear();
        disk.collect(&t2, &mut out).unwrap();
        assert_eq!(f(&out[0], "utilization_percent"), 100.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn partitions_are_reported_when_asked_and_gone_devices_are_forgotten() {
        let mut s = settings(EDGE);
        s.disk_partitions = true;
        let mut disk = Disk::new(&s);
        let mut out = Vec::new();
        disk.collect(&Cycle::now(), &mut out).unwrap();
        let names: Vec<_> = out.iter().map(|r| r.tag_value("device").unwrap()).collect();
        assert!(names.contains(&"sda1") && names.contains(&"cciss/c0d0p1"));
        assert!(!names.contains(&"loop0"));
        // Forgetting: feed a smaller file through the same collector.
        let text = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n".to_string();
        out.clear();
        disk.emit(&text, &Cycle::now(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(disk.known.len(), 1);
        assert_eq!(disk.rates.len(), 1);
    }

    #[test]
    fn missing_file_is_unavailable() {
        let mut disk = Disk::new(&settings("/nonexistent-hostpulse"));
        assert!(matches!(
            disk.collect(&Cycle::now(), &mut Vec::new()),
            Err(CollectError::Unavailable { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_diskstats(&source::lossy(&bytes));
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(
            major in 0u32..4096, minor in 0u32..1_048_576,
            name in "[a-z][a-z0-9!/_-]{0,15}",
            nums in proptest::collection::vec(proptest::num::u64::ANY, 11..=17),
        ) {
            let cols: Vec<String> = nums.iter().map(u64::to_string).collect();
            let line = format!("{major:>4} {minor:>7} {name} {}", cols.join(" "));
            let d = parse_diskstats_line(&line).unwrap();
            proptest::prop_assert_eq!((d.major, d.minor, d.name), (major, minor, name.as_str()));
            let (values, n) = counters(&d);
            proptest::prop_assert_eq!(values[0], nums[0]);
            proptest::prop_assert_eq!(d.in_flight, nums[8]);
            proptest::prop_assert_eq!(d.weighted_io_ms, nums[10]);
            let expect_n = match nums.len() { 11..=14 => 10, 15 | 16 => 14, _ => 16 };
            proptest::prop_assert_eq!(n, expect_n);
            if n >= 14 {
                proptest::prop_assert_eq!(values[13], nums[14]);
            }
        }
    }
}
