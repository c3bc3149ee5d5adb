//! Goal: a segment file that goes missing while the store is closed is
//! damage (`Error::Corrupt` naming it), never an empty or shorter log whose
//! acknowledged offsets are handed out again.
//!
//! Method: stores written with the public API, closed; a segment file (the
//! only one, the newest, the oldest) is removed by hand; the next open must
//! refuse. Retention's own deletions, and a bucket written before the head
//! mark existed, must still open.

pub mod common;

use spool::{Durability, Error, Options, Store};
use std::path::{Path, PathBuf};

fn opts() -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(4096)
}

fn bucket(root: &Path) -> PathBuf {
    root.join("streams/s/p0")
}

fn segments(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(bucket(root))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// A closed store whose stream `s` holds `n` acknowledged messages.
fn store_with(n: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..n {
        s.send(format!("message {i}").repeat(30).as_bytes())
            .unwrap();
    }
    store.close().unwrap();
    dir
}

fn assert_missing(root: &Path, missing: &Path) {
    match Store::open(root, opts()) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(file, missing, "{reason}");
            assert!(reason.contains("segment missing"), "{reason}");
        }
        Err(e) => panic!("expected Corrupt naming {}, got {e}", missing.display()),
        Ok(store) => {
            let stats = store.stream("s").unwrap().stats();
            panic!(
                "a store with a missing segment opened: {:?}",
                stats.buckets[0]
            );
        }
    }
}

#[test]
fn the_only_segment_removed_is_corrupt_not_an_empty_log() {
    let dir = store_with(10);
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1);
    std::fs::remove_file(&segs[0]).unwrap();
    assert_missing(dir.path(), &segs[0]);
}

#[test]
fn the_newest_segment_removed_is_corrupt() {
    let dir = store_with(800);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let newest = segs.last().unwrap();
    std::fs::remove_file(newest).unwrap();
    assert_missing(dir.path(), newest);
}

#[test]
fn the_oldest_segment_removed_by_hand_is_corrupt() {
    let dir = store_with(800);
    let segs = segments(dir.path());
    std::fs::remove_file(&segs[0]).unwrap();
    std::fs::remove_file(segs[0].with_extension("idx")).unwrap();
    assert_missing(dir.path(), &segs[0]);
}

#[test]
fn segments_retention_deleted_are_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        for i in 0..800u32 {
            s.send(format!("message {i}").repeat(30).as_bytes())
                .unwrap();
        }
        c.ack_up_to(0, 799).unwrap();
        assert!(s.apply_retention().unwrap() > 0);
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store.stream("s").unwrap();
    assert!(s.stats().buckets[0].first_offset > 0);
    assert_eq!(s.stats().buckets[0].end_offset, 800);
}

#[test]
fn a_bucket_without_a_head_mark_opens_and_gets_one() {
    let dir = store_with(800);
    let head = bucket(dir.path()).join("head.meta");
    assert!(head.exists());
    // As written by a build before the mark existed.
    std::fs::remove_file(&head).unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(
        store.stream("s").unwrap().stats().buckets[0].end_offset,
        800
    );
    assert!(head.exists());
    drop(store);
    // From now on the newest segment is known.
    let newest = segments(dir.path()).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    assert_missing(dir.path(), &newest);
}
