//! hostpulse gatherer: samples a Linux host's `/proc` and `/sys` every interval.
//!
//! # Layout
//!
//! - [`roots`]: where the host's procfs, sysfs and root filesystem are mounted.
//! - [`row`]: the row model (`table`, `ts`, `tags`, `fields`) shared by every output.
//! - [`collect`]: one module per metric family, and the [`collect::Collectors`]
//!   that runs the selected ones each cycle.
//! - [`json`]: the JSON-lines encoding of rows (serverless mode).
//! - [`node_events`]: the gatherer's own events (`node_events` table: start,
//!   stop, configuration applied, families, buffer spill and drops), each
//!   with a text message.
//! - [`agent`]: the gatherer's own health row (`hostpulse_self` table), and
//!   [`metrics`]: the counters behind it and behind `/metrics` on the admin port.
//! - [`cli`] and [`run`]: the command line and the serverless loop that ties
//!   collection to output.
//! - [`stream`]: streaming mode: the buffer of unacknowledged batches, the
//!   session with a reporter, backoff and target rotation, and the
//!   credentials (TLS trust, client certificate, bearer token) re-read at
//!   each connection.
//!
//! Data flows one way: `Cycle` → every family's collector → `Vec<Row>` →
//! JSON lines on stdout, or a batch in the [`stream::buffer::Buffer`] → reporter.

#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod collect;
pub mod json;
pub mod metrics;
pub mod node_events;
pub mod roots;
pub mod row;
pub mod run;
pub mod stream;
