//! `network`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `network` collector.
pub struct Network;

impl Network {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Network
    }
}

impl Collector for Network {
    fn family(&self) -> Family {
        Family::Network
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
