//! Goal: `Store::close` shuts a store down for every handle: blocked
//! receives and reply waits wake with `Error::Closed`, later calls on any
//! handle fail with it, everything sent before is durable, and the store is
//! unlocked when `close` returns, while old handles still live.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Options, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Far longer than any close takes: a wait that outlives it was not woken.
const LONG: Duration = Duration::from_secs(120);
/// How long the test waits for a woken thread (a liveness bound, not a
/// speed measurement).
const LIVENESS: Duration = Duration::from_secs(60);

fn is_closed<T: std::fmt::Debug>(r: spool::Result<T>) -> bool {
    matches!(r, Err(Error::Closed))
}

#[test]
fn close_wakes_blocked_receives_and_reply_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), Options::default()).unwrap();
    let jobs = store.stream("jobs").unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let c = jobs.consumer("workers").unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = if i == 0 {
                c.receive(LONG).map(|_| ())
            } else {
                c.receive_batch(8, LONG).map(|_| ())
            };
            tx.send(format!("{r:?}")).unwrap();
        });
    }
    {
        let store = store.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = store.wait_reply("replies", "never-answered", LONG);
            tx.send(format!("{:?}", r.map(|_| ()))).unwrap();
        });
    }
    // Let them block (if one were not blocked yet, it finds the store
    // closed when it starts: the assertion holds either way).
    std::thread::sleep(Duration::from_millis(100));
    let handle = store.clone();
    store.close().unwrap();
    for _ in 0..4 {
        let r = rx
            .recv_timeout(LIVENESS)
            .expect("a blocked wait was not woken by close");
        assert_eq!(r, format!("{:?}", Err::<(), _>(Error::Closed)));
    }
    assert!(is_closed(handle.sync()));
}

#[test]
fn every_handle_fails_with_closed_and_the_store_is_unlocked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), Options::default()).unwrap();
    let s = store.stream("q").unwrap();
    for i in 0..10u32 {
        s.send(&i.to_le_bytes()).unwrap();
    }
    let c = s.consumer("c").unwrap();
    let d = c.try_receive().unwrap().unwrap();
    let d2 = c.try_receive().unwrap().unwrap();
    let clone = store.clone();
    store.close().unwrap();

    // Unlocked at once, although handles of this process still live.
    let reopened = Store::open(tmp.path(), Options::default()).unwrap();
    assert!(
        reopened.recovery_report().is_clean(),
        "{}",
        reopened.recovery_report()
    );

    assert!(is_closed(s.send(b"late")));
    assert!(is_closed(s.read(0)));
    assert!(is_closed(c.try_receive()));
    assert!(is_closed(c.receive(Duration::from_secs(1))));
    assert!(is_closed(c.ack_up_to(0, 5)));
    assert!(is_closed(d.ack()));
    assert!(is_closed(d2.nack()));
    assert!(is_closed(clone.stream("other").map(|_| ())));
    assert!(is_closed(clone.sync()));
    // A second close is no error.
    clone.close().unwrap();

    // The old handles changed nothing: the new open sees the store as
    // closed, both deliveries still unacknowledged.
    let s = reopened.stream("q").unwrap();
    assert_eq!(s.stats().messages(), 10);
    let c = s.consumer("c").unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| c.try_receive().unwrap())
        .map(|d| d.offset())
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

/// Senders on several threads while another thread closes the store (no
/// fsync per send): every send that returned `Ok` is durable after the
/// close, as a power cut right after it shows; every later one failed with
/// `Closed`.
#[test]
fn sends_racing_close_are_durable_or_refused() {
    for round in 0..20u64 {
        let fs = SimFs::new();
        let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..3u64 {
            let s = store.stream(&format!("s{t}")).unwrap();
            let acked = acked.clone();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                loop {
                    let payload = format!("{t}:{n}");
                    // Read before the send: if set, close has returned.
                    let closed = stop.load(Ordering::Acquire);
                    match s.send(payload.as_bytes()) {
                        Ok(_) if closed => panic!("a send succeeded after close returned"),
                        Ok(off) => acked.lock().unwrap().push((t, off, payload)),
                        Err(Error::Closed) => return,
                        Err(e) => panic!("send failed: {e}"),
                    }
                    n += 1;
                }
            }));
        }
        // Close while every sender is busy: once some sends have returned.
        while acked.lock().unwrap().len() < 50 + 20 * round as usize {
            std::thread::yield_now();
        }
        store.close().unwrap();
        stop.store(true, Ordering::Release);
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        let cut = fs.power_cut(CutMode::RandomPages(round));
        for t in threads {
            t.join().unwrap();
        }
        let store = Store::open("/db", sim::options(&cut, Durability::Never)).unwrap();
        assert!(!acked.is_empty());
        for (t, off, payload) in acked {
            let r = store
                .stream(&format!("s{t}"))
                .unwrap()
                .read(off)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: s{t} offset {off} lost"));
            assert_eq!(r.payload(), payload.as_bytes());
        }
    }
}
