//! The tables and columns of deploy/questdb/schema.sql, and a check that a
//! dashboard query names only those.

use std::collections::{BTreeMap, BTreeSet};

/// Table name -> its columns, from the `CREATE TABLE` statements.
pub(crate) fn schema(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
            let name = rest.split_whitespace().next().unwrap().trim_matches('"');
            current = Some((name.to_string(), BTreeSet::new()));
        } else if let Some((name, cols)) = current.as_mut() {
            if line.starts_with(')') {
                tables.insert(name.clone(), std::mem::take(cols));
                current = None;
            } else if let Some(col) = line.split_whitespace().next() {
                cols.insert(col.trim_matches('"').to_string());
            }
        }
    }
    tables
}

/// SQL words and QuestDB functions the dashboard uses.
const WORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "as",
    "on",
    "join",
    "left",
    "inner",
    "cross",
    "group",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "sample",
    "fill",
    "null",
    "prev",
    "none",
    "linear",
    "align",
    "to",
    "calendar",
    "latest",
    "partition",
    "distinct",
    "in",
    "is",
    "case",
    "when",
    "then",
    "else",
    "end",
    "cast",
    "timestamp",
    "double",
    "long",
    "avg",
    "min",
    "max",
    "sum",
    "count",
    "count_distinct",
    "last",
    "first",
    "round",
    "dateadd",
    "now",
    "abs",
];

/// Every identifier of `sql` that is neither a word above, a table of
/// `schema`, an alias the query declares, nor a column of a table it reads.
/// Grafana macros and variables (`$__timeFilter`, `$node`) and string
/// literals are skipped.
pub(crate) fn unknown_names(sql: &str, schema: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut tables = BTreeSet::new();
    let mut aliases = BTreeSet::new();
    let mut problems = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let prev = if i > 0 {
            tokens[i - 1].to_lowercase()
        } else {
            String::new()
        };
        if (prev == "from" || prev == "join") && t != "(" {
            if schema.contains_key(t.as_str()) {
                tables.insert(t.clone());
            } else {
                problems.push(format!("table {t}"));
            }
        }
        let after_table = i > 0 && (tables.contains(&tokens[i - 1]) || prev == ")");
        if prev == "as" || (after_table && is_name(t) && !is_word(t)) {
            aliases.insert(t.clone());
        }
    }
    if tables.is_empty() {
        problems.push("no table".into());
    }
    for t in tokens.iter().filter(|t| is_name(t)) {
        let col = t.rsplit('.').next().unwrap();
        let known = is_word(t)
            || tables.contains(t)
            || aliases.contains(t)
            || tables.iter().any(|tb| schema[tb].contains(col))
                && t.split('.').count() <= 2
                && (!t.contains('.') || aliases.contains(t.split('.').next().unwrap()));
        if !known {
            problems.push(t.clone());
        }
    }
    problems
}

fn is_word(t: &str) -> bool {
    WORDS.contains(&t.to_lowercase().as_str())
}

fn is_name(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Names (with `.` qualification), numbers with units (`1h`), and single
/// punctuation; drops string literals, `$` macros and variables.
fn tokenize(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word =
            |i: usize| chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.';
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '$' || c.is_ascii_alphanumeric() || c == '_' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && (word(i) || chars[i] == '"' || (c == '$' && chars[i] == '{')) {
                i += 1;
            }
            let t: String = chars[start..i].iter().filter(|&&c| c != '"').collect();
            if c != '$' {
                out.push(t);
            }
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}
