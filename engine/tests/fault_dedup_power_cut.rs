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
