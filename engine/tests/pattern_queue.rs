//! Goal: a stream with one consumer is a persistent FIFO queue: messages come
//! out in order, an ack removes a message for good, and after a restart
//! every unacknowledged delivery comes back with its delivery count.
//!
//! Method: send, receive, ack some, reopen the store, receive again.

pub mod common;

use common::{scratch_store, temp_store};
use spool::{Durability, Options, Store};
use std::time::Duration;

#[test]
fn fifo_ack_and_redelivery_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::Never);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let q = store.stream("jobs").unwrap();
        for i in 0..10u32 {
            q.send(&i.to_le_bytes()).unwrap();
        }
        let c = q.consumer("worker").unwrap();
        for i in 0..10u32 {
            let d = c.try_receive().unwrap().expect("a message");
            assert_eq!(d.payload(), i.to_le_bytes(), "FIFO order");
            assert_eq!(d.attempt(), 1);
            if i % 2 == 0 {
                d.ack().unwrap();
            }
            // Odd ones: dropped unacked, as if the worker crashed on them.
        }
        assert!(c.try_receive().unwrap().is_none());
        let st = c.stats();
        assert_eq!(st.pending(), 5);
        assert_eq!(st.in_flight(), 5);
    }
    let store = Store::open(dir.path(), opts).unwrap();
    let q = store.stream("jobs").unwrap();
    let c = q.consumer("worker").unwrap();
    for i in [1u32, 3, 5, 7, 9] {
        let d = c
            .receive(Duration::from_secs(5))
            .unwrap()
            .expect("redelivery");
        assert_eq!(d.payload(), i.to_le_bytes());
        assert_eq!(d.attempt(), 2, "the delivery count survived the restart");
        d.ack().unwrap();
    }
    assert!(c.try_receive().unwrap().is_none());
    assert_eq!(c.stats().pending(), 0);
    assert_eq!(c.stats().buckets[0].ack_floor, 10);
}

#[test]
fn receive_blocks_until_a_send_wakes_it() {
    let (_dir, store) = temp_store(Options::default());
    let q = store.stream("jobs").unwrap();
    let c = q.consumer("w").unwrap();
    let sender = {
        let q = q.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q.send(b"wake up").unwrap();
        })
    };
    // An hour-long timeout: only the send can end this wait.
    let d = c.receive(Duration::from_secs(3600)).unwrap().unwrap();
    assert_eq!(d.payload(), b"wake up");
    d.ack().unwrap();
    sender.join().unwrap();
    assert!(
        c.receive(Duration::from_millis(20)).unwrap().is_none(),
        "timeout"
    );
}

#[test]
fn start_positions() {
    let (_dir, store) = scratch_store();
    let q = store.stream("s").unwrap();
    for i in 0..5u8 {
        q.send(&[i]).unwrap();
    }
    // Timestamps have microsecond resolution: keep `mid` clear of both sides.
    std::thread::sleep(Duration::from_millis(2));
    let mid = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(2));
    for i in 5..10u8 {
        q.send(&[i]).unwrap();
    }
    use spool::{ConsumerConfig, StartAt};
    let first = |name: &str, start| {
        let c = q
            .consumer_with(name, ConsumerConfig::default().start(start))
            .unwrap();
        c.try_receive().unwrap().map(|d| d.payload()[0])
    };
    assert_eq!(first("earliest", StartAt::Earliest), Some(0));
    assert_eq!(first("latest", StartAt::Latest), None);
    assert_eq!(first("offset", StartAt::Offset(7)), Some(7));
    assert_eq!(first("time", StartAt::timestamp(mid)), Some(5));
    q.send(&[10]).unwrap();
    let latest = q.consumer("latest").unwrap();
    assert_eq!(latest.try_receive().unwrap().unwrap().payload(), [10]);
}
