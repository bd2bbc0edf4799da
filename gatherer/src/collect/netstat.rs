//! `netstat`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `netstat` collector.
pub struct Netstat;

impl Netstat {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Netstat
    }
}

impl Collector for Netstat {
    fn family(&self) -> Family {
        Family::Netstat
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
