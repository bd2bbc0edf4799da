//! `swap`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `swap` collector.
pub struct Swap;

impl Swap {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Swap
    }
}

impl Collector for Swap {
    fn family(&self) -> Family {
        Family::Swap
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
