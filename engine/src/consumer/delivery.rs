//! What a receiver holds: the leased message, and what it can do with it.

use super::{Consumer, Delivery};
use crate::log::Record;
use crate::wake::Durable;
use crate::Result;
use std::time::{Duration, Instant, SystemTime};

impl Delivery {
    /// The stored message.
    pub fn record(&self) -> &Record {
        &self.record
    }
    /// The payload (borrowed from the memory map).
    pub fn payload(&self) -> &[u8] {
        self.record.payload()
    }
    /// Offset within its priority bucket.
    pub fn offset(&self) -> u64 {
        self.record.offset()
    }
    /// Priority level.
    pub fn priority(&self) -> u8 {
        self.record.priority()
    }
    /// When it was sent.
    pub fn timestamp(&self) -> SystemTime {
        self.record.timestamp()
    }
    /// Headers in the order they were given.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.record.headers()
    }
    /// The first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.record.header(key)
    }
    /// The claim-check reference, if the payload is stored as a blob.
    pub fn claim_check(&self) -> Option<crate::blob::ClaimCheck> {
        self.record.claim_check()
    }
    /// A reader over the payload (see [`Record::open_payload`]).
    pub fn open_payload(&self) -> impl std::io::Read + Send + 'static {
        self.record.open_payload()
    }
    /// Which delivery of this message this is: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The consumer it was delivered to.
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Acknowledges the message: it is done for this consumer. Durable
    /// when this returns under `Durability::Always`. Acknowledging after
    /// the lease expired still counts (the message may then have been
    /// delivered twice: delivery is at least once).
    pub fn ack(self) -> Result<()> {
        self.consumer.ack_lease(self.priority(), self.offset())
    }

    /// [`Delivery::ack`] without blocking a thread: the acknowledgement is
    /// journaled when this is called; the future resolves once it is
    /// durable (under `Durability::Always`: the sync runs on the store's
    /// worker thread and is shared with concurrent acks; otherwise at
    /// once).
    pub fn ack_async(self) -> Durable<()> {
        match self.consumer.ack_journaled(self.priority(), self.offset()) {
            Err(e) => Durable::ready(Err(e)),
            Ok(None) => Durable::ready(Ok(())),
            Ok(Some(target)) => self.consumer.durable_after(target, ()),
        }
    }

    /// Gives the message back for immediate redelivery.
    pub fn nack(self) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, None, None)
    }

    /// Gives the message back, to be redelivered after `delay`, with an
    /// optional reason (kept in the dead-letter headers if it ends there).
    /// A delay of 100 years or more (up to `Duration::MAX`) means not before
    /// the consumer is opened again (delays are not persisted).
    pub fn nack_with(self, delay: Option<Duration>, reason: Option<&str>) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, delay, reason)
    }

    /// Extends the lease to `by` from now; 100 years or more (up to
    /// `Duration::MAX`) means it never expires. Fails with
    /// [`Error::LeaseExpired`](crate::Error::LeaseExpired) if the lease already ran out or was given back.
    pub fn extend_lease(&self, by: Duration) -> Result<()> {
        self.consumer
            .extend_lease(self.priority(), self.offset(), self.lease, by)
    }

    /// Whether this delivery's lease is still current.
    pub fn is_leased(&self) -> bool {
        let st = self.consumer.lock();
        st.buckets
            .get(self.priority() as usize)
            .is_some_and(|b| b.is_leased(self.offset(), self.lease, Instant::now()))
    }
}
