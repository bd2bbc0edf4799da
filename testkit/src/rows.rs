//! Rows as the JSON-lines store writes them, parsed back and checked
//! against the row model; and `sqlite3` queries, as an operator runs them.

use std::path::Path;

use serde_json::Value;

/// Rows parsed from JSON lines.
#[derive(Debug, Default)]
pub struct Rows(pub Vec<Value>);

impl Rows {
    /// Parses every line; panics on a line that is not a JSON object with
    /// exactly the row model's keys.
    pub fn parse(text: &str) -> Rows {
        let mut rows = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let keys: Vec<&str> = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {line}"))
                .keys()
                .map(String::as_str)
                .collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                ["fields", "node", "table", "tags", "ts"],
                "keys of {line}"
            );
            assert!(v["ts"].is_i64(), "ts is an integer: {line}");
            assert!(
                v["tags"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(Value::is_string),
                "{line}"
            );
            assert!(
                v["fields"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|f| f.is_number() || f.is_string()),
                "{line}"
            );
            rows.push(v);
        }
        Rows(rows)
    }

    /// Rows of `table`.
    pub fn table(&self, table: &str) -> Vec<&Value> {
        self.0.iter().filter(|r| r["table"] == table).collect()
    }

    /// The distinct table names, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .0
            .iter()
            .map(|r| r["table"].as_str().unwrap_or_default().to_string())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The one row of `table` whose tag `tag` equals `value`.
    pub fn find(&self, table: &str, tag: &str, value: &str) -> &Value {
        let found: Vec<&Value> = self
            .table(table)
            .into_iter()
            .filter(|r| r["tags"][tag] == value)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "exactly one {table} row with {tag}={value}: {found:?}"
        );
        found[0]
    }
}

/// Rows of a JSON-lines sink file (a torn last line, being written, is ignored).
pub fn sink_rows(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    Rows::parse(complete)
}

/// Runs a query with the `sqlite3` command, as an operator would; `None` if
/// it fails (no such table yet, a locked file).
pub fn try_sqlite(db: &Path, sql: &str) -> Option<String> {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed (tests/run.sh installs it)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
