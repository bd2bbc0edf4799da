//! `memory`: physical memory from `/proc/meminfo`, in bytes.
//!
//! Reads `{procfs}/meminfo`. Table `memory`, no tags, one row per cycle.
//! meminfo prints kibibytes (labelled `kB`); every `_bytes` field is that value
//! times 1024, saturating at 2^64-1 rather than wrapping. Fields, each omitted
//! when the kernel lacks its key (except `available_bytes`, see below):
//!
//! - `total_bytes` (`MemTotal`): usable RAM (physical RAM minus reserved
//!   ranges and the kernel image). Required: a file without it is a parse error.
//! - `free_bytes` (`MemFree`): RAM not used for anything.
//! - `available_bytes` (`MemAvailable`): the kernel's estimate of the memory
//!   available to start new programs without swapping (free memory plus the
//!   reclaimable part of the page cache and slab). Kernels before 3.14 lack
//!   `MemAvailable`; there it is estimated as `MemFree + Buffers + Cached +
//!   SReclaimable` (missing terms count 0), capped at `MemTotal`. That
//!   estimate is optimistic: it counts all cache as reclaimable, including
//!   dirty and shared memory pages.
//! - `used_bytes`: `total_bytes - available_bytes` (0 if negative), the memory
//!   that cannot be given to a new program without swapping.
//! - `used_percent`: `used_bytes` as a percentage of `total_bytes` (omitted
//!   when the total is 0).
//! - `buffers_bytes` (`Buffers`): block-device buffers (metadata cache).
//! - `cached_bytes` (`Cached`): the page cache, including `shared_bytes`,
//!   excluding swap cache.
//! - `shared_bytes` (`Shmem`, 2.6.32+): tmpfs, shared memory and shared
//!   anonymous mappings (part of `cached_bytes`).
//! - `slab_bytes` (`Slab`): kernel slab allocations, the sum of:
//! - `slab_reclaimable_bytes` (`SReclaimable`, 2.6.19+): slab the kernel can
//!   free under pressure (dentry and inode caches), and
//! - `slab_unreclaimable_bytes` (`SUnreclaim`, 2.6.19+): slab it cannot.
//! - `dirty_bytes` (`Dirty`): pages modified and waiting to be written back.
//! - `writeback_bytes` (`Writeback`): pages being written back now.
//! - `committed_bytes` (`Committed_AS`): memory promised to processes (virtual
//!   allocations that could be touched), the figure overcommit policy checks.
//! - `commit_limit_bytes` (`CommitLimit`): the commit ceiling enforced when
//!   `vm.overcommit_memory=2`.
//! - `active_bytes` (`Active`): recently used pages, reclaimed last.
//! - `inactive_bytes` (`Inactive`): pages not recently used, reclaimed first.
//! - `mapped_bytes` (`Mapped`): files mapped into processes (libraries, mmap).
//! - `page_tables_bytes` (`PageTables`): memory holding page tables.
//! - `hugepages` (`HugePages_Total`): count of the default-size huge
//!   pages in the pool (absent on kernels without `CONFIG_HUGETLBFS`).
//! - `hugepages_free` (`HugePages_Free`): count of pool pages not allocated.
//! - `hugepages_reserved` (`HugePages_Rsvd`): count of pages reserved for
//!   mappings but not yet faulted in.
//! - `hugepages_surplus` (`HugePages_Surp`): count of pages above the pool
//!   size (overcommitted huge pages).
//! - `hugepage_size_bytes` (`Hugepagesize`): the default huge page size.
//! - `hugetlb_bytes` (`Hugetlb`, 4.16+): memory in huge pages of all sizes.
//!
//! procfs's `Meminfo` is not used: it rejects a file missing any of the keys
//! that old or differently configured kernels lack, multiplies kB by 1024
//! without overflow checks, and builds a `HashMap` per read. The `swap`
//! family reuses [`parse_meminfo_keys`].

use super::error::{CollectError, ParseError, parse_u64};
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// Whether a meminfo value is in kB (reported as bytes) or a plain count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Kb,
    Count,
}

/// meminfo key, field, unit; in output order. The first three are handled
/// apart (required total, `available` fallback) and followed by the derived
/// `used_bytes` and `used_percent`.
const FIELDS: [(&str, &str, Unit); 23] = [
    ("MemTotal", "total_bytes", Unit::Kb),
    ("MemFree", "free_bytes", Unit::Kb),
    ("MemAvailable", "available_bytes", Unit::Kb),
    ("Buffers", "buffers_bytes", Unit::Kb),
    ("Cached", "cached_bytes", Unit::Kb),
    ("Shmem", "shared_bytes", Unit::Kb),
    ("Slab", "slab_bytes", Unit::Kb),
    ("SReclaimable", "slab_reclaimable_bytes", Unit::Kb),
    ("SUnreclaim", "slab_unreclaimable_bytes", Unit::Kb),
    ("Dirty", "dirty_bytes", Unit::Kb),
    ("Writeback", "writeback_bytes", Unit::Kb),
    ("Committed_AS", "committed_bytes", Unit::Kb),
    ("CommitLimit", "commit_limit_bytes", Unit::Kb),
    ("Active", "active_bytes", Unit::Kb),
    ("Inactive", "inactive_bytes", Unit::Kb),
    ("Mapped", "mapped_bytes", Unit::Kb),
    ("PageTables", "page_tables_bytes", Unit::Kb),
    ("HugePages_Total", "hugepages", Unit::Count),
    ("HugePages_Free", "hugepages_free", Unit::Count),
    ("HugePages_Rsvd", "hugepages_reserved", Unit::Count),
    ("HugePages_Surp", "hugepages_surplus", Unit::Count),
    ("Hugepagesize", "hugepage_size_bytes", Unit::Kb),
    ("Hugetlb", "hugetlb_bytes", Unit::Kb),
];

const KEYS: [&str; FIELDS.len()] = {
    let mut keys = [""; FIELDS.len()];
    let mut i = 0;
    while i < FIELDS.len() {
        keys[i] = FIELDS[i].0;
        i += 1;
    }
    keys
};

/// The numbers of `keys` in a `Key:   value [kB]` file such as
/// `/proc/meminfo`, as written (kB or counts), in the order of `keys`; `None`
/// for a key the file lacks. Other lines are not parsed, so unknown keys and
/// odd lines are ignored; a wanted key whose value is not an unsigned integer
/// is an error. The first occurrence of a key wins.
pub fn parse_meminfo_keys<const N: usize>(
    text: &str,
    keys: &[&str; N],
) -> Result<[Option<u64>; N], ParseError> {
    let mut values = [None; N];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim_ascii();
        let Some(slot) = keys
            .iter()
            .position(|k| *k == key)
            .and_then(|i| values.get_mut(i))
        else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        let value = rest
            .split_ascii_whitespace()
            .next()
            .ok_or_else(|| ParseError::missing(format!("{key} value")))?;
        *slot = Some(parse_u64(key, value)?);
    }
    Ok(values)
}

/// kB as written in meminfo to bytes, saturating.
pub fn kb_to_bytes(kb: u64) -> u64 {
    kb.saturating_mul(1024)
}

/// One `/proc/meminfo` reading, converted to bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySample {
    /// `MemTotal` in bytes.
    pub total_bytes: u64,
    /// `MemAvailable` in bytes, or the documented estimate on kernels < 3.14.
    pub available_bytes: u64,
    /// Whether `available_bytes` is the estimate (no `MemAvailable` line).
    pub available_estimated: bool,
    /// Every meminfo value read, in bytes (kB keys) or as counts, `None`
    /// where the kernel lacks the key; in output order.
    values: [Option<u64>; FIELDS.len()],
}

impl MemorySample {
    /// A field read straight from meminfo, by its output name (`"cached_bytes"`).
    pub fn get(&self, field: &str) -> Option<u64> {
        FIELDS
            .iter()
            .zip(self.values)
            .find(|((_, f, _), _)| *f == field)
            .and_then(|(_, v)| v)
    }

    /// `total - available`, never negative.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }

    /// `used` as a percentage of total; `None` when the total is 0.
    pub fn used_percent(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| self.used_bytes() as f64 / self.total_bytes as f64 * 100.0)
    }
}

/// Parses `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<MemorySample, ParseError> {
    let raw = parse_meminfo_keys(text, &KEYS)?;
    let mut values = [None; FIELDS.len()];
    for ((slot, raw), (_, _, unit)) in values.iter_mut().zip(raw).zip(FIELDS) {
        *slot = match unit {
            Unit::Kb => raw.map(kb_to_bytes),
            Unit::Count => raw,
        };
    }
    let field = |name: &str| {
        FIELDS
            .iter()
            .zip(values)
            .find(|((_, f, _), _)| *f == name)
            .and_then(|(_, v)| v)
    };
    let total_bytes = field("total_bytes").ok_or_else(|| ParseError::missing("MemTotal"))?;
    let (available_bytes, available_estimated) = match field("available_bytes") {
        Some(v) => (v, false),
        None => {
            let estimate = [
                "free_bytes",
                "buffers_bytes",
                "cached_bytes",
                "slab_reclaimable_bytes",
            ]
            .into_iter()
            .filter_map(field)
            .fold(0u64, u64::saturating_add);
            (estimate.min(total_bytes), true)
        }
    };
    Ok(MemorySample {
        total_bytes,
        available_bytes,
        available_estimated,
        values,
    })
}

/// The `memory` collector.
pub struct Memory {
    path: source::CycleFile,
    buf: String,
}

impl Memory {
    /// A collector reading `meminfo` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Memory {
            path: settings.shared_files.file(settings.roots.proc("meminfo")),
            buf: String::new(),
        }
    }
}

impl Collector for Memory {
    fn family(&self) -> Family {
        Family::Memory
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(cycle.at, &mut self.buf)?;
        let s = parse_meminfo(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("memory", cycle.ts);
        row.int("total_bytes", s.total_bytes);
        row.int_opt("free_bytes", s.get("free_bytes"));
        row.int("available_bytes", s.available_bytes);
        row.int("used_bytes", s.used_bytes());
        row.float_opt("used_percent", s.used_percent());
        for (&(_, field, _), value) in FIELDS.iter().zip(s.values).skip(3) {
            row.int_opt(field, value);
        }
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::row::Value;

    use crate::collect::fixtures::settings as fixture;

    fn collect(name: &str) -> Row {
        let mut c = Memory::new(&fixture(name));
        let mut out = Vec::new();
        c.collect(&Cycle::now(), &mut out).unwrap();
        c.collect(&Cycle::now(), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].fields, out[1].fields, "a gauge family has no rates");
        out.remove(0)
    }

    #[test]
    fn parses_the_captured_meminfo() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/debian12-vm/proc/meminfo"
        );
        let s = parse_meminfo(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(s.total_bytes, 24_684_096 * 1024);
        assert_eq!(s.available_bytes, 24_361_284 * 1024);
        assert!(!s.available_estimated);
        assert_eq!(s.used_bytes(), (24_684_096 - 24_361_284) * 1024);
        assert_eq!(s.get("shared_bytes"), Some(8788 * 1024));
        assert_eq!(s.get("committed_bytes"), Some(47_284 * 1024));
        assert_eq!(s.get("hugepages"), Some(0));
        assert_eq!(s.get("hugepage_size_bytes"), Some(2048 * 1024));
        assert_eq!(s.get("hugetlb_bytes"), Some(0));
    }

    #[test]
    fn collector_emits_every_field_in_order() {
        let row = collect("debian12-vm");
        assert_eq!(row.table, "memory");
        assert!(row.tags.is_empty());
        let names: Vec<&str> = row.fields.iter().map(|(n, _)| *n).collect();
        let mut expected = vec![
            "total_bytes",
            "free_bytes",
            "available_bytes",
            "used_bytes",
            "used_percent",
        ];
        expected.extend(FIELDS.iter().skip(3).map(|(_, f, _)| *f));
        assert_eq!(names, expected);
        let Some(Value::Float(pct)) = row.field("used_percent") else {
            panic!()
        };
        // Rounded to three decimals like every float field.
        assert!((pct - 322_812.0 / 24_684_096.0 * 100.0).abs() < 1e-3);
        assert_eq!(row.field("free_bytes"), Some(Value::Int(23_445_352 * 1024)));
    }

    #[test]
    fn old_kernel_estimates_available_and_omits_missing_keys() {
        let text =
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\nSlab: 50 kB\n";
        let s = parse_meminfo(text).unwrap();
        assert!(s.available_estimated);
        assert_eq!(s.available_bytes, 310 * 1024);
        assert_eq!(s.get("shared_bytes"), None);
        assert_eq!(s.get("hugepages"), None);
        let row = collect("edge-old-kernel");
        assert_eq!(row.field("shared_bytes"), None);
        assert_eq!(row.field("hugepages"), None);
        assert_eq!(row.field("slab_reclaimable_bytes"), None);
        // MemFree + Buffers + Cached from the fixture, no SReclaimable.
        assert_eq!(
            row.field("available_bytes"),
            Some(Value::Int((1_482_716 + 110_532 + 1_211_296) * 1024))
        );
    }

    #[test]
    fn the_estimate_never_exceeds_the_total() {
        let s = parse_meminfo("MemTotal: 10 kB\nMemFree: 8 kB\nCached: 8 kB\n").unwrap();
        assert_eq!((s.available_bytes, s.used_bytes()), (10 * 1024, 0));
        assert_eq!(s.used_percent(), Some(0.0));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        let s = parse_meminfo(
            "MemTotal: 18446744073709551615 kB\nMemAvailable: 18014398509481985 kB\n",
        )
        .unwrap();
        assert_eq!(s.total_bytes, u64::MAX);
        assert_eq!(s.available_bytes, u64::MAX);
        assert_eq!(s.used_bytes(), 0);
        let row = collect("edge-huge-counters-a");
        assert_eq!(row.field("total_bytes"), Some(Value::Int(u64::MAX)));
        assert_eq!(row.field("hugepages"), Some(Value::Int(u64::MAX)));
        assert_eq!(row.field("used_bytes"), Some(Value::Int(0)));
    }

    #[test]
    fn zero_total_has_no_percent() {
        let s = parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n").unwrap();
        assert_eq!(s.used_percent(), None);
    }

    #[test]
    fn truncated_and_garbage_files_are_rejected() {
        assert_eq!(parse_meminfo(""), Err(ParseError::missing("MemTotal")));
        assert_eq!(
            parse_meminfo("MemFree: 1 kB\n"),
            Err(ParseError::missing("MemTotal"))
        );
        assert!(parse_meminfo("MemTotal:\n").is_err());
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
        assert!(parse_meminfo("MemTotal: -1 kB\n").is_err());
        // A file cut inside a later, unwanted line still parses.
        assert!(parse_meminfo("MemTotal: 5 kB\nDirectMap4").is_ok());
    }

    #[test]
    fn unknown_keys_and_odd_lines_are_ignored() {
        let text = "Future_Key: x y z\nno colon here\n: 5\nMemTotal:   7 kB  \nMemTotal: 9 kB\n";
        assert_eq!(parse_meminfo(text).unwrap().total_bytes, 7 * 1024);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_meminfo(&text);
            let _ = parse_meminfo_keys(&text, &["SwapTotal"]);
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(values in proptest::array::uniform23(proptest::num::u64::ANY)) {
            let text: String = FIELDS
                .iter()
                .zip(values)
                .map(|((k, _, u), v)| {
                    let unit = if *u == Unit::Kb { " kB" } else { "" };
                    format!("{k}:{:>16}{unit}\nOther: 1 kB\n", v)
                })
                .collect();
            let s = parse_meminfo(&text).unwrap();
            for ((_, f, u), v) in FIELDS.iter().zip(values) {
                let want = if *u == Unit::Kb { kb_to_bytes(v) } else { v };
                proptest::prop_assert_eq!(s.get(f), Some(want));
            }
        }
    }
}
