//! The in-memory index of the active segment: record positions, appended by
//! the writer and read without locks.
//!
//! Slots live in fixed-size chunks allocated on demand, so memory grows with
//! the records written, not with the segment size, and a slot never moves.
//! A slot is valid once the segment's published record count covers it (the
//! count is stored with `Release` after the slot).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const CHUNK_SLOTS: usize = 16 * 1024;

/// Positions of the records of one segment, in offset order.
#[derive(Debug)]
pub(crate) struct AppendIndex {
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl AppendIndex {
    /// An index able to hold `capacity` records.
    pub(crate) fn new(capacity: usize) -> AppendIndex {
        let n = capacity.div_ceil(CHUNK_SLOTS).max(1);
        AppendIndex {
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Records capacity.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK_SLOTS
    }

    /// Sets slot `i` (writer only; `i` is not yet published).
    #[inline]
    pub(crate) fn set(&self, i: usize, position: u32) {
        let chunk = self.chunks[i / CHUNK_SLOTS]
            .get_or_init(|| (0..CHUNK_SLOTS).map(|_| AtomicU32::new(0)).collect());
        chunk[i % CHUNK_SLOTS].store(position, Ordering::Relaxed);
    }

    /// Reads slot `i`, which the caller knows is published.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<u32> {
        let chunk = self.chunks.get(i / CHUNK_SLOTS)?.get()?;
        Some(chunk[i % CHUNK_SLOTS].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get_across_chunks() {
        let idx = AppendIndex::new(CHUNK_SLOTS * 2 + 5);
        assert_eq!(idx.capacity(), CHUNK_SLOTS * 3);
        for i in [0, 1, CHUNK_SLOTS - 1, CHUNK_SLOTS, CHUNK_SLOTS * 2 + 4] {
            idx.set(i, i as u32 * 8);
            assert_eq!(idx.get(i), Some(i as u32 * 8));
        }
        assert_eq!(idx.get(CHUNK_SLOTS * 10), None);
    }
}
