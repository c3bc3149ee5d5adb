//! Bounded streams: `capacity_messages` and `capacity_bytes` refuse sends
//! with `StreamFull` (nothing stored; a batch that would cross the limit is
//! refused whole) until retention frees space, segment by segment; exact
//! under concurrency; the same after a reopen.

pub mod common;

use common::sim;
use spool::io::sim::SimFs;
use spool::{Durability, Error, Message, Store, StreamConfig};
use std::time::Duration;

const ROOT: &str = "/store";

fn open(fs: &SimFs) -> Store {
    Store::open(ROOT, sim::options(fs, Durability::Always)).unwrap()
}

fn full(r: spool::Result<impl std::fmt::Debug>) -> (u64, u64, &'static str) {
    match r {
        Err(Error::StreamFull {
            held,
            capacity,
            unit,
            ..
        }) => (held, capacity, unit),
        other => panic!("expected StreamFull, got {other:?}"),
    }
}

/// Receives and acknowledges everything there is.
fn drain(c: &spool::Consumer) -> usize {
    let mut n = 0;
    while let Some(d) = c.try_receive().unwrap() {
        d.ack().unwrap();
        n += 1;
    }
    n
}

#[test]
fn a_message_capacity_refuses_sends_until_acks_free_a_segment() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().capacity_messages(300))
        .unwrap();
    let c = s.consumer("c").unwrap();
    let body = vec![1u8; 500];
    for i in 0..300u64 {
        assert_eq!(s.send(&body).unwrap(), i);
    }
    assert_eq!(full(s.send(&body)), (301, 300, "messages"));
    assert_eq!(
        full(s.send_message(Message::new(&body).id("x"))),
        (301, 300, "messages")
    );
    assert_eq!(s.stats().messages(), 300);
    // Acknowledging messages that do not fill a whole segment frees nothing.
    let first = s.stats().buckets[0].segments;
    assert!(first >= 3, "{first} segments");
    let d = c.try_receive().unwrap().unwrap();
    d.ack().unwrap();
    assert!(matches!(s.send(&body), Err(Error::StreamFull { .. })));
    // Everything acknowledged: retention deletes the sealed segments on the
    // next send, which then fits.
    drain(&c);
    assert!(s.send(&body).is_ok());
    assert!(s.stats().messages() < 300);
    assert!(s.stats().buckets[0].segments < first);
}

#[test]
fn a_batch_that_would_cross_the_limit_is_refused_whole() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream(
            "s",
            StreamConfig::default().capacity_messages(10).priorities(2),
        )
        .unwrap();
    s.send_batch((0..8).map(|_| Message::new(b"x").priority(1)))
        .unwrap();
    let r = s.send_batch([
        Message::new(b"a"),
        Message::new(b"b").priority(1),
        Message::new(b"c"),
    ]);
    assert_eq!(full(r), (11, 10, "messages"));
    assert_eq!(s.stats().messages(), 8);
    // Duplicates store nothing: they count for nothing.
    s.send_message(Message::new(b"a").id("a")).unwrap();
    let r = s.send_batch([
        Message::new(b"a").id("a"),
        Message::new(b"b").id("b"),
        Message::new(b"b").id("b"),
    ]);
    assert_eq!(r.unwrap(), [0, 1, 1]);
    assert_eq!(s.stats().messages(), 10);
    assert!(matches!(s.send(b"z"), Err(Error::StreamFull { .. })));
}

#[test]
fn a_byte_capacity_counts_segment_files_and_refuses_a_roll_past_it() {
    let fs = SimFs::new();
    let store = open(&fs);
    let segment = sim::SEGMENT_BYTES;
    let s = store
        .create_stream("s", StreamConfig::default().capacity_bytes(3 * segment))
        .unwrap();
    let c = s.consumer("c").unwrap();
    let body = vec![2u8; 1000];
    let mut sent = 0u64;
    let err = loop {
        match s.send(&body) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(
            sent < 1_000,
            "3 segments cannot hold {sent} messages of 1000 bytes"
        );
    };
    let Error::StreamFull {
        held,
        capacity,
        unit,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!((held, capacity, unit), (4 * segment, 3 * segment, "bytes"));
    let stats = s.stats();
    assert_eq!(stats.buckets[0].segments, 3);
    assert_eq!(stats.buckets[0].bytes, 3 * segment);
    assert_eq!(stats.messages(), sent);
    // A batch that would need the fourth segment is refused whole.
    assert!(s.send_batch([&body[..10], &body]).is_err());
    assert_eq!(s.stats().messages(), sent);
    // The consumer acknowledges everything: one send frees the sealed
    // segments and goes through.
    assert_eq!(drain(&c) as u64, sent);
    s.send(&body).unwrap();
    assert!(s.stats().buckets[0].segments < 3);
}

#[test]
fn a_full_stream_stays_full_across_a_reopen_and_frees_after_it() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        let s = store
            .create_stream("s", StreamConfig::default().capacity_messages(200))
            .unwrap();
        s.consumer("c").unwrap();
        for _ in 0..200 {
            s.send(&[3u8; 700]).unwrap();
        }
        assert!(s.send(b"one more").is_err());
        store.close().unwrap();
    }
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    assert!(matches!(s.send(b"one more"), Err(Error::StreamFull { .. })));
    let c = s.consumer("c").unwrap();
    assert_eq!(drain(&c), 200);
    s.send(b"one more").unwrap();
    drop((c, s));
    store.close().unwrap();
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    assert!(s.stats().messages() < 200);
}

#[test]
fn concurrent_senders_never_pass_the_capacity() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().capacity_messages(500))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut ok = 0u64;
                for i in 0..200u64 {
                    let r = if i % 3 == 0 {
                        s.send_batch([&b"a"[..], b"b"]).map(|o| o.len() as u64)
                    } else {
                        s.send_message(Message::new(b"m").id(&format!("{t}-{i}")))
                            .map(|_| 1)
                    };
                    match r {
                        Ok(n) => ok += n,
                        Err(Error::StreamFull { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let held = s.stats().messages();
    assert_eq!(held, ok);
    assert!(held <= 500, "{held}");
    // Every accepted send counted: at least 499 (a batch of two cannot
    // fill the last slot).
    assert!(held >= 499, "{held}");
}

#[test]
fn max_age_frees_a_full_stream_too() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream(
            "s",
            StreamConfig::default()
                .capacity_messages(200)
                .max_age(Duration::from_millis(20)),
        )
        .unwrap();
    for _ in 0..200 {
        s.send(&[4u8; 700]).unwrap();
    }
    assert!(s.send(b"x").is_err());
    std::thread::sleep(Duration::from_millis(60));
    s.send(b"x").unwrap();
}
