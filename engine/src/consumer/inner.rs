//! The shared state of one consumer name: rotation, checkpointed floors,
//! journal syncs.

use super::{files, journal, ConsumerInner, State};
use crate::format::journal::JOURNAL_RECORD_BYTES;
use crate::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl ConsumerInner {
    /// Checkpoint, new journal, old journal removed (see `journal.rs`). The
    /// new journal is twice the size of a full one (`grow`), else as large
    /// as the current one.
    pub(super) fn rotate(&self, st: &mut State, grow: bool) -> Result<()> {
        self.rotate_for(st, grow, JOURNAL_RECORD_BYTES)
    }

    /// [`ConsumerInner::rotate`] to a journal that holds a record of `need`
    /// bytes (larger than `consumer_journal_bytes` if it must be), in
    /// format version 2 if the consumer journals acknowledged sets.
    pub(super) fn rotate_for(&self, st: &mut State, grow: bool, need: usize) -> Result<()> {
        let g = st.journal.generation + 1;
        let body = st.checkpoint_body(g);
        let max = self.ctx.opts.consumer_journal_bytes;
        let min = journal::bytes_holding(need).ok_or_else(|| {
            Error::Internal(format!("a journal record of {need} bytes is too large"))
        })?;
        let bytes = match st.journal.capacity() {
            n if grow || n == 0 => journal::grown_bytes(n, max),
            n => n.min(max),
        }
        .max(min);
        let version = st.journal_version_wanted();
        let rotated = files::rotate_files(
            &self.ctx,
            &self.dir,
            &body,
            &st.journal.path,
            st.logical(),
            (bytes, min),
            version,
        );
        let (journal, base) = match rotated {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, Error::DiskFull { .. }) {
                    st.disk_full_since = Some(Instant::now());
                }
                return Err(e);
            }
        };
        st.disk_full_since = None;
        tracing::debug!(
            target: crate::events::CONSUMER,
            stream = %self.stream_name(),
            consumer = %self.name,
            generation = g,
            journal = %journal.path.display(),
            journal_bytes = journal.capacity(),
            "journal rotated"
        );
        st.journal = journal;
        st.logical_base = base - st.journal.written();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (
            st.journal.map().clone(),
            st.logical_base,
            Arc::from(st.journal.path.as_path()),
        );
        self.commit.advance(base);
        for (i, b) in body.buckets.iter().enumerate() {
            self.checkpointed_floors[i].store(b.floor, Ordering::Release);
        }
        Ok(())
    }

    /// The name of the consumer's stream (`streams/<stream>/consumers/<name>`).
    fn stream_name(&self) -> std::borrow::Cow<'_, str> {
        self.dir
            .parent()
            .and_then(|c| c.parent())
            .and_then(|s| s.file_name())
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    }

    /// Whether the consumer was deleted.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Makes the current ack floors durable (a checkpoint) if they moved
    /// since the last one; returns the checkpointed floors.
    pub(crate) fn checkpoint_floors(&self) -> Result<Vec<u64>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let moved = st
            .buckets
            .iter()
            .enumerate()
            .any(|(i, b)| b.floor() != self.checkpointed_floors[i].load(Ordering::Acquire));
        if moved {
            self.ctx.check()?;
            match self.rotate(&mut st, false) {
                // No room for a checkpoint: retention goes by the last one.
                Err(Error::DiskFull { .. }) if !self.ctx.is_poisoned() => {}
                r => r?,
            }
        }
        Ok(self
            .checkpointed_floors
            .iter()
            .map(|f| f.load(Ordering::Acquire))
            .collect())
    }

    /// Current ack floors (in memory).
    pub(crate) fn floors(&self) -> Vec<u64> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.buckets.iter().map(|b| b.floor()).collect()
    }

    pub(super) fn sync_to(&self, target: u64) -> Result<()> {
        self.commit.sync_to(&self.ctx, target, || {
            let (map, base, path) = self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let end = map.committed();
            self.ctx
                .timed_sync("consumer journal", &path, || map.flush(0..end))
                .inspect_err(|e| self.ctx.poison("sync consumer journal", Some(&path), e))?;
            Ok(base + end as u64)
        })
    }

    /// Waits for a change of the state in progress to end (see
    /// `Bucket::fence`: every journal write checks the closed flag under
    /// the state's lock).
    pub(crate) fn fence(&self) {
        drop(self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Syncs the journal (for `Store::sync`).
    pub(crate) fn sync_all(&self) -> Result<()> {
        let target = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.logical()
        };
        self.sync_to(target)
    }
}
