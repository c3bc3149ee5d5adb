//! The store: a locked directory holding streams.

use crate::blob::Blobs;
use crate::consumer;
use crate::ctx::{random_u64, Ctx};
use crate::format::meta;
use crate::io::{self, real::RealFs, EntryKind, Vfs};
use crate::layout::{self, LOCK_FILE, STORE_META_FILE, STREAMS_DIR, STREAM_META_FILE};
use crate::log::Bucket;
use crate::notify::Notify;
use crate::options::{Durability, Options, StreamConfig};
use crate::report::RecoveryReport;
use crate::request::Router;
use crate::stream::{Stream, StreamInner};
use crate::{name, Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
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
        options.validate()?;
        let vfs: Arc<dyn Vfs> = options.vfs.clone().unwrap_or_else(|| Arc::new(RealFs));
        let root = path.as_ref().to_path_buf();
        create_dir_all(&*vfs, &root)?;
        let lock = vfs.lock(&root.join(LOCK_FILE)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: root.clone() }
            } else {
                Error::io("lock", root.join(LOCK_FILE), e)
            }
        })?;
        let ctx = Arc::new(Ctx::new(vfs.clone(), options, root.clone(), lock));
        init_layout(&*vfs, &root)?;
        let mut report = RecoveryReport::default();
        let blobs = Arc::new(Blobs::new(ctx.clone()));
        let streams_dir = root.join(STREAMS_DIR);
        let mut streams = BTreeMap::new();
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
                remove_dir_all(&*vfs, &dir)?;
                vfs.sync_dir(&streams_dir)
                    .map_err(|e| Error::io("sync directory", &streams_dir, e))?;
                report.removed_incomplete_streams.push(dir);
                continue;
            }
            if name::validate(&e.name).is_err() {
                continue;
            }
            if let Some(inner) = open_stream(&ctx, &blobs, &e.name, &dir, &mut report)? {
                inner.apply_retention()?;
                streams.insert(e.name.clone(), Arc::new(inner));
            }
        }
        // Blobs that no retained message refers to: orphans of a crash
        // between writing a blob and appending its reference, or left by a
        // crash during collection.
        if blobs.exists() {
            let mut refs = HashSet::new();
            for s in streams.values() {
                s.blob_refs(&mut refs)?;
            }
            report.removed_orphan_blobs = blobs.collect(&refs)?;
        }
        let inner = Arc::new(StoreInner {
            ctx,
            blobs,
            routers: Mutex::new(HashMap::new()),
            streams: RwLock::new(streams),
            create_lock: Mutex::new(()),
            report,
        });
        if inner.ctx.opts.background_thread() {
            let every = match inner.ctx.opts.durability {
                Durability::Interval(every) => Some(every),
                _ => None,
            };
            spawn_syncer(Arc::downgrade(&inner), every);
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
        stream_of(&self.inner, name)
    }

    /// Creates the stream `name` with `config`; fails with
    /// [`Error::StreamExists`] if it exists. Creation is atomic: after a
    /// crash the stream either exists whole or not at all.
    pub fn create_stream(&self, name: &str, config: StreamConfig) -> Result<Stream> {
        name::validate(name)?;
        config.validate()?;
        create(&self.inner, name, config, true)
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
    ) -> Result<crate::Record> {
        wait_reply(&self.inner, reply_to, correlation_id, timeout)
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

/// Waits for a reply through the router of `reply_to`.
pub(crate) fn wait_reply(
    store: &Arc<StoreInner>,
    reply_to: &str,
    correlation_id: &str,
    timeout: std::time::Duration,
) -> Result<crate::Record> {
    let stream = stream_of(store, reply_to)?;
    let router = {
        let mut routers = store.routers.lock().unwrap_or_else(|e| e.into_inner());
        routers
            .entry(reply_to.to_string())
            .or_insert_with(|| {
                let inner = store
                    .streams
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(reply_to)
                    .cloned()
                    .expect("stream_of created it");
                Arc::new(Router::new(inner, Arc::downgrade(store)))
            })
            .clone()
    };
    drop(stream);
    router.wait(correlation_id, timeout)
}

/// Gets the stream `name` of a store, creating it with the default
/// configuration if it does not exist.
pub(crate) fn stream_of(store: &Arc<StoreInner>, name: &str) -> Result<Stream> {
    name::validate(name)?;
    if let Some(s) = get(store, name) {
        return Ok(s);
    }
    create(store, name, StreamConfig::default(), false)
}

fn get(store: &Arc<StoreInner>, name: &str) -> Option<Stream> {
    let inner = store
        .streams
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()?;
    Some(Stream::from_inner(inner, store.clone()))
}

fn create(
    store: &Arc<StoreInner>,
    name: &str,
    config: StreamConfig,
    must_be_new: bool,
) -> Result<Stream> {
    let ctx = &store.ctx;
    ctx.check()?;
    let _g = store.create_lock.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = get(store, name) {
        if must_be_new {
            return Err(Error::StreamExists {
                name: name.to_string(),
            });
        }
        return Ok(s);
    }
    let vfs = &*ctx.vfs;
    let streams_dir = ctx.root.join(STREAMS_DIR);
    let tmp = streams_dir.join(layout::tmp_dir_name(name, random_u64()));
    let io_err = |op, p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(op, p, e)
    };
    vfs.create_dir(&tmp)
        .map_err(io_err("create directory", &tmp))?;
    let body = postcard::to_allocvec(&config).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    io::write_file_atomic(
        vfs,
        &tmp,
        STREAM_META_FILE,
        &meta::encode(meta::STREAM_META_MAGIC, meta::STREAM_META_VERSION, &body),
    )?;
    for p in 0..config.priorities {
        let d = tmp.join(layout::bucket_dir_name(p));
        vfs.create_dir(&d).map_err(io_err("create directory", &d))?;
    }
    ctx.sync_dir(&tmp)?;
    let dir = streams_dir.join(name);
    vfs.rename(&tmp, &dir).map_err(io_err("rename", &tmp))?;
    ctx.sync_dir(&streams_dir)?;
    let mut report = RecoveryReport::default();
    let inner = open_stream(ctx, &store.blobs, name, &dir, &mut report)?.ok_or_else(|| {
        Error::corrupt(
            dir.join(STREAM_META_FILE),
            0,
            "stream vanished after creation",
        )
    })?;
    let inner = Arc::new(inner);
    store
        .streams
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), inner.clone());
    Ok(Stream::from_inner(inner, store.clone()))
}

impl StoreInner {
    /// Removes the blobs no retained message refers to any more.
    pub(crate) fn collect_blobs(&self) -> Result<usize> {
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
            let _ = self.sync();
        }
    }
}

/// Starts the background threads: one syncs the store every `every`
/// (`Durability::Interval`) and whenever a bucket asks for writeback (see
/// `Options::writeback_bytes`); the other faults segment space in ahead of
/// the writer. Without them (spawning failed), `Interval` degrades to
/// `Never` until `sync` and the writer takes its own page faults; there is no
/// error channel from `open` for this rare case.
fn spawn_syncer(store: Weak<StoreInner>, every: Option<Duration>) {
    let Some(syncer) = store.upgrade().map(|s| s.ctx.syncer.clone()) else {
        return;
    };
    let prefaulter = syncer.clone();
    let _ = std::thread::Builder::new()
        .name("spool-prefault".into())
        .spawn(move || {
            while let Some(work) = prefaulter.wait_prefault() {
                for (map, range) in work {
                    map.prefault(range);
                }
            }
        });
    let _ = std::thread::Builder::new()
        .name("spool-sync".into())
        .spawn(move || loop {
            let due = every.map(|d| Instant::now() + d);
            if !syncer.wait_sync(due) {
                return;
            }
            // `Store::close` holds this off while it lets go of its handle,
            // so that the last reference is never this thread's then.
            let _running = syncer.hold_off();
            let Some(inner) = store.upgrade() else { return };
            if inner.sync().is_err() {
                // Poisoned: later sends report it; nothing more to do here.
                return;
            }
        });
}

/// Opens one stream directory; `None` if it is not a stream (no meta file
/// and no bucket directories: someone else's directory).
fn open_stream(
    ctx: &Arc<Ctx>,
    blobs: &Arc<Blobs>,
    name: &str,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<Option<StreamInner>> {
    let vfs = &*ctx.vfs;
    let meta_path = dir.join(STREAM_META_FILE);
    let body = io::read_framed(
        vfs,
        &meta_path,
        meta::STREAM_META_MAGIC,
        meta::STREAM_META_VERSION,
        meta::META_BODY_BYTES_MAX,
        "stream config",
    )?;
    let Some(body) = body else {
        let has_buckets = vfs
            .read_dir(dir)
            .map_err(|e| Error::io("list", dir, e))?
            .iter()
            .any(|e| e.kind == EntryKind::Dir && layout::parse_bucket_dir(&e.name).is_some());
        if has_buckets {
            return Err(Error::corrupt(&meta_path, 0, "stream config missing"));
        }
        return Ok(None);
    };
    let config: StreamConfig = postcard::from_bytes(&body).map_err(|e| {
        Error::corrupt(
            &meta_path,
            meta::BODY_OFFSET as u64,
            format!("stream config: {e}"),
        )
    })?;
    config
        .validate()
        .map_err(|e| Error::corrupt(&meta_path, meta::BODY_OFFSET as u64, e.to_string()))?;
    let mut buckets = Vec::with_capacity(config.priorities as usize);
    for p in 0..config.priorities {
        let bdir = dir.join(layout::bucket_dir_name(p));
        if vfs.kind(&bdir).map_err(|e| Error::io("stat", &bdir, e))? != Some(EntryKind::Dir) {
            return Err(Error::corrupt(&bdir, 0, "bucket directory missing"));
        }
        buckets.push(Bucket::open(ctx, name, p, &bdir, report)?);
    }
    let stream = StreamInner {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config,
        buckets,
        ctx: ctx.clone(),
        notify: Notify::default(),
        consumers: RwLock::new(BTreeMap::new()),
        consumer_create: Mutex::new(()),
        blobs: blobs.clone(),
    };
    // Consumers: every directory under `consumers/` with a valid name.
    let cdir = dir.join(layout::CONSUMERS_DIR);
    if vfs.kind(&cdir).map_err(|e| Error::io("stat", &cdir, e))? == Some(EntryKind::Dir) {
        let mut opened = BTreeMap::new();
        for e in vfs
            .read_dir(&cdir)
            .map_err(|e| Error::io("list", &cdir, e))?
        {
            if e.kind != EntryKind::Dir {
                continue;
            }
            let path = cdir.join(&e.name);
            if layout::is_tmp_dir(&e.name) {
                remove_dir_all(vfs, &path)?;
                vfs.sync_dir(&cdir)
                    .map_err(|e| Error::io("sync directory", &cdir, e))?;
                report.removed_incomplete_streams.push(path);
                continue;
            }
            if name::validate(&e.name).is_err() {
                continue;
            }
            let c = consumer::open(ctx, &stream, &e.name, &path)?;
            opened.insert(e.name.clone(), Arc::new(c));
        }
        *stream.consumers.write().unwrap_or_else(|e| e.into_inner()) = opened;
    }
    Ok(Some(stream))
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

/// Creates `path` and missing parents, syncing each parent.
fn create_dir_all(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    match vfs.kind(path).map_err(|e| Error::io("stat", path, e))? {
        Some(EntryKind::Dir) => return Ok(()),
        Some(_) => {
            return Err(Error::InvalidConfig(format!(
                "{} exists and is not a directory",
                path.display()
            )))
        }
        None => {}
    }
    let parent: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir_all(vfs, &parent)?;
    match vfs.create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io("create directory", path, e)),
    }
    vfs.sync_dir(&parent)
        .map_err(|e| Error::io("sync directory", &parent, e))
}

/// Removes a directory tree that Spool created (plain files and directories
/// only; anything else is left and makes this fail).
fn remove_dir_all(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    for e in vfs.read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let p = dir.join(&e.name);
        match e.kind {
            EntryKind::Dir => remove_dir_all(vfs, &p)?,
            _ => vfs
                .remove_file(&p)
                .map_err(|e| Error::io("remove", &p, e))?,
        }
    }
    vfs.remove_dir(dir)
        .map_err(|e| Error::io("remove directory", dir, e))
}
