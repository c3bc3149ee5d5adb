//! Goal: a consumer behaves like a simple model under any sequence of sends,
//! receives, acks, batch acks, nacks, reopens and power cuts: deliveries come in the
//! model's order (redeliveries lowest offset first, then new messages), an
//! acknowledged message never comes back, nothing is lost, and delivery
//! counts are exact (after a power cut they may only be lower, since
//! deliveries are journaled without a sync).
//!
//! Method: proptest sequences run against the store on the simulated file
//! system (`Durability::Always`, tiny journals so checkpoints happen) and
//! against a model of sets.

pub mod common;

use common::sim;
use proptest::prelude::*;
use spool::io::sim::{CutMode, SimFs};
use spool::{Consumer, ConsumerConfig, Delivery, Durability, Options, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    Receive,
    Ack(usize),
    /// A batch ack of the outstanding deliveries whose bit is set (bit `i
    /// % 64` for the `i`-th).
    AckBatch(u64),
    Nack(usize),
    AckUpTo,
    Reopen,
    PowerCut(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..6).prop_map(Op::Send),
        6 => Just(Op::Receive),
        4 => any::<usize>().prop_map(Op::Ack),
        3 => any::<u64>().prop_map(Op::AckBatch),
        2 => any::<usize>().prop_map(Op::Nack),
        1 => Just(Op::AckUpTo),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::PowerCut),
    ]
}

fn options(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Always).consumer_journal_bytes(4096)
}

fn open(fs: &SimFs) -> (Store, spool::Stream, Consumer) {
    let store = Store::open("/m", options(fs)).expect("open");
    let s = store.stream("s").expect("stream");
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600)),
        )
        .expect("consumer");
    (store, s, c)
}

#[derive(Debug, Default)]
struct Model {
    end: u64,
    next: u64,
    acked: BTreeSet<u64>,
    ready: BTreeSet<u64>,
    attempts: BTreeMap<u64, u32>,
}

impl Model {
    fn expected_next(&self) -> Option<u64> {
        self.ready
            .first()
            .copied()
            .or((self.next < self.end).then_some(self.next))
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut fs = SimFs::new();
    let (mut store, mut s, mut c) = open(&fs);
    let mut m = Model::default();
    let mut out: Vec<Delivery> = Vec::new();
    let mut counts_exact = true;
    for op in ops {
        match op {
            Op::Send(n) => {
                for _ in 0..n {
                    let off = s.send(&m.end.to_le_bytes()).expect("send");
                    prop_assert_eq!(off, m.end);
                    m.end += 1;
                }
            }
            Op::Receive => {
                let got = c.try_receive().expect("receive");
                let want = m.expected_next();
                prop_assert_eq!(got.as_ref().map(|d| d.offset()), want);
                if let Some(d) = got {
                    let o = d.offset();
                    prop_assert_eq!(d.payload(), &o.to_le_bytes()[..]);
                    prop_assert!(!m.acked.contains(&o), "acknowledged {} delivered again", o);
                    if !m.ready.remove(&o) {
                        m.next = o + 1;
                    }
                    let n = m.attempts.entry(o).or_insert(0);
                    if counts_exact {
                        prop_assert_eq!(d.attempt(), *n + 1, "attempt of {}", o);
                    } else {
                        prop_assert!(d.attempt() <= *n + 1, "attempt of {} grew", o);
                    }
                    *n = d.attempt();
                    out.push(d);
                }
            }
            Op::Ack(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                m.acked.insert(d.offset());
                d.ack().expect("ack");
            }
            Op::Nack(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                m.ready.insert(d.offset());
                d.nack().expect("nack");
            }
            Op::AckBatch(mask) => {
                let (set, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| mask & (1 << (i % 64)) != 0);
                out = kept.into_iter().map(|(_, d)| d).collect();
                for (_, d) in &set {
                    m.acked.insert(d.offset());
                }
                c.ack_batch(set.into_iter().map(|(_, d)| d))
                    .expect("ack_batch");
            }
            Op::Ack(_) | Op::Nack(_) => {}
            Op::AckUpTo => {
                if let Some(last) = m.next.checked_sub(1) {
                    c.ack_up_to(0, last).expect("ack_up_to");
                    for o in 0..=last {
                        m.acked.insert(o);
                        m.ready.remove(&o);
                    }
                    out.retain(|d| d.offset() > last);
                }
            }
            Op::Reopen | Op::PowerCut(_) => {
                // Every lease is lost: outstanding deliveries come back.
                for d in out.drain(..) {
                    m.ready.insert(d.offset());
                }
                drop(c);
                drop(s);
                if let Op::PowerCut(seed) = op {
                    let cut = fs.power_cut(CutMode::RandomPages(seed));
                    drop(store);
                    fs = cut;
                    counts_exact = false;
                } else {
                    store.close().expect("close");
                }
                (store, s, c) = open(&fs);
                prop_assert_eq!(
                    s.stats().buckets[0].end_offset,
                    m.end,
                    "durable sends survive"
                );
            }
        }
    }
    // Drain: everything not acknowledged comes out, in order, once.
    drop(out);
    let _ = (&store, &s);
    let mut left: Vec<u64> = (0..m.end).filter(|o| !m.acked.contains(o)).collect();
    left.sort_unstable();
    let mut drained = Vec::new();
    // Outstanding leases of this process are still held: release them.
    drop(c);
    drop(s);
    store.close().expect("close");
    let (_store, _s, c) = open(&fs);
    while let Some(d) = c.try_receive().expect("drain") {
        drained.push(d.offset());
        d.ack().expect("ack");
    }
    prop_assert_eq!(drained, left);
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config(256))]

    #[test]
    fn consumer_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
