//! `statvfs` off the collecting thread, so that a hung mount cannot stall a cycle.
//!
//! A `statvfs` on an NFS or FUSE mount whose server is gone blocks in the
//! kernel, possibly forever, and no signal or timeout interrupts it. So the
//! call runs on a persistent worker thread fed through a channel, and the
//! collector waits at most the configured timeout for the answer. On timeout
//! the worker is abandoned (it stays blocked in the kernel) and a fresh one
//! serves the next mounts; the mount point is then skipped until the abandoned
//! call finally returns, so one hung mount costs one timeout, not one per
//! cycle, and at most one blocked thread. This is node_exporter's approach,
//! with a worker that lives across calls: the common path costs two channel
//! messages, no thread spawn.
//!
//! Once a cycle has seen one timeout, the remaining calls of that cycle wait a
//! tenth of the timeout: a server that takes down many mounts at once is
//! noticed in one long wait and a few short ones instead of one long wait per
//! mount. A slow but live mount misjudged that way answers soon after and is
//! measured again from the next cycle on.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::Duration;

/// What `statvfs` reports, in the units the `filesystem` fields need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes per block of the counts below (`f_frsize`, or `f_bsize` when a
    /// filesystem leaves `f_frsize` zero).
    pub block_size: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks free to unprivileged users.
    pub blocks_available: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// The stat call: [`statvfs`] in production, a stand-in in tests.
pub type StatFn = Arc<dyn Fn(&Path) -> io::Result<FsStats> + Send + Sync>;

/// `statvfs(2)` on `path`.
pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(FsStats {
        block_size: if s.f_frsize == 0 {
            s.f_bsize
        } else {
            s.f_frsize
        },
        blocks: s.f_blocks,
        blocks_free: s.f_bfree,
        blocks_available: s.f_bavail,
        files: s.f_files,
        files_free: s.f_ffree,
    })
}

/// The result of [`Statter::stat`].
#[derive(Debug)]
pub enum Outcome {
    /// The call returned (successfully or not) in time.
    Done(io::Result<FsStats>),
    /// The call did not return in time; the mount point is now stuck.
    TimedOut,
    /// An earlier call on this mount point has not returned yet; not called.
    Stuck,
}

type Reply = io::Result<FsStats>;

struct Worker {
    requests: Sender<PathBuf>,
    replies: Receiver<Reply>,
}

/// An abandoned call, remembered until it returns.
struct StuckCall {
    mount_point: String,
    replies: Receiver<Reply>,
}

/// Runs stat calls on a worker thread with a timeout, and remembers the mount
/// points whose call is still blocked.
pub struct Statter {
    stat: StatFn,
    timeout: Duration,
    worker: Option<Worker>,
    stuck: Vec<StuckCall>,
    timed_out_this_cycle: bool,
}

/// Stack of a worker thread: a stat call needs little.
const WORKER_STACK: usize = 256 * 1024;

impl Statter {
    /// A statter calling `stat`, waiting at most `timeout` per call. No
    /// thread is started until the first call.
    pub fn new(stat: StatFn, timeout: Duration) -> Self {
        Statter {
            stat,
            timeout,
            worker: None,
            stuck: Vec::new(),
            timed_out_this_cycle: false,
        }
    }

    /// Starts a cycle: frees the mount points whose blocked call has returned
    /// and restores the full timeout. Call once per cycle, before any `stat`.
    pub fn begin_cycle(&mut self) {
        self.timed_out_this_cycle = false;
        self.stuck.retain(|c| !answered(c, None));
    }

    /// Whether `mount_point` is skipped because its last call is still blocked.
    pub fn is_stuck(&self, mount_point: &str) -> bool {
        self.stuck.iter().any(|c| c.mount_point == mount_point)
    }

    /// Stats `path` (the host's `mount_point` under the root filesystem):
    /// through the worker with a timeout when the call `may_hang`, directly
    /// on this thread otherwise.
    pub fn stat(&mut self, mount_point: &str, path: PathBuf, may_hang: bool) -> Outcome {
        if self.is_stuck(mount_point) {
            return Outcome::Stuck;
        }
        if !may_hang {
            return Outcome::Done((self.stat)(&path));
        }
        let worker = match self.send(path) {
            Ok(w) => w,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let wait = if self.timed_out_this_cycle {
            self.timeout / 10
        } else {
            self.timeout
        };
        match worker.replies.recv_timeout(wait) {
            Ok(reply) => {
                self.worker = Some(worker);
                Outcome::Done(reply)
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    mount_point,
                    timeout = ?wait,
                    "statvfs did not return in time (hung network or FUSE mount?); \
                     skipping this mount point until the call returns"
                );
                self.timed_out_this_cycle = true;
                // Dropping the request sender lets the abandoned worker exit
                // once its call returns and its reply is sent.
                self.stuck.push(StuckCall {
                    mount_point: mount_point.to_string(),
                    replies: worker.replies,
                });
                Outcome::TimedOut
            }
            Err(RecvTimeoutError::Disconnected) => {
                Outcome::Done(Err(io::Error::other("statvfs worker thread exited")))
            }
        }
    }

    /// Hands `path` to the current worker, starting one if there is none or
    /// the previous one died.
    fn send(&mut self, path: PathBuf) -> io::Result<Worker> {
        let path = match self.worker.take() {
            Some(w) => match w.requests.send(path) {
                Ok(()) => return Ok(w),
                Err(mpsc::SendError(path)) => path,
            },
            None => path,
        };
        let worker = self.spawn()?;
        worker
            .requests
            .send(path)
            .map_err(|_| io::Error::other("statvfs worker thread exited"))?;
        Ok(worker)
    }

    fn spawn(&self) -> io::Result<Worker> {
        let (requests, inbox) = mpsc::channel::<PathBuf>();
        let (outbox, replies) = mpsc::channel::<Reply>();
        let stat = Arc::clone(&self.stat);
        thread::Builder::new()
            .name("hostpulse-statfs".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                while let Ok(path) = inbox.recv() {
                    if outbox.send(stat(&path)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { requests, replies })
    }

    /// Waits up to `max` for every stuck call to return, then frees those
    /// that did (tests use this instead of sleeping).
    #[cfg(test)]
    pub(super) fn settle(&mut self, max: Duration) {
        self.stuck.retain(|c| !answered(c, Some(max)));
    }
}

/// Whether an abandoned call has returned (or its worker died), waiting up to
/// `wait` for it.
fn answered(call: &StuckCall, wait: Option<Duration>) -> bool {
    let returned = match wait {
        Some(d) => !matches!(call.replies.recv_timeout(d), Err(RecvTimeoutError::Timeout)),
        None => !matches!(call.replies.try_recv(), Err(TryRecvError::Empty)),
    };
    if returned {
        tracing::info!(mount_point = %call.mount_point, "statvfs returned; mount point measured again");
    }
    returned
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// A stat function that answers at once, except for paths starting with
    /// `/hung`, which block until a token arrives on the returned sender.
    fn blocking_stat() -> (StatFn, Sender<()>, Arc<AtomicUsize>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let stat: StatFn = Arc::new(move |path: &Path| {
            counter.fetch_add(1, Ordering::SeqCst);
            if path.starts_with("/hung") {
                let gate = gate.lock().map_err(|_| io::Error::other("poisoned"))?;
                gate.recv().map_err(|_| io::Error::other("gate closed"))?;
            }
            Ok(FsStats {
                block_size: 4096,
                blocks: 10,
                ..FsStats::default()
            })
        });
        (stat, release, calls)
    }

    fn done(o: &Outcome) -> bool {
        matches!(o, Outcome::Done(Ok(s)) if s.blocks == 10)
    }

    #[test]
    fn a_hung_call_times_out_once_and_is_skipped_until_it_returns() {
        let (stat, release, calls) = blocking_stat();
        let mut s = Statter::new(stat, Duration::from_millis(200));
        s.begin_cycle();
        assert!(done(&s.stat("/", "/".into(), true)));
        assert!(matches!(
            s.stat("/hung", "/hung".into(), true),
            Outcome::TimedOut
        ));
        assert!(s.is_stuck("/hung"));
        // A fresh worker serves the other mounts.
        assert!(done(&s.stat("/home", "/home".into(), true)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Later cycles skip the stuck mount without calling stat at all.
        s.begin_cycle();
        assert!(matches!(
            s.stat("/hung", "/hung".into(), true),
            Outcome::Stuck
        ));
        assert!(done(&s.stat("/", "/".into(), true)));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // The blocked call returns: the mount point is measured again.
        release.send(()).unwrap();
        s.settle(Duration::from_secs(10));
        s.begin_cycle();
        assert!(!s.is_stuck("/hung"));
        release.send(()).unwrap();
        assert!(done(&s.stat("/hung", "/hung".into(), true)));
    }

    #[test]
    fn after_one_timeout_the_rest_of_the_cycle_waits_less() {
        let (stat, release, _) = blocking_stat();
        let timeout = Duration::from_millis(500);
        let mut s = Statter::new(stat, timeout);
        s.begin_cycle();
        assert!(matches!(
            s.stat("/hung/a", "/hung/a".into(), true),
            Outcome::TimedOut
        ));
        let started = Instant::now();
        assert!(matches!(
            s.stat("/hung/b", "/hung/b".into(), true),
            Outcome::TimedOut
        ));
        assert!(started.elapsed() < timeout);
        assert!(s.is_stuck("/hung/a") && s.is_stuck("/hung/b"));
        // Let both abandoned workers finish.
        release.send(()).unwrap();
        release.send(()).unwrap();
        s.settle(Duration::from_secs(10));
        s.begin_cycle();
        assert!(!s.is_stuck("/hung/a") && !s.is_stuck("/hung/b"));
    }

    #[test]
    fn errors_come_back_as_errors() {
        let stat: StatFn = Arc::new(|_: &Path| Err(io::Error::from(io::ErrorKind::NotFound)));
        let mut s = Statter::new(stat, Duration::from_secs(5));
        s.begin_cycle();
        let Outcome::Done(Err(e)) = s.stat("/gone", "/gone".into(), true) else {
            panic!("expected an error");
        };
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_worker_that_dies_is_replaced() {
        let stat: StatFn = Arc::new(|p: &Path| {
            if p == Path::new("/boom") {
                panic!("stat function failed");
            }
            Ok(FsStats::default())
        });
        let mut s = Statter::new(stat, Duration::from_secs(5));
        s.begin_cycle();
        assert!(matches!(
            s.stat("/boom", "/boom".into(), true),
            Outcome::Done(Err(_))
        ));
        assert!(matches!(
            s.stat("/", "/".into(), true),
            Outcome::Done(Ok(_))
        ));
    }

    #[test]
    fn real_statvfs_on_the_root() {
        let st = statvfs(Path::new("/")).unwrap();
        assert!(st.block_size > 0);
        assert!(statvfs(Path::new("/nonexistent-hostpulse")).is_err());
    }

    #[test]
    fn calls_that_cannot_hang_run_on_the_callers_thread() {
        let caller = thread::current().id();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let stat: StatFn = Arc::new(move |_p: &Path| {
            log.lock().unwrap().push(thread::current().id());
            Ok(FsStats {
                blocks: 10,
                ..FsStats::default()
            })
        });
        let mut s = Statter::new(stat, Duration::from_secs(5));
        assert!(done(&s.stat("/", "/".into(), false)));
        assert!(done(&s.stat("/nfs", "/nfs".into(), true)));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], caller, "a local filesystem is stat'ed inline");
        assert_ne!(
            seen[1], caller,
            "a network filesystem goes through the worker"
        );
    }
}
