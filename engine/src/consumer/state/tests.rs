//! Unit tests of the per-bucket consumer state.
use super::*;
use std::time::Duration;

#[test]
fn fifo_then_ack_moves_the_floor() {
    let now = Instant::now();
    let mut b = BucketState::new(0);
    let t0 = b.take(3).unwrap();
    let t1 = b.take(3).unwrap();
    assert_eq!((t0.offset, t1.offset), (0, 1));
    assert_eq!(b.lease(0, 1, now + Duration::from_secs(1)), 1);
    b.lease(1, 2, now + Duration::from_secs(1));
    assert!(b.ack(1));
    assert_eq!(b.floor(), 0);
    assert!(b.ack(0));
    assert_eq!(b.floor(), 2);
    assert!(!b.ack(0));
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn acknowledged_leases_do_not_pile_up_in_the_heap() {
    // One message stays leased (it holds the heap's top) while 10,000
    // later ones are delivered and acknowledged long before they expire.
    let now = Instant::now();
    let later = now + Duration::from_secs(30);
    let mut b = BucketState::new(0);
    let held = b.take(u64::MAX).unwrap().offset;
    b.lease(held, 0, now + Duration::from_secs(1));
    for lease in 1..=10_000 {
        let t = b.take(u64::MAX).unwrap();
        b.lease(t.offset, lease, later);
        assert!(b.ack(t.offset));
        assert!(b.lease_entries() <= 2 * b.in_flight() as usize + 65);
    }
    assert_eq!(b.in_flight(), 1);
    // The held lease still expires and comes back.
    b.expire(now + Duration::from_secs(2));
    assert_eq!(b.take(u64::MAX).unwrap().offset, held);
}

#[test]
fn expired_and_nacked_come_back_first_lowest_offset_first() {
    let now = Instant::now();
    let mut b = BucketState::new(10);
    for lease in 0..3 {
        let t = b.take(100).unwrap();
        b.lease(t.offset, lease, now + Duration::from_millis(10));
    }
    assert!(b.nack(12, 2, None));
    assert!(!b.nack(12, 2, None), "the lease is gone");
    b.expire(now + Duration::from_millis(20));
    assert_eq!(
        b.take(100).unwrap(),
        Taken {
            offset: 10,
            attempts: 1
        }
    );
    assert_eq!(b.take(100).unwrap().offset, 11);
    assert_eq!(b.take(100).unwrap().offset, 12);
    assert_eq!(b.take(100).unwrap().offset, 13);
}

#[test]
fn delayed_nack_waits() {
    let now = Instant::now();
    let mut b = BucketState::new(0);
    b.take(1).unwrap();
    b.lease(0, 7, now + Duration::from_secs(60));
    assert!(b.nack(0, 7, Some(now + Duration::from_secs(5))));
    b.expire(now);
    assert!(b.take(1).is_none());
    assert_eq!(b.next_wake(), Some(now + Duration::from_secs(5)));
    b.expire(now + Duration::from_secs(5));
    assert_eq!(
        b.take(1).unwrap(),
        Taken {
            offset: 0,
            attempts: 1
        }
    );
}

#[test]
fn checkpoint_round_trip_keeps_acks_and_counts() {
    let now = Instant::now();
    let mut b = BucketState::new(0);
    for i in 0..5 {
        b.take(5).unwrap();
        b.lease(i, i, now);
    }
    b.ack(1);
    b.ack(3);
    let c = b.checkpoint();
    let mut r = BucketState::from_checkpoint(&c);
    assert_eq!(r.floor(), 0);
    assert_eq!(
        r.take(5).unwrap(),
        Taken {
            offset: 0,
            attempts: 1
        }
    );
    assert_eq!(
        r.take(5).unwrap(),
        Taken {
            offset: 2,
            attempts: 1
        }
    );
    assert_eq!(
        r.take(5).unwrap(),
        Taken {
            offset: 4,
            attempts: 1
        }
    );
    assert!(r.take(5).is_none());
}

#[test]
fn ack_up_to_and_clamp() {
    let mut b = BucketState::new(0);
    assert!(b.ack_up_to(9));
    assert_eq!((b.floor(), b.next()), (10, 10));
    b.take(20).unwrap();
    // The log lost its tail: state never passes the end.
    b.clamp(0, 10);
    assert_eq!((b.floor(), b.next()), (10, 10));
    // Retention removed messages 10..15 before they were acknowledged.
    assert_eq!(b.clamp(15, 20), 5);
    assert_eq!(b.floor(), 15);
}

#[test]
fn a_scheduled_message_waits_for_its_time_then_goes_before_new_ones() {
    let now = Instant::now();
    let later = now + Duration::from_secs(10);
    let mut b = BucketState::new(0);
    let t = b.take(5).unwrap();
    assert_eq!((t.offset, t.attempts), (0, 0));
    b.schedule(0, later);
    assert!(!b.is_taken(0), "parked, not taken");
    assert_eq!(b.parked(), (1, 0));
    assert_eq!(b.next_wake(), Some(later));
    // Others go meanwhile.
    assert_eq!(b.take(5).unwrap().offset, 1);
    b.lease(1, 1, now + Duration::from_secs(60));
    b.expire(later - Duration::from_millis(1));
    assert_eq!(
        b.take(2).map(|t| t.offset),
        None,
        "not due yet, nothing new"
    );
    b.expire(later);
    assert_eq!(b.parked(), (0, 0));
    // Due: ready, before the newer offsets 2..5.
    let t = b.take(5).unwrap();
    assert_eq!((t.offset, t.attempts), (0, 0));
    assert_eq!(
        b.lease(0, 2, now + Duration::from_secs(60)),
        1,
        "a first delivery"
    );
    assert_eq!(b.take(5).unwrap().offset, 2);
    // An ack of a scheduled message (ack_up_to) ends it; its heap entry
    // changes nothing later.
    let mut b = BucketState::new(0);
    b.take(1).unwrap();
    b.schedule(0, later);
    assert!(b.ack_up_to(0));
    b.expire(later);
    assert_eq!(b.take(1), None);
    assert_eq!((b.floor(), b.next()), (1, 1));
}

#[test]
fn scheduled_and_grouped_messages_are_not_persisted_and_come_back_ready() {
    let now = Instant::now();
    let mut b = BucketState::new(0);
    for o in 0..4 {
        assert_eq!(b.take(4).unwrap().offset, o);
    }
    b.schedule(0, now + Duration::from_secs(3600));
    b.park_grouped(1);
    b.lease(2, 1, now + Duration::from_secs(60));
    b.lease(3, 2, now + Duration::from_secs(60));
    assert!(b.ack(3));
    assert_eq!(b.parked(), (1, 1));
    // The checkpoint knows only deliveries and acks: 0 and 1 were never
    // delivered.
    let c = b.checkpoint();
    assert_eq!((c.floor, c.next), (0, 4));
    assert_eq!(c.attempts, [(2, 1)]);
    assert_eq!(c.acked, [3]);
    // Rebuilt (an open): all three unacknowledged ones ready, lowest first.
    let mut r = BucketState::from_checkpoint(&c);
    assert_eq!(r.parked(), (0, 0));
    let got: Vec<u64> = std::iter::from_fn(|| r.take(4).map(|t| t.offset)).collect();
    assert_eq!(got, [0, 1, 2]);
    // A grouped message made ready when its turn comes; acked while
    // parked, it is done.
    assert!(b.unpark_grouped(1));
    assert!(!b.unpark_grouped(1), "once");
    assert_eq!(b.take(4).unwrap().offset, 1);
    b.park_grouped(1);
    assert!(b.ack(1));
    assert!(!b.unpark_grouped(1));
}

#[test]
fn an_expiry_in_the_journal_acknowledges_a_message_never_delivered() {
    let mut buckets = vec![BucketState::new(0)];
    let r = replay_record(
        &mut buckets,
        &Record::Entry(Entry::Expired {
            bucket: 0,
            offset: 2,
        }),
    );
    assert_eq!(r, Replayed::Expired);
    let b = &mut buckets[0];
    assert_eq!(b.next(), 3);
    assert!(!b.is_unacked(2));
    b.all_ready();
    let got: Vec<u64> = std::iter::from_fn(|| b.take(3).map(|t| t.offset)).collect();
    assert_eq!(got, [0, 1], "2 is not taken again");
    let r = replay_record(
        &mut buckets,
        &Record::Entry(Entry::Expired {
            bucket: 5,
            offset: 2,
        }),
    );
    assert_eq!(r, Replayed::Nothing, "no such level");
}
