//! The reporter's stream counters, recorded where streams start, end and
//! acknowledge. They are read by [`crate::report`] (`/metrics` and the
//! `hostpulse_self` rows); the spool's and stores' counters live in the spool
//! (`Spool::write_metrics`), which owns the threads that record them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hostpulse_ops::metrics::{Counter, Gauge, Histogram};

/// Stream counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Streams past their Hello, open now.
    pub streams_open: Gauge,
    /// Streams accepted since start.
    pub streams_opened: Counter,
    /// Streams ended, by gRPC status code (`OK` for a clean close).
    streams_ended: Mutex<BTreeMap<&'static str, u64>>,
    /// Batches acknowledged.
    pub batches: Counter,
    /// Samples in acknowledged batches.
    pub samples: Counter,
    /// From a batch's arrival to its acknowledgement (decode + spool append + fsync).
    pub ack_seconds: Histogram,
    /// Batches the spool did not take (the stream ended with UNAVAILABLE).
    pub intake_errors: Counter,
    /// The listener's accept errors, open and pending connections.
    pub connections: Arc<crate::listener::ConnectionStats>,
    /// The Ingest limits, for the streams waiting for their Hello.
    pub(crate) streams_waiting: std::sync::OnceLock<crate::limits::IngestLimitsLayer>,
}

impl Metrics {
    /// Where the count of streams waiting for their Hello is read.
    pub fn set_streams_waiting(&self, limits: crate::limits::IngestLimitsLayer) {
        let _ = self.streams_waiting.set(limits);
    }

    /// Counts a stream's end with `code`.
    pub fn stream_ended(&self, code: tonic::Code) {
        let name = code_name(code);
        *self
            .streams_ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
    }

    pub(crate) fn ended(&self) -> Vec<(&'static str, u64)> {
        self.streams_ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
