//! Goal: `Consumer::stats` tells an operator what a consumer has left:
//! undelivered, in flight, waiting for redelivery, unacknowledged (pending),
//! lag, the age of the oldest unacknowledged message, redeliveries and dead
//! letters, exactly, through a scenario and across a reopen, and after
//! retention removed messages the consumer never acknowledged.
//! Method: a store on a temporary directory; each figure is compared with
//! what the scenario did, the timestamps with the records' own.

pub mod common;

use spool::{ConsumerConfig, ConsumerStats, Durability, Message, Options, Store, StreamConfig};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The figures per level: (undelivered, in flight, waiting, pending, lag).
fn figures(s: &ConsumerStats) -> Vec<(u64, u64, u64, u64, u64)> {
    s.buckets
        .iter()
        .map(|b| {
            (
                b.undelivered,
                b.in_flight,
                b.waiting_redelivery,
                b.pending,
                b.lag(),
            )
        })
        .collect()
}

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .max_deliveries(2)
        .dead_letter("tasks.dead")
        .visibility_timeout(Duration::from_secs(60))
}

#[test]
fn every_figure_follows_the_scenario_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let tasks = store
        .create_stream("tasks", StreamConfig::default().priorities(2))
        .unwrap();
    for i in 0..5u32 {
        tasks
            .send_message(Message::new(format!("low {i}").as_bytes()).priority(0))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    for i in 0..3u32 {
        tasks
            .send_message(Message::new(format!("high {i}").as_bytes()).priority(1))
            .unwrap();
    }
    let ts = |p: u8, o: u64| tasks.read_priority(p, o).unwrap().unwrap().timestamp_us();
    let c = tasks.consumer_with("worker", config()).unwrap();

    let s = c.stats();
    assert_eq!(figures(&s), [(5, 0, 0, 5, 5), (3, 0, 0, 3, 3)]);
    assert_eq!(
        (s.undelivered(), s.in_flight(), s.pending(), s.lag()),
        (8, 0, 8, 8)
    );
    assert_eq!(s.buckets[0].oldest_unacked_timestamp_us, Some(ts(0, 0)));
    assert_eq!(s.buckets[1].oldest_unacked_timestamp_us, Some(ts(1, 0)));
    // The oldest of all levels: the first low-priority message.
    let age = s.oldest_unacked_age.unwrap();
    assert!(ts(0, 0) < ts(1, 0));
    assert!(age >= Duration::from_millis(5), "{age:?}");
    assert!(age <= Duration::from_micros(now_us() - ts(0, 0)), "{age:?}");

    // Two high-priority deliveries: one acknowledged, one given back.
    let a = c.try_receive().unwrap().unwrap();
    let b = c.try_receive().unwrap().unwrap();
    assert_eq!((a.priority(), a.offset(), b.offset()), (1, 0, 1));
    let s = c.stats();
    assert_eq!(figures(&s)[1], (1, 2, 0, 3, 3));
    a.ack().unwrap();
    b.nack_with(None, Some("try later")).unwrap();
    let s = c.stats();
    assert_eq!(figures(&s)[1], (1, 0, 1, 2, 2));
    // The oldest unacknowledged high-priority message is now offset 1.
    assert_eq!(s.buckets[1].oldest_unacked_timestamp_us, Some(ts(1, 1)));
    assert_eq!((s.redelivered, s.dead_lettered), (0, 0));

    // Redelivered, given back again, then dead-lettered at the next take.
    let b = c.try_receive().unwrap().unwrap();
    assert_eq!((b.offset(), b.attempt()), (1, 2));
    assert_eq!(c.stats().redelivered, 1);
    b.nack().unwrap();
    let next = c.try_receive().unwrap().unwrap();
    assert_eq!((next.priority(), next.offset()), (1, 2));
    let s = c.stats();
    assert_eq!((s.redelivered, s.dead_lettered), (1, 1));
    // High: all taken; offset 2 in flight; 0 and 1 gone (acked, dead).
    assert_eq!(figures(&s)[1], (0, 1, 0, 1, 1));
    next.ack().unwrap();
    let s = c.stats();
    assert_eq!(figures(&s)[1], (0, 0, 0, 0, 0));
    assert_eq!(s.buckets[1].oldest_unacked_timestamp_us, None);

    // Low priority: three delivered, the middle one acknowledged.
    let l: Vec<_> = (0..3).map(|_| c.try_receive().unwrap().unwrap()).collect();
    assert!(l.iter().all(|d| d.priority() == 0));
    let mut l = l.into_iter();
    let (l0, l1, l2) = (l.next().unwrap(), l.next().unwrap(), l.next().unwrap());
    l1.ack().unwrap();
    let s = c.stats();
    assert_eq!(figures(&s)[0], (2, 2, 0, 4, 5));
    assert_eq!(s.buckets[0].oldest_unacked_timestamp_us, Some(ts(0, 0)));
    l0.ack().unwrap();
    let s = c.stats();
    // The floor moved past 0 and 1: the oldest is offset 2, still leased.
    assert_eq!(figures(&s)[0], (2, 1, 0, 3, 3));
    assert_eq!(s.buckets[0].ack_floor, 2);
    assert_eq!(s.buckets[0].oldest_unacked_timestamp_us, Some(ts(0, 2)));
    let before = c.stats();
    drop(l2);
    drop(c);
    drop(tasks);
    store.close().unwrap();

    // After a reopen: leases are gone (offset 2 waits for redelivery),
    // counters and positions come back from the journal.
    let store = Store::open(dir.path(), opts()).unwrap();
    let tasks = store.stream("tasks").unwrap();
    let c = tasks.consumer_with("worker", config()).unwrap();
    let s = c.stats();
    assert_eq!(figures(&s), [(2, 0, 1, 3, 3), (0, 0, 0, 0, 0)]);
    assert_eq!((s.redelivered, s.dead_lettered), (1, 1));
    assert_eq!(
        s.buckets[0].oldest_unacked_timestamp_us,
        before.buckets[0].oldest_unacked_timestamp_us
    );
    assert!(s.oldest_unacked_age.unwrap() >= before.oldest_unacked_age.unwrap());
    // Everything acknowledged: nothing is old.
    c.ack_up_to(0, 4).unwrap();
    let s = c.stats();
    assert_eq!(figures(&s), [(0, 0, 0, 0, 0), (0, 0, 0, 0, 0)]);
    assert_eq!(s.oldest_unacked_age, None);
    assert!(s
        .buckets
        .iter()
        .all(|b| b.oldest_unacked_timestamp_us.is_none()));
    // The dead letter is in its stream.
    assert_eq!(
        store.stream("tasks.dead").unwrap().stats().buckets[0].end_offset,
        1
    );
}

#[test]
fn after_retention_removed_unacknowledged_messages_the_oldest_is_the_first_retained() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
    let s = store
        .create_stream(
            "metrics",
            StreamConfig::default().max_age(Duration::from_millis(50)),
        )
        .unwrap();
    let c = s.consumer("slow").unwrap();
    for _ in 0..300 {
        s.send(&[1u8; 1000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(80));
    s.send(b"fresh").unwrap();
    // Retention runs after segment rolls too: what the sends left of the
    // old segments goes now.
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(first > 0);
    let stats = c.stats();
    let b = &stats.buckets[0];
    // The pass moved the consumer past the messages it deleted (counted as
    // skipped): the oldest left is the first retained one.
    assert_eq!(b.ack_floor, first);
    assert_eq!(stats.skipped, first);
    assert_eq!(
        b.oldest_unacked_timestamp_us,
        Some(s.read(first).unwrap().unwrap().timestamp_us())
    );
    assert!(stats.oldest_unacked_age.unwrap() >= Duration::from_millis(80));
}
