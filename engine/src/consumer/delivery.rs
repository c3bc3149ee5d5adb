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
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     jobs.send_batch(["job 1", "job 2"])?;
    ///     let worker = jobs.consumer("worker")?;
    ///     worker.try_receive()?.expect("job 1").ack()?;
    ///     drop((worker, jobs));
    ///     store.close()?;
    ///
    ///     // Acknowledged for good: after a restart, job 2 is next.
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let worker = store.stream("jobs")?.consumer("worker")?;
    ///     assert_eq!(worker.try_receive()?.unwrap().payload(), b"job 2");
    ///     Ok(())
    /// }
    /// ```
    pub fn ack(self) -> Result<()> {
        self.consumer
            .ack_lease(self.priority(), self.offset(), self.lease)
    }

    /// [`Delivery::ack`] without blocking a thread: the acknowledgement is
    /// journaled when this is called; the future resolves once it is
    /// durable (under `Durability::Always`: the sync runs on the store's
    /// worker thread and is shared with concurrent acks; otherwise at
    /// once).
    pub fn ack_async(self) -> Durable<()> {
        match self
            .consumer
            .ack_journaled(self.priority(), self.offset(), self.lease)
        {
            Err(e) => Durable::ready(Err(e)),
            Ok(None) => Durable::ready(Ok(())),
            Ok(Some(target)) => self.consumer.durable_after(target, ()),
        }
    }

    /// Gives the message back for immediate redelivery.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     jobs.send(b"job 1")?;
    ///     let worker = jobs.consumer("worker")?;
    ///
    ///     let job = worker.try_receive()?.unwrap();
    ///     job.nack()?; // cannot do it now
    ///     let again = worker.try_receive()?.expect("back at once");
    ///     assert_eq!((again.offset(), again.attempt()), (0, 2));
    ///     again.ack()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn nack(self) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, None, None)
    }

    /// Gives the message back, to be redelivered after `delay`, with an
    /// optional reason (kept in the dead-letter headers if it ends there).
    /// A delay of 100 years or more (up to `Duration::MAX`) means not before
    /// the consumer is opened again (delays are not persisted).
    ///
    /// ```
    /// use spool::{dead_letter_headers, ConsumerConfig, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let mail = store.stream("mail")?;
    ///     mail.send(b"receipt 4711")?;
    ///     let config = ConsumerConfig::default().max_deliveries(2).dead_letter("mail.dead");
    ///     let sender = mail.consumer_with("sender", config)?;
    ///
    ///     // Try again in half a second.
    ///     let m = sender.try_receive()?.unwrap();
    ///     m.nack_with(Some(Duration::from_millis(500)), Some("server down"))?;
    ///     assert!(sender.try_receive()?.is_none()); // not yet
    ///     let m = sender.receive(Duration::from_secs(5))?.expect("after the delay");
    ///     assert_eq!(m.attempt(), 2);
    ///
    ///     // That was the last delivery allowed: it goes to the dead-letter stream,
    ///     // with the reason.
    ///     m.nack_with(None, Some("server still down"))?;
    ///     assert!(sender.try_receive()?.is_none());
    ///     let dead = store.stream("mail.dead")?.read(0)?.expect("a dead letter");
    ///     assert_eq!(dead.payload(), b"receipt 4711");
    ///     assert_eq!(dead.header(dead_letter_headers::REASON), Some(&b"server still down"[..]));
    ///     Ok(())
    /// }
    /// ```
    pub fn nack_with(self, delay: Option<Duration>, reason: Option<&str>) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, delay, reason)
    }

    /// Extends the lease to `by` from now; 100 years or more (up to
    /// `Duration::MAX`) means it never expires. Fails with
    /// [`Error::LeaseExpired`](crate::Error::LeaseExpired) if the lease already ran out or was given back.
    ///
    /// ```
    /// use spool::{ConsumerConfig, Error, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     jobs.send_batch(["long job", "forgotten job"])?;
    ///     let config = ConsumerConfig::default().visibility_timeout(Duration::from_millis(300));
    ///     let worker = jobs.consumer_with("worker", config)?;
    ///
    ///     // A job that takes longer than its lease: extend it while working.
    ///     let job = worker.try_receive()?.unwrap();
    ///     job.extend_lease(Duration::from_secs(60))?;
    ///     std::thread::sleep(Duration::from_millis(400));
    ///     assert!(job.is_leased()); // still ours
    ///     job.ack()?;
    ///
    ///     // Too late: the lease ran out, the job may be someone else's by now.
    ///     let job = worker.try_receive()?.unwrap();
    ///     std::thread::sleep(Duration::from_millis(400));
    ///     assert!(!job.is_leased());
    ///     let late = job.extend_lease(Duration::from_secs(60));
    ///     assert!(matches!(late, Err(Error::LeaseExpired { offset: 1 })));
    ///     Ok(())
    /// }
    /// ```
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
