//! Goal: a consumer moved by a seek is where it was moved, durably, when
//! the call returns (also after a power cut right after), and a power cut
//! or an I/O error at any operation of a seek leaves it either where it
//! was or where it was moved, never in between, with no acknowledgement of
//! another consumer lost. Deliveries from before a seek are void; seeking
//! back redelivers from attempt 1; seeking forward counts nothing; a
//! position below the first retained message is clamped to it.
//!
//! Method: stores on the simulated file system; `SimFs::crash_at` /
//! `fail_at` at every operation of one `seek` call.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{ConsumerConfig, Error, Message, StartAt, Store, StreamConfig};
use std::time::Duration;

const ROOT: &str = "/d";
const N: u64 = 200;
/// Consumer `c` acknowledged `0..ACKED`.
const ACKED: u64 = 150;
/// Where the crash tests move it.
const TO: u64 = 40;

/// The store, and the delivery in flight when the seek comes.
fn build(fs: &SimFs) -> (Store, spool::Delivery) {
    let store = Store::open(ROOT, sim::consumer_options(fs)).unwrap();
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    let other = s.consumer("other").unwrap();
    for i in 0..N {
        s.send(&[i as u8; 100]).unwrap();
    }
    c.ack_up_to(0, ACKED - 1).unwrap();
    other.ack_up_to(0, 9).unwrap();
    // In flight when the seek comes.
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), ACKED);
    (store, d)
}

#[test]
fn seeking_back_redelivers_and_voids_earlier_deliveries() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    let config = ConsumerConfig::default().max_deliveries(3);
    let c = s.consumer_with("c", config).unwrap();
    s.send_batch(["a", "b", "c", "d"]).unwrap();
    for _ in 0..2 {
        c.try_receive().unwrap().unwrap().nack().unwrap();
    }
    let twice = c.try_receive().unwrap().unwrap();
    assert_eq!((twice.offset(), twice.attempt()), (0, 3));
    let b = c.try_receive().unwrap().unwrap();
    assert_eq!(b.offset(), 1);
    let redelivered = c.stats().redelivered;

    c.seek(StartAt::Earliest).unwrap();
    // Void: its ack changes nothing, its lease cannot be extended.
    assert!(matches!(
        b.extend_lease(Duration::from_secs(1)),
        Err(Error::LeaseExpired { offset: 1 })
    ));
    b.ack().unwrap();
    // The attempts start over: offset 0 is not a dead letter yet.
    let again = c.try_receive().unwrap().unwrap();
    assert_eq!((again.offset(), again.attempt()), (0, 1));
    let b2 = c.try_receive().unwrap().unwrap();
    assert_eq!(
        (b2.offset(), b2.attempt()),
        (1, 1),
        "the void ack did not ack it"
    );
    twice.ack().unwrap(); // void too
    c.ack_batch([again, b2]).unwrap();
    assert_eq!(c.stats().buckets[0].ack_floor, 2);
    assert_eq!(c.stats().redelivered, redelivered, "counters are kept");

    // Forward: passed over, counted nowhere.
    let skipped = c.stats().skipped;
    let d = c.try_receive().unwrap().unwrap();
    c.seek(StartAt::Latest).unwrap();
    c.ack_batch([d]).unwrap(); // void
    assert!(c.try_receive().unwrap().is_none());
    assert_eq!(c.stats().skipped, skipped);
    assert_eq!(c.stats().pending(), 0);
    assert_eq!(c.stats().buckets[0].ack_floor, 4);

    // An offset, and the move survives a reopen.
    c.seek(StartAt::Offset(2)).unwrap();
    drop((c, s));
    store.close().unwrap();
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    let c = store.open_stream("s").unwrap().open_consumer("c").unwrap();
    assert_eq!(c.try_receive().unwrap().unwrap().payload(), b"c");
}

#[test]
fn a_seek_below_retention_is_clamped_and_levels_move_on_their_own() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, sim::consumer_options(&fs)).unwrap();
    let s = store
        .create_stream("p", StreamConfig::default().priorities(2))
        .unwrap();
    let c = s.consumer("c").unwrap();
    for i in 0..N {
        s.send_message(Message::new(&[i as u8; 1000]).priority(0))
            .unwrap();
    }
    s.send_message(Message::new(b"high").priority(1)).unwrap();
    c.ack_up_to(0, N - 1).unwrap();
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(first > 0, "retention removed the oldest segments");
    c.seek(StartAt::Offset(0)).unwrap();
    assert_eq!(c.stats().buckets[0].ack_floor, first);
    // Level 1 from 0 (its message), level 0 past its end.
    assert!(matches!(
        c.seek_offsets(&[N]),
        Err(Error::InvalidArgument(_))
    ));
    c.seek_offsets(&[N + 100, 0]).unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!((d.payload(), d.priority()), (&b"high"[..], 1));
    assert!(c.try_receive().unwrap().is_none());
    // By time: the first message at or after the last one's timestamp.
    let last = s.read(N - 1).unwrap().unwrap();
    c.seek(StartAt::timestamp(last.timestamp())).unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert!(d.offset() < N && d.timestamp() >= last.timestamp());
}

/// Where consumer `c` is after an open: `Some(true)` if moved to `TO`,
/// `Some(false)` if where it was; `other` is intact either way.
fn check_after(fs: &SimFs, what: &str) -> bool {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    let s = store.open_stream("s").unwrap();
    let other = s.open_consumer("other").unwrap();
    assert_eq!(other.stats().buckets[0].ack_floor, 10, "{what}: other");
    let c = s.open_consumer("c").unwrap();
    let floor = c.stats().buckets[0].ack_floor;
    let first = c.try_receive().unwrap().expect("something to deliver");
    match floor {
        TO => {
            assert_eq!((first.offset(), first.attempt()), (TO, 1), "{what}");
            true
        }
        ACKED => {
            // The message in flight before comes back first (its count
            // may be lower after a power cut: deliveries are not synced).
            assert_eq!(first.offset(), ACKED, "{what}");
            false
        }
        f => panic!("{what}: the consumer is at {f}"),
    }
}

#[test]
fn a_power_cut_at_every_operation_of_a_seek() {
    let probe = SimFs::new();
    let (store, held) = build(&probe);
    let before = probe.stats().ops;
    let c = store.open_stream("s").unwrap().open_consumer("c").unwrap();
    c.seek(StartAt::Offset(TO)).unwrap();
    let ops = probe.stats().ops - before;
    drop((c, held));
    // Durable on return: a power cut right after keeps it.
    assert!(check_after(
        &probe.power_cut(CutMode::DropUnsynced),
        "after"
    ));
    drop(store);
    assert!(ops >= 3, "a seek is a rotation: {ops}");
    let mut moved = 0;
    for at in 1..=ops {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let (store, held) = build(&fs);
            let c = store.open_stream("s").unwrap().open_consumer("c").unwrap();
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = c.seek(StartAt::Offset(TO));
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop((c, held, store));
            moved += usize::from(check_after(
                &image,
                &format!("cut at op {at} of {ops}, {mode:?}"),
            ));
        }
    }
    assert!(
        moved > 0 && moved < 2 * ops as usize,
        "{moved} of {}",
        2 * ops
    );
}

#[test]
fn an_io_error_at_every_operation_of_a_seek() {
    let probe = SimFs::new();
    let (store, held) = build(&probe);
    let before = probe.stats().ops;
    let c = store.open_stream("s").unwrap().open_consumer("c").unwrap();
    c.seek(StartAt::Offset(TO)).unwrap();
    let ops = probe.stats().ops - before;
    drop((c, held, store));
    for at in 1..=ops {
        let fs = SimFs::new();
        let (store, held) = build(&fs);
        let c = store.open_stream("s").unwrap().open_consumer("c").unwrap();
        fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
        let r = c.seek(StartAt::Offset(TO));
        let what = format!("EIO at op {at} of {ops}: {r:?}");
        let floor = c.stats().buckets[0].ack_floor;
        match &r {
            Ok(()) => assert_eq!(floor, TO, "{what}"),
            Err(_) if store.is_poisoned() => {}
            // Failed before it took effect: where it was, in memory too.
            Err(_) => assert_eq!(floor, ACKED, "{what}"),
        }
        let poisoned = store.is_poisoned();
        drop((c, held, store));
        let moved = check_after(&fs.power_cut(CutMode::DropUnsynced), &what);
        if r.is_ok() {
            assert!(moved, "{what}: a seek that returned is durable");
        } else if !poisoned {
            assert!(!moved, "{what}: a seek that failed changed nothing");
        }
    }
}
