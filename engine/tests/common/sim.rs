//! Options for stores on the simulated file system.

use spool::io::sim::SimFs;
use spool::{Durability, Options};
use std::sync::Arc;

/// The smallest segment size allowed: segments roll every few dozen
/// messages.
pub const SEGMENT_BYTES: u64 = 64 * 1024;

/// A store on `fs` with `durability` and the smallest segments.
pub fn options(fs: &SimFs, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_bytes_max(SEGMENT_BYTES)
        .vfs(Arc::new(fs.clone()))
}

/// [`options`] with `Durability::Always`, 8 KiB allocation chunks and 4 KiB
/// consumer journals, so that a short consumer workload rolls segments and
/// checkpoints journals.
pub fn consumer_options(fs: &SimFs) -> Options {
    options(fs, Durability::Always)
        .allocation_chunk_bytes(8192)
        .consumer_journal_bytes(4096)
}
