//! Goal: the inspector (`segment-tool verify`) and the engine agree on every
//! damaged store, because they call the same verdicts:
//!
//! 1. the inspector finds no problem (warnings aside) ⇔ `Store::open` and a
//!    read of every retained message of every bucket return no
//!    `Error::Corrupt` / `Error::UnsupportedVersion`;
//! 2. on a store the open accepts, what repair plans is what the open's
//!    `recovery_report()` lists (so repair plans nothing ⇔ the report is
//!    clean), and after the repair the next open's report is clean.
//!
//! Two asymmetries are by design and excluded from (2) and (1) where they
//! apply, each with a test of its own below: an index that exists but is
//! unusable is rebuilt by the engine on first use, not at open, so the
//! report does not list it while repair plans it; and a consumer state that
//! names offsets past the end of its log is a problem for the inspector
//! while the open clamps it. The open also removes blobs being written and
//! consumers' temporary files without reporting them (the report has no
//! field for them): repair's removals of those are not compared.
//!
//! Method: a store built once on the simulated file system (a stream of
//! several sealed segments with headers and a claim-check blob, a consumer
//! with a journal, consumers that batch-received and batch-acked (journals
//! of format version 2 holding delivered ranges and acknowledged sets), a
//! stream of two priorities, a stream whose retention left a low-water
//! mark), as closed cleanly and as cut by a power failure while live; then
//! copies of it damaged one way each (bit flips in every small file and
//! sampled in segments, indexes, journals and blobs; files cut short;
//! indexes removed; torn tails of random power cuts; orphan and missing
//! blobs; leftover temporary files and directories), each inspected,
//! planned, opened and read, and repaired on a second copy.
//!
//! 3. The inspector folds a consumer's journal as the engine's open does:
//!    on the base store and on journals given forged delivered ranges with
//!    valid CRCs (over acknowledged offsets, over offsets never delivered,
//!    of a level the stream does not have, in a version 1 journal where no
//!    range is a record), its figures of each consumer and level (ack
//!    floor, next offset, acknowledged out of order, unacknowledged
//!    deliveries, their highest count, redeliveries) are the engine's after
//!    the open and a drain. A range past the end of the log is the second
//!    asymmetry: a problem for the inspector, cut at the end by the open.
//! 4. A purge (`Stream::purge`), cut by a power failure at every operation,
//!    and a consumer moved by a seek: the inspector's figures of each
//!    consumer (skipped, ack floor, next offset) are the open's.

use spool::format::journal::{self, Entry, JournalHeader, Record};
use spool::inspect::repair::Action;
use spool::inspect::{Inspector, Problem};
use spool::io::sim::{CutMode, SimFs};
use spool::io::Vfs;
use spool::{Durability, Error, Message, Options, RecoveryReport, Store, StreamConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ROOT: &str = "/d";

fn options(fs: &SimFs, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(4096)
        .consumer_journal_bytes(4096)
        .vfs(Arc::new(fs.clone()))
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.resize(8 + (i as usize * 37) % 700, i as u8);
    p
}

/// Fills the store: `s` (sealed segments, headers, one blob, consumer `c`
/// that took only the first messages), `p` (two priorities, consumer `q`),
/// `r` (retention by size: a low-water mark, and kept ids). The consumers take only
/// messages made durable before, and the last messages sent come after.
fn fill(store: &Store) {
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(2000))
        .unwrap();
    let mut n = 0u64;
    while s.stats().buckets[0].segments < 3 {
        let m = payload(n);
        if n % 3 == 0 {
            s.send_message(Message::new(&m).header("k", "v")).unwrap();
        } else {
            s.send(&m).unwrap();
        }
        n += 1;
    }
    s.send(&vec![7u8; 3000]).unwrap();
    let p = store
        .create_stream("p", StreamConfig::default().priorities(2))
        .unwrap();
    for i in 0..6u64 {
        p.send_message(Message::new(&payload(i)).priority((i % 2) as u8))
            .unwrap();
    }
    let r = store
        .create_stream("r", StreamConfig::default().max_bytes(3 * 64 * 1024))
        .unwrap();
    // With ids: the segments it deletes keep theirs (`<base>.ids`, damaged
    // copies of which are warnings for the inspector and ignored by the
    // engine: no problem for either).
    for i in 0..600u64 {
        r.send_message(Message::new(&payload(i)).id(&format!("r-{i}")))
            .unwrap();
    }
    assert!(r.stats().buckets[0].kept_id_files > 0, "ids were kept");
    store.sync().unwrap();
    let c = s.consumer("c").unwrap();
    for _ in 0..3 {
        c.try_receive().unwrap().unwrap().ack().unwrap();
    }
    drop(c.try_receive().unwrap().unwrap());
    let q = p.consumer("q").unwrap();
    q.try_receive().unwrap().unwrap().ack().unwrap();
    // Batch acks: on `s`, all but offset 2 of six; on `p`, across both
    // levels. Their journals are of version 2 and hold acknowledged sets.
    let b = s.consumer("b").unwrap();
    let got = b.receive_batch(6, Duration::ZERO).unwrap();
    let (done, kept): (Vec<_>, Vec<_>) = got.into_iter().partition(|d| d.offset() != 2);
    b.ack_batch(done).unwrap();
    drop(kept);
    let pb = p.consumer("pb").unwrap();
    let mut got = pb.receive_batch(5, Duration::ZERO).unwrap();
    let kept = got.remove(1);
    pb.ack_batch(got).unwrap();
    drop(kept);
    for i in 0..4u64 {
        s.send(&payload(10_000 + i)).unwrap();
    }
    // Expiries: consumer e of stream t finds two messages expired (its
    // journal is of version 3 and holds kind 7 records).
    let t = store.create_stream("t", StreamConfig::default()).unwrap();
    let past = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(9);
    t.send(&payload(1)).unwrap();
    t.send_message(Message::new(&payload(2)).expires_at(past))
        .unwrap();
    t.send_message(Message::new(&payload(4)).expires_at(past))
        .unwrap();
    t.send_message(Message::new(&payload(5)).group("g"))
        .unwrap();
    t.send(&payload(6)).unwrap();
    // Durable before the consumer acts (as above): a consumer past the
    // end of its log is the asymmetry tested on its own.
    store.sync().unwrap();
    let e = t.consumer("e").unwrap();
    e.try_receive().unwrap().unwrap().ack().unwrap();
    let d = e.try_receive().unwrap().unwrap();
    assert_eq!(d.offset(), 3, "past two expiries");
    d.ack().unwrap();
    assert_eq!(e.stats().expired, 2);
}

/// The store closed cleanly, as it survives a power cut.
fn closed_image() -> SimFs {
    let fs = SimFs::new();
    let store = Store::open(ROOT, options(&fs, Durability::Always)).unwrap();
    fill(&store);
    store.close().unwrap();
    fs.power_cut(CutMode::DropUnsynced)
}

/// The verdicts on one store.
struct Verdicts {
    /// The inspector's problems, warnings excluded (with the blob checks).
    problems: Vec<Problem>,
    /// What the open and the reads said: the report, or the damage.
    engine: Result<RecoveryReport, Error>,
    /// The repair plan's actions (when the inspection succeeded).
    actions: Vec<Action>,
}

/// Opens the store and reads every retained message of every bucket.
fn open_and_read(fs: &SimFs) -> Result<RecoveryReport, Error> {
    let store = Store::open(ROOT, options(fs, Durability::Never))?;
    for name in store.streams() {
        let s = store.stream(&name)?;
        for b in s.stats().buckets {
            for off in b.first_offset..b.end_offset {
                s.read_priority(b.priority, off)?
                    .unwrap_or_else(|| panic!("{name} p{} offset {off} missing", b.priority));
            }
        }
    }
    Ok(store.recovery_report().clone())
}

fn verdicts(fs: &SimFs) -> Verdicts {
    let insp = Inspector::new(fs);
    let (problems, actions) = match insp.inspect_store(Path::new(ROOT)) {
        Ok(info) => {
            let mut p: Vec<Problem> = info.problems.clone();
            p.extend(insp.check_blobs(&info));
            p.retain(|p| !p.warning);
            let plan = insp.repair_plan(Path::new(ROOT), None).unwrap();
            (p, plan.actions)
        }
        Err(e) => (
            vec![Problem {
                file: PathBuf::from(ROOT),
                position: None,
                reason: format!("inspection failed: {e}"),
                warning: false,
            }],
            Vec::new(),
        ),
    };
    let engine = open_and_read(fs);
    Verdicts {
        problems,
        engine,
        actions,
    }
}

/// What the open reports, as (kind, path) pairs, and the orphan count.
fn reported(r: &RecoveryReport) -> (BTreeSet<(&'static str, PathBuf)>, usize) {
    let mut s = BTreeSet::new();
    s.extend(r.torn_tails.iter().map(|t| ("cut", t.segment.clone())));
    s.extend(r.rebuilt_indexes.iter().map(|p| ("index", p.clone())));
    s.extend(r.removed_temp_files.iter().map(|p| ("temp", p.clone())));
    s.extend(
        r.removed_incomplete_streams
            .iter()
            .map(|p| ("incomplete", p.clone())),
    );
    (s, r.removed_orphan_blobs)
}

/// Whether the open removes the temporary file `p` without reporting it:
/// a blob being written (`blobs/tmp/`), a consumer's (`consumers/<c>/`).
fn removed_unreported(p: &Path) -> bool {
    let name = |n: usize| {
        p.ancestors()
            .nth(n)
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string()
    };
    (name(1) == "tmp" && name(2) == "blobs") || name(2) == "consumers"
}

/// What the open would report of `actions`, as [`reported`] lists it. An
/// index rebuilt by repair that exists on `fs` is rebuilt by the engine on
/// first use instead, unreported (the first asymmetry); blobs being
/// written and consumers' temporary files are removed by the open
/// unreported.
fn planned(fs: &SimFs, actions: &[Action]) -> (BTreeSet<(&'static str, PathBuf)>, usize) {
    let mut s = BTreeSet::new();
    let mut orphans = 0;
    for a in actions {
        match a {
            Action::CutTail { segment, .. } => {
                s.insert(("cut", segment.clone()));
            }
            Action::RebuildIndex { index, .. } if fs.kind(index).unwrap().is_none() => {
                s.insert(("index", index.clone()));
            }
            Action::RemoveTempFile(p) if !removed_unreported(p) => {
                s.insert(("temp", p.clone()));
            }
            Action::RemoveIncompleteDir(p) => {
                s.insert(("incomplete", p.clone()));
            }
            Action::RemoveOrphanBlob(_) => orphans += 1,
            _ => {}
        }
    }
    (s, orphans)
}

/// Checks both agreements on `fs` (left unchanged: it is copied first).
fn check(fs: &SimFs, what: &str) {
    let repaired = fs.power_cut(CutMode::DropUnsynced);
    let v = verdicts(&fs.power_cut(CutMode::DropUnsynced));
    let damaged = match &v.engine {
        Ok(_) => false,
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => true,
        Err(e) => panic!("{what}: the open failed otherwise: {e}"),
    };
    assert_eq!(
        !v.problems.is_empty(),
        damaged,
        "{what}: the inspector says {:?}, the engine {:?}",
        v.problems,
        v.engine.as_ref().err()
    );
    let Ok(report) = &v.engine else {
        return;
    };
    assert_eq!(
        planned(fs, &v.actions),
        reported(report),
        "{what}: repair plans {:?}, the open reports {report}",
        v.actions
    );
    if v.actions.is_empty() {
        return;
    }
    let insp = Inspector::new(&repaired);
    let plan = insp.repair_plan(Path::new(ROOT), None).unwrap();
    insp.repair_apply(&plan).unwrap();
    let after = open_and_read(&repaired).unwrap_or_else(|e| panic!("{what}: after repair: {e}"));
    assert!(
        after.is_clean(),
        "{what}: after repair the open still did: {after}"
    );
}

/// A copy of `base` with `file` replaced by `bytes`.
fn with_file(base: &SimFs, file: &Path, bytes: &[u8]) -> SimFs {
    let fs = base.power_cut(CutMode::DropUnsynced);
    fs.write_file(file, bytes).unwrap();
    fs
}

/// Removes `file` durably.
fn remove(fs: &SimFs, file: &Path) {
    fs.remove_file(file).unwrap();
    fs.sync_dir(file.parent().unwrap()).unwrap();
}

/// Creates `dir` (its parent exists) durably, unless it exists.
fn ensure_dir(fs: &SimFs, dir: &Path) {
    if fs.kind(dir).unwrap().is_none() {
        fs.create_dir(dir).unwrap();
        fs.sync_dir(dir.parent().unwrap()).unwrap();
    }
}

fn file_name(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Positions of `bytes` to flip in a file named `name`: every byte of small
/// files, headers and a sample of the rest of the others.
fn positions(name: &str, bytes: &[u8]) -> Vec<usize> {
    let last_nonzero = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if name.ends_with(".seg") {
        let mut v: Vec<usize> = (0..64).chain(512..532).collect();
        v.extend((1024..last_nonzero).step_by(97));
        // Past the end of the records: zeros the engine may never read.
        v.extend(
            [last_nonzero, last_nonzero + 5000]
                .into_iter()
                .filter(|&p| p < bytes.len()),
        );
        return v;
    }
    if name.contains("/journal.") {
        let mut v: Vec<usize> = (0..64).collect();
        v.extend((64..last_nonzero + 24).step_by(5));
        return v.into_iter().filter(|&p| p < bytes.len()).collect();
    }
    if name.contains("/blobs/") {
        return vec![0, bytes.len() / 2, bytes.len() - 1];
    }
    if name.ends_with(".ids") {
        // Kept ids: the header, a sample of the positions, the ids.
        let mut v: Vec<usize> = (0..64).chain((64..bytes.len()).step_by(53)).collect();
        v.push(bytes.len() - 1);
        return v;
    }
    (0..bytes.len()).collect()
}

#[test]
fn a_bit_flipped_anywhere_is_damage_to_both_or_to_neither() {
    let base = closed_image();
    check(&base, "undamaged");
    let mut n = 0;
    for file in base.files() {
        let name = file_name(&file);
        if name.ends_with("/LOCK") {
            continue;
        }
        let bytes = base.read_file(&file).unwrap();
        for pos in positions(&name, &bytes) {
            let mut damaged = bytes.clone();
            damaged[pos] ^= 1 << (pos % 8);
            check(
                &with_file(&base, &file, &damaged),
                &format!("{name} byte {pos}"),
            );
            n += 1;
        }
    }
    assert!(n > 1000, "too few flips: {n}");
}

#[test]
fn a_file_cut_short_or_removed_is_damage_to_both_or_to_neither() {
    let base = closed_image();
    for file in base.files() {
        let name = file_name(&file);
        if name.ends_with("/LOCK") {
            continue;
        }
        let bytes = base.read_file(&file).unwrap();
        let len = bytes.len();
        let last_nonzero = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let mut cuts = vec![
            0,
            1,
            23,
            24,
            25,
            63,
            64,
            100,
            1023,
            1024,
            1100,
            len / 2,
            len - 1,
        ];
        cuts.extend([last_nonzero.saturating_sub(1), last_nonzero]);
        cuts.retain(|&c| c < len);
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            check(
                &with_file(&base, &file, &bytes[..cut]),
                &format!("{name} cut at {cut}"),
            );
        }
        // Without `store.meta` a directory is not a store to the inspector,
        // while the open makes it one: not a verdict on damage.
        if !name.ends_with("/store.meta") {
            let fs = base.power_cut(CutMode::DropUnsynced);
            remove(&fs, &file);
            check(&fs, &format!("{name} removed"));
        }
    }
}

#[test]
fn torn_tails_of_power_cuts_are_cut_by_both() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, options(&fs, Durability::Never)).unwrap();
    fill(&store);
    let s = store.stream("s").unwrap();
    let p = store.stream("p").unwrap();
    for round in 0..8u64 {
        // Unsynced writes, then cuts that keep random pages of them.
        for i in 0..40 {
            s.send(&payload(round * 100 + i)).unwrap();
        }
        p.send_message(Message::new(b"late").priority(1)).unwrap();
        for seed in 0..8 {
            let cut = fs.power_cut(CutMode::RandomPages(round * 1000 + seed));
            check(&cut, &format!("round {round} seed {seed}"));
        }
    }
    drop(store);
}

#[test]
fn blobs_and_leftovers_are_judged_alike() {
    let base = closed_image();
    let root = Path::new(ROOT);
    let blobs: Vec<PathBuf> = base
        .files()
        .into_iter()
        .filter(|f| file_name(f).contains("/blobs/") && !file_name(f).contains("/pending/"))
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let blob = &blobs[0];
    // A missing blob: damage; an orphan: removed by both.
    let fs = base.power_cut(CutMode::DropUnsynced);
    remove(&fs, blob);
    check(&fs, "missing blob");
    let hex = blake3::hash(b"nobody").to_hex().to_string();
    let orphan = root.join("blobs").join(&hex[..2]).join(&hex);
    // As a send that stored it and then crashed leaves it: with its
    // pending mark, which is what makes the open look for orphans.
    let fs = base.power_cut(CutMode::DropUnsynced);
    ensure_dir(&fs, orphan.parent().unwrap());
    fs.write_file(&orphan, b"nobody").unwrap();
    let pending = root.join("blobs/pending");
    ensure_dir(&fs, &pending);
    fs.write_file(&pending.join(format!("{hex}-0000000000000001")), b"")
        .unwrap();
    check(&fs, "orphan blob");
    // The asymmetry: an orphan without a mark (planted by hand, or left by a
    // power loss under `Never` after its message's mark was settled) is no
    // sign of a crashed send; the open does not look for it (that would read
    // every segment's references), repair and the next collection after
    // retention remove it.
    let fs = base.power_cut(CutMode::DropUnsynced);
    ensure_dir(&fs, orphan.parent().unwrap());
    fs.write_file(&orphan, b"nobody").unwrap();
    let plan = Inspector::new(&fs).repair_plan(root, None).unwrap();
    assert_eq!(planned(&fs, &plan.actions).1, 1, "{:?}", plan.actions);
    let report = open_and_read(&fs).unwrap();
    assert_eq!(report.removed_orphan_blobs, 0);
    assert!(
        fs.read_file(&orphan).is_ok(),
        "an unmarked orphan is left to repair"
    );
    // Temporary files of interrupted writes, where the engine writes them.
    let bucket = root.join("streams/s/p0");
    for tmp in [
        bucket.join(".00000000000000000000.idx.tmp"),
        bucket.join(".retention.meta.tmp"),
        root.join("streams/s/consumers/c/.checkpoint.tmp"),
        root.join("blobs/tmp/00000000000000ab.tmp"),
    ] {
        let fs = base.power_cut(CutMode::DropUnsynced);
        ensure_dir(&fs, tmp.parent().unwrap());
        fs.write_file(&tmp, b"half written").unwrap();
        check(&fs, &format!("{} left over", tmp.display()));
    }
    // Interrupted creations of a stream and of a consumer.
    for dir in [
        root.join("streams/.tmp-t-00000000000000ff"),
        root.join("streams/s/consumers/.tmp-d-00000000000000ff"),
    ] {
        let fs = base.power_cut(CutMode::DropUnsynced);
        ensure_dir(&fs, &dir);
        fs.write_file(&dir.join("config.meta"), b"partial").unwrap();
        check(&fs, &format!("{} left over", dir.display()));
    }
}

/// The first asymmetry: an unusable index that exists is rebuilt by the
/// engine when the segment is first read, not at open, so the open does not
/// report it; repair plans the rebuild. Neither calls it damage.
#[test]
fn an_unusable_index_is_rebuilt_on_first_use_unreported() {
    let base = closed_image();
    let idx = base
        .files()
        .into_iter()
        .find(|f| file_name(f).ends_with(".idx"))
        .unwrap();
    let mut bytes = base.read_file(&idx).unwrap();
    bytes[70] ^= 1;
    let fs = with_file(&base, &idx, &bytes);
    let v = verdicts(&fs.power_cut(CutMode::DropUnsynced));
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.engine.as_ref().unwrap().is_clean());
    assert!(
        matches!(&v.actions[..], [Action::RebuildIndex { index, .. }] if *index == idx),
        "{:?}",
        v.actions
    );
    check(&fs, "damaged index");
}

/// The second asymmetry: a consumer that acknowledged a message the log no
/// longer holds (its tail was lost) is a problem for the inspector; the
/// open clamps the consumer to the log by design.
#[test]
fn a_consumer_past_the_end_of_its_log_is_a_problem_for_the_inspector_only() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, options(&fs, Durability::Always)).unwrap();
    let s = store.stream("s").unwrap();
    for i in 0..5 {
        s.send(&payload(i)).unwrap();
    }
    let c = s.consumer("c").unwrap();
    while let Some(d) = c.try_receive().unwrap() {
        d.ack().unwrap();
    }
    // Cut while live: the last record lies past the durable watermark (it
    // names the end of the sync before), so damage there is a torn tail.
    let base = fs.power_cut(CutMode::DropUnsynced);
    drop((c, s, store));
    let seg = base
        .files()
        .into_iter()
        .find(|f| file_name(f).ends_with(".seg"))
        .unwrap();
    let mut bytes = base.read_file(&seg).unwrap();
    let last_nonzero = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[last_nonzero] ^= 0x10;
    let v = verdicts(&with_file(&base, &seg, &bytes));
    let report = v
        .engine
        .expect("the open cuts the tail and clamps the consumer");
    assert_eq!(report.torn_tails.len(), 1, "{report}");
    assert!(!v.problems.is_empty());
    assert!(
        v.problems
            .iter()
            .all(|p| p.reason.contains("past the bucket's end 4")),
        "{:?}",
        v.problems
    );
}

/// Files no bit flip makes, with valid checksums: an index beside the
/// active segment (a crash while rolling), a state block of an absurd epoch,
/// a record whose header section is malformed, a journal of another
/// generation, a segment's name on a directory, temporary files where the
/// engine never removes them.
#[test]
fn forged_files_are_judged_alike() {
    use spool::format::index::{self, IndexHeader};
    use spool::format::journal::{self, JournalHeader, JOURNAL_HEADER_BYTES};
    use spool::format::record::{self, RecordHeader};
    use spool::format::segment::{SegmentState, STATE_OFFSET};

    let base = closed_image();
    let root = Path::new(ROOT);
    let (seg, bytes) = {
        let info = Inspector::new(&base).inspect_store(root).unwrap();
        let path = info.streams.iter().find(|s| s.name == "s").unwrap().buckets[0]
            .segments
            .last()
            .unwrap()
            .path
            .clone();
        let raw = Inspector::new(&base).read_segment_raw(&path).unwrap();
        (path, raw)
    };
    let (info, file) = bytes;
    let header = info.header.unwrap();
    let state = info.state.unwrap();
    let end = info.data_end as usize;
    let last = *info.records.last().unwrap();

    // An index of the active segment, left by a crash between writing it
    // and creating the next segment: the open removes it and recovers the
    // segment as active, with or without a torn tail.
    let positions: Vec<u32> = info.records.iter().map(|r| r.position as u32).collect();
    let ih = IndexHeader {
        bucket: header.bucket,
        segment_id: header.segment_id,
        base_offset: header.base_offset,
        count: positions.len() as u64,
        data_end: info.data_end,
        blob_refs: 0,
        ids: 0,
    };
    let idx = seg.with_extension("idx");
    let fs = with_file(&base, &idx, &index::encode(&ih, &positions, &[], &[]));
    check(&fs, "an index beside the active segment");
    let mut torn = file.clone();
    torn[end..end + 40].fill(0x5a);
    fs.write_file(&seg, &torn).unwrap();
    check(&fs, "an index beside the active segment, and a torn tail");

    // A state block of an epoch no recovery reaches: refused by the open.
    let mut absurd = file.clone();
    let st = SegmentState {
        epoch: u32::MAX / 2,
        ..state
    };
    absurd[STATE_OFFSET..STATE_OFFSET + st.encode(header.segment_id).len()]
        .copy_from_slice(&st.encode(header.segment_id));
    check(&with_file(&base, &seg, &absurd), "an absurd epoch");

    // A valid record with a malformed header section after the last one:
    // recovered as part of the log, and its read fails.
    let hdrs = [0xffu8, b'k'];
    let body = b"forged";
    let n = record::stored_len(hdrs.len(), body.len()) as usize;
    let mut forged = file.clone();
    let h = RecordHeader {
        offset: last.offset + 1,
        timestamp_us: last.timestamp_us,
        epoch: last.epoch,
        flags: 0,
    };
    record::encode(
        &mut forged[end..end + n],
        header.segment_id,
        &h,
        &hdrs,
        body,
    );
    check(
        &with_file(&base, &seg, &forged),
        "a record with malformed headers",
    );

    // A journal whose header names another generation: not replayed.
    let jpath = base
        .files()
        .into_iter()
        .find(|f| file_name(f).contains("/consumers/c/journal."))
        .unwrap();
    let mut j = base.read_file(&jpath).unwrap();
    let jh = JournalHeader::decode(&j).unwrap();
    let other = JournalHeader {
        generation: jh.generation + 5,
        ..jh
    };
    j[..JOURNAL_HEADER_BYTES].copy_from_slice(&other.encode());
    assert!(journal::decode_all(&j).is_some_and(|(_, e)| !e.is_empty()));
    check(
        &with_file(&base, &jpath, &j),
        "a journal of another generation",
    );

    // Acknowledged sets with valid CRCs: one in a version 1 journal (no
    // record there: the replay of both ends before it), one of a version 2
    // journal naming offsets never delivered and past the end of the log
    // (acks that change nothing, to both).
    let set = journal::AckSet::from_positions([(0, 0), (0, 1), (0, 7), (0, 1 << 40)]);
    for (consumer, version) in [
        ("c", journal::JOURNAL_VERSION_1),
        ("b", journal::JOURNAL_VERSION_2),
    ] {
        // The newest: a power cut may bring back the one a rotation removed.
        let jpath = base
            .files()
            .into_iter()
            .filter(|f| file_name(f).contains(&format!("/consumers/{consumer}/journal.")))
            .max()
            .unwrap();
        let mut j = base.read_file(&jpath).unwrap();
        let (h, records) = journal::decode_all(&j).unwrap();
        assert_eq!(h.version, version, "consumer {consumer}");
        let end = records
            .last()
            .map(|(at, r)| {
                *at as usize
                    + match r {
                        journal::Record::Entry(_) => 24,
                        journal::Record::AckSet(s) => journal::ack_set_record_bytes(s),
                    }
            })
            .unwrap();
        let n = journal::ack_set_record_bytes(&set);
        journal::encode_ack_set(h.journal_id, &set, &mut j[end..end + n]);
        let (_, after) = journal::decode_all(&j).unwrap();
        let want = records.len() + usize::from(version == journal::JOURNAL_VERSION_2);
        assert_eq!(after.len(), want, "consumer {consumer}");
        check(
            &with_file(&base, &jpath, &j),
            &format!("an acknowledged set in the version {version} journal of {consumer}"),
        );
    }

    // A segment's name on a directory: refused by the open.
    let fs = base.power_cut(CutMode::DropUnsynced);
    ensure_dir(&fs, &seg.with_file_name("00000000000000099999.seg"));
    check(&fs, "a directory named like a segment");

    // Temporary files where the engine never removes them (it writes them
    // again when it next writes their file).
    for tmp in [
        root.join(".store.meta.tmp"),
        root.join("streams/s/.stream.meta.tmp"),
    ] {
        check(
            &with_file(&base, &tmp, b"half"),
            &format!("{}", tmp.display()),
        );
    }
}

/// The newest journal of consumer `consumer` of stream `stream` on `fs`.
fn newest_journal(fs: &SimFs, stream: &str, consumer: &str) -> PathBuf {
    fs.files()
        .into_iter()
        .filter(|f| {
            file_name(f).contains(&format!("/streams/{stream}/consumers/{consumer}/journal."))
        })
        .max()
        .unwrap_or_else(|| panic!("no journal of {stream}/{consumer}"))
}

/// A copy of `base` whose journal of `stream`/`consumer` has `entries`
/// appended after its last valid record, with valid CRCs; and the journal's
/// header.
fn with_entries(
    base: &SimFs,
    stream: &str,
    consumer: &str,
    entries: &[Entry],
) -> (SimFs, JournalHeader) {
    let jpath = newest_journal(base, stream, consumer);
    let mut j = base.read_file(&jpath).unwrap();
    let (h, records) = journal::decode_all(&j).unwrap();
    let mut end = records
        .last()
        .map(|(at, r)| {
            *at as usize
                + match r {
                    Record::Entry(_) => 24,
                    Record::AckSet(s) => journal::ack_set_record_bytes(s),
                }
        })
        .unwrap_or(journal::JOURNAL_HEADER_BYTES);
    for e in entries {
        j[end..end + 24].copy_from_slice(&journal::encode(h.journal_id, e));
        end += 24;
    }
    (with_file(base, &jpath, &j), h)
}

/// Each consumer's figures as the inspector folds its files, and as the
/// engine has them after an open and a drain of every message it has to
/// deliver (on a copy of `fs`). Levels whose state the inspector finds
/// past the end of the log (the second asymmetry) are left out.
fn assert_folded_alike(fs: &SimFs, what: &str) {
    let info = Inspector::new(fs).inspect_store(Path::new(ROOT)).unwrap();
    let copy = fs.power_cut(CutMode::DropUnsynced);
    let store = Store::open(ROOT, options(&copy, Durability::Never))
        .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let mut compared = 0;
    for si in &info.streams {
        let s = store.stream(&si.name).unwrap();
        for ci in &si.consumers {
            let c = s.consumer(&ci.name).unwrap();
            let stats = c.stats();
            let who = format!("{what}: {}/{}", si.name, ci.name);
            assert_eq!(ci.buckets.len(), stats.buckets.len(), "{who}");
            assert_eq!(ci.redelivered, stats.redelivered, "{who}: redelivered");
            assert_eq!(
                ci.dead_lettered, stats.dead_lettered,
                "{who}: dead lettered"
            );
            assert_eq!(ci.skipped, stats.skipped, "{who}: skipped");
            assert_eq!(ci.expired, stats.expired, "{who}: expired");
            // The drain: every unacknowledged delivery comes back with its
            // count plus one; a first delivery with 1.
            let mut attempts: Vec<Vec<u32>> = vec![Vec::new(); stats.buckets.len()];
            loop {
                let batch = c.receive_batch(64, Duration::ZERO).unwrap();
                if batch.is_empty() {
                    break;
                }
                for d in batch {
                    attempts[d.priority() as usize].push(d.attempt() - 1);
                    d.ack().unwrap();
                }
            }
            for ((b, e), delivered) in ci.buckets.iter().zip(&stats.buckets).zip(&attempts) {
                let who = format!("{who} p{}", b.priority);
                assert_eq!(b.end_offset, Some(e.end_offset), "{who}: end");
                if b.ack_floor > e.end_offset || b.next_offset > e.end_offset {
                    continue;
                }
                assert_eq!(b.ack_floor, e.ack_floor, "{who}: ack floor");
                assert_eq!(b.next_offset, e.next_offset, "{who}: next offset");
                assert_eq!(
                    b.acked_out_of_order,
                    e.end_offset - e.ack_floor - e.pending,
                    "{who}: acknowledged out of order"
                );
                assert_eq!(
                    b.unacked_deliveries,
                    e.in_flight + e.waiting_redelivery,
                    "{who}: unacknowledged deliveries"
                );
                let counted: Vec<u32> = delivered.iter().copied().filter(|&n| n > 0).collect();
                assert_eq!(
                    b.unacked_deliveries,
                    counted.len() as u64,
                    "{who}: redeliveries"
                );
                assert_eq!(
                    b.unacked_redelivered,
                    counted.iter().filter(|&&n| n >= 2).count() as u64,
                    "{who}: redelivered twice or more"
                );
                assert_eq!(
                    b.max_attempts,
                    counted.iter().copied().max().unwrap_or(0),
                    "{who}: highest count"
                );
                assert_eq!(
                    delivered.len() as u64,
                    e.end_offset - e.ack_floor - b.acked_out_of_order,
                    "{who}: drained"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 6, "{what}: {compared} levels compared");
    drop(store);
}

/// The base store's journals hold delivered ranges (so the bit flips above
/// hit them), and the inspector folds them as the engine does.
#[test]
fn delivered_ranges_are_folded_as_the_engine_folds_them() {
    let base = closed_image();
    for (stream, consumer, levels) in [("s", "b", 1), ("p", "pb", 2)] {
        let (h, records) = journal::decode_all(
            &base
                .read_file(&newest_journal(&base, stream, consumer))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(h.version, journal::JOURNAL_VERSION_2);
        let ranges = records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Entry(Entry::DeliveredRange { .. })))
            .count();
        assert_eq!(ranges, levels, "{stream}/{consumer}: {records:?}");
    }
    assert_folded_alike(&base, "undamaged");
    let range = |bucket, first, count| Entry::DeliveredRange {
        bucket,
        first,
        count,
    };
    // Consumer b acknowledged 0, 1, 3, 4 and 5 of 0..6: a range over all of
    // them and four never delivered; one below its floor.
    for (what, entries) in [
        ("a range over acknowledged offsets", vec![range(0, 0, 10)]),
        ("a range below the floor", vec![range(0, 0, 2)]),
        (
            "ranges, then an ack inside one",
            vec![
                range(0, 6, 3),
                Entry::Acked {
                    bucket: 0,
                    offset: 7,
                },
                range(0, 9, 2),
            ],
        ),
        ("a range of a level the stream lacks", vec![range(3, 0, 4)]),
    ] {
        let (fs, h) = with_entries(&base, "s", "b", &entries);
        assert_eq!(h.version, journal::JOURNAL_VERSION_2);
        check(&fs, what);
        assert_folded_alike(&fs, what);
    }
    // Consumer pb, of both levels of p (3 messages each): p1 #1 kept, the
    // rest of p1 #0..=#2 and p0 #0..=#1 acknowledged.
    let (fs, _) = with_entries(
        &base,
        "p",
        "pb",
        &[range(1, 0, 3), range(0, 1, 2), range(9, 0, 2)],
    );
    check(&fs, "ranges of both levels");
    assert_folded_alike(&fs, "ranges of both levels");
    // In a version 1 journal a range is no record: both replays end there.
    let (fs, h) = with_entries(
        &base,
        "s",
        "c",
        &[
            range(0, 4, 3),
            Entry::Acked {
                bucket: 0,
                offset: 3,
            },
        ],
    );
    assert_eq!(h.version, journal::JOURNAL_VERSION_1);
    check(&fs, "a range in a version 1 journal");
    assert_folded_alike(&fs, "a range in a version 1 journal");
    let before = Inspector::new(&base)
        .inspect_store(Path::new(ROOT))
        .unwrap();
    let after = Inspector::new(&fs).inspect_store(Path::new(ROOT)).unwrap();
    let c_of = |info: &spool::inspect::StoreInfo| {
        let s = info.streams.iter().find(|s| s.name == "s").unwrap();
        s.consumers.iter().find(|c| c.name == "c").unwrap().clone()
    };
    assert_eq!(
        c_of(&after).buckets,
        c_of(&before).buckets,
        "the range changed c"
    );
    assert_eq!(c_of(&after).journal_records, c_of(&before).journal_records);
}

/// Expiries (kind 7, journals of version 3) are folded as the engine
/// folds them: the base store's, and forged ones (of a message never
/// delivered, of one acknowledged, of a level the stream lacks); in a
/// journal of version 2 an expiry is no record (both replays end there).
#[test]
fn expiries_are_folded_as_the_engine_folds_them() {
    let base = closed_image();
    let (h, records) =
        journal::decode_all(&base.read_file(&newest_journal(&base, "t", "e")).unwrap()).unwrap();
    assert_eq!(h.version, journal::JOURNAL_VERSION_3);
    let expiries = records
        .iter()
        .filter(|(_, r)| matches!(r, Record::Entry(Entry::Expired { .. })))
        .count();
    assert_eq!(expiries, 2, "{records:?}");
    let info = Inspector::new(&base)
        .inspect_store(Path::new(ROOT))
        .unwrap();
    let t = info.streams.iter().find(|s| s.name == "t").unwrap();
    assert_eq!(t.consumers[0].expired, 2);
    let expired = |bucket, offset| Entry::Expired { bucket, offset };
    for (what, entries) in [
        (
            "an expiry of a message never delivered",
            vec![expired(0, 4)],
        ),
        ("an expiry of an acknowledged one", vec![expired(0, 0)]),
        ("an expiry of a level the stream lacks", vec![expired(2, 1)]),
        (
            "expiries, then an ack",
            vec![
                expired(0, 3),
                Entry::Acked {
                    bucket: 0,
                    offset: 4,
                },
            ],
        ),
    ] {
        let (fs, h) = with_entries(&base, "t", "e", &entries);
        assert_eq!(h.version, journal::JOURNAL_VERSION_3);
        check(&fs, what);
        assert_folded_alike(&fs, what);
    }
    let (fs, h) = with_entries(&base, "s", "b", &[expired(0, 2)]);
    assert_eq!(h.version, journal::JOURNAL_VERSION_2);
    check(&fs, "an expiry in a version 2 journal");
    assert_folded_alike(&fs, "an expiry in a version 2 journal");
}

/// The second asymmetry, with delivered ranges: a range reaching past the
/// end of the log (a crash took the messages back, or the journal is
/// forged) makes the inspector report delivered messages missing from the
/// log; the open cuts the range at the end and delivers what is there.
#[test]
fn a_range_past_the_end_of_the_log_is_a_problem_for_the_inspector_only() {
    let base = closed_image();
    let end = {
        let store = Store::open(
            ROOT,
            options(&base.power_cut(CutMode::DropUnsynced), Durability::Never),
        )
        .unwrap();
        store.stream("s").unwrap().stats().buckets[0].end_offset
    };
    let range = |first, count| Entry::DeliveredRange {
        bucket: 0,
        first,
        count,
    };
    for (first, count, reason) in [
        // Across the end: the open keeps end - 2 and end - 1.
        (end - 2, 5, format!("past the bucket's end {end}")),
        // Wholly past it, and far: the inspector stops its replay there.
        (1 << 40, 1 << 41, "replay stopped here".to_string()),
    ] {
        let what = format!("a range {first}+{count} past the end {end}");
        let (fs, _) = with_entries(&base, "s", "b", &[range(first, count)]);
        let v = verdicts(&fs.power_cut(CutMode::DropUnsynced));
        let report = v
            .engine
            .unwrap_or_else(|e| panic!("{what}: the open failed: {e}"));
        assert!(report.is_clean(), "{what}: {report}");
        assert!(!v.problems.is_empty(), "{what}: no problem found");
        assert!(
            v.problems.iter().all(|p| p.reason.contains(&reason)),
            "{what}: {:?}",
            v.problems
        );
        // The engine: offsets up to the end delivered once, none past it.
        let store = Store::open(
            ROOT,
            options(&fs.power_cut(CutMode::DropUnsynced), Durability::Never),
        )
        .unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("b").unwrap();
        let stats = &c.stats().buckets[0];
        let next = if first < end { end } else { 6 };
        assert_eq!((stats.end_offset, stats.next_offset), (end, next), "{what}");
        let mut got = Vec::new();
        loop {
            let batch = c.receive_batch(usize::MAX, Duration::ZERO).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|d| (d.offset(), d.attempt())));
        }
        let want: Vec<(u64, u32)> = std::iter::once((2, 2))
            .chain((6..end).map(|o| (o, if first < end && o >= first { 2 } else { 1 })))
            .collect();
        assert_eq!(got, want, "{what}");
    }
}

/// Each consumer's skipped count, ack floors and next offsets as the
/// inspector folds its files, and as the engine has them after an open.
fn consumer_figures_alike(fs: &SimFs, what: &str) -> usize {
    let info = Inspector::new(fs).inspect_store(Path::new(ROOT)).unwrap();
    let copy = fs.power_cut(CutMode::DropUnsynced);
    let store = Store::open(ROOT, options(&copy, Durability::Always))
        .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let mut compared = 0;
    for si in &info.streams {
        let s = store.open_stream(&si.name).unwrap();
        for ci in &si.consumers {
            let stats = s.open_consumer(&ci.name).unwrap().stats();
            let who = format!("{what}: {}/{}", si.name, ci.name);
            assert_eq!(ci.skipped, stats.skipped, "{who}: skipped");
            for (b, e) in ci.buckets.iter().zip(&stats.buckets) {
                assert_eq!(b.ack_floor, e.ack_floor, "{who} p{}: ack floor", b.priority);
                assert_eq!(b.next_offset, e.next_offset, "{who} p{}: next", b.priority);
            }
            compared += 1;
        }
    }
    compared
}

/// A stream of two levels, consumer `a` that acknowledged part of level 0
/// and took some of level 1, consumer `b` that moved by a seek.
fn purge_base(fs: &SimFs) -> Store {
    let store = Store::open(ROOT, options(fs, Durability::Always)).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .unwrap();
    let (a, b) = (s.consumer("a").unwrap(), s.consumer("b").unwrap());
    for i in 0..240u64 {
        s.send_message(Message::new(&payload(i)).priority((i % 2) as u8))
            .unwrap();
    }
    a.ack_up_to(0, 40).unwrap();
    for d in a.receive_batch(200, Duration::ZERO).unwrap() {
        if d.priority() == 1 && d.offset() % 3 == 0 {
            d.ack().unwrap();
        }
    }
    b.seek(spool::StartAt::Offset(30)).unwrap();
    store
}

#[test]
fn purged_and_seeked_consumers_are_folded_as_the_engine_folds_them() {
    let probe = SimFs::new();
    let store = purge_base(&probe);
    assert_eq!(consumer_figures_alike(&probe, "seeked"), 2);
    let before = probe.stats().ops;
    store.open_stream("s").unwrap().purge().unwrap();
    let ops = probe.stats().ops - before;
    drop(store);
    assert_eq!(consumer_figures_alike(&probe, "purged"), 2);
    for at in 1..=ops {
        let fs = SimFs::new();
        let store = purge_base(&fs);
        fs.crash_at(fs.stats().ops + at, CutMode::DropUnsynced);
        let _ = store.open_stream("s").unwrap().purge();
        let image = fs
            .crashed_image()
            .map(|img| SimFs::from_image(&img))
            .unwrap_or_else(|| fs.power_cut(CutMode::DropUnsynced));
        drop(store);
        consumer_figures_alike(&image, &format!("purge cut at op {at} of {ops}"));
    }
}
