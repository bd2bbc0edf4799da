//! The QuestDB store writes only into tables made by the schema.
//!
//! QuestDB creates a table on the first ILP row that names it, with its own
//! defaults: no DEDUP (a replay after a crash duplicates rows), a designated
//! timestamp called `timestamp` (every dashboard query wants `ts`), other
//! symbol capacities. So before the first write, after every failed write
//! (the server may have restarted with an empty disk) and every minute, the
//! store asks QuestDB what it really holds and compares it with
//! `deploy/questdb/schema.sql` ([`SCHEMA_SQL`]):
//!
//! ```text
//! select table_name, dedup, designatedTimestamp, walEnabled from tables()
//! show columns from "<table>"            (each table of the schema that exists)
//!
//! per table of the schema:   missing?  WAL?  designated timestamp `ts`?
//!                            DEDUP on?  upsert keys = the schema's?  column types?
//! ```
//!
//! # The decision ([`SchemaMode`], `--questdb-schema`)
//!
//! - `verify` (the default, also when `--questdb-apply-schema` is not given):
//!   check only.
//! - `apply` (`--questdb-apply-schema`): when a table is missing, run the
//!   schema's `CREATE TABLE IF NOT EXISTS` statements, then check. A table
//!   that exists in another shape is never altered, renamed or dropped: it may
//!   hold an operator's rows.
//! - `off`: no check; for line-protocol servers other than QuestDB
//!   (VictoriaMetrics, InfluxDB) that have no SQL endpoint.
//!
//! While the check fails ([`Verdict::Wrong`]) or cannot run
//! ([`Verdict::Unchecked`]: QuestDB unreachable, credentials refused, not a
//! QuestDB), **the store writes nothing**: [`Store::write`] answers
//! [`StoreError::Unavailable`] with what is wrong, so the drainer keeps its
//! cursor and the spool keeps the rows, and retries with its backoff (at
//! most 5 s apart); each retry checks again. Once the operator has fixed the
//! tables the next retry passes and the backlog drains, without a restart.
//! The reporter does not refuse to start: the other stores keep working, and
//! QuestDB may well be down at start.
//!
//! Every problem is reported with the SQL (or command) that fixes it: in the
//! log (at start, and whenever the findings change), in `Admin.Status` (the
//! store's `last_error`), after `ok` in `/healthz`, and on `/metrics`
//! (`hostpulse_reporter_store_schema_ok{store}`,
//! `hostpulse_reporter_store_schema_problems{store}`), all through the
//! [`SchemaWatch`] the reporter keeps.
//!
//! A table the rows name that the schema does not define (a custom table) is
//! written as QuestDB creates it, with one warning per table: it has no dedup.
//!
//! # Layout
//!
//! - [`expected_tables`]: the schema's tables, parsed from its SQL (pure).
//! - [`parse_tables`], [`parse_columns`]: QuestDB's JSON answers (pure).
//! - [`compare`]: expected against observed → [`TableProblem`]s, each with
//!   its fix (pure: the decision, unit-tested).
//! - [`Catalog`]: the seam to the server ([`SqlEndpoint`] in production, a
//!   fake in tests); [`CheckedStore`]: the gate around the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostpulse_ops::metrics::{Exposition, Kind};
use serde_json::Value as Json;

use super::questdb::{QuestDbStore, SCHEMA_SQL, SchemaError, SqlEndpoint, apply_schema, split_sql};
use super::{Store, StoreError};
use crate::intake::AcceptedBatch;

/// How often a verified schema is checked again (a table dropped and
/// re-created by ILP, a QuestDB restored from a backup).
pub const RECHECK_VERIFIED: Duration = Duration::from_secs(60);

/// What the reporter does about the QuestDB schema (`--questdb-schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaMode {
    /// Create missing tables, then verify.
    Apply,
    /// Verify only (the default).
    Verify,
    /// Neither: for line-protocol servers that are not QuestDB.
    Off,
}

impl std::str::FromStr for SchemaMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "apply" => Ok(SchemaMode::Apply),
            "verify" => Ok(SchemaMode::Verify),
            "off" => Ok(SchemaMode::Off),
            other => Err(format!("{other:?}: use apply, verify or off")),
        }
    }
}

/// A table as the schema defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTable {
    /// Its name (without quotes).
    pub name: String,
    /// (column, type) in order; `ts TIMESTAMP` first.
    pub columns: Vec<(String, String)>,
    /// The DEDUP UPSERT KEYS, in order.
    pub keys: Vec<String>,
}

/// The schema's tables, from SQL made of `CREATE TABLE IF NOT EXISTS "name"
/// (column TYPE [CAPACITY n], ...) TIMESTAMP(ts) ... DEDUP UPSERT KEYS(...)`
/// statements. An error names the statement it cannot read.
pub fn expected_tables(sql: &str) -> Result<Vec<ExpectedTable>, String> {
    let mut tables = Vec::new();
    for statement in split_sql(sql) {
        let bad = |why: &str| format!("schema statement {statement:?}: {why}");
        let rest = statement
            .strip_prefix("CREATE TABLE IF NOT EXISTS ")
            .ok_or_else(|| bad("not a CREATE TABLE IF NOT EXISTS"))?;
        let open = rest.find('(').ok_or_else(|| bad("no column list"))?;
        let name = rest[..open].trim().trim_matches('"').to_string();
        let close = rest
            .find(") TIMESTAMP(ts)")
            .ok_or_else(|| bad("no `) TIMESTAMP(ts)` after the columns"))?;
        let mut columns = Vec::new();
        for def in rest[open + 1..close].split(',') {
            let mut words = def.split_whitespace();
            let (Some(column), Some(kind)) = (words.next(), words.next()) else {
                return Err(bad("a column without a type"));
            };
            columns.push((column.trim_matches('"').to_string(), kind.to_string()));
        }
        let keys_at = rest
            .find("DEDUP UPSERT KEYS(")
            .ok_or_else(|| bad("no DEDUP UPSERT KEYS"))?;
        let keys = rest[keys_at + "DEDUP UPSERT KEYS(".len()..]
            .trim_end()
            .trim_end_matches(')')
            .split(',')
            .map(|k| k.trim().trim_matches('"').to_string())
            .collect();
        tables.push(ExpectedTable {
            name,
            columns,
            keys,
        });
    }
    Ok(tables)
}

/// A table as QuestDB holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTable {
    /// Its name.
    pub name: String,
    /// Written through the WAL (`walEnabled`): DEDUP needs it.
    pub wal: bool,
    /// DEDUP on (`dedup`).
    pub dedup: bool,
    /// The designated timestamp column (`designatedTimestamp`; empty: none).
    pub designated: String,
    /// Its columns (`show columns`).
    pub columns: Vec<ObservedColumn>,
}

/// One line of `show columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedColumn {
    /// `column`.
    pub name: String,
    /// `type` (`SYMBOL`, `LONG`, ...).
    pub kind: String,
    /// `upsertKey`: one of the DEDUP keys.
    pub upsert_key: bool,
}

/// The rows of a `/exec` answer, each as column name → value.
fn dataset(json: &str) -> Result<Vec<BTreeMap<String, Json>>, String> {
    let v: Json =
        serde_json::from_str(json).map_err(|e| format!("not a QuestDB /exec answer ({e})"))?;
    let names: Vec<String> = v["columns"]
        .as_array()
        .ok_or("a QuestDB /exec answer without columns")?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let rows = v["dataset"]
        .as_array()
        .ok_or("a QuestDB /exec answer without dataset")?;
    Ok(rows
        .iter()
        .map(|row| {
            names
                .iter()
                .cloned()
                .zip(row.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .collect())
}

/// The answer to `select table_name, dedup, designatedTimestamp, walEnabled
/// from tables()`, without columns.
pub fn parse_tables(json: &str) -> Result<Vec<ObservedTable>, String> {
    dataset(json)?
        .into_iter()
        .map(|row| {
            Ok(ObservedTable {
                name: row
                    .get("table_name")
                    .and_then(Json::as_str)
                    .ok_or("tables() without table_name")?
                    .to_string(),
                wal: row.get("walEnabled").and_then(Json::as_bool) == Some(true),
                dedup: row.get("dedup").and_then(Json::as_bool) == Some(true),
                designated: row
                    .get("designatedTimestamp")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                columns: Vec::new(),
            })
        })
        .collect()
}

/// The answer to `show columns from "<table>"`.
pub fn parse_columns(json: &str) -> Result<Vec<ObservedColumn>, String> {
    dataset(json)?
        .into_iter()
        .map(|row| {
            Ok(ObservedColumn {
                name: row
                    .get("column")
                    .and_then(Json::as_str)
                    .ok_or("show columns without column")?
                    .to_string(),
                kind: row
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                upsert_key: row.get("upsertKey").and_then(Json::as_bool) == Some(true),
            })
        })
        .collect()
}

/// What is wrong with one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// It does not exist (ILP would create it without the schema).
    Missing,
    /// It exists without the WAL, so it cannot deduplicate.
    NotWal,
    /// Its designated timestamp is not `ts` (empty: it has none). What ILP
    /// makes: `timestamp`.
    Designated(String),
    /// DEDUP is off.
    NoDedup,
    /// DEDUP is on, with other keys (found, in column order).
    Keys(Vec<String>),
    /// A column has another type than the schema's: rows would be refused.
    ColumnType {
        /// The column.
        column: String,
        /// The schema's type.
        expected: String,
        /// QuestDB's.
        found: String,
    },
}

/// A problem of one table, and what fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProblem {
    /// The table.
    pub table: String,
    /// What is wrong.
    pub problem: Problem,
    /// The SQL or command that fixes it.
    pub fix: String,
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.table;
        match &self.problem {
            Problem::Missing => write!(f, "table {t:?} does not exist"),
            Problem::NotWal => write!(
                f,
                "table {t:?} is not a WAL table, so it cannot deduplicate"
            ),
            Problem::Designated(found) if found.is_empty() => {
                write!(f, "table {t:?} has no designated timestamp (want ts)")
            }
            Problem::Designated(found) => write!(
                f,
                "table {t:?} has designated timestamp {found:?}, not \"ts\" (created by ILP \
                 before the schema was applied?)"
            ),
            Problem::NoDedup => write!(f, "table {t:?} has DEDUP off"),
            Problem::Keys(found) => write!(
                f,
                "table {t:?} deduplicates on ({}), not on the schema's keys",
                found.join(", ")
            ),
            Problem::ColumnType {
                column,
                expected,
                found,
            } => write!(
                f,
                "column {t}.{column} is {found}, not {expected} (its rows would be refused)"
            ),
        }
    }
}

/// What fixes a table QuestDB made in another shape: move it aside, let the
/// schema create it again.
fn recreate_fix(table: &str) -> String {
    format!(
        "RENAME TABLE \"{table}\" TO \"{table}_old\"; then apply the schema (reporter \
         --questdb-schema apply, or --apply-schema-and-exit); the old rows stay in {table}_old"
    )
}

/// Compares what QuestDB holds (`observed`, with columns) with the schema.
/// Empty: every table is as the schema wants. Names compare without case,
/// as QuestDB's do. Columns the schema does not list (operator labels) and
/// schema columns not there yet (ILP adds them with the same types) are
/// fine.
pub fn compare(
    expected: &[ExpectedTable],
    observed: &[ObservedTable],
    mode: SchemaMode,
) -> Vec<TableProblem> {
    let by_name: BTreeMap<String, &ObservedTable> = observed
        .iter()
        .map(|t| (t.name.to_ascii_lowercase(), t))
        .collect();
    let mut problems = Vec::new();
    for want in expected {
        let name = want.name.as_str();
        let problem = |problem: Problem, fix: String| TableProblem {
            table: name.to_string(),
            problem,
            fix,
        };
        let Some(got) = by_name.get(&name.to_ascii_lowercase()) else {
            let fix = match mode {
                SchemaMode::Apply => "see the log for why applying the schema failed".into(),
                _ => "apply the schema: reporter --questdb '<conf>' --apply-schema-and-exit, or \
                      start the reporter with --questdb-schema apply"
                    .into(),
            };
            problems.push(problem(Problem::Missing, fix));
            continue;
        };
        if !got.wal {
            problems.push(problem(Problem::NotWal, recreate_fix(name)));
            continue;
        }
        if !got.designated.eq_ignore_ascii_case("ts") {
            problems.push(problem(
                Problem::Designated(got.designated.clone()),
                recreate_fix(name),
            ));
            continue;
        }
        let dedup_fix = format!(
            "ALTER TABLE \"{name}\" DEDUP ENABLE UPSERT KEYS({});",
            want.keys.join(", ")
        );
        let want_keys: BTreeSet<String> =
            want.keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        let found_keys: Vec<String> = got
            .columns
            .iter()
            .filter(|c| c.upsert_key)
            .map(|c| c.name.clone())
            .collect();
        if !got.dedup || found_keys.is_empty() {
            problems.push(problem(Problem::NoDedup, dedup_fix));
        } else if found_keys
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            != want_keys
        {
            problems.push(problem(Problem::Keys(found_keys), dedup_fix));
        }
        for (column, kind) in &want.columns {
            let found = got
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column));
            if let Some(found) = found
                && !found.kind.eq_ignore_ascii_case(kind)
            {
                problems.push(problem(
                    Problem::ColumnType {
                        column: column.clone(),
                        expected: kind.clone(),
                        found: found.kind.clone(),
                    },
                    format!("ALTER TABLE \"{name}\" ALTER COLUMN {column} TYPE {kind};"),
                ));
            }
        }
    }
    problems
}

/// Where the schema is read and applied: QuestDB's SQL endpoint, or a fake
/// in tests.
pub trait Catalog: Send + 'static {
    /// The tables QuestDB holds that are among `names`, with their columns.
    /// `Err` when the server cannot be asked (the reason).
    fn observe(&self, names: &[&str]) -> Result<Vec<ObservedTable>, String>;

    /// Runs the schema's statements.
    fn apply(&self) -> Result<(), String>;
}

/// The production [`Catalog`].
pub struct SqlCatalog {
    endpoint: SqlEndpoint,
    conf: String,
}

impl SqlCatalog {
    /// For the server of `conf` (`http::` or `https::`).
    pub fn new(conf: &str) -> Result<Self, SchemaError> {
        Ok(SqlCatalog {
            endpoint: SqlEndpoint::new(conf)?,
            conf: conf.to_string(),
        })
    }
}

/// Why a question to QuestDB failed; for the first question (`tables()`),
/// a refusal other than of the credentials hints that the server may not be
/// QuestDB at all.
fn ask_failed(e: &SchemaError, first: bool) -> String {
    match e {
        SchemaError::Unreachable {
            endpoint, message, ..
        } => format!("QuestDB at {endpoint} is unreachable: {message}"),
        SchemaError::Refused {
            status: 401 | 403, ..
        } => format!("{e} (the credentials of --questdb must be allowed to run SQL)"),
        SchemaError::Refused { .. } if first => format!(
            "{e} (is this QuestDB? For another line-protocol server use --questdb-schema off)"
        ),
        _ => e.to_string(),
    }
}

impl Catalog for SqlCatalog {
    fn observe(&self, names: &[&str]) -> Result<Vec<ObservedTable>, String> {
        let answer = self
            .endpoint
            .query("select table_name, dedup, designatedTimestamp, walEnabled from tables()")
            .map_err(|e| ask_failed(&e, true))?;
        let mut tables = parse_tables(&answer).map_err(|e| {
            format!(
                "{} answered tables() with something else: {e} (is this QuestDB? For another \
                 line-protocol server use --questdb-schema off)",
                self.endpoint.endpoint()
            )
        })?;
        tables.retain(|t| names.iter().any(|n| n.eq_ignore_ascii_case(&t.name)));
        for table in &mut tables {
            let answer = self
                .endpoint
                .query(&format!("show columns from \"{}\"", table.name))
                .map_err(|e| ask_failed(&e, false))?;
            table.columns = parse_columns(&answer)?;
        }
        Ok(tables)
    }

    fn apply(&self) -> Result<(), String> {
        apply_schema(&self.conf, SCHEMA_SQL).map_err(|e| e.to_string())
    }
}

/// The outcome of the last check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not checked yet, or QuestDB could not be asked (the reason).
    Unchecked(String),
    /// Every table is as the schema wants.
    Verified,
    /// What is wrong.
    Wrong(Vec<TableProblem>),
}

impl Verdict {
    /// What [`Store::write`] answers while the store holds its rows.
    pub fn message(&self) -> String {
        const HOLD: &str = "the QuestDB store holds its rows (the spool keeps them) until";
        match self {
            Verdict::Verified => "QuestDB schema verified".into(),
            Verdict::Unchecked(why) => {
                format!("QuestDB schema not verified: {why}; {HOLD} it can check the tables")
            }
            Verdict::Wrong(problems) => {
                let (missing, other): (Vec<&TableProblem>, Vec<&TableProblem>) =
                    problems.iter().partition(|p| p.problem == Problem::Missing);
                let mut parts = Vec::new();
                if let Some(first) = missing.first() {
                    let names: Vec<&str> = missing.iter().map(|p| p.table.as_str()).collect();
                    parts.push(format!(
                        "missing table(s) {} (fix: {})",
                        names.join(", "),
                        first.fix
                    ));
                }
                parts.extend(other.iter().map(|p| format!("{p} (fix: {})", p.fix)));
                format!(
                    "QuestDB tables differ from deploy/questdb/schema.sql; {HOLD} they are \
                     fixed (checked again at every retry): {}",
                    parts.join("; ")
                )
            }
        }
    }
}

/// The last verdict, shared with `/metrics`, `/healthz` and the log.
#[derive(Debug, Clone)]
pub struct SchemaWatch(Arc<Mutex<Verdict>>);

impl Default for SchemaWatch {
    fn default() -> Self {
        SchemaWatch(Arc::new(Mutex::new(Verdict::Unchecked(
            "not checked yet".into(),
        ))))
    }
}

impl SchemaWatch {
    /// The last verdict.
    pub fn verdict(&self) -> Verdict {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, verdict: Verdict) -> Verdict {
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(|p| p.into_inner()),
            verdict,
        )
    }

    /// `hostpulse_reporter_store_schema_ok` and `_problems` for store `questdb`.
    pub fn write_metrics(&self, page: &mut Exposition) {
        let verdict = self.verdict();
        page.family(
            "hostpulse_reporter_store_schema_ok",
            Kind::Gauge,
            "1 when the store's tables were last found as the schema wants; 0 while it holds \
             its rows (tables wrong, or not checkable).",
        );
        page.sample(
            "hostpulse_reporter_store_schema_ok",
            &[("store", "questdb")],
            f64::from(u8::from(verdict == Verdict::Verified)),
        );
        page.family(
            "hostpulse_reporter_store_schema_problems",
            Kind::Gauge,
            "Problems found in the store's tables at the last check (missing table, DEDUP off, \
             designated timestamp not ts, wrong column type).",
        );
        let problems = match &verdict {
            Verdict::Wrong(p) => p.len(),
            _ => 0,
        };
        page.sample(
            "hostpulse_reporter_store_schema_problems",
            &[("store", "questdb")],
            problems as f64,
        );
    }

    /// A line for `/healthz` while the store holds its rows.
    pub fn health_note(&self) -> Option<String> {
        match self.verdict() {
            Verdict::Verified => None,
            v => Some(format!("store questdb: {}", v.message())),
        }
    }
}

/// The QuestDB store of `--questdb CONF`, wrapped in a [`CheckedStore`]
/// unless `mode` is off, and the verdict to report. The first check (and,
/// with `apply`, the missing tables) runs now, so the log says at start what
/// is wrong; the store checks again by itself afterwards. An error is a
/// configuration the reporter cannot start with.
pub fn open(conf: &str, mode: SchemaMode) -> Result<(Box<dyn Store>, Option<SchemaWatch>), String> {
    let store = QuestDbStore::new(conf).map_err(|e| format!("--questdb: {e}"))?;
    if mode == SchemaMode::Off {
        // No QuestDB schema: an ILP server other than QuestDB, which cannot
        // store text (VictoriaMetrics writes a string as 0).
        return Ok((Box::new(store.skip_text()), None));
    }
    let catalog = SqlCatalog::new(conf).map_err(|e| {
        format!(
            "--questdb: {e}; or --questdb-schema off: no check, and replays may duplicate rows \
             in tables made without DEDUP"
        )
    })?;
    let mut checked = CheckedStore::new(Box::new(store), Box::new(catalog), mode, SCHEMA_SQL)?;
    checked.check();
    let watch = checked.watch();
    Ok((Box::new(checked), Some(watch)))
}

/// A store that writes only once the schema is verified (see the module doc).
pub struct CheckedStore {
    inner: Box<dyn Store>,
    catalog: Box<dyn Catalog>,
    mode: SchemaMode,
    expected: Vec<ExpectedTable>,
    watch: SchemaWatch,
    verified: bool,
    /// Tables the rows named that the schema does not define (warned once).
    unknown: BTreeSet<String>,
}

impl CheckedStore {
    /// Wraps `inner`; checks nothing yet ([`CheckedStore::check`] does).
    /// `sql` is the schema ([`SCHEMA_SQL`]).
    pub fn new(
        inner: Box<dyn Store>,
        catalog: Box<dyn Catalog>,
        mode: SchemaMode,
        sql: &str,
    ) -> Result<Self, String> {
        Ok(CheckedStore {
            inner,
            catalog,
            mode,
            expected: expected_tables(sql)?,
            watch: SchemaWatch::default(),
            verified: mode == SchemaMode::Off,
            unknown: BTreeSet::new(),
        })
    }

    /// The shared view of the verdict.
    pub fn watch(&self) -> SchemaWatch {
        self.watch.clone()
    }

    /// Checks the tables now (creating missing ones in `apply` mode), logs
    /// what changed, and returns whether the store may write.
    pub fn check(&mut self) -> bool {
        if self.mode == SchemaMode::Off {
            return true;
        }
        let verdict = self.judge();
        self.verified = verdict == Verdict::Verified;
        let before = self.watch.set(verdict.clone());
        if before != verdict {
            match &verdict {
                Verdict::Verified => tracing::info!(
                    tables = self.expected.len(),
                    "QuestDB schema verified: every table has DEDUP on the schema's keys and \
                     designated timestamp ts; writing"
                ),
                Verdict::Unchecked(why) => tracing::warn!(
                    reason = %why,
                    "cannot check the QuestDB schema; the QuestDB store holds its rows (the \
                     spool keeps them) until it can"
                ),
                Verdict::Wrong(problems) => {
                    for p in problems {
                        tracing::error!(table = %p.table, problem = %p, fix = %p.fix, "QuestDB table not as the schema wants");
                    }
                    tracing::error!(
                        problems = problems.len(),
                        "the QuestDB store writes nothing until these tables are fixed (the \
                         spool keeps the rows; checked again at every retry, no restart needed)"
                    );
                }
            }
        }
        self.verified
    }

    fn judge(&self) -> Verdict {
        let names: Vec<&str> = self.expected.iter().map(|t| t.name.as_str()).collect();
        let observed = match self.catalog.observe(&names) {
            Ok(o) => o,
            Err(why) => return Verdict::Unchecked(why),
        };
        let mut problems = compare(&self.expected, &observed, self.mode);
        if self.mode == SchemaMode::Apply && problems.iter().any(|p| p.problem == Problem::Missing)
        {
            match self.catalog.apply() {
                Ok(()) => {
                    tracing::info!("QuestDB schema applied (missing tables created)");
                    match self.catalog.observe(&names) {
                        Ok(o) => problems = compare(&self.expected, &o, self.mode),
                        Err(why) => return Verdict::Unchecked(why),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not apply the QuestDB schema");
                    for p in &mut problems {
                        if p.problem == Problem::Missing {
                            p.fix = format!("applying the schema failed: {e}");
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Verdict::Verified
        } else {
            Verdict::Wrong(problems)
        }
    }

    fn warn_unknown_tables(&mut self, batches: &[Arc<AcceptedBatch>]) {
        for batch in batches {
            for row in &batch.decoded.rows {
                let table = row.key.table.as_str();
                if self.unknown.contains(table)
                    || self
                        .expected
                        .iter()
                        .any(|t| t.name.eq_ignore_ascii_case(table))
                {
                    continue;
                }
                tracing::warn!(
                    table,
                    "table not in deploy/questdb/schema.sql: QuestDB creates it on the first row \
                     without DEDUP (a replay after a crash duplicates its rows); create it with \
                     DEDUP UPSERT KEYS(ts, node, <its tags>) to avoid that"
                );
                self.unknown.insert(table.to_string());
            }
        }
    }
}

impl Store for CheckedStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        if !self.verified && !self.check() {
            return Err(StoreError::Unavailable(self.watch.verdict().message()));
        }
        if self.mode != SchemaMode::Off {
            self.warn_unknown_tables(batches);
        }
        let written = self.inner.write(batches);
        if matches!(written, Err(StoreError::Unavailable(_))) && self.mode != SchemaMode::Off {
            // The server may come back empty (a fresh volume): check before
            // the next write lets ILP create the tables.
            self.verified = false;
        }
        written
    }

    fn maintain(&mut self) -> Result<(), StoreError> {
        if self.verified && self.mode != SchemaMode::Off {
            self.check();
        }
        self.inner.maintain()
    }

    fn maintain_interval(&self) -> Duration {
        self.inner.maintain_interval().min(RECHECK_VERIFIED)
    }
}

#[cfg(test)]
mod tests;
