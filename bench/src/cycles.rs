//! Real collection cycles from this host.
//!
//! A streaming gatherer pushes every cycle from its very first one, and each
//! cycle becomes one batch:
//!
//! - cycle 1 carries the host's facts (`node_info`) but no rates, since a
//!   rate needs two readings;
//! - from cycle 2 on, rates exist and facts are not repeated (they are sent
//!   again only when one changes).
//!
//! [`Cycles::collect`] runs every family ([`Family::ALL`], default settings)
//! the same way, with [`gatherer::run::collect_cycle`], so the rows are
//! exactly what a gatherer on this host would send, `hostpulse_self` row included.

use std::time::{Duration, Instant};

use gatherer::collect::{Collectors, Family, Settings};
use gatherer::run::collect_cycle;
use hostpulse_proto::row::Row;

/// The cycles of one simulated gatherer run.
#[derive(Debug, Clone)]
pub struct Cycles {
    /// Cycle 1: facts, no rates.
    pub first: Vec<Row>,
    /// Cycles 2, 3, ...: the steady state.
    pub steady: Vec<Vec<Row>>,
}

impl Cycles {
    /// Collects cycle 1, waits `first_gap`, then collects `steady` more
    /// cycles, starting `gap` apart (the gap sets the window rates are
    /// computed over, as the gatherer's interval does). Blocks the thread.
    pub fn collect(steady: usize, first_gap: Duration, gap: Duration) -> Cycles {
        let mut collectors = Collectors::new(&Family::ALL, &Settings::default());
        let mut first = Vec::new();
        collect_cycle(&mut collectors, &mut first);
        let start = Instant::now() + first_gap;
        let mut out = Vec::with_capacity(steady);
        for i in 0..steady {
            let due = start + gap * u32::try_from(i).unwrap_or(u32::MAX);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let mut rows = Vec::new();
            collect_cycle(&mut collectors, &mut rows);
            out.push(rows);
        }
        Cycles { first, steady: out }
    }
}

/// Samples (field values) in `rows`.
pub fn samples(rows: &[Row]) -> usize {
    rows.iter().map(|r| r.fields.len()).sum()
}
