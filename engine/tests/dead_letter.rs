//! Goal: a message delivered `max_deliveries` times without an ack goes to
//! the dead-letter stream with its history in headers and is acknowledged in
//! the source; delivery counts are durable, so a message that crashes its
//! consumer process every time still gets there after N restarts.
//!
//! Method: in process, nack a message until it is dead-lettered; then a child
//! process that aborts whenever it receives the poison message is run again
//! and again until the poison message reaches the dead-letter stream.

pub mod common;

use common::{process::rerun, scratch_store, sim};
use spool::{dead_letter_headers as h, ConsumerConfig, Durability, Options, Store};
use std::time::Duration;

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .max_deliveries(3)
        .dead_letter("dlq")
}

#[test]
fn nacked_too_often_goes_to_the_dead_letter_stream() {
    let (_dir, store) = scratch_store();
    let s = store.stream("orders").unwrap();
    s.send_message(spool::Message::new(b"bad order").header("id", "7"))
        .unwrap();
    s.send(b"good order").unwrap();
    let c = s.consumer_with("billing", config()).unwrap();
    for attempt in 1..=3 {
        let d = c.try_receive().unwrap().unwrap();
        assert_eq!((d.payload(), d.attempt()), (&b"bad order"[..], attempt));
        d.nack_with(None, Some("card declined")).unwrap();
    }
    // The fourth time it is dead-lettered instead, and the next one comes.
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.payload(), b"good order");
    d.ack().unwrap();
    assert_eq!(c.stats().dead_lettered, 1);
    assert_eq!(c.stats().buckets[0].ack_floor, 2);
    let dlq = store.stream("dlq").unwrap();
    let r = dlq.read(0).unwrap().expect("dead letter");
    assert_eq!(r.payload(), b"bad order");
    assert_eq!(r.header("id"), Some(&b"7"[..]), "original headers kept");
    assert_eq!(r.header(h::STREAM), Some(&b"orders"[..]));
    assert_eq!(r.header(h::CONSUMER), Some(&b"billing"[..]));
    assert_eq!(r.header(h::OFFSET), Some(&b"0"[..]));
    assert_eq!(r.header(h::PRIORITY), Some(&b"0"[..]));
    assert_eq!(r.header(h::ATTEMPTS), Some(&b"3"[..]));
    assert_eq!(r.header(h::REASON), Some(&b"card declined"[..]));
}

/// The child: processes messages, acking all but the poison one, on which it
/// crashes. Does nothing unless the parent set the variable.
#[test]
fn dead_letter_child() {
    let Ok(path) = std::env::var("SPOOL_DLQ_CHILD") else {
        return;
    };
    let store = Store::open(&path, Options::default()).unwrap();
    let c = store
        .stream("orders")
        .unwrap()
        .consumer_with("billing", config())
        .unwrap();
    while let Some(d) = c.receive(Duration::from_millis(200)).unwrap() {
        if d.payload() == b"poison" {
            std::process::abort();
        }
        d.ack().unwrap();
    }
}

#[test]
fn poison_message_reaches_the_dead_letter_stream_across_crashes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let s = store.stream("orders").unwrap();
        s.send(b"first").unwrap();
        s.send(b"poison").unwrap();
        s.send(b"last").unwrap();
        s.consumer_with("billing", config()).unwrap();
    }
    let mut crashes = 0;
    for _ in 0..10 {
        let status = rerun("dead_letter_child")
            .env("SPOOL_DLQ_CHILD", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            break;
        }
        crashes += 1;
    }
    assert_eq!(
        crashes, 3,
        "the poison message crashed the consumer exactly max_deliveries times"
    );
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let c = store.stream("orders").unwrap().consumer("billing").unwrap();
    assert_eq!(c.stats().buckets[0].ack_floor, 3, "everything is done");
    let r = store
        .stream("dlq")
        .unwrap()
        .read(0)
        .unwrap()
        .expect("dead letter");
    assert_eq!(r.payload(), b"poison");
    assert_eq!(r.header(h::ATTEMPTS), Some(&b"3"[..]));
}

/// Regression: when the dead-letter stream refused a message (a full disk),
/// the message was taken from the consumer's queue and never offered again.
#[test]
fn a_refused_dead_letter_is_tried_again() {
    use spool::io::sim::SimFs;
    let fs = SimFs::new();
    let store = Store::open("/d", sim::options(&fs, Durability::Never)).unwrap();
    let s = store.stream("orders").unwrap();
    s.send(b"poison").unwrap();
    let c = s.consumer_with("billing", config()).unwrap();
    for _ in 0..3 {
        c.try_receive().unwrap().unwrap().nack().unwrap();
    }
    // No room for the dead-letter stream's first segment.
    fs.set_capacity(0);
    assert!(c.try_receive().is_err());
    fs.set_capacity(u64::MAX);
    assert!(c.try_receive().unwrap().is_none(), "dead-lettered now");
    assert_eq!(c.stats().dead_lettered, 1);
    let r = store.stream("dlq").unwrap().read(0).unwrap().unwrap();
    assert_eq!(r.payload(), b"poison");
}
