//! `hwmon`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `hwmon` collector.
pub struct Hwmon;

impl Hwmon {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Hwmon
    }
}

impl Collector for Hwmon {
    fn family(&self) -> Family {
        Family::Hwmon
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
