//! Goal: the lifecycle operations (purge, seek, redrive, stream deletion)
//! keep their promises when the process is killed with SIGKILL at any
//! moment, also in the middle of one of them: nothing acknowledged is lost,
//! a purge or a seek that returned holds, a deleted stream stays deleted,
//! no blob is left behind without a message that refers to it, and the
//! store opens, verifies and works afterwards.
//!
//! Method: this binary re-runs itself as a child (`lifecycle_kill9_child`,
//! which does nothing unless `SPOOL_LIFECYCLE_KILL9_CHILD` names a store).
//! Each child opens the store (`Durability::Always`, 64 KiB segments, claim
//! checks from 2 KiB) and runs rounds: sends to `jobs` (some messages
//! large enough to be claim checks), receives with a consumer that dead-
//! letters at the first nack and acks, nacks or keeps each, re-drives the
//! dead letters now and then, purges `jobs` now and then, seeks the
//! consumer forward now and then, and makes, fills and deletes a scratch
//! stream each round. It prints what returned. The parent kills it after a
//! random delay and checks, on the store as the kill left it and after an
//! open: no damage (the inspector), every acknowledged send above the last
//! returned purge readable with its payload, nothing below it, the
//! consumer's floor not below the last returned seek, every deleted
//! scratch stream absent, and no orphan blob once the store was open.
//! `SPOOL_KILL9_ITERS` sets the number of kills (default 30);
//! `SPOOL_KILL9_SEED` replays the choices of a run.

pub mod common;

use common::process::{kill9_plan, open_retry, rerun, say_to_parent, spawn_marked};
use spool::inspect;
use spool::{ConsumerConfig, Durability, Message, Options, StartAt, Store, StreamConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const CHILD_ENV: &str = "SPOOL_LIFECYCLE_KILL9_CHILD";
const ROUND_ENV: &str = "SPOOL_LIFECYCLE_KILL9_ROUND";
const MARK: &str = "@@l ";
const GENERATIONS_PER_STORE: u32 = 15;
const PER_ROUND: u64 = 12;

fn options() -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(64 * 1024)
}

/// Claim checks from 2 KiB.
fn stream_config() -> StreamConfig {
    StreamConfig::default().claim_check_threshold(2048)
}

fn consumer_config() -> ConsumerConfig {
    ConsumerConfig::default()
        .max_deliveries(1)
        .dead_letter("jobs.dead")
}

/// The payload of the message tagged `tag`: large (a claim check) for one
/// tag in five, each distinct (so each large one is a blob of its own).
fn payload(tag: u64) -> Vec<u8> {
    let mut p = format!("job {tag} ").into_bytes();
    let len = if tag % 5 == 0 {
        3000 + tag as usize % 500
    } else {
        100
    };
    p.resize(len, (tag % 251) as u8);
    p
}

fn tag_of(payload: &[u8]) -> u64 {
    let digits: String = payload
        .iter()
        .skip(4)
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    digits.parse().expect("a job payload")
}

#[test]
fn lifecycle_kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let first_round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let say = |line: String| say_to_parent(MARK, &line);
    let store = Store::open(Path::new(&dir), options()).expect("child open");
    let jobs = store.stream_with("jobs", stream_config()).expect("jobs");
    let dead = store
        .stream_with("jobs.dead", stream_config())
        .expect("dead letters");
    let worker = jobs
        .consumer_with("w", consumer_config())
        .expect("consumer");
    say("ready".into());
    let mut seek_to = worker.stats().buckets[0].ack_floor;
    for round in first_round.. {
        // Sends: each acknowledged one by its offset and tag.
        for i in 0..PER_ROUND {
            let tag = round * PER_ROUND + i;
            let o = jobs.send(&payload(tag)).expect("send");
            say(format!("sent {o} {tag}"));
        }
        // Receives: ack one in three, nack one (a dead letter), keep one.
        for i in 0..PER_ROUND {
            let Some(d) = worker.try_receive().expect("receive") else {
                break;
            };
            match i % 3 {
                0 => d.ack().expect("ack"),
                1 => d.nack().expect("nack"),
                _ => drop(d),
            }
        }
        if round % 3 == 1 {
            let n = dead.redrive("redrive", 100).expect("redrive");
            say(format!("redriven {n}"));
        }
        if round % 4 == 2 {
            jobs.purge().expect("purge");
            let end = jobs.stats().buckets[0].end_offset;
            say(format!("purged {end}"));
        }
        if round % 5 == 3 {
            // Forward only, so that a seek cut short by the kill never
            // lands below the last one that returned.
            let end = jobs.stats().buckets[0].end_offset;
            seek_to = seek_to.max(end.saturating_sub(4));
            worker.seek(StartAt::Offset(seek_to)).expect("seek");
            say(format!("seek {seek_to}"));
        }
        let name = format!("scratch-{round}");
        let scratch = store.stream_with(&name, stream_config()).expect("scratch");
        for i in 0..4 {
            scratch
                .send_message(Message::new(&payload(round * 7 + i * 5)))
                .expect("scratch send");
        }
        say(format!("made {round}"));
        store.delete_stream(&name).expect("delete");
        say(format!("deleted {round}"));
    }
}

#[derive(Default)]
struct Said {
    sent: BTreeMap<u64, u64>,
    purged_to: u64,
    seek: u64,
    deleted: BTreeSet<u64>,
    /// A child got past its open of this store.
    ready: bool,
}

fn check(dir: &Path, said: &Said, what: &str) {
    // The store as the kill left it (once an open has made it whole: a
    // kill in the first open of a new one may leave half a store, which
    // the next open finishes): damage is never acceptable (torn tails and
    // orphans are warnings; the open handles them).
    if said.ready {
        let info = inspect::inspect_store(dir).unwrap_or_else(|e| panic!("{what}: inspect: {e}"));
        let bad: Vec<_> = info.problems.iter().filter(|p| !p.warning).collect();
        assert!(bad.is_empty(), "{what}: damage after the kill: {bad:?}");
    }

    {
        let store = open_retry(dir, options()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        let jobs = store.stream("jobs").unwrap();
        let worker = jobs.consumer_with("w", consumer_config()).unwrap();
        let floor = worker.stats().buckets[0].ack_floor;
        assert!(
            floor >= said.seek,
            "{what}: consumer floor {floor} below the seek to {} that returned",
            said.seek
        );
        // Below the first retained offset is what the consumer was done
        // with (acked, dead-lettered, or passed by a seek or a purge):
        // retention by interest deletes it, a purge removes it. It never
        // reaches past the consumer's floor, nor stops below a purge that
        // returned.
        let first = jobs.stats().buckets[0].first_offset;
        assert!(
            first <= floor,
            "{what}: retained from {first}, above the floor {floor}"
        );
        let mut found = BTreeMap::new();
        for r in jobs.iter_from(0) {
            let r = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
            assert!(
                r.offset() >= said.purged_to,
                "{what}: offset {} is below a purge that returned (to {})",
                r.offset(),
                said.purged_to
            );
            found.insert(r.offset(), tag_of(r.payload()));
        }
        // From there on, every acknowledged send, with its payload (the
        // rest of the offsets are re-driven copies and sends the kill cut).
        for (&o, &tag) in said.sent.range(first..) {
            let got = found.get(&o);
            assert_eq!(got, Some(&tag), "{what}: acknowledged send at {o} lost");
            let r = jobs.read(o).unwrap().unwrap();
            assert_eq!(r.payload(), payload(tag), "{what}: payload at {o}");
        }
        let end = jobs.stats().buckets[0].end_offset;
        assert_eq!(
            found.len() as u64,
            end - first,
            "{what}: a hole in {first}..{end}"
        );
        let streams = store.streams();
        for r in &said.deleted {
            let name = format!("scratch-{r}");
            assert!(
                !streams.contains(&name),
                "{what}: {name} deleted, still there"
            );
        }
        // A scratch stream made and not deleted may be there, whole.
        for name in streams.iter().filter(|s| s.starts_with("scratch-")) {
            let s = store.stream(name).unwrap();
            for r in s.iter_from(0) {
                let r = r.unwrap_or_else(|e| panic!("{what}: {name}: read: {e}"));
                assert_eq!(r.payload(), payload(tag_of(r.payload())), "{what}: {name}");
            }
            store.delete_stream(name).unwrap();
        }
        // The store works: a send and a receive after all that.
        let o = jobs.send(&payload(1)).unwrap();
        assert!(o >= said.purged_to);
        store.close().unwrap();
    }
    // After an open, nothing is left that no message refers to.
    let info = inspect::inspect_store(dir).unwrap();
    let problems: Vec<_> = info
        .problems
        .iter()
        .chain(inspect::check_blobs(&info).iter())
        .filter(|p| !p.reason.starts_with("torn tail"))
        .cloned()
        .collect();
    let orphans: Vec<_> = problems
        .iter()
        .filter(|p| p.reason.contains("orphan"))
        .collect();
    assert!(
        orphans.is_empty(),
        "{what}: orphans after an open: {orphans:?}"
    );
    let bad: Vec<_> = problems.iter().filter(|p| !p.warning).collect();
    assert!(bad.is_empty(), "{what}: damage after an open: {bad:?}");
}

#[test]
fn lifecycle_kill9_loop() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (iters, mut rng) = kill9_plan("lifecycle kill9", 30);
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = tmp.path().to_path_buf();
    let mut said = Said::default();
    let mut lines = 0u64;
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for iter in 0..iters {
        if iter % GENERATIONS_PER_STORE == 0 {
            dir = tmp.path().join(format!("store-{iter}"));
            said = Said::default();
        }
        // Each child starts at another phase of the rounds' schedule.
        let round = u64::from(iter) * 1_001;
        let (mut child, rx, reader) = spawn_marked(
            rerun("lifecycle_kill9_child")
                .env(CHILD_ENV, &dir)
                .env(ROUND_ENV, round.to_string()),
            MARK,
        );
        let what = format!("kill {iter}");
        let mut heard = |line: String, said: &mut Said| {
            lines += 1;
            if line == "ready" {
                said.ready = true;
            }
            let mut parts = line.split(' ');
            let (Some(kind), Some(a)) = (parts.next(), parts.next()) else {
                return;
            };
            let a: u64 = a.parse().unwrap();
            *seen.entry(kind.to_string()).or_default() += 1;
            match kind {
                "sent" => {
                    let tag: u64 = parts.next().unwrap().parse().unwrap();
                    said.sent.insert(a, tag);
                }
                "purged" => said.purged_to = said.purged_to.max(a),
                "seek" => said.seek = said.seek.max(a),
                "deleted" => {
                    said.deleted.insert(a);
                }
                _ => {}
            }
        };
        // The kill follows the k-th line the child says (k = 0: during
        // its open), a little later: counted in the child's own steps, so
        // it lands among all kinds of operation however loaded the
        // machine is (a round says about fifteen lines).
        let k = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(130)
        };
        for _ in 0..k {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => heard(line, &mut said),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        let _ = child.0.kill();
        let _ = child.0.wait();
        let _ = reader.join();
        for line in rx.try_iter() {
            heard(line, &mut said);
        }
        check(&dir, &said, &what);
    }
    println!("lifecycle kill9: returned operations {seen:?}");
    assert!(lines > 0, "no child ever got going");
    if iters >= 20 {
        // The kills cut every kind of operation.
        for kind in ["sent", "redriven", "purged", "seek", "deleted"] {
            assert!(
                seen.contains_key(kind),
                "no {kind} returned in {iters} kills: {seen:?}"
            );
        }
    }
}
