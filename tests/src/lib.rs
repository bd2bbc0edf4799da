//! hostpulse's end-to-end tests (`tests/tests/*.rs`): the real binaries on
//! 127.0.0.1, driven through their flags, ports and files. Their harness
//! (processes, databases, certificates, gRPC and HTTP clients) is
//! `hostpulse-testkit`, shared with the crates' own tests and the benchmarks.

#![forbid(unsafe_code)]
