//! Ingest messages built from rows, as a client written from the `.proto`
//! alone sends them: the batch is encoded once (the gatherer's own
//! [`Dictionary`]) and carries its definitions, with no encode→decode round
//! trip.

use hostpulse_proto::codec::Dictionary;
use hostpulse_proto::pb::{self, gatherer_message::Message};
use hostpulse_proto::row::Row;

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
