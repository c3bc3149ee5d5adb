//! Goal: a power cut at any I/O operation of a run of id-carrying sends
//! across segment rolls never lets an acknowledged id be stored twice: after
//! each cut, resending every acknowledged id returns its offset and stores
//! nothing, no id is in the log twice, and the open that rebuilt the window
//! read no sealed segment's records (they are damaged in a copy of the
//! image, which opens and deduplicates all the same).

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Message, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const ROOT: &str = "/store";
const MESSAGES: u64 = 90;

fn options(fs: &SimFs) -> spool::Options {
    sim::options(fs, Durability::Always).allocation_chunk_bytes(4096)
}

fn key(i: u64) -> String {
    format!("order-{i}")
}

fn payload(i: u64) -> Vec<u8> {
    vec![(i % 251) as u8; 1500 + (i as usize * 37) % 900]
}

/// Sends every id once (a batch every seventh, with a duplicate inside),
/// and records what was acknowledged: id → offset.
fn workload(fs: &SimFs, acked: &mut HashMap<u64, u64>) -> spool::Result<()> {
    let store = Store::open(ROOT, options(fs))?;
    let s = store.stream("s")?;
    let mut i = 0;
    while i < MESSAGES {
        if i % 7 == 3 && i + 1 < MESSAGES {
            let (a, b) = (payload(i), payload(i + 1));
            let (ka, kb) = (key(i), key(i + 1));
            let got = s.send_batch([
                Message::new(&a).id(&ka),
                Message::new(b"plain"),
                Message::new(&b).id(&kb),
                Message::new(&a).id(&ka),
            ])?;
            assert_eq!(got[0], got[3]);
            acked.insert(i, got[0]);
            acked.insert(i + 1, got[2]);
            i += 2;
        } else {
            let p = payload(i);
            let k = key(i);
            acked.insert(i, s.send_message(Message::new(&p).id(&k))?);
            i += 1;
        }
    }
    Ok(())
}

fn sealed_segments(fs: &SimFs) -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("streams/s/p0");
    let mut segs: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .filter(|p| p.starts_with(&dir) && p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop();
    segs
}

/// Every acknowledged id resent: its offset back, nothing stored.
fn resend_all(store: &Store, acked: &HashMap<u64, u64>, what: &str) {
    let s = store.stream("s").unwrap();
    let end = s.stats().buckets[0].end_offset;
    for (&i, &o) in acked {
        let p = payload(i);
        let k = key(i);
        let got = s
            .send_message(Message::new(&p).id(&k))
            .unwrap_or_else(|e| panic!("{what}: resend {i}: {e}"));
        assert_eq!(got, o, "{what}: id {i} acknowledged at {o}");
    }
    assert_eq!(
        s.stats().buckets[0].end_offset,
        end,
        "{what}: a resend stored"
    );
}

fn check(image: &spool::io::sim::Image, acked: &HashMap<u64, u64>, what: &str) -> usize {
    // The log itself: no id twice, every acknowledged one where it was.
    let fs = SimFs::from_image(image);
    let store = Store::open(ROOT, options(&fs)).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let s = store.stream("s").unwrap();
    let mut seen = HashMap::new();
    for r in s.iter_from(0) {
        let r = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
        if let Some(id) = r.message_id() {
            let prev = seen.insert(id.to_vec(), r.offset());
            assert!(prev.is_none(), "{what}: {id:?} stored twice");
        }
    }
    for (&i, &o) in acked {
        assert_eq!(seen.get(key(i).as_bytes()), Some(&o), "{what}: id {i} lost");
    }
    drop(s);
    resend_all(&store, acked, what);
    drop(store);
    // A copy whose sealed segments' records are all damaged: the open
    // must not read them, and deduplicates the same.
    let fs = SimFs::from_image(image);
    let segs = sealed_segments(&fs);
    for seg in &segs {
        let mut b = fs.read_file(seg).unwrap();
        b[64..].fill(0xA5);
        fs.write_file(seg, &b).unwrap();
    }
    let store = Store::open(ROOT, options(&fs))
        .unwrap_or_else(|e| panic!("{what}: open with damaged sealed records: {e}"));
    resend_all(&store, acked, &format!("{what} (sealed records damaged)"));
    segs.len()
}

#[test]
fn power_cut_at_every_operation_of_id_carrying_sends() {
    let total = {
        let fs = SimFs::new();
        let mut acked = HashMap::new();
        workload(&fs, &mut acked).expect("clean run");
        assert_eq!(acked.len() as u64, MESSAGES);
        fs.stats().ops
    };
    assert!(total > 100, "{total} ops");
    let mut most_sealed = 0;
    for n in 1..=total {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(n * 7919)] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut acked = HashMap::new();
            let _ = workload(&fs, &mut acked);
            let image = fs.crashed_image().expect("the crash happened");
            let what = format!("cut at op {n}/{total} ({mode:?})");
            most_sealed = most_sealed.max(check(&image, &acked, &what));
        }
    }
    // The run must roll segments, or the sealed path is not tested.
    assert!(most_sealed >= 2, "{most_sealed} sealed segments at most");
}

// Retention deleting segments whose ids are within the window (DESIGN.md
// §7.1, "Ids of deleted segments"): a power cut at every operation of the
// pass, and of the open that finishes it.

const RETAINED_IDS: u64 = 150;

fn retention_options(fs: &SimFs) -> spool::Options {
    sim::consumer_options(fs)
}

/// A stream of `RETAINED_IDS` id-carrying messages over several segments,
/// all acknowledged by consumer `c` (retention may delete every sealed
/// one); `config` is the stream's.
fn retention_build(fs: &SimFs, config: spool::StreamConfig) -> (Store, HashMap<u64, u64>) {
    let store = Store::open(ROOT, retention_options(fs)).unwrap();
    let s = store.create_stream("s", config).unwrap();
    let c = s.consumer("c").unwrap();
    let mut acked = HashMap::new();
    for i in 0..RETAINED_IDS {
        let p = payload(i);
        acked.insert(i, s.send_message(Message::new(&p).id(&key(i))).unwrap());
    }
    c.ack_up_to(0, acked[&(RETAINED_IDS - 1)]).unwrap();
    drop((s, c));
    (store, acked)
}

/// After a cut: the store opens, every acknowledged id resent stores
/// nothing (found in a retained segment or in kept ids), the consumer's
/// acknowledgements are all there, and nothing below the low-water mark
/// is left but kept ids.
fn retention_check(fs: &SimFs, acked: &HashMap<u64, u64>, what: &str) {
    let store =
        Store::open(ROOT, retention_options(fs)).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let s = store.stream("s").unwrap();
    let c = s.open_consumer("c").unwrap();
    assert!(
        c.try_receive().unwrap().is_none(),
        "{what}: an acknowledgement was lost"
    );
    drop(s);
    resend_all(&store, acked, what);
}

#[test]
fn power_cut_at_every_operation_of_a_retention_pass_keeps_the_ids() {
    let probe = SimFs::new();
    let (store, acked) = retention_build(&probe, spool::StreamConfig::default());
    let before = probe.stats().ops;
    let freed = store.stream("s").unwrap().apply_retention().unwrap();
    let ops = probe.stats().ops - before;
    assert!(freed > 0, "the pass deletes segments");
    let kept = store.stream("s").unwrap().stats().buckets[0].kept_id_files;
    assert!(kept >= 2, "{kept} kept-ids files");
    drop(store);
    assert!(ops > 5, "{ops} ops");
    let mut finished_at_open = 0;
    for at in 1..=ops + 1 {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at * 7919)] {
            let fs = SimFs::new();
            let (store, acked_here) = retention_build(&fs, spool::StreamConfig::default());
            assert_eq!(acked_here.len(), acked.len());
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = store.stream("s").unwrap().apply_retention();
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(store);
            let what = format!("cut at op {at} of {ops} of the pass ({mode:?})");
            // A cut inside the open that finishes the pass, at each of its
            // operations, then a reopen.
            let open_ops = {
                let copy = image.power_cut(CutMode::DropUnsynced);
                let before = copy.stats().ops;
                drop(Store::open(ROOT, retention_options(&copy)).unwrap());
                copy.stats().ops - before
            };
            if mode == CutMode::DropUnsynced && has_segments_below_low_water(&image) {
                finished_at_open += 1;
                for at2 in 1..=open_ops {
                    let copy = image.power_cut(CutMode::DropUnsynced);
                    copy.crash_at(copy.stats().ops + at2, CutMode::DropUnsynced);
                    let _ = Store::open(ROOT, retention_options(&copy));
                    let again = copy
                        .crashed_image()
                        .map(|img| SimFs::from_image(&img))
                        .unwrap_or_else(|| copy.power_cut(CutMode::DropUnsynced));
                    retention_check(
                        &again,
                        &acked_here,
                        &format!("{what}, then at op {at2} of the open"),
                    );
                }
            }
            retention_check(&image, &acked_here, &what);
        }
    }
    assert!(
        finished_at_open > 0,
        "no cut left the pass for the open to finish"
    );
}

/// Whether a segment of `s`'s bucket lies below its low-water mark (a pass
/// cut after its mark was durable, before its files went).
fn has_segments_below_low_water(fs: &SimFs) -> bool {
    let dir = Path::new(ROOT).join("streams/s/p0");
    let Ok(mark) = fs.read_file(&dir.join("retention.meta")) else {
        return false;
    };
    let low = u64::from_le_bytes(mark[mark.len() - 8..].try_into().unwrap());
    let mut bases: Vec<u64> = fs
        .files()
        .into_iter()
        .filter(|p| p.starts_with(&dir) && p.extension().is_some_and(|e| e == "seg"))
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect();
    bases.sort();
    bases.len() > 1 && bases[1] <= low
}

/// `max_bytes` deletes segments as the sends roll: a power cut at every
/// operation of id-carrying sends to a stream bounded by size, then every
/// acknowledged id resent stores nothing.
#[test]
fn power_cut_at_every_operation_of_sends_whose_rolls_delete_by_size() {
    let config = || spool::StreamConfig::default().max_bytes(2 * sim::SEGMENT_BYTES);
    let run = |fs: &SimFs, acked: &mut HashMap<u64, u64>| -> spool::Result<()> {
        let store = Store::open(ROOT, retention_options(fs))?;
        let s = store.create_stream("s", config())?;
        for i in 0..RETAINED_IDS {
            let p = payload(i);
            let o = s.send_message(Message::new(&p).id(&key(i)))?;
            acked.insert(i, o);
        }
        Ok(())
    };
    let total = {
        let fs = SimFs::new();
        let mut acked = HashMap::new();
        run(&fs, &mut acked).unwrap();
        let s = Store::open(
            ROOT,
            retention_options(&fs.power_cut(CutMode::DropUnsynced)),
        )
        .unwrap()
        .stream("s")
        .unwrap()
        .stats();
        assert!(s.buckets[0].first_offset > 0, "size retention ran");
        assert!(s.buckets[0].kept_id_files > 0, "ids were kept");
        fs.stats().ops
    };
    for n in 1..=total {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(n * 104_729)] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut acked = HashMap::new();
            let _ = run(&fs, &mut acked);
            let image = SimFs::from_image(&fs.crashed_image().expect("the crash happened"));
            let what = format!("cut at op {n}/{total} ({mode:?})");
            let store = Store::open(ROOT, retention_options(&image))
                .unwrap_or_else(|e| panic!("{what}: open: {e}"));
            if store.streams().contains(&"s".to_string()) {
                resend_all(&store, &acked, &what);
            } else {
                assert!(acked.is_empty(), "{what}");
            }
        }
    }
}
