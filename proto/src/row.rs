//! The row model shared by the JSON output, the wire protocol and the database.
//!
//! A [`Row`] is one line of one table at one instant: `table`, `ts` (Unix
//! nanoseconds), string `tags` (QuestDB symbols, VictoriaMetrics labels) and
//! numeric `fields`. The node id and the operator's static labels are not stored
//! in every row; the output stage adds them (see [`crate::json`]).
//!
//! Floats carry three decimals: [`Row::float`] rounds, so that the JSON lines,
//! the wire (floats travel as integer thousandths, see [`crate::codec`]) and
//! the database all hold the same number. Three decimals keep a percentage to
//! 0.001 points and a rate to 0.001 per second.
//!
//! Text values are bounded: at most [`MAX_TEXT_BYTES`] (8 KiB) of UTF-8. A
//! longer text is cut at a character boundary and ends with the marker
//! `…[truncated N bytes]` (N: the bytes cut), never refused
//! ([`bound_text`]). Control characters are kept (JSON escapes them, the
//! databases store them as they are).

/// A field value.
///
/// Counters stay integers so that a 64-bit kernel counter survives exactly
/// (an `f64` loses precision above 2^53); gauges, rates and percentages are
/// floats; events carry text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An exact unsigned integer: counters, byte sizes, counts.
    Int(u64),
    /// A float: rates, percentages, seconds, temperatures. Non-finite values are
    /// dropped by the encoders, since neither JSON nor line protocol carries them.
    Float(f64),
    /// Text of at most [`MAX_TEXT_BYTES`] bytes (see [`bound_text`]): event
    /// messages. Metric-only stores (VictoriaMetrics) skip and count it.
    Text(String),
}

impl Value {
    /// The value as a float, for arithmetic (NaN for text, which
    /// [`Value::number`] tells apart).
    pub fn as_f64(&self) -> f64 {
        self.number().unwrap_or(f64::NAN)
    }

    /// The value as a float, for stores that only take doubles; `None` for
    /// text.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            Value::Text(_) => None,
        }
    }

    /// The text, for a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Longest text value kept, in bytes (8 KiB, marker included).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// Cuts `text` to at most [`MAX_TEXT_BYTES`] bytes: a longer text keeps its
/// start (cut at a character boundary) followed by `…[truncated N bytes]`,
/// N being the number of original bytes left out. Returns whether it cut.
pub fn bound_text(text: &mut String) -> bool {
    if text.len() <= MAX_TEXT_BYTES {
        return false;
    }
    // The marker's length depends on N; N's digits never exceed 20, so room
    // for the longest marker keeps the result within the bound.
    let room = MAX_TEXT_BYTES - "…[truncated 18446744073709551615 bytes]".len();
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[truncated {dropped} bytes]"));
    true
}

/// One row of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Table name, one per metric family (`cpu`, `memory`, ...).
    pub table: &'static str,
    /// Unix timestamp in nanoseconds, taken once per collection cycle.
    pub ts: i64,
    /// Tag names and values, in a stable order (the family's tags).
    pub tags: Vec<(&'static str, String)>,
    /// Field names and values.
    pub fields: Vec<(&'static str, Value)>,
}

impl Row {
    /// An empty row of `table` at `ts`.
    pub fn new(table: &'static str, ts: i64) -> Self {
        Row {
            table,
            ts,
            tags: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// A row from its parts (tests, and clients building rows by hand).
    pub fn from_parts(
        table: &'static str,
        ts: i64,
        tags: &[(&'static str, &str)],
        fields: &[(&'static str, Value)],
    ) -> Self {
        Row {
            table,
            ts,
            tags: tags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            fields: fields.to_vec(),
        }
    }

    /// Adds a tag (builder style).
    pub fn tag(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.tags.push((name, value.into()));
        self
    }

    /// Adds an integer field.
    pub fn int(&mut self, name: &'static str, value: u64) {
        self.fields.push((name, Value::Int(value)));
    }

    /// Adds a float field rounded to three decimals; non-finite values (a
    /// division by a zero interval) are skipped.
    pub fn float(&mut self, name: &'static str, value: f64) {
        if value.is_finite() {
            self.fields.push((name, Value::Float(round_milli(value))));
        }
    }

    /// Adds a text field, cut to [`MAX_TEXT_BYTES`] (see [`bound_text`]).
    pub fn text(&mut self, name: &'static str, value: impl Into<String>) {
        let mut value = value.into();
        bound_text(&mut value);
        self.fields.push((name, Value::Text(value)));
    }

    /// Adds an integer field when the kernel provided it.
    pub fn int_opt(&mut self, name: &'static str, value: Option<u64>) {
        if let Some(v) = value {
            self.int(name, v);
        }
    }

    /// Adds a float field when it could be computed (rates are absent on the first sample).
    pub fn float_opt(&mut self, name: &'static str, value: Option<f64>) {
        if let Some(v) = value {
            self.float(name, v);
        }
    }

    /// The value of a field, if present (used by tests and the output stage).
    pub fn field(&self, name: &str) -> Option<Value> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// The value of a tag, if present.
    pub fn tag_value(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Largest magnitude rounded to thousandths; beyond it a float travels as a
/// raw double. At 1e12, `value * 1000` stays below 2^50, where a double's
/// rounding error is under a quarter of a thousandth, so the wire's integer
/// thousandths give back exactly the rounded value (at the former 9e15 a
/// property test found 4431327556066.939 arriving as 4431327556066.94).
pub const MILLI_LIMIT: f64 = 1.0e12;

/// Rounds to three decimals (values beyond [`MILLI_LIMIT`] are left as they are).
pub fn round_milli(v: f64) -> f64 {
    if v.abs() < MILLI_LIMIT {
        (v * 1000.0).round() / 1000.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_floats_are_dropped() {
        let mut row = Row::new("cpu", 1);
        row.float("a", f64::NAN);
        row.float("b", f64::INFINITY);
        row.float("c", 1.5);
        assert_eq!(row.fields, vec![("c", Value::Float(1.5))]);
    }

    #[test]
    fn floats_keep_three_decimals() {
        let mut row = Row::new("cpu", 1);
        row.float("a", 12.34567);
        row.float("b", 1e17);
        assert_eq!(row.field("a"), Some(Value::Float(12.346)));
        assert_eq!(row.field("b"), Some(Value::Float(1e17)));
    }

    #[test]
    fn long_texts_are_cut_with_a_marker_never_refused() {
        let mut row = Row::new("node_events", 1);
        row.text("message", "é".repeat(MAX_TEXT_BYTES));
        let Some(Value::Text(t)) = row.field("message") else {
            panic!("a text field")
        };
        assert!(t.len() <= MAX_TEXT_BYTES, "{}", t.len());
        let kept = t.find('…').unwrap();
        let dropped = 2 * MAX_TEXT_BYTES - kept;
        assert!(
            t.ends_with(&format!("…[truncated {dropped} bytes]")),
            "{}",
            &t[kept..]
        );
        let mut short = "line\nwith\u{1}control".to_string();
        assert!(!bound_text(&mut short));
        let mut exact = "x".repeat(MAX_TEXT_BYTES);
        assert!(!bound_text(&mut exact));
    }

    proptest::proptest! {
        #[test]
        fn bounded_texts_fit_and_keep_their_start(s in "\\PC{0,40}", n in 0usize..20_000) {
            let mut t = s.repeat(n / s.len().max(1));
            let before = t.clone();
            bound_text(&mut t);
            proptest::prop_assert!(t.len() <= MAX_TEXT_BYTES);
            if before.len() > MAX_TEXT_BYTES {
                let at = t.rfind("…[truncated ").unwrap();
                proptest::prop_assert!(before.starts_with(&t[..at]));
                proptest::prop_assert_eq!(&t[at..], format!("…[truncated {} bytes]", before.len() - at));
            } else {
                proptest::prop_assert_eq!(t, before);
            }
        }
    }
}
