//! The ingest session state machine against a client that breaks the
//! protocol, in-process: the real reporter library ([`start_reporter`]:
//! the binary's services, layers and flags, a temporary spool and a
//! JSON-lines store) on 127.0.0.1:0, a client written from the `.proto`
//! alone. Each violation ends only its own stream, with the exact gRPC
//! status and message a gatherer's operator reads in its log; the
//! reporter keeps serving the next stream.
//!
//! The end-to-end suite (`tests/tests/pipeline.rs`) proves the same with
//! the real binaries and grpcurl; these run in milliseconds and pin the
//! messages word for word.

use std::time::Duration;

use hostpulse_proto::PROTOCOL_VERSION;
use hostpulse_proto::pb::{self, gatherer_message::Message, reporter_message};
use hostpulse_proto::row::{Row, Value};
use hostpulse_testkit::batch::{batch, hello, message, now_ns};
use hostpulse_testkit::grpc::raw_stream_async;
use hostpulse_testkit::{send_messages, sink_rows, start_reporter};
use prost::Message as _;

/// A row every reporter admits: the gatherer's `load` table, now.
fn load_row(load1: f64) -> Row {
    Row::from_parts(
        "load",
        now_ns(),
        &[],
        &[
            ("load1", Value::Float(load1)),
            ("procs_running", Value::Int(3)),
        ],
    )
}

fn hello_with(node: &str, version: u32) -> pb::GathererMessage {
    pb::GathererMessage {
        message: Some(Message::Hello(pb::Hello {
            protocol_version: version,
            node_id: node.into(),
            ..Default::default()
        })),
    }
}

fn sequence(n: u64) -> pb::GathererMessage {
    message(pb::Batch {
        sequence: n,
        ..Default::default()
    })
}

#[tokio::test]
async fn a_well_behaved_stream_is_welcomed_acknowledged_stored_and_ends_cleanly() {
    let (_, reporter) = start_reporter(&[]).await;
    let reply = send_messages(
        reporter.port(),
        vec![
            hello("n1"),
            message(batch(1, &[load_row(0.25)])),
            message(batch(2, &[load_row(0.5)])),
        ],
    )
    .await;
    assert_eq!(reply.status, "Ok", "{reply:?}");
    assert!(
        matches!(
            reply.replies.first().and_then(|m| m.message.as_ref()),
            Some(reporter_message::Message::Welcome(_))
        ),
        "Welcome first: {reply:?}"
    );
    let acked: Vec<u64> = reply.acks().iter().map(|a| a.sequence).collect();
    assert_eq!(acked, [1, 2]);
    // Acknowledged means spooled: the drainer then writes both rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = sink_rows(&reporter.jsonl);
        let loads: Vec<f64> = rows
            .table("load")
            .iter()
            .filter_map(|r| r["fields"]["load1"].as_f64())
            .collect();
        if loads.len() == 2 {
            assert_eq!(loads, [0.25, 0.5]);
            assert!(rows.table("load").iter().all(|r| r["node"] == "n1"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows stored: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn protocol_violations_end_their_stream_with_the_exact_status() {
    let (_, reporter) = start_reporter(&[]).await;
    let port = reporter.port();
    let unknown_series = pb::Batch {
        sequence: 1,
        groups: vec![pb::Group {
            series_delta: vec![5],
            ints: vec![1],
            ..Default::default()
        }],
        ..Default::default()
    };
    let unsupported = format!(
        "FailedPrecondition: protocol version {} is not supported: this reporter speaks version {PROTOCOL_VERSION}",
        PROTOCOL_VERSION + 6
    );
    // Series 0 of row key 7, which the batch does not define.
    let orphan_series = pb::Batch {
        sequence: 1,
        series: vec![pb::Series {
            id: 0,
            row_key: 7,
            field: "load1".into(),
            kind: pb::ValueKind::Int as i32,
        }],
        ..Default::default()
    };
    // A well-formed batch, then its series 0 redefined as another field.
    let first = batch(1, &[load_row(1.0)]);
    let mut redefined = batch(2, &[load_row(2.0)]);
    redefined.series[0].field = "load5".into();
    // Two series named, one value given.
    let mut short = batch(1, &[load_row(1.0)]);
    short.groups[0].ints.clear();
    // (what, messages, the status, the sequences acknowledged before it)
    let cases: Vec<(&str, Vec<pb::GathererMessage>, &str, &[u64])> = vec![
        (
            "batch before Hello",
            vec![message(batch(1, &[load_row(1.0)]))],
            "FailedPrecondition: a Batch arrived before Hello: the first message of a stream must be Hello",
            &[],
        ),
        (
            "second Hello",
            vec![hello("n1"), hello("n1")],
            "FailedPrecondition: a second Hello on one stream",
            &[],
        ),
        (
            "unsupported protocol version",
            vec![hello_with("n1", PROTOCOL_VERSION + 6)],
            &unsupported,
            &[],
        ),
        (
            "sequence 0",
            vec![hello("n1"), sequence(0)],
            "InvalidArgument: batch sequence 0: sequences start at 1",
            &[],
        ),
        (
            "sequence going backwards",
            vec![hello("n1"), sequence(5), sequence(4)],
            "FailedPrecondition: sequence went backwards: batch 4 after batch 5",
            &[5],
        ),
        (
            "unknown series id",
            vec![hello("n1"), message(unknown_series)],
            "InvalidArgument: batch 1: series id 5 is not defined on this stream",
            &[],
        ),
        (
            "a series of an undefined row key",
            vec![hello("n1"), message(orphan_series)],
            "InvalidArgument: batch 1: series 0 refers to row key 7, which is not defined",
            &[],
        ),
        (
            "a series redefined with other content",
            vec![hello("n1"), message(first), message(redefined)],
            "InvalidArgument: batch 2: series id 0 is redefined with different content",
            &[1],
        ),
        (
            "fewer values than series",
            vec![hello("n1"), message(short)],
            "InvalidArgument: batch 1: group 0 has fewer values than series",
            &[],
        ),
        (
            "a message with neither Hello nor Batch",
            vec![hello("n1"), pb::GathererMessage { message: None }],
            "InvalidArgument: a message with neither Hello nor Batch",
            &[],
        ),
    ];
    for (what, messages, expected, acked) in cases {
        let reply = send_messages(port, messages).await;
        assert_eq!(reply.status, expected, "{what}");
        let sequences: Vec<u64> = reply.acks().iter().map(|a| a.sequence).collect();
        assert_eq!(sequences, acked, "{what}: what was acknowledged");
    }
    // The reporter still serves the next stream.
    let reply = send_messages(port, vec![hello("n1"), sequence(1)]).await;
    assert_eq!(reply.status, "Ok");
    assert_eq!(reply.acks().len(), 1);
}

#[tokio::test]
async fn a_node_id_that_is_not_one_is_refused_in_the_hello() {
    let (_, reporter) = start_reporter(&[]).await;
    let long = "n".repeat(254);
    for (bad, problem) in [
        ("", "is empty"),
        (" n1", "has leading or trailing whitespace"),
        ("n\u{7}1", "holds control characters"),
        (long.as_str(), "is longer than 253 bytes"),
    ] {
        let reply = send_messages(reporter.port(), vec![hello(bad), sequence(1)]).await;
        assert!(
            reply
                .status
                .starts_with("InvalidArgument: Hello.node_id refused: node id ")
                && reply.status.ends_with(problem),
            "{bad:?}: {}",
            reply.status
        );
        assert!(reply.replies.is_empty(), "no Welcome for {bad:?}");
    }
}

#[tokio::test]
async fn definitions_past_the_stream_limit_are_resource_exhausted() {
    let (_, reporter) = start_reporter(&["--max-series-per-stream", "4"]).await;
    let wide = Row::from_parts(
        "load",
        now_ns(),
        &[],
        &[
            ("load1", Value::Float(1.0)),
            ("load5", Value::Float(1.0)),
            ("load15", Value::Float(1.0)),
            ("procs_running", Value::Int(1)),
            ("procs_total", Value::Int(1)),
        ],
    );
    let reply = send_messages(
        reporter.port(),
        vec![hello("n1"), message(batch(1, &[wide]))],
    )
    .await;
    assert_eq!(
        reply.status, "ResourceExhausted: batch 1: more than 4 definitions on one stream",
        "{reply:?}"
    );
    assert!(reply.acks().is_empty());
}

#[tokio::test]
async fn a_message_past_the_size_limit_is_resource_exhausted() {
    let (_, reporter) = start_reporter(&["--max-message-bytes", "4096"]).await;
    let mut padded = hello("n1");
    if let Some(Message::Hello(h)) = &mut padded.message {
        h.hostname = "x".repeat(8192);
    }
    let size = padded.encoded_len();
    let reply = send_messages(reporter.port(), vec![padded]).await;
    assert_eq!(
        reply.status,
        format!(
            "ResourceExhausted: a message of {size} bytes exceeds this reporter's limit of 4096 bytes"
        )
    );
    assert!(reply.replies.is_empty());
}

#[tokio::test]
async fn bytes_that_are_not_a_message_are_invalid_argument() {
    let (_, reporter) = start_reporter(&[]).await;
    let status = raw_stream_async(reporter.port(), vec![vec![0xff; 16]], false).await;
    assert!(
        status.starts_with("InvalidArgument: malformed message: "),
        "{status}"
    );
    // A Hello, then garbage: the garbage ends the stream the same way.
    let status = raw_stream_async(
        reporter.port(),
        vec![hello("n1").encode_to_vec(), vec![0x0a, 0xff, 0xff]],
        false,
    )
    .await;
    assert!(
        status.starts_with("InvalidArgument: malformed message: "),
        "{status}"
    );
}

#[tokio::test]
async fn a_stream_that_never_says_hello_is_ended_after_the_hello_timeout() {
    let (_, reporter) = start_reporter(&["--hello-timeout", "300ms"]).await;
    let status = raw_stream_async(reporter.port(), Vec::new(), true).await;
    assert_eq!(
        status,
        "DeadlineExceeded: no Hello within 300ms of opening the stream"
    );
}

#[tokio::test]
async fn a_newer_stream_of_the_same_node_replaces_the_older_one() {
    let (_, reporter) = start_reporter(&[]).await;
    let port = reporter.port();
    // The older stream says Hello and stays open.
    let older = tokio::spawn(raw_stream_async(
        port,
        vec![hello("twin").encode_to_vec()],
        true,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reporter.shared.registry.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the older stream registered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let newer = send_messages(port, vec![hello("twin"), sequence(1)]).await;
    assert_eq!(newer.status, "Ok");
    assert_eq!(
        older.await.unwrap(),
        "Aborted: a newer stream from the same node replaced this one"
    );
}

#[tokio::test]
async fn a_stream_past_its_maximum_age_is_told_to_reconnect() {
    let (_, reporter) = start_reporter(&["--max-connection-age", "1s"]).await;
    let status = raw_stream_async(reporter.port(), vec![hello("n1").encode_to_vec()], true).await;
    assert_eq!(
        status,
        "Unavailable: the stream reached its maximum age; reconnect (spreads gatherers across replicas)"
    );
}
