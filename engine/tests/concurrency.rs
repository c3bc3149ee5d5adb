//! Goal: many threads may send and read one stream at once; every send gets
//! a distinct offset, every message reads back intact, readers never see a
//! partly written record, and concurrent durable senders share syncs.
//!
//! Method: 4 sender threads and 2 reader threads on one stream with small
//! segments (so rolls happen under load); payloads name their sender and
//! sequence number; at the end every (sender, sequence) is present exactly
//! once, in per-sender order. The group-commit test counts syncs through the
//! simulated file system.

pub mod common;

use common::temp_store;
use spool::io::sim::SimFs;
use spool::{Durability, Options, Store};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

#[test]
fn concurrent_senders_and_readers() {
    let opts = Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(256 * 1024);
    let (_dir, store) = temp_store(opts);
    let s = store.stream("c").unwrap();
    const SENDERS: u32 = 4;
    const PER: u32 = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let s = s.clone();
        let done = done.clone();
        readers.push(std::thread::spawn(move || {
            let mut next = 0u64;
            let mut seen = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                while let Some(r) = s.read(next).unwrap() {
                    assert_eq!(r.offset(), next);
                    let p = r.payload();
                    assert!(p.len() >= 8, "short payload at {next}");
                    let body_len = (u32::from_le_bytes(p[4..8].try_into().unwrap()) % 300) as usize;
                    assert_eq!(p.len(), 8 + body_len, "torn record at {next}");
                    assert!(p[8..].iter().all(|&b| b == p[0]), "mixed bytes at {next}");
                    next += 1;
                    seen += 1;
                }
                if finished {
                    return seen;
                }
                std::thread::yield_now();
            }
        }));
    }
    let barrier = Arc::new(Barrier::new(SENDERS as usize));
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let s = s.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut offsets = Vec::with_capacity(PER as usize);
                for i in 0..PER {
                    let mut p = vec![t as u8; 8 + (i % 300) as usize];
                    p[..4].copy_from_slice(&t.to_le_bytes());
                    p[4..8].copy_from_slice(&i.to_le_bytes());
                    offsets.push(s.send(&p).unwrap());
                }
                offsets
            })
        })
        .collect();
    let mut all = HashSet::new();
    for h in senders {
        let offs = h.join().unwrap();
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "per-sender order");
        for o in offs {
            assert!(all.insert(o), "offset {o} given twice");
        }
    }
    done.store(true, Ordering::Release);
    let total = (SENDERS * PER) as u64;
    for r in readers {
        assert_eq!(r.join().unwrap(), total);
    }
    assert_eq!(all.len() as u64, total);
    let mut next_seq = vec![0u32; SENDERS as usize];
    for r in s.iter_from(0) {
        let r = r.unwrap();
        let p = r.payload();
        let t = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize;
        let i = u32::from_le_bytes(p[4..8].try_into().unwrap());
        assert_eq!(i, next_seq[t], "sender {t} out of order");
        next_seq[t] += 1;
    }
    assert!(next_seq.iter().all(|&n| n == PER));
}

#[test]
fn durable_senders_share_syncs() {
    let fs = SimFs::new();
    let opts = Options::default()
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()));
    let store = Store::open("/g", opts).unwrap();
    let s = store.stream("g").unwrap();
    // Syncs take as long as a real disk flush, so senders pile up behind one.
    fs.set_sync_delay(std::time::Duration::from_millis(2));
    let before = fs.stats().syncs;
    const THREADS: usize = 8;
    const PER: usize = 50;
    let barrier = Arc::new(Barrier::new(THREADS));
    let hs: Vec<_> = (0..THREADS)
        .map(|_| {
            let s = s.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..PER {
                    s.send(b"x").unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let syncs = fs.stats().syncs - before;
    let sends = (THREADS * PER) as u64;
    // Every send was durable when it returned; with 8 senders waiting behind
    // each 2 ms sync, one sync covers several of them (one sync per send is
    // what a store without group commit would do).
    assert!(syncs * 2 <= sends, "{syncs} syncs for {sends} sends");
    assert_eq!(s.stats().buckets[0].durable_offset, sends);
}
