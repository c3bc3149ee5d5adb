//! A tokio service: an HTTP-less order processor with 4 worker tasks that
//! take orders from a durable queue (`deliveries()`, `ack_async`), a
//! producer task that sends them (`send_async`, durable when it resolves),
//! and a graceful shutdown: on a signal (here: once the producer is done and
//! the orders are processed, or after a deadline) `Store::close` wakes every
//! worker, whose delivery stream then ends, and the store is unlocked when
//! `close` returns.
//!
//! ```text
//! cargo run --release --example tokio_service               # a temporary store
//! cargo run --release --example tokio_service -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use futures::StreamExt;
use spool::{Options, Store};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ORDERS: u64 = 1_000;
const WORKERS: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let store = Store::open(&dir, Options::default())?;
    let orders = store.stream("orders")?;
    let done_before = orders.consumer("workers")?.stats().buckets[0].ack_floor;

    // Workers: one task each, all on one durable consumer (each order goes
    // to exactly one). The stream of deliveries ends when the store closes.
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let consumer = orders.consumer("workers")?;
        workers.push(tokio::spawn(async move {
            let mut handled = Vec::new();
            let mut deliveries = consumer.deliveries();
            while let Some(order) = deliveries.next().await {
                let order = order?;
                let id = u64::from_le_bytes(order.payload().try_into()?);
                tokio::task::yield_now().await; // "process" the order
                handled.push(id);
                order.ack_async().await?; // durable when it resolves
            }
            println!(
                "worker {w}: stream ended at shutdown, {} orders handled",
                handled.len()
            );
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(handled)
        }));
    }

    // The producer: every send is durable once its future resolves; the
    // syncs of concurrent sends are shared.
    let producer = {
        let orders = orders.clone();
        tokio::spawn(async move {
            for id in done_before..done_before + ORDERS {
                orders.send_async(&id.to_le_bytes()).await?;
            }
            Ok::<_, spool::Error>(())
        })
    };
    producer.await??;
    println!("producer: {ORDERS} orders sent, each durable before the next");

    // The shutdown signal of this example: every order acknowledged (a real
    // service would wait for SIGTERM, e.g. `tokio::signal::ctrl_c()`), with
    // a deadline.
    let watcher = orders.consumer("workers")?;
    let all_done = async {
        while watcher.stats().buckets[0].ack_floor < done_before + ORDERS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all_done)
        .await
        .map_err(|_| "the workers did not finish the orders within 60 s")?;

    // Graceful shutdown: wakes every worker (their streams end), syncs,
    // unlocks. Handles that outlive it get `Error::Closed`.
    store.clone().close()?;
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let handled: BTreeSet<u64> = all.iter().copied().collect();
    check(handled.len() == all.len(), "no order handled twice")?;
    check(
        handled == (done_before..done_before + ORDERS).collect(),
        "every order handled exactly once",
    )?;
    println!(
        "shutdown: {} orders handled exactly once, workers stopped",
        handled.len()
    );
    check(
        matches!(orders.send_async(b"late").await, Err(spool::Error::Closed)),
        "a send after close fails with Closed",
    )?;

    // Unlocked when close returned: open it again at once.
    let reopened = Store::open(&dir, Options::default())?;
    let floor = reopened
        .stream("orders")?
        .consumer("workers")?
        .stats()
        .buckets[0]
        .ack_floor;
    check(
        floor == done_before + ORDERS,
        "the acks are durable across the restart",
    )?;
    println!("reopened at once: ack floor {floor}");
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
