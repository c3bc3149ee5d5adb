//! Goal: `segment-tool consumers`, `verify` and `dump --journal` read
//! journals of format version 2, their delivered ranges (one record per
//! level of a batch receive) and acknowledged sets (one record per batch
//! ack) as the engine replays them: the state folded with them agrees with
//! the engine's figures, verify finds nothing wrong, dump shows each range
//! and each set's runs with byte positions and where a torn set stops the
//! replay. Method: a store built with the `spool` API, the real binary.

mod common;
use common::*;
use spool::{Message, StreamConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Stream `s` of two levels, 10 messages each; consumer `c` received all
/// with one batch receive (a delivered range per level, the higher first),
/// acknowledged p0 #1, #2, #5 and p1 #0 with one batch ack, then p0 #7 and
/// #8 with another, and p0 #3 alone. Returns the engine's figures
/// (ack floor, acked out of order as the inspector counts them) per level.
fn batch_store(dir: &Path) -> Vec<(u64, u64)> {
    let store = open_store(dir, opts());
    let s = store
        .create_stream("s", StreamConfig::default().priorities(2))
        .expect("stream");
    for i in 0..20u64 {
        s.send_message(Message::new(&i.to_le_bytes()).priority((i / 10) as u8))
            .expect("send");
    }
    let c = s.consumer("c").expect("consumer");
    let mut all = c.receive_batch(100, Duration::ZERO).expect("receive");
    assert_eq!(all.len(), 20);
    let mut take = |p: u8, offsets: &[u64]| -> Vec<spool::Delivery> {
        let (hit, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut all)
            .into_iter()
            .partition(|d| d.priority() == p && offsets.contains(&d.offset()));
        all = rest;
        hit
    };
    let mut first = take(0, &[1, 2, 5]);
    first.extend(take(1, &[0]));
    c.ack_batch(first).expect("batch ack");
    c.ack_batch(take(0, &[7, 8])).expect("batch ack");
    for d in take(0, &[3]) {
        d.ack().expect("ack");
    }
    let figures = c
        .stats()
        .buckets
        .iter()
        .map(|b| (b.ack_floor, b.next_offset))
        .collect();
    drop(all);
    figures
}

fn newest_journal(dir: &Path) -> PathBuf {
    let cdir = dir.join("streams/s/consumers/c");
    std::fs::read_dir(&cdir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal."))
        })
        .max()
        .expect("a journal")
}

#[test]
fn consumers_and_verify_fold_acknowledged_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let figures = batch_store(dir.path());
    assert_eq!(figures, [(0, 10), (1, 10)]);
    let o = tool(&["consumers", s(dir.path()), "s", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let recs = json_records(&o);
    let c = &recs
        .iter()
        .find(|(k, _)| k == "consumer")
        .expect("consumer")
        .1;
    assert_eq!(c["journal_version"], 2, "{c}");
    // Two delivered ranges, two sets, one ack.
    assert_eq!(c["journal_records"], 5, "{c}");
    assert_eq!(c["journal_ack_sets"], 2, "{c}");
    assert_eq!(c["journal_set_acks"], 6, "{c}");
    let b = &c["buckets"];
    assert_eq!(
        (b[0]["ack_floor"].as_u64(), b[0]["next_offset"].as_u64()),
        (Some(0), Some(10))
    );
    // p0: 1, 2, 3, 5, 7, 8 acknowledged above the floor of 0.
    assert_eq!(b[0]["acked_out_of_order"], 6);
    assert_eq!(b[0]["unacked_deliveries"], 4);
    assert_eq!(
        (
            b[1]["ack_floor"].as_u64(),
            b[1]["unacked_deliveries"].as_u64()
        ),
        (Some(1), Some(9))
    );
    let o = tool(&["consumers", s(dir.path()), "s"]);
    assert!(
        stdout(&o).contains("2 acknowledged sets of 6 acks replayed (journal version 2)"),
        "{}",
        stdout(&o)
    );
    let o = tool(&["verify", s(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn dump_journal_shows_sets_and_where_a_torn_one_stops_the_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    batch_store(dir.path());
    let jpath = newest_journal(dir.path());
    let o = tool(&["dump", "--journal", s(&jpath), "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let recs = json_records(&o);
    assert_eq!(recs[0].0, "journal");
    assert_eq!(recs[0].1["version"], 2);
    let records: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|(k, _)| k == "journal_record")
        .map(|(_, v)| v)
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "delivered_range",
            "delivered_range",
            "acked_set",
            "acked_set",
            "acked"
        ],
        "{records:?}"
    );
    // The batch receive: one range per level, p1 first (served first).
    for (r, (position, priority)) in records.iter().zip([(64, 1), (88, 0)]) {
        assert_eq!(r["position"], position, "{r}");
        assert_eq!(r["bytes"], 24, "{r}");
        assert_eq!(r["priority"], priority, "{r}");
        assert_eq!(
            (r["offset"].as_u64(), r["attempt"].as_u64()),
            (Some(0), Some(1)),
            "{r}"
        );
        assert!(r["acks"].is_null(), "{r}");
        assert_eq!(
            r["runs"],
            serde_json::json!([{"priority": priority, "first": 0, "last": 9}]),
            "{r}"
        );
    }
    let first = records[2];
    assert_eq!(first["position"], 112);
    assert_eq!(first["acks"], 4);
    assert_eq!(
        first["runs"],
        serde_json::json!([
            {"priority": 0, "first": 1, "last": 2},
            {"priority": 0, "first": 5, "last": 5},
            {"priority": 1, "first": 0, "last": 0},
        ])
    );
    assert_eq!(
        records[3]["position"],
        112 + first["bytes"].as_u64().unwrap()
    );
    assert_eq!(
        (
            records[4]["priority"].as_u64(),
            records[4]["offset"].as_u64()
        ),
        (Some(0), Some(3))
    );
    let summary = &recs.last().unwrap().1;
    assert_eq!(summary["records"], 5);
    assert!(summary["stopped_at"].is_null(), "{summary}");
    let o = tool(&["dump", "--journal", s(&jpath)]);
    let text = stdout(&o);
    assert!(
        text.contains("@64+24 delivered p1 #0..=#9, 10 first deliveries"),
        "{text}"
    );
    assert!(
        text.contains("@88+24 delivered p0 #0..=#9, 10 first deliveries"),
        "{text}"
    );
    assert!(
        text.contains("@112+48 acked set of 4 in 3 runs: p0 #1..=#2, #5 p1 #0"),
        "{text}"
    );
    assert!(text.contains("acked p0 #3"), "{text}");
    assert!(text.contains("5 records, 0 problems"), "{text}");

    // The second set torn: replay (the engine's and the tool's) stops there.
    let second = records[3]["position"].as_u64().unwrap() as usize;
    let mut bytes = std::fs::read(&jpath).expect("read");
    bytes[second + 30] ^= 0x40;
    std::fs::write(&jpath, &bytes).expect("write");
    let o = tool(&["dump", "--journal", s(&jpath), "--format", "json"]);
    assert_eq!(
        code(&o),
        0,
        "a torn tail is what a crash leaves: {}",
        stdout(&o)
    );
    let recs = json_records(&o);
    let summary = &recs.last().unwrap().1;
    assert_eq!(summary["records"], 3);
    assert_eq!(summary["stopped_at"], second as u64);
    let o = tool(&["dump", "--journal", s(&jpath)]);
    assert!(
        stdout(&o).contains(&format!("replay stops at byte {second}")),
        "{}",
        stdout(&o)
    );
    let o = tool(&["consumers", s(dir.path()), "s", "--format", "json"]);
    let recs = json_records(&o);
    let c = &recs
        .iter()
        .find(|(k, _)| k == "consumer")
        .expect("consumer")
        .1;
    assert_eq!(
        (
            c["journal_records"].as_u64(),
            c["journal_ack_sets"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(c["buckets"][0]["acked_out_of_order"], 3);
    // The ranges before it still count: every message was delivered.
    assert_eq!(c["buckets"][0]["next_offset"], 10);
    assert_eq!(c["buckets"][1]["next_offset"], 10);

    // --limit applies; a file that is no journal is a problem.
    let o = tool(&["dump", "--journal", s(&jpath), "--limit", "0"]);
    assert!(stdout(&o).contains("0 records"), "{}", stdout(&o));
    let not = dir.path().join("store.meta");
    let o = tool(&["dump", "--journal", s(&not)]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("header unusable"), "{}", stdout(&o));
    // Journal mode takes no stream.
    let o = tool(&["dump", s(dir.path()), "s", "--journal", s(&jpath)]);
    assert_eq!(code(&o), 2);
}
