//! `filesystem`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `filesystem` collector.
pub struct Filesystem;

impl Filesystem {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        Filesystem
    }
}

impl Collector for Filesystem {
    fn family(&self) -> Family {
        Family::Filesystem
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}
