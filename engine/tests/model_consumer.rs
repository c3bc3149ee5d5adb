//! Goal: a consumer of a stream of several priority levels behaves like a
//! simple model under any sequence of sends, receives (one at a time and in
//! batches of any size), acks, batch acks, nacks, leases that run out,
//! cursor acks, reopens and power cuts: deliveries come in the model's order
//! (the highest level first, or a lower one's turn under a starvation
//! limit; in a level, redeliveries lowest offset first, then new messages),
//! an acknowledged message never comes back, nothing is lost, and delivery
//! counts are exact (after a power cut they may only be lower, since
//! deliveries are journaled without a sync). The consumer's figures
//! (`stats`) agree with the model after every operation.
//!
//! Purges and seeks are among the operations: nothing acknowledged is
//! delivered again unless a seek went back over it (which starts its
//! delivery counts over), nothing unacknowledged is lost unless a purge
//! removed it (counted as skipped, also after a reopen) or a seek went
//! forward past it, and deliveries from before a seek or a purge
//! acknowledge nothing.
//!
//! Batch receives journal their first deliveries as delivered ranges
//! (DESIGN §3.5): the records each receive appends, read back from the
//! journal, must name exactly what it handed out, in order (one range per
//! run of new messages of a level in a version 2 journal, one record each
//! in a version 1 journal), and every journal generation started after a
//! range or a batch ack of the same open is of format version 2, every
//! other one of version 1.
//!
//! Method: proptest sequences run against the store on the simulated file
//! system (`Durability::Always`, tiny journals so checkpoints happen) and
//! against a model of sets.

pub mod common;

use common::sim;
use proptest::prelude::*;
use spool::format::journal::{self, Entry, Record, JOURNAL_VERSION_1, JOURNAL_VERSION_2};
use spool::io::sim::{CutMode, SimFs};
use spool::{
    Consumer, ConsumerConfig, Delivery, Durability, Message, Options, Store, StreamConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Priority levels of the stream.
const LEVELS: usize = 3;
const CONSUMER_DIR: &str = "/m/streams/s/consumers/c";

#[derive(Debug, Clone)]
enum Op {
    /// `n` messages at level `p % LEVELS`.
    Send(u8, u8),
    Receive,
    /// A batch receive of up to `n` messages.
    ReceiveBatch(u8),
    Ack(usize),
    /// A batch ack of the outstanding deliveries whose bit is set (bit `i
    /// % 64` for the `i`-th).
    AckBatch(u64),
    Nack(usize),
    /// The lease of an outstanding delivery runs out: extended to end now,
    /// its handle dropped; the next receive finds it expired.
    Lapse(usize),
    /// Acknowledges level `p % LEVELS` up to its last delivered offset.
    AckUpTo(u8),
    Reopen,
    PowerCut(u64),
    /// `Stream::purge`; the outstanding deliveries are then acknowledged
    /// (which changes nothing).
    Purge,
    /// `Consumer::seek`: 0 earliest, 1 latest, else to offset
    /// `n % (end + 2)` in every level; the outstanding deliveries are then
    /// acknowledged (void: nothing changes).
    Seek(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..8, any::<u8>()).prop_map(|(n, p)| Op::Send(n, p)),
        4 => Just(Op::Receive),
        4 => (1u8..24).prop_map(Op::ReceiveBatch),
        4 => any::<usize>().prop_map(Op::Ack),
        3 => any::<u64>().prop_map(Op::AckBatch),
        2 => any::<usize>().prop_map(Op::Nack),
        1 => any::<usize>().prop_map(Op::Lapse),
        1 => any::<u8>().prop_map(Op::AckUpTo),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::PowerCut),
        1 => Just(Op::Purge),
        1 => any::<u8>().prop_map(Op::Seek),
    ]
}

fn options(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Always).consumer_journal_bytes(4096)
}

fn config(limit: Option<u32>) -> ConsumerConfig {
    let c = ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600));
    match limit {
        Some(k) => c.starvation_limit(k),
        None => c,
    }
}

fn open(fs: &SimFs, limit: Option<u32>, create: bool) -> (Store, spool::Stream, Consumer) {
    let store = Store::open("/m", options(fs)).expect("open");
    let s = if create {
        store
            .create_stream("s", StreamConfig::default().priorities(LEVELS as u8))
            .expect("create stream")
    } else {
        store.stream("s").expect("stream")
    };
    let c = s.consumer_with("c", config(limit)).expect("consumer");
    (store, s, c)
}

fn payload(p: u8, offset: u64) -> Vec<u8> {
    let mut v = vec![p];
    v.extend_from_slice(&offset.to_le_bytes());
    v
}

#[derive(Debug, Default)]
struct Level {
    /// First retained offset (purges move it).
    first: u64,
    end: u64,
    next: u64,
    acked: BTreeSet<u64>,
    ready: BTreeSet<u64>,
    /// Leases that ran out: ready from the next receive on.
    lapsed: BTreeSet<u64>,
    attempts: BTreeMap<u64, u32>,
}

impl Level {
    fn available(&self) -> bool {
        !self.ready.is_empty() || self.next < self.end
    }

    /// Every offset below is acknowledged.
    fn floor(&self) -> u64 {
        (0..self.end)
            .find(|o| !self.acked.contains(o))
            .unwrap_or(self.end)
    }
}

#[derive(Debug)]
struct Model {
    levels: Vec<Level>,
    starvation_limit: Option<u32>,
    /// Picks of a higher level in a row while a lower one waited.
    streak: u32,
    /// Unacknowledged messages purges removed.
    skipped: u64,
}

impl Model {
    /// What a receive does first: leases that ran out are ready again.
    fn expire(&mut self) {
        for l in &mut self.levels {
            let lapsed = std::mem::take(&mut l.lapsed);
            l.ready.extend(lapsed);
        }
    }

    /// The level served next: the highest with a message, except that
    /// after `starvation_limit` picks of a higher level while a lower one
    /// waits, the highest waiting lower level is served once.
    fn choose(&mut self) -> Option<usize> {
        let mut avail = (0..LEVELS).rev().filter(|&p| self.levels[p].available());
        let top = avail.next()?;
        match (self.starvation_limit, avail.next()) {
            (Some(k), Some(lower)) if self.streak >= k => {
                self.streak = 0;
                Some(lower)
            }
            (Some(_), Some(_)) => {
                self.streak += 1;
                Some(top)
            }
            _ => {
                self.streak = 0;
                Some(top)
            }
        }
    }

    /// The next delivery: `(level, offset)`.
    fn take(&mut self) -> Option<(u8, u64)> {
        let p = self.choose()?;
        let l = &mut self.levels[p];
        let offset = match l.ready.pop_first() {
            Some(o) => o,
            None => {
                l.next += 1;
                l.next - 1
            }
        };
        Some((p as u8, offset))
    }
}

/// What the journal checks saw (for the fixed sequence's test).
#[derive(Debug, Default)]
struct Seen {
    /// Delivered ranges a batch appended to a version 2 journal, checked.
    ranges: usize,
    /// Runs of 2 or more new messages a batch appended to a version 1
    /// journal as one record each, checked.
    v1_runs: usize,
    /// Journal generations of version 2 started after one of version 1 in
    /// the same open.
    v2_after_v1: usize,
}

/// The consumer's current journal: `(generation, version, records)`.
fn journal_of(fs: &SimFs) -> Journal {
    let path = fs
        .files()
        .into_iter()
        .filter(|f| f.parent() == Some(Path::new(CONSUMER_DIR)))
        .filter_map(|f| {
            let g: u64 = f
                .file_name()?
                .to_str()?
                .strip_prefix("journal.")?
                .parse()
                .ok()?;
            Some((g, f))
        })
        .max()?
        .1;
    let bytes = fs.read_file(&path).expect("read journal");
    let (h, records) = journal::decode_all(&bytes)?;
    Some((
        h.generation,
        h.version,
        records.into_iter().map(|(_, r)| r).collect(),
    ))
}

/// The deliveries `records` name, in order: `(level, offset, attempt)`.
fn expand(records: &[Record]) -> Vec<(u8, u64, u32)> {
    let mut out = Vec::new();
    for r in records {
        match r {
            Record::Entry(Entry::Delivered {
                bucket,
                offset,
                attempt,
            }) => out.push((*bucket, *offset, *attempt)),
            Record::Entry(Entry::DeliveredRange {
                bucket,
                first,
                count,
            }) => out.extend((*first..first + count).map(|o| (*bucket, o, 1))),
            other => panic!("a receive journaled {other:?}"),
        }
    }
    out
}

/// The records a take that handed out `got` (in order) appends to a
/// journal of `version` with room: each run of first deliveries of
/// consecutive offsets of one level is one delivered range (one record
/// each in version 1; a run of one is a plain delivery), each redelivery
/// its own record.
fn expected_records(got: &[(u8, u64, u32)], version: u32) -> Vec<Record> {
    let mut out = Vec::new();
    let mut run: Option<(u8, u64, u64)> = None;
    let flush = |run: &mut Option<(u8, u64, u64)>, out: &mut Vec<Record>| {
        let Some((bucket, first, count)) = run.take() else {
            return;
        };
        if count >= 2 && version >= JOURNAL_VERSION_2 {
            out.push(Record::Entry(Entry::DeliveredRange {
                bucket,
                first,
                count,
            }));
        } else {
            out.extend((first..first + count).map(|offset| {
                Record::Entry(Entry::Delivered {
                    bucket,
                    offset,
                    attempt: 1,
                })
            }));
        }
    };
    for &(p, o, attempt) in got {
        if attempt == 1 {
            if let Some((b, first, count)) = &mut run {
                if *b == p && *first + *count == o {
                    *count += 1;
                    continue;
                }
            }
            flush(&mut run, &mut out);
            run = Some((p, o, 1));
        } else {
            flush(&mut run, &mut out);
            out.push(Record::Entry(Entry::Delivered {
                bucket: p,
                offset: o,
                attempt,
            }));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A journal as [`journal_of`] reads it.
type Journal = Option<(u64, u32, Vec<Record>)>;

/// Checks what a batch receive that handed out `handed` (in order) wrote
/// to the journal, `before` and `after` it.
fn check_journaled(
    before: Journal,
    after: Journal,
    handed: &[(u8, u64, u32)],
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    if handed.is_empty() {
        prop_assert_eq!(after, before, "a receive of nothing journals nothing");
        return Ok(());
    }
    let Some((generation, version, records)) = after else {
        return Err(TestCaseError::fail("a receive journaled nothing"));
    };
    match before {
        Some((g, v, old)) if g == generation => {
            // The same journal: what was appended says exactly what was
            // handed out, in its version's records.
            prop_assert_eq!(version, v);
            prop_assert_eq!(&records[..old.len()], &old[..]);
            let new = &records[old.len()..];
            prop_assert_eq!(new, &expected_records(handed, version)[..]);
            let is_range = |r: &Record| matches!(r, Record::Entry(Entry::DeliveredRange { .. }));
            seen.ranges += new.iter().filter(|r| is_range(r)).count();
            if version == JOURNAL_VERSION_1 {
                let runs = expected_records(handed, JOURNAL_VERSION_2);
                seen.v1_runs += runs.iter().filter(|r| is_range(r)).count();
            }
        }
        _ => {
            // A new generation started during the receive (its checkpoint
            // holds the deliveries before): the new journal names the last
            // of them, in order.
            let named = expand(&records);
            prop_assert!(
                handed.ends_with(&named),
                "the new journal names {:?}, the receive handed out {:?}",
                named,
                handed
            );
        }
    }
    Ok(())
}

/// Checks a delivery against the model and records it there.
fn delivered(m: &mut Model, d: &Delivery, counts_exact: bool) -> Result<(), TestCaseError> {
    let (p, o) = (d.priority(), d.offset());
    prop_assert_eq!(d.payload(), &payload(p, o)[..]);
    let l = &mut m.levels[p as usize];
    prop_assert!(
        !l.acked.contains(&o),
        "acknowledged p{} {} delivered again",
        p,
        o
    );
    let n = l.attempts.entry(o).or_insert(0);
    if counts_exact {
        prop_assert_eq!(d.attempt(), *n + 1, "attempt of p{} {}", p, o);
    } else {
        prop_assert!(
            d.attempt() >= 1 && d.attempt() <= *n + 1,
            "attempt of p{} {} grew",
            p,
            o
        );
    }
    *n = d.attempt();
    Ok(())
}

/// The consumer's figures against the model. After a power cut the
/// consumer may have lost deliveries never synced (the latest first of
/// each level): those are undelivered to it and waiting for redelivery in
/// the model.
fn check_stats(
    c: &Consumer,
    m: &Model,
    out: &[Delivery],
    exact: bool,
) -> Result<(), TestCaseError> {
    let stats = c.stats();
    prop_assert_eq!(stats.buckets.len(), LEVELS);
    prop_assert_eq!(stats.skipped, m.skipped, "skipped");
    for (p, (b, l)) in stats.buckets.iter().zip(&m.levels).enumerate() {
        prop_assert_eq!(b.end_offset, l.end, "end of p{}", p);
        prop_assert_eq!(b.ack_floor, l.floor(), "ack floor of p{}", p);
        prop_assert_eq!(b.pending, l.end - l.acked.len() as u64, "pending of p{}", p);
        let leased = out.iter().filter(|d| d.priority() as usize == p).count() as u64;
        prop_assert_eq!(
            b.in_flight,
            leased + l.lapsed.len() as u64,
            "in flight of p{}",
            p
        );
        if exact {
            prop_assert_eq!(b.next_offset, l.next, "next of p{}", p);
            prop_assert_eq!(
                b.waiting_redelivery,
                l.ready.len() as u64,
                "waiting of p{}",
                p
            );
        } else {
            prop_assert!(b.next_offset <= l.next, "next of p{} past the model's", p);
            prop_assert_eq!(
                b.waiting_redelivery + (l.next - b.next_offset),
                l.ready.len() as u64,
                "waiting of p{} (lost deliveries count as waiting in the model)",
                p
            );
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>, starvation_limit: Option<u32>) -> Result<Seen, TestCaseError> {
    let mut fs = SimFs::new();
    let (mut store, mut s, mut c) = open(&fs, starvation_limit, true);
    let mut m = Model {
        levels: (0..LEVELS).map(|_| Level::default()).collect(),
        starvation_limit,
        streak: 0,
        skipped: 0,
    };
    let mut out: Vec<Delivery> = Vec::new();
    let mut counts_exact = true;
    let mut seen = Seen::default();
    // Journal generation and version last seen; whether this open wrote
    // records of version 2 (a delivered range, a batch ack of 2 or more).
    let mut last = journal_of(&fs).map(|(g, v, _)| (g, v));
    let mut version_2 = false;
    for op in ops {
        let version_2_before = version_2;
        match op {
            Op::Send(n, p) => {
                let p = p % LEVELS as u8;
                let l = &mut m.levels[p as usize];
                for _ in 0..n {
                    let off = s
                        .send_message(Message::new(&payload(p, l.end)).priority(p))
                        .expect("send");
                    prop_assert_eq!(off, l.end);
                    l.end += 1;
                }
            }
            Op::Receive => {
                m.expire();
                let got = c.try_receive().expect("receive");
                let want = m.take();
                prop_assert_eq!(got.as_ref().map(|d| (d.priority(), d.offset())), want);
                if let Some(d) = got {
                    delivered(&mut m, &d, counts_exact)?;
                    out.push(d);
                }
            }
            Op::ReceiveBatch(n) => {
                m.expire();
                let before = journal_of(&fs);
                let got = c
                    .receive_batch(n as usize, Duration::ZERO)
                    .expect("receive_batch");
                let want: Vec<(u8, u64)> = (0..n).map_while(|_| m.take()).collect();
                let offsets: Vec<(u8, u64)> =
                    got.iter().map(|d| (d.priority(), d.offset())).collect();
                prop_assert_eq!(offsets, want);
                for d in &got {
                    delivered(&mut m, d, counts_exact)?;
                }
                let handed: Vec<(u8, u64, u32)> = got
                    .iter()
                    .map(|d| (d.priority(), d.offset(), d.attempt()))
                    .collect();
                // A run of 2 or more first deliveries is a delivered range,
                // a record of version 2.
                version_2 |= expected_records(&handed, JOURNAL_VERSION_2)
                    .iter()
                    .any(|r| matches!(r, Record::Entry(Entry::DeliveredRange { .. })));
                check_journaled(before, journal_of(&fs), &handed, &mut seen)?;
                out.extend(got);
            }
            Op::Ack(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                m.levels[d.priority() as usize].acked.insert(d.offset());
                d.ack().expect("ack");
            }
            Op::Nack(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                m.levels[d.priority() as usize].ready.insert(d.offset());
                d.nack().expect("nack");
            }
            Op::Lapse(i) if !out.is_empty() => {
                let d = out.remove(i % out.len());
                d.extend_lease(Duration::ZERO).expect("extend lease");
                m.levels[d.priority() as usize].lapsed.insert(d.offset());
            }
            Op::AckBatch(mask) => {
                let (set, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| mask & (1 << (i % 64)) != 0);
                out = kept.into_iter().map(|(_, d)| d).collect();
                for (_, d) in &set {
                    m.levels[d.priority() as usize].acked.insert(d.offset());
                }
                // A set of 2 or more is a record of version 2.
                version_2 |= set.len() >= 2;
                c.ack_batch(set.into_iter().map(|(_, d)| d))
                    .expect("ack_batch");
            }
            Op::Ack(_) | Op::Nack(_) | Op::Lapse(_) => {}
            Op::Purge => {
                let want: u64 = m.levels.iter().map(|l| l.end - l.first).sum();
                prop_assert_eq!(s.purge().expect("purge"), want);
                for l in &mut m.levels {
                    let gone = (l.first..l.end).filter(|o| !l.acked.contains(o)).count();
                    m.skipped += gone as u64;
                    l.acked.extend(l.first..l.end);
                    l.first = l.end;
                    l.next = l.end;
                    l.ready.clear();
                    l.lapsed.clear();
                }
                // Their messages are gone: their acks change nothing.
                for d in out.drain(..) {
                    d.ack().expect("ack of a purged message");
                }
            }
            Op::Seek(to) => {
                let target = |l: &Level| match to {
                    0 => l.first,
                    1 => l.end,
                    n => (u64::from(n) % (l.end + 2)).clamp(l.first, l.end),
                };
                match to {
                    0 => c.seek(spool::StartAt::Earliest),
                    1 => c.seek(spool::StartAt::Latest),
                    _ => {
                        let offsets: Vec<u64> = m
                            .levels
                            .iter()
                            .map(|l| u64::from(to) % (l.end + 2))
                            .collect();
                        c.seek_offsets(&offsets)
                    }
                }
                .expect("seek");
                for l in &mut m.levels {
                    let start = target(l);
                    // Back over acknowledged messages: they come again,
                    // from attempt 1; forward: passed over.
                    l.acked = (0..start).collect();
                    l.next = start;
                    l.ready.clear();
                    l.lapsed.clear();
                    l.attempts.clear();
                }
                m.streak = 0;
                // Void: acknowledging them changes nothing.
                let (batch, single) = out
                    .split_off(0)
                    .into_iter()
                    .partition::<Vec<_>, _>(|d| d.offset() % 2 == 0);
                c.ack_batch(batch).expect("void batch ack");
                for d in single {
                    d.ack().expect("void ack");
                }
            }
            Op::AckUpTo(p) => {
                let p = p % LEVELS as u8;
                let l = &mut m.levels[p as usize];
                if let Some(last) = l.next.checked_sub(1) {
                    c.ack_up_to(p, last).expect("ack_up_to");
                    for o in 0..=last {
                        l.acked.insert(o);
                        l.ready.remove(&o);
                        l.lapsed.remove(&o);
                    }
                    out.retain(|d| d.priority() != p || d.offset() > last);
                }
            }
            Op::Reopen | Op::PowerCut(_) => {
                // Every lease is lost: outstanding deliveries come back.
                for d in out.drain(..) {
                    m.levels[d.priority() as usize].ready.insert(d.offset());
                }
                m.expire();
                m.streak = 0;
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
                (store, s, c) = open(&fs, starvation_limit, false);
                for (p, l) in m.levels.iter().enumerate() {
                    prop_assert_eq!(
                        s.stats().buckets[p].end_offset,
                        l.end,
                        "durable sends of p{} survive",
                        p
                    );
                }
                // A new open writes version 1 until it needs version 2.
                version_2 = false;
                last = journal_of(&fs).map(|(g, v, _)| (g, v));
            }
        }
        check_stats(&c, &m, &out, counts_exact)?;
        // A journal generation started by this operation is of version 2
        // if this open wrote a record of version 2 before it (or in this
        // operation, which may have started it before or after), else of
        // version 1.
        let now = journal_of(&fs).map(|(g, v, _)| (g, v));
        if let Some((g, v)) = now {
            if last.is_none_or(|(lg, _)| lg != g) {
                let lowest = if version_2_before { 2 } else { 1 };
                let highest = if version_2 { 2 } else { 1 };
                prop_assert!(
                    (lowest..=highest).contains(&v),
                    "generation {} of version {} after {:?} ({:?})",
                    g,
                    v,
                    last,
                    op
                );
                if v == JOURNAL_VERSION_2 && last.is_some_and(|(_, lv)| lv == JOURNAL_VERSION_1) {
                    seen.v2_after_v1 += 1;
                }
            }
        }
        last = now;
    }
    // Drain: everything not acknowledged comes out, once.
    drop(out);
    let mut left: Vec<(u8, u64)> = m
        .levels
        .iter()
        .enumerate()
        .flat_map(|(p, l)| {
            (0..l.end)
                .filter(|o| !l.acked.contains(o))
                .map(move |o| (p as u8, o))
        })
        .collect();
    left.sort_unstable();
    // Outstanding leases of this process are still held: release them.
    drop(c);
    drop(s);
    store.close().expect("close");
    let (_store, _s, c) = open(&fs, starvation_limit, false);
    let mut drained = Vec::new();
    loop {
        let batch = c.receive_batch(7, Duration::ZERO).expect("drain");
        if batch.is_empty() {
            break;
        }
        for d in batch {
            drained.push((d.priority(), d.offset()));
            d.ack().expect("ack");
        }
    }
    drained.sort_unstable();
    prop_assert_eq!(drained, left);
    Ok(seen)
}

proptest! {
    #![proptest_config(common::proptest_config(256))]

    #[test]
    fn consumer_matches_model(
        ops in proptest::collection::vec(op(), 1..120),
        starvation_limit in prop_oneof![Just(None), (1u32..4).prop_map(Some)],
    ) {
        run(ops, starvation_limit)?;
    }
}

/// One sequence that surely takes each path of delivered ranges: a batch
/// receive into a version 1 journal with room (one record per message),
/// the version 2 generation that follows, ranges of several levels in it
/// (interleaved under a starvation limit), redeliveries after nacks and a
/// lease that ran out mixed into batches, and reopens between them.
#[test]
fn batch_receives_journal_delivered_ranges_as_the_model_expects() {
    use Op::*;
    let ops = vec![
        Send(6, 0),
        Send(5, 2),
        // Single receives: the journal is of version 1.
        Receive,
        Receive,
        // A batch into it: one record per first delivery.
        ReceiveBatch(6),
        // A batch ack of two: a new generation, of version 2.
        AckBatch(0b11),
        Send(7, 1),
        Send(4, 2),
        ReceiveBatch(9),
        Nack(0),
        Nack(2),
        Lapse(1),
        Send(3, 0),
        // Redeliveries (nacked, lapsed), then first deliveries.
        ReceiveBatch(20),
        Ack(0),
        AckUpTo(2),
        Reopen,
        Send(5, 1),
        // The first journaled change of an open: a batch starts a
        // version 2 journal at once.
        ReceiveBatch(4),
        ReceiveBatch(4),
        AckBatch(u64::MAX),
        PowerCut(7),
        Send(4, 0),
        ReceiveBatch(30),
        Reopen,
        Receive,
        ReceiveBatch(30),
    ];
    for limit in [None, Some(2), Some(1)] {
        let seen = run(ops.clone(), limit).unwrap_or_else(|e| panic!("limit {limit:?}: {e}"));
        assert!(seen.v2_after_v1 >= 1, "limit {limit:?}: {seen:?}");
        // A limit of 1 alternates levels while two have messages: runs of
        // one, mostly.
        if limit != Some(1) {
            assert!(seen.ranges >= 2, "limit {limit:?}: {seen:?}");
            assert!(seen.v1_runs >= 1, "limit {limit:?}: {seen:?}");
        }
    }
}
