//! The command line, declared with clap; the doc comments are the help text.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Inspect a Spool store: streams, priority buckets, segments, messages,
/// consumers.
///
/// Reads the store with plain reads and without its lock, so it can inspect
/// a store that another process has open and is writing.
///
/// Exit status: 0 = fine, 1 = problems found in the store, 2 = usage or I/O
/// error.
#[derive(Debug, Parser)]
#[command(name = "segment-tool", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a store holds: streams, buckets, segments, messages, offsets.
    ///
    /// Lists every stream, its priority buckets and their segments with
    /// message counts, first and last offsets, time spans and sizes, then
    /// every problem found on the way (damaged records, bad headers, missing
    /// indexes), then a summary. A record being written past the durable
    /// watermark of the active segment is shown as its tail, not a problem.
    /// Exits with 1 if a problem was found.
    Info(InfoArgs),

    /// Show the durable consumers of one stream: ack floors, lag, deliveries.
    ///
    /// For each consumer of STREAM and each priority bucket: the ack floor
    /// (every offset below is acknowledged), the next offset never
    /// delivered, the bucket's end and the lag (end - floor), the size of
    /// the acked set (offsets above the floor acknowledged out of order),
    /// the unacknowledged deliveries (delivered, not acknowledged: in
    /// flight or waiting for redelivery, since leases are kept only in
    /// memory) and how many of those were delivered two times or more; then
    /// the consumer's redelivered, dead-lettered and skipped counters. The
    /// state is the consumer's checkpoint with its journal replayed, as the
    /// engine replays it at open. Every problem found in the stream is
    /// listed (a consumer's unreadable checkpoint, an ack floor past the end
    /// of the log, damaged segments, which make the lag unreliable). Exits
    /// with 1 if a problem was found, 2 if there is no such stream.
    Consumers(ConsumersArgs),
}

/// Arguments of `consumers`.
#[derive(Debug, clap::Args)]
pub struct ConsumersArgs {
    /// The store directory.
    pub store: PathBuf,

    /// The stream whose consumers to show.
    pub stream: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Arguments of `info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The store directory.
    pub store: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people; may change between versions.
    Human,
    /// JSON Lines: one object per line, `{"type": "<kind>", "data": {...}}`.
    /// Kinds of `info`, in this order: `store`, then per stream `stream`,
    /// per bucket `bucket` followed by its `segment`s, then the stream's
    /// `consumer`s, then every `problem`, then one `summary`. Kinds of
    /// `consumers`: one `consumer` per consumer, every `problem`, one
    /// `summary`.
    Json,
}
