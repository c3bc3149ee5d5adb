//! Goal: format stability. A store written by format version 1 (checked in
//! under `tests/golden/v1`) opens and reads the same with this build:
//! messages, headers, priorities, sealed and active segments, a consumer's
//! state, a dead letter and a claim-check blob. And a store whose consumer
//! batch-acked (`tests/golden/journal-v2`: a checkpoint and a journal of
//! version 2, the journal holding acknowledged sets) resumes the same state.
//!
//! Method: copy the golden store to a temporary directory (opening recovers
//! and writes), open it, and compare everything with what the generator
//! wrote. `SPOOL_WRITE_GOLDEN=1 cargo test --test golden` regenerates it (only
//! when a new format version is introduced: then keep the old directory and
//! add one for the new version).

use spool::{
    dead_letter_headers, ConsumerConfig, Delivery, Durability, Message, Options, Store,
    StreamConfig,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn options() -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(4096)
        .consumer_journal_bytes(4096)
}

fn payload(i: u64) -> Vec<u8> {
    format!("golden message {i} ")
        .repeat(1 + (i as usize % 7))
        .into_bytes()
}

fn big() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 253) as u8).collect()
}

const MESSAGES: u64 = 1500;

fn write_golden(dir: &Path) {
    let store = Store::open(dir, options()).unwrap();
    let s = store.stream("log").unwrap();
    for i in 0..MESSAGES {
        s.send_message(Message::new(&payload(i)).header("i", &i.to_string()))
            .unwrap();
    }
    let p = store
        .create_stream(
            "prio",
            StreamConfig::default()
                .priorities(3)
                .claim_check_threshold(100_000),
        )
        .unwrap();
    for level in 0..3u8 {
        p.send_message(Message::new(&[level; 10]).priority(level))
            .unwrap();
    }
    p.send(&big()).unwrap();
    let c = s
        .consumer_with(
            "reader",
            ConsumerConfig::default()
                .max_deliveries(2)
                .dead_letter("dead"),
        )
        .unwrap();
    let first: Vec<_> = (0..10).map(|_| c.try_receive().unwrap().unwrap()).collect();
    for d in first {
        if d.offset() == 3 {
            d.nack().unwrap();
        } else {
            d.ack().unwrap();
        }
    }
    let again = c.try_receive().unwrap().unwrap();
    assert_eq!((again.offset(), again.attempt()), (3, 2));
    again.nack().unwrap();
    // 3 has had its two deliveries: it is dead-lettered, and 10 is delivered
    // (and left unacknowledged).
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), 10);
    drop(d);
    store.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn version_1_store_reads_the_same() {
    let golden = golden_dir();
    if std::env::var_os("SPOOL_WRITE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        write_golden(&golden);
        let _ = std::fs::remove_file(golden.join("LOCK"));
    }
    assert!(
        golden.join("store.meta").exists(),
        "golden store missing: {}",
        golden.display()
    );
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden, dir.path());
    let store = Store::open(dir.path(), options()).unwrap();
    assert!(
        store.recovery_report().torn_tails.is_empty(),
        "{}",
        store.recovery_report()
    );
    assert_eq!(store.streams(), ["dead", "log", "prio"]);
    let s = store.stream("log").unwrap();
    assert!(
        s.stats().buckets[0].segments > 1,
        "the golden store has sealed segments"
    );
    for (i, r) in (0..).zip(s.iter_from(0)) {
        let r = r.unwrap();
        assert_eq!(r.offset(), i);
        assert_eq!(r.payload(), payload(i));
        assert_eq!(r.header("i"), Some(i.to_string().as_bytes()));
    }
    assert_eq!(s.stats().buckets[0].end_offset, MESSAGES);
    let p = store.stream("prio").unwrap();
    assert_eq!(p.config().priorities, 3);
    for level in 0..3u8 {
        assert_eq!(
            p.read_priority(level, 0).unwrap().unwrap().payload(),
            [level; 10]
        );
    }
    let blob = p.read(1).unwrap().unwrap();
    assert!(blob.claim_check().is_some());
    assert_eq!(blob.payload(), &big()[..]);
    let dead = store.stream("dead").unwrap().read(0).unwrap().unwrap();
    assert_eq!(dead.payload(), payload(3));
    assert_eq!(dead.header(dead_letter_headers::OFFSET), Some(&b"3"[..]));
    let c = s.consumer("reader").unwrap();
    let st = c.stats();
    assert_eq!(st.buckets[0].ack_floor, 10);
    assert_eq!(st.dead_lettered, 1);
    // Offset 10 was delivered and not acknowledged: it comes back, second attempt.
    let d = c.receive(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((d.offset(), d.attempt()), (10, 2));
}

fn journal_v2_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/journal-v2")
}

/// Stream `jobs` of two levels, 20 messages each (message `i` at level
/// `i % 2`); consumer `workers` received 30 (level 1's 20 first, then
/// level 0's 0..10), acknowledged all but offsets 1, 5, 9, 13, 17 of them
/// with one batch ack, then received level 0's 10..16 and acknowledged them
/// with another; the 8 held back were still leased at the close.
fn write_journal_v2(dir: &Path) {
    let store = Store::open(dir, options()).unwrap();
    let s = store
        .create_stream("jobs", StreamConfig::default().priorities(2))
        .unwrap();
    for i in 0..40u64 {
        s.send_message(Message::new(&payload(i)).priority((i % 2) as u8))
            .unwrap();
    }
    let c = s.consumer("workers").unwrap();
    let got = c.receive_batch(30, Duration::ZERO).unwrap();
    let (done, held): (Vec<Delivery>, Vec<Delivery>) =
        got.into_iter().partition(|d| d.offset() % 4 != 1);
    c.ack_batch(done).unwrap();
    c.ack_batch(c.receive_batch(6, Duration::ZERO).unwrap())
        .unwrap();
    drop(held);
    store.close().unwrap();
}

#[test]
fn journal_version_2_consumer_resumes_the_same() {
    let golden = journal_v2_dir();
    if std::env::var_os("SPOOL_WRITE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        write_journal_v2(&golden);
        let _ = std::fs::remove_file(golden.join("LOCK"));
    }
    let cdir = golden.join("streams/jobs/consumers/workers");
    let ckpt = std::fs::read(cdir.join("checkpoint")).unwrap();
    assert_eq!(ckpt[8..12], 2u32.to_le_bytes(), "a version 2 checkpoint");
    let journals: Vec<Vec<u8>> = std::fs::read_dir(&cdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal.")
        })
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(
        journals
            .iter()
            .any(|j| j[8..12] == 2u32.to_le_bytes() && j[64 + 4] == 5),
        "a version 2 journal starting with an acknowledged set"
    );
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden, dir.path());
    let store = Store::open(dir.path(), options()).unwrap();
    let s = store.stream("jobs").unwrap();
    let c = s.consumer("workers").unwrap();
    let floors: Vec<u64> = c.stats().buckets.iter().map(|b| b.ack_floor).collect();
    assert_eq!(floors, [1, 1]);
    let mut left = Vec::new();
    while let Some(d) = c.try_receive().unwrap() {
        let i = d.offset() * 2 + u64::from(d.priority());
        assert_eq!(d.payload(), payload(i));
        left.push((d.priority(), d.offset(), d.attempt()));
        d.ack().unwrap();
    }
    let mut want: Vec<(u8, u64, u32)> = [1, 5, 9, 13, 17].map(|o| (1, o, 2)).to_vec();
    want.extend([1, 5, 9].map(|o| (0, o, 2)));
    want.extend((16..20).map(|o| (0, o, 1)));
    assert_eq!(left, want);
}
