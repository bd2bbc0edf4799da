//! No table or column the gatherer fills is missing from
//! `deploy/questdb/schema.sql`, and each has the type its values need: every
//! family over every fixture tree (two cycles, so rates appear too), plus the
//! gatherer's own `hostpulse_self` row. A table missing from the schema would
//! be created by ILP without DEDUP (and the reporter refuses to write then);
//! a field missing from it would be added by ILP on the fly.

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gatherer::collect::{Collectors, Cycle, Family, Settings};
use gatherer::roots::Roots;
use gatherer::row::{Row, Value};
use reporter::store::questdb::SCHEMA_SQL;
use reporter::store::questdb_schema::expected_tables;

fn rows_of(tree: &Path) -> Vec<Row> {
    let settings = Settings {
        roots: Roots::under(tree),
        statfs_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let mut collectors = Collectors::new(&Family::ALL, &settings);
    let first = Cycle::now();
    let mut rows = Vec::new();
    collectors.collect(&first, &mut rows);
    let second = Cycle {
        ts: first.ts + 2_000_000_000,
        at: first.at + Duration::from_secs(2),
    };
    collectors.collect(&second, &mut rows);
    rows.push(gatherer::agent::row(
        second.ts,
        Duration::from_millis(3),
        rows.len(),
        0,
        &mut collectors,
    ));
    rows.extend(every_node_event());
    rows
}

/// One row of every `node_events` event.
fn every_node_event() -> Vec<Row> {
    use gatherer::node_events::NodeEvents;
    let mut events = NodeEvents::new();
    events.started(&Family::ALL, Duration::from_secs(10), 2);
    events.config_applied(3, Duration::from_secs(5), &Family::ALL, &Family::ALL[1..]);
    events.config_applied(4, Duration::from_secs(5), &Family::ALL[1..], &Family::ALL);
    events.observe_buffer(1, 0, 2);
    events.observe_buffer(2, 1, 3);
    events.stopping(1);
    let mut rows = Vec::new();
    events.take(&mut rows);
    let kinds: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|r| r.tag_value("event")).collect();
    assert_eq!(kinds.len(), 7, "every event kind: {kinds:?}");
    rows
}

#[test]
fn every_table_and_field_the_gatherer_fills_is_in_the_schema_with_its_type() {
    let schema: BTreeMap<String, BTreeMap<String, String>> = expected_tables(SCHEMA_SQL)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.columns.into_iter().collect()))
        .collect();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gatherer/tests/fixtures");
    let mut seen = BTreeMap::<&str, usize>::new();
    for tree in std::fs::read_dir(&fixtures).unwrap() {
        let tree = tree.unwrap().path();
        if !tree.is_dir() {
            continue;
        }
        for row in rows_of(&tree) {
            *seen.entry(row.table).or_default() += 1;
            let columns = schema.get(row.table).unwrap_or_else(|| {
                panic!(
                    "{}: table {} is not in deploy/questdb/schema.sql",
                    tree.display(),
                    row.table
                )
            });
            for (tag, _) in &row.tags {
                assert_eq!(
                    columns.get(*tag).map(String::as_str),
                    Some("SYMBOL"),
                    "{}.{tag}: a tag is a SYMBOL column of the schema",
                    row.table
                );
            }
            for (field, value) in &row.fields {
                let want = match value {
                    Value::Int(_) => "LONG",
                    Value::Float(_) => "DOUBLE",
                    Value::Text(_) => "VARCHAR",
                };
                assert_eq!(
                    columns.get(*field).map(String::as_str),
                    Some(want),
                    "{}.{field} ({value:?}) in deploy/questdb/schema.sql",
                    row.table
                );
            }
        }
    }
    // Every family appeared in some tree, so none was left unchecked.
    // (A family's name is its table's.)
    for family in Family::ALL {
        let table = family.name();
        assert!(
            seen.contains_key(table),
            "no fixture produced {table}: {seen:?}"
        );
    }
    assert!(seen.contains_key("hostpulse_self"));
    assert!(seen.contains_key(hostpulse_proto::NODE_EVENTS_TABLE));
}
