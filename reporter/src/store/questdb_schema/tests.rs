use std::sync::{Arc, Mutex};

use hostpulse_proto::codec::{DecodedBatch, DecodedRow, RowKeyDef};
use hostpulse_proto::pb;
use hostpulse_proto::row::Value;

use super::*;

/// The schema's tables exactly as QuestDB 9.3.5 creates them from it.
fn as_created() -> Vec<ObservedTable> {
    expected_tables(SCHEMA_SQL)
        .unwrap()
        .into_iter()
        .map(|t| ObservedTable {
            name: t.name.clone(),
            wal: true,
            dedup: true,
            designated: "ts".into(),
            columns: t
                .columns
                .iter()
                .map(|(name, kind)| ObservedColumn {
                    name: name.clone(),
                    kind: kind.clone(),
                    upsert_key: t.keys.contains(name),
                })
                .collect(),
        })
        .collect()
}

fn expected() -> Vec<ExpectedTable> {
    expected_tables(SCHEMA_SQL).unwrap()
}

fn table<'a>(tables: &'a mut [ObservedTable], name: &str) -> &'a mut ObservedTable {
    tables.iter_mut().find(|t| t.name == name).unwrap()
}

#[test]
fn the_schema_defines_every_table_with_ts_and_dedup_keys_from_ts_and_node() {
    let tables = expected();
    assert_eq!(tables.len(), 16);
    for t in &tables {
        assert_eq!(
            t.columns[0],
            ("ts".into(), "TIMESTAMP".into()),
            "{}",
            t.name
        );
        assert_eq!(&t.keys[..2], ["ts", "node"], "{}", t.name);
    }
    let cpu = tables.iter().find(|t| t.name == "cpu").unwrap();
    assert_eq!(cpu.keys, ["ts", "node", "cpu"]);
    assert!(
        cpu.columns
            .contains(&("usage_percent".into(), "DOUBLE".into()))
    );
    let processes = tables.iter().find(|t| t.name == "processes").unwrap();
    assert!(processes.columns.contains(&("total".into(), "LONG".into())));
    assert!(expected_tables("CREATE TABLE x (a LONG)").is_err());
}

#[test]
fn answers_of_questdb_9_3_5_parse() {
    // Captured from the real server (tables() trimmed to the asked columns).
    let tables = r#"{"query":"select table_name, dedup, designatedTimestamp, walEnabled from tables()","columns":[{"name":"table_name","type":"STRING"},{"name":"dedup","type":"BOOLEAN"},{"name":"designatedTimestamp","type":"STRING"},{"name":"walEnabled","type":"BOOLEAN"}],"timestamp":-1,"dataset":[["cpu",false,"timestamp",true],["load",true,"ts",true]],"count":2}"#;
    let t = parse_tables(tables).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (
            t[0].name.as_str(),
            t[0].dedup,
            t[0].designated.as_str(),
            t[0].wal
        ),
        ("cpu", false, "timestamp", true)
    );
    assert!(t[1].dedup);
    let columns = r#"{"query":"show columns from swap","columns":[{"name":"column","type":"STRING"},{"name":"type","type":"STRING"},{"name":"indexed","type":"BOOLEAN"},{"name":"indexBlockCapacity","type":"INT"},{"name":"symbolCached","type":"BOOLEAN"},{"name":"symbolCapacity","type":"INT"},{"name":"symbolTableSize","type":"INT"},{"name":"designated","type":"BOOLEAN"},{"name":"upsertKey","type":"BOOLEAN"}],"timestamp":-1,"dataset":[["ts","TIMESTAMP",false,0,false,0,0,true,true],["node","SYMBOL",false,256,true,256,0,false,true],["used_percent","DOUBLE",false,256,false,0,0,false,false]],"count":3}"#;
    let c = parse_columns(columns).unwrap();
    assert_eq!(c.len(), 3);
    assert!(c[0].upsert_key && c[1].upsert_key && !c[2].upsert_key);
    assert_eq!(c[2].kind, "DOUBLE");
    assert!(parse_tables("<html>not found</html>").is_err());
    assert!(parse_tables(r#"{"error":"x"}"#).is_err());
}

#[test]
fn tables_as_the_schema_makes_them_pass() {
    assert_eq!(
        compare(&expected(), &as_created(), SchemaMode::Verify),
        vec![]
    );
    // Names compare without case; label columns are extra and fine.
    let mut tables = as_created();
    let cpu = table(&mut tables, "cpu");
    cpu.name = "CPU".into();
    cpu.columns.push(ObservedColumn {
        name: "region".into(),
        kind: "SYMBOL".into(),
        upsert_key: false,
    });
    assert_eq!(compare(&expected(), &tables, SchemaMode::Verify), vec![]);
}

#[test]
fn every_way_a_table_can_be_wrong_is_named_with_its_fix() {
    let mut tables = as_created();
    tables.retain(|t| t.name != "swap");
    // What ILP makes on its own.
    let cpu = table(&mut tables, "cpu");
    cpu.dedup = false;
    cpu.designated = "timestamp".into();
    table(&mut tables, "load").dedup = false;
    let disk = table(&mut tables, "disk");
    for c in &mut disk.columns {
        c.upsert_key = c.name == "ts" || c.name == "node";
    }
    table(&mut tables, "system").wal = false;
    let memory = table(&mut tables, "memory");
    memory
        .columns
        .iter_mut()
        .find(|c| c.name == "used_percent")
        .unwrap()
        .kind = "LONG".into();

    let problems = compare(&expected(), &tables, SchemaMode::Verify);
    let find =
        |t: &str| -> Vec<&TableProblem> { problems.iter().filter(|p| p.table == t).collect() };
    assert_eq!(problems.len(), 6, "{problems:#?}");

    let swap = find("swap");
    assert_eq!(swap[0].problem, Problem::Missing);
    assert!(
        swap[0].fix.contains("--apply-schema-and-exit"),
        "{}",
        swap[0].fix
    );

    let cpu = find("cpu");
    assert_eq!(cpu.len(), 1, "a table made by ILP has one fix: {cpu:?}");
    assert_eq!(cpu[0].problem, Problem::Designated("timestamp".into()));
    assert!(
        cpu[0].to_string().contains("\"timestamp\", not \"ts\""),
        "{}",
        cpu[0]
    );
    assert!(
        cpu[0]
            .fix
            .starts_with("RENAME TABLE \"cpu\" TO \"cpu_old\""),
        "{}",
        cpu[0].fix
    );

    let load = find("load");
    assert_eq!(load[0].problem, Problem::NoDedup);
    assert_eq!(
        load[0].fix,
        "ALTER TABLE \"load\" DEDUP ENABLE UPSERT KEYS(ts, node);"
    );

    let disk = find("disk");
    assert_eq!(
        disk[0].problem,
        Problem::Keys(vec!["ts".into(), "node".into()])
    );
    assert_eq!(
        disk[0].fix,
        "ALTER TABLE \"disk\" DEDUP ENABLE UPSERT KEYS(ts, node, device);"
    );

    assert_eq!(find("system")[0].problem, Problem::NotWal);

    let memory = find("memory");
    assert_eq!(
        memory[0].fix,
        "ALTER TABLE \"memory\" ALTER COLUMN used_percent TYPE DOUBLE;"
    );
    assert!(
        memory[0]
            .to_string()
            .contains("memory.used_percent is LONG, not DOUBLE")
    );

    let message = Verdict::Wrong(problems.clone()).message();
    for needle in [
        "missing table(s) swap",
        "\"cpu\"",
        "DEDUP off",
        "holds its rows",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

// ---------------------------------------------------------------- the gate

/// A QuestDB whose tables the test sets.
#[derive(Clone, Default)]
struct FakeCatalog {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    /// `None`: unreachable.
    tables: Option<Vec<ObservedTable>>,
    observed: usize,
    applied: usize,
}

impl FakeCatalog {
    fn set(&self, tables: Option<Vec<ObservedTable>>) {
        self.state.lock().unwrap().tables = tables;
    }

    fn observed(&self) -> usize {
        self.state.lock().unwrap().observed
    }

    fn applied(&self) -> usize {
        self.state.lock().unwrap().applied
    }
}

impl Catalog for FakeCatalog {
    fn observe(&self, _: &[&str]) -> Result<Vec<ObservedTable>, String> {
        let mut s = self.state.lock().unwrap();
        s.observed += 1;
        s.tables
            .clone()
            .ok_or_else(|| "QuestDB at http://q:9000 is unreachable".into())
    }

    fn apply(&self) -> Result<(), String> {
        let mut s = self.state.lock().unwrap();
        s.applied += 1;
        s.tables = Some(as_created());
        Ok(())
    }
}

/// A store that counts writes and fails when told.
#[derive(Clone, Default)]
struct FakeStore {
    writes: Arc<Mutex<usize>>,
    fail: Arc<Mutex<bool>>,
}

impl Store for FakeStore {
    fn name(&self) -> &'static str {
        "questdb"
    }

    fn write(&mut self, _: &[Arc<AcceptedBatch>]) -> Result<(), StoreError> {
        if *self.fail.lock().unwrap() {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        *self.writes.lock().unwrap() += 1;
        Ok(())
    }
}

fn batch(table: &str) -> Vec<Arc<AcceptedBatch>> {
    let row = DecodedRow {
        key: Arc::new(RowKeyDef {
            table: table.into(),
            tags: vec![],
        }),
        ts: 1,
        fields: vec![(Arc::from("tasks"), Value::Int(1))],
    };
    vec![Arc::new(AcceptedBatch {
        node: Arc::from("n"),
        decoded: DecodedBatch {
            sequence: 1,
            rows: vec![row],
            samples: 1,
        },
        stored: pb::Batch::default(),
    })]
}

fn gate(mode: SchemaMode) -> (CheckedStore, FakeCatalog, FakeStore) {
    let catalog = FakeCatalog::default();
    let store = FakeStore::default();
    let checked = CheckedStore::new(
        Box::new(store.clone()),
        Box::new(catalog.clone()),
        mode,
        SCHEMA_SQL,
    )
    .unwrap();
    (checked, catalog, store)
}

fn unavailable(r: Result<(), StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_wrong_table_holds_every_write_until_it_is_fixed() {
    let (mut checked, catalog, store) = gate(SchemaMode::Verify);
    let watch = checked.watch();
    let mut tables = as_created();
    table(&mut tables, "load").dedup = false;
    catalog.set(Some(tables));

    assert!(!checked.check(), "the check at start finds it");
    let m = unavailable(checked.write(&batch("load")));
    assert!(m.contains("\"load\" has DEDUP off"), "{m}");
    assert!(
        m.contains("ALTER TABLE \"load\" DEDUP ENABLE UPSERT KEYS(ts, node);"),
        "{m}"
    );
    // Other tables are held too: the store has one cursor.
    unavailable(checked.write(&batch("cpu")));
    assert_eq!(*store.writes.lock().unwrap(), 0, "nothing written");
    assert!(matches!(watch.verdict(), Verdict::Wrong(p) if p.len() == 1));
    assert!(watch.health_note().unwrap().contains("store questdb"));
    let mut page = Exposition::new();
    watch.write_metrics(&mut page);
    let text = page.finish();
    assert!(
        text.contains("hostpulse_reporter_store_schema_ok{store=\"questdb\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("hostpulse_reporter_store_schema_problems{store=\"questdb\"} 1"),
        "{text}"
    );

    // The operator fixes it: the next retry checks again and writes.
    catalog.set(Some(as_created()));
    checked.write(&batch("load")).unwrap();
    assert_eq!(*store.writes.lock().unwrap(), 1);
    assert_eq!(watch.verdict(), Verdict::Verified);
    assert_eq!(watch.health_note(), None);
    let mut page = Exposition::new();
    watch.write_metrics(&mut page);
    assert!(
        page.finish()
            .contains("hostpulse_reporter_store_schema_ok{store=\"questdb\"} 1")
    );

    // Verified: writes do not ask QuestDB each time.
    let asked = catalog.observed();
    checked.write(&batch("load")).unwrap();
    assert_eq!(catalog.observed(), asked);
}

#[test]
fn an_unreachable_server_is_unchecked_and_a_failed_write_means_checking_again() {
    let (mut checked, catalog, store) = gate(SchemaMode::Verify);
    assert!(!checked.check());
    let m = unavailable(checked.write(&batch("load")));
    assert!(
        m.contains("not verified") && m.contains("unreachable"),
        "{m}"
    );
    assert_eq!(*store.writes.lock().unwrap(), 0);

    catalog.set(Some(as_created()));
    checked.write(&batch("load")).unwrap();
    // The server fails a write (a restart): the next write checks first, and
    // a server back with an empty disk is caught before ILP creates tables.
    *store.fail.lock().unwrap() = true;
    unavailable(checked.write(&batch("load")));
    *store.fail.lock().unwrap() = false;
    catalog.set(Some(vec![]));
    let m = unavailable(checked.write(&batch("load")));
    assert!(m.contains("missing table(s)"), "{m}");
    assert_eq!(*store.writes.lock().unwrap(), 1);
    // In verify mode nothing is created.
    assert_eq!(catalog.applied(), 0);
}

#[test]
fn apply_mode_creates_missing_tables_but_never_touches_a_wrong_one() {
    let (mut checked, catalog, store) = gate(SchemaMode::Apply);
    catalog.set(Some(vec![]));
    assert!(checked.check());
    assert_eq!(catalog.applied(), 1);
    checked.write(&batch("load")).unwrap();
    assert_eq!(*store.writes.lock().unwrap(), 1);

    // A table made by ILP: applying cannot fix it, so it is not tried.
    let (mut checked, catalog, _) = gate(SchemaMode::Apply);
    let mut tables = as_created();
    table(&mut tables, "cpu").designated = "timestamp".into();
    catalog.set(Some(tables));
    assert!(!checked.check());
    assert_eq!(catalog.applied(), 0);
}

#[test]
fn off_mode_never_asks() {
    let (mut checked, catalog, store) = gate(SchemaMode::Off);
    checked.write(&batch("load")).unwrap();
    checked.maintain().unwrap();
    assert_eq!(catalog.observed(), 0);
    assert_eq!(*store.writes.lock().unwrap(), 1);
}

#[test]
fn a_verified_schema_is_checked_again_by_housekeeping() {
    let (mut checked, catalog, _) = gate(SchemaMode::Verify);
    catalog.set(Some(as_created()));
    assert!(checked.check());
    // Someone dropped a table; ILP would re-create it without dedup.
    catalog.set(Some(vec![]));
    checked.maintain().unwrap();
    unavailable(checked.write(&batch("load")));
    assert!(checked.maintain_interval() <= RECHECK_VERIFIED);
}
