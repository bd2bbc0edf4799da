//! What one steady-state cycle allocates, counted by an instrumented global
//! allocator: collection over the captured Debian host plus the stream path
//! without the network (encode into the buffer, take the batch to send, build
//! its wire form, acknowledge it).
//!
//! The bounds are documented in the README (Performance, Gatherer). They are
//! per cycle once every family, rate and dictionary entry exists, so a change
//! that starts allocating per sample, per file or per series (a `String` per
//! field name, a fresh buffer per read) fails here, and so does a leak: after
//! the measured cycles the heap holds what it held before them.
//!
//! `stats_alloc` provides the wrapper, so this file needs no `unsafe` (the
//! workspace forbids it everywhere). Its counts are process-wide: this binary
//! holds one test so that nothing else allocates meanwhile.

use std::alloc::System;
use std::path::Path;
use std::time::Duration;

use gatherer::collect::{Collectors, Family, Settings};
use gatherer::roots::Roots;
use gatherer::run::collect_cycle;
use gatherer::stream::buffer::{Buffer, BufferOptions};
use hostpulse_proto::codec::StreamSent;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Calls to alloc or realloc one steady-state cycle may make: measured 185
/// (93 + 92) for the 408 samples of the captured host, mostly each row's
/// own field and tag vectors and the batch's per-group vectors.
const MAX_ALLOCATIONS_PER_CYCLE: usize = 220;
/// Bytes one steady-state cycle may allocate, all freed again by its end:
/// measured 63.1 KiB.
const MAX_BYTES_PER_CYCLE: usize = 80 * 1024;
/// Cycles measured after the warm-up.
const CYCLES: usize = 20;

#[test]
fn a_steady_state_cycle_allocates_a_bounded_amount_and_keeps_nothing() {
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12-vm");
    let settings = Settings {
        roots: Roots::under(&tree),
        statfs_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let mut collectors = Collectors::new(&Family::ALL, &settings);
    let mut buffer = Buffer::open(BufferOptions {
        dir: None,
        max_bytes: 64 << 20,
        memory_bytes: 4 << 20,
    })
    .expect("a memory-only buffer opens");
    buffer.set_connected(true);
    let labels = vec![("env".to_string(), "test".to_string())];
    let mut sent = StreamSent::new();
    let mut rows = Vec::new();
    let mut samples = 0;
    let mut cycle = |collectors: &mut Collectors, buffer: &mut Buffer, sent: &mut StreamSent| {
        collect_cycle(collectors, &mut rows);
        samples = rows.iter().map(|r| r.fields.len()).sum::<usize>();
        let acked = buffer.acked();
        let sequence = buffer.push(&rows, &labels);
        let (seq, batch) = buffer.next_after(acked).expect("the batch just pushed");
        assert_eq!(seq, sequence);
        let wire = sent.wire_batch(buffer.dictionary(), &batch);
        assert!(!wire.groups.is_empty());
        drop(wire);
        buffer.ack(sequence);
    };
    // Warm-up: the first cycle defines every series, the second every rate,
    // the third settles the reused buffers' capacities.
    for _ in 0..3 {
        cycle(&mut collectors, &mut buffer, &mut sent);
    }

    let region = Region::new(GLOBAL);
    for _ in 0..CYCLES {
        cycle(&mut collectors, &mut buffer, &mut sent);
    }
    let stats = region.change();

    let allocations = (stats.allocations + stats.reallocations) / CYCLES;
    // bytes_allocated includes what reallocations grew by.
    let bytes = stats.bytes_allocated / CYCLES;
    println!(
        "per steady-state cycle ({samples} samples): {allocations} allocations, {bytes} bytes; \
         over {CYCLES} cycles: {stats:?}"
    );
    assert!(
        allocations <= MAX_ALLOCATIONS_PER_CYCLE,
        "{allocations} allocations per cycle (bound {MAX_ALLOCATIONS_PER_CYCLE}); {stats:?}"
    );
    assert!(
        bytes <= MAX_BYTES_PER_CYCLE,
        "{bytes} bytes allocated per cycle (bound {MAX_BYTES_PER_CYCLE}); {stats:?}"
    );
    assert_eq!(
        stats.bytes_allocated, stats.bytes_deallocated,
        "the heap grew over {CYCLES} steady cycles: {stats:?}"
    );
    assert!(buffer.is_empty(), "every batch was acknowledged");
}
