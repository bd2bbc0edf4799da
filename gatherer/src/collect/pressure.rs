//! `pressure`: pressure stall information (PSI) from `/proc/pressure/*`.
//!
//! One row per resource, table `pressure`, tag `resource`: `cpu`, `memory`,
//! `io`, and `irq` on kernels that account IRQ pressure (6.1+ with
//! `CONFIG_IRQ_TIME_ACCOUNTING`). A resource whose file is absent is skipped.
//!
//! `some` is the share of time at least one runnable task was stalled on the
//! resource; `full` the share of time all non-idle tasks were stalled at once
//! (productivity lost outright). Fields, for each of `some_` and `full_`, each
//! set present when the kernel prints that line: `cpu` has no `full` line
//! before 5.13 (and a zero one at the system level since), `irq` has only a
//! `full` line:
//!
//! - `some_avg10_percent`, `some_avg60_percent`, `some_avg300_percent`: the
//!   kernel's running averages over 10 s, 60 s and 300 s, in percent of wall time.
//! - `some_stall_seconds_total`: cumulative stall time, in seconds (the kernel
//!   counts microseconds; float).
//! - `some_stall_seconds_per_second`: from the second sample on, seconds stalled
//!   per second of wall time over the last interval (0..1, a fraction rather
//!   than a percent).
//!
//! A kernel without PSI (`/proc/pressure` absent) or with PSI disabled at boot
//! (`psi=0`: the files exist but reading them fails with EOPNOTSUPP) disables
//! the family.

use std::path::PathBuf;

use super::error::{CollectError, ParseError, parse_f64, parse_u64};
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// `EOPNOTSUPP` on Linux: PSI compiled in but switched off with `psi=0`.
const EOPNOTSUPP: i32 = 95;

/// The resources, in output order.
const RESOURCES: [&str; 4] = ["cpu", "memory", "io", "irq"];

/// One `some` or `full` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureRecord {
    /// Percent of the last 10 s stalled.
    pub avg10: f64,
    /// Percent of the last 60 s stalled.
    pub avg60: f64,
    /// Percent of the last 300 s stalled.
    pub avg300: f64,
    /// Cumulative stall time, microseconds.
    pub total_us: u64,
}

/// The parsed content of one `/proc/pressure/<resource>` file; at least one
/// of the two lines is present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureSample {
    /// The `some` line (absent for `irq`).
    pub some: Option<PressureRecord>,
    /// The `full` line, when the kernel prints one.
    pub full: Option<PressureRecord>,
}

/// Parses one PSI file:
///
/// ```text
/// some avg10=0.35 avg60=0.63 avg300=0.36 total=2387105
/// full avg10=0.35 avg60=0.63 avg300=0.35 total=2263353
/// ```
///
/// Our own parser rather than procfs's: procfs requires both lines (`cpu`
/// has no `full` line before 5.13, `irq` no `some` line), reads the averages
/// as `f32`, and slices the line at a fixed byte offset (a panic on a short
/// line). Unknown lines and unknown `key=value` pairs (future kernels) are
/// ignored; a file with neither line, or a line missing a key, is an error.
pub fn parse_pressure(text: &str) -> Result<PressureSample, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        *slot = Some(parse_record(words)?);
    }
    if some.is_none() && full.is_none() {
        return Err(ParseError::missing("PSI \"some\" or \"full\" line"));
    }
    Ok(PressureSample { some, full })
}

fn parse_record<'a>(pairs: impl Iterator<Item = &'a str>) -> Result<PressureRecord, ParseError> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        match key {
            "avg10" => avg10 = Some(parse_f64("PSI avg10", value)?),
            "avg60" => avg60 = Some(parse_f64("PSI avg60", value)?),
            "avg300" => avg300 = Some(parse_f64("PSI avg300", value)?),
            "total" => total = Some(parse_u64("PSI total", value)?),
            _ => {}
        }
    }
    let need =
        |v: Option<f64>, what: &str| v.ok_or_else(|| ParseError::missing(format!("PSI {what}")));
    Ok(PressureRecord {
        avg10: need(avg10, "avg10")?,
        avg60: need(avg60, "avg60")?,
        avg300: need(avg300, "avg300")?,
        total_us: total.ok_or_else(|| ParseError::missing("PSI total"))?,
    })
}

/// Field names of one line kind.
struct Names {
    avg10: &'static str,
    avg60: &'static str,
    avg300: &'static str,
    total: &'static str,
    rate: &'static str,
}

const SOME: Names = Names {
    avg10: "some_avg10_percent",
    avg60: "some_avg60_percent",
    avg300: "some_avg300_percent",
    total: "some_stall_seconds_total",
    rate: "some_stall_seconds_per_second",
};

const FULL: Names = Names {
    avg10: "full_avg10_percent",
    avg60: "full_avg60_percent",
    avg300: "full_avg300_percent",
    total: "full_stall_seconds_total",
    rate: "full_stall_seconds_per_second",
};

fn push_record(row: &mut Row, names: &Names, r: &PressureRecord, rate_us: Option<f64>) {
    row.float(names.avg10, r.avg10);
    row.float(names.avg60, r.avg60);
    row.float(names.avg300, r.avg300);
    row.float(names.total, r.total_us as f64 / 1e6);
    row.float_opt(names.rate, rate_us.map(|us| us / 1e6));
}

/// The `pressure` collector.
pub struct Pressure {
    dir: PathBuf,
    paths: [source::KernelFile; 4],
    /// Resources whose file was absent: which PSI files exist is fixed when
    /// the kernel is built (`irq` needs IRQ time accounting), so an absent
    /// one is not looked up again every cycle.
    absent: [bool; 4],
    buf: String,
    rates: Rates<&'static str>,
}

impl Pressure {
    /// A collector reading `pressure/*` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        let dir = settings.roots.proc("pressure");
        Pressure {
            paths: RESOURCES.map(|r| source::KernelFile::new(dir.join(r))),
            absent: [false; 4],
            dir,
            buf: String::new(),
            rates: Rates::default(),
        }
    }
}

/// Maps the EOPNOTSUPP of a kernel booted with `psi=0` to
/// [`CollectError::Unavailable`]; other errors pass through.
fn psi_switched_off(e: CollectError) -> CollectError {
    match e {
        CollectError::Read { path, source } if source.raw_os_error() == Some(EOPNOTSUPP) => {
            CollectError::Unavailable { path }
        }
        e => e,
    }
}

/// Reads and parses one resource; `Ok(None)` when its file is absent.
fn read(
    file: &mut source::KernelFile,
    buf: &mut String,
) -> Result<Option<PressureSample>, CollectError> {
    match file.read_into(buf) {
        Ok(()) => {}
        Err(CollectError::Unavailable { .. }) => return Ok(None),
        Err(e) => return Err(psi_switched_off(e)),
    }
    parse_pressure(buf)
        .map(Some)
        .map_err(|source| CollectError::Parse {
            path: file.path().to_path_buf(),
            source,
        })
}

impl Collector for Pressure {
    fn family(&self) -> Family {
        Family::Pressure
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        let mut first_error = None;
        let mut found = 0;
        let files = self.paths.iter_mut().zip(&mut self.absent);
        for (resource, (path, absent)) in RESOURCES.into_iter().zip(files) {
            if *absent {
                continue;
            }
            let sample = match read(path, &mut self.buf) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    *absent = true;
                    continue;
                }
                // psi=0 answers the same for every file: stop at once.
                Err(e @ CollectError::Unavailable { .. }) => return Err(e),
                Err(e) => {
                    // One bad file must not hide the others.
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            found += 1;
            // An absent line holds its slot with a 0 whose rate is never shown.
            let total = |r: Option<PressureRecord>| r.map_or(0, |r| r.total_us);
            let totals = [total(sample.some), total(sample.full)];
            let rates = self.rates.observe(&resource, cycle.at, &totals);
            let mut row = Row::new("pressure", cycle.ts).tag("resource", resource);
            if let Some(some) = &sample.some {
                push_record(&mut row, &SOME, some, rates.first().copied().flatten());
            }
            if let Some(full) = &sample.full {
                push_record(&mut row, &FULL, full, rates.get(1).copied().flatten());
            }
            out.push(row);
        }
        self.rates.sweep();
        if let Some(e) = first_error {
            return Err(e);
        }
        if found == 0 && !self.dir.is_dir() {
            return Err(CollectError::Unavailable {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use std::time::Duration;

    const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/debian12-vm");
    const EDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edge-psi-hwmon");

    fn settings(dir: &str) -> Settings {
        Settings {
            roots: Roots::under(dir),
            ..Settings::default()
        }
    }

    fn f(row: &Row, name: &str) -> Option<f64> {
        row.field(name).map(|v| v.as_f64())
    }

    #[test]
    fn parses_the_captured_files() {
        let io = std::fs::read_to_string(format!("{DEBIAN}/proc/pressure/io")).unwrap();
        let s = parse_pressure(&io).unwrap();
        let some = s.some.unwrap();
        assert_eq!(some.avg10, 0.35);
        assert_eq!(some.avg300, 0.36);
        assert_eq!(some.total_us, 2_387_105);
        assert_eq!(s.full.unwrap().total_us, 2_263_353);
        let cpu = std::fs::read_to_string(format!("{DEBIAN}/proc/pressure/cpu")).unwrap();
        let s = parse_pressure(&cpu).unwrap();
        assert_eq!(s.some.unwrap().avg60, 3.07);
        assert_eq!(s.full.unwrap().total_us, 0);
    }

    #[test]
    fn collects_the_captured_tree() {
        let mut p = Pressure::new(&settings(DEBIAN));
        let mut out = Vec::new();
        p.collect(&Cycle::now(), &mut out).unwrap();
        let names: Vec<_> = out
            .iter()
            .map(|r| r.tag_value("resource").unwrap())
            .collect();
        assert_eq!(names, ["cpu", "memory", "io"]);
        assert_eq!(f(&out[0], "some_stall_seconds_total"), Some(6.257));
        assert_eq!(f(&out[0], "full_stall_seconds_total"), Some(0.0));
        assert_eq!(f(&out[2], "full_avg300_percent"), Some(0.35));
    }

    #[test]
    fn old_cpu_file_has_no_full_line() {
        let s = parse_pressure("some avg10=1.00 avg60=2.00 avg300=3.00 total=42\n").unwrap();
        assert_eq!(s.full, None);
        assert_eq!(s.some.unwrap().total_us, 42);
    }

    #[test]
    fn irq_file_has_only_a_full_line() {
        let s = parse_pressure("full avg10=0.10 avg60=0.20 avg300=0.30 total=7\n").unwrap();
        assert_eq!(s.some, None);
        assert_eq!(s.full.unwrap().avg300, 0.30);
    }

    #[test]
    fn extra_keys_and_lines_are_ignored_missing_ones_are_not() {
        let s = parse_pressure("some avg10=1 avg60=2 avg300=3 avg900=4 total=5\nbogus\n").unwrap();
        assert_eq!(s.some.unwrap().avg300, 3.0);
        assert!(parse_pressure("").is_err());
        assert!(parse_pressure("some").is_err());
        assert!(parse_pressure("full").is_err());
        assert!(parse_pressure("avg10=1 avg60=2 avg300=3 total=5").is_err());
        assert!(parse_pressure("some avg10=1 avg60=2 total=5").is_err());
        assert!(parse_pressure("some avg10=x avg60=2 avg300=3 total=5").is_err());
        assert!(parse_pressure("some avg10=1 avg60=2 avg300=3 total=-5").is_err());
        assert!(parse_pressure("some avg10=nan avg60=2 avg300=3 total=5").is_err());
    }

    #[test]
    fn collects_twice_with_rates_on_the_second_run() {
        let mut p = Pressure::new(&settings(EDGE));
        let t0 = Cycle::now();
        let mut out = Vec::new();
        p.collect(&t0, &mut out).unwrap();
        let names: Vec<_> = out
            .iter()
            .map(|r| r.tag_value("resource").unwrap())
            .collect();
        assert_eq!(names, ["cpu", "memory", "io", "irq"]);
        let cpu = &out[0];
        assert_eq!(cpu.table, "pressure");
        assert_eq!(f(cpu, "some_avg10_percent"), Some(2.5));
        assert_eq!(f(cpu, "some_stall_seconds_total"), Some(123.457));
        assert_eq!(f(cpu, "full_avg10_percent"), None);
        assert_eq!(f(cpu, "some_stall_seconds_per_second"), None);
        let irq = &out[3];
        assert_eq!(f(irq, "some_avg10_percent"), None);
        assert_eq!(f(irq, "full_avg10_percent"), Some(0.12));
        let io = &out[2];
        assert_eq!(f(io, "full_stall_seconds_total"), Some(1.5));
        assert_eq!(f(io, "full_stall_seconds_per_second"), None);

        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        out.clear();
        p.collect(&t1, &mut out).unwrap();
        assert_eq!(f(&out[0], "some_stall_seconds_per_second"), Some(0.0));
        assert_eq!(f(&out[0], "full_stall_seconds_per_second"), None);
        assert_eq!(f(&out[2], "full_stall_seconds_per_second"), Some(0.0));
        assert_eq!(f(&out[3], "full_stall_seconds_per_second"), Some(0.0));
        assert_eq!(f(&out[3], "some_stall_seconds_per_second"), None);
    }

    #[test]
    fn stall_rate_is_a_fraction_of_wall_time() {
        let dir = std::env::temp_dir().join(format!("hostpulse-psi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc/pressure")).unwrap();
        let write = |us: u64| {
            let text = format!(
                "some avg10=0 avg60=0 avg300=0 total={us}\nfull avg10=0 avg60=0 avg300=0 total=0\n"
            );
            std::fs::write(dir.join("proc/pressure/memory"), text).unwrap();
        };
        let mut p = Pressure::new(&settings(dir.to_str().unwrap()));
        let t0 = Cycle::now();
        let t1 = Cycle {
            ts: t0.ts + 2_000_000_000,
            at: t0.at + Duration::from_secs(2),
        };
        let mut out = Vec::new();
        write(1_000_000);
        p.collect(&t0, &mut out).unwrap();
        write(1_500_000);
        out.clear();
        p.collect(&t1, &mut out).unwrap();
        // Only memory exists: the other resources are skipped.
        assert_eq!(out.len(), 1);
        assert_eq!(f(&out[0], "some_stall_seconds_per_second"), Some(0.25));
        assert_eq!(f(&out[0], "full_stall_seconds_per_second"), Some(0.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_pressure_directory_is_unavailable() {
        let mut p = Pressure::new(&settings(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/edge-disks-mounts"
        )));
        assert!(matches!(
            p.collect(&Cycle::now(), &mut Vec::new()),
            Err(CollectError::Unavailable { .. })
        ));
    }

    #[test]
    fn psi_disabled_at_boot_is_unavailable() {
        let read = |errno| CollectError::Read {
            path: PathBuf::from("/proc/pressure/cpu"),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert!(matches!(
            psi_switched_off(read(95)),
            CollectError::Unavailable { .. }
        ));
        assert!(matches!(
            psi_switched_off(read(13)),
            CollectError::Read { .. }
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_pressure(&source::lossy(&bytes));
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(
            a in 0u32..10_000, b in 0u32..10_000, c in 0u32..10_000,
            total in proptest::num::u64::ANY, full_total in proptest::option::of(proptest::num::u64::ANY),
        ) {
            let avg = |x: u32| format!("{}.{:02}", x / 100, x % 100);
            let mut text = format!("some avg10={} avg60={} avg300={} total={total}\n", avg(a), avg(b), avg(c));
            if let Some(t) = full_total {
                text.push_str(&format!("full avg10=0.00 avg60=0.00 avg300=0.00 total={t}\n"));
            }
            let s = parse_pressure(&text).unwrap();
            let some = s.some.unwrap();
            proptest::prop_assert_eq!(some.avg10, f64::from(a) / 100.0);
            proptest::prop_assert_eq!(some.avg300, f64::from(c) / 100.0);
            proptest::prop_assert_eq!(some.total_us, total);
            proptest::prop_assert_eq!(s.full.map(|f| f.total_us), full_total);
        }
    }
}
