//! `cpu`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `cpu` collector.
pub struct Cpu;

impl Cpu {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Cpu
    }
}

impl Collector for Cpu {
    fn family(&self) -> Family {
        Family::Cpu
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
