//! Goal: `segment-tool verify` and `info` raise no false alarm on a healthy
//! live store (a writer appending, a consumer receiving and acknowledging,
//! segments rolling, retention deleting segments and blobs, journals
//! rotating), in every durability mode; and damage to acknowledged data of
//! a live store is still found (exit 1). Method: a store open in this
//! process, written by threads, while the real binary is run against it over
//! and over; every run must exit 0 without a problem line.

mod common;
use common::*;
use serde_json::Value;
use spool::{Durability, Message, Options, Store, StreamConfig};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs of each command per durability mode.
const RUNS: usize = 150;

/// A small store that rolls, rotates and deletes often: 64 KiB segments,
/// 4 KiB first journals, and a bucket size bound that makes retention run
/// whatever the consumer acknowledged.
fn live_options(durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_bytes_max(64 * 1024)
        .allocation_chunk_bytes(4096)
        .consumer_journal_bytes(4096)
        .writeback_bytes(16 * 1024)
}

/// A payload of `len` bytes made from `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8)
        .collect()
}

/// The threads that keep the store busy until `stop` is set: a writer on
/// `live` (two priority levels, record sizes that straddle pages), a writer
/// of claim checks on `blobs`, and a consumer of each that acknowledges
/// (one by one, and cursor-style).
fn busy(store: &Store) -> Busy {
    let stop = &Arc::new(AtomicBool::new(false));
    let live = store
        .create_stream(
            "live",
            StreamConfig::default()
                .priorities(2)
                .max_bytes(6 * 64 * 1024),
        )
        .expect("create live");
    let blobs = store
        .create_stream(
            "blobs",
            StreamConfig::default()
                .claim_check_threshold(2000)
                .max_bytes(3 * 64 * 1024),
        )
        .expect("create blobs");
    let mut threads = Vec::new();
    {
        let (live, stop) = (live.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            // Made beforehand, so that the writer spends its time appending
            // (a record is mostly being copied when the tool reads).
            let bodies: Vec<Vec<u8>> = (0..64u64)
                .map(|k| {
                    let len = match k % 4 {
                        0 => 8000 + (k * 997 % 7000) as usize,
                        _ => 1 + (k * 7919 % 1500) as usize,
                    };
                    payload(k, len)
                })
                .collect();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = &bodies[(n % 64) as usize];
                if n % 50 == 0 {
                    let batch: Vec<Message> = bodies[..20].iter().map(Message::new).collect();
                    live.send_batch(batch).expect("send batch");
                } else {
                    let priority = u8::from(n % 3 == 0);
                    let m = Message::new(body).priority(priority);
                    live.send_message(m).expect("send");
                }
                n += 1;
            }
            n
        }));
    }
    {
        let (blobs, stop) = (blobs.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Every fourth payload is a claim check; some repeat (one blob).
                let len = if n % 4 == 0 {
                    2500 + (n % 5) as usize
                } else {
                    300
                };
                blobs.send(&payload(n % 40, len)).expect("send blob");
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            n
        }));
    }
    {
        let stop = stop.clone();
        let c = live.consumer("worker").expect("consumer");
        threads.push(std::thread::spawn(move || {
            let mut acked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for d in c
                    .receive_batch(64, Duration::from_millis(5))
                    .expect("receive")
                {
                    d.ack().expect("ack");
                    acked += 1;
                }
            }
            acked
        }));
    }
    {
        let stop = stop.clone();
        let c = blobs.consumer("reader").expect("consumer");
        threads.push(std::thread::spawn(move || {
            let mut acked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch = c
                    .receive_batch(32, Duration::from_millis(5))
                    .expect("receive");
                if let Some(last) = batch.last() {
                    c.ack_up_to(last.priority(), last.offset())
                        .expect("ack up to");
                    acked += batch.len() as u64;
                }
            }
            acked
        }));
    }
    Busy {
        stop: stop.clone(),
        threads,
    }
}

/// The threads of [`busy`]; stopped when dropped.
struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Busy {
    /// Stops the threads and returns what each did (messages sent or acknowledged).
    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What is wrong with one run: its exit status and each problem line, as
/// `command: reason (file)`.
fn failures(cmd: &str, o: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = json_records(o)
        .into_iter()
        .filter(|(k, _)| k == "problem")
        .map(|(_, p)| format!("{cmd}: {} ({})", p["reason"], p["file"]))
        .collect();
    if code(o) != 0 && v.is_empty() {
        v.push(format!(
            "{cmd} exited {}: {}",
            code(o),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    v
}

/// Runs `verify` and `info` [`RUNS`] times each against a busy store.
fn no_false_alarm(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), live_options(durability));
    let busy = busy(&store);
    let mut failed = 0;
    let mut found = Vec::new();
    for _ in 0..RUNS {
        for cmd in ["verify", "info"] {
            let o = tool(&[cmd, s(dir.path()), "--format", "json"]);
            let f = failures(cmd, &o);
            failed += usize::from(!f.is_empty());
            found.extend(f);
        }
    }
    let counts = busy.finish();
    assert!(
        counts.iter().all(|&n| n > 0),
        "every thread worked: {counts:?}"
    );
    // Each kind of problem once, with how often it was seen (positions and
    // hashes taken out of the reasons).
    let mut kinds = std::collections::BTreeMap::new();
    for f in &found {
        let kind: String = f
            .split(" (\"")
            .next()
            .unwrap_or(f)
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert!(
        failed == 0,
        "{failed} of {} runs failed on a live store ({durability:?}): {kinds:#?}",
        2 * RUNS,
    );
    store.close().unwrap();
    // Closed, it verifies too.
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");
}

#[test]
fn no_false_alarm_with_durability_never() {
    no_false_alarm(Durability::Never);
}

#[test]
fn no_false_alarm_with_durability_interval() {
    no_false_alarm(Durability::Interval(Duration::from_millis(2)));
}

#[test]
fn no_false_alarm_with_durability_always() {
    no_false_alarm(Durability::Always);
}

/// Flips one byte of `path` at `at`, in place (the file stays mapped by the
/// store: it must not be truncated).
fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

#[test]
fn damage_to_acknowledged_data_of_a_live_store_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), live_options(Durability::Never));
    let st = store.stream("s").unwrap();
    for i in 0..400u32 {
        st.send(&payload(u64::from(i), 500)).unwrap();
    }
    // A sync makes durable, and records as such, what the previous one did.
    store.sync().unwrap();
    st.send(b"last").unwrap();
    store.sync().unwrap();
    let busy = busy(&store);
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "healthy before the damage: {problems:?}");

    // A sealed segment of `s`: damage in acknowledged data.
    let segs = segments(&bucket(dir.path(), "s", 0));
    assert!(segs.len() > 2, "{segs:?}");
    flip(&segs[1], 1024 + 300);
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1, "{problems:?}");
    let here: Vec<&Value> = problems
        .iter()
        .filter(|p| p["file"].as_str() == segs[1].to_str())
        .collect();
    assert!(!here.is_empty(), "{problems:?}");
    assert_eq!(here[0]["warning"], false, "{problems:?}");
    let o = tool(&["info", s(dir.path()), "--format", "json"]);
    assert_eq!(code(&o), 1, "info reports it too");
    flip(&segs[1], 1024 + 300);
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");

    // The active segment of `s`, below its durable watermark (synced above).
    let active = segs.last().unwrap();
    flip(active, 1024 + 8);
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p["file"].as_str() == active.to_str() && p["warning"] == false),
        "{problems:?}"
    );
    flip(active, 1024 + 8);
    busy.finish();
    store.close().unwrap();
}

/// The deterministic case of the race above: half a record past the end
/// of the active segment, as a writer leaves it between two copies, is the
/// record being written while the store is open, and a torn tail (exit 1)
/// once nobody has it open.
#[test]
fn a_half_written_record_is_a_problem_only_once_the_store_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), live_options(Durability::Never));
    let st = store.stream("s").unwrap();
    // A sync makes durable, and records as such, what the previous one did.
    for i in 0..10u64 {
        st.send(&payload(i, 300)).unwrap();
        store.sync().unwrap();
    }
    let o = tool(&["info", s(dir.path()), "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let recs = json_records(&o);
    assert_eq!(recs[0].1["in_use"], true, "{:?}", recs[0]);
    let seg = recs
        .iter()
        .find(|(k, v)| k == "segment" && v["stream"] == "s")
        .map(|(_, v)| v.clone())
        .unwrap();
    let path = std::path::PathBuf::from(seg["path"].as_str().unwrap());
    let end = seg["data_end"].as_u64().unwrap();
    let mut half = [0u8; 40];
    half[..4].copy_from_slice(&400u32.to_le_bytes());
    half[8..16].copy_from_slice(&10u64.to_le_bytes());
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&half, end).unwrap();
    drop(f);
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");
    let o = tool(&["info", s(dir.path())]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains(&format!("tail at byte {end}")) && stdout(&o).contains("being written"),
        "{}",
        stdout(&o)
    );
    drop(st);
    store.close().unwrap();
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p["file"].as_str() == path.to_str() && p["position"].as_u64() == Some(end)),
        "{problems:?}"
    );
}
