//! `info`: what a store holds, stream by stream, bucket by bucket, segment by
//! segment, and what is wrong with it.
//!
//! JSON Lines output, one `{"type": .., "data": {..}}` object per line, in
//! this order (absent values are `null`; timestamps are microseconds since
//! the Unix epoch; positions and sizes are bytes):
//!
//! | type | data |
//! |---|---|
//! | `store` | `path`, `format_version` |
//! | `stream` | `name`, `path`, `priorities`, `buckets`, `messages`, `file_bytes` |
//! | `bucket` | `stream`, `priority`, `path`, `messages`, `first_offset`, `last_offset`, `first_timestamp_us`, `last_timestamp_us`, `segments`, `file_bytes`, `data_bytes`, `quarantined` (paths) |
//! | `segment` | `stream`, `priority`, `path`, `base_offset`, `records`, `data_end`, `file_bytes`, `sealed`, `index` (`valid`/`missing`/`invalid`), `index_reason`, `end` (`clean`/`tail`/`damaged`/`not_scanned`), `tail` (`position`, `reason`), `synced_end`, `first_timestamp_us`, `last_timestamp_us`, `problems` (count) |
//! | `consumer` | `stream`, `name`, `path`, `config` (`start`: `"earliest"`/`"latest"`/`{"offset": n}`/`{"timestamp_us": n}`, `visibility_timeout_ms`, `max_deliveries`, `dead_letter`, `starvation_limit`; `null` if unreadable), `generation` (of the checkpoint), `journal` (path of the journal replayed), `journal_version` (its format version: 1, or 2 if it may hold acknowledged sets), `journal_records` (valid records replayed), `journal_ack_sets` (of those, acknowledged sets: one per batch ack), `journal_set_acks` (the offsets those sets acknowledge), `stale_journals` (paths), `buckets` (one per priority: `priority`, `ack_floor`, `next_offset`, `end_offset`, `lag` = end − floor, `acked_out_of_order`, `unacked_deliveries` (delivered, not acknowledged: in flight or waiting for redelivery), `unacked_redelivered` (of those, delivered 2+ times), `max_attempts`), `redelivered`, `dead_lettered`, `skipped`, `problems` (count) |
//! | `problem` | `file`, `position`, `reason` |
//! | `summary` | `streams`, `buckets`, `segments`, `messages`, `consumers`, `file_bytes`, `problems` |
//!
//! Each `bucket` line is followed by its `segment` lines, and a stream's
//! `consumer` lines follow its last bucket; all `problem` lines come after
//! the last stream, and `summary` is last.

use super::consumers::{consumer_json, human_summary};
use super::{Failure, Outcome};
use crate::cli::{Format, InfoArgs};
use crate::output::{bytes, duration, json_line, timestamp};
use serde_json::{json, Value};
use spool::inspect::{
    self, BucketInfo, IndexStatus, Problem, ScanEnd, SegmentInfo, StoreInfo, StreamInfo,
};
use std::io::Write;

/// Inspects the store and prints what was found.
pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let info = inspect::inspect_store(&args.store)?;
    match args.format {
        Format::Human => human(&info, out)?,
        Format::Json => json_lines(&info, out)?,
    }
    Ok(if info.problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

/// Figures of the whole store, for the summary line.
struct Totals {
    streams: usize,
    buckets: usize,
    segments: usize,
    messages: u64,
    consumers: usize,
    file_bytes: u64,
    problems: usize,
}

fn totals(info: &StoreInfo) -> Totals {
    let buckets = || info.streams.iter().flat_map(|s| s.buckets.iter());
    Totals {
        streams: info.streams.len(),
        buckets: buckets().count(),
        segments: buckets().map(|b| b.segments.len()).sum(),
        messages: info.messages(),
        consumers: info.streams.iter().map(|s| s.consumers.len()).sum(),
        file_bytes: info.file_bytes(),
        problems: info.problems.len(),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn offsets(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!("offsets {f}..={l}"),
        (Some(f), None) => format!("empty, next offset {f}"),
        _ => "empty".to_string(),
    }
}

fn time_span(first: Option<u64>, last: Option<u64>) -> Option<String> {
    let (f, l) = (first?, last?);
    Some(format!(
        "{} .. {} ({})",
        timestamp(f),
        timestamp(l),
        duration(l.saturating_sub(f))
    ))
}

fn human(info: &StoreInfo, out: &mut dyn Write) -> std::io::Result<()> {
    let version = match info.format_version {
        Some(v) => format!("format {v}"),
        None => "format unknown".to_string(),
    };
    writeln!(out, "store {} ({version})", info.path.display())?;
    for s in &info.streams {
        human_stream(s, out)?;
    }
    for p in &info.problems {
        writeln!(out, "problem: {p}")?;
    }
    let t = totals(info);
    writeln!(
        out,
        "{}, {}, {}, {}, {}, {}, {}",
        plural(t.streams as u64, "stream", "streams"),
        plural(t.buckets as u64, "bucket", "buckets"),
        plural(t.segments as u64, "segment", "segments"),
        plural(t.messages, "message", "messages"),
        plural(t.consumers as u64, "consumer", "consumers"),
        bytes(t.file_bytes),
        plural(t.problems as u64, "problem", "problems"),
    )
}

fn human_stream(s: &StreamInfo, out: &mut dyn Write) -> std::io::Result<()> {
    let levels = match &s.config {
        Some(c) => plural(u64::from(c.priorities), "priority level", "priority levels"),
        None => "configuration unreadable".to_string(),
    };
    writeln!(
        out,
        "stream {}: {levels}, {}, {}",
        s.name,
        plural(s.messages(), "message", "messages"),
        bytes(s.file_bytes())
    )?;
    for b in &s.buckets {
        human_bucket(b, out)?;
    }
    for c in &s.consumers {
        human_summary(c, out)?;
    }
    Ok(())
}

fn human_bucket(b: &BucketInfo, out: &mut dyn Write) -> std::io::Result<()> {
    let mut line = format!(
        "  p{}: {}, {}",
        b.priority,
        plural(b.messages, "message", "messages"),
        offsets(b.first_offset, b.last_offset)
    );
    if let Some(span) = time_span(b.first_timestamp_us, b.last_timestamp_us) {
        line.push_str(", ");
        line.push_str(&span);
    }
    line.push_str(&format!(
        ", {}, {} ({} of records)",
        plural(b.segments.len() as u64, "segment", "segments"),
        bytes(b.file_bytes),
        bytes(b.data_bytes)
    ));
    if !b.quarantined.is_empty() {
        line.push_str(&format!(
            ", {} in quarantine",
            plural(b.quarantined.len() as u64, "file", "files")
        ));
    }
    writeln!(out, "{line}")?;
    for seg in &b.segments {
        human_segment(seg, out)?;
    }
    Ok(())
}

fn human_segment(seg: &SegmentInfo, out: &mut dyn Write) -> std::io::Result<()> {
    let name = seg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let last = seg
        .base_offset()
        .filter(|_| seg.record_count > 0)
        .map(|b| b + seg.record_count - 1);
    let kind = match (seg.sealed, &seg.index) {
        (false, _) => "active",
        (true, IndexStatus::Valid) => "sealed, index ok",
        (true, IndexStatus::Missing) => "sealed, index missing",
        (true, IndexStatus::Invalid(_)) => "sealed, index invalid",
    };
    writeln!(
        out,
        "    {name}  {}, {}, {} of records in {}, {kind}",
        plural(seg.record_count, "record", "records"),
        offsets(seg.base_offset(), last),
        bytes(seg.data_end.saturating_sub(inspect::SEGMENT_DATA_START)),
        bytes(seg.file_bytes),
    )?;
    match &seg.end {
        ScanEnd::Tail { position, reason } => writeln!(
            out,
            "      tail at byte {position}: {reason} (not yet durable: being written, or torn)"
        ),
        ScanEnd::Damaged => writeln!(out, "      damaged (see problems)"),
        ScanEnd::NotScanned => writeln!(out, "      not scanned (see problems)"),
        ScanEnd::Clean => Ok(()),
    }
}

fn json_lines(info: &StoreInfo, out: &mut dyn Write) -> std::io::Result<()> {
    json_line(
        out,
        "store",
        json!({
            "path": info.path.to_string_lossy(),
            "format_version": info.format_version,
        }),
    )?;
    for s in &info.streams {
        json_line(
            out,
            "stream",
            json!({
                "name": s.name,
                "path": s.path.to_string_lossy(),
                "priorities": s.config.as_ref().map(|c| c.priorities),
                "buckets": s.buckets.len(),
                "messages": s.messages(),
                "file_bytes": s.file_bytes(),
            }),
        )?;
        for b in &s.buckets {
            json_line(out, "bucket", bucket_json(&s.name, b))?;
            for seg in &b.segments {
                json_line(out, "segment", segment_json(&s.name, b.priority, seg))?;
            }
        }
        for c in &s.consumers {
            json_line(out, "consumer", consumer_json(s, c))?;
        }
    }
    for p in &info.problems {
        json_line(out, "problem", problem_json(p))?;
    }
    let t = totals(info);
    json_line(
        out,
        "summary",
        json!({
            "streams": t.streams,
            "buckets": t.buckets,
            "segments": t.segments,
            "messages": t.messages,
            "consumers": t.consumers,
            "file_bytes": t.file_bytes,
            "problems": t.problems,
        }),
    )
}

fn bucket_json(stream: &str, b: &BucketInfo) -> Value {
    json!({
        "stream": stream,
        "priority": b.priority,
        "path": b.path.to_string_lossy(),
        "messages": b.messages,
        "first_offset": b.first_offset,
        "last_offset": b.last_offset,
        "first_timestamp_us": b.first_timestamp_us,
        "last_timestamp_us": b.last_timestamp_us,
        "segments": b.segments.len(),
        "file_bytes": b.file_bytes,
        "data_bytes": b.data_bytes,
        "quarantined": b.quarantined.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
    })
}

fn segment_json(stream: &str, priority: u8, seg: &SegmentInfo) -> Value {
    let (index, index_reason) = match &seg.index {
        IndexStatus::Valid => ("valid", None),
        IndexStatus::Missing => ("missing", None),
        IndexStatus::Invalid(why) => ("invalid", Some(why.as_str())),
    };
    let (end, tail) = match &seg.end {
        ScanEnd::Clean => ("clean", Value::Null),
        ScanEnd::Tail { position, reason } => {
            ("tail", json!({ "position": position, "reason": reason }))
        }
        ScanEnd::Damaged => ("damaged", Value::Null),
        ScanEnd::NotScanned => ("not_scanned", Value::Null),
    };
    json!({
        "stream": stream,
        "priority": priority,
        "path": seg.path.to_string_lossy(),
        "base_offset": seg.base_offset(),
        "records": seg.record_count,
        "data_end": seg.data_end,
        "file_bytes": seg.file_bytes,
        "sealed": seg.sealed,
        "index": index,
        "index_reason": index_reason,
        "end": end,
        "tail": tail,
        "synced_end": seg.state.map(|s| s.synced_end),
        "first_timestamp_us": seg.first_timestamp_us,
        "last_timestamp_us": seg.last_timestamp_us,
        "problems": seg.problems.len(),
    })
}

/// The `problem` JSON record.
pub fn problem_json(p: &Problem) -> Value {
    json!({
        "file": p.file.to_string_lossy(),
        "position": p.position,
        "reason": p.reason,
    })
}
