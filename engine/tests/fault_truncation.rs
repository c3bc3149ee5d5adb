//! Goal: files truncated or extended by someone else (reliability matrix K2,
//! fault F8) give typed errors or recover: opening and reading never panics,
//! never returns a record that differs from what was sent, and a consumer
//! never delivers a wrong payload.
//!
//! Method: a small store (a sealed and an active segment with headers, an
//! index, stream and store metadata, a consumer's checkpoint and journal, a
//! claim-check blob) is built once on the simulated file system. Then every
//! file is truncated at every byte of its meaningful part (the sealed
//! segment's record area every 7th byte, zero padding every 509th), and
//! extended by 1..=1024 random bytes; each time the store is opened and
//! everything is read.

pub mod common;

use common::{damage, Xorshift};
use spool::io::sim::CutMode;

#[test]
fn every_file_truncated_and_extended() {
    let (base, blob_at) = damage::build();
    let mut cases = 0u64;
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    for f in damage::files(&base) {
        for cut in 0..f.bytes.len() {
            let take = if f.sealed && cut >= 1024 {
                cut % 7 == 0
            } else {
                cut <= f.last_nonzero + 8 || cut % 509 == 0
            };
            if !take {
                continue;
            }
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&f.path, &f.bytes[..cut]).unwrap();
            damage::open_and_read(&fs, blob_at, &format!("{} cut at {cut}", f.name));
            cases += 1;
        }
        for _ in 0..16 {
            let r = rng.next_u64();
            let n = 1 + (r % 1024) as usize;
            let mut longer = f.bytes.clone();
            longer.extend((0..n).map(|i| (r >> (i % 56)) as u8));
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&f.path, &longer).unwrap();
            damage::open_and_read(&fs, blob_at, &format!("{} extended by {n}", f.name));
            cases += 1;
        }
    }
    assert!(cases > 5_000, "too few cases: {cases}");
    eprintln!("truncations and extensions checked: {cases}");
}

/// Regression (found by the `segment_recovery` fuzz target): after the
/// active segment was cut short, a send whose record did not fit what was
/// left of it failed with `MessageTooLarge` (the record was measured
/// against the short file, not against the segment a roll makes), and the
/// store could take no new message at all.
#[test]
fn a_send_after_the_active_segment_was_cut_short_rolls_to_a_new_segment() {
    use spool::io::sim::SimFs;
    use spool::{Durability, Options, Store};
    use std::sync::Arc;
    let fs = SimFs::new();
    let opts = || {
        Options::default()
            .durability(Durability::Always)
            .vfs(Arc::new(fs.clone()))
    };
    let seg = std::path::Path::new("/t/streams/s/p0/00000000000000000000.seg");
    {
        let store = Store::open("/t", opts()).unwrap();
        let s = store.stream("s").unwrap();
        for i in 0..2u8 {
            s.send(&[i; 100]).unwrap();
        }
        store.close().unwrap();
    }
    // Cut the file right after its two records (1024 + 2 × 136 bytes):
    // nothing acknowledged is lost, but no room is left in the segment.
    let bytes = fs.read_file(seg).unwrap();
    fs.write_file(seg, &bytes[..1024 + 2 * 136]).unwrap();
    let store = Store::open("/t", opts()).unwrap();
    let s = store.stream("s").unwrap();
    let end = s.stats().buckets[0].end_offset;
    assert_eq!(end, 2, "the records that were left");
    assert_eq!(
        s.send(&[9; 1000]).unwrap(),
        end,
        "a record larger than what is left"
    );
    assert_eq!(s.stats().buckets[0].segments, 2);
    drop(s);
    store.close().unwrap();
    let store = Store::open("/t", opts()).unwrap();
    let s = store.stream("s").unwrap();
    assert_eq!(s.read(end).unwrap().unwrap().payload(), &[9; 1000][..]);
}
