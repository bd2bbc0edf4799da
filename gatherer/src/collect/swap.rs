//! `swap`: swap space from `/proc/meminfo` and swap traffic from `/proc/vmstat`.
//!
//! Table `swap`, no tags, one row per cycle. From `{procfs}/meminfo` (kB
//! times 1024, saturating):
//!
//! - `total_bytes` (`SwapTotal`): all swap devices and files together (0 when
//!   the host has no swap).
//! - `free_bytes` (`SwapFree`): swap space not in use.
//! - `used_bytes`: `total_bytes - free_bytes` (0 if negative); includes the
//!   swap cache.
//! - `used_percent`: `used_bytes` as a percentage of `total_bytes`; omitted
//!   when there is no swap.
//! - `cached_bytes` (`SwapCached`): pages swapped back in whose swap copy is
//!   kept, so they can be dropped again without IO.
//!
//! From `{procfs}/vmstat`, counters since boot:
//!
//! - `in_pages_total`, `in_pages_per_second` (`pswpin`): pages read from swap.
//! - `out_pages_total`, `out_pages_per_second` (`pswpout`): pages written to swap.
//!
//! These are pages (usually 4 KiB), not KiB. The `_per_second` rates appear
//! from the second sample on.
//!
//! `meminfo` is the family's source: without it the family is disabled, and a
//! meminfo without `SwapTotal` or `SwapFree` is a parse error. `vmstat` is
//! secondary: when it is missing, unreadable or malformed the row is reported
//! without the in/out fields.

use super::error::{CollectError, ParseError};
use super::memory::{kb_to_bytes, parse_meminfo_keys};
use super::rates::Rates;
use super::vmstat::parse_vmstat_keys;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// Swap space from one `/proc/meminfo` reading, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapSpace {
    /// `SwapTotal`.
    pub total_bytes: u64,
    /// `SwapFree`.
    pub free_bytes: u64,
    /// `SwapCached`, when present.
    pub cached_bytes: Option<u64>,
}

impl SwapSpace {
    /// `total - free`, never negative.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.free_bytes)
    }

    /// `used` as a percentage of total; `None` without swap.
    pub fn used_percent(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| self.used_bytes() as f64 / self.total_bytes as f64 * 100.0)
    }
}

/// Parses the swap lines of `/proc/meminfo`.
pub fn parse_swap_meminfo(text: &str) -> Result<SwapSpace, ParseError> {
    let [total, free, cached] = parse_meminfo_keys(text, &["SwapTotal", "SwapFree", "SwapCached"])?;
    Ok(SwapSpace {
        total_bytes: kb_to_bytes(total.ok_or_else(|| ParseError::missing("SwapTotal"))?),
        free_bytes: kb_to_bytes(free.ok_or_else(|| ParseError::missing("SwapFree"))?),
        cached_bytes: cached.map(kb_to_bytes),
    })
}

/// Swap traffic from one `/proc/vmstat` reading, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapTraffic {
    /// `pswpin`: pages swapped in since boot.
    pub in_pages: u64,
    /// `pswpout`: pages swapped out since boot.
    pub out_pages: u64,
}

/// Parses the swap counters of `/proc/vmstat`; both are required.
pub fn parse_swap_vmstat(text: &str) -> Result<SwapTraffic, ParseError> {
    let [pswpin, pswpout] = parse_vmstat_keys(text, &["pswpin", "pswpout"])?;
    Ok(SwapTraffic {
        in_pages: pswpin.ok_or_else(|| ParseError::missing("pswpin"))?,
        out_pages: pswpout.ok_or_else(|| ParseError::missing("pswpout"))?,
    })
}

/// The `swap` collector.
pub struct Swap {
    meminfo: source::CycleFile,
    vmstat: source::CycleFile,
    buf: String,
    rates: Rates<()>,
}

impl Swap {
    /// A collector reading `meminfo` and `vmstat` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Swap {
            meminfo: settings.shared_files.file(settings.roots.proc("meminfo")),
            vmstat: settings.shared_files.file(settings.roots.proc("vmstat")),
            buf: String::new(),
            rates: Rates::default(),
        }
    }

    fn traffic(&mut self, cycle: &Cycle) -> Option<SwapTraffic> {
        let read = self.vmstat.read_into(cycle.at, &mut self.buf);
        let parsed = read.and_then(|()| {
            parse_swap_vmstat(&self.buf).map_err(|source| CollectError::Parse {
                path: self.vmstat.path().to_path_buf(),
                source,
            })
        });
        parsed
            .inspect_err(|error| tracing::debug!(%error, "swap: reporting without in/out pages"))
            .ok()
    }
}

impl Collector for Swap {
    fn family(&self) -> Family {
        Family::Swap
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.meminfo.read_into(cycle.at, &mut self.buf)?;
        let space = parse_swap_meminfo(&self.buf).map_err(|source| CollectError::Parse {
            path: self.meminfo.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("swap", cycle.ts);
        row.int("total_bytes", space.total_bytes);
        row.int("free_bytes", space.free_bytes);
        row.int("used_bytes", space.used_bytes());
        row.float_opt("used_percent", space.used_percent());
        row.int_opt("cached_bytes", space.cached_bytes);
        if let Some(t) = self.traffic(cycle) {
            row.int("in_pages_total", t.in_pages);
            row.int("out_pages_total", t.out_pages);
            if let [rate_in, rate_out] =
                *self
                    .rates
                    .observe(&(), cycle.at, &[t.in_pages, t.out_pages])
            {
                row.float_opt("in_pages_per_second", rate_in);
                row.float_opt("out_pages_per_second", rate_out);
            }
        }
        self.rates.sweep();
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;
    use std::time::{Duration, Instant};

    use crate::collect::fixtures::settings as fixture;

    fn run_twice(settings: &Settings) -> (Row, Row) {
        crate::collect::fixtures::run_twice(&mut Swap::new(settings))
    }

    /// A fixture tree in a temporary directory, removed on drop.
    struct TempTree(std::path::PathBuf);

    impl TempTree {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("hostpulse-swap-{}-{name}", std::process::id()));
            for (path, text) in files {
                let path = dir.join("proc").join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            TempTree(dir)
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn parses_the_captured_files() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm/proc/"
        );
        let mem = std::fs::read_to_string(format!("{dir}meminfo")).unwrap();
        let space = parse_swap_meminfo(&mem).unwrap();
        assert_eq!(
            space,
            SwapSpace {
                total_bytes: 0,
                free_bytes: 0,
                cached_bytes: Some(0)
            }
        );
        assert_eq!(space.used_percent(), None);
        let vm = std::fs::read_to_string(format!("{dir}vmstat")).unwrap();
        assert_eq!(
            parse_swap_vmstat(&vm),
            Ok(SwapTraffic {
                in_pages: 0,
                out_pages: 0
            })
        );
    }

    #[test]
    fn collector_without_swap_has_no_percent_and_rates_from_the_second_run() {
        let (first, second) = run_twice(&fixture("debian12-vm"));
        assert_eq!(first.table, "swap");
        assert!(first.tags.is_empty());
        let names: Vec<&str> = first.fields.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "total_bytes",
                "free_bytes",
                "used_bytes",
                "cached_bytes",
                "in_pages_total",
                "out_pages_total"
            ]
        );
        assert_eq!(second.field("in_pages_per_second"), Some(Value::Float(0.0)));
        assert_eq!(
            second.field("out_pages_per_second"),
            Some(Value::Float(0.0))
        );
    }

    #[test]
    fn collector_computes_usage_and_rates() {
        let mem = "SwapCached: 4 kB\nSwapTotal: 1000 kB\nSwapFree: 750 kB\n";
        let tree = TempTree::new(
            "rates",
            &[("meminfo", mem), ("vmstat", "pswpin 10\npswpout 20\n")],
        );
        let settings = Settings {
            roots: Roots::under(&tree.0),
            ..Settings::default()
        };
        let mut c = Swap::new(&settings);
        let t0 = Instant::now();
        let mut out = Vec::new();
        c.collect(&Cycle { ts: 1, at: t0 }, &mut out).unwrap();
        std::fs::write(tree.0.join("proc/vmstat"), "pswpin 30\npswpout 21\n").unwrap();
        c.collect(
            &Cycle {
                ts: 2,
                at: t0 + Duration::from_secs(2),
            },
            &mut out,
        )
        .unwrap();
        let row = &out[1];
        assert_eq!(row.field("used_bytes"), Some(Value::Int(250 * 1024)));
        assert_eq!(row.field("used_percent"), Some(Value::Float(25.0)));
        assert_eq!(row.field("cached_bytes"), Some(Value::Int(4096)));
        assert_eq!(row.field("in_pages_total"), Some(Value::Int(30)));
        assert_eq!(row.field("in_pages_per_second"), Some(Value::Float(10.0)));
        assert_eq!(row.field("out_pages_per_second"), Some(Value::Float(0.5)));
    }

    #[test]
    fn a_missing_or_broken_vmstat_drops_only_the_traffic_fields() {
        let mem = "SwapTotal: 8 kB\nSwapFree: 8 kB\n";
        let tree = TempTree::new("novmstat", &[("meminfo", mem)]);
        let settings = Settings {
            roots: Roots::under(&tree.0),
            ..Settings::default()
        };
        let mut c = Swap::new(&settings);
        let mut out = Vec::new();
        c.collect(&Cycle::now(), &mut out).unwrap();
        std::fs::write(tree.0.join("proc/vmstat"), "pswpin x\n").unwrap();
        c.collect(&Cycle::now(), &mut out).unwrap();
        for row in &out {
            assert_eq!(row.field("used_percent"), Some(Value::Float(0.0)));
            assert_eq!(row.field("cached_bytes"), None);
            assert_eq!(row.field("in_pages_total"), None);
        }
    }

    #[test]
    fn a_missing_meminfo_disables_the_family() {
        let mut c = Swap::new(&fixture("no-such-tree"));
        let err = c.collect(&Cycle::now(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    #[test]
    fn edge_trees() {
        let (_, old) = run_twice(&fixture("edge-old-kernel"));
        assert_eq!(old.field("total_bytes"), Some(Value::Int(2_096_440 * 1024)));
        assert_eq!(old.field("in_pages_total"), Some(Value::Int(1_021)));
        let (_, huge) = run_twice(&fixture("edge-huge-counters-a"));
        assert_eq!(huge.field("total_bytes"), Some(Value::Int(u64::MAX)));
        assert_eq!(huge.field("in_pages_total"), Some(Value::Int(u64::MAX)));
        assert_eq!(huge.field("in_pages_per_second"), Some(Value::Float(0.0)));
    }

    #[test]
    fn truncated_and_garbage_input_is_rejected() {
        assert_eq!(
            parse_swap_meminfo("MemTotal: 5 kB\n"),
            Err(ParseError::missing("SwapTotal"))
        );
        assert_eq!(
            parse_swap_meminfo("SwapTotal: 5 kB\n"),
            Err(ParseError::missing("SwapFree"))
        );
        assert!(parse_swap_meminfo("SwapTotal: five kB\nSwapFree: 1 kB\n").is_err());
        assert_eq!(
            parse_swap_vmstat("pswpin 1\n"),
            Err(ParseError::missing("pswpout"))
        );
        assert!(parse_swap_vmstat("pswpin 1\npswpout -2\n").is_err());
    }

    #[test]
    fn free_above_total_is_not_negative() {
        let s = parse_swap_meminfo("SwapTotal: 1 kB\nSwapFree: 2 kB\n").unwrap();
        assert_eq!((s.used_bytes(), s.used_percent()), (0, Some(0.0)));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_swap_meminfo(&text);
            let _ = parse_swap_vmstat(&text);
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(total: u64, free: u64, cached: u64, pin: u64, pout: u64) {
            let mem = format!("SwapCached: {cached} kB\nSwapTotal: {total} kB\nSwapFree: {free} kB\n");
            let s = parse_swap_meminfo(&mem).unwrap();
            proptest::prop_assert_eq!(s.total_bytes, kb_to_bytes(total));
            proptest::prop_assert_eq!(s.free_bytes, kb_to_bytes(free));
            proptest::prop_assert_eq!(s.cached_bytes, Some(kb_to_bytes(cached)));
            proptest::prop_assert!(s.used_percent().is_none_or(|p| (0.0..=100.0).contains(&p)));
            let vm = format!("pswpin {pin}\npswpout {pout}\n");
            proptest::prop_assert_eq!(parse_swap_vmstat(&vm), Ok(SwapTraffic { in_pages: pin, out_pages: pout }));
        }
    }
}
