//! Damaged spool ranges: counted once each, logged once each, kept for
//! inspection.
//!
//! ```text
//! Log::open  ──Recovery::damaged──►┐
//!                                  ├─► Ledger: seen (segment, offset)? no ─► count bytes+records,
//! drainer ─SpoolError::Corrupt────►┘            warn (segment, offset, length), copy the segment
//!                                               into quarantine/ (keep_damaged), list in Status
//! ```
//!
//! Every store's drainer meets the same damage; a range is identified by
//! where it starts, so it is counted once however many stores skip it.

use std::collections::HashSet;
use std::path::Path;

use hostpulse_proto::pb;
use hostpulse_spool::{DamagedRange, Recovery};

/// Ranges listed in `Admin.Status` (all are counted).
const LISTED: usize = 1000;

/// One damaged range, from recovery or from a reader.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) bytes: u64,
    pub(crate) records: u64,
    pub(crate) damage: String,
}

/// Every damaged range met since start.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    seen: HashSet<(u64, u64)>,
    listed: Vec<pb::SpoolDamage>,
    pub(crate) bytes: u64,
    pub(crate) records: u64,
}

impl Ledger {
    /// The ranges recovery found (already copied into quarantine by the log).
    pub(crate) fn from_recovery(recovery: &Recovery) -> Self {
        let mut ledger = Ledger::default();
        ledger.recovered(recovery);
        ledger
    }

    /// Adds the ranges a (re)open found that are not known yet.
    pub(crate) fn recovered(&mut self, recovery: &Recovery) {
        for d in &recovery.damaged {
            self.add(&Range::from(d), copy_text(d), "at start");
        }
    }

    /// Ranges counted.
    pub(crate) fn ranges(&self) -> usize {
        self.seen.len()
    }

    /// Counts, logs and keeps a range met by a reader, unless it is known.
    pub(crate) fn met(&mut self, dir: &Path, range: &Range, store: &str) {
        if self.seen.contains(&(range.segment, range.offset)) {
            return;
        }
        let copy = match hostpulse_spool::keep_damaged(dir, range.segment, range.offset) {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("not kept: {e}"),
        };
        self.add(range, copy, &format!("while draining into {store}"));
    }

    fn add(&mut self, range: &Range, copy: String, found: &str) {
        if !self.seen.insert((range.segment, range.offset)) {
            return;
        }
        self.bytes += range.bytes;
        self.records += range.records;
        tracing::warn!(
            segment = range.segment,
            offset = range.offset,
            length = range.bytes,
            records = range.records,
            damage = %range.damage,
            copy = %copy,
            found,
            "spool: damaged range skipped; the intact records around it are delivered"
        );
        if self.listed.len() < LISTED {
            self.listed.push(pb::SpoolDamage {
                segment: range.segment,
                offset: range.offset,
                bytes: range.bytes,
                records: range.records,
                damage: range.damage.clone(),
                copy,
                found: found.to_string(),
            });
        }
    }

    pub(crate) fn listed(&self) -> Vec<pb::SpoolDamage> {
        self.listed.clone()
    }
}

impl From<&DamagedRange> for Range {
    fn from(d: &DamagedRange) -> Self {
        Range {
            segment: d.segment,
            offset: d.offset,
            bytes: d.bytes,
            records: d.records,
            damage: d.damage.to_string(),
        }
    }
}

fn copy_text(d: &DamagedRange) -> String {
    match (&d.copy, &d.copy_error) {
        (Some(path), _) => path.display().to_string(),
        (None, Some(e)) => format!("not kept: {e}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_counted_once_however_many_stores_meet_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::default();
        let range = Range {
            segment: 3,
            offset: 100,
            bytes: 60,
            records: 2,
            damage: "checksum mismatch".into(),
        };
        ledger.met(dir.path(), &range, "sqlite");
        ledger.met(dir.path(), &range, "questdb");
        assert_eq!((ledger.bytes, ledger.records), (60, 2));
        let listed = ledger.listed();
        assert_eq!(listed.len(), 1);
        // The segment file does not exist here: the copy failure is shown.
        assert!(listed[0].copy.starts_with("not kept"), "{listed:?}");
        assert_eq!(listed[0].found, "while draining into sqlite");
    }
}
