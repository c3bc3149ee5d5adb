//! Goal: claim checks: payloads above the threshold are stored once as
//! content-addressed blobs and read back transparently; identical payloads
//! share a blob; a damaged blob is `Error::Corrupt`; a blob goes when the
//! last segment referring to it is deleted; an orphan left by a crash between
//! the blob write and the append is removed at open; a power cut at any
//! operation of a blob send loses nothing acknowledged.
//!
//! Method: real directories for the file-level checks, the simulated file
//! system for the crash ones.

pub mod common;

use common::{scratch_store, sim, temp_store};
use spool::io::sim::{fault_then_cut, retry, CutMode, SimFs};
use spool::{Durability, Error, Message, Options, Store, StreamConfig};
use std::io::Read;
use std::path::Path;

fn blob_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root.join("blobs")) else {
        return out;
    };
    for d in dirs {
        let d = d.unwrap();
        if d.file_name() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn large_payloads_are_stored_once_and_read_transparently() {
    let (dir, store) = scratch_store();
    let s = store
        .create_stream("files", StreamConfig::default().claim_check_threshold(1024))
        .unwrap();
    let payload = big(1, 100_000);
    let a = s
        .send_message(Message::new(&payload).header("name", "a.bin"))
        .unwrap();
    let b = s.send(&payload).unwrap(); // identical: same blob
    let small = s.send(b"small stays inline").unwrap();
    assert_eq!(
        blob_files(dir.path()).len(),
        1,
        "identical payloads share one blob"
    );
    let ra = s.read(a).unwrap().unwrap();
    assert_eq!(ra.payload(), &payload[..]);
    assert_eq!(ra.header("name"), Some(&b"a.bin"[..]));
    let cc = ra.claim_check().expect("a claim check");
    assert_eq!(cc.len, payload.len() as u64);
    assert_eq!(cc.hash, *blake3_of(&payload));
    assert_eq!(s.read(b).unwrap().unwrap().claim_check(), Some(cc));
    assert!(s.read(small).unwrap().unwrap().claim_check().is_none());
    // Consumers get it the same way, and can stream it.
    let c = s.consumer("c").unwrap();
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.payload(), &payload[..]);
    let mut streamed = Vec::new();
    d.open_payload().read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed, payload);
    // send_reader: from any reader.
    let r = s
        .send_reader(&payload[..500], Message::default().header("via", "reader"))
        .unwrap();
    let rr = s.read(r).unwrap().unwrap();
    assert_eq!(rr.payload(), &payload[..500]);
    assert!(
        rr.claim_check().is_some(),
        "send_reader always claim-checks"
    );
}

fn blake3_of(b: &[u8]) -> Box<[u8; 32]> {
    // The engine's content address is BLAKE3; recompute it independently.
    Box::new(*blake3::hash(b).as_bytes())
}

#[test]
fn a_damaged_blob_is_corrupt_never_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::Never);
    let off;
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let s = store
            .create_stream("f", StreamConfig::default().claim_check_threshold(10))
            .unwrap();
        off = s.send(&big(2, 5000)).unwrap();
    }
    let blob = blob_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1234] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let store = Store::open(dir.path(), opts).unwrap();
    let s = store.stream("f").unwrap();
    match s.read(off) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, blob),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let c = s.consumer("c").unwrap();
    assert!(matches!(c.try_receive(), Err(Error::Corrupt { .. })));
}

/// Regression: a send whose payload was stored before trusted the blob file
/// that was there, even a damaged one, and returned `Ok` for a message that
/// could never be read. Every form of damage is tried: a flipped bit, a cut
/// file, an extended file, an empty file.
#[test]
fn a_send_replaces_a_damaged_copy_of_its_blob() {
    let damages: [fn(&mut Vec<u8>); 4] = [
        |b| b[1234] ^= 1,
        |b| b.truncate(100),
        |b| b.extend_from_slice(b"more"),
        |b| b.clear(),
    ];
    for (i, damage) in damages.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default().durability(Durability::Always);
        let payload = big(3, 5000);
        let first;
        {
            let store = Store::open(dir.path(), opts.clone()).unwrap();
            let s = store
                .create_stream("f", StreamConfig::default().claim_check_threshold(10))
                .unwrap();
            first = s.send(&payload).unwrap();
        }
        let blob = blob_files(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&blob).unwrap();
        damage(&mut bytes);
        std::fs::write(&blob, &bytes).unwrap();
        let store = Store::open(dir.path(), opts).unwrap();
        let s = store.stream("f").unwrap();
        let again = s.send(&payload).unwrap();
        for off in [again, first] {
            let r = s.read(off).unwrap().unwrap();
            assert_eq!(r.payload(), &payload[..], "damage {i}, offset {off}");
        }
        assert_eq!(std::fs::read(&blob).unwrap(), payload, "damage {i}");
        let c = s.consumer("c").unwrap();
        for _ in 0..2 {
            let d = c.try_receive().unwrap().unwrap();
            assert_eq!(d.payload(), &payload[..]);
            d.ack().unwrap();
        }
    }
}

#[test]
fn blob_goes_with_the_last_segment_that_refers_to_it() {
    let opts = Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(64 * 1024);
    let (dir, store) = temp_store(opts);
    let cfg = StreamConfig::default().claim_check_threshold(100);
    let s = store.create_stream("s", cfg.clone()).unwrap();
    let t = store.create_stream("t", cfg).unwrap();
    let cs = s.consumer("c").unwrap();
    let ct = t.consumer("c").unwrap();
    let shared = big(3, 10_000);
    s.send(&shared).unwrap();
    t.send(&shared).unwrap();
    let filler = [0u8; 90];
    for _ in 0..2000 {
        s.send(&filler).unwrap();
        t.send(&filler).unwrap();
    }
    assert_eq!(blob_files(dir.path()).len(), 1);
    let end = s.stats().buckets[0].end_offset;
    cs.ack_up_to(0, end - 1).unwrap();
    s.apply_retention().unwrap();
    assert_eq!(
        blob_files(dir.path()).len(),
        1,
        "still referenced by stream t"
    );
    ct.ack_up_to(0, t.stats().buckets[0].end_offset - 1)
        .unwrap();
    t.apply_retention().unwrap();
    assert!(
        blob_files(dir.path()).is_empty(),
        "the last reference went, so did the blob"
    );
}

#[test]
fn an_orphan_blob_is_removed_at_open() {
    // A crash after the blob was stored but before its message was appended:
    // cut the power right after the blob's directory sync.
    let fs = SimFs::new();
    {
        let store = Store::open("/o", sim::options(&fs, Durability::Always)).unwrap();
        let s = store
            .create_stream("s", StreamConfig::default().claim_check_threshold(10))
            .unwrap();
        s.send(b"first").unwrap(); // 5 bytes: inline
    }
    // Crash at every operation of a blob send; afterwards no blob may remain
    // without its message, and some cuts must have left an orphan to sweep.
    let mut orphans_swept = 0;
    for n in 1..400 {
        let fs2 = fs.power_cut(CutMode::DropUnsynced);
        let store = Store::open("/o", sim::options(&fs2, Durability::Always)).unwrap();
        let s = store.stream("s").unwrap();
        let start = fs2.stats().ops;
        fs2.crash_at(start + n, CutMode::DropUnsynced);
        let sent = s.send(&big(4, 3000)).is_ok();
        drop(s);
        drop(store);
        let Some(image) = fs2.crashed_image() else {
            assert!(sent);
            break;
        };
        let after = SimFs::from_image(&image);
        let store = Store::open("/o", sim::options(&after, Durability::Always)).unwrap();

        let s = store.stream("s").unwrap();
        let end = s.stats().buckets[0].end_offset;
        let blobs: Vec<_> = after
            .files()
            .into_iter()
            .filter(|f| f.starts_with("/o/blobs") && !f.starts_with("/o/blobs/tmp"))
            .collect();
        if end == 2 {
            assert_eq!(
                s.read(1).unwrap().unwrap().payload(),
                &big(4, 3000)[..],
                "cut {n}"
            );
            assert_eq!(blobs.len(), 1, "cut {n}");
        } else {
            assert_eq!(end, 1, "cut {n}");
            assert!(blobs.is_empty(), "cut {n}: orphan blob left: {blobs:?}");
            if store.recovery_report().removed_orphan_blobs > 0 {
                assert!(store.recovery_report().to_string().contains("orphan"));
                orphans_swept += 1;
            }
        }
    }
    assert!(
        orphans_swept > 0,
        "no cut fell between the blob write and the append"
    );
}

#[test]
fn power_cut_at_every_operation_of_blob_sends() {
    let workload = |fs: &SimFs, acked: &mut Vec<(u64, u8)>| -> spool::Result<()> {
        let store = Store::open("/p", sim::options(fs, Durability::Always))?;
        let s = store.create_stream("s", StreamConfig::default().claim_check_threshold(512))?;
        for i in 0..6u8 {
            let len = if i % 2 == 0 { 4000 } else { 100 };
            let o = s.send(&big(i, len))?;
            acked.push((o, i));
        }
        // A duplicate of an earlier payload: dedup path.
        let o = s.send(&big(0, 4000))?;
        acked.push((o, 0));
        Ok(())
    };
    let fs = SimFs::new();
    let mut acked = Vec::new();
    workload(&fs, &mut acked).unwrap();
    let total = fs.stats().ops;
    for n in 1..=total {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(n)] {
            let fs = SimFs::new();
            fs.crash_at(n, mode);
            let mut acked = Vec::new();
            let _ = workload(&fs, &mut acked);
            let after = SimFs::from_image(&fs.crashed_image().unwrap());
            let store = Store::open("/p", sim::options(&after, Durability::Always))
                .unwrap_or_else(|e| panic!("cut {n}: {e}"));
            if acked.is_empty() {
                continue;
            }
            let s = store.stream("s").unwrap();
            for (o, i) in &acked {
                let len = if *o == 6 || i % 2 == 0 { 4000 } else { 100 };
                let r = s
                    .read(*o)
                    .unwrap_or_else(|e| panic!("cut {n}: {e}"))
                    .expect("acknowledged");
                assert_eq!(r.payload(), &big(*i, len)[..], "cut {n} offset {o}");
            }
            // Whatever survived beyond the acknowledged reads intact.
            for r in s.iter_from(0) {
                r.unwrap_or_else(|e| panic!("cut {n}: {e}"));
            }
        }
    }
}

#[test]
fn blob_sends_that_return_after_an_earlier_io_error_hold() {
    // EIO once at operation N, the program carries on (retrying a failed
    // send once), the power is cut a few operations later: every send that
    // returned must read back, its blob included.
    // (offset, payload seed, payload length) of each send that returned.
    let workload = |fs: &SimFs, acked: &mut Vec<(u64, u8, usize)>| -> spool::Result<()> {
        let store = Store::open("/p", sim::options(fs, Durability::Always))?;
        let config = StreamConfig::default().claim_check_threshold(512);
        // A failed creation is tried again; the stream may exist anyway.
        let s = retry(true, || store.create_stream("s", config.clone()))
            .or_else(|_| store.stream("s"))?;
        // Blob, small, blob, ...; then the first payload again (dedup).
        let sends = (0..6u8)
            .map(|i| (i, if i % 2 == 0 { 4000 } else { 100 }))
            .chain([(0, 4000)]);
        for (i, len) in sends {
            if let Ok(o) = retry(true, || s.send(&big(i, len))) {
                acked.push((o, i, len));
            }
        }
        Ok(())
    };
    let fs = SimFs::new();
    workload(&fs, &mut Vec::new()).unwrap();
    for (n, m, mode) in fault_then_cut(fs.stats().ops, 30, 3) {
        let fs = SimFs::failing_then_cut(n, m, mode);
        let mut acked = Vec::new();
        let _ = workload(&fs, &mut acked);
        let Some(image) = fs.crashed_image() else {
            continue;
        };
        let what = format!("EIO once at op {n}, cut at op {m} {mode:?}");
        let after = SimFs::from_image(&image);
        let store = Store::open("/p", sim::options(&after, Durability::Always))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if acked.is_empty() {
            continue;
        }
        let s = store
            .stream("s")
            .unwrap_or_else(|e| panic!("{what}: stream: {e}"));
        for (o, i, len) in &acked {
            let r = s
                .read(*o)
                .unwrap_or_else(|e| panic!("{what}: offset {o}: {e}"))
                .unwrap_or_else(|| panic!("{what}: acknowledged offset {o} missing"));
            assert_eq!(r.payload(), &big(*i, *len)[..], "{what}: offset {o}");
        }
    }
}

#[test]
fn a_blob_directory_left_by_a_failed_send_is_made_durable_before_it_is_used() {
    // A blob send fails at operation N (EIO once); the program drops the
    // store and opens it again on the same file system, as a restarted
    // program does: the page cache still holds the directories the failed
    // send created, synced or not. A claim check whose blob goes into the
    // same directory is acknowledged, then the power is cut: it must be
    // there.
    let first = big(1, 3000);
    let shard = |p: &[u8]| blake3_of(p)[0];
    let second = (1u32..100_000)
        .map(|i| {
            let mut p = big(2, 3000);
            p[..4].copy_from_slice(&i.to_le_bytes());
            p
        })
        .find(|p| shard(p) == shard(&first))
        .expect("a payload in the same blob directory");
    let open = |fs: &SimFs| Store::open("/b", sim::options(fs, Durability::Always)).unwrap();
    let config = StreamConfig::default().claim_check_threshold(10);
    let probe = SimFs::new();
    let store = open(&probe);
    let s = store.create_stream("s", config.clone()).unwrap();
    let start = probe.stats().ops;
    s.send(&first).unwrap();
    let total = probe.stats().ops - start;
    for n in 1..=total {
        let fs = SimFs::new();
        let store = open(&fs);
        let s = store.create_stream("s", config.clone()).unwrap();
        fs.fail_at(fs.stats().ops + n, spool::io::sim::FaultKind::Eio, false);
        let _ = s.send(&first);
        drop(s);
        drop(store);
        let store = open(&fs);
        let offset = store.stream("s").unwrap().send(&second).unwrap();
        let cut = fs.power_cut(CutMode::DropUnsynced);
        drop(store);
        let store = open(&cut);
        let r = store.stream("s").unwrap().read(offset);
        match r {
            Ok(Some(r)) => assert_eq!(r.payload(), &second[..], "EIO at op {n}"),
            other => panic!("EIO at op {n}: acknowledged claim check lost: {other:?}"),
        }
    }
}
