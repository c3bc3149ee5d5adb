//! Goal: a power cut at any I/O operation of a workload of scheduled,
//! expiring and grouped messages (receives that park and expire them,
//! expiries journaled as kind 7 records in journals of version 3,
//! checkpoints carrying the expired count, dead letters with reason
//! `expired`, acks that move groups on) leaves a store that opens, and in
//! which:
//! - nothing whose ack returned comes back;
//! - a message scheduled ahead is never delivered; an expired one never;
//! - a drain never holds two messages of one group;
//! - every message is delivered again, acknowledged, scheduled ahead, or
//!   (expired) in the dead-letter stream, and the consumer's `expired`
//!   count is exactly the number of expired messages (an expiry is counted
//!   once, whatever survived).
//!
//! Method: the workload runs on the simulated file system with tiny
//! journals (so rotations happen, to version 3 and between generations of
//! it); for every operation number N a run cuts the power at N, the
//! survivor is opened and drained. Times are far in the past or ahead, so
//! the workload does the same at every run.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{dead_letter_headers, ConsumerConfig, Delivery, Message, Store};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

const ROOT: &str = "/a";
const ROUNDS: u64 = 4;
const PER_ROUND: u64 = 12;

/// What message `o` is: `o % 6` = 0 plain, 1 scheduled an hour ahead, 2
/// expired (expires-at in the past), 3 group "a", 4 group "b", 5 group "a"
/// with a deliver-at in the past and a ttl of an hour.
fn kind(o: u64) -> u64 {
    o % 6
}

fn message(o: u64) -> Message<'static> {
    let m = Message::new(b"m");
    match kind(o) {
        1 => m.deliver_after(Duration::from_secs(3600)),
        2 => m.expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
        3 => m.group("a"),
        4 => m.group("b"),
        5 => m
            .group("a")
            .deliver_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
            .ttl(Duration::from_secs(3600)),
        _ => m,
    }
}

fn group(o: u64) -> Option<u8> {
    match kind(o) {
        3 | 5 => Some(0),
        4 => Some(1),
        _ => None,
    }
}

/// Checks one set of deliveries held at once.
fn check_held(held: &[&Delivery], what: &str) {
    let mut groups = BTreeSet::new();
    for d in held {
        let o = d.offset();
        assert!(
            !matches!(kind(o), 1 | 2),
            "{what}: #{o} delivered (scheduled ahead or expired)"
        );
        if let Some(g) = group(o) {
            assert!(groups.insert(g), "{what}: two of group {g} leased");
        }
    }
}

#[derive(Default)]
struct Acked {
    confirmed: BTreeSet<u64>,
    attempted: BTreeSet<u64>,
}

fn workload(fs: &SimFs, acked: &mut Acked) -> spool::Result<()> {
    let store = Store::open(ROOT, sim::consumer_options(fs))?;
    let s = store.stream("q")?;
    let config = ConsumerConfig::default()
        .visibility_timeout(Duration::from_secs(60))
        .dead_letter("dead");
    let c = s.consumer_with("c", config)?;
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            s.send_message(message(round * PER_ROUND + i))?;
        }
        let batch = c.receive_batch(8, Duration::ZERO)?;
        check_held(&batch.iter().collect::<Vec<_>>(), "workload");
        let mut it = batch.into_iter();
        // The first is given back (its group's turn stays with it).
        if let Some(d) = it.next() {
            d.nack()?;
        }
        let rest: Vec<Delivery> = it.collect();
        let offsets: Vec<u64> = rest.iter().map(|d| d.offset()).collect();
        acked.attempted.extend(&offsets);
        if round % 2 == 0 {
            c.ack_batch(rest)?;
        } else {
            for d in rest {
                d.ack()?;
            }
        }
        acked.confirmed.extend(offsets);
    }
    store.close()
}

fn check(fs: &SimFs, acked: &Acked, what: &str) {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let Ok(s) = store.stream("q") else {
        return; // cut before the stream was created
    };
    let end = s.stats().buckets[0].end_offset;
    let config = ConsumerConfig::default()
        .visibility_timeout(Duration::from_secs(60))
        .dead_letter("dead");
    let c = s
        .consumer_with("c", config)
        .unwrap_or_else(|e| panic!("{what}: consumer: {e}"));
    let mut drained = BTreeSet::new();
    loop {
        let batch = c
            .receive_batch(5, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{what}: drain: {e}"));
        if batch.is_empty() {
            break;
        }
        check_held(&batch.iter().collect::<Vec<_>>(), what);
        for d in &batch {
            assert!(
                !acked.confirmed.contains(&d.offset()),
                "{what}: #{} came back after its ack returned",
                d.offset()
            );
            drained.insert(d.offset());
        }
        c.ack_batch(batch)
            .unwrap_or_else(|e| panic!("{what}: ack: {e}"));
    }
    let dead = store.stream("dead").expect("dead");
    let mut dead_letters = BTreeSet::new();
    let mut i = 0;
    while let Some(r) = dead.read(i).expect("read dead") {
        assert_eq!(r.header(dead_letter_headers::REASON), Some(&b"expired"[..]));
        let o: u64 = std::str::from_utf8(r.header(dead_letter_headers::OFFSET).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(kind(o), 2, "{what}: #{o} dead-lettered");
        dead_letters.insert(o);
        i += 1;
    }
    let expired = (0..end).filter(|&o| kind(o) == 2).count() as u64;
    assert_eq!(
        c.stats().expired,
        expired,
        "{what}: each expired message counted once"
    );
    for o in 0..end {
        let ok = match kind(o) {
            1 => !drained.contains(&o),
            2 => dead_letters.contains(&o),
            _ => drained.contains(&o) || acked.attempted.contains(&o),
        };
        assert!(ok, "{what}: #{o} (kind {}) lost", kind(o));
    }
}

#[test]
fn power_cut_at_every_operation_of_scheduled_expiring_and_grouped_messages() {
    let fs = SimFs::new();
    let mut acked = Acked::default();
    workload(&fs, &mut acked).expect("clean run");
    let total = fs.stats().ops;
    assert!(fs.violations().is_empty());
    // The workload exercises what it claims: expiries in a checkpoint of
    // version 3 (a rotation after the first expiry).
    let cdir = std::path::Path::new(ROOT).join("streams/q/consumers/c");
    let ckpt = fs.read_file(&cdir.join("checkpoint")).unwrap();
    assert_eq!(ckpt[8..12], 3u32.to_le_bytes(), "checkpoint version");
    check(&fs, &acked, "no cut");
    assert!(total > 100, "workload too small: {total}");
    for n in 1..=total {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(n)] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut acked = Acked::default();
            let _ = workload(&fs, &mut acked);
            let image = fs.crashed_image().expect("crashed");
            check(
                &SimFs::from_image(&image),
                &acked,
                &format!("cut at op {n}/{total} {mode:?}"),
            );
        }
    }
}
