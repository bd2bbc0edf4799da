//! The gatherer's session state machine (`gatherer::stream::session`)
//! against the real reporter library in-process ([`start_reporter`]):
//! batches pushed while no reporter listens stay in the gatherer's buffer,
//! and once a reporter is back on the same address the session reconnects
//! by itself and resends every unacknowledged batch, in order, exactly as
//! buffered.

use std::net::SocketAddr;
use std::time::Duration;

use gatherer::roots::Roots;
use gatherer::row::{Row, Value};
use gatherer::stream::buffer::{Buffer, BufferOptions};
use gatherer::stream::credentials::Credentials;
use gatherer::stream::targets::Target;
use gatherer::stream::{SharedBuffer, StreamOptions, session};
use hostpulse_testkit::batch::now_ns;
use hostpulse_testkit::{fixture, free_port, sink_rows, start_reporter};
use tokio::sync::watch;

/// Waits (polling) until `check` holds; panics with `what` after 30 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One `load` row with `load1` = `n`: which batch a stored row came from.
fn push(buffer: &SharedBuffer, n: u32) -> u64 {
    let row = Row::from_parts(
        "load",
        now_ns(),
        &[],
        &[("load1", Value::Float(f64::from(n)))],
    );
    let sequence = buffer.lock().push(&[row], &[]);
    buffer.pushed.notify_one();
    sequence
}

/// The `load1` values the reporter's store holds, in order.
fn stored(jsonl: &std::path::Path) -> Vec<f64> {
    sink_rows(jsonl)
        .table("load")
        .iter()
        .filter_map(|r| r["fields"]["load1"].as_f64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_reconnects_and_resends_what_was_not_acknowledged() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = format!("--listen={addr}");
    let (_, first) = start_reporter(&[&listen]).await;

    let buffer = SharedBuffer::new(
        Buffer::open(BufferOptions {
            dir: None,
            max_bytes: 1 << 20,
            memory_bytes: 1 << 20,
        })
        .unwrap(),
    );
    let targets = vec![Target::parse(&format!("http://{addr}")).unwrap()];
    let options = StreamOptions {
        credentials: Credentials::new(None, None, None, None, &targets).unwrap(),
        targets,
        node_id: "session-test".into(),
        labels: Vec::new(),
        interval: Duration::from_secs(1),
        families: Vec::new(),
        cycles: None,
    };
    let (config, _) = watch::channel(None);
    let (stop, stopped) = watch::channel(false);
    let session = tokio::spawn(session::run(
        buffer.clone(),
        options,
        Roots::under(fixture("debian12-vm")),
        config,
        stopped,
    ));

    assert_eq!(push(&buffer, 1), 1);
    until("batch 1 acknowledged", || buffer.lock().acked() == 1).await;
    until("batch 1 stored", || stored(&first.jsonl) == [1.0]).await;

    // The reporter goes away; the gatherer keeps buffering.
    drop(first);
    assert_eq!(push(&buffer, 2), 2);
    assert_eq!(push(&buffer, 3), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(buffer.lock().acked(), 1, "nothing acknowledged while down");
    assert_eq!(buffer.lock().len(), 2, "batches 2 and 3 kept");

    // A reporter on the same address again (an empty spool and store): the
    // session reconnects after its backoff and resends 2 and 3, in order.
    let (_, second) = start_reporter(&[&listen]).await;
    until("batches 2 and 3 acknowledged", || {
        buffer.lock().acked() == 3
    })
    .await;
    until("batches 2 and 3 stored", || {
        stored(&second.jsonl) == [2.0, 3.0]
    })
    .await;
    assert!(buffer.lock().is_empty());

    // And the stream goes on: a new batch flows straight through.
    assert_eq!(push(&buffer, 4), 4);
    until("batch 4 stored", || {
        stored(&second.jsonl) == [2.0, 3.0, 4.0]
    })
    .await;

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), session).await;
}
