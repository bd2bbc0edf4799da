//! Limits on `Ingest` streams, as one tower layer in front of the services.
//!
//! - **Streams waiting for Hello**: a new stream first takes one of
//!   `--max-pending-streams` waiting places (none free: RESOURCE_EXHAUSTED at
//!   once). The stream's [`StreamPlace`] travels in the request's extensions;
//!   only once its Hello was accepted does `ingest` call
//!   [`StreamPlace::admit`], which trades the waiting place for one of
//!   `--max-streams` slots. A stream that sends no Hello within
//!   `--hello-timeout` is ended by `ingest` (DEADLINE_EXCEEDED), so silent
//!   streams never hold a slot that a real gatherer needs.
//! - **Concurrent streams**: a stream holds its slot for as long as its
//!   response body lives; with no slot free it is refused at once with
//!   RESOURCE_EXHAUSTED (rather than queued), so a gatherer's backoff moves it
//!   to another replica.
//! - **Message size**: the layer reads the 5-byte gRPC frame header of each
//!   inbound message and fails the stream with RESOURCE_EXHAUSTED as soon as
//!   one declares more than the limit, before buffering a byte of it. (tonic's
//!   own limit, which also bounds the decompressed size, stays as a backstop.)
//! - **Idle timeout**: a stream that sends nothing for the timeout fails with
//!   DEADLINE_EXCEEDED, freeing its slot from a peer that is gone without a
//!   TCP reset.
//!
//! Only paths under `/hostpulse.v1.Ingest/` are limited: operators' Admin,
//! health and reflection calls always get through, even when every slot is taken.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::sync::Mutex;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// The path prefix the limits apply to.
pub const INGEST_PREFIX: &str = "/hostpulse.v1.Ingest/";

/// The layer.
#[derive(Debug, Clone)]
pub struct IngestLimitsLayer {
    slots: Arc<Semaphore>,
    max_streams: usize,
    waiting: Arc<Semaphore>,
    max_waiting: usize,
    max_message: usize,
    idle: Duration,
}

impl IngestLimitsLayer {
    /// At most `max_streams` streams past their Hello and `max_waiting`
    /// waiting for it, messages of at most `max_message` bytes on the wire,
    /// and `idle` without a message.
    pub fn new(max_streams: usize, max_waiting: usize, max_message: usize, idle: Duration) -> Self {
        IngestLimitsLayer {
            slots: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            waiting: Arc::new(Semaphore::new(max_waiting)),
            max_waiting,
            max_message,
            idle,
        }
    }

    /// Streams waiting for their Hello now.
    pub fn streams_waiting(&self) -> usize {
        self.max_waiting - self.waiting.available_permits()
    }
}

/// A stream's place: waiting for its Hello, then (after
/// [`StreamPlace::admit`]) one of the `--max-streams` slots. Shared by the
/// request (extensions), the session and the response body; the place is
/// given back when the last of them is dropped.
#[derive(Clone)]
pub struct StreamPlace {
    state: Arc<Mutex<Place>>,
    slots: Arc<Semaphore>,
    max_streams: usize,
}

/// The permit held (given back when the place is dropped).
enum Place {
    Waiting { _permit: OwnedSemaphorePermit },
    Admitted { _permit: OwnedSemaphorePermit },
}

impl StreamPlace {
    /// The Hello was accepted: takes a stream slot and frees the waiting
    /// place. RESOURCE_EXHAUSTED when every slot is taken.
    pub fn admit(&self) -> Result<(), Status> {
        let mut place = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*place, Place::Admitted { .. }) {
            return Ok(());
        }
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this reporter already serves its maximum of {} streams; try another replica",
                self.max_streams
            ))
        })?;
        *place = Place::Admitted { _permit: slot };
        Ok(())
    }
}

impl<S> Layer<S> for IngestLimitsLayer {
    type Service = IngestLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IngestLimits {
            inner,
            limits: self.clone(),
        }
    }
}

/// The service the layer produces.
#[derive(Clone)]
pub struct IngestLimits<S> {
    inner: S,
    limits: IngestLimitsLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for IngestLimits<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !request.uri().path().starts_with(INGEST_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let Ok(waiting) = Arc::clone(&self.limits.waiting).try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "{} streams are already waiting for their Hello on this reporter; try again or another replica",
                self.limits.max_waiting
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let place = StreamPlace {
            state: Arc::new(Mutex::new(Place::Waiting { _permit: waiting })),
            slots: Arc::clone(&self.limits.slots),
            max_streams: self.limits.max_streams,
        };
        let (max, idle) = (self.limits.max_message, self.limits.idle);
        let mut request = request.map(|body| Body::new(Guarded::new(body, max, idle)));
        request.extensions_mut().insert(place.clone());
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| {
                Body::new(Slotted {
                    body,
                    _place: place,
                })
            }))
        })
    }
}

/// A response body holding the stream's place until it is dropped.
struct Slotted {
    body: Body,
    _place: StreamPlace,
}

impl HttpBody for Slotted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that checks gRPC frame sizes and the idle timeout.
struct Guarded {
    body: Body,
    max: usize,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// Bytes of the current frame header seen so far (0..5).
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message still to pass.
    remaining: usize,
    failed: bool,
}

impl Guarded {
    fn new(body: Body, max: usize, idle: Duration) -> Self {
        Guarded {
            body,
            max,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            failed: false,
        }
    }

    /// Walks the frame headers in `data`; an error when one declares too much.
    fn inspect(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data.advance(n);
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data.advance(n);
            if self.header_len == 5 {
                self.header_len = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if len > self.max {
                    return Err(Status::resource_exhausted(format!(
                        "a message of {len} bytes exceeds this reporter's limit of {} bytes",
                        self.max
                    )));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let idle = self.idle;
                self.timer.as_mut().reset(Instant::now() + idle);
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    if let Err(status) = self.inspect(&data) {
                        self.failed = true;
                        return Poll::Ready(Some(Err(status)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.failed = true;
                    let idle = self.idle;
                    return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                        "no message for {idle:?}: the stream is considered dead"
                    )))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn a_stream_takes_a_slot_only_once_admitted_and_gives_everything_back() {
        let layer = IngestLimitsLayer::new(1, 2, 100, Duration::from_secs(1));
        let place = |layer: &IngestLimitsLayer| {
            let waiting = Arc::clone(&layer.waiting).try_acquire_owned().ok()?;
            Some(StreamPlace {
                state: Arc::new(Mutex::new(Place::Waiting { _permit: waiting })),
                slots: Arc::clone(&layer.slots),
                max_streams: layer.max_streams,
            })
        };
        let a = place(&layer).unwrap();
        let b = place(&layer).unwrap();
        assert!(place(&layer).is_none(), "two may wait, not three");
        assert_eq!(layer.streams_waiting(), 2);
        a.admit().unwrap();
        a.admit().unwrap();
        assert_eq!(layer.streams_waiting(), 1, "admitted: no longer waiting");
        let refused = b.admit().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let a2 = a.clone();
        drop(a);
        assert_eq!(
            layer.slots.available_permits(),
            0,
            "a clone still holds the slot"
        );
        drop(a2);
        b.admit().unwrap();
        drop(b);
        assert_eq!(layer.slots.available_permits(), 1);
        assert_eq!(layer.streams_waiting(), 0);
    }

    #[tokio::test]
    async fn frame_headers_are_followed_across_chunk_boundaries() {
        let mut g = Guarded::new(Body::empty(), 100, Duration::from_secs(1));
        let mut stream = frame(100);
        stream.extend(frame(3));
        for chunk in stream.chunks(3) {
            g.inspect(chunk).unwrap();
        }
        let big = frame(101);
        let err = g.inspect(&big[..5]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    }
}
