//! Where accepted batches go, and the promise behind an acknowledgement.
//!
//! The stream code hands every decoded batch to one [`Intake`] and
//! acknowledges it to the gatherer only when [`Intake::write`] has returned
//! `Ok`. The intake is the disk spool ([`crate::spool::Spool`]: durable once
//! fsync'ed, then drained into the stores), or [`Discard`] (`--ingest
//! discard`) for benchmarks of the stream path alone.
//!
//! Vocabulary: the *spool* is the disk log; a *store* is a database or file
//! destination the spool drains into ([`crate::store`]).
//!
//! Each [`AcceptedBatch`] carries both forms a consumer may need: the decoded
//! rows (to write them) and the self-contained protobuf batch (to spool it
//! and decode it again after a restart, with no stream around it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hostpulse_proto::codec::DecodedBatch;
use hostpulse_proto::pb;

/// A batch the reporter accepted from a gatherer.
#[derive(Debug)]
pub struct AcceptedBatch {
    /// The node it came from (`node` of every row).
    pub node: Arc<str>,
    /// Its rows.
    pub decoded: DecodedBatch,
    /// The batch with every definition it uses: decodable on its own.
    pub stored: pb::Batch,
}

/// What [`Intake::write`] returns.
pub type IntakeFuture = Pin<Box<dyn Future<Output = Result<(), IntakeError>> + Send>>;

/// Where accepted batches land before they are acknowledged.
pub trait Intake: Send + Sync + 'static {
    /// Short name for logs (`spool`, `discard`).
    fn name(&self) -> &'static str;

    /// Stores the batch; resolves once it is durable (then the reporter acknowledges it).
    fn write(&self, batch: Arc<AcceptedBatch>) -> IntakeFuture;
}

/// Why the intake did not take a batch. The stream ends with UNAVAILABLE and the
/// gatherer keeps the batch and retries after reconnecting.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    /// Writing failed (disk full, closed pipe, I/O error).
    #[error("writing to the {intake}: {message}")]
    Io {
        /// The intake (`spool`).
        intake: &'static str,
        /// The error.
        message: String,
    },
    /// The intake has shut down (the reporter is stopping).
    #[error("the {0} is closed")]
    Closed(&'static str),
    /// The spool is at its limit or the disk is full: the batch is not
    /// acknowledged, the gatherer keeps it and retries, and health reports
    /// NOT_SERVING until the stores have drained the spool.
    #[error("the {0} is full; not acknowledging until the stores drain it")]
    Full(&'static str),
}

/// Accepts and discards everything (benchmarks of the stream path).
pub struct Discard;

impl Intake for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn write(&self, _batch: Arc<AcceptedBatch>) -> IntakeFuture {
        Box::pin(std::future::ready(Ok(())))
    }
}
