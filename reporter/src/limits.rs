//! Limits on `Ingest` streams, as one tower layer in front of the services.
//!
//! - **Concurrent streams**: a stream takes a slot for as long as its response
//!   body lives; with no slot free it is refused at once with
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// The path prefix the limits apply to.
pub const INGEST_PREFIX: &str = "/hostpulse.v1.Ingest/";

/// The layer.
#[derive(Clone)]
pub struct IngestLimitsLayer {
    slots: Arc<Semaphore>,
    max_streams: usize,
    max_message: usize,
    idle: Duration,
}

impl IngestLimitsLayer {
    /// At most `max_streams` streams, messages of at most `max_message`
    /// bytes on the wire, and `idle` without a message.
    pub fn new(max_streams: usize, max_message: usize, idle: Duration) -> Self {
        IngestLimitsLayer {
            slots: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            max_message,
            idle,
        }
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
        let Ok(permit) = Arc::clone(&self.limits.slots).try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "this reporter already serves its maximum of {} streams; try another replica",
                self.limits.max_streams
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let (max, idle) = (self.limits.max_message, self.limits.idle);
        let request = request.map(|body| Body::new(Guarded::new(body, max, idle)));
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| {
                Body::new(Slotted {
                    body,
                    _permit: permit,
                })
            }))
        })
    }
}

/// A response body holding a stream slot until it is dropped.
struct Slotted {
    body: Body,
    _permit: OwnedSemaphorePermit,
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
