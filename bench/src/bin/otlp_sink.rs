//! `otlp_sink`: a minimal OTLP/gRPC trace receiver that accepts every export
//! and counts it, so a reporter can be measured with trace export on against
//! something that really takes the spans (rather than an endpoint where
//! nothing listens, where the exporter's failures are the cost).
//!
//! ```text
//! otlp_sink --listen 127.0.0.1:4317 &
//! loadgen --reporter-env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 ...
//! ```
//!
//! Every `--every` (and when it ends, on Ctrl-C or SIGTERM) it prints on
//! stderr the export requests and spans received so far and the spans per
//! second since the last line, with the span names seen most. It only counts:
//! nothing is stored or decoded beyond the protobuf messages.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// Accepts OTLP/gRPC trace exports and counts the spans.
#[derive(Debug, Parser)]
#[command(name = "otlp_sink", max_term_width = 100)]
struct Args {
    /// Address to serve OTLP/gRPC on.
    #[arg(long, default_value = "127.0.0.1:4317")]
    listen: SocketAddr,

    /// How often to print the counts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    every: Duration,
}

/// What was received.
#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    spans: u64,
    by_name: HashMap<String, u64>,
}

impl Counts {
    fn add(&mut self, request: &ExportTraceServiceRequest) {
        self.requests += 1;
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans);
        for span in spans {
            self.spans += 1;
            match self.by_name.get_mut(&span.name) {
                Some(n) => *n += 1,
                None => {
                    self.by_name.insert(span.name.clone(), 1);
                }
            }
        }
    }

    /// `name count, ...`, most first (ties by name).
    fn top(&self, n: usize) -> String {
        let mut names: Vec<_> = self.by_name.iter().collect();
        names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        names
            .iter()
            .take(n)
            .map(|(name, count)| format!("{name} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Sink(Arc<Mutex<Counts>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&request);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return std::process::ExitCode::FAILURE;
            }
        };
        eprintln!("otlp_sink: listening on {}", args.listen);
        let server = tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(Sink(Arc::clone(&counts)))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                hostpulse_bench::interrupted(),
            );
        let mut last = (Instant::now(), 0u64);
        let report = async {
            let mut tick = tokio::time::interval(args.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                last = print(&counts, last);
            }
        };
        tokio::select! {
            r = server => {
                if let Err(e) = r {
                    eprintln!("error: serving: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            () = report => {}
        }
        print(&counts, last);
        std::process::ExitCode::SUCCESS
    })
}

/// One line of counts; returns the new `(time, spans)` to compare with.
fn print(counts: &Mutex<Counts>, (at, spans_then): (Instant, u64)) -> (Instant, u64) {
    let c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let secs = now.duration_since(at).as_secs_f64().max(1e-9);
    eprintln!(
        "otlp_sink: {} requests, {} spans ({:.0} spans/s since last line); {}",
        c.requests,
        c.spans,
        c.spans.saturating_sub(spans_then) as f64 / secs,
        c.top(6)
    );
    (now, c.spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(names: &[&str]) -> ExportTraceServiceRequest {
        let spans = names
            .iter()
            .map(|n| Span {
                name: (*n).to_string(),
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn counts_spans_by_name() {
        let mut c = Counts::default();
        c.add(&request(&["batch", "batch", "stream"]));
        c.add(&request(&["store.flush", "batch"]));
        assert_eq!((c.requests, c.spans), (2, 5));
        assert_eq!(c.top(2), "batch 3, store.flush 1");
    }
}
