//! `disk`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `disk` collector.
pub struct Disk;

impl Disk {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Disk
    }
}

impl Collector for Disk {
    fn family(&self) -> Family {
        Family::Disk
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
