//! Every family over every fixture tree, through the same registry the daemon
//! uses: what each tree reports, what it disables, and that nothing fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use gatherer::collect::{Collectors, Cycle, Family, Settings};
use gatherer::roots::Roots;
use gatherer::row::Row;

struct Outcome {
    tables: BTreeSet<&'static str>,
    disabled: BTreeSet<&'static str>,
    failed: usize,
    /// The second cycle's rows (with rates).
    rows: Vec<Row>,
    /// The first cycle's rows (with the facts), and the gatherer's own
    /// `hostpulse_self` row after the second.
    first: Vec<Row>,
    agent: Row,
}

fn run(tree: &str) -> Outcome {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(tree);
    let settings = Settings {
        roots: Roots::under(&dir),
        statfs_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let mut collectors = Collectors::new(&Family::ALL, &settings);
    let first = Cycle::now();
    let mut rows = Vec::new();
    let mut failed = collectors.collect(&first, &mut rows);
    let first_rows = std::mem::take(&mut rows);
    let second = Cycle {
        ts: first.ts + 2_000_000_000,
        at: first.at + Duration::from_secs(2),
    };
    failed += collectors.collect(&second, &mut rows);
    let agent = gatherer::agent::row(
        second.ts,
        Duration::from_millis(1),
        rows.len(),
        0,
        &mut collectors,
    );
    Outcome {
        first: first_rows,
        agent,
        tables: rows.iter().map(|r| r.table).collect(),
        disabled: collectors
            .status()
            .filter(|s| s.disabled)
            .map(|s| s.family.name())
            .collect(),
        failed,
        rows,
    }
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

#[test]
fn the_captured_host_reports_every_family_it_has() {
    let o = run("debian12-vm");
    assert_eq!(o.failed, 0);
    assert_eq!(o.disabled, set(&["hwmon"]), "this VM has no sensors");
    let all: BTreeSet<&str> = Family::ALL.iter().map(|f| f.name()).collect();
    let expected: BTreeSet<&str> = all
        .difference(&set(&["hwmon", "node_info"]))
        .copied()
        .collect();
    assert_eq!(
        o.tables, expected,
        "node_info only appears on the first cycle"
    );
    // Every counter has its rate on the second cycle.
    for row in &o.rows {
        for (name, _) in &row.fields {
            if let Some(base) = name.strip_suffix("_total") {
                let rate = format!("{base}_per_second");
                let has_rate = row.fields.iter().any(|(n, _)| *n == rate);
                let no_rate_by_design = row.table == "cpu" || row.table == "hostpulse_self";
                assert!(
                    has_rate || no_rate_by_design,
                    "{}.{name} has no {rate}",
                    row.table
                );
            }
        }
    }
}

#[test]
fn an_old_kernel_reports_what_it_has_and_disables_the_rest() {
    let o = run("edge-old-kernel");
    assert_eq!(o.failed, 0);
    assert!(o.disabled.contains("pressure"), "{:?}", o.disabled);
    for table in ["cpu", "memory", "swap", "vmstat", "processes"] {
        assert!(o.tables.contains(table), "{table} missing: {:?}", o.tables);
    }
    let total = o
        .rows
        .iter()
        .find(|r| r.table == "cpu" && r.tag_value("cpu") == Some("total"))
        .unwrap();
    assert!(total.field("steal_seconds_total").is_some());
    assert!(
        total.field("guest_seconds_total").is_none(),
        "2.6.18 has no guest column"
    );
}

#[test]
fn huge_counters_and_odd_names_never_fail_a_family() {
    for tree in [
        "edge-huge-counters-a",
        "edge-odd-interfaces",
        "edge-disks-mounts",
        "edge-psi-hwmon",
    ] {
        let o = run(tree);
        assert_eq!(o.failed, 0, "{tree}: {:?}", o.tables);
        assert!(!o.tables.is_empty(), "{tree} reports something");
    }
}

#[test]
fn a_malformed_file_fails_only_its_family() {
    // The minimal host's meminfo holds MemTotal alone (enough for node_info):
    // swap cannot parse it, in both cycles; memory and the rest still report.
    let o = run("edge-minimal-host");
    assert_eq!(o.failed, 2);
    assert!(!o.tables.contains("swap"));
    for table in ["cpu", "memory", "network", "netstat", "processes"] {
        assert!(o.tables.contains(table), "{table} missing: {:?}", o.tables);
    }
}

#[test]
fn sensors_and_pressure_come_from_the_edge_tree() {
    let o = run("edge-psi-hwmon");
    assert!(
        o.tables.contains("hwmon") && o.tables.contains("pressure"),
        "{:?}",
        o.tables
    );
    let irq = o
        .rows
        .iter()
        .find(|r| r.table == "pressure" && r.tag_value("resource") == Some("irq"))
        .unwrap();
    assert!(irq.field("full_avg10_percent").is_some() && irq.field("some_avg10_percent").is_none());
}

/// Every row every family makes over every fixture tree, plus the gatherer's
/// own `hostpulse_self` row, with as many labels as a gatherer may add,
/// passes the rules the reporter enforces before acknowledging: a real
/// gatherer never sends a batch the reporter refuses (which would block its
/// buffer).
#[test]
fn every_row_a_gatherer_makes_is_one_the_reporter_accepts() {
    use hostpulse_proto::rules;
    let labels: Vec<(String, String)> = (0..rules::MAX_LABELS)
        .map(|i| (format!("label_{i}"), "v".to_string()))
        .collect();
    gatherer::cli::check_labels(&labels).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    let mut trees = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        trees += 1;
        let o = run(dir.file_name().unwrap().to_str().unwrap());
        let rows: Vec<&Row> = o
            .first
            .iter()
            .chain(&o.rows)
            .chain(std::iter::once(&o.agent))
            .collect();
        for row in rows {
            let accepted =
                row.table == rules::SELF_TABLE || hostpulse_proto::FAMILIES.contains(&row.table);
            assert!(
                accepted,
                "{}: table {} is not a family",
                dir.display(),
                row.table
            );
            if row.table == rules::SELF_TABLE {
                assert_eq!(row.tag_value(rules::SELF_COMPONENT_TAG), Some("gatherer"));
            }
            let tags = row
                .tags
                .iter()
                .map(|(k, _)| *k)
                .chain(labels.iter().map(|(k, _)| k.as_str()));
            let tags: Vec<&str> = tags.collect();
            rules::check_row(
                row.table,
                tags.iter().copied(),
                row.fields.iter().map(|(f, _)| *f),
            )
            .unwrap_or_else(|e| panic!("{}: {row:?}: {e}", dir.display()));
            for (field, value) in &row.fields {
                if let gatherer::row::Value::Float(v) = value {
                    rules::check_float(field, *v).unwrap();
                }
            }
            checked += 1;
        }
    }
    assert!(trees >= 7 && checked > 150, "{trees} trees, {checked} rows");
}
