//! The workloads every engine runs (W1 to W4), written once against
//! [`Engine`]. Each checks its result: after the timed part, every message
//! must come back exactly once and in order, or the run fails. Each takes
//! how many messages one call covers: 1 for the engine's call for one
//! message, more for its batched API (see [`Queue`]).

use crate::check::{self, Fifo, PerProducer};
use crate::engine::{Engine, Queue, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Messages per [`Queue::take`] when reading a queue back to check it.
const CHECK_TAKE: usize = 1000;

/// Times of a send phase and a receive phase.
pub struct Phases {
    /// Sending every message.
    pub send: Duration,
    /// Receiving and acknowledging every message.
    pub receive: Duration,
}

/// W1 and W4: sends `n` messages of `size` bytes without fsync, `group` per
/// call, then receives and acknowledges them, `group` per call; times both
/// phases.
pub fn send_then_receive(
    engine: &dyn Engine,
    dir: &Path,
    n: u64,
    size: usize,
    group: usize,
) -> Result<Phases> {
    let mut q = engine.open(dir, false)?;
    let start = Instant::now();
    send_all(&mut *q, n, size, group)?;
    let send = start.elapsed();

    let mut fifo = Fifo::new(n, size);
    let start = Instant::now();
    let mut got = 0u64;
    while got < n {
        let k = q.take(group, &mut |p| fifo.see(p))?;
        if k == 0 {
            return Err(format!("lost messages: the queue is empty after {got} of {n}").into());
        }
        got += k as u64;
    }
    let receive = start.elapsed();
    expect_empty(&mut *q, &mut fifo)?;
    fifo.finish()?;
    Ok(Phases { send, receive })
}

/// W3: sends `n` messages of `size` bytes durably, `batch` per
/// append (each append returns once durable); times that. Then reopens the
/// queue and checks that everything is there.
pub fn durable_sends(
    engine: &dyn Engine,
    dir: &Path,
    n: u64,
    size: usize,
    batch: usize,
) -> Result<Duration> {
    let mut q = engine.open(dir, true)?;
    let start = Instant::now();
    send_all(&mut *q, n, size, batch)?;
    let elapsed = start.elapsed();
    drop(q);
    let mut fifo = Fifo::new(n, size);
    drain_reopened(engine, dir, &mut |p| fifo.see(p))?;
    fifo.finish()?;
    Ok(elapsed)
}

/// W2 with its durable receives: sends `n` messages of `size` bytes
/// durably, `batch` per append, and times that; then reopens the queue
/// durably and, for each of `receives` in turn, times the receiving and
/// acknowledging of the next `per_receive` messages, that many per take
/// (each take returns once its acknowledgement is durable). Then reopens the
/// queue once more and receives the rest: every message must come back
/// exactly once and in order across all of it (a message acknowledged
/// durably does not come back after the reopen). Returns the time of the
/// sends and one time per receive.
pub fn durable_sends_and_receives(
    engine: &dyn Engine,
    dir: &Path,
    n: u64,
    size: usize,
    batch: usize,
    receives: &[usize],
    per_receive: u64,
) -> Result<(Duration, Vec<Duration>)> {
    if per_receive * receives.len() as u64 > n {
        return Err(format!(
            "{} receives of {per_receive} need more than the {n} messages sent",
            receives.len()
        )
        .into());
    }
    let mut q = engine.open(dir, true)?;
    let start = Instant::now();
    send_all(&mut *q, n, size, batch)?;
    let sends = start.elapsed();
    drop(q);

    let mut fifo = Fifo::new(n, size);
    let mut q = engine.open(dir, true)?;
    let mut times = Vec::with_capacity(receives.len());
    for &group in receives {
        let start = Instant::now();
        let mut got = 0u64;
        while got < per_receive {
            let max = group.min((per_receive - got) as usize);
            let k = q.take(max, &mut |p| fifo.see(p))?;
            if k == 0 {
                return Err(format!(
                    "lost messages: the queue is empty after {got} of {per_receive}"
                )
                .into());
            }
            got += k as u64;
        }
        times.push(start.elapsed());
    }
    drop(q);
    drain_reopened(engine, dir, &mut |p| fifo.see(p))?;
    fifo.finish()?;
    Ok((sends, times))
}

/// W3c: `producers` threads share one store and each sends `per` messages
/// of `size` bytes, one at a time, each waiting until its message is
/// durable; times the whole. Then reopens the queue and checks that every
/// producer's messages are all there, in that producer's order.
pub fn concurrent_durable_sends(
    engine: &dyn Engine,
    dir: &Path,
    producers: usize,
    per: u64,
    size: usize,
) -> Result<Duration> {
    let shared = engine.shared(dir)?;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..producers)
            .map(|id| {
                let shared = &*shared;
                s.spawn(move || -> Result<()> {
                    let mut producer = shared.producer()?;
                    let mut payload = check::blank(size);
                    for seq in 0..per {
                        check::stamp(&mut payload, id as u32, seq);
                        producer.send(&payload)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a producer thread panicked")??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    drop(shared);
    let mut check = PerProducer::new(producers, per, size);
    drain_reopened(engine, dir, &mut |p| check.see(p))?;
    check.finish()?;
    Ok(elapsed)
}

/// Sends messages `0..n` of producer 0, `group` per append.
fn send_all(q: &mut dyn Queue, n: u64, size: usize, group: usize) -> Result<()> {
    let group = group.max(1);
    let mut bufs: Vec<Vec<u8>> = (0..group).map(|_| check::blank(size)).collect();
    let mut seq = 0u64;
    while seq < n {
        let k = group.min((n - seq) as usize);
        for (i, b) in bufs[..k].iter_mut().enumerate() {
            check::stamp(b, 0, seq + i as u64);
        }
        if k == 1 {
            q.append(&[bufs[0].as_slice()])?;
        } else {
            let refs: Vec<&[u8]> = bufs[..k].iter().map(Vec::as_slice).collect();
            q.append(&refs)?;
        }
        seq += k as u64;
    }
    Ok(())
}

/// Fails if the queue still holds a message.
fn expect_empty(q: &mut dyn Queue, fifo: &mut Fifo) -> Result<()> {
    let extra = q.take(1, &mut |p| fifo.see(p))?;
    if extra > 0 {
        return Err("duplicates: the queue still holds a message after all were received".into());
    }
    Ok(())
}

/// Reopens the queue in `dir` (no fsync) and receives everything in it.
fn drain_reopened(
    engine: &dyn Engine,
    dir: &Path,
    seen: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut q = engine.open(dir, false)?;
    while q.take(CHECK_TAKE, seen)? > 0 {}
    Ok(())
}
