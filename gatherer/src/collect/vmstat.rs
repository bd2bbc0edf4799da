//! `vmstat`: paging and fault counters from `/proc/vmstat`.
//!
//! Reads `{procfs}/vmstat` (`name value` lines). Table `vmstat`, no tags, one
//! row per cycle. Every counter counts since boot; each gives `NAME_total`
//! (exact integer) and, from the second sample on, `NAME_per_second`:
//!
//! - `page_faults_total`, `page_faults_per_second` (`pgfault`): page faults
//!   of every kind, minor and major.
//! - `major_faults_total`, `major_faults_per_second` (`pgmajfault`): faults
//!   that had to wait for IO (a page read from disk or swap).
//! - `pages_in_total`, `pages_in_per_second` (`pgpgin`): data read from block
//!   devices. Despite the name the kernel counts these in **KiB**, not pages
//!   (it halves its sector count when printing), so the rate is KiB/s.
//! - `pages_out_total`, `pages_out_per_second` (`pgpgout`): data written to
//!   block devices, in KiB like `pages_in`.
//! - `oom_kills_total`, `oom_kills_per_second` (`oom_kill`): processes killed
//!   by the OOM killer. Kernels older than 4.13 lack the line and the fields
//!   are omitted.
//!
//! A counter the kernel does not print (an old kernel, or one built without
//! `CONFIG_VM_EVENT_COUNTERS`) is omitted; a file with none of them is a
//! parse error. Unknown lines are ignored, so new kernels parse unchanged.
//! [`parse_vmstat_keys`] is shared with the `swap` family (`pswpin`, `pswpout`).

use super::error::{CollectError, ParseError, parse_u64};
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// `/proc/vmstat` key, `_total` field, `_per_second` field.
const COUNTERS: [(&str, &str, &str); 5] = [
    ("pgfault", "page_faults_total", "page_faults_per_second"),
    (
        "pgmajfault",
        "major_faults_total",
        "major_faults_per_second",
    ),
    ("pgpgin", "pages_in_total", "pages_in_per_second"),
    ("pgpgout", "pages_out_total", "pages_out_per_second"),
    ("oom_kill", "oom_kills_total", "oom_kills_per_second"),
];

/// The values of `keys` in a `name value` file such as `/proc/vmstat`, in the
/// order of `keys`; `None` for a key the file lacks. Other lines are not
/// parsed at all, so unknown or odd lines cannot fail the parse; a wanted key
/// whose value is not an unsigned integer does. The first occurrence wins.
pub fn parse_vmstat_keys<const N: usize>(
    text: &str,
    keys: &[&str; N],
) -> Result<[Option<u64>; N], ParseError> {
    let mut values = [None; N];
    let mut found = 0;
    for line in text.lines() {
        let mut cols = line.split_ascii_whitespace();
        let Some(name) = cols.next() else { continue };
        let Some(i) = keys.iter().position(|k| *k == name) else {
            continue;
        };
        let Some(slot) = values.get_mut(i) else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        let value = cols
            .next()
            .ok_or_else(|| ParseError::missing(format!("{name} value")))?;
        *slot = Some(parse_u64(name, value)?);
        found += 1;
        if found == N {
            break;
        }
    }
    Ok(values)
}

/// The counters of one `/proc/vmstat` reading, in the order of the fields
/// (`pgfault`, `pgmajfault`, `pgpgin`, `pgpgout`, `oom_kill`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmstatSample {
    /// The counters, `None` where the kernel lacks the line.
    pub counters: [Option<u64>; COUNTERS.len()],
}

impl VmstatSample {
    /// The value of a `/proc/vmstat` key this family reads (`"pgfault"`...).
    pub fn get(&self, key: &str) -> Option<u64> {
        COUNTERS
            .iter()
            .zip(self.counters)
            .find(|((k, _, _), _)| *k == key)
            .and_then(|(_, v)| v)
    }
}

/// Parses `/proc/vmstat`; at least one of the family's counters must be present.
pub fn parse_vmstat(text: &str) -> Result<VmstatSample, ParseError> {
    let counters = parse_vmstat_keys(text, &COUNTERS.map(|(k, _, _)| k))?;
    if counters.iter().all(Option::is_none) {
        return Err(ParseError::missing(
            "pgfault, pgmajfault, pgpgin and pgpgout",
        ));
    }
    Ok(VmstatSample { counters })
}

/// The `vmstat` collector.
pub struct Vmstat {
    path: source::CycleFile,
    buf: String,
    rates: Rates<&'static str>,
}

impl Vmstat {
    /// A collector reading `vmstat` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Vmstat {
            path: settings.shared_files.file(settings.roots.proc("vmstat")),
            buf: String::new(),
            rates: Rates::default(),
        }
    }
}

impl Collector for Vmstat {
    fn family(&self) -> Family {
        Family::Vmstat
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(cycle.at, &mut self.buf)?;
        let s = parse_vmstat(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("vmstat", cycle.ts);
        for (&(key, total, rate), value) in COUNTERS.iter().zip(s.counters) {
            let Some(value) = value else { continue };
            row.int(total, value);
            // One rate key per counter, so a counter missing from one reading
            // cannot shift another's previous value.
            let r = self.rates.observe(&key, cycle.at, &[value]);
            row.float_opt(rate, r.first().copied().flatten());
        }
        self.rates.sweep();
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Cycle;

    use crate::row::Value;

    const DEBIAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/debian12-vm/proc/vmstat"
    );

    use crate::collect::fixtures::settings as fixture;

    fn run_twice(settings: &Settings) -> (Row, Row) {
        crate::collect::fixtures::run_twice(&mut Vmstat::new(settings))
    }

    #[test]
    fn parses_the_captured_vmstat() {
        let s = parse_vmstat(&std::fs::read_to_string(DEBIAN).unwrap()).unwrap();
        assert_eq!(s.get("pgfault"), Some(3_301_892));
        assert_eq!(s.get("pgmajfault"), Some(633));
        assert_eq!(s.get("pgpgin"), Some(1_253_453));
        assert_eq!(s.get("pgpgout"), Some(610_264));
        assert_eq!(s.get("oom_kill"), Some(0));
        let swap = parse_vmstat_keys(
            &std::fs::read_to_string(DEBIAN).unwrap(),
            &["pswpin", "pswpout"],
        );
        assert_eq!(swap, Ok([Some(0), Some(0)]));
    }

    #[test]
    fn old_kernel_without_oom_kill_omits_it() {
        let s = parse_vmstat("pgpgin 5\npgpgout 6\npgfault 7\npgmajfault 8\n").unwrap();
        assert_eq!(s.counters, [Some(7), Some(8), Some(5), Some(6), None]);
    }

    #[test]
    fn unknown_and_odd_lines_are_ignored_but_bad_wanted_values_are_not() {
        let s =
            parse_vmstat("future_key 1 2 3\n\n  \nnr_weird -5\nlonely\npgfault 9 extra\n").unwrap();
        assert_eq!(s.get("pgfault"), Some(9));
        assert!(parse_vmstat("pgfault lots\n").is_err());
        assert!(parse_vmstat("pgfault -1\n").is_err());
        assert!(parse_vmstat("pgfault\n").is_err());
        assert!(parse_vmstat("pgfault 18446744073709551616\n").is_err());
    }

    #[test]
    fn a_file_without_any_counter_is_an_error() {
        assert_eq!(
            parse_vmstat(""),
            Err(ParseError::missing(
                "pgfault, pgmajfault, pgpgin and pgpgout"
            ))
        );
        assert!(parse_vmstat("nr_free_pages 12\n").is_err());
    }

    #[test]
    fn the_first_occurrence_of_a_key_wins() {
        assert_eq!(parse_vmstat_keys("a 1\na 2\n", &["a"]), Ok([Some(1)]));
    }

    #[test]
    fn collector_reports_rates_from_the_second_run() {
        let (first, second) = run_twice(&fixture("debian12-vm"));
        assert_eq!(first.table, "vmstat");
        assert!(first.tags.is_empty());
        assert_eq!(
            first.field("page_faults_total"),
            Some(Value::Int(3_301_892))
        );
        assert_eq!(first.field("oom_kills_total"), Some(Value::Int(0)));
        assert_eq!(first.field("page_faults_per_second"), None);
        assert_eq!(first.fields.len(), 5);
        assert_eq!(
            second.field("page_faults_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(
            second.field("pages_out_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(second.fields.len(), 10);
    }

    #[test]
    fn collector_on_an_old_kernel_and_on_huge_counters() {
        let (_, old) = run_twice(&fixture("edge-old-kernel"));
        assert_eq!(old.field("oom_kills_total"), None);
        assert_eq!(old.field("oom_kills_per_second"), None);
        assert_eq!(
            old.field("major_faults_per_second"),
            Some(Value::Float(0.0))
        );
        let (_, huge) = run_twice(&fixture("edge-huge-counters-a"));
        assert_eq!(huge.field("page_faults_total"), Some(Value::Int(u64::MAX)));
        assert_eq!(
            huge.field("page_faults_per_second"),
            Some(Value::Float(0.0))
        );
    }

    #[test]
    fn a_missing_file_disables_the_family() {
        let mut c = Vmstat::new(&fixture("no-such-tree"));
        let err = c.collect(&Cycle::now(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_vmstat(&text);
            let _ = parse_vmstat_keys(&text, &["pswpin", "pswpout"]);
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(values in proptest::array::uniform5(proptest::num::u64::ANY)) {
            let text: String = COUNTERS
                .iter()
                .zip(values)
                .map(|((k, _, _), v)| format!("nr_other 1\n{k} {v}\n"))
                .collect();
            let s = parse_vmstat(&text).unwrap();
            proptest::prop_assert_eq!(s.counters, values.map(Some));
        }
    }
}
