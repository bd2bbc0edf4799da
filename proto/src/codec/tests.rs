use proptest::prelude::*;

use super::*;

type Flat = Vec<(String, i64, Vec<(String, String)>, Vec<(String, Value)>)>;
type Sample = (String, i64, Vec<(String, String)>, String, Value);

fn cycle(ts: i64, user: f64, bytes: u64) -> Vec<Row> {
    vec![
        Row::from_parts(
            "cpu",
            ts,
            &[("cpu", "0")],
            &[
                ("user_percent", Value::Float(user)),
                ("user_seconds_total", Value::Float(44.5)),
            ],
        ),
        Row::from_parts(
            "cpu",
            ts,
            &[("cpu", "total")],
            &[("user_percent", Value::Float(user / 2.0))],
        ),
        Row::from_parts(
            "network",
            ts,
            &[("interface", "eth0")],
            &[
                ("rx_bytes_total", Value::Int(bytes)),
                ("rx_bytes_per_second", Value::Float(1e17)),
            ],
        ),
    ]
}

/// Rows with owned strings and labels appended, for comparisons.
fn flat_rows(rows: &[Row], labels: &[(String, String)]) -> Flat {
    rows.iter()
        .filter(|r| !r.fields.is_empty())
        .map(|r| {
            let mut tags: Vec<(String, String)> = r
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            tags.extend(labels.iter().cloned());
            let fields = r
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            (r.table.to_string(), r.ts, tags, fields)
        })
        .collect()
}

fn flat_decoded(b: &DecodedBatch) -> Flat {
    b.rows
        .iter()
        .map(|r| {
            let fields = r
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            (r.key.table.clone(), r.ts, r.key.tags.clone(), fields)
        })
        .collect()
}

/// One entry per sample: adjacent rows of one key and ts merge on decode.
fn samples(flat: Flat) -> Vec<Sample> {
    flat.into_iter()
        .flat_map(|(t, ts, tags, f)| {
            f.into_iter()
                .map(move |(k, v)| (t.clone(), ts, tags.clone(), k, v))
        })
        .collect()
}

#[test]
fn rows_round_trip_across_batches_of_one_stream() {
    let labels = vec![("region".to_string(), "eu".to_string())];
    let mut dict = Dictionary::new();
    let mut sent = StreamSent::new();
    let mut defs = StreamDefs::new(10_000);
    for (seq, ts) in [(1u64, 1_000i64), (2, 11_000)] {
        let rows = cycle(ts, 3.25, u64::MAX);
        let compact = dict.encode(seq, &rows, &labels);
        let wire = sent.wire_batch(&dict, &compact);
        if seq == 1 {
            assert_eq!((wire.row_keys.len(), wire.series.len()), (3, 5));
        } else {
            assert!(
                wire.row_keys.is_empty() && wire.series.is_empty(),
                "definitions travel once per stream"
            );
        }
        let decoded = defs.decode(&wire).unwrap();
        assert_eq!(decoded.sequence, seq);
        assert_eq!(decoded.samples, 5);
        assert_eq!(flat_decoded(&decoded), flat_rows(&rows, &labels));
    }
}

#[test]
fn a_resent_batch_on_a_new_stream_carries_its_definitions_again() {
    let mut dict = Dictionary::new();
    let mut first = StreamSent::new();
    let b1 = dict.encode(1, &cycle(1, 1.0, 1), &[]);
    let b2 = dict.encode(2, &cycle(2, 2.0, 2), &[]);
    first.wire_batch(&dict, &b1);
    // The stream broke before b2 was acknowledged: a new stream to another replica.
    let mut second = StreamSent::new();
    let mut replica = StreamDefs::new(100);
    let decoded = replica.decode(&second.wire_batch(&dict, &b2)).unwrap();
    assert_eq!(flat_decoded(&decoded), flat_rows(&cycle(2, 2.0, 2), &[]));
}

#[test]
fn complete_batches_decode_alone_and_adopt_into_a_new_process() {
    let mut old = Dictionary::new();
    old.encode(
        1,
        &[Row::from_parts(
            "load",
            5,
            &[],
            &[("load1", Value::Float(0.5))],
        )],
        &[],
    );
    let compact = old.encode(2, &cycle(7, 9.5, 42), &[]);
    let stored = old.complete(&compact);
    // A reporter reading it back from its spool.
    let decoded = StreamDefs::new(100).decode(&stored).unwrap();
    assert_eq!(flat_decoded(&decoded), flat_rows(&cycle(7, 9.5, 42), &[]));
    // A restarted gatherer whose dictionary already assigned other ids.
    let mut new = Dictionary::new();
    new.encode(
        3,
        &[Row::from_parts(
            "memory",
            1,
            &[],
            &[("free_bytes", Value::Int(1))],
        )],
        &[],
    );
    let adopted = new.adopt(&stored).unwrap();
    let wire = StreamSent::new().wire_batch(&new, &adopted);
    let decoded = StreamDefs::new(100).decode(&wire).unwrap();
    assert_eq!(flat_decoded(&decoded), flat_rows(&cycle(7, 9.5, 42), &[]));
    // And a reporter's own stored copy decodes alone too.
    let mut defs = StreamDefs::new(100);
    defs.decode(&wire).unwrap();
    let again = StreamDefs::new(100).decode(&defs.complete(&wire)).unwrap();
    assert_eq!(flat_decoded(&again), flat_rows(&cycle(7, 9.5, 42), &[]));
}

#[test]
fn groups_share_timestamps_and_delta_code_them() {
    let mut dict = Dictionary::new();
    let mut rows = cycle(1_000_000_000, 1.0, 1);
    rows.extend(cycle(1_010_000_000, 2.0, 2));
    let b = dict.encode(1, &rows, &[]);
    assert_eq!(b.groups.len(), 2);
    assert_eq!(b.base_ts, 1_000_000_000);
    assert_eq!(b.groups[1].ts_delta, 10_000_000);
    assert!(
        b.groups[1].series_delta.iter().skip(1).all(|&d| d == 1),
        "{:?}",
        b.groups[1].series_delta
    );
    let decoded = StreamDefs::new(100).decode(&dict.complete(&b)).unwrap();
    assert_eq!(decoded.rows.len(), 6);
}

#[test]
fn hostile_batches_are_rejected_precisely() {
    let mut dict = Dictionary::new();
    let compact = dict.encode(1, &cycle(1, 1.0, 1), &[]);
    let good = dict.complete(&compact);
    let check = |mutate: &dyn Fn(&mut pb::Batch), want: CodecError| {
        let mut b = good.clone();
        mutate(&mut b);
        assert_eq!(StreamDefs::new(100).decode(&b).unwrap_err(), want);
    };
    check(&|b| b.series.clear(), CodecError::UnknownSeries(0));
    check(
        &|b| b.row_keys.clear(),
        CodecError::UnknownRowKey {
            series: 0,
            row_key: 0,
        },
    );
    check(&|b| b.groups[0].ints.push(1), CodecError::ExtraValues(0));
    check(&|b| b.groups[0].milli.clear(), CodecError::MissingValues(0));
    check(
        &|b| b.groups[0].series_delta[0] = -1,
        CodecError::IdOutOfRange(0),
    );
    check(
        &|b| {
            let mut far = b.series[0].clone();
            far.id = 1 << 31;
            b.series.push(far);
        },
        CodecError::SeriesIdTooLarge(1 << 31),
    );
    check(&|b| b.series[0].kind = 0, CodecError::BadKind(0));
    check(&|b| b.series[0].kind = 99, CodecError::BadKind(0));
    check(
        &|b| {
            b.base_ts = i64::MAX;
            b.groups[0].ts_delta = 1;
        },
        CodecError::TimestampOverflow(0),
    );
    check(
        &|b| b.row_keys[0].table.clear(),
        CodecError::EmptyName("row key table"),
    );
    check(
        &|b| {
            let mut again = b.row_keys[0].clone();
            again.table = "other".into();
            b.row_keys.push(again);
        },
        CodecError::Redefined {
            what: "row key",
            id: 0,
        },
    );
    assert_eq!(
        StreamDefs::new(2).decode(&good).unwrap_err(),
        CodecError::TooManyDefinitions(2)
    );
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Int),
        (-1e15f64..1e15).prop_map(|v| Value::Float(crate::row::round_milli(v))),
        prop_oneof![Just(1e16), Just(-3.5e18), Just(f64::MAX)].prop_map(Value::Float),
        // Few distinct texts, so batches repeat them; control characters too.
        prop_oneof![
            Just(String::new()),
            "[a-c\n\u{1}é]{0,3}".prop_map(String::from)
        ]
        .prop_map(Value::Text),
    ]
}

fn arb_rows() -> impl Strategy<Value = Vec<Row>> {
    let tables = prop_oneof![Just("cpu"), Just("disk"), Just("network")];
    let fields = prop_oneof![Just("a_total"), Just("b_percent"), Just("c")];
    let one = (
        tables,
        0i64..3,
        "[a-z0-9 ]{0,4}",
        proptest::collection::vec((fields, arb_value()), 1..4),
    );
    proptest::collection::vec(one, 0..12).prop_map(|rows| {
        let mut ts = 1_700_000_000_000_000_000i64;
        rows.into_iter()
            .map(|(table, step, tag, mut fields)| {
                ts += step * 1_000_000_000;
                // A row lists each field once.
                fields.sort_by_key(|(f, _)| *f);
                fields.dedup_by_key(|(f, _)| *f);
                Row {
                    table,
                    ts,
                    tags: vec![("k", tag)],
                    fields,
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn any_rows_survive_encode_wire_decode(batches in proptest::collection::vec(arb_rows(), 1..4)) {
        let mut dict = Dictionary::new();
        let mut sent = StreamSent::new();
        let mut defs = StreamDefs::new(100_000);
        for (i, rows) in batches.iter().enumerate() {
            let b = dict.encode(i as u64 + 1, rows, &[]);
            let decoded = defs.decode(&sent.wire_batch(&dict, &b)).unwrap();
            prop_assert_eq!(samples(flat_decoded(&decoded)), samples(flat_rows(rows, &[])));
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(batch) = <pb::Batch as prost::Message>::decode(bytes.as_slice()) {
            let _ = StreamDefs::new(1000).decode(&batch);
            let _ = Dictionary::new().adopt(&batch);
        }
    }

    #[test]
    fn random_batches_never_panic_the_decoder(
        deltas in proptest::collection::vec(any::<i32>(), 0..20),
        ints in proptest::collection::vec(any::<u64>(), 0..5),
        milli in proptest::collection::vec(any::<i64>(), 0..5),
        base in any::<i64>(),
        ts_delta in any::<i64>(),
        kind in any::<i32>(),
        texts in proptest::collection::vec(0u32..3, 0..5),
    ) {
        let b = pb::Batch {
            sequence: 1,
            base_ts: base,
            row_keys: vec![pb::RowKey { id: 0, table: "t".into(), tags: vec![] }],
            series: vec![
                pb::Series { id: 0, row_key: 0, field: "f".into(), kind },
                pb::Series { id: 1, row_key: 0, field: "g".into(), kind: 2 },
            ],
            groups: vec![pb::Group { ts_delta, series_delta: deltas, ints, milli, wide: vec![], texts }],
            strings: vec!["x".into()],
        };
        let _ = StreamDefs::new(1000).decode(&b);
    }
}

/// The text fields of `rows`, and the rows without them (what a reporter
/// that does not store text receives).
fn without_texts(rows: &[Row]) -> (usize, Vec<Row>) {
    let mut n = 0;
    let numeric = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let before = r.fields.len();
            r.fields.retain(|(_, v)| v.as_text().is_none());
            n += before - r.fields.len();
            r
        })
        .collect();
    (n, numeric)
}

fn event(ts: i64, kind: &str, message: &str) -> Row {
    let mut row = Row::new("node_events", ts).tag("event", kind);
    row.text("message", message);
    row.int("sequence", 7);
    row
}

#[test]
fn texts_travel_once_per_batch_and_decode_bounded() {
    let mut dict = Dictionary::new();
    let rows = vec![
        event(1, "start", "gatherer started"),
        event(1, "spill", "same words"),
        event(2, "drop", "same words"),
    ];
    let b = dict.encode(1, &rows, &[]);
    assert_eq!(
        b.strings,
        vec!["gatherer started", "same words"],
        "each text once per batch"
    );
    let decoded = StreamDefs::new(100)
        .decode(&StreamSent::new().wire_batch(&dict, &b))
        .unwrap();
    assert_eq!(
        samples(flat_decoded(&decoded)),
        samples(flat_rows(&rows, &[]))
    );

    // A hostile sender's text over the bound is cut, never refused.
    let mut long = b.clone();
    long.strings[1] = "x".repeat(crate::row::MAX_TEXT_BYTES + 10);
    let decoded = StreamDefs::new(100).decode(&dict.complete(&long)).unwrap();
    let Value::Text(t) = &decoded.rows[1].fields[0].1 else {
        panic!("a text")
    };
    assert!(
        t.len() <= crate::row::MAX_TEXT_BYTES && t.contains("…[truncated "),
        "{}",
        t.len()
    );
}

#[test]
fn hostile_text_references_are_refused() {
    let mut dict = Dictionary::new();
    let compact = dict.encode(1, &[event(1, "start", "hi")], &[]);
    let b = dict.complete(&compact);
    let mut bad = b.clone();
    bad.groups[0].texts[0] = 5;
    assert_eq!(
        StreamDefs::new(100).decode(&bad).unwrap_err(),
        CodecError::UnknownString {
            group: 0,
            index: 5,
            len: 1
        }
    );
    let mut missing = b.clone();
    missing.groups[0].texts.clear();
    assert_eq!(
        StreamDefs::new(100).decode(&missing).unwrap_err(),
        CodecError::MissingValues(0)
    );
    let mut extra = b.clone();
    extra.groups[0].texts.push(0);
    assert_eq!(
        StreamDefs::new(100).decode(&extra).unwrap_err(),
        CodecError::ExtraValues(0)
    );
    // One 8 KiB string referenced thousands of times must not multiply memory.
    let mut amplified = b.clone();
    amplified.strings[0] = "x".repeat(crate::row::MAX_TEXT_BYTES);
    let text_series = amplified.series.iter().find(|s| s.kind == 3).unwrap().id;
    let int_series = amplified.series.iter().find(|s| s.kind == 1).unwrap().id;
    let group = &mut amplified.groups[0];
    group.series_delta.clear();
    group.ints.clear();
    group.texts.clear();
    let mut prev = 0i64;
    for _ in 0..(MAX_BATCH_TEXT_BYTES / crate::row::MAX_TEXT_BYTES + 1) {
        group
            .series_delta
            .push((i64::from(text_series) - prev) as i32);
        group
            .series_delta
            .push((i64::from(int_series) - i64::from(text_series)) as i32);
        prev = i64::from(int_series);
        group.texts.push(0);
        group.ints.push(1);
    }
    assert_eq!(
        StreamDefs::new(100).decode(&amplified).unwrap_err(),
        CodecError::TooMuchText
    );
}

#[test]
fn a_reporter_without_text_gets_the_numbers_and_the_gatherer_counts_the_rest() {
    let mut dict = Dictionary::new();
    let mut rows = cycle(1, 2.0, 3);
    rows.push(event(1, "start", "gatherer started"));
    let mut only_text = Row::new("node_events", 1).tag("event", "stop");
    only_text.text("message", "bye");
    rows.push(only_text);
    let b = dict.encode(1, &rows, &[]);
    let mut old = StreamSent::for_reporter(false);
    let wire = old.wire_batch(&dict, &b);
    assert_eq!(old.dropped_texts(), 2);
    // What a reporter from before text values understands: kinds 1 and 2,
    // no strings, no texts (unknown fields would be skipped, an unknown
    // kind ends the stream).
    assert!(
        wire.series.iter().all(|s| s.kind == 1 || s.kind == 2),
        "{:?}",
        wire.series
    );
    assert!(wire.strings.is_empty() && wire.groups.iter().all(|g| g.texts.is_empty()));
    let decoded = StreamDefs::new(100).decode(&wire).unwrap();
    let (dropped, numeric) = without_texts(&rows);
    assert_eq!(dropped, 2);
    assert_eq!(
        samples(flat_decoded(&decoded)),
        samples(flat_rows(&numeric, &[]))
    );
    // The batch kept on disk still has its texts, for a newer reporter.
    let kept = dict.complete(&b);
    let decoded = StreamDefs::new(100).decode(&kept).unwrap();
    assert_eq!(
        samples(flat_decoded(&decoded)),
        samples(flat_rows(&rows, &[]))
    );
}

/// The `Batch` and `Group` of hostpulse.proto before text values (fields 1-5):
/// what an old gatherer encodes.
mod old_wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Batch {
        #[prost(uint64, tag = "1")]
        pub(super) sequence: u64,
        #[prost(message, repeated, tag = "2")]
        pub(super) row_keys: Vec<crate::pb::RowKey>,
        #[prost(message, repeated, tag = "3")]
        pub(super) series: Vec<crate::pb::Series>,
        #[prost(message, repeated, tag = "4")]
        pub(super) groups: Vec<Group>,
        #[prost(sfixed64, tag = "5")]
        pub(super) base_ts: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Group {
        #[prost(sint64, tag = "1")]
        pub(super) ts_delta: i64,
        #[prost(sint32, repeated, tag = "2")]
        pub(super) series_delta: Vec<i32>,
        #[prost(uint64, repeated, tag = "3")]
        pub(super) ints: Vec<u64>,
        #[prost(sint64, repeated, tag = "4")]
        pub(super) milli: Vec<i64>,
        #[prost(double, repeated, tag = "5")]
        pub(super) wide: Vec<f64>,
    }
}

#[test]
fn old_encodings_interoperate_both_ways() {
    use prost::Message as _;
    let mut dict = Dictionary::new();
    let rows = cycle(1, 2.0, 3);
    let compact = dict.encode(1, &rows, &[]);
    let new = dict.complete(&compact);
    // Old gatherer -> new reporter: the old bytes decode unchanged.
    let old = old_wire::Batch {
        sequence: 1,
        row_keys: new.row_keys.clone(),
        series: new.series.clone(),
        groups: new
            .groups
            .iter()
            .map(|g| old_wire::Group {
                ts_delta: g.ts_delta,
                series_delta: g.series_delta.clone(),
                ints: g.ints.clone(),
                milli: g.milli.clone(),
                wide: g.wide.clone(),
            })
            .collect(),
        base_ts: new.base_ts,
    };
    let as_new = pb::Batch::decode(old.encode_to_vec().as_slice()).unwrap();
    let decoded = StreamDefs::new(100).decode(&as_new).unwrap();
    assert_eq!(
        samples(flat_decoded(&decoded)),
        samples(flat_rows(&rows, &[]))
    );
    // New gatherer without text -> old reporter: the bytes read as the old
    // message, nothing left over.
    let mut text_rows = rows.clone();
    text_rows.push(event(1, "start", "hi"));
    let b = dict.encode(2, &text_rows, &[]);
    let wire = StreamSent::for_reporter(false).wire_batch(&dict, &b);
    let bytes = wire.encode_to_vec();
    let read_old = old_wire::Batch::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        read_old.encode_to_vec(),
        bytes,
        "no field an old reporter would not know"
    );
}

proptest! {
    #[test]
    fn without_text_a_stream_carries_exactly_the_numbers(batches in proptest::collection::vec(arb_rows(), 1..4)) {
        let mut dict = Dictionary::new();
        let mut sent = StreamSent::for_reporter(false);
        let mut defs = StreamDefs::new(100_000);
        let mut dropped = 0;
        for (i, rows) in batches.iter().enumerate() {
            let b = dict.encode(i as u64 + 1, rows, &[]);
            let decoded = defs.decode(&sent.wire_batch(&dict, &b)).unwrap();
            let (n, numeric) = without_texts(rows);
            dropped += n as u64;
            prop_assert_eq!(samples(flat_decoded(&decoded)), samples(flat_rows(&numeric, &[])));
        }
        prop_assert_eq!(sent.dropped_texts(), dropped);
    }

    #[test]
    fn adopted_batches_keep_their_texts(rows in arb_rows()) {
        let mut old = Dictionary::new();
        let compact = old.encode(1, &rows, &[]);
        let complete = old.complete(&compact);
        let mut new = Dictionary::new();
        new.encode(1, &cycle(1, 1.0, 1), &[]);
        let adopted = new.adopt(&complete).unwrap();
        let decoded = StreamDefs::new(100_000).decode(&new.complete(&adopted)).unwrap();
        prop_assert_eq!(samples(flat_decoded(&decoded)), samples(flat_rows(&rows, &[])));
    }
}
