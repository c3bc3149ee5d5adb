//! What every part of an open store shares: the file system, the options,
//! the poisoned and closed flags, and the store's lock; the `store poisoned`
//! and `slow sync` events ([`crate::events`]).

use crate::background::Syncer;
use crate::events;
use crate::io::{DirEntry, EntryKind, LockGuard, MapMemory, OpenMode, VDir, VFile, Vfs};
use crate::options::Options;
use crate::{Error, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Shared state of one open store.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The store's file system, through [`Poisoning`]: a failed directory
    /// sync poisons the store whoever asked for it (an atomic small-file
    /// write of `io`, a bucket's open, [`Ctx::open_dir`]), and every file
    /// and directory sync is timed ([`Ctx::timed_sync`]).
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) opts: Options,
    pub(crate) root: PathBuf,
    /// [`POISONED`] and [`CLOSED`] bits: one load tells an operation
    /// whether it may go on.
    flags: AtomicU8,
    /// A sync that takes this long on [`SYNC_CLOCK`] (nanoseconds) is
    /// reported: [`Options::slow_sync_threshold`] plus the clock's
    /// resolution, so that a sync reported really took the threshold.
    slow_sync_ns: u64,
    /// Wakes the background sync thread, if the store runs one (which holds
    /// this and not the context, so that it never keeps the store locked).
    pub(crate) syncer: Arc<Syncer>,
    /// Held while anything of the store is alive (streams keep the store
    /// locked after the `Store` handle is dropped), until `Store::close`
    /// lets it go.
    lock: Mutex<Option<Box<dyn LockGuard>>>,
    /// Deadlines of waiting futures (a thread, started when first used).
    pub(crate) timer: Arc<crate::wake::Timer>,
    /// Blocking steps of futures: syncs (a thread, started when first used).
    pub(crate) worker: Arc<crate::wake::Worker>,
}

/// A sync failed: nothing may be acknowledged any more.
const POISONED: u8 = 1;
/// `Store::close` was called: every operation fails with `Closed`.
const CLOSED: u8 = 2;

impl Ctx {
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        opts: Options,
        root: PathBuf,
        lock: Box<dyn LockGuard>,
    ) -> Arc<Ctx> {
        register_lock(&root, true);
        let resolution = rustix::time::clock_getres(SYNC_CLOCK);
        let slow_sync_ns = nanos(opts.slow_sync).saturating_add(timespec_ns(resolution));
        Arc::new_cyclic(|me| Ctx {
            vfs: Arc::new(Poisoning {
                inner: vfs,
                ctx: me.clone(),
            }),
            slow_sync_ns,
            opts,
            root,
            flags: AtomicU8::new(0),
            syncer: Arc::default(),
            lock: Mutex::new(Some(lock)),
            timer: Arc::default(),
            worker: Arc::default(),
        })
    }

    /// Fails with [`Error::Closed`] once the store is closed, with
    /// [`Error::Poisoned`] once a sync has failed. Every write checks it
    /// under the lock that orders it (a bucket's writer, a consumer's
    /// state, ...), so that once `Store::close` has taken each such lock
    /// after setting the flag, nothing of this process writes any more.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        match self.flags.load(Ordering::Acquire) {
            0 => Ok(()),
            f if f & CLOSED != 0 => Err(Error::Closed),
            _ => Err(Error::Poisoned),
        }
    }

    /// Fails with [`Error::Poisoned`] once a sync has failed; a closed store
    /// still syncs (`Store::close` makes everything durable after closing).
    #[inline]
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        if self.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// Marks the store poisoned: after a failed sync the kernel may have
    /// dropped dirty pages, so nothing may be acknowledged any more. The
    /// first call emits the `store poisoned` event: `what` failed on `path`
    /// (`None` where no file is known) with `error`.
    pub(crate) fn poison(
        &self,
        what: &'static str,
        path: Option<&Path>,
        error: &dyn std::fmt::Display,
    ) {
        if self.flags.fetch_or(POISONED, Ordering::AcqRel) & POISONED == 0 {
            poisoned_event(what, path, error);
        }
    }

    /// Runs `sync`, a sync of `path` (`what`: see [`crate::events`]), and
    /// emits the `slow sync` event if it took at least
    /// [`Options::slow_sync_threshold`] plus the resolution of
    /// [`SYNC_CLOCK`]: two readings of that clock (about 3 ns each, against
    /// 20 to 25 for `Instant::now` on this project's machine), which a sync
    /// costs in any case (tens of microseconds on a disk, a few hundred
    /// nanoseconds on tmpfs).
    #[inline]
    pub(crate) fn timed_sync<T>(
        &self,
        what: &'static str,
        path: &Path,
        sync: impl FnOnce() -> T,
    ) -> T {
        let start = sync_clock_ns();
        let r = sync();
        let took = sync_clock_ns().saturating_sub(start);
        if took >= self.slow_sync_ns {
            slow_sync_event(what, path, Duration::from_nanos(took), self.opts.slow_sync);
        }
        r
    }

    /// Marks the store closed (see [`Ctx::check`]).
    pub(crate) fn mark_closed(&self) {
        self.flags.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Whether the store is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Lets go of the store's lock (another process may open it now).
    pub(crate) fn unlock(&self) {
        if let Some(l) = self.lock.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(l);
            register_lock(&self.root, false);
        }
    }

    /// Opens directory `dir`, to sync it once it has been changed. Open it
    /// before changing it: a failure to open it (no descriptor left,
    /// [`Error::TooManyOpenFiles`]) is then an error of this call only,
    /// before anything changed, and poisons nothing.
    pub(crate) fn open_dir<'a>(&'a self, dir: &'a Path) -> Result<Dir<'a>> {
        let handle = self
            .vfs
            .open_dir(dir)
            .map_err(|e| Error::io("open directory", dir, e))?;
        Ok(Dir {
            ctx: self,
            path: dir,
            handle,
        })
    }

    /// Syncs directory `dir`: [`Ctx::open_dir`], then [`Dir::sync`].
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.open_dir(dir)?.sync()
    }

    /// Whether the store is poisoned.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.flags.load(Ordering::Acquire) & POISONED != 0
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// The stores this process holds locked (their directories as opened).
static LOCKED_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Records that this process took (`held`) or let go of the lock of the
/// store in `root`.
fn register_lock(root: &Path, held: bool) {
    let key = lock_key(root);
    let mut g = LOCKED_HERE.lock().unwrap_or_else(|e| e.into_inner());
    if held {
        g.push(key);
    } else if let Some(i) = g.iter().position(|p| *p == key) {
        g.swap_remove(i);
    }
}

/// Whether this process holds the lock of the store in `root`.
pub(crate) fn locked_by_this_process(root: &Path) -> bool {
    let key = lock_key(root);
    LOCKED_HERE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
}

/// The store directory as one name (resolved if it exists on the real file
/// system; a simulated one is taken as given).
fn lock_key(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// The store's file system as the engine sees it: every call goes to the
/// one given, and a failed directory sync poisons the store (DESIGN.md §4
/// rule 2), so that no path to a directory sync can forget it. Failing to
/// open the directory (no descriptor left) does not: nothing was changed.
#[derive(Debug)]
struct Poisoning {
    inner: Arc<dyn Vfs>,
    /// The context whose poison flag this sets (a `Weak`, since the context
    /// holds this; the flag stays a plain field the hot paths read).
    ctx: Weak<Ctx>,
}

/// A directory opened through [`Poisoning`].
#[derive(Debug)]
struct PoisoningDir {
    inner: Box<dyn VDir>,
    path: PathBuf,
    ctx: Weak<Ctx>,
}

impl VDir for PoisoningDir {
    fn sync(&self) -> std::io::Result<()> {
        let Some(ctx) = self.ctx.upgrade() else {
            return self.inner.sync();
        };
        ctx.timed_sync("directory", &self.path, || self.inner.sync())
            .inspect_err(|e| ctx.poison("sync directory", Some(&self.path), e))
    }
}

/// A file opened through [`Poisoning`]: its syncs are timed (a failed file
/// sync poisons where its caller says so: a temporary file that failed is
/// dropped, and nothing rests on it).
#[derive(Debug)]
struct TimedFile {
    inner: Arc<dyn VFile>,
    path: PathBuf,
    ctx: Weak<Ctx>,
}

impl VFile for TimedFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.allocate(len)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, pos)
    }
    fn sync(&self) -> std::io::Result<()> {
        match self.ctx.upgrade() {
            Some(ctx) => ctx.timed_sync("file", &self.path, || self.inner.sync()),
            None => self.inner.sync(),
        }
    }
    fn map_mut(&self, len: u64) -> std::io::Result<MapMemory> {
        self.inner.map_mut(len)
    }
    fn map_read(&self, len: u64) -> std::io::Result<MapMemory> {
        self.inner.map_read(len)
    }
    fn data_ranges(&self, range: Range<u64>) -> std::io::Result<Vec<Range<u64>>> {
        self.inner.data_ranges(range)
    }
    fn allocated_bytes(&self) -> std::io::Result<Option<u64>> {
        self.inner.allocated_bytes()
    }
}

impl Vfs for Poisoning {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<DirEntry>> {
        self.inner.read_dir(path)
    }
    fn kind(&self, path: &Path) -> std::io::Result<Option<EntryKind>> {
        self.inner.kind(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn VFile>> {
        Ok(Arc::new(TimedFile {
            inner: self.inner.open(path, mode)?,
            path: path.to_path_buf(),
            ctx: self.ctx.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn open_dir(&self, path: &Path) -> std::io::Result<Box<dyn VDir>> {
        Ok(Box::new(PoisoningDir {
            inner: self.inner.open_dir(path)?,
            path: path.to_path_buf(),
            ctx: self.ctx.clone(),
        }))
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn LockGuard>> {
        self.inner.lock(path)
    }
    fn lock_held(&self, path: &Path) -> std::io::Result<Option<bool>> {
        self.inner.lock_held(path)
    }
}

/// A directory opened to be synced (see [`Ctx::open_dir`]).
#[derive(Debug)]
pub(crate) struct Dir<'a> {
    ctx: &'a Ctx,
    path: &'a Path,
    handle: Box<dyn VDir>,
}

impl Dir<'_> {
    /// Makes the directory's entries durable. A failure poisons the store,
    /// as a failed file sync does: which of the directory's recent changes
    /// are durable is unknown then, and a later acknowledgement could rest
    /// on an entry (a stream, a consumer, a segment, a blob's directory)
    /// that a power cut takes away.
    pub(crate) fn sync(&self) -> Result<()> {
        self.handle.sync().map_err(|e| {
            self.ctx.poison("sync directory", Some(self.path), &e);
            Error::io("sync directory", self.path, e)
        })
    }
}

/// The clock of the slow-sync check: the kernel's coarse monotonic clock
/// where there is one (read from the vDSO without the time-stamp counter;
/// its resolution is one kernel tick, 4 ms on most kernels), else the
/// monotonic clock.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SYNC_CLOCK: rustix::time::ClockId = rustix::time::ClockId::MonotonicCoarse;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SYNC_CLOCK: rustix::time::ClockId = rustix::time::ClockId::Monotonic;

/// [`SYNC_CLOCK`] now, in nanoseconds.
#[inline]
fn sync_clock_ns() -> u64 {
    timespec_ns(rustix::time::clock_gettime(SYNC_CLOCK))
}

fn timespec_ns(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec.max(0) as u64)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The `store poisoned` event (cold: once per store at most).
#[cold]
fn poisoned_event(what: &'static str, path: Option<&Path>, error: &dyn std::fmt::Display) {
    let path = path.map(|p| p.display().to_string()).unwrap_or_default();
    tracing::error!(
        target: events::POISON,
        what,
        path = %path,
        error = %error,
        "store poisoned"
    );
}

/// The `slow sync` event.
#[cold]
fn slow_sync_event(what: &'static str, path: &Path, took: Duration, threshold: Duration) {
    tracing::warn!(
        target: events::SYNC,
        what,
        path = %path.display(),
        duration_us = crate::limits::micros_saturating(took),
        threshold_us = crate::limits::micros_saturating(threshold),
        "slow sync"
    );
}

/// Microseconds since the Unix epoch (0 if the clock is before it,
/// `u64::MAX` past the year 586,000: saturating, never wrapping).
///
/// Read straight from the vDSO: `SystemTime::now().duration_since(..)`
/// adds a checked subtraction and 128-bit conversions to every send.
pub(crate) fn now_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    if t.tv_sec < 0 {
        return 0;
    }
    (t.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add((t.tv_nsec as u64) / 1_000)
}

/// A random 64-bit id (segment ids).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source: fall back to time and address bits. Ids only
        // need to differ between segments of one store.
        let t = now_us();
        let a = &b as *const _ as u64;
        return t.rotate_left(17) ^ a ^ 0x9e37_79b9_7f4a_7c15;
    }
    u64::from_le_bytes(b)
}
