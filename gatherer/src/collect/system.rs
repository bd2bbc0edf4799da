//! `system`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `system` collector.
pub struct System;

impl System {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        System
    }
}

impl Collector for System {
    fn family(&self) -> Family {
        Family::System
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
