//! Goal: a power cut at any I/O operation of a consumer workload (deliveries,
//! acks, batch acks, cursor acks, nacks, journal checkpoints, retention
//! deletes) never undoes an acknowledged ack and never loses a message for
//! any consumer; every batch ack whose call returned holds whole, also one
//! whose record is larger than a journal.
//!
//! Method: the workload runs on the simulated file system with tiny
//! journals (so checkpoints happen) and tiny segments (so retention deletes
//! files). For every operation number N, a run cuts the power at N (several
//! damage models), the survivor is opened, and each consumer is drained:
//! - nothing whose ack returned comes back;
//! - every offset of the stream is either delivered again or was the
//!   subject of an ack call (an ack cut short may or may not have landed);
//! - so offsets removed by retention were acknowledged by every consumer.
//!
//! The same checks follow an I/O error at every operation, the workload
//! either stopping there or carrying on (as a program that retries would)
//! until a power cut a few operations later: acks that return after a
//! failure must hold too.
//!
//! Batch receives journal their first deliveries as delivered ranges (one
//! record per run of a priority level, DESIGN §3.5): a workload of batch
//! receives over three levels, by a consumer that starts with one (its
//! first journal is of version 2 at once) and by one that receives one at
//! a time first (a version 1 journal with room, which gets one record per
//! message of a batch, and a version 2 generation after it), mixed with
//! nacks and leases that run out, is cut at every operation too. After the
//! reopen, besides the checks above, no message comes back with more than
//! one delivery above the most it was handed out with (a range replayed
//! too wide would count deliveries that never were).

pub mod common;

use common::sim;
use spool::format::journal::{self, Entry, Record, JOURNAL_VERSION_1, JOURNAL_VERSION_2};
use spool::io::sim::{fault_then_cut, retry, step, CutMode, SimFs};
use spool::{ConsumerConfig, Message, Store, StreamConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const ROOT: &str = "/c";
const CONSUMERS: [&str; 3] = ["one", "cursor", "batch"];

fn payload(offset: u64) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.resize(8 + (offset as usize * 131) % 3000, offset as u8);
    p
}

/// Per consumer: offsets whose ack returned, and offsets an ack was issued for.
#[derive(Debug, Default)]
struct Acked {
    confirmed: [BTreeSet<u64>; 3],
    attempted: [BTreeSet<u64>; 3],
    /// The big-set workload (payloads are the offsets).
    big: bool,
    /// The operation its first batch ack starts at.
    acks_from_op: u64,
}

fn workload(fs: &SimFs, acked: &mut Acked) -> spool::Result<()> {
    run_workload(fs, acked, false)
}

/// The workload, either stopping at the first error or (`carry_on`) going on
/// past errors the way a program that retries would: then only calls that
/// returned `Ok` count as confirmed, and later successes must hold even
/// though an earlier operation failed.
fn run_workload(fs: &SimFs, acked: &mut Acked, carry_on: bool) -> spool::Result<()> {
    let store = Store::open(ROOT, sim::consumer_options(fs))?;
    let s = retry(carry_on, || store.stream("q"))?;
    let config = ConsumerConfig::default().visibility_timeout(Duration::from_secs(60));
    let one = retry(carry_on, || s.consumer_with("one", config.clone()))?;
    let cursor = retry(carry_on, || s.consumer("cursor"))?;
    let batcher = retry(carry_on, || s.consumer_with("batch", config.clone()))?;
    // A delivery of "batch" held over to the next round's batch ack.
    let mut held = None;
    for round in 0..6u64 {
        let base = s.stats().buckets[0].end_offset;
        let batch: Vec<Vec<u8>> = (base..base + 12).map(payload).collect();
        step(carry_on, s.send_batch(batch.iter()))?;
        // "one": acks one by one, nacks every fifth once.
        while let Some(Some(d)) = step(carry_on, one.try_receive())? {
            if d.offset() % 5 == 0 && d.attempt() == 1 {
                step(carry_on, d.nack())?;
                continue;
            }
            let o = d.offset();
            acked.attempted[0].insert(o);
            if step(carry_on, d.ack())?.is_some() {
                acked.confirmed[0].insert(o);
            }
        }
        // "cursor": reads a batch, acks up to its last offset.
        let got = step(carry_on, cursor.receive_batch(100, Duration::ZERO))?.unwrap_or_default();
        if let Some(last) = got.last().map(|d| d.offset()) {
            if round % 2 == 1 {
                acked.attempted[1].extend(0..=last);
                if step(carry_on, cursor.ack_up_to(0, last))?.is_some() {
                    acked.confirmed[1].extend(0..=last);
                }
            }
        }
        // "batch": receives up to 9, nacks every seventh once, acks the
        // rest and the one held since the round before in one call, and
        // holds one back.
        let got = step(carry_on, batcher.receive_batch(9, Duration::ZERO))?.unwrap_or_default();
        let mut set: Vec<spool::Delivery> = held.take().into_iter().collect();
        for d in got {
            if d.offset() % 7 == 3 && d.attempt() == 1 {
                step(carry_on, d.nack())?;
            } else if held.is_none() && round % 2 == 0 {
                held = Some(d);
            } else {
                set.push(d);
            }
        }
        let offsets: Vec<u64> = set.iter().map(|d| d.offset()).collect();
        acked.attempted[2].extend(&offsets);
        if step(carry_on, batcher.ack_batch(set))?.is_some() {
            acked.confirmed[2].extend(&offsets);
        }
        step(carry_on, s.apply_retention())?;
    }
    Ok(())
}

/// A stream of `n` small messages, all received by consumer "batch" at
/// once; then every odd offset acknowledged with one batch ack (a record
/// larger than the 4 KiB journal), then the first ten even ones (a set
/// that fits).
fn big_set_workload(fs: &SimFs, n: u64, acked: &mut Acked) -> spool::Result<()> {
    let store = Store::open(ROOT, sim::consumer_options(fs))?;
    let s = store.stream("q")?;
    let msgs: Vec<Vec<u8>> = (0..n).map(|o| o.to_le_bytes().to_vec()).collect();
    s.send_batch(msgs.iter())?;
    let c = s.consumer_with(
        "batch",
        ConsumerConfig::default().visibility_timeout(Duration::from_secs(60)),
    )?;
    let all = c.receive_batch(n as usize, Duration::ZERO)?;
    let (odd, even): (Vec<_>, Vec<_>) = all.into_iter().partition(|d| d.offset() % 2 == 1);
    acked.acks_from_op = fs.stats().ops + 1;
    for set in [odd, even.into_iter().take(10).collect()] {
        let offsets: Vec<u64> = set.iter().map(|d| d.offset()).collect();
        acked.attempted[2].extend(&offsets);
        c.ack_batch(set)?;
        acked.confirmed[2].extend(&offsets);
    }
    Ok(())
}

fn check(fs: &SimFs, acked: &Acked, what: &str) {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    if !store.streams().contains(&"q".to_string()) {
        assert!(
            acked.attempted.iter().all(|a| a.is_empty()),
            "{what}: stream lost"
        );
        return;
    }
    let s = store.stream("q").unwrap();
    let end = s.stats().buckets[0].end_offset;
    for (i, name) in CONSUMERS.iter().enumerate() {
        if !s.consumers().contains(&name.to_string()) {
            assert!(
                acked.attempted[i].is_empty(),
                "{what}: consumer {name} lost"
            );
            continue;
        }
        let c = s.consumer(name).unwrap();
        let mut delivered = BTreeSet::new();
        // Payloads of the big-set workload are the offset alone.
        let expected = |o: u64| {
            if acked.big {
                o.to_le_bytes().to_vec()
            } else {
                payload(o)
            }
        };
        loop {
            let batch = c
                .receive_batch(64, Duration::ZERO)
                .unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
            if batch.is_empty() {
                break;
            }
            for d in batch {
                assert_eq!(
                    d.payload(),
                    expected(d.offset()),
                    "{what}: {name} got a wrong payload"
                );
                assert!(
                    !acked.confirmed[i].contains(&d.offset()),
                    "{what}: {name}: acknowledged offset {} delivered again",
                    d.offset()
                );
                assert!(
                    delivered.insert(d.offset()),
                    "{what}: {name}: duplicate in one drain"
                );
                d.ack().unwrap();
            }
        }
        for o in 0..end {
            assert!(
                acked.attempted[i].contains(&o) || delivered.contains(&o),
                "{what}: {name}: offset {o} lost (never acknowledged, not delivered; first retained {})",
                s.stats().buckets[0].first_offset
            );
        }
    }
}

#[test]
fn power_cut_at_every_operation_of_a_consumer_workload() {
    let fs = SimFs::new();
    let mut acked = Acked::default();
    workload(&fs, &mut acked).expect("clean run");
    let total = fs.stats().ops;
    assert!(fs.violations().is_empty());
    // The workload must exercise what it claims to: retention deleted
    // segments, and journals filled up and were checkpointed.
    let files = fs.files();
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with("streams/q/p0/00000000000000000000.seg")),
        "retention deleted nothing: {files:?}"
    );
    let max_gen = files
        .iter()
        .filter_map(|f| {
            f.file_name()?
                .to_str()?
                .strip_prefix("journal.")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        max_gen >= 3,
        "no journal was checkpointed by the workload: generation {max_gen}"
    );
    assert!(total > 200, "workload too small: {total}");
    // Consumer "batch" journaled acknowledged sets: its files are version 2.
    let batch_dir = std::path::Path::new(ROOT).join("streams/q/consumers/batch");
    let ckpt = fs.read_file(&batch_dir.join("checkpoint")).unwrap();
    assert_eq!(ckpt[8..12], 2u32.to_le_bytes(), "checkpoint version");
    for n in 1..=total {
        for mode in [
            CutMode::DropUnsynced,
            CutMode::RandomPages(n),
            CutMode::RandomPages(n + 7_000_000),
        ] {
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

#[test]
fn power_cut_at_every_operation_of_a_batch_ack_larger_than_the_journal() {
    // 4,400 messages delivered at once, every odd one acknowledged by one
    // call: 2,200 runs, a record of some 4.4 KiB, more than the 4 KiB
    // journals hold, so the call starts a journal that holds it; then ten
    // more in a set that fits. Cut at every operation from the first batch
    // ack on (the sends and deliveries before are the other tests' ground).
    const N: u64 = 4400;
    let fs = SimFs::new();
    let mut acked = Acked {
        big: true,
        ..Acked::default()
    };
    big_set_workload(&fs, N, &mut acked).expect("clean run");
    let total = fs.stats().ops;
    assert!(fs.violations().is_empty());
    let journals: Vec<usize> = fs
        .files()
        .iter()
        .filter(|f| {
            f.to_str()
                .is_some_and(|f| f.contains("/consumers/batch/journal."))
        })
        .map(|f| fs.read_file(f).unwrap().len())
        .collect();
    assert_eq!(journals, [8192], "the journal grew to hold the record");
    let from = acked.acks_from_op;
    assert!(
        total - from >= 10,
        "batch acks of {} operations",
        total - from
    );
    for n in from..=total {
        for mode in [
            CutMode::DropUnsynced,
            CutMode::RandomPages(n),
            CutMode::RandomPages(n + 7_000_000),
        ] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut acked = Acked {
                big: true,
                ..Acked::default()
            };
            let _ = big_set_workload(&fs, N, &mut acked);
            let image = fs.crashed_image().expect("crashed");
            check(
                &SimFs::from_image(&image),
                &acked,
                &format!("big set, cut at op {n}/{total} {mode:?}"),
            );
        }
    }
}

#[test]
fn acks_that_return_after_an_earlier_io_error_hold() {
    // EIO once at operation N, and the program carries on; the power is cut
    // at a later operation M. Whatever failed, an ack that returned `Ok`
    // before the cut must hold: a failure may stop the store, never make a
    // later ack vanish.
    let fs = SimFs::new();
    run_workload(&fs, &mut Acked::default(), true).expect("clean run");
    for (n, m, mode) in fault_then_cut(fs.stats().ops, 48, 3) {
        let fs = SimFs::failing_then_cut(n, m, mode);
        let mut acked = Acked::default();
        let _ = run_workload(&fs, &mut acked, true);
        if let Some(image) = fs.crashed_image() {
            check(
                &SimFs::from_image(&image),
                &acked,
                &format!("EIO once at op {n}, carrying on, cut at op {m} {mode:?}"),
            );
        }
    }
}

#[test]
fn io_error_at_every_operation_of_a_consumer_workload() {
    // Fail operation N with EIO or ENOSPC, once or for good: the workload
    // stops with an error; reopened as is (or, when the device stays broken,
    // after a power cut), no acknowledged ack is undone and nothing is lost.
    use spool::io::sim::FaultKind;
    let fs = SimFs::new();
    workload(&fs, &mut Acked::default()).expect("clean run");
    let total = fs.stats().ops;
    for n in 1..=total {
        for kind in [FaultKind::Eio, FaultKind::Enospc] {
            for forever in [false, true] {
                let fs = SimFs::new();
                fs.fail_at(n, kind, forever);
                let mut acked = Acked::default();
                let _ = workload(&fs, &mut acked);
                let after = if forever {
                    fs.power_cut(CutMode::DropUnsynced)
                } else {
                    fs
                };
                check(
                    &after,
                    &acked,
                    &format!("{kind:?} at op {n} (forever: {forever})"),
                );
            }
        }
    }
}

/// Consumers of the delivered-range workload: one that receives in batches
/// from its first take on, one that receives one at a time first.
const RANGE_CONSUMERS: [&str; 2] = ["fresh", "single"];
/// Priority levels of its stream `r`.
const RANGE_LEVELS: u8 = 3;

/// What the delivered-range workload did, per consumer.
#[derive(Debug, Default)]
struct RangeRun {
    /// `(level, offset)`s whose ack returned.
    confirmed: [BTreeSet<(u8, u64)>; 2],
    /// `(level, offset)`s an ack was issued for.
    attempted: [BTreeSet<(u8, u64)>; 2],
    /// The highest attempt each message was handed out with.
    attempts: [BTreeMap<(u8, u64), u32>; 2],
    /// A receive failed (the power went in its journal rotation): what it
    /// leased may be in a checkpoint without having been handed out.
    receive_failed: bool,
    /// Whether to keep `journals` (the clean run).
    observe: bool,
    /// After each batch receive: the consumer, its journal's version and
    /// records.
    journals: Vec<(usize, u32, Vec<Record>)>,
}

fn range_payload(p: u8, offset: u64) -> Vec<u8> {
    let mut v = vec![p];
    v.extend_from_slice(&payload(offset));
    v
}

/// The journal of consumer `name` of stream `r`: version and records.
fn range_journal(fs: &SimFs, name: &str) -> Option<(u32, Vec<Record>)> {
    let dir = Path::new(ROOT).join("streams/r/consumers").join(name);
    let path = fs
        .files()
        .into_iter()
        .filter(|f| f.parent() == Some(dir.as_path()))
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal."))
        })
        .max()?;
    let (h, records) = journal::decode_all(&fs.read_file(&path).ok()?)?;
    Some((h.version, records.into_iter().map(|(_, r)| r).collect()))
}

/// Three levels of messages, received in batches by "fresh" (from its
/// first take on, under a starvation limit, so that a batch interleaves
/// levels) and by "single" (one at a time first: a version 1 journal with
/// room; a batch ack then starts a version 2 generation). Messages are
/// nacked once, or their lease runs out once (extended to end now), before
/// they are acknowledged, alone or in batches; one of each consumer is held
/// unacknowledged from round to round.
fn range_workload(fs: &SimFs, run: &mut RangeRun) -> spool::Result<()> {
    let store = Store::open(ROOT, sim::consumer_options(fs))?;
    let s = store.create_stream("r", StreamConfig::default().priorities(RANGE_LEVELS))?;
    let config = ConsumerConfig::default().visibility_timeout(Duration::from_secs(60));
    let fresh = s.consumer_with("fresh", config.clone().starvation_limit(3))?;
    let single = s.consumer_with("single", config)?;
    let mut ends = [0u64; RANGE_LEVELS as usize];
    let mut held: [Option<spool::Delivery>; 2] = [None, None];
    for round in 0..5u64 {
        let msgs: Vec<(u8, Vec<u8>)> = (0..15u64)
            .map(|i| {
                let p = ((i * 7 + round) % u64::from(RANGE_LEVELS)) as u8;
                ends[p as usize] += 1;
                (p, range_payload(p, ends[p as usize] - 1))
            })
            .collect();
        let offsets = s.send_batch(msgs.iter().map(|(p, m)| Message::new(m).priority(*p)))?;
        for ((p, m), o) in msgs.iter().zip(offsets) {
            assert_eq!(*m, range_payload(*p, o), "offset of a send");
        }
        for (i, c) in [&fresh, &single].into_iter().enumerate() {
            let mut got = Vec::new();
            if i == 1 && round != 1 {
                // One at a time first (in round 0 the journal's first
                // records: it is of version 1).
                for _ in 0..2 {
                    match c.try_receive() {
                        Ok(Some(d)) => got.push(d),
                        Ok(None) => {}
                        Err(e) => {
                            run.receive_failed = true;
                            return Err(e);
                        }
                    }
                }
            }
            let max = [7, 12, 5, 30, 9][round as usize] + i;
            match c.receive_batch(max, Duration::ZERO) {
                Ok(batch) => got.extend(batch),
                Err(e) => {
                    run.receive_failed = true;
                    return Err(e);
                }
            }
            if run.observe {
                let (version, records) =
                    range_journal(fs, RANGE_CONSUMERS[i]).expect("a journal after a receive");
                run.journals.push((i, version, records));
            }
            for d in &got {
                let n = run.attempts[i]
                    .entry((d.priority(), d.offset()))
                    .or_insert(0);
                *n = (*n).max(d.attempt());
            }
            let mut done = Vec::new();
            for d in got {
                let o = d.offset();
                if o % 4 == 1 && d.attempt() == 1 {
                    d.nack()?;
                } else if o % 5 == 2 && d.attempt() == 1 {
                    // The lease runs out: redelivered by the next receive.
                    d.extend_lease(Duration::ZERO)?;
                } else if held[i].is_none() {
                    held[i] = Some(d);
                } else {
                    done.push(d);
                }
            }
            if round % 2 == 1 {
                // The one held since a round before goes with these.
                done.extend(held[i].take());
            }
            let positions: Vec<(u8, u64)> =
                done.iter().map(|d| (d.priority(), d.offset())).collect();
            run.attempted[i].extend(&positions);
            if round % 2 == 1 || i == 0 {
                c.ack_batch(done)?;
                run.confirmed[i].extend(&positions);
            } else {
                // Single acks (a version 1 journal keeps its version).
                for d in done {
                    let at = (d.priority(), d.offset());
                    d.ack()?;
                    run.confirmed[i].insert(at);
                }
            }
        }
    }
    Ok(())
}

fn check_ranges(fs: &SimFs, run: &RangeRun, what: &str) {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    if !store.streams().contains(&"r".to_string()) {
        assert!(
            run.attempted.iter().all(|a| a.is_empty()),
            "{what}: stream lost"
        );
        return;
    }
    let s = store.stream("r").unwrap();
    let ends: Vec<u64> = s.stats().buckets.iter().map(|b| b.end_offset).collect();
    assert_eq!(ends.len(), usize::from(RANGE_LEVELS));
    for (i, name) in RANGE_CONSUMERS.iter().enumerate() {
        if !s.consumers().contains(&name.to_string()) {
            assert!(run.attempts[i].is_empty(), "{what}: consumer {name} lost");
            continue;
        }
        let c = s.consumer(name).unwrap();
        let mut delivered = BTreeSet::new();
        loop {
            let batch = c
                .receive_batch(16, Duration::ZERO)
                .unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
            if batch.is_empty() {
                break;
            }
            for d in batch {
                let at = (d.priority(), d.offset());
                assert_eq!(
                    d.payload(),
                    range_payload(at.0, at.1),
                    "{what}: {name} got a wrong payload"
                );
                assert!(
                    !run.confirmed[i].contains(&at),
                    "{what}: {name}: acknowledged {at:?} delivered again"
                );
                assert!(
                    delivered.insert(at),
                    "{what}: {name}: {at:?} twice in one drain"
                );
                // Deliveries may come back counted lower (not synced),
                // never higher than handed out.
                let most = run.attempts[i].get(&at).copied().unwrap_or(0)
                    + 1
                    + u32::from(run.receive_failed);
                assert!(
                    d.attempt() <= most,
                    "{what}: {name}: {at:?} comes back as attempt {}, at most {most}",
                    d.attempt()
                );
                d.ack().unwrap();
            }
        }
        for (p, &end) in ends.iter().enumerate() {
            for o in 0..end {
                let at = (p as u8, o);
                assert!(
                    run.attempted[i].contains(&at) || delivered.contains(&at),
                    "{what}: {name}: {at:?} lost (never acknowledged, not delivered)"
                );
            }
        }
    }
}

#[test]
fn power_cut_at_every_operation_of_batch_receives_journaled_as_delivered_ranges() {
    let fs = SimFs::new();
    let mut run = RangeRun {
        observe: true,
        ..RangeRun::default()
    };
    range_workload(&fs, &mut run).expect("clean run");
    let total = fs.stats().ops;
    assert!(fs.violations().is_empty());
    // The workload journals what it claims to.
    let is_range = |r: &Record| matches!(r, Record::Entry(Entry::DeliveredRange { .. }));
    let first_deliveries = |records: &[Record]| {
        records
            .iter()
            .filter(|r| matches!(r, Record::Entry(Entry::Delivered { attempt: 1, .. })))
            .count()
    };
    for (i, version, records) in &run.journals {
        if *version == JOURNAL_VERSION_1 {
            assert!(
                !records.iter().any(is_range),
                "{}: a range in a version 1 journal",
                RANGE_CONSUMERS[*i]
            );
        }
    }
    let of = |i: usize| run.journals.iter().filter(move |(c, _, _)| *c == i);
    // "fresh": its first journal is of version 2 and holds ranges.
    let (_, version, records) = of(0).next().unwrap();
    assert_eq!(*version, JOURNAL_VERSION_2, "fresh's first journal");
    assert!(records.iter().any(is_range), "fresh: {records:?}");
    // "single": a batch into its version 1 journal (two single receives,
    // then first deliveries one record each), then ranges in version 2.
    let (_, version, records) = of(1).next().unwrap();
    assert_eq!(*version, JOURNAL_VERSION_1, "single's first journal");
    assert!(first_deliveries(records) >= 4, "single: {records:?}");
    assert!(
        of(1).any(|(_, v, r)| *v == JOURNAL_VERSION_2 && r.iter().any(is_range)),
        "single never journaled a range: {:?}",
        run.journals
    );
    assert!(total > 150, "workload too small: {total}");
    for n in 1..=total {
        for mode in [
            CutMode::DropUnsynced,
            CutMode::RandomPages(n),
            CutMode::RandomPages(n + 7_000_000),
        ] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut run = RangeRun::default();
            let _ = range_workload(&fs, &mut run);
            let image = fs.crashed_image().expect("crashed");
            check_ranges(
                &SimFs::from_image(&image),
                &run,
                &format!("ranges, cut at op {n}/{total} {mode:?}"),
            );
        }
    }
}
