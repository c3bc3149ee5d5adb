//! Goal: a claim-check blob that only the segments a retention pass deletes
//! referred to never outlives them. A power cut at any operation of the
//! pass leaves a store whose open ends with the blob either still referred
//! to (its segment kept) or removed; the blob of a message kept is never
//! removed; nothing at or above the first retained offset is lost.
//!
//! Method: on the simulated file system, a stream whose first segment holds
//! a claim check, a second claim check further on, a consumer acknowledged
//! past several sealed segments; `SimFs::crash_at` at every operation of
//! one `apply_retention` call, in both cut modes; the image is opened and
//! closed, and its blob files are counted against the references.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{Store, StreamConfig};

const ROOT: &str = "/d";
const SMALL: u64 = 400;

fn big(tag: u8) -> Vec<u8> {
    vec![tag; 8 * 1024]
}

/// Offsets: 0 is a claim check (blob 1), 1..=SMALL small messages over
/// several segments, SMALL + 1 another claim check (blob 2); consumer `c`
/// acknowledged up to SMALL / 2 (in memory: the pass checkpoints it).
fn build(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, sim::consumer_options(fs)).unwrap();
    let config = StreamConfig::default().claim_check_threshold(4096);
    let s = store.create_stream("s", config).unwrap();
    let c = s.consumer("c").unwrap();
    s.send(&big(1)).unwrap();
    for i in 0..SMALL {
        s.send(&[i as u8; 500]).unwrap();
    }
    s.send(&big(2)).unwrap();
    c.ack_up_to(0, SMALL / 2).unwrap();
    store
}

fn blob_files(fs: &SimFs) -> usize {
    fs.files()
        .iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains("/blobs/") && !p.contains("/blobs/tmp/") && !p.contains("/blobs/pending/")
        })
        .count()
}

/// Opens the image (whose open runs retention too) and closes it; returns
/// its first retained offset.
fn check_after(fs: &SimFs, what: &str) -> u64 {
    let first = {
        let store = Store::open(ROOT, sim::consumer_options(fs))
            .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
        let s = store.open_stream("s").unwrap();
        let first = s.stats().buckets[0].first_offset;
        assert!(first <= SMALL / 2 + 1, "{what}: retained from {first}");
        for r in s.iter_from(first) {
            let r = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
            let o = r.offset();
            let expected = match o {
                0 => big(1),
                o if o == SMALL + 1 => big(2),
                o => vec![(o - 1) as u8; 500],
            };
            assert_eq!(r.payload(), &expected[..], "{what}: offset {o}");
        }
        assert_eq!(s.stats().buckets[0].end_offset, SMALL + 2, "{what}");
        store.close().unwrap();
        first
    };
    // Blob 2 is always referred to; blob 1 exactly while offset 0 is kept.
    let expected = if first == 0 { 2 } else { 1 };
    assert_eq!(
        blob_files(fs),
        expected,
        "{what}: blobs after an open (first {first})"
    );
    first
}

#[test]
fn a_pass_removes_the_blob_only_its_deleted_segments_referred_to() {
    let fs = SimFs::new();
    let store = build(&fs);
    assert_eq!(blob_files(&fs), 2);
    let s = store.open_stream("s").unwrap();
    assert!(s.apply_retention().unwrap() > 0, "sealed segments go");
    assert!(s.stats().buckets[0].first_offset > 0);
    assert_eq!(blob_files(&fs), 1, "blob 1 goes with its segment");
    drop(s);
    drop(store);
    assert!(check_after(&fs, "after the pass") > 0);
}

#[test]
fn a_power_cut_at_every_operation_of_a_pass_leaves_no_orphan_blob() {
    let probe = SimFs::new();
    let store = build(&probe);
    let s = store.open_stream("s").unwrap();
    let before = probe.stats().ops;
    assert!(s.apply_retention().unwrap() > 0);
    let ops = probe.stats().ops - before;
    drop(s);
    drop(store);
    assert!(ops > 10, "a pass takes many operations: {ops}");
    let (mut kept, mut deleted) = (0, 0);
    for at in 1..=ops + 1 {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let store = build(&fs);
            let s = store.open_stream("s").unwrap();
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = s.apply_retention();
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(s);
            drop(store);
            // Which side of the deletion the cut fell on, as the image
            // shows it (the open then finishes the pass either way: the
            // consumer's acknowledgement is durable).
            let first_segment = image.files().iter().any(|p| {
                p.to_string_lossy()
                    .ends_with("/p0/00000000000000000000.seg")
            });
            if first_segment {
                kept += 1;
            } else {
                deleted += 1;
            }
            check_after(&image, &format!("cut at op {at} of {ops}, {mode:?}"));
        }
    }
    assert!(
        kept > 0 && deleted > 0,
        "cuts on both sides: {kept} before the deletion, {deleted} after"
    );
}
