//! Rows to compact batches and back.
//!
//! # Encoding
//!
//! ```text
//! RowKey  id -> (table, tags)            defined once per stream
//! Series  id -> (row key id, field, kind) defined once per stream
//! Batch   sequence, base_ts, [defs the stream has not seen], groups
//! Group   ts_delta (ns since the previous group, the first since base_ts)
//!         series_delta: ids as differences from the previous id (first from 0)
//!         ints:  INT series values, in order         (varints)
//!         milli: FLOAT series values * 1000, in order (zigzag varints)
//!         wide:  floats beyond +-1e12, in order of use (milli holds i64::MIN)
//!         texts: TEXT series values, in order: indices into Batch.strings
//! Batch.strings: the batch's distinct text values, each once
//! ```
//!
//! # Text values and older reporters
//!
//! A reporter announces in `Welcome.accepts_text` that it stores text. A
//! reporter from before text values ends a stream on a series kind it does
//! not know, so [`StreamSent::for_reporter`]`(false)` leaves text fields out
//! of every wire batch and counts them ([`StreamSent::dropped_texts`]). The
//! stored (complete) batches keep them: a resend to a newer reporter carries
//! them. A new reporter decodes batches of old gatherers unchanged (no text
//! series, no strings). Decoding bounds each text to
//! [`crate::row::MAX_TEXT_BYTES`] and a batch's decoded text to
//! [`MAX_BATCH_TEXT_BYTES`] (a string referenced many times must not
//! multiply memory).
//!
//! A gatherer assigns ids in first-seen order and lists each row's fields
//! together, so a cycle's ids are mostly consecutive (deltas of 1) and all
//! fields of one row key are adjacent. Floats were rounded to thousandths when
//! the row was built ([`crate::row::Row::float`]), so `milli` is exact.
//!
//! # Who holds what
//!
//! - [`Dictionary`] (gatherer): interns row keys and series for the life of
//!   the process and encodes rows into *compact* batches (no definitions).
//!   [`Dictionary::complete`] adds every definition a batch uses (the
//!   self-contained form written to disk); [`Dictionary::adopt`] maps a
//!   self-contained batch from a previous process into this dictionary's ids.
//! - [`StreamSent`] (gatherer, one per stream): which definitions the current
//!   stream has carried; [`StreamSent::wire_batch`] adds the missing ones.
//! - [`StreamDefs`] (reporter, one per stream): the definitions received so
//!   far; [`StreamDefs::decode`] validates a batch completely and expands it
//!   into rows. Input is untrusted: every id, count and timestamp is checked,
//!   and the number of definitions per stream is capped.

use std::collections::HashMap;
use std::sync::Arc;

mod fx;

use crate::pb;
use crate::row::{MILLI_LIMIT, Row, Value, bound_text};

/// Largest series id: a group's first id is a `sint32` difference from 0.
pub const MAX_SERIES_ID: u32 = i32::MAX as u32;

/// `milli` marker: the value is the next entry of `wide`.
pub const WIDE_MARKER: i64 = i64::MIN;

/// Most text bytes one decoded batch may hold (each reference to a string
/// counts its length): 16 MiB, two thousand maximal texts.
pub const MAX_BATCH_TEXT_BYTES: usize = 16 << 20;

/// Why a batch could not be decoded. Every variant means the sender is broken
/// or hostile; the reporter ends the stream with INVALID_ARGUMENT (or
/// RESOURCE_EXHAUSTED for [`CodecError::TooManyDefinitions`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A group lists a series id never defined on this stream.
    #[error("series id {0} is not defined on this stream")]
    UnknownSeries(u32),
    /// A series definition names a row key never defined on this stream.
    #[error("series {series} refers to row key {row_key}, which is not defined")]
    UnknownRowKey {
        /// The series being defined.
        series: u32,
        /// The missing row key.
        row_key: u32,
    },
    /// A definition reuses an id with different content.
    #[error("{what} id {id} is redefined with different content")]
    Redefined {
        /// "row key" or "series".
        what: &'static str,
        /// The id.
        id: u32,
    },
    /// A series definition has no valid value kind.
    #[error("series {0} has no valid value kind")]
    BadKind(u32),
    /// A row key has an empty table name, or a series an empty field name.
    #[error("{0} has an empty name")]
    EmptyName(&'static str),
    /// A series id difference leaves the 32-bit id range.
    #[error("series id out of range in group {0}")]
    IdOutOfRange(usize),
    /// A group has fewer values of a kind than series of that kind.
    #[error("group {0} has fewer values than series")]
    MissingValues(usize),
    /// A group has more values of a kind than series of that kind.
    #[error("group {0} has more values than series")]
    ExtraValues(usize),
    /// Timestamps overflow 64 bits.
    #[error("timestamp overflow in group {0}")]
    TimestampOverflow(usize),
    /// A series id at or above 2^31: groups code ids as `sint32` differences
    /// starting from 0, so such a series could never start a group.
    #[error("series id {0} is not below 2^31 (group ids are sint32 differences from 0)")]
    SeriesIdTooLarge(u32),
    /// A group's text value points past the batch's strings.
    #[error("group {group} refers to string {index}, but the batch has {len}")]
    UnknownString {
        /// The group.
        group: usize,
        /// The index.
        index: u32,
        /// Strings in the batch.
        len: usize,
    },
    /// The batch's texts, counted once per reference, exceed
    /// [`MAX_BATCH_TEXT_BYTES`].
    #[error("the batch's text values exceed {MAX_BATCH_TEXT_BYTES} bytes")]
    TooMuchText,
    /// The stream defined more row keys or series than the reporter allows.
    #[error("more than {0} definitions on one stream")]
    TooManyDefinitions(usize),
}

/// A value kind as the codec uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Int,
    Float,
    Text,
}

impl Kind {
    fn of(v: &Value) -> Kind {
        match v {
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Text(_) => Kind::Text,
        }
    }

    fn to_pb(self) -> i32 {
        match self {
            Kind::Int => pb::ValueKind::Int as i32,
            Kind::Float => pb::ValueKind::Float as i32,
            Kind::Text => pb::ValueKind::Text as i32,
        }
    }

    fn from_pb(v: i32) -> Option<Kind> {
        match pb::ValueKind::try_from(v).ok()? {
            pb::ValueKind::Int => Some(Kind::Int),
            pb::ValueKind::Float => Some(Kind::Float),
            pb::ValueKind::Text => Some(Kind::Text),
            pb::ValueKind::Unspecified => None,
        }
    }

    fn slot(self) -> usize {
        match self {
            Kind::Int => 0,
            Kind::Float => 1,
            Kind::Text => 2,
        }
    }
}

/// Fields of one row key: field name -> series id per kind.
#[derive(Default)]
struct FieldIds(HashMap<Box<str>, [Option<u32>; 3], fx::FxBuildHasher>);

/// The gatherer's interning of row keys and series (ids never reused).
#[derive(Default)]
pub struct Dictionary {
    key_ids: HashMap<String, u32, fx::FxBuildHasher>,
    row_keys: Vec<pb::RowKey>,
    fields: Vec<FieldIds>,
    series: Vec<pb::Series>,
    lookup: String,
}

impl Dictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of series defined so far.
    pub fn series_len(&self) -> usize {
        self.series.len()
    }

    fn row_key_id<'a>(
        &mut self,
        table: &str,
        tags: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> u32 {
        self.lookup.clear();
        self.lookup.push_str(table);
        for (k, v) in tags.clone() {
            self.lookup.push('\0');
            self.lookup.push_str(k);
            self.lookup.push('\0');
            self.lookup.push_str(v);
        }
        if let Some(&id) = self.key_ids.get(self.lookup.as_str()) {
            return id;
        }
        let id = self.row_keys.len() as u32;
        self.row_keys.push(pb::RowKey {
            id,
            table: table.to_string(),
            tags: tags
                .map(|(k, v)| pb::Tag {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        });
        self.fields.push(FieldIds::default());
        self.key_ids.insert(self.lookup.clone(), id);
        id
    }

    fn series_id(&mut self, row_key: u32, field: &str, kind: Kind) -> u32 {
        let slot = kind.slot();
        let fields = &mut self.fields[row_key as usize].0;
        if let Some(Some(id)) = fields.get(field).map(|ids| ids[slot]) {
            return id;
        }
        let id = self.series.len() as u32;
        fields.entry(field.into()).or_default()[slot] = Some(id);
        self.series.push(pb::Series {
            id,
            row_key,
            field: field.to_string(),
            kind: kind.to_pb(),
        });
        id
    }

    /// Encodes rows (in order; rows sharing a timestamp form one group) into
    /// a compact batch: no definitions, which [`StreamSent::wire_batch`] or
    /// [`Dictionary::complete`] add.
    pub fn encode(
        &mut self,
        sequence: u64,
        rows: &[Row],
        labels: &[(String, String)],
    ) -> pb::Batch {
        let mut batch = pb::Batch {
            sequence,
            base_ts: rows.first().map_or(0, |r| r.ts),
            ..Default::default()
        };
        let mut prev_ts = batch.base_ts;
        let mut prev_id: i64 = 0;
        let mut strings: HashMap<&str, u32> = HashMap::new();
        for row in rows {
            if batch.groups.is_empty() || row.ts != prev_ts {
                batch.groups.push(pb::Group {
                    ts_delta: row.ts.wrapping_sub(prev_ts),
                    ..Default::default()
                });
                prev_ts = row.ts;
                prev_id = 0;
            }
            let tags = row
                .tags
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .chain(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let key = self.row_key_id(row.table, tags);
            for (field, value) in &row.fields {
                let id = self.series_id(key, field, Kind::of(value));
                let group = batch.groups.last_mut().expect("a group was pushed above");
                group.series_delta.push((i64::from(id) - prev_id) as i32);
                prev_id = i64::from(id);
                match value {
                    Value::Int(v) => group.ints.push(*v),
                    Value::Float(v) => push_float(group, *v),
                    Value::Text(t) => {
                        let next = strings.len() as u32;
                        let index = *strings.entry(t.as_str()).or_insert_with(|| {
                            batch.strings.push(t.clone());
                            next
                        });
                        group.texts.push(index);
                    }
                }
            }
        }
        batch
    }

    /// A copy of `batch` carrying the definition of every row key and series
    /// it uses: decodable by a fresh [`StreamDefs`], and by [`Dictionary::adopt`]
    /// in a later process.
    pub fn complete(&self, batch: &pb::Batch) -> pb::Batch {
        let mut out = batch.clone();
        out.row_keys.clear();
        out.series.clear();
        let mut keys_seen = vec![false; self.row_keys.len()];
        let mut series_seen = vec![false; self.series.len()];
        for id in series_ids(batch) {
            let Some(def) = self.series.get(id as usize) else {
                continue;
            };
            if std::mem::replace(&mut series_seen[id as usize], true) {
                continue;
            }
            if !std::mem::replace(&mut keys_seen[def.row_key as usize], true) {
                out.row_keys
                    .push(self.row_keys[def.row_key as usize].clone());
            }
            out.series.push(def.clone());
        }
        out
    }

    /// Maps a self-contained batch (from [`Dictionary::complete`], possibly
    /// written by an earlier process with other ids) into this dictionary's
    /// ids, returning the compact batch.
    pub fn adopt(&mut self, batch: &pb::Batch) -> Result<pb::Batch, CodecError> {
        let mut defs = StreamDefs::new(usize::MAX);
        defs.define(batch)?;
        let mut out = pb::Batch {
            sequence: batch.sequence,
            base_ts: batch.base_ts,
            strings: batch.strings.clone(),
            ..Default::default()
        };
        for (gi, group) in batch.groups.iter().enumerate() {
            let mut new = pb::Group {
                ts_delta: group.ts_delta,
                ints: group.ints.clone(),
                milli: group.milli.clone(),
                wide: group.wide.clone(),
                texts: group.texts.clone(),
                ..Default::default()
            };
            let mut prev_old: i64 = 0;
            let mut prev_new: i64 = 0;
            for &delta in &group.series_delta {
                let old = next_id(&mut prev_old, delta).ok_or(CodecError::IdOutOfRange(gi))?;
                let def = defs
                    .series
                    .get(&old)
                    .ok_or(CodecError::UnknownSeries(old))?;
                let tags = def.key.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let key = self.row_key_id(&def.key.table, tags);
                let id = self.series_id(key, &def.field, def.kind);
                new.series_delta.push((i64::from(id) - prev_new) as i32);
                prev_new = i64::from(id);
            }
            out.groups.push(new);
        }
        Ok(out)
    }
}

fn push_float(group: &mut pb::Group, v: f64) {
    if v.abs() < MILLI_LIMIT {
        group.milli.push((v * 1000.0).round() as i64);
    } else {
        group.milli.push(WIDE_MARKER);
        group.wide.push(v);
    }
}

/// Applies a delta to the previous id; `None` outside the u32 range.
fn next_id(prev: &mut i64, delta: i32) -> Option<u32> {
    let id = *prev + i64::from(delta);
    *prev = id;
    u32::try_from(id).ok()
}

/// The series ids a batch uses, in order (ids out of range are skipped; the
/// decoder reports them).
fn series_ids(batch: &pb::Batch) -> impl Iterator<Item = u32> + '_ {
    batch.groups.iter().flat_map(|g| {
        let mut prev = 0i64;
        g.series_delta
            .iter()
            .filter_map(move |&d| next_id(&mut prev, d))
    })
}

/// Which definitions the current stream has carried (gatherer side).
pub struct StreamSent {
    row_keys: Vec<bool>,
    series: Vec<bool>,
    accepts_text: bool,
    dropped_texts: u64,
}

impl Default for StreamSent {
    fn default() -> Self {
        StreamSent::for_reporter(true)
    }
}

impl StreamSent {
    /// A new stream to a reporter that stores text: nothing carried yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new stream to a reporter whose Welcome said whether it stores text
    /// (`Welcome.accepts_text`). Without it, wire batches leave text fields
    /// out (counted in [`StreamSent::dropped_texts`]).
    pub fn for_reporter(accepts_text: bool) -> Self {
        StreamSent {
            row_keys: Vec::new(),
            series: Vec::new(),
            accepts_text,
            dropped_texts: 0,
        }
    }

    /// Text values left out of this stream's batches because the reporter
    /// does not store text.
    pub fn dropped_texts(&self) -> u64 {
        self.dropped_texts
    }

    /// `batch` (compact) plus the definitions this stream has not carried yet;
    /// they are then marked carried.
    pub fn wire_batch(&mut self, dict: &Dictionary, batch: &pb::Batch) -> pb::Batch {
        if !self.accepts_text && !batch.strings.is_empty() {
            let (stripped, dropped) = without_text(dict, batch);
            self.dropped_texts += dropped;
            return self.with_definitions(dict, &stripped);
        }
        self.with_definitions(dict, batch)
    }

    fn with_definitions(&mut self, dict: &Dictionary, batch: &pb::Batch) -> pb::Batch {
        let mut out = batch.clone();
        out.row_keys.clear();
        out.series.clear();
        self.row_keys.resize(dict.row_keys.len(), false);
        self.series.resize(dict.series.len(), false);
        for id in series_ids(batch) {
            let Some(def) = dict.series.get(id as usize) else {
                continue;
            };
            if std::mem::replace(&mut self.series[id as usize], true) {
                continue;
            }
            if !std::mem::replace(&mut self.row_keys[def.row_key as usize], true) {
                out.row_keys
                    .push(dict.row_keys[def.row_key as usize].clone());
            }
            out.series.push(def.clone());
        }
        out
    }
}

/// `batch` (compact) without its text values, and how many it had: what an
/// older reporter can decode.
fn without_text(dict: &Dictionary, batch: &pb::Batch) -> (pb::Batch, u64) {
    let text_kind = Kind::Text.to_pb();
    let mut dropped = 0;
    let mut out = pb::Batch {
        sequence: batch.sequence,
        base_ts: batch.base_ts,
        ..Default::default()
    };
    for group in &batch.groups {
        let mut new = pb::Group {
            ts_delta: group.ts_delta,
            ints: group.ints.clone(),
            milli: group.milli.clone(),
            wide: group.wide.clone(),
            ..Default::default()
        };
        let (mut prev_old, mut prev_new) = (0i64, 0i64);
        for &delta in &group.series_delta {
            let Some(id) = next_id(&mut prev_old, delta) else {
                continue;
            };
            if dict
                .series
                .get(id as usize)
                .is_some_and(|s| s.kind == text_kind)
            {
                dropped += 1;
                continue;
            }
            new.series_delta.push((i64::from(id) - prev_new) as i32);
            prev_new = i64::from(id);
        }
        out.groups.push(new);
    }
    (out, dropped)
}

/// A row key as the reporter holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKeyDef {
    /// Table name.
    pub table: String,
    /// Tags in order.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct SeriesDef {
    key_id: u32,
    key: Arc<RowKeyDef>,
    field: Arc<str>,
    kind: Kind,
}

/// A decoded row.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRow {
    /// Table and tags.
    pub key: Arc<RowKeyDef>,
    /// Unix nanoseconds.
    pub ts: i64,
    /// Field names and values.
    pub fields: Vec<(Arc<str>, Value)>,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// The batch's sequence.
    pub sequence: u64,
    /// Its rows, in order.
    pub rows: Vec<DecodedRow>,
    /// Number of samples (field values).
    pub samples: usize,
}

/// The definitions one stream has carried (reporter side).
pub struct StreamDefs {
    row_keys: HashMap<u32, Arc<RowKeyDef>>,
    series: HashMap<u32, SeriesDef>,
    limit: usize,
}

impl StreamDefs {
    /// An empty set allowing at most `limit` row keys plus series.
    pub fn new(limit: usize) -> Self {
        StreamDefs {
            row_keys: HashMap::new(),
            series: HashMap::new(),
            limit,
        }
    }

    /// Number of definitions held.
    pub fn len(&self) -> usize {
        self.row_keys.len() + self.series.len()
    }

    /// Whether no definition is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn define(&mut self, batch: &pb::Batch) -> Result<(), CodecError> {
        for rk in &batch.row_keys {
            if rk.table.is_empty() {
                return Err(CodecError::EmptyName("row key table"));
            }
            let def = RowKeyDef {
                table: rk.table.clone(),
                tags: rk
                    .tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect(),
            };
            match self.row_keys.get(&rk.id) {
                Some(existing) if **existing != def => {
                    return Err(CodecError::Redefined {
                        what: "row key",
                        id: rk.id,
                    });
                }
                Some(_) => {}
                None => {
                    if self.len() >= self.limit {
                        return Err(CodecError::TooManyDefinitions(self.limit));
                    }
                    self.row_keys.insert(rk.id, Arc::new(def));
                }
            }
        }
        for s in &batch.series {
            if s.id > MAX_SERIES_ID {
                return Err(CodecError::SeriesIdTooLarge(s.id));
            }
            let kind = Kind::from_pb(s.kind).ok_or(CodecError::BadKind(s.id))?;
            if s.field.is_empty() {
                return Err(CodecError::EmptyName("series field"));
            }
            let key = self
                .row_keys
                .get(&s.row_key)
                .ok_or(CodecError::UnknownRowKey {
                    series: s.id,
                    row_key: s.row_key,
                })?;
            match self.series.get(&s.id) {
                Some(e) if e.key_id != s.row_key || *e.field != *s.field || e.kind != kind => {
                    return Err(CodecError::Redefined {
                        what: "series",
                        id: s.id,
                    });
                }
                Some(_) => {}
                None => {
                    if self.len() >= self.limit {
                        return Err(CodecError::TooManyDefinitions(self.limit));
                    }
                    let def = SeriesDef {
                        key_id: s.row_key,
                        key: Arc::clone(key),
                        field: Arc::from(s.field.as_str()),
                        kind,
                    };
                    self.series.insert(s.id, def);
                }
            }
        }
        Ok(())
    }

    /// Takes the batch's definitions, then validates and expands its groups.
    /// Adjacent samples of one row key in a group form one row. On error the
    /// definitions taken so far stay (the stream is ended anyway).
    pub fn decode(&mut self, batch: &pb::Batch) -> Result<DecodedBatch, CodecError> {
        self.define(batch)?;
        let mut rows: Vec<DecodedRow> = Vec::new();
        let mut samples = 0;
        let mut text_bytes = 0usize;
        let mut ts = batch.base_ts;
        for (gi, group) in batch.groups.iter().enumerate() {
            ts = ts
                .checked_add(group.ts_delta)
                .ok_or(CodecError::TimestampOverflow(gi))?;
            let (mut ints, mut milli, mut wide, mut texts) = (
                group.ints.iter(),
                group.milli.iter(),
                group.wide.iter(),
                group.texts.iter(),
            );
            let mut prev = 0i64;
            let mut current: Option<u32> = None;
            for &delta in &group.series_delta {
                let id = next_id(&mut prev, delta).ok_or(CodecError::IdOutOfRange(gi))?;
                let def = self.series.get(&id).ok_or(CodecError::UnknownSeries(id))?;
                let value =
                    match def.kind {
                        Kind::Int => Value::Int(*ints.next().ok_or(CodecError::MissingValues(gi))?),
                        Kind::Float => match *milli.next().ok_or(CodecError::MissingValues(gi))? {
                            WIDE_MARKER => {
                                Value::Float(*wide.next().ok_or(CodecError::MissingValues(gi))?)
                            }
                            m => Value::Float(m as f64 / 1000.0),
                        },
                        Kind::Text => {
                            let index = *texts.next().ok_or(CodecError::MissingValues(gi))?;
                            let text = batch.strings.get(index as usize).ok_or(
                                CodecError::UnknownString {
                                    group: gi,
                                    index,
                                    len: batch.strings.len(),
                                },
                            )?;
                            text_bytes += text.len();
                            if text_bytes > MAX_BATCH_TEXT_BYTES {
                                return Err(CodecError::TooMuchText);
                            }
                            let mut text = text.clone();
                            bound_text(&mut text);
                            Value::Text(text)
                        }
                    };
                if current != Some(def.key_id) {
                    rows.push(DecodedRow {
                        key: Arc::clone(&def.key),
                        ts,
                        fields: Vec::new(),
                    });
                    current = Some(def.key_id);
                }
                if let Some(row) = rows.last_mut() {
                    row.fields.push((Arc::clone(&def.field), value));
                }
                samples += 1;
            }
            if ints.next().is_some()
                || milli.next().is_some()
                || wide.next().is_some()
                || texts.next().is_some()
            {
                return Err(CodecError::ExtraValues(gi));
            }
        }
        Ok(DecodedBatch {
            sequence: batch.sequence,
            rows,
            samples,
        })
    }

    /// A copy of `batch` carrying every definition it uses, from this
    /// stream's definitions: what a reporter stores, so the stored batch
    /// decodes on its own after a restart. Call after [`StreamDefs::decode`]
    /// succeeded on it.
    pub fn complete(&self, batch: &pb::Batch) -> pb::Batch {
        let mut out = batch.clone();
        out.row_keys.clear();
        out.series.clear();
        // Sorted and deduplicated once: a cycle uses hundreds of series, and a
        // linear `contains` per series made this quadratic.
        let mut ids: Vec<u32> = series_ids(batch).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut keys: Vec<u32> = Vec::new();
        for id in ids {
            let Some(def) = self.series.get(&id) else {
                continue;
            };
            if keys.last() != Some(&def.key_id) && !keys.contains(&def.key_id) {
                keys.push(def.key_id);
                out.row_keys.push(pb::RowKey {
                    id: def.key_id,
                    table: def.key.table.clone(),
                    tags: def
                        .key
                        .tags
                        .iter()
                        .map(|(k, v)| pb::Tag {
                            key: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                });
            }
            out.series.push(pb::Series {
                id,
                row_key: def.key_id,
                field: String::from(&*def.field),
                kind: def.kind.to_pb(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
