//! Files read at start and read again while the daemon runs: the one reload
//! loop for configuration, TLS material, tokens and whatever comes next
//! (alert rules).
//!
//! ```text
//! SIGHUP ───────────────────────────► every Watched::reload(Why::Signal)
//! every `check`: fingerprints (size, mtime, inode of each file)
//!     changed since the last look ──► that Watched::reload(Why::Changed)
//! ```
//!
//! A [`Reloadable`] holds a value read by [`Load`] and swaps it as a whole
//! when a reload succeeds; when one fails the previous value stays in force
//! (the [`Watched`] implementation logs and counts it). The fingerprint
//! follows symlinks, so a Kubernetes Secret or ConfigMap update (which swaps
//! a link target) is seen within one `check`.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};

/// Something read from files that can be read again.
pub trait Load: Sized {
    /// Where it is read from.
    type Source;
    /// Why reading failed.
    type Error;
    /// Reads it.
    fn load(source: &Self::Source) -> Result<Self, Self::Error>;
}

/// A value read from files, replaced as a whole when a reload succeeds and
/// kept as it was when one fails.
#[derive(Debug)]
pub struct Reloadable<T: Load> {
    source: T::Source,
    current: RwLock<Arc<T>>,
}

impl<T: Load> Reloadable<T> {
    /// Reads it once; an error here stops the daemon at start.
    pub fn open(source: T::Source) -> Result<Self, T::Error> {
        let value = T::load(&source)?;
        Ok(Reloadable {
            source,
            current: RwLock::new(Arc::new(value)),
        })
    }

    /// The value in force.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads it again; on error the previous value stays in force.
    pub fn reload(&self) -> Result<Arc<T>, T::Error> {
        let fresh = Arc::new(T::load(&self.source)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Where it is read from.
    pub fn source(&self) -> &T::Source {
        &self.source
    }
}

/// Size, modification time and inode of a file, following symlinks.
pub type Fingerprint = (u64, SystemTime, u64);

/// The file's [`Fingerprint`]; `None` when it cannot be read.
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

/// Why a reload happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// SIGHUP: the operator asked.
    Signal,
    /// A file's fingerprint changed since the last check.
    Changed,
}

/// One thing the reload loop watches.
pub trait Watched: Send + Sync + 'static {
    /// The fingerprints of its files now (compared between checks; the
    /// order must be stable).
    fn fingerprints(&self) -> Vec<Option<Fingerprint>>;

    /// Reads its files again. A failure is logged (and counted) here and
    /// leaves the previous value in force; the loop goes on.
    fn reload(&self, why: Why);
}

/// Runs the reload loop over `watched` until the task is dropped or
/// aborted: every one reloads on SIGHUP, and each one whose fingerprints
/// changed reloads at the next `check`.
pub async fn run(watched: Vec<Arc<dyn Watched>>, check: Duration) {
    if watched.is_empty() {
        return;
    }
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler: files reload only when they change");
            None
        }
    };
    let mut seen: Vec<_> = watched.iter().map(|w| w.fingerprints()).collect();
    let mut ticker = tokio::time::interval(check);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signalled => {
                for (w, seen) in watched.iter().zip(seen.iter_mut()) {
                    *seen = w.fingerprints();
                    w.reload(Why::Signal);
                }
            }
            _ = ticker.tick() => {
                for (w, seen) in watched.iter().zip(seen.iter_mut()) {
                    let now = w.fingerprints();
                    if now != *seen {
                        *seen = now;
                        w.reload(Why::Changed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(std::path::PathBuf, AtomicUsize);

    impl Watched for Counted {
        fn fingerprints(&self) -> Vec<Option<Fingerprint>> {
            vec![fingerprint(&self.0)]
        }
        fn reload(&self, _: Why) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_changed_file_reloads_only_what_watches_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").unwrap();
        std::fs::write(&b, "1").unwrap();
        let wa = Arc::new(Counted(a.clone(), AtomicUsize::new(0)));
        let wb = Arc::new(Counted(b, AtomicUsize::new(0)));
        let task = tokio::spawn(run(
            vec![wa.clone() as Arc<dyn Watched>, wb.clone()],
            Duration::from_millis(10),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&a, "two").unwrap();
        for _ in 0..500 {
            if wa.1.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(wa.1.load(Ordering::Relaxed), 1);
        assert_eq!(wb.1.load(Ordering::Relaxed), 0);
    }
}
