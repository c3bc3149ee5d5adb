//! Goal: the async API works on any executor without blocking its threads:
//! waiting receives let other tasks run, sends and lease expiries wake
//! them, durable sends, acks and batch acks resolve once synced (and
//! survive a power cut), a dropped future loses and leases nothing, and `close` ends every
//! wait.
//!
//! Executors: tokio (current-thread and multi-thread) and the `futures`
//! crate's own. Time bounds here are liveness bounds (a wait that was never
//! woken), far above any real wake-up, not speed measurements.

pub mod common;

use common::sim;
use futures::StreamExt;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Message, Options, Store};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

const LIVENESS: Duration = Duration::from_secs(60);

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    (dir, store)
}

#[test]
fn waiting_receives_leave_a_current_thread_runtime_free() {
    let (_dir, store) = store();
    let s = store.stream("jobs").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut waiting = Vec::new();
        for _ in 0..50 {
            let c = s.consumer("workers").unwrap();
            waiting.push(tokio::spawn(async move {
                c.receive_async(Duration::from_secs(3600)).await.map(|d| {
                    let d = d.expect("woken by a send, not the timeout");
                    let offset = d.offset();
                    d.ack().unwrap();
                    offset
                })
            }));
        }
        // Another task runs while all 50 wait: on one thread, a blocked
        // receive would stall it.
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::timeout(LIVENESS, ticker)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ticks.load(Ordering::SeqCst), 20);
        for i in 0..50u32 {
            s.send_async(&i.to_le_bytes()).await.unwrap();
        }
        // Each task is woken by a send (their own deadline is an hour away).
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let mut got = BTreeSet::new();
            for w in waiting {
                got.insert(w.await.unwrap().unwrap());
            }
            got
        })
        .await
        .expect("a waiting receive was not woken by a send");
        assert_eq!(got, (0..50).collect());
    });
}

#[test]
fn competing_tasks_on_a_multi_thread_runtime_get_each_message_once() {
    let (_dir, store) = store();
    let s = store.stream("jobs").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const N: u64 = 2_000;
    let got = rt.block_on(async {
        let mut workers = Vec::new();
        for _ in 0..4 {
            let c = s.consumer("workers").unwrap();
            workers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut deliveries = c.deliveries();
                while let Some(d) = deliveries.next().await {
                    let d = d.unwrap();
                    mine.push(d.offset());
                    d.ack_async().await.unwrap();
                }
                mine
            }));
        }
        let mut sends = Vec::new();
        for i in 0..N {
            sends.push(s.send_async(&i.to_le_bytes()));
        }
        for f in sends {
            f.await.unwrap();
        }
        // Wait until everything is acknowledged, then close: the streams end.
        let c = s.consumer("workers").unwrap();
        tokio::time::timeout(LIVENESS, async {
            while c.stats().buckets[0].ack_floor < N {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("every message acknowledged");
        store.clone().close().unwrap();
        let mut all = Vec::new();
        for w in workers {
            all.extend(tokio::time::timeout(LIVENESS, w).await.unwrap().unwrap());
        }
        all
    });
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..N).collect::<Vec<_>>(),
        "each message exactly once"
    );
}

#[test]
fn requests_and_replies_on_the_futures_executor() {
    let (_dir, store) = store();
    let requests = store.stream("requests").unwrap();
    let responder = requests.consumer("responder").unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let d = responder.receive(LIVENESS).unwrap().unwrap();
            let mut answer = b"re: ".to_vec();
            answer.extend_from_slice(d.payload());
            d.reply(&answer).unwrap();
            d.ack().unwrap();
        }
    });
    futures::executor::block_on(async {
        for q in ["a", "b", "c"] {
            let r = requests
                .request_async(Message::new(q), "replies", LIVENESS)
                .await
                .unwrap();
            assert_eq!(r.payload(), format!("re: {q}").as_bytes());
        }
        // Nobody answers this one: a timeout, not a hang.
        let id = requests
            .send_request(Message::new("ignored"), "replies")
            .unwrap();
        let r = store
            .wait_reply_async("replies", &id, Duration::from_millis(20))
            .await;
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    });
    server.join().unwrap();
}

#[test]
fn lease_expiry_and_nack_delay_wake_an_async_receive() {
    let (_dir, store) = store();
    let s = store.stream("q").unwrap();
    let cfg = spool::ConsumerConfig::default().visibility_timeout(Duration::from_millis(50));
    let c = s.consumer_with("c", cfg).unwrap();
    s.send(b"one").unwrap();
    s.send(b"two").unwrap();
    let first = c.try_receive().unwrap().unwrap();
    let second = c.try_receive().unwrap().unwrap();
    second
        .nack_with(Some(Duration::from_millis(30)), None)
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut back = BTreeSet::new();
        for _ in 0..2 {
            // The receive's own deadline is far away: only the timer's
            // wake-up at the expiry or delay ends the wait in time.
            // `biased`: the bound is looked at first, so a receive that was
            // not woken cannot slip through when the bound wakes the task.
            let d = tokio::select! {
                biased;
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    panic!("not woken by the lease expiry or nack delay")
                }
                r = c.receive_async(Duration::from_secs(3600)) => r.unwrap().unwrap(),
            };
            assert_eq!(d.attempt(), 2);
            back.insert(d.offset());
            d.ack_async().await.unwrap();
        }
        assert_eq!(back, BTreeSet::from([0, 1]));
    });
    drop(first);
}

#[test]
fn close_ends_async_waits() {
    let (_dir, store) = store();
    let s = store.stream("q").unwrap();
    let c = s.consumer("c").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c1 = c.clone();
        let one = tokio::spawn(async move { c1.receive_async(Duration::from_secs(3600)).await });
        let c2 = c.clone();
        let many = tokio::spawn(async move { c2.deliveries().count().await });
        let st = store.clone();
        let reply = tokio::spawn(async move {
            st.wait_reply_async("replies", "nobody", Duration::from_secs(3600))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.clone().close().unwrap();
        let r = tokio::time::timeout(LIVENESS, one).await.unwrap().unwrap();
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        let n = tokio::time::timeout(LIVENESS, many).await.unwrap().unwrap();
        assert_eq!(n, 0, "the stream of deliveries ends at close");
        let r = tokio::time::timeout(LIVENESS, reply)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        let late = s.send_async(b"late").await;
        assert!(matches!(late, Err(Error::Closed)), "{late:?}");
    });
}

/// Durable async sends from 8 tasks (`Durability::Always`, group commit on
/// the store's worker thread): every send whose future resolved is there
/// after a power cut; so is every acknowledgement whose `ack_async` did.
#[test]
fn resolved_durable_sends_and_acks_survive_a_power_cut() {
    for round in 0..5u64 {
        let fs = SimFs::new();
        let store = Store::open("/db", sim::options(&fs, Durability::Always)).unwrap();
        let s = store.stream("q").unwrap();
        let c = s.consumer("c").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (sent, acked) = rt.block_on(async {
            let mut tasks = Vec::new();
            for t in 0..8u64 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..40u64 {
                        let payload = format!("{t}:{i}");
                        let off = s.send_async(payload.as_bytes()).await.unwrap();
                        mine.push((off, payload));
                    }
                    mine
                }));
            }
            let mut sent = Vec::new();
            for t in tasks {
                sent.extend(t.await.unwrap());
            }
            let mut acked = Vec::new();
            for _ in 0..100 {
                let d = c.receive_async(LIVENESS).await.unwrap().unwrap();
                let off = d.offset();
                d.ack_async().await.unwrap();
                acked.push(off);
            }
            // Then in batches, every other delivery of each, one record
            // and one shared sync per batch.
            for _ in 0..10 {
                let batch = c.receive_batch_async(16, LIVENESS).await.unwrap();
                assert!(!batch.is_empty());
                let (done, kept): (Vec<_>, Vec<_>) =
                    batch.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
                acked.extend(done.iter().map(|(_, d)| d.offset()));
                c.ack_batch_async(done.into_iter().map(|(_, d)| d))
                    .await
                    .unwrap();
                drop(kept);
            }
            (sent, acked)
        });
        let cut = fs.power_cut(CutMode::RandomPages(round));
        drop((c, s, store));
        let store = Store::open("/db", sim::options(&cut, Durability::Always)).unwrap();
        let s = store.stream("q").unwrap();
        for (off, payload) in &sent {
            let r = s
                .read(*off)
                .unwrap()
                .unwrap_or_else(|| panic!("offset {off} lost"));
            assert_eq!(r.payload(), payload.as_bytes());
        }
        let c = s.consumer("c").unwrap();
        let acked: BTreeSet<u64> = acked.into_iter().collect();
        while let Some(d) = c.try_receive().unwrap() {
            assert!(
                !acked.contains(&d.offset()),
                "acked offset {} delivered again",
                d.offset()
            );
            d.ack().unwrap();
        }
    }
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Futures dropped after a random number of polls (some never polled,
/// some pending, some resolved and their delivery acknowledged): every
/// message is delivered exactly once, and nothing stays leased.
#[test]
fn dropped_futures_lose_and_lease_nothing() {
    let (_dir, store) = store();
    let s = store.stream("q").unwrap();
    let c = s.consumer("c").unwrap();
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut rng = common::Xorshift(0x5eed);
    let mut acked = BTreeSet::new();
    const N: u64 = 500;
    let mut sent = 0u64;
    while sent < N {
        if rng.below(3) == 0 {
            s.send(&sent.to_le_bytes()).unwrap();
            sent += 1;
        }
        let mut f: Pin<Box<dyn Future<Output = spool::Result<Vec<spool::Delivery>>>>> = if rng
            .below(2)
            == 0
        {
            let one = c.receive_async(Duration::from_secs(3600));
            Box::pin(async move { one.await.map(|d| d.into_iter().collect()) })
        } else {
            Box::pin(c.receive_batch_async(1 + rng.below(4) as usize, Duration::from_secs(3600)))
        };
        for _ in 0..rng.below(3) {
            if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
                for d in r.unwrap() {
                    assert!(
                        acked.insert(d.offset()),
                        "offset {} delivered twice",
                        d.offset()
                    );
                    d.ack().unwrap();
                }
                break;
            }
        }
        drop(f);
    }
    // What no future took is there to take now, at once: nothing leased.
    while let Some(d) = c.try_receive().unwrap() {
        assert!(
            acked.insert(d.offset()),
            "offset {} delivered twice",
            d.offset()
        );
        assert_eq!(d.attempt(), 1, "a dropped future left a lease behind");
        d.ack().unwrap();
    }
    assert_eq!(acked, (0..N).collect());
}
