//! `vmstat`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `vmstat` collector.
pub struct Vmstat;

impl Vmstat {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Vmstat
    }
}

impl Collector for Vmstat {
    fn family(&self) -> Family {
        Family::Vmstat
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
