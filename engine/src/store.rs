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
use crate::request::Router;
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
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    /// This store, for the stream handles it gives out.
    me: Weak<StoreInner>,
    ctx: Arc<Ctx>,
    blobs: Arc<Blobs>,
    /// Request routers, one per reply stream in use.
    routers: Mutex<HashMap<String, Arc<Router>>>,
    streams: RwLock<BTreeMap<String, Arc<StreamInner>>>,
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
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Store> {
        let started = Instant::now();
        options.validate()?;
        let vfs: Arc<dyn Vfs> = options.vfs.clone().unwrap_or_else(|| Arc::new(RealFs));
        let root = path.as_ref().to_path_buf();
        io::create_dir_all(&*vfs, &root)?;
        let lock = vfs.lock(&root.join(LOCK_FILE)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: root.clone() }
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
            inner.apply_retention()?;
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
            streams: RwLock::new(streams),
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
            let store = Arc::downgrade(&inner);
            background::spawn(inner.ctx.syncer.clone(), every, move || {
                store.upgrade().map(|s| s.sync())
            });
        }
        Ok(Store { inner })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.ctx.root
    }

    /// What recovery found and did while opening.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Gets the stream `name`, creating it with the default configuration if
    /// it does not exist.
    pub fn stream(&self, name: &str) -> Result<Stream> {
        self.inner.stream(name)
    }

    /// Creates the stream `name` with `config`; fails with
    /// [`Error::StreamExists`] if it exists. Creation is atomic: after a
    /// crash the stream either exists whole or not at all.
    pub fn create_stream(&self, name: &str, config: StreamConfig) -> Result<Stream> {
        name::validate(name)?;
        config.validate()?;
        self.inner.create(name, config, true)
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

    /// Makes everything sent to any stream so far durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Waits up to `timeout` for the reply to the request with
    /// `correlation_id` on the stream `reply_to` (see
    /// [`Stream::send_request`]); acknowledges and returns it. Replies are
    /// durable: this also works for a request sent before a restart.
    pub fn wait_reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        timeout: std::time::Duration,
    ) -> Result<Record> {
        self.inner.wait_reply(reply_to, correlation_id, timeout)
    }

    /// True after a failed sync: nothing more is acknowledged; reopen the
    /// store to recover.
    pub fn is_poisoned(&self) -> bool {
        self.inner.ctx.is_poisoned()
    }

    /// Syncs and closes this handle. The store is unlocked once every clone
    /// and stream handle is gone: if this is the last, when `close` returns
    /// (a background sync in progress is waited for, so that it is not the
    /// one to let go last). A last handle that is merely dropped while a
    /// background sync runs leaves the store locked until that sync ends.
    pub fn close(self) -> Result<()> {
        let Store { inner } = self;
        let result = inner.sync();
        let syncer = inner.ctx.syncer.clone();
        let _quiet = syncer.hold_off();
        drop(inner);
        result
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

    /// Removes the blobs no retained message refers to any more.
    fn collect_blobs(&self) -> Result<usize> {
        if !self.blobs.exists() {
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
        let stream = self.stream(reply_to)?;
        let router = self
            .routers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reply_to.to_string())
            .or_insert_with(|| {
                let store: Weak<dyn Streams> = self.me.clone();
                Arc::new(Router::new(stream.inner().clone(), store))
            })
            .clone();
        drop(stream);
        router.wait(correlation_id, timeout)
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
        self.ctx.check()?;
        let _g = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
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
        self.ctx.check()?;
        let streams: Vec<Arc<StreamInner>> = self
            .streams
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
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.ctx.syncer.stop();
        if !self.ctx.is_poisoned() {
            // Best effort: a caller who wants the error calls `close`.
            // Every send has returned and its message is durable now, so
            // no blob can be an orphan: the next open need not look.
            if self.sync().is_ok() {
                let _ = self.blobs.clear_pending();
            }
        }
    }
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
