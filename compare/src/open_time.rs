//! O: how long `Store::open` takes on a store holding many segments, after
//! a clean close and after the writer was killed with SIGKILL, and on a
//! store a quarter of the size (open time should not grow with the store).
//!
//! The killed writer is this same binary, re-executed with the hidden
//! option `--child-writer <dir>`: it opens the store, prints `ready`, and
//! sends (without fsync) until it is killed.

use crate::check;
use crate::engine::Result;
use crate::engines::spool_options as options;
use spool::{Store, Stream};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Payload size of the messages that fill the stores.
pub const SIZE: usize = 4096;

/// Messages per `send_batch` while filling.
const BATCH: u64 = 64;

/// How long the child writer runs before it is killed.
const KILL_AFTER: Duration = Duration::from_millis(300);

/// Open times, in milliseconds (medians of the runs).
pub struct OpenTimes {
    /// The full-size store, after a clean close.
    pub clean_ms: f64,
    /// The quarter-size store, after a clean close.
    pub quarter_ms: f64,
    /// The full-size store, after its writer was killed with SIGKILL.
    pub killed_ms: f64,
    /// Segment files of the full-size store before the first kill.
    pub segments: usize,
    /// Messages the killed writers added, over all runs.
    pub added_by_children: u64,
}

/// Fills a store of `bytes` (rounded to whole batches) and one of a quarter
/// of that in fresh directories under `base`, and times the opens, `runs`
/// times each. `progress` is told what is going on.
pub fn run(base: &Path, bytes: u64, runs: usize, progress: &dyn Fn(&str)) -> Result<OpenTimes> {
    let full = crate::scratch(base, "spool", "O")?;
    let quarter = crate::scratch(base, "spool", "O-quarter")?;
    let per_message = SIZE as u64;
    progress(&format!("O: filling {} MiB", bytes >> 20));
    let n_full = fill(full.path(), (bytes / per_message).max(BATCH))?;
    progress(&format!("O: filling {} MiB", bytes >> 22));
    let n_quarter = fill(quarter.path(), (bytes / 4 / per_message).max(BATCH))?;

    let segments = {
        let store = Store::open(full.path(), options(false))?;
        let stats = store.stream("q")?.stats();
        stats.buckets.iter().map(|b| b.segments).sum()
    };

    let mut clean = Vec::new();
    let mut quarter_times = Vec::new();
    let mut killed = Vec::new();
    let mut added_by_children = 0;
    for run in 1..=runs {
        progress(&format!("O: clean opens, run {run}/{runs}"));
        clean.push(timed_open(full.path(), n_full)?.0);
        quarter_times.push(timed_open(quarter.path(), n_quarter)?.0);
    }
    let mut count = n_full;
    for run in 1..=runs {
        progress(&format!("O: open after kill -9, run {run}/{runs}"));
        let (ms, after) = open_after_kill(full.path(), count)?;
        killed.push(ms);
        added_by_children += after - count;
        count = after;
    }
    Ok(OpenTimes {
        clean_ms: crate::median(&mut clean),
        quarter_ms: crate::median(&mut quarter_times),
        killed_ms: crate::median(&mut killed),
        segments,
        added_by_children,
    })
}

/// Sends `n` messages of [`SIZE`] bytes to stream `q` without fsync, then
/// syncs and closes the store. Returns how many it holds.
fn fill(dir: &Path, n: u64) -> Result<u64> {
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    send_forever_or(&stream, 0, Some(n))?;
    store.sync()?;
    let held = stream.stats().messages();
    drop(stream);
    store.close()?;
    if held != n {
        return Err(format!("the store holds {held} messages after {n} were sent").into());
    }
    Ok(n)
}

/// Sends batches of stamped messages from sequence number `from` on: `n`
/// of them, or until an error (or forever) when `n` is `None`.
fn send_forever_or(stream: &Stream, from: u64, n: Option<u64>) -> Result<()> {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| check::blank(SIZE)).collect();
    let mut seq = from;
    let end = n.map(|n| from + n);
    while end.is_none_or(|e| seq < e) {
        let k = end.map_or(BATCH, |e| BATCH.min(e - seq)) as usize;
        for (i, b) in bufs[..k].iter_mut().enumerate() {
            check::stamp(b, 0, seq + i as u64);
        }
        stream.send_batch(bufs[..k].iter())?;
        seq += k as u64;
    }
    Ok(())
}

/// Times `Store::open` (and getting the stream) on the store in `dir`,
/// which must hold at least `at_least` messages, the last of them intact.
/// Returns the time in milliseconds and the number of messages.
fn timed_open(dir: &Path, at_least: u64) -> Result<(f64, u64)> {
    let start = Instant::now();
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let held = stream.stats().messages();
    if held < at_least {
        return Err(format!("lost messages: the store holds {held}, it held {at_least}").into());
    }
    let last = stream
        .read(held - 1)?
        .ok_or_else(|| format!("the last message, {}, cannot be read", held - 1))?;
    let (_, seq) = check::parse(last.payload(), SIZE)?;
    if seq != held - 1 {
        return Err(format!("message {} holds sequence number {seq}", held - 1).into());
    }
    Ok((ms, held))
}

/// Runs a child writer on the store in `dir` (holding `count` messages),
/// kills it with SIGKILL after [`KILL_AFTER`], and times the open that
/// follows. Returns the time in milliseconds and the messages held after.
fn open_after_kill(dir: &Path, count: u64) -> Result<(f64, u64)> {
    spawn_and_kill(dir, "--child-writer")?;
    timed_open(dir, count)
}

/// Runs this binary with the hidden option `flag` on the store in `dir`,
/// waits for it to say `ready`, lets it write for [`KILL_AFTER`], and kills
/// it with SIGKILL.
fn spawn_and_kill(dir: &Path, flag: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(flag)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no pipe from the child writer")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the child writer did not start (said {line:?})").into());
    }
    std::thread::sleep(KILL_AFTER);
    if let Some(status) = child.try_wait()? {
        return Err(format!("the child writer stopped by itself before the kill: {status}").into());
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok(())
}

/// The child writer: opens the store in `dir`, prints `ready`, and sends
/// messages that continue the store's sequence numbers until killed.
pub fn child_writer(dir: &Path) -> Result<()> {
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    let from = stream.stats().messages();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    send_forever_or(&stream, from, None)
}

/// Messages of [`MANY_SIZE`] bytes each stream of the many-streams store
/// holds after filling.
const MANY_MESSAGES: u64 = 16;

/// Payload size of the many-streams store's messages.
const MANY_SIZE: usize = 128;

/// Size of the one claim check of the many-streams store (stored as a blob).
const MANY_BLOB: usize = 256 << 10;

/// Open times of a store of many small streams, in milliseconds (medians).
pub struct ManyTimes {
    /// After a clean close.
    pub clean_ms: f64,
    /// After the writer was killed with SIGKILL.
    pub killed_ms: f64,
}

/// Fills a store of `streams` streams in a fresh directory under `base`,
/// each with [`MANY_MESSAGES`] messages and a consumer `c` that has
/// acknowledged half of them and holds one more in flight, the first stream
/// with a claim check besides; then times `runs` clean opens and `runs`
/// opens after a child writer (which sends to, receives from and
/// acknowledges on every stream) was killed with SIGKILL.
pub fn run_many(
    base: &Path,
    streams: usize,
    runs: usize,
    progress: &dyn Fn(&str),
) -> Result<ManyTimes> {
    let dir = crate::scratch(base, "spool", "O-many")?;
    progress(&format!("O: filling {streams} streams"));
    fill_many(dir.path(), streams)?;
    let mut clean = Vec::new();
    let mut killed = Vec::new();
    for run in 1..=runs {
        progress(&format!(
            "O: {streams} streams, clean open, run {run}/{runs}"
        ));
        clean.push(timed_open_many(dir.path(), streams)?);
    }
    for run in 1..=runs {
        progress(&format!(
            "O: {streams} streams, open after kill -9, run {run}/{runs}"
        ));
        spawn_and_kill(dir.path(), "--child-many")?;
        killed.push(timed_open_many(dir.path(), streams)?);
    }
    Ok(ManyTimes {
        clean_ms: crate::median(&mut clean),
        killed_ms: crate::median(&mut killed),
    })
}

/// The name of stream number `i` of the many-streams store.
fn many_name(i: usize) -> String {
    format!("s{i:05}")
}

fn fill_many(dir: &Path, streams: usize) -> Result<()> {
    let store = Store::open(dir, options(false))?;
    let payload = check::blank(MANY_SIZE);
    for i in 0..streams {
        let config = spool::StreamConfig::default().claim_check_threshold(64 << 10);
        let stream = store.create_stream(&many_name(i), config)?;
        let consumer = stream.consumer("c")?;
        for _ in 0..MANY_MESSAGES {
            stream.send(&payload)?;
        }
        if i == 0 {
            stream.send(&check::blank(MANY_BLOB))?;
        }
        for _ in 0..MANY_MESSAGES / 2 {
            let d = consumer
                .receive(Duration::ZERO)?
                .ok_or("a filled stream has nothing to receive")?;
            d.ack()?;
        }
        // One delivery left in flight (never acknowledged).
        consumer.receive(Duration::ZERO)?;
    }
    store.sync()?;
    store.close()?;
    Ok(())
}

/// Times `Store::open` and getting every stream and its consumer; checks
/// each stream still holds at least its first [`MANY_MESSAGES`].
fn timed_open_many(dir: &Path, streams: usize) -> Result<f64> {
    let start = Instant::now();
    let store = Store::open(dir, options(false))?;
    let mut handles = Vec::with_capacity(streams);
    for i in 0..streams {
        let stream = store.stream(&many_name(i))?;
        let consumer = stream.consumer("c")?;
        handles.push((stream, consumer));
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let found = store.streams().len();
    if found != streams {
        return Err(format!("the store holds {found} streams, it held {streams}").into());
    }
    for (stream, _) in &handles {
        let held = stream.stats().messages();
        if held < MANY_MESSAGES {
            return Err(format!("lost messages: a stream holds {held} of {MANY_MESSAGES}").into());
        }
    }
    drop(handles);
    store.close()?;
    Ok(ms)
}

/// The child writer of the many-streams store: opens it, prints `ready`,
/// and round after round sends one message to every stream, receives one
/// and acknowledges it, until killed.
pub fn child_many(dir: &Path) -> Result<()> {
    let store = Store::open(dir, options(false))?;
    let mut handles = Vec::new();
    for name in store.streams() {
        let stream = store.stream(&name)?;
        let consumer = stream.consumer("c")?;
        handles.push((stream, consumer));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    let payload = check::blank(MANY_SIZE);
    loop {
        for (stream, consumer) in &handles {
            stream.send(&payload)?;
            if let Some(d) = consumer.receive(Duration::ZERO)? {
                d.ack()?;
            }
        }
    }
}
