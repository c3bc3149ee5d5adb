//! M: Spool's memory and disk space with many messages queued, and the disk
//! space it gives back once they are consumed.
//!
//! The measuring runs in a child process, this same binary re-executed with
//! the hidden option `--child-memory <dir>` (and `--child-messages <n>`), so
//! that the comparison's own allocations are not counted. The child opens a
//! store in `dir` without fsync, creates consumer `drain` on stream `q`,
//! sends the messages, and measures:
//!
//! - the anonymous resident memory (`RssAnon` in /proc/self/status: heap and
//!   other private memory, not the memory-mapped files, whose pages belong
//!   to the page cache), sampled while sending and once all are queued;
//! - the disk space allocated to the store's files (`st_blocks`), once all
//!   are queued and again after the consumer received and acknowledged them
//!   all and retention ran;
//! - the anonymous resident memory after draining.
//!
//! It prints one line, `M-RESULT key=value ...`, which the parent parses.

use crate::check::{self, Fifo};
use crate::engine::Result;
use crate::engines::spool_options as options;
use spool::Store;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Payload size of the messages.
pub const SIZE: usize = crate::SMALL;

/// Messages per `send_batch`.
pub const SEND_BATCH: u64 = 1_000;

/// Most messages per `receive_batch` while draining.
pub const RECEIVE_BATCH: usize = 1024;

/// Messages between two samples of the anonymous resident memory.
pub const SAMPLE_EVERY: u64 = 100_000;

/// Size of a segment file (the default); the active one stays after draining.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Size of a consumer journal (the default); it stays after draining.
pub const JOURNAL_BYTES: u64 = 16 << 20;

/// Room for the small files (stream and consumer metadata, indexes).
pub const SLACK_BYTES: u64 = 8 << 20;

/// Most disk space the store may use once drained: the active segment, the
/// consumer journal and the slack.
pub const DRAINED_LIMIT_BYTES: u64 = SEGMENT_BYTES + JOURNAL_BYTES + SLACK_BYTES;

/// Most anonymous resident memory with all messages queued.
pub const MEMORY_LIMIT_BYTES: u64 = 64 << 20;

/// Prefix of the child's result line.
const RESULT: &str = "M-RESULT";

/// Bytes in a MiB.
const MIB: f64 = (1 << 20) as f64;

/// What the child measured, in MiB.
pub struct Footprint {
    /// Anonymous resident memory once all messages are queued.
    pub rss_queued: f64,
    /// Largest anonymous resident memory sampled while sending, and queued.
    pub rss_peak: f64,
    /// Largest anonymous resident memory sampled while draining.
    pub rss_drain_peak: f64,
    /// Anonymous resident memory after draining and retention.
    pub rss_after_drain: f64,
    /// Disk space of the store with all messages queued.
    pub disk_before: f64,
    /// Disk space of the store after draining and retention.
    pub disk_after: f64,
    /// What retention reported as removed.
    pub freed: f64,
}

/// Runs the child on `n` messages in a fresh directory under `base` and
/// returns what it measured. A failed check in the child, or any other
/// failure, is an error.
pub fn run(base: &Path, n: u64) -> Result<Footprint> {
    let dir = crate::scratch(base, "spool", "M")?;
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg("--child-memory")
        .arg(dir.path())
        .arg("--child-messages")
        .arg(n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the child process failed ({})", out.status).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT))
        .ok_or_else(|| format!("the child process printed no {RESULT} line: {stdout:?}"))?;
    parse(line)
}

/// Reads the fields of a result line (after its prefix).
fn parse(line: &str) -> Result<Footprint> {
    let mut fields = BTreeMap::new();
    for field in line.split_whitespace() {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("malformed field {field:?} in the {RESULT} line"))?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("field {key} of the {RESULT} line: {e}"))?;
        fields.insert(key, value);
    }
    let get = |key: &str| -> Result<f64> {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("the {RESULT} line has no field {key}").into())
    };
    Ok(Footprint {
        rss_queued: get("rss_queued_mib")?,
        rss_peak: get("rss_peak_mib")?,
        rss_drain_peak: get("rss_drain_peak_mib")?,
        rss_after_drain: get("rss_after_drain_mib")?,
        disk_before: get("disk_before_mib")?,
        disk_after: get("disk_after_mib")?,
        freed: get("freed_mib")?,
    })
}

/// The child: measures `n` messages queued in a store in `dir` and drained
/// again, and prints the result line.
pub fn child(dir: &Path, n: u64) -> Result<()> {
    let store = Store::open(dir, options(false))?;
    let stream = store.stream("q")?;
    // The consumer exists before the first send, so that retention keeps
    // every message until it has acknowledged it.
    let consumer = stream.consumer("drain")?;

    let mut rss_peak = rss_anon()?;
    let mut bufs: Vec<Vec<u8>> = (0..SEND_BATCH).map(|_| check::blank(SIZE)).collect();
    let mut seq = 0;
    let mut next_sample = SAMPLE_EVERY;
    while seq < n {
        let k = SEND_BATCH.min(n - seq) as usize;
        for (i, b) in bufs[..k].iter_mut().enumerate() {
            check::stamp(b, 0, seq + i as u64);
        }
        stream.send_batch(bufs[..k].iter())?;
        seq += k as u64;
        if seq >= next_sample {
            rss_peak = rss_peak.max(rss_anon()?);
            next_sample += SAMPLE_EVERY;
        }
    }
    drop(bufs);
    let rss_queued = rss_anon()?;
    rss_peak = rss_peak.max(rss_queued);
    let queued = stream.stats().messages();
    if queued != n {
        return Err(format!("the stream holds {queued} messages after {n} were sent").into());
    }
    store.sync()?;
    let disk_before = disk_used(dir)?;

    let mut fifo = Fifo::new(n, SIZE);
    let mut rss_drain_peak = rss_anon()?;
    let mut next_sample = SAMPLE_EVERY;
    let mut received = 0;
    loop {
        let batch = consumer.receive_batch(RECEIVE_BATCH, Duration::ZERO)?;
        let Some(last) = batch.last() else { break };
        for d in &batch {
            fifo.see(d.payload())?;
        }
        consumer.ack_up_to(last.priority(), last.offset())?;
        received += batch.len() as u64;
        if received >= next_sample {
            rss_drain_peak = rss_drain_peak.max(rss_anon()?);
            next_sample += SAMPLE_EVERY;
        }
    }
    fifo.finish()?;
    let freed = stream.apply_retention()?;
    store.sync()?;
    let disk_after = disk_used(dir)?;
    let rss_after_drain = rss_anon()?;

    println!(
        "{RESULT} rss_queued_mib={:.3} rss_peak_mib={:.3} rss_drain_peak_mib={:.3} \
         rss_after_drain_mib={:.3} disk_before_mib={:.3} disk_after_mib={:.3} freed_mib={:.3}",
        rss_queued / MIB,
        rss_peak / MIB,
        rss_drain_peak / MIB,
        rss_after_drain / MIB,
        disk_before as f64 / MIB,
        disk_after as f64 / MIB,
        freed as f64 / MIB,
    );
    drop(consumer);
    drop(stream);
    store.close()?;
    Ok(())
}

/// This process's anonymous resident memory, in bytes (`RssAnon` of
/// /proc/self/status, which counts in kB).
fn rss_anon() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .ok_or("/proc/self/status has no RssAnon line")?
        .trim()
        .strip_suffix("kB")
        .ok_or("RssAnon in /proc/self/status is not in kB")?
        .trim();
    let kb: f64 = kb
        .parse()
        .map_err(|e| format!("RssAnon {kb:?} in /proc/self/status: {e}"))?;
    Ok(kb * 1024.0)
}

/// The disk space allocated to the files under `dir`, recursively: the sum
/// of their `st_blocks` (512-byte units), so preallocated space counts and
/// holes do not. Directories themselves are not counted.
fn disk_used(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_used(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_line_and_rejects_missing_fields() {
        let line = " rss_queued_mib=1.5 rss_peak_mib=2 rss_drain_peak_mib=3 \
                    rss_after_drain_mib=1 disk_before_mib=1600 disk_after_mib=80 freed_mib=1520";
        let f = parse(line).expect("a complete line");
        assert_eq!((f.rss_queued, f.rss_peak), (1.5, 2.0));
        assert_eq!(
            (f.disk_before, f.disk_after, f.freed),
            (1600.0, 80.0, 1520.0)
        );
        assert!(parse(" rss_queued_mib=1").is_err());
        assert!(parse(" rss_queued_mib").is_err());
    }

    #[test]
    fn reads_its_own_anonymous_memory() {
        assert!(rss_anon().expect("RssAnon") > 0.0);
    }
}
