//! Shared parts of hostpulse's benchmark binaries.
//!
//! The binaries live in `src/bin/`:
//!
//! - `wire_size`: bytes per sample of real cycles from this host, encoded as a
//!   gatherer encodes them on one stream, raw and gzipped.
//! - `loadgen`: starts a reporter, drives it with thousands of simulated
//!   gatherer streams, and measures throughput, acknowledgement latency and
//!   the reporter's CPU and memory, over plaintext, TLS, mutual TLS and/or
//!   a bearer token.
//! - `otlp_sink`: a minimal OTLP/gRPC trace receiver that counts the spans it
//!   is sent, for measuring the reporter with trace export on.
//!
//! This library holds what they share:
//!
//! - [`cycles`]: real collection cycles from this host, in the order a
//!   streaming gatherer produces them.
//! - [`procstat`]: CPU time and memory of a process, and busy CPU time of the
//!   whole machine, read from `/proc` (`hostpulse_testkit::procstat`).
//! - [`pki`]: a throw-away CA, server and client certificate (the `openssl`
//!   CLI), for `loadgen --tls` and `--mtls`.
//! - [`interrupted`]: Ctrl-C or SIGTERM, for a clean stop.

#![forbid(unsafe_code)]

pub mod cycles;
pub mod pki;
pub use hostpulse_testkit::procstat;

/// Resolves on Ctrl-C or SIGTERM: every binary here stops cleanly on both
/// (loadgen stops its reporter, otlp_sink prints its counts).
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
