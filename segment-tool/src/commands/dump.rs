//! `dump`: the messages of a stream, the records of one segment file, or
//! the records of one consumer journal.
//!
//! JSON Lines output (absent values are `null`):
//!
//! | type | data |
//! |---|---|
//! | `message` | `stream`, `priority`, `offset`, `timestamp_us`, `segment`, `position` (byte in the segment), `stored_bytes`, `headers` (object; values UTF-8, lossy), `message_id` (the deduplication id, or `null`), `payload` (as `--payload` says; `null` with `none`), `payload_bytes`, `claim_check` (`hash`, `length`, `blob` path, `status`: `valid`/`missing`/…/`too_large`/`not_read`) |
//! | `journal` | (`--journal`) `path`, `file_bytes`, `generation`, `version` (format: 1, or 2 if it may hold acknowledged sets), `journal_id` (16 hex digits); `null`s if the header is unreadable |
//! | `journal_record` | (`--journal`) `position`, `bytes`, `kind` (`delivered`/`acked`/`acked_up_to`/`dead_lettered`/`expired`/`delivered_range`/`acked_set`), `priority` and `offset` (`null` for a set), `attempt` (`delivered` only), `acks` and `runs` (`acked_set` only: the number of offsets, and `[{"priority", "first", "last"}]`, every offset of `first..=last` of that level) |
//! | `problem` | `file`, `position`, `reason` |
//! | `summary` | `messages` (shown), `problems`; with `--journal`: `records` (shown) instead of `messages`, `end` (byte after the last record), `stopped_at` (where bytes that are no valid record stop the replay: a torn write or damage; `null` if the journal ends with zeros) |

use super::info::problem_json;
use super::{Failure, Outcome};
use crate::cli::{DumpArgs, Format, PayloadFormat};
use crate::output::{base64, hex, json_line, parse_time, timestamp};
use serde_json::{json, Map, Value};
use spool::inspect::{self, BlobStatus, JournalEntry, JournalRecord, Problem, RecordInfo};
use spool::ClaimCheck;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Which messages to show.
#[derive(Debug, Default)]
pub struct Filter {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub since_us: Option<u64>,
    pub until_us: Option<u64>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub grep: Option<Vec<u8>>,
}

/// How to show a message.
pub struct Show<'a> {
    pub format: Format,
    pub payload: PayloadFormat,
    pub max_blob_bytes: u64,
    /// The store, for claim-check blobs.
    pub store: Option<&'a Path>,
    /// Show byte positions in human output.
    pub positions: bool,
}

/// One record of a segment, with the segment's bytes.
pub struct Msg<'a> {
    pub stream: &'a str,
    pub priority: Option<u8>,
    pub segment: &'a Path,
    pub record: &'a RecordInfo,
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: &'a [u8],
    /// The claim-check reference its body holds, if it is one.
    pub claim_check: Option<ClaimCheck>,
}

impl Filter {
    /// Whether `m` passes every filter.
    pub fn matches(&self, m: &Msg<'_>) -> bool {
        let r = m.record;
        if self.from.is_some_and(|f| r.offset < f) || self.to.is_some_and(|t| r.offset > t) {
            return false;
        }
        if self.since_us.is_some_and(|s| r.timestamp_us < s)
            || self.until_us.is_some_and(|u| r.timestamp_us > u)
        {
            return false;
        }
        for (k, v) in &self.headers {
            if !m
                .headers
                .iter()
                .any(|(hk, hv)| hk == k && hv == &v.as_slice())
            {
                return false;
            }
        }
        if let Some(g) = &self.grep {
            if !g.is_empty() && !m.body.windows(g.len()).any(|w| w == g.as_slice()) {
                return false;
            }
        }
        true
    }
}

fn encode_payload(p: PayloadFormat, b: &[u8]) -> Option<String> {
    match p {
        PayloadFormat::Utf8 => Some(String::from_utf8_lossy(b).into_owned()),
        PayloadFormat::Hex => Some(hex(b)),
        PayloadFormat::Base64 => Some(base64(b)),
        PayloadFormat::None => None,
    }
}

/// The store directory of a segment at `<store>/streams/<s>/p<k>/<seg>`.
pub fn store_of_segment(seg: &Path) -> Option<PathBuf> {
    seg.ancestors().nth(4).map(Path::to_path_buf)
}

/// Reads a blob whole if it is at most `max` bytes and checks it.
fn read_blob(path: &Path, hash: &[u8; 32], length: u64, max: u64) -> (String, Option<Vec<u8>>) {
    if length > max {
        return (
            format!("too_large: {length} bytes exceeds --max-blob-bytes {max}; not read"),
            None,
        );
    }
    let status = inspect::check_blob_file(path, hash, length);
    if status != BlobStatus::Valid {
        return (status.to_string(), None);
    }
    let mut buf = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(max).read_to_end(&mut buf));
    match read {
        // Checked just before; a blob never changes once written.
        Ok(_) if buf.len() as u64 == length => ("valid".to_string(), Some(buf)),
        Ok(_) => ("changed while read".to_string(), None),
        Err(e) => (format!("cannot read: {e}"), None),
    }
}

/// Prints one message; a bad blob is added to `problems`.
pub fn print_message(
    out: &mut dyn Write,
    show: &Show<'_>,
    m: &Msg<'_>,
    problems: &mut Vec<Problem>,
) -> std::io::Result<()> {
    let r = m.record;
    let mut payload_bytes: Option<Vec<u8>> = None;
    let mut claim = Value::Null;
    let mut claim_human = String::new();
    if r.is_claim_check() {
        if let Some(ClaimCheck { hash, len: length }) = m.claim_check {
            let blob = show.store.map(|s| inspect::blob_path(s, &hash));
            let status = match (&blob, show.payload) {
                (_, PayloadFormat::None) => "not_read".to_string(),
                (None, _) => "not_read (store unknown)".to_string(),
                (Some(path), _) => {
                    let (status, bytes) = read_blob(path, &hash, length, show.max_blob_bytes);
                    if status != "valid" && !status.starts_with("too_large") {
                        problems.push(Problem {
                            file: path.clone(),
                            position: None,
                            reason: format!(
                                "{status}; referred to by offset {} in {} at byte {}",
                                r.offset,
                                m.segment.display(),
                                r.position
                            ),
                            warning: false,
                        });
                    }
                    payload_bytes = bytes;
                    status
                }
            };
            let hex_hash = inspect::hash_hex(&hash);
            claim_human = format!(" claim-check blake3:{hex_hash} ({length} bytes): {status}");
            claim = json!({
                "hash": hex_hash,
                "length": length,
                "blob": blob.map(|p| p.to_string_lossy().into_owned()),
                "status": status,
            });
        }
    } else {
        payload_bytes = Some(m.body.to_vec());
    }
    let payload = payload_bytes
        .as_deref()
        .and_then(|b| encode_payload(show.payload, b));
    match show.format {
        Format::Human => {
            let prio = m.priority.map(|p| format!("p{p} ")).unwrap_or_default();
            let pos = if show.positions {
                format!(" @{}+{}", r.position, r.stored_bytes)
            } else {
                String::new()
            };
            writeln!(
                out,
                "{}{prio}#{} {}{pos}{claim_human}",
                if m.stream.is_empty() {
                    String::new()
                } else {
                    format!("{} ", m.stream)
                },
                r.offset,
                timestamp(r.timestamp_us)
            )?;
            for (k, v) in &m.headers {
                writeln!(out, "  {k}: {}", String::from_utf8_lossy(v))?;
            }
            if let Some(p) = payload {
                writeln!(out, "  {p}")?;
            }
        }
        Format::Json => {
            let mut headers = Map::new();
            for (k, v) in &m.headers {
                headers.insert(
                    (*k).to_string(),
                    Value::String(String::from_utf8_lossy(v).into_owned()),
                );
            }
            // The deduplication id: the attribute header of a record with
            // the attribute flag, bit 1 (on another record it is a plain
            // header).
            let message_id = (r.flags & 2 != 0)
                .then(|| {
                    m.headers
                        .iter()
                        .find(|(k, _)| *k == spool::attribute_headers::MESSAGE_ID)
                })
                .flatten()
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            json_line(
                out,
                "message",
                json!({
                    "stream": if m.stream.is_empty() { Value::Null } else { json!(m.stream) },
                    "message_id": message_id,
                    "priority": m.priority,
                    "offset": r.offset,
                    "timestamp_us": r.timestamp_us,
                    "segment": m.segment.to_string_lossy(),
                    "position": r.position,
                    "stored_bytes": r.stored_bytes,
                    "headers": headers,
                    "payload": payload,
                    "payload_bytes": payload_bytes.as_ref().map(|b| b.len()),
                    "claim_check": claim,
                }),
            )?;
        }
    }
    Ok(())
}

fn build_filter(args: &DumpArgs) -> Result<Filter, Failure> {
    let time = |s: &Option<String>, what: &str| -> Result<Option<u64>, Failure> {
        match s {
            None => Ok(None),
            Some(t) => parse_time(t).map(Some).ok_or_else(|| {
                Failure::Message(format!(
                    "{what} {t:?} is neither RFC 3339 (2024-05-01T12:00:00Z) nor Unix seconds"
                ))
            }),
        }
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once('=') else {
            return Err(Failure::Message(format!(
                "--header {h:?}: expected key=value"
            )));
        };
        headers.push((k.to_string(), v.as_bytes().to_vec()));
    }
    Ok(Filter {
        from: args.from,
        to: args.to,
        since_us: time(&args.since, "--since")?,
        until_us: time(&args.until, "--until")?,
        headers,
        grep: args.grep.as_ref().map(|g| g.as_bytes().to_vec()),
    })
}

/// One journal record: its kind, priority, offset, attempt, and for a set
/// its size and runs.
fn journal_record_json(position: u64, bytes: u64, r: &JournalRecord) -> Value {
    let entry = |kind: &str, priority: u8, offset: u64, attempt: Option<u32>| {
        json!({
            "position": position,
            "bytes": bytes,
            "kind": kind,
            "priority": priority,
            "offset": offset,
            "attempt": attempt,
            "acks": null,
            "runs": null,
        })
    };
    match r {
        JournalRecord::Entry(JournalEntry::Delivered {
            bucket,
            offset,
            attempt,
        }) => entry("delivered", *bucket, *offset, Some(*attempt)),
        JournalRecord::Entry(JournalEntry::Acked { bucket, offset }) => {
            entry("acked", *bucket, *offset, None)
        }
        JournalRecord::Entry(JournalEntry::AckedUpTo { bucket, offset }) => {
            entry("acked_up_to", *bucket, *offset, None)
        }
        JournalRecord::Entry(JournalEntry::DeadLettered { bucket, offset }) => {
            entry("dead_lettered", *bucket, *offset, None)
        }
        JournalRecord::Entry(JournalEntry::Expired { bucket, offset }) => {
            entry("expired", *bucket, *offset, None)
        }
        JournalRecord::Entry(JournalEntry::DeliveredRange {
            bucket,
            first,
            count,
        }) => json!({
            "position": position,
            "bytes": bytes,
            "kind": "delivered_range",
            "priority": bucket,
            "offset": first,
            "attempt": 1,
            "acks": null,
            "runs": [{ "priority": bucket, "first": first, "last": first + (count - 1) }],
        }),
        JournalRecord::AckSet(set) => json!({
            "position": position,
            "bytes": bytes,
            "kind": "acked_set",
            "priority": null,
            "offset": null,
            "attempt": null,
            "acks": set.len(),
            "runs": set
                .runs()
                .iter()
                .map(|r| json!({ "priority": r.bucket, "first": r.first, "last": r.last }))
                .collect::<Vec<_>>(),
        }),
    }
}

/// One journal record for people.
fn journal_record_human(r: &JournalRecord) -> String {
    match r {
        JournalRecord::Entry(JournalEntry::Delivered {
            bucket,
            offset,
            attempt,
        }) => format!("delivered p{bucket} #{offset}, attempt {attempt}"),
        JournalRecord::Entry(JournalEntry::Acked { bucket, offset }) => {
            format!("acked p{bucket} #{offset}")
        }
        JournalRecord::Entry(JournalEntry::AckedUpTo { bucket, offset }) => {
            format!("acked p{bucket} up to #{offset}")
        }
        JournalRecord::Entry(JournalEntry::DeadLettered { bucket, offset }) => {
            format!("dead-lettered p{bucket} #{offset}")
        }
        JournalRecord::Entry(JournalEntry::Expired { bucket, offset }) => {
            format!("expired p{bucket} #{offset} (not delivered)")
        }
        JournalRecord::Entry(JournalEntry::DeliveredRange {
            bucket,
            first,
            count,
        }) => format!(
            "delivered p{bucket} #{first}..=#{}, {count} first deliveries",
            first + (count - 1)
        ),
        JournalRecord::AckSet(set) => {
            let mut line = format!(
                "acked set of {} in {}:",
                set.len(),
                if set.runs().len() == 1 {
                    "1 run".to_string()
                } else {
                    format!("{} runs", set.runs().len())
                }
            );
            let mut level = None;
            for r in set.runs() {
                if level != Some(r.bucket) {
                    line.push_str(&format!(" p{}", r.bucket));
                    level = Some(r.bucket);
                } else {
                    line.push(',');
                }
                if r.first == r.last {
                    line.push_str(&format!(" #{}", r.first));
                } else {
                    line.push_str(&format!(" #{}..=#{}", r.first, r.last));
                }
            }
            line
        }
    }
}

/// Dumps one consumer journal file.
fn run_journal(args: &DumpArgs, path: &Path, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let j = inspect::read_journal_file(path)?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let shown = (j.records.len() as u64).min(limit) as usize;
    match args.format {
        Format::Human => {
            match &j.header {
                Some(h) => writeln!(
                    out,
                    "journal {}: generation {}, format version {}, id {:016x}, {} bytes",
                    path.display(),
                    h.generation,
                    h.version,
                    h.journal_id,
                    j.file_bytes
                )?,
                None => writeln!(out, "journal {}: header unusable", path.display())?,
            }
            for r in &j.records[..shown] {
                writeln!(
                    out,
                    "@{}+{} {}",
                    r.position,
                    r.bytes,
                    journal_record_human(&r.record)
                )?;
            }
            if j.header.is_some() {
                match j.stopped_at {
                    Some(at) => writeln!(
                        out,
                        "replay stops at byte {at}: the bytes there are no valid record (a write \
                         a crash tore, or damage); nothing after is replayed"
                    )?,
                    None => writeln!(out, "end of records at byte {}", j.end)?,
                }
            }
            for p in &j.problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(out, "{shown} records, {} problems", j.problems.len())?;
        }
        Format::Json => {
            json_line(
                out,
                "journal",
                json!({
                    "path": path.to_string_lossy(),
                    "file_bytes": j.file_bytes,
                    "generation": j.header.map(|h| h.generation),
                    "version": j.header.map(|h| h.version),
                    "journal_id": j.header.map(|h| format!("{:016x}", h.journal_id)),
                }),
            )?;
            for r in &j.records[..shown] {
                json_line(
                    out,
                    "journal_record",
                    journal_record_json(r.position, r.bytes, &r.record),
                )?;
            }
            for p in &j.problems {
                json_line(out, "problem", problem_json(p))?;
            }
            json_line(
                out,
                "summary",
                json!({
                    "records": shown,
                    "end": j.end,
                    "stopped_at": j.stopped_at,
                    "problems": j.problems.len(),
                }),
            )?;
        }
    }
    Ok(if j.problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

/// Dumps the stream, segment or journal.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    if let Some(path) = &args.journal {
        return run_journal(args, path, out);
    }
    let filter = build_filter(args)?;
    let mut problems: Vec<Problem> = Vec::new();
    let mut shown = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    let segment_store = args.segment.as_deref().and_then(store_of_segment);
    let show = Show {
        format: args.format,
        payload: args.payload,
        max_blob_bytes: args.max_blob_bytes,
        store: args.store.as_deref().or(segment_store.as_deref()),
        positions: args.segment.is_some(),
    };
    // (stream, priority, segment path) in order.
    let mut segments: Vec<(String, Option<u8>, PathBuf)> = Vec::new();
    if let Some(seg) = &args.segment {
        segments.push((String::new(), None, seg.clone()));
    } else if let (Some(store), Some(stream)) = (&args.store, &args.stream) {
        let info = inspect::inspect_stream(store, stream)?;
        problems.extend(info.problems.iter().cloned());
        for s in &info.streams {
            if let Some(p) = args.priority {
                if !s.buckets.iter().any(|b| b.priority == p) {
                    return Err(Failure::Message(format!(
                        "stream {} has no priority level {p}",
                        s.name
                    )));
                }
            }
            for b in &s.buckets {
                if args.priority.is_some_and(|p| p != b.priority) {
                    continue;
                }
                for seg in &b.segments {
                    segments.push((s.name.clone(), Some(b.priority), seg.path.clone()));
                }
            }
        }
    }
    let single = args.segment.is_some();
    'outer: for (stream, priority, path) in &segments {
        let (seg, bytes) = match inspect::read_segment_raw(path) {
            Ok(r) => r,
            Err(e) if single => return Err(e.into()),
            // Already reported by the inspection (or vanished meanwhile).
            Err(_) => continue,
        };
        if single {
            problems.extend(seg.problems.iter().cloned());
            if args.format == Format::Human {
                match (seg.header, seg.state) {
                    (Some(h), st) => writeln!(
                        out,
                        "segment {}: priority {}, base offset {}, id {:016x}, created {}, {} bytes, watermark {}{}",
                        path.display(),
                        h.bucket,
                        h.base_offset,
                        h.segment_id,
                        timestamp(h.created_us),
                        seg.file_bytes,
                        st.map_or("unknown".to_string(), |s| s.synced_end.to_string()),
                        st.map_or(String::new(), |s| format!(", epoch {}{}", s.epoch, if s.clean { ", closed cleanly" } else { "" })),
                    )?,
                    (None, _) => writeln!(out, "segment {}: header unusable", path.display())?,
                }
            }
        }
        for r in &seg.records {
            if shown >= limit {
                break 'outer;
            }
            if filter.to.is_some_and(|t| r.offset > t) {
                break;
            }
            let Some(parts) = r.parts(&bytes) else {
                continue;
            };
            let m = Msg {
                stream,
                priority: priority.or_else(|| seg.header.map(|h| h.bucket as u8)),
                segment: path,
                record: r,
                headers: parts.headers,
                body: parts.body,
                claim_check: parts.claim_check,
            };
            if !filter.matches(&m) {
                continue;
            }
            print_message(out, &show, &m, &mut problems)?;
            shown += 1;
        }
        if single && args.format == Format::Human {
            writeln!(
                out,
                "end of records at byte {} ({})",
                seg.data_end,
                match &seg.end {
                    inspect::ScanEnd::Clean => "clean".to_string(),
                    inspect::ScanEnd::Tail { position, reason } =>
                        format!("tail at byte {position}: {reason}"),
                    inspect::ScanEnd::Damaged => "damaged".to_string(),
                    inspect::ScanEnd::NotScanned => "not scanned".to_string(),
                }
            )?;
        }
    }
    match args.format {
        Format::Human => {
            for p in &problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(out, "{shown} messages, {} problems", problems.len())?;
        }
        Format::Json => {
            for p in &problems {
                json_line(out, "problem", problem_json(p))?;
            }
            json_line(
                out,
                "summary",
                json!({ "messages": shown, "problems": problems.len() }),
            )?;
        }
    }
    Ok(if problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}
