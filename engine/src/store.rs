//! The store: a locked directory holding streams.

use crate::background;
use crate::blob::Blobs;
use crate::ctx::Ctx;
use crate::format::meta;
use crate::io::{self, real::RealFs, EntryKind, Vfs};
use crate::layout::{self, LOCK_FILE, STORE_META_FILE, STREAMS_DIR};
use crate::log::Record;
use crate::options::{Durability, Options, StreamConfig};
use crate::report::RecoveryReport;
use crate::request::{Router, WaitReply};
use crate::stream::{self, Stream, StreamInner, Streams};
use crate::{name, Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// An open store: a directory of streams, locked against other openers.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`. The store stays open
/// until the last clone (and every [`Stream`] handle) is dropped; dropping
/// it syncs what was written.
///
/// ```
/// use spool::{Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let orders = store.stream("orders")?;
///     let offset = orders.send(b"order #1")?;
///     drop(orders);
///     store.close()?;
///
///     // Everything sent is there when the store opens again.
///     let store = Store::open(dir.path(), Options::default())?;
///     assert_eq!(store.streams(), ["orders"]);
///     let record = store.stream("orders")?.read(offset)?.expect("sent before the close");
///     assert_eq!(record.payload(), b"order #1");
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<StoreInner>,
}

/// The open streams by name.
type StreamMap = RwLock<BTreeMap<String, Arc<StreamInner>>>;

pub(crate) struct StoreInner {
    /// This store, for the stream handles it gives out.
    me: Weak<StoreInner>,
    ctx: Arc<Ctx>,
    blobs: Arc<Blobs>,
    /// Request routers, one per reply stream in use.
    routers: Mutex<HashMap<String, Arc<Router>>>,
    /// Shared with the sync thread, which never holds the store itself (so
    /// that the last handle's drop runs, and joins it, on the user's thread).
    streams: Arc<StreamMap>,
    create_lock: Mutex<()>,
    report: RecoveryReport,
}

impl std::fmt::Debug for StoreInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.ctx.root)
            .finish()
    }
}

impl Store {
    /// Opens the store at `path`, creating it if missing, and recovers it
    /// (see [`Store::recovery_report`]). Fails with [`Error::Locked`] if
    /// another `Store`, in this process or another, has it open.
    ///
    /// ```
    /// use spool::{Durability, Error, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let options = Options::default().durability(Durability::Never);
    ///     let store = Store::open(dir.path().join("store"), options)?; // created
    ///     assert!(store.recovery_report().is_clean());
    ///
    ///     // Locked while open: a second opener is refused.
    ///     let again = Store::open(store.path(), Options::default());
    ///     assert!(matches!(again, Err(Error::Locked { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Store> {
        let started = Instant::now();
        options.validate()?;
        let vfs: Arc<dyn Vfs> = options.vfs.clone().unwrap_or_else(|| Arc::new(RealFs));
        let root = path.as_ref().to_path_buf();
        io::create_dir_all(&*vfs, &root)?;
        let lock = vfs.lock(&root.join(LOCK_FILE)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked {
                    this_process: crate::ctx::locked_by_this_process(&root),
                    path: root.clone(),
                }
            } else {
                Error::io("lock", root.join(LOCK_FILE), e)
            }
        })?;
        let ctx = Ctx::new(vfs.clone(), options, root.clone(), lock);
        init_layout(&*vfs, &root)?;
        let mut report = RecoveryReport::default();
        let blobs = Arc::new(Blobs::new(ctx.clone()));
        let streams_dir = root.join(STREAMS_DIR);
        let mut names = Vec::new();
        for e in vfs
            .read_dir(&streams_dir)
            .map_err(|e| Error::io("list", &streams_dir, e))?
        {
            if e.kind != EntryKind::Dir {
                continue;
            }
            let dir = streams_dir.join(&e.name);
            if layout::is_tmp_dir(&e.name) {
                // A stream whose creation was interrupted before it was
                // renamed into place: it never existed.
                io::remove_dir_all(&*vfs, &dir)?;
                vfs.sync_dir(&streams_dir)
                    .map_err(|e| Error::io("sync directory", &streams_dir, e))?;
                report.removed_incomplete_streams.push(dir);
                continue;
            }
            if name::validate(&e.name).is_ok() {
                names.push(e.name);
            }
        }
        let open_one = |name: &String, report: &mut RecoveryReport| {
            let dir = streams_dir.join(name);
            let Some(inner) = stream::open(&ctx, &blobs, name, &dir, report)? else {
                return Ok(None);
            };
            // A pass that deletes segments leaves its mark: the collection
            // below finds it and collects.
            drop(inner.apply_retention()?);
            Ok(Some(Arc::new(inner)))
        };
        let mut streams = BTreeMap::new();
        for (name, opened) in names.iter().zip(open_all(&names, &mut report, open_one)?) {
            if let Some(inner) = opened {
                streams.insert(name.clone(), inner);
            }
        }
        // Blobs that no retained message refers to: orphans of a crash
        // between writing a blob and appending its reference, or left by a
        // crash during collection.
        // Only a pending mark says one may exist: a store without one is
        // opened without reading any segment's references.
        if blobs.exists() {
            if blobs.has_pending()? {
                let mut refs = HashSet::new();
                for s in streams.values() {
                    s.blob_refs(&mut refs)?;
                }
                report.removed_orphan_blobs = blobs.collect(&refs)?;
                blobs.clear_pending()?;
            } else {
                blobs.sweep_tmp()?;
            }
        }
        let inner = Arc::new_cyclic(|me| StoreInner {
            me: me.clone(),
            ctx,
            blobs,
            routers: Mutex::new(HashMap::new()),
            streams: Arc::new(RwLock::new(streams)),
            create_lock: Mutex::new(()),
            report,
        });
        let streams = inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        recovery_events(&inner.ctx.root, streams, started.elapsed(), &inner.report);
        if inner.ctx.opts.background_thread() {
            let every = match inner.ctx.opts.durability {
                Durability::Interval(every) => Some(every),
                _ => None,
            };
            let (ctx, streams) = (inner.ctx.clone(), inner.streams.clone());
            background::spawn(inner.ctx.syncer.clone(), every, move || {
                sync_all(&ctx, &streams)
            });
        }
        Ok(Store { inner })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.ctx.root
    }

    /// What recovery found and did while opening: nothing after a clean
    /// close; after a crash, the torn tails it cut and the leftovers it
    /// removed (see [`RecoveryReport`]).
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     Store::open(dir.path(), Options::default())?.close()?;
    ///
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let report = store.recovery_report();
    ///     assert!(report.is_clean());
    ///     assert_eq!(report.to_string(), "clean: nothing to recover\n");
    ///     Ok(())
    /// }
    /// ```
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Gets the stream `name`, creating it with the default configuration if
    /// it does not exist. Every handle on one name is the same stream.
    /// Names are 1 to 128 of `A-Z a-z 0-9 _ . -`, not starting with `.`
    /// ([`Error::InvalidName`]).
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let offset = store.stream("orders")?.send(b"order #1")?;
    ///     let same = store.stream("orders")?;
    ///     assert_eq!(same.read(offset)?.unwrap().payload(), b"order #1");
    ///
    ///     assert!(matches!(store.stream("../etc"), Err(Error::InvalidName { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn stream(&self, name: &str) -> Result<Stream> {
        self.inner.stream(name)
    }

    /// Creates the stream `name` with `config`; fails with
    /// [`Error::StreamExists`] if it exists. Creation is atomic: after a
    /// crash the stream either exists whole or not at all.
    ///
    /// ```
    /// use spool::{Error, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let tasks = store.create_stream("tasks", StreamConfig::default().priorities(3))?;
    ///     assert_eq!(tasks.config().priorities, 3);
    ///
    ///     // Once only; `Store::stream` gets it (with the configuration it was created with).
    ///     let again = store.create_stream("tasks", StreamConfig::default());
    ///     assert!(matches!(again, Err(Error::StreamExists { .. })));
    ///     assert_eq!(store.stream("tasks")?.config().priorities, 3);
    ///     Ok(())
    /// }
    /// ```
    pub fn create_stream(&self, name: &str, config: StreamConfig) -> Result<Stream> {
        name::validate(name)?;
        config.validate()?;
        self.inner.create(name, config, true)
    }

    /// Gets the stream `name` only if it exists: a misspelled name is
    /// [`Error::StreamNotFound`], not a new stream with the default
    /// configuration (as [`Store::stream`] would make).
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// store.stream("orders")?;
    /// assert!(store.open_stream("orders").is_ok());
    /// assert!(matches!(store.open_stream("ordres"), Err(Error::StreamNotFound { .. })));
    /// assert_eq!(store.streams(), ["orders"]); // nothing was created
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn open_stream(&self, name: &str) -> Result<Stream> {
        name::validate(name)?;
        self.inner.ctx.check()?;
        self.inner.get(name).ok_or_else(|| Error::StreamNotFound {
            name: name.to_string(),
        })
    }

    /// Gets the stream `name`, creating it with `config` if it does not
    /// exist; an existing stream must have exactly `config`, else
    /// [`Error::ConfigMismatch`] (nothing changes). Unlike
    /// [`Store::stream`], calling this first can never leave a stream with
    /// the default configuration where another was meant.
    ///
    /// ```
    /// use spool::{Error, Options, Store, StreamConfig};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let config = StreamConfig::default().priorities(3);
    /// let jobs = store.stream_with("jobs", config.clone())?; // created
    /// let again = store.stream_with("jobs", config)?; // the same stream
    /// assert_eq!(again.config().priorities, 3);
    /// let other = store.stream_with("jobs", StreamConfig::default());
    /// assert!(matches!(other, Err(Error::ConfigMismatch { .. })));
    /// # drop(jobs);
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn stream_with(&self, name: &str, config: StreamConfig) -> Result<Stream> {
        name::validate(name)?;
        config.validate()?;
        let s = match self.inner.get(name) {
            Some(s) => s,
            None => self.inner.create(name, config.clone(), false)?,
        };
        let existing = s.config();
        if *existing != config {
            return Err(Error::ConfigMismatch {
                name: name.to_string(),
                existing: format!("{existing:?}"),
                wanted: format!("{config:?}"),
            });
        }
        Ok(s)
    }

    /// Deletes the stream `name` with everything in it: its messages, its
    /// consumers and their positions. Handles of it still held
    /// ([`Stream`], [`Consumer`](crate::Consumer),
    /// [`Delivery`](crate::Delivery)) fail with [`Error::StreamNotFound`]
    /// from then on (sends, reads, receives, acks); blocked receivers wake
    /// up to that error. A stream made later under the same name starts
    /// empty, at offset 0. Blobs only its messages referred to are
    /// removed before this returns (if that collection fails, the stream
    /// is deleted all the same and the next open collects them). A
    /// stream that does not exist is `StreamNotFound`.
    ///
    /// Crash-safe: its directory is renamed to a temporary name in one
    /// durable step (then removed); an open, in this process or another,
    /// sees the stream whole or not at all, and removes what a crash left
    /// of a deleted one.
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let scratch = store.stream("scratch")?;
    /// scratch.send(b"temporary")?;
    /// store.delete_stream("scratch")?;
    /// assert!(store.streams().is_empty());
    /// assert!(matches!(scratch.send(b"more"), Err(Error::StreamNotFound { .. })));
    /// // The name is free again: a new, empty stream.
    /// assert_eq!(store.stream("scratch")?.stats().messages(), 0);
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn delete_stream(&self, name: &str) -> Result<()> {
        name::validate(name)?;
        self.inner.ctx.check()?;
        let due = {
            // No creation of the name races the deletion.
            let _g = self
                .inner
                .create_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let removed = self
                .inner
                .streams
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            let Some(s) = removed else {
                return Err(Error::StreamNotFound {
                    name: name.to_string(),
                });
            };
            let due = match s.delete() {
                Ok(due) => due,
                Err(e) => {
                    if !s.is_deleted() {
                        // Nothing changed: it is back.
                        self.inner
                            .streams
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.to_string(), s);
                    }
                    return Err(e);
                }
            };
            due
        };
        // A reply router of it reads a deleted stream: the next wait makes
        // a new one.
        self.inner
            .routers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        // The deletion is done whatever happens now. Blobs only it referred
        // to go; if that fails, the mark made before the deletion stays,
        // and the next open collects them.
        if self.inner.collect_blobs().is_ok() {
            if let Some(mark) = due {
                mark.settle();
            }
        }
        Ok(())
    }

    /// Names of all streams, sorted.
    pub fn streams(&self) -> Vec<String> {
        self.inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Makes everything sent to any stream so far durable, and every
    /// consumer's acknowledgements: what [`Durability::Interval`] and
    /// [`Durability::Never`] leave to later.
    ///
    /// ```
    /// use spool::{Durability, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default().durability(Durability::Never))?;
    ///     let events = store.stream("events")?;
    ///     for i in 0..1000u32 {
    ///         events.send(&i.to_le_bytes())?; // returns without waiting for the disk
    ///     }
    ///     store.sync()?; // now all 1,000 are on disk
    ///     assert_eq!(events.stats().buckets[0].durable_offset, 1000);
    ///     Ok(())
    /// }
    /// ```
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Waits up to `timeout` for the reply to the request with
    /// `correlation_id` on the stream `reply_to` (see
    /// [`Stream::send_request`]); acknowledges and returns it. Replies are
    /// durable: this also works for a request sent before a restart.
    /// [`Error::Timeout`] if the reply does not come in time.
    ///
    /// ```
    /// use spool::{Error, Message, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let quotes = store.stream("quotes")?;
    ///     let id = quotes.send_request(Message::new("espresso"), "quotes.replies")?;
    ///     let request = quotes.consumer("pricing")?.try_receive()?.expect("the request");
    ///     request.reply(b"EUR 2.50")?;
    ///     request.ack()?;
    ///     drop(quotes);
    ///     store.close()?;
    ///
    ///     // After a restart, the reply waits for its correlation id.
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let reply = store.wait_reply("quotes.replies", &id, Duration::from_secs(5))?;
    ///     assert_eq!(reply.payload(), b"EUR 2.50");
    ///
    ///     // Taken: there is no second one.
    ///     let again = store.wait_reply("quotes.replies", &id, Duration::from_millis(10));
    ///     assert!(matches!(again, Err(Error::Timeout { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn wait_reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        timeout: std::time::Duration,
    ) -> Result<Record> {
        self.inner.wait_reply(reply_to, correlation_id, timeout)
    }

    /// [`Store::wait_reply`] as a future: waits without blocking a thread.
    /// Dropping it gives up the wait (a reply arriving later stays to be
    /// collected).
    pub fn wait_reply_async(
        &self,
        reply_to: &str,
        correlation_id: &str,
        timeout: std::time::Duration,
    ) -> WaitReply {
        WaitReply::new(
            self.inner.router(reply_to),
            correlation_id.to_string(),
            timeout,
        )
    }

    /// True after a failed sync: nothing more is acknowledged; reopen the
    /// store to recover.
    pub fn is_poisoned(&self) -> bool {
        self.inner.ctx.is_poisoned()
    }

    /// Closes the store, for every handle: receives blocked in any thread
    /// or task wake up with [`Error::Closed`], every later call on any
    /// handle of it (a clone of this `Store`, a stream, a consumer, a
    /// delivery) fails with `Closed`, and everything written is made
    /// durable. When `close` returns, the store is unlocked: another
    /// process, or this one, may open it, while old handles still live.
    /// Writes in progress when it is called are waited for (an append, a
    /// retention pass, an ack); one that starts later fails with `Closed`
    /// and changes nothing. A second `close` (of a clone) returns `Ok`.
    ///
    /// Dropping the last handle without `close` closes the store too, but
    /// quietly: the error of the final sync is lost.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let log = store.stream("log")?;
    ///     log.send(b"last words")?;
    ///     store.close()?; // synced and unlocked: it can be opened again at once
    ///     assert!(matches!(log.send(b"too late"), Err(spool::Error::Closed)));
    ///
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     assert_eq!(store.stream("log")?.stats().messages(), 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

impl Streams for StoreInner {
    /// Gets the stream `name`, creating it with the default configuration
    /// if it does not exist.
    fn stream(&self, name: &str) -> Result<Stream> {
        name::validate(name)?;
        if let Some(s) = self.get(name) {
            return Ok(s);
        }
        self.create(name, StreamConfig::default(), false)
    }

    fn open_stream(&self, name: &str) -> Result<Stream> {
        name::validate(name)?;
        self.get(name).ok_or_else(|| Error::StreamNotFound {
            name: name.to_string(),
        })
    }

    /// Removes the blobs no retained message refers to any more.
    fn collect_blobs(&self) -> Result<usize> {
        if !self.blobs.present()? {
            return Ok(0);
        }
        let streams: Vec<Arc<StreamInner>> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        // Collect under the exclusive lock, so a blob stored meanwhile (its
        // reference not yet appended) cannot be taken for garbage: the
        // sender holds the lock shared until its append.
        self.blobs.collect_with(|refs| {
            for s in &streams {
                s.blob_refs(refs)?;
            }
            Ok(())
        })
    }

    /// Waits for a reply through the router of `reply_to`.
    fn wait_reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        timeout: Duration,
    ) -> Result<Record> {
        self.router(reply_to)?.wait(correlation_id, timeout)
    }

    fn wait_reply_async(
        &self,
        reply_to: &str,
        id: String,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Record>> + Send>> {
        Box::pin(WaitReply::new(self.router(reply_to), id, timeout))
    }
}

impl StoreInner {
    /// The request router of the reply stream `reply_to`.
    fn router(&self, reply_to: &str) -> Result<Arc<Router>> {
        let stream = self.stream(reply_to)?;
        Ok(self
            .routers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reply_to.to_string())
            .or_insert_with(|| {
                let store: Weak<dyn Streams> = self.me.clone();
                Arc::new(Router::new(stream.inner().clone(), store))
            })
            .clone())
    }
}

impl StoreInner {
    /// The handle of an open stream.
    fn get(&self, name: &str) -> Option<Stream> {
        let inner = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()?;
        Some(Stream::from_inner(inner, self.me()?))
    }

    fn me(&self) -> Option<Arc<dyn Streams>> {
        self.me.upgrade().map(|s| s as Arc<dyn Streams>)
    }

    /// Creates the stream `name` (unless it exists: then [`Error::StreamExists`]
    /// if `must_be_new`, else its handle).
    fn create(&self, name: &str, config: StreamConfig, must_be_new: bool) -> Result<Stream> {
        let _g = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.ctx.check()?;
        if let Some(s) = self.get(name) {
            if must_be_new {
                return Err(Error::StreamExists {
                    name: name.to_string(),
                });
            }
            return Ok(s);
        }
        let me = self.me().ok_or(Error::Closed)?;
        let inner = Arc::new(stream::create(&self.ctx, &self.blobs, name, &config)?);
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), inner.clone());
        Ok(Stream::from_inner(inner, me))
    }

    fn sync(&self) -> Result<()> {
        sync_all(&self.ctx, &self.streams)
    }

    /// Removes the pending marks when the store closes; first collects
    /// blobs if a deletion or purge left a collection due (its own failed).
    fn clear_pending(&self) -> Result<()> {
        if self.blobs.collection_due()? {
            self.collect_blobs()?;
        }
        self.blobs.clear_pending()
    }
}

impl StoreInner {
    /// Waits for the store's threads to end (they were told to stop): none
    /// outlives `close` or the last handle.
    fn join_threads(&self) {
        self.ctx.syncer.join();
        self.ctx.timer.join();
        self.ctx.worker.join();
    }

    /// See [`Store::close`].
    fn close(&self) -> Result<()> {
        if self.ctx.is_closed() {
            return Ok(());
        }
        let streams: Vec<Arc<StreamInner>> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        self.ctx.mark_closed();
        // Taken under the creation lock: no stream is being created.
        drop(self.create_lock.lock().unwrap_or_else(|e| e.into_inner()));
        for s in &streams {
            s.fence();
        }
        self.ctx.syncer.stop();
        // Waiting futures wake (and find the store closed); steps queued
        // for the worker run to their end, and a background sync in
        // progress ends, before the files close.
        self.ctx.timer.stop();
        self.ctx.worker.stop();
        self.join_threads();
        let result = {
            let mut result = self.ctx.check_poisoned();
            if result.is_ok() {
                result = streams.iter().try_for_each(|s| s.close_files());
            }
            if result.is_ok() {
                // Every send has returned or failed; a claim-check send cut
                // short by the close may leave an orphan blob, which the
                // next collection after a crash or failed send removes.
                result = self.clear_pending();
            }
            result
        };
        self.ctx.unlock();
        result
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.ctx.syncer.stop();
        self.ctx.timer.stop();
        self.ctx.worker.stop();
        self.join_threads();
        if self.ctx.check().is_ok() {
            // Best effort: a caller who wants the error calls `close`.
            // Every send has returned and its message is durable now, so
            // no blob can be an orphan: the next open need not look.
            if self.sync().is_ok() {
                let _ = self.clear_pending();
            }
        }
    }
}

/// Syncs every stream of `streams`.
fn sync_all(ctx: &Ctx, streams: &StreamMap) -> Result<()> {
    ctx.check()?;
    let streams: Vec<Arc<StreamInner>> = streams
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for s in streams {
        s.sync()?;
    }
    Ok(())
}

/// The recovery events of an open (see [`crate::events`]): one per finding
/// of `report`, then `store opened`.
fn recovery_events(root: &Path, streams: usize, took: Duration, report: &RecoveryReport) {
    use crate::events::RECOVERY;
    for t in &report.torn_tails {
        tracing::warn!(
            target: RECOVERY,
            stream = %t.stream,
            priority = t.priority,
            segment = %t.segment.display(),
            position = t.position,
            bytes = t.bytes,
            scattered_bytes = t.scattered_bytes,
            next_offset = t.first_lost_offset,
            quarantine = %t.quarantine.display(),
            "torn tail cut"
        );
    }
    for p in &report.rebuilt_indexes {
        tracing::info!(target: RECOVERY, path = %p.display(), "index rebuilt");
    }
    for p in &report.removed_temp_files {
        tracing::info!(target: RECOVERY, path = %p.display(), "temporary file removed");
    }
    for p in &report.removed_incomplete_streams {
        tracing::info!(target: RECOVERY, path = %p.display(), "incomplete stream removed");
    }
    if report.removed_orphan_blobs > 0 {
        tracing::info!(
            target: RECOVERY,
            count = report.removed_orphan_blobs,
            "orphan blobs removed"
        );
    }
    tracing::info!(
        target: RECOVERY,
        path = %root.display(),
        streams,
        duration_us = crate::limits::micros_saturating(took),
        torn_tails = report.torn_tails.len(),
        rebuilt_indexes = report.rebuilt_indexes.len(),
        removed_temp_files = report.removed_temp_files.len(),
        removed_incomplete_streams = report.removed_incomplete_streams.len(),
        removed_orphan_blobs = report.removed_orphan_blobs,
        "store opened"
    );
}

/// Creates the store's files on first open; checks the format version.
fn init_layout(vfs: &dyn Vfs, root: &Path) -> Result<()> {
    let meta_path = root.join(STORE_META_FILE);
    let found = io::read_framed(
        vfs,
        &meta_path,
        meta::STORE_META_MAGIC,
        meta::STORE_VERSION,
        meta::META_BODY_BYTES_MAX,
        "store meta",
    )?;
    if found.is_none() {
        io::write_file_atomic(
            vfs,
            root,
            STORE_META_FILE,
            &meta::encode(meta::STORE_META_MAGIC, meta::STORE_VERSION, &[]),
        )?;
    }
    let streams = root.join(STREAMS_DIR);
    match vfs
        .kind(&streams)
        .map_err(|e| Error::io("stat", &streams, e))?
    {
        Some(EntryKind::Dir) => {}
        None => {
            vfs.create_dir(&streams)
                .map_err(|e| Error::io("create directory", &streams, e))?;
            vfs.sync_dir(root)
                .map_err(|e| Error::io("sync directory", root, e))?;
        }
        Some(_) => return Err(Error::corrupt(&streams, 0, "`streams` is not a directory")),
    }
    Ok(())
}

/// Streams a store opens one after another; above this many, `Store::open`
/// opens them on several threads (their directories are independent), so a
/// store of thousands of streams opens in a fraction of the time. Below it
/// the order of file operations stays the same at every open.
const PARALLEL_OPEN_STREAMS: usize = 32;

/// Runs `open` for every item, on up to `available_parallelism` threads
/// (8 at most) when there are more than [`PARALLEL_OPEN_STREAMS`]; returns
/// the results in item order, or the error of the first item that failed.
/// Each item's findings go to its own report, merged into `report` in item
/// order.
fn open_all<T: Sync, R: Send>(
    items: &[T],
    report: &mut RecoveryReport,
    open: impl Fn(&T, &mut RecoveryReport) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if items.len() <= PARALLEL_OPEN_STREAMS || threads < 2 {
        return items.iter().map(|i| open(i, report)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let mut done: Vec<(usize, Result<R>, RecoveryReport)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= items.len() || failed.load(std::sync::atomic::Ordering::Relaxed) {
                            return out;
                        }
                        let mut r = RecoveryReport::default();
                        let result = open(&items[i], &mut r);
                        if result.is_err() {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        out.push((i, result, r));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_by_key(|(i, _, _)| *i);
    let mut out = Vec::with_capacity(items.len());
    for (_, result, r) in done {
        report.merge(r);
        out.push(result?);
    }
    Ok(out)
}
