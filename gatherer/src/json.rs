//! JSON-lines output, shared with the reporter's JSON sink: see [`hostpulse_proto::json`].

pub use hostpulse_proto::json::{Context, write_row};
