//! Acknowledgements: ack, cursor ack, nack and lease extension.

use super::Consumer;
use crate::format::journal::Entry;
use crate::limits::saturating_deadline;
use crate::options::Durability;
use crate::wake::Durable;
use crate::{Error, Result};
use std::time::{Duration, Instant};

impl Consumer {
    /// Acknowledges a delivered message by its position, without its
    /// `Delivery` (request routing parks records, not deliveries).
    pub(crate) fn ack_offset(&self, priority: u8, offset: u64) -> Result<()> {
        self.ack_lease(priority, offset)
    }

    pub(super) fn ack_lease(&self, priority: u8, offset: u64) -> Result<()> {
        match self.ack_journaled(priority, offset)? {
            Some(target) => self.persist(target),
            None => Ok(()),
        }
    }

    /// Acknowledges without waiting for durability: returns the journal
    /// position to make durable, `None` if there is nothing to (a duplicate).
    pub(super) fn ack_journaled(&self, priority: u8, offset: u64) -> Result<Option<u64>> {
        let mut st = self.lock_open()?;
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
        self.journal(
            &mut st,
            Entry::Acked {
                bucket: priority,
                offset,
            },
        )?;
        Ok(Some(st.logical()))
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
        self.journal(
            &mut st,
            Entry::AckedUpTo {
                bucket: priority,
                offset,
            },
        )?;
        let target = st.logical();
        drop(st);
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
