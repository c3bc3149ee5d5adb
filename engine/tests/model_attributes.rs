//! Goal: under any sequence of sends carrying deliver-at, time to live and
//! message groups, receives (one at a time and in batches), acks, batch
//! acks, nacks (with and without a delay), leases that run out, reopens
//! and power cuts, a consumer keeps the rules of its attributes:
//!
//! - no message is delivered before its deliver-at;
//! - no message is delivered at or after its expires-at;
//! - never two leased messages of one group (all levels), and a group's
//!   messages are leased in offset order within a level;
//! - an acknowledged message is never delivered again (nothing acked is
//!   lost, across power cuts too: `Durability::Always`);
//! - in the end every message is acknowledged, delivered, or (expired) in
//!   the dead-letter stream with reason `expired`, exactly once, and the
//!   consumer's `expired` count says how many; a message scheduled far
//!   ahead is none of those.
//!
//! Method: proptest sequences on the simulated file system against a
//! record of what was sent and what is held. Times are real (the clock is
//! not simulated): "soon" messages are due or expire a few milliseconds
//! after their send, and a `Sleep` operation lets that time pass; each
//! check compares a record's times with the clock read before (expiry) or
//! after (deliver-at) the receive, which holds whatever the scheduling.
//! Grouped messages carry no deliver-at ahead (a scheduled message joins
//! its group's order when it is due, so the offset order of a group holds
//! among due messages only).

pub mod common;

use common::sim;
use proptest::prelude::*;
use spool::io::sim::{CutMode, SimFs};
use spool::{
    dead_letter_headers, Consumer, ConsumerConfig, Delivery, Durability, Message, Options, Store,
    StreamConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

const LEVELS: u8 = 2;
/// A clock tolerance for the offset order of groups: a scheduled time is
/// turned into an `Instant` deadline, which may be a few microseconds off
/// the wall clock.
const SLACK: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
enum When {
    No,
    Past,
    Soon(u8),
    Far,
}

#[derive(Debug, Clone)]
enum Op {
    /// Messages: (deliver, expire, group, level) each.
    Send(Vec<(When, When, Option<u8>, u8)>),
    Receive,
    ReceiveBatch(u8),
    Ack(usize),
    AckBatch(u64),
    Nack(usize),
    NackDelayed(usize, u8),
    Lapse(usize),
    Sleep(u8),
    Reopen,
    PowerCut(u64),
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        4 => Just(When::No),
        1 => Just(When::Past),
        2 => (1u8..30).prop_map(When::Soon),
        1 => Just(When::Far),
    ]
}

fn message() -> impl Strategy<Value = (When, When, Option<u8>, u8)> {
    (
        when(),
        when(),
        prop_oneof![2 => Just(None), 3 => (0u8..3).prop_map(Some)],
        0..LEVELS,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::collection::vec(message(), 1..6).prop_map(Op::Send),
        4 => Just(Op::Receive),
        3 => (1u8..10).prop_map(Op::ReceiveBatch),
        4 => any::<usize>().prop_map(Op::Ack),
        2 => any::<u64>().prop_map(Op::AckBatch),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => (any::<usize>(), 1u8..20).prop_map(|(i, ms)| Op::NackDelayed(i, ms)),
        1 => any::<usize>().prop_map(Op::Lapse),
        2 => (1u8..20).prop_map(Op::Sleep),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::PowerCut),
    ]
}

fn options(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Always).consumer_journal_bytes(4096)
}

fn open(fs: &SimFs, create: bool) -> (Store, Consumer) {
    let store = Store::open("/m", options(fs)).expect("open");
    let s = if create {
        store
            .create_stream("s", StreamConfig::default().priorities(LEVELS))
            .expect("create stream")
    } else {
        store.stream("s").expect("stream")
    };
    let config = ConsumerConfig::default()
        .visibility_timeout(Duration::from_secs(3600))
        .dead_letter("dead");
    let c = s.consumer_with("c", config).expect("consumer");
    (store, c)
}

/// What was sent at one position.
#[derive(Debug, Clone)]
struct Sent {
    deliver_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    group: Option<Vec<u8>>,
    far: bool,
}

type Pos = (u8, u64);

struct World {
    sent: BTreeMap<Pos, Sent>,
    acked: BTreeSet<Pos>,
}

impl World {
    /// Checks a delivery just made: `t0` before the receive, `t1` after;
    /// `held` are the deliveries held before it.
    fn check(&self, d: &Delivery, held: &[Delivery], t0: SystemTime, t1: SystemTime) {
        let pos = (d.priority(), d.offset());
        let m = self.sent.get(&pos).expect("a message that was sent");
        assert!(
            !self.acked.contains(&pos),
            "{pos:?} delivered after its ack"
        );
        assert_eq!(d.record().deliver_at(), m.deliver_at);
        assert_eq!(d.record().expires_at(), m.expires_at);
        if let Some(at) = m.deliver_at {
            assert!(at <= t1, "{pos:?} delivered before its deliver-at");
        }
        if let Some(at) = m.expires_at {
            assert!(at > t0, "{pos:?} delivered after it expired");
        }
        let Some(g) = &m.group else { return };
        for h in held {
            let other = &self.sent[&(h.priority(), h.offset())];
            assert!(
                other.group.as_ref() != Some(g),
                "{pos:?} leased while {:?} of its group is",
                (h.priority(), h.offset())
            );
        }
        // Every lower offset of its group and level that was due and
        // alive all along is done.
        for (&(p, o), lower) in self.sent.range((pos.0, 0)..(pos.0, pos.1)) {
            if p != pos.0 || lower.group.as_ref() != Some(g) || self.acked.contains(&(p, o)) {
                continue;
            }
            let due = lower.deliver_at.is_none_or(|at| at + SLACK <= t0);
            let alive = lower.expires_at.is_none_or(|at| at > t1 + SLACK);
            assert!(
                !(due && alive),
                "{pos:?} leased before {:?} of its group and level",
                (p, o)
            );
        }
    }
}

fn send(store: &Store, w: &mut World, ends: &mut [u64], msgs: &[(When, When, Option<u8>, u8)]) {
    let s = store.stream("s").expect("stream");
    for &(deliver, expire, group, level) in msgs {
        let name = group.map(|g| format!("g{g}"));
        // A grouped message is due at once or later than its level's
        // others (see the module's notes): no deliver-at ahead.
        let deliver = if name.is_some() && matches!(deliver, When::Soon(_) | When::Far) {
            When::No
        } else {
            deliver
        };
        let mut m = Message::new(b"m").priority(level);
        m = match deliver {
            When::No => m,
            When::Past => m.deliver_at(SystemTime::UNIX_EPOCH + Duration::from_secs(7)),
            When::Soon(ms) => m.deliver_after(Duration::from_millis(ms.into())),
            When::Far => m.deliver_after(Duration::from_secs(3600)),
        };
        m = match expire {
            When::No => m,
            When::Past => m.expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(3)),
            When::Soon(ms) => m.ttl(Duration::from_millis(ms.into())),
            When::Far => m.ttl(Duration::from_secs(3600)),
        };
        if let Some(n) = &name {
            m = m.group(n.as_str());
        }
        let offset = s.send_message(m).expect("send");
        assert_eq!(offset, ends[level as usize]);
        ends[level as usize] += 1;
        let r = s.read_priority(level, offset).expect("read").expect("sent");
        w.sent.insert(
            (level, offset),
            Sent {
                deliver_at: r.deliver_at(),
                expires_at: r.expires_at(),
                group: name.map(String::into_bytes),
                far: matches!(deliver, When::Far),
            },
        );
    }
}

fn run(ops: Vec<Op>) {
    let mut fs = SimFs::new();
    let (mut store, mut c) = open(&fs, true);
    let mut w = World {
        sent: BTreeMap::new(),
        acked: BTreeSet::new(),
    };
    let mut ends = vec![0u64; LEVELS as usize];
    let mut out: Vec<Delivery> = Vec::new();
    for op in ops {
        match op {
            Op::Send(msgs) => send(&store, &mut w, &mut ends, &msgs),
            Op::Receive | Op::ReceiveBatch(_) => {
                let max = match op {
                    Op::ReceiveBatch(n) => n as usize,
                    _ => 1,
                };
                let t0 = SystemTime::now();
                let got = c.receive_batch(max, Duration::ZERO).expect("receive");
                let t1 = SystemTime::now();
                for d in got {
                    w.check(&d, &out, t0, t1);
                    out.push(d);
                }
            }
            Op::Ack(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                let pos = (d.priority(), d.offset());
                d.ack().expect("ack");
                w.acked.insert(pos);
            }
            Op::AckBatch(mask) => {
                let (set, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| mask & (1 << (i % 64)) != 0);
                out = kept.into_iter().map(|(_, d)| d).collect();
                let positions: Vec<Pos> = set
                    .iter()
                    .map(|(_, d)| (d.priority(), d.offset()))
                    .collect();
                c.ack_batch(set.into_iter().map(|(_, d)| d))
                    .expect("ack batch");
                w.acked.extend(positions);
            }
            Op::Nack(i) if !out.is_empty() => {
                out.remove(i % out.len()).nack().expect("nack");
            }
            Op::NackDelayed(i, ms) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                d.nack_with(Some(Duration::from_millis(ms.into())), None)
                    .expect("nack");
            }
            Op::Lapse(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                d.extend_lease(Duration::ZERO).expect("extend lease");
            }
            Op::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms.into())),
            Op::Reopen | Op::PowerCut(_) => {
                out.clear();
                drop(c);
                if let Op::PowerCut(seed) = op {
                    let cut = fs.power_cut(CutMode::RandomPages(seed));
                    drop(store);
                    fs = cut;
                } else {
                    store.close().expect("close");
                }
                (store, c) = open(&fs, false);
                let s = store.stream("s").expect("stream");
                for p in 0..LEVELS {
                    assert_eq!(s.stats().buckets[p as usize].end_offset, ends[p as usize]);
                }
            }
            _ => {}
        }
    }
    // Everything soon is due or expired after this.
    std::thread::sleep(Duration::from_millis(40));
    out.clear();
    drop(c);
    store.close().expect("close");
    let (store, c) = open(&fs, false);
    let mut drained = BTreeSet::new();
    loop {
        let t0 = SystemTime::now();
        let batch = c.receive_batch(7, Duration::ZERO).expect("drain");
        let t1 = SystemTime::now();
        if batch.is_empty() {
            break;
        }
        for d in &batch {
            w.check(d, &[], t0, t1);
            assert!(drained.insert((d.priority(), d.offset())), "drained twice");
        }
        let positions: Vec<Pos> = batch.iter().map(|d| (d.priority(), d.offset())).collect();
        c.ack_batch(batch).expect("ack");
        w.acked.extend(positions);
    }
    // The dead-letter stream: expired messages, each once.
    let dead = store.stream("dead").expect("dead stream");
    let mut dead_letters = BTreeSet::new();
    let mut o = 0;
    while let Some(r) = dead.read(o).expect("read dead") {
        assert_eq!(r.header(dead_letter_headers::REASON), Some(&b"expired"[..]));
        let num = |k: &str| -> u64 {
            std::str::from_utf8(r.header(k).expect("header"))
                .expect("utf-8")
                .parse()
                .expect("a number")
        };
        let pos = (
            num(dead_letter_headers::PRIORITY) as u8,
            num(dead_letter_headers::OFFSET),
        );
        let m = &w.sent[&pos];
        assert!(m.expires_at.is_some_and(|at| at <= SystemTime::now()));
        assert!(!w.acked.contains(&pos), "{pos:?} acknowledged and expired");
        assert!(dead_letters.insert(pos), "{pos:?} dead-lettered twice");
        o += 1;
    }
    assert_eq!(c.stats().expired, dead_letters.len() as u64);
    for (pos, m) in &w.sent {
        let done = w.acked.contains(pos) || dead_letters.contains(pos);
        if m.far {
            assert!(
                !done || m.expires_at.is_some(),
                "{pos:?} scheduled far ahead"
            );
            continue;
        }
        assert!(done, "{pos:?} neither delivered nor expired: {m:?}");
    }
}

proptest! {
    #![proptest_config(common::proptest_config(96))]

    #[test]
    fn consumer_keeps_the_rules_of_message_attributes(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(ops);
    }
}

/// A fixed sequence through every path: a group held across a nack, a
/// lapse and a reopen, a scheduled message across a power cut, expiries
/// found fresh and at a redelivery.
#[test]
fn a_fixed_sequence_keeps_the_rules() {
    use When::*;
    run(vec![
        Op::Send(vec![
            (No, No, Some(0), 0),
            (No, Soon(5), Some(0), 0),
            (Soon(10), No, None, 0),
            (Far, No, None, 1),
            (No, Past, None, 1),
            (No, No, Some(0), 1),
            (No, Far, Some(1), 0),
        ]),
        Op::ReceiveBatch(9),
        Op::Nack(0),
        Op::Receive,
        Op::Lapse(1),
        Op::Sleep(12),
        Op::ReceiveBatch(9),
        Op::PowerCut(7),
        Op::ReceiveBatch(9),
        Op::Ack(0),
        Op::Reopen,
        Op::ReceiveBatch(3),
        Op::AckBatch(u64::MAX),
        Op::ReceiveBatch(9),
    ]);
}
