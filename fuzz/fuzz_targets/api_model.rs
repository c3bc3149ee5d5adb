//! The API driven by arbitrary operation sequences on the simulated file
//! system, with a crash countdown, against a model: sends, batches,
//! receives, acks, nacks, cursor acks, reopens, and a power cut at the N-th
//! I/O operation (with arbitrary damage to unsynced pages). After every
//! reopen: every acknowledged send is there and byte-identical, no
//! acknowledged ack is undone, and the consumer delivers in the model's order.
//!
//! Input: byte 0..8 = crash countdown (0 = none) and damage seed, then one
//! byte per operation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::io::sim::{CutMode, SimFs};
use spool::{Consumer, ConsumerConfig, Delivery, Durability, Message, Options, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn options(fs: &SimFs) -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(8192)
        .consumer_journal_bytes(4096)
        .vfs(Arc::new(fs.clone()))
}

fn payload(offset: u64, len: u8) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.resize(8 + len as usize * 7, offset as u8);
    p
}

fn open(fs: &SimFs) -> Option<(Store, spool::Stream, Consumer)> {
    let store = Store::open("/f", options(fs)).ok()?;
    let s = store.stream("s").ok()?;
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600)),
        )
        .ok()?;
    Some((store, s, c))
}

#[derive(Default)]
struct Model {
    sent: Vec<u8>, // payload length code per offset
    acked_sends: u64,
    acked: BTreeSet<u64>,
    ack_attempted: BTreeSet<u64>,
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let countdown = data[0] as u64 * 4;
    let seed = data[1] as u64;
    let ops = &data[2..data.len().min(200)];
    let mut fs = SimFs::new();
    if countdown > 0 {
        fs.crash_at(countdown, CutMode::RandomPages(seed));
    }
    let mut m = Model::default();
    let Some((mut store, mut s, mut c)) = open(&fs) else {
        return check_after_crash(&fs, &m);
    };
    let mut held: Vec<Delivery> = Vec::new();
    for &op in ops {
        let ok = match op % 8 {
            0 | 1 => {
                let len = op / 8;
                let off = m.sent.len() as u64;
                match s.send(&payload(off, len)) {
                    Ok(o) => {
                        assert_eq!(o, off, "offsets are dense");
                        m.sent.push(len);
                        m.acked_sends = m.sent.len() as u64;
                        true
                    }
                    Err(_) => false,
                }
            }
            2 => {
                let n = 1 + (op / 8) as u64 % 8;
                let start = m.sent.len() as u64;
                let msgs: Vec<Vec<u8>> = (start..start + n).map(|o| payload(o, 1)).collect();
                match s.send_batch(msgs.iter().map(Message::new)) {
                    Ok(offs) => {
                        assert_eq!(offs, (start..start + n).collect::<Vec<_>>());
                        m.sent.extend(std::iter::repeat(1).take(n as usize));
                        m.acked_sends = m.sent.len() as u64;
                        true
                    }
                    Err(_) => false,
                }
            }
            3 | 4 => match c.try_receive() {
                Ok(Some(d)) => {
                    let o = d.offset();
                    assert!(!m.acked.contains(&o), "acknowledged {o} delivered again");
                    assert_eq!(
                        d.payload(),
                        payload(o, m.sent[o as usize]),
                        "payload of {o}"
                    );
                    held.push(d);
                    true
                }
                Ok(None) => true,
                Err(_) => false,
            },
            5 if !held.is_empty() => {
                let d = held.remove((op as usize / 8) % held.len());
                let o = d.offset();
                m.ack_attempted.insert(o);
                match d.ack() {
                    Ok(()) => {
                        m.acked.insert(o);
                        true
                    }
                    Err(_) => false,
                }
            }
            6 if !held.is_empty() => {
                let d = held.remove((op as usize / 8) % held.len());
                d.nack().is_ok()
            }
            7 => {
                // Reopen (a clean close).
                held.clear();
                drop(c);
                drop(s);
                if store.close().is_err() {
                    return check_after_crash(&fs, &m);
                }
                match open(&fs) {
                    Some(x) => {
                        (store, s, c) = x;
                        true
                    }
                    None => {
                        assert!(
                            fs.crashed_image().is_some(),
                            "reopen failed without a fault"
                        );
                        return check_after_crash(&fs, &m);
                    }
                }
            }
            _ => true,
        };
        if !ok {
            // An operation failed: only the crash countdown makes that happen.
            assert!(
                fs.crashed_image().is_some(),
                "an operation failed without a fault"
            );
            drop(held);
            drop(c);
            drop(s);
            drop(store);
            return check_after_crash(&fs, &m);
        }
    }
    drop(held);
    drop(c);
    drop(s);
    drop(store);
    if fs.crashed_image().is_some() {
        return check_after_crash(&fs, &m);
    }
    fs = fs.power_cut(CutMode::DropUnsynced);
    check(&fs, &m);
});

fn check_after_crash(fs: &SimFs, m: &Model) {
    let image = match fs.crashed_image() {
        Some(i) => i,
        None => return check(fs, m),
    };
    check(&SimFs::from_image(&image), m);
}

fn check(fs: &SimFs, m: &Model) {
    let (_store, s, c) = open(fs).expect("the survivor opens unaided");
    let end = s.stats().buckets[0].end_offset;
    assert!(
        end >= m.acked_sends,
        "acknowledged sends lost: end {end} < {}",
        m.acked_sends
    );
    for o in 0..end.min(m.sent.len() as u64) {
        let r = s.read(o).expect("read").expect("present");
        assert_eq!(r.payload(), payload(o, m.sent[o as usize]), "offset {o}");
    }
    let mut delivered = BTreeSet::new();
    while let Some(d) = c.try_receive().expect("receive") {
        let o = d.offset();
        assert!(
            !m.acked.contains(&o),
            "acknowledged {o} delivered after reopen"
        );
        assert!(delivered.insert(o));
        d.ack().expect("ack");
    }
    for o in 0..m.acked_sends {
        assert!(
            delivered.contains(&o) || m.ack_attempted.contains(&o),
            "offset {o} neither acknowledged nor delivered"
        );
    }
}
