//! hostpulse's test support: one copy of every helper the end-to-end tests
//! (`tests/`, crate `e2e`), the crates' own tests and the benchmarks share.
//!
//! # Layout
//!
//! - [`process`]: workspace binaries run as real processes ([`binary`],
//!   [`Process`], [`Daemon`], killed on drop), [`free_port`], [`wait_for`],
//!   [`wait_listening`]; the gatherer's fixture trees ([`fixture`]).
//! - [`procstat`]: CPU time and memory of a process and busy time of the
//!   machine, from `/proc` (the `/proc/<pid>/stat` parser itself is
//!   [`hostpulse_ops::process::parse_stat`], shared with the daemons).
//! - [`rows`]: JSON lines parsed back into the row model ([`Rows`]), and
//!   `sqlite3` queries.
//! - [`grpc`]: Ingest streams from a client written from the `.proto` alone
//!   (whole streams, raw bytes, silent peers) and the real `grpcurl`.
//! - [`batch`]: `pb::Batch`es built from rows, the way a gatherer encodes
//!   them, with no encode→decode round trip.
//! - [`http`]: a minimal HTTP/1.1 client for 127.0.0.1 (admin ports,
//!   VictoriaMetrics, QuestDB).
//! - [`pki`]: CAs and certificates made with the real `openssl` ([`Pki`]).
//! - [`tsdb`]: a real VictoriaMetrics ([`Tsdb`]); [`questdb`]: a real QuestDB
//!   9.3.5 from its jar ([`QuestDb`]), and how the tests find it.
//! - `reporter` (feature `reporter`): the real reporter library serving on
//!   127.0.0.1:0 inside the test process ([`start_reporter`]), for fast
//!   in-process tests of the ingest protocol.
//!
//! Everything started here stops when its handle is dropped; every server
//! listens on 127.0.0.1 only.

#![forbid(unsafe_code)]

pub mod batch;
pub mod grpc;
pub mod http;
pub mod pki;
pub mod process;
pub mod procstat;
pub mod questdb;
#[cfg(feature = "reporter")]
pub mod reporter;
pub mod rows;
pub mod tsdb;

pub use grpc::{
    StreamReply, grpcurl, last_acked, mute_stream_status, raw_messages_status, raw_stream_status,
    send_messages, silent_stream_status, stream_messages,
};
pub(crate) use http::url_encode;
pub use http::{http, metric};
pub use pki::Pki;
pub use process::{
    Daemon, Output, Process, args, binary, end, fixture, free_port, root_args, run, wait_for,
    wait_listening,
};
pub use questdb::{QuestDb, unique_node};
#[cfg(feature = "reporter")]
pub use reporter::{InProcessReporter, start_reporter};
pub use rows::{Rows, sink_rows, try_sqlite};
pub use tsdb::Tsdb;
