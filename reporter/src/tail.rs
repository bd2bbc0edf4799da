//! Live rows for `Admin.Tail`: every acknowledged batch is offered to the
//! readers present; with none, nothing is copied. A reader that falls behind
//! by more than the channel's capacity skips ahead and is told how many
//! batches it missed: a slow terminal never slows ingest.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::intake::AcceptedBatch;

/// Batches a slow reader may fall behind before it skips.
const CAPACITY: usize = 1024;

/// The broadcast of acknowledged batches.
pub struct Tail {
    tx: broadcast::Sender<Arc<AcceptedBatch>>,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Tail {
    /// Offers a batch to the current readers.
    pub fn publish(&self, batch: &Arc<AcceptedBatch>) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::clone(batch));
        }
    }

    /// A new reader.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AcceptedBatch>> {
        self.tx.subscribe()
    }
}
