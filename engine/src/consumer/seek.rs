//! Moving a consumer after its creation (a seek), and what a stream's
//! deletion or purge does to its consumers (DESIGN.md §6, "Seeking a
//! consumer").

use super::state::groups::Groups;
use super::state::BucketState;
use super::{files, Consumer, ConsumerInner, StartAt};
use crate::io::SharedMap;
use crate::{Error, Result};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Consumer {
    /// Moves the consumer to `to` in every priority level, as if it had
    /// been created there ([`StartAt`], clamped to what the stream retains
    /// and holds: a position below the first retained message is that
    /// message). Durable when this returns (a new checkpoint generation,
    /// whatever the store's durability), and crash-safe: after a crash the
    /// consumer is where it was or where it was moved, never in between.
    ///
    /// What it means for the messages:
    ///
    /// - back (`Earliest`, an older offset or time): everything from the
    ///   new position on is delivered again, acknowledged or not, as new
    ///   deliveries (attempt 1: delivery counts start over, so a message
    ///   near `max_deliveries` gets its full count again);
    /// - forward (`Latest`, a later offset): what it passes over is not
    ///   delivered, and counted nowhere (neither acknowledged by a user
    ///   nor skipped: the consumer was told to move);
    /// - deliveries handed out before the seek are void: their
    ///   [`Delivery::ack`](crate::Delivery::ack) (and batch acks of them)
    ///   return `Ok` and change nothing, their nacks change nothing, and
    ///   [`Delivery::extend_lease`](crate::Delivery::extend_lease) fails
    ///   with [`Error::LeaseExpired`]. The message is delivered again if
    ///   the new position is at or below it.
    ///
    /// The counters (`redelivered`, `dead_lettered`, `skipped`) are kept.
    ///
    /// ```
    /// use spool::{Options, StartAt, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let events = store.stream("events")?;
    /// events.send_batch(["a", "b", "c"])?;
    /// let indexer = events.consumer("indexer")?;
    /// indexer.ack_up_to(0, 2)?; // all three done
    ///
    /// indexer.seek(StartAt::Offset(1))?; // replay from "b"
    /// let again = indexer.try_receive()?.expect("b, again");
    /// assert_eq!((again.payload(), again.attempt()), (&b"b"[..], 1));
    ///
    /// indexer.seek(StartAt::Latest)?; // skip the rest
    /// again.ack()?; // delivered before the seek: changes nothing
    /// assert!(indexer.try_receive()?.is_none());
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn seek(&self, to: StartAt) -> Result<()> {
        let stream = self.handle.stream.inner().clone();
        self.seek_with(|p| files::start_offset(&stream, p, to))
    }

    /// [`Consumer::seek`] to one offset per priority level (`offsets[p]`
    /// for level `p`, each clamped to what the level retains and holds);
    /// [`Error::InvalidArgument`] unless there is one per level.
    ///
    /// ```
    /// use spool::{Message, Options, Store, StreamConfig};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let tasks = store.create_stream("tasks", StreamConfig::default().priorities(2))?;
    /// tasks.send_batch([Message::new(b"low 0"), Message::new(b"low 1")])?;
    /// tasks.send_message(Message::new(b"high 0").priority(1))?;
    /// let worker = tasks.consumer("worker")?;
    /// worker.seek_offsets(&[1, 1])?; // level 0 from offset 1, level 1 past its end
    /// assert_eq!(worker.try_receive()?.unwrap().payload(), b"low 1");
    /// assert!(worker.try_receive()?.is_none());
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn seek_offsets(&self, offsets: &[u64]) -> Result<()> {
        let stream = self.handle.stream.inner().clone();
        if offsets.len() != usize::from(stream.priorities()) {
            return Err(Error::InvalidArgument(format!(
                "{} offsets for a seek of a stream of {} priority levels",
                offsets.len(),
                stream.priorities()
            )));
        }
        self.seek_with(|p| {
            files::start_offset(&stream, p, StartAt::Offset(offsets[usize::from(p)]))
        })
    }

    /// A seek to `start(p)` in each level `p`: the new state is written as
    /// the checkpoint of a new generation (the rotation protocol of
    /// DESIGN.md §6), under the stream's retention lock (no pass deletes
    /// below the new position meanwhile) and the consumer's state lock. If
    /// the rotation fails, the state is as before (or the store poisoned).
    fn seek_with(&self, start: impl Fn(u8) -> Result<u64>) -> Result<()> {
        let stream = self.handle.stream.inner().clone();
        let _pass = stream.retention_guard();
        let mut st = self.lock_open()?;
        let starts = (0..stream.priorities())
            .map(&start)
            .collect::<Result<Vec<u64>>>()?;
        let fresh: Vec<BucketState> = starts.iter().map(|&s| BucketState::new(s)).collect();
        let before = std::mem::replace(&mut st.buckets, fresh);
        if let Err(e) = self.handle.inner.rotate(&mut st, false) {
            st.buckets = before;
            return Err(e);
        }
        // The groups' turns were of the old deliveries: the takes from the
        // new position hand them out afresh, as after an open.
        st.groups = Groups::default();
        st.seek_lease_floor = self.handle.inner.next_lease.load(Ordering::Relaxed);
        st.nack_reasons.clear();
        st.higher_streak = 0;
        drop(st);
        tracing::info!(
            target: crate::events::CONSUMER,
            stream = %stream.name(),
            consumer = %self.name(),
            positions = ?starts,
            "consumer moved by a seek"
        );
        // Messages to deliver again: receivers asleep may take them.
        self.handle.stream.notify().notify();
        Ok(())
    }
}

impl ConsumerInner {
    /// Marks the consumer deleted (its stream is being deleted), or not
    /// (the deletion failed before its durable step), under its state
    /// lock: no call of a handle is in progress then.
    pub(crate) fn set_deleted(&self, deleted: bool) {
        let _st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.deleted.store(deleted, Ordering::Release);
    }

    /// The current journal's map (whose prefaults a deletion drops).
    pub(crate) fn journal_map(&self) -> Arc<SharedMap> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// After a purge: every level's position moves to the log's first
    /// retained offset (`logs[p]`), what it passes unacknowledged counted
    /// as skipped, as an open replaying the files would count it; the
    /// segments it read last are let go (their files are gone).
    ///
    /// If it skipped anything, the new state is checkpointed (a rotation)
    /// before the lock is let go: an ack journaled later that covers the
    /// purged offsets (`ack_up_to`) would otherwise hide them from the
    /// count an open makes. If that rotation fails, a crash before the
    /// next one may count fewer skipped (the error is returned; the purge
    /// itself is done).
    pub(crate) fn clamp_to(&self, logs: &[Range<u64>]) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let mut skipped = 0;
        for (p, log) in logs.iter().enumerate().take(st.buckets.len()) {
            skipped += st.buckets[p].clamp(log.start, log.end);
            if let Some(last) = log.start.checked_sub(1) {
                // A group whose turn was a skipped message moves on.
                st.settled(p, 0, last);
            }
        }
        st.skipped += skipped;
        for s in st.segments.iter_mut() {
            *s = None;
        }
        if skipped > 0 && !self.deleted.load(Ordering::Acquire) {
            self.ctx.check()?;
            self.rotate(st, false)?;
        }
        Ok(())
    }
}
