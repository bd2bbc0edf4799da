//! JSON lines, the same rows `gatherer --stdout` prints (see
//! `hostpulse_proto::json`), to standard output or appended to a file.
//!
//! A file is `fdatasync`'ed before a write is confirmed. Standard output is
//! flushed; what happens after the pipe is the reader's business. Replays
//! after a crash repeat lines (the spool's at-least-once); the `ts`, `node`
//! and tags of a line identify it for a reader that deduplicates.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use super::{Store, StoreError};
use crate::intake::AcceptedBatch;

enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
}

/// The JSON-lines store.
pub struct JsonlStore {
    output: Output,
    text: String,
}

impl JsonlStore {
    /// `stdout`, or a file path (created if needed, appended to).
    pub fn open(target: &str) -> io::Result<Self> {
        let output = if target == "stdout" || target == "-" {
            Output::Stdout(BufWriter::with_capacity(1 << 16, io::stdout()))
        } else {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(target))?;
            Output::File(BufWriter::with_capacity(1 << 16, file))
        };
        Ok(JsonlStore {
            output,
            text: String::new(),
        })
    }
}

impl Store for JsonlStore {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        self.text.clear();
        for batch in batches {
            for row in &batch.decoded.rows {
                let tags = row.key.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let fields = row.fields.iter().map(|(k, v)| (k.as_ref(), v));
                hostpulse_proto::json::write_parts(
                    &mut self.text,
                    &row.key.table,
                    row.ts,
                    &batch.node,
                    tags,
                    fields,
                );
            }
        }
        let result = match &mut self.output {
            Output::Stdout(w) => w.write_all(self.text.as_bytes()).and_then(|()| w.flush()),
            Output::File(w) => w
                .write_all(self.text.as_bytes())
                .and_then(|()| w.flush())
                .and_then(|()| w.get_ref().sync_data()),
        };
        result.map_err(|e| StoreError::Unavailable(format!("writing JSON lines: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostpulse_proto::codec::{Dictionary, StreamDefs};
    use hostpulse_proto::row::Row;

    #[test]
    fn rows_are_in_the_file_when_write_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut store = JsonlStore::open(path.to_str().unwrap()).unwrap();
        let mut dict = Dictionary::new();
        let mut row = Row::new("load", 42).tag("k", "v");
        row.float("load1", 0.5);
        let compact = dict.encode(1, &[row], &[]);
        let stored = dict.complete(&compact);
        let decoded = StreamDefs::new(10).decode(&stored).unwrap();
        let batch = Arc::new(AcceptedBatch {
            node: "n1".into(),
            decoded,
            stored,
        });
        store.write(&[batch]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"table\":\"load\",\"ts\":42,\"node\":\"n1\",\"tags\":{\"k\":\"v\"},\"fields\":{\"load1\":0.5}}\n"
        );
    }
}
