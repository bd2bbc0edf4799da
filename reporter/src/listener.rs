//! The one accept loop behind both listeners (plaintext and TLS): it hands
//! tonic only connections that completed their handshake in time, and never
//! spins when `accept` fails.
//!
//! ```text
//! accept ──err (EMFILE, ENFILE...)──► count, log (at most every 10 s), sleep 10 ms..1 s (doubling), retry
//!    │ ok (back-off reset)
//!    ├─ already --max-pending-connections handshakes in progress ──► close at once (counted)
//!    └─ task: handshake within --handshake-timeout
//!               plaintext: the HTTP/2 preface and a SETTINGS header are buffered (peeked, not read)
//!               TLS:       [`crate::acceptor`]'s classification and TLS handshake, then the
//!                          same 33 bytes read through TLS ([`read_preface`], handed back in front)
//!         ├─ done ──► tonic (the connection counts as open until tonic drops it)
//!         └─ late, closed or refused ──► close (timeouts counted and logged, rate-limited)
//! ```
//!
//! Invariants: a connection is "pending" from accept to the end of its
//! handshake and "open" from then until tonic drops it; at most
//! `max_pending` are pending at once, and none stays pending longer than the
//! handshake timeout. So a peer that opens sockets and says nothing holds at
//! most `max_pending` descriptors, each for at most the timeout, and the
//! listener keeps accepting: idle sockets cannot starve well-behaved clients
//! unless they reach the process's descriptor limit, where the back-off keeps
//! the loop from burning a core until some close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface plus the 9-byte header of the SETTINGS frame that must follow
/// it: what a connection sends before it counts as started. (A peer that sent
/// only the preface would otherwise hold its descriptor until the connection
/// age, since HTTP/2 keepalive starts only after the settings.)
pub const CLIENT_START: usize = HTTP2_PREFACE.len() + 9;

/// First and longest pause after a failed `accept`.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// At most one log line per this period for a repeated condition.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Connection limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a new connection may take to complete its handshake (the
    /// HTTP/2 preface on plaintext; the TLS handshake on TLS).
    pub handshake_timeout: Duration,
    /// Most connections in their handshake at once; more are closed at accept.
    pub max_pending: usize,
}

/// Counters of the listener, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// `accept` calls that failed (descriptor limit, most likely).
    pub accept_errors: AtomicU64,
    /// Connections handed to the server and not yet closed.
    pub open: AtomicI64,
    /// Connections accepted whose handshake is in progress.
    pub pending: AtomicI64,
    /// Connections closed because their handshake did not complete in time.
    pub handshake_timeouts: AtomicU64,
    /// Connections closed at accept because `max_pending` were pending.
    pub refused_pending: AtomicU64,
}

/// A once-per-[`LOG_EVERY`] gate for log lines that could otherwise flood.
#[derive(Debug, Default)]
struct LogGate {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogGate {
    /// `Some(n)` when a line may be written now (`n` lines were suppressed
    /// since the last one); `None` otherwise.
    fn admit(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// Doubling pauses between failed accepts, reset by a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            next: ACCEPT_BACKOFF.0,
        }
    }
}

impl AcceptBackoff {
    /// The pause to take now; the following one doubles, up to the maximum.
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(ACCEPT_BACKOFF.1);
        now
    }

    /// An accept succeeded: start from the shortest pause again.
    pub fn reset(&mut self) {
        *self = AcceptBackoff::default();
    }
}

/// What a handshake hands over: the connection, and the bytes it already
/// read from it (through TLS, to enforce the timeout), to be read again first.
pub struct Started<T> {
    /// The connection.
    pub io: T,
    /// Bytes already read from `io`, if any.
    pub unread: Option<[u8; CLIENT_START]>,
}

impl<T> Started<T> {
    /// A connection nothing was read from (the plaintext path only peeks).
    pub fn untouched(io: T) -> Self {
        Started { io, unread: None }
    }
}

/// A connection handed to tonic; counted as open until dropped. Yields the
/// handshake's unread bytes before reading on.
pub struct Tracked<T> {
    inner: T,
    unread: [u8; CLIENT_START],
    /// Position in `unread`; `CLIENT_START` when all was given back.
    pos: usize,
    stats: Arc<ConnectionStats>,
}

impl<T> Tracked<T> {
    fn new(started: Started<T>, stats: Arc<ConnectionStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (unread, pos) = match started.unread {
            Some(bytes) => (bytes, 0),
            None => ([0; CLIENT_START], CLIENT_START),
        };
        Tracked {
            inner: started.io,
            unread,
            pos,
            stats,
        }
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: Connected> Connected for Tracked<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < CLIENT_START {
            let start = self.pos;
            let n = (CLIENT_START - start).min(buf.remaining());
            buf.put_slice(&self.unread[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Reads the [`CLIENT_START`] bytes of the HTTP/2 preface and SETTINGS
/// header from `io` (whatever they are: the server answers anything else
/// with a protocol error) and hands them
/// back in front of the rest; `None` when the peer closes or fails first.
pub async fn read_preface<T: AsyncRead + Unpin>(mut io: T) -> Option<Started<T>> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; CLIENT_START];
    io.read_exact(&mut head).await.ok()?;
    Some(Started {
        io,
        unread: Some(head),
    })
}

/// Established connections, for `serve_with_incoming_shutdown`.
pub type Incoming<T> = ReceiverStream<Result<Tracked<T>, io::Error>>;

/// Accepts on `listener` until the returned stream is dropped (tonic drops
/// it on shutdown, which closes the listening socket). `handshake` turns a
/// fresh connection into one tonic can serve, or `None` to close it; it is
/// cut off after `limits.handshake_timeout`.
pub fn incoming<T, H, F>(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    handshake: H,
) -> Incoming<T>
where
    T: Send + 'static,
    H: Fn(TcpStream, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Option<Started<T>>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let handshake = Arc::new(handshake);
    tokio::spawn(async move {
        let mut backoff = AcceptBackoff::default();
        let accept_log = LogGate::default();
        let refuse_log = Arc::new(LogGate::default());
        let timeout_log = Arc::new(LogGate::default());
        loop {
            let (stream, peer) = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                        let pause = backoff.pause();
                        if let Some(suppressed) = accept_log.admit() {
                            tracing::warn!(
                                error = %e, retry_in = ?pause, similar_since_last_line = suppressed,
                                open = stats.open.load(Ordering::Relaxed),
                                pending = stats.pending.load(Ordering::Relaxed),
                                "accepting a connection failed (at the descriptor limit, raise `ulimit -n` \
                                 or lower --max-pending-connections / --max-streams); backing off"
                            );
                        }
                        tokio::select! {
                            () = tx.closed() => return,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                },
            };
            backoff.reset();
            if stats.pending.load(Ordering::Relaxed) >= limits.max_pending as i64 {
                stats.refused_pending.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = refuse_log.admit() {
                    tracing::warn!(
                        %peer, max_pending = limits.max_pending, similar_since_last_line = suppressed,
                        "closing a new connection: too many connections have not completed their handshake"
                    );
                }
                drop(stream);
                continue;
            }
            stats.pending.fetch_add(1, Ordering::Relaxed);
            let (tx, stats, handshake) = (tx.clone(), Arc::clone(&stats), Arc::clone(&handshake));
            let timeout_log = Arc::clone(&timeout_log);
            tokio::spawn(async move {
                let done =
                    tokio::time::timeout(limits.handshake_timeout, handshake(stream, peer)).await;
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                match done {
                    Ok(Some(started)) => {
                        let _ = tx.send(Ok(Tracked::new(started, stats))).await;
                    }
                    Ok(None) => {}
                    Err(_) => {
                        stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                        if let Some(suppressed) = timeout_log.admit() {
                            tracing::warn!(
                                %peer, timeout = ?limits.handshake_timeout,
                                similar_since_last_line = suppressed,
                                "closing a connection that did not complete its handshake in time"
                            );
                        }
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The plaintext handshake: waits until [`CLIENT_START`] bytes, the HTTP/2
/// preface and a frame header, are buffered (tonic answers anything but a
/// preface and SETTINGS with a protocol error); a peer that closes is dropped, one that stays silent or
/// stops short is cut off by the caller's timeout.
pub async fn http2_preface(stream: TcpStream, peer: SocketAddr) -> Option<Started<TcpStream>> {
    let mut head = [0u8; CLIENT_START];
    match peek_at_least(&stream, &mut head, CLIENT_START).await {
        Ok(0) => None,
        Ok(_) => Some(Started::untouched(stream)),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection failed before its preface");
            None
        }
    }
}

/// Peeks until at least `min` bytes are buffered or the peer closed.
/// Polls with growing pauses (5 ms to 100 ms), so a peer that trickles
/// bytes costs little CPU.
pub async fn peek_at_least(stream: &TcpStream, buf: &mut [u8], min: usize) -> io::Result<usize> {
    let mut pause = Duration::from_millis(5);
    let mut seen = 0;
    loop {
        let n = stream.peek(buf).await?;
        if n == 0 || n >= min {
            return Ok(n);
        }
        if n > seen {
            seen = n;
            pause = Duration::from_millis(5);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The default of --max-pending-connections: a quarter of the soft limit on
/// open files (so handshakes in progress can never take every descriptor),
/// at most 1024, at least 16.
pub fn default_max_pending() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| open_files_limit(&text));
    soft.map_or(1024, |n| (n / 4).clamp(16, 1024))
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text.
fn open_files_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SETTINGS frame with no settings: length 0, type 4, no flags, stream 0.
    const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

    #[test]
    fn the_open_files_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             95473                95473                processes \n\
                    Max open files            256                  524288               files     \n";
        assert_eq!(open_files_limit(text), Some(256));
        assert_eq!(
            open_files_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert!((16..=1024).contains(&default_max_pending()));
    }

    #[tokio::test]
    async fn a_read_preface_is_read_again_before_the_rest() {
        use tokio::io::AsyncReadExt;
        let mut wire = HTTP2_PREFACE.to_vec();
        wire.extend_from_slice(&EMPTY_SETTINGS);
        wire.extend_from_slice(b"more frames");
        let stats = Arc::new(ConnectionStats::default());
        let started = read_preface(&wire[..]).await.unwrap();
        let mut tracked = Tracked::new(started, Arc::clone(&stats));
        let mut all = Vec::new();
        tracked.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, wire);
        assert_eq!(stats.open.load(Ordering::Relaxed), 1);
        drop(tracked);
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
        assert!(read_preface(&HTTP2_PREFACE[..10]).await.is_none());
    }

    #[test]
    fn accept_backoff_doubles_to_one_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..9).map(|_| b.pause().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.pause(), Duration::from_millis(10));
    }

    #[test]
    fn log_gate_admits_one_line_per_period_and_counts_the_rest() {
        let gate = LogGate::default();
        assert_eq!(gate.admit(), Some(0));
        assert_eq!(gate.admit(), None);
        assert_eq!(gate.admit(), None);
        *gate.last.lock().unwrap() = Some(Instant::now() - LOG_EVERY);
        assert_eq!(gate.admit(), Some(2));
    }

    #[tokio::test]
    async fn silent_and_unsettled_connections_are_closed_and_counted_while_a_started_one_passes() {
        use tokio::io::AsyncWriteExt;
        use tokio_stream::StreamExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let limits = ConnectionLimits {
            handshake_timeout: Duration::from_millis(300),
            max_pending: 2,
        };
        let mut incoming = incoming(listener, limits, Arc::clone(&stats), http2_preface);
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        // The whole preface, but no SETTINGS after it.
        partial.write_all(HTTP2_PREFACE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Two pending: a third is closed at once.
        let _third = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(stats.refused_pending.load(Ordering::Relaxed), 1);
        assert_eq!(stats.handshake_timeouts.load(Ordering::Relaxed), 2);
        assert_eq!(stats.pending.load(Ordering::Relaxed), 0);
        let mut good = TcpStream::connect(addr).await.unwrap();
        good.write_all(HTTP2_PREFACE).await.unwrap();
        good.write_all(&EMPTY_SETTINGS).await.unwrap();
        let conn = tokio::time::timeout(Duration::from_secs(5), incoming.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(stats.open.load(Ordering::Relaxed), 1);
        drop(conn);
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
    }
}
