//! Streams and consumers over their lifetime: a deployment step creates them
//! with their configuration (`Store::stream_with`, checked against what is
//! stored on every later run), workers open only what exists
//! (`Store::open_stream`, `Stream::open_consumer`: a misspelled name is an
//! error, not a new consumer replaying all history), and a consumer made by
//! mistake is deleted (`Stream::delete_consumer`), which frees the segments
//! only it held back.
//!
//! ```text
//! cargo run --release --example lifecycle               # a temporary store
//! cargo run --release --example lifecycle -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Durability, Error, Options, Store, StreamConfig};
use std::path::PathBuf;

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

    drop((typo, billing, orders));
    store.close()?;
    let store = Store::open(&dir, Options::default().durability(Durability::Never))?;
    check(
        store.open_stream("orders")?.consumers() == ["billing"],
        "after a restart: the same",
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
