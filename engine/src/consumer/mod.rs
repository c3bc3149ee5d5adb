//! Durable named consumers: queue, publish/subscribe, competing consumers,
//! priorities and dead letters on one mechanism.
//!
//! A consumer is a named cursor over every priority bucket of a stream, kept
//! in `streams/<stream>/consumers/<name>/`: its configuration, a checkpoint
//! and a journal of deliveries and acknowledgements (see `journal.rs`).
//! Every handle on the same name shares one state, so many threads or
//! handles on one name compete for messages; different names each see every
//! message.

mod ack;
mod config;
mod dead_letter;
mod delivery;
mod files;
mod future;
mod inner;
pub(crate) mod journal;
pub(crate) mod replay;
mod seek;
pub(crate) mod state;
mod stats;

pub use config::{ConsumerConfig, StartAt};
pub(crate) use files::{create, delete, open, update_config};
pub use future::{Deliveries, Receive, ReceiveBatch};
pub use stats::{ConsumerBucketStats, ConsumerStats};

use crate::ctx::Ctx;
use crate::format::attributes::Attributes;
use crate::format::journal::Entry;
use crate::group_commit::GroupCommit;
use crate::io::SharedMap;
use crate::limits::{saturating_deadline, PRIORITIES_MAX};
use crate::log::segment::Pin;
use crate::log::Record;
use crate::options::Durability;
use crate::stream::{Read, Stream};
use crate::{Error, Result};
use dead_letter::Doomed;
use journal::Journal;
use serde::{Deserialize, Serialize};
use state::groups::{Admit, Groups};
use state::{BucketCheckpoint, BucketState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// A checkpoint's body (DESIGN §3.5). Versions 1 and 2 end after
/// `skipped`; version 3 adds `expired`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckpointBody {
    pub(crate) generation: u64,
    pub(crate) buckets: Vec<BucketCheckpoint>,
    pub(crate) redelivered: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) skipped: u64,
    pub(crate) expired: u64,
}

/// The body of checkpoints of versions 1 and 2, as written.
#[derive(Serialize)]
struct CheckpointBodyV1Ref<'a> {
    generation: u64,
    buckets: &'a [BucketCheckpoint],
    redelivered: u64,
    dead_lettered: u64,
    skipped: u64,
}

/// The body of checkpoints of versions 1 and 2, as read.
#[derive(Deserialize)]
struct CheckpointBodyV1 {
    generation: u64,
    buckets: Vec<BucketCheckpoint>,
    redelivered: u64,
    dead_lettered: u64,
    skipped: u64,
}

impl CheckpointBody {
    /// The body in checkpoint format `version` (an expired count other
    /// than zero needs version 3: the caller picks it).
    pub(crate) fn encode(&self, version: u32) -> Result<Vec<u8>> {
        let r = if version >= crate::format::meta::CHECKPOINT_VERSION_3 {
            postcard::to_allocvec(self)
        } else {
            postcard::to_allocvec(&CheckpointBodyV1Ref {
                generation: self.generation,
                buckets: &self.buckets,
                redelivered: self.redelivered,
                dead_lettered: self.dead_lettered,
                skipped: self.skipped,
            })
        };
        r.map_err(|e| Error::encode("consumer checkpoint", e))
    }

    /// Decodes a body of checkpoint format `version` (1 and 2 count no
    /// expired messages).
    pub(crate) fn decode(version: u32, bytes: &[u8]) -> postcard::Result<CheckpointBody> {
        if version >= crate::format::meta::CHECKPOINT_VERSION_3 {
            return postcard::from_bytes(bytes);
        }
        let v: CheckpointBodyV1 = postcard::from_bytes(bytes)?;
        Ok(CheckpointBody {
            generation: v.generation,
            buckets: v.buckets,
            redelivered: v.redelivered,
            dead_lettered: v.dead_lettered,
            skipped: v.skipped,
            expired: 0,
        })
    }
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
    /// Messages found expired by a take (journaled, kind 7).
    expired: u64,
    /// Message groups: whose turn it is, who waits (in memory only).
    groups: Groups,
    higher_streak: u32,
    nack_reasons: HashMap<(u8, u64), String>,
    /// The configuration fields every delivery needs, copied here so the
    /// receive path reads them under the lock it takes anyway.
    hot: HotConfig,
    /// Per bucket, the segment read last (reads skip the segment list).
    segments: Vec<Option<Arc<Pin>>>,
    /// When starting a journal generation last failed for want of space
    /// (cleared when one starts).
    disk_full_since: Option<Instant>,
    /// Whether this consumer journals records of format version 2
    /// (acknowledged sets or delivered ranges: a batch ack, or a receive of
    /// several new messages at once, since it was opened): its new journals
    /// are then of version 2, the others of version 1, which builds that
    /// know neither read.
    version_2: bool,
    /// Leases below this were handed out before the last seek: their acks
    /// change nothing (0 until a seek).
    seek_lease_floor: u64,
    /// Whether this consumer journals expiries (format version 3), or
    /// counts any: its new journals are then of version 3, so that the
    /// checkpoint carries the count.
    version_3: bool,
}

/// How long after a rotation failed for want of space deliveries go
/// unjournaled without trying again (acks always try).
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

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

    /// Whether a message delivered `attempts` times goes to the dead-letter
    /// stream instead of being delivered again.
    fn is_dead(&self, attempts: u32) -> bool {
        self.max_deliveries.is_some_and(|m| attempts >= m)
    }
}

/// How one attempt of [`Consumer::take`] ended.
enum Took {
    /// Done: when the next lease expires or delay elapses, and the time it went by.
    Done { wake: Option<Instant>, now: Instant },
    /// Nothing handed out: the next message is a claim check whose blob
    /// must be verified first (outside the consumer's lock). It is taken,
    /// not leased: other workers skip it meanwhile.
    NeedsBlob(Reserved),
    /// Messages to move to the dead-letter stream (outside the consumer's
    /// lock: the append may run the retention of that stream, which takes
    /// its consumers' locks). Taken, not leased: other workers skip them.
    DeadLetters(Vec<Doomed>),
    /// Nothing handed out yet: this attempt parked [`PARKED_AT_ONCE`]
    /// messages (scheduled, or behind their group) and lets go of the lock
    /// before it looks further.
    Again,
}

/// Messages one attempt of [`Consumer::take`] parks at most before it lets
/// go of the lock (a backlog of one group, or of scheduled messages, is
/// parked in steps, not under one long hold of the lock).
const PARKED_AT_ONCE: usize = 1024;

/// What [`Consumer::hand_out`] did with a message.
enum Handed {
    /// Leased into the sink.
    Leased,
    /// Parked: scheduled for later, or behind its group.
    Parked,
    /// Taken to be moved to the dead-letter stream (dead, or expired).
    Doomed(Doomed),
}

/// What [`Consumer::gate_attributes`] decided.
enum Gated {
    /// On to the lease (or, if dead, to the dead-letter stream).
    Go(Record),
    /// Handled: parked or doomed.
    Done(Handed),
}

/// What a message's attributes say a take does with it now.
enum Gate {
    Deliver,
    /// Its expires-at has passed.
    Expired,
    /// Parked: scheduled for later, or behind its group.
    Parked,
}

/// Dead letters taken at most by one attempt of [`Consumer::take`] (each
/// is sent on its own; their acknowledgements share one sync).
const DOOMED_AT_ONCE: usize = 64;

/// A claim check taken by [`Consumer::take_once`], waiting for its blob.
struct Reserved {
    /// `State::seek_lease_floor` when it was taken (a seek since makes the
    /// take stale).
    seek: u64,
    priority: usize,
    taken: state::Taken,
    record: Record,
    claim: crate::blob::ClaimCheck,
}

/// Where [`Consumer::take`] puts the deliveries it leases: a `Vec` for
/// batches, an `Option` for a single receive (no allocation).
/// First deliveries (attempt 1) of consecutive offsets of one priority
/// level, handed out by one take: journaled as one record when it ends.
#[derive(Debug, Default)]
struct FreshRun {
    bucket: u8,
    first: u64,
    count: u64,
}

impl FreshRun {
    /// Adds `offset` of `bucket` if it continues the run (or the run is
    /// empty); false if it does not.
    fn extend(&mut self, bucket: u8, offset: u64) -> bool {
        if self.count == 0 {
            self.start(bucket, offset);
            return true;
        }
        let next = self.first + self.count;
        if bucket != self.bucket || offset != next || next == u64::MAX {
            return false;
        }
        self.count += 1;
        true
    }

    fn start(&mut self, bucket: u8, offset: u64) {
        *self = FreshRun {
            bucket,
            first: offset,
            count: 1,
        };
    }

    /// The record of the run, which is left empty.
    fn take(&mut self) -> Option<Entry> {
        let FreshRun {
            bucket,
            first,
            count,
        } = std::mem::take(self);
        Entry::first_deliveries(bucket, first, count)
    }
}

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

/// Priority levels a consumer serves at most (the ends of the buckets are
/// read into an array of this size on every receive).
const PRIORITIES: usize = PRIORITIES_MAX as usize;

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
            expired: self.expired,
        }
    }

    /// The format version of the next journal generation.
    fn journal_version_wanted(&self) -> u32 {
        use crate::format::journal::{JOURNAL_VERSION_1, JOURNAL_VERSION_2, JOURNAL_VERSION_3};
        if self.version_3 || self.expired > 0 {
            JOURNAL_VERSION_3
        } else if self.version_2 {
            JOURNAL_VERSION_2
        } else {
            JOURNAL_VERSION_1
        }
    }

    /// After offsets `first..=last` of level `p` were acknowledged (in any
    /// way): they leave their groups, and each group whose owner was among
    /// them moves on to its next message, which is made ready. Returns
    /// whether one was (a receiver may be waiting for it). Costs one test
    /// when no group has a message taken.
    #[inline]
    fn settled(&mut self, p: usize, first: u64, last: u64) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        self.settled_slow(p, first, last)
    }

    #[cold]
    fn settled_slow(&mut self, p: usize, first: u64, last: u64) -> bool {
        let mut promoted = Vec::new();
        self.groups.done_range(p as u8, first, last, &mut promoted);
        let mut any = false;
        for (q, o) in promoted {
            if let Some(b) = self.buckets.get_mut(q as usize) {
                any |= b.unpark_grouped(o);
            }
        }
        any
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
    /// The current journal's map, logical base and path, for syncing
    /// without the state lock.
    current: RwLock<(Arc<SharedMap>, u64, Arc<Path>)>,
    next_lease: AtomicU64,
    /// Ack floors as of the last checkpoint (what retention may trust).
    checkpointed_floors: Vec<AtomicU64>,
    /// Set (under the state lock) when the consumer is deleted: every call
    /// of a handle still held then fails with `ConsumerNotFound`.
    deleted: std::sync::atomic::AtomicBool,
}

/// A handle on a durable named consumer. Cheap to clone; `Send + Sync`.
/// All handles on the same name (in one store) share its state.
///
/// ```
/// use spool::{Options, Store};
/// use std::time::Duration;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let jobs = store.stream("jobs")?;
///     jobs.send_batch(["job 1", "job 2"])?;
///
///     let worker = jobs.consumer("worker")?;
///     let mut done = Vec::new();
///     while let Some(job) = worker.receive(Duration::from_millis(100))? {
///         done.push(String::from_utf8_lossy(job.payload()).into_owned());
///         job.ack()?; // done: never delivered to "worker" again, also after a restart
///     }
///     assert_eq!(done, ["job 1", "job 2"]);
///     assert_eq!(worker.stats().pending(), 0);
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Consumer {
    /// One allocation for both, so that each delivery (which holds a
    /// handle) costs one reference count, not three.
    handle: Arc<Handle>,
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
///
/// ```
/// use spool::{Message, Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let jobs = store.stream("jobs")?;
///     jobs.send_message(Message::new(b"resize photo 17").header("size", "128x128"))?;
///
///     let job = jobs.consumer("worker")?.try_receive()?.expect("one job");
///     assert_eq!(job.payload(), b"resize photo 17");
///     assert_eq!(job.header("size"), Some(&b"128x128"[..]));
///     assert_eq!((job.offset(), job.priority(), job.attempt()), (0, 0, 1));
///     job.ack()?;
///     Ok(())
/// }
/// ```
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
            handle: Arc::new(Handle { inner, stream }),
        }
    }

    pub(crate) fn inner_ref(&self) -> &ConsumerInner {
        &self.handle.inner
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.handle.inner.name
    }

    /// The stream it reads.
    pub fn stream(&self) -> &Stream {
        &self.handle.stream
    }

    /// The current configuration.
    pub fn config(&self) -> ConsumerConfig {
        self.handle
            .inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Locks the state of a store that is still open: a write checks the
    /// closed flag under the lock (see `Ctx::check`).
    fn lock_open(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.lock();
        self.handle.inner.ctx.check()?;
        self.check_not_deleted()?;
        Ok(st)
    }

    /// `ConsumerNotFound` once the consumer was deleted (read under its
    /// state lock, which the deletion takes to set it).
    fn check_not_deleted(&self) -> Result<()> {
        if self.handle.inner.deleted.load(Ordering::Acquire) {
            // Its stream is gone, or the consumer alone.
            self.handle.stream.inner().check_live()?;
            return Err(Error::ConsumerNotFound {
                stream: self.handle.stream.name().to_string(),
                consumer: self.handle.inner.name.clone(),
            });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.handle
            .inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for a message and leases it to the caller.
    /// Redeliveries (expired leases, nacks) come before new messages, the
    /// highest priority first, the lowest offset first. Blocks without
    /// polling: a send wakes it. `Ok(None)` when `timeout` passed without a
    /// message.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     let worker = jobs.consumer("worker")?;
    ///
    ///     let producer = jobs.clone();
    ///     let sender = std::thread::spawn(move || {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         producer.send(b"late job")
    ///     });
    ///     let job = worker.receive(Duration::from_secs(5))?.expect("woken by the send");
    ///     assert_eq!(job.payload(), b"late job");
    ///     job.ack()?;
    ///     sender.join().expect("sender panicked")?;
    ///
    ///     // Nothing more: it waits out the timeout.
    ///     assert!(worker.receive(Duration::from_millis(10))?.is_none());
    ///     Ok(())
    /// }
    /// ```
    pub fn receive(&self, timeout: Duration) -> Result<Option<Delivery>> {
        let mut got = None;
        self.wait_for(&mut got, 1, timeout)?;
        Ok(got)
    }

    /// Leases a message if one is available now; never waits.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     let worker = jobs.consumer("worker")?;
    ///     assert!(worker.try_receive()?.is_none()); // nothing yet
    ///
    ///     jobs.send(b"job 1")?;
    ///     let job = worker.try_receive()?.expect("sent before");
    ///     assert!(worker.try_receive()?.is_none()); // leased: not handed out twice
    ///     job.ack()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn try_receive(&self) -> Result<Option<Delivery>> {
        let mut got = None;
        self.take(1, &mut got)?;
        Ok(got)
    }

    /// Waits up to `timeout` for at least one message, then leases up to
    /// `max` that are available at once.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let events = store.stream("events")?;
    ///     events.send_batch(["a", "b", "c", "d", "e"])?;
    ///     let indexer = events.consumer("indexer")?;
    ///
    ///     let batch = indexer.receive_batch(3, Duration::from_secs(1))?;
    ///     assert_eq!(batch.len(), 3); // at most `max`
    ///     for d in batch {
    ///         d.ack()?;
    ///     }
    ///     let rest = indexer.receive_batch(100, Duration::from_secs(1))?;
    ///     assert_eq!(rest.len(), 2); // what there is: it does not wait for 100
    ///     Ok(())
    /// }
    /// ```
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
        let notify = self.handle.stream.notify();
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
    ///
    /// A claim check whose blob is not verified yet is not hashed under the
    /// consumer's lock (a large blob would hold every other worker of the
    /// consumer for as long): the lock is let go, the blob verified, and
    /// the take tried again while the verified blob is held.
    fn take<S: Sink>(&self, max: usize, out: &mut S) -> Result<(Option<Instant>, Instant)> {
        loop {
            let Reserved {
                seek,
                priority: p,
                taken,
                record,
                claim,
            } = match self.take_once(max, out)? {
                Took::Done { wake, now } => return Ok((wake, now)),
                Took::DeadLetters(doomed) => {
                    self.move_dead_letters(doomed)?;
                    continue;
                }
                Took::Again => continue,
                Took::NeedsBlob(r) => r,
            };
            // Taken but not leased: other workers skip it meanwhile.
            let blob = self.handle.stream.load_blob(&claim);
            let mut st = self.lock_open()?;
            let blob = match blob {
                Ok(b) => b,
                Err(e) => {
                    st.buckets[p].untake(taken.offset);
                    return Err(e);
                }
            };
            if st.seek_lease_floor != seek || !st.buckets[p].is_taken(taken.offset) {
                // Acknowledged or cut by retention meanwhile, or the
                // consumer was moved by a seek: look again.
                continue;
            }
            let now = Instant::now();
            let record = record.with_blob(blob);
            let mut run = FreshRun::default();
            let handed = self.hand_out(&mut st, p, taken, record, now, out, &mut run);
            self.journal_run(&mut st, &mut run)?;
            if let Handed::Doomed(d) = handed? {
                drop(st);
                self.move_dead_letters(vec![d])?;
            }
        }
    }

    /// One attempt of [`Consumer::take`].
    fn take_once<S: Sink>(&self, max: usize, out: &mut S) -> Result<Took> {
        self.handle.inner.ctx.check()?;
        let priorities = usize::from(self.handle.stream.priorities()).min(PRIORITIES);
        let mut ends = [0u64; PRIORITIES];
        for (p, e) in ends.iter_mut().enumerate().take(priorities) {
            *e = self.handle.stream.deliverable_end(p as u8);
        }
        let ends = &ends[..priorities];
        let mut st = self.lock_open()?;
        let now = Instant::now();
        let hot = st.hot;
        for b in st.buckets.iter_mut() {
            b.expire(now);
        }
        let mut doomed = Vec::new();
        let mut needs_blob = None;
        let mut run = FreshRun::default();
        let mut parked = 0;
        while out.count() < max && doomed.len() < DOOMED_AT_ONCE {
            if parked >= PARKED_AT_ONCE {
                break;
            }
            let Some(p) = choose_bucket(&mut st, ends, hot.starvation_limit) else {
                break;
            };
            let Some(taken) = st.buckets[p].take(ends[p]) else {
                break;
            };
            if !doomed.is_empty() && !hot.is_dead(taken.attempts) {
                // Nothing is leased after a dead letter: if moving it fails,
                // this attempt returns the error, as it did before.
                st.buckets[p].untake(taken.offset);
                break;
            }
            let read =
                self.handle
                    .stream
                    .read_without_hashing(p as u8, taken.offset, &mut st.segments[p]);
            let record = match read {
                Ok(Read::Record(r)) => r,
                Ok(Read::NotYet) => {
                    st.buckets[p].untake(taken.offset);
                    break;
                }
                Ok(Read::NeedsBlob(record, claim)) => {
                    if out.count() == 0 && doomed.is_empty() {
                        needs_blob = Some(Reserved {
                            seek: st.seek_lease_floor,
                            priority: p,
                            taken,
                            record,
                            claim,
                        });
                    } else {
                        st.buckets[p].untake(taken.offset);
                    }
                    break;
                }
                Err(Error::OffsetNotRetained { first, .. }) => {
                    let skipped = st.buckets[p].clamp(first, ends[p]);
                    st.skipped += skipped;
                    if let Some(last) = first.checked_sub(1) {
                        // Made ready, taken by this loop if it is its turn.
                        st.settled(p, 0, last);
                    }
                    continue;
                }
                Err(e) => {
                    st.buckets[p].untake(taken.offset);
                    if out.count() == 0 && doomed.is_empty() {
                        return Err(e);
                    }
                    // Found again by the next attempt.
                    break;
                }
            };
            match self.hand_out(&mut st, p, taken, record, now, out, &mut run) {
                Ok(Handed::Leased) => {}
                Ok(Handed::Parked) => parked += 1,
                Ok(Handed::Doomed(d)) => doomed.push(d),
                Err(e) => {
                    // What was handed out is leased: journal it if it can be.
                    let _ = self.journal_run(&mut st, &mut run);
                    for d in &doomed {
                        st.buckets[d.priority].untake(d.offset);
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.journal_run(&mut st, &mut run) {
            for d in &doomed {
                st.buckets[d.priority].untake(d.offset);
            }
            return Err(e);
        }
        let wake = st.buckets.iter().filter_map(|b| b.next_wake()).min();
        drop(st);
        Ok(match needs_blob {
            Some(r) => Took::NeedsBlob(r),
            None if !doomed.is_empty() => Took::DeadLetters(doomed),
            None if parked >= PARKED_AT_ONCE && out.count() == 0 => Took::Again,
            None => Took::Done { wake, now },
        })
    }

    /// Leases `record`, just taken from bucket `p`, into `out`; or, if it
    /// was delivered `max_deliveries` times already or has expired, keeps
    /// it taken and returns it, to be moved to the dead-letter stream
    /// without the lock ([`Consumer::move_dead_letters`]); or, if it is
    /// scheduled for later or its group's turn is another message's, parks
    /// it. Only a record with the attribute flag is looked at further than
    /// that flag.
    #[allow(clippy::too_many_arguments)]
    fn hand_out<S: Sink>(
        &self,
        st: &mut State,
        p: usize,
        taken: state::Taken,
        record: Record,
        now: Instant,
        out: &mut S,
        run: &mut FreshRun,
    ) -> Result<Handed> {
        let hot = st.hot;
        let record = if record.has_attributes() {
            match self.gate_attributes(st, p, taken, record, now)? {
                Gated::Go(record) => record,
                Gated::Done(handed) => return Ok(handed),
            }
        } else {
            record
        };
        if hot.is_dead(taken.attempts) {
            return self.doom(st, p, taken, record, false).map(Handed::Doomed);
        }
        let lease = self.handle.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        let deadline = saturating_deadline(now, hot.visibility_timeout);
        let attempt = st.buckets[p].lease(taken.offset, lease, deadline);
        if attempt > 1 {
            st.redelivered += 1;
        }
        if attempt > 1 || !run.extend(p as u8, taken.offset) {
            self.journal_run(st, run)?;
            if attempt == 1 {
                run.start(p as u8, taken.offset);
            } else {
                self.journal_delivery(
                    st,
                    Entry::Delivered {
                        bucket: p as u8,
                        offset: taken.offset,
                        attempt,
                    },
                )?;
            }
        }
        out.put(Delivery {
            record,
            consumer: self.clone(),
            lease,
            attempt,
        });
        Ok(Handed::Leased)
    }

    /// What a message's attributes decide before it is leased: parked
    /// (not due, or its group held by another), expired (doomed), dead
    /// (left to the caller, which dooms it as it dooms any message past
    /// `max_deliveries`), or go. Out of line: a message without attributes
    /// never comes here, and the receive path stays as small as it was.
    #[cold]
    #[inline(never)]
    fn gate_attributes(
        &self,
        st: &mut State,
        p: usize,
        taken: state::Taken,
        record: Record,
        now: Instant,
    ) -> Result<Gated> {
        // The attributes are decoded once, for every decision.
        let a = record.attributes();
        let verdict = match gate(st, p, taken, &a, now) {
            // A dead letter is not admitted to its group.
            Gate::Deliver if st.hot.is_dead(taken.attempts) => Gate::Deliver,
            Gate::Deliver => match a.group {
                Some(g) if st.groups.admit((p as u8, taken.offset), g) == Admit::Wait => {
                    st.buckets[p].park_grouped(taken.offset);
                    Gate::Parked
                }
                _ => Gate::Deliver,
            },
            other => other,
        };
        match verdict {
            Gate::Deliver => Ok(Gated::Go(record)),
            Gate::Parked => Ok(Gated::Done(Handed::Parked)),
            Gate::Expired => self
                .doom(st, p, taken, record, true)
                .map(|d| Gated::Done(Handed::Doomed(d))),
        }
    }

    /// Journals the first deliveries of `run` (and empties it): one
    /// delivered range (format version 2), or one record each in a journal
    /// of version 1 that has room, whose successor will be of version 2.
    fn journal_run(&self, st: &mut State, run: &mut FreshRun) -> Result<()> {
        let Some(e) = run.take() else {
            return Ok(());
        };
        let Entry::DeliveredRange {
            bucket,
            first,
            count,
        } = e
        else {
            return self.journal_delivery(st, e);
        };
        st.version_2 = true;
        if e.fits_version(st.journal.version()) || !st.journal.has_room() {
            // A journal without room is followed by one of version 2.
            return self.journal_delivery(st, e);
        }
        for offset in first..first + count {
            let one = Entry::Delivered {
                bucket,
                offset,
                attempt: 1,
            };
            self.journal_delivery(st, one)?;
        }
        Ok(())
    }

    /// Appends a journal entry, writing a checkpoint and starting a new
    /// journal when the current one is full.
    fn journal(&self, st: &mut State, e: Entry) -> Result<()> {
        if st.journal.append(&e) {
            return Ok(());
        }
        self.make_room_for(st, &e)?;
        if !st.journal.append(&e) {
            return Err(Error::Internal(
                "a new consumer journal cannot hold one record".into(),
            ));
        }
        Ok(())
    }

    /// Makes room for one journal record: starts a new generation if the
    /// journal is full (or there is none). On an error nothing changed (or
    /// the store is poisoned), so an ack fails before it takes effect.
    #[inline]
    fn make_room(&self, st: &mut State) -> Result<()> {
        if st.journal.has_room() {
            return Ok(());
        }
        self.handle.inner.rotate(st, true)
    }

    /// [`Consumer::make_room`] for the record `e`, in a journal of a
    /// format version that holds it: an expiry in a journal of version 1
    /// or 2 first starts a generation of version 3 (of the same size, if
    /// the journal has room left).
    #[cold]
    fn make_room_for(&self, st: &mut State, e: &Entry) -> Result<()> {
        if e.fits_version(st.journal.version()) {
            return self.make_room(st);
        }
        if matches!(e, Entry::Expired { .. }) {
            st.version_3 = true;
        } else {
            st.version_2 = true;
        }
        let full = !st.journal.has_room();
        self.handle.inner.rotate(st, full)
    }

    /// Journals a delivery. If the journal is full and a new one does not
    /// fit on the disk, the delivery is counted in memory only (as after a
    /// power cut, its count may then come back lower after a crash), so that
    /// a full disk stops acks, not reads: the next generation that starts
    /// checkpoints it.
    #[inline]
    fn journal_delivery(&self, st: &mut State, e: Entry) -> Result<()> {
        if st.journal.append(&e) {
            return Ok(());
        }
        self.journal_delivery_slow(st, e)
    }

    #[cold]
    fn journal_delivery_slow(&self, st: &mut State, e: Entry) -> Result<()> {
        if st
            .disk_full_since
            .is_some_and(|t| t.elapsed() < DISK_FULL_RETRY)
        {
            return Ok(());
        }
        match self.journal(st, e) {
            Err(Error::DiskFull { .. }) if !self.handle.inner.ctx.is_poisoned() => Ok(()),
            r => r,
        }
    }

    /// Makes the journal durable up to `target` if the store's durability
    /// asks for it.
    fn persist(&self, target: u64) -> Result<()> {
        match self.handle.inner.ctx.opts.durability {
            Durability::Always => self.handle.inner.sync_to(target),
            _ => Ok(()),
        }
    }
}

/// What a take does with the record of `taken` (bucket `p`), which has
/// attributes: an expired one goes (counted, dead-lettered if the consumer
/// has a dead-letter stream), one whose deliver-at is ahead is parked in
/// bucket `p` until then. Group admission comes later (a dead letter is not
/// admitted). Wall-clock times (µs since the epoch) are turned into an
/// `Instant` at `now`: a clock that jumps is met again when the message is
/// due, since the take that reaches it then reads the record again.
fn gate(st: &mut State, p: usize, taken: state::Taken, a: &Attributes<'_>, now: Instant) -> Gate {
    if a.deliver_at_us.is_none() && a.expires_at_us.is_none() {
        return Gate::Deliver;
    }
    let wall = crate::ctx::now_us();
    if a.expires_at_us.is_some_and(|e| e <= wall) {
        return Gate::Expired;
    }
    if let Some(at) = a.deliver_at_us.filter(|&at| at > wall) {
        let until = saturating_deadline(now, Duration::from_micros(at - wall));
        st.buckets[p].schedule(taken.offset, until);
        return Gate::Parked;
    }
    Gate::Deliver
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
