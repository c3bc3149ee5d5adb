//! Figures of a consumer.

use super::Consumer;

/// Figures of one consumer in one priority bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerBucketStats {
    /// Priority level.
    pub priority: u8,
    /// Every offset below is acknowledged.
    pub ack_floor: u64,
    /// First offset never delivered.
    pub next_offset: u64,
    /// End of the bucket's log.
    pub end_offset: u64,
    /// Messages not yet acknowledged (`end_offset - ack_floor` minus those
    /// acknowledged out of order).
    pub pending: u64,
    /// Messages leased right now.
    pub in_flight: u64,
    /// Messages waiting to be redelivered.
    pub waiting_redelivery: u64,
}

impl ConsumerBucketStats {
    /// How far behind the end of the log the ack floor is.
    pub fn lag(&self) -> u64 {
        self.end_offset.saturating_sub(self.ack_floor)
    }
}

/// Figures of one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// The consumer's name.
    pub name: String,
    /// One entry per priority level, lowest first.
    pub buckets: Vec<ConsumerBucketStats>,
    /// Deliveries that were not the first of their message.
    pub redelivered: u64,
    /// Messages moved to the dead-letter stream (or dropped after
    /// `max_deliveries` without one).
    pub dead_lettered: u64,
    /// Messages removed by retention limits before this consumer acknowledged them.
    pub skipped: u64,
}

impl ConsumerStats {
    /// Messages not yet acknowledged, all levels.
    pub fn pending(&self) -> u64 {
        self.buckets.iter().map(|b| b.pending).sum()
    }
    /// Messages leased right now, all levels.
    pub fn in_flight(&self) -> u64 {
        self.buckets.iter().map(|b| b.in_flight).sum()
    }
}

impl Consumer {
    /// Figures of this consumer.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     jobs.send_batch(["a", "b", "c"])?;
    ///     let worker = jobs.consumer("worker")?;
    ///
    ///     let first = worker.try_receive()?.unwrap();
    ///     let stats = worker.stats();
    ///     assert_eq!((stats.pending(), stats.in_flight()), (3, 1));
    ///     first.ack()?;
    ///
    ///     let p0 = &worker.stats().buckets[0];
    ///     assert_eq!((p0.ack_floor, p0.next_offset, p0.end_offset), (1, 1, 3));
    ///     assert_eq!(p0.lag(), 2); // b and c
    ///     Ok(())
    /// }
    /// ```
    pub fn stats(&self) -> ConsumerStats {
        let priorities = self.handle.stream.priorities();
        let ends: Vec<u64> = (0..priorities)
            .map(|p| self.handle.stream.end_offset(p))
            .collect();
        let st = self.lock();
        ConsumerStats {
            name: self.handle.inner.name.clone(),
            buckets: st
                .buckets
                .iter()
                .enumerate()
                .map(|(p, b)| {
                    let c = b.checkpoint();
                    let end = ends[p];
                    ConsumerBucketStats {
                        priority: p as u8,
                        ack_floor: b.floor(),
                        next_offset: b.next(),
                        end_offset: end,
                        pending: end
                            .saturating_sub(b.floor())
                            .saturating_sub(c.acked.len() as u64),
                        in_flight: b.in_flight(),
                        waiting_redelivery: b.waiting_redelivery(),
                    }
                })
                .collect(),
            redelivered: st.redelivered,
            dead_lettered: st.dead_lettered,
            skipped: st.skipped,
        }
    }
}
