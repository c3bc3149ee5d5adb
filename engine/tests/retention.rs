//! Goal: retention deletes a sealed segment only once every consumer has
//! acknowledged past it (interest), or when the stream's age or size limit
//! says so (then slow consumers count the loss as skipped); the disk space
//! really comes back; a stream without consumers keeps everything; a
//! consumer's or an iterator's cached segment never outlives its deletion.
//!
//! Method: small segments on a real directory; count segment files and the
//! blocks they occupy before and after.

pub mod common;

use common::temp_store;
use spool::{Durability, Error, Options, Store, StreamConfig};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const SEG: u64 = 64 * 1024;

fn opts() -> Options {
    Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(SEG)
        .allocation_chunk_bytes(SEG)
}

/// A new store in a temporary directory with stream `s` of `config`.
fn stream_with(config: StreamConfig) -> (tempfile::TempDir, Store, spool::Stream) {
    let (dir, store) = temp_store(opts());
    let s = store.create_stream("s", config).unwrap();
    (dir, store, s)
}

/// (segment files, 512-byte blocks they use) in a bucket directory.
fn usage(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut blocks = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".seg") || name.ends_with(".idx") {
            if name.ends_with(".seg") {
                n += 1;
            }
            blocks += e.metadata().unwrap().blocks();
        }
    }
    (n, blocks)
}

/// Sends enough 1000-byte messages to fill `segments` segments (whatever
/// retention deletes meanwhile); returns the end offset.
fn fill(s: &spool::Stream, segments: usize) -> u64 {
    let msg = [5u8; 1000];
    let per_segment = (SEG as usize - 1024) / 1032;
    for _ in 0..per_segment * (segments - 1) + 1 {
        s.send(&msg).unwrap();
    }
    s.stats().buckets[0].end_offset
}

#[test]
fn interest_based_deletes_only_what_every_consumer_passed() {
    let (dir, store) = temp_store(opts());
    let s = store.stream("s").unwrap();
    let fast = s.consumer("fast").unwrap();
    let slow = s.consumer("slow").unwrap();
    let end = fill(&s, 6);
    let bucket = dir.path().join("streams/s/p0");
    let (files_before, blocks_before) = usage(&bucket);
    assert_eq!(files_before, 6);
    fast.ack_up_to(0, end - 1).unwrap();
    let half = end / 2;
    slow.ack_up_to(0, half).unwrap();
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(
        first > 0,
        "segments below the slow consumer's floor are gone"
    );
    assert!(
        first <= half + 1,
        "nothing the slow consumer still needs is gone"
    );
    let (files_mid, blocks_mid) = usage(&bucket);
    assert!(files_mid < files_before);
    assert!(
        blocks_mid < blocks_before,
        "disk space came back: {blocks_mid} < {blocks_before}"
    );
    assert!(matches!(s.read(0), Err(Error::OffsetNotRetained { .. })));
    // The slow consumer still gets everything after its floor.
    let d = slow.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), half + 1);
    slow.ack_up_to(0, end - 1).unwrap();
    s.apply_retention().unwrap();
    let (files_after, _) = usage(&bucket);
    assert_eq!(files_after, 1, "only the active segment remains");
    assert_eq!(slow.stats().skipped, 0);
    let first = s.stats().buckets[0].first_offset;
    drop((s, fast, slow, d));
    drop(store);
    // The deletion is durable and reopening agrees.
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().buckets[0].first_offset, first);
    assert_eq!(usage(&bucket).0, 1);
}

#[test]
fn without_consumers_everything_is_kept() {
    let (_dir, store) = temp_store(opts());
    let s = store.stream("s").unwrap();
    fill(&s, 4);
    assert_eq!(s.apply_retention().unwrap(), 0);
    assert_eq!(s.stats().buckets[0].first_offset, 0);
}

#[test]
fn size_limit_overrides_interest_and_counts_skips() {
    let (_dir, _store, s) = stream_with(StreamConfig::default().max_bytes(3 * SEG));
    let c = s.consumer("lazy").unwrap();
    fill(&s, 6);
    // Retention already ran on each roll; running it again changes nothing.
    s.apply_retention().unwrap();
    let st = s.stats();
    assert!(st.buckets[0].bytes <= 3 * SEG, "{st:?}");
    let first = st.buckets[0].first_offset;
    assert!(first > 0);
    // The consumer that never read is moved past the deleted messages.
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), first);
    assert_eq!(c.stats().skipped, first);
}

#[test]
fn age_limit_deletes_old_segments() {
    let (_dir, _store, s) = stream_with(StreamConfig::default().max_age(Duration::from_millis(1)));
    s.apply_retention().unwrap();
    fill(&s, 3);
    std::thread::sleep(Duration::from_millis(20));
    s.apply_retention().unwrap();
    assert_eq!(
        s.stats().buckets[0].segments,
        1,
        "only the active segment is left"
    );
    assert!(s.stats().buckets[0].first_offset > 0);
}

// A consumer remembers the segment it read last (to skip the segment list):
// it must never read one that retention deleted. And a claim-check send that
// rolls a segment and triggers retention must complete (it used to wait for
// the blob collector's lock on its own thread).

#[test]
fn messages_deleted_by_retention_are_skipped_after_a_cached_read() {
    let (_dir, _store, s) = stream_with(StreamConfig::default().max_bytes(3 * SEG));
    let c = s.consumer("lazy").unwrap();
    s.send(b"first").unwrap();
    c.try_receive().unwrap().unwrap().ack().unwrap();
    fill(&s, 6);
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(first > 1, "retention deleted something: {first}");
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), first);
    assert_eq!(c.stats().skipped, first - 1);
}

#[test]
fn an_iterator_continues_at_the_first_retained_message_after_a_deletion() {
    // The iterator also remembers its segment; retention deleting it under
    // the iterator must not make it hand out deleted messages.
    let (_dir, _store, s) = stream_with(StreamConfig::default().max_bytes(3 * SEG));
    s.send(b"first").unwrap();
    s.send(b"second").unwrap();
    let mut it = s.iter_from(0);
    assert_eq!(it.next().unwrap().unwrap().payload(), b"first");
    fill(&s, 6);
    s.apply_retention().unwrap();
    let first = s.stats().buckets[0].first_offset;
    assert!(
        first > 2,
        "retention deleted the iterator's segment: {first}"
    );
    let next = it.next().unwrap().unwrap();
    assert_eq!(next.offset(), first);
}

#[test]
fn deleted_claim_checks_do_not_wedge_a_consumer() {
    let (_dir, _store, s) = stream_with(
        StreamConfig::default()
            .max_bytes(3 * SEG)
            .claim_check_threshold(600),
    );
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
    let (_dir, _store, s) = stream_with(
        StreamConfig::default()
            .max_bytes(2 * SEG)
            .claim_check_threshold(600),
    );
    // Claim-check sends only: 40-byte references, so many rolls happen in
    // claim-check sends themselves.
    for i in 0..6_000u32 {
        let mut p = vec![3u8; 700];
        p[..4].copy_from_slice(&i.to_le_bytes());
        s.send(&p).unwrap();
    }
    assert!(s.stats().buckets[0].first_offset > 0, "retention ran");
}

// Retention racing itself and readers: passes of one stream at once must
// not trip over each other's files, and a reader that comes to a sealed
// segment as retention deletes it learns that its offsets are gone.

/// Regression: two passes at once wrote the same temporary file of the
/// low-water mark and failed with spurious I/O errors.
#[test]
fn concurrent_retention_passes_all_succeed() {
    for round in 0..20 {
        let (_dir, _store, s) = stream_with(StreamConfig::default());
        let c = s.consumer("c").unwrap();
        let end = fill(&s, 4);
        c.ack_up_to(0, end - 1).unwrap();
        let barrier = std::sync::Barrier::new(4);
        let freed: Vec<u64> = std::thread::scope(|scope| {
            let passes: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        s.apply_retention()
                    })
                })
                .collect();
            passes
                .into_iter()
                .map(|p| match p.join().unwrap() {
                    Ok(n) => n,
                    Err(e) => panic!("round {round}: {e}"),
                })
                .collect()
        });
        assert!(freed.iter().sum::<u64>() > 0, "round {round}: {freed:?}");
        assert_eq!(s.stats().buckets[0].segments, 1, "round {round}");
    }
}

/// Regression: the first read of a sealed segment never mapped before,
/// while retention removed its file, failed with `Io NotFound` instead of
/// `OffsetNotRetained`.
#[test]
fn a_first_read_of_a_segment_being_deleted_is_not_retained() {
    use spool::io::sim::SimFs;
    use spool::io::Vfs;
    let fs = SimFs::new();
    let opts = common::sim::options(&fs, Durability::Never);
    let end = {
        let store = Store::open("/r", opts.clone()).unwrap();
        let s = store.stream("s").unwrap();
        s.consumer("c").unwrap();
        fill(&s, 3)
    };
    // Reopened: the sealed segments are not mapped yet.
    let store = Store::open("/r", opts).unwrap();
    let s = store.stream("s").unwrap();
    s.consumer("c").unwrap().ack_up_to(0, end - 1).unwrap();
    let first_segment = Path::new("/r/streams/s/p0/00000000000000000000.seg");
    assert!(fs.kind(first_segment).unwrap().is_some());
    // Slow syncs keep the deletion in progress for a while.
    fs.set_sync_delay(Duration::from_millis(300));
    std::thread::scope(|scope| {
        let pass = scope.spawn(|| s.apply_retention());
        while fs.kind(first_segment).unwrap().is_some() {
            std::thread::sleep(Duration::from_millis(1));
        }
        match s.read(0) {
            Err(Error::OffsetNotRetained { offset: 0, first }) => assert!(first > 0),
            other => panic!("{other:?}"),
        }
        pass.join().unwrap().unwrap();
    });
}

/// Messages that `max_bytes` deleted before a consumer acknowledged them
/// are counted as skipped when the pass deletes them, and checkpointed: an
/// `ack_up_to` journaled afterwards that covers them cannot hide them from
/// the count a reopen makes.
#[test]
fn skips_by_size_are_counted_at_the_pass_and_survive_an_ack_up_to_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let end;
    let skipped;
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store
            .create_stream("s", StreamConfig::default().max_bytes(3 * SEG))
            .unwrap();
        let c = s.consumer("lazy").unwrap();
        fill(&s, 6);
        s.apply_retention().unwrap();
        let first = s.stats().buckets[0].first_offset;
        assert!(first > 0, "retention deleted something");
        skipped = c.stats().skipped;
        assert_eq!(skipped, first, "counted when the pass deleted them");
        end = s.stats().buckets[0].end_offset;
        c.ack_up_to(0, end - 1).unwrap();
        assert_eq!(c.stats().skipped, skipped);
        drop((c, s));
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    let c = store.stream("s").unwrap().consumer("lazy").unwrap();
    assert_eq!(c.stats().skipped, skipped, "the same count after a reopen");
    assert_eq!(c.stats().buckets[0].ack_floor, end);
}
