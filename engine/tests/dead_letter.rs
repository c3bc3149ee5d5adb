//! Goal: a message delivered `max_deliveries` times without an ack goes to
//! the dead-letter stream with its history in headers and is acknowledged in
//! the source; delivery counts are durable, so a message that crashes its
//! consumer process every time still gets there after N restarts; whatever
//! a message holds (headers up to the limit, a payload up to the message
//! limit), it leaves the queue; a consumer cannot dead-letter into its own
//! stream.
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

/// A message received once and nacked, so that the next receive
/// dead-letters it (`max_deliveries(1)`).
fn nack_once(c: &spool::Consumer) {
    let d = c.try_receive().unwrap().expect("the message");
    assert_eq!(d.attempt(), 1);
    d.nack().unwrap();
}

/// Regression: headers near the 64 KiB limit left no room for the
/// dead-letter headers; every receive failed, across restarts, and nothing
/// behind the message was delivered.
#[test]
fn headers_that_leave_no_room_are_dropped_not_wedged() {
    let (_dir, store) = scratch_store();
    let s = store.stream("orders").unwrap();
    // 65,416 bytes of headers: no room for the ~150 of the dead-letter ones.
    let big = vec![b'x'; 65_400];
    s.send_message(
        spool::Message::new(b"heavy")
            .header("a", "1")
            .header("big", &big)
            .header("z", "2"),
    )
    .unwrap();
    s.send(b"next").unwrap();
    let c = s
        .consumer_with(
            "billing",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("dlq"),
        )
        .unwrap();
    nack_once(&c);
    let d = c.try_receive().unwrap().expect("the one behind it");
    assert_eq!(d.payload(), b"next");
    d.ack().unwrap();
    assert_eq!(c.stats().dead_lettered, 1);
    let r = store.stream("dlq").unwrap().read(0).unwrap().unwrap();
    assert_eq!(r.payload(), b"heavy");
    assert_eq!(r.header("a"), Some(&b"1"[..]));
    assert_eq!(r.header("z"), Some(&b"2"[..]), "what fits is kept");
    assert!(r.header("big").is_none());
    assert_eq!(r.header(h::DROPPED_HEADERS), Some(&b"1"[..]));
    assert_eq!(r.header(h::OFFSET), Some(&b"0"[..]));
    assert_eq!(r.header(h::ATTEMPTS), Some(&b"1"[..]));
}

/// Regression: a message at the size limit could not take the dead-letter
/// headers (`MessageTooLarge` on every receive): its payload goes as a
/// claim check instead.
#[test]
fn a_message_at_the_size_limit_is_dead_lettered_as_a_claim_check() {
    use spool::io::sim::SimFs;
    let fs = SimFs::new();
    let store = Store::open("/d", sim::options(&fs, Durability::Never)).unwrap();
    let s = store.stream("orders").unwrap();
    // The largest message of a 64 KiB segment: (64 KiB - 1 KiB) / 4.
    let payload: Vec<u8> = (0..16_128u32).map(|i| i as u8).collect();
    s.send(&payload).unwrap();
    assert!(matches!(
        s.send(&[0u8; 16_129]),
        Err(spool::Error::MessageTooLarge { .. })
    ));
    s.send(b"next").unwrap();
    let c = s
        .consumer_with(
            "billing",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("dlq"),
        )
        .unwrap();
    nack_once(&c);
    assert_eq!(c.try_receive().unwrap().unwrap().payload(), b"next");
    let r = store.stream("dlq").unwrap().read(0).unwrap().unwrap();
    assert!(r.claim_check().is_some());
    assert_eq!(r.payload(), &payload[..]);
    assert_eq!(r.header(h::STREAM), Some(&b"orders"[..]));
    assert_eq!(r.header(h::DROPPED_HEADERS), None);
}

/// Regression: a consumer whose dead-letter stream was its own stream was
/// accepted, and every dead-lettering appended a copy that was delivered
/// (and dead-lettered) again.
#[test]
fn the_own_stream_as_dead_letter_stream_is_refused() {
    let (_dir, store) = scratch_store();
    let s = store.stream("orders").unwrap();
    let own = ConsumerConfig::default()
        .max_deliveries(1)
        .dead_letter("orders");
    assert!(matches!(
        s.consumer_with("billing", own.clone()),
        Err(spool::Error::InvalidConfig(_))
    ));
    assert!(s.consumers().is_empty());
    s.consumer_with("billing", config()).unwrap();
    assert!(matches!(
        s.consumer_with("billing", own),
        Err(spool::Error::InvalidConfig(_))
    ));
    assert_eq!(s.consumer("billing").unwrap().config(), config());
}

/// An old `config.meta` naming the consumer's own stream as its dead-letter
/// stream opens, and a message past `max_deliveries` leaves the queue
/// without being appended again.
#[test]
fn a_stored_own_stream_dead_letter_config_is_harmless() {
    use spool::format::meta;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::Never);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let s = store.stream("orders").unwrap();
        s.send(b"poison").unwrap();
        s.send(b"next").unwrap();
        // Same length as "orders", rewritten below.
        s.consumer_with(
            "billing",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("ordexs"),
        )
        .unwrap();
    }
    let path = dir
        .path()
        .join("streams/orders/consumers/billing/config.meta");
    let file = std::fs::read(&path).unwrap();
    let mut body = file[meta::BODY_OFFSET..].to_vec();
    let at = body.windows(6).position(|w| w == b"ordexs").unwrap();
    body[at..at + 6].copy_from_slice(b"orders");
    let framed = meta::encode(
        meta::CONSUMER_CONFIG_MAGIC,
        meta::CONSUMER_CONFIG_VERSION,
        &body,
    );
    std::fs::write(&path, framed).unwrap();

    let store = Store::open(dir.path(), opts).unwrap();
    let s = store.stream("orders").unwrap();
    let c = s.consumer("billing").unwrap();
    assert_eq!(c.config().dead_letter.as_deref(), Some("orders"));
    nack_once(&c);
    let d = c.try_receive().unwrap().expect("next");
    assert_eq!(d.payload(), b"next");
    d.ack().unwrap();
    assert!(c.try_receive().unwrap().is_none(), "no copy comes back");
    assert_eq!(s.stats().buckets[0].end_offset, 2, "nothing appended");
    assert_eq!(c.stats().dead_lettered, 1);
}

/// Regression: dead-lettering appended to the dead-letter stream under the
/// source consumer's lock; a roll of the dead-letter stream runs its
/// retention, which takes the locks of that stream's consumers. Two
/// streams dead-lettering into each other therefore deadlocked: one thread
/// held A's consumer and waited for B's (through B's retention), the other
/// held B's and waited for A's.
///
/// Method: streams `a` and `b` with the smallest segments and a `max_bytes`,
/// so that every few appends roll and run retention; a consumer on each
/// with `max_deliveries(1)` dead-letters into the other. One thread per
/// stream sends a message, receives and nacks it, so that its next receive
/// dead-letters it (and whatever the other thread dead-lettered in). The
/// main thread waits for both, generously: a liveness check, not a timing.
#[test]
fn streams_dead_lettering_into_each_other_do_not_deadlock() {
    use spool::io::sim::SimFs;
    use spool::StreamConfig;
    use std::sync::mpsc;
    const ROUNDS: usize = 3000;
    let fs = SimFs::new();
    let store = Store::open("/d", sim::options(&fs, Durability::Never)).unwrap();
    let retained = StreamConfig::default().max_bytes(4 * sim::SEGMENT_BYTES);
    let a = store.create_stream("a", retained.clone()).unwrap();
    let b = store.create_stream("b", retained).unwrap();
    let consumer = |s: &spool::Stream, dlq: &str| {
        s.consumer_with(
            "worker",
            ConsumerConfig::default().max_deliveries(1).dead_letter(dlq),
        )
        .unwrap()
    };
    let (done, finished) = mpsc::channel();
    for (s, c) in [
        (a.clone(), consumer(&a, "b")),
        (b.clone(), consumer(&b, "a")),
    ] {
        let done = done.clone();
        std::thread::spawn(move || {
            let payload = vec![7u8; 4096];
            for _ in 0..ROUNDS {
                s.send(&payload).unwrap();
                // Dead-letters what was nacked before, leases the next.
                if let Some(d) = c.try_receive().unwrap() {
                    d.nack().unwrap();
                }
            }
            done.send(c.stats().dead_lettered).unwrap();
        });
    }
    drop(done);
    let mut dead_lettered = 0;
    for _ in 0..2 {
        dead_lettered += finished
            .recv_timeout(Duration::from_secs(60))
            .expect("deadlock: a worker did not finish within 60 s");
    }
    assert!(dead_lettered > 0, "messages were dead-lettered");
    for s in [&a, &b] {
        let stats = &s.stats().buckets[0];
        assert!(stats.first_offset > 0, "retention ran: {stats:?}");
    }
}

/// A message being moved to the dead-letter stream (without the consumer's
/// lock) is not delivered to another worker meanwhile: with competing
/// workers that nack everything and `max_deliveries(1)`, no delivery is a
/// second attempt, and every message reaches the dead-letter stream once.
#[test]
fn a_message_being_dead_lettered_goes_to_no_other_worker() {
    use spool::io::sim::SimFs;
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    const MESSAGES: u64 = 2000;
    const WORKERS: usize = 4;
    let fs = SimFs::new();
    let store = Store::open("/d", sim::options(&fs, Durability::Always)).unwrap();
    let s = store.stream("jobs").unwrap();
    let payload = vec![1u8; 1000];
    for _ in 0..MESSAGES {
        s.send(&payload).unwrap();
    }
    let c = s
        .consumer_with(
            "workers",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("dlq"),
        )
        .unwrap();
    let (done, finished) = mpsc::channel();
    for _ in 0..WORKERS {
        let (c, done) = (c.clone(), done.clone());
        std::thread::spawn(move || {
            while c.stats().dead_lettered < MESSAGES {
                if let Some(d) = c.receive(Duration::from_millis(10)).unwrap() {
                    assert_eq!(d.attempt(), 1, "delivered again: offset {}", d.offset());
                    d.nack().unwrap();
                }
            }
            done.send(()).unwrap();
        });
    }
    drop(done);
    for _ in 0..WORKERS {
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("a worker did not finish within 60 s (deadlock, or a panic)");
    }
    let mut copies = BTreeMap::new();
    for r in store.stream("dlq").unwrap().iter_from(0) {
        let r = r.unwrap();
        let offset: u64 = std::str::from_utf8(r.header(h::OFFSET).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        *copies.entry(offset).or_insert(0) += 1;
    }
    assert_eq!(copies.len() as u64, MESSAGES, "every message dead-lettered");
    assert!(copies.values().all(|&n| n == 1), "each once");
    assert_eq!(c.stats().buckets[0].ack_floor, MESSAGES);
}
