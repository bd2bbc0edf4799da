//! `pressure`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `pressure` collector.
pub struct Pressure;

impl Pressure {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Pressure
    }
}

impl Collector for Pressure {
    fn family(&self) -> Family {
        Family::Pressure
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
