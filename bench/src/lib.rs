//! Shared parts of hostpulse's benchmark binaries.
//!
//! The binaries live in `src/bin/`:
//!
//! - `wire_size`: bytes per sample of real cycles from this host, encoded as a
//!   gatherer encodes them on one stream, raw and gzipped.
//! - `loadgen`: starts a reporter, drives it with thousands of simulated
//!   gatherer streams, and measures throughput, acknowledgement latency and
//!   the reporter's CPU and memory.
//!
//! This library holds what both use:
//!
//! - [`cycles`]: real collection cycles from this host, in the order a
//!   streaming gatherer produces them.
//! - [`procstat`]: CPU time and memory of a process, and busy CPU time of the
//!   whole machine, read from `/proc`.

#![forbid(unsafe_code)]

pub mod cycles;
pub mod procstat;
