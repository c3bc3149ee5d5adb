//! Deleting a stream and purging its messages (DESIGN.md §7, "Deleting a
//! stream" and "Purging a stream").

use super::{Stream, StreamInner};
use crate::ctx::random_u64;
use crate::{io, layout, Error, Result};
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

impl Stream {
    /// Removes every message the stream holds now, at every priority
    /// level, and frees their segment files on disk; returns how many
    /// messages were removed. Messages sent while it runs are kept or
    /// removed whole, each by the level it went to; sends after it
    /// returns are delivered as usual.
    ///
    /// Consumers see none of the removed messages again: each one a
    /// consumer had not acknowledged counts in its
    /// [`ConsumerStats::skipped`](crate::ConsumerStats::skipped) (as for
    /// messages retention removed by age or size), also after a reopen:
    /// the count is derived from the log's new first offset, which is
    /// durable before any file goes. Deliveries of them still held
    /// acknowledge nothing.
    ///
    /// How: each level's active segment is sealed (a roll), then its
    /// low-water mark moves past everything sealed (`retention.meta`
    /// durable first, then the files unlinked), then blobs only those
    /// messages referred to are collected. A crash at any point leaves
    /// each level either whole or purged; calling this again finishes it.
    ///
    /// ```
    /// use spool::{Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let jobs = store.stream("jobs")?;
    /// let worker = jobs.consumer("worker")?;
    /// jobs.send_batch(["stale 1", "stale 2", "stale 3"])?;
    /// assert_eq!(jobs.purge()?, 3);
    /// assert!(worker.try_receive()?.is_none());
    /// assert_eq!(worker.stats().skipped, 3);
    /// jobs.send(b"fresh")?; // offsets go on from where they were
    /// let d = worker.try_receive()?.expect("sent after the purge");
    /// assert_eq!((d.payload(), d.offset()), (&b"fresh"[..], 3));
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn purge(&self) -> Result<u64> {
        // A crash between the removal of the segments and the collection
        // leaves this mark: the next open collects.
        let due = self.inner.blobs.mark_collection_due()?;
        let (purged, freed) = match self.inner.purge() {
            Ok(r) => r,
            Err(e) => {
                // Whatever was removed, the mark stays for the next open.
                drop(due);
                return Err(e);
            }
        };
        if freed > 0 {
            self.store.collect_blobs()?;
        }
        if let Some(due) = due {
            due.settle();
        }
        Ok(purged)
    }
}

impl StreamInner {
    /// `StreamNotFound` once the stream was deleted.
    #[inline]
    pub(crate) fn check_live(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        Ok(())
    }

    #[cold]
    fn not_found(&self) -> Error {
        Error::StreamNotFound {
            name: self.name.clone(),
        }
    }

    /// Whether the stream was deleted.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Held by a retention pass: a consumer's seek takes it first, so that
    /// no pass deletes below the position it moves to (lock order:
    /// retention, then the consumer's state).
    pub(crate) fn retention_guard(&self) -> MutexGuard<'_, ()> {
        self.retention.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Stream::purge`]: the messages removed, and the bytes of the
    /// files freed.
    fn purge(&self) -> Result<(u64, u64)> {
        let _one = self.retention_guard();
        self.ctx.check()?;
        self.check_live()?;
        let (mut purged, mut freed) = (0, 0);
        for b in &self.buckets {
            let first = b.first_offset();
            let end = b.seal_active()?;
            // A purge forgets its messages' ids (and those retention kept).
            let bytes = b.delete_before(end, None)?;
            b.remove_all_kept()?;
            let removed = b.first_offset().saturating_sub(first);
            purged += removed;
            freed += bytes;
            if removed > 0 {
                tracing::info!(
                    target: crate::events::RETENTION,
                    stream = %self.name(),
                    priority = b.priority,
                    messages = removed,
                    bytes,
                    low_water = b.first_offset(),
                    "stream purged"
                );
            }
        }
        if let Some(d) = &self.dedup {
            d.lock().unwrap_or_else(|e| e.into_inner()).reset();
        }
        // Their positions move past what went, counting it as skipped, now
        // rather than at their next read, and checkpointed (an open that
        // finds no checkpoint of it derives the same count from the
        // durable low-water marks). The purge is done whatever happens.
        let logs: Vec<_> = (0..self.priorities()).map(|p| self.log_range(p)).collect();
        for c in self.consumer_list() {
            let _ = c.clamp_to(&logs);
        }
        Ok((purged, freed))
    }

    /// Deletes the stream (already out of the store's registry): marks it
    /// and everything in it deleted under the locks every write takes (no
    /// write of it is in progress then, none starts after), renames its
    /// directory to a temporary name and syncs `streams/` (the one durable
    /// step: an open removes a temporary directory it finds), then removes
    /// the files. If the rename fails nothing changed and the marks are
    /// undone (`is_deleted` is false then); a failed directory sync
    /// poisons the store.
    ///
    /// Returns the mark that a collection of blobs is due (made durably
    /// before the rename), to settle once blobs are collected.
    pub(crate) fn delete(&self) -> Result<Option<crate::blob::Pending>> {
        let _create = self
            .consumer_create
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _pass = self.retention_guard();
        self.ctx.check()?;
        self.check_live()?;
        let parent = self
            .dir
            .parent()
            .ok_or_else(|| Error::Internal("a stream directory without a parent".into()))?;
        let d = self.ctx.open_dir(parent)?;
        let due = self.blobs.mark_collection_due()?;
        let consumers = self.consumer_list();
        let mark = |gone: bool| {
            self.deleted.store(gone, Ordering::Release);
            for b in &self.buckets {
                b.set_gone(gone);
            }
            for c in &consumers {
                c.set_deleted(gone);
            }
        };
        mark(true);
        let tmp = parent.join(layout::tmp_dir_name(&self.name, random_u64()));
        if let Err(e) = self.ctx.vfs.rename(&self.dir, &tmp) {
            mark(false);
            if let Some(due) = due {
                due.settle();
            }
            return Err(Error::io("rename", &self.dir, e));
        }
        d.sync()?;
        // Gone. Receivers waiting wake up to find it so; the prefault
        // thread is given nothing of it to touch any more.
        self.notify.notify();
        let mut maps: Vec<_> = self.buckets.iter().map(|b| b.active_map()).collect();
        maps.extend(consumers.iter().map(|c| c.journal_map()));
        self.ctx.syncer.drop_prefaults(&maps);
        if io::remove_dir_all(&*self.ctx.vfs, &tmp).is_ok() {
            let _ = d.sync();
        }
        Ok(due)
    }
}
