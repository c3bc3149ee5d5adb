//! `verify`: every record's CRC and offset, indexes against segments,
//! consumer states against the log, claim-check blobs against their files.
//!
//! JSON Lines output:
//!
//! | type | data |
//! |---|---|
//! | `problem` | `file`, `position`, `reason`, `warning` |
//! | `summary` | `streams`, `segments`, `messages`, `blobs_checked`, `problems`, `warnings` |

use super::{Failure, Outcome};
use crate::cli::{Format, VerifyArgs};
use crate::output::{bytes, json_line};
use serde_json::json;
use spool::inspect;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of the files under `dir` (not following symlinks), for progress.
fn total_bytes(dir: &Path, depth: usize) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_file() => n += e.metadata().map(|m| m.len()).unwrap_or(0),
            Ok(t) if t.is_dir() && depth < 8 => n += total_bytes(&e.path(), depth + 1),
            _ => {}
        }
    }
    n
}

/// A `\r` progress line on stderr while the inspection runs, if stderr is a
/// terminal; stopped and cleared when dropped.
struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(store: &Path) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let total = total_bytes(store, 0).max(1);
        let start = inspect::bytes_read();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let done = inspect::bytes_read().saturating_sub(start);
                eprint!(
                    "\rsegment-tool: verified {} of {} ({}%)   ",
                    bytes(done),
                    bytes(total),
                    (done.min(total) * 100) / total
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            eprint!("\r{:60}\r", "");
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Verifies the store.
pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let progress = Progress::start(&args.store);
    let info = inspect::inspect_store(&args.store)?;
    let blob_problems = inspect::check_blobs(&info);
    drop(progress);
    let blobs_checked: usize = {
        let mut seen = std::collections::HashSet::new();
        for s in info
            .streams
            .iter()
            .flat_map(|s| s.buckets.iter())
            .flat_map(|b| b.segments.iter())
        {
            seen.extend(s.blob_refs.iter().map(|r| r.hash));
        }
        seen.len()
    };
    let mut problems = info.problems.clone();
    // A tail past the durable watermark is not damage to acknowledged data,
    // but on a store nobody has open it is a torn tail, not part of the log:
    // verify reports it. On a store in use it is the record being written.
    problems.extend(info.tail_problems());
    problems.extend(blob_problems);
    let warnings = problems.iter().filter(|p| p.warning).count();
    let segments: usize = info
        .streams
        .iter()
        .flat_map(|s| s.buckets.iter())
        .map(|b| b.segments.len())
        .sum();
    match args.format {
        Format::Human => {
            for p in &problems {
                let kind = if p.warning { "warning" } else { "problem" };
                writeln!(out, "{kind}: {p}")?;
            }
            writeln!(
                out,
                "verified {} streams, {segments} segments, {} messages, {blobs_checked} blobs: {} problems ({warnings} warnings)",
                info.streams.len(),
                info.messages(),
                problems.len(),
            )?;
        }
        Format::Json => {
            for p in &problems {
                json_line(
                    out,
                    "problem",
                    json!({
                        "file": p.file.to_string_lossy(),
                        "position": p.position,
                        "reason": p.reason,
                        "warning": p.warning,
                    }),
                )?;
            }
            json_line(
                out,
                "summary",
                json!({
                    "streams": info.streams.len(),
                    "segments": segments,
                    "messages": info.messages(),
                    "blobs_checked": blobs_checked,
                    "problems": problems.len(),
                    "warnings": warnings,
                }),
            )?;
        }
    }
    Ok(if problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}
