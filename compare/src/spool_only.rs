//! Workloads only Spool runs, for patterns its peers have no native form of:
//! fan-out to many subscribers (F8) and competing consumers (C4). Messages
//! are sent without fsync before the timer starts; only receiving and
//! acknowledging is timed, and every delivery is checked. Also a variant of
//! W4's send that shows what sealing segments costs Spool, and W1's and
//! W4's sends made with `send_batch`.

use crate::check::{self, ExactlyOnce, Fifo};
use crate::engine::Result;
use crate::engines::spool_options as options;
use spool::{Consumer, Store, Stream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Messages per `receive_batch` of a subscriber.
const SUBSCRIBER_BATCH: usize = 256;

/// Times of one subscriber alone and of `subscribers` at once.
pub struct FanOut {
    /// One subscriber receiving every message.
    pub one: Duration,
    /// All subscribers, each receiving every message, in parallel.
    pub many: Duration,
}

/// Opens a store in `dir` (no fsync) with stream `q` holding `n` messages
/// of `size` bytes, sequence numbers `0..n`.
fn filled(dir: &Path, n: u64, size: usize) -> Result<(Store, Stream)> {
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    let mut bufs: Vec<Vec<u8>> = (0..1000).map(|_| check::blank(size)).collect();
    let mut seq = 0;
    while seq < n {
        let k = 1000.min(n - seq) as usize;
        for (i, b) in bufs[..k].iter_mut().enumerate() {
            check::stamp(b, 0, seq + i as u64);
        }
        stream.send_batch(bufs[..k].iter())?;
        seq += k as u64;
    }
    Ok((store, stream))
}

/// F8: `n` messages of `size` bytes; one subscriber receives them all
/// (`receive_batch` and `ack_up_to`), then `subscribers` others do the same
/// at once, each in its own thread. Every subscriber is checked for all
/// messages in order.
pub fn fan_out(dir: &Path, n: u64, size: usize, subscribers: usize) -> Result<FanOut> {
    let (_store, stream) = filled(dir, n, size)?;
    // Every consumer exists before any acknowledges, so retention keeps the
    // segments until the last one is done with them.
    let solo = stream.consumer("solo")?;
    let subs = (0..subscribers)
        .map(|i| stream.consumer(&format!("sub{i}")))
        .collect::<Result<Vec<_>, _>>()?;

    let start = Instant::now();
    subscribe(&solo, n, size)?;
    let one = start.elapsed();

    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = subs
            .iter()
            .map(|c| s.spawn(move || subscribe(c, n, size)))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            h.join()
                .map_err(|_| format!("subscriber {i} panicked"))?
                .map_err(|e| format!("subscriber {i}: {e}"))?;
        }
        Ok(())
    })?;
    let many = start.elapsed();
    Ok(FanOut { one, many })
}

/// Receives every message as a subscriber, checking order and count.
fn subscribe(c: &Consumer, n: u64, size: usize) -> Result<()> {
    let mut fifo = Fifo::new(n, size);
    loop {
        let batch = c.receive_batch(SUBSCRIBER_BATCH, Duration::ZERO)?;
        let Some(last) = batch.last() else { break };
        for d in &batch {
            fifo.see(d.payload())?;
        }
        c.ack_up_to(last.priority(), last.offset())?;
    }
    fifo.finish()
}

/// C4: `n` messages of `size` bytes; `threads` threads share one consumer
/// name, each receiving and acknowledging one message at a time until none
/// is left. Checks that each message was received exactly once overall.
pub fn competing(dir: &Path, n: u64, size: usize, threads: usize) -> Result<Duration> {
    let (_store, stream) = filled(dir, n, size)?;
    let consumer = stream.consumer("workers")?;
    let start = Instant::now();
    let shares = std::thread::scope(|s| -> Result<Vec<Vec<u64>>> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let c = consumer.clone();
                s.spawn(move || -> Result<Vec<u64>> {
                    let mut seqs = Vec::new();
                    while let Some(d) = c.try_receive()? {
                        seqs.push(check::parse(d.payload(), size)?.1);
                        d.ack()?;
                    }
                    Ok(seqs)
                })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join()
                    .map_err(|_| format!("receiver {i} panicked"))?
                    .map_err(|e| format!("receiver {i}: {e}").into())
            })
            .collect()
    })?;
    let elapsed = start.elapsed();
    let mut check = ExactlyOnce::new(n);
    for (i, seqs) in shares.iter().enumerate() {
        check.receiver(i, seqs)?;
    }
    check.finish()?;
    Ok(elapsed)
}

/// Segment size of [`w4_send_one_segment`]: the largest Spool allows.
const ONE_SEGMENT: u64 = 1 << 30;

/// W4's send with 1 GiB segments instead of 64 MiB: `n` messages of `size`
/// bytes fit in one segment, so nothing is sealed while the timer runs
/// (the background writeback of `Durability::Never` still syncs behind the
/// writer). The difference to W4's send is what sealing costs:
/// a segment is made durable when it is sealed (so that an open scans only
/// the active segment), which holds sends without fsync to the disk's write
/// rate once the page cache takes data faster. The messages are then read
/// back and checked (not timed).
pub fn w4_send_one_segment(dir: &Path, n: u64, size: usize) -> Result<Duration> {
    let store = Store::open(dir, options(false).segment_bytes_max(ONE_SEGMENT))?;
    let stream = store.stream("q")?;
    let mut payload = check::blank(size);
    let start = Instant::now();
    for seq in 0..n {
        check::stamp(&mut payload, 0, seq);
        stream.send(&payload)?;
    }
    let elapsed = start.elapsed();
    let mut fifo = Fifo::new(n, size);
    for r in stream.iter_from(0) {
        fifo.see(r?.payload())?;
    }
    fifo.finish()?;
    Ok(elapsed)
}

/// W1's or W4's send made with `Stream::send_batch`: `n` messages of `size`
/// bytes without fsync, `batch` per call (the payloads are stamped before
/// each call, as W1 stamps each message before its send). The messages
/// are then read back and checked (not timed).
pub fn send_batches(dir: &Path, n: u64, size: usize, batch: usize) -> Result<Duration> {
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| check::blank(size)).collect();
    let mut seq = 0u64;
    let start = Instant::now();
    while seq < n {
        let k = batch.min((n - seq) as usize);
        for (i, b) in bufs[..k].iter_mut().enumerate() {
            check::stamp(b, 0, seq + i as u64);
        }
        stream.send_batch(bufs[..k].iter())?;
        seq += k as u64;
    }
    let elapsed = start.elapsed();
    let mut fifo = Fifo::new(n, size);
    for r in stream.iter_from(0) {
        fifo.see(r?.payload())?;
    }
    fifo.finish()?;
    Ok(elapsed)
}
