//! Batches built from rows, with no encode→decode round trip:
//!
//! - on the wire ([`hello`], [`batch`], [`message`]): as a client written
//!   from the `.proto` alone sends them, encoded once with the gatherer's own
//!   [`Dictionary`] and carrying their definitions;
//! - as the reporter holds them after decoding ([`decoded_row`],
//!   [`decoded`], [`decoded_rows`]): what the stores are given, built
//!   directly (store tests and benchmarks).

use std::sync::Arc;

use hostpulse_proto::codec::{DecodedBatch, DecodedRow, Dictionary, RowKeyDef};
use hostpulse_proto::pb::{self, gatherer_message::Message};
use hostpulse_proto::row::{Row, Value};

/// The Hello of node `node`, at the current protocol version.
pub fn hello(node: &str) -> pb::GathererMessage {
    pb::GathererMessage {
        message: Some(Message::Hello(pb::Hello {
            protocol_version: hostpulse_proto::PROTOCOL_VERSION,
            node_id: node.into(),
            ..Default::default()
        })),
    }
}

/// `rows` as one self-contained batch (it defines every row key and series
/// it uses, so a fresh stream can decode it).
pub fn batch(sequence: u64, rows: &[Row]) -> pb::Batch {
    let mut dict = Dictionary::new();
    let compact = dict.encode(sequence, rows, &[]);
    dict.complete(&compact)
}

/// `batch` as a stream message.
pub fn message(batch: pb::Batch) -> pb::GathererMessage {
    pb::GathererMessage {
        message: Some(Message::Batch(batch)),
    }
}

/// Now, in Unix nanoseconds (rows older than the reporter's
/// `--max-sample-age` are refused).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as i64
}

/// A decoded row of `table` with `tags` (in order) at `ts`.
pub fn decoded_row(
    table: &str,
    tags: &[(&str, &str)],
    ts: i64,
    fields: &[(&str, Value)],
) -> DecodedRow {
    DecodedRow {
        key: Arc::new(RowKeyDef {
            table: table.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
        ts,
        fields: fields
            .iter()
            .map(|(n, v)| (Arc::from(*n), v.clone()))
            .collect(),
    }
}

/// `rows` as decoded batch `sequence` (its sample count summed).
pub fn decoded(sequence: u64, rows: Vec<DecodedRow>) -> DecodedBatch {
    let samples = rows.iter().map(|r| r.fields.len()).sum();
    DecodedBatch {
        sequence,
        rows,
        samples,
    }
}

/// Rows of the row model as decoded batch `sequence`: what the reporter
/// holds once it decoded the same rows sent as [`batch`].
pub fn decoded_rows(sequence: u64, rows: &[Row]) -> DecodedBatch {
    decoded(
        sequence,
        rows.iter()
            .map(|r| {
                let tags: Vec<(&str, &str)> =
                    r.tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
                decoded_row(r.table, &tags, r.ts, &r.fields)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use hostpulse_proto::codec::StreamDefs;

    use super::*;

    #[test]
    fn rows_built_directly_equal_rows_sent_and_decoded() {
        let ts = now_ns();
        let rows = [
            Row::from_parts(
                "cpu",
                ts,
                &[("cpu", "0")],
                &[("user", Value::Float(1.5)), ("irqs", Value::Int(7))],
            ),
            Row::from_parts("load", ts + 1, &[], &[("load1", Value::Float(0.25))]),
        ];
        let sent = StreamDefs::new(usize::MAX)
            .decode(&batch(3, &rows))
            .unwrap();
        assert_eq!(decoded_rows(3, &rows), sent);
    }
}
