//! Goal: competing consumers: many threads on one consumer name share the
//! work; each message is leased to exactly one of them at a time, and when
//! all acknowledge, every message was delivered exactly once, none lost.
//!
//! Method: 100,000 messages, 4 threads receiving in batches and acking;
//! every offset is recorded by the thread that got it.

pub mod common;

use common::scratch_store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn four_threads_share_100k_messages_exactly_once() {
    let (_dir, store) = scratch_store();
    let s = store.stream("work").unwrap();
    const N: u64 = 100_000;
    let payloads: Vec<[u8; 8]> = (0..N).map(|i| i.to_le_bytes()).collect();
    for chunk in payloads.chunks(1000) {
        s.send_batch(chunk.iter()).unwrap();
    }
    let seen = Arc::new(Mutex::new(vec![0u8; N as usize]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = s.consumer("workers").unwrap();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut got = 0u64;
                loop {
                    let batch = c.receive_batch(32, Duration::from_millis(50)).unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    for d in batch {
                        assert_eq!(d.payload(), d.offset().to_le_bytes());
                        seen.lock().unwrap()[d.offset() as usize] += 1;
                        got += 1;
                        d.ack().unwrap();
                    }
                }
            })
        })
        .collect();
    let per_thread: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(per_thread.iter().sum::<u64>(), N);
    assert!(
        per_thread.iter().filter(|&&n| n > 0).count() >= 2,
        "work was shared: {per_thread:?}"
    );
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|&n| n == 1), "every message exactly once");
    let c = s.consumer("workers").unwrap();
    assert_eq!(c.stats().buckets[0].ack_floor, N);
    assert_eq!(c.stats().pending(), 0);
}
