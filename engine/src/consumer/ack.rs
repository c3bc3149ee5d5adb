//! Acknowledgements: ack, batch ack, cursor ack, nack and lease extension.

use super::{journal, Consumer, Delivery};
use crate::format::journal::{self as format, AckSet, Entry, JOURNAL_VERSION_1, JOURNAL_VERSION_2};
use crate::limits::saturating_deadline;
use crate::options::Durability;
use crate::wake::Durable;
use crate::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Consumer {
    /// Acknowledges a delivered message by its position, without its
    /// `Delivery` (request routing parks records, not deliveries).
    pub(crate) fn ack_offset(&self, priority: u8, offset: u64) -> Result<()> {
        self.ack_lease(priority, offset, u64::MAX)
    }

    /// Acknowledges the delivery of `offset` under `lease` (by position:
    /// whatever became of the lease, unless a seek came after it).
    pub(super) fn ack_lease(&self, priority: u8, offset: u64, lease: u64) -> Result<()> {
        match self.ack_journaled(priority, offset, lease)? {
            Some(target) => self.persist(target),
            None => Ok(()),
        }
    }

    /// Acknowledges without waiting for durability: returns the journal
    /// position to make durable, `None` if there is nothing to (a duplicate).
    pub(super) fn ack_journaled(
        &self,
        priority: u8,
        offset: u64,
        lease: u64,
    ) -> Result<Option<u64>> {
        let mut st = self.lock_open()?;
        if lease < st.seek_lease_floor {
            // Delivered before a seek moved the consumer: its ack changes
            // nothing (the seek decided where the consumer is).
            return Ok(None);
        }
        let p = priority as usize;
        // Room first: an ack that cannot be journaled must not take effect.
        self.make_room(&mut st)?;
        if p >= st.buckets.len() || !st.buckets[p].ack(offset) {
            // Already acknowledged (a duplicate delivery): nothing to do.
            return Ok(None);
        }
        if !st.nack_reasons.is_empty() {
            st.nack_reasons.remove(&(priority, offset));
        }
        let next_of_group = st.settled(p, offset, offset);
        self.journal(
            &mut st,
            Entry::Acked {
                bucket: priority,
                offset,
            },
        )?;
        let target = st.logical();
        drop(st);
        if next_of_group {
            self.group_moved_on();
        }
        Ok(Some(target))
    }

    /// A group's next message was made ready: a receiver may be waiting.
    #[cold]
    fn group_moved_on(&self) {
        self.handle.stream.notify().notify();
    }

    /// A future resolving to `value` once the journal is durable up to
    /// `target`, if the store's durability asks for it: the sync runs on
    /// the store's worker thread, through the same group commit as blocking
    /// acks.
    pub(super) fn durable_after<T: Send + 'static>(&self, target: u64, value: T) -> Durable<T> {
        let inner = &self.handle.inner;
        if inner.ctx.opts.durability != Durability::Always || inner.commit.durable() >= target {
            return Durable::ready(Ok(value));
        }
        let c = self.clone();
        Durable::after(
            inner.ctx.worker.run(move || c.handle.inner.sync_to(target)),
            value,
        )
    }

    /// Acknowledges every delivery of `deliveries` with one journal record
    /// and, under `Durability::Always`, one sync: durable when this
    /// returns. Any set of this consumer's deliveries will do (any offsets,
    /// any priorities, received by any of its handles), so competing
    /// workers can each acknowledge what they processed; in effect, each is
    /// acknowledged as by [`Delivery::ack`]:
    ///
    /// - a delivery whose lease expired still counts, even if the message
    ///   was delivered again meanwhile (the later delivery's ack then
    ///   changes nothing), and one already acknowledged changes nothing:
    ///   neither fails the batch, nor is either reported;
    /// - all or nothing: if the record cannot be journaled (no room for a
    ///   new journal on a full disk, an I/O error), the call fails and none
    ///   of them is acknowledged. A failed sync poisons the store, as it
    ///   does for a single ack, and a crash before the call returns may
    ///   keep all of them acknowledged or none.
    ///
    /// A delivery of another consumer fails the call with
    /// [`Error::InvalidArgument`] before anything is acknowledged. The
    /// deliveries are consumed either way: ones not acknowledged are
    /// delivered again when their leases expire.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let jobs = store.stream("jobs")?;
    /// jobs.send_batch([&b"resize 1"[..], b"resize 2", b"corrupt", b"resize 3"])?;
    /// let worker = jobs.consumer("workers")?;
    /// let mut done = Vec::new();
    /// for d in worker.receive_batch(100, Duration::from_secs(1))? {
    ///     if d.payload() == b"corrupt" {
    ///         d.nack()?; // given back, delivered again
    ///     } else {
    ///         done.push(d);
    ///     }
    /// }
    /// worker.ack_batch(done)?; // three acks, one write, one sync
    /// let again = worker.try_receive()?.expect("the one given back");
    /// assert_eq!(again.payload(), b"corrupt");
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn ack_batch(&self, deliveries: impl IntoIterator<Item = Delivery>) -> Result<()> {
        match self.ack_batch_journaled(deliveries)? {
            Some(target) => self.persist(target),
            None => Ok(()),
        }
    }

    /// [`Consumer::ack_batch`] without blocking a thread: the set is
    /// journaled (one record) when this is called, and the future resolves
    /// once it is durable (under `Durability::Always`: the sync runs on the
    /// store's worker thread and is shared with concurrent acks; otherwise
    /// at once). Dropping the future gives up waiting, not the acks.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let jobs = store.stream("jobs")?;
    /// jobs.send_batch([&b"a"[..], b"b", b"c"])?;
    /// let worker = jobs.consumer("workers")?;
    /// futures::executor::block_on(async {
    ///     let batch = worker.receive_batch_async(10, Duration::from_secs(1)).await?;
    ///     assert_eq!(batch.len(), 3);
    ///     worker.ack_batch_async(batch).await // one record, one shared sync
    /// })?;
    /// assert!(worker.try_receive()?.is_none());
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn ack_batch_async(&self, deliveries: impl IntoIterator<Item = Delivery>) -> Durable<()> {
        match self.ack_batch_journaled(deliveries) {
            Err(e) => Durable::ready(Err(e)),
            Ok(None) => Durable::ready(Ok(())),
            Ok(Some(target)) => self.durable_after(target, ()),
        }
    }

    /// Journals the acks of [`Consumer::ack_batch`]; the journal position
    /// to make durable, if anything changed.
    fn ack_batch_journaled(
        &self,
        deliveries: impl IntoIterator<Item = Delivery>,
    ) -> Result<Option<u64>> {
        let mut positions = Vec::new();
        for d in deliveries {
            if !Arc::ptr_eq(&d.consumer.handle.inner, &self.handle.inner) {
                return Err(Error::InvalidArgument(format!(
                    "a delivery of consumer {:?} of stream {:?} in a batch ack of consumer {:?} \
                     of stream {:?}; nothing was acknowledged",
                    d.consumer.name(),
                    d.consumer.stream().name(),
                    self.name(),
                    self.stream().name()
                )));
            }
            positions.push((d.priority(), d.offset(), d.lease));
        }
        self.ack_positions_journaled(positions)
    }

    /// Acknowledges the messages at `positions` (`(priority, offset)`, in
    /// any order) with one journal record, each as [`Consumer::ack_lease`]
    /// would, all or none; the journal position to make durable, if
    /// anything changed.
    fn ack_positions_journaled(&self, leased: Vec<(u8, u64, u64)>) -> Result<Option<u64>> {
        self.handle.inner.ctx.check()?;
        let mut st = self.lock();
        self.check_not_deleted()?;
        // Deliveries from before a seek acknowledge nothing.
        let floor = st.seek_lease_floor;
        let mut positions: Vec<(u8, u64)> = leased
            .into_iter()
            .filter(|&(_, _, lease)| lease >= floor)
            .map(|(p, o, _)| (p, o))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        let mut next_of_group = false;
        // What an ack of each changes: only a delivered message not yet
        // acknowledged (a duplicate delivery's ack changes nothing).
        positions.retain(|&(p, o)| st.buckets.get(p as usize).is_some_and(|b| b.is_unacked(o)));
        match positions[..] {
            [] => return Ok(None),
            [(priority, offset)] => {
                // The record of a single ack, which any journal holds.
                self.make_room(&mut st)?;
                st.buckets[priority as usize].ack(offset);
                st.nack_reasons.remove(&(priority, offset));
                next_of_group = st.settled(priority as usize, offset, offset);
                self.journal(
                    &mut st,
                    Entry::Acked {
                        bucket: priority,
                        offset,
                    },
                )?;
            }
            _ => {
                let set = AckSet::from_sorted(&positions);
                let bytes = format::ack_set_record_bytes(&set);
                // Room first, for the whole record: an ack that cannot be
                // journaled must not take effect, nor any part of a batch.
                if !st.journal.fits(bytes, JOURNAL_VERSION_2) {
                    if journal::bytes_holding(bytes).is_none() {
                        return Err(Error::InvalidArgument(format!(
                            "{} acknowledgements take {bytes} bytes, more than a journal \
                             holds; nothing was acknowledged",
                            positions.len()
                        )));
                    }
                    // Sets need a journal of version 2: a version 1 journal
                    // with room left is followed by one of its size.
                    st.version_2 = true;
                    let full = !st.journal.fits(bytes, JOURNAL_VERSION_1);
                    self.handle.inner.rotate_for(&mut st, full, bytes)?;
                }
                for &(p, o) in &positions {
                    st.buckets[p as usize].ack(o);
                }
                for &(p, o) in &positions {
                    next_of_group |= st.settled(p as usize, o, o);
                }
                if !st.nack_reasons.is_empty() {
                    for key in &positions {
                        st.nack_reasons.remove(key);
                    }
                }
                if !st.journal.append_set(&set, bytes) {
                    return Err(Error::Internal(
                        "a consumer journal made for an acknowledged set cannot hold it".into(),
                    ));
                }
            }
        }
        let target = st.logical();
        drop(st);
        if next_of_group {
            self.group_moved_on();
        }
        Ok(Some(target))
    }

    /// Acknowledges every message of `priority` up to and including
    /// `offset`, delivered or not: the cursor-style fast path for
    /// subscribers that process in order.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let events = store.stream("events")?;
    ///     events.send_batch(["a", "b", "c"])?;
    ///     let indexer = events.consumer("indexer")?;
    ///
    ///     let batch = indexer.receive_batch(100, Duration::ZERO)?;
    ///     let last = batch.last().expect("three messages").offset();
    ///     indexer.ack_up_to(0, last)?; // one acknowledgement for the three
    ///     assert_eq!(indexer.stats().pending(), 0);
    ///
    ///     // Messages not delivered yet too: skip ahead.
    ///     events.send_batch(["d", "e"])?;
    ///     indexer.ack_up_to(0, 3)?;
    ///     assert_eq!(indexer.try_receive()?.unwrap().payload(), b"e");
    ///     Ok(())
    /// }
    /// ```
    pub fn ack_up_to(&self, priority: u8, offset: u64) -> Result<()> {
        self.handle.inner.ctx.check()?;
        let end = self.handle.stream.deliverable_end(priority);
        let priorities = self.handle.stream.priorities();
        if priority >= priorities {
            return Err(Error::InvalidPriority {
                priority,
                priorities,
            });
        }
        // Never past what the log holds.
        let offset = match end.checked_sub(1) {
            Some(last) => offset.min(last),
            None => return Ok(()),
        };
        let mut st = self.lock_open()?;
        self.make_room(&mut st)?;
        if !st.buckets[priority as usize].ack_up_to(offset) {
            return Ok(());
        }
        let next_of_group = st.settled(priority as usize, 0, offset);
        self.journal(
            &mut st,
            Entry::AckedUpTo {
                bucket: priority,
                offset,
            },
        )?;
        let target = st.logical();
        drop(st);
        if next_of_group {
            self.group_moved_on();
        }
        self.persist(target)
    }

    pub(super) fn nack_lease(
        &self,
        priority: u8,
        offset: u64,
        lease: u64,
        delay: Option<Duration>,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut st = self.lock_open()?;
        let until = delay.map(|d| saturating_deadline(Instant::now(), d));
        if let Some(b) = st.buckets.get_mut(priority as usize) {
            if b.nack(offset, lease, until) {
                if let Some(r) = reason {
                    st.nack_reasons
                        .insert((priority, offset), r.chars().take(1024).collect());
                }
            }
        }
        drop(st);
        self.handle.stream.notify().notify();
        Ok(())
    }

    pub(super) fn extend_lease(
        &self,
        priority: u8,
        offset: u64,
        lease: u64,
        by: Duration,
    ) -> Result<()> {
        let mut st = self.lock_open()?;
        let ok = st.buckets.get_mut(priority as usize).is_some_and(|b| {
            let now = Instant::now();
            b.extend(offset, lease, now, saturating_deadline(now, by))
        });
        if ok {
            Ok(())
        } else {
            Err(Error::LeaseExpired { offset })
        }
    }
}
