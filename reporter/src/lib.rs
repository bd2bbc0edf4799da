//! hostpulse reporter: the server side of the stream.
//!
//! # Layout
//!
//! - [`server`]: assembles the gRPC server (services, health, reflection,
//!   keepalive, connection age, [`limits`]); [`listener`] is the accept loop
//!   (back-off, handshake timeout) behind both listeners.
//! - [`budget`]: the reporter-wide memory budget streams' definitions and
//!   batches in flight are charged against.
//! - [`ingest`]: one gatherer's stream from Hello to its end: sequence checks,
//!   decoding ([`hostpulse_proto::codec`]), the intake, acknowledgements,
//!   configuration pushes; [`admission`] decides what a batch may contain
//!   (the rules of [`hostpulse_proto::rules`], the table namespace, the time
//!   window) before it is acknowledged.
//! - [`intake`]: where accepted batches go; an acknowledgement is sent only
//!   once the intake has made the batch durable: the [`spool`] (the disk
//!   log), whose drainers feed every [`store`] (a database or file
//!   destination) from its own cursor.
//! - [`admin`]: ListNodes, Tail, GetConfig; [`registry`] holds the connected
//!   streams and [`tail`] the live rows.
//! - [`store`]: the databases the spool drains into.
//! - [`config`]: the `[gatherers]` table of the configuration file, pushed to
//!   gatherers and reloaded on SIGHUP or change.
//! - [`state`]: what every stream, Admin and the self-report share.
//! - [`metrics`]: the stream counters; [`report`] renders them (with the
//!   spool's, the stores' and the process's) for `/metrics` and writes the
//!   `hostpulse_self` rows.
//! - [`security`]: TLS and authentication flags, checked at start and
//!   reloaded on SIGHUP or file change: [`tls`] (certificates, client CA),
//!   [`token`] (bearer tokens), [`acceptor`] (the TLS listener), [`auth`] (the
//!   layer that refuses unauthenticated calls, deny by default), [`identity`]
//!   (which node ids a stream's credentials may claim).
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod acceptor;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod config;
pub mod identity;
pub mod ingest;
pub mod intake;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod security;
pub mod server;
pub mod spool;
pub mod state;
pub mod store;
pub mod tail;
pub mod tls;
pub mod token;
