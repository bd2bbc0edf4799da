//! The serverless loop: collect every interval, print JSON lines.
//!
//! Timing: cycles start on a fixed-rate ticker, so a slow cycle delays the
//! next one instead of letting them pile up; the row timestamp is taken when
//! a cycle starts and shared by every row of it.
//!
//! Output: each cycle's rows are encoded into one reused buffer and written
//! with a single `write_all` and flush, so a reader never sees half a cycle
//! interleaved with logs. A closed stdout (`gatherer --stdout | head`) ends
//! the loop quietly with success.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::agent;
use crate::collect::{Collectors, Cycle};
use crate::json::{self, Context};
use crate::row::Row;

/// How the serverless loop runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between collections.
    pub interval: Duration,
    /// `--once`: prime, wait one interval, print one round, stop.
    pub once: bool,
    /// Stop after this many printed cycles.
    pub cycles: Option<u64>,
    /// Node id and labels added to every row.
    pub context: Context,
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// `--once` or `--cycles` completed.
    Done,
    /// SIGINT or SIGTERM.
    Signal,
    /// The reader of stdout went away.
    OutputClosed,
}

/// One collection: every family's rows plus the `hostpulse_self` row.
pub fn collect_cycle(collectors: &mut Collectors, rows: &mut Vec<Row>) -> Cycle {
    let _span = tracing::debug_span!("cycle").entered();
    rows.clear();
    let cycle = Cycle::now();
    let started = Instant::now();
    let failed = collectors.collect(&cycle, rows);
    let n = rows.len();
    let took = started.elapsed();
    rows.push(agent::row(cycle.ts, took, n, failed, collectors));
    let samples: usize = rows.iter().map(|r| r.fields.len()).sum();
    let errors = collectors
        .status()
        .map(|s| (s.family.name(), s.errors_total));
    crate::metrics::metrics().cycle_done(took, samples as u64, errors);
    cycle
}

/// Runs the serverless loop until done, signalled, or stdout closes.
pub async fn serverless<W: Write>(
    mut collectors: Collectors,
    options: Options,
    mut out: W,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<Stopped> {
    tokio::pin!(shutdown);
    let mut rows = Vec::new();
    let mut buf = String::new();

    if options.once {
        // The first round only primes the counters (rates need two readings);
        // the host facts it read are kept, since they are not repeated.
        collect_cycle(&mut collectors, &mut rows);
        let mut facts: Vec<Row> = rows.drain(..).filter(|r| r.table == "node_info").collect();
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = &mut shutdown => return Ok(Stopped::Signal),
        }
        collect_cycle(&mut collectors, &mut rows);
        if !rows.iter().any(|r| r.table == "node_info") {
            facts.append(&mut rows);
            rows = facts;
        }
        return match emit(&mut out, &mut buf, &rows, &options.context)? {
            true => Ok(Stopped::Done),
            false => Ok(Stopped::OutputClosed),
        };
    }

    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut printed = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut shutdown => return Ok(Stopped::Signal),
        }
        collect_cycle(&mut collectors, &mut rows);
        if !emit(&mut out, &mut buf, &rows, &options.context)? {
            return Ok(Stopped::OutputClosed);
        }
        printed += 1;
        if options.cycles.is_some_and(|n| printed >= n) {
            return Ok(Stopped::Done);
        }
    }
}

/// Writes rows as JSON lines; `Ok(false)` when the reader has gone away.
fn emit<W: Write>(out: &mut W, buf: &mut String, rows: &[Row], ctx: &Context) -> io::Result<bool> {
    buf.clear();
    for row in rows {
        json::write_row(buf, row, ctx);
    }
    match out.write_all(buf.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {
            let samples: usize = rows.iter().map(|r| r.fields.len()).sum();
            crate::metrics::metrics().samples_sent.add(samples as u64);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}
