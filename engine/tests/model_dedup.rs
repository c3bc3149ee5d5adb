//! Goal: deduplication behaves like a model map of ids under any sequence
//! of sends with and without ids, batches (with duplicates inside), reopens,
//! power cuts and I/O failures: no id is ever stored twice within the
//! window, and nothing acknowledged is lost.
//!
//! Method: proptest generates operation sequences and runs them on the
//! simulated file system (`Durability::Always`, 64 KiB segments, so runs
//! roll segments) and against a model: the ids known to be stored, with
//! where, and those acknowledged. A send of a known id must return its
//! offset and store nothing; of a new id, the next offset of its level.
//! After every reopen the log is read whole: every id in it appears once,
//! every acknowledged id where it was acknowledged; the model then adopts
//! what the log holds (a send that failed may have stored its message).
//!
//! A consumer acknowledges everything now and then, and retention deletes
//! the segments it passed: the ids of deleted segments stay known (their
//! segments' ids are kept, DESIGN.md §7.1), across reopens and power cuts
//! too; the audit reads the retained log and keeps what the model knew
//! below the first retained offset.

pub mod common;

use common::sim;
use proptest::prelude::*;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{Durability, Message, Store, StreamConfig};
use std::collections::HashMap;
use std::time::Duration;

const ROOT: &str = "/store";
const LEVELS: u8 = 2;

#[derive(Debug, Clone)]
enum Op {
    Send {
        id: Option<u8>,
        priority: u8,
        len: usize,
    },
    Batch(Vec<(Option<u8>, u8)>),
    Reopen,
    /// The consumer acknowledges everything sent, then a retention pass.
    AckAllAndRetain,
    PowerCut {
        random: bool,
        seed: u64,
    },
    /// An I/O error `after` operations from now; sends of `ids` go on
    /// until one fails, then the power is cut.
    FailThenCut {
        after: u64,
        ids: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = prop_oneof![1 => Just(None), 3 => (0u8..24).prop_map(Some)];
    prop_oneof![
        8 => (id.clone(), 0..LEVELS, 0usize..12_000)
            .prop_map(|(id, priority, len)| Op::Send { id, priority, len }),
        3 => proptest::collection::vec((id, 0..LEVELS), 1..12).prop_map(Op::Batch),
        2 => Just(Op::Reopen),
        2 => Just(Op::AckAllAndRetain),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(random, seed)| Op::PowerCut { random, seed }),
        1 => (1u64..60, proptest::collection::vec(0u8..24, 1..8))
            .prop_map(|(after, ids)| Op::FailThenCut { after, ids }),
    ]
}

fn key(id: u8) -> String {
    format!("id-{id}")
}

fn payload(id: Option<u8>, len: usize) -> Vec<u8> {
    let mut p = format!("{id:?}").into_bytes();
    p.resize(len.max(p.len()), 0x5a);
    p
}

#[derive(Debug, Default)]
struct Model {
    /// Ids in the log: where.
    known: HashMap<u8, (u8, u64)>,
    /// Ids whose send returned `Ok`: where it said.
    acked: HashMap<u8, (u8, u64)>,
}

fn open(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, sim::options(fs, Durability::Always)).expect("open");
    store
        .stream_with(
            "s",
            StreamConfig::default()
                .priorities(LEVELS)
                .dedup_window(Duration::from_secs(3600)),
        )
        .expect("stream")
        .consumer("c")
        .expect("consumer");
    store
}

fn ends(s: &spool::Stream) -> Vec<u64> {
    s.stats().buckets.iter().map(|b| b.end_offset).collect()
}

/// Reads the whole retained log: each id once; every acknowledged one
/// that retention did not delete where it was acknowledged. The model
/// adopts the log, and keeps what it knew below the first retained
/// offsets (deleted by retention: their ids are kept).
fn audit(store: &Store, m: &mut Model) {
    let s = store.stream("s").unwrap();
    let firsts: Vec<u64> = s.stats().buckets.iter().map(|b| b.first_offset).collect();
    let deleted = |&(p, o): &(u8, u64)| o < firsts[p as usize];
    let mut found: HashMap<u8, (u8, u64)> = HashMap::new();
    for p in 0..LEVELS {
        for r in s.iter_priority(p, firsts[p as usize]).unwrap() {
            let r = r.expect("read");
            if let Some(id) = r.message_id() {
                let n: u8 = std::str::from_utf8(&id[3..]).unwrap().parse().unwrap();
                let prev = found.insert(n, (p, r.offset()));
                assert!(
                    prev.is_none(),
                    "id {n} stored twice: {prev:?} and {p}/{}",
                    r.offset()
                );
            }
        }
    }
    for (id, at) in &m.acked {
        if !deleted(at) {
            assert_eq!(
                found.get(id),
                Some(at),
                "acknowledged id {id} lost or moved"
            );
        }
    }
    for (id, at) in &m.known {
        if deleted(at) {
            let prev = found.insert(*id, *at);
            assert!(
                prev.is_none(),
                "id {id} deleted at {at:?} and stored again at {prev:?}"
            );
        }
    }
    m.known = found;
}

/// The consumer acknowledges everything sent so far; a retention pass
/// deletes what it passed.
fn ack_all_and_retain(store: &Store) {
    let s = store.stream("s").unwrap();
    let c = s.open_consumer("c").unwrap();
    for (p, end) in ends(&s).into_iter().enumerate() {
        if end > 0 {
            c.ack_up_to(p as u8, end - 1).expect("ack");
        }
    }
    s.apply_retention().expect("retention");
}

/// One send against the model; `Err` ends a failing phase.
fn send(s: &spool::Stream, m: &mut Model, id: Option<u8>, priority: u8, len: usize) -> bool {
    let before = ends(s);
    let p = payload(id, len);
    let k = id.map(key);
    let mut msg = Message::new(&p).priority(priority);
    if let Some(k) = &k {
        msg = msg.id(k);
    }
    let Ok(got) = s.send_message(msg) else {
        return false;
    };
    match id.and_then(|i| m.known.get(&i).copied()) {
        Some((lp, lo)) => {
            assert_eq!(got, lo, "duplicate of {id:?} got another offset");
            assert_eq!(
                ends(s),
                before,
                "duplicate of {id:?} (at {lp}) stored something"
            );
        }
        None => {
            assert_eq!(got, before[priority as usize]);
            if let Some(i) = id {
                m.known.insert(i, (priority, got));
                m.acked.insert(i, (priority, got));
            }
        }
    }
    true
}

fn batch(s: &spool::Stream, m: &mut Model, items: &[(Option<u8>, u8)]) {
    let before = ends(s);
    let keys: Vec<Option<String>> = items.iter().map(|(id, _)| id.map(key)).collect();
    let msgs: Vec<Message<'_>> = items
        .iter()
        .zip(&keys)
        .map(|(&(_, p), k)| {
            let msg = Message::new(b"batch").priority(p);
            match k {
                Some(k) => msg.id(k),
                None => msg,
            }
        })
        .collect();
    let got = s.send_batch(msgs.iter().cloned()).expect("batch");
    let mut next = before.clone();
    for (&(id, p), &o) in items.iter().zip(&got) {
        match id.and_then(|i| m.known.get(&i).copied()) {
            Some((_, lo)) => assert_eq!(o, lo, "batch duplicate {id:?}"),
            None => {
                assert_eq!(o, next[p as usize]);
                next[p as usize] += 1;
                if let Some(i) = id {
                    m.known.insert(i, (p, o));
                    m.acked.insert(i, (p, o));
                }
            }
        }
    }
    assert_eq!(ends(s), next, "batch stored other than its new ids");
}

fn run(ops: Vec<Op>) {
    let mut fs = SimFs::new();
    let mut m = Model::default();
    let mut store = open(&fs);
    for op in ops {
        let s = store.stream("s").unwrap();
        match op {
            Op::Send { id, priority, len } => {
                assert!(send(&s, &mut m, id, priority, len), "send failed");
            }
            Op::Batch(items) => batch(&s, &mut m, &items),
            Op::AckAllAndRetain => ack_all_and_retain(&store),
            Op::Reopen => {
                drop(s);
                store.close().unwrap();
                store = open(&fs);
                audit(&store, &mut m);
            }
            Op::PowerCut { random, seed } => {
                drop(s);
                drop(store);
                let mode = if random {
                    CutMode::RandomPages(seed)
                } else {
                    CutMode::DropUnsynced
                };
                fs = fs.power_cut(mode);
                store = open(&fs);
                audit(&store, &mut m);
            }
            Op::FailThenCut { after, ids } => {
                fs.fail_at(fs.stats().ops + after, FaultKind::Eio, false);
                for (i, id) in ids.iter().enumerate() {
                    if !send(&s, &mut m, Some(*id), (i % 2) as u8, 1500) {
                        break;
                    }
                }
                drop(s);
                drop(store);
                fs = fs.power_cut(CutMode::DropUnsynced);
                store = open(&fs);
                audit(&store, &mut m);
            }
        }
    }
    drop(store);
    let store = open(&fs.power_cut(CutMode::DropUnsynced));
    audit(&store, &mut m);
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    #[test]
    fn deduplication_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
