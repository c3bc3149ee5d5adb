//! The command line, declared with clap; the doc comments are the help text.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Inspect a Spool store: streams, priority buckets, segments, messages.
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
    /// per bucket `bucket` followed by its `segment`s, then every `problem`,
    /// then one `summary`.
    Json,
}
