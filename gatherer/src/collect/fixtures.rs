//! Test support shared by the family modules: fixture trees as settings, and
//! a collector run twice two seconds apart (the second run has rates).

use std::time::{Duration, Instant};

use super::{Collector, Cycle, Settings};
use crate::roots::Roots;
use crate::row::Row;

/// Settings reading the fixture tree `gatherer/tests/fixtures/<tree>`.
pub(crate) fn settings(tree: &str) -> Settings {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    Settings {
        roots: Roots::under(format!("{dir}{tree}")),
        ..Settings::default()
    }
}

/// Runs a one-row family twice, two seconds apart; returns both rows.
pub(crate) fn run_twice(c: &mut dyn Collector) -> (Row, Row) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    c.collect(&Cycle { ts: 1, at: t0 }, &mut out).unwrap();
    let at = t0 + Duration::from_secs(2);
    c.collect(&Cycle { ts: 2, at }, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    let second = out.pop().unwrap();
    (out.pop().unwrap(), second)
}

/// The text of a fixture file, `rel` under `gatherer/tests/fixtures/`.
pub(crate) fn text(rel: &str) -> String {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    super::source::read_string(std::path::Path::new(&path)).unwrap()
}
