//! Where accepted batches go, and the promise behind an acknowledgement.
//!
//! The stream code hands every decoded batch to one [`Sink`] and acknowledges
//! it to the gatherer only when [`Sink::write`] has returned `Ok`. The sink is
//! the disk spool ([`crate::spool::Spool`]: durable once fsync'ed, then
//! drained into the databases), or [`NullSink`] for benchmarks of the stream
//! path alone.
//!
//! Each [`AcceptedBatch`] carries both forms a sink may need: the decoded rows
//! (to write them) and the self-contained protobuf batch (to store it and
//! decode it again after a restart, with no stream around it).

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

/// What [`Sink::write`] returns.
pub type SinkFuture = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// A destination for accepted batches.
pub trait Sink: Send + Sync + 'static {
    /// Short name for logs (`stdout`, `file`, `null`).
    fn name(&self) -> &'static str;

    /// Stores the batch; resolves once it is durable (then the reporter acknowledges it).
    fn write(&self, batch: Arc<AcceptedBatch>) -> SinkFuture;
}

/// Why a sink did not take a batch. The stream ends with UNAVAILABLE and the
/// gatherer keeps the batch and retries after reconnecting.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Writing failed (disk full, closed pipe, I/O error).
    #[error("writing to the {sink} sink: {message}")]
    Io {
        /// The sink.
        sink: &'static str,
        /// The error.
        message: String,
    },
    /// The sink has shut down (the reporter is stopping).
    #[error("the {0} sink is closed")]
    Closed(&'static str),
    /// The spool is at its limit or the disk is full: the batch is not
    /// acknowledged, the gatherer keeps it and retries, and health reports
    /// NOT_SERVING until the sinks have drained the spool.
    #[error("the {0} is full; not acknowledging until the sinks drain it")]
    Full(&'static str),
}

/// Accepts and discards everything (benchmarks of the stream path).
pub struct NullSink;

impl Sink for NullSink {
    fn name(&self) -> &'static str {
        "null"
    }

    fn write(&self, _batch: Arc<AcceptedBatch>) -> SinkFuture {
        Box::pin(std::future::ready(Ok(())))
    }
}
