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
            let fields = r.fields.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            (r.table.to_string(), r.ts, tags, fields)
        })
        .collect()
}

fn flat_decoded(b: &DecodedBatch) -> Flat {
    b.rows
        .iter()
        .map(|r| {
            let fields = r.fields.iter().map(|(k, v)| (k.to_string(), *v)).collect();
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
    ) {
        let b = pb::Batch {
            sequence: 1,
            base_ts: base,
            row_keys: vec![pb::RowKey { id: 0, table: "t".into(), tags: vec![] }],
            series: vec![
                pb::Series { id: 0, row_key: 0, field: "f".into(), kind },
                pb::Series { id: 1, row_key: 0, field: "g".into(), kind: 2 },
            ],
            groups: vec![pb::Group { ts_delta, series_delta: deltas, ints, milli, wide: vec![] }],
        };
        let _ = StreamDefs::new(1000).decode(&b);
    }
}
