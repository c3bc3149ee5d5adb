//! Goal: leases: an expired lease or a nack makes a message available again
//! (before newer ones, lowest offset first), a delayed nack waits, an
//! extended lease does not expire, and attempt numbers count deliveries.
//!
//! Method: a consumer with a short visibility timeout; waits use `receive`
//! with generous timeouts, so only the behaviour (not the speed) is asserted.

pub mod common;

use common::scratch_store;
use spool::{ConsumerConfig, Error};
use std::time::Duration;

fn setup() -> (tempfile::TempDir, spool::Stream) {
    let (dir, store) = scratch_store();
    let s = store.stream("s").unwrap();
    for i in 0..5u8 {
        s.send(&[i]).unwrap();
    }
    (dir, s)
}

#[test]
fn expired_lease_is_redelivered_before_newer_messages() {
    let (_d, s) = setup();
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_millis(50)),
        )
        .unwrap();
    let first = c.try_receive().unwrap().unwrap();
    assert_eq!(first.payload(), [0]);
    drop(first); // lease runs out
    let second = c.try_receive().unwrap().unwrap();
    assert_eq!(second.payload(), [1], "0 is still leased");
    second.ack().unwrap();
    std::thread::sleep(Duration::from_millis(100)); // past the lease
    let again = c.receive(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(again.payload(), [0], "the expired one comes back before 2");
    assert_eq!(again.attempt(), 2);
    assert_eq!(c.stats().redelivered, 1);
}

#[test]
fn nack_now_and_nack_later() {
    let (_d, s) = setup();
    let c = s.consumer("c").unwrap();
    let d0 = c.try_receive().unwrap().unwrap();
    let d1 = c.try_receive().unwrap().unwrap();
    d1.nack().unwrap();
    d0.nack_with(Some(Duration::from_millis(100)), Some("busy"))
        .unwrap();
    let r = c.try_receive().unwrap().unwrap();
    assert_eq!(
        (r.payload()[0], r.attempt()),
        (1, 2),
        "immediate nack first"
    );
    r.ack().unwrap();
    let r = c.try_receive().unwrap().unwrap();
    assert_eq!(r.payload(), [2], "0 waits for its delay");
    r.ack().unwrap();
    // 3 and 4 are next; after them only the delayed 0 remains.
    for want in [3u8, 4] {
        let r = c.try_receive().unwrap().unwrap();
        assert_eq!(r.payload(), [want]);
        r.ack().unwrap();
    }
    let r = c.receive(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!((r.payload()[0], r.attempt()), (0, 2));
    r.ack().unwrap();
    assert_eq!(c.stats().buckets[0].ack_floor, 5);
}

#[test]
fn extend_lease_and_stale_leases() {
    let (_d, s) = setup();
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_millis(30)),
        )
        .unwrap();
    let d = c.try_receive().unwrap().unwrap();
    d.extend_lease(Duration::from_secs(3600)).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert!(d.is_leased(), "extended lease still held");
    assert_eq!(c.try_receive().unwrap().unwrap().payload(), [1]);
    d.nack().unwrap();
    let again = c.try_receive().unwrap().unwrap();
    assert_eq!(again.payload(), [0]);
    // A stale handle cannot extend a lease it lost.
    let stale = c.try_receive().unwrap().unwrap();
    assert_eq!(stale.payload(), [2]);
    std::thread::sleep(Duration::from_millis(60));
    assert!(matches!(
        stale.extend_lease(Duration::from_secs(1)),
        Err(Error::LeaseExpired { offset: 2 })
    ));
    // Acking after expiry still counts (at least once).
    stale.ack().unwrap();
    again.ack().unwrap();
}
