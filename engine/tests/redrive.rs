//! Goal: re-driving dead letters sends each back to its source stream as
//! it was (payload, priority, original headers without the dead-letter
//! ones), and acknowledges it in the dead-letter stream only after the copy
//! is durable: a power cut or an I/O error at any operation of a re-drive
//! loses no dead letter, and after a re-drive that completes each has one
//! copy in its source, at most two (one extra per crash). What cannot be
//! re-driven stays.
//!
//! Method: stores on the simulated file system; `SimFs::crash_at` /
//! `fail_at` at every operation of one `redrive` call, then a re-drive to
//! the end after the reopen.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{dead_letter_headers as dl, ConsumerConfig, Durability, Message, Store, StreamConfig};
use std::collections::BTreeMap;
use std::time::Duration;

const ROOT: &str = "/d";
/// Dead letters made by `build`.
const K: usize = 6;

fn payload(i: usize) -> Vec<u8> {
    if i == 0 {
        // A claim check.
        let mut p = vec![9u8; 8192];
        p[..6].copy_from_slice(b"job 0 ");
        p
    } else {
        format!("job {i}").into_bytes()
    }
}

/// Stream `jobs` (two levels, claim checks above 4 KiB) whose consumer
/// `worker` gave up on `K` messages (moved to `jobs.dead`), each with a
/// header `n`; nothing is re-driven yet.
fn build(fs: &SimFs, durability: Durability) -> Store {
    let options = sim::options(fs, durability)
        .allocation_chunk_bytes(8192)
        .consumer_journal_bytes(4096);
    let store = Store::open(ROOT, options).unwrap();
    let config = StreamConfig::default()
        .priorities(2)
        .claim_check_threshold(4096);
    let jobs = store.create_stream("jobs", config.clone()).unwrap();
    store
        .create_stream("jobs.dead", config.priorities(1))
        .unwrap();
    let worker = jobs
        .consumer_with(
            "worker",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("jobs.dead"),
        )
        .unwrap();
    for i in 0..K {
        let n = i.to_string();
        let p = payload(i);
        let m = Message::new(&p).header("n", &n).priority((i % 2) as u8);
        jobs.send_message(m).unwrap();
    }
    while let Some(d) = worker.try_receive().unwrap() {
        d.nack().unwrap();
    }
    assert_eq!(worker.stats().dead_lettered, K as u64);
    store.sync().unwrap();
    store
}

/// How many times each job's payload is in `jobs` (the original counts
/// one), by job number.
fn copies(store: &Store) -> BTreeMap<usize, usize> {
    let jobs = store.open_stream("jobs").unwrap();
    let mut out = BTreeMap::new();
    for p in 0..2 {
        for r in jobs.iter_priority(p, 0).unwrap() {
            let r = r.unwrap();
            let n: usize = std::str::from_utf8(r.header("n").unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.payload(), &payload(n)[..], "job {n}");
            assert_eq!(r.priority() as usize, n % 2, "job {n}: its priority");
            assert!(
                r.headers()
                    .all(|(k, _)| !k.starts_with("spool-dead-letter-")),
                "job {n}: dead-letter headers went with it"
            );
            *out.entry(n).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn dead_letters_go_back_as_they_were() {
    let fs = SimFs::new();
    let store = build(&fs, Durability::Always);
    let dead = store.open_stream("jobs.dead").unwrap();
    // Not re-drivable: not a dead letter; one from a stream deleted since.
    dead.send(b"not a dead letter").unwrap();
    let gone = store.stream("gone").unwrap();
    gone.send(b"from a deleted stream").unwrap();
    let g = gone
        .consumer_with(
            "g",
            ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("jobs.dead"),
        )
        .unwrap();
    g.try_receive().unwrap().unwrap().nack().unwrap();
    assert!(g.try_receive().unwrap().is_none());
    store.delete_stream("gone").unwrap();
    let big = dead
        .iter_from(0)
        .map(|r| r.unwrap())
        .find(|r| r.header("n") == Some(&b"0"[..]))
        .unwrap();
    assert!(big.is_claim_check(), "the big one is a claim check there");

    assert_eq!(dead.redrive("redrive", 2).unwrap(), 2, "at most max");
    assert_eq!(dead.redrive("redrive", 100).unwrap(), K - 2);
    assert_eq!(dead.redrive("redrive", 100).unwrap(), 0, "each once");
    let r = dead.open_consumer("redrive").unwrap();
    assert_eq!(r.stats().pending(), 2, "the two it could not re-drive stay");
    assert_eq!(copies(&store).values().copied().collect::<Vec<_>>(), [2; K]);
    // The worker gets them again, as new messages, higher level first.
    let worker = store
        .open_stream("jobs")
        .unwrap()
        .open_consumer("worker")
        .unwrap();
    let again = worker.receive_batch(100, Duration::ZERO).unwrap();
    assert_eq!(again.len(), K);
    assert!(again.iter().all(|d| d.attempt() == 1));
    let big = again
        .iter()
        .find(|d| d.header("n") == Some(&b"0"[..]))
        .unwrap();
    assert!(big.record().is_claim_check(), "still a claim check");
    assert_eq!(big.payload(), &payload(0)[..]);
    assert!(big.header(dl::STREAM).is_none());
}

/// After a reopen and a re-drive to the end: every dead letter is back in
/// `jobs` once or twice (never lost, at most one extra copy), none is left
/// to re-drive.
fn check_after(fs: &SimFs, durability: Durability, what: &str) -> Vec<usize> {
    let options = sim::options(fs, durability)
        .allocation_chunk_bytes(8192)
        .consumer_journal_bytes(4096);
    let store =
        Store::open(ROOT, options).unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    let before = copies(&store);
    let dead = store.open_stream("jobs.dead").unwrap();
    dead.redrive("redrive", 100)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let after = copies(&store);
    assert_eq!(after.len(), K, "{what}");
    for (n, c) in &after {
        assert!((2..=3).contains(c), "{what}: job {n} is there {c} times");
        assert!(
            before.get(n).is_none_or(|&b| b <= 2),
            "{what}: job {n} was copied twice by one re-drive"
        );
    }
    let r = dead.open_consumer("redrive").unwrap();
    assert_eq!(r.stats().pending(), 0, "{what}");
    before.values().copied().collect()
}

fn power_cuts(durability: Durability) {
    let probe = SimFs::new();
    let store = build(&probe, durability);
    let before = probe.stats().ops;
    let dead = store.open_stream("jobs.dead").unwrap();
    assert_eq!(dead.redrive("redrive", 100).unwrap(), K);
    let ops = probe.stats().ops - before;
    // Durable on return, whatever the durability: a power cut right after
    // keeps every copy and every acknowledgement.
    let cut = probe.power_cut(CutMode::DropUnsynced);
    drop((dead, store));
    assert_eq!(check_after(&cut, durability, "after"), [2; K]);
    let mut redriven = 0;
    for at in 1..=ops {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let store = build(&fs, durability);
            let dead = store.open_stream("jobs.dead").unwrap();
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = dead.redrive("redrive", 100);
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop((dead, store));
            let what = format!("{durability:?}: cut at op {at} of {ops}, {mode:?}");
            redriven += check_after(&image, durability, &what)
                .iter()
                .filter(|&&c| c > 1)
                .count();
        }
    }
    assert!(redriven > 0, "some cuts come after copies were durable");
}

#[test]
fn a_power_cut_at_every_operation_of_a_redrive() {
    power_cuts(Durability::Always);
}

#[test]
fn a_power_cut_at_every_operation_of_a_redrive_without_syncs_of_sends() {
    power_cuts(Durability::Never);
}

#[test]
fn an_io_error_at_every_operation_of_a_redrive() {
    let probe = SimFs::new();
    let store = build(&probe, Durability::Always);
    let before = probe.stats().ops;
    store
        .open_stream("jobs.dead")
        .unwrap()
        .redrive("redrive", 100)
        .unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    for at in 1..=ops {
        let fs = SimFs::new();
        let store = build(&fs, Durability::Always);
        fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
        let r = store
            .open_stream("jobs.dead")
            .unwrap()
            .redrive("redrive", 100);
        let what = format!("EIO at op {at} of {ops}: {r:?}");
        drop(store);
        check_after(
            &fs.power_cut(CutMode::DropUnsynced),
            Durability::Always,
            &what,
        );
    }
}
