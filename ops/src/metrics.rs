//! Self-metrics: lock-free counters, gauges and histograms, and their
//! Prometheus text exposition (format 0.0.4).
//!
//! Each binary keeps its metrics as plain fields of one struct (no global
//! registry, no string lookups on the hot path) and writes them into an
//! [`Exposition`] when `/metrics` is scraped. Recording is one relaxed atomic
//! add; a histogram observation is three.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `d` (negative to subtract).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of the latency histograms: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency distribution over [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the last is +Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The smallest bucket bound at or above the `q` quantile (0..=1) of the
    /// observations so far; `None` before the first one. Bucket resolution:
    /// good for a dashboard, not for a benchmark.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// A metric described once and read in two places: `/metrics` shows it as
/// `{prefix}{name}` ([`Exposition::described`]), and the `hostpulse_self`
/// row carries it as the field `{name}`, so the two names cannot drift.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    /// The name without the binary's prefix, e.g. `batches_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
}

/// The kind of a metric family, for its `# TYPE` line.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// Prometheus text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines. Write its
    /// samples right after.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A whole family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One single-sample family per figure, named `{prefix}{name}`.
    pub fn described(&mut self, prefix: &str, figures: &[(Described, u64)]) {
        for (d, value) in figures {
            self.single(
                &format!("{prefix}{}", d.name),
                d.kind,
                d.help,
                *value as f64,
            );
        }
    }

    /// The `_bucket`, `_sum` and `_count` samples of a histogram (after its
    /// [`family`](Self::family) line).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, bucket) in h.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| number(*b));
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds());
        // The count is the last bucket's cumulative value, so the page is
        // consistent even while observations race with the scrape.
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    /// The standard `process_*` families of this process, from /proc/self.
    pub fn process(&mut self) {
        let Some(own) = crate::process::usage() else {
            return;
        };
        self.single(
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time spent, in seconds.",
            own.cpu_seconds,
        );
        self.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size, in bytes.",
            own.rss_bytes as f64,
        );
        self.single(
            "process_threads",
            Kind::Gauge,
            "Threads of the process.",
            own.threads as f64,
        );
        if let Some(fds) = own.open_fds {
            self.single(
                "process_open_fds",
                Kind::Gauge,
                "Open file descriptors.",
                fds as f64,
            );
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// A sample value: integers without a fraction, the rest as Rust prints them.
fn number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_help_type_and_escaped_labels() {
        let mut page = Exposition::new();
        page.family("x_total", Kind::Counter, "Things.\nMore.");
        page.sample("x_total", &[("store", "a\"b\\c")], 3.0);
        page.sample("x_total", &[], 0.25);
        let text = page.finish();
        assert_eq!(
            text,
            "# HELP x_total Things.\\nMore.\n# TYPE x_total counter\nx_total{store=\"a\\\"b\\\\c\"} 3\nx_total 0.25\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        let mut page = Exposition::new();
        page.family("lat_seconds", Kind::Histogram, "Latency.");
        page.histogram("lat_seconds", &[("a", "b")], &h);
        let text = page.finish();
        assert!(
            text.contains("lat_seconds_bucket{a=\"b\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{a=\"b\",le=\"0.025\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{a=\"b\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{a=\"b\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count{a=\"b\"} 3\n"), "{text}");
        assert!(
            text.contains("lat_seconds_sum{a=\"b\"} 60.0201\n"),
            "{text}"
        );
        assert_eq!(h.quantile(0.5), Some(0.025));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn own_process_figures_are_exposed() {
        let mut page = Exposition::new();
        page.process();
        let text = page.finish();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(text.contains(name), "{name} missing in {text}");
        }
    }
}
