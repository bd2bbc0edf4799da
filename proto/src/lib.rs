//! hostpulse's wire contract and row model.
//!
//! # Layout
//!
//! - [`row`]: the row model (`table`, `ts`, `tags`, `fields`) every part of
//!   hostpulse speaks: collectors produce it, the wire carries it, sinks store it.
//! - [`json`]: rows as JSON lines (serverless output, the reporter's JSON sink).
//! - [`pb`]: the generated protobuf messages and the `Ingest`/`Admin` gRPC
//!   clients and servers (`hostpulse/v1/hostpulse.proto` documents every
//!   message and field).
//! - [`codec`]: rows to compact [`pb::Batch`]es and back: series dictionaries,
//!   delta-coded ids and timestamps, integer-coded floats.
//! - [`rules`]: what a row may hold (names, counts, values, node ids): the
//!   one set of rules the reporter enforces before acknowledging and every
//!   store applies again.
//! - [`patterns`]: comma-separated glob lists (device and mount excludes,
//!   the reporter's per-node configuration rules).
//! - [`backoff`]: exponential backoff with jitter (reconnections, store retries).
//! - [`FAMILIES`]: the metric families a gatherer can run;
//!   [`NODE_EVENTS_TABLE`]: the table of its own events (text messages).
//! - [`FILE_DESCRIPTOR_SET`]: the compiled .proto, for server reflection.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod codec;
pub mod json;
pub mod patterns;
pub mod row;
pub mod rules;

/// Generated code for package `hostpulse.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("hostpulse.v1");
}

/// The encoded `FileDescriptorSet` of hostpulse.proto (with comments).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hostpulse_descriptor.bin"));

/// The protocol version defined by this crate's .proto.
pub const PROTOCOL_VERSION: u32 = 1;

/// The table of the gatherer's own events (start, stop, configuration
/// applied, family disabled or enabled, buffer spill and drops): tag `event`,
/// text field `message`. Every gatherer fills it; it is not a family one
/// enables.
pub const NODE_EVENTS_TABLE: &str = "node_events";

/// The metric families a gatherer can run (its `--collectors` names, which are
/// also table names), in output order. The reporter validates pushed
/// configuration against this list.
pub const FAMILIES: &[&str] = &[
    "node_info",
    "cpu",
    "load",
    "memory",
    "swap",
    "vmstat",
    "network",
    "netstat",
    "disk",
    "filesystem",
    "pressure",
    "processes",
    "system",
    "hwmon",
];
