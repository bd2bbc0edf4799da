//! JSON-lines encoding of rows: the serverless output and the reporter's
//! JSON sink share this exact shape.
//!
//! ```text
//! {"table":"cpu","ts":1732380000000000000,"node":"web-1","tags":{"cpu":"0"},"fields":{"user_percent":3.2,"user_seconds_total":4449.0}}
//! ```
//!
//! Keys always appear in this order. `tags` holds the family's tags followed
//! by the operator's static labels. Integer fields are written exactly; floats
//! in Rust's shortest round-trip form; non-finite floats never reach here
//! (see [`crate::row::Row::float`]); text fields as JSON strings, control
//! characters escaped (`\n`, `\u0001`), so one row stays one line:
//!
//! ```text
//! {"table":"node_events","ts":1732380000000000000,"node":"web-1","tags":{"event":"start"},"fields":{"message":"gatherer 0.1.0 started"}}
//! ```

use std::fmt::Write as _;

use crate::row::{Row, Value};

/// Static context added to every row on output.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The node id (`node` key).
    pub node: String,
    /// Static labels (`--label key=value`), appended to every row's tags.
    pub labels: Vec<(String, String)>,
}

/// Appends one row as a JSON object and a newline to `out`.
pub fn write_row(out: &mut String, row: &Row, ctx: &Context) {
    let tags = row
        .tags
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(ctx.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let fields = row.fields.iter().map(|(k, v)| (*k, v));
    write_parts(out, row.table, row.ts, &ctx.node, tags, fields);
}

/// Appends one row given as parts (the reporter's decoded rows, whose names
/// are not `'static`).
pub fn write_parts<'a>(
    out: &mut String,
    table: &str,
    ts: i64,
    node: &str,
    tags: impl Iterator<Item = (&'a str, &'a str)>,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
) {
    out.push_str("{\"table\":");
    write_str(out, table);
    let _ = write!(out, ",\"ts\":{ts},\"node\":");
    write_str(out, node);
    out.push_str(",\"tags\":{");
    for (i, (k, v)) in tags.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push_str("},\"fields\":{");
    let mut first = true;
    for (name, value) in fields {
        match value {
            Value::Int(v) => {
                prefix(out, &mut first, name);
                let _ = write!(out, "{v}");
            }
            Value::Float(v) if v.is_finite() => {
                prefix(out, &mut first, name);
                let _ = write!(out, "{v}");
            }
            Value::Float(_) => {}
            Value::Text(t) => {
                prefix(out, &mut first, name);
                write_str(out, t);
            }
        }
    }
    out.push_str("}}\n");
}

fn prefix(out: &mut String, first: &mut bool, name: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    write_str(out, name);
    out.push(':');
}

/// Writes `s` as a JSON string literal.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            node: "web-1".into(),
            labels: vec![("region".into(), "eu-west".into())],
        }
    }

    #[test]
    fn writes_the_documented_shape() {
        let mut row = Row::new("cpu", 1_732_380_000_000_000_000).tag("cpu", "0");
        row.float("user_percent", 3.2);
        row.float("user_seconds_total", 4449.5);
        row.int("n_total", u64::MAX);
        let mut out = String::new();
        write_row(&mut out, &row, &ctx());
        assert_eq!(
            out,
            "{\"table\":\"cpu\",\"ts\":1732380000000000000,\"node\":\"web-1\",\"tags\":{\"cpu\":\"0\",\"region\":\"eu-west\"},\"fields\":{\"user_percent\":3.2,\"user_seconds_total\":4449.5,\"n_total\":18446744073709551615}}\n"
        );
    }

    #[test]
    fn escapes_odd_tag_values() {
        let row = Row::new("filesystem", 1).tag("mountpoint", "/mnt/a \"b\"\\\u{1}\n");
        let mut out = String::new();
        write_row(&mut out, &row, &Context::default());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tags"]["mountpoint"], "/mnt/a \"b\"\\\u{1}\n");
    }

    #[test]
    fn text_fields_are_json_strings_on_one_line() {
        let mut row = Row::new("node_events", 1).tag("event", "start");
        row.text("message", "line one\nline \"two\"\u{1}");
        let mut out = String::new();
        write_row(&mut out, &row, &Context::default());
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["fields"]["message"], "line one\nline \"two\"\u{1}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_valid_json(text in ".*") {
            let mut row = Row::new("t", 1);
            row.text("m", text.clone());
            let mut out = String::new();
            write_row(&mut out, &row, &Context::default());
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(v["fields"]["m"].as_str().unwrap(), text.as_str());
        }

        #[test]
        fn any_row_is_valid_json(tag in ".*", node in ".*", value in proptest::num::f64::ANY, n in proptest::num::u64::ANY) {
            let mut row = Row::new("t", -5).tag("k", tag.clone());
            row.float("f", value);
            row.int("n", n);
            let mut out = String::new();
            write_row(&mut out, &row, &Context { node: node.clone(), labels: vec![] });
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(v["tags"]["k"].as_str().unwrap(), tag.as_str());
            proptest::prop_assert_eq!(v["node"].as_str().unwrap(), node.as_str());
            proptest::prop_assert_eq!(v["fields"]["n"].as_u64().unwrap(), n);
        }
    }
}
