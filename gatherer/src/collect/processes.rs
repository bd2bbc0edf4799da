//! `processes`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `processes` collector.
pub struct Processes;

impl Processes {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Processes
    }
}

impl Collector for Processes {
    fn family(&self) -> Family {
        Family::Processes
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
