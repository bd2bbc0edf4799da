//! Databases the spool drains into.
//!
//! A [`Store`] runs on a dedicated thread owned by its drainer (the
//! database clients are blocking), receives acknowledged batches in spool
//! order, and returns from [`Store::write`] only when the database has
//! accepted every row of them. The drainer owns everything around it: its
//! cursor in the spool, retries with exponential backoff and jitter (forever:
//! the spool absorbs the outage), and what to do with a batch the database
//! rejects for good.
//!
//! Writes must be idempotent: after a crash the drainer resumes from its last
//! persisted cursor, so the batches after it are written again. QuestDB tables
//! deduplicate on `(ts, node, tags)` (checked before writing:
//! [`questdb_schema`]); SQLite tables have a unique key on the same.
//!
//! Row model: each row has a table (one per family), `ts` (Unix ns), the
//! `node`, string tags (the family's tags, then the gatherer's labels) and
//! fields: integers exact, floats with three decimals, text (at most 8 KiB).
//! Stores that hold only numbers leave text fields out and count them
//! ([`skipped_text`]); that never fails a batch.

use std::sync::Arc;

use crate::intake::AcceptedBatch;

pub mod jsonl;
pub mod questdb;
pub mod questdb_schema;
pub mod skipped_text;
pub mod sqlite;

/// Why a store did not take batches.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failed in a way that may pass (refused
    /// connection, timeout, 5xx, a locked file, a full disk). The drainer
    /// retries the same batches with backoff, forever.
    #[error("{0}")]
    Unavailable(String),
    /// The database refused these rows and will refuse them again (a 400 with
    /// its reason, a type conflict). The drainer splits the write until the
    /// refused rows are alone, writes them to the store's rejected-rows file,
    /// counts and logs them, and moves on, so one bad row costs neither its
    /// neighbours nor the spool.
    #[error("{0}")]
    Rejected(String),
}

/// A database the spool drains into.
pub trait Store: Send + 'static {
    /// Short name for logs, metrics and the cursor file (`sqlite`, `questdb`, `jsonl`).
    fn name(&self) -> &'static str;

    /// Stores every row of `batches`. Returns only when they are durable in
    /// the database (a committed transaction, a 2xx from the server).
    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError>;

    /// Housekeeping the drainer calls between writes, at most once per
    /// [`Store::maintain_interval`] (retention pruning). Errors are logged,
    /// never fatal.
    fn maintain(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How often [`Store::maintain`] runs (a store with a short retention
    /// asks for more often).
    fn maintain_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }
}
