//! `system`: uptime, boot time and entropy.
//!
//! Table `system`, no tags, one row per cycle:
//!
//! - `uptime_seconds` (first number of `{procfs}/uptime`): float seconds since
//!   boot, including time spent suspended. The family's source: without the
//!   file the family is disabled.
//! - `boot_time_seconds` (`btime` line of `{procfs}/stat`): the boot instant
//!   as whole Unix seconds. The kernel derives it from the wall clock, so it
//!   moves when the clock is stepped. `stat` is long on big hosts and `btime`
//!   almost never changes, so it is re-read only every `facts_refresh` (60 s
//!   by default) and the last value reported in between. Omitted if `stat` is
//!   absent or has no `btime`.
//! - `entropy_available_bits` (`{procfs}/sys/kernel/random/entropy_avail`):
//!   the kernel's entropy estimate for its random pool. Since Linux 5.18 it is
//!   always 256 (the pool no longer depletes); on older kernels low values
//!   could stall readers of `/dev/random`. Omitted when the file is absent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::{CollectError, ParseError, parse_f64, parse_u64};
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// Parses `/proc/uptime` (`418.59 733.28`) into seconds since boot.
///
/// Written here because procfs's `Uptime` accepts `NaN`, `inf` and negative
/// numbers.
pub fn parse_uptime(text: &str) -> Result<f64, ParseError> {
    let first = text
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| ParseError::missing("uptime"))?;
    match parse_f64("uptime", first)? {
        v if v >= 0.0 => Ok(v),
        _ => Err(ParseError::bad_number("uptime", first)),
    }
}

/// Parses the `btime` line of `/proc/stat` into Unix seconds.
pub fn parse_btime(text: &str) -> Result<u64, ParseError> {
    for line in text.lines() {
        let mut cols = line.split_ascii_whitespace();
        if cols.next() == Some("btime") {
            let value = cols
                .next()
                .ok_or_else(|| ParseError::missing("btime value"))?;
            return parse_u64("btime", value);
        }
    }
    Err(ParseError::missing("btime"))
}

/// Parses `entropy_avail` (one number).
pub fn parse_entropy(text: &str) -> Result<u64, ParseError> {
    parse_u64("entropy_avail", text.trim_ascii())
}

/// The `system` collector.
pub struct System {
    uptime: source::KernelFile,
    stat: PathBuf,
    entropy: source::KernelFile,
    buf: String,
    boot_time_refresh: Duration,
    /// When `btime` was last read, and what it was.
    boot_time: Option<(Instant, Option<u64>)>,
}

impl System {
    /// A collector reading `uptime`, `stat` and `entropy_avail` under the
    /// configured procfs.
    pub fn new(settings: &Settings) -> Self {
        System {
            uptime: source::KernelFile::new(settings.roots.proc("uptime")),
            stat: settings.roots.proc("stat"),
            entropy: source::KernelFile::new(
                settings.roots.proc("sys/kernel/random/entropy_avail"),
            ),
            buf: String::new(),
            boot_time_refresh: settings.facts_refresh,
            boot_time: None,
        }
    }

    fn boot_time(&mut self, at: Instant) -> Option<u64> {
        match self.boot_time {
            Some((read_at, value))
                if at.saturating_duration_since(read_at) < self.boot_time_refresh =>
            {
                value
            }
            _ => {
                let value = source::read_into(&self.stat, &mut self.buf)
                    .ok()
                    .and_then(|()| {
                        parse_btime(&self.buf)
                            .inspect_err(
                                |error| tracing::debug!(%error, "system: boot time omitted"),
                            )
                            .ok()
                    });
                self.boot_time = Some((at, value));
                value
            }
        }
    }
}

impl Collector for System {
    fn family(&self) -> Family {
        Family::System
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.uptime.read_into(&mut self.buf)?;
        let uptime = parse_uptime(&self.buf).map_err(|source| CollectError::Parse {
            path: self.uptime.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("system", cycle.ts);
        row.float("uptime_seconds", uptime);
        let boot_time = self.boot_time(cycle.at);
        row.int_opt("boot_time_seconds", boot_time);
        let entropy = self
            .entropy
            .read_into(&mut self.buf)
            .ok()
            .and_then(|()| parse_entropy(&self.buf).ok());
        row.int_opt("entropy_available_bits", entropy);
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;

    use crate::collect::fixtures::settings as fixture;

    fn run_twice(settings: &Settings) -> (Row, Row) {
        crate::collect::fixtures::run_twice(&mut System::new(settings))
    }

    #[test]
    fn parses_the_captured_files() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm/proc/"
        );
        let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
        assert_eq!(parse_uptime(&read("uptime")), Ok(418.59));
        assert_eq!(parse_btime(&read("stat")), Ok(1_795_560_027));
        assert_eq!(
            parse_entropy(&read("sys/kernel/random/entropy_avail")),
            Ok(256)
        );
    }

    #[test]
    fn collector_on_the_captured_tree() {
        let (first, second) = run_twice(&fixture("debian12-vm"));
        assert_eq!(first.table, "system");
        assert!(first.tags.is_empty());
        assert_eq!(
            first.fields,
            [
                ("uptime_seconds", Value::Float(418.59)),
                ("boot_time_seconds", Value::Int(1_795_560_027)),
                ("entropy_available_bits", Value::Int(256)),
            ]
        );
        assert_eq!(first.fields, second.fields);
    }

    #[test]
    fn the_edge_trees() {
        let (_, old) = run_twice(&fixture("edge-old-kernel"));
        assert_eq!(
            old.field("boot_time_seconds"),
            Some(Value::Int(1_199_181_600))
        );
        assert_eq!(old.field("entropy_available_bits"), Some(Value::Int(3_605)));
        let (_, huge) = run_twice(&fixture("edge-huge-counters-a"));
        assert_eq!(huge.field("boot_time_seconds"), Some(Value::Int(u64::MAX)));
        assert!(huge.field("uptime_seconds").is_some());
    }

    #[test]
    fn boot_time_is_cached_until_the_refresh_interval() {
        let dir = std::env::temp_dir().join(format!("hostpulse-system-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(dir.join("proc/uptime"), "5.00 1.00\n").unwrap();
        std::fs::write(dir.join("proc/stat"), "btime 100\n").unwrap();
        let settings = Settings {
            roots: Roots::under(&dir),
            facts_refresh: Duration::from_secs(60),
            ..Settings::default()
        };
        let mut c = System::new(&settings);
        let t0 = Instant::now();
        let mut out = Vec::new();
        c.collect(&Cycle { ts: 1, at: t0 }, &mut out).unwrap();
        std::fs::write(dir.join("proc/stat"), "btime 101\n").unwrap();
        c.collect(
            &Cycle {
                ts: 2,
                at: t0 + Duration::from_secs(10),
            },
            &mut out,
        )
        .unwrap();
        c.collect(
            &Cycle {
                ts: 3,
                at: t0 + Duration::from_secs(60),
            },
            &mut out,
        )
        .unwrap();
        std::fs::remove_file(dir.join("proc/stat")).unwrap();
        c.collect(
            &Cycle {
                ts: 4,
                at: t0 + Duration::from_secs(120),
            },
            &mut out,
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let boot: Vec<_> = out.iter().map(|r| r.field("boot_time_seconds")).collect();
        assert_eq!(
            boot,
            [
                Some(Value::Int(100)),
                Some(Value::Int(100)),
                Some(Value::Int(101)),
                None
            ]
        );
        assert!(
            out.iter()
                .all(|r| r.field("entropy_available_bits").is_none())
        );
    }

    #[test]
    fn a_missing_uptime_disables_the_family() {
        let mut c = System::new(&fixture("no-such-tree"));
        let err = c.collect(&Cycle::now(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    #[test]
    fn truncated_and_garbage_input_is_rejected() {
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("NaN 1").is_err());
        assert!(parse_uptime("inf 1").is_err());
        assert!(parse_uptime("-3.0 1").is_err());
        assert_eq!(parse_uptime("12"), Ok(12.0));
        assert_eq!(
            parse_btime("cpu 1 2 3 4\n"),
            Err(ParseError::missing("btime"))
        );
        assert!(parse_btime("btime\n").is_err());
        assert!(parse_btime("btime -5\n").is_err());
        assert!(parse_btime("btimex 5\n").is_err());
        assert!(parse_entropy("lots").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_uptime(&text);
            let _ = parse_btime(&text);
            let _ = parse_entropy(&text);
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(up in 0.0f64..1e12, btime: u64, entropy: u64) {
            proptest::prop_assert_eq!(parse_uptime(&format!("{up} {up}\n")), Ok(up));
            let stat = format!("cpu  1 2 3 4\nctxt 9\nbtime {btime}\nprocesses 3\n");
            proptest::prop_assert_eq!(parse_btime(&stat), Ok(btime));
            proptest::prop_assert_eq!(parse_entropy(&format!("{entropy}\n")), Ok(entropy));
        }
    }
}
