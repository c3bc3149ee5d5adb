//! Goal: a store of many streams (more than `Store::open` opens one after
//! another; above that it opens them on several threads) recovers every
//! stream as a store of few does: every acknowledged message back, every
//! torn tail found and reported once, in stream order, and a damaged stream
//! failing the open with its own error.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Store};

/// More streams than the store opens one by one.
const STREAMS: usize = 80;

fn name(i: usize) -> String {
    format!("s{i:03}")
}

/// Fills `STREAMS` streams (each with a consumer that acknowledged some),
/// syncs, then sends one more message to every other stream without a sync
/// and cuts the power keeping random unsynced pages (torn tails).
fn crashed_store() -> SimFs {
    let fs = SimFs::new();
    let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
    for i in 0..STREAMS {
        let s = store.stream(&name(i)).unwrap();
        let c = s.consumer("c").unwrap();
        for k in 0..5u32 {
            s.send(format!("{i}/{k}").as_bytes()).unwrap();
        }
        for _ in 0..2 {
            c.try_receive().unwrap().unwrap().ack().unwrap();
        }
    }
    store.sync().unwrap();
    for i in (0..STREAMS).step_by(2) {
        store.stream(&name(i)).unwrap().send(&[0xEE; 3000]).unwrap();
    }
    let cut = fs.power_cut(CutMode::RandomPages(11));
    drop(store);
    cut
}

#[test]
fn many_streams_recover_like_few() {
    let fs = crashed_store();
    let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
    assert_eq!(store.streams().len(), STREAMS);
    for i in 0..STREAMS {
        let s = store.stream(&name(i)).unwrap();
        for k in 0..5u32 {
            let r = s.read(k as u64).unwrap().unwrap();
            assert_eq!(r.payload(), format!("{i}/{k}").as_bytes());
        }
        let d = s.consumer("c").unwrap().try_receive().unwrap().unwrap();
        assert_eq!(
            d.offset(),
            2,
            "stream {i}: acknowledged offsets delivered again"
        );
    }
    let report = store.recovery_report();
    let torn: Vec<&str> = report
        .torn_tails
        .iter()
        .map(|t| t.stream.as_str())
        .collect();
    let mut sorted = torn.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(torn, sorted, "torn tails reported out of order or twice");
    assert!(
        torn.iter()
            .all(|t| t[1..].parse::<usize>().unwrap() % 2 == 0),
        "a torn tail in a stream nothing unsynced was sent to: {torn:?}"
    );
    drop(store);
    // A second open finds nothing more to do.
    let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
    assert!(store.recovery_report().torn_tails.is_empty());
}

#[test]
fn a_damaged_stream_among_many_fails_the_open_with_its_error() {
    let fs = crashed_store();
    drop(Store::open("/db", sim::options(&fs, Durability::Never)).unwrap());
    let meta = std::path::Path::new("/db/streams")
        .join(name(57))
        .join("stream.meta");
    let mut bytes = fs.read_file(&meta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs.write_file(&meta, &bytes).unwrap();
    match Store::open("/db", sim::options(&fs, Durability::Never)) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, meta),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store with a damaged stream.meta opened"),
    }
}
