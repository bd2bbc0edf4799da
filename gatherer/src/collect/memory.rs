//! `memory`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `memory` collector.
pub struct Memory;

impl Memory {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Memory
    }
}

impl Collector for Memory {
    fn family(&self) -> Family {
        Family::Memory
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
