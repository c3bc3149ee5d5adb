//! Goal: `segment-tool tail` prints the last N messages, and with -f the new
//! ones as they are sent. Method: the real binary beside a live store.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn last_n_and_follow() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let o = tool(&["tail", s(dir.path()), "s", "-n", "3", "--format", "json"]);
    assert_eq!(code(&o), 0);
    let offs: Vec<u64> = json_records(&o)
        .iter()
        .map(|(_, v)| v["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, vec![297, 298, 299]);
    let o = tool(&["tail", s(dir.path()), "s", "-n", "1"]);
    assert!(stdout(&o).contains("#299 "));

    let store = open_store(dir.path(), opts());
    let st = store.stream("s").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args([
            "tail",
            "-f",
            s(dir.path()),
            "s",
            "-n",
            "0",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..200 {
        st.send(&[b'x'; 400]).unwrap();
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0;
    for _ in 0..200 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        last = v["data"]["offset"].as_u64().unwrap();
    }
    assert_eq!(last, 499, "followed across segment rolls");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A `tail -f` child of the tool and what it printed: (priority, offset)
/// of each message, in order.
struct Follower {
    child: std::process::Child,
    printed: std::sync::mpsc::Receiver<(u64, u64)>,
    seen: BTreeMap<u64, Vec<u64>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follower {
    fn start(store: &std::path::Path, stream: &str, lines: &str) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_segment-tool"))
            .args([
                "tail",
                "-f",
                s(store),
                stream,
                "-n",
                lines,
                "--format",
                "json",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let d = &v["data"];
                let at = (
                    d["priority"].as_u64().unwrap(),
                    d["offset"].as_u64().unwrap(),
                );
                if tx.send(at).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            printed,
            seen: BTreeMap::new(),
        }
    }

    /// Waits until the first message is printed.
    fn wait_for_first(&mut self) {
        let (p, o) = self
            .printed
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("tail -f printed its first message");
        self.seen.entry(p).or_default().push(o);
    }

    /// Waits until the offset `last[p]` of each bucket `p` was printed.
    fn wait_for(&mut self, last: &[u64]) {
        let done = |printed: &BTreeMap<u64, Vec<u64>>| {
            (0..last.len() as u64).all(|p| {
                printed
                    .get(&p)
                    .is_some_and(|v| v.contains(&last[p as usize]))
            })
        };
        while !done(&self.seen) {
            let (p, o) = self
                .printed
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("tail -f printed the last messages");
            self.seen.entry(p).or_default().push(o);
        }
    }

    /// Stops the child; what it printed per bucket, in order.
    fn stop(mut self) -> BTreeMap<u64, Vec<u64>> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        while let Ok((p, o)) = self.printed.recv() {
            self.seen.entry(p).or_default().push(o);
        }
        std::mem::take(&mut self.seen)
    }
}

/// Regression: `tail -f` started while messages were being sent printed
/// again what its first print had read past the end the inspection found
/// (the first print reads the segments again after inspecting all buckets):
/// older offsets came back after newer ones. Every offset of every bucket
/// is printed once, in order, from the first print through the follow,
/// across segment rolls; four tails started while messages are sent.
#[test]
fn follow_while_sending_prints_each_offset_once_in_order() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
    let st = store
        .create_stream("t", spool::StreamConfig::default().priorities(2))
        .unwrap();
    // A long priority 1 to inspect: the window between the inspection of
    // priority 0 and the first print's reading of it is long.
    let big = [b'y'; 8000];
    for _ in 0..2000 {
        st.send_message(spool::Message::new(&big[..]).priority(1))
            .unwrap();
    }
    // The writer goes on until every tail has printed its first message:
    // each first print meets messages being sent.
    const BETWEEN: u64 = 3000;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (st, sent, stop) = (st.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = [0u64; 2];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let p = u8::from(i % 3 == 0);
                let body = vec![b'x'; 20 + (i % 300) as usize];
                last[p as usize] = st
                    .send_message(spool::Message::new(&body).priority(p))
                    .unwrap();
                i += 1;
                sent.store(i, Ordering::Relaxed);
                if i % 1000 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            last
        })
    };
    let wait_sent = |n: u64| {
        while sent.load(Ordering::Relaxed) < n {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    };
    let mut followers = Vec::new();
    for k in 0..4 {
        wait_sent(100 + k * BETWEEN);
        let mut f = Follower::start(dir.path(), "t", "30");
        f.wait_for_first();
        followers.push(f);
    }
    stop.store(true, Ordering::Relaxed);
    let last = writer.join().unwrap();
    for f in &mut followers {
        f.wait_for(&last);
    }
    // A few polls more, for anything printed twice after the last message.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for (k, f) in followers.into_iter().enumerate() {
        let printed = f.stop();
        assert_eq!(printed.len(), 2, "tail {k}: both buckets followed");
        for (p, offsets) in &printed {
            let first = offsets[0];
            let expected: Vec<u64> = (first..=last[*p as usize]).collect();
            assert!(
                *offsets == expected,
                "tail {k}, p{p}: {} offsets printed, {} expected from {first}; first out of \
                 order: {:?}",
                offsets.len(),
                expected.len(),
                offsets
                    .windows(2)
                    .find(|w| w[1] != w[0] + 1)
                    .map(|w| (w[0], w[1]))
            );
        }
    }
    drop(st);
    store.close().unwrap();
}
