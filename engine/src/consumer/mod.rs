//! Durable named consumers: queue, publish/subscribe, competing consumers,
//! priorities and dead letters on one mechanism.
//!
//! A consumer is a named cursor over every priority bucket of a stream, kept
//! in `streams/<stream>/consumers/<name>/`: its configuration, a checkpoint
//! and a journal of deliveries and acknowledgements (see `journal.rs`).
//! Every handle on the same name shares one state, so many threads or
//! handles on one name compete for messages; different names each see every
//! message.

pub(crate) mod journal;
pub(crate) mod replay;
pub(crate) mod state;

use crate::ctx::{random_u64, Ctx};
use crate::format::journal::Entry;
use crate::format::meta;
use crate::group_commit::GroupCommit;
use crate::io::{self, EntryKind, SharedMap};
use crate::layout;
use crate::log::segment::Pin;
use crate::log::Record;
use crate::message::{dead_letter_headers, Message};
use crate::options::Durability;
use crate::stream::{Stream, StreamInner};
use crate::{name, Error, Result};
use journal::Journal;
use serde::{Deserialize, Serialize};
use state::{BucketCheckpoint, BucketState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a new consumer starts reading. Applies to every priority bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAt {
    /// The first retained message (the default).
    Earliest,
    /// After the last message at creation time: only new messages.
    Latest,
    /// This offset (clamped to what is retained and written).
    Offset(u64),
    /// The first message at or after this many microseconds since the Unix
    /// epoch.
    TimestampUs(u64),
}

impl StartAt {
    /// The first message at or after `t`.
    pub fn timestamp(t: SystemTime) -> StartAt {
        StartAt::TimestampUs(
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
        )
    }
}

/// Configuration of a consumer, persisted with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Where a new consumer starts. Default = [`StartAt::Earliest`].
    pub start: StartAt,
    /// How long a delivery is leased before it is redelivered. Default = 30 s.
    pub visibility_timeout: Duration,
    /// After this many deliveries without an ack, a message goes to the
    /// dead-letter stream (or, without one, is dropped and counted).
    /// Default = unlimited.
    pub max_deliveries: Option<u32>,
    /// Stream that receives dead letters. Default = none.
    pub dead_letter: Option<String>,
    /// Anti-starvation for priority streams: after this many deliveries from
    /// higher levels while a lower level has messages waiting, one message of
    /// the highest waiting lower level is served. Default = none (strict
    /// priority).
    pub starvation_limit: Option<u32>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            start: StartAt::Earliest,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: None,
            dead_letter: None,
            starvation_limit: None,
        }
    }
}

impl ConsumerConfig {
    /// Sets [`ConsumerConfig::start`].
    pub fn start(mut self, s: StartAt) -> Self {
        self.start = s;
        self
    }
    /// Sets [`ConsumerConfig::visibility_timeout`].
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility_timeout = d;
        self
    }
    /// Sets [`ConsumerConfig::max_deliveries`].
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = Some(n);
        self
    }
    /// Sets [`ConsumerConfig::dead_letter`].
    pub fn dead_letter(mut self, stream: &str) -> Self {
        self.dead_letter = Some(stream.to_string());
        self
    }
    /// Sets [`ConsumerConfig::starvation_limit`].
    pub fn starvation_limit(mut self, k: u32) -> Self {
        self.starvation_limit = Some(k);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.visibility_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "visibility_timeout must be positive".into(),
            ));
        }
        if self.max_deliveries == Some(0) {
            return Err(Error::InvalidConfig(
                "max_deliveries must be at least 1".into(),
            ));
        }
        if self.starvation_limit == Some(0) {
            return Err(Error::InvalidConfig(
                "starvation_limit must be at least 1".into(),
            ));
        }
        if let Some(d) = &self.dead_letter {
            name::validate(d)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CheckpointBody {
    pub(crate) generation: u64,
    pub(crate) buckets: Vec<BucketCheckpoint>,
    pub(crate) redelivered: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) skipped: u64,
}

#[derive(Debug)]
struct State {
    buckets: Vec<BucketState>,
    journal: Journal,
    /// Logical journal bytes before the current journal.
    logical_base: u64,
    redelivered: u64,
    dead_lettered: u64,
    skipped: u64,
    higher_streak: u32,
    nack_reasons: HashMap<(u8, u64), String>,
    /// The configuration fields every delivery needs, copied here so the
    /// receive path reads them under the lock it takes anyway.
    hot: HotConfig,
    /// Per bucket, the segment read last (reads skip the segment list).
    segments: Vec<Option<Arc<Pin>>>,
}

/// The parts of a [`ConsumerConfig`] the receive path reads.
#[derive(Debug, Clone, Copy)]
struct HotConfig {
    visibility_timeout: Duration,
    max_deliveries: Option<u32>,
    starvation_limit: Option<u32>,
}

impl HotConfig {
    fn of(c: &ConsumerConfig) -> HotConfig {
        HotConfig {
            visibility_timeout: c.visibility_timeout,
            max_deliveries: c.max_deliveries,
            starvation_limit: c.starvation_limit,
        }
    }
}

/// Where [`Consumer::take`] puts the deliveries it leases: a `Vec` for
/// batches, an `Option` for a single receive (no allocation).
trait Sink {
    fn put(&mut self, d: Delivery);
    fn count(&self) -> usize;
}

impl Sink for Vec<Delivery> {
    fn put(&mut self, d: Delivery) {
        self.push(d);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Sink for Option<Delivery> {
    fn put(&mut self, d: Delivery) {
        *self = Some(d);
    }
    fn count(&self) -> usize {
        usize::from(self.is_some())
    }
}

/// Most priority levels of a stream (see `StreamConfig::priorities`).
const MAX_LEVELS: usize = 16;

impl State {
    fn logical(&self) -> u64 {
        self.logical_base + self.journal.written()
    }

    fn checkpoint_body(&self, generation: u64) -> CheckpointBody {
        CheckpointBody {
            generation,
            buckets: self.buckets.iter().map(|b| b.checkpoint()).collect(),
            redelivered: self.redelivered,
            dead_lettered: self.dead_lettered,
            skipped: self.skipped,
        }
    }
}

/// The shared state of one consumer name.
#[derive(Debug)]
pub(crate) struct ConsumerInner {
    pub(crate) name: String,
    dir: PathBuf,
    ctx: Arc<Ctx>,
    config: RwLock<ConsumerConfig>,
    state: Mutex<State>,
    commit: GroupCommit,
    /// The current journal's map and logical base, for syncing without the
    /// state lock.
    current: RwLock<(Arc<SharedMap>, u64)>,
    next_lease: AtomicU64,
    /// Ack floors as of the last checkpoint (what retention may trust).
    checkpointed_floors: Vec<AtomicU64>,
}

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

/// A handle on a durable named consumer. Cheap to clone; `Send + Sync`.
/// All handles on the same name (in one store) share its state.
#[derive(Clone, Debug)]
pub struct Consumer {
    /// One allocation for both, so that each delivery (which holds a
    /// handle) costs one reference count, not three.
    h: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    inner: Arc<ConsumerInner>,
    stream: Stream,
}

/// A message leased to the receiver. Acknowledge it with [`Delivery::ack`],
/// give it back with [`Delivery::nack`]. Dropping a delivery without either
/// leaves the lease to expire: the message is redelivered after the
/// visibility timeout (as if the receiver had crashed).
#[derive(Debug)]
pub struct Delivery {
    record: Record,
    consumer: Consumer,
    lease: u64,
    attempt: u32,
}

impl Consumer {
    pub(crate) fn new(inner: Arc<ConsumerInner>, stream: Stream) -> Consumer {
        Consumer {
            h: Arc::new(Handle { inner, stream }),
        }
    }

    pub(crate) fn inner_ref(&self) -> &ConsumerInner {
        &self.h.inner
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.h.inner.name
    }

    /// The stream it reads.
    pub fn stream(&self) -> &Stream {
        &self.h.stream
    }

    /// The current configuration.
    pub fn config(&self) -> ConsumerConfig {
        self.h
            .inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.h.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for a message and leases it to the caller.
    /// Redeliveries (expired leases, nacks) come before new messages, the
    /// highest priority first, the lowest offset first. Blocks without
    /// polling: a send wakes it.
    pub fn receive(&self, timeout: Duration) -> Result<Option<Delivery>> {
        let mut got = None;
        self.wait_for(&mut got, 1, timeout)?;
        Ok(got)
    }

    /// Leases a message if one is available now.
    pub fn try_receive(&self) -> Result<Option<Delivery>> {
        let mut got = None;
        self.take(1, &mut got)?;
        Ok(got)
    }

    /// Waits up to `timeout` for at least one message, then leases up to
    /// `max` that are available at once.
    pub fn receive_batch(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        let mut got = Vec::new();
        if max > 0 {
            self.wait_for(&mut got, max, timeout)?;
        }
        Ok(got)
    }

    /// Takes up to `max` deliveries into `out`, waiting up to `timeout` for
    /// the first one.
    fn wait_for<S: Sink>(&self, out: &mut S, max: usize, timeout: Duration) -> Result<()> {
        // The common case (a message is there) asks nothing of the waiting
        // machinery; the deadline is computed only once it is needed.
        let (_, start) = self.take(max, out)?;
        if out.count() > 0 {
            return Ok(());
        }
        let deadline = start.checked_add(timeout);
        let notify = self.h.stream.notify();
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(());
            }
            let waiter = notify.prepare();
            // Look again after registering: a send in between is not missed.
            let (wake, _) = self.take(max, out)?;
            if out.count() > 0 {
                return Ok(());
            }
            let until = match (deadline, wake) {
                (Some(d), Some(w)) => d.min(w),
                (Some(d), None) => d,
                (None, Some(w)) => w,
                (None, None) => now + Duration::from_secs(3600),
            };
            waiter.wait_until(until);
        }
    }

    /// Takes up to `max` messages into `out`; returns when the next lease
    /// expires or delay elapses, and the time it went by.
    fn take<S: Sink>(&self, max: usize, out: &mut S) -> Result<(Option<Instant>, Instant)> {
        self.h.inner.ctx.check()?;
        let levels = usize::from(self.h.stream.levels()).min(MAX_LEVELS);
        let mut ends = [0u64; MAX_LEVELS];
        for (p, e) in ends.iter_mut().enumerate().take(levels) {
            *e = self.h.stream.deliverable_end(p as u8);
        }
        let ends = &ends[..levels];
        let mut st = self.lock();
        let now = Instant::now();
        let hot = st.hot;
        for b in st.buckets.iter_mut() {
            b.expire(now);
        }
        let mut dead_lettered = false;
        while out.count() < max {
            let Some(p) = choose_bucket(&mut st, ends, hot.starvation_limit) else {
                break;
            };
            let Some(taken) = st.buckets[p].take(ends[p]) else {
                break;
            };
            let read =
                self.h
                    .stream
                    .read_priority_cached(p as u8, taken.offset, &mut st.segments[p]);
            let record = match read {
                Ok(Some(r)) => r,
                Ok(None) => {
                    st.buckets[p].untake(taken.offset);
                    break;
                }
                Err(Error::OffsetNotRetained { first, .. }) => {
                    let skipped = st.buckets[p].clamp(first, ends[p]);
                    st.skipped += skipped;
                    continue;
                }
                Err(e) => {
                    st.buckets[p].untake(taken.offset);
                    if out.count() == 0 {
                        return Err(e);
                    }
                    break;
                }
            };
            if hot.max_deliveries.is_some_and(|m| taken.attempts >= m) {
                let config = self.config();
                if let Err(e) = self.dead_letter(&mut st, &config, &record, taken.attempts) {
                    // Not moved (the dead-letter stream refused it, e.g. a
                    // full disk): it stays waiting here, to be tried again.
                    st.buckets[p].untake(taken.offset);
                    return Err(e);
                }
                dead_lettered = true;
                continue;
            }
            let lease = self.h.inner.next_lease.fetch_add(1, Ordering::Relaxed);
            let deadline = now + hot.visibility_timeout;
            let attempt = st.buckets[p].lease(taken.offset, lease, deadline);
            if attempt > 1 {
                st.redelivered += 1;
            }
            self.journal(
                &mut st,
                Entry::Delivered {
                    bucket: p as u8,
                    offset: taken.offset,
                    attempt,
                },
            )?;
            out.put(Delivery {
                record,
                consumer: self.clone(),
                lease,
                attempt,
            });
        }
        let wake = st.buckets.iter().filter_map(|b| b.next_wake()).min();
        let target = st.logical();
        drop(st);
        if dead_lettered {
            self.persist(target)?;
        }
        Ok((wake, now))
    }

    /// Moves a message that was delivered `attempts` times to the dead-letter
    /// stream, then acknowledges it.
    fn dead_letter(
        &self,
        st: &mut State,
        config: &ConsumerConfig,
        record: &Record,
        attempts: u32,
    ) -> Result<()> {
        let p = record.priority();
        let offset = record.offset();
        if let Some(dlq) = &config.dead_letter {
            let target = self.h.stream.store_stream(dlq)?;
            let reason = st
                .nack_reasons
                .get(&(p, offset))
                .cloned()
                .unwrap_or_default();
            let offset_s = offset.to_string();
            let prio_s = p.to_string();
            let attempts_s = attempts.to_string();
            let priority = if p < target.levels() { p } else { 0 };
            let mut m = Message::new(record.payload()).priority(priority);
            for (k, v) in record.headers() {
                m = m.header(k, v);
            }
            m = m
                .header(dead_letter_headers::STREAM, self.h.stream.name())
                .header(dead_letter_headers::CONSUMER, self.name())
                .header(dead_letter_headers::OFFSET, &offset_s)
                .header(dead_letter_headers::PRIORITY, &prio_s)
                .header(dead_letter_headers::ATTEMPTS, &attempts_s);
            if !reason.is_empty() {
                m = m.header(dead_letter_headers::REASON, &reason);
            }
            target.send_message(m)?;
        }
        st.nack_reasons.remove(&(p, offset));
        st.buckets[p as usize].ack(offset);
        st.dead_lettered += 1;
        self.journal(st, Entry::DeadLettered { bucket: p, offset })
    }

    /// Appends a journal entry, writing a checkpoint and starting a new
    /// journal when the current one is full.
    fn journal(&self, st: &mut State, e: Entry) -> Result<()> {
        if st.journal.append(&e) {
            return Ok(());
        }
        self.rotate(st)?;
        if !st.journal.append(&e) {
            return Err(Error::InvalidConfig(
                "journal cannot hold one record".into(),
            ));
        }
        Ok(())
    }

    /// Checkpoint, new journal, old journal removed (see `journal.rs`).
    fn rotate(&self, st: &mut State) -> Result<()> {
        self.h.inner.rotate(st)
    }

    /// Makes the journal durable up to `target` if the store's durability
    /// asks for it.
    fn persist(&self, target: u64) -> Result<()> {
        match self.h.inner.ctx.opts.durability {
            Durability::Always => self.h.inner.sync_to(target),
            _ => Ok(()),
        }
    }

    /// Acknowledges a delivered message by its position, without its
    /// `Delivery` (request routing parks records, not deliveries).
    pub(crate) fn ack_offset(&self, priority: u8, offset: u64) -> Result<()> {
        self.ack_lease(priority, offset)
    }

    fn ack_lease(&self, priority: u8, offset: u64) -> Result<()> {
        self.h.inner.ctx.check()?;
        let mut st = self.lock();
        let p = priority as usize;
        if p >= st.buckets.len() || !st.buckets[p].ack(offset) {
            // Already acknowledged (a duplicate delivery): nothing to do.
            return Ok(());
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
        let target = st.logical();
        drop(st);
        self.persist(target)
    }

    /// Acknowledges every message of `priority` up to and including
    /// `offset`, delivered or not: the cursor-style fast path for
    /// subscribers that process in order.
    pub fn ack_up_to(&self, priority: u8, offset: u64) -> Result<()> {
        self.h.inner.ctx.check()?;
        let end = self.h.stream.deliverable_end(priority);
        let levels = self.h.stream.levels();
        if priority >= levels {
            return Err(Error::InvalidPriority { priority, levels });
        }
        // Never past what the log holds.
        let offset = match end.checked_sub(1) {
            Some(last) => offset.min(last),
            None => return Ok(()),
        };
        let mut st = self.lock();
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

    fn nack_lease(
        &self,
        priority: u8,
        offset: u64,
        lease: u64,
        delay: Option<Duration>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.h.inner.ctx.check()?;
        let mut st = self.lock();
        let until = delay.map(|d| Instant::now() + d);
        if let Some(b) = st.buckets.get_mut(priority as usize) {
            if b.nack(offset, lease, until) {
                if let Some(r) = reason {
                    st.nack_reasons
                        .insert((priority, offset), r.chars().take(1024).collect());
                }
            }
        }
        drop(st);
        self.h.stream.notify().notify();
        Ok(())
    }

    fn extend_lease(&self, priority: u8, offset: u64, lease: u64, by: Duration) -> Result<()> {
        let mut st = self.lock();
        let ok = st.buckets.get_mut(priority as usize).is_some_and(|b| {
            let now = Instant::now();
            b.extend(offset, lease, now, now + by)
        });
        if ok {
            Ok(())
        } else {
            Err(Error::LeaseExpired { offset })
        }
    }

    /// Figures of this consumer.
    pub fn stats(&self) -> ConsumerStats {
        let levels = self.h.stream.levels();
        let ends: Vec<u64> = (0..levels).map(|p| self.h.stream.end_offset(p)).collect();
        let st = self.lock();
        ConsumerStats {
            name: self.h.inner.name.clone(),
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

/// Picks the bucket to serve: the highest with a message available, except
/// that after `starvation_limit` picks of a higher level while a lower one
/// waits, the highest waiting lower level is served once.
fn choose_bucket(st: &mut State, ends: &[u64], starvation_limit: Option<u32>) -> Option<usize> {
    let mut avail = (0..st.buckets.len())
        .rev()
        .filter(|&p| st.buckets[p].has_available(ends[p]));
    let top = avail.next()?;
    let lower = avail.next();
    match (starvation_limit, lower) {
        (Some(k), Some(l)) => {
            if st.higher_streak >= k {
                st.higher_streak = 0;
                Some(l)
            } else {
                st.higher_streak += 1;
                Some(top)
            }
        }
        _ => {
            st.higher_streak = 0;
            Some(top)
        }
    }
}

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
    pub fn claim_check(&self) -> Option<crate::ClaimCheck> {
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

    /// Gives the message back for immediate redelivery.
    pub fn nack(self) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, None, None)
    }

    /// Gives the message back, to be redelivered after `delay`, with an
    /// optional reason (kept in the dead-letter headers if it ends there).
    pub fn nack_with(self, delay: Option<Duration>, reason: Option<&str>) -> Result<()> {
        self.consumer
            .nack_lease(self.priority(), self.offset(), self.lease, delay, reason)
    }

    /// Extends the lease to `by` from now. Fails with
    /// [`Error::LeaseExpired`] if the lease already ran out or was given back.
    pub fn extend_lease(&self, by: Duration) -> Result<()> {
        self.consumer
            .extend_lease(self.priority(), self.offset(), self.lease, by)
    }

    /// Answers a request: appends `payload` to the stream named by the
    /// request's `reply-to` header, with its `correlation-id`. Fails with
    /// [`Error::NotARequest`] if the message lacks those headers. The
    /// request itself still needs its `ack`.
    pub fn reply(&self, payload: &[u8]) -> Result<u64> {
        self.reply_message(Message::new(payload))
    }

    /// Like [`Delivery::reply`], with headers and a priority of its own.
    pub fn reply_message(&self, msg: Message<'_>) -> Result<u64> {
        use crate::message::request_headers::{CORRELATION_ID, REPLY_TO};
        let reply_to = self
            .header(REPLY_TO)
            .and_then(|v| std::str::from_utf8(v).ok());
        let corr = self.header(CORRELATION_ID);
        let (Some(reply_to), Some(corr)) = (reply_to, corr) else {
            return Err(Error::NotARequest {
                offset: self.offset(),
            });
        };
        let target = self.consumer.h.stream.store_stream(reply_to)?;
        let mut m = Message {
            payload: msg.payload,
            headers: msg.headers.clone(),
            priority: msg.priority,
        };
        m.headers.retain(|(k, _)| *k != CORRELATION_ID);
        m.headers.push((CORRELATION_ID, corr));
        target.send_message(m)
    }

    /// Whether this delivery's lease is still current.
    pub fn is_leased(&self) -> bool {
        let st = self.consumer.lock();
        st.buckets
            .get(self.priority() as usize)
            .is_some_and(|b| b.is_leased(self.offset(), self.lease, Instant::now()))
    }
}

impl ConsumerInner {
    fn rotate(&self, st: &mut State) -> Result<()> {
        let g = st.journal.generation + 1;
        let body = st.checkpoint_body(g);
        let (journal, base) =
            rotate_files(&self.ctx, &self.dir, &body, &st.journal.path, st.logical())?;
        st.journal = journal;
        st.logical_base = base - st.journal.written();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            (st.journal.map().clone(), st.logical_base);
        self.commit.advance(base);
        for (i, b) in body.buckets.iter().enumerate() {
            self.checkpointed_floors[i].store(b.floor, Ordering::Release);
        }
        Ok(())
    }

    /// Makes the current ack floors durable (a checkpoint) if they moved
    /// since the last one; returns the checkpointed floors.
    pub(crate) fn checkpoint_floors(&self) -> Result<Vec<u64>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let moved = st
            .buckets
            .iter()
            .enumerate()
            .any(|(i, b)| b.floor() != self.checkpointed_floors[i].load(Ordering::Acquire));
        if moved {
            self.ctx.check()?;
            self.rotate(&mut st)?;
        }
        Ok(self
            .checkpointed_floors
            .iter()
            .map(|f| f.load(Ordering::Acquire))
            .collect())
    }

    /// Current ack floors (in memory).
    pub(crate) fn floors(&self) -> Vec<u64> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.buckets.iter().map(|b| b.floor()).collect()
    }

    fn sync_to(&self, target: u64) -> Result<()> {
        self.commit.sync_to(&self.ctx, target, || {
            let (map, base) = self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let end = map.committed();
            map.flush(0..end)?;
            Ok(base + end as u64)
        })
    }

    /// Syncs the journal (for `Store::sync`).
    pub(crate) fn sync_all(&self) -> Result<()> {
        let target = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.logical()
        };
        self.sync_to(target)
    }
}

/// Writes the checkpoint of generation `body.generation`, creates its
/// journal, removes the previous journal. Returns the new journal and the
/// logical position where it starts.
fn rotate_files(
    ctx: &Ctx,
    dir: &Path,
    body: &CheckpointBody,
    old: &Path,
    logical_end: u64,
) -> Result<(Journal, u64)> {
    // Both new files are synced, renamed into place, and made durable by one
    // directory sync. Whichever renames a power cut keeps, open finds a
    // consistent pair: the checkpoint's generation picks the journal, and a
    // journal of another generation is stale (removed at open). That also
    // covers the old journal coming back: its removal needs no sync.
    let bytes = postcard::to_allocvec(body).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    let staged = journal::stage_checkpoint(ctx, dir, &bytes)?;
    let j = Journal::create(ctx, dir, body.generation)?;
    // Once an open may find the new checkpoint, it takes the old journal
    // for stale: acks written there after a failed install would be lost,
    // so a failed install poisons the store.
    journal::install_checkpoint(ctx, dir, &staged)?;
    // The rotation is durable; the old journal is stale whatever happens to
    // it now (an open removes a leftover), so a failed removal is no error.
    let _ = ctx.vfs.remove_file(old);
    let start = logical_end + j.written();
    Ok((j, start))
}

/// Creates a consumer directory atomically (temporary directory, renamed).
pub(crate) fn create(
    ctx: &Arc<Ctx>,
    stream: &StreamInner,
    name: &str,
    config: &ConsumerConfig,
) -> Result<PathBuf> {
    config.validate()?;
    let vfs = &*ctx.vfs;
    let parent = stream.dir.join(layout::CONSUMERS_DIR);
    if vfs
        .kind(&parent)
        .map_err(|e| Error::io("stat", &parent, e))?
        .is_none()
    {
        vfs.create_dir(&parent)
            .map_err(|e| Error::io("create directory", &parent, e))?;
        ctx.sync_dir(&stream.dir)?;
    }
    let tmp = parent.join(layout::tmp_dir_name(name, random_u64()));
    vfs.create_dir(&tmp)
        .map_err(|e| Error::io("create directory", &tmp, e))?;
    write_config(ctx, &tmp, config)?;
    let buckets = stream
        .buckets
        .iter()
        .map(|b| {
            let start = start_offset(stream, b.priority, config.start)?;
            Ok(BucketCheckpoint {
                floor: start,
                next: start,
                ..BucketCheckpoint::default()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let body = CheckpointBody {
        generation: 1,
        buckets,
        ..CheckpointBody::default()
    };
    let bytes = postcard::to_allocvec(&body).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    journal::write_checkpoint(ctx, &tmp, &bytes)?;
    ctx.sync_dir(&tmp)?;
    let dir = parent.join(name);
    vfs.rename(&tmp, &dir)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    ctx.sync_dir(&parent)?;
    Ok(dir)
}

fn start_offset(stream: &StreamInner, priority: u8, start: StartAt) -> Result<u64> {
    let b = &stream.buckets[priority as usize];
    let (first, end) = (b.first_offset(), b.end_offset());
    Ok(match start {
        StartAt::Earliest => first,
        StartAt::Latest => end,
        StartAt::Offset(o) => o.clamp(first, end),
        StartAt::TimestampUs(t) => {
            // Timestamps never decrease within a bucket: binary search.
            let (mut lo, mut hi) = (first, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let ts = match b.read(mid) {
                    Ok(Some(r)) => r.timestamp_us(),
                    Ok(None) => u64::MAX,
                    Err(Error::OffsetNotRetained { .. }) => 0,
                    Err(e) => return Err(e),
                };
                if ts < t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        }
    })
}

fn write_config(ctx: &Ctx, dir: &Path, config: &ConsumerConfig) -> Result<()> {
    let body = postcard::to_allocvec(config).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    io::write_file_atomic(
        &*ctx.vfs,
        dir,
        layout::CONSUMER_CONFIG_FILE,
        &meta::encode(
            meta::CONSUMER_CONFIG_MAGIC,
            meta::CONSUMER_CONFIG_VERSION,
            &body,
        ),
    )
}

/// Rewrites the configuration of an existing consumer.
pub(crate) fn update_config(inner: &ConsumerInner, config: &ConsumerConfig) -> Result<()> {
    config.validate()?;
    // Lock order: state, then config (as on the dead-letter path).
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = inner.config.write().unwrap_or_else(|e| e.into_inner());
    if *g == *config {
        return Ok(());
    }
    write_config(&inner.ctx, &inner.dir, config)?;
    *g = config.clone();
    st.hot = HotConfig::of(config);
    Ok(())
}

/// Opens a consumer directory: configuration, checkpoint, journal replay,
/// clamping to the log, and a fresh journal generation.
pub(crate) fn open(
    ctx: &Arc<Ctx>,
    stream: &StreamInner,
    name: &str,
    dir: &Path,
) -> Result<ConsumerInner> {
    let vfs = &*ctx.vfs;
    let cfg_path = dir.join(layout::CONSUMER_CONFIG_FILE);
    let body = io::read_framed(
        vfs,
        &cfg_path,
        meta::CONSUMER_CONFIG_MAGIC,
        meta::CONSUMER_CONFIG_VERSION,
        meta::META_BODY_BYTES_MAX,
        "consumer config",
    )?
    .ok_or_else(|| Error::corrupt(&cfg_path, 0, "consumer config missing"))?;
    let at_body = meta::BODY_OFFSET as u64;
    let config: ConsumerConfig = postcard::from_bytes(&body)
        .map_err(|e| Error::corrupt(&cfg_path, at_body, format!("consumer config: {e}")))?;
    config
        .validate()
        .map_err(|e| Error::corrupt(&cfg_path, at_body, e.to_string()))?;

    let ckpt_path = dir.join(layout::CHECKPOINT_FILE);
    let body = journal::read_checkpoint(ctx, dir)?
        .ok_or_else(|| Error::corrupt(&ckpt_path, 0, "consumer checkpoint missing"))?;
    let ckpt: CheckpointBody = postcard::from_bytes(&body)
        .map_err(|e| Error::corrupt(&ckpt_path, at_body, format!("consumer checkpoint: {e}")))?;
    let levels = stream.buckets.len();
    if ckpt.buckets.len() != levels {
        return Err(Error::corrupt(
            &ckpt_path,
            at_body,
            "checkpoint has the wrong number of priority levels",
        ));
    }
    // Replay the journal of the checkpoint's generation; others are stale.
    let mut stale = Vec::new();
    for e in vfs.read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        if e.kind != EntryKind::File {
            continue;
        }
        if let Some(g) = layout::parse_journal_name(&e.name) {
            if g != ckpt.generation {
                stale.push(dir.join(&e.name));
            }
        } else if layout::is_tmp_file(&e.name) {
            stale.push(dir.join(&e.name));
        }
    }
    let jpath = dir.join(layout::journal_file_name(ckpt.generation));
    let entries = match journal::replay(ctx, &jpath)? {
        Some((g, entries)) if g == ckpt.generation => entries,
        _ => Vec::new(),
    };
    let logs: Vec<_> = stream
        .buckets
        .iter()
        .map(|b| b.first_offset()..b.end_offset())
        .collect();
    let replay::Resumed {
        buckets,
        redelivered,
        dead_lettered,
        skipped,
    } = replay::resume(&ckpt, &entries, &logs);
    // A fresh generation: the old journal is never appended to again.
    let g = ckpt.generation + 1;
    let state_body = CheckpointBody {
        generation: g,
        buckets: buckets.iter().map(|b| b.checkpoint()).collect(),
        redelivered,
        dead_lettered,
        skipped,
    };
    // Stale files go first: a journal of generation `g` left by a rotation
    // that a crash cut short must not be confused with the one created now.
    // Their removal becomes durable with the rotation's directory sync.
    for s in stale {
        match vfs.remove_file(&s) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &s, e)),
        }
    }
    let (journal, base) = rotate_files(ctx, dir, &state_body, &jpath, 0)?;
    let checkpointed_floors = state_body
        .buckets
        .iter()
        .map(|b| AtomicU64::new(b.floor))
        .collect();
    let map = journal.map().clone();
    let logical_base = base - journal.written();
    Ok(ConsumerInner {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        ctx: ctx.clone(),
        state: Mutex::new(State {
            buckets,
            journal,
            logical_base,
            redelivered,
            dead_lettered,
            skipped,
            higher_streak: 0,
            nack_reasons: HashMap::new(),
            hot: HotConfig::of(&config),
            segments: vec![None; levels],
        }),
        config: RwLock::new(config),
        commit: GroupCommit::new(base),
        current: RwLock::new((map, logical_base)),
        next_lease: AtomicU64::new(1),
        checkpointed_floors,
    })
}
