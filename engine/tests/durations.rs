//! Goal: every duration the API takes is safe at any value: one too long
//! for a deadline (up to `Duration::MAX`) means "never" instead of a panic
//! (visibility timeouts, nack delays, lease extensions, sync intervals),
//! and one too long for a timestamp deletes nothing by age instead of
//! wrapping to a short age. A persisted consumer configuration holding such
//! a value opens and serves as before.
//!
//! Method: one behaviour per test on a fresh store, with the largest
//! durations (and one that wraps a 64-bit microsecond count).

pub mod common;

use common::{scratch_store, temp_store};
use spool::{ConsumerConfig, Durability, Options, StartAt, Store, StreamConfig};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A duration whose microseconds just exceed `u64::MAX`: cast to `u64`, it
/// wraps to 1 µs.
fn wraps_to_a_microsecond() -> Duration {
    Duration::from_micros(u64::MAX) + Duration::from_micros(2)
}

#[test]
fn an_endless_visibility_timeout_leases_until_ack_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::Never);
    let config = ConsumerConfig::default().visibility_timeout(Duration::MAX);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let s = store.stream("s").unwrap();
        s.send(b"a").unwrap();
        s.send(b"b").unwrap();
        let c = s.consumer_with("c", config.clone()).unwrap();
        let a = c.try_receive().unwrap().expect("a is there");
        assert_eq!(a.payload(), b"a");
        assert!(a.is_leased());
        let b = c.receive(Duration::from_secs(5)).unwrap().expect("b");
        assert_eq!(b.payload(), b"b");
        drop(a); // never expires: not redelivered in this process
        assert!(c.try_receive().unwrap().is_none());
        b.ack().unwrap();
    }
    // The configuration on disk holds `Duration::MAX`: it opens and serves.
    let store = Store::open(dir.path(), opts).unwrap();
    let c = store.stream("s").unwrap().consumer("c").unwrap();
    assert_eq!(c.config().visibility_timeout, Duration::MAX);
    let a = c.receive(Duration::from_secs(5)).unwrap().expect("a again");
    assert_eq!((a.payload(), a.attempt()), (&b"a"[..], 2));
    a.ack().unwrap();
    assert!(c.try_receive().unwrap().is_none());
}

#[test]
fn endless_nack_delays_and_lease_extensions_are_accepted() {
    let (_dir, store) = scratch_store();
    let s = store.stream("s").unwrap();
    for i in 0..3u8 {
        s.send(&[i]).unwrap();
    }
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_millis(20)),
        )
        .unwrap();
    let d0 = c.try_receive().unwrap().unwrap();
    d0.nack_with(Some(Duration::MAX), Some("later")).unwrap();
    let d1 = c.try_receive().unwrap().unwrap();
    assert_eq!(d1.payload(), [1]);
    d1.extend_lease(Duration::MAX).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert!(d1.is_leased(), "an endless extension does not run out");
    let d2 = c.try_receive().unwrap().unwrap();
    assert_eq!(d2.payload(), [2], "0 is delayed, 1 still leased");
    d2.ack().unwrap();
    assert!(c.try_receive().unwrap().is_none());
    // A receiver waits on the endless deadlines without trouble.
    let t = Instant::now();
    assert!(c.receive(Duration::from_millis(50)).unwrap().is_none());
    assert!(t.elapsed() < Duration::from_secs(30));
    d1.ack().unwrap();
}

#[test]
fn an_endless_sync_interval_keeps_the_background_writeback() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::default()
            .durability(Durability::Interval(Duration::MAX))
            .writeback_bytes(4096),
    )
    .unwrap();
    let s = store.stream("s").unwrap();
    for _ in 0..100 {
        s.send(&[7u8; 200]).unwrap();
    }
    // More than `writeback_bytes` written: the background thread syncs them
    // (without an interval timer). Give up after a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().buckets[0].durable_offset == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        s.stats().buckets[0].durable_offset > 0,
        "the sync thread is alive"
    );
    store.sync().unwrap();
    assert_eq!(s.stats().buckets[0].durable_offset, 100);
}

#[test]
fn an_age_limit_beyond_a_timestamp_deletes_nothing() {
    let (_dir, store) = temp_store(
        Options::default()
            .durability(Durability::Never)
            .segment_bytes_max(64 * 1024),
    );
    let s = store
        .create_stream(
            "s",
            StreamConfig::default().max_age(wraps_to_a_microsecond()),
        )
        .unwrap();
    // About 60 records a segment: this rolls three times.
    for _ in 0..200 {
        s.send(&[1u8; 1000]).unwrap();
    }
    s.apply_retention().unwrap();
    let b = &s.stats().buckets[0];
    assert_eq!(b.first_offset, 0, "nothing is older than ~584,000 years");
    assert_eq!(b.segments, 4);
}

#[test]
fn a_start_time_beyond_a_timestamp_starts_after_everything() {
    let (_dir, store) = scratch_store();
    let s = store.stream("s").unwrap();
    s.send(b"old").unwrap();
    let far = UNIX_EPOCH + wraps_to_a_microsecond();
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().start(StartAt::timestamp(far)),
        )
        .unwrap();
    assert!(c.try_receive().unwrap().is_none(), "nothing is that new");
    assert_eq!(
        StartAt::timestamp(far),
        StartAt::TimestampUs(u64::MAX),
        "saturates"
    );
}
