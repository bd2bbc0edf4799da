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

/// A numeric field value.
///
/// Counters stay integers so that a 64-bit kernel counter survives exactly
/// (an `f64` loses precision above 2^53); gauges, rates and percentages are floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An exact unsigned integer: counters, byte sizes, counts.
    Int(u64),
    /// A float: rates, percentages, seconds, temperatures. Non-finite values are
    /// dropped by the encoders, since neither JSON nor line protocol carries them.
    Float(f64),
}

impl Value {
    /// The value as a float, for arithmetic and for sinks that only take doubles.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
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
            .map(|(_, v)| *v)
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
}
