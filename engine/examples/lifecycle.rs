//! Streams and consumers over their lifetime: a deployment step creates them
//! with their configuration (`Store::stream_with`, checked against what is
//! stored on every later run), workers open only what exists
//! (`Store::open_stream`, `Stream::open_consumer`: a misspelled name is an
//! error, not a new consumer replaying all history), and a consumer made by
//! mistake is deleted (`Stream::delete_consumer`), which frees the segments
//! only it held back. Then the operations of a running system: a consumer
//! replays from an offset after a bug fix (`Consumer::seek`), a backlog of
//! stale jobs is dropped (`Stream::purge`), dead letters go back to their
//! stream once their cause is fixed (`Stream::redrive`), and a stream no
//! longer needed is deleted (`Store::delete_stream`), its name free again.
//!
//! ```text
//! cargo run --release --example lifecycle               # a temporary store
//! cargo run --release --example lifecycle -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{ConsumerConfig, Durability, Error, Message, Options, StartAt, Store, StreamConfig};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    // Small segments, so that retention has whole segments to free.
    let options = Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(1 << 20);
    let store = Store::open(&dir, options)?;

    println!("deployment: create the stream and its consumer");
    let config = StreamConfig::default().priorities(2);
    let orders = store.stream_with("orders", config.clone())?;
    orders.consumer("billing")?;
    check(
        store.stream_with("orders", config).is_ok(),
        "the same configuration again is the same stream",
    )?;
    check(
        matches!(
            store.stream_with("orders", StreamConfig::default()),
            Err(Error::ConfigMismatch { .. })
        ),
        "another configuration is refused (ConfigMismatch), nothing changes",
    )?;

    println!("workers: open only what exists");
    let orders = store.open_stream("orders")?;
    let billing = orders.open_consumer("billing")?;
    check(
        matches!(
            orders.open_consumer("biling"),
            Err(Error::ConsumerNotFound { .. })
        ),
        "a misspelled consumer is ConsumerNotFound",
    )?;
    check(
        matches!(
            store.open_stream("ordres"),
            Err(Error::StreamNotFound { .. })
        ),
        "a misspelled stream is StreamNotFound",
    )?;
    check(
        orders.consumers() == ["billing"] && store.streams() == ["orders"],
        "and nothing was created by them",
    )?;

    println!("a consumer made by mistake holds retention back");
    let typo = orders.consumer("bilIing")?;
    let payload = [7u8; 1000];
    let first = orders.stats().buckets[0].end_offset;
    for _ in 0..5_000 {
        orders.send(&payload)?;
    }
    let last = orders.stats().buckets[0].end_offset - 1;
    billing.ack_up_to(0, last)?;
    orders.apply_retention()?;
    let held = orders.stats().buckets[0].segments;
    println!("  {held} segments kept for the consumer that took nothing");
    check(
        held > 2,
        "the segments stay while it has not acknowledged them",
    )?;

    orders.delete_consumer("bilIing")?;
    let left = orders.stats().buckets[0].segments;
    println!("  deleted it: {left} segment(s) left");
    check(left < held, "its segments are freed on disk")?;
    check(
        orders.stats().buckets[0].first_offset > first,
        "the first retained offset moved on",
    )?;
    check(
        matches!(typo.try_receive(), Err(Error::ConsumerNotFound { .. })),
        "a handle of the deleted consumer gets ConsumerNotFound",
    )?;
    check(
        orders.consumers() == ["billing"],
        "billing is the one consumer left",
    )?;

    println!("seek: billing had a bug; replay from the first retained order");
    let replay_from = orders.stats().buckets[0].first_offset;
    billing.seek(StartAt::Offset(0))?; // below what is retained: clamped
    let again = billing.try_receive()?.ok_or("a replayed order")?;
    check(
        again.offset() == replay_from && again.attempt() == 1,
        "acknowledged orders come again, from the first retained, attempt 1",
    )?;
    billing.seek(StartAt::Latest)?;
    again.ack()?; // delivered before the seek: changes nothing
    check(
        billing.try_receive()?.is_none() && billing.stats().pending() == 0,
        "a seek to the end passes over the rest, counting nothing",
    )?;

    println!("purge: a backlog of stale orders is dropped");
    orders.send_batch(["stale 1", "stale 2", "stale 3"])?;
    orders.send_message(Message::new("stale urgent").priority(1))?;
    let skipped = billing.stats().skipped;
    let purged = orders.purge()?;
    println!(
        "  purged {purged} messages; {} segment file(s) left per level",
        orders.stats().buckets[0].segments
    );
    check(
        orders.stats().messages() == 0,
        "nothing is left, at any level",
    )?;
    check(
        billing.stats().skipped == skipped + 4,
        "billing counts the four it had not acknowledged as skipped",
    )?;
    orders.send(b"fresh order")?;
    check(
        billing.try_receive()?.map(|d| d.payload().to_vec()) == Some(b"fresh order".to_vec()),
        "a send after the purge is delivered",
    )?;

    println!("redrive: dead letters go back once their cause is fixed");
    let jobs = store.stream("jobs")?;
    let config = ConsumerConfig::default()
        .max_deliveries(2)
        .dead_letter("jobs.dead");
    let worker = jobs.consumer_with("worker", config)?;
    jobs.send_message(Message::new("resize 17").header("size", "128x128"))?;
    for _ in 0..2 {
        // The resizer is broken: the job fails twice, then is a dead letter.
        worker
            .try_receive()?
            .ok_or("the job")?
            .nack_with(None, Some("resizer down"))?;
    }
    check(worker.try_receive()?.is_none(), "the job is a dead letter")?;
    let dead = store.open_stream("jobs.dead")?;
    let redriven = dead.redrive("redrive", 100)?;
    println!("  re-drove {redriven} dead letter(s)");
    let job = worker
        .receive(Duration::from_secs(1))?
        .ok_or("the job, back")?;
    check(
        job.payload() == b"resize 17"
            && job.header("size") == Some(&b"128x128"[..])
            && job.header("spool-dead-letter-reason").is_none()
            && job.attempt() == 1,
        "it is back in jobs as it was sent, a new message",
    )?;
    job.ack()?;
    check(
        dead.redrive("redrive", 100)? == 0,
        "each dead letter goes back once",
    )?;

    println!("delete_stream: a stream no longer needed goes, whole");
    store.delete_stream("jobs.dead")?;
    check(
        matches!(dead.send(b"late"), Err(Error::StreamNotFound { .. })),
        "its handles get StreamNotFound",
    )?;
    check(
        store.stream("jobs.dead")?.stats().messages() == 0,
        "its name is free: a new stream is empty",
    )?;

    drop((typo, billing, orders, jobs, worker, dead));
    store.close()?;
    let store = Store::open(&dir, Options::default().durability(Durability::Never))?;
    let orders = store.open_stream("orders")?;
    check(
        orders.consumers() == ["billing"],
        "after a restart: the same consumers",
    )?;
    check(
        orders.open_consumer("billing")?.stats().skipped == skipped + 4,
        "and the same skipped count",
    )?;
    println!("done");
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
