//! What a row may hold: the one set of rules for names and values.
//!
//! The reporter applies these rules to every batch *before* acknowledging it
//! (`reporter/src/admission.rs`), and every store applies the same functions
//! again when it writes, so a row the reporter acknowledged is a row every
//! store takes. The gatherer checks its `--label` and `--node-id` against
//! them at start, and a test runs every family over every fixture tree
//! through [`check_row`].
//!
//! | what | rule | when broken |
//! |---|---|---|
//! | node id | 1 to [`MAX_NODE_ID_BYTES`] bytes, no control character, no leading or trailing whitespace | refused |
//! | table name | `[a-z0-9_]{1,64}`, not `sqlite_*` | refused |
//! | tag and field names | `[A-Za-z0-9_]{1,64}`, not one of [`RESERVED_NAMES`] (any case) | refused |
//! | names in one row | no two tags, and no tag and field, equal ignoring ASCII case; no two fields that differ only in case | refused |
//! | the same field twice in a row | (same spelling) | the last value wins |
//! | tags per row | at most [`MAX_TAGS`] | refused |
//! | fields per row | at most [`MAX_FIELDS`] | refused |
//! | tag values | any UTF-8 | control characters are written as `\ooo` (octal, as `/proc/mounts` does) and the value is cut to [`MAX_TAG_VALUE_BYTES`] bytes |
//! | integer values | `0..=u64::MAX` on the wire | above `i64::MAX` stored as `i64::MAX` (a saturated counter): both databases hold signed 64-bit integers |
//! | float values | finite | NaN and ±Inf refused |
//! | text values | any UTF-8, control characters included (JSON lines escape them; the databases store them as they are) | cut to [`crate::row::MAX_TEXT_BYTES`] (8 KiB) ending `…[truncated N bytes]` ([`crate::row::bound_text`]); VictoriaMetrics skips them (counted) |
//!
//! Names are compared ignoring ASCII case because SQLite column names are
//! case-insensitive. The reserved names are the columns the stores set
//! themselves (`ts`, `node`, `tags`), SQLite's row id aliases, and
//! `timestamp` (the designated timestamp of a QuestDB table created by
//! line protocol).

use std::cmp::Ordering;

/// Longest table, tag or field name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Most tags one row may carry (the family's tags and the gatherer's
/// labels together).
pub const MAX_TAGS: usize = 32;

/// Most labels a gatherer may add to every row: families use at most
/// [`MAX_TAGS`] minus this many tags of their own (`node_info` uses 7).
pub const MAX_LABELS: usize = 16;

/// Most fields one row may carry (SQLite allows 2000 columns per table, the
/// SQLite store 1000).
pub const MAX_FIELDS: usize = 512;

/// Longest tag value kept, in bytes; longer values are cut (at a character
/// boundary).
pub const MAX_TAG_VALUE_BYTES: usize = 1024;

/// Longest node id, in bytes (a DNS name).
pub const MAX_NODE_ID_BYTES: usize = 253;

/// Names no tag or field may take, in any case.
pub const RESERVED_NAMES: &[&str] = &["ts", "node", "tags", "timestamp", "rowid", "oid", "_rowid_"];

/// The table of hostpulse's own health rows.
pub const SELF_TABLE: &str = "hostpulse_self";

/// The tag of [`SELF_TABLE`] rows saying who wrote them: `gatherer` or
/// `reporter` (the reporter's rows never come through a stream).
pub const SELF_COMPONENT_TAG: &str = "component";

/// Why a row (or a node id) breaks a rule. Every message names the rule; the
/// reporter adds the batch and the row, and refuses the batch with
/// INVALID_ARGUMENT. The sender must fix its names: sending again cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The table name is not `[a-z0-9_]{1,64}`.
    #[error("table name {} is not [a-z0-9_]{{1,{MAX_NAME_BYTES}}}", shown(.0))]
    TableName(String),
    /// The table name starts with `sqlite_`, which SQLite keeps for itself.
    #[error("table name {} is reserved (sqlite_*)", shown(.0))]
    TableReserved(String),
    /// A tag or field name is not `[A-Za-z0-9_]{1,64}`.
    #[error("{role} name {} is not [A-Za-z0-9_]{{1,{MAX_NAME_BYTES}}}", shown(.name))]
    Name {
        /// `tag` or `field`.
        role: &'static str,
        /// The name.
        name: String,
    },
    /// A tag or field takes a name the stores use themselves.
    #[error("{role} name {} is reserved (ts, node, tags, timestamp, rowid, oid, _rowid_ in any case)", shown(.name))]
    Reserved {
        /// `tag` or `field`.
        role: &'static str,
        /// The name.
        name: String,
    },
    /// More tags than [`MAX_TAGS`].
    #[error("{0} tags (at most {MAX_TAGS})")]
    TooManyTags(usize),
    /// More fields than [`MAX_FIELDS`].
    #[error("{0} fields (at most {MAX_FIELDS})")]
    TooManyFields(usize),
    /// Two names of one row are one column (ASCII case ignored).
    #[error("{} and {} name the same column (names are compared ignoring ASCII case)", shown(.0), shown(.1))]
    SameColumn(String, String),
    /// A float value is NaN or infinite.
    #[error("field {} is {}: only finite floats are stored (leave the field out when there is no value)", shown(.0), .1)]
    NonFinite(String, &'static str),
    /// The node id is empty, too long, holds control characters or
    /// surrounding whitespace.
    #[error("node id {} {}", shown(.0), .1)]
    NodeId(String, &'static str),
}

/// Checks a table name: `[a-z0-9_]{1,64}`, not `sqlite_*`.
pub fn check_table(name: &str) -> Result<(), RuleError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(RuleError::TableName(name.to_string()));
    }
    if name.starts_with("sqlite_") {
        return Err(RuleError::TableReserved(name.to_string()));
    }
    Ok(())
}

/// Checks a tag or field name (`role`: `tag`, `field`, `label`):
/// `[A-Za-z0-9_]{1,64}`, not reserved.
pub fn check_name(role: &'static str, name: &str) -> Result<(), RuleError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(RuleError::Name {
            role,
            name: name.to_string(),
        });
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(RuleError::Reserved {
            role,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Checks every name of one row: the table, each tag and field name, the
/// counts, and that no two names are one column. The same field twice (same
/// spelling) is allowed: stores keep its last value.
pub fn check_row<'a>(
    table: &str,
    tags: impl ExactSizeIterator<Item = &'a str>,
    fields: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), RuleError> {
    check_table(table)?;
    if tags.len() > MAX_TAGS {
        return Err(RuleError::TooManyTags(tags.len()));
    }
    if fields.len() > MAX_FIELDS {
        return Err(RuleError::TooManyFields(fields.len()));
    }
    let mut names: Vec<(&str, bool)> = Vec::with_capacity(tags.len() + fields.len());
    for tag in tags {
        check_name("tag", tag)?;
        names.push((tag, true));
    }
    for field in fields {
        check_name("field", field)?;
        names.push((field, false));
    }
    names.sort_unstable_by(|a, b| caseless(a.0, b.0));
    for pair in names.windows(2) {
        let ((a, a_tag), (b, b_tag)) = (pair[0], pair[1]);
        if caseless(a, b) == Ordering::Equal && (a_tag || b_tag || a != b) {
            return Err(RuleError::SameColumn(a.to_string(), b.to_string()));
        }
    }
    Ok(())
}

/// Orders names ignoring ASCII case, without allocating.
fn caseless(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Checks a float value: NaN and ±Inf are refused.
pub fn check_float(field: &str, value: f64) -> Result<(), RuleError> {
    if value.is_finite() {
        Ok(())
    } else {
        let shown = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        Err(RuleError::NonFinite(field.to_string(), shown))
    }
}

/// An integer value as the databases store it: values above `i64::MAX`
/// become `i64::MAX` (a saturated counter).
pub fn int_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Normalises a tag value in place: each control character becomes `\ooo`
/// (its code in octal, as `/proc/mounts` writes them; control characters are
/// all below 0o400), then the value is cut to [`MAX_TAG_VALUE_BYTES`] at a
/// character boundary. Returns whether it changed anything.
pub fn normalise_tag_value(value: &mut String) -> bool {
    let mut changed = false;
    if value.chars().any(char::is_control) {
        let mut out = String::with_capacity(value.len() + 8);
        for c in value.chars() {
            if c.is_control() {
                out.push_str(&format!("\\{:03o}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        *value = out;
        changed = true;
    }
    if value.len() > MAX_TAG_VALUE_BYTES {
        let mut cut = MAX_TAG_VALUE_BYTES;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        changed = true;
    }
    changed
}

/// Whether [`normalise_tag_value`] would leave `value` as it is.
pub fn is_normal_tag_value(value: &str) -> bool {
    value.len() <= MAX_TAG_VALUE_BYTES && !value.chars().any(char::is_control)
}

/// Checks a node id: 1 to 253 bytes, no control characters, no leading or
/// trailing whitespace (refused rather than trimmed, so that one host never
/// writes under two ids).
pub fn check_node_id(id: &str) -> Result<(), RuleError> {
    let problem = if id.is_empty() {
        "is empty"
    } else if id.len() > MAX_NODE_ID_BYTES {
        "is longer than 253 bytes"
    } else if id.chars().any(char::is_control) {
        "holds control characters"
    } else if id.trim() != id {
        "has leading or trailing whitespace"
    } else {
        return Ok(());
    };
    Err(RuleError::NodeId(id.to_string(), problem))
}

/// A name or value for a message: quoted, escaped, at most 64 characters.
pub fn shown(s: &str) -> String {
    let mut cut: String = s.chars().take(MAX_NAME_BYTES).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(table: &str, tags: &[&str], fields: &[&str]) -> Result<(), RuleError> {
        check_row(table, tags.iter().copied(), fields.iter().copied())
    }

    #[test]
    fn tables_are_lowercase_words() {
        assert!(row("cpu", &["cpu"], &["user_percent"]).is_ok());
        for bad in ["my table", "Cpu", "cpu[0]", "é", "", &"x".repeat(65)] {
            let err = row(bad, &[], &["a"]).unwrap_err();
            assert!(err.to_string().contains("is not [a-z0-9_]{1,64}"), "{err}");
        }
        assert!(matches!(
            row("sqlite_master", &[], &["a"]),
            Err(RuleError::TableReserved(_))
        ));
        assert!(row(&"x".repeat(64), &[], &["a"]).is_ok());
    }

    #[test]
    fn names_are_words_and_not_reserved() {
        assert!(row("t", &["Region", "zone_1"], &["9lives"]).is_ok());
        for bad in ["a b", "a.b", "", "ü", &"x".repeat(65)] {
            assert!(
                matches!(
                    row("t", &[bad], &["f"]),
                    Err(RuleError::Name { role: "tag", .. })
                ),
                "{bad:?}"
            );
            assert!(
                matches!(
                    row("t", &[], &[bad]),
                    Err(RuleError::Name { role: "field", .. })
                ),
                "{bad:?}"
            );
        }
        for reserved in ["ts", "NODE", "Tags", "timestamp", "rowid", "_ROWID_"] {
            assert!(
                matches!(
                    row("t", &[reserved], &["f"]),
                    Err(RuleError::Reserved { .. })
                ),
                "{reserved}"
            );
        }
    }

    #[test]
    fn one_column_per_name_ignoring_case() {
        assert!(matches!(
            row("t", &["a", "A"], &["f"]),
            Err(RuleError::SameColumn(..))
        ));
        assert!(matches!(
            row("t", &["a"], &["a"]),
            Err(RuleError::SameColumn(..))
        ));
        assert!(matches!(
            row("t", &["x"], &["f", "F"]),
            Err(RuleError::SameColumn(..))
        ));
        // The same field twice is one column with the last value.
        assert!(row("t", &["x"], &["f", "g", "f"]).is_ok());
    }

    #[test]
    fn counts_are_bounded() {
        let names: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(row("t", &refs[..MAX_TAGS], &["f"]).is_ok());
        assert_eq!(
            row("t", &refs[..=MAX_TAGS], &["f"]),
            Err(RuleError::TooManyTags(MAX_TAGS + 1))
        );
        assert!(row("t", &[], &refs[..MAX_FIELDS]).is_ok());
        assert_eq!(
            row("t", &[], &refs),
            Err(RuleError::TooManyFields(MAX_FIELDS + 1))
        );
    }

    #[test]
    fn non_finite_floats_are_refused_and_big_ints_saturate() {
        assert!(check_float("f", 1.5).is_ok());
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = check_float("load1", v).unwrap_err().to_string();
            assert!(err.contains("\"load1\"") && err.contains("finite"), "{err}");
        }
        assert_eq!(int_value(u64::MAX), i64::MAX);
        assert_eq!(int_value(1 << 63), i64::MAX);
        assert_eq!(int_value(i64::MAX as u64), i64::MAX);
        assert_eq!(int_value(42), 42);
    }

    #[test]
    fn tag_values_are_escaped_and_cut() {
        let mut v = "/mnt/a\nb\tc\u{7f}".to_string();
        assert!(normalise_tag_value(&mut v));
        assert_eq!(v, "/mnt/a\\012b\\011c\\177");
        assert!(is_normal_tag_value(&v));
        let mut plain = "eth0".to_string();
        assert!(!normalise_tag_value(&mut plain));
        let mut long = "é".repeat(MAX_TAG_VALUE_BYTES);
        assert!(normalise_tag_value(&mut long));
        assert!(long.len() <= MAX_TAG_VALUE_BYTES && long.len() > MAX_TAG_VALUE_BYTES - 2);
        assert!(is_normal_tag_value(&long));
    }

    #[test]
    fn node_ids() {
        assert!(check_node_id("web-1.example.com").is_ok());
        assert!(
            check_node_id("/").is_ok(),
            "never a path: any printable id is fine"
        );
        for (bad, why) in [
            ("", "is empty"),
            ("  padded  ", "whitespace"),
            ("tab\t", "control"),
            ("a\nb", "control"),
            (&"x".repeat(254), "longer"),
        ] {
            let err = check_node_id(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalised_values_are_normal_and_stable(s in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}a-z]{0,2000}") {
            let mut v = s.clone();
            normalise_tag_value(&mut v);
            proptest::prop_assert!(is_normal_tag_value(&v));
            let mut again = v.clone();
            proptest::prop_assert!(!normalise_tag_value(&mut again));
        }
    }
}

/// What checking costs: `cargo test --release -p hostpulse-proto --lib
/// rules::cost -- --ignored --nocapture` (README "What a batch may contain").
#[cfg(test)]
mod cost {
    #[test]
    #[ignore = "a measurement, not a test"]
    fn check_row_per_typical_row() {
        // A cpu row: its tag, two labels, 21 fields.
        let fields: Vec<String> = [
            "user",
            "nice",
            "system",
            "idle",
            "iowait",
            "irq",
            "softirq",
            "steal",
            "guest",
            "guest_nice",
        ]
        .iter()
        .flat_map(|m| [format!("{m}_seconds_total"), format!("{m}_percent")])
        .chain(["usage_percent".to_string()])
        .collect();
        let tags = ["cpu", "region", "zone"];
        let rows = 1_000_000u32;
        let started = std::time::Instant::now();
        for _ in 0..rows {
            super::check_row(
                std::hint::black_box("cpu"),
                tags.iter().copied(),
                fields.iter().map(String::as_str),
            )
            .unwrap();
        }
        let per_row = started.elapsed() / rows;
        println!("check_row: {per_row:?} per row of 3 tags and 21 fields");
    }
}
