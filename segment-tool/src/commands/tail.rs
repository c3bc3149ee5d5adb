//! `tail`: the last messages of a stream, and with `-f` the new ones as they
//! arrive: every 100 ms, the bytes appended to each bucket's segment since
//! the last read (from the next record on, plus a page), following rolls.
//! Each bucket's follow starts at the offset after the last record its first
//! print read (not at the end the inspection found before: the store may
//! have grown in between), and prints only offsets above those it printed,
//! so each offset is printed once, in order.
//!
//! JSON Lines output: one `message` per message, as in `dump`.

use super::dump::{print_message, Msg, Show};
use super::{Failure, Outcome};
use crate::cli::TailArgs;
use spool::inspect::{self, Problem, RecordInfo, RecordParts, SegmentCursor};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the segments are read again with `-f`.
const POLL: Duration = Duration::from_millis(100);

/// One message read for the initial print: everything owned.
struct Owned {
    priority: u8,
    segment: PathBuf,
    record: RecordInfo,
    bytes: std::sync::Arc<Vec<u8>>,
}

/// Prints one record of `segment` whose parts are `parts`.
fn print(
    out: &mut dyn Write,
    show: &Show<'_>,
    (stream, priority, segment): (&str, u8, &Path),
    record: &RecordInfo,
    parts: RecordParts<'_>,
    problems: &mut Vec<Problem>,
) -> std::io::Result<()> {
    let m = Msg {
        stream,
        priority: Some(priority),
        segment,
        record,
        headers: parts.headers,
        body: parts.body,
        claim_check: parts.claim_check,
    };
    print_message(out, show, &m, problems)
}

/// Where the follow of one bucket is.
struct Follow {
    priority: u8,
    dir: PathBuf,
    /// The segment read (base offset, path), chosen at the first poll.
    segment: Option<(u64, PathBuf)>,
    /// Where the last read of it stopped; `None` before the first.
    cursor: Option<SegmentCursor>,
    /// The next offset to print.
    next: u64,
}

impl Follow {
    /// Prints the messages appended since the last poll, from the segment
    /// being read and, once a later one exists (it is then complete), the
    /// later ones.
    fn poll(
        &mut self,
        out: &mut dyn Write,
        show: &Show<'_>,
        stream: &str,
        problems: &mut Vec<Problem>,
    ) -> std::io::Result<()> {
        let files = inspect::list_segments(&self.dir).unwrap_or_default();
        if self.segment.is_none() {
            let start = files
                .iter()
                .rposition(|(b, _)| *b <= self.next)
                .unwrap_or(0);
            self.segment = files.get(start).cloned();
        }
        while let Some((base, path)) = self.segment.clone() {
            if let Ok(read) = inspect::read_segment_from(&path, self.cursor) {
                let from = self.next;
                for r in read.records.iter().filter(|r| r.offset >= from) {
                    let Some(parts) = read.parts(r) else {
                        continue;
                    };
                    print(
                        out,
                        show,
                        (stream, self.priority, &path),
                        r,
                        parts,
                        problems,
                    )?;
                    self.next = r.offset + 1;
                }
                self.cursor = Some(read.cursor);
            }
            match files.iter().find(|(b, _)| *b > base) {
                Some(later) => {
                    self.segment = Some(later.clone());
                    self.cursor = None;
                }
                None => break,
            }
        }
        Ok(())
    }
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
    let mut follow: Vec<Follow> = Vec::new();
    for b in &stream.buckets {
        if args.priority.is_some_and(|p| p != b.priority) {
            continue;
        }
        // The follow goes on from where the first print's reading ended: the
        // segments are read again after the inspection, and may hold more.
        let mut next = b.last_offset.map(|o| o + 1).or(b.first_offset).unwrap_or(0);
        let mut newest = true;
        let mut mine: Vec<Owned> = Vec::new();
        for seg in b.segments.iter().rev() {
            if mine.len() as u64 >= args.lines {
                break;
            }
            let Ok((one, bytes)) = inspect::read_segment_raw(&seg.path) else {
                continue;
            };
            if std::mem::take(&mut newest) {
                if let Some(end) = one
                    .records
                    .last()
                    .map(|r| r.offset + 1)
                    .or(one.base_offset())
                {
                    next = end;
                }
            }
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
        follow.push(Follow {
            priority: b.priority,
            dir: b.path.clone(),
            segment: None,
            cursor: None,
            next,
        });
        last.extend(mine);
    }
    last.sort_by_key(|o| (o.record.timestamp_us, o.priority, o.record.offset));
    let skip = last.len().saturating_sub(args.lines as usize);
    for o in &last[skip..] {
        let Some(parts) = o.record.parts(&o.bytes) else {
            continue;
        };
        let at = (stream.name.as_str(), o.priority, o.segment.as_path());
        print(out, &show, at, &o.record, parts, &mut problems)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(Outcome::Clean);
    }
    drop(last);
    loop {
        std::thread::sleep(POLL);
        for f in &mut follow {
            f.poll(out, &show, &stream.name, &mut problems)?;
        }
        out.flush()?;
    }
}
