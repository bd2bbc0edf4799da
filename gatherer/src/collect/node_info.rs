//! `node_info`: placeholder until the family lands (being written now).

use super::error::CollectError;
use super::{Collector, Cycle, Family, Settings};
use crate::row::Row;

/// The `node_info` collector.
pub struct NodeInfo;

impl NodeInfo {
    /// A collector for this family.
    pub fn new(_settings: &Settings) -> Self {
        NodeInfo
    }
}

impl Collector for NodeInfo {
    fn family(&self) -> Family {
        Family::NodeInfo
    }

    fn collect(&mut self, _cycle: &Cycle, _out: &mut Vec<Row>) -> Result<(), CollectError> {
        Ok(())
    }
}

/// The node id (placeholder until the family lands).
pub fn default_node_id(_roots: &crate::roots::Roots) -> String {
    "unknown-node".to_string()
}
