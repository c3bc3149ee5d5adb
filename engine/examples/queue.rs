//! Queue: one consumer works through a stream of jobs, oldest first. An ack
//! removes a job, a nack gives it back, and a job whose lease runs out (its
//! worker died holding it) is delivered again. Acks are durable: after a
//! restart the consumer goes on where it was.
//!
//! ```text
//! cargo run --release --example queue               # on a temporary store
//! cargo run --release --example queue -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{ConsumerConfig, Options, Store};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);

    let store = Store::open(&dir, Options::default())?;
    check(
        store.streams().is_empty(),
        "the store is new (give a new directory)",
    )?;
    let jobs = store.stream("jobs")?;

    // A send returns once the message is on disk (the default `Durability::Always`).
    let first = jobs.send(b"resize photo 17")?;
    jobs.send(b"email receipt 4711")?;
    jobs.send(b"rebuild thumbnails")?;
    println!("sent 3 jobs, offsets {first}..={}", first + 2);

    // A lease of 500 ms: a delivery neither acked nor nacked by then is given to the
    // next receive again. (The default is 30 s.)
    let worker = jobs.consumer_with(
        "worker",
        ConsumerConfig::default().visibility_timeout(Duration::from_millis(500)),
    )?;

    // 1. Ack: the job is done and never comes back.
    let d = worker.receive(Duration::from_secs(1))?.ok_or("no job")?;
    check(
        d.payload() == b"resize photo 17",
        "the oldest job comes first",
    )?;
    println!("#{} {:?}: ack", d.offset(), text(d.payload()));
    d.ack()?;

    // 2. Nack: the job is given back and delivered again at once, its attempt counted.
    let d = worker.receive(Duration::from_secs(1))?.ok_or("no job")?;
    check(
        d.payload() == b"email receipt 4711",
        "FIFO: the second job is next",
    )?;
    println!(
        "#{} {:?} attempt {}: nack (mail server down)",
        d.offset(),
        text(d.payload()),
        d.attempt()
    );
    d.nack()?;
    let d = worker.receive(Duration::from_secs(1))?.ok_or("no job")?;
    check(
        d.payload() == b"email receipt 4711" && d.attempt() == 2,
        "a nacked job comes back first, as attempt 2",
    )?;
    println!(
        "#{} {:?} attempt {}: ack",
        d.offset(),
        text(d.payload()),
        d.attempt()
    );
    d.ack()?;

    // 3. A worker that dies holding a job: here it simply drops the delivery. Nothing
    //    is delivered while the lease runs; then the job comes back.
    let d = worker.receive(Duration::from_secs(1))?.ok_or("no job")?;
    println!(
        "#{} {:?}: dropped without ack (the worker crashed)",
        d.offset(),
        text(d.payload())
    );
    drop(d);
    check(
        worker.try_receive()?.is_none(),
        "the job is leased: nothing to receive",
    )?;
    let d = worker
        .receive(Duration::from_secs(5))?
        .ok_or("the job did not come back")?;
    check(
        d.payload() == b"rebuild thumbnails" && d.attempt() == 2,
        "after its lease ran out, the job is delivered again",
    )?;
    println!(
        "#{} {:?} attempt {} after the lease ran out: ack",
        d.offset(),
        text(d.payload()),
        d.attempt()
    );
    d.ack()?;

    let stats = worker.stats();
    check(
        stats.pending() == 0 && stats.redelivered == 2,
        "all done, 2 redeliveries",
    )?;
    println!(
        "worker: {} pending, {} redelivered",
        stats.pending(),
        stats.redelivered
    );

    // 4. Restart: a job sent before the store closed is waiting after it reopens; the
    //    acknowledged ones are gone for good.
    jobs.send(b"send newsletter")?;
    drop((worker, jobs));
    store.close()?;
    let store = Store::open(&dir, Options::default())?;
    let worker = store.stream("jobs")?.consumer("worker")?;
    let d = worker
        .receive(Duration::from_secs(1))?
        .ok_or("no job after the restart")?;
    check(
        d.payload() == b"send newsletter",
        "after a restart, only the new job is left",
    )?;
    println!(
        "after a restart: #{} {:?}: ack",
        d.offset(),
        text(d.payload())
    );
    d.ack()?;
    check(worker.try_receive()?.is_none(), "the queue is empty")?;
    println!("queue empty");
    Ok(())
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
