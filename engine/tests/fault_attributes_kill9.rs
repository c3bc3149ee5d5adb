//! Goal: a consumer of scheduled, expiring and grouped messages killed with
//! SIGKILL at any moment keeps their rules across the restarts: no message
//! is delivered before its deliver-at or after its expires-at, never two
//! messages of a group are held at once, nothing whose ack returned comes
//! back, and in the end every message is acknowledged, delivered, or
//! (expired) in the dead-letter stream, each expiry counted once.
//!
//! Method: this test binary re-runs itself as a child process (the
//! `attr_kill9_child` test, which does nothing unless `SPOOL_AK9_CHILD`
//! names a store). Before each child the parent sends a round of messages
//! (`kind` says what each offset carries). The child (`Durability::Always`)
//! receives in batches and tells the parent, on its stdout, each delivery
//! with what its own clock said of it (early, expired, ok), each ack after
//! it returned and each nack; the parent kills it after a random delay and
//! checks the lines, then runs the next child on the same store. At the
//! end the parent drains the consumer itself.
//!
//! `SPOOL_KILL9_ITERS` sets the number of kills (default 40).

pub mod common;

use common::process::{open_retry, rerun, say_to_parent, spawn_marked};
use spool::{dead_letter_headers, ConsumerConfig, Durability, Message, Options, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

const CHILD_ENV: &str = "SPOOL_AK9_CHILD";
const MARK: &str = "@@ak9 ";
const PER_ROUND: u64 = 24;

fn options() -> Options {
    Options::default()
        .durability(Durability::Always)
        .consumer_journal_bytes(4096)
}

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .visibility_timeout(Duration::from_secs(3600))
        .dead_letter("dead")
}

/// `o % 8`: 0, 1 plain; 2 scheduled an hour ahead; 3 scheduled 30 ms
/// ahead; 4 expired when sent; 5 a ttl of 20 ms; 6 group "a"; 7 group "b".
fn kind(o: u64) -> u64 {
    o % 8
}

fn group(o: u64) -> Option<u8> {
    match kind(o) {
        6 => Some(0),
        7 => Some(1),
        _ => None,
    }
}

fn message(o: u64) -> Message<'static> {
    let m = Message::new(b"m");
    match kind(o) {
        2 => m.deliver_after(Duration::from_secs(3600)),
        3 => m.deliver_after(Duration::from_millis(30)),
        4 => m.expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(2)),
        5 => m.ttl(Duration::from_millis(20)),
        6 => m.group("a"),
        7 => m.group("b"),
        _ => m,
    }
}

#[test]
fn attr_kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let say = |line: String| say_to_parent(MARK, &line);
    let store = Store::open(&dir, options()).expect("child: open");
    let c = store
        .stream("q")
        .expect("stream")
        .consumer_with("c", config())
        .expect("consumer");
    say("ready".into());
    let mut n = 0u64;
    loop {
        let t0 = SystemTime::now();
        let batch = c
            .receive_batch(4, Duration::from_millis(20))
            .expect("receive");
        let t1 = SystemTime::now();
        for d in &batch {
            let r = d.record();
            let verdict = if r.deliver_at().is_some_and(|at| at > t1) {
                "early"
            } else if r.expires_at().is_some_and(|at| at <= t0) {
                "expired"
            } else {
                "ok"
            };
            say(format!("got {} {verdict}", d.offset()));
        }
        for d in batch {
            n += 1;
            let o = d.offset();
            if n % 5 == 0 {
                d.nack().expect("nack");
                say(format!("nacked {o}"));
            } else {
                d.ack().expect("ack");
                say(format!("acked {o}"));
            }
        }
    }
}

#[test]
fn kill9_with_scheduled_expiring_and_grouped_messages() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let iters: u64 = common::env_parsed("SPOOL_KILL9_ITERS").unwrap_or(40);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut end = 0u64;
    let mut confirmed: BTreeSet<u64> = BTreeSet::new();
    let mut attempted: BTreeSet<u64> = BTreeSet::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for iter in 0..iters {
        {
            let store = open_retry(dir, options()).expect("open");
            let s = store.stream("q").expect("stream");
            s.consumer_with("c", config()).expect("consumer");
            for _ in 0..PER_ROUND {
                assert_eq!(s.send_message(message(end)).expect("send"), end);
                end += 1;
            }
            store.close().expect("close");
        }
        let (mut child, rx, reader) =
            spawn_marked(rerun("attr_kill9_child").env(CHILD_ENV, dir), MARK);
        // The kill comes 0..40 ms after the child is ready (or at once).
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(x % 40);
        let ready = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            matches!(ready.as_deref(), Ok("ready")),
            "child not ready: {ready:?}"
        );
        // Every other child is killed only after its first ack returned,
        // so that the children make progress however loaded the machine.
        let mut lines = Vec::new();
        if iter % 2 == 0 {
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
                let acked = line.starts_with("acked");
                lines.push(line);
                if acked {
                    break;
                }
            }
        }
        std::thread::sleep(delay);
        let _ = child.0.kill();
        let _ = child.0.wait();
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        // The child's account.
        let mut held: BTreeMap<u64, u64> = BTreeMap::new();
        for line in lines {
            let mut w = line.split(' ');
            let (what, o) = (w.next().unwrap(), w.next().unwrap().parse::<u64>().unwrap());
            match what {
                "got" => {
                    let verdict = w.next().unwrap();
                    assert_eq!(verdict, "ok", "#{o} (kind {}) delivered {verdict}", kind(o));
                    assert_ne!(kind(o), 2, "#{o} delivered an hour early");
                    assert_ne!(kind(o), 4, "#{o} delivered expired");
                    assert!(!confirmed.contains(&o), "#{o} came back after its ack");
                    if let Some(g) = group(o) {
                        assert!(
                            !held.values().any(|&h| group(h) == Some(g)),
                            "#{o} delivered while another of group {g} is held: {held:?}"
                        );
                    }
                    held.insert(o, o);
                    attempted.insert(o);
                }
                "acked" => {
                    held.remove(&o);
                    confirmed.insert(o);
                }
                "nacked" => {
                    held.remove(&o);
                }
                _ => panic!("unknown line {line}"),
            }
        }
    }
    // The drain, after every message is due or expired (but kind 2).
    std::thread::sleep(Duration::from_millis(50));
    let store = open_retry(dir, options()).expect("open");
    let c = store
        .stream("q")
        .expect("stream")
        .consumer_with("c", config())
        .expect("consumer");
    let mut drained = BTreeSet::new();
    loop {
        let batch = c.receive_batch(8, Duration::ZERO).expect("drain");
        if batch.is_empty() {
            break;
        }
        let mut groups = BTreeSet::new();
        for d in &batch {
            let o = d.offset();
            assert!(!matches!(kind(o), 2 | 4), "#{o} drained (kind {})", kind(o));
            assert!(!confirmed.contains(&o), "#{o} came back after its ack");
            if let Some(g) = group(o) {
                assert!(groups.insert(g), "two of group {g} in one batch");
            }
            drained.insert(o);
        }
        c.ack_batch(batch).expect("ack");
    }
    let dead = store.stream("dead").expect("dead");
    let mut dead_letters = BTreeSet::new();
    let mut i = 0;
    while let Some(r) = dead.read(i).expect("read dead") {
        assert_eq!(r.header(dead_letter_headers::REASON), Some(&b"expired"[..]));
        let o: u64 = std::str::from_utf8(r.header(dead_letter_headers::OFFSET).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(matches!(kind(o), 4 | 5), "#{o} dead-lettered");
        dead_letters.insert(o);
        i += 1;
    }
    // Each expiry is journaled once; a kill between the dead letter's
    // append and its journal record may append a copy twice.
    assert_eq!(c.stats().expired, dead_letters.len() as u64);
    for o in 0..end {
        let ok = match kind(o) {
            2 => !drained.contains(&o) && !attempted.contains(&o),
            4 => dead_letters.contains(&o),
            5 => dead_letters.contains(&o) || drained.contains(&o) || attempted.contains(&o),
            _ => drained.contains(&o) || attempted.contains(&o),
        };
        assert!(ok, "#{o} (kind {}) lost", kind(o));
    }
    assert!(
        !confirmed.is_empty() && !dead_letters.is_empty(),
        "the children did something"
    );
}
