//! Goal: a consumer that remembers the segment it read last (to skip the
//! segment list) never reads a segment retention has deleted: it skips to the
//! first retained message and counts the rest as skipped, and deleted
//! claim-check messages (whose blobs were collected) do not wedge it. Also: a
//! claim-check send that rolls a segment and triggers retention completes
//! (it used to wait for the blob collector's lock on its own thread).
//!
//! Method: a stream with `max_bytes` and small segments; the consumer reads
//! one message (caching segment 0), then enough is sent that retention
//! deletes it; the next receive must return the first retained offset.

use spool::{Durability, Options, Store, StreamConfig};

const SEG: u64 = 64 * 1024;

fn opts() -> Options {
    Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(SEG)
        .allocation_chunk_bytes(SEG)
}

#[test]
fn messages_deleted_by_retention_are_skipped_after_a_cached_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().max_bytes(3 * SEG))
        .unwrap();
    let c = s.consumer("lazy").unwrap();
    s.send(b"first").unwrap();
    c.try_receive().unwrap().unwrap().ack().unwrap();
    let per = (SEG as usize - 1024) / 1032;
    for _ in 0..per * 5 + 1 {
        s.send(&[5u8; 1000]).unwrap();
    }
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(first > 1, "retention deleted something: {first}");
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), first);
    assert_eq!(c.stats().skipped, first - 1);
}

#[test]
fn deleted_claim_checks_do_not_wedge_a_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store
        .create_stream(
            "s",
            StreamConfig::default()
                .max_bytes(3 * SEG)
                .claim_check_threshold(600),
        )
        .unwrap();
    let c = s.consumer("lazy").unwrap();
    s.send(&[7u8; 700]).unwrap();
    c.try_receive().unwrap().unwrap().ack().unwrap();
    for _ in 0..10 {
        s.send(&[8u8; 700]).unwrap();
    }
    while s.stats().buckets[0].first_offset < 20 {
        s.send(&[9u8; 500]).unwrap();
    }
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    let d = c.try_receive().unwrap().expect("a message");
    assert!(d.offset() >= first, "{} < {first}", d.offset());
}

#[test]
fn a_claim_check_send_that_rolls_and_triggers_retention_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store
        .create_stream(
            "s",
            StreamConfig::default()
                .max_bytes(2 * SEG)
                .claim_check_threshold(600),
        )
        .unwrap();
    // Claim-check sends only: 40-byte references, so many rolls happen in
    // claim-check sends themselves.
    for i in 0..6_000u32 {
        let mut p = vec![3u8; 700];
        p[..4].copy_from_slice(&i.to_le_bytes());
        s.send(&p).unwrap();
    }
    assert!(s.stats().buckets[0].first_offset > 0, "retention ran");
}
