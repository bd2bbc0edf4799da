//! Connection attempts, one stream each, until the gatherer stops.
//!
//! An attempt: pick the next reporter address, connect (5 s), open the
//! stream, send Hello, wait for Welcome (10 s), then exchange batches and
//! acknowledgements until the stream ends. How it ended decides the wait
//! before the next attempt:
//!
//! - the reporter recycled the stream (maximum age, a newer stream of this
//!   node, the reporter stopping): reconnect at once, through a new
//!   connection, so a load balancer can pick another replica;
//! - anything else (refused, reset, timeout, an error status): exponential
//!   backoff with jitter, 1 s to 30 s, reset after a stream got established;
//! - the same backoff when the reporter refused this gatherer's credentials
//!   (UNAUTHENTICATED, PERMISSION_DENIED) or TLS failed for a reason the
//!   operator must fix (an untrusted certificate, the wrong scheme): logged
//!   as an error with the reporter's message, collection and buffering go on
//!   so the batches reach the reporter once the files are fixed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use hostpulse_proto::PROTOCOL_VERSION;
use hostpulse_proto::codec::StreamSent;
use hostpulse_proto::pb::{self, gatherer_message, ingest_client::IngestClient, reporter_message};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument as _;

use super::backoff::Backoff;
use super::credentials::{self, Explained};
use super::targets::{Target, Targets};
use super::{SharedBuffer, StreamOptions, WINDOW};
use crate::collect::node_info::{self, Facts};
use crate::roots::Roots;

/// How one attempt ended.
enum Outcome {
    /// The gatherer is stopping.
    Stopped,
    /// The reporter asked for a reconnection (age, supersede, its shutdown).
    Recycled(String),
    /// It failed; `established` if a Welcome had been received.
    Failed { established: bool, reason: String },
    /// The reporter refused our credentials, or TLS failed in a way only the
    /// operator can fix.
    Refused(String),
}

/// Runs attempts until `stop` flips.
pub async fn run(
    buffer: SharedBuffer,
    options: StreamOptions,
    roots: Roots,
    config: watch::Sender<Option<pb::GathererConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut targets = Targets::new(options.targets.clone());
    let Ok(mut backoff) = Backoff::new(Duration::from_secs(1), Duration::from_secs(30)) else {
        return;
    };
    let metrics = crate::metrics::metrics();
    for attempt_no in 0u64.. {
        if *stop.borrow() {
            return;
        }
        if attempt_no > 0 {
            metrics.reconnects.inc();
        }
        let facts = node_info::read_facts(&roots);
        let span = tracing::info_span!("stream", node = %options.node_id, attempt = attempt_no + 1);
        let outcome = attempt(&mut targets, &buffer, &options, &facts, &config, &mut stop)
            .instrument(span)
            .await;
        buffer.lock().set_connected(false);
        metrics.connected.set(0);
        let delay = match outcome {
            Outcome::Stopped => return,
            Outcome::Recycled(reason) => {
                tracing::info!(%reason, "reporter recycled the stream; reconnecting");
                backoff.reset();
                Duration::from_millis(fastrand::u64(0..250))
            }
            Outcome::Failed {
                established,
                reason,
            } => {
                metrics.stream_failures.inc();
                if established {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                let held = buffer.lock().len();
                tracing::warn!(%reason, retry_in = ?delay, buffered_batches = held, "no reporter stream; collecting on and buffering");
                delay
            }
            Outcome::Refused(reason) => {
                let delay = backoff.next_delay();
                let held = buffer.lock().len();
                tracing::error!(%reason, retry_in = ?delay, buffered_batches = held, "no stream until the credentials named in the reason are fixed; collecting on and buffering");
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn attempt(
    targets: &mut Targets,
    buffer: &SharedBuffer,
    options: &StreamOptions,
    facts: &Facts,
    config: &watch::Sender<Option<pb::GathererConfig>>,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let failed = |reason: String| Outcome::Failed {
        established: false,
        reason,
    };
    let (target, addr) = match targets.next().await {
        Ok(t) => t,
        Err(reason) => return failed(reason),
    };
    let channel = match connect(&target, addr, options).await {
        Ok(c) => c,
        Err(Explained::Transport(reason)) => {
            return failed(format!("connecting to {addr} ({}): {reason}", target.host));
        }
        Err(Explained::Credentials(reason)) => {
            return Outcome::Refused(format!("{addr} ({}): {reason}", target.host));
        }
    };
    // Re-read at each attempt: a rotated token is used at the next reconnection.
    let authorization = match options.credentials.authorization() {
        Ok(a) => a,
        Err(reason) => return Outcome::Refused(reason),
    };
    // Batches go uncompressed: gzip cost more CPU per batch than collecting
    // it (tonic builds a fresh deflate state for every message; callgrind:
    // ~590,000 instructions a batch), while a steady batch is already ~3.4
    // bytes per sample. The reporter may still answer compressed.
    let mut client = IngestClient::new(channel)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(16 << 20);
    let (tx, rx) = mpsc::channel::<pb::GathererMessage>(WINDOW + 4);
    let hello = {
        let b = buffer.lock();
        pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: options.node_id.clone(),
            hostname: facts.hostname.clone().unwrap_or_default(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            facts: Some(to_pb(facts)),
            dropped_batches: b.dropped(),
            first_sequence: b.first_sequence(),
            config_generation: config.borrow().as_ref().map_or(0, |c| c.generation),
        }
    };
    let _ = tx
        .send(message(gatherer_message::Message::Hello(hello)))
        .await;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
    let mut inbound = match client.stream(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return status_outcome(&status, false),
    };
    let welcome = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
        Err(_) => return failed("no Welcome within 10s".into()),
        Ok(Err(status)) => return status_outcome(&status, false),
        Ok(Ok(Some(pb::ReporterMessage {
            message: Some(reporter_message::Message::Welcome(w)),
        }))) => w,
        Ok(Ok(_)) => return failed("the reporter's first message was not a Welcome".into()),
    };
    if let Some(c) = welcome.config {
        apply(config, c);
    }
    buffer.lock().set_connected(true);
    crate::metrics::metrics().connected.set(1);
    tracing::info!(reporter = %welcome.reporter_id, %addr, host = %target.host, "streaming to reporter");

    // A reporter from before text values ends the stream on a text series:
    // leave text fields out for it (counted, logged once per stream).
    let mut sent = StreamSent::for_reporter(welcome.accepts_text);
    // Sequence, when it was written, its samples: for the ack metrics.
    let mut in_flight: VecDeque<(u64, std::time::Instant, u64)> = VecDeque::new();
    let mut last_sent = buffer.lock().acked();
    let mut texts_counted = 0u64;
    let established = |reason: String| Outcome::Failed {
        established: true,
        reason,
    };
    loop {
        while in_flight.len() < WINDOW {
            let next = {
                let mut b = buffer.lock();
                b.next_after(last_sent).map(|(seq, batch)| {
                    let samples: usize = batch.groups.iter().map(|g| g.series_delta.len()).sum();
                    (seq, sent.wire_batch(b.dictionary(), &batch), samples as u64)
                })
            };
            let Some((seq, wire, samples)) = next else {
                break;
            };
            let not_sent = sent.dropped_texts() - texts_counted;
            if not_sent > 0 {
                if texts_counted == 0 {
                    tracing::warn!(
                        reporter = %welcome.reporter_id,
                        "this reporter does not store text values (an older version): text fields (node_events messages) are left out of its batches; upgrade it to keep them"
                    );
                }
                texts_counted += not_sent;
                crate::metrics::metrics().texts_not_sent.add(not_sent);
            }
            if tx
                .send(message(gatherer_message::Message::Batch(wire)))
                .await
                .is_err()
            {
                return established("the stream closed while sending".into());
            }
            in_flight.push_back((seq, std::time::Instant::now(), samples));
            crate::metrics::metrics().batches_sent.inc();
            last_sent = seq;
        }
        let pushed = buffer.pushed.notified();
        tokio::select! {
            () = pushed => {}
            msg = inbound.message() => match msg {
                Ok(Some(pb::ReporterMessage { message: Some(m) })) => match m {
                    reporter_message::Message::Ack(ack) => {
                        if ack.dropped_samples > 0 {
                            tracing::warn!(
                                batch = ack.sequence, dropped_samples = ack.dropped_samples,
                                reason = %ack.dropped_reason,
                                "the reporter stored this batch without some samples: their timestamps are outside its window; check this host's clock"
                            );
                        }
                        acknowledged(buffer, &mut in_flight, ack.sequence)
                    }
                    reporter_message::Message::Config(c) => apply(config, c),
                    reporter_message::Message::Welcome(_) => {
                        return established("the reporter sent a second Welcome".into());
                    }
                },
                Ok(Some(_)) => return established("an empty message from the reporter".into()),
                Ok(None) => return established("the reporter closed the stream".into()),
                Err(status) => return status_outcome(&status, true),
            },
            _ = stop.changed() => {
                // Let acknowledgements for what is in flight arrive, briefly.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while !in_flight.is_empty() {
                    tokio::select! {
                        msg = inbound.message() => match msg {
                            Ok(Some(pb::ReporterMessage { message: Some(reporter_message::Message::Ack(ack)) })) => {
                                acknowledged(buffer, &mut in_flight, ack.sequence);
                            }
                            Ok(Some(_)) => {}
                            _ => break,
                        },
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
                return Outcome::Stopped;
            }
        }
    }
}

/// A cumulative acknowledgement: frees the buffer up to `sequence` and
/// records what it covered.
fn acknowledged(
    buffer: &SharedBuffer,
    in_flight: &mut VecDeque<(u64, std::time::Instant, u64)>,
    sequence: u64,
) {
    let metrics = crate::metrics::metrics();
    {
        let mut b = buffer.lock();
        b.ack(sequence);
        metrics.observe_buffer(b.len(), b.bytes(), b.dropped());
    }
    buffer.acked.notify_waiters();
    while let Some(&(seq, sent_at, samples)) = in_flight.front() {
        if seq > sequence {
            break;
        }
        in_flight.pop_front();
        metrics.ack_seconds.observe(sent_at.elapsed());
        metrics.batches_acked.inc();
        metrics.samples_sent.add(samples);
    }
}

fn message(m: gatherer_message::Message) -> pb::GathererMessage {
    pb::GathererMessage { message: Some(m) }
}

fn apply(config: &watch::Sender<Option<pb::GathererConfig>>, c: pb::GathererConfig) {
    config.send_if_modified(|current| {
        if current.as_ref() == Some(&c) {
            false
        } else {
            *current = Some(c);
            true
        }
    });
}

/// Classifies an error status from the reporter.
fn status_outcome(status: &tonic::Status, established: bool) -> Outcome {
    let reason = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Aborted if established => Outcome::Recycled(reason),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Outcome::Refused(reason),
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            tracing::error!(
                %reason,
                "the reporter refused this gatherer's stream or batch (a version mismatch, or a row \
                 breaking its rules: see README \"What a batch may contain\"); the batch stays \
                 buffered and is sent again after reconnecting"
            );
            Outcome::Failed {
                established,
                reason,
            }
        }
        _ => Outcome::Failed {
            established,
            reason,
        },
    }
}

async fn connect(
    target: &Target,
    addr: SocketAddr,
    options: &StreamOptions,
) -> Result<Channel, Explained> {
    let scheme = if target.tls { "https" } else { "http" };
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let origin: http::Uri = format!("{scheme}://{host}:{}", target.port)
        .parse()
        .map_err(|e| Explained::Transport(format!("{e}")))?;
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| Explained::Transport(e.to_string()))?
        .origin(origin)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if target.tls {
        // Re-read at each attempt: rotated certificates need no restart.
        let tls = options
            .credentials
            .tls_config(&target.host)
            .map_err(Explained::Credentials)?;
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            Explained::Credentials(format!(
                "this gatherer's TLS settings (--tls-ca, --tls-cert, --tls-key) are refused: {}",
                credentials::error_chain(&e)
            ))
        })?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| options.credentials.explain(target, &e))
}

/// The Hello's facts.
pub fn to_pb(f: &Facts) -> pb::NodeFacts {
    let count = |v: Option<u64>| v.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    pb::NodeFacts {
        kernel: f.kernel.clone().unwrap_or_default(),
        os_name: f.os_name.clone().unwrap_or_default(),
        os_version: f.os_version.clone().unwrap_or_default(),
        os_pretty_name: f.os_pretty_name.clone().unwrap_or_default(),
        cpu_model: f.cpu_model.clone().unwrap_or_default(),
        arch: f.arch.clone().unwrap_or_default(),
        logical_cores: count(f.logical_cores),
        physical_cores: count(f.physical_cores),
        sockets: count(f.sockets),
        memory_total_bytes: f.memory_total_bytes.unwrap_or(0),
        boot_time_seconds: f.boot_time_seconds.unwrap_or(0),
        interfaces: f
            .interfaces
            .iter()
            .map(|i| pb::NetworkInterface {
                name: i.name.clone(),
                mac: i.mac.clone().unwrap_or_default(),
                mtu: count(i.mtu),
                speed_mbps: i.speed_mbps.unwrap_or(0),
                operstate: i.operstate.clone().unwrap_or_default(),
            })
            .collect(),
    }
}
