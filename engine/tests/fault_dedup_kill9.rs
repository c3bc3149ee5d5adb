//! Goal: with deduplication, a send acknowledged before the process was
//! killed with SIGKILL (at any moment, during `Store::open` too) is never
//! stored again by a retry, and the retry returns its offset.
//!
//! Method: this binary re-runs itself as a child (`dedup_kill9_child`,
//! which does nothing unless `SPOOL_DEDUP_KILL9_CHILD` names a store). Each
//! child opens the store (`Durability::Always`, 64 KiB segments, so
//! segments roll), then sends ids `0, 1, 2, …` in order, each id's payload
//! a function of the id, some as batches holding a duplicate, and prints
//! each acknowledged (id, offset). Every child starts again from id 0: it
//! retries everything its predecessors sent, acknowledged or not. The
//! parent kills it after a random delay, and checks: every offset a child
//! returned for an id equals the one acknowledged for it before; after the
//! kill the log holds each id once, every acknowledged one at its offset.
//! `SPOOL_KILL9_ITERS` sets the number of kills (default 30);
//! `SPOOL_KILL9_SEED` replays the choices of a run.
//!
//! `dedup_kill9_loop_with_retention` runs the same on a stream bounded by
//! `max_bytes`, whose rolls delete the oldest segments as the children
//! send: every child retries ids whose segments were deleted (their ids
//! kept, DESIGN.md §7.1), and must get their offsets back; the log is
//! checked from its first retained offset.

pub mod common;

use common::process::{kill9_plan, open_retry, rerun, say_to_parent, spawn_marked};
use spool::{Durability, Message, Options, Store, StreamConfig};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const CHILD_ENV: &str = "SPOOL_DEDUP_KILL9_CHILD";
/// Set (to anything) for children whose stream deletes by size.
const RETENTION_ENV: &str = "SPOOL_DEDUP_KILL9_RETENTION";
/// `max_bytes` of the stream of those children: four segments.
const MAX_BYTES: u64 = 4 * 64 * 1024;
const MARK: &str = "@@d ";
const IDS_MAX: u64 = 4_000;
const GENERATIONS_PER_STORE: u32 = 40;

fn options() -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("id {i} ").into_bytes();
    p.resize(200 + (i as usize * 131) % 1800, (i % 251) as u8);
    p
}

fn key(i: u64) -> String {
    format!("id-{i}")
}

#[test]
fn dedup_kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let say = |line: String| say_to_parent(MARK, &line);
    say("opening".into());
    let store = Store::open(Path::new(&dir), options()).expect("child open");
    let config = match std::env::var_os(RETENTION_ENV) {
        Some(_) => StreamConfig::default().max_bytes(MAX_BYTES),
        None => StreamConfig::default(),
    };
    let s = store.stream_with("s", config).expect("stream");
    say("ready".into());
    let mut i = 0;
    while i < IDS_MAX {
        if i % 5 == 2 {
            let (a, b) = (payload(i), payload(i + 1));
            let (ka, kb) = (key(i), key(i + 1));
            let got = s
                .send_batch([
                    Message::new(&a).id(&ka),
                    Message::new(&b).id(&kb),
                    Message::new(&a).id(&ka),
                    Message::new(b"no id"),
                ])
                .expect("batch");
            assert_eq!(got[0], got[2]);
            say(format!("{i} {}", got[0]));
            say(format!("{} {}", i + 1, got[1]));
            i += 2;
        } else {
            let p = payload(i);
            let k = key(i);
            let o = s.send_message(Message::new(&p).id(&k)).expect("send");
            say(format!("{i} {o}"));
            i += 1;
        }
    }
}

/// The log after a kill: each id once; every acknowledged id at its offset
/// with its payload.
/// Returns the first retained offset.
fn check_store(dir: &Path, acked: &HashMap<u64, u64>, what: &str) -> u64 {
    let store = open_retry(dir, options()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let s = store.stream("s").unwrap();
    let first = s.stats().buckets[0].first_offset;
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for r in s.iter_from(first) {
        let r = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
        if let Some(id) = r.message_id() {
            let n: u64 = std::str::from_utf8(&id[3..]).unwrap().parse().unwrap();
            assert_eq!(r.payload(), payload(n), "{what}: id {n}");
            let prev = seen.insert(n, r.offset());
            assert!(prev.is_none(), "{what}: id {n} stored twice");
        }
    }
    for (id, o) in acked.iter().filter(|&(_, &o)| o >= first) {
        assert_eq!(seen.get(id), Some(o), "{what}: acknowledged id {id} lost");
    }
    first
}

#[test]
fn dedup_kill9_loop() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    kill9_loop(false);
}

#[test]
fn dedup_kill9_loop_with_retention() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    kill9_loop(true);
}

fn kill9_loop(retention: bool) {
    let (iters, mut rng) = kill9_plan("dedup kill9", 30);
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = tmp.path().to_path_buf();
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut retried = 0u64;
    let mut deleted_acked = false;
    for iter in 0..iters {
        if iter % GENERATIONS_PER_STORE == 0 {
            dir = tmp.path().join(format!("store-{iter}"));
            acked.clear();
        }
        let mut cmd = rerun("dedup_kill9_child");
        cmd.env(CHILD_ENV, &dir);
        if retention {
            cmd.env(RETENTION_ENV, "1");
        }
        let (mut child, rx, reader) = spawn_marked(&mut cmd, MARK);
        // Wait for the child to start opening; kill during the open now
        // and then, else after it is sending.
        let first = rx.recv_timeout(Duration::from_secs(60));
        let mut heard = Vec::new();
        if rng.below(10) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        } else {
            // After the k-th line the child says (one per id acknowledged:
            // first the retries of the ones before, then new ones), so
            // that the kills land among new sends, and the store grows
            // (and rolls, and retention deletes), however loaded the
            // machine is.
            let k = 1 + rng.below(acked.len() as u64 + 300);
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
                if line == "ready" {
                    continue;
                }
                heard.push(line);
                if heard.len() as u64 >= k {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
        drop(first);
        let _ = reader.join();
        let what = format!("kill {iter}");
        heard.extend(rx.try_iter());
        for line in heard {
            let mut parts = line.split(' ');
            let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(id), Ok(offset)) = (a.parse::<u64>(), b.parse::<u64>()) else {
                continue;
            };
            match acked.get(&id) {
                Some(&o) => {
                    assert_eq!(offset, o, "{what}: retry of id {id} got another offset");
                    retried += 1;
                }
                None => {
                    acked.insert(id, offset);
                }
            }
        }
        let first = check_store(&dir, &acked, &what);
        // Retention deleted acknowledged ids, whose retries were then
        // checked against the kept ones.
        deleted_acked |= acked.values().any(|&o| o < first);
    }
    assert!(retried > 0, "no child retried an acknowledged id");
    if retention {
        assert!(
            deleted_acked,
            "no acknowledged id was in a deleted segment ({} acknowledged in the last store, highest offset {:?})",
            acked.len(),
            acked.values().max()
        );
    }
}
