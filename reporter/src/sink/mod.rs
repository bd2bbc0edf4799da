//! Where accepted batches go, and the promise behind an acknowledgement.
//!
//! The stream code hands every decoded batch to one [`Sink`] and acknowledges
//! it to the gatherer only when [`Sink::write`] has returned `Ok`: a sink
//! returns only once the batch is as durable as the sink can make it (flushed
//! to a pipe, fsync'ed to a file). A later layer (a disk spool in front of the
//! databases) implements the same trait, so the stream code never changes.
//!
//! Each [`AcceptedBatch`] carries both forms a sink may need: the decoded rows
//! (to write them) and the self-contained protobuf batch (to store it and
//! decode it again after a restart, with no stream around it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hostpulse_proto::codec::DecodedBatch;
use hostpulse_proto::pb;

pub mod json;

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
}

/// A `--sink` value that names no sink.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown sink {0:?}: use stdout, file:PATH or null")]
pub struct UnknownSink(pub String);

/// Builds the sink a `--sink` value names: `stdout`, `file:PATH`, `null`.
pub fn from_spec(spec: &str) -> Result<Arc<dyn Sink>, SinkSetupError> {
    match spec {
        "stdout" => Ok(Arc::new(json::JsonSink::stdout())),
        "null" => Ok(Arc::new(NullSink)),
        _ => match spec.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(Arc::new(json::JsonSink::file(path.as_ref())?)),
            _ => Err(SinkSetupError::Unknown(UnknownSink(spec.to_string()))),
        },
    }
}

/// Why a sink could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum SinkSetupError {
    /// The spec names no sink.
    #[error(transparent)]
    Unknown(#[from] UnknownSink),
    /// The file sink's file cannot be opened for appending.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
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
