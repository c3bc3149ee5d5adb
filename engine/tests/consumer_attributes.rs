//! The consumer side of message attributes: scheduled delivery (not before
//! its deliver-at, also across a reopen, blocked receivers woken when it is
//! due, due messages before newer ones), time to live (an expired message
//! is never delivered, counted durably, dead-lettered with reason
//! `expired`) and message groups (one leased message per group, in order,
//! released by acks of every kind, by nacks and lease expiries).

use spool::{dead_letter_headers, ConsumerConfig, Delivery, Message, Options, Store, StreamConfig};
use std::time::{Duration, SystemTime};

fn version_of(path: &std::path::Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

fn journal_versions(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let n = e.file_name().into_string().unwrap();
            n.starts_with("journal.").then(|| version_of(&e.path()))
        })
        .collect()
}

fn payload(d: &Delivery) -> String {
    String::from_utf8_lossy(d.payload()).into_owned()
}

#[test]
fn a_scheduled_message_is_not_delivered_before_its_time_and_wakes_a_blocked_receive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    s.send_message(Message::new(b"later").deliver_after(Duration::from_millis(300)))
        .unwrap();
    let at = s.read(0).unwrap().unwrap().deliver_at().unwrap();
    assert!(c.try_receive().unwrap().is_none());
    assert_eq!(c.stats().buckets[0].scheduled, 1);
    // Nothing sends: the receive is woken by the message becoming due.
    let d = c.receive(Duration::from_secs(30)).unwrap().expect("due");
    assert!(SystemTime::now() >= at, "delivered before its time");
    assert_eq!((payload(&d), d.attempt()), ("later".into(), 1));
    d.ack().unwrap();
    assert_eq!(c.stats().buckets[0].scheduled, 0);

    // The async receive and a batch wait for it the same way.
    s.send_message(Message::new(b"async").deliver_after(Duration::from_millis(200)))
        .unwrap();
    let at = s.read(1).unwrap().unwrap().deliver_at().unwrap();
    let got = futures::executor::block_on(c.receive_async(Duration::from_secs(30))).unwrap();
    assert!(SystemTime::now() >= at);
    got.expect("due").ack().unwrap();
    s.send_message(Message::new(b"batch").deliver_after(Duration::from_millis(200)))
        .unwrap();
    let at = s.read(2).unwrap().unwrap().deliver_at().unwrap();
    let b = c.receive_batch(10, Duration::from_secs(30)).unwrap();
    assert!(SystemTime::now() >= at);
    assert_eq!(b.len(), 1);
    c.ack_batch(b).unwrap();
}

#[test]
fn a_due_message_goes_before_newer_ones_of_its_level_and_times_in_the_past_are_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    s.send_message(Message::new(b"first").deliver_after(Duration::from_millis(150)))
        .unwrap();
    s.send_message(
        Message::new(b"past").deliver_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
    )
    .unwrap();
    let d = c.try_receive().unwrap().expect("a time in the past is due");
    assert_eq!(payload(&d), "past");
    d.ack().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.send_batch(["new 1", "new 2"]).unwrap();
    let got: Vec<String> = c
        .receive_batch(10, Duration::from_secs(1))
        .unwrap()
        .iter()
        .map(payload)
        .collect();
    assert_eq!(got, ["first", "new 1", "new 2"]);
}

#[test]
fn a_scheduled_message_stays_scheduled_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        s.send_message(Message::new(b"in an hour").deliver_after(Duration::from_secs(3600)))
            .unwrap();
        s.send(b"now").unwrap();
        let d = c.try_receive().unwrap().unwrap();
        assert_eq!(payload(&d), "now");
        d.ack().unwrap();
        store.close().unwrap();
    }
    for _ in 0..2 {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let c = store.stream("s").unwrap().consumer("c").unwrap();
        assert!(c.try_receive().unwrap().is_none(), "not before its time");
        let st = c.stats();
        assert_eq!((st.buckets[0].scheduled, st.pending()), (1, 1));
        store.close().unwrap();
    }
}

#[test]
fn an_expired_message_is_never_delivered_and_counted_durably() {
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("streams/s/consumers/c");
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        // A journal of version 1 first (one ack).
        s.send(b"plain").unwrap();
        c.try_receive().unwrap().unwrap().ack().unwrap();
        assert_eq!(journal_versions(&cdir), [1]);
        s.send_message(Message::new(b"short").ttl(Duration::from_millis(1)))
            .unwrap();
        s.send_message(Message::new(b"gone").expires_at(SystemTime::UNIX_EPOCH))
            .unwrap();
        s.send_message(Message::new(b"fresh").ttl(Duration::from_secs(3600)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let d = c.try_receive().unwrap().expect("the one still alive");
        assert_eq!(payload(&d), "fresh");
        d.ack().unwrap();
        assert!(c.try_receive().unwrap().is_none());
        let st = c.stats();
        assert_eq!((st.expired, st.dead_lettered, st.pending()), (2, 0, 0));
        // The first expiry started a generation of version 3.
        assert_eq!(journal_versions(&cdir), [3]);
        drop(c);
        store.close().unwrap();
    }
    for _ in 0..2 {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let c = store.stream("s").unwrap().consumer("c").unwrap();
        assert_eq!(
            c.stats().expired,
            2,
            "from the journal, then the checkpoint"
        );
        assert!(c.try_receive().unwrap().is_none());
        // Something journaled: a new generation, of version 3 (it carries
        // the count).
        store.stream("s").unwrap().send(b"more").unwrap();
        c.try_receive().unwrap().unwrap().ack().unwrap();
        assert_eq!(journal_versions(&cdir), [3]);
        let ckpt = std::fs::read(cdir.join("checkpoint")).unwrap();
        assert_eq!(u32::from_le_bytes(ckpt[8..12].try_into().unwrap()), 3);
        store.close().unwrap();
    }
}

#[test]
fn an_expired_message_goes_to_the_dead_letter_stream_with_reason_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s
        .consumer_with("c", ConsumerConfig::default().dead_letter("dead"))
        .unwrap();
    s.send_message(
        Message::new(b"too late")
            .expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(5))
            .header("k", "v"),
    )
    .unwrap();
    // Delivered once, given back, then expired at its redelivery.
    s.send_message(Message::new(b"nacked").ttl(Duration::from_millis(100)))
        .unwrap();
    let d = c.try_receive().unwrap().expect("alive");
    assert_eq!(payload(&d), "nacked");
    std::thread::sleep(Duration::from_millis(150));
    d.nack().unwrap();
    assert!(c.try_receive().unwrap().is_none());
    let st = c.stats();
    assert_eq!((st.expired, st.dead_lettered, st.pending()), (2, 0, 0));
    let dead = store.stream("dead").unwrap();
    for (i, (body, attempts)) in [("too late", "0"), ("nacked", "1")].iter().enumerate() {
        let r = dead.read(i as u64).unwrap().unwrap();
        assert_eq!(r.payload(), body.as_bytes());
        assert_eq!(r.header(dead_letter_headers::REASON), Some(&b"expired"[..]));
        assert_eq!(
            r.header(dead_letter_headers::ATTEMPTS),
            Some(attempts.as_bytes())
        );
    }
    assert_eq!(dead.read(0).unwrap().unwrap().header("k"), Some(&b"v"[..]));
}

#[test]
fn one_leased_message_per_group_in_order_released_by_every_kind_of_ack() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    for (g, body) in [
        ("a", "a0"),
        ("b", "b0"),
        ("a", "a1"),
        ("a", "a2"),
        ("b", "b1"),
    ] {
        s.send_message(Message::new(body).group(g)).unwrap();
    }
    s.send(b"plain").unwrap();
    // One per group per batch; others pass.
    let batch = c.receive_batch(10, Duration::ZERO).unwrap();
    let got: Vec<String> = batch.iter().map(payload).collect();
    assert_eq!(got, ["a0", "b0", "plain"]);
    assert!(c.try_receive().unwrap().is_none(), "a and b are held");
    let st = c.stats();
    assert_eq!((st.groups, st.buckets[0].waiting_for_group), (2, 3));
    let mut it = batch.into_iter();
    let (a0, b0, plain) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    plain.ack().unwrap();
    // A nack gives the group's turn back to the same message.
    b0.nack().unwrap();
    let b0 = c.try_receive().unwrap().expect("b0 again");
    assert_eq!((payload(&b0), b0.attempt()), ("b0".into(), 2));
    // An ack moves the group on, in order.
    a0.ack().unwrap();
    let a1 = c.try_receive().unwrap().unwrap();
    assert_eq!(payload(&a1), "a1");
    assert!(c.try_receive().unwrap().is_none());
    // A batch ack too.
    c.ack_batch([a1, b0]).unwrap();
    let two: Vec<String> = c
        .receive_batch(10, Duration::ZERO)
        .unwrap()
        .iter()
        .map(payload)
        .collect();
    assert_eq!(two, ["a2", "b1"]);
    // And a cursor ack over all of it.
    c.ack_up_to(0, 5).unwrap();
    assert_eq!(c.stats().groups, 0);
    s.send_message(Message::new(b"a3").group("a")).unwrap();
    assert_eq!(payload(&c.try_receive().unwrap().unwrap()), "a3");
}

#[test]
fn a_lapsed_lease_keeps_the_group_for_the_same_message_and_a_blocked_receive_wakes_on_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let config = ConsumerConfig::default().visibility_timeout(Duration::from_millis(100));
    let c = s.consumer_with("c", config).unwrap();
    s.send_message(Message::new(b"g0").group("g")).unwrap();
    s.send_message(Message::new(b"g1").group("g")).unwrap();
    let first = c.try_receive().unwrap().unwrap();
    drop(first); // its lease runs out
    let again = c
        .receive(Duration::from_secs(30))
        .unwrap()
        .expect("redelivered");
    assert_eq!((payload(&again), again.attempt()), ("g0".into(), 2));
    again.extend_lease(Duration::from_secs(3600)).unwrap();
    // A receive blocked on the group is woken by the ack.
    let other = c.clone();
    let waiter = std::thread::spawn(move || {
        other
            .receive(Duration::from_secs(30))
            .unwrap()
            .map(|d| payload(&d))
    });
    std::thread::sleep(Duration::from_millis(50));
    again.ack().unwrap();
    assert_eq!(waiter.join().unwrap().as_deref(), Some("g1"));
}

#[test]
fn groups_hold_across_priority_levels_and_are_rebuilt_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig::default().priorities(2);
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let s = store.stream_with("s", config.clone()).unwrap();
        let c = s.consumer("c").unwrap();
        s.send_message(Message::new(b"low").group("g")).unwrap();
        s.send_message(Message::new(b"high").group("g").priority(1))
            .unwrap();
        let d = c.try_receive().unwrap().unwrap();
        assert_eq!(payload(&d), "high");
        assert!(
            c.try_receive().unwrap().is_none(),
            "one per group, all levels"
        );
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let c = store
        .stream_with("s", config)
        .unwrap()
        .consumer("c")
        .unwrap();
    assert_eq!(c.stats().groups, 0, "no leases after an open");
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!((payload(&d), d.attempt()), ("high".into(), 2));
    assert!(c.try_receive().unwrap().is_none());
    d.ack().unwrap();
    assert_eq!(payload(&c.try_receive().unwrap().unwrap()), "low");
}

#[test]
fn a_group_backlog_larger_than_one_take_parks_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    let bodies: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
    s.send_batch(bodies.iter().map(|b| Message::new(b.as_str()).group("g")))
        .unwrap();
    s.send(b"plain").unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(payload(&d), "m0");
    // Past the 2999 parked ones (in steps), the plain message.
    assert_eq!(payload(&c.try_receive().unwrap().unwrap()), "plain");
    assert_eq!(c.stats().buckets[0].waiting_for_group, 2999);
    d.ack().unwrap();
    assert_eq!(payload(&c.try_receive().unwrap().unwrap()), "m1");
}

#[test]
fn a_seek_or_a_purge_hands_the_groups_turns_out_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    for p in ["a", "b", "c"] {
        s.send_message(Message::new(p).group("g")).unwrap();
    }
    // "a" holds the group, "b" waits behind it.
    let a = c.try_receive().unwrap().unwrap();
    assert_eq!(payload(&a), "a");
    assert!(c.try_receive().unwrap().is_none());
    // Past "a": its lease is void, and the group's turn must not stay
    // with it.
    c.seek_offsets(&[1]).unwrap();
    let b = c.try_receive().unwrap().expect("b, once a is sought past");
    assert_eq!(payload(&b), "b");
    assert!(c.try_receive().unwrap().is_none(), "c waits behind b");
    // A purge removes "b" and "c"; a new message of the group goes at once.
    s.purge().unwrap();
    s.send_message(Message::new("d").group("g")).unwrap();
    let d = c.try_receive().unwrap().expect("d, once b was purged");
    assert_eq!(payload(&d), "d");
    d.ack().unwrap();
}
