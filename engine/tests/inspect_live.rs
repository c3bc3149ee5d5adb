//! Goal: what a live store does between two reads of the inspector is no
//! false alarm (retention deleting segments, indexes and blobs, a consumer
//! rotating its checkpoint and journal, the record being written), and a
//! change nothing explains, or damage to acknowledged data, still is a
//! problem. Method: stores on the simulated file system; the inspector reads
//! them through a wrapper that runs the other side's step right after a
//! given read, so that each race happens every time.

use spool::inspect::{self, Inspector, Problem, ScanEnd, SegmentInfo, StoreInfo};
use spool::io::sim::SimFs;
use spool::io::{DirEntry, EntryKind, LockGuard, OpenMode, VDir, VFile, Vfs};
use spool::{Durability, Options, Store, StreamConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const ROOT: &str = "/d";

/// A step of the other side, run once after the read it waits for.
type Step = Box<dyn FnOnce() + Send>;

/// When a [`Step`] runs: after the listing of a directory, or after a file
/// was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    Listing(PathBuf),
    Open(PathBuf),
}

/// A file system whose steps run after given reads.
struct Racing {
    fs: SimFs,
    steps: Mutex<Vec<(After, Step)>>,
}

impl std::fmt::Debug for Racing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Racing")
    }
}

impl Racing {
    fn new(fs: &SimFs) -> Racing {
        Racing {
            fs: fs.clone(),
            steps: Mutex::new(Vec::new()),
        }
    }

    fn after(self, when: After, step: impl FnOnce() + Send + 'static) -> Racing {
        self.steps.lock().unwrap().push((when, Box::new(step)));
        self
    }

    fn fire(&self, now: After) {
        let step = {
            let mut steps = self.steps.lock().unwrap();
            let i = steps.iter().position(|(w, _)| *w == now);
            i.map(|i| steps.remove(i).1)
        };
        if let Some(step) = step {
            step();
        }
    }

    /// Asserts that every step ran.
    fn all_ran(&self) {
        let left: Vec<After> = self
            .steps
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect();
        assert!(left.is_empty(), "steps that never ran: {left:?}");
    }
}

impl Vfs for Racing {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.fs.create_dir(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let r = self.fs.read_dir(path);
        self.fire(After::Listing(path.to_path_buf()));
        r
    }
    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.fs.kind(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>> {
        let r = self.fs.open(path, mode);
        self.fire(After::Open(path.to_path_buf()));
        r
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.fs.remove_dir(path)
    }
    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VDir>> {
        self.fs.open_dir(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        self.fs.lock(path)
    }
    fn lock_held(&self, path: &Path) -> io::Result<Option<bool>> {
        self.fs.lock_held(path)
    }
}

fn options(fs: &SimFs) -> Options {
    Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(64 * 1024)
        .vfs(Arc::new(fs.clone()))
}

fn bucket() -> PathBuf {
    Path::new(ROOT).join("streams/s/p0")
}

/// The segment files of `dir` on `fs`, by base offset.
fn segments(fs: &SimFs, dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v = Inspector::new(fs).list_segments(dir).unwrap();
    v.sort();
    v
}

/// A closed store whose stream `s` holds `n` messages of `payload` and
/// their number (claim checks if above 1000 bytes: each its own blob).
fn store_with_segments(n: u32, payload: &[u8]) -> SimFs {
    let fs = SimFs::new();
    let store = Store::open(ROOT, options(&fs)).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(1000))
        .unwrap();
    for i in 0..n {
        let mut body = payload.to_vec();
        body.extend(i.to_le_bytes());
        s.send(&body).unwrap();
    }
    store.close().unwrap();
    fs
}

/// What a retention pass does to the bucket at `dir`: the low-water mark
/// `low` first (replaced whole), then the files of every segment below it.
fn retention(fs: &SimFs, dir: &Path, low: u64) {
    let tmp = dir.join(".retention.meta.tmp");
    let mark = spool::format::meta::encode(*b"SPOOLRET", 1, &low.to_le_bytes());
    fs.write_file(&tmp, &mark).unwrap();
    fs.rename(&tmp, &dir.join("retention.meta")).unwrap();
    let segs = segments(fs, dir);
    for w in segs.windows(2) {
        if w[1].0 <= low {
            fs.remove_file(&w[0].1).unwrap();
            fs.remove_file(&w[0].1.with_extension("idx")).unwrap();
        }
    }
}

/// Everything `verify` reports: the inspection's problems, torn tails, blobs.
fn verify(vfs: &dyn Vfs) -> (StoreInfo, Vec<Problem>) {
    let ins = Inspector::new(vfs);
    let info = ins.inspect_store(Path::new(ROOT)).unwrap();
    let mut problems = info.problems.clone();
    problems.extend(info.tail_problems());
    problems.extend(ins.check_blobs(&info));
    (info, problems)
}

/// Regression: a segment read just before retention deleted its index was
/// reported as "index of a sealed segment is missing".
#[test]
fn retention_deleting_a_segment_being_read_is_no_problem() {
    let fs = store_with_segments(600, &[7; 400]);
    let b = bucket();
    let segs = segments(&fs, &b);
    assert!(segs.len() > 3, "{segs:?}");
    let low = segs[2].0;
    let (f, d) = (fs.clone(), b.clone());
    // Right after the second segment is opened, its index and both files go.
    let racing = Racing::new(&fs).after(After::Open(segs[1].1.clone()), move || {
        retention(&f, &d, low)
    });
    let (info, problems) = verify(&racing);
    racing.all_ran();
    assert!(problems.is_empty(), "{problems:?}");
    let bases: Vec<Option<u64>> = info.streams[0].buckets[0]
        .segments
        .iter()
        .map(SegmentInfo::base_offset)
        .collect();
    assert_eq!(bases[0], Some(low), "the deleted segments are left out");
    assert_eq!(info.streams[0].buckets[0].first_offset, Some(low));

    // Files gone since the listing: retention explains them.
    let low = segments(&fs, &b)[1].0;
    let (f, d) = (fs.clone(), b.clone());
    let racing = Racing::new(&fs).after(After::Listing(b.clone()), move || retention(&f, &d, low));
    let (info, problems) = verify(&racing);
    racing.all_ran();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(info.streams[0].buckets[0].first_offset, Some(low));
}

#[test]
fn a_segment_removed_while_read_is_a_problem_unless_retention_explains_it() {
    let fs = store_with_segments(600, &[7; 400]);
    let b = bucket();
    let gone = segments(&fs, &b)[1].1.clone();
    let (f, g) = (fs.clone(), gone.clone());
    let racing = Racing::new(&fs).after(After::Listing(b), move || {
        f.remove_file(&g).unwrap();
        f.remove_file(&g.with_extension("idx")).unwrap();
    });
    let (_, problems) = verify(&racing);
    racing.all_ran();
    assert!(
        problems.iter().any(|p| p.file == gone && !p.warning),
        "{problems:?}"
    );
}

/// Regression: a blob collected after retention deleted the segment that
/// referred to it (read before the deletion) was "blob file missing".
#[test]
fn a_blob_collected_after_its_segment_was_deleted_is_no_problem() {
    let fs = store_with_segments(1600, &[3; 1500]);
    let ins = Inspector::new(&fs);
    let info = ins.inspect_store(Path::new(ROOT)).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let segs = &info.streams[0].buckets[0].segments;
    assert!(segs.len() > 1);
    let refs = segs[0].blob_refs.clone();
    assert!(!refs.is_empty());
    // Retention deletes the first segment, the collection its blobs.
    retention(&fs, &bucket(), segs[1].base_offset().unwrap());
    for r in &refs {
        fs.remove_file(&inspect::blob_path(Path::new(ROOT), &r.hash))
            .unwrap();
    }
    let problems = ins.check_blobs(&info);
    assert!(
        problems.is_empty(),
        "{} problems, the first: {:?}",
        problems.len(),
        problems.first()
    );

    // A blob gone whose record is still there is damage.
    let kept = segs[1].blob_refs[0];
    let path = inspect::blob_path(Path::new(ROOT), &kept.hash);
    fs.remove_file(&path).unwrap();
    let problems = ins.check_blobs(&info);
    assert!(
        problems.iter().any(|p| p.file == path && !p.warning),
        "{problems:?}"
    );
}

/// The files of a directory, by name.
fn snapshot(fs: &SimFs, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs
        .read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|e| {
            let bytes = fs.read_file(&dir.join(&e.name)).unwrap();
            (e.name, bytes)
        })
        .collect();
    v.sort();
    v
}

/// Puts a directory back as [`snapshot`] found it.
fn restore(fs: &SimFs, dir: &Path, files: &[(String, Vec<u8>)]) {
    for e in fs.read_dir(dir).unwrap() {
        fs.remove_file(&dir.join(&e.name)).unwrap();
    }
    for (name, bytes) in files {
        fs.write_file(&dir.join(name), bytes).unwrap();
    }
}

/// A consumer that rotates (new checkpoint and journal, the old journal
/// removed) between the inspector's read of its checkpoint and of its
/// journal is read again, as the pair it rotated to.
#[test]
fn a_consumer_rotating_between_two_reads_is_read_again() {
    let fs = SimFs::new();
    let cdir = Path::new(ROOT).join("streams/s/consumers/c");
    // Each open starts a generation of the consumer's files.
    let session = |acks: usize| {
        let store = Store::open(ROOT, options(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        for i in 0..10u8 {
            s.send(&[i]).unwrap();
        }
        let c = s.consumer("c").unwrap();
        for _ in 0..acks {
            c.try_receive().unwrap().unwrap().ack().unwrap();
        }
        store.close().unwrap();
    };
    session(3);
    let old = snapshot(&fs, &cdir);
    session(4);
    let new = snapshot(&fs, &cdir);
    let journal = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .find(|(n, _)| n.starts_with("journal."))
            .map(|(n, _)| cdir.join(n))
            .unwrap()
    };
    let (old_journal, new_journal) = (journal(&old), journal(&new));
    assert_ne!(old_journal, new_journal);
    let expected = Inspector::new(&fs)
        .inspect_store(Path::new(ROOT))
        .unwrap()
        .streams[0]
        .consumers[0]
        .clone();
    assert_eq!(expected.journal.as_ref(), Some(&new_journal));
    assert!(expected.journal_records > 0, "{expected:?}");
    // Back to the old pair; the rotation to the new one happens right after
    // the old journal is opened.
    restore(&fs, &cdir, &old);
    let (f, d) = (fs.clone(), cdir.clone());
    let racing = Racing::new(&fs).after(After::Open(old_journal), move || restore(&f, &d, &new));
    let (info, problems) = verify(&racing);
    racing.all_ran();
    assert!(problems.is_empty(), "{problems:?}");
    let got = &info.streams[0].consumers[0];
    assert_eq!(got.generation, expected.generation);
    assert_eq!(got.journal, expected.journal);
    assert_eq!(got.buckets, expected.buckets);
    assert_eq!(got.journal_records, expected.journal_records);
}

/// The bytes after the last valid record of the active segment of a store
/// in use are the record being written; on a store nobody has open they
/// are a torn tail (a problem of `verify`). Damage below the durable
/// watermark is a problem either way.
#[test]
fn a_tail_is_the_record_being_written_while_the_store_is_in_use() {
    let fs = SimFs::new();
    let store = Store::open(ROOT, options(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    // A sync makes durable, and records as such, what the previous one did.
    for i in 0..10u8 {
        s.send(&[i; 100]).unwrap();
        store.sync().unwrap();
    }
    let (info, problems) = verify(&fs);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(info.in_use, Some(true));
    let seg = info.streams[0].buckets[0].segments[0].clone();
    assert_eq!(seg.end, ScanEnd::Clean);
    // Half a record past the end, as a writer leaves it between two copies.
    let mut half = [0u8; 40];
    half[..4].copy_from_slice(&200u32.to_le_bytes());
    half[8..16].copy_from_slice(&10u64.to_le_bytes());
    let f = fs.open(&seg.path, OpenMode::ReadWrite).unwrap();
    f.write_all_at(&half, seg.data_end).unwrap();
    let (info, problems) = verify(&fs);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(matches!(
        info.streams[0].buckets[0].segments[0].end,
        ScanEnd::Tail { .. }
    ));

    // Damage below the watermark is a problem, in use or not.
    let at = inspect::SEGMENT_DATA_START + 40;
    let mut b = [0u8; 1];
    f.read_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 1], at).unwrap();
    let (_, problems) = verify(&fs);
    assert!(
        problems.iter().any(|p| p.file == seg.path && !p.warning),
        "{problems:?}"
    );
    f.write_all_at(&b, at).unwrap();
    drop(f);
    drop(s);
    drop(store);

    // Nobody has it open now: the same bytes are a torn tail.
    let (info, problems) = verify(&fs);
    assert_eq!(info.in_use, Some(false));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, seg.path);
    assert_eq!(problems[0].position, Some(seg.data_end));
    assert!(!problems[0].warning);
}

/// Regression: the segment listed as the newest of a bucket, sealed by a
/// roll and deleted by retention before it was opened, was "segment file
/// removed while it was read" (and the bucket looked to end before it).
/// The bucket is read again, and its end is found.
#[test]
fn a_bucket_outrun_by_rolls_and_retention_is_read_again() {
    let fs = SimFs::new();
    let config = StreamConfig::default().max_bytes(2 * 64 * 1024);
    let send = |n: u32| {
        let store = Store::open(ROOT, options(&fs)).unwrap();
        let s = match store.create_stream("s", config.clone()) {
            Ok(s) => s,
            Err(_) => store.stream("s").unwrap(),
        };
        let mut last = 0;
        for i in 0..n {
            last = s.send(&[i as u8; 1000]).unwrap();
        }
        store.close().unwrap();
        last
    };
    send(100);
    let b = bucket();
    let newest = segments(&fs, &b).last().unwrap().1.clone();
    let f = fs.clone();
    let last = Arc::new(Mutex::new(0));
    let l = last.clone();
    let racing = Racing::new(&fs).after(After::Listing(b.clone()), move || {
        // Another session: rolls past the newest segment listed, and
        // retention by size deletes it.
        let store = Store::open(ROOT, options(&f)).unwrap();
        let s = store.stream("s").unwrap();
        for i in 0..400u32 {
            *l.lock().unwrap() = s.send(&[i as u8; 1000]).unwrap();
        }
        store.close().unwrap();
    });
    let (info, problems) = verify(&racing);
    racing.all_ran();
    assert!(fs.kind(&newest).unwrap().is_none(), "deleted while read");
    assert!(problems.is_empty(), "{problems:?}");
    let bucket = &info.streams[0].buckets[0];
    assert_eq!(bucket.last_offset, Some(*last.lock().unwrap()));
}
