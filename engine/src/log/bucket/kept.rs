//! Kept ids: the id sections of sealed segments that retention deleted
//! while some of their ids were still within the stream's deduplication
//! window (DESIGN.md §7.1, "Ids of deleted segments"). Each is the deleted
//! segment's index, renamed `<base>.ids` before the segment was unlinked,
//! read by the window's rebuild (its id section only) until its newest id
//! is a window old, then removed.

use super::ids::FoundId;
use super::*;
use crate::format::index::{self, INDEX_HEADER_BYTES};
use crate::log::index_file;

/// A kept-ids file of the bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    /// Base offset of the deleted segment (the file's name).
    pub(super) base: u64,
    /// Timestamp of its newest id, once read (`None`: listed at open, not
    /// read since).
    pub(super) newest_us: Option<u64>,
}

impl Kept {
    pub(super) fn listed(base: u64) -> Kept {
        Kept {
            base,
            newest_us: None,
        }
    }
}

/// What the index at `dir/<base>.idx` says by its 64-byte header alone:
/// `Some(true)` if its segment's records carry ids (version 2),
/// `Some(false)` if not; `None` if it is missing, cannot be read, or its
/// header fails its checks.
pub(super) fn index_says_ids(ctx: &Ctx, dir: &Path, base: u64) -> Option<bool> {
    let path = dir.join(layout::index_file_name(base));
    let file = ctx.vfs.open(&path, io::OpenMode::ReadOnly).ok()?;
    let mut head = [0u8; INDEX_HEADER_BYTES];
    io::read_exact_at(&*file, &mut head, 0).ok()?;
    index::decode_header(&head).ok().map(|h| h.ids > 0)
}

impl Bucket {
    /// The ids of the kept-ids file of `base` (bucket and base checked,
    /// see [`index_file::check_kept`]); `None` if it is missing or unusable
    /// (damaged: the caller removes it).
    fn read_kept(&self, base: u64) -> Result<Option<Vec<FoundId>>> {
        let path = self.dir.join(layout::kept_ids_file_name(base));
        let file = match self.ctx.vfs.open(&path, io::OpenMode::ReadOnly) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open kept ids", &path, e)),
        };
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if len > index_file::INDEX_FILE_BYTES_MAX {
            return Ok(None);
        }
        let mut b = vec![0u8; len as usize];
        io::read_exact_at(&*file, &mut b, 0).map_err(|e| Error::io("read", &path, e))?;
        let Ok(ih) = index_file::check_kept(&b, self.priority, base) else {
            tracing::warn!(
                target: crate::events::RETENTION,
                path = %path.display(),
                "damaged kept ids removed"
            );
            return Ok(None);
        };
        Ok(Some(
            index::ids(&b, &ih)
                .map(|e| (Box::<[u8]>::from(e.id), e.offset, e.timestamp_us))
                .collect(),
        ))
    }

    /// Removes the kept-ids file of `base` (not synced: one that comes
    /// back after a crash is judged again, and it only holds ids).
    fn remove_kept_file(&self, base: u64) -> Result<()> {
        let p = self.dir.join(layout::kept_ids_file_name(base));
        match self.ctx.vfs.remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &p, e)),
        }
    }

    /// Walks the kept-ids files, newest first: those whose newest id is
    /// older than `cutoff_us`, or that are unusable, are removed (once one
    /// is older, every older one is: timestamps never go backwards in a
    /// bucket); with `out`, the ids of `cutoff_us` or later of the others
    /// are added to it. A file whose newest id is known to be within the
    /// window is read only when `out` asks for its ids. A removal that
    /// fails is tried again at the next walk.
    pub(super) fn walk_kept(
        &self,
        kept: &mut Vec<Kept>,
        cutoff_us: u64,
        mut out: Option<&mut Vec<FoundId>>,
    ) -> Result<()> {
        let mut stale = false;
        let mut gone = Vec::new();
        for k in kept.iter_mut().rev() {
            if stale || cutoff_us == u64::MAX || k.newest_us.is_some_and(|n| n < cutoff_us) {
                stale = true;
                gone.push(k.base);
                continue;
            }
            if k.newest_us.is_some() && out.is_none() {
                continue;
            }
            match self.read_kept(k.base)? {
                None => gone.push(k.base),
                Some(ids) => {
                    let newest = ids.iter().map(|&(_, _, ts)| ts).max().unwrap_or(0);
                    k.newest_us = Some(newest);
                    if newest < cutoff_us {
                        stale = true;
                        gone.push(k.base);
                    } else if let Some(out) = out.as_deref_mut() {
                        out.extend(ids.into_iter().filter(|&(_, _, ts)| ts >= cutoff_us));
                    }
                }
            }
        }
        for base in gone {
            if self.remove_kept_file(base).is_ok() {
                kept.retain(|k| k.base != base);
            }
        }
        Ok(())
    }

    /// Removes the kept-ids files whose newest id is older than
    /// `cutoff_us` (`u64::MAX`: all of them; a stream without a window),
    /// and the unusable ones. For a retention pass; nothing is read while
    /// the bucket has none.
    pub(crate) fn prune_kept(&self, cutoff_us: u64) -> Result<()> {
        let mut kept = lock(&self.kept);
        if kept.is_empty() {
            return Ok(());
        }
        self.walk_kept(&mut kept, cutoff_us, None)
    }

    /// Removes every kept-ids file, durably (the directory synced), for a
    /// purge: it forgets the ids of what it removes, and of what retention
    /// removed before.
    pub(crate) fn remove_all_kept(&self) -> Result<()> {
        let mut kept = lock(&self.kept);
        if kept.is_empty() {
            return Ok(());
        }
        let d = self.ctx.open_dir(&self.dir)?;
        while let Some(k) = kept.last().copied() {
            self.remove_kept_file(k.base)?;
            kept.pop();
        }
        d.sync()
    }

    /// Kept-ids files of the bucket (for tests and stats).
    pub(crate) fn kept_files(&self) -> usize {
        lock(&self.kept).len()
    }

    /// The timestamp of the newest id of the sealed segment of `slot` (no
    /// record read: its index's header, then its id section if it has
    /// one; a segment whose index is unusable is opened, which rebuilds
    /// it). `None` if it has none, or if it is damaged beyond that (its ids
    /// cannot be read, by a reopen either).
    pub(super) fn newest_id_of(&self, slot: &Slot) -> Result<Option<u64>> {
        if let Some(seg) = slot.seg.get() {
            return Ok(seg.ids().last().map(|e| e.timestamp_us));
        }
        if index_says_ids(&self.ctx, &self.dir, slot.base) == Some(false) {
            return Ok(None);
        }
        let count = slot.count.unwrap_or(0);
        let read = (|| {
            let (header, len) =
                Segment::read_static_header(&self.ctx, &self.dir, self.priority, slot.base)?;
            if let Some(ids) = Segment::ids_from_index(&self.ctx, &self.dir, &header, count, len)? {
                return Ok(ids.last().map(|&(_, ts, _)| ts));
            }
            let seg = self.load(slot, slot.base)?;
            let newest = seg.ids().last().map(|e| e.timestamp_us);
            Ok(newest)
        })();
        match read {
            Err(Error::Corrupt { .. }) => Ok(None),
            other => other,
        }
    }
}
