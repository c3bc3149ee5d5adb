//! Goal: deleting a consumer frees what only it held on disk, makes its
//! handles fail with `ConsumerNotFound`, and is crash-safe: a power cut or
//! an I/O error at any operation of the deletion leaves a store that opens
//! with the consumer either whole (as before) or gone, no leftovers, and
//! the other consumers' acknowledgements intact.
//!
//! Method: stores on the simulated file system with 64 KiB segments;
//! `SimFs::crash_at` / `fail_at` at every operation of one
//! `delete_consumer` call.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, FaultKind, SimFs};
use spool::{Error, Store};

const ROOT: &str = "/d";
const N: u64 = 400;

/// A stream `s` of `N` messages (several segments), consumer `done` that
/// acknowledged them all and consumer `idle` that took none.
fn build(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, sim::consumer_options(fs)).unwrap();
    let s = store.stream("s").unwrap();
    let done = s.consumer("done").unwrap();
    s.consumer("idle").unwrap();
    for i in 0..N {
        s.send(&[i as u8; 500]).unwrap();
    }
    done.ack_up_to(0, N - 1).unwrap();
    s.apply_retention().unwrap();
    store
}

fn segment_files(fs: &SimFs) -> usize {
    fs.files()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .count()
}

fn consumer_dirs_clean(fs: &SimFs) -> bool {
    !fs.files()
        .iter()
        .any(|p| p.to_string_lossy().contains("/consumers/.tmp-"))
}

#[test]
fn deleting_the_consumer_that_held_retention_frees_the_segments() {
    let fs = SimFs::new();
    let store = build(&fs);
    let s = store.stream("s").unwrap();
    let idle = s.consumer("idle").unwrap();
    let held = segment_files(&fs);
    assert!(held > 3, "the idle consumer holds every segment: {held}");
    s.delete_consumer("idle").unwrap();
    assert_eq!(s.consumers(), ["done"]);
    assert_eq!(segment_files(&fs), 1, "only the active segment is left");
    assert!(s.stats().buckets[0].first_offset > 0);
    assert!(matches!(
        idle.try_receive(),
        Err(Error::ConsumerNotFound { .. })
    ));
    assert!(matches!(
        idle.ack_up_to(0, 1),
        Err(Error::ConsumerNotFound { .. })
    ));
    assert!(matches!(
        s.delete_consumer("idle"),
        Err(Error::ConsumerNotFound { .. })
    ));
    // A new consumer of that name starts afresh, at the first retained message.
    let again = s.consumer("idle").unwrap();
    let first = again.try_receive().unwrap().expect("a retained message");
    assert_eq!(first.offset(), s.stats().buckets[0].first_offset);
    drop((first, again, idle, s));
    store.close().unwrap();
    assert!(consumer_dirs_clean(&fs));
}

/// What a store that went through (part of) the deletion must look like
/// when it opens.
fn check_after(fs: &SimFs, what: &str) {
    let store = Store::open(ROOT, sim::consumer_options(fs))
        .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
    assert!(
        consumer_dirs_clean(fs),
        "{what}: a temporary directory is left"
    );
    let s = store.stream("s").unwrap();
    let names = s.consumers();
    assert!(
        names == ["done", "idle"] || names == ["done"],
        "{what}: consumers {names:?}"
    );
    let done = s.open_consumer("done").unwrap();
    assert!(
        done.try_receive().unwrap().is_none(),
        "{what}: an ack was lost"
    );
    if names.len() == 2 {
        // Whole: it still has everything retained, from the first offset.
        let idle = s.open_consumer("idle").unwrap();
        let d = idle.try_receive().unwrap().expect("idle had taken nothing");
        assert_eq!(d.offset(), s.stats().buckets[0].first_offset, "{what}");
    }
}

#[test]
fn a_power_cut_at_every_operation_of_a_deletion() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.stream("s").unwrap().delete_consumer("idle").unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    assert!(ops > 3, "a deletion takes a few operations: {ops}");
    for at in 1..=ops + 1 {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(at)] {
            let fs = SimFs::new();
            let store = build(&fs);
            fs.crash_at(fs.stats().ops + at, mode);
            let _ = store.stream("s").unwrap().delete_consumer("idle");
            let image = fs
                .crashed_image()
                .map(|img| SimFs::from_image(&img))
                .unwrap_or_else(|| fs.power_cut(mode));
            drop(store);
            check_after(&image, &format!("cut at op {at} of {ops}, {mode:?}"));
        }
    }
}

#[test]
fn an_io_error_at_every_operation_of_a_deletion() {
    let probe = SimFs::new();
    let store = build(&probe);
    let before = probe.stats().ops;
    store.stream("s").unwrap().delete_consumer("idle").unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    for at in 1..=ops {
        let fs = SimFs::new();
        let store = build(&fs);
        fs.fail_at(fs.stats().ops + at, FaultKind::Eio, false);
        let s = store.stream("s").unwrap();
        let r = s.delete_consumer("idle");
        let what = format!("EIO at op {at} of {ops}: {r:?}");
        match &r {
            // Gone from the list, in memory, whatever the disk says.
            Ok(()) => assert_eq!(s.consumers(), ["done"], "{what}"),
            Err(Error::Poisoned) => {}
            Err(_) => {
                // Failed: either nothing changed, or the store is poisoned.
                let listed = s.consumers();
                assert!(
                    listed == ["done", "idle"] || store.sync().is_err(),
                    "{what}: listed {listed:?}"
                );
            }
        }
        drop(s);
        drop(store);
        check_after(&fs.power_cut(CutMode::DropUnsynced), &what);
    }
}
