//! The gatherers connected to this replica, for `Admin.ListNodes`.
//!
//! One entry per open stream. A node that opens a second stream (it
//! reconnected before this replica noticed the old connection was dead)
//! supersedes the first: the old stream is told to end, so one node never has
//! two streams interleaving sequences on one replica.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hostpulse_proto::pb;
use tokio::sync::oneshot;

/// Window of the samples-per-second figure.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Identifies one stream in the registry.
pub type StreamId = u64;

struct Entry {
    status: pb::NodeStatus,
    connected_at: Instant,
    recent: VecDeque<(Instant, u64)>,
    supersede: Option<oneshot::Sender<()>>,
}

/// Connected streams.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: StreamId,
    streams: HashMap<StreamId, Entry>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent (every
        // update is a few field writes), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a stream after its Hello. Returns its id and a receiver that
    /// fires if a newer stream of the same node supersedes it.
    pub fn register(&self, hello: &pb::Hello, peer: String) -> (StreamId, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        for entry in inner.streams.values_mut() {
            if entry.status.node_id == hello.node_id {
                if let Some(old) = entry.supersede.take() {
                    let _ = old.send(());
                }
            }
        }
        inner.next += 1;
        let id = inner.next;
        inner.streams.insert(
            id,
            Entry {
                status: pb::NodeStatus {
                    node_id: hello.node_id.clone(),
                    hostname: hello.hostname.clone(),
                    peer,
                    connected_since_ms: now_ms(),
                    dropped_batches: hello.dropped_batches,
                    agent_version: hello.agent_version.clone(),
                    ..Default::default()
                },
                connected_at: Instant::now(),
                recent: VecDeque::new(),
                supersede: Some(tx),
            },
        );
        (id, rx)
    }

    /// Records an acknowledged batch.
    pub fn acked(&self, id: StreamId, sequence: u64, samples: u64) {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(e) = inner.streams.get_mut(&id) {
            e.status.last_batch_ms = now_ms();
            e.status.last_acked_sequence = sequence;
            e.status.batches += 1;
            e.status.samples += samples;
            e.recent.push_back((now, samples));
            while e
                .recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                e.recent.pop_front();
            }
        }
    }

    /// Records the configuration generation sent to a stream.
    pub fn config_sent(&self, id: StreamId, generation: u64) {
        if let Some(e) = self.lock().streams.get_mut(&id) {
            e.status.config_generation = generation;
        }
    }

    /// Removes a stream.
    pub fn deregister(&self, id: StreamId) {
        self.lock().streams.remove(&id);
    }

    /// Every connected stream, sorted by node id.
    pub fn list(&self) -> Vec<pb::NodeStatus> {
        let now = Instant::now();
        let inner = self.lock();
        let mut out: Vec<pb::NodeStatus> = inner
            .streams
            .values()
            .map(|e| {
                let mut s = e.status.clone();
                let samples: u64 = e
                    .recent
                    .iter()
                    .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
                    .map(|(_, n)| n)
                    .sum();
                let secs = now
                    .duration_since(e.connected_at)
                    .min(RATE_WINDOW)
                    .as_secs_f64();
                s.samples_per_second = if secs > 0.0 {
                    samples as f64 / secs
                } else {
                    0.0
                };
                s
            })
            .collect();
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        out
    }

    /// Number of connected streams.
    pub fn len(&self) -> usize {
        self.lock().streams.len()
    }

    /// Whether no stream is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_stream_of_a_node_supersedes_the_first() {
        let r = Registry::default();
        let hello = pb::Hello {
            node_id: "n1".into(),
            ..Default::default()
        };
        let (a, mut a_rx) = r.register(&hello, "1.2.3.4:5".into());
        let (b, mut b_rx) = r.register(&hello, "1.2.3.4:6".into());
        assert!(a_rx.try_recv().is_ok(), "the first stream is told to end");
        assert!(b_rx.try_recv().is_err());
        r.acked(b, 7, 100);
        r.deregister(a);
        let list = r.list();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (
                list[0].last_acked_sequence,
                list[0].samples,
                list[0].batches
            ),
            (7, 100, 1)
        );
        assert!(list[0].samples_per_second > 0.0);
    }
}
