//! Goal: random power-loss soak (reliability matrix C3). A seed picks a
//! workload (sends, batches, claim-check payloads, priorities, receives,
//! acks, nacks, cursor acks, retention), a cut point and a damage model; after
//! the cut, every acknowledged send and ack must have survived and nothing
//! damaged may be read.
//!
//! Method: run the seed's workload once to count its I/O operations, run it
//! again with the power failing at a chosen operation, open the survivor and
//! check it. Seeds per run: `SPOOL_SOAK_SEEDS` (default 2,000); a failing
//! seed prints the command that replays it alone:
//! `SPOOL_SOAK_SEED=<seed> cargo test --release -p spool-queue --test fault_soak`.

pub mod common;

use common::{env_parsed, sim, Xorshift};
use spool::io::sim::{CutMode, SimFs};
use spool::{ConsumerConfig, Message, Store, StreamConfig};
use std::collections::BTreeSet;
use std::time::Duration;

const LEVELS: u8 = 2;

fn payload(prio: u8, offset: u64, len: usize) -> Vec<u8> {
    let mut p = vec![prio; 9];
    p[1..9].copy_from_slice(&offset.to_le_bytes());
    p.resize(len.max(9), (offset as u8) ^ prio);
    p
}

/// What the workload saw acknowledged.
#[derive(Default)]
struct Acked {
    sends: Vec<(u8, u64, usize)>,
    acks_attempted: [BTreeSet<u64>; LEVELS as usize],
    acks_confirmed: [BTreeSet<u64>; LEVELS as usize],
}

fn workload(fs: &SimFs, seed: u64, acked: &mut Acked) -> spool::Result<()> {
    let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let store = Store::open("/soak", sim::consumer_options(fs))?;
    let s = match store.create_stream(
        "q",
        StreamConfig::default()
            .priorities(LEVELS)
            .claim_check_threshold(2000),
    ) {
        Ok(s) => s,
        Err(spool::Error::StreamExists { .. }) => store.stream("q")?,
        Err(e) => return Err(e),
    };
    let c = s.consumer_with(
        "c",
        ConsumerConfig::default().visibility_timeout(Duration::from_secs(600)),
    )?;
    let mut held = Vec::new();
    let ops = 20 + rng.below(60);
    for _ in 0..ops {
        match rng.below(10) {
            0..=3 => {
                let prio = rng.below(LEVELS as u64) as u8;
                let len = if rng.below(8) == 0 {
                    2000 + rng.below(6000)
                } else {
                    rng.below(1500)
                } as usize;
                let off = s.stats().buckets[prio as usize].end_offset;
                let got = s.send_message(Message::new(&payload(prio, off, len)).priority(prio))?;
                assert_eq!(got, off);
                acked.sends.push((prio, got, len));
            }
            4 => {
                let prio = rng.below(LEVELS as u64) as u8;
                let n = 1 + rng.below(20);
                let len = rng.below(900) as usize;
                let start = s.stats().buckets[prio as usize].end_offset;
                let msgs: Vec<Vec<u8>> =
                    (start..start + n).map(|o| payload(prio, o, len)).collect();
                let offs = s.send_batch(msgs.iter().map(|m| Message::new(m).priority(prio)))?;
                for o in offs {
                    acked.sends.push((prio, o, len));
                }
            }
            5..=6 => {
                if let Some(d) = c.try_receive()? {
                    held.push(d);
                }
            }
            7 => {
                if !held.is_empty() {
                    let d = held.swap_remove(rng.below(held.len() as u64) as usize);
                    let (p, o) = (d.priority() as usize, d.offset());
                    acked.acks_attempted[p].insert(o);
                    d.ack()?;
                    acked.acks_confirmed[p].insert(o);
                }
            }
            8 => {
                if !held.is_empty() {
                    let d = held.swap_remove(rng.below(held.len() as u64) as usize);
                    d.nack()?;
                }
            }
            _ => {
                let prio = rng.below(LEVELS as u64) as u8;
                let floor = c.stats().buckets[prio as usize].ack_floor;
                let end = s.stats().buckets[prio as usize].durable_offset;
                if end > floor && rng.below(2) == 0 {
                    let upto = floor + rng.below(end - floor);
                    acked.acks_attempted[prio as usize].extend(0..=upto);
                    c.ack_up_to(prio, upto)?;
                    acked.acks_confirmed[prio as usize].extend(0..=upto);
                    held.retain(|d| !(d.priority() == prio && d.offset() <= upto));
                } else {
                    s.apply_retention()?;
                }
            }
        }
    }
    Ok(())
}

fn length_of(acked: &Acked, prio: u8, offset: u64) -> Option<usize> {
    acked
        .sends
        .iter()
        .find(|(p, o, _)| *p == prio && *o == offset)
        .map(|(_, _, l)| *l)
}

fn check(fs: &SimFs, acked: &Acked, seed: u64, what: &str) {
    let replay = format!(
        "replay: SPOOL_SOAK_SEED={seed} cargo test --release -p spool-queue --test fault_soak"
    );
    let store = Store::open("/soak", sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: reopen: {e}\n{replay}"));
    if !store.streams().contains(&"q".to_string()) {
        assert!(acked.sends.is_empty(), "{what}: stream lost\n{replay}");
        return;
    }
    let s = store.stream("q").unwrap();
    for &(p, o, len) in &acked.sends {
        match s.read_priority(p, o) {
            Ok(Some(r)) => assert_eq!(r.payload(), payload(p, o, len), "{what}: {p}/{o}\n{replay}"),
            Ok(None) => panic!("{what}: acknowledged {p}/{o} missing\n{replay}"),
            // Retention may have removed it, but only once acknowledged.
            Err(spool::Error::OffsetNotRetained { .. }) => {
                assert!(
                    acked.acks_attempted[p as usize].contains(&o),
                    "{what}: {p}/{o} deleted unacknowledged\n{replay}"
                )
            }
            Err(e) => panic!("{what}: read {p}/{o}: {e}\n{replay}"),
        }
    }
    if !s.consumers().contains(&"c".to_string()) {
        return;
    }
    let c = s.consumer("c").unwrap();
    let mut delivered: [BTreeSet<u64>; LEVELS as usize] = Default::default();
    while let Some(d) = c
        .try_receive()
        .unwrap_or_else(|e| panic!("{what}: receive: {e}\n{replay}"))
    {
        let (p, o) = (d.priority(), d.offset());
        assert!(
            !acked.acks_confirmed[p as usize].contains(&o),
            "{what}: acked {p}/{o} redelivered\n{replay}"
        );
        if let Some(len) = length_of(acked, p, o) {
            assert_eq!(d.payload(), payload(p, o, len), "{what}: {p}/{o}\n{replay}");
        } else {
            assert_eq!(
                &d.payload()[..9],
                &payload(p, o, 9)[..9],
                "{what}: foreign record {p}/{o}\n{replay}"
            );
        }
        delivered[p as usize].insert(o);
        d.ack().unwrap();
    }
    for &(p, o, _) in &acked.sends {
        assert!(
            delivered[p as usize].contains(&o) || acked.acks_attempted[p as usize].contains(&o),
            "{what}: {p}/{o} neither acknowledged nor delivered\n{replay}"
        );
    }
}

fn run_seed(seed: u64) {
    let probe = SimFs::new();
    let mut acked = Acked::default();
    workload(&probe, seed, &mut acked)
        .unwrap_or_else(|e| panic!("seed {seed}: clean run failed: {e}"));
    let total = probe.stats().ops;
    let mut rng = Xorshift(seed ^ 0xdead_beef_cafe_f00d);
    let cut = 1 + rng.below(total);
    let mode = match rng.below(3) {
        0 => CutMode::DropUnsynced,
        _ => CutMode::RandomPages(rng.next_u64()),
    };
    let fs = SimFs::new();
    fs.crash_at(cut, mode);
    let mut acked = Acked::default();
    let _ = workload(&fs, seed, &mut acked);
    let image = fs.crashed_image().expect("the cut point is within the run");
    check(
        &SimFs::from_image(&image),
        &acked,
        seed,
        &format!("seed {seed}, cut at op {cut}/{total} {mode:?}"),
    );
}

#[test]
fn random_power_loss_soak() {
    if let Some(seed) = env_parsed("SPOOL_SOAK_SEED") {
        run_seed(seed);
        return;
    }
    let seeds: u64 = env_parsed("SPOOL_SOAK_SEEDS").unwrap_or(2000);
    let base = env_parsed("SPOOL_SOAK_BASE").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    eprintln!("soak: {seeds} seeds from {base} (SPOOL_SOAK_BASE={base} repeats this run)");
    for i in 0..seeds {
        run_seed(base.wrapping_mul(1_000_003).wrapping_add(i));
    }
}
