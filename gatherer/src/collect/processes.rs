//! `processes`: process counts, forks, context switches, interrupts and open files.
//!
//! Table `processes`, no tags, one row per cycle. From `{procfs}/stat` (the
//! family's source: without it the family is disabled):
//!
//! - `running` (`procs_running`): threads runnable now (running or waiting
//!   for a CPU).
//! - `blocked` (`procs_blocked`): threads in uninterruptible sleep waiting
//!   for IO.
//! - `forks_total`, `forks_per_second` (`processes`): processes and threads
//!   created since boot.
//! - `context_switches_total`, `context_switches_per_second` (`ctxt`): context
//!   switches on all CPUs since boot.
//! - `interrupts_total`, `interrupts_per_second` (first number of `intr`):
//!   hardware interrupts serviced on all CPUs since boot.
//!
//! From the directory `{procfs}` itself (its entries are listed, no process
//! file is opened):
//!
//! - `total`: processes on the host (one numeric directory per process; the
//!   threads are not listed there). Listing /proc costs the kernel more than
//!   every other file of a cycle together, so it is counted at the first
//!   cycle and then once every `--process-count-every` (default 30 s); the
//!   rows in between carry the last count, which is at most that old.
//!   Omitted if the directory could not be read at the last count.
//!
//! From optional files, each field omitted when its file is absent or malformed:
//!
//! - `open_files` (first number of `{procfs}/sys/fs/file-nr`): file handles
//!   allocated by the kernel, host-wide.
//! - `open_files_max` (third number of `file-nr`): the `fs.file-max` limit.
//! - `pid_max` (`{procfs}/sys/kernel/pid_max`): the highest PID plus one; the
//!   ceiling on processes plus threads.
//! - `threads_max` (`{procfs}/sys/kernel/threads-max`): the kernel's limit on
//!   threads.
//!
//! `_per_second` rates appear from the second sample on. A `stat` line an old
//! kernel lacks leaves its fields out; a `stat` with none of these lines is a
//! parse error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags, RawDir};

use super::error::{CollectError, ParseError, parse_u64};
use super::rates::Rates;
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// The process lines of one `/proc/stat` reading; `None` where the kernel
/// lacks the line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessesStat {
    /// `procs_running`.
    pub running: Option<u64>,
    /// `procs_blocked`.
    pub blocked: Option<u64>,
    /// `processes`: forks since boot.
    pub forks: Option<u64>,
    /// `ctxt`: context switches since boot.
    pub context_switches: Option<u64>,
    /// First number of `intr`: interrupts since boot.
    pub interrupts: Option<u64>,
}

/// Parses the process lines of `/proc/stat`. Only the first number of `intr`
/// is read: the rest of that line (one count per IRQ, often thousands) is
/// skipped unparsed.
pub fn parse_stat_processes(text: &str) -> Result<ProcessesStat, ParseError> {
    let mut s = ProcessesStat::default();
    for line in text.lines() {
        // Lazy: the long `intr` line is split no further than its first number.
        let mut cols = line.split_ascii_whitespace();
        let Some(key) = cols.next() else { continue };
        let slot = match key {
            "procs_running" => &mut s.running,
            "procs_blocked" => &mut s.blocked,
            "processes" => &mut s.forks,
            "ctxt" => &mut s.context_switches,
            "intr" => &mut s.interrupts,
            _ => continue,
        };
        let value = cols
            .next()
            .ok_or_else(|| ParseError::missing(format!("{key} value")))?;
        *slot = Some(parse_u64(key, value)?);
    }
    if s == ProcessesStat::default() {
        return Err(ParseError::missing(
            "procs_running, procs_blocked, processes, ctxt and intr",
        ));
    }
    Ok(s)
}

/// Parses `/proc/sys/fs/file-nr` (`allocated  free  max`) into (allocated, max).
pub fn parse_file_nr(text: &str) -> Result<(u64, u64), ParseError> {
    let mut cols = text.split_ascii_whitespace();
    let mut next = |what: &str| {
        cols.next()
            .ok_or_else(|| ParseError::missing(format!("file-nr {what}")))
            .and_then(|v| parse_u64(what, v))
    };
    let allocated = next("allocated")?;
    next("free")?;
    Ok((allocated, next("max")?))
}

/// Parses a file holding one unsigned number (`pid_max`, `threads-max`).
pub fn parse_number(text: &str) -> Result<u64, ParseError> {
    parse_u64("number", text.trim_ascii())
}

/// Counts the numeric entries of a procfs directory: its processes.
fn count_processes(dir: &Path, buf: &mut Vec<u8>) -> rustix::io::Result<u64> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // RawDir decodes entries in place in our reused buffer: no allocation
    // per entry, unlike std::fs::read_dir, on a host with many processes.
    let mut entries = RawDir::new(&fd, buf.spare_capacity_mut());
    let mut count = 0u64;
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
            count += 1;
        }
    }
    Ok(count)
}

/// Big enough for any directory entry (names are at most 255 bytes) and for
/// about a thousand entries per `getdents64` call.
const DIR_BUF: usize = 32 * 1024;

/// The `processes` collector.
pub struct Processes {
    procfs: PathBuf,
    stat: source::CycleFile,
    file_nr: source::KernelFile,
    pid_max: source::KernelFile,
    threads_max: source::KernelFile,
    buf: String,
    dir_buf: Vec<u8>,
    rates: Rates<&'static str>,
    /// How often `total` is counted, and the last count: when it was taken
    /// and its value (`None`: /proc could not be listed then).
    count_every: Duration,
    counted: Option<(Instant, Option<u64>)>,
}

impl Processes {
    /// A collector reading `stat`, the process directories and the `sys`
    /// limits under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        let roots = &settings.roots;
        Processes {
            procfs: roots.procfs.clone(),
            stat: settings.shared_files.file(roots.proc("stat")),
            file_nr: source::KernelFile::new(roots.proc("sys/fs/file-nr")),
            pid_max: source::KernelFile::new(roots.proc("sys/kernel/pid_max")),
            threads_max: source::KernelFile::new(roots.proc("sys/kernel/threads-max")),
            buf: String::new(),
            dir_buf: Vec::with_capacity(DIR_BUF),
            rates: Rates::default(),
            count_every: settings.process_count_every,
            counted: None,
        }
    }
}

impl Processes {
    /// The process count, listed again when the last count is
    /// `count_every` old (or taken in what looks like a later cycle's past).
    fn total(&mut self, at: Instant) -> Option<u64> {
        let due = match self.counted {
            None => true,
            Some((then, _)) => at
                .checked_duration_since(then)
                .is_none_or(|age| age >= self.count_every),
        };
        if due {
            let total = count_processes(&self.procfs, &mut self.dir_buf)
                .inspect_err(
                    |error| tracing::debug!(%error, "processes: cannot list procfs; total omitted"),
                )
                .ok();
            self.counted = Some((at, total));
        }
        self.counted.and_then(|(_, total)| total)
    }
}

/// Reads and parses a small optional file, `None` on any failure.
fn read_parsed<T>(
    file: &mut source::KernelFile,
    buf: &mut String,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Option<T> {
    file.read_into(buf).ok()?;
    parse(buf)
        .inspect_err(
            |error| tracing::debug!(path = %file.path().display(), %error, "processes: field omitted"),
        )
        .ok()
}

/// Adds a counter's `_total` and, from its second observation, its rate.
fn counter(
    row: &mut Row,
    rates: &mut Rates<&'static str>,
    at: Instant,
    (total, rate): (&'static str, &'static str),
    value: Option<u64>,
) {
    let Some(value) = value else { return };
    row.int(total, value);
    let r = rates.observe(&total, at, &[value]);
    row.float_opt(rate, r.first().copied().flatten());
}

impl Collector for Processes {
    fn family(&self) -> Family {
        Family::Processes
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.stat.read_into(cycle.at, &mut self.buf)?;
        let s = parse_stat_processes(&self.buf).map_err(|source| CollectError::Parse {
            path: self.stat.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("processes", cycle.ts);
        row.int_opt("running", s.running);
        row.int_opt("blocked", s.blocked);
        let (rates, at) = (&mut self.rates, cycle.at);
        let names = ("forks_total", "forks_per_second");
        counter(&mut row, rates, at, names, s.forks);
        let names = ("context_switches_total", "context_switches_per_second");
        counter(&mut row, rates, at, names, s.context_switches);
        let names = ("interrupts_total", "interrupts_per_second");
        counter(&mut row, rates, at, names, s.interrupts);
        rates.sweep();

        row.int_opt("total", self.total(cycle.at));
        if let Some((open, max)) = read_parsed(&mut self.file_nr, &mut self.buf, parse_file_nr) {
            row.int("open_files", open);
            row.int("open_files_max", max);
        }
        let pid_max = read_parsed(&mut self.pid_max, &mut self.buf, parse_number);
        row.int_opt("pid_max", pid_max);
        let threads_max = read_parsed(&mut self.threads_max, &mut self.buf, parse_number);
        row.int_opt("threads_max", threads_max);
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Roots;
    use crate::row::Value;

    const DEBIAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/debian12-vm/proc/"
    );

    use crate::collect::fixtures::settings as fixture;

    fn run_twice(settings: &Settings) -> (Row, Row) {
        crate::collect::fixtures::run_twice(&mut Processes::new(settings))
    }

    fn names(row: &Row) -> Vec<&'static str> {
        row.fields.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn parses_the_captured_files() {
        let stat = std::fs::read_to_string(format!("{DEBIAN}stat")).unwrap();
        let s = parse_stat_processes(&stat).unwrap();
        assert_eq!(
            s,
            ProcessesStat {
                running: Some(1),
                blocked: Some(0),
                forks: Some(4230),
                context_switches: Some(203_122),
                interrupts: Some(113_892),
            }
        );
        let file_nr = std::fs::read_to_string(format!("{DEBIAN}sys/fs/file-nr")).unwrap();
        assert_eq!(parse_file_nr(&file_nr), Ok((305, 2_466_183)));
    }

    #[test]
    fn collector_on_the_captured_tree() {
        let (first, second) = run_twice(&fixture("debian12-vm"));
        assert_eq!(first.table, "processes");
        assert!(first.tags.is_empty());
        assert_eq!(
            names(&first),
            [
                "running",
                "blocked",
                "forks_total",
                "context_switches_total",
                "interrupts_total",
                "total",
                "open_files",
                "open_files_max",
                "pid_max",
                "threads_max"
            ]
        );
        assert_eq!(first.field("total"), Some(Value::Int(12)));
        assert_eq!(first.field("open_files"), Some(Value::Int(305)));
        let pid_max = std::fs::read_to_string(format!("{DEBIAN}sys/kernel/pid_max")).unwrap();
        assert_eq!(
            first.field("pid_max"),
            Some(Value::Int(pid_max.trim().parse().unwrap()))
        );
        assert_eq!(second.field("forks_per_second"), Some(Value::Float(0.0)));
        assert_eq!(
            second.field("context_switches_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(
            second.field("interrupts_per_second"),
            Some(Value::Float(0.0))
        );
        assert_eq!(second.fields.len(), first.fields.len() + 3);
    }

    #[test]
    fn the_edge_trees() {
        let (_, old) = run_twice(&fixture("edge-old-kernel"));
        assert_eq!(old.field("total"), Some(Value::Int(4)));
        assert_eq!(old.field("interrupts_total"), Some(Value::Int(52_178_243)));
        assert_eq!(old.field("open_files_max"), Some(Value::Int(101_976)));
        let (_, huge) = run_twice(&fixture("edge-huge-counters-a"));
        for f in [
            "forks_total",
            "context_switches_total",
            "interrupts_total",
            "open_files",
        ] {
            assert_eq!(huge.field(f), Some(Value::Int(u64::MAX)), "{f}");
        }
        assert_eq!(huge.field("interrupts_per_second"), Some(Value::Float(0.0)));
    }

    #[test]
    fn optional_files_may_be_missing_or_broken() {
        let dir = std::env::temp_dir().join(format!("hostpulse-processes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc/sys/fs")).unwrap();
        std::fs::write(dir.join("proc/stat"), "ctxt 7\n").unwrap();
        std::fs::write(dir.join("proc/sys/fs/file-nr"), "12 0\n").unwrap();
        let (first, _) = run_twice(&Settings {
            roots: Roots::under(&dir),
            ..Settings::default()
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names(&first), ["context_switches_total", "total"]);
        assert_eq!(first.field("total"), Some(Value::Int(0)));
    }

    #[test]
    fn the_process_count_is_carried_until_it_is_due_again() {
        let dir = tempfile::tempdir().unwrap();
        for pid in ["1", "2"] {
            std::fs::create_dir_all(dir.path().join("proc").join(pid)).unwrap();
        }
        std::fs::write(dir.path().join("proc/stat"), "ctxt 7\n").unwrap();
        let mut c = Processes::new(&Settings {
            roots: Roots::under(dir.path()),
            process_count_every: std::time::Duration::from_secs(30),
            ..Settings::default()
        });
        let t0 = Instant::now();
        let mut total_at = |secs: u64| {
            let mut out = Vec::new();
            let at = t0 + std::time::Duration::from_secs(secs);
            c.collect(&Cycle { ts: 1, at }, &mut out).unwrap();
            out[0].field("total")
        };
        assert_eq!(total_at(0), Some(Value::Int(2)));
        std::fs::create_dir(dir.path().join("proc/3")).unwrap();
        assert_eq!(
            total_at(10),
            Some(Value::Int(2)),
            "the last count, 10 s old"
        );
        assert_eq!(total_at(29), Some(Value::Int(2)));
        assert_eq!(total_at(30), Some(Value::Int(3)), "counted again once due");
    }

    #[test]
    fn a_missing_stat_disables_the_family() {
        let mut c = Processes::new(&fixture("no-such-tree"));
        let err = c.collect(&Cycle::now(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, CollectError::Unavailable { .. }));
    }

    #[test]
    fn only_the_first_intr_number_is_read() {
        let line = format!("intr 42 {}x\n", "1 ".repeat(5000));
        assert_eq!(parse_stat_processes(&line).unwrap().interrupts, Some(42));
    }

    #[test]
    fn truncated_and_garbage_input_is_rejected() {
        assert!(parse_stat_processes("").is_err());
        assert!(parse_stat_processes("cpu 1 2 3 4\nbtime 5\n").is_err());
        assert!(parse_stat_processes("ctxt many\n").is_err());
        assert!(parse_stat_processes("ctxt \n").is_err());
        assert!(parse_stat_processes("procs_running -1\n").is_err());
        assert_eq!(
            parse_stat_processes("ctxt 5\nprocs_runn")
                .unwrap()
                .context_switches,
            Some(5)
        );
        assert!(parse_file_nr("1 0").is_err());
        assert!(parse_file_nr("1 x 3").is_err());
        assert_eq!(parse_file_nr("1 0 3 4\n"), Ok((1, 3)));
        assert!(parse_number("").is_err());
        assert!(parse_number("4194304 5").is_err());
        assert_eq!(parse_number(" 4194304\n"), Ok(4_194_304));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = source::lossy(&bytes);
            let _ = parse_stat_processes(&text);
            let _ = parse_file_nr(&text);
            let _ = parse_number(&text);
        }

        #[test]
        fn numbers_in_a_valid_layout_parse_back(v in proptest::array::uniform5(proptest::num::u64::ANY)) {
            let text = format!(
                "cpu  1 2 3 4\nintr {} 0 7\nctxt {}\nbtime 1\nprocesses {}\nprocs_running {}\nprocs_blocked {}\n",
                v[0], v[1], v[2], v[3], v[4]
            );
            let s = parse_stat_processes(&text).unwrap();
            let want = ProcessesStat {
                interrupts: Some(v[0]),
                context_switches: Some(v[1]),
                forks: Some(v[2]),
                running: Some(v[3]),
                blocked: Some(v[4]),
            };
            proptest::prop_assert_eq!(s, want);
            let nr = format!("{}\t0\t{}\n", v[0], v[1]);
            proptest::prop_assert_eq!(parse_file_nr(&nr), Ok((v[0], v[1])));
        }
    }
}
