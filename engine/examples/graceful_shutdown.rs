//! Graceful shutdown of a threaded service: worker threads block in
//! `receive` with a long timeout; the main thread, told to stop (here after
//! the work is done; a real service on SIGTERM), calls `Store::close`. Every
//! blocked worker wakes at once with `Error::Closed` and exits its loop; the
//! store is synced and unlocked when `close` returns, so the next process
//! (or this one) opens it immediately, while old handles only get `Closed`.
//!
//! ```text
//! cargo run --release --example graceful_shutdown               # a temporary store
//! cargo run --release --example graceful_shutdown -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Error, Options, Store};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const WORKERS: usize = 3;
const JOBS: u64 = 30;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let store = Store::open(&dir, Options::default())?;
    let jobs = store.stream("jobs")?;
    let before = jobs.consumer("workers")?.stats().buckets[0].ack_floor;

    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for w in 0..WORKERS {
        let consumer = jobs.consumer("workers")?;
        let done = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut handled = 0u64;
            // Blocks for up to an hour between jobs: only close ends it early.
            let end = loop {
                match consumer.receive(Duration::from_secs(3600)) {
                    Ok(Some(job)) => {
                        handled += 1;
                        let r = job.ack();
                        let _ = done.send(());
                        if let Err(e) = r {
                            break e;
                        }
                    }
                    Ok(None) => continue,
                    Err(e) => break e,
                }
            };
            (w, handled, end)
        }));
    }
    for i in 0..JOBS {
        jobs.send(format!("job {i}").as_bytes())?;
    }
    for _ in 0..JOBS {
        done_rx.recv_timeout(Duration::from_secs(60))?;
    }
    println!("{JOBS} jobs sent and handled; the workers now wait in receive(1 h)");

    let started = Instant::now();
    store.close()?;
    let mut total = 0;
    for t in threads {
        let (w, handled, end) = t.join().map_err(|_| "a worker panicked")?;
        check(
            matches!(end, Error::Closed),
            &format!("worker {w} woke with Closed"),
        )?;
        total += handled;
    }
    println!(
        "close woke {WORKERS} blocked workers and they stopped within {:?}",
        started.elapsed()
    );
    check(total == JOBS, "every job handled once")?;
    check(
        matches!(jobs.send(b"late"), Err(Error::Closed)),
        "an old handle gets Closed",
    )?;

    let reopened = Store::open(&dir, Options::default())?;
    let floor = reopened
        .stream("jobs")?
        .consumer("workers")?
        .stats()
        .buckets[0]
        .ack_floor;
    check(
        floor == before + JOBS,
        "reopened at once; every ack is durable",
    )?;
    Ok(())
}

fn check(ok: bool, what: &str) -> Result {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
