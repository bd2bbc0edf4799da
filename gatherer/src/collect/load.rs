//! `load`: load averages and task counts from `/proc/loadavg`.
//!
//! Fields: `load1`, `load5`, `load15` (the kernel's exponentially damped
//! run-queue averages), `tasks_runnable` (currently runnable scheduling
//! entities) and `tasks_total` (all threads on the host).

use procfs::{FromRead, LoadAverage};

use super::error::{CollectError, ParseError};
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
pub fn parse_loadavg(text: &str) -> Result<LoadSample, ParseError> {
    let l = LoadAverage::from_read(text.as_bytes())?;
    Ok(LoadSample {
        load1: f64::from(l.one),
        load5: f64::from(l.five),
        load15: f64::from(l.fifteen),
        runnable: u64::from(l.cur),
        total: u64::from(l.max),
    })
}

/// The `load` collector.
pub struct Load {
    path: std::path::PathBuf,
    buf: String,
}

impl Load {
    /// A collector reading `loadavg` under the configured procfs.
    pub fn new(settings: &Settings) -> Self {
        Load {
            path: settings.roots.proc("loadavg"),
            buf: String::new(),
        }
    }
}

impl Collector for Load {
    fn family(&self) -> Family {
        Family::Load
    }

    fn collect(&mut self, cycle: &Cycle, out: &mut Vec<Row>) -> Result<(), CollectError> {
        source::read_into(&self.path, &mut self.buf)?;
        let s = parse_loadavg(&self.buf).map_err(|source| CollectError::Parse {
            path: self.path.clone(),
            source,
        })?;
        let mut row = Row::new("load", cycle.ts);
        row.float("load1", s.load1);
        row.float("load5", s.load5);
        row.float("load15", s.load15);
        row.int("tasks_runnable", s.runnable);
        row.int("tasks_total", s.total);
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
        assert_eq!(s.load1, f64::from(0.20f32));
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
