//! Figures of a consumer, cheap to poll: counters kept in memory, the ends
//! of the buckets, and at most one record read per priority level (the
//! oldest unacknowledged message's, for its timestamp). The log is never
//! scanned.

use super::Consumer;
use crate::ctx::now_us;
use crate::Error;
use std::time::Duration;

/// Figures of one consumer in one priority bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// acknowledged out of order): undelivered, in flight and waiting for
    /// redelivery together.
    pub pending: u64,
    /// Messages never delivered: `end_offset - next_offset`.
    pub undelivered: u64,
    /// Messages leased right now.
    pub in_flight: u64,
    /// Messages waiting to be redelivered (delivered before; their lease
    /// ran out, or they were given back).
    pub waiting_redelivery: u64,
    /// Messages a receive reached before their
    /// [deliver-at](crate::Message::deliver_at), waiting for it (messages
    /// not reached yet are counted in `undelivered`).
    pub scheduled: u64,
    /// Messages a receive reached while another message of their
    /// [group](crate::Message::group) had its turn, waiting for theirs.
    pub waiting_for_group: u64,
    /// Timestamp ([`crate::Record::timestamp_us`]) of the oldest message not
    /// yet acknowledged: the one at the ack floor, or the first retained
    /// one if retention removed those below it; `None` if every message is
    /// acknowledged.
    pub oldest_unacked_timestamp_us: Option<u64>,
}

impl ConsumerBucketStats {
    /// How far behind the end of the log the ack floor is.
    pub fn lag(&self) -> u64 {
        self.end_offset.saturating_sub(self.ack_floor)
    }
}

/// Figures of one consumer ([`Consumer::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Messages whose [time to live](crate::Message::ttl) had passed when
    /// a receive reached them: never delivered, acknowledged (moved to the
    /// dead-letter stream first, if the consumer has one). Survives a
    /// reopen.
    pub expired: u64,
    /// Message groups with a message taken: one leased or waiting for its
    /// redelivery (in memory; none after an open until a receive reaches
    /// one).
    pub groups: u64,
    /// How long ago the oldest unacknowledged message (of all levels) was
    /// sent: now minus the lowest
    /// [`ConsumerBucketStats::oldest_unacked_timestamp_us`]; `None` if every
    /// message is acknowledged. Zero if the clock is behind that timestamp.
    pub oldest_unacked_age: Option<Duration>,
}

impl ConsumerStats {
    /// Messages not yet acknowledged, all levels.
    pub fn pending(&self) -> u64 {
        self.buckets.iter().map(|b| b.pending).sum()
    }
    /// Messages never delivered, all levels.
    pub fn undelivered(&self) -> u64 {
        self.buckets.iter().map(|b| b.undelivered).sum()
    }
    /// Messages leased right now, all levels.
    pub fn in_flight(&self) -> u64 {
        self.buckets.iter().map(|b| b.in_flight).sum()
    }
    /// Messages waiting to be redelivered, all levels.
    pub fn waiting_redelivery(&self) -> u64 {
        self.buckets.iter().map(|b| b.waiting_redelivery).sum()
    }
    /// Messages behind the ends of the logs, all levels (the sum of
    /// [`ConsumerBucketStats::lag`]).
    pub fn lag(&self) -> u64 {
        self.buckets.iter().map(|b| b.lag()).sum()
    }
}

impl Consumer {
    /// Figures of this consumer: positions, counts of messages by state,
    /// counters, and the age of the oldest unacknowledged message. Cheap to
    /// poll: it takes the consumer's lock once and reads at most one record
    /// per priority level, the one at the ack floor (its segment is mapped
    /// already unless it is a sealed one nobody has read since the open);
    /// nothing is scanned.
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
        let mut buckets: Vec<ConsumerBucketStats> = st
            .buckets
            .iter()
            .enumerate()
            .map(|(p, b)| {
                let c = b.checkpoint();
                let end = ends[p];
                let (scheduled, waiting_for_group) = b.parked();
                ConsumerBucketStats {
                    priority: p as u8,
                    ack_floor: b.floor(),
                    next_offset: b.next(),
                    end_offset: end,
                    pending: end
                        .saturating_sub(b.floor())
                        .saturating_sub(c.acked.len() as u64),
                    undelivered: end.saturating_sub(b.next()),
                    in_flight: b.in_flight(),
                    waiting_redelivery: b.waiting_redelivery(),
                    scheduled,
                    waiting_for_group,
                    oldest_unacked_timestamp_us: None,
                }
            })
            .collect();
        let (redelivered, dead_lettered, skipped) = (st.redelivered, st.dead_lettered, st.skipped);
        let (expired, groups) = (st.expired, st.groups.len() as u64);
        drop(st);
        // The record at the floor is the oldest unacknowledged one (the
        // floor never rests on an acknowledged offset); read without the
        // consumer's lock.
        for b in &mut buckets {
            b.oldest_unacked_timestamp_us =
                self.timestamp_at(b.priority, b.ack_floor, b.end_offset);
        }
        let oldest = buckets
            .iter()
            .filter_map(|b| b.oldest_unacked_timestamp_us)
            .min();
        ConsumerStats {
            name: self.handle.inner.name.clone(),
            buckets,
            redelivered,
            dead_lettered,
            skipped,
            expired,
            groups,
            oldest_unacked_age: oldest.map(|ts| Duration::from_micros(now_us().saturating_sub(ts))),
        }
    }

    /// Timestamp of the first retained message at or after `offset` in
    /// bucket `priority`, if there is one below `end`.
    fn timestamp_at(&self, priority: u8, offset: u64, end: u64) -> Option<u64> {
        if offset >= end {
            return None;
        }
        let stream = self.handle.stream.inner();
        match stream.read_raw(priority, offset) {
            Ok(r) => r.map(|r| r.timestamp_us()),
            // Retention removed it (and what follows up to `first`): the
            // oldest message left to acknowledge is the first retained one.
            Err(Error::OffsetNotRetained { first, .. }) if first > offset && first < end => stream
                .read_raw(priority, first)
                .ok()
                .flatten()
                .map(|r| r.timestamp_us()),
            Err(_) => None,
        }
    }
}
