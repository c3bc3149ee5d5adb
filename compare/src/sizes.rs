//! Workload sizes at a given scale.

use crate::both_ways::W2_RECEIVES;
use crate::{PRODUCERS, W2_BATCH};

/// Workload sizes at a given scale (each has a floor that keeps it meaningful).
pub struct Sizes {
    /// W1 messages.
    pub w1: u64,
    /// W2 messages (a multiple of the batch).
    pub w2: u64,
    /// W2 messages each durable receive row receives back (at most W2's
    /// messages over the number of those rows).
    pub w2_receive: u64,
    /// W3 messages.
    pub w3: u64,
    /// W3c messages per producer.
    pub w3c_per: u64,
    /// W4 messages.
    pub w4: u64,
    /// F8 messages.
    pub f8: u64,
    /// C4 messages.
    pub c4: u64,
    /// Messages of C4 durable with one ack per message (a sync each).
    pub c4_each: u64,
    /// Messages of C4 durable with batch acks.
    pub c4_batch: u64,
    /// Bytes of the large store of O.
    pub open_bytes: u64,
    /// Streams of the many-streams store of O.
    pub open_streams: usize,
    /// M messages.
    pub m: u64,
    /// Syncs of the fdatasync probe.
    pub syncs: u64,
    /// Bytes of the write and memory-map probes.
    pub probe_bytes: u64,
}

impl Sizes {
    /// The sizes at `scale` (1 = full size).
    pub fn new(scale: f64) -> Sizes {
        let s = |full: u64, min: u64| ((full as f64 * scale).round() as u64).max(min);
        let batch = W2_BATCH as u64;
        let mib = |full: u64, min: u64| s(full, min) >> 20 << 20;
        let w2 = s(200_000, 10 * batch).div_ceil(batch) * batch;
        Sizes {
            w1: s(1_000_000, 1_000),
            w2,
            w2_receive: s(2_000, 50).min(w2 / W2_RECEIVES.len() as u64),
            w3: s(2_000, 50),
            w3c_per: s(2_000 / PRODUCERS as u64, 10),
            w4: s(200_000, 500),
            f8: s(200_000, 1_000),
            c4: s(200_000, 1_000),
            c4_each: s(20_000, 500),
            c4_batch: s(200_000, 1_000),
            open_bytes: mib(4 << 30, 16 << 20),
            open_streams: s(2_000, 20) as usize,
            m: s(10_000_000, 10_000),
            syncs: s(2_000, 50),
            probe_bytes: mib(256 << 20, 8 << 20),
        }
    }
}
