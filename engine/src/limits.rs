//! The hard limits of the format and the API (DESIGN.md §3.3), in one leaf
//! so that every layer can name them.

/// Smallest allowed segment size.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest allowed segment size (positions in indexes are `u32`).
pub const SEGMENT_BYTES_LIMIT: u64 = 1 << 30;
/// Most priority levels a stream can have.
pub const PRIORITIES_MAX: u8 = 16;
