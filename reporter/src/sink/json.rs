//! JSON lines on stdout or appended to a file: the same rows `gatherer
//! --stdout` prints (see `hostpulse_proto::json`).
//!
//! One writer thread owns the output. It takes every batch waiting in its
//! queue, writes them all, then flushes once (and for a file, `fdatasync`s
//! once): a group commit, so many streams share one flush. Each batch's
//! future resolves after that flush, and only then is it acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use hostpulse_proto::json;
use tokio::sync::{mpsc, oneshot};

use super::{AcceptedBatch, Sink, SinkError, SinkFuture, SinkSetupError};

type Job = (Arc<AcceptedBatch>, oneshot::Sender<Result<(), SinkError>>);

/// Queue length before writers wait (backpressure on the streams).
const QUEUE: usize = 4096;

/// The JSON-lines sink.
pub struct JsonSink {
    name: &'static str,
    queue: mpsc::Sender<Job>,
}

enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
}

impl JsonSink {
    /// Rows to standard output.
    pub fn stdout() -> Self {
        Self::start(
            "stdout",
            Output::Stdout(BufWriter::with_capacity(1 << 16, io::stdout())),
        )
    }

    /// Rows appended to `path` (created if needed), fsync'ed before acknowledging.
    pub fn file(path: &Path) -> Result<Self, SinkSetupError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkSetupError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self::start(
            "file",
            Output::File(BufWriter::with_capacity(1 << 16, file)),
        ))
    }

    fn start(name: &'static str, mut output: Output) -> Self {
        let (queue, mut rx) = mpsc::channel::<Job>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name(format!("hostpulse-sink-{name}"))
            .spawn(move || {
                let mut text = String::new();
                let mut group: Vec<Job> = Vec::new();
                while let Some(job) = rx.blocking_recv() {
                    group.push(job);
                    while let Ok(more) = rx.try_recv() {
                        group.push(more);
                    }
                    text.clear();
                    for (batch, _) in &group {
                        encode(&mut text, batch);
                    }
                    let result = output.commit(text.as_bytes()).map_err(|e| SinkError::Io {
                        sink: name,
                        message: e.to_string(),
                    });
                    if let Err(e) = &result {
                        tracing::error!(error = %e, batches = group.len(), "sink write failed; batches not acknowledged");
                    }
                    for (_, done) in group.drain(..) {
                        let _ = done.send(result.clone());
                    }
                }
            });
        if let Err(e) = spawned {
            // Without its thread the sink refuses every batch (the queue's
            // receiver is gone), which the streams report as unavailable.
            tracing::error!(error = %e, "cannot start the sink thread");
        }
        JsonSink { name, queue }
    }
}

impl Output {
    fn commit(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(w) => {
                w.write_all(bytes)?;
                w.flush()
            }
            Output::File(w) => {
                w.write_all(bytes)?;
                w.flush()?;
                w.get_ref().sync_data()
            }
        }
    }
}

fn encode(out: &mut String, batch: &AcceptedBatch) {
    for row in &batch.decoded.rows {
        let tags = row.key.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let fields = row.fields.iter().map(|(k, v)| (k.as_ref(), *v));
        json::write_parts(out, &row.key.table, row.ts, &batch.node, tags, fields);
    }
}

impl Sink for JsonSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&self, batch: Arc<AcceptedBatch>) -> SinkFuture {
        let queue = self.queue.clone();
        let name = self.name;
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            queue
                .send((batch, done))
                .await
                .map_err(|_| SinkError::Closed(name))?;
            wait.await.map_err(|_| SinkError::Closed(name))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostpulse_proto::codec::{Dictionary, StreamDefs};
    use hostpulse_proto::row::{Row, Value};

    #[tokio::test]
    async fn rows_land_in_the_file_before_the_write_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let sink = JsonSink::file(&path).unwrap();
        let mut dict = Dictionary::new();
        let mut row = Row::new("load", 42).tag("k", "v");
        row.fields.push(("load1", Value::Float(0.5)));
        let compact = dict.encode(1, &[row], &[]);
        let batch = dict.complete(&compact);
        let decoded = StreamDefs::new(10).decode(&batch).unwrap();
        let accepted = AcceptedBatch {
            node: "n1".into(),
            decoded,
            stored: batch,
        };
        sink.write(Arc::new(accepted)).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"table\":\"load\",\"ts\":42,\"node\":\"n1\",\"tags\":{\"k\":\"v\"},\"fields\":{\"load1\":0.5}}\n"
        );
    }
}
