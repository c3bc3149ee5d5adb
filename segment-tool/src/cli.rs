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
    /// the consumer's redelivered, dead-lettered and skipped counters
    /// (skipped: removed by retention or a purge before it acknowledged
    /// them). The state is the consumer's checkpoint with its journal
    /// replayed and moved past what retention removed, as the engine
    /// replays it at open. Every problem found in the stream is
    /// listed (a consumer's unreadable checkpoint, an ack floor past the end
    /// of the log, damaged segments, which make the lag unreliable). Exits
    /// with 1 if a problem was found, 2 if there is no such stream.
    Consumers(ConsumersArgs),

    /// Print the messages of a stream, the records of one segment file, or
    /// the records of one consumer journal.
    ///
    /// Each message with its priority, offset, timestamp, headers and
    /// payload. Filters combine (all must match). A claim-check record shows
    /// its reference (BLAKE3 hash, length); unless `--payload none`, the blob
    /// file is read (up to `--max-blob-bytes`) and its hash checked. With
    /// --journal, each record the engine's replay takes from the journal
    /// (deliveries, acks, cursor acks, dead letters, acknowledged sets with
    /// their runs of offsets) with its byte position, and where the replay
    /// stops. Exits with 1 if a problem was found on the way (damaged
    /// segment, bad blob, a file that is no journal).
    Dump(DumpArgs),

    /// Check everything: records (CRC, offsets), indexes, consumer states
    /// against the log, claim-check blobs (present, length, BLAKE3 hash).
    ///
    /// Prints every problem with its file and byte position. Orphan blobs
    /// (no message refers to them) are warnings. A torn tail past the
    /// durable watermark of an active segment is a problem on a store that
    /// nobody has open; while a process has it open, it is the record being
    /// written, and orphan blobs are not looked for (a send in progress
    /// looks the same). Shows progress on stderr when it is a terminal.
    /// Exits with 1 if any problem was found.
    Verify(VerifyArgs),

    /// Fix what can be fixed without losing acknowledged data.
    ///
    /// Takes the store's lock (fails with status 2 if the store is in use),
    /// then: cuts torn tails of active segments (copied to the bucket's
    /// quarantine/ first, then zeroed), rebuilds missing or bad indexes of
    /// sealed segments, removes orphan blobs and leftover temporary files.
    /// Damage to acknowledged data (below a segment's durable watermark, or
    /// in a sealed segment) is never touched unless --force-truncate-at names
    /// the exact file and byte position, which is allowed only in the last
    /// segment of a bucket. Exits with 1 if problems remain that were not
    /// repaired.
    Repair(RepairArgs),

    /// Print the last messages of a stream; with -f, keep printing new ones.
    ///
    /// Polls the active segment with plain reads every 100 ms and follows
    /// segment rolls. Stops on Ctrl-C or when the output is closed.
    Tail(TailArgs),
}

/// Arguments of `dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The store directory (not with --segment or --journal).
    #[arg(required_unless_present_any = ["segment", "journal"])]
    pub store: Option<PathBuf>,

    /// The stream to dump.
    #[arg(required_unless_present_any = ["segment", "journal"])]
    pub stream: Option<String>,

    /// Dump this one segment file instead, with byte positions.
    #[arg(long, conflicts_with_all = ["store", "stream", "journal"])]
    pub segment: Option<PathBuf>,

    /// Dump this consumer journal file instead
    /// (`<store>/streams/<s>/consumers/<c>/journal.<generation>`): its
    /// records with byte positions (only --limit and --format apply).
    #[arg(
        long,
        conflicts_with_all = ["store", "stream", "from", "to", "since", "until", "headers", "grep", "priority"]
    )]
    pub journal: Option<PathBuf>,

    /// How payloads are shown.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Utf8)]
    pub payload: PayloadFormat,

    /// First offset shown.
    #[arg(long)]
    pub from: Option<u64>,

    /// Last offset shown (inclusive).
    #[arg(long)]
    pub to: Option<u64>,

    /// Only messages at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,

    /// Only messages at or before this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub until: Option<String>,

    /// Only messages with this header (`key=value`); repeatable, all must match.
    #[arg(long = "header")]
    pub headers: Vec<String>,

    /// Only messages whose payload contains these bytes.
    #[arg(long)]
    pub grep: Option<String>,

    /// At most this many messages.
    #[arg(long)]
    pub limit: Option<u64>,

    /// Only this priority level (default: all levels).
    #[arg(long)]
    pub priority: Option<u8>,

    /// Largest claim-check blob read to show its payload.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_blob_bytes: u64,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// How payloads are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PayloadFormat {
    /// UTF-8, invalid sequences replaced.
    Utf8,
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// Not shown (blobs are not read either).
    None,
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The store directory.
    pub store: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Arguments of `repair`.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// The store directory.
    pub store: PathBuf,

    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Cut acknowledged data: `FILE:POSITION` names a segment file and the
    /// byte position from which its data is quarantined and zeroed.
    #[arg(long, value_name = "FILE:POSITION")]
    pub force_truncate_at: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Arguments of `tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The store directory.
    pub store: PathBuf,

    /// The stream.
    pub stream: String,

    /// Keep printing new messages as they arrive.
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// How many of the last messages to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,

    /// Only this priority level (default: all levels).
    #[arg(long)]
    pub priority: Option<u8>,

    /// How payloads are shown.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Utf8)]
    pub payload: PayloadFormat,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
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
    /// `summary`. `dump` and `tail`: one `message` per message (`stream`,
    /// `priority`, `offset`, `timestamp_us`, `position`, `headers`,
    /// `payload`, `claim_check`), every `problem`, one `summary` (dump).
    /// `verify`: every `problem` (with `warning`), one `summary`. `repair`:
    /// one `action` per change (`done`), one `refused` per problem left
    /// alone, one `summary`.
    Json,
}
