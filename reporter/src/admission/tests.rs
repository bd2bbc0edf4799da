use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_proto::codec::{DecodedBatch, Dictionary, StreamDefs};
use hostpulse_proto::pb;
use hostpulse_proto::row::{Row, Value};

use super::*;

const NOW_NS: i64 = 1_800_000_000_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(NOW_NS as u64)
}

fn batch(rows: &[Row]) -> pb::Batch {
    let mut dict = Dictionary::new();
    let compact = dict.encode(7, rows, &[("region".into(), "eu".into())]);
    dict.complete(&compact)
}

/// What ingest does with a batch: normalise, decode, check, window.
fn admit(
    admission: &Admission,
    mut b: pb::Batch,
) -> Result<(pb::Batch, DecodedBatch, Dropped), String> {
    admission.normalise(&mut b);
    let mut decoded = StreamDefs::new(1000)
        .decode(&b)
        .map_err(|e| e.to_string())?;
    admission.check(&decoded).map_err(|s| {
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        s.message().to_string()
    })?;
    let dropped = admission.window(&mut b, &mut decoded, now());
    Ok((b, decoded, dropped))
}

fn default() -> Admission {
    Admission::new(AdmissionOptions::default())
}

fn cpu(ts: i64) -> Row {
    Row::from_parts(
        "cpu",
        ts,
        &[("cpu", "0")],
        &[("user_percent", Value::Float(1.5))],
    )
}

#[test]
fn a_gatherers_batch_passes_untouched() {
    let b = batch(&[
        cpu(NOW_NS),
        Row::from_parts(
            "hostpulse_self",
            NOW_NS,
            &[("component", "gatherer")],
            &[("cycles_total", Value::Int(3))],
        ),
    ]);
    let (stored, decoded, dropped) = admit(&default(), b.clone()).unwrap();
    assert_eq!(stored, b);
    assert_eq!(decoded.rows.len(), 2);
    assert_eq!(dropped, Dropped::default());
}

#[test]
fn broken_names_are_refused_naming_the_row_and_the_rule() {
    let b = batch(&[
        cpu(NOW_NS),
        Row::from_parts("my table", NOW_NS, &[("k", "v")], &[("f", Value::Int(1))]),
    ]);
    let err = admit(&default(), b).unwrap_err();
    assert!(err.contains("batch 7 refused: row 1"), "{err}");
    assert!(
        err.contains(r#"table "my table", tags {k="v", region="eu"}"#),
        "{err}"
    );
    assert!(err.contains("is not [a-z0-9_]{1,64}"), "{err}");

    let many: Vec<(&'static str, String)> = (0..2100)
        .map(|i| {
            (
                &*Box::leak(format!("t{i}").into_boxed_str()),
                "x".to_string(),
            )
        })
        .collect();
    let mut wide = cpu(NOW_NS);
    wide.tags = many;
    let err = admit(&default(), batch(&[wide])).unwrap_err();
    assert!(
        err.contains("2101 tags (at most 32)") && err.contains("2101 tags in all"),
        "{err}"
    );

    let err = admit(
        &default(),
        batch(&[Row::from_parts(
            "cpu",
            NOW_NS,
            &[("Region", "x")],
            &[("f", Value::Int(1))],
        )]),
    )
    .unwrap_err();
    assert!(err.contains("name the same column"), "{err}");
}

#[test]
fn only_known_and_configured_tables_are_accepted() {
    let custom = Row::from_parts("app_queue", NOW_NS, &[], &[("depth", Value::Int(4))]);
    let err = admit(&default(), batch(std::slice::from_ref(&custom))).unwrap_err();
    assert!(
        err.contains(r#"table "app_queue" is not accepted here"#)
            && err.contains("--custom-tables (none)"),
        "{err}"
    );
    let configured = Admission::new(AdmissionOptions {
        custom_tables: parse_custom_tables("app_queue, other").unwrap().0,
        ..AdmissionOptions::default()
    });
    assert!(admit(&configured, batch(&[custom])).is_ok());
    assert!(
        parse_custom_tables("cpu").is_err(),
        "a family is not custom"
    );
    assert!(
        parse_custom_tables("Bad Name")
            .unwrap_err()
            .contains("[a-z0-9_]")
    );
    assert_eq!(parse_custom_tables("").unwrap(), CustomTables::default());
}

#[test]
fn hostpulse_self_is_the_gatherers_only_as_component_gatherer() {
    for component in [Some("reporter"), Some("Gatherer"), None] {
        let tags: Vec<(&'static str, &str)> =
            component.map(|c| ("component", c)).into_iter().collect();
        let r = Row::from_parts(
            "hostpulse_self",
            NOW_NS,
            &tags,
            &[("streams_open", Value::Int(1))],
        );
        let err = admit(&default(), batch(&[r])).unwrap_err();
        assert!(
            err.contains("must have tag component=\"gatherer\""),
            "{err}"
        );
    }
}

#[test]
fn nan_and_infinities_are_refused() {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let r = Row::from_parts(
            "load",
            NOW_NS,
            &[],
            &[("load1", Value::Float(0.5)), ("load5", Value::Float(v))],
        );
        let err = admit(&default(), batch(&[r])).unwrap_err();
        assert!(
            err.contains(r#"field "load5" is"#) && err.contains("only finite floats"),
            "{err}"
        );
    }
}

#[test]
fn tag_values_and_huge_integers_are_normalised_in_the_stored_batch() {
    let admission = default();
    let r = Row::from_parts(
        "filesystem",
        NOW_NS,
        &[("mountpoint", "/mnt/a\nb")],
        &[
            ("size_bytes", Value::Int(u64::MAX)),
            ("files", Value::Int(5)),
        ],
    );
    let (stored, decoded, _) = admit(&admission, batch(&[r])).unwrap();
    assert_eq!(decoded.rows[0].key.tags[0].1, "/mnt/a\\012b");
    assert_eq!(decoded.rows[0].fields[0].1, Value::Int(i64::MAX as u64));
    assert_eq!(decoded.rows[0].fields[1].1, Value::Int(5));
    // What is spooled decodes to the same rows on its own.
    let again = StreamDefs::new(1000).decode(&stored).unwrap();
    assert_eq!(again.rows, decoded.rows);
    assert_eq!(
        (
            admission.normalised_tag_values.get(),
            admission.clamped_ints.get()
        ),
        (1, 1)
    );
}

#[test]
fn samples_outside_the_window_are_dropped_and_the_rest_kept() {
    let admission = default();
    let rows = [
        cpu(0),
        cpu(NOW_NS - 5 * DAY_NS),
        cpu(-1),
        cpu(NOW_NS),
        cpu(i64::MAX),
        cpu(NOW_NS + 9 * 60 * 1_000_000_000),
        cpu(NOW_NS - 31 * DAY_NS),
    ];
    let (stored, decoded, dropped) = admit(&admission, batch(&rows)).unwrap();
    let kept: Vec<i64> = decoded.rows.iter().map(|r| r.ts).collect();
    assert_eq!(
        kept,
        vec![NOW_NS - 5 * DAY_NS, NOW_NS, NOW_NS + 9 * 60 * 1_000_000_000]
    );
    assert_eq!(dropped.samples, 4);
    assert_eq!(decoded.samples, 3);
    assert!(
        dropped.reason.starts_with(
            "timestamp 0 (1970-01-01T00:00:00Z) is older than --max-sample-age (30days)"
        ),
        "{}",
        dropped.reason
    );
    assert_eq!(admission.dropped_samples.get(), 4);
    // The spooled batch holds exactly the kept groups, re-based.
    let again = StreamDefs::new(1000).decode(&stored).unwrap();
    assert_eq!(again.rows, decoded.rows);

    let (_, decoded, dropped) =
        admit(&admission, batch(&[cpu(NOW_NS + 11 * 60 * 1_000_000_000)])).unwrap();
    assert!(decoded.rows.is_empty());
    assert!(
        dropped
            .reason
            .contains("more than --max-clock-skew (10m) ahead"),
        "{}",
        dropped.reason
    );
}
