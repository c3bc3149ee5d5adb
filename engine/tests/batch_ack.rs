//! Goal: `Consumer::ack_batch` acknowledges any set of one consumer's
//! deliveries (any offsets, any priorities, any handles) as `Delivery::ack`
//! would acknowledge each, with one journal record and one sync, all or
//! nothing; a set larger than the journal still fits one record; journals
//! that hold sets are format version 2 (with a version 2 checkpoint, which
//! a build knowing only version 1 refuses), and a consumer that never
//! batch-acks nor batch-receives keeps writing version 1.
//!
//! Method: stores on the simulated file system (its sync counter, injected
//! faults, and the files it holds), reopened to see what is durable.

pub mod common;

use common::sim;
use spool::format::journal::{self, JournalHeader, JOURNAL_VERSION_1, JOURNAL_VERSION_2};
use spool::format::meta::{self, CHECKPOINT_BODY_BYTES_MAX, CHECKPOINT_MAGIC};
use spool::io::sim::{FaultKind, SimFs};
use spool::{Consumer, ConsumerConfig, Delivery, Error, Message, Store, StreamConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/b";

fn open(fs: &SimFs) -> Store {
    Store::open(ROOT, sim::consumer_options(fs)).unwrap()
}

/// A store with stream `s` of `priorities` levels holding `n` messages per
/// level, payload = the offset.
fn filled(fs: &SimFs, priorities: u8, n: u64) -> (Store, spool::Stream) {
    let store = open(fs);
    let s = store
        .create_stream("s", StreamConfig::default().priorities(priorities))
        .unwrap();
    for p in 0..priorities {
        let msgs: Vec<Vec<u8>> = (0..n).map(|o| o.to_le_bytes().to_vec()).collect();
        s.send_batch(msgs.iter().map(|m| Message::new(m).priority(p)))
            .unwrap();
    }
    (store, s)
}

fn config() -> ConsumerConfig {
    ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600))
}

/// Every `(priority, offset)` a fresh open of the store delivers to `c`.
fn undelivered_after_reopen(fs: &SimFs, store: Store) -> BTreeSet<(u8, u64)> {
    store.close().unwrap();
    let store = open(fs);
    let c = store
        .stream("s")
        .unwrap()
        .consumer_with("c", config())
        .unwrap();
    let mut left = BTreeSet::new();
    loop {
        let batch = c.receive_batch(1000, Duration::ZERO).unwrap();
        if batch.is_empty() {
            break;
        }
        for d in batch {
            assert!(left.insert((d.priority(), d.offset())), "delivered twice");
        }
    }
    left
}

fn consumer_dir() -> PathBuf {
    Path::new(ROOT).join("streams/s/consumers/c")
}

/// The version of the checkpoint and of the journal of its generation.
fn versions(fs: &SimFs) -> (u32, Option<u32>) {
    let dir = consumer_dir();
    let ckpt = fs.read_file(&dir.join("checkpoint")).unwrap();
    let (version, body) =
        meta::decode_versioned(CHECKPOINT_MAGIC, 1..=2, &ckpt, CHECKPOINT_BODY_BYTES_MAX).unwrap();
    // The generation is the body's first field (a postcard varint).
    let mut g = 0u64;
    for (i, b) in body.iter().enumerate() {
        g |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    let journal = fs
        .read_file(&dir.join(format!("journal.{g:020}")))
        .ok()
        .and_then(|b| JournalHeader::decode(&b))
        .map(|h| h.version);
    (version, journal)
}

#[test]
fn a_batch_of_any_offsets_and_priorities_is_one_sync_and_stays_acknowledged() {
    let fs = SimFs::new();
    let (store, s) = filled(&fs, 3, 40);
    let c = s.consumer_with("c", config()).unwrap();
    let other_handle = s.consumer_with("c", config()).unwrap();
    let mut got = c.receive_batch(70, Duration::ZERO).unwrap();
    got.extend(other_handle.receive_batch(30, Duration::ZERO).unwrap());
    assert_eq!(got.len(), 100);
    // Every third delivery, from both handles, all levels, out of order.
    let mut acked = BTreeSet::new();
    let mut batch = Vec::new();
    let mut kept = Vec::new();
    for (i, d) in got.into_iter().enumerate() {
        if i % 3 == 0 {
            acked.insert((d.priority(), d.offset()));
            batch.push(d);
        } else {
            kept.push(d);
        }
    }
    batch.reverse();
    let levels: BTreeSet<u8> = acked.iter().map(|&(p, _)| p).collect();
    assert!(levels.len() >= 2, "the batch spans priorities: {levels:?}");
    let syncs = fs.stats().syncs;
    other_handle.ack_batch(batch).unwrap();
    let syncs = fs.stats().syncs - syncs;
    // One sync for the record: the batch receives started the journal, of
    // version 2 already (they journaled delivered ranges).
    assert_eq!(syncs, 1, "syncs of the first batch ack");
    let syncs_before = fs.stats().syncs;
    let more: Vec<Delivery> = kept.drain(..10).collect();
    for d in &more {
        acked.insert((d.priority(), d.offset()));
    }
    c.ack_batch(more).unwrap();
    assert_eq!(
        fs.stats().syncs - syncs_before,
        1,
        "a batch ack in a version 2 journal with room is one sync"
    );
    let stats = c.stats();
    assert_eq!(stats.in_flight(), kept.len() as u64);
    drop(kept);
    drop((c, other_handle, s));
    let left = undelivered_after_reopen(&fs, store);
    let all: BTreeSet<(u8, u64)> = (0..3u8)
        .flat_map(|p| (0..40u64).map(move |o| (p, o)))
        .collect();
    let want: BTreeSet<(u8, u64)> = all.difference(&acked).copied().collect();
    assert_eq!(left, want, "exactly the acknowledged ones are gone");
}

/// Receives every message of `s` on `c` in one batch.
fn take_all(c: &Consumer) -> Vec<Delivery> {
    c.receive_batch(usize::MAX, Duration::ZERO).unwrap()
}

/// Every message `c` has ready, received one at a time: the journal keeps
/// format version 1 (no delivered range).
fn take_one_by_one(c: &Consumer) -> Vec<Delivery> {
    std::iter::from_fn(|| c.try_receive().unwrap()).collect()
}

#[test]
fn stale_leases_and_duplicates_count_as_with_single_acks() {
    // The same story told with single acks and with one batch ack must end
    // in the same state: a delivery whose lease expired (and that was
    // delivered again) is acknowledged; the later delivery's ack and a
    // second ack of an acknowledged message change nothing and do not fail.
    let run = |batch: bool| {
        let fs = SimFs::new();
        let (store, s) = filled(&fs, 1, 6);
        let c = s
            .consumer_with(
                "c",
                ConsumerConfig::default().visibility_timeout(Duration::from_millis(30)),
            )
            .unwrap();
        let mut first = take_all(&c);
        assert_eq!(first.len(), 6);
        std::thread::sleep(Duration::from_millis(60));
        // Leases of 0..6 expired: redelivered to another worker.
        let again = take_all(&c);
        assert_eq!(again.len(), 6);
        assert!(again.iter().all(|d| d.attempt() == 2));
        let stale: Vec<Delivery> = first.drain(..3).collect();
        assert!(stale.iter().all(|d| !d.is_leased()));
        let (newer_of_stale, rest): (Vec<Delivery>, Vec<Delivery>) =
            again.into_iter().partition(|d| d.offset() < 3);
        let floor = |c: &Consumer| c.stats().buckets[0].ack_floor;
        if batch {
            c.ack_batch(stale).unwrap();
        } else {
            for d in stale {
                d.ack().unwrap();
            }
        }
        // The stale deliveries acknowledged the messages...
        let after_stale = floor(&c);
        // ...and the later deliveries' acks change nothing, without failing.
        let ops = fs.stats().ops;
        if batch {
            c.ack_batch(newer_of_stale).unwrap();
        } else {
            for d in newer_of_stale {
                d.ack().unwrap();
            }
        }
        assert_eq!(floor(&c), after_stale);
        if batch {
            assert_eq!(fs.stats().ops, ops, "nothing to journal");
        }
        let b = &c.stats().buckets[0];
        let floors = (after_stale, b.ack_floor, b.next_offset);
        drop((first, rest, c, s));
        (floors, undelivered_after_reopen(&fs, store))
    };
    let (single_floors, single_left) = run(false);
    let (batch_floors, batch_left) = run(true);
    assert_eq!(batch_left, single_left);
    assert_eq!(batch_left, (3..6).map(|o| (0, o)).collect());
    assert_eq!(batch_floors, (3, 3, 6));
    assert_eq!(batch_floors, single_floors);
}

#[test]
fn a_delivery_of_another_consumer_fails_the_batch_before_anything() {
    let fs = SimFs::new();
    let (store, s) = filled(&fs, 1, 4);
    let c = s.consumer_with("c", config()).unwrap();
    let d = s.consumer_with("d", config()).unwrap();
    let mut batch = take_all(&c);
    batch.insert(1, d.try_receive().unwrap().unwrap());
    let e = c.ack_batch(batch).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("\"d\""), "{e}");
    assert_eq!(c.stats().buckets[0].ack_floor, 0);
    assert_eq!(d.stats().buckets[0].ack_floor, 0);
    drop((c, d, s));
    assert_eq!(undelivered_after_reopen(&fs, store).len(), 4);
}

#[test]
fn an_empty_batch_or_one_of_acknowledged_messages_writes_nothing() {
    let fs = SimFs::new();
    let (_store, s) = filled(&fs, 1, 4);
    let c = s.consumer_with("c", config()).unwrap();
    let ops = fs.stats().ops;
    c.ack_batch(Vec::new()).unwrap();
    assert_eq!(fs.stats().ops, ops);
    let all = take_all(&c);
    let first = all.into_iter().next().unwrap();
    let offset = first.offset();
    first.ack().unwrap();
    // Its lease ran out and it came back? No: acknowledged is acknowledged.
    assert_eq!(c.stats().buckets[0].ack_floor, offset + 1);
    let ops = fs.stats().ops;
    c.ack_batch(std::iter::empty()).unwrap();
    assert_eq!(fs.stats().ops, ops);
}

#[test]
fn all_or_nothing_when_an_operation_of_the_batch_ack_fails() {
    // The first batch ack starts a journal generation (of version 2), then
    // syncs its record: fail each of its operations in turn, with ENOSPC
    // and EIO. A call that fails before the record is journaled
    // acknowledges none of the batch, in memory or on disk; one whose sync
    // fails poisons the store, and after a power cut none is acknowledged
    // either (the record was never durable); one that returns `Ok` (a
    // failed removal of the old journal is no error) acknowledged all.
    let mut failures = 0;
    for n in 0.. {
        for kind in [FaultKind::Enospc, FaultKind::Eio] {
            let fs = SimFs::new();
            let (store, s) = filled(&fs, 2, 10);
            let c = s.consumer_with("c", config()).unwrap();
            let batch = take_one_by_one(&c);
            assert_eq!(batch.len(), 20);
            let at = fs.stats().ops + 1 + n;
            fs.fail_at(at, kind, false);
            let r = c.ack_batch(batch);
            if fs.stats().ops < at {
                // The batch ack takes fewer operations: each one was tried.
                r.unwrap();
                assert!(failures >= 20, "only {failures} failed calls");
                return;
            }
            let what = format!("op {n} of the batch ack, {kind:?}: {r:?}");
            let poisoned = matches!(c.try_receive(), Err(Error::Poisoned));
            let floors: Vec<u64> = c.stats().buckets.iter().map(|b| b.ack_floor).collect();
            match &r {
                Ok(()) => assert_eq!(floors, [10, 10], "{what}"),
                Err(_) if !poisoned => {
                    failures += 1;
                    assert_eq!(floors, [0, 0], "{what}: nothing acknowledged");
                }
                Err(_) => failures += 1,
            }
            drop((c, s, store));
            let fs = fs.power_cut(spool::io::sim::CutMode::DropUnsynced);
            let left = undelivered_after_reopen(&fs, open(&fs)).len();
            assert_eq!(left, if r.is_ok() { 0 } else { 20 }, "{what}");
        }
    }
}

#[test]
fn a_set_larger_than_the_journal_is_one_record_in_a_larger_journal() {
    // 4 KiB journals; every other one of 5,000 messages acknowledged at once:
    // 2,500 runs, about 5 KiB of record.
    let fs = SimFs::new();
    let (store, s) = filled(&fs, 1, 5000);
    let c = s.consumer_with("c", config()).unwrap();
    let all = take_all(&c);
    assert_eq!(all.len(), 5000);
    let (odd, even): (Vec<Delivery>, Vec<Delivery>) =
        all.into_iter().partition(|d| d.offset() % 2 == 1);
    let syncs = fs.stats().syncs;
    c.ack_batch(odd).unwrap();
    assert!(fs.stats().syncs - syncs <= 4);
    let dir = consumer_dir();
    let journals: Vec<u64> = fs
        .files()
        .into_iter()
        .filter(|f| f.parent() == Some(dir.as_path()))
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal.")
        })
        .map(|f| fs.read_file(&f).unwrap().len() as u64)
        .collect();
    assert_eq!(journals, [8192], "one journal, grown to hold the record");
    let (_, records) = journal::decode_all(
        &fs.read_file(
            &fs.files()
                .into_iter()
                .find(|f| {
                    f.file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .starts_with("journal.")
                })
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(records.len(), 1, "the set is one record");
    // Then the journal fills up with single records and rotates back to
    // the configured size.
    let n = even.len();
    for d in even.into_iter().take(n - 10) {
        d.ack().unwrap();
    }
    drop((c, s));
    let left = undelivered_after_reopen(&fs, store);
    assert_eq!(left, (4980..5000).step_by(2).map(|o| (0, o)).collect());
}

#[test]
fn journals_holding_sets_are_version_2_and_older_builds_refuse_them() {
    let fs = SimFs::new();
    let (store, s) = filled(&fs, 1, 20);
    let c = s.consumer_with("c", config()).unwrap();
    // Single receives and acks (and a batch of one, which is a single ack)
    // keep the files any build reads.
    let mut all = take_one_by_one(&c).into_iter();
    all.next().unwrap().ack().unwrap();
    c.ack_batch(all.next()).unwrap();
    assert_eq!(versions(&fs), (1, Some(JOURNAL_VERSION_1)));
    c.ack_batch(all.by_ref().take(5)).unwrap();
    assert_eq!(versions(&fs), (2, Some(JOURNAL_VERSION_2)));
    let ckpt = fs.read_file(&consumer_dir().join("checkpoint")).unwrap();
    // What a build that knows only version 1 does with it: refuse.
    assert_eq!(
        meta::decode_versioned(CHECKPOINT_MAGIC, 1..=1, &ckpt, CHECKPOINT_BODY_BYTES_MAX),
        Err(meta::MetaDecodeError::Version(2))
    );
    drop(all);
    drop((c, s));
    store.close().unwrap();
    // Reopened, a consumer that only single-acks goes back to version 1 at
    // its next generation, and the acks of the version 2 journal hold.
    let store = open(&fs);
    let c = store
        .stream("s")
        .unwrap()
        .consumer_with("c", config())
        .unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), 7, "0..7 acknowledged before the reopen");
    d.ack().unwrap();
    assert_eq!(versions(&fs), (1, Some(JOURNAL_VERSION_1)));
}
