//! One full collection cycle, the gatherer's unit of cost.
//!
//! `cargo bench -p gatherer --bench cycle`
//!
//! - `cycle/this_host`: every family against this machine's /proc and /sys,
//!   plus the JSON encoding of the rows (what `gatherer --stdout` does per tick).
//! - `cycle/fixture`: the same against the captured fixture tree, so results
//!   compare across machines.
//! - `encode/json`: encoding alone.
//! - `family/<name>`: each family alone against this host, to see where a
//!   cycle's time goes.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use gatherer::collect::{Collectors, Cycle, Family, Settings};
use gatherer::json::{self, Context};
use gatherer::roots::Roots;
use gatherer::run::collect_cycle;

fn bench_cycle(c: &mut Criterion) {
    let ctx = Context {
        node: "bench-node".into(),
        labels: vec![("region".into(), "eu-west".into())],
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12-vm");
    for (name, roots) in [
        ("this_host", Roots::default()),
        ("fixture", Roots::under(&fixture)),
    ] {
        let settings = Settings {
            roots,
            ..Settings::default()
        };
        let mut collectors = Collectors::new(&Family::ALL, &settings);
        let mut rows = Vec::new();
        let mut out = String::new();
        collect_cycle(&mut collectors, &mut rows);
        c.bench_function(&format!("cycle/{name}"), |b| {
            b.iter(|| {
                collect_cycle(&mut collectors, &mut rows);
                out.clear();
                for row in &rows {
                    json::write_row(&mut out, row, &ctx);
                }
                black_box(out.len())
            })
        });
    }

    let mut collectors = Collectors::new(&Family::ALL, &Settings::default());
    let mut rows = Vec::new();
    collect_cycle(&mut collectors, &mut rows);
    collect_cycle(&mut collectors, &mut rows);
    let mut out = String::new();
    c.bench_function("encode/json", |b| {
        b.iter(|| {
            out.clear();
            for row in &rows {
                json::write_row(&mut out, row, &ctx);
            }
            black_box(out.len())
        })
    });
}

fn bench_families(c: &mut Criterion) {
    let settings = Settings::default();
    for family in Family::ALL {
        let mut collector = family.collector(&settings);
        let mut rows = Vec::new();
        let _ = collector.collect(&Cycle::now(), &mut rows);
        c.bench_function(&format!("family/{family}"), |b| {
            b.iter(|| {
                rows.clear();
                let _ = collector.collect(&Cycle::now(), &mut rows);
                black_box(rows.len())
            })
        });
    }
}

criterion_group!(benches, bench_cycle, bench_families);
criterion_main!(benches);
