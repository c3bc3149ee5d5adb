//! Goal: a store's threads (sync, prefault, timer, worker) end with it:
//! once the last handle is dropped, or `Store::close` returns (even with
//! other handles alive), no thread of the store is left running.
//!
//! One test per file and process (the simulated file system gives a slow
//! sync): the check counts the threads of the
//! process by name.

use spool::io::sim::SimFs;
use spool::{Durability, Options, Store};
use std::sync::Arc;
use std::time::Duration;

/// The names of this process's threads that belong to a store.
fn store_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = task.unwrap().path().join("comm");
        // A thread that ended between the listing and the read is gone.
        if let Ok(name) = std::fs::read_to_string(comm) {
            if name.starts_with("spool-") {
                names.push(name.trim().to_string());
            }
        }
    }
    names.sort();
    names
}

/// Opens two stores and makes them start every thread a store has: the
/// sync and prefault threads (`Interval`), the worker (an async durable
/// send under `Always`) and the timer (an async receive that times out).
fn busy_stores(dir: &std::path::Path) -> [Store; 2] {
    let interval = Durability::Interval(Duration::from_millis(5));
    let stores = [interval, Durability::Always].map(|d| {
        Store::open(dir.join(format!("{d:?}")), Options::default().durability(d)).unwrap()
    });
    for store in &stores {
        let jobs = store.stream("jobs").unwrap();
        let consumer = jobs.consumer("c").unwrap();
        futures::executor::block_on(async {
            jobs.send_async(b"one").await.unwrap();
            let d = consumer.receive_async(Duration::ZERO).await.unwrap();
            d.expect("the message sent").ack_async().await.unwrap();
            let none = consumer
                .receive_async(Duration::from_millis(20))
                .await
                .unwrap();
            assert!(none.is_none());
        });
    }
    let running = store_threads();
    for name in [
        "spool-prefault",
        "spool-sync",
        "spool-timer",
        "spool-worker",
    ] {
        assert!(
            running.iter().any(|n| n == name),
            "{name} not running: {running:?}"
        );
    }
    stores
}

#[test]
fn no_store_thread_outlives_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(store_threads(), Vec::<String>::new());

    // Dropped: the last handle (a stream) goes last.
    for store in busy_stores(tmp.path()) {
        let stream = store.stream("jobs").unwrap();
        drop(store);
        drop(stream);
    }
    assert_eq!(store_threads(), Vec::<String>::new(), "after the last drop");

    // Closed while handles live.
    let mut handles = Vec::new();
    for store in busy_stores(tmp.path()) {
        let stream = store.stream("jobs").unwrap();
        let consumer = stream.consumer("c").unwrap();
        store.close().unwrap();
        handles.push((stream, consumer));
    }
    assert_eq!(store_threads(), Vec::<String>::new(), "after close");

    // Dropped while a background sync is in progress: the drop waits for it.
    let fs = SimFs::new();
    fs.set_sync_delay(Duration::from_millis(200));
    let opts = Options::default()
        .vfs(Arc::new(fs))
        .durability(Durability::Interval(Duration::from_millis(1)));
    let store = Store::open("/slow", opts).unwrap();
    store.stream("jobs").unwrap().send(b"one").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(store_threads().contains(&"spool-sync".to_string()));
    drop(store);
    assert_eq!(
        store_threads(),
        Vec::<String>::new(),
        "after a drop mid-sync"
    );
}
