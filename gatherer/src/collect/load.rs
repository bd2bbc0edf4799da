//! `load`: load averages and task counts from `/proc/loadavg`.
//!
//! Fields: `load1`, `load5`, `load15` (the kernel's exponentially damped
//! run-queue averages), `tasks_runnable` (currently runnable scheduling
//! entities) and `tasks` (all threads on the host).

use super::error::{CollectError, ParseError, parse_f64, parse_u64};
use super::{Collector, Cycle, Family, Settings, source};
use crate::row::Row;

/// The parsed content of `/proc/loadavg`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSample {
    /// 1-minute load average.
    pub load1: f64,
    /// 5-minute load average.
    pub load5: f64,
    /// 15-minute load average.
    pub load15: f64,
    /// Runnable scheduling entities now.
    pub runnable: u64,
    /// All scheduling entities (threads).
    pub total: u64,
}

/// Parses `/proc/loadavg` (`0.20 0.18 0.12 1/80 11206`).
///
/// Hand-written rather than procfs's `LoadAverage`, which parses the averages
/// as `f32` and would print 0.51 as 0.5099999904632568.
pub fn parse_loadavg(text: &str) -> Result<LoadSample, ParseError> {
    let mut cols = text.split_ascii_whitespace();
    let mut next = |what: &str| cols.next().ok_or_else(|| ParseError::missing(what));
    let load1 = parse_f64("load1", next("load1")?)?;
    let load5 = parse_f64("load5", next("load5")?)?;
    let load15 = parse_f64("load15", next("load15")?)?;
    let tasks = next("runnable/total tasks")?;
    let (runnable, total) = tasks
        .split_once('/')
        .ok_or_else(|| ParseError::bad_number("runnable/total tasks", tasks))?;
    Ok(LoadSample {
        load1,
        load5,
        load15,
        runnable: parse_u64("runnable tasks", runnable)?,
        total: parse_u64("total tasks", total)?,
    })
}

/// The `load` collector.
pub struct Load {
    path: source::KernelFile,
    buf: String,
}

impl Load {
    /// A collector reading `loadavg` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Load {
            path: source::KernelFile::new(settings.roots.proc("loadavg")),
            buf: String::new(),
        }
    }
}

impl Collector for Load {
    fn family(&self) -> Family {
        Family::Load
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        self.path.read_into(&mut self.buf)?;
        let s = parse_loadavg(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.path().to_path_buf(),
            source,
        })?;
        let mut row = Row::new("load", cycle.ts);
        row.float("load1", s.load1);
        row.float("load5", s.load5);
        row.float("load15", s.load15);
        row.int("tasks_runnable", s.runnable);
        row.int("tasks", s.total);
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_loadavg() {
        let s = parse_loadavg("0.20 0.18 0.12 1/80 11206\n").unwrap();
        assert_eq!((s.load1, s.load5, s.load15), (0.20, 0.18, 0.12));
        assert_eq!((s.runnable, s.total), (1, 80));
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        assert!(parse_loadavg("0.20 0.18").is_err());
        assert!(parse_loadavg("").is_err());
        assert!(parse_loadavg("a b c d e").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_loadavg(&source::lossy(&bytes));
        }
    }
}
