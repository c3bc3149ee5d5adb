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

use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Options, Store, StreamConfig};
use std::sync::Arc;

fn options(fs: &SimFs) -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(4096)
        .consumer_journal_bytes(4096)
        .vfs(Arc::new(fs.clone()))
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

fn build() -> (SimFs, u64) {
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
fn open_and_read(fs: &SimFs, blob_at: u64, what: &str) {
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

#[test]
fn every_file_truncated_and_extended() {
    let (base, blob_at) = build();
    let mut cases = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for file in base.files() {
        let bytes = base.read_file(&file).unwrap();
        let name = file.to_string_lossy().to_string();
        let last_nonzero = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map(|i| i + 1)
            .unwrap_or(0);
        let sealed = name.ends_with("00000000000000000000.seg");
        for cut in 0..bytes.len() {
            let take = if sealed && cut >= 1024 {
                cut % 7 == 0
            } else {
                cut <= last_nonzero + 8 || cut % 509 == 0
            };
            if !take {
                continue;
            }
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&file, &bytes[..cut]).unwrap();
            open_and_read(&fs, blob_at, &format!("{name} cut at {cut}"));
            cases += 1;
        }
        for _ in 0..16 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = 1 + (rng % 1024) as usize;
            let mut longer = bytes.clone();
            longer.extend((0..n).map(|i| (rng >> (i % 56)) as u8));
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&file, &longer).unwrap();
            open_and_read(&fs, blob_at, &format!("{name} extended by {n}"));
            cases += 1;
        }
    }
    assert!(cases > 5_000, "too few cases: {cases}");
    eprintln!("truncations and extensions checked: {cases}");
}
