//! Goal: the inspector reports what the engine wrote, tells a live tail
//! from damage, and never panics on hostile bytes. Method: build stores
//! with the public API, then inspect them as they are, damaged, cut short.

use super::*;
use crate::consumer::CheckpointBody;
use crate::format::meta::{CHECKPOINT_MAGIC, CHECKPOINT_VERSION, STORE_VERSION};
use crate::format::segment::SEGMENT_HEADER_BYTES;
use crate::layout::{self, parse_bucket_dir, CHECKPOINT_FILE, STREAM_META_FILE as STREAM_META};
use crate::{Durability, Message, Options, Store};
use std::fs;
use std::path::PathBuf;

fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

fn bucket_dir(root: &Path, stream: &str, p: u8) -> PathBuf {
    root.join(STREAMS_DIR).join(stream).join(format!("p{p}"))
}

fn seg_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn empty_store_has_no_streams_and_no_problems() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), opts()).unwrap());
    let info = inspect_store(dir.path()).unwrap();
    assert_eq!(info.format_version, Some(STORE_VERSION));
    assert!(info.streams.is_empty());
    assert!(info.problems.is_empty(), "{:?}", info.problems);
}

#[test]
fn not_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(inspect_store(dir.path()).is_err());
    assert!(inspect_store(&dir.path().join("missing")).is_err());
}

#[test]
fn counts_offsets_and_timestamps_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("orders").unwrap();
        for i in 0..10u32 {
            s.send(format!("m{i}").as_bytes()).unwrap();
        }
        let p = store
            .create_stream("prio", StreamConfig::default().priorities(3))
            .unwrap();
        p.send_message(Message::new(b"hi").priority(2).header("k", "v"))
            .unwrap();
        store.close().unwrap();
    }
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(info.streams.len(), 2);
    assert_eq!(info.messages(), 11);
    let orders = &info.streams[0];
    assert_eq!(orders.name, "orders");
    let b = &orders.buckets[0];
    assert_eq!(b.messages, 10);
    assert_eq!(b.first_offset, Some(0));
    assert_eq!(b.last_offset, Some(9));
    assert!(b.first_timestamp_us.unwrap() <= b.last_timestamp_us.unwrap());
    assert_eq!(b.segments.len(), 1);
    assert!(!b.segments[0].sealed);
    assert_eq!(b.segments[0].end, ScanEnd::Clean);
    let prio = &info.streams[1];
    assert_eq!(prio.config.as_ref().map(|c| c.priorities), Some(3));
    let counts: Vec<u64> = prio.buckets.iter().map(|b| b.messages).collect();
    assert_eq!(counts, vec![0, 0, 1]);
    assert_eq!(prio.buckets[0].last_offset, None);
}

#[test]
fn sealed_segments_have_valid_indexes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
        let s = store.stream("s").unwrap();
        for _ in 0..500 {
            s.send(&[7u8; 400]).unwrap();
        }
    }
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let b = &info.streams[0].buckets[0];
    assert!(b.segments.len() > 2);
    assert_eq!(b.messages, 500);
    assert_eq!(b.last_offset, Some(499));
    let (last, sealed) = b.segments.split_last().unwrap();
    for s in sealed {
        assert!(s.sealed);
        assert_eq!(s.index, IndexStatus::Valid);
    }
    assert!(!last.sealed);
    assert_eq!(last.index, IndexStatus::Missing);
    // Consecutive bases, no gap.
    for w in b.segments.windows(2) {
        assert_eq!(
            w[0].base_offset().unwrap() + w[0].record_count,
            w[1].base_offset().unwrap()
        );
    }
}

#[test]
fn damage_in_a_sealed_segment_and_a_missing_index_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
        let s = store.stream("s").unwrap();
        for _ in 0..300 {
            s.send(&[7u8; 400]).unwrap();
        }
    }
    let bdir = bucket_dir(dir.path(), "s", 0);
    let segs = seg_paths(&bdir);
    let mut bytes = fs::read(&segs[0]).unwrap();
    bytes[SEGMENT_HEADER_BYTES + 40] ^= 1;
    fs::write(&segs[0], &bytes).unwrap();
    fs::remove_file(segs[1].with_extension("idx")).unwrap();
    let info = inspect_store(dir.path()).unwrap();
    assert!(info
        .problems
        .iter()
        .any(|p| p.file == segs[0] && p.position == Some(SEGMENT_HEADER_BYTES as u64)));
    assert!(info
        .problems
        .iter()
        .any(|p| p.file == segs[1].with_extension("idx")));
    let b = &info.streams[0].buckets[0];
    assert_eq!(b.segments[0].end, ScanEnd::Damaged);
    assert_eq!(b.segments[0].record_count, 0);
}

#[test]
fn live_tail_is_not_a_problem_but_damage_below_the_watermark_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store.stream("s").unwrap();
    for _ in 0..10 {
        s.send(b"first").unwrap();
    }
    store.sync().unwrap();
    for _ in 0..10 {
        s.send(b"second").unwrap();
    }
    store.sync().unwrap();
    // The watermark now covers (at least) the first ten records.
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(info.streams[0].buckets[0].messages, 20);
    let seg = &info.streams[0].buckets[0].segments[0];
    let watermark = seg.state.unwrap().synced_end;
    assert!(watermark > SEGMENT_HEADER_BYTES as u64);

    // A half-written record past everything: a tail, not a problem.
    let path = seg.path.clone();
    let mut bytes = fs::read(&path).unwrap();
    let end = seg.data_end as usize;
    bytes[end..end + 4].copy_from_slice(&64u32.to_le_bytes());
    bytes[end + 4] = 0xAB;
    let tail_path = dir.path().join("tail.seg");
    fs::write(&tail_path, &bytes).unwrap();
    let one = read_segment(&tail_path).unwrap();
    assert!(one.problems.is_empty(), "{:?}", one.problems);
    assert!(matches!(one.end, ScanEnd::Tail { .. }));
    assert_eq!(one.records.len(), 20);
    assert_eq!(one.records[3].offset, 3);
    assert_eq!(one.records[3].body_bytes, 5);

    // A flipped bit in the first record, below the watermark: damage.
    bytes[SEGMENT_HEADER_BYTES + 33] ^= 1;
    fs::write(&tail_path, &bytes).unwrap();
    let one = read_segment(&tail_path).unwrap();
    assert_eq!(one.end, ScanEnd::Damaged);
    assert_eq!(
        one.problems[0].position,
        Some(SEGMENT_HEADER_BYTES as u64),
        "{:?}",
        one.problems
    );
    drop(s);
    drop(store);
}

#[test]
fn truncated_and_hostile_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
        let s = store.stream("s").unwrap();
        for i in 0..400u32 {
            s.send(format!("message {i}").repeat(40).as_bytes())
                .unwrap();
        }
    }
    let bdir = bucket_dir(dir.path(), "s", 0);
    let segs = seg_paths(&bdir);
    assert!(segs.len() > 1);
    let original = fs::read(&segs[0]).unwrap();
    let cuts = [
        0usize, 1, 8, 60, 64, 513, 1023, 1024, 1025, 1100, 4096, 30_000,
    ];
    for &cut in &cuts {
        let cut = cut.min(original.len());
        fs::write(&segs[0], &original[..cut]).unwrap();
        let _ = read_segment(&segs[0]);
        let info = inspect_store(dir.path()).unwrap();
        assert!(!info.problems.is_empty(), "cut at {cut} went unnoticed");
    }
    fs::write(&segs[0], &original).unwrap();
    let meta = dir.path().join(STREAMS_DIR).join("s").join(STREAM_META);
    fs::write(&meta, vec![1u8; (META_FILE_BYTES_MAX + 1) as usize]).unwrap();
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.iter().any(|p| p.file == meta));
    // The buckets are still found from their directories.
    assert_eq!(info.streams[0].buckets.len(), 1);
    fs::write(&meta, b"SPOOLMTA garbage").unwrap();
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.iter().any(|p| p.file == meta));
}

#[test]
fn consumers_agree_with_the_engine_and_hostile_checkpoints_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let stats = {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store
            .create_stream("p", StreamConfig::default().priorities(2))
            .unwrap();
        for i in 0..8u8 {
            s.send_message(Message::new(&[i]).priority(i % 2)).unwrap();
        }
        let c = s.consumer("c").unwrap();
        let mut ds = Vec::new();
        while let Some(d) = c.try_receive().unwrap() {
            ds.push(d);
            if ds.len() == 5 {
                break;
            }
        }
        for d in ds.drain(..).step_by(2) {
            d.ack().unwrap();
        }
        c.stats()
    };
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let ci = &info.streams[0].consumers[0];
    assert_eq!(ci.name, "c");
    assert!(ci.journal_records > 0);
    for (b, s) in ci.buckets.iter().zip(&stats.buckets) {
        assert_eq!(b.ack_floor, s.ack_floor, "{ci:?}");
        assert_eq!(b.next_offset, s.next_offset, "{ci:?}");
        assert_eq!(b.end_offset, Some(s.end_offset));
        assert_eq!(b.lag, Some(s.end_offset - s.ack_floor));
        assert_eq!(b.unacked_deliveries, s.in_flight + s.waiting_redelivery);
    }
    // A checkpoint of the wrong number of levels, then garbage.
    let ckpt = ci.path.join(CHECKPOINT_FILE);
    let body = CheckpointBody {
        generation: 7,
        buckets: vec![Default::default()],
        ..Default::default()
    };
    let framed = meta::encode(
        CHECKPOINT_MAGIC,
        CHECKPOINT_VERSION,
        &postcard::to_allocvec(&body).unwrap(),
    );
    fs::write(&ckpt, framed).unwrap();
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.iter().any(|p| p.file == ckpt), "{info:?}");
    assert!(info.streams[0].consumers[0].buckets.is_empty());
    for cut in [0, 10, 24] {
        fs::write(&ckpt, &[0x5a; 40][..cut]).unwrap();
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.iter().any(|p| p.file == ckpt));
    }
}

#[test]
fn batch_acks_are_folded_as_the_engine_folds_them() {
    let dir = tempfile::tempdir().unwrap();
    let stats = {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store
            .create_stream("p", StreamConfig::default().priorities(2))
            .unwrap();
        for i in 0..12u8 {
            s.send_message(Message::new(&[i]).priority(i % 2)).unwrap();
        }
        let c = s.consumer("c").unwrap();
        let got = c.receive_batch(10, std::time::Duration::ZERO).unwrap();
        // Acknowledged: all but the 3rd and the 7th received, in one call;
        // then one more set of two.
        let (kept, done): (Vec<_>, Vec<_>) = got
            .into_iter()
            .enumerate()
            .partition(|(i, _)| *i == 2 || *i == 6);
        c.ack_batch(done.into_iter().map(|(_, d)| d)).unwrap();
        drop(kept);
        let more = c.receive_batch(2, std::time::Duration::ZERO).unwrap();
        c.ack_batch(more).unwrap();
        c.stats()
    };
    let info = inspect_store(dir.path()).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let ci = &info.streams[0].consumers[0];
    assert_eq!(ci.journal_version, Some(2));
    assert_eq!((ci.journal_ack_sets, ci.journal_set_acks), (2, 10));
    // The journal is of version 2 from the first batch receive on: a
    // delivered range per level (6 of p1, 4 of p0), a set, a range of the
    // two more, a set.
    assert_eq!(ci.journal_records, 5);
    for (b, s) in ci.buckets.iter().zip(&stats.buckets) {
        assert_eq!(b.ack_floor, s.ack_floor, "{ci:?}");
        assert_eq!(b.next_offset, s.next_offset, "{ci:?}");
        assert_eq!(b.unacked_deliveries, s.in_flight + s.waiting_redelivery);
    }
    assert_eq!(
        ci.buckets.iter().map(|b| b.unacked_deliveries).sum::<u64>(),
        2
    );
}

#[test]
fn bucket_directory_names() {
    assert_eq!(parse_bucket_dir("p0"), Some(0));
    assert_eq!(parse_bucket_dir("p15"), Some(15));
    assert_eq!(parse_bucket_dir("p16"), None);
    assert_eq!(parse_bucket_dir("p01"), None);
    assert_eq!(parse_bucket_dir("p"), None);
    assert_eq!(parse_bucket_dir("q1"), None);
}

/// Regression: the engine's open counted only the dead letters of a
/// consumer's journal, the inspector its redeliveries too, so a consumer's
/// `redelivered` went from 1 to 0 at a reopen (and the new checkpoint made
/// the loss permanent). Both now fold the journal with `replay::fold`:
/// send one message, receive it, nack it, receive it again, close, reopen.
#[test]
fn a_redelivery_is_counted_alike_before_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let redelivered = |store: &Store| {
        store
            .stream("s")
            .unwrap()
            .consumer("c")
            .unwrap()
            .stats()
            .redelivered
    };
    let inspected = || inspect_store(dir.path()).unwrap().streams[0].consumers[0].redelivered;
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        s.send(b"once").unwrap();
        let c = s.consumer("c").unwrap();
        c.try_receive().unwrap().unwrap().nack().unwrap();
        let again = c.try_receive().unwrap().unwrap();
        assert_eq!(again.attempt(), 2);
        drop(again);
        assert_eq!(redelivered(&store), 1);
        store.close().unwrap();
    }
    assert_eq!(inspected(), 1, "from the journal");
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(redelivered(&store), 1, "after the reopen");
    store.close().unwrap();
    assert_eq!(inspected(), 1, "from the checkpoint written at the reopen");
}

/// Regression: the inspector read blob names in either case and called an
/// upper-case one an orphan "the next open removes"; the engine's parser
/// is lower-case only, so the open left it. Such a file is not a blob: not
/// reported, not removed by the open nor planned for removal by repair.
#[test]
fn an_upper_case_blob_name_is_not_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), opts()).unwrap());
    let hex = hash_hex(&[0xab; 32]);
    let lower_shard = dir.path().join(BLOBS_DIR).join("ab");
    let upper_shard = dir.path().join(BLOBS_DIR).join("AB");
    fs::create_dir_all(&lower_shard).unwrap();
    fs::create_dir_all(&upper_shard).unwrap();
    let mixed = lower_shard.join(format!("ab{}", hex[2..].to_uppercase()));
    let upper = upper_shard.join(hex.to_uppercase());
    for f in [&mixed, &upper] {
        fs::write(f, b"not Spool's").unwrap();
    }
    let not_reported = |when: &str| {
        let info = inspect_store(dir.path()).unwrap();
        let problems: Vec<Problem> = info
            .problems
            .iter()
            .cloned()
            .chain(check_blobs(&info))
            .collect();
        assert!(problems.is_empty(), "{when}: {problems:?}");
        let plan = repair::plan(dir.path(), None).unwrap();
        assert!(plan.actions.is_empty(), "{when}: {:?}", plan.actions);
    };
    not_reported("before an open");
    let store = Store::open(dir.path(), opts()).unwrap();
    assert!(
        store.recovery_report().is_clean(),
        "{}",
        store.recovery_report()
    );
    drop(store);
    assert!(mixed.exists() && upper.exists(), "the open leaves them");
    not_reported("after an open");
}

/// `segment-tool tail -f` reads each segment from where it stopped: the
/// records appended since (a large one past the first page read too), from
/// the byte after the last one read, and nothing when nothing was appended.
#[test]
fn a_segment_is_followed_from_where_the_last_read_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..5u32 {
        s.send(format!("m{i}").as_bytes()).unwrap();
    }
    let seg = bucket_dir(dir.path(), "s", 0).join(layout::segment_file_name(0));
    let first = read_segment_from(&seg, None).unwrap();
    assert_eq!(first.records.len(), 5);
    assert_eq!(first.start, SEGMENT_DATA_START);
    let again = read_segment_from(&seg, Some(first.cursor)).unwrap();
    assert!(again.records.is_empty());
    assert_eq!(again.cursor, first.cursor);
    s.send_message(Message::new(&[9u8; 20_000]).header("k", "v"))
        .unwrap();
    s.send(b"after").unwrap();
    let next = read_segment_from(&seg, Some(first.cursor)).unwrap();
    assert_eq!(next.start, first.cursor.position);
    let offsets: Vec<u64> = next.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![5, 6]);
    let big = next.parts(&next.records[0]).unwrap();
    assert_eq!(big.body, &[9u8; 20_000][..]);
    assert_eq!(big.headers, vec![("k", &b"v"[..])]);
    assert_eq!(next.parts(&next.records[1]).unwrap().body, b"after");
    assert_eq!(next.cursor.next_offset, 7);
    let (whole, bytes) = read_segment_raw(&seg).unwrap();
    assert_eq!(whole.records[5], next.records[0]);
    assert_eq!(whole.records[5].parts(&bytes).unwrap().body.len(), 20_000);
    drop(s);
    store.close().unwrap();
}
