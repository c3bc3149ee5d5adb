//! A bounded stream: with `capacity_messages` (or `capacity_bytes`) set, a
//! send that would go past the limit fails with `Error::StreamFull` and
//! stores nothing, so a producer slows down instead of filling the disk;
//! once a consumer has acknowledged whole segments, retention frees them
//! and sends go through again.
//!
//! ```text
//! cargo run --release --example bounded               # a temporary store
//! cargo run --release --example bounded -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Durability, Error, Options, Store, StreamConfig};
use std::path::PathBuf;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().join("store"), PathBuf::from);
    // Small segments: space is freed a segment at a time.
    let options = Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(64 * 1024);
    let store = Store::open(&dir, options)?;
    let jobs = store.create_stream("jobs", StreamConfig::default().capacity_messages(1000))?;
    let workers = jobs.consumer("workers")?;

    println!("1. the producer runs ahead of the consumer until the stream is full");
    let job = [7u8; 200];
    let mut sent = 0;
    let full = loop {
        match jobs.send(&job) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
    };
    check(sent == 1000, "1000 messages accepted")?;
    check(
        matches!(full, Error::StreamFull { capacity: 1000, .. }),
        &format!("then: {full}"),
    )?;
    check(
        jobs.stats().messages() == 1000,
        "the refused send stored nothing",
    )?;

    println!("2. a few acknowledgements free nothing: space frees segment by segment");
    for _ in 0..10 {
        if let Some(d) = workers.try_receive()? {
            d.ack()?;
        }
    }
    check(
        matches!(jobs.send(&job), Err(Error::StreamFull { .. })),
        "still full",
    )?;

    println!("3. the consumer catches up: retention frees the segments it acknowledged");
    while let Some(d) = workers.try_receive()? {
        d.ack()?;
    }
    jobs.send(&job)?;
    check(
        jobs.stats().messages() < 1000,
        &format!(
            "a send goes through; {} messages held now",
            jobs.stats().messages()
        ),
    )?;
    drop((workers, jobs));
    store.close()?;
    Ok(())
}
