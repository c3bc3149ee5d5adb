//! Goal: `segment-tool info` and `segment-tool consumers` report what the
//! engine's consumers did (ack floors, next offsets, lag, acked sets,
//! unacknowledged deliveries and their counts, dead letters) in both
//! formats, agree with the engine's own figures, and map damaged consumer
//! files to exit status 1 or 2 without ever panicking. Method: build stores
//! with the `spool` API, then run the real binary on them.

use serde_json::Value;
use spool::format::meta;
use spool::{ConsumerConfig, Durability, Options};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args(args)
        .output()
        .expect("run segment-tool")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn info(store: &Path, format: &str) -> Output {
    tool(&["info", path_str(store), "--format", format])
}

fn consumers(store: &Path, stream: &str, format: &str) -> Output {
    tool(&["consumers", path_str(store), stream, "--format", format])
}

fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("output is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_records(o: &Output) -> Vec<(String, Value)> {
    stdout(o)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{line}");
            let kind = v["type"].as_str().expect("type").to_string();
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

fn consumer<'a>(records: &'a [(String, Value)], name: &str) -> &'a Value {
    of_kind(records, "consumer")
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no consumer {name} in {records:?}"))
}

fn consumer_dir(store: &Path, stream: &str, name: &str) -> PathBuf {
    store
        .join("streams")
        .join(stream)
        .join("consumers")
        .join(name)
}

/// Stream `s` with 10 messages and two consumers, left as a crash would
/// leave them (the store is dropped without reopening):
///
/// - `c`: offsets 0..=4 delivered; 0, 1 and 3 acknowledged; 2 nacked and
///   delivered again (attempt 2); 2 and 4 unacknowledged. Floor 2, next 5,
///   acked set {3}, lag 8.
/// - `d` (max 2 deliveries, dead letters to `dlq`): offset 0 delivered twice
///   (nacked both times), then dead-lettered by the next receive, which
///   delivers offset 1. Floor 1, next 2, 1 dead-lettered.
fn busy_store(dir: &Path) -> (spool::ConsumerStats, spool::ConsumerStats) {
    let store = open_store(dir, opts());
    let s = store.stream("s").expect("stream");
    for i in 0..10 {
        s.send(format!("m{i}").as_bytes()).expect("send");
    }
    let c = s.consumer("c").expect("consumer");
    let mut ds = Vec::new();
    for _ in 0..5 {
        ds.push(c.try_receive().expect("receive").expect("a message"));
    }
    let offsets: Vec<u64> = ds.iter().map(|d| d.offset()).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    let mut it = ds.into_iter();
    let (d0, d1, d2, d3, d4) = (
        it.next().expect("0"),
        it.next().expect("1"),
        it.next().expect("2"),
        it.next().expect("3"),
        it.next().expect("4"),
    );
    d0.ack().expect("ack");
    d1.ack().expect("ack");
    d3.ack().expect("ack");
    d2.nack().expect("nack");
    let again = c.try_receive().expect("receive").expect("redelivery");
    assert_eq!((again.offset(), again.attempt()), (2, 2));
    drop(again);
    drop(d4);

    let d = s
        .consumer_with(
            "d",
            ConsumerConfig::default()
                .max_deliveries(2)
                .dead_letter("dlq"),
        )
        .expect("consumer d");
    for attempt in 1..=2 {
        let m = d.try_receive().expect("receive").expect("message");
        assert_eq!((m.offset(), m.attempt()), (0, attempt));
        m.nack().expect("nack");
    }
    let m = d.try_receive().expect("receive").expect("message");
    assert_eq!(m.offset(), 1, "offset 0 went to the dead-letter stream");
    drop(m);
    let stats = (c.stats(), d.stats());
    store.sync().expect("sync");
    stats
}

fn check_busy_json(recs: &[(String, Value)]) {
    let c = consumer(recs, "c");
    assert_eq!(c["stream"], "s");
    assert_eq!(c["config"]["start"], "earliest");
    assert_eq!(c["config"]["max_deliveries"], Value::Null);
    let b = &c["buckets"][0];
    assert_eq!(b["ack_floor"], 2, "{c}");
    assert_eq!(b["next_offset"], 5);
    assert_eq!(b["end_offset"], 10);
    assert_eq!(b["lag"], 8);
    assert_eq!(b["acked_out_of_order"], 1);
    assert_eq!(b["unacked_deliveries"], 2);
    assert_eq!(b["unacked_redelivered"], 1);
    assert_eq!(b["max_attempts"], 2);
    assert_eq!(c["redelivered"], 1);
    assert_eq!(c["dead_lettered"], 0);
    assert_eq!(c["problems"], 0);

    let d = consumer(recs, "d");
    assert_eq!(d["config"]["max_deliveries"], 2);
    assert_eq!(d["config"]["dead_letter"], "dlq");
    let b = &d["buckets"][0];
    assert_eq!(b["ack_floor"], 1, "{d}");
    assert_eq!(b["next_offset"], 2);
    assert_eq!(b["lag"], 9);
    assert_eq!(b["acked_out_of_order"], 0);
    assert_eq!(b["unacked_deliveries"], 1);
    assert_eq!(b["unacked_redelivered"], 0);
    assert_eq!(d["dead_lettered"], 1);
}

#[test]
fn info_shows_consumers_floors_and_lag_in_both_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c_stats, d_stats) = busy_store(dir.path());
    // The engine's own view agrees with what the tool will read from disk.
    assert_eq!(c_stats.buckets[0].ack_floor, 2);
    assert_eq!(c_stats.buckets[0].next_offset, 5);
    assert_eq!(d_stats.buckets[0].ack_floor, 1);
    assert_eq!(d_stats.dead_lettered, 1);

    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let recs = json_records(&o);
    check_busy_json(&recs);
    // Consumer lines follow their stream's buckets, before the problems.
    let kinds: Vec<&str> = recs.iter().map(|(k, _)| k.as_str()).collect();
    let first_consumer = kinds
        .iter()
        .position(|k| *k == "consumer")
        .expect("consumer");
    assert!(kinds[..first_consumer].contains(&"segment"));
    assert_eq!(of_kind(&recs, "summary")[0]["consumers"], 2);
    assert!(consumer(&recs, "c")["journal_records"].as_u64() > Some(0));

    let o = info(dir.path(), "human");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("  consumer c: generation "), "{text}");
    assert!(
        text.contains(
            "p0: ack floor 2, next 5, lag 8 (end 10), 1 acked out of order, 2 unacknowledged deliveries"
        ),
        "{text}"
    );
    assert!(
        text.contains("p0: ack floor 1, next 2, lag 9 (end 10)"),
        "{text}"
    );
    assert!(text.contains("dead-lettered 1"), "{text}");
    assert!(text.contains("2 consumers"), "{text}");
}

#[test]
fn the_figures_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    busy_store(dir.path());
    // A reopen replays the journal and writes nothing; the first journaled
    // change after it (here a redelivery, given back at once) checkpoints
    // the replayed state into a new generation whose journal holds just
    // that delivery: the tool must read the same state.
    let g_before = json_records(&info(dir.path(), "json"))
        .iter()
        .find(|(k, v)| k == "consumer" && v["name"] == "c")
        .map(|(_, v)| v["generation"].clone())
        .expect("consumer c");
    {
        let store = open_store(dir.path(), opts());
        let s = store.stream("s").expect("stream");
        let c = s.consumer("c").expect("consumer");
        assert_eq!(c.stats().buckets[0].ack_floor, 2);
        let d = c.try_receive().expect("receive").expect("a redelivery");
        assert_eq!((d.offset(), d.attempt()), (2, 3));
        d.nack().expect("nack");
        store.close().expect("close");
    }
    let o = info(dir.path(), "json");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let recs = json_records(&o);
    let c = consumer(&recs, "c");
    assert_ne!(c["generation"], g_before);
    assert_eq!(c["journal_records"], 1);
    let b = &c["buckets"][0];
    assert_eq!(
        (&b["ack_floor"], &b["next_offset"], &b["lag"]),
        (&Value::from(2), &Value::from(5), &Value::from(8))
    );
    assert_eq!(b["acked_out_of_order"], 1);
    assert_eq!(b["unacked_deliveries"], 2);
    assert_eq!(b["unacked_redelivered"], 1);
    assert_eq!(consumer(&recs, "d")["dead_lettered"], 1);
    // The dead-letter stream holds the message.
    let dlq = of_kind(&recs, "stream")
        .into_iter()
        .find(|s| s["name"] == "dlq")
        .expect("dlq stream");
    assert_eq!(dlq["messages"], 1);
}

#[test]
fn consumers_command_in_both_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    busy_store(dir.path());
    let o = consumers(dir.path(), "s", "json");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let recs = json_records(&o);
    check_busy_json(&recs);
    let kinds: Vec<&str> = recs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, vec!["consumer", "consumer", "summary"]);
    let summary = of_kind(&recs, "summary")[0];
    assert_eq!(summary["stream"], "s");
    assert_eq!(summary["consumers"], 2);
    assert_eq!(summary["problems"], 0);

    let o = consumers(dir.path(), "s", "human");
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.starts_with("stream s: 2 consumers\n"), "{text}");
    assert!(text.contains("consumer c\n"), "{text}");
    assert!(
        text.contains("config: start earliest, visibility timeout 30.000s, unlimited deliveries"),
        "{text}"
    );
    assert!(
        text.contains("config: start earliest, visibility timeout 30.000s, max deliveries 2, dead letters to dlq"),
        "{text}"
    );
    assert!(
        text.contains("p0: ack floor 2, next offset 5, lag 8 (end 10)"),
        "{text}"
    );
    assert!(
        text.contains("acked set 1, 2 unacknowledged deliveries (1 delivered 2+ times, most 2)"),
        "{text}"
    );
    assert!(text.contains("dead-lettered 1"), "{text}");
    assert!(text.ends_with("2 consumers, 0 problems\n"), "{text}");

    // A stream without consumers, a missing stream, a bad name.
    let o = consumers(dir.path(), "dlq", "human");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("stream dlq: 0 consumers"));
    let o = consumers(dir.path(), "nope", "json");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("segment-tool: "), "{}", stderr(&o));
    assert_eq!(consumers(dir.path(), "../s", "json").status.code(), Some(2));
    assert_eq!(
        tool(&["consumers", path_str(dir.path())]).status.code(),
        Some(2)
    );
    let help = tool(&["consumers", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("unacknowledged deliveries"));
}

#[test]
fn a_truncated_checkpoint_gives_a_status_and_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    busy_store(dir.path());
    let ckpt = consumer_dir(dir.path(), "s", "c").join("checkpoint");
    let original = std::fs::read(&ckpt).expect("read checkpoint");
    for cut in 0..original.len() {
        std::fs::write(&ckpt, &original[..cut]).expect("truncate");
        for o in [
            info(dir.path(), "human"),
            info(dir.path(), "json"),
            consumers(dir.path(), "s", "human"),
            consumers(dir.path(), "s", "json"),
        ] {
            let code = o.status.code();
            assert!(
                matches!(code, Some(0..=2)),
                "cut {cut}: {code:?} {}",
                stderr(&o)
            );
            assert!(
                !stderr(&o).contains("panicked"),
                "cut {cut}: {}",
                stderr(&o)
            );
            // Every cut breaks the frame: a problem naming the checkpoint.
            assert_eq!(code, Some(1), "cut {cut}: {}", stdout(&o));
            assert!(
                stdout(&o).contains(path_str(&ckpt)),
                "cut {cut}: {}",
                stdout(&o)
            );
        }
    }
    // Garbage of the right frame but a body that is not a checkpoint.
    std::fs::write(&ckpt, meta::encode(*b"SPOOLCKP", 1, &[0xff; 40])).expect("write");
    let o = consumers(dir.path(), "s", "json");
    assert_eq!(o.status.code(), Some(1));
    let recs = json_records(&o);
    assert!(of_kind(&recs, "problem")
        .iter()
        .any(|p| p["file"] == path_str(&ckpt) && p["position"] == 24));
    assert_eq!(consumer(&recs, "c")["generation"], Value::Null);
    // The other consumer is still shown.
    assert_eq!(consumer(&recs, "d")["buckets"][0]["ack_floor"], 1);
    std::fs::write(&ckpt, &original).expect("restore");
    assert_eq!(info(dir.path(), "json").status.code(), Some(0));
}

/// A postcard varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A checkpoint body of one bucket with nothing delivered above `floor`.
fn checkpoint(generation: u64, floor: u64, next: u64) -> Vec<u8> {
    let mut b = Vec::new();
    varint(generation, &mut b);
    varint(1, &mut b); // buckets
    varint(floor, &mut b);
    varint(next, &mut b);
    varint(0, &mut b); // acked
    varint(0, &mut b); // attempts
    varint(0, &mut b); // redelivered
    varint(0, &mut b); // dead_lettered
    varint(0, &mut b); // skipped
    meta::encode(*b"SPOOLCKP", 1, &b)
}

#[test]
fn a_floor_past_the_end_of_the_log_is_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path(), opts());
        let s = store.stream("s").expect("stream");
        for i in 0..10 {
            s.send(format!("m{i}").as_bytes()).expect("send");
        }
        let c = s.consumer("c").expect("consumer");
        c.ack_up_to(0, 9).expect("ack all");
        store.close().expect("close");
    }
    let cdir = consumer_dir(dir.path(), "s", "c");
    let ckpt = cdir.join("checkpoint");
    // As if the log had lost its last 5 messages after they were acknowledged.
    std::fs::write(&ckpt, checkpoint(90, 15, 15)).expect("write");
    for o in [info(dir.path(), "json"), consumers(dir.path(), "s", "json")] {
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let recs = json_records(&o);
        let problems = of_kind(&recs, "problem");
        assert!(
            problems.iter().any(|p| p["file"] == path_str(&ckpt)
                && p["position"] == 26
                && p["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("past the bucket's end 10"))),
            "{problems:?}"
        );
        let c = consumer(&recs, "c");
        assert_eq!(c["generation"], 90);
        assert_eq!(c["buckets"][0]["ack_floor"], 15);
        assert_eq!(c["buckets"][0]["lag"], 0);
        // The old generation's journal is stale now: listed, not a problem.
        assert_eq!(c["stale_journals"].as_array().map(Vec::len), Some(1));
        assert_eq!(c["problems"], 1);
    }
    let o = consumers(dir.path(), "s", "human");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("at byte 26: consumer c: ack floor 15 of bucket p0 is past"));

    // A floor within the log, a window too wide to rebuild: reported, bounded.
    std::fs::write(&ckpt, checkpoint(90, 0, u64::MAX)).expect("write");
    let o = consumers(dir.path(), "s", "json");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let recs = json_records(&o);
    assert_eq!(consumer(&recs, "c")["buckets"][0]["next_offset"], u64::MAX);
}

#[test]
fn hostile_journal_records_are_reported_not_allocated() {
    use spool::format::journal::{self, Entry, JournalHeader, JOURNAL_HEADER_BYTES};
    let dir = tempfile::tempdir().expect("tempdir");
    busy_store(dir.path());
    let cdir = consumer_dir(dir.path(), "s", "c");
    let jpath = std::fs::read_dir(&cdir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal."))
        })
        .expect("journal");
    let original = std::fs::read(&jpath).expect("read journal");
    let h = JournalHeader::decode(&original).expect("header");
    // Valid CRCs, offsets far past anything the log holds.
    for e in [
        Entry::Delivered {
            bucket: 0,
            offset: u64::MAX,
            attempt: 1,
        },
        Entry::Delivered {
            bucket: 0,
            offset: 1 << 40,
            attempt: 1,
        },
        Entry::AckedUpTo {
            bucket: 0,
            offset: 1 << 40,
        },
    ] {
        let mut bytes = original.clone();
        let at = JOURNAL_HEADER_BYTES + 24;
        bytes[at..at + 24].copy_from_slice(&journal::encode(h.journal_id, &e));
        std::fs::write(&jpath, &bytes).expect("write journal");
        let o = consumers(dir.path(), "s", "json");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{e:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let recs = json_records(&o);
        assert!(
            of_kind(&recs, "problem")
                .iter()
                .any(|p| p["file"] == path_str(&jpath) && p["position"] == at as u64),
            "{e:?}: {recs:?}"
        );
        // Replay stopped before the record: one record was replayed.
        assert_eq!(consumer(&recs, "c")["journal_records"], 1);
    }
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

/// Message attributes: `info` counts them per segment (JSON and human),
/// the consumer's `expired` count comes from its journal's expiries (kind
/// 7) and then its checkpoint, `dump --journal` names them, `verify` finds
/// nothing wrong.
#[test]
fn attributes_and_expiries_are_shown_and_verified() {
    use spool::Message;
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = spool::Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        let c = s.consumer("c").unwrap();
        s.send_message(Message::new(b"later").deliver_after(Duration::from_secs(3600)))
            .unwrap();
        s.send_message(Message::new(b"gone").expires_at(SystemTime::UNIX_EPOCH))
            .unwrap();
        s.send_message(Message::new(b"g").group("g").id("i"))
            .unwrap();
        let d = c.try_receive().unwrap().unwrap();
        assert_eq!(d.payload(), b"g");
        assert_eq!(c.stats().expired, 1);
        store.close().unwrap();
    }
    let o = info(dir.path(), "json");
    let records = json_records(&o);
    let seg = of_kind(&records, "segment")[0];
    let a = &seg["attributes"];
    assert_eq!(
        (
            &a["scheduled"],
            &a["scheduled_later"],
            &a["with_ttl"],
            &a["expired"]
        ),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1)
        )
    );
    assert_eq!(
        (&a["with_id"], &a["grouped"]),
        (&Value::from(1), &Value::from(1))
    );
    let c = of_kind(&records, "consumer")[0];
    assert_eq!(c["expired"], 1);
    assert_eq!(c["journal_expiries"], 1);
    assert_eq!(c["journal_version"], 3);
    let human = stdout(&info(dir.path(), "human"));
    assert!(
        human.contains("1 scheduled (1 still ahead), 1 with a ttl (1 expired)"),
        "{human}"
    );
    assert!(human.contains("expired 1"), "{human}");
    let cdir = dir.path().join("streams/s/consumers/c");
    let journal = std::fs::read_dir(&cdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("journal.")
        })
        .unwrap();
    let dump = stdout(&tool(&["dump", "--journal", path_str(&journal)]));
    assert!(dump.contains("expired p0 #1 (not delivered)"), "{dump}");
    let v = tool(&["verify", path_str(dir.path())]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    // After a reopen and a rotation, the count is in the checkpoint.
    {
        let store = spool::Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        s.send(b"more").unwrap();
        let c = s.consumer("c").unwrap();
        c.try_receive().unwrap().unwrap().ack().unwrap();
        store.close().unwrap();
    }
    let records = json_records(&info(dir.path(), "json"));
    let c = of_kind(&records, "consumer")[0];
    assert_eq!(
        (&c["expired"], &c["journal_expiries"]),
        (&Value::from(1), &Value::from(0))
    );
}

/// A purge and a seek: `consumers` shows the skipped count and the floors
/// the engine has (also for a purge whose consumers' checkpoints a crash
/// would have lost: the count is the open's, from the first retained
/// offsets), and `verify` finds nothing wrong.
#[test]
fn a_purged_stream_and_a_seeked_consumer_are_shown_as_the_engine_has_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (skipped, floor) = {
        let store = open_store(dir.path(), opts());
        let s = store.stream("s").expect("stream");
        let (a, b) = (s.consumer("a").expect("a"), s.consumer("b").expect("b"));
        for i in 0..10u8 {
            s.send(&[i; 10]).expect("send");
        }
        a.ack_up_to(0, 2).expect("ack");
        assert_eq!(s.purge().expect("purge"), 10);
        s.send(b"after").expect("send");
        b.seek(spool::StartAt::Latest).expect("seek");
        let figures = (a.stats().skipped, b.stats().buckets[0].ack_floor);
        drop((a, b, s));
        store.close().expect("close");
        figures
    };
    assert_eq!((skipped, floor), (7, 11));
    let o = consumers(dir.path(), "s", "json");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let recs = json_records(&o);
    assert_eq!(consumer(&recs, "a")["skipped"], 7);
    assert_eq!(consumer(&recs, "a")["buckets"][0]["ack_floor"], 10);
    assert_eq!(consumer(&recs, "b")["skipped"], 10);
    assert_eq!(consumer(&recs, "b")["buckets"][0]["ack_floor"], 11);
    let o = consumers(dir.path(), "s", "human");
    assert!(stdout(&o).contains("skipped 7"), "{}", stdout(&o));
    let v = tool(&["verify", path_str(dir.path())]);
    assert_eq!(v.status.code(), Some(0), "{}{}", stdout(&v), stderr(&v));
}
