//! Goal: the log behaves like a simple model (a vector of payloads per
//! priority bucket) under any sequence of sends, batches, syncs, reopens and
//! power cuts.
//!
//! Method: proptest generates operation sequences and runs them against the
//! store on the simulated file system and against the model. After a power
//! cut the store may keep any prefix between what was durable and what was
//! written; the model adopts the surviving length after checking it is in
//! that range, and every surviving message must equal the model's.

pub mod common;

use common::sim;
use proptest::prelude::*;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Message, Options, Store, StreamConfig};

const LEVELS: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    Send { priority: u8, len: usize },
    Batch { priority: u8, n: usize, len: usize },
    Sync,
    Read { priority: u8, back: u64 },
    Reopen,
    PowerCut { random: bool, seed: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..LEVELS, 0usize..3000).prop_map(|(priority, len)| Op::Send { priority, len }),
        2 => (0..LEVELS, 1usize..40, 0usize..500).prop_map(|(priority, n, len)| Op::Batch { priority, n, len }),
        2 => Just(Op::Sync),
        2 => (0..LEVELS, 0u64..50).prop_map(|(priority, back)| Op::Read { priority, back }),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(random, seed)| Op::PowerCut { random, seed }),
    ]
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    /// Payloads written, by offset.
    written: Vec<Vec<u8>>,
    /// How many of them are durable.
    durable: usize,
}

fn options(fs: &SimFs, always: bool) -> Options {
    let durability = if always {
        Durability::Always
    } else {
        Durability::Never
    };
    sim::options(fs, durability).allocation_chunk_bytes(8192)
}

fn open(fs: &SimFs, always: bool) -> (Store, spool::Stream) {
    let store = Store::open("/m", options(fs, always)).expect("open");
    let s = if store.streams().iter().any(|n| n == "q") {
        store.stream("q").expect("stream")
    } else {
        store
            .create_stream("q", StreamConfig::default().priorities(LEVELS))
            .expect("create")
    };
    assert_eq!(s.config().priorities, LEVELS);
    (store, s)
}

fn run(ops: Vec<Op>, always: bool) -> Result<(), TestCaseError> {
    let mut fs = SimFs::new();
    let (mut store, mut s) = open(&fs, always);
    // Creation is durable: every bucket starts durable and empty.
    let mut model = vec![Bucket::default(); LEVELS as usize];
    let mut counter = 0u64;
    let mut next_payload = |len: usize| {
        counter += 1;
        let mut p = counter.to_le_bytes().to_vec();
        p.resize(len.max(8), (counter % 251) as u8);
        p
    };
    for op in ops {
        match op {
            Op::Send { priority, len } => {
                let p = next_payload(len);
                let off = s
                    .send_message(Message::new(&p).priority(priority))
                    .expect("send");
                let b = &mut model[priority as usize];
                prop_assert_eq!(off, b.written.len() as u64);
                b.written.push(p);
                if always {
                    b.durable = b.written.len();
                }
            }
            Op::Batch { priority, n, len } => {
                let ps: Vec<Vec<u8>> = (0..n).map(|i| next_payload(len + i)).collect();
                let offs = s
                    .send_batch(ps.iter().map(|p| Message::new(p).priority(priority)))
                    .expect("batch");
                let b = &mut model[priority as usize];
                let start = b.written.len() as u64;
                prop_assert_eq!(offs, (start..start + n as u64).collect::<Vec<_>>());
                b.written.extend(ps);
                if always {
                    b.durable = b.written.len();
                }
            }
            Op::Sync => {
                store.sync().expect("sync");
                for b in &mut model {
                    b.durable = b.written.len();
                }
            }
            Op::Read { priority, back } => {
                let b = &model[priority as usize];
                let end = b.written.len() as u64;
                let off = end.saturating_sub(back + 1);
                let got = s.read_priority(priority, off).expect("read");
                match got {
                    Some(r) => prop_assert_eq!(r.payload(), &b.written[off as usize][..]),
                    None => prop_assert_eq!(end, 0),
                }
                prop_assert!(s.read_priority(priority, end).expect("read end").is_none());
            }
            Op::Reopen => {
                drop(s);
                store.close().expect("close");
                (store, s) = open(&fs, always);
                prop_assert!(store.recovery_report().torn_tails.is_empty());
                for b in &mut model {
                    b.durable = b.written.len();
                }
            }
            Op::PowerCut { random, seed } => {
                let mode = if random {
                    CutMode::RandomPages(seed)
                } else {
                    CutMode::DropUnsynced
                };
                let cut = fs.power_cut(mode);
                drop(s);
                drop(store);
                fs = cut;
                (store, s) = open(&fs, always);
                for (p, b) in model.iter_mut().enumerate() {
                    let end = s.stats().buckets[p].end_offset as usize;
                    prop_assert!(
                        end >= b.durable,
                        "bucket {}: lost durable data: end {} < {}",
                        p,
                        end,
                        b.durable
                    );
                    prop_assert!(
                        end <= b.written.len(),
                        "bucket {}: end {} past written {}",
                        p,
                        end,
                        b.written.len()
                    );
                    b.written.truncate(end);
                    b.durable = end;
                }
            }
        }
        prop_assert!(fs.violations().is_empty(), "{:?}", fs.violations());
    }
    // Final full check.
    for (p, b) in model.iter().enumerate() {
        let got: Vec<_> = s
            .iter_priority(p as u8, 0)
            .expect("iter")
            .map(|r| r.expect("read").payload().to_vec())
            .collect();
        prop_assert_eq!(&got, &b.written, "bucket {}", p);
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config(128))]

    #[test]
    fn log_matches_model_durable_sends(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, true)?;
    }

    #[test]
    fn log_matches_model_explicit_syncs(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, false)?;
    }
}
