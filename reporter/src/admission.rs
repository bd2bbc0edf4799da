//! What the reporter accepts in a batch, decided before it is acknowledged.
//!
//! ```text
//! Batch ──► normalise (tag values, integers) ──► decode ──► check rows ──► window ──► intake (spool) ──► Ack
//!                                                             │ refuse          │ drop groups,
//!                                                             ▼ INVALID_ARGUMENT ▼ count, tell in Ack
//! ```
//!
//! The rules themselves live in [`hostpulse_proto::rules`], which the stores
//! apply again when they write: a batch that passes here is a batch every
//! store takes, so nothing acknowledged is refused later. Three outcomes:
//!
//! - **Refused** (INVALID_ARGUMENT naming the batch, the row's table and tags,
//!   and the rule; nothing of the batch is acknowledged or stored): a name
//!   breaking the rules, too many tags or fields, a NaN or infinite float, a
//!   table outside the namespace (the gatherer families, [`SELF_TABLE`] with
//!   `component=gatherer`, and `--custom-tables`). These come from a sender's
//!   code or configuration, never from the data: a hostpulse gatherer cannot
//!   produce them (its labels are checked at start, and a test runs every
//!   family through the rules), so refusing tells the one who can fix it.
//! - **Normalised** (stored changed, counted): tag values (control characters
//!   escaped, cut to 1024 bytes) and integers above `i64::MAX` (stored as
//!   `i64::MAX`), rewritten in the batch itself so that the spool, every
//!   store and `Admin.Tail` see the same value.
//! - **Dropped** (the rest of the batch stored and acknowledged; counted,
//!   logged, and told to the gatherer in `Ack.dropped_samples` and
//!   `Ack.dropped_reason`): groups whose timestamp is older than
//!   `--max-sample-age` or further ahead than `--max-clock-skew`. A wrong
//!   clock is a fact of the host, not a defect of the sender: refusing the
//!   batch would block the gatherer's buffer (it resends a refused batch
//!   forever) and lose everything after it, while dropping keeps every good
//!   sample flowing and the gatherer logs what was dropped and why.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_ops::metrics::{Counter, Exposition, Kind};
use hostpulse_proto::codec::{DecodedBatch, DecodedRow};
use hostpulse_proto::pb;
use hostpulse_proto::row::Value;
use hostpulse_proto::rules::{self, SELF_COMPONENT_TAG, SELF_TABLE, shown};
use tonic::Status;

/// How long between two warnings about dropped samples (the counter counts
/// every one).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the operator configured.
#[derive(Debug, Clone)]
pub struct AdmissionOptions {
    /// Oldest sample accepted, relative to the reporter's clock.
    pub max_sample_age: Duration,
    /// Furthest a sample may be ahead of the reporter's clock.
    pub max_clock_skew: Duration,
    /// Tables accepted besides the gatherer families and [`SELF_TABLE`].
    pub custom_tables: Vec<String>,
}

impl Default for AdmissionOptions {
    fn default() -> Self {
        AdmissionOptions {
            max_sample_age: Duration::from_secs(30 * 86_400),
            max_clock_skew: Duration::from_secs(600),
            custom_tables: Vec::new(),
        }
    }
}

/// The tables of `--custom-tables`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomTables(pub Vec<String>);

/// Parses `--custom-tables`: comma-separated table names, each checked
/// against the rules and not a gatherer family.
pub fn parse_custom_tables(list: &str) -> Result<CustomTables, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        rules::check_table(name).map_err(|e| e.to_string())?;
        if name == SELF_TABLE
            || name == hostpulse_proto::NODE_EVENTS_TABLE
            || hostpulse_proto::FAMILIES.contains(&name)
        {
            return Err(format!(
                "{name:?} is a hostpulse table already; list only custom ones"
            ));
        }
        if !out.iter().any(|t| t == name) {
            out.push(name.to_string());
        }
    }
    Ok(CustomTables(out))
}

/// What [`Admission::window`] dropped from one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Samples dropped.
    pub samples: u64,
    /// The first dropped timestamp and the bound it broke (empty when none).
    pub reason: String,
}

/// The admission policy and its counters (shared by every stream).
#[derive(Debug)]
pub struct Admission {
    tables: HashSet<String>,
    custom: Vec<String>,
    options: AdmissionOptions,
    /// Samples dropped for their timestamp.
    pub dropped_samples: Counter,
    /// Integer values stored as `i64::MAX`.
    pub clamped_ints: Counter,
    /// Tag values escaped or cut.
    pub normalised_tag_values: Counter,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Unix seconds of the last warning about dropped samples, and the
    /// samples dropped since.
    last_warning: AtomicU64,
    unwarned: AtomicU64,
}

impl Admission {
    /// The policy for `options`.
    pub fn new(options: AdmissionOptions) -> Self {
        let mut tables: HashSet<String> = hostpulse_proto::FAMILIES
            .iter()
            .map(|t| t.to_string())
            .collect();
        tables.insert(SELF_TABLE.to_string());
        tables.insert(hostpulse_proto::NODE_EVENTS_TABLE.to_string());
        tables.extend(options.custom_tables.iter().cloned());
        Admission {
            tables,
            custom: options.custom_tables.clone(),
            options,
            dropped_samples: Counter::default(),
            clamped_ints: Counter::default(),
            normalised_tag_values: Counter::default(),
            refused: Mutex::new(BTreeMap::new()),
            last_warning: AtomicU64::new(0),
            unwarned: AtomicU64::new(0),
        }
    }

    /// Rewrites what is stored differently from what was sent, in the batch
    /// itself (before decoding, so every later reader sees the same): tag
    /// values of the batch's row key definitions, integers above `i64::MAX`.
    pub fn normalise(&self, batch: &mut pb::Batch) {
        for key in &mut batch.row_keys {
            for tag in &mut key.tags {
                if rules::normalise_tag_value(&mut tag.value) {
                    self.normalised_tag_values.inc();
                }
            }
        }
        for group in &mut batch.groups {
            for v in &mut group.ints {
                if *v > i64::MAX as u64 {
                    *v = i64::MAX as u64;
                    self.clamped_ints.inc();
                }
            }
        }
    }

    /// Refuses a decoded batch with a row breaking the rules or outside the
    /// namespace: INVALID_ARGUMENT naming the batch, the row and the rule.
    pub fn check(&self, batch: &DecodedBatch) -> Result<(), Status> {
        for (i, row) in batch.rows.iter().enumerate() {
            if let Err((rule, why)) = self.check_row(row) {
                *self
                    .refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(rule)
                    .or_default() += 1;
                return Err(Status::invalid_argument(format!(
                    "batch {} refused: row {i} ({}): {why}",
                    batch.sequence,
                    describe(row)
                )));
            }
        }
        Ok(())
    }

    fn check_row(&self, row: &DecodedRow) -> Result<(), (&'static str, String)> {
        let table = row.key.table.as_str();
        let tags = &row.key.tags;
        rules::check_row(
            table,
            tags.iter().map(|(k, _)| k.as_str()),
            row.fields.iter().map(|(f, _)| &**f),
        )
        .map_err(|e| ("names", e.to_string()))?;
        if !self.tables.contains(table) {
            let custom = if self.custom.is_empty() {
                "none".to_string()
            } else {
                self.custom.join(",")
            };
            return Err((
                "table",
                format!(
                    "table {} is not accepted here: gatherers may write the hostpulse families, \
                     {SELF_TABLE} (component=gatherer) and the reporter's --custom-tables ({custom})",
                    shown(table)
                ),
            ));
        }
        if table == SELF_TABLE {
            let component = tags
                .iter()
                .find(|(k, _)| k == SELF_COMPONENT_TAG)
                .map(|(_, v)| v.as_str());
            if component != Some("gatherer") {
                return Err((
                    "self_component",
                    format!(
                        "{SELF_TABLE} rows from a stream must have tag component=\"gatherer\" \
                         (component={} is kept for reporters)",
                        component.map_or_else(|| "(none)".to_string(), shown)
                    ),
                ));
            }
        }
        for (field, value) in &row.fields {
            if let Value::Float(v) = *value {
                rules::check_float(field, v).map_err(|e| ("non_finite", e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Drops the groups (from the batch to store) and rows (from the decoded
    /// batch) whose timestamp is outside the window around `now`.
    pub fn window(
        &self,
        batch: &mut pb::Batch,
        decoded: &mut DecodedBatch,
        now: SystemTime,
    ) -> Dropped {
        let now_ns = unix_ns(now);
        let oldest = now_ns.saturating_sub(nanos(self.options.max_sample_age));
        let newest = now_ns.saturating_add(nanos(self.options.max_clock_skew));
        let outside = |ts: i64| ts < oldest || ts > newest;
        let mut stamps = Vec::with_capacity(batch.groups.len());
        let mut ts = batch.base_ts;
        for group in &batch.groups {
            // The decoder checked that these additions do not overflow.
            ts = ts.wrapping_add(group.ts_delta);
            stamps.push(ts);
        }
        let Some(first_out) = stamps.iter().copied().find(|&t| outside(t)) else {
            return Dropped::default();
        };
        let mut dropped = 0u64;
        let mut kept = Vec::with_capacity(batch.groups.len());
        let mut prev: Option<i64> = None;
        for (mut group, ts) in std::mem::take(&mut batch.groups).into_iter().zip(stamps) {
            if outside(ts) {
                dropped += group.series_delta.len() as u64;
                continue;
            }
            // Both ends are inside the window: the difference fits.
            group.ts_delta = match prev {
                None => {
                    batch.base_ts = ts;
                    0
                }
                Some(p) => ts - p,
            };
            prev = Some(ts);
            kept.push(group);
        }
        batch.groups = kept;
        decoded.rows.retain(|r| !outside(r.ts));
        decoded.samples = decoded.samples.saturating_sub(dropped as usize);
        self.dropped_samples.add(dropped);
        let reason = if first_out < oldest {
            format!(
                "timestamp {} is older than --max-sample-age ({}) before the reporter's clock ({})",
                show_ts(first_out),
                humantime::format_duration(self.options.max_sample_age),
                show_ts(now_ns)
            )
        } else {
            format!(
                "timestamp {} is more than --max-clock-skew ({}) ahead of the reporter's clock ({})",
                show_ts(first_out),
                humantime::format_duration(self.options.max_clock_skew),
                show_ts(now_ns)
            )
        };
        self.warn_dropped(batch.sequence, dropped, &reason);
        Dropped {
            samples: dropped,
            reason,
        }
    }

    /// Warns at most once per [`WARN_EVERY`] across all streams.
    fn warn_dropped(&self, sequence: u64, dropped: u64, reason: &str) {
        let since = self.unwarned.fetch_add(dropped, Ordering::Relaxed) + dropped;
        let now = unix_ns(SystemTime::now()).max(0) as u64 / 1_000_000_000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + WARN_EVERY.as_secs()
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unwarned.store(0, Ordering::Relaxed);
            tracing::warn!(
                batch = sequence,
                dropped_samples = dropped,
                dropped_since_last_warning = since,
                reason,
                "samples outside the accepted time window dropped (the rest of the batch is stored); \
                 check the sender's clock"
            );
        }
    }

    /// Writes the counters to `/metrics`.
    pub fn write_metrics(&self, page: &mut Exposition) {
        page.single(
            "hostpulse_reporter_dropped_samples_total",
            Kind::Counter,
            "Samples acknowledged but not stored: their timestamp was outside \
             --max-sample-age / --max-clock-skew.",
            self.dropped_samples.get() as f64,
        );
        page.family(
            "hostpulse_reporter_normalised_values_total",
            Kind::Counter,
            "Values stored changed: tag values escaped or cut, integers above 2^63-1 stored as 2^63-1.",
        );
        page.sample(
            "hostpulse_reporter_normalised_values_total",
            &[("what", "tag_value")],
            self.normalised_tag_values.get() as f64,
        );
        page.sample(
            "hostpulse_reporter_normalised_values_total",
            &[("what", "int_clamped")],
            self.clamped_ints.get() as f64,
        );
        page.family(
            "hostpulse_reporter_refused_batches_total",
            Kind::Counter,
            "Batches refused with INVALID_ARGUMENT for a row breaking a rule, by rule.",
        );
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        for rule in ["names", "table", "self_component", "non_finite"] {
            let n = refused.get(rule).copied().unwrap_or(0);
            page.sample(
                "hostpulse_reporter_refused_batches_total",
                &[("rule", rule)],
                n as f64,
            );
        }
    }
}

/// `table "cpu", tags {cpu="0", region="eu"}` (at most 8 tags shown).
fn describe(row: &DecodedRow) -> String {
    let mut out = format!("table {}, tags {{", shown(&row.key.table));
    for (i, (k, v)) in row.key.tags.iter().take(8).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{}={}", shown(k).trim_matches('"'), shown(v)));
    }
    if row.key.tags.len() > 8 {
        out.push_str(&format!(", … {} tags in all", row.key.tags.len()));
    }
    out.push('}');
    out
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => nanos(d),
        Err(e) => -nanos(e.duration()),
    }
}

/// A timestamp for a message: nanoseconds, and the date when it has one.
fn show_ts(ns: i64) -> String {
    let date = u64::try_from(ns)
        .ok()
        .and_then(|n| UNIX_EPOCH.checked_add(Duration::from_nanos(n)))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string());
    match date {
        Some(d) => format!("{ns} ({d})"),
        None => ns.to_string(),
    }
}

#[cfg(test)]
mod tests;
