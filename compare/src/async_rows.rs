//! Spool's async API beside its blocking one (Spool only): C4's competing
//! consumers as tokio tasks (`receive_async` + `ack_async`, one task per
//! worker), and W3c's concurrent durable sends as tokio tasks
//! (`send_async`, whose syncs run on the store's worker thread and are
//! shared through group commit). Every delivery and message is checked as
//! in the blocking rows.

use crate::check::{self, ExactlyOnce, PerProducer};
use crate::engine::Result;
use crate::engines::spool_options as options;
use spool::Store;
use std::path::Path;
use std::time::{Duration, Instant};

/// A tokio runtime with `threads` worker threads.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()?)
}

/// C4 async: `n` messages of `size` bytes sent first (no fsync, not
/// timed), then `tasks` tasks receive and acknowledge them until none is
/// left; times that.
pub fn competing(dir: &Path, n: u64, size: usize, tasks: usize) -> Result<Duration> {
    let (_store, stream) = crate::spool_only::filled(dir, n, size)?;
    let consumer = stream.consumer("workers")?;
    let rt = runtime(tasks)?;
    let start = Instant::now();
    let shares = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let c = consumer.clone();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    while let Some(d) = c.receive_async(Duration::ZERO).await? {
                        seqs.push(check::parse(d.payload(), size)?.1);
                        d.ack_async().await?;
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seqs)
                })
            })
            .collect();
        let mut shares = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            let seqs = h
                .await
                .map_err(|_| format!("receiver task {i} panicked"))?
                .map_err(|e| format!("receiver task {i}: {e}"))?;
            shares.push(seqs);
        }
        Ok::<_, String>(shares)
    })?;
    let elapsed = start.elapsed();
    let mut check = ExactlyOnce::new(n);
    for (i, seqs) in shares.iter().enumerate() {
        check.receiver(i, seqs)?;
    }
    check.finish()?;
    Ok(elapsed)
}

/// W3c async: `producers` tasks on `threads` runtime threads each send
/// `per` messages of `size` bytes with `send_async` under
/// `Durability::Always`, each awaiting durability before its next send;
/// times the whole, then reads everything back after reopening the store.
pub fn durable_sends(
    dir: &Path,
    producers: usize,
    threads: usize,
    per: u64,
    size: usize,
) -> Result<Duration> {
    let store = Store::open(dir, options(true))?;
    let stream = store.stream("q")?;
    let rt = runtime(threads)?;
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..producers)
            .map(|id| {
                let s = stream.clone();
                tokio::spawn(async move {
                    let mut payload = check::blank(size);
                    for seq in 0..per {
                        check::stamp(&mut payload, id as u32, seq);
                        s.send_async(&payload).await?;
                    }
                    Ok::<_, spool::Error>(())
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            h.await
                .map_err(|_| format!("producer task {i} panicked"))?
                .map_err(|e| format!("producer task {i}: {e}"))?;
        }
        Ok::<_, String>(())
    })?;
    let elapsed = start.elapsed();
    drop(stream);
    store.close()?;
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    let mut check = PerProducer::new(producers, per, size);
    for r in stream.iter_from(0) {
        check.see(r?.payload())?;
    }
    check.finish()?;
    Ok(elapsed)
}
