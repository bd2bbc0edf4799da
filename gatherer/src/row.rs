//! The row model, shared with the wire contract: see [`hostpulse_proto::row`].

pub use hostpulse_proto::row::{Row, Value};
