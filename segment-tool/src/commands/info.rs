//! `info`: what a store holds, stream by stream, bucket by bucket, segment by
//! segment, and what is wrong with it.
//!
//! JSON Lines output, one `{"type": .., "data": {..}}` object per line, in
//! this order (absent values are `null`; timestamps are microseconds since
//! the Unix epoch; positions and sizes are bytes):
//!
//! | type | data |
//! |---|---|
//! | `store` | `path`, `format_version`, `in_use` (a process has it open; `null` if that cannot be told) |
//! | `stream` | `name`, `path`, `priorities`, `message_type` (`name`, `version`, `codec` of its typed messages, from `message_type.meta`; `null` if none or unreadable), `buckets`, `messages`, `file_bytes` |
//! | `bucket` | `stream`, `priority`, `path`, `messages`, `first_offset`, `last_offset`, `first_timestamp_us`, `last_timestamp_us`, `segments`, `file_bytes`, `data_bytes`, `quarantined` (paths), `kept_ids` (the kept ids of segments retention deleted within the dedup window: `path`, `base_offset`, `ids`, `newest_timestamp_us`, `unusable` (why, or null)) |
//! | `segment` | `stream`, `priority`, `path`, `base_offset`, `records`, `data_end`, `file_bytes`, `sealed`, `index` (`valid`/`missing`/`invalid`), `index_reason`, `end` (`clean`/`tail`/`damaged`/`not_scanned`), `tail` (`position`, `reason`), `synced_end`, `first_timestamp_us`, `last_timestamp_us`, `attributes` (records with message attributes: `scheduled` (a deliver-at), `scheduled_later` (one after the inspection's clock), `with_ttl` (an expires-at), `expired` (one that has passed), `with_id`, `grouped`), `problems` (count), `dedup_ids` (records with a deduplication id; a sealed segment's valid index lists the same) |
//! | `consumer` | `stream`, `name`, `path`, `config` (`start`: `"earliest"`/`"latest"`/`{"offset": n}`/`{"timestamp_us": n}`, `visibility_timeout_ms`, `max_deliveries`, `dead_letter`, `starvation_limit`; `null` if unreadable), `generation` (of the checkpoint), `journal` (path of the journal replayed), `journal_version` (its format version: 1, 2 if it may hold acknowledged sets and delivered ranges, 3 if expiries too), `journal_records` (valid records replayed), `journal_ack_sets` (of those, acknowledged sets: one per batch ack), `journal_set_acks` (the offsets those sets acknowledge), `stale_journals` (paths), `buckets` (one per priority: `priority`, `ack_floor`, `next_offset`, `end_offset`, `lag` = end − floor, `acked_out_of_order`, `unacked_deliveries` (delivered, not acknowledged: in flight or waiting for redelivery), `unacked_redelivered` (of those, delivered 2+ times), `max_attempts`), `redelivered`, `dead_lettered`, `skipped`, `expired` (messages found expired instead of delivered), `journal_expiries` (of the journal records replayed, expiries), `problems` (count) |
//! | `disk` | `stream` (`null` for the whole store), `files`, `apparent_bytes` (sum of the files' lengths), `disk_bytes` (blocks allocated to them, `st_blocks` × 512; `null` if the file system does not tell), `consumer_files`, `consumer_apparent_bytes`, `consumer_disk_bytes` (of those, the consumers' files; `null` for the store) |
//! | `problem` | `file`, `position`, `reason` |
//! | `summary` | `streams`, `buckets`, `segments`, `messages`, `consumers`, `file_bytes`, `problems` |
//!
//! Each `bucket` line is followed by its `segment` lines, and a stream's
//! `consumer` lines follow its last bucket, then its `disk` line; all
//! `problem` lines come after the last stream, then the store's `disk`
//! line, and `summary` is last.
//!
//! The `consumer` record also holds `undelivered` (never delivered, all
//! levels), `lag` (all levels), `oldest_unacked_timestamp_us` (the oldest
//! message not acknowledged, all levels; `null` if none) and
//! `oldest_unacked_age_us` (now − that timestamp), and each of its
//! `buckets` `undelivered`, `oldest_unacked_offset` and
//! `oldest_unacked_timestamp_us`; the human output shows them on the line
//! `consumer <name> figures:` after the stream's consumers.
//!
//! Disk figures count every regular file: segments (created at their full
//! size and filled in, so their apparent size runs ahead of the disk they
//! use), indexes, marks, quarantined tails, consumer configurations,
//! checkpoints and journals; for the store also blobs and its own files.

use super::consumers::{consumer_json, human_summary};
use super::{Failure, Outcome};
use crate::cli::{Format, InfoArgs};
use crate::output::{bytes, duration, json_line, timestamp};
use serde_json::{json, Value};
use spool::inspect::{
    self, BucketInfo, ConsumerInfo, DiskUsage, IndexStatus, Problem, ScanEnd, SegmentInfo,
    StoreDiskUsage, StoreInfo, StreamDiskUsage, StreamInfo,
};
use std::io::Write;

/// Inspects the store and prints what was found.
pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let info = inspect::inspect_store(&args.store)?;
    let disk = inspect::disk_usage(&args.store)?;
    let now = now_us();
    match args.format {
        Format::Human => human(&info, &disk, now, out)?,
        Format::Json => json_lines(&info, &disk, now, out)?,
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

/// Microseconds since the Unix epoch now (ages are measured from it).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The disk usage of stream `name`, if it was measured.
fn stream_disk<'a>(disk: &'a StoreDiskUsage, name: &str) -> Option<&'a StreamDiskUsage> {
    disk.streams.iter().find(|d| d.name == name)
}

/// `1.2 MiB used on disk, 64.0 MiB apparent (7 files)`.
fn disk_human(d: &DiskUsage) -> String {
    let used = match d.allocated_bytes {
        Some(b) => bytes(b),
        None => "unknown".to_string(),
    };
    format!(
        "{used} used on disk, {} apparent ({})",
        bytes(d.apparent_bytes),
        plural(d.files, "file", "files")
    )
}

/// The figures of a consumer an operator watches: what is left to deliver
/// and to acknowledge, and how old the oldest unacknowledged message is.
fn consumer_figures_human(c: &ConsumerInfo, now: u64) -> String {
    let unacked: u64 = c.buckets.iter().map(|b| b.unacked_deliveries).sum();
    let oldest = match c.oldest_unacked_timestamp_us() {
        Some(ts) => format!(
            "oldest unacknowledged {} (age {})",
            timestamp(ts),
            duration(now.saturating_sub(ts))
        ),
        None => "nothing unacknowledged".to_string(),
    };
    format!(
        "undelivered {}, {} (in flight or waiting for redelivery), lag {}, {oldest}, \
         redelivered {}, dead-lettered {}, expired {}",
        c.undelivered(),
        plural(
            unacked,
            "unacknowledged delivery",
            "unacknowledged deliveries"
        ),
        c.lag(),
        c.redelivered,
        c.dead_lettered,
        c.expired
    )
}

fn human(
    info: &StoreInfo,
    disk: &StoreDiskUsage,
    now: u64,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let version = match info.format_version {
        Some(v) => format!("format {v}"),
        None => "format unknown".to_string(),
    };
    let in_use = match info.in_use {
        Some(true) => ", in use",
        Some(false) => "",
        None => ", in use: unknown",
    };
    writeln!(out, "store {} ({version}{in_use})", info.path.display())?;
    for s in &info.streams {
        human_stream(s, info.in_use, out)?;
        for c in &s.consumers {
            writeln!(
                out,
                "  consumer {} figures: {}",
                c.name,
                consumer_figures_human(c, now)
            )?;
        }
        if let Some(d) = stream_disk(disk, &s.name) {
            writeln!(
                out,
                "  disk: {}; consumers {}",
                disk_human(&d.total),
                disk_human(&d.consumers)
            )?;
        }
    }
    for p in &info.problems {
        writeln!(out, "problem: {p}")?;
    }
    writeln!(out, "disk: {}", disk_human(&disk.total))?;
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

fn human_stream(s: &StreamInfo, in_use: Option<bool>, out: &mut dyn Write) -> std::io::Result<()> {
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
    if let Some(t) = &s.message_type {
        writeln!(
            out,
            "  message type: {} version {} ({})",
            t.name, t.version, t.codec
        )?;
    }
    for b in &s.buckets {
        human_bucket(b, in_use, out)?;
    }
    for c in &s.consumers {
        human_summary(c, out)?;
    }
    Ok(())
}

fn human_bucket(b: &BucketInfo, in_use: Option<bool>, out: &mut dyn Write) -> std::io::Result<()> {
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
    if !b.kept_ids.is_empty() {
        let ids: u64 = b.kept_ids.iter().map(|k| u64::from(k.ids)).sum();
        line.push_str(&format!(
            ", kept ids of {} ({})",
            plural(
                b.kept_ids.len() as u64,
                "deleted segment",
                "deleted segments"
            ),
            plural(ids, "id", "ids")
        ));
    }
    writeln!(out, "{line}")?;
    for seg in &b.segments {
        human_segment(seg, in_use, out)?;
    }
    for k in &b.kept_ids {
        let what = match (&k.unusable, k.newest_timestamp_us) {
            (Some(why), _) => format!("unusable: {why}"),
            (None, Some(ts)) => format!(
                "{}, newest {}",
                plural(u64::from(k.ids), "id", "ids"),
                crate::output::timestamp(ts)
            ),
            (None, None) => plural(u64::from(k.ids), "id", "ids"),
        };
        writeln!(
            out,
            "    kept ids {} (deleted segment at offset {}): {what}",
            k.path.display(),
            k.base_offset
        )?;
    }
    Ok(())
}

fn human_segment(
    seg: &SegmentInfo,
    in_use: Option<bool>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
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
    let a = &seg.attributes;
    if *a != inspect::AttributeCounts::default() {
        writeln!(
            out,
            "      attributes: {} scheduled ({} still ahead), {} with a ttl ({} expired), {} with \
             an id, {} in groups",
            a.scheduled, a.scheduled_later, a.with_ttl, a.expired, a.with_id, a.grouped
        )?;
    }
    match &seg.end {
        ScanEnd::Tail { position, reason } => {
            let what = match in_use {
                Some(true) => "being written",
                Some(false) => "a torn tail, never acknowledged",
                None => "being written, or a torn tail",
            };
            writeln!(out, "      tail at byte {position}: {reason} ({what})")
        }
        ScanEnd::Damaged => writeln!(out, "      damaged (see problems)"),
        ScanEnd::NotScanned => writeln!(out, "      not scanned (see problems)"),
        ScanEnd::Clean => Ok(()),
    }?;
    if seg.attributes.with_id > 0 {
        writeln!(
            out,
            "      {} (deduplication ids)",
            plural(
                seg.attributes.with_id,
                "record with an id",
                "records with ids"
            )
        )?;
    }
    Ok(())
}

/// The `disk` JSON record of a stream (`consumers` given) or the store.
fn disk_json(stream: Option<&str>, total: &DiskUsage, consumers: Option<&DiskUsage>) -> Value {
    json!({
        "stream": stream,
        "files": total.files,
        "apparent_bytes": total.apparent_bytes,
        "disk_bytes": total.allocated_bytes,
        "consumer_files": consumers.map(|c| c.files),
        "consumer_apparent_bytes": consumers.map(|c| c.apparent_bytes),
        "consumer_disk_bytes": consumers.and_then(|c| c.allocated_bytes),
    })
}

fn json_lines(
    info: &StoreInfo,
    disk: &StoreDiskUsage,
    now: u64,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    json_line(
        out,
        "store",
        json!({
            "path": info.path.to_string_lossy(),
            "format_version": info.format_version,
            "in_use": info.in_use,
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
                "message_type": s.message_type.as_ref().map(|t| json!({
                    "name": t.name,
                    "version": t.version,
                    "codec": t.codec,
                })),
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
            let mut record = consumer_json(s, c);
            record["oldest_unacked_age_us"] = json!(c
                .oldest_unacked_timestamp_us()
                .map(|ts| now.saturating_sub(ts)));
            json_line(out, "consumer", record)?;
        }
        if let Some(d) = stream_disk(disk, &s.name) {
            json_line(
                out,
                "disk",
                disk_json(Some(&s.name), &d.total, Some(&d.consumers)),
            )?;
        }
    }
    for p in &info.problems {
        json_line(out, "problem", problem_json(p))?;
    }
    json_line(out, "disk", disk_json(None, &disk.total, None))?;
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
        "kept_ids": b.kept_ids.iter().map(|k| json!({
            "path": k.path.to_string_lossy(),
            "base_offset": k.base_offset,
            "ids": k.ids,
            "newest_timestamp_us": k.newest_timestamp_us,
            "unusable": k.unusable,
        })).collect::<Vec<_>>(),
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
        "attributes": json!({
            "scheduled": seg.attributes.scheduled,
            "scheduled_later": seg.attributes.scheduled_later,
            "with_ttl": seg.attributes.with_ttl,
            "expired": seg.attributes.expired,
            "with_id": seg.attributes.with_id,
            "grouped": seg.attributes.grouped,
        }),
        "problems": seg.problems.len(),
        "dedup_ids": seg.attributes.with_id,
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
