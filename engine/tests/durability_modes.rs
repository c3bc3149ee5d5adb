//! Goal: each durability setting keeps its promise: `Always` is durable when
//! `send` returns, `Interval` becomes durable by itself without any call,
//! `Never` only on `sync` (and, by the background writeback, after every
//! `writeback_bytes` written), and closing syncs.
//!
//! Method: sends on the simulated file system, then a power cut that keeps
//! only synced data, then a reopen that counts what survived.

use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Options, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn opts(fs: &SimFs, d: Durability) -> Options {
    Options::default().durability(d).vfs(Arc::new(fs.clone()))
}

fn survivors(fs: &SimFs) -> u64 {
    let cut = fs.power_cut(CutMode::DropUnsynced);
    let store = Store::open("/s", opts(&cut, Durability::Never)).unwrap();
    store.stream("s").unwrap().stats().buckets[0].end_offset
}

#[test]
fn always_is_durable_on_return() {
    let fs = SimFs::new();
    let store = Store::open("/s", opts(&fs, Durability::Always)).unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..10u8 {
        s.send(&[i]).unwrap();
    }
    assert_eq!(survivors(&fs), 10);
}

#[test]
fn never_is_durable_only_after_sync() {
    let fs = SimFs::new();
    let store = Store::open("/s", opts(&fs, Durability::Never)).unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..10u8 {
        s.send(&[i]).unwrap();
    }
    assert_eq!(survivors(&fs), 0);
    store.sync().unwrap();
    assert_eq!(survivors(&fs), 10);
    s.send(b"late").unwrap();
    assert_eq!(survivors(&fs), 10);
    drop(s);
    store.close().unwrap();
    assert_eq!(survivors(&fs), 11, "close syncs");
}

#[test]
fn never_writes_back_in_the_background_every_writeback_bytes() {
    let fs = SimFs::new();
    let o = opts(&fs, Durability::Never).writeback_bytes(64 << 10);
    let store = Store::open("/s", o).unwrap();
    let s = store.stream("s").unwrap();
    // Each record takes 1,056 bytes: 100 of them cross 64 KiB once.
    let payload = [7u8; 1024];
    for _ in 0..100 {
        s.send(&payload).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().buckets[0].durable_offset < 62 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let durable = s.stats().buckets[0].durable_offset;
    assert!(
        (62..=100).contains(&durable),
        "the writeback covers at least the first 64 KiB: {durable}"
    );
    assert!(survivors(&fs) >= 62);
}

#[test]
fn never_without_writeback_stays_unsynced() {
    let fs = SimFs::new();
    let o = opts(&fs, Durability::Never).writeback_bytes(0);
    let store = Store::open("/s", o).unwrap();
    let s = store.stream("s").unwrap();
    for _ in 0..100 {
        s.send(&[7u8; 1024]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.stats().buckets[0].durable_offset, 0);
    assert_eq!(survivors(&fs), 0);
}

#[test]
fn interval_syncs_in_the_background() {
    let fs = SimFs::new();
    let store = Store::open(
        "/s",
        opts(&fs, Durability::Interval(Duration::from_millis(5))),
    )
    .unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..10u8 {
        s.send(&[i]).unwrap();
    }
    // Wait (without asserting on time) until the background sync covers
    // everything; give up after a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().buckets[0].durable_offset < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.stats().buckets[0].durable_offset, 10);
    assert_eq!(survivors(&fs), 10);
}

#[test]
fn dropping_every_handle_syncs_and_unlocks() {
    let fs = SimFs::new();
    let store = Store::open("/s", opts(&fs, Durability::Never)).unwrap();
    let s = store.stream("s").unwrap();
    s.send(b"a").unwrap();
    drop(store);
    // The stream handle still holds the store open (and locked).
    assert!(matches!(
        Store::open("/s", opts(&fs, Durability::Never)),
        Err(spool::Error::Locked { .. })
    ));
    s.send(b"b").unwrap();
    drop(s);
    assert_eq!(survivors(&fs), 2);
    let again = Store::open("/s", opts(&fs, Durability::Never)).unwrap();
    assert!(again.recovery_report().is_clean());
}
