//! Deduplication by message id: a send whose id was sent to the stream
//! within its window stores nothing and returns the first one's offset,
//! also after a reopen, with the window rebuilt from the active segment's
//! records and the sealed segments' index id sections (their records are
//! never read: damaging them does not change the outcome). The window is
//! rebuilt by the first send with an id after an open.

pub mod common;

use common::sim;
use spool::io::sim::SimFs;
use spool::{Durability, Message, Options, Store, StreamConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/store";

fn open(fs: &SimFs) -> Store {
    Store::open(ROOT, sim::options(fs, Durability::Always)).unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("message {i} ").into_bytes();
    p.resize(600, b'.');
    p
}

fn id(i: u64) -> String {
    format!("id-{i}")
}

/// Messages held by the stream, all levels.
fn held(s: &spool::Stream) -> u64 {
    s.stats().messages()
}

#[test]
fn a_duplicate_stores_nothing_and_returns_the_first_offset() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 0);
    assert_eq!(s.send(b"plain").unwrap(), 1);
    assert_eq!(s.send_message(Message::new(b"b").id("x")).unwrap(), 0);
    assert_eq!(s.send_message(Message::new(b"c").id("y")).unwrap(), 2);
    assert_eq!(held(&s), 3);
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"a");
    assert_eq!(s.stats().dedup_ids, 2);
    // Messages without ids are never deduplicated.
    assert_eq!(s.send(b"plain").unwrap(), 3);
}

#[test]
fn a_duplicate_at_another_priority_returns_the_original_offset_at_its_priority() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .unwrap();
    s.send_message(Message::new(b"filler").priority(1)).unwrap();
    assert_eq!(
        s.send_message(Message::new(b"a").id("x").priority(1))
            .unwrap(),
        1
    );
    // Sent again at priority 0: the original's offset, at priority 1.
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 1);
    assert_eq!(s.stats().buckets[0].end_offset, 0);
    assert_eq!(
        s.read_priority(1, 1).unwrap().unwrap().message_id(),
        Some(&b"x"[..])
    );
}

#[test]
fn duplicates_inside_one_batch_are_stored_once() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .unwrap();
    s.send_message(Message::new(b"before").id("old")).unwrap();
    let offsets = s
        .send_batch([
            Message::new(b"1").id("a"),
            Message::new(b"2"),
            Message::new(b"3").id("a"),
            Message::new(b"4").id("old"),
            Message::new(b"5").id("b").priority(1),
            Message::new(b"6").id("b"),
            Message::new(b"7").id("c"),
        ])
        .unwrap();
    assert_eq!(offsets, [1, 2, 1, 0, 0, 0, 3]);
    assert_eq!(s.stats().buckets[0].end_offset, 4);
    assert_eq!(s.stats().buckets[1].end_offset, 1);
    // Only duplicates: nothing stored, every offset known.
    let again = s
        .send_batch([Message::new(b"x").id("c"), Message::new(b"y").id("a")])
        .unwrap();
    assert_eq!(again, [3, 1]);
    assert_eq!(held(&s), 5);
}

#[test]
fn concurrent_sends_of_one_id_store_it_once() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    for round in 0..20u64 {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.send_message(Message::new(format!("{t}").as_bytes()).id(&id(round)))
                        .unwrap()
                })
            })
            .collect();
        let got: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(got.iter().all(|&o| o == got[0]), "{got:?}");
        assert_eq!(held(&s), round + 1);
    }
}

#[test]
fn a_zero_window_turns_deduplication_off() {
    let fs = SimFs::new();
    let store = open(&fs);
    let s = store
        .create_stream("s", StreamConfig::default().dedup_window(Duration::ZERO))
        .unwrap();
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 0);
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 1);
    assert_eq!(s.stats().dedup_ids, 0);
}

#[test]
fn an_id_is_stored_again_once_its_window_has_passed() {
    let fs = SimFs::new();
    let store = open(&fs);
    let window = Duration::from_millis(20);
    let s = store
        .create_stream("s", StreamConfig::default().dedup_window(window))
        .unwrap();
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 0);
    std::thread::sleep(window * 3);
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 1);
    // The old entry is forgotten: memory is bounded by the window.
    assert_eq!(s.stats().dedup_ids, 1);
    drop(s);
    drop(store);
    // After a reopen past the window too.
    std::thread::sleep(window * 3);
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().dedup_ids, 0);
    assert_eq!(s.send_message(Message::new(b"a").id("x")).unwrap(), 2);
}

/// Sends `n` messages with ids over several segment rolls; returns the
/// offsets.
fn fill(s: &spool::Stream, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let p = payload(i);
            let key = id(i);
            let msg = Message::new(&p).id(&key);
            // Every third message without an id, every fifth in a batch.
            if i % 5 == 0 {
                s.send_batch([msg, Message::new(b"no id")]).unwrap()[0]
            } else {
                s.send_message(msg).unwrap()
            }
        })
        .collect()
}

fn bucket_dir() -> PathBuf {
    Path::new(ROOT).join("streams/s/p0")
}

fn sealed_segments(fs: &SimFs) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .filter(|p| p.starts_with(bucket_dir()) && p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop(); // the active one
    segs
}

/// Zeroes every record byte of the sealed segments from `from` on (the
/// static header and the indexes stay intact), so any read of their
/// records would fail.
fn damage_records(fs: &SimFs, segs: &[PathBuf], from: usize) {
    for seg in segs {
        let mut b = fs.read_file(seg).unwrap();
        for x in &mut b[from..] {
            *x = 0xA5;
        }
        fs.write_file(seg, &b).unwrap();
    }
}

#[test]
fn the_window_survives_a_reopen_without_reading_sealed_segments() {
    let fs = SimFs::new();
    let sent = {
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        let sent = fill(&s, 300);
        store.close().unwrap();
        sent
    };
    let segs = sealed_segments(&fs);
    assert!(segs.len() >= 3, "{} sealed segments", segs.len());
    // The indexes of sealed segments with ids are of version 2.
    let idx = segs[0].with_extension("idx");
    let b = fs.read_file(&idx).unwrap();
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 2);
    // Records and mutable header state of every sealed segment damaged:
    // only the 64-byte static header and the index are intact.
    damage_records(&fs, &segs, 64);
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    // Loaded at the first send with an id, not by the open.
    assert_eq!(s.stats().dedup_ids, 0);
    let end = held(&s);
    for (i, &o) in sent.iter().enumerate() {
        let p = payload(i as u64);
        let got = s.send_message(Message::new(&p).id(&id(i as u64))).unwrap();
        assert_eq!(got, o, "id {i}");
    }
    assert_eq!(held(&s), end, "a resend stored something");
    assert_eq!(s.stats().dedup_ids, 300);
}

#[test]
fn a_lost_or_damaged_index_is_rebuilt_with_its_ids() {
    for damage in ["remove", "flip"] {
        let fs = SimFs::new();
        let sent = {
            let store = open(&fs);
            let s = store.stream("s").unwrap();
            let sent = fill(&s, 200);
            store.close().unwrap();
            sent
        };
        let segs = sealed_segments(&fs);
        let last = segs.last().unwrap().with_extension("idx");
        match damage {
            "remove" => {
                let b = fs.read_file(&last).unwrap();
                fs.write_file(&last, &b[..10]).unwrap();
            }
            _ => {
                let mut b = fs.read_file(&last).unwrap();
                let n = b.len();
                b[n - 3] ^= 0x40; // inside the id section
                fs.write_file(&last, &b).unwrap();
            }
        }
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        let end = held(&s);
        for (i, &o) in sent.iter().enumerate() {
            let p = payload(i as u64);
            let got = s.send_message(Message::new(&p).id(&id(i as u64))).unwrap();
            assert_eq!(got, o, "{damage}: id {i}");
        }
        assert_eq!(held(&s), end, "{damage}");
        let rebuilt = fs.read_file(&last).unwrap();
        assert_eq!(u32::from_le_bytes(rebuilt[8..12].try_into().unwrap()), 2);
    }
}

#[test]
fn the_open_walks_back_only_as_far_as_the_window() {
    // Segments whose successor was created before the window began are not
    // even opened: damage to them (their static header too) goes
    // unnoticed by the open.
    let fs = SimFs::new();
    let window = Duration::from_millis(50);
    let spanning = {
        let store = open(&fs);
        let s = store
            .create_stream("s", StreamConfig::default().dedup_window(window))
            .unwrap();
        fill(&s, 300);
        // The segment active now spans the pause; those before it are
        // older than any window the open will look at.
        let spanning = s.stats().buckets[0].segments - 1;
        std::thread::sleep(window * 2);
        let before = s.stats().buckets[0].segments;
        let mut i = 0;
        while s.stats().buckets[0].segments < before + 2 {
            s.send(&payload(i)).unwrap();
            i += 1;
        }
        store.close().unwrap();
        spanning
    };
    assert!(spanning >= 2, "{spanning}");
    let segs = sealed_segments(&fs);
    damage_records(&fs, &segs[..spanning], 0);
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    let end = held(&s);
    assert_eq!(s.send_message(Message::new(b"a").id(&id(1))).unwrap(), end);
    // Only the new id: nothing from the segments older than the window.
    assert_eq!(s.stats().dedup_ids, 1);
}

#[test]
fn a_duplicate_returns_only_once_the_original_is_durable() {
    let fs = SimFs::new();
    fs.set_sync_delay(Duration::from_millis(100));
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    s.send(b"first").unwrap();
    let original = {
        let s = s.clone();
        std::thread::spawn(move || s.send_message(Message::new(b"a").id("x")).unwrap())
    };
    // The original is appended (readable), its sync under way.
    while s.stats().buckets[0].end_offset < 2 {
        std::thread::yield_now();
    }
    let got = s.send_message(Message::new(b"a").id("x")).unwrap();
    assert_eq!(got, 1);
    assert!(
        s.stats().buckets[0].durable_offset >= 2,
        "the duplicate returned before the original was durable"
    );
    assert_eq!(original.join().unwrap(), 1);
}

#[test]
fn claim_checks_and_readers_with_ids_are_deduplicated_before_their_blob_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(1024))
        .unwrap();
    let big = vec![7u8; 4096];
    assert_eq!(s.send_message(Message::new(&big).id("big")).unwrap(), 0);
    assert_eq!(s.send_message(Message::new(&big).id("big")).unwrap(), 0);
    let reader = std::io::Cursor::new(vec![9u8; 5000]);
    assert_eq!(
        s.send_reader(reader, Message::default().id("file"))
            .unwrap(),
        1
    );
    // A duplicate's reader is never read.
    struct Unread;
    impl std::io::Read for Unread {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("a duplicate's reader was read")
        }
    }
    assert_eq!(
        s.send_reader(Unread, Message::default().id("file"))
            .unwrap(),
        1
    );
    assert_eq!(
        s.send_reader(Unread, Message::default().id("big")).unwrap(),
        0
    );
    assert_eq!(s.stats().messages(), 2);
    drop(s);
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let s = store.stream("s").unwrap();
    assert_eq!(
        s.send_reader(Unread, Message::default().id("file"))
            .unwrap(),
        1
    );
    // The async send deduplicates too.
    let got = futures::executor::block_on(s.send_message_async(Message::new(b"z").id("big")));
    assert_eq!(got.unwrap(), 0);
}

/// Rewrites an index's checksums after its body was changed.
fn reseal_index(b: &mut [u8]) {
    let body = crc32fast::hash(&b[64..]);
    b[56..60].copy_from_slice(&body.to_le_bytes());
    let head = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&head.to_le_bytes());
}

#[test]
fn verify_checks_the_id_section_against_the_records_and_repair_rebuilds_it() {
    use spool::inspect::Inspector;
    let fs = SimFs::new();
    {
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        fill(&s, 150);
        store.close().unwrap();
    }
    let insp = Inspector::new(&fs);
    let errors = |fs: &SimFs| -> Vec<String> {
        let info = Inspector::new(fs).inspect_store(Path::new(ROOT)).unwrap();
        info.problems
            .iter()
            .filter(|p| !p.warning)
            .map(|p| format!("{}: {}", p.file.display(), p.reason))
            .collect()
    };
    assert_eq!(errors(&fs), Vec::<String>::new());
    let info = insp.inspect_store(Path::new(ROOT)).unwrap();
    let ids: u64 = info.streams[0].buckets[0]
        .segments
        .iter()
        .map(|s| s.attributes.with_id)
        .sum();
    assert_eq!(ids, 150);
    // An id changed in a sealed segment's index, its checksums made good:
    // the engine would believe it; verify compares it with the records.
    let idx = sealed_segments(&fs)[0].with_extension("idx");
    let mut b = fs.read_file(&idx).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x01;
    reseal_index(&mut b);
    fs.write_file(&idx, &b).unwrap();
    let found = errors(&fs);
    assert!(
        found
            .iter()
            .any(|p| p.contains(".idx") && p.contains("id section")),
        "{found:?}"
    );
    let plan = insp.repair_plan(Path::new(ROOT), None).unwrap();
    insp.repair_apply(&plan).unwrap();
    assert_eq!(errors(&fs), Vec::<String>::new());
}

/// A purge forgets the ids of what it removed, as a reopen would (their
/// segments are gone): a send of one of them stores it again, before and
/// after a reopen alike; an id sent after the purge is still remembered.
#[test]
fn a_purge_forgets_the_ids_of_the_messages_it_removed() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        assert_eq!(s.send_message(Message::new(b"old").id("a")).unwrap(), 0);
        assert_eq!(s.purge().unwrap(), 1);
        assert_eq!(s.send_message(Message::new(b"new").id("b")).unwrap(), 1);
        assert_eq!(
            s.send_message(Message::new(b"old again").id("a")).unwrap(),
            2,
            "a purged id is forgotten"
        );
        assert_eq!(s.send_message(Message::new(b"dup").id("b")).unwrap(), 1);
        store.close().unwrap();
    }
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    assert_eq!(s.send_message(Message::new(b"dup").id("a")).unwrap(), 2);
    assert_eq!(s.send_message(Message::new(b"dup").id("b")).unwrap(), 1);
    assert_eq!(held(&s), 2);
}

/// Sends `n` messages with ids `id(0..n)` (one level), over several
/// segments; returns their offsets.
fn fill_ids(s: &spool::Stream, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let p = payload(i);
            s.send_message(Message::new(&p).id(&id(i))).unwrap()
        })
        .collect()
}

/// Every id of `sent` resent: its first offset back, nothing stored.
fn resend_stores_nothing(s: &spool::Stream, sent: &[u64], what: &str) {
    let end = s.stats().buckets[0].end_offset;
    for (i, &o) in sent.iter().enumerate() {
        let p = payload(i as u64);
        let got = s.send_message(Message::new(&p).id(&id(i as u64))).unwrap();
        assert_eq!(got, o, "{what}: id {i}");
    }
    assert_eq!(
        s.stats().buckets[0].end_offset,
        end,
        "{what}: a resend stored"
    );
}

fn kept_files(fs: &SimFs) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .filter(|p| p.starts_with(bucket_dir()) && p.extension().is_some_and(|e| e == "ids"))
        .collect();
    v.sort();
    v
}

/// Retention of every kind deleting segments whose ids are within the
/// window keeps those ids across a reopen: a retry after a restart of a
/// message consumed and deleted within the window stores nothing (the
/// gap this closes: the ids went with the segment's index).
#[test]
fn ids_of_segments_deleted_by_retention_survive_a_reopen() {
    for how in ["interest", "max_bytes", "max_age"] {
        let fs = SimFs::new();
        let sent = {
            let store = open(&fs);
            let config = match how {
                "max_bytes" => StreamConfig::default().max_bytes(3 * sim::SEGMENT_BYTES),
                "max_age" => StreamConfig::default().max_age(Duration::from_millis(1)),
                _ => StreamConfig::default(),
            };
            let s = store.create_stream("s", config).unwrap();
            let c = s.consumer("c").unwrap();
            let sent = fill_ids(&s, 400);
            c.ack_up_to(0, sent[sent.len() - 1]).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            s.apply_retention().unwrap();
            let st = s.stats().buckets[0].clone();
            assert!(st.first_offset > 100, "{how}: retention deleted {st:?}");
            assert!(st.kept_id_files > 0, "{how}: {st:?}");
            // The running process remembers them.
            resend_stores_nothing(&s, &sent, &format!("{how}, same process"));
            store.close().unwrap();
            sent
        };
        assert!(!kept_files(&fs).is_empty(), "{how}");
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        resend_stores_nothing(&s, &sent, &format!("{how}, after a reopen"));
        assert_eq!(s.stats().dedup_ids, sent.len(), "{how}");
    }
}

/// Kept ids go once their newest id is a window old (at a retention pass
/// or at the window's rebuild); a stream without a window keeps none.
#[test]
fn kept_ids_go_once_they_age_out_of_the_window() {
    let fs = SimFs::new();
    let store = open(&fs);
    let window = Duration::from_millis(100);
    let s = store
        .create_stream("s", StreamConfig::default().dedup_window(window))
        .unwrap();
    let c = s.consumer("c").unwrap();
    let sent = fill_ids(&s, 300);
    c.ack_up_to(0, sent[sent.len() - 1]).unwrap();
    s.apply_retention().unwrap();
    assert!(s.stats().buckets[0].kept_id_files > 0);
    std::thread::sleep(window * 2);
    s.apply_retention().unwrap();
    assert_eq!(s.stats().buckets[0].kept_id_files, 0);
    assert!(kept_files(&fs).is_empty());
    drop((s, c));
    // Off: nothing kept.
    let s = store
        .create_stream("off", StreamConfig::default().dedup_window(Duration::ZERO))
        .unwrap();
    let c = s.consumer("c").unwrap();
    let sent = fill_ids(&s, 300);
    c.ack_up_to(0, sent[sent.len() - 1]).unwrap();
    s.apply_retention().unwrap();
    assert!(s.stats().buckets[0].first_offset > 0);
    assert_eq!(s.stats().buckets[0].kept_id_files, 0);
    // Without ids, nothing kept either.
    drop((s, c));
    let s = store.stream("plain").unwrap();
    let c = s.consumer("c").unwrap();
    for i in 0..300 {
        s.send(&payload(i)).unwrap();
    }
    c.ack_up_to(0, 299).unwrap();
    s.apply_retention().unwrap();
    assert!(s.stats().buckets[0].first_offset > 0);
    assert_eq!(s.stats().buckets[0].kept_id_files, 0);
}

/// A purge removes the kept ids with its messages' (it forgets them, in
/// the process and after a reopen alike).
#[test]
fn a_purge_removes_kept_ids() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        let sent = fill_ids(&s, 300);
        c.ack_up_to(0, sent[sent.len() - 1]).unwrap();
        s.apply_retention().unwrap();
        assert!(s.stats().buckets[0].kept_id_files > 0);
        s.purge().unwrap();
        assert_eq!(s.stats().buckets[0].kept_id_files, 0);
        let end = s.stats().buckets[0].end_offset;
        assert_eq!(
            s.send_message(Message::new(b"again").id(&id(0))).unwrap(),
            end,
            "a purged id is forgotten"
        );
        store.close().unwrap();
    }
    assert!(kept_files(&fs).is_empty());
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    let end = s.stats().buckets[0].end_offset;
    assert_eq!(
        s.send_message(Message::new(b"again").id(&id(1))).unwrap(),
        end
    );
}

/// A damaged kept-ids file never fails an open or a send: it is ignored
/// (its ids are stored again) and removed.
#[test]
fn a_damaged_kept_ids_file_is_ignored_and_removed() {
    let fs = SimFs::new();
    let sent = {
        let store = open(&fs);
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        let sent = fill_ids(&s, 300);
        c.ack_up_to(0, sent[sent.len() - 1]).unwrap();
        s.apply_retention().unwrap();
        store.close().unwrap();
        sent
    };
    let kept = kept_files(&fs);
    assert!(kept.len() >= 2, "{kept:?}");
    // The inspector lists them (every deleted message had an id), with no
    // problem.
    let inspect = |fs: &SimFs| {
        spool::inspect::Inspector::new(fs)
            .inspect_store(Path::new(ROOT))
            .unwrap()
    };
    let info = inspect(&fs);
    let b0 = &info.streams[0].buckets[0];
    assert_eq!(b0.kept_ids.len(), kept.len());
    let ids: u64 = b0.kept_ids.iter().map(|k| u64::from(k.ids)).sum();
    assert_eq!(ids, b0.first_offset.unwrap());
    assert!(b0.kept_ids.iter().all(|k| k.unusable.is_none()));
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let mut b = fs.read_file(&kept[kept.len() - 1]).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x40;
    fs.write_file(&kept[kept.len() - 1], &b).unwrap();
    // Verify: a warning, no error.
    let info = inspect(&fs);
    assert!(info.streams[0].buckets[0].kept_ids[kept.len() - 1]
        .unusable
        .is_some());
    assert_eq!(info.problems.len(), 1, "{:?}", info.problems);
    assert!(info.problems[0].warning);
    assert_eq!(info.problems[0].file, kept[kept.len() - 1]);
    let store = open(&fs);
    let s = store.stream("s").unwrap();
    // Its ids are forgotten; the others' are not.
    let first_of_damaged: u64 = kept[kept.len() - 1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let i = sent.iter().position(|&o| o == first_of_damaged).unwrap();
    let end = s.stats().buckets[0].end_offset;
    assert_eq!(
        s.send_message(Message::new(&payload(i as u64)).id(&id(i as u64)))
            .unwrap(),
        end
    );
    assert_eq!(
        s.send_message(Message::new(&payload(0)).id(&id(0)))
            .unwrap(),
        sent[0]
    );
    assert_eq!(kept_files(&fs).len(), kept.len() - 1);
}
