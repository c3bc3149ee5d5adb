//! Goal: `segment-tool info` reports what the engine wrote (counts, offsets,
//! segments), in both formats, on closed and live stores, and maps every
//! outcome to its exit status (0 fine, 1 problems, 2 error) without ever
//! panicking on a damaged store. Method: build stores in temporary
//! directories with the `spool` API, then run the real binary on them.

use serde_json::Value;
use spool::{Durability, Message, Options, StreamConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args(args)
        .output()
        .expect("run segment-tool")
}

fn info(store: &Path, format: &str) -> Output {
    tool(&["info", path_str(store), "--format", format])
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("output is UTF-8")
}

/// Parses JSON Lines output, checking the envelope of every line.
fn json_records(o: &Output) -> Vec<(String, Value)> {
    stdout(o)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            let obj = v.as_object().expect("each line is an object");
            assert_eq!(obj.len(), 2, "envelope is exactly type and data: {line}");
            let kind = v["type"].as_str().expect("type is a string").to_string();
            assert!(v["data"].is_object(), "data is an object: {line}");
            (kind, v["data"].clone())
        })
        .collect()
}

fn of_kind<'a>(records: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list bucket")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// A closed store with `orders` (10 messages) and `prio` (3 levels, one
/// message at level 2).
fn small_store(dir: &Path) {
    let store = open_store(dir, opts());
    let orders = store.stream("orders").expect("stream");
    for i in 0..10 {
        orders.send(format!("order #{i}").as_bytes()).expect("send");
    }
    let prio = store
        .create_stream("prio", StreamConfig::default().priorities(3))
        .expect("create");
    prio.send_message(Message::new(b"urgent").priority(2))
        .expect("send");
    store.close().expect("close");
}

#[test]
fn human_output_lists_streams_buckets_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_store(dir.path());
    let o = info(dir.path(), "human");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = stdout(&o);
    assert!(
        text.contains("stream orders: 1 priority level, 10 messages"),
        "{text}"
    );
    assert!(text.contains("p0: 10 messages, offsets 0..=9"), "{text}");
    assert!(
        text.contains("stream prio: 3 priority levels, 1 message"),
        "{text}"
    );
    assert!(text.contains("p2: 1 message, offsets 0..=0"), "{text}");
    assert!(text.contains("00000000000000000000.seg"), "{text}");
    assert!(text.contains("0 problems"), "{text}");
    assert!(o.stderr.is_empty());
}

#[test]
fn json_output_has_envelopes_counts_and_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_store(dir.path());
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0));
    let recs = json_records(&o);
    assert_eq!(recs.first().map(|r| r.0.as_str()), Some("store"));
    assert_eq!(recs.last().map(|r| r.0.as_str()), Some("summary"));
    let streams = of_kind(&recs, "stream");
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0]["name"], "orders");
    assert_eq!(streams[0]["messages"], 10);
    assert_eq!(streams[1]["priorities"], 3);
    let buckets = of_kind(&recs, "bucket");
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[0]["first_offset"], 0);
    assert_eq!(buckets[0]["last_offset"], 9);
    assert!(buckets[0]["first_timestamp_us"].as_u64() <= buckets[0]["last_timestamp_us"].as_u64());
    assert_eq!(buckets[1]["messages"], 0);
    assert_eq!(buckets[1]["last_offset"], Value::Null);
    assert_eq!(buckets[3]["messages"], 1);
    let summary = of_kind(&recs, "summary")[0];
    assert_eq!(summary["messages"], 11);
    assert_eq!(summary["streams"], 2);
    assert_eq!(summary["problems"], 0);
    assert!(of_kind(&recs, "problem").is_empty());
}

#[test]
fn several_segments_are_listed_in_offset_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
        let s = store.stream("logs").expect("stream");
        for _ in 0..1000 {
            s.send(&[42u8; 300]).expect("send");
        }
    }
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let recs = json_records(&o);
    let segs = of_kind(&recs, "segment");
    assert!(segs.len() > 3, "{} segments", segs.len());
    let mut next = 0;
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s["base_offset"], next);
        next += s["records"].as_u64().expect("records");
        let last = i == segs.len() - 1;
        assert_eq!(s["sealed"], !last);
        assert_eq!(s["index"], if last { "missing" } else { "valid" });
    }
    assert_eq!(next, 1000);
    let bucket = of_kind(&recs, "bucket")[0];
    assert_eq!(bucket["segments"], segs.len());
    assert_eq!(bucket["last_offset"], 999);
}

#[test]
fn a_live_store_is_read_while_it_is_open_and_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
    let s = store.stream("live").expect("stream");
    for _ in 0..100 {
        s.send(b"before").expect("send");
    }
    store.sync().expect("sync");
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for _ in 0..3000 {
                s.send(&[1u8; 100]).expect("send");
            }
        })
    };
    let mut seen = Vec::new();
    for _ in 0..5 {
        let o = info(dir.path(), "json");
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        let recs = json_records(&o);
        seen.push(
            of_kind(&recs, "summary")[0]["messages"]
                .as_u64()
                .expect("count"),
        );
    }
    writer.join().expect("writer");
    assert!(seen.iter().all(|&n| n >= 100), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let o = info(dir.path(), "human");
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("3100 messages, offsets 0..=3099"),
        "{}",
        stdout(&o)
    );
    drop(s);
    drop(store);
}

#[test]
fn a_missing_directory_is_an_error_with_status_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = info(&dir.path().join("nope"), "human");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("segment-tool: "), "{err}");
    assert!(o.stdout.is_empty());
    // A directory that is not a store is an error too.
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_with_status_2() {
    assert_eq!(tool(&[]).status.code(), Some(2));
    assert_eq!(tool(&["info"]).status.code(), Some(2));
    assert_eq!(
        tool(&["info", ".", "--format", "xml"]).status.code(),
        Some(2)
    );
    assert_eq!(tool(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(tool(&["--help"]).status.code(), Some(0));
}

#[test]
fn truncated_segments_give_a_status_and_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
        let s = store.stream("s").expect("stream");
        for i in 0..600 {
            s.send(format!("payload {i}").repeat(30).as_bytes())
                .expect("send");
        }
    }
    let bucket = dir.path().join("streams").join("s").join("p0");
    let segs = segments(&bucket);
    assert!(segs.len() >= 2);
    for seg in [&segs[0], &segs[segs.len() - 1]] {
        let original = std::fs::read(seg).expect("read");
        for cut in [
            0,
            7,
            63,
            512,
            530,
            1023,
            1024,
            1031,
            1500,
            4096,
            40_000,
            original.len() - 1,
        ] {
            let cut = cut.min(original.len());
            std::fs::write(seg, &original[..cut]).expect("truncate");
            for format in ["human", "json"] {
                let o = info(dir.path(), format);
                let code = o.status.code();
                assert!(
                    matches!(code, Some(0..=2)),
                    "cut {cut} of {}: status {code:?}, stderr {}",
                    seg.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                assert!(
                    !String::from_utf8_lossy(&o.stderr).contains("panicked"),
                    "cut {cut}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                if seg == &segs[0] && cut <= 40_000 {
                    // A sealed segment cut into its records is a problem
                    // (cutting only the zeros after them is not).
                    assert_eq!(code, Some(1), "cut {cut}: {}", stdout(&o));
                }
            }
        }
        std::fs::write(seg, &original).expect("restore");
    }
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn problems_are_reported_in_json_with_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
        let s = store.stream("s").expect("stream");
        for _ in 0..400 {
            s.send(&[9u8; 400]).expect("send");
        }
    }
    let bucket = dir.path().join("streams").join("s").join("p0");
    let seg = &segments(&bucket)[0];
    let mut bytes = std::fs::read(seg).expect("read");
    bytes[1024 + 100] ^= 0x40;
    std::fs::write(seg, &bytes).expect("write");
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(1));
    let recs = json_records(&o);
    let problems = of_kind(&recs, "problem");
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == path_str(seg) && p["position"] == 1024),
        "{problems:?}"
    );
    let o = info(dir.path(), "human");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("problem: "), "{}", stdout(&o));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
        let s = store.stream("s").expect("stream");
        for _ in 0..4000 {
            s.send(&[1u8; 400]).expect("send");
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args(["info", path_str(dir.path())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    // stdout is dropped here: the pipe is closed.
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Opens a store, retrying briefly on `Locked`: other tests in this process
/// spawn the tool, and between fork and exec a child holds copies of every
/// descriptor (the lock's too) for a moment.
fn open_store(path: &std::path::Path, opts: spool::Options) -> spool::Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match spool::Store::open(path, opts.clone()) {
            Ok(s) => return s,
            Err(spool::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}

/// A closed store whose stream `jobs` (64 KiB segments, 200 messages of
/// 1000 bytes, each with its own timestamp) has consumers `early` (ack
/// floor 30, inside the first, sealed segment), `late` (floor 190, inside
/// the active segment) and `done` (everything acknowledged). `late` also
/// holds two unacknowledged deliveries and one dead letter. Returns the
/// timestamps of offsets 30 and 190.
fn consumer_store(dir: &Path) -> (u64, u64) {
    let store = open_store(dir, opts().segment_bytes_max(64 * 1024));
    let jobs = store.stream("jobs").expect("stream");
    for _ in 0..200 {
        jobs.send(&[5u8; 1000]).expect("send");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let early = jobs.consumer("early").expect("consumer");
    early.ack_up_to(0, 29).expect("ack");
    let done = jobs.consumer("done").expect("consumer");
    done.ack_up_to(0, 199).expect("ack");
    let late = jobs
        .consumer_with(
            "late",
            spool::ConsumerConfig::default()
                .max_deliveries(1)
                .dead_letter("jobs.dead"),
        )
        .expect("consumer");
    late.ack_up_to(0, 189).expect("ack");
    // 190 delivered and given back: dead-lettered when 191 is taken next
    // (it was delivered its one time); 191 and 192 stay unacknowledged.
    late.try_receive()
        .expect("receive")
        .expect("190")
        .nack()
        .expect("nack");
    let a = late.try_receive().expect("receive").expect("191");
    let b = late.try_receive().expect("receive").expect("192");
    assert_eq!((a.offset(), b.offset()), (191, 192));
    assert_eq!(late.stats().dead_lettered, 1);
    let ts = |o: u64| jobs.read(o).expect("read").expect("record").timestamp_us();
    let t = (ts(30), ts(191));
    drop((a, b));
    store.close().expect("close");
    t
}

fn consumer_record<'a>(recs: &'a [(String, Value)], name: &str) -> &'a Value {
    of_kind(recs, "consumer")
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no consumer {name}"))
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

#[test]
fn consumers_show_what_is_left_and_the_age_of_the_oldest_unacknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t30, t191) = consumer_store(dir.path());
    let before = now_us();
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let after = now_us();
    let recs = json_records(&o);
    // The floor of `early` lies inside a sealed segment (read through its
    // index), that of `late` inside the active one (found by a scan).
    let segs: Vec<&Value> = of_kind(&recs, "segment")
        .into_iter()
        .filter(|s| s["stream"] == "jobs")
        .collect();
    let holds = |s: &Value, o: u64| {
        let base = s["base_offset"].as_u64().expect("base");
        base < o && o + 1 < base + s["records"].as_u64().expect("records")
    };
    assert!(segs[0]["sealed"] == true && holds(segs[0], 30), "{segs:?}");
    let last = segs[segs.len() - 1];
    assert!(last["sealed"] == false && holds(last, 191), "{segs:?}");

    let early = consumer_record(&recs, "early");
    assert_eq!(early["undelivered"], 170);
    assert_eq!(early["lag"], 170);
    assert_eq!(early["buckets"][0]["undelivered"], 170);
    assert_eq!(early["buckets"][0]["oldest_unacked_offset"], 30);
    assert_eq!(early["buckets"][0]["oldest_unacked_timestamp_us"], t30);
    assert_eq!(early["oldest_unacked_timestamp_us"], t30);
    let age = early["oldest_unacked_age_us"].as_u64().expect("age");
    assert!(age >= before - t30 && age <= after - t30, "{age}");

    let late = consumer_record(&recs, "late");
    // 190 dead-lettered (acknowledged), 191 and 192 delivered: the oldest
    // unacknowledged is 191.
    assert_eq!(late["undelivered"], 7);
    assert_eq!(late["lag"], 9);
    assert_eq!(late["dead_lettered"], 1);
    assert_eq!(late["buckets"][0]["unacked_deliveries"], 2);
    assert_eq!(late["buckets"][0]["oldest_unacked_offset"], 191);
    assert_eq!(late["oldest_unacked_timestamp_us"], t191);
    assert!(late["oldest_unacked_age_us"].as_u64().expect("age") >= before - t191);

    let done = consumer_record(&recs, "done");
    assert_eq!(done["undelivered"], 0);
    assert_eq!(done["lag"], 0);
    assert_eq!(done["oldest_unacked_timestamp_us"], Value::Null);
    assert_eq!(done["oldest_unacked_age_us"], Value::Null);
    assert_eq!(done["buckets"][0]["oldest_unacked_offset"], Value::Null);

    let o = info(dir.path(), "human");
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  consumer {name} figures: ")))
            .unwrap_or_else(|| panic!("no figures of {name}: {text}"))
            .to_string()
    };
    let late = line("late");
    assert!(
        late.contains("undelivered 7, 2 unacknowledged deliveries"),
        "{late}"
    );
    assert!(late.contains("lag 9"), "{late}");
    assert!(late.contains("dead-lettered 1"), "{late}");
    assert!(late.contains("oldest unacknowledged 20"), "{late}");
    assert!(late.contains("(age "), "{late}");
    assert!(line("done").contains("nothing unacknowledged"), "{text}");
}

/// Sums (files, lengths, allocated bytes) of the regular files under `dir`.
fn du(dir: &Path) -> (u64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut t = (0, 0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return t;
    };
    for e in entries {
        let e = e.expect("entry");
        let m = std::fs::symlink_metadata(e.path()).expect("stat");
        if m.is_dir() {
            let (f, a, d) = du(&e.path());
            t = (t.0 + f, t.1 + a, t.2 + d);
        } else if m.is_file() {
            t = (t.0 + 1, t.1 + m.len(), t.2 + m.blocks() * 512);
        }
    }
    t
}

#[test]
fn disk_use_is_reported_next_to_apparent_size_per_stream_and_in_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    consumer_store(dir.path());
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let recs = json_records(&o);
    let disks = of_kind(&recs, "disk");
    // One per stream (`jobs`, `jobs.dead`), then the store's.
    assert_eq!(disks.len(), 3, "{disks:?}");
    let streams = dir.path().join("streams");
    for (d, name) in disks.iter().zip(["jobs", "jobs.dead"]) {
        assert_eq!(d["stream"], name);
        let (files, apparent, used) = du(&streams.join(name));
        assert_eq!(
            (
                d["files"].as_u64(),
                d["apparent_bytes"].as_u64(),
                d["disk_bytes"].as_u64()
            ),
            (Some(files), Some(apparent), Some(used)),
            "{name}"
        );
        let (files, apparent, used) = du(&streams.join(name).join("consumers"));
        assert_eq!(
            (
                d["consumer_files"].as_u64(),
                d["consumer_apparent_bytes"].as_u64(),
                d["consumer_disk_bytes"].as_u64()
            ),
            (Some(files), Some(apparent), Some(used)),
            "{name}"
        );
    }
    // `jobs` has three consumers: each a config, a checkpoint, a journal.
    assert_eq!(disks[0]["consumer_files"], 9);
    assert_eq!(disks[1]["consumer_files"], 0);
    let total = disks[2];
    assert_eq!(total["stream"], Value::Null);
    let (files, apparent, used) = du(dir.path());
    assert_eq!(total["files"], files);
    assert_eq!(total["apparent_bytes"], apparent);
    assert_eq!(total["disk_bytes"], used);
    assert!(disks[1]["disk_bytes"].as_u64() > Some(0), "{disks:?}");
    // A segment of the default 64 MiB holding one message is sparse: its
    // blocks are reserved one 1 MiB chunk at a time.
    let sparse = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(sparse.path(), opts());
        store
            .stream("one")
            .expect("stream")
            .send(b"m")
            .expect("send");
        store.close().expect("close");
    }
    let o = info(sparse.path(), "json");
    let recs_sparse = json_records(&o);
    let d = of_kind(&recs_sparse, "disk")[0];
    let (apparent, used) = (
        d["apparent_bytes"].as_u64().expect("apparent"),
        d["disk_bytes"].as_u64().expect("used"),
    );
    assert!(apparent >= 64 << 20 && used < apparent / 8, "{d}");
    // The `disk` line of the store comes right before the summary.
    let kinds: Vec<&str> = recs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&kinds[kinds.len() - 2..], ["disk", "summary"]);

    let o = info(dir.path(), "human");
    let text = stdout(&o);
    assert!(
        text.lines().any(|l| l.starts_with("  disk: ")
            && l.contains("used on disk")
            && l.contains("; consumers ")),
        "{text}"
    );
    let last_disk = text
        .lines()
        .find(|l| l.starts_with("disk: "))
        .expect("store disk line");
    assert!(
        last_disk.contains(&format!("({files} files)")),
        "{last_disk}"
    );
}

/// The kept ids of segments retention deleted within the dedup window
/// (DESIGN.md §7.1) are listed per bucket in both formats; `verify`
/// reports a damaged one as a warning (only ids are in it; exit 1, as for
/// every problem).
#[test]
fn kept_ids_are_shown_and_a_damaged_one_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = spool::Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        let mut last = 0;
        for i in 0..300 {
            let key = format!("id-{i}");
            last = s.send_message(Message::new(&[7u8; 600]).id(&key)).unwrap();
        }
        c.ack_up_to(0, last).unwrap();
        s.apply_retention().unwrap();
        assert!(s.stats().buckets[0].kept_id_files >= 2);
        store.close().unwrap();
    }
    let human = info(dir.path(), "human");
    assert_eq!(human.status.code(), Some(0));
    let text = stdout(&human);
    assert!(text.contains("kept ids of "), "{text}");
    assert!(
        text.contains(".ids (deleted segment at offset 0)"),
        "{text}"
    );
    let json = info(dir.path(), "json");
    let recs = json_records(&json);
    let bucket = of_kind(&recs, "bucket")[0];
    let kept = bucket["kept_ids"].as_array().unwrap();
    assert!(kept.len() >= 2, "{bucket}");
    assert_eq!(kept[0]["base_offset"], 0);
    assert!(kept[0]["ids"].as_u64().unwrap() > 0);
    assert!(kept[0]["unusable"].is_null());
    // Damaged: a warning in verify, and still listed.
    let path = PathBuf::from(kept[0]["path"].as_str().unwrap());
    let mut b = std::fs::read(&path).unwrap();
    b[70] ^= 0xff;
    std::fs::write(&path, &b).unwrap();
    let v = tool(&["verify", path_str(dir.path()), "--format", "json"]);
    assert_eq!(v.status.code(), Some(1), "{}", stdout(&v));
    let recs = json_records(&v);
    let problems = of_kind(&recs, "problem");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["warning"], true);
    assert!(problems[0]["file"].as_str().unwrap().ends_with(".ids"));
}
