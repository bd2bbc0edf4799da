//! The embedded SQLite store: one database file, one table per row-model
//! table, queryable with plain SQL (`sqlite3 hostpulse.db`).
//!
//! SQLite is compiled into the reporter (`rusqlite` with `bundled`): nothing
//! is needed on the machine, and the SQL dialect is the same everywhere.
//!
//! # Schema
//!
//! Every row-model table (`cpu`, `memory`, `network`, …, `node_info`,
//! `hostpulse_self`) is one SQLite table with the same name and three key columns,
//! then one column per tag and one per field, added the first time a row
//! carries them:
//!
//! | column | type | holds |
//! |---|---|---|
//! | `ts` | `INTEGER NOT NULL` | Unix time in nanoseconds |
//! | `node` | `TEXT NOT NULL` | the node id |
//! | `tags` | `TEXT NOT NULL` | every tag of the row, canonical: `name=value` sorted by name, joined with `,` (in values `\` and `,` are escaped as `\\` and `\,`); `''` for a table without tags |
//! | one per tag | `TEXT` | the tag's value; `NULL` in rows without that tag |
//! | one per field | `INTEGER` (integer fields) or `REAL` (float fields) | the value; `NULL` where a row lacks it |
//!
//! ```sql
//! CREATE TABLE "cpu" (ts INTEGER NOT NULL, node TEXT NOT NULL, tags TEXT NOT NULL,
//!     "cpu" TEXT, "user_seconds_total" REAL, "user_percent" REAL, …, "usage_percent" REAL);
//! CREATE UNIQUE INDEX "cpu:dedup" ON "cpu" (ts, node, tags);
//! -- a row: ts=1732380000000000000, node='web-1', tags='cpu=0,region=eu-west',
//! --        cpu='0', region='eu-west', user_percent=3.2, …
//! ```
//!
//! Rows of one table may carry different fields (an old kernel lacks some, a
//! rate is absent on the first sample) and new fields appear over time (a
//! kernel upgrade, a new gatherer): the store adds the column
//! (`ALTER TABLE … ADD COLUMN`) in the same transaction as the rows that need
//! it. It keeps the known columns of every table in memory, read back from
//! the database (`pragma_table_info`) when it opens. Columns are never
//! dropped or retyped.
//!
//! ## Names
//!
//! Every row is checked with [`hostpulse_proto::rules::check_row`], the
//! rules the reporter enforces before acknowledging: a table name must match
//! `[a-z0-9_]{1,64}` and not start with `sqlite_`; a tag or field name must
//! match `[A-Za-z0-9_]{1,64}` (gatherer labels may hold capitals) and not be
//! `ts`, `node`, `tags`, `timestamp`, `rowid`, `oid` or `_rowid_`. SQLite
//! compares names without regard to ASCII case, so `Region` and `region` are
//! one column: a row carrying both, or a tag and a field of the same name, is
//! refused. So is a tag whose name is already a field column of the table (or
//! the reverse), which only the file can tell. So is a row for a table that exists in the file
//! but was not made by this store (it lacks `ts`, `node` and `tags`), and a
//! row that would make more than [`MAX_TABLES`] tables, or more than
//! [`MAX_COLUMNS`] columns in one table (a sender inventing names cannot grow
//! the schema without bound). Every
//! identifier is double-quoted in the SQL, and values are always bound
//! parameters: a hostile name is refused before SQL ever sees it, and a
//! hostile value is only data.
//!
//! ## Values
//!
//! - Integer fields (`Value::Int`, counters) are stored exactly as
//!   `INTEGER` up to `i64::MAX`. Above it (a counter saturated at
//!   `u64::MAX`) the value is stored as `i64::MAX`
//!   ([`hostpulse_proto::rules::int_value`]; the reporter already did so
//!   before acknowledging), as in QuestDB's LONG columns.
//! - Float fields are `REAL`. Non-finite floats are refused at ingest; one
//!   found in an older spool is left out of the row, and a row left with no
//!   field is not written.
//! - A column's type is set by the first value seen. Tables are not `STRICT`:
//!   should a field later change kind, SQLite's type affinity stores the
//!   value anyway (an integer in a `REAL` column becomes a double; a float
//!   with a fraction in an `INTEGER` column stays `REAL`), so numeric queries
//!   keep working.
//! - Text fields (`Value::Text`, event messages, at most 8 KiB) are `TEXT`
//!   columns, stored as they are (control characters included). A `TEXT`
//!   column takes tags and text fields alike; a text value for a numeric
//!   column (or a number for a text column) is refused (the rejected-rows
//!   file keeps the row).
//!
//! # Idempotency
//!
//! A row's identity is `(ts, node, tags)`, the same key QuestDB deduplicates
//! on, enforced by the unique index `"<table>:dedup"`. Every row is written
//! with `INSERT … ON CONFLICT (ts, node, tags) DO UPDATE SET` *its own
//! fields* `= excluded.<field>`: an upsert. A batch replayed after a crash
//! (the drainer resends from its last persisted cursor) rewrites the same
//! values into the same rows, so any number of replays leaves exactly one row
//! per key with the same content; fields the replayed row does not carry are
//! left as they are. The tags are in the key as one canonical column rather
//! than as the tag columns themselves because the set of tag columns grows
//! over time (a new `--label`), and an index cannot follow that, while two
//! rows with different tag sets must stay two rows (`node_info` holds a host
//! row and interface rows); `NULL` tag columns would also never conflict in a
//! unique index. The encoding is injective (tag names cannot contain `=` or
//! `,`, and values escape `\` and `,`), and readable:
//! `SELECT DISTINCT tags FROM network`.
//!
//! # Transactions and durability
//!
//! [`SqliteStore::write`] checks every row first (a refused row refuses the
//! whole call before anything is written; the drainer then splits the call
//! until the refused row is alone, so its neighbours are stored and only it
//! goes to the rejected-rows file), then runs one `BEGIN IMMEDIATE`
//! transaction for all the batches it is given: new tables, new columns and
//! every row, through cached prepared statements, then `COMMIT`. Either all
//! of it is in the database or none of it is. Thousands of rows cost one
//! commit.
//!
//! The database runs with `journal_mode=WAL` and **`synchronous=FULL`**.
//! `synchronous=NORMAL` is not enough for the promise `write` makes: in WAL
//! mode NORMAL does not sync the WAL at commit, only at checkpoints, so a
//! committed transaction survives a process crash but not a power loss or
//! kernel panic. The drainer advances (and persists) its spool cursor as soon
//! as `write` returns, so after such a loss the spool would no longer replay
//! the batches SQLite had dropped: rows lost for good. With FULL, SQLite
//! `fsync`s the WAL before `COMMIT` returns, so a returned `write` is on
//! stable storage; the cost is one `fsync` per `write` call, which the
//! batched transaction spreads over every batch in it. (NORMAL plus a forced
//! checkpoint after each write would sync as well, but costs two syncs and
//! rewrites pages into the main file each time.) SQLite also syncs the
//! directory when it creates the WAL. A commit whose result is unknown (an
//! I/O error) is reported as unavailable and retried; the upsert makes the
//! retry harmless.
//!
//! `busy_timeout` (5 s by default) lets another process (an operator's
//! `sqlite3` writing, a backup) hold the lock briefly; past it the write fails
//! as [`StoreError::Unavailable`] and the drainer retries. Readers never block
//! the store in WAL mode, and the store never blocks them.
//!
//! Errors: a busy or locked database, a full disk, an I/O error, a file that
//! cannot be opened, is read-only, corrupt or not a database are
//! [`StoreError::Unavailable`] (the spool keeps the batches until the
//! operator fixes the file); after the errors that hint at a file problem
//! the store reopens the database before the next write. In WAL mode SQLite
//! does not notice its file being deleted (it would keep committing into the
//! unlinked inode, and those rows would vanish with the process), so the
//! store compares the file's device and inode with the path's before and
//! after every write: a file deleted under it is recreated and written to,
//! and a write that committed while the path changed is reported unavailable
//! and replayed into the new file. (Replacing the file while the reporter
//! runs is still unwise: whoever opens the new file first may replay the old
//! file's WAL into it. Stop the reporter for that.) Constraint, type, size and SQL errors
//! caused by the rows (more than SQLite's 2000 columns in a table, a huge
//! value) are [`StoreError::Rejected`] — after one retry with the schema
//! re-read from the file, in case another process changed it.
//!
//! # Retention
//!
//! With a retention (`--retention 24h`), [`SqliteStore::maintain`] deletes
//! the rows whose `ts` is older than now minus the retention, in every table
//! this store made, in chunks of [`SqliteOptions::prune_chunk`] rows, each
//! its own short transaction (the write lock is never held for longer than
//! one chunk), round-robin across tables, for at most
//! [`SqliteOptions::prune_budget`] per call; what remains is deleted at the
//! next call. The chunks find old rows through the `ts`-first dedup index.
//! `Duration::ZERO` keeps everything.
//!
//! It then runs `PRAGMA wal_checkpoint(TRUNCATE)` so the WAL file shrinks
//! back to zero (skipped quietly while a reader holds an old snapshot), and
//! `journal_size_limit` caps the WAL left after automatic checkpoints at
//! 64 MiB. Deleted rows free pages inside the file that new rows reuse, so
//! the file stops growing once retention has caught up, but it does not
//! shrink: after lowering the retention, stop the reporter and run `VACUUM`
//! (it needs as much free space as the file) to give the space back.
//!
//! # Queries
//!
//! ```sql
//! -- what is there
//! .tables
//! .schema cpu
//! SELECT DISTINCT tags FROM network;
//!
//! -- last CPU usage per node (rows of the last 5 minutes)
//! SELECT node, datetime(max(ts) / 1000000000, 'unixepoch') AS at, usage_percent
//! FROM cpu
//! WHERE cpu = 'total' AND ts > (strftime('%s', 'now') - 300) * 1000000000
//! GROUP BY node ORDER BY usage_percent DESC;
//!
//! -- the fleet inventory: each node's latest host facts
//! SELECT node, hostname, kernel, os_pretty_name, cpu_model, logical_cores,
//!        round(memory_total_bytes / 1073741824.0, 1) AS memory_gib,
//!        datetime(max(ts) / 1000000000, 'unixepoch') AS reported
//! FROM node_info WHERE hostname IS NOT NULL GROUP BY node;
//!
//! -- nodes that stopped reporting (no hostpulse_self row in 10 minutes)
//! SELECT node, datetime(max(ts) / 1000000000, 'unixepoch') AS last_seen
//! FROM hostpulse_self GROUP BY node
//! HAVING max(ts) < (strftime('%s', 'now') - 600) * 1000000000;
//!
//! -- busiest disks over the last hour
//! SELECT node, device, max(utilization_percent) AS peak
//! FROM disk WHERE ts > (strftime('%s', 'now') - 3600) * 1000000000
//! GROUP BY node, device ORDER BY peak DESC LIMIT 10;
//!
//! -- one interface's traffic, oldest first
//! SELECT datetime(ts / 1000000000, 'unixepoch') AS at,
//!        rx_bytes_per_second, tx_bytes_per_second
//! FROM network
//! WHERE node = 'web-1' AND interface = 'eth0'
//!   AND ts > (strftime('%s', 'now') - 3600) * 1000000000
//! ORDER BY ts;
//! ```
//!
//! (`max(ts)` with bare columns takes the other columns from the row holding
//! the maximum, an SQLite rule.) Bounding `ts` lets the `ts`-first index
//! answer a query without reading the whole table.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hostpulse_proto::codec::DecodedRow;
use hostpulse_proto::row::Value;
use hostpulse_proto::rules::{self, shown};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{Store, StoreError};
use crate::intake::AcceptedBatch;

#[cfg(test)]
mod tests;

/// Layout version kept in `PRAGMA user_version`; a file with a higher one was
/// written by a newer reporter and is not touched.
pub const SCHEMA_VERSION: i64 = 1;

/// Longest table, tag or field name.
pub const MAX_NAME: usize = rules::MAX_NAME_BYTES;

/// Most tables the store creates in one file (room for every hostpulse family,
/// `hostpulse_self` and the `--custom-tables`).
pub const MAX_TABLES: usize = 256;

/// Most columns of one table, `ts`, `node` and `tags` included (SQLite's own
/// limit is 2000, and each added column makes the next `ALTER TABLE` slower).
pub const MAX_COLUMNS: usize = 1000;

/// Column names the store uses itself, or that SQLite resolves to the rowid.
const RESERVED: &[&str] = &["ts", "node", "tags", "rowid", "oid", "_rowid_"];

/// WAL size left after a checkpoint resets it.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// Prepared statements kept per connection (one per table and column set).
const STATEMENT_CACHE: usize = 256;

/// How the store is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Rows whose `ts` is older than now minus this are deleted by
    /// [`Store::maintain`]. `Duration::ZERO` keeps everything.
    pub retention: Duration,
    /// How long a statement waits for another connection's lock before
    /// failing as [`StoreError::Unavailable`] (whole milliseconds, at most
    /// `i32::MAX` of them).
    pub busy_timeout: Duration,
    /// Rows deleted per retention transaction.
    pub prune_chunk: u32,
    /// Longest time one [`Store::maintain`] call spends deleting; the rest
    /// waits for the next call.
    pub prune_budget: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            retention: Duration::ZERO,
            busy_timeout: Duration::from_secs(5),
            prune_chunk: 5000,
            prune_budget: Duration::from_secs(10),
        }
    }
}

/// What [`SqliteStore::maintain`] did in its last call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows deleted.
    pub deleted: u64,
    /// True when the time budget ran out before every old row was deleted.
    pub incomplete: bool,
}

/// The embedded SQLite store (see the module documentation).
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    /// `None` after an error that calls for reopening the file.
    conn: Option<Connection>,
    /// Tables in the file, by name (lowercase).
    schema: HashMap<String, TableSchema>,
    /// The schema must be read again before the next write (after a failed
    /// transaction, whose outcome may not be what the cache assumes).
    schema_stale: bool,
    /// The file the connection has open (device and inode), to notice it
    /// being deleted or replaced under the store.
    file: Option<FileId>,
    /// Transactions committed on this store's connections (a commit hook).
    commits: Arc<AtomicU64>,
    last_prune: PruneReport,
    sql: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("open", &self.conn.is_some())
            .field("tables", &self.schema.len())
            .finish_non_exhaustive()
    }
}

/// What a column holds, from its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// `ts`, `node`, `tags` (and the rowid aliases).
    Key,
    /// `TEXT`: a tag.
    Tag,
    /// `INTEGER`: an integer field.
    Int,
    /// `REAL`: a float field.
    Float,
    /// `TEXT`: a text field (read back from the database as [`ColumnKind::Tag`],
    /// the same declared type: a text field and a tag may share a column).
    Text,
    /// Anything else: a column the store did not make.
    Other,
}

impl ColumnKind {
    fn sql_type(self) -> &'static str {
        match self {
            ColumnKind::Tag | ColumnKind::Text => "TEXT",
            ColumnKind::Int => "INTEGER",
            ColumnKind::Float => "REAL",
            ColumnKind::Key | ColumnKind::Other => "",
        }
    }

    fn is_field(self) -> bool {
        matches!(self, ColumnKind::Int | ColumnKind::Float)
    }

    fn describe(self) -> &'static str {
        match self {
            ColumnKind::Key => "a key column",
            ColumnKind::Tag => "a tag column",
            ColumnKind::Int | ColumnKind::Float => "a numeric field column",
            ColumnKind::Text => "a text column",
            ColumnKind::Other => "a column hostpulse did not create",
        }
    }
}

#[derive(Debug, Clone)]
struct TableSchema {
    /// The table has `ts`, `node` and `tags`: the store made it.
    ours: bool,
    /// The dedup index was ensured on this connection.
    indexed: bool,
    /// Columns by ASCII-lowercased name.
    columns: HashMap<String, ColumnKind>,
}

/// A field value as it is bound.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num<'a> {
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// A checked row, ready to bind.
struct Prepared<'a> {
    table: &'a str,
    node: &'a str,
    ts: i64,
    tags: &'a [(String, String)],
    tags_key: String,
    /// Deduplicated (last value wins), non-finite floats left out.
    fields: Vec<(&'a str, ColumnKind, Num<'a>)>,
}

/// Why a transaction failed.
enum Failure {
    Sql(String, rusqlite::Error),
    Conflict(String),
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with default options and
    /// the given retention (`Duration::ZERO`: keep everything).
    pub fn open(path: &Path, retention: Duration) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            SqliteOptions {
                retention,
                ..SqliteOptions::default()
            },
        )
    }

    /// Opens (or creates) the database at `path`: WAL, `synchronous=FULL`,
    /// the busy timeout, and the known tables read back. Every error is
    /// [`StoreError::Unavailable`] with the path in its message.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let commits = Arc::new(AtomicU64::new(0));
        let (conn, schema) = connect(path, &options, &commits)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            options,
            conn: Some(conn),
            schema,
            schema_stale: false,
            file: file_id(path),
            commits,
            last_prune: PruneReport::default(),
            sql: String::new(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// Transactions committed so far (writes, schema changes, retention
    /// chunks): for metrics and tests.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// What the last [`Store::maintain`] call deleted.
    pub fn last_prune(&self) -> PruneReport {
        self.last_prune
    }

    /// The connection, reopened if an earlier error dropped it or if the
    /// file at the path is no longer the one it has open.
    fn ensure_connected(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() && !self.same_file() {
            tracing::warn!(
                path = %self.path.display(),
                "sqlite store: the database file was deleted or replaced; reopening"
            );
            self.close();
        }
        if self.conn.is_none() {
            let (conn, schema) = connect(&self.path, &self.options, &self.commits)?;
            tracing::info!(path = %self.path.display(), "sqlite store: database reopened");
            self.conn = Some(conn);
            self.schema = schema;
            self.schema_stale = false;
            self.file = file_id(&self.path);
        }
        Ok(())
    }

    /// Drops the connection, to be reopened before the next statement.
    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.same_file() {
                // SQLite does not checkpoint on close a file that moved, and
                // leaves its WAL behind, which the next connection at the path
                // would replay into the new file. Empty it first (the frames
                // go to the old file, which is gone anyway).
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "sqlite store: emptying the old WAL");
                }
            }
            drop(conn);
        }
    }

    /// Whether the path still names the file the connection has open. In WAL
    /// mode SQLite does not notice a deleted database file: it would go on
    /// committing into the unlinked inode, and the rows would vanish with
    /// the process.
    fn same_file(&self) -> bool {
        file_id(&self.path) == self.file
    }

    /// Turns a failed transaction into the store's error, and decides what
    /// must be redone before the next one.
    fn fail(&mut self, failure: Failure) -> StoreError {
        // The transaction was rolled back (or its commit may have failed
        // halfway): the cache may not match the file any more.
        self.schema_stale = true;
        match failure {
            Failure::Conflict(message) => StoreError::Rejected(message),
            Failure::Sql(context, e) => {
                if needs_reopen(&e) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        "sqlite store: the database will be reopened"
                    );
                    self.close();
                }
                classify(&format!("{}: {context}", self.path.display()), &e)
            }
        }
    }

    /// One attempt at writing `rows` in one transaction.
    fn try_write(&mut self, rows: &[Prepared<'_>], reload: bool) -> Result<(), StoreError> {
        self.ensure_connected()?;
        let reload = reload || self.schema_stale;
        let Self {
            conn, schema, sql, ..
        } = self;
        let Some(conn) = conn.as_mut() else {
            return Err(StoreError::Unavailable("the database is not open".into()));
        };
        let result = write_transaction(conn, schema, sql, rows, reload);
        match result {
            Ok(()) if !self.same_file() => {
                // Deleted or replaced during the transaction: the rows may be
                // in a file nobody will read. Write them again into the new
                // one (the next write reopens it).
                self.schema_stale = true;
                Err(StoreError::Unavailable(format!(
                    "sqlite {}: the database file was deleted or replaced during the write",
                    self.path.display()
                )))
            }
            Ok(()) => {
                self.schema_stale = false;
                Ok(())
            }
            Err(failure) => Err(self.fail(failure)),
        }
    }

    /// Deletes rows older than the retention, chunk by chunk.
    fn prune(&mut self) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let Some(cutoff) = cutoff_ns(self.options.retention, SystemTime::now()) else {
            return Ok(report);
        };
        let chunk = i64::from(self.options.prune_chunk.max(1));
        let deadline = Instant::now().checked_add(self.options.prune_budget);
        let mut tables: Vec<String> = self
            .schema
            .iter()
            .filter(|(_, t)| t.ours)
            .map(|(name, _)| name.clone())
            .collect();
        tables.sort();
        while !tables.is_empty() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.incomplete = true;
                break;
            }
            let mut remaining = Vec::with_capacity(tables.len());
            for table in tables {
                let Some(conn) = self.conn.as_ref() else {
                    return Err(StoreError::Unavailable("the database is not open".into()));
                };
                let sql = format!(
                    "DELETE FROM {q} WHERE rowid IN (SELECT rowid FROM {q} WHERE ts < ?1 LIMIT ?2)",
                    q = quote(&table)
                );
                let deleted = conn
                    .prepare_cached(&sql)
                    .and_then(|mut stmt| stmt.execute((cutoff, chunk)));
                match deleted {
                    Ok(n) => {
                        report.deleted = report.deleted.saturating_add(n as u64);
                        if n as i64 >= chunk {
                            remaining.push(table);
                        }
                    }
                    // Most likely the database is locked or failing: the
                    // other tables would fail the same way; next call.
                    Err(e) => {
                        self.last_prune = report;
                        let context = format!("deleting old rows of {table}");
                        return Err(self.fail(Failure::Sql(context, e)));
                    }
                }
            }
            tables = remaining;
        }
        Ok(report)
    }

    /// Resets the WAL to zero bytes when no reader needs it.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        match result {
            Ok(0) => Ok(()),
            Ok(_) => {
                tracing::debug!("sqlite store: WAL checkpoint incomplete (a reader is active)");
                Ok(())
            }
            Err(e)
                if matches!(
                    code(&e),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                tracing::debug!(error = %e, "sqlite store: WAL checkpoint skipped");
                Ok(())
            }
            Err(e) => Err(self.fail(Failure::Sql("checkpointing the WAL".into(), e))),
        }
    }
}

impl Store for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    /// A quarter of the retention (between 100 ms and a minute), so rows
    /// outlive their retention by at most a quarter of it.
    fn maintain_interval(&self) -> Duration {
        if self.options.retention.is_zero() {
            Duration::from_secs(60)
        } else {
            (self.options.retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
        }
    }

    fn write(&mut self, batches: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        let rows = prepare_rows(batches)?;
        if rows.is_empty() {
            return Ok(());
        }
        let reloaded = self.schema_stale || self.conn.is_none();
        match self.try_write(&rows, false) {
            // Another process may have changed the schema under the cache (a
            // column added or dropped): read it again and try once more.
            Err(StoreError::Rejected(first)) if !reloaded => {
                tracing::debug!(error = %first, "sqlite store: retrying with the schema re-read");
                self.try_write(&rows, true)
            }
            other => other,
        }
    }

    fn maintain(&mut self) -> Result<(), StoreError> {
        self.ensure_connected()?;
        if self.schema_stale {
            if let Some(conn) = self.conn.as_ref() {
                match load_schema(conn) {
                    Ok(schema) => {
                        self.schema = schema;
                        self.schema_stale = false;
                    }
                    Err(e) => return Err(self.fail(Failure::Sql("reading the schema".into(), e))),
                }
            }
        }
        let pruned = self.prune();
        if let Ok(report) = &pruned {
            self.last_prune = *report;
            if report.deleted > 0 {
                tracing::debug!(
                    deleted = report.deleted,
                    incomplete = report.incomplete,
                    "sqlite store: retention"
                );
            }
        }
        let checkpoint = self.checkpoint();
        pruned?;
        checkpoint
    }
}

/// Opens the file, sets it up and reads its tables.
fn connect(
    path: &Path,
    options: &SqliteOptions,
    commits: &Arc<AtomicU64>,
) -> Result<(Connection, HashMap<String, TableSchema>), StoreError> {
    let shown = path.display();
    let unavailable = |what: &str, e: rusqlite::Error| {
        StoreError::Unavailable(format!("sqlite {shown}: {what}: {e}"))
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| unavailable("opening", e))?;
    let busy_ms = options.busy_timeout.as_millis().min(i32::MAX as u128) as u64;
    conn.busy_timeout(Duration::from_millis(busy_ms))
        .map_err(|e| unavailable("setting busy_timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| unavailable("setting journal_mode=WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite {shown}: the database cannot use WAL (journal_mode is {mode:?}); \
             use a file on a local file system"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| unavailable("setting synchronous=FULL", e))?;
    conn.pragma_update_and_check(None, "journal_size_limit", JOURNAL_SIZE_LIMIT, |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| unavailable("setting journal_size_limit", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let counter = Arc::clone(commits);
    conn.commit_hook(Some(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        false
    }))
    .map_err(|e| unavailable("installing the commit hook", e))?;

    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| unavailable("reading user_version", e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "sqlite {shown}: schema version {version} was written by a newer hostpulse \
             (this one writes version {SCHEMA_VERSION}); refusing to write to it"
        )));
    }
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| unavailable("setting user_version", e))?;
    }
    let schema = load_schema(&conn).map_err(|e| unavailable("reading the schema", e))?;
    Ok((conn, schema))
}

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file at `path`; `None` when there is none (or on a
/// platform without inodes, where the check is skipped).
fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Reads every table and its columns from the file.
fn load_schema(conn: &Connection) -> rusqlite::Result<HashMap<String, TableSchema>> {
    let mut names = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            names.push(text(row.get_ref(0)?));
        }
    }
    let mut schema = HashMap::with_capacity(names.len());
    for name in names {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("sqlite_") {
            continue;
        }
        // A virtual table whose module is missing cannot be described: it is
        // simply not ours.
        let columns = table_columns(conn, &name).unwrap_or_default();
        let ours = ["ts", "node", "tags"]
            .iter()
            .all(|k| columns.get(*k) == Some(&ColumnKind::Key));
        schema.insert(
            lower,
            TableSchema {
                ours,
                indexed: false,
                columns,
            },
        );
    }
    Ok(schema)
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<HashMap<String, ColumnKind>> {
    let mut stmt = conn.prepare_cached("SELECT name, type FROM pragma_table_info(?1)")?;
    let mut rows = stmt.query([table])?;
    let mut columns = HashMap::new();
    while let Some(row) = rows.next()? {
        let name = text(row.get_ref(0)?).to_ascii_lowercase();
        let declared = text(row.get_ref(1)?);
        let kind = if RESERVED.contains(&name.as_str()) {
            ColumnKind::Key
        } else if declared.eq_ignore_ascii_case("TEXT") {
            ColumnKind::Tag
        } else if declared.eq_ignore_ascii_case("INTEGER") {
            ColumnKind::Int
        } else if declared.eq_ignore_ascii_case("REAL") {
            ColumnKind::Float
        } else {
            ColumnKind::Other
        };
        columns.insert(name, kind);
    }
    Ok(columns)
}

/// A text value as a string, whatever its bytes.
fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

/// Schema changes one transaction makes, applied to the cache after COMMIT.
#[derive(Default)]
struct Plan {
    ddl: Vec<String>,
    new_tables: HashSet<String>,
    indexed: HashSet<String>,
    new_columns: HashMap<String, HashMap<String, ColumnKind>>,
}

impl Plan {
    fn kind(
        &self,
        schema: &HashMap<String, TableSchema>,
        table: &str,
        column: &str,
    ) -> Option<ColumnKind> {
        schema
            .get(table)
            .and_then(|t| t.columns.get(column))
            .or_else(|| self.new_columns.get(table).and_then(|c| c.get(column)))
            .copied()
    }

    /// Checks one row against the schema, planning the tables and columns it needs.
    fn row(
        &mut self,
        schema: &HashMap<String, TableSchema>,
        row: &Prepared<'_>,
    ) -> Result<(), String> {
        let table = row.table;
        match schema.get(table) {
            Some(t) if !t.ours => {
                return Err(format!(
                    "table {table} exists in the database but was not created by hostpulse \
                     (it lacks the ts, node and tags columns)"
                ));
            }
            Some(t) => {
                if !t.indexed && !self.indexed.contains(table) {
                    self.ddl.push(create_index_sql(table));
                    self.indexed.insert(table.to_string());
                }
            }
            None => {
                if !self.new_tables.contains(table) {
                    let tables = schema.values().filter(|t| t.ours).count() + self.new_tables.len();
                    if tables >= MAX_TABLES {
                        return Err(format!(
                            "table {table} would be table number {} (at most {MAX_TABLES})",
                            tables + 1
                        ));
                    }
                    self.ddl.push(format!(
                        "CREATE TABLE IF NOT EXISTS {} \
                         (ts INTEGER NOT NULL, node TEXT NOT NULL, tags TEXT NOT NULL)",
                        quote(table)
                    ));
                    self.ddl.push(create_index_sql(table));
                    self.new_tables.insert(table.to_string());
                }
            }
        }
        let tags = row.tags.iter().map(|(n, _)| (n.as_str(), ColumnKind::Tag));
        let fields = row.fields.iter().map(|(n, k, _)| (*n, *k));
        for (name, wanted) in tags.chain(fields) {
            let lower = lowercase(name);
            match self.kind(schema, table, &lower) {
                None => {
                    let columns = schema.get(table).map_or(3, |t| t.columns.len())
                        + self.new_columns.get(table).map_or(0, HashMap::len);
                    if columns >= MAX_COLUMNS {
                        return Err(format!(
                            "table {table}: column {} would be column number {} \
                             (at most {MAX_COLUMNS})",
                            shown(name),
                            columns + 1
                        ));
                    }
                    self.ddl.push(format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        quote(table),
                        quote(name),
                        wanted.sql_type()
                    ));
                    self.new_columns
                        .entry(table.to_string())
                        .or_default()
                        .insert(lower.into_owned(), wanted);
                }
                Some(have)
                    if have == wanted
                        || (have.is_field() && wanted.is_field())
                        || (have.sql_type() == "TEXT" && wanted.sql_type() == "TEXT") => {}
                Some(have) => {
                    let role = if wanted == ColumnKind::Tag {
                        "tag"
                    } else {
                        "field"
                    };
                    return Err(format!(
                        "table {table}: {role} {} is {} of the table",
                        shown(name),
                        have.describe()
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply(self, schema: &mut HashMap<String, TableSchema>) {
        for table in self.new_tables {
            let columns = ["ts", "node", "tags"]
                .iter()
                .map(|k| (k.to_string(), ColumnKind::Key))
                .collect();
            schema.insert(
                table,
                TableSchema {
                    ours: true,
                    indexed: true,
                    columns,
                },
            );
        }
        for table in self.indexed {
            if let Some(t) = schema.get_mut(&table) {
                t.indexed = true;
            }
        }
        for (table, columns) in self.new_columns {
            if let Some(t) = schema.get_mut(&table) {
                t.columns.extend(columns);
            }
        }
    }
}

fn create_index_sql(table: &str) -> String {
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (ts, node, tags)",
        quote(&format!("{table}:dedup")),
        quote(table)
    )
}

/// The transaction of one write: schema changes, every row, commit.
fn write_transaction(
    conn: &mut Connection,
    schema: &mut HashMap<String, TableSchema>,
    sql: &mut String,
    rows: &[Prepared<'_>],
    reload: bool,
) -> Result<(), Failure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| Failure::Sql("starting a transaction".into(), e))?;
    if reload {
        *schema = load_schema(&tx).map_err(|e| Failure::Sql("reading the schema".into(), e))?;
    }
    let mut plan = Plan::default();
    for row in rows {
        plan.row(schema, row).map_err(Failure::Conflict)?;
    }
    for ddl in &plan.ddl {
        tx.execute(ddl, [])
            .map_err(|e| Failure::Sql(format!("changing the schema ({ddl})"), e))?;
    }
    for row in rows {
        insert_sql(sql, row);
        let mut stmt = tx
            .prepare_cached(sql)
            .map_err(|e| Failure::Sql(format!("preparing an insert into {}", row.table), e))?;
        let mut bind = || -> rusqlite::Result<usize> {
            stmt.raw_bind_parameter(1, row.ts)?;
            stmt.raw_bind_parameter(2, row.node)?;
            stmt.raw_bind_parameter(3, row.tags_key.as_str())?;
            let mut i = 4;
            for (_, value) in row.tags {
                stmt.raw_bind_parameter(i, value.as_str())?;
                i += 1;
            }
            for (_, _, value) in &row.fields {
                match *value {
                    Num::Int(v) => stmt.raw_bind_parameter(i, v)?,
                    Num::Real(v) => stmt.raw_bind_parameter(i, v)?,
                    Num::Text(v) => stmt.raw_bind_parameter(i, v)?,
                }
                i += 1;
            }
            stmt.raw_execute()
        };
        bind().map_err(|e| {
            Failure::Sql(
                format!(
                    "writing a row of {} from node {}",
                    row.table,
                    shown(row.node)
                ),
                e,
            )
        })?;
    }
    tx.commit()
        .map_err(|e| Failure::Sql("committing".into(), e))?;
    plan.apply(schema);
    Ok(())
}

/// `INSERT … ON CONFLICT … DO UPDATE` for one row's columns.
fn insert_sql(sql: &mut String, row: &Prepared<'_>) {
    sql.clear();
    sql.push_str("INSERT INTO ");
    push_quoted(sql, row.table);
    // The alias keeps `excluded.` meaning the upsert's pseudo-table even in a
    // table named `excluded`.
    sql.push_str(" AS target (ts, node, tags");
    for (name, _) in row.tags {
        sql.push_str(", ");
        push_quoted(sql, name);
    }
    for (name, _, _) in &row.fields {
        sql.push_str(", ");
        push_quoted(sql, name);
    }
    sql.push_str(") VALUES (?1, ?2, ?3");
    for i in 4..4 + row.tags.len() + row.fields.len() {
        let _ = write!(sql, ", ?{i}");
    }
    sql.push_str(") ON CONFLICT (ts, node, tags) DO UPDATE SET ");
    for (i, (name, _, _)) in row.fields.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_quoted(sql, name);
        sql.push_str(" = excluded.");
        push_quoted(sql, name);
    }
}

/// Checks every row of every batch and puts it in the form the transaction
/// binds. The first refused row refuses the whole call.
fn prepare_rows(batches: &[Arc<AcceptedBatch>]) -> Result<Vec<Prepared<'_>>, StoreError> {
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.decoded.rows.len()).sum());
    for batch in batches {
        for (i, row) in batch.decoded.rows.iter().enumerate() {
            let prepared = prepare_row(&batch.node, row).map_err(|reason| {
                StoreError::Rejected(format!(
                    "batch {} from node {}, row {i}: {reason}",
                    batch.decoded.sequence,
                    shown(&batch.node)
                ))
            })?;
            if let Some(p) = prepared {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// One row checked; `None` when it has no field to store.
fn prepare_row<'a>(node: &'a str, row: &'a DecodedRow) -> Result<Option<Prepared<'a>>, String> {
    let table = row.key.table.as_str();
    let tags = row.key.tags.as_slice();
    rules::check_row(
        table,
        tags.iter().map(|(k, _)| k.as_str()),
        row.fields.iter().map(|(f, _)| &**f),
    )
    .map_err(|e| format!("table {}: {e}", shown(table)))?;
    // The row's names so far, compared without regard to ASCII case (as
    // SQLite compares column names): the first spelling and, for a field,
    // its slot in `fields`.
    let mut names: HashMap<Cow<'a, str>, (&'a str, Option<usize>)> =
        HashMap::with_capacity(tags.len() + row.fields.len());
    for (name, _) in tags {
        if names.insert(lowercase(name), (name, None)).is_some() {
            return Err(format!(
                "table {table}: tag {} appears twice (ignoring case)",
                shown(name)
            ));
        }
    }
    let mut fields: Vec<(&'a str, ColumnKind, Num<'a>)> = Vec::with_capacity(row.fields.len());
    for (name, value) in &row.fields {
        let name: &'a str = name;
        let field = match value {
            Value::Int(v) => Some((name, ColumnKind::Int, Num::Int(rules::int_value(*v)))),
            Value::Float(v) if v.is_finite() => Some((name, ColumnKind::Float, Num::Real(*v))),
            Value::Float(_) => None,
            Value::Text(t) => Some((name, ColumnKind::Text, Num::Text(t.as_str()))),
        };
        match names.entry(lowercase(name)) {
            Entry::Vacant(slot) => {
                if let Some(field) = field {
                    slot.insert((name, Some(fields.len())));
                    fields.push(field);
                }
            }
            Entry::Occupied(seen) => match *seen.get() {
                (_, None) => {
                    return Err(format!(
                        "table {table}: {} is both a tag and a field",
                        shown(name)
                    ));
                }
                (spelling, Some(_)) if spelling != name => {
                    return Err(format!(
                        "table {table}: fields {} and {} name the same column",
                        shown(spelling),
                        shown(name)
                    ));
                }
                // The same field again: the last value wins.
                (_, Some(index)) => {
                    if let (Some(field), Some(slot)) = (field, fields.get_mut(index)) {
                        *slot = field;
                    }
                }
            },
        }
    }
    if fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(Prepared {
        table,
        node,
        ts: row.ts,
        tags,
        tags_key: tags_key(tags),
        fields,
    }))
}

fn lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The canonical `tags` value: `name=value` sorted by name, joined with `,`,
/// `\` and `,` escaped in values.
fn tags_key(tags: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = tags.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut key = String::with_capacity(tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(name);
        key.push('=');
        for c in value.chars() {
            if c == '\\' || c == ',' {
                key.push('\\');
            }
            key.push(c);
        }
    }
    key
}

/// An SQL identifier in double quotes.
fn quote(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_quoted(&mut s, name);
    s
}

fn push_quoted(sql: &mut String, name: &str) {
    sql.push('"');
    for c in name.chars() {
        if c == '"' {
            sql.push('"');
        }
        sql.push(c);
    }
    sql.push('"');
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// Rejected when the rows caused it, Unavailable otherwise (the spool keeps
/// the batches; retrying is safe since writes are idempotent).
fn classify(context: &str, e: &rusqlite::Error) -> StoreError {
    let message = format!("sqlite {context}: {e}");
    let rejected = match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::ConstraintViolation
                | ErrorCode::TypeMismatch
                | ErrorCode::TooBig
                | ErrorCode::ParameterOutOfRange
                // SQLITE_ERROR: an SQL error (too many columns, no such column).
                | ErrorCode::Unknown
        ),
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::InvalidParameterCount(..)
        | rusqlite::Error::SqlInputError { .. } => true,
        _ => false,
    };
    if rejected {
        StoreError::Rejected(message)
    } else {
        StoreError::Unavailable(message)
    }
}

/// Errors after which the connection is dropped and the file reopened.
fn needs_reopen(e: &rusqlite::Error) -> bool {
    matches!(
        code(e),
        Some(
            ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::InternalMalfunction
                | ErrorCode::ApiMisuse
        )
    )
}

/// The oldest `ts` kept: now minus `retention`, in Unix ns; `None` when
/// nothing is to be deleted.
fn cutoff_ns(retention: Duration, now: SystemTime) -> Option<i64> {
    if retention.is_zero() {
        return None;
    }
    let now_ns: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    let retention_ns = i128::try_from(retention.as_nanos()).unwrap_or(i128::MAX);
    let cutoff = now_ns.saturating_sub(retention_ns);
    if cutoff <= i128::from(i64::MIN) {
        return None;
    }
    Some(i64::try_from(cutoff).unwrap_or(i64::MAX))
}
