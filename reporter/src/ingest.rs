//! `Ingest.Stream`: one gatherer's stream, from Hello to its end.
//!
//! ```text
//! Hello ──► checks (version, node id, [`identity`]) ──► register ──► Welcome(config)
//!   loop: Batch ──► sequence check ──► admission (normalise, decode, rules,
//!         time window: crate::admission) ──► intake.write ──► Ack ──► Tail
//!         config reloaded          ──► GathererConfig (when this node's changed)
//!         newer stream, same node  ──► ABORTED
//!         stream age reached       ──► UNAVAILABLE (reconnect: rebalances replicas)
//!         reporter shutting down   ──► UNAVAILABLE
//! ```
//!
//! Every violation ends only this stream, with a precise status:
//! INVALID_ARGUMENT for undecodable content, FAILED_PRECONDITION for protocol
//! order (batch before hello, second hello, sequence going backwards,
//! unsupported version), RESOURCE_EXHAUSTED for sizes and definition counts.
//! Batches of one stream are handled in order and each is acknowledged only
//! after the intake (the spool) made it durable, so an acknowledgement covers every earlier
//! batch too.

use std::net::SocketAddr;
use std::sync::Arc;

use hostpulse_proto::PROTOCOL_VERSION;
use hostpulse_proto::codec::{CodecError, StreamDefs};
use hostpulse_proto::pb::{self, gatherer_message, reporter_message};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::identity::{self, Credential};
use crate::intake::AcceptedBatch;
use crate::registry::StreamId;
use crate::state::Shared;

/// The `Ingest` service.
pub struct IngestService {
    shared: Arc<Shared>,
}

impl IngestService {
    /// A service over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        IngestService { shared }
    }
}

type Outbound = mpsc::Sender<Result<pb::ReporterMessage, Status>>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    type StreamStream = ReceiverStream<Result<pb::ReporterMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::GathererMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request.remote_addr();
        let place = request
            .extensions()
            .get::<crate::limits::StreamPlace>()
            .cloned();
        let credential = request.extensions().get::<Credential>().cloned();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let shared = Arc::clone(&self.shared);
        let span = tracing::info_span!(
            "stream",
            peer = %peer.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
            node = tracing::field::Empty,
        );
        tokio::spawn(
            async move {
                let mut session = Session {
                    shared,
                    tx,
                    peer,
                    credential,
                    id: None,
                    node: Arc::from(""),
                    place,
                };
                let result = session.run(inbound).await;
                session.finish(result).await;
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Session {
    shared: Arc<Shared>,
    tx: Outbound,
    peer: Option<SocketAddr>,
    /// What authenticated the stream; bounds the node ids of its Hello.
    credential: Option<Credential>,
    id: Option<StreamId>,
    node: Arc<str>,
    /// The stream's place under --max-pending-streams / --max-streams.
    place: Option<crate::limits::StreamPlace>,
}

/// How a session ended without an error worth a status.
enum End {
    /// The gatherer closed its side, or went away.
    Closed,
}

impl Session {
    async fn send(&self, message: reporter_message::Message) -> Result<(), End> {
        let msg = pb::ReporterMessage {
            message: Some(message),
        };
        self.tx.send(Ok(msg)).await.map_err(|_| End::Closed)
    }

    async fn run(&mut self, mut inbound: Streaming<pb::GathererMessage>) -> Result<End, Status> {
        let limits = self.shared.limits.clone();
        let first = match tokio::time::timeout(limits.hello_timeout, inbound.message()).await {
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no Hello within {:?} of opening the stream",
                    limits.hello_timeout
                )));
            }
            Ok(msg) => msg,
        };
        let hello = match inbound_message(first)? {
            None => return Ok(End::Closed),
            Some(gatherer_message::Message::Hello(h)) => h,
            Some(gatherer_message::Message::Batch(_)) => {
                return Err(Status::failed_precondition(
                    "a Batch arrived before Hello: the first message of a stream must be Hello",
                ));
            }
        };
        check_hello(&hello)?;
        if let Some(place) = &self.place {
            place.admit()?;
        }
        let peer = self
            .peer
            .map_or_else(|| "unknown".to_string(), |p| p.to_string());
        // Before registering: a refused claim must not end the real node's stream.
        identity::admit(
            self.credential.as_ref(),
            &hello.node_id,
            &peer,
            &self.shared.auth,
        )?;
        let (id, mut superseded) = self.shared.registry.register(&hello, peer.clone());
        self.id = Some(id);
        self.node = Arc::from(hello.node_id.as_str());
        tracing::Span::current().record("node", hello.node_id.as_str());
        self.shared.metrics.streams_open.add(1);
        self.shared.metrics.streams_opened.inc();

        let mut config_rx = self.shared.config.clone();
        let mut sent_config = config_rx.borrow_and_update().for_node(&hello.node_id);
        self.shared.registry.config_sent(id, sent_config.generation);
        let welcome = pb::Welcome {
            protocol_version: PROTOCOL_VERSION,
            reporter_id: self.shared.reporter_id.clone(),
            config: Some(sent_config.clone()),
            accepts_text: true,
        };
        if self
            .send(reporter_message::Message::Welcome(welcome))
            .await
            .is_err()
        {
            return Ok(End::Closed);
        }
        tracing::info!(
            node = %hello.node_id, hostname = %hello.hostname, %peer,
            version = %hello.agent_version, first_sequence = hello.first_sequence,
            dropped_batches = hello.dropped_batches, "gatherer connected"
        );
        if hello.dropped_batches > 0 {
            tracing::warn!(
                node = %hello.node_id, dropped_batches = hello.dropped_batches,
                "the gatherer's buffer overflowed while it could not deliver: those batches are lost"
            );
        }

        let age = limits.max_age.mul_f64(0.85 + 0.15 * fastrand::f64());
        let deadline = tokio::time::sleep_until(Instant::now() + age);
        tokio::pin!(deadline);
        let mut shutdown = self.shared.shutdown.clone();
        let mut defs = StreamDefs::new(limits.max_definitions);
        let mut memory = crate::budget::StreamCharge::new(&limits.memory);
        let mut last: Option<u64> = None;
        loop {
            tokio::select! {
                biased;
                _ = &mut superseded => {
                    return Err(Status::aborted("a newer stream from the same node replaced this one"));
                }
                _ = shutdown.changed() => {
                    return Err(Status::unavailable("the reporter is shutting down; reconnect"));
                }
                _ = &mut deadline => {
                    return Err(Status::unavailable(
                        "the stream reached its maximum age; reconnect (spreads gatherers across replicas)",
                    ));
                }
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let fresh = config_rx.borrow_and_update().for_node(&hello.node_id);
                    if fresh != sent_config && fresh.generation != 0 {
                        sent_config = fresh.clone();
                        self.shared.registry.config_sent(id, fresh.generation);
                        tracing::info!(node = %hello.node_id, generation = fresh.generation, "pushing configuration");
                        if self.send(reporter_message::Message::Config(fresh)).await.is_err() {
                            return Ok(End::Closed);
                        }
                    }
                }
                msg = inbound.message() => {
                    let batch = match inbound_message(msg)? {
                        None => return Ok(End::Closed),
                        Some(gatherer_message::Message::Hello(_)) => {
                            return Err(Status::failed_precondition("a second Hello on one stream"));
                        }
                        Some(gatherer_message::Message::Batch(b)) => b,
                    };
                    let mut batch = batch;
                    let arrived = std::time::Instant::now();
                    let span = tracing::debug_span!("batch", sequence = batch.sequence, samples = tracing::field::Empty);
                    if batch.sequence == 0 {
                        return Err(Status::invalid_argument("batch sequence 0: sequences start at 1"));
                    }
                    if let Some(prev) = last.filter(|&p| batch.sequence <= p) {
                        return Err(Status::failed_precondition(format!(
                            "sequence went backwards: batch {} after batch {prev}",
                            batch.sequence
                        )));
                    }
                    let mut in_flight = memory.before_decode(&batch, defs.len()).map_err(|e| e.status())?;
                    let admission = &self.shared.admission;
                    admission.normalise(&mut batch);
                    let mut decoded = span.in_scope(|| defs.decode(&batch)).map_err(|e| codec_status(&e, batch.sequence))?;
                    memory.after_decode(defs.len(), &batch, decoded.rows.len(), &mut in_flight);
                    admission.check(&decoded)?;
                    let dropped = admission.window(&mut batch, &mut decoded, std::time::SystemTime::now());
                    let samples = decoded.samples as u64;
                    span.record("samples", samples);
                    let accepted = Arc::new(AcceptedBatch {
                        node: Arc::clone(&self.node),
                        stored: defs.complete(&batch),
                        decoded,
                    });
                    if let Err(e) = self.shared.intake.write(Arc::clone(&accepted)).instrument(span).await {
                        self.shared.metrics.intake_errors.inc();
                        return Err(Status::unavailable(format!("batch {} not stored: {e}", batch.sequence)));
                    }
                    last = Some(batch.sequence);
                    self.shared.registry.acked(id, batch.sequence, samples);
                    let ack = pb::Ack {
                        sequence: batch.sequence,
                        dropped_samples: dropped.samples,
                        dropped_reason: dropped.reason,
                    };
                    if self.send(reporter_message::Message::Ack(ack)).await.is_err() {
                        return Ok(End::Closed);
                    }
                    self.shared.metrics.ack_seconds.observe(arrived.elapsed());
                    self.shared.metrics.batches.inc();
                    self.shared.metrics.samples.add(samples);
                    self.shared.tail.publish(&accepted);
                }
            }
        }
    }

    async fn finish(&mut self, result: Result<End, Status>) {
        if let Some(id) = self.id {
            self.shared.registry.deregister(id);
            self.shared.metrics.streams_open.add(-1);
        }
        self.shared.metrics.stream_ended(match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        });
        match result {
            Ok(End::Closed) => tracing::info!(node = %self.node, "gatherer disconnected"),
            Err(status) => {
                match status.code() {
                    // The peer vanished (reset, broken connection): not a verdict on it.
                    tonic::Code::Unknown | tonic::Code::Cancelled => {
                        tracing::info!(node = %self.node, message = status.message(), "connection to the gatherer lost");
                        return;
                    }
                    tonic::Code::Unavailable | tonic::Code::Aborted => {
                        tracing::info!(node = %self.node, code = ?status.code(), message = status.message(), "stream ended")
                    }
                    _ => tracing::warn!(
                        node = %self.node, peer = ?self.peer, code = ?status.code(),
                        message = status.message(), "stream rejected"
                    ),
                }
                let _ = self.tx.send(Err(status)).await;
            }
        }
    }
}

/// Validates a Hello.
fn check_hello(hello: &pb::Hello) -> Result<(), Status> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "protocol version {} is not supported: this reporter speaks version {PROTOCOL_VERSION}",
            hello.protocol_version
        )));
    }
    hostpulse_proto::rules::check_node_id(&hello.node_id)
        .map_err(|e| Status::invalid_argument(format!("Hello.node_id refused: {e}")))?;
    Ok(())
}

/// Unwraps one inbound message, mapping transport errors to precise statuses.
fn inbound_message(
    msg: Result<Option<pb::GathererMessage>, Status>,
) -> Result<Option<gatherer_message::Message>, Status> {
    match msg {
        Ok(None) => Ok(None),
        Ok(Some(pb::GathererMessage { message: None })) => Err(Status::invalid_argument(
            "a message with neither Hello nor Batch",
        )),
        Ok(Some(pb::GathererMessage { message: Some(m) })) => Ok(Some(m)),
        Err(status) => Err(match status.code() {
            // tonic reports a message over its decoding limit as OUT_OF_RANGE
            // and undecodable bytes as INTERNAL; to the sender both are its fault.
            tonic::Code::OutOfRange => Status::resource_exhausted(status.message().to_string()),
            tonic::Code::Internal => {
                Status::invalid_argument(format!("malformed message: {}", status.message()))
            }
            _ => status,
        }),
    }
}

fn codec_status(e: &CodecError, sequence: u64) -> Status {
    let message = format!("batch {sequence}: {e}");
    match e {
        CodecError::TooManyDefinitions(_) => Status::resource_exhausted(message),
        _ => Status::invalid_argument(message),
    }
}
