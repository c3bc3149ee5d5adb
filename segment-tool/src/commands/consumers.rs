//! `consumers`: the durable consumers of one stream, bucket by bucket.
//!
//! JSON Lines output, one `{"type": .., "data": {..}}` object per line, in
//! this order (absent values are `null`):
//!
//! | type | data |
//! |---|---|
//! | `consumer` | as in `info` (see [`consumer_json`]), without `oldest_unacked_age_us` |
//! | `problem` | `file`, `position`, `reason` |
//! | `summary` | `stream`, `consumers`, `problems` |
//!
//! The `consumer` record is shared with `info`.

use super::info::problem_json;
use super::{Failure, Outcome};
use crate::cli::{ConsumersArgs, Format};
use crate::output::{duration, json_line, timestamp};
use serde_json::{json, Value};
use spool::inspect::{self, ConsumerBucketInfo, ConsumerInfo, StreamInfo};
use spool::{ConsumerConfig, StartAt};
use std::io::Write;

/// Inspects the stream and prints its consumers.
pub fn run(args: &ConsumersArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let info = inspect::inspect_stream(&args.store, &args.stream)?;
    let Some(stream) = info.streams.first() else {
        // `inspect_stream` returns the stream or fails; nothing to show.
        return Ok(Outcome::Clean);
    };
    match args.format {
        Format::Human => {
            writeln!(
                out,
                "stream {}: {}",
                stream.name,
                plural(stream.consumers.len() as u64, "consumer", "consumers")
            )?;
            for c in &stream.consumers {
                human_detail(c, out)?;
            }
            for p in &info.problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(
                out,
                "{}, {}",
                plural(stream.consumers.len() as u64, "consumer", "consumers"),
                plural(info.problems.len() as u64, "problem", "problems")
            )?;
        }
        Format::Json => {
            for c in &stream.consumers {
                json_line(out, "consumer", consumer_json(stream, c))?;
            }
            for p in &info.problems {
                json_line(out, "problem", problem_json(p))?;
            }
            json_line(
                out,
                "summary",
                json!({
                    "stream": stream.name,
                    "consumers": stream.consumers.len(),
                    "problems": info.problems.len(),
                }),
            )?;
        }
    }
    Ok(if info.problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn start_human(s: StartAt) -> String {
    match s {
        StartAt::Earliest => "earliest".to_string(),
        StartAt::Latest => "latest".to_string(),
        StartAt::Offset(o) => format!("offset {o}"),
        StartAt::TimestampUs(t) => format!("timestamp {}", timestamp(t)),
    }
}

fn start_json(s: StartAt) -> Value {
    match s {
        StartAt::Earliest => json!("earliest"),
        StartAt::Latest => json!("latest"),
        StartAt::Offset(o) => json!({ "offset": o }),
        StartAt::TimestampUs(t) => json!({ "timestamp_us": t }),
    }
}

fn config_human(c: &ConsumerConfig) -> String {
    let mut s = format!(
        "start {}, visibility timeout {}",
        start_human(c.start),
        duration(u64::try_from(c.visibility_timeout.as_micros()).unwrap_or(u64::MAX))
    );
    match c.max_deliveries {
        Some(n) => s.push_str(&format!(", max deliveries {n}")),
        None => s.push_str(", unlimited deliveries"),
    }
    match &c.dead_letter {
        Some(d) => s.push_str(&format!(", dead letters to {d}")),
        None => s.push_str(", no dead-letter stream"),
    }
    match c.starvation_limit {
        Some(k) => s.push_str(&format!(", starvation limit {k}")),
        None => s.push_str(", strict priority"),
    }
    s
}

fn config_json(c: &ConsumerConfig) -> Value {
    json!({
        "start": start_json(c.start),
        "visibility_timeout_ms": u64::try_from(c.visibility_timeout.as_millis()).unwrap_or(u64::MAX),
        "max_deliveries": c.max_deliveries,
        "dead_letter": c.dead_letter,
        "starvation_limit": c.starvation_limit,
    })
}

fn lag_human(b: &ConsumerBucketInfo) -> String {
    match (b.end_offset, b.lag) {
        (Some(end), Some(lag)) => format!("lag {lag} (end {end})"),
        _ => "lag unknown (bucket end unknown)".to_string(),
    }
}

/// One line per bucket, for `info`.
pub fn human_bucket_line(b: &ConsumerBucketInfo) -> String {
    format!(
        "p{}: ack floor {}, next {}, {}, {} acked out of order, {}",
        b.priority,
        b.ack_floor,
        b.next_offset,
        lag_human(b),
        b.acked_out_of_order,
        plural(
            b.unacked_deliveries,
            "unacknowledged delivery",
            "unacknowledged deliveries"
        ),
    )
}

/// The consumer's counters and replay figures, for both commands.
pub fn human_counters(c: &ConsumerInfo) -> String {
    let generation = match c.generation {
        Some(g) => format!("generation {g}"),
        None => "checkpoint unreadable".to_string(),
    };
    let version = match c.journal_version {
        Some(v) => format!(" (journal version {v})"),
        None => String::new(),
    };
    let sets = if c.journal_ack_sets > 0 {
        format!(
            ", {} of {}",
            plural(c.journal_ack_sets, "acknowledged set", "acknowledged sets"),
            plural(c.journal_set_acks, "ack", "acks")
        )
    } else {
        String::new()
    };
    let mut s = format!(
        "{generation}, {}{sets} replayed{version}; redelivered {}, dead-lettered {}, skipped {}, \
         expired {}",
        plural(c.journal_records, "journal record", "journal records"),
        c.redelivered,
        c.dead_lettered,
        c.skipped,
        c.expired
    );
    if !c.stale_journals.is_empty() {
        s.push_str(&format!(
            ", {}",
            plural(
                c.stale_journals.len() as u64,
                "stale journal",
                "stale journals"
            )
        ));
    }
    s
}

/// The compact form shown by `info` under its stream.
pub fn human_summary(c: &ConsumerInfo, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "  consumer {}: {}", c.name, human_counters(c))?;
    for b in &c.buckets {
        writeln!(out, "    {}", human_bucket_line(b))?;
    }
    Ok(())
}

fn human_detail(c: &ConsumerInfo, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "consumer {}", c.name)?;
    match &c.config {
        Some(cfg) => writeln!(out, "  config: {}", config_human(cfg))?,
        None => writeln!(out, "  config: unreadable (see problems)")?,
    }
    writeln!(out, "  {}", human_counters(c))?;
    for b in &c.buckets {
        writeln!(
            out,
            "  p{}: ack floor {}, next offset {}, {}",
            b.priority,
            b.ack_floor,
            b.next_offset,
            lag_human(b)
        )?;
        let mut line = format!(
            "      acked set {}, {}",
            b.acked_out_of_order,
            plural(
                b.unacked_deliveries,
                "unacknowledged delivery",
                "unacknowledged deliveries"
            )
        );
        if b.unacked_deliveries > 0 {
            line.push_str(&format!(
                " ({} delivered 2+ times, most {})",
                b.unacked_redelivered, b.max_attempts
            ));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn bucket_json(b: &ConsumerBucketInfo) -> Value {
    json!({
        "priority": b.priority,
        "ack_floor": b.ack_floor,
        "next_offset": b.next_offset,
        "end_offset": b.end_offset,
        "lag": b.lag,
        "acked_out_of_order": b.acked_out_of_order,
        "unacked_deliveries": b.unacked_deliveries,
        "unacked_redelivered": b.unacked_redelivered,
        "max_attempts": b.max_attempts,
        "undelivered": b.undelivered,
        "oldest_unacked_offset": b.oldest_unacked_offset,
        "oldest_unacked_timestamp_us": b.oldest_unacked_timestamp_us,
    })
}

/// The `consumer` JSON record of `info` and `consumers`.
pub fn consumer_json(stream: &StreamInfo, c: &ConsumerInfo) -> Value {
    json!({
        "stream": stream.name,
        "name": c.name,
        "path": c.path.to_string_lossy(),
        "config": c.config.as_ref().map(config_json),
        "generation": c.generation,
        "journal": c.journal.as_ref().map(|p| p.to_string_lossy()),
        "journal_version": c.journal_version,
        "journal_records": c.journal_records,
        "journal_ack_sets": c.journal_ack_sets,
        "journal_set_acks": c.journal_set_acks,
        "stale_journals": c.stale_journals.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
        "buckets": c.buckets.iter().map(bucket_json).collect::<Vec<_>>(),
        "redelivered": c.redelivered,
        "dead_lettered": c.dead_lettered,
        "skipped": c.skipped,
        "expired": c.expired,
        "journal_expiries": c.journal_expiries,
        "problems": c.problems.len(),
        "undelivered": c.undelivered(),
        "lag": c.lag(),
        "oldest_unacked_timestamp_us": c.oldest_unacked_timestamp_us(),
    })
}
