//! `tail`: the last messages of a stream, and with `-f` the new ones as they
//! arrive (plain reads of the active segment every 100 ms, following rolls).
//!
//! JSON Lines output: one `message` per message, as in `dump`.

use super::dump::{parts, print_message, Msg, Show};
use super::{Failure, Outcome};
use crate::cli::TailArgs;
use spool::inspect::{self, Problem, RecordInfo};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the active segment is read again with `-f`.
const POLL: Duration = Duration::from_millis(100);

/// The segment files of a bucket directory, by base offset.
fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits = name.strip_suffix(".seg")?;
            if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// One message read for the initial print: everything owned.
struct Owned {
    priority: u8,
    segment: PathBuf,
    record: RecordInfo,
    bytes: std::sync::Arc<Vec<u8>>,
}

/// Prints the messages of `bucket` from offset `next` on, segment after
/// segment; returns the new `next`.
fn print_from(
    out: &mut dyn Write,
    show: &Show<'_>,
    stream: &str,
    priority: u8,
    dir: &Path,
    mut next: u64,
    problems: &mut Vec<Problem>,
) -> std::io::Result<u64> {
    let files = segment_files(dir);
    let start = files.iter().rposition(|(b, _)| *b <= next).unwrap_or(0);
    for (_, path) in files.iter().skip(start) {
        let Ok((seg, bytes)) = inspect::read_segment_raw(path) else {
            continue;
        };
        let from = next;
        for r in seg.records.iter().filter(|r| r.offset >= from) {
            let Some((headers, body)) = parts(&bytes, r) else {
                continue;
            };
            let m = Msg {
                stream,
                priority: Some(priority),
                segment: path,
                record: r,
                headers,
                body,
            };
            print_message(out, show, &m, problems)?;
            next = r.offset + 1;
        }
    }
    Ok(next)
}

/// Prints the last messages and, with `-f`, follows the stream.
pub fn run(args: &TailArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let info = inspect::inspect_stream(&args.store, &args.stream)?;
    let Some(stream) = info.streams.first() else {
        return Ok(Outcome::Clean);
    };
    if let Some(p) = args.priority {
        if !stream.buckets.iter().any(|b| b.priority == p) {
            return Err(Failure::Message(format!(
                "stream {} has no priority level {p}",
                stream.name
            )));
        }
    }
    let show = Show {
        format: args.format,
        payload: args.payload,
        max_blob_bytes: 64 << 20,
        store: Some(&args.store),
        positions: false,
    };
    let mut problems = Vec::new();
    // The last N of every bucket, merged by time.
    let mut last: Vec<Owned> = Vec::new();
    let mut next: Vec<(u8, PathBuf, u64)> = Vec::new();
    for b in &stream.buckets {
        if args.priority.is_some_and(|p| p != b.priority) {
            continue;
        }
        let end = b.last_offset.map(|o| o + 1).or(b.first_offset).unwrap_or(0);
        next.push((b.priority, b.path.clone(), end));
        let mut mine: Vec<Owned> = Vec::new();
        for seg in b.segments.iter().rev() {
            if mine.len() as u64 >= args.lines {
                break;
            }
            let Ok((one, bytes)) = inspect::read_segment_raw(&seg.path) else {
                continue;
            };
            let bytes = std::sync::Arc::new(bytes);
            let want = (args.lines as usize).saturating_sub(mine.len());
            let take = one.records.len().saturating_sub(want);
            let mut these: Vec<Owned> = one.records[take..]
                .iter()
                .map(|r| Owned {
                    priority: b.priority,
                    segment: seg.path.clone(),
                    record: *r,
                    bytes: bytes.clone(),
                })
                .collect();
            these.append(&mut mine);
            mine = these;
        }
        last.extend(mine);
    }
    last.sort_by_key(|o| (o.record.timestamp_us, o.priority, o.record.offset));
    let skip = last.len().saturating_sub(args.lines as usize);
    for o in &last[skip..] {
        let Some((headers, body)) = parts(&o.bytes, &o.record) else {
            continue;
        };
        let m = Msg {
            stream: &stream.name,
            priority: Some(o.priority),
            segment: &o.segment,
            record: &o.record,
            headers,
            body,
        };
        print_message(out, &show, &m, &mut problems)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(Outcome::Clean);
    }
    drop(last);
    loop {
        std::thread::sleep(POLL);
        for (priority, dir, at) in &mut next {
            *at = print_from(out, &show, &stream.name, *priority, dir, *at, &mut problems)?;
        }
        out.flush()?;
    }
}
