//! A small store with a file of every kind (a sealed and an active segment
//! with headers, an index, stream and store metadata, a consumer's checkpoint
//! and journal, a claim-check blob), built once on the simulated file system
//! to be damaged file by file. Whatever the damage, opening and reading it
//! must never panic, never return a record that differs from what was sent,
//! and a consumer must never deliver a wrong payload.

use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Options, Store, StreamConfig};
use std::path::PathBuf;

fn options(fs: &SimFs) -> Options {
    super::sim::options(fs, Durability::Always)
        .allocation_chunk_bytes(4096)
        .consumer_journal_bytes(4096)
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(8 + (i as usize * 13) % 200, i as u8);
    p
}

fn blob() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 241) as u8).collect()
}

const BLOB_OFFSET: u64 = 10_000;

/// Builds the store; returns its durable image and the offset of the
/// claim-check message.
pub fn build() -> (SimFs, u64) {
    let fs = SimFs::new();
    let store = Store::open("/k", options(&fs)).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(1000))
        .unwrap();
    let mut n = 0u64;
    while s.stats().buckets[0].segments < 2 {
        s.send_message(spool::Message::new(&payload(n)).header("k", "v"))
            .unwrap();
        n += 1;
    }
    for _ in 0..5 {
        s.send(&payload(n)).unwrap();
        n += 1;
    }
    let blob_at = s.send(&blob()).unwrap();
    let c = s.consumer("c").unwrap();
    for _ in 0..4 {
        c.try_receive().unwrap().unwrap().ack().unwrap();
    }
    let _unacked = c.try_receive().unwrap().unwrap();
    drop(_unacked);
    drop(c);
    drop(s);
    store.close().unwrap();
    (fs.power_cut(CutMode::DropUnsynced), blob_at)
}

fn expected(offset: u64, blob_at: u64) -> Vec<u8> {
    if offset == blob_at {
        blob()
    } else {
        payload(offset)
    }
}

/// Opens and reads everything; panics only on a wrong record.
pub fn open_and_read(fs: &SimFs, blob_at: u64, what: &str) {
    let Ok(store) = Store::open("/k", options(fs)) else {
        return;
    };
    let Ok(s) = store.stream("s") else {
        return;
    };
    let first = s.stats().buckets[0].first_offset;
    for (off, r) in (first..).zip(s.iter_from(first)) {
        let Ok(r) = r else {
            break;
        };
        assert_eq!(r.offset(), off, "{what}");
        assert_eq!(
            r.payload(),
            expected(off, blob_at),
            "{what}: wrong payload at {off}"
        );
    }
    if let Ok(c) = s.consumer("c") {
        for _ in 0..BLOB_OFFSET {
            match c.try_receive() {
                Ok(Some(d)) => {
                    assert_eq!(
                        d.payload(),
                        expected(d.offset(), blob_at),
                        "{what}: wrong delivery"
                    );
                    let _ = d.ack();
                }
                _ => break,
            }
        }
    }
}

/// A file of the store, to damage.
pub struct StoreFile {
    pub path: PathBuf,
    /// The path as text.
    pub name: String,
    pub bytes: Vec<u8>,
    /// Past the last non-zero byte: what follows is zero padding.
    pub last_nonzero: usize,
    /// The sealed segment (the first one), whose long record area the tests
    /// sample.
    pub sealed: bool,
}

/// Every file of the store image `fs`.
pub fn files(fs: &SimFs) -> Vec<StoreFile> {
    fs.files()
        .into_iter()
        .map(|path| {
            let bytes = fs.read_file(&path).unwrap();
            let name = path.to_string_lossy().to_string();
            let last_nonzero = bytes
                .iter()
                .rposition(|&b| b != 0)
                .map(|i| i + 1)
                .unwrap_or(0);
            let sealed = name.ends_with("00000000000000000000.seg");
            StoreFile {
                path,
                name,
                bytes,
                last_nonzero,
                sealed,
            }
        })
        .collect()
}
