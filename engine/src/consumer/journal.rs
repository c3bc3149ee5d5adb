//! The consumer journal file: a memory-mapped, preallocated file of
//! records (see `format::journal`), and its checkpoint.
//!
//! Generations: the checkpoint names generation `g`; the journal of
//! generation `g` holds what happened since. Every open and every full
//! journal writes a new checkpoint (generation `g + 1`) and a new, empty
//! journal, then removes the old one. A journal is never appended to after
//! a restart, so stale bytes of a torn tail can never be read as new records.
//!
//! Sizes: the first journal of an open is small ([`first_bytes`]); each one
//! that fills up is followed by one twice its size, up to
//! `Options::consumer_journal_bytes`. An idle consumer holds 64 KiB, not
//! the whole journal size, and an open needs little space.

use crate::background::Syncer;
use crate::ctx::{random_u64, Ctx, Dir};
use crate::format::journal::{
    self, AckSet, Entry, JournalHeader, Record, JOURNAL_HEADER_BYTES, JOURNAL_RECORD_BYTES,
    JOURNAL_VERSION_1, JOURNAL_VERSION_2, JOURNAL_VERSION_3,
};
use crate::format::meta::{
    self, CHECKPOINT_BODY_BYTES_MAX, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, CHECKPOINT_VERSION_2,
    CHECKPOINT_VERSION_3,
};
use crate::io::map::HeapBuf;
use crate::io::{self, MapMemory, MapWriter, OpenMode, SharedMap};
use crate::layout::{self, CHECKPOINT_FILE};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest journal file read back (the largest `consumer_journal_bytes` option).
pub(crate) const JOURNAL_BYTES_LIMIT: u64 = 1 << 30;

/// An open journal being appended to.
#[derive(Debug)]
pub(crate) struct Journal {
    pub(crate) path: PathBuf,
    pub(crate) generation: u64,
    id: u64,
    /// The format version: acknowledged sets only in version 2.
    version: u32,
    map: Arc<SharedMap>,
    writer: MapWriter,
    pos: usize,
    /// The store's background thread, if it runs: it faults the journal in
    /// ahead of the appends (as for segments).
    prefaulter: Option<Arc<Syncer>>,
    /// Bytes `..prefaulted` were handed to the prefaulter.
    prefaulted: usize,
}

/// How far ahead of the appends the journal is faulted in, and in what steps.
const PREFAULT_STEP: usize = 256 << 10;

/// Size of the first journal of an open: 1/256 of the largest
/// (`consumer_journal_bytes`), between 4 KiB and 64 KiB.
pub(crate) fn first_bytes(max: u64) -> u64 {
    (max / 256).clamp(4096, 64 << 10).min(max)
}

/// Size of the journal that follows one of `bytes` (0: none) when it is
/// full: twice as large, up to `max`.
pub(crate) fn grown_bytes(bytes: u64, max: u64) -> u64 {
    if bytes == 0 {
        first_bytes(max)
    } else {
        bytes.saturating_mul(2).clamp(first_bytes(max), max)
    }
}

/// Size of the smallest journal that holds a record of `record` bytes: a
/// power of two, 4 KiB at least; `None` if that is more than
/// [`JOURNAL_BYTES_LIMIT`].
pub(crate) fn bytes_holding(record: usize) -> Option<u64> {
    let n = ((JOURNAL_HEADER_BYTES + record) as u64)
        .next_power_of_two()
        .max(4096);
    (n <= JOURNAL_BYTES_LIMIT).then_some(n)
}

impl Journal {
    /// No journal: the consumer could not start one (a full disk when it
    /// was opened). Every append fails, so the next one that must be
    /// journaled starts a journal first (generation `g + 1`; the journal of
    /// generation `g`, at `path`, is the one it then removes).
    pub(crate) fn none(path: PathBuf, g: u64) -> Journal {
        let mem = MapMemory::heap(Arc::new(HeapBuf::new(0)), Arc::new(|_, _| Ok(())));
        let (map, writer) = SharedMap::writable(mem, 0);
        Journal {
            path,
            generation: g,
            id: 0,
            version: JOURNAL_VERSION_1,
            map,
            writer,
            pos: 0,
            prefaulter: None,
            prefaulted: 0,
        }
    }

    /// Creates the empty journal of generation `g` in `dir`, of `bytes`
    /// bytes (reserved), in format `version`: the file is durable; its
    /// directory entry is durable once the caller syncs `dir`. If it cannot
    /// be built, it is removed.
    pub(crate) fn create(
        ctx: &Ctx,
        dir: &Path,
        g: u64,
        bytes: u64,
        version: u32,
    ) -> Result<Journal> {
        let vfs = &*ctx.vfs;
        let name = layout::journal_file_name(g);
        let path = dir.join(&name);
        let tmp = dir.join(layout::tmp_file_name(&name));
        let header = JournalHeader {
            journal_id: random_u64(),
            generation: g,
            version,
        };
        let file =
            io::create_preallocated(vfs, &tmp, bytes, bytes, &header.encode(), "create journal")?;
        vfs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        let mem = file
            .map_mut(bytes)
            .map_err(|e| Error::io("map", &path, e))?;
        let (map, writer) = SharedMap::writable(mem, JOURNAL_HEADER_BYTES);
        Ok(Journal {
            path,
            generation: g,
            id: header.journal_id,
            version,
            map,
            writer,
            pos: JOURNAL_HEADER_BYTES,
            prefaulter: ctx.opts.background_thread().then(|| ctx.syncer.clone()),
            prefaulted: 0,
        })
    }

    /// Appends a record; `false` if the journal is full (checkpoint first)
    /// or of a version that cannot hold it.
    #[inline]
    pub(crate) fn append(&mut self, e: &Entry) -> bool {
        let end = self.pos + JOURNAL_RECORD_BYTES;
        if end > self.map.len() || !e.fits_version(self.version) {
            return false;
        }
        let rec = journal::encode(self.id, e);
        self.writer.slice_mut(self.pos..end).copy_from_slice(&rec);
        self.pos = end;
        self.writer.commit(end);
        if end + PREFAULT_STEP > self.prefaulted {
            self.prefault_ahead();
        }
        true
    }

    /// Appends the record of an acknowledged set of `bytes` bytes
    /// ([`journal::ack_set_record_bytes`]); `false` if it does not fit or
    /// the journal is of version 1 (a new generation first).
    pub(crate) fn append_set(&mut self, set: &AckSet, bytes: usize) -> bool {
        let end = self.pos + bytes;
        if self.version < JOURNAL_VERSION_2 || end > self.map.len() {
            return false;
        }
        journal::encode_ack_set(self.id, set, self.writer.slice_mut(self.pos..end));
        self.pos = end;
        self.writer.commit(end);
        if end + PREFAULT_STEP > self.prefaulted {
            self.prefault_ahead();
        }
        true
    }

    /// The format version.
    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    /// Whether a record of `bytes` bytes in format `version` can be appended.
    pub(crate) fn fits(&self, bytes: usize, version: u32) -> bool {
        self.version >= version && self.pos + bytes <= self.map.len()
    }

    /// Hands the next step of the journal to the prefaulter.
    #[cold]
    fn prefault_ahead(&mut self) {
        let Some(p) = &self.prefaulter else {
            return;
        };
        let from = self.prefaulted.max(self.pos);
        let to = (from + PREFAULT_STEP).min(self.map.len());
        if from < to {
            p.prefault(self.map.clone(), from..to);
        }
        self.prefaulted = to.max(self.prefaulted);
    }

    /// Whether one more record fits.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.pos + JOURNAL_RECORD_BYTES <= self.map.len()
    }

    /// Size of the file (0 for [`Journal::none`]).
    pub(crate) fn capacity(&self) -> u64 {
        self.map.len() as u64
    }

    /// The map, for syncing without the consumer's lock.
    pub(crate) fn map(&self) -> &Arc<SharedMap> {
        &self.map
    }

    /// Bytes written so far (header included).
    pub(crate) fn written(&self) -> u64 {
        self.pos as u64
    }
}

/// Reads a journal with plain reads and returns its generation and records,
/// stopping at the end marker or the first invalid record (a torn tail).
/// A journal whose header is unreadable holds nothing (it was never synced).
pub(crate) fn replay(ctx: &Ctx, path: &Path) -> Result<Option<(u64, Vec<Record>)>> {
    let f = match ctx.vfs.open(path, OpenMode::ReadOnly) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let bytes =
        io::read_file_limited(&*f, JOURNAL_BYTES_LIMIT).map_err(|e| Error::io("read", path, e))?;
    Ok(journal::decode_all(&bytes)
        .map(|(h, records)| (h.generation, records.into_iter().map(|(_, r)| r).collect())))
}

/// Writes a checkpoint body crash-safely.
pub(crate) fn write_checkpoint(ctx: &Ctx, dir: &Path, body: &[u8]) -> Result<()> {
    let bytes = meta::encode(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, body);
    io::write_file_atomic(&*ctx.vfs, dir, CHECKPOINT_FILE, &bytes)
}

/// The checkpoint version that goes with a journal of format `version`.
pub(crate) fn checkpoint_version(journal_version: u32) -> u32 {
    if journal_version >= JOURNAL_VERSION_3 {
        CHECKPOINT_VERSION_3
    } else if journal_version >= JOURNAL_VERSION_2 {
        CHECKPOINT_VERSION_2
    } else {
        CHECKPOINT_VERSION
    }
}

/// Writes a checkpoint, in format `version`, to its temporary file and
/// syncs it; returns the temporary path, for [`install_checkpoint`].
pub(crate) fn stage_checkpoint(
    ctx: &Ctx,
    dir: &Path,
    body: &[u8],
    version: u32,
) -> Result<PathBuf> {
    let bytes = meta::encode(CHECKPOINT_MAGIC, version, body);
    io::write_tmp_synced(&*ctx.vfs, dir, CHECKPOINT_FILE, &bytes)
}

/// Renames a staged checkpoint into place and syncs the consumer's
/// directory `d` (opened before anything was renamed into it), which makes
/// it and any other file renamed into it before durable. From the rename
/// on, an open may find the new checkpoint; if the rename or the sync
/// fails, whether it will is unknown, so the store is poisoned (see
/// `Dir::sync`).
pub(crate) fn install_checkpoint(ctx: &Ctx, d: &Dir<'_>, dir: &Path, tmp: &Path) -> Result<()> {
    if let Err(e) = ctx.vfs.rename(tmp, &dir.join(CHECKPOINT_FILE)) {
        ctx.poison("rename checkpoint", Some(tmp), &e);
        return Err(Error::io("rename", tmp, e));
    }
    d.sync()
}

/// Reads a checkpoint's version (1, 2 or 3) and body; `None` if there is
/// no checkpoint file.
pub(crate) fn read_checkpoint(ctx: &Ctx, dir: &Path) -> Result<Option<(u32, Vec<u8>)>> {
    io::read_framed_versions(
        &*ctx.vfs,
        &dir.join(CHECKPOINT_FILE),
        CHECKPOINT_MAGIC,
        CHECKPOINT_VERSION..=CHECKPOINT_VERSION_3,
        CHECKPOINT_BODY_BYTES_MAX,
        "consumer checkpoint",
    )
}
