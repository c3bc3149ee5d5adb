//! Streams: named logs with one bucket per priority level.
//!
//! A stream reaches the store that holds it only through [`Streams`] (the
//! store implements it): dead-letter and reply streams, blob collection and
//! reply routing, without an import of the store.

mod dedup;
mod guarded;
mod lifecycle;
mod open;
mod redrive;
mod retention;
mod send;

pub(crate) use open::{create, open};

use crate::blob::{BlobBytes, Blobs};
use crate::consumer::{self, Consumer, ConsumerConfig, ConsumerInner};
use crate::ctx::Ctx;
use crate::log::segment::Pin;
use crate::log::Bucket;
use crate::log::Record;
use crate::notify::Notify;
use crate::options::{Durability, StreamConfig};
use crate::{name, Error, Result};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// What [`Stream::read_without_hashing`] found.
pub(crate) enum Read {
    /// The message, its claim-check payload (if any) verified.
    Record(Record),
    /// No message at that offset yet.
    NotYet,
    /// A claim check (the record, unresolved, and its reference) whose blob
    /// must be verified first.
    NeedsBlob(Record, crate::blob::ClaimCheck),
}

/// What a stream needs from the store that holds it.
pub(crate) trait Streams: Send + Sync + std::fmt::Debug {
    /// Gets or creates another stream of the store (dead-letter and reply
    /// streams).
    fn stream(&self, name: &str) -> Result<Stream>;
    /// Gets another stream of the store only if it exists
    /// (`StreamNotFound`).
    fn open_stream(&self, name: &str) -> Result<Stream>;
    /// Removes the blobs no retained message refers to any more (after
    /// retention freed segments).
    fn collect_blobs(&self) -> Result<usize>;
    /// Waits for the reply to a request (see `request.rs`).
    fn wait_reply(&self, reply_to: &str, id: &str, timeout: Duration) -> Result<Record>;
    /// The future of a wait for the reply to a request (see `request.rs`).
    fn wait_reply_async(
        &self,
        reply_to: &str,
        id: String,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Record>> + Send>>;
}

/// The consumer name the request router reads a reply stream with (see
/// [`Stream::request`]). It is reserved: [`Stream::consumer`] and
/// [`Stream::consumer_with`] refuse it with [`Error::InvalidName`], so that
/// no other reader takes replies away from their requesters.
pub const REPLY_CONSUMER: &str = "spool-replies";

/// A user's consumer name: valid, and not the router's.
fn validate_consumer_name(name: &str) -> Result<()> {
    name::validate(name)?;
    if name == REPLY_CONSUMER {
        return Err(Error::InvalidName {
            name: name.to_string(),
            reason: "reserved for the request router of a reply stream",
        });
    }
    Ok(())
}

/// A named, durable stream of messages. Cheap to clone; all clones share the
/// same log. `Send + Sync`: any number of threads may send and read at once.
/// A handle keeps its store open.
///
/// ```
/// use spool::{Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let events = store.stream("events")?;
///
///     // Four threads send at once; concurrent sends share their syncs.
///     let senders: Vec<_> = (0..4)
///         .map(|t| {
///             let events = events.clone(); // the same log
///             std::thread::spawn(move || events.send(format!("from thread {t}").as_bytes()))
///         })
///         .collect();
///     for sender in senders {
///         sender.join().expect("sender panicked")?;
///     }
///     assert_eq!(events.stats().messages(), 4);
///     for record in events.iter_from(0) {
///         assert!(record?.payload().starts_with(b"from thread "));
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
    store: Arc<dyn Streams>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// The shared state of one stream. Its fields are its own: consumers and
/// the store use its methods.
#[derive(Debug)]
pub(crate) struct StreamInner {
    name: String,
    dir: PathBuf,
    config: StreamConfig,
    buckets: Vec<Bucket>,
    ctx: Arc<Ctx>,
    /// Woken after every send (and nack) for blocked receivers.
    notify: Notify,
    /// Every consumer of the stream, open for as long as the stream is.
    consumers: RwLock<BTreeMap<String, Arc<ConsumerInner>>>,
    consumer_create: Mutex<()>,
    /// Held by a retention pass (see `retention.rs`).
    retention: Mutex<()>,
    /// Held while a small file of the stream directory other than its
    /// configuration is read and written (`message_type.meta`, see
    /// [`StreamInner::with_files`]).
    files: Mutex<()>,
    /// The store's claim-check blobs.
    blobs: Arc<Blobs>,
    /// Set when the stream is deleted (`Store::delete_stream`): its
    /// handles fail with `StreamNotFound`.
    deleted: std::sync::atomic::AtomicBool,
    /// The ids sent within the dedup window (`None`: a zero window). Held
    /// by a send with an id across its look-up, append and insertion.
    dedup: Option<Mutex<dedup::Window>>,
    /// Held by every send of a bounded stream across its capacity check and
    /// its append (`None`: not bounded).
    capacity: Option<Mutex<()>>,
}

/// Figures of one priority bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketStats {
    /// Priority level.
    pub priority: u8,
    /// First retained offset.
    pub first_offset: u64,
    /// Offset the next message will get.
    pub end_offset: u64,
    /// Offsets below this are durable.
    pub durable_offset: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// Files of kept ids (`<base>.ids`): the id sections of segments that
    /// retention deleted while some of their ids were within the stream's
    /// deduplication window, kept until those ids age out (DESIGN.md §7.1).
    pub kept_id_files: usize,
}

/// Figures of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// One entry per priority level, lowest first.
    pub buckets: Vec<BucketStats>,
    /// Message ids the deduplication window remembers now (ids sent within
    /// [`StreamConfig::dedup_window`]; those older are forgotten as sends
    /// with ids go on). After an open, 0 until the first send with an id
    /// reads the window's ids in from the log.
    pub dedup_ids: usize,
}

impl StreamStats {
    /// Messages retained in all buckets.
    pub fn messages(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.end_offset - b.first_offset)
            .sum()
    }
}

impl Stream {
    pub(crate) fn from_inner(inner: Arc<StreamInner>, store: Arc<dyn Streams>) -> Stream {
        Stream { inner, store }
    }

    /// The shared state.
    pub(crate) fn inner(&self) -> &Arc<StreamInner> {
        &self.inner
    }

    /// The store that holds the stream.
    pub(crate) fn store(&self) -> &dyn Streams {
        &*self.store
    }

    /// Number of priority levels.
    pub(crate) fn priorities(&self) -> u8 {
        self.inner.priorities()
    }

    /// Wake-ups for receivers.
    pub(crate) fn notify(&self) -> &Notify {
        &self.inner.notify
    }

    /// End of a bucket's log.
    pub(crate) fn end_offset(&self, priority: u8) -> u64 {
        self.inner
            .buckets
            .get(priority as usize)
            .map(|b| b.end_offset())
            .unwrap_or(0)
    }

    /// The first offset consumers may not receive yet: with
    /// `Durability::Always` only durable messages are delivered, so an
    /// acknowledgement can never refer to a message a crash could take back.
    pub(crate) fn deliverable_end(&self, priority: u8) -> u64 {
        let Some(b) = self.inner.buckets.get(priority as usize) else {
            return 0;
        };
        match self.inner.ctx.opts.durability {
            Durability::Always => b.durable_offset(),
            _ => b.end_offset(),
        }
    }

    /// Another stream of the same store (dead-letter and reply streams).
    pub(crate) fn store_stream(&self, name: &str) -> Result<Stream> {
        self.store.stream(name)
    }

    /// Gets the consumer `name`, creating it with the default configuration
    /// (start at the earliest message) if it does not exist. The name
    /// [`REPLY_CONSUMER`] is reserved ([`Error::InvalidName`]).
    ///
    /// Handles on one name share one cursor and compete for its messages;
    /// each name sees every message.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.stream("jobs")?;
    ///     jobs.send(b"job 1")?;
    ///
    ///     let a = jobs.consumer("worker")?;
    ///     let b = jobs.consumer("worker")?; // the same consumer
    ///     let d = a.try_receive()?.expect("job 1");
    ///     assert!(b.try_receive()?.is_none()); // leased to `a`
    ///     d.ack()?;
    ///
    ///     // Another name has a cursor of its own: it gets job 1 too.
    ///     let audit = jobs.consumer("audit")?;
    ///     assert_eq!(audit.try_receive()?.unwrap().payload(), b"job 1");
    ///     assert_eq!(jobs.consumers(), ["audit", "worker"]);
    ///     Ok(())
    /// }
    /// ```
    pub fn consumer(&self, name: &str) -> Result<Consumer> {
        validate_consumer_name(name)?;
        self.inner.check_live()?;
        if let Some(c) = self.get_consumer(name) {
            return Ok(c);
        }
        self.create_consumer(name, &ConsumerConfig::default(), false)
    }

    /// Gets or creates the consumer `name` with `config`. For an existing
    /// consumer the new configuration replaces the stored one (its start
    /// position only matters at creation). The name [`REPLY_CONSUMER`] is
    /// reserved ([`Error::InvalidName`]).
    ///
    /// ```
    /// use spool::{ConsumerConfig, Options, StartAt, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let events = store.stream("events")?;
    ///     events.send(b"before")?;
    ///
    ///     let config = ConsumerConfig::default()
    ///         .start(StartAt::Latest) // only what is sent from now on
    ///         .visibility_timeout(Duration::from_secs(60));
    ///     let tail = events.consumer_with("tail", config.clone())?;
    ///     events.send(b"after")?;
    ///     assert_eq!(tail.try_receive()?.unwrap().payload(), b"after");
    ///     assert_eq!(tail.config(), config); // stored with the consumer
    ///     Ok(())
    /// }
    /// ```
    pub fn consumer_with(&self, name: &str, config: ConsumerConfig) -> Result<Consumer> {
        validate_consumer_name(name)?;
        self.create_consumer(name, &config, true)
    }

    /// The request router's consumer ([`REPLY_CONSUMER`], which
    /// [`Stream::consumer`] refuses), created with `config` or updated to it.
    pub(crate) fn router_consumer(&self, config: &ConsumerConfig) -> Result<Consumer> {
        self.create_consumer(REPLY_CONSUMER, config, true)
    }

    /// Gets the consumer `name` only if it exists: a misspelled name is
    /// [`Error::ConsumerNotFound`], not a new durable consumer that replays
    /// the whole stream and holds its retention back (as
    /// [`Stream::consumer`] would make).
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let events = store.stream("events")?;
    /// events.consumer("indexer")?; // created once, by the deployment
    /// let indexer = events.open_consumer("indexer")?; // by the workers
    /// assert!(matches!(
    ///     events.open_consumer("indexr"),
    ///     Err(Error::ConsumerNotFound { .. })
    /// ));
    /// assert_eq!(events.consumers(), ["indexer"]); // nothing was created
    /// # drop(indexer);
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn open_consumer(&self, name: &str) -> Result<Consumer> {
        validate_consumer_name(name)?;
        self.inner.ctx.check()?;
        self.inner.check_live()?;
        self.get_consumer(name)
            .ok_or_else(|| Error::ConsumerNotFound {
                stream: self.inner.name.clone(),
                consumer: name.to_string(),
            })
    }

    /// Deletes the durable consumer `name`: its position, leases and
    /// figures go, and retention no longer waits for it (a retention pass
    /// runs before this returns, so segments only it held are freed on
    /// disk; if that pass fails, the next one frees them). Handles of it still held fail with
    /// [`Error::ConsumerNotFound`] from then on; a consumer made later
    /// under the same name starts afresh. Crash-safe: its directory is
    /// renamed out of the way in one durable step and removed after; an
    /// open after a crash in between finishes the removal. A consumer that
    /// does not exist is [`Error::ConsumerNotFound`].
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let events = store.stream("events")?;
    /// let typo = events.consumer("indexr")?; // made by mistake
    /// events.delete_consumer("indexr")?;
    /// assert!(events.consumers().is_empty());
    /// assert!(matches!(typo.try_receive(), Err(Error::ConsumerNotFound { .. })));
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn delete_consumer(&self, name: &str) -> Result<()> {
        validate_consumer_name(name)?;
        self.inner.ctx.check()?;
        self.inner.check_live()?;
        {
            let _g = self
                .inner
                .consumer_create
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let removed = self
                .inner
                .consumers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            let Some(c) = removed else {
                return Err(Error::ConsumerNotFound {
                    stream: self.inner.name.clone(),
                    consumer: name.to_string(),
                });
            };
            if let Err(e) = consumer::delete(&self.inner.ctx, &c) {
                if !c.is_deleted() {
                    // Nothing changed: it is back.
                    self.inner
                        .consumers
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.to_string(), c);
                }
                return Err(e);
            }
        }
        // The deletion is done whatever happens now; a retention pass that
        // fails is tried again at the next roll or call (one that poisons
        // the store shows on the next call).
        let _ = self.apply_retention();
        Ok(())
    }

    /// The consumer `name` if it exists (none is created).
    pub(crate) fn existing_consumer(&self, name: &str) -> Option<Consumer> {
        self.get_consumer(name)
    }

    /// Names of the stream's consumers, sorted.
    pub fn consumers(&self) -> Vec<String> {
        self.inner
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn get_consumer(&self, name: &str) -> Option<Consumer> {
        let c = self
            .inner
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()?;
        Some(Consumer::new(c, self.clone()))
    }

    fn create_consumer(
        &self,
        name: &str,
        config: &ConsumerConfig,
        update: bool,
    ) -> Result<Consumer> {
        self.inner.ctx.check()?;
        if config.dead_letter.as_deref() == Some(self.name()) {
            // Every dead letter would be delivered again, and dead-lettered
            // again, without end.
            return Err(Error::InvalidConfig(format!(
                "the dead-letter stream of a consumer of {:?} must be another stream",
                self.name()
            )));
        }
        let _g = self
            .inner
            .consumer_create
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Under the lock a deletion of the stream takes: no consumer
        // directory is made in a stream being deleted.
        self.inner.check_live()?;
        if let Some(c) = self.get_consumer(name) {
            if update {
                consumer::update_config(c.inner_ref(), config)?;
            }
            return Ok(c);
        }
        let (dir, new) = consumer::create(&self.inner.ctx, &self.inner, name, config)?;
        let inner = Arc::new(consumer::open(&self.inner.ctx, &self.inner, name, &dir)?);
        if !new && update {
            consumer::update_config(&inner, config)?;
        }
        self.inner
            .consumers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), inner.clone());
        Ok(Consumer::new(inner, self.clone()))
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The stream's configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// Deletes the sealed segments that retention allows: those every
    /// consumer has acknowledged (a stream without consumers keeps
    /// everything), and, whatever the consumers, those beyond the stream's
    /// `max_age` / `max_bytes`. Runs by itself after each segment roll and at
    /// open; call it to enforce an age limit on an idle stream. Returns the
    /// bytes of the files removed.
    pub fn apply_retention(&self) -> Result<u64> {
        self.inner.check_live()?;
        let pass = self.inner.apply_retention()?;
        if pass.freed > 0 {
            // Segments went away: so may the last references to some blobs.
            // (If this fails, the pass's mark stays: the next open collects.)
            self.store.collect_blobs()?;
        }
        if let Some(due) = pass.due {
            due.settle();
        }
        Ok(pass.freed)
    }

    /// Reads the message at `offset` of priority 0; `None` if no message has
    /// that offset yet. An offset that retention deleted is
    /// [`Error::OffsetNotRetained`].
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let orders = store.stream("orders")?;
    ///     let offset = orders.send(b"order #1")?;
    ///
    ///     let record = orders.read(offset)?.expect("just sent");
    ///     assert_eq!(record.payload(), b"order #1");
    ///     assert!(orders.read(offset + 1)?.is_none()); // not written yet
    ///     Ok(())
    /// }
    /// ```
    pub fn read(&self, offset: u64) -> Result<Option<Record>> {
        self.read_priority(0, offset)
    }

    /// Reads the message at `offset` of a priority level.
    ///
    /// A claim-checked payload is mapped from its blob and verified against
    /// its hash here (once per process while it stays mapped); a missing or
    /// damaged blob is `Error::Corrupt`.
    ///
    /// ```
    /// use spool::{Error, Message, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let tasks = store.create_stream("tasks", StreamConfig::default().priorities(2))?;
    ///     let offset = tasks.send_message(Message::new(b"urgent").priority(1))?;
    ///
    ///     assert_eq!(tasks.read_priority(1, offset)?.unwrap().payload(), b"urgent");
    ///     assert!(tasks.read(offset)?.is_none()); // level 0 has offsets of its own
    ///     assert!(matches!(tasks.read_priority(2, 0), Err(Error::InvalidPriority { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn read_priority(&self, priority: u8, offset: u64) -> Result<Option<Record>> {
        if self.inner.ctx.is_closed() {
            return Err(Error::Closed);
        }
        self.inner.check_live()?;
        let r = self.bucket(priority)?.read(offset)?;
        match r {
            Some(r) if r.is_claim_check() => Ok(Some(self.inner.resolve(r)?)),
            other => Ok(other),
        }
    }

    /// [`Stream::read_priority`] through a per-reader segment cache (see
    /// `Bucket::read_cached`).
    pub(crate) fn read_priority_cached(
        &self,
        priority: u8,
        offset: u64,
        cache: &mut Option<Arc<Pin>>,
    ) -> Result<Option<Record>> {
        self.inner.check_live()?;
        let r = self.bucket(priority)?.read_cached(offset, cache)?;
        match r {
            Some(r) if r.is_claim_check() => Ok(Some(self.inner.resolve(r)?)),
            other => Ok(other),
        }
    }

    /// Like [`Stream::read_priority_cached`], for a reader that holds a lock
    /// others wait on: a claim check whose blob is not verified yet is
    /// returned as [`Read::NeedsBlob`] instead of being hashed here, so the
    /// caller can load it ([`Stream::load_blob`]) after letting go.
    pub(crate) fn read_without_hashing(
        &self,
        priority: u8,
        offset: u64,
        cache: &mut Option<Arc<Pin>>,
    ) -> Result<Read> {
        let Some(r) = self.bucket(priority)?.read_cached(offset, cache)? else {
            return Ok(Read::NotYet);
        };
        if !r.is_claim_check() {
            return Ok(Read::Record(r));
        }
        let Some(cc) = r.claim_check() else {
            return Ok(Read::Record(self.inner.resolve(r)?));
        };
        match self.inner.blobs.cached(&cc.hash) {
            Some(blob) => Ok(Read::Record(r.with_blob(blob))),
            None => Ok(Read::NeedsBlob(r, cc)),
        }
    }

    /// Maps and verifies a claim check's blob; the returned handle keeps it
    /// verified (for [`Stream::read_without_hashing`]) while it is held.
    pub(crate) fn load_blob(&self, cc: &crate::blob::ClaimCheck) -> Result<Arc<BlobBytes>> {
        self.inner.blobs.load(cc)
    }

    /// Iterates over priority 0 from `offset` to the current end. Called
    /// again after it returned `None`, the iterator goes on with messages
    /// sent since. Between calls it keeps the segment it read last mapped
    /// (until it reaches the end or is dropped). An offset below the first
    /// retained one starts at the first retained one.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let log = store.stream("log")?;
    ///     log.send_batch(["a", "b", "c"])?;
    ///
    ///     let mut tail = log.iter_from(1);
    ///     assert_eq!(tail.next().unwrap()?.payload(), b"b");
    ///     assert_eq!(tail.next().unwrap()?.payload(), b"c");
    ///     assert!(tail.next().is_none()); // the end, for now
    ///
    ///     // Asked again, it goes on with what was sent since.
    ///     log.send(b"d")?;
    ///     assert_eq!(tail.next().unwrap()?.payload(), b"d");
    ///     Ok(())
    /// }
    /// ```
    pub fn iter_from(&self, offset: u64) -> Iter {
        Iter {
            stream: self.clone(),
            priority: 0,
            next: offset,
            done: false,
            cache: None,
        }
    }

    /// Iterates over one priority level from `offset` to the current end
    /// (see [`Stream::iter_from`]); [`Error::InvalidPriority`] for a level
    /// the stream does not have.
    ///
    /// ```
    /// use spool::{Message, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let tasks = store.create_stream("tasks", StreamConfig::default().priorities(2))?;
    ///     tasks.send_batch([
    ///         Message::new(b"low").priority(0),
    ///         Message::new(b"high 1").priority(1),
    ///         Message::new(b"high 2").priority(1),
    ///     ])?;
    ///     let high: Vec<_> = tasks.iter_priority(1, 0)?.collect::<Result<_, _>>()?;
    ///     assert_eq!(high.len(), 2);
    ///     assert_eq!(high[1].payload(), b"high 2");
    ///     Ok(())
    /// }
    /// ```
    pub fn iter_priority(&self, priority: u8, offset: u64) -> Result<Iter> {
        self.bucket(priority)?;
        Ok(Iter {
            stream: self.clone(),
            priority,
            next: offset,
            done: false,
            cache: None,
        })
    }

    /// Makes everything sent to this stream so far durable, then its
    /// consumers' acknowledgements.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_live()?;
        self.inner.sync()
    }

    /// Offsets and sizes of each priority bucket.
    ///
    /// ```
    /// use spool::{Message, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let tasks = store.create_stream("tasks", StreamConfig::default().priorities(2))?;
    ///     tasks.send(b"a")?;
    ///     tasks.send(b"b")?;
    ///     tasks.send_message(Message::new(b"c").priority(1))?;
    ///
    ///     let stats = tasks.stats();
    ///     assert_eq!(stats.messages(), 3);
    ///     let low = &stats.buckets[0];
    ///     assert_eq!((low.first_offset, low.end_offset), (0, 2));
    ///     assert_eq!(low.durable_offset, 2); // `Durability::Always`: synced by each send
    ///     assert_eq!(stats.buckets[1].end_offset, 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            buckets: self
                .inner
                .buckets
                .iter()
                .map(|b| BucketStats {
                    priority: b.priority,
                    first_offset: b.first_offset(),
                    end_offset: b.end_offset(),
                    durable_offset: b.durable_offset(),
                    segments: b.segment_count(),
                    bytes: b.file_bytes(),
                    kept_id_files: b.kept_files(),
                })
                .collect(),
            dedup_ids: self.inner.dedup_ids(),
        }
    }

    fn bucket(&self, priority: u8) -> Result<&Bucket> {
        self.inner
            .buckets
            .get(priority as usize)
            .ok_or(Error::InvalidPriority {
                priority,
                priorities: self.inner.priorities(),
            })
    }
}

impl StreamInner {
    /// Whether the stream has a capacity (every send takes the guarded path).
    #[inline]
    pub(crate) fn bounded(&self) -> bool {
        self.capacity.is_some()
    }

    /// Whether the stream deduplicates message ids (a non-zero window).
    #[inline]
    pub(crate) fn deduplicates(&self) -> bool {
        self.dedup.is_some()
    }

    /// Ids in the dedup window now (0 without one).
    pub(crate) fn dedup_ids(&self) -> usize {
        self.dedup
            .as_ref()
            .map_or(0, |w| w.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// The store's shared context.
    pub(crate) fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// The stream's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The stream's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of priority levels.
    pub(crate) fn priorities(&self) -> u8 {
        self.buckets.len() as u8
    }

    /// The offsets a bucket holds: first retained .. next to be written.
    pub(crate) fn log_range(&self, priority: u8) -> Range<u64> {
        match self.buckets.get(priority as usize) {
            Some(b) => b.first_offset()..b.end_offset(),
            None => 0..0,
        }
    }

    /// Reads one message of a bucket (its claim-check payload unresolved).
    pub(crate) fn read_raw(&self, priority: u8, offset: u64) -> Result<Option<Record>> {
        match self.buckets.get(priority as usize) {
            Some(b) => b.read(offset),
            None => Ok(None),
        }
    }

    /// Installs the consumers found at open.
    pub(crate) fn set_consumers(&self, consumers: BTreeMap<String, Arc<ConsumerInner>>) {
        *self.consumers.write().unwrap_or_else(|e| e.into_inner()) = consumers;
    }

    /// Every consumer of the stream.
    fn consumer_list(&self) -> Vec<Arc<ConsumerInner>> {
        self.consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Attaches the verified blob of a claim-check record.
    pub(crate) fn resolve(&self, r: Record) -> Result<Record> {
        let Some(cc) = r.claim_check() else {
            return Err(Error::corrupt(
                r.segment_path(),
                r.position(),
                "malformed claim-check reference",
            ));
        };
        let blob = self.blobs.load(&cc)?;
        Ok(r.with_blob(blob))
    }

    /// Every blob referred to by a retained message of this stream.
    pub(crate) fn blob_refs(&self, out: &mut std::collections::HashSet<[u8; 32]>) -> Result<()> {
        for b in &self.buckets {
            b.blob_refs(out)?;
        }
        Ok(())
    }

    /// Runs `f` under the lock of the stream directory's small files, once
    /// the store is found open: calls are serialized (a read-check-write of
    /// a file is not raced by another), and `Store::close` takes the lock
    /// after marking the store closed, so nothing `f` writes reaches the
    /// directory after the close.
    pub(crate) fn with_files<R>(&self, f: impl FnOnce(&Arc<Ctx>, &Path) -> Result<R>) -> Result<R> {
        let _g = self.files.lock().unwrap_or_else(|e| e.into_inner());
        self.ctx.check()?;
        f(&self.ctx, &self.dir)
    }

    /// After the store was marked closed: waits for the writes in progress
    /// (appends, retention, consumer changes, small files) to end, and
    /// wakes every receiver waiting on the stream, to find it closed.
    pub(crate) fn fence(&self) {
        for b in &self.buckets {
            b.fence();
        }
        drop(self.retention.lock().unwrap_or_else(|e| e.into_inner()));
        drop(self.files.lock().unwrap_or_else(|e| e.into_inner()));
        for c in self.consumer_list() {
            c.fence();
        }
        self.notify.notify();
    }

    /// Makes everything durable and marks the active segments closed
    /// cleanly (for `Store::close`).
    pub(crate) fn close_files(&self) -> Result<()> {
        if self.is_deleted() {
            return Ok(());
        }
        for c in self.consumer_list() {
            c.sync_all()?;
        }
        for b in &self.buckets {
            b.close_files()?;
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<()> {
        if self.is_deleted() {
            // Its files are gone: a sync that listed it before the
            // deletion touches nothing of it.
            return Ok(());
        }
        for b in &self.buckets {
            b.sync_all()?;
        }
        for c in self.consumer_list() {
            c.sync_all()?;
        }
        Ok(())
    }
}

/// Iterator over the messages of one bucket, from an offset to the end as it
/// is when `next` is called. Yields an error (and then stops) on damage.
#[derive(Debug)]
pub struct Iter {
    stream: Stream,
    priority: u8,
    next: u64,
    done: bool,
    /// The segment read last (see [`Stream::read_priority_cached`]).
    cache: Option<Arc<Pin>>,
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        let read = self
            .stream
            .read_priority_cached(self.priority, self.next, &mut self.cache);
        match read {
            Ok(Some(r)) => {
                self.next += 1;
                Some(Ok(r))
            }
            Ok(None) => {
                // Caught up: let go of the segment, so that an iterator kept
                // for later does not hold a segment retention deleted.
                self.cache = None;
                None
            }
            Err(Error::OffsetNotRetained { first, .. }) => {
                // Retention moved past us: continue at the first retained.
                self.next = first;
                self.next()
            }
            Err(e) => {
                self.done = true;
                self.cache = None;
                Some(Err(e))
            }
        }
    }
}
