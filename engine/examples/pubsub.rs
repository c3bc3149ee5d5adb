//! Publish/subscribe: every named consumer of a stream is a subscriber with a
//! durable cursor of its own; each sees every message, at its own pace. A
//! subscriber that falls behind catches up later, also after a restart.
//!
//! ```text
//! cargo run --release --example pubsub               # on a temporary store
//! cargo run --release --example pubsub -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Consumer, ConsumerConfig, Options, StartAt, Store};
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
    let prices = store.stream("prices")?;

    // Two subscribers. A new consumer starts at the earliest message by default.
    let chart = prices.consumer("chart")?;
    let alerts = prices.consumer("alerts")?;
    for p in ["EUR 1.08", "EUR 1.09", "EUR 1.07"] {
        prices.send(p.as_bytes())?;
    }
    println!("published EUR 1.08, EUR 1.09, EUR 1.07");

    // 1. Each subscriber gets every message.
    let got = take(&chart, 100)?;
    check(
        got == ["EUR 1.08", "EUR 1.09", "EUR 1.07"],
        "chart sees all three",
    )?;
    println!("chart  got {got:?}");

    // 2. Independent cursors: "alerts" takes one now; the other two wait for it.
    let got = take(&alerts, 1)?;
    check(got == ["EUR 1.08"], "alerts takes the first")?;
    println!(
        "alerts got {got:?}, {} still pending for it",
        alerts.stats().pending()
    );
    check(alerts.stats().pending() == 2, "two wait for alerts")?;
    check(chart.stats().pending() == 0, "chart is done")?;

    // 3. A subscriber that only wants what is published from now on.
    let audit = prices.consumer_with("audit", ConsumerConfig::default().start(StartAt::Latest))?;
    prices.send(b"EUR 1.10")?;
    println!("subscribed \"audit\" (from the latest), published EUR 1.10");
    let got = take(&audit, 100)?;
    check(got == ["EUR 1.10"], "audit sees only the new price")?;
    println!("audit  got {got:?}");

    // 4. Restart: cursors are durable. "alerts" catches up where it stopped.
    drop((chart, alerts, audit, prices));
    store.close()?;
    let store = Store::open(&dir, Options::default())?;
    let prices = store.stream("prices")?;
    println!("-- reopened; subscribers {:?}", prices.consumers());
    let got = take(&prices.consumer("alerts")?, 100)?;
    check(
        got == ["EUR 1.09", "EUR 1.07", "EUR 1.10"],
        "alerts catches up",
    )?;
    println!("alerts got {got:?}");
    let got = take(&prices.consumer("chart")?, 100)?;
    check(got == ["EUR 1.10"], "chart gets only what it has not seen")?;
    println!("chart  got {got:?}");
    Ok(())
}

/// Receives up to `max` messages at once and acknowledges them with one cursor
/// ack (`ack_up_to`: everything up to that offset), as a subscriber that
/// processes in order does.
fn take(sub: &Consumer, max: usize) -> Result<Vec<String>> {
    let batch = sub.receive_batch(max, Duration::from_millis(100))?;
    if let Some(last) = batch.last() {
        sub.ack_up_to(0, last.offset())?;
    }
    Ok(batch
        .iter()
        .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
        .collect())
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
