//! Claim checks: large payloads stored once, as content-addressed files.
//!
//! A blob is written to `blobs/tmp/<random>.tmp` while it is hashed
//! (BLAKE3), synced, renamed to `blobs/<first 2 hex digits>/<64 hex digits>`
//! and that directory synced; only then does a message refer to it. Identical
//! payloads share one file. A reference is parsed into a fixed 32-byte hash
//! before any path is built from it, and blob files are opened without
//! following symlinks and must be regular files.
//!
//! Garbage collection: a blob is removed when no retained segment refers to
//! it (every sealed segment's index lists its references; active segments are
//! scanned). Senders hold the collection lock shared from writing the blob to
//! appending the reference, the collector holds it exclusively, so a blob
//! about to be referenced is never collected. A crash between writing a blob
//! and appending its reference leaves an orphan, removed at the next open.

use crate::ctx::{random_u64, Ctx};
use crate::io::{EntryKind, MapMemory, OpenMode, SharedMap, Vfs};
use crate::layout::{self, BLOBS_DIR, BLOBS_PENDING_DIR, BLOBS_TMP_DIR};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};

const CHUNK: usize = 1 << 20;

/// A reference to a claim-checked payload: its BLAKE3 hash and length.
///
/// ```
/// use spool::{Options, Store, StreamConfig};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let config = StreamConfig::default().claim_check_threshold(1024);
///     let files = store.create_stream("files", config)?;
///     let small = files.send(b"tiny")?;
///     let large = files.send(&[9; 4096])?;
///
///     assert!(files.read(small)?.unwrap().claim_check().is_none()); // in the log
///     let cc = files.read(large)?.unwrap().claim_check().expect("over the threshold");
///     assert_eq!(cc.len, 4096);
///     assert_eq!(cc.hash, *blake3::hash(&[9; 4096]).as_bytes());
///     assert_eq!(cc.hex().len(), 64);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimCheck {
    /// BLAKE3 hash of the payload.
    pub hash: [u8; 32],
    /// Payload length in bytes.
    pub len: u64,
}

impl ClaimCheck {
    /// The hash as 64 lowercase hex digits (the blob's file name).
    pub fn hex(&self) -> String {
        layout::hash_hex(&self.hash)
    }
}

/// The pending mark of a new blob whose message is not appended yet (see
/// [`Blobs::put_reader`]). Settle it once the message is appended (and, with
/// `Durability::Always`, synced); dropped unsettled, the mark stays and the
/// next open looks for orphans.
#[derive(Debug)]
#[must_use = "settle the mark once the message is appended"]
pub(crate) struct Pending {
    mark: Option<(Arc<dyn Vfs>, PathBuf)>,
}

impl Pending {
    /// The message is appended: the blob is referred to. The mark's removal
    /// needs no sync (a mark that comes back only costs an orphan search).
    pub(crate) fn settle(self) {
        if let Some((vfs, path)) = self.mark {
            let _ = vfs.remove_file(&path);
        }
    }
}

/// A blob's bytes, mapped and verified against its hash.
#[derive(Debug)]
pub(crate) struct BlobBytes {
    map: Arc<SharedMap>,
}

impl BlobBytes {
    /// The payload.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.get(0..self.map.len()).unwrap_or(&[])
    }
}

/// The blob store of one open store.
#[derive(Debug)]
pub(crate) struct Blobs {
    ctx: Arc<Ctx>,
    dir: PathBuf,
    gc: RwLock<()>,
    verified: Mutex<HashMap<[u8; 32], Weak<BlobBytes>>>,
    /// Blob directories this process made durable (see `ensure_dir`).
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl Blobs {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Blobs {
        let dir = ctx.root.join(BLOBS_DIR);
        Blobs {
            ctx,
            dir,
            gc: RwLock::new(()),
            verified: Mutex::new(HashMap::new()),
            durable_dirs: Mutex::new(HashSet::new()),
        }
    }

    /// Path of the blob with `hash`.
    pub(crate) fn path(&self, hash: &[u8; 32]) -> PathBuf {
        layout::blob_path(&self.dir, hash)
    }

    /// Held (shared) by a sender from writing a blob until its reference is
    /// appended.
    pub(crate) fn hold(&self) -> RwLockReadGuard<'_, ()> {
        self.gc.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure `dir` (the blob directory or one below it) exists and its
    /// entry is durable. One found in place that this process has not made
    /// durable may be left by a call that failed (or a process that died)
    /// before its directory sync, or be another sender's that is not synced
    /// yet: its parent is synced before it is used, once per process.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir == self.ctx.root
            || self
                .durable_dirs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(dir)
        {
            return Ok(());
        }
        let vfs = &*self.ctx.vfs;
        let parent = dir.parent().unwrap_or(dir);
        self.ensure_dir(parent)?;
        let d = self.ctx.open_dir(parent)?;
        match vfs.kind(dir).map_err(|e| Error::io("stat", dir, e))? {
            Some(EntryKind::Dir) => {}
            Some(_) => return Err(Error::corrupt(dir, 0, "expected a directory")),
            None => match vfs.create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create directory", dir, e)),
            },
        }
        d.sync()?;
        self.durable_dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf());
        Ok(())
    }

    /// Stores everything `reader` yields as a blob (bounded memory), durably.
    ///
    /// A new blob file is marked pending (`blobs/pending/`, durably) before
    /// it is renamed into place; the caller settles the mark once the
    /// message referring to it is appended. An open that finds a mark looks
    /// for orphans (a crash or a failed send came in between); one that
    /// finds none need not read any segment's references.
    pub(crate) fn put_reader(&self, mut reader: impl Read) -> Result<(ClaimCheck, Pending)> {
        self.ctx.check()?;
        let vfs = &*self.ctx.vfs;
        let tmp_dir = self.dir.join(BLOBS_TMP_DIR);
        self.ensure_dir(&tmp_dir)?;
        let tmp = tmp_dir.join(layout::blob_tmp_name(random_u64()));
        let f = vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| Error::io("create blob", &tmp, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0u64;
        let result = (|| -> Result<()> {
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read payload", &tmp, e)),
                };
                hasher.update(&buf[..n]);
                f.write_all_at(&buf[..n], len)
                    .map_err(|e| Error::io("write blob", &tmp, e))?;
                len += n as u64;
            }
            if let Err(e) = f.sync() {
                self.ctx.poison("sync blob", Some(&tmp), &e);
                return Err(Error::io("sync blob", &tmp, e));
            }
            Ok(())
        })();
        drop(f);
        if let Err(e) = result {
            let _ = vfs.remove_file(&tmp);
            return Err(e);
        }
        let hash: [u8; 32] = *hasher.finalize().as_bytes();
        let target = self.path(&hash);
        let sub = target.parent().unwrap_or(&self.dir).to_path_buf();
        let cc = ClaimCheck { hash, len };
        let mut pending = Pending { mark: None };
        if self.cached(&hash).is_some() || self.intact(&target, &cc) {
            // Stored before and intact: keep one copy.
            vfs.remove_file(&tmp)
                .map_err(|e| Error::io("remove", &tmp, e))?;
            // Its sender may not have synced its directory yet.
            self.ensure_dir(&sub)?;
            self.ctx.sync_dir(&sub)?;
        } else {
            pending = self.mark_pending(&hash)?;
            // New, or a copy that is damaged (or not a file): the one just
            // written, which matches its name, takes its place, so that an
            // acknowledged claim check is always readable.
            self.ensure_dir(&sub)?;
            let d = self.ctx.open_dir(&sub);
            if d.is_err() {
                let _ = vfs.remove_file(&tmp);
            }
            let d = d?;
            vfs.rename(&tmp, &target)
                .map_err(|e| Error::io("rename", &tmp, e))?;
            d.sync()?;
        }
        Ok((cc, pending))
    }

    /// A pending mark that says only "a collection is due" (of the zero
    /// hash, which no blob has), made durably before a stream's deletion or
    /// purge removes references to blobs: a crash before the collection
    /// that follows leaves the mark, and the next open collects. `None`
    /// when the store has no blobs.
    pub(crate) fn mark_collection_due(&self) -> Result<Option<Pending>> {
        if !self.present()? {
            return Ok(None);
        }
        self.mark_pending(&[0; 32]).map(Some)
    }

    /// Whether a mark of [`Blobs::mark_collection_due`] is left (the
    /// collection after it failed).
    pub(crate) fn collection_due(&self) -> Result<bool> {
        let dir = self.dir.join(BLOBS_PENDING_DIR);
        if self
            .ctx
            .vfs
            .kind(&dir)
            .map_err(|e| Error::io("stat", &dir, e))?
            != Some(EntryKind::Dir)
        {
            return Ok(false);
        }
        let zero = layout::hash_hex(&[0; 32]);
        Ok(self
            .ctx
            .vfs
            .read_dir(&dir)
            .map_err(|e| Error::io("list", &dir, e))?
            .iter()
            .any(|e| e.name.starts_with(&zero)))
    }

    /// Marks the blob of `hash` pending, durably.
    fn mark_pending(&self, hash: &[u8; 32]) -> Result<Pending> {
        let dir = self.dir.join(BLOBS_PENDING_DIR);
        self.ensure_dir(&dir)?;
        let path = dir.join(layout::pending_mark_name(hash, random_u64()));
        self.ctx
            .vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &path, e))?;
        self.ctx.sync_dir(&dir)?;
        Ok(Pending {
            mark: Some((self.ctx.vfs.clone(), path)),
        })
    }

    /// Whether a blob was stored for a message that may not have been
    /// appended (a mark was left pending): only then can orphans exist.
    pub(crate) fn has_pending(&self) -> Result<bool> {
        let dir = self.dir.join(BLOBS_PENDING_DIR);
        match self
            .ctx
            .vfs
            .kind(&dir)
            .map_err(|e| Error::io("stat", &dir, e))?
        {
            Some(EntryKind::Dir) => Ok(!self
                .ctx
                .vfs
                .read_dir(&dir)
                .map_err(|e| Error::io("list", &dir, e))?
                .is_empty()),
            _ => Ok(false),
        }
    }

    /// Removes the pending marks: after orphans were collected (at open),
    /// or when the store closes with every message durable. The directory
    /// is synced, though a mark that comes back only makes a later open look
    /// for orphans again.
    pub(crate) fn clear_pending(&self) -> Result<()> {
        let dir = self.dir.join(BLOBS_PENDING_DIR);
        if self
            .ctx
            .vfs
            .kind(&dir)
            .map_err(|e| Error::io("stat", &dir, e))?
            != Some(EntryKind::Dir)
        {
            return Ok(());
        }
        for e in self
            .ctx
            .vfs
            .read_dir(&dir)
            .map_err(|e| Error::io("list", &dir, e))?
        {
            let p = dir.join(&e.name);
            if e.kind == EntryKind::File {
                self.ctx
                    .vfs
                    .remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        // Also makes durable the removals of marks settled since the last
        // sync of the directory.
        self.ctx.sync_dir(&dir)
    }

    /// Removes blobs left half-written by a crash (`blobs/tmp/`).
    pub(crate) fn sweep_tmp(&self) -> Result<()> {
        let tmp = self.dir.join(BLOBS_TMP_DIR);
        if self
            .ctx
            .vfs
            .kind(&tmp)
            .map_err(|e| Error::io("stat", &tmp, e))?
            != Some(EntryKind::Dir)
        {
            return Ok(());
        }
        for e in self
            .ctx
            .vfs
            .read_dir(&tmp)
            .map_err(|e| Error::io("list", &tmp, e))?
        {
            if e.kind == EntryKind::File && layout::is_blob_tmp(&e.name) {
                let p = tmp.join(&e.name);
                self.ctx
                    .vfs
                    .remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        Ok(())
    }

    /// Whether the blob file at `path` is a regular file holding exactly
    /// the payload of `cc` (read back and hashed; only when a send stores a
    /// payload that is already there).
    fn intact(&self, path: &Path, cc: &ClaimCheck) -> bool {
        let Ok(f) = self.ctx.vfs.open(path, OpenMode::ReadOnly) else {
            return false;
        };
        if f.len().ok() != Some(cc.len) {
            return false;
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK.min(cc.len as usize).max(1)];
        let mut at = 0u64;
        while at < cc.len {
            match f.read_at(&mut buf, at) {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    at += n as u64;
                }
            }
        }
        hasher.finalize().as_bytes() == &cc.hash
    }

    /// The blob of `hash` if it is mapped and verified already (no I/O).
    pub(crate) fn cached(&self, hash: &[u8; 32]) -> Option<Arc<BlobBytes>> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .and_then(Weak::upgrade)
    }

    /// Maps the blob of `cc` and verifies it (once per process while mapped).
    pub(crate) fn load(&self, cc: &ClaimCheck) -> Result<Arc<BlobBytes>> {
        if let Some(b) = self.cached(&cc.hash) {
            return Ok(b);
        }
        let path = self.path(&cc.hash);
        let f = self
            .ctx
            .vfs
            .open(&path, OpenMode::ReadOnly)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::corrupt(&path, 0, "claim-check blob is missing")
                }
                _ => Error::io("open blob", &path, e),
            })?;
        let len = f.len().map_err(|e| Error::io("stat", &path, e))?;
        if len != cc.len {
            return Err(Error::corrupt(
                &path,
                len.min(cc.len),
                format!("blob has {len} bytes, its reference says {}", cc.len),
            ));
        }
        let mem: MapMemory = f.map_read(len).map_err(|e| Error::io("map", &path, e))?;
        let map = SharedMap::read_only(mem);
        let bytes = map.get(0..map.len()).unwrap_or(&[]);
        if blake3::hash(bytes).as_bytes() != &cc.hash {
            return Err(Error::corrupt(
                &path,
                0,
                "claim-check blob does not match its hash",
            ));
        }
        let b = Arc::new(BlobBytes { map });
        let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|_, w| w.strong_count() > 0);
        v.insert(cc.hash, Arc::downgrade(&b));
        Ok(b)
    }

    /// Removes every blob not in `referenced`, and leftover temporary files
    /// (at open, when nothing else runs). Returns the number removed.
    pub(crate) fn collect(&self, referenced: &HashSet<[u8; 32]>) -> Result<usize> {
        self.collect_with(|refs| {
            refs.extend(referenced.iter().copied());
            Ok(())
        })
    }

    /// Takes the collection lock exclusively, gathers the references with
    /// `gather`, and removes every other blob.
    pub(crate) fn collect_with(
        &self,
        gather: impl FnOnce(&mut HashSet<[u8; 32]>) -> Result<()>,
    ) -> Result<usize> {
        let _g = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let mut referenced = HashSet::new();
        gather(&mut referenced)?;
        let referenced = &referenced;
        let vfs = &*self.ctx.vfs;
        if vfs
            .kind(&self.dir)
            .map_err(|e| Error::io("stat", &self.dir, e))?
            != Some(EntryKind::Dir)
        {
            return Ok(0);
        }
        let mut removed = 0;
        for sub in vfs
            .read_dir(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?
        {
            let sub_path = self.dir.join(&sub.name);
            if sub.kind != EntryKind::Dir {
                continue;
            }
            if sub.name == BLOBS_TMP_DIR {
                for e in vfs
                    .read_dir(&sub_path)
                    .map_err(|e| Error::io("list", &sub_path, e))?
                {
                    if e.kind == EntryKind::File && layout::is_blob_tmp(&e.name) {
                        let p = sub_path.join(&e.name);
                        vfs.remove_file(&p)
                            .map_err(|e| Error::io("remove", &p, e))?;
                    }
                }
                continue;
            }
            if !layout::is_blob_shard(&sub.name) {
                continue;
            }
            // Opened before the first removal, to sync the removals.
            let mut d = None;
            for e in vfs
                .read_dir(&sub_path)
                .map_err(|e| Error::io("list", &sub_path, e))?
            {
                let Some(hash) = layout::parse_blob_name(&sub.name, &e.name) else {
                    continue;
                };
                if e.kind != EntryKind::File || referenced.contains(&hash) {
                    continue;
                }
                if d.is_none() {
                    d = Some(self.ctx.open_dir(&sub_path)?);
                }
                let p = sub_path.join(&e.name);
                vfs.remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
                removed += 1;
            }
            if let Some(d) = d {
                d.sync()?;
            }
        }
        Ok(removed)
    }

    /// [`Blobs::exists`], with the error of a failed look.
    pub(crate) fn present(&self) -> Result<bool> {
        Ok(self
            .ctx
            .vfs
            .kind(&self.dir)
            .map_err(|e| Error::io("stat", &self.dir, e))?
            == Some(EntryKind::Dir))
    }

    /// Whether any blob may exist (skips collection work for stores that
    /// never used claim checks).
    pub(crate) fn exists(&self) -> bool {
        matches!(self.ctx.vfs.kind(&self.dir), Ok(Some(EntryKind::Dir)))
    }
}
