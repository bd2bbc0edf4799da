//! `wire_size`: bytes per sample that hostpulse puts on the wire.
//!
//! ```text
//! cargo run --release -p hostpulse-bench --bin wire_size [-- --cycles 100 --interval 100ms]
//! ```
//!
//! # What it measures
//!
//! Real cycles from this host, every family with default settings (see
//! [`hostpulse_bench::cycles`]), encoded exactly as a streaming gatherer
//! encodes them on one stream: one [`Dictionary`] for the process, one
//! [`StreamSent`] for the stream, `Dictionary::encode` per cycle and
//! `StreamSent::wire_batch` to add the definitions the stream has not carried
//! yet. So batch 1 defines the row keys and series of cycle 1 (facts, no
//! rates), batch 2 defines the rate series that appear with the second
//! reading, and the batches after that are steady state: no definitions,
//! only series-id deltas and values.
//!
//! For each batch it reports:
//!
//! | column    | meaning |
//! |-----------|---------|
//! | protobuf  | the encoded `GathererMessage { batch }`: what tonic hands to gzip |
//! | gzip      | that message gzipped by flate2 at level 6, the encoder and level tonic's gzip uses; tonic compresses each message on its own |
//! | wire      | gzip + the 5-byte gRPC message prefix + a 9-byte HTTP/2 DATA frame header (TCP/IP headers not counted) |
//!
//! each also per sample (field value), then the totals over all steady-state
//! batches (bytes summed, divided by samples summed), and the same cycles as
//! the gatherer's JSON lines (`--stdout`) for comparison, next to
//! node_exporter's text exposition format (measured on this machine by
//! `bench/daemon-vs-node-exporter.sh`: 57.6 KB for 507 samples, 9.5 KB
//! gzipped). The target is at most 4 bytes per sample on the wire in steady
//! state.
//!
//! # How
//!
//! Cycle 1 is collected, then cycle 2 one second later (`--first-gap`), then
//! the remaining steady-state cycles `--interval` apart (100 ms by default,
//! so 100 cycles take 10 s; rates are then computed over 100 ms instead of
//! the usual 10 s, which changes their digits but not their size class).
//! Encoding happens after collection, so it does not disturb the timing.
//! `--json` prints one JSON object instead of the tables.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use hostpulse_bench::cycles::{self, Cycles};
use hostpulse_proto::codec::{Dictionary, StreamSent};
use hostpulse_proto::json::{self, Context};
use hostpulse_proto::pb::{self, gatherer_message, reporter_message};
use hostpulse_proto::row::Row;
use prost::Message as _;

/// gRPC's length prefix: 1 byte compressed flag + 4 bytes length.
const GRPC_PREFIX: usize = 5;
/// An HTTP/2 frame header (one DATA frame per message at these sizes).
const HTTP2_FRAME_HEADER: usize = 9;
/// node_exporter 1.5.0 on this machine (bench/daemon-vs-node-exporter.sh).
const NODE_EXPORTER_SAMPLES: f64 = 507.0;
const NODE_EXPORTER_BYTES: f64 = 57_600.0;
const NODE_EXPORTER_GZIP_BYTES: f64 = 9_500.0;
/// The steady-state target, bytes per sample on the wire.
const TARGET_BYTES_PER_SAMPLE: f64 = 4.0;

/// Bytes per sample of real cycles, encoded as a gatherer sends them.
#[derive(Debug, Parser)]
#[command(name = "wire_size", max_term_width = 100)]
struct Args {
    /// Steady-state cycles to measure (collected after cycles 1 and 2).
    #[arg(long, default_value_t = 100)]
    cycles: usize,

    /// Time between steady-state cycles (the window rates are computed over).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    interval: Duration,

    /// Time between cycle 1 and cycle 2 (the gatherer's first interval).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    first_gap: Duration,

    /// Steady-state batches to list one by one (all are in the totals).
    #[arg(long, default_value_t = 3)]
    show: usize,

    /// A static label added to every row key, as `gatherer --label KEY=VALUE`
    /// (repeatable). It only lengthens definitions.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// Sizes of one encoded batch.
#[derive(Debug, Clone, Copy, Default)]
struct Sizes {
    batches: usize,
    rows: usize,
    samples: usize,
    row_keys: usize,
    series: usize,
    protobuf: usize,
    gzip: usize,
}

impl Sizes {
    /// Gzip plus the per-message framing, summed over the batches.
    fn wire(&self) -> usize {
        self.gzip + self.batches * (GRPC_PREFIX + HTTP2_FRAME_HEADER)
    }

    fn add(&mut self, o: &Sizes) {
        self.batches += o.batches;
        self.rows += o.rows;
        self.samples += o.samples;
        self.row_keys += o.row_keys;
        self.series += o.series;
        self.protobuf += o.protobuf;
        self.gzip += o.gzip;
    }

    fn per_sample(&self, bytes: usize) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        bytes as f64 / self.samples as f64
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "batches": self.batches,
            "rows": self.rows,
            "samples": self.samples,
            "row_key_definitions": self.row_keys,
            "series_definitions": self.series,
            "protobuf_bytes": self.protobuf,
            "gzip_bytes": self.gzip,
            "wire_bytes": self.wire(),
            "protobuf_bytes_per_sample": self.per_sample(self.protobuf),
            "gzip_bytes_per_sample": self.per_sample(self.gzip),
            "wire_bytes_per_sample": self.per_sample(self.wire()),
        })
    }
}

/// Gzips like tonic: flate2, level 6, one message at a time.
fn gzip_len(bytes: &[u8]) -> usize {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len()), Compression::new(6));
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail").len()
}

/// The stream's state: what a gatherer holds for one reporter stream.
struct Stream {
    dict: Dictionary,
    sent: StreamSent,
    labels: Vec<(String, String)>,
    sequence: u64,
}

impl Stream {
    fn send(&mut self, rows: &[Row]) -> Sizes {
        self.sequence += 1;
        let compact = self.dict.encode(self.sequence, rows, &self.labels);
        let batch = self.sent.wire_batch(&self.dict, &compact);
        let (row_keys, series) = (batch.row_keys.len(), batch.series.len());
        let msg = pb::GathererMessage {
            message: Some(gatherer_message::Message::Batch(batch)),
        };
        let bytes = msg.encode_to_vec();
        Sizes {
            batches: 1,
            rows: rows.len(),
            samples: cycles::samples(rows),
            row_keys,
            series,
            protobuf: bytes.len(),
            gzip: gzip_len(&bytes),
        }
    }
}

/// The cycle as the gatherer's JSON lines: (bytes, gzipped bytes).
fn json_lines(rows: &[Row], ctx: &Context) -> (usize, usize) {
    let mut out = String::new();
    for row in rows {
        json::write_row(&mut out, row, ctx);
    }
    (out.len(), gzip_len(out.as_bytes()))
}

fn main() {
    let args = Args::parse();
    if !args.json {
        eprintln!(
            "collecting 1 + {} cycles ({:?}, then {:?} apart)...",
            args.cycles + 1,
            args.first_gap,
            args.interval
        );
    }
    // Cycle 2 (rates appear, so it defines series) plus the steady state.
    let cycles = Cycles::collect(args.cycles.max(1) + 1, args.first_gap, args.interval);

    let mut stream = Stream {
        dict: Dictionary::new(),
        sent: StreamSent::new(),
        labels: args.labels.clone(),
        sequence: 0,
    };
    let first = stream.send(&cycles.first);
    let all: Vec<Sizes> = cycles.steady.iter().map(|rows| stream.send(rows)).collect();
    // Batch 2 defines the rate series; steady state is every batch after it.
    let second = all[0];
    let steady = &all[1..];
    let mut total = Sizes::default();
    steady.iter().for_each(|s| total.add(s));
    let with_definitions = steady.iter().filter(|s| s.series > 0).count();

    let ctx = Context {
        node: "node-1".into(),
        labels: args.labels.clone(),
    };
    let (mut json_bytes, mut json_gzip) = (0usize, 0usize);
    for rows in cycles.steady.iter().skip(1) {
        let (b, g) = json_lines(rows, &ctx);
        json_bytes += b;
        json_gzip += g;
    }

    let ack = pb::ReporterMessage {
        message: Some(reporter_message::Message::Ack(pb::Ack {
            sequence: 100_000,
            ..Default::default()
        })),
    }
    .encode_to_vec();
    let ack_raw = ack.len();
    let ack_gzip = gzip_len(&ack);

    let samples = total.samples.max(1) as f64;
    let wire = total.per_sample(total.wire());
    let ne_raw = NODE_EXPORTER_BYTES / NODE_EXPORTER_SAMPLES;
    let ne_gzip = NODE_EXPORTER_GZIP_BYTES / NODE_EXPORTER_SAMPLES;

    if args.json {
        let out = serde_json::json!({
            "steady_cycles": steady.len(),
            "interval_ms": args.interval.as_millis() as u64,
            "first_batch": first.json(),
            "second_batch": second.json(),
            "steady_total": total.json(),
            "steady_batches_with_definitions": with_definitions,
            "steady_batches": steady.iter().map(Sizes::json).collect::<Vec<_>>(),
            "json_lines_bytes_per_sample": json_bytes as f64 / samples,
            "json_lines_gzip_bytes_per_sample": json_gzip as f64 / samples,
            "node_exporter_bytes_per_sample": ne_raw,
            "node_exporter_gzip_bytes_per_sample": ne_gzip,
            "ack_protobuf_bytes": ack_raw,
            "ack_gzip_bytes": ack_gzip,
            "target_wire_bytes_per_sample": TARGET_BYTES_PER_SAMPLE,
            "target_met": wire <= TARGET_BYTES_PER_SAMPLE,
        });
        println!("{out}");
        return;
    }

    println!(
        "One stream, real cycles from this host (every family, default settings); \
         steady state: {} batches, cycles {:?} apart.\n",
        steady.len(),
        args.interval
    );
    println!(
        "| batch | rows | samples | defined (row keys / series) | protobuf B | gzip B | wire B | B/sample protobuf | B/sample gzip | B/sample wire |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let line = |name: &str, s: &Sizes, n: usize| {
        let avg = |b: usize| b as f64 / n as f64;
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            avg(s.rows),
            avg(s.samples),
            avg(s.row_keys),
            avg(s.series),
            avg(s.protobuf),
            avg(s.gzip),
            avg(s.wire()),
            s.per_sample(s.protobuf),
            s.per_sample(s.gzip),
            s.per_sample(s.wire()),
        );
    };
    line("1 (facts, no rates)", &first, 1);
    line("2 (rates appear)", &second, 1);
    for (i, s) in steady.iter().take(args.show).enumerate() {
        line(&format!("{}", i + 3), s, 1);
    }
    line(
        &format!("**steady state, mean of {}**", steady.len()),
        &total,
        steady.len().max(1),
    );
    let (lo, hi) = steady.iter().fold((f64::MAX, 0f64), |(lo, hi), s| {
        let w = s.per_sample(s.wire());
        (lo.min(w), hi.max(w))
    });
    println!(
        "\nSteady-state wire bytes per sample ranged {lo:.2} to {hi:.2} over single batches; \
         {with_definitions} steady-state batch(es) carried new definitions."
    );
    println!(
        "Acknowledgement (reporter to gatherer), one per batch: {ack_raw} B protobuf, \
         {ack_gzip} B gzipped (gzip's 18-byte frame makes tiny messages larger).\n"
    );

    println!("| per sample, steady state | uncompressed | gzip |");
    println!("|---|---:|---:|");
    println!(
        "| node_exporter 1.5.0 text format (507 samples: 57.6 KB, 9.5 KB gzipped) | {ne_raw:.1} B | {ne_gzip:.1} B |"
    );
    println!(
        "| hostpulse JSON lines (`gatherer --stdout`), same cycles | {:.1} B | {:.1} B |",
        json_bytes as f64 / samples,
        json_gzip as f64 / samples
    );
    println!(
        "| **hostpulse gRPC batch** (wire: + gRPC prefix + HTTP/2 frame header) | {:.2} B | {:.2} B (wire {wire:.2} B) |",
        total.per_sample(total.protobuf),
        total.per_sample(total.gzip),
    );
    println!(
        "\nTarget: at most {TARGET_BYTES_PER_SAMPLE} B per sample on the wire in steady state: {} \
         ({:.0}x smaller than node_exporter's text, {:.1}x smaller than it gzipped).",
        if wire <= TARGET_BYTES_PER_SAMPLE {
            "met"
        } else {
            "NOT met"
        },
        ne_raw / wire,
        ne_gzip / wire
    );
}
