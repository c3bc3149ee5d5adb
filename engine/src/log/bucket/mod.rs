//! The log of one priority bucket: its segments, the single writer, group
//! commit and recovery.

use super::recovery::{self, read_head, read_low_water, write_head, write_low_water};
use super::scan;
use super::segment::{self, ActiveWriter, Pin, Segment};
use super::Record;
use crate::ctx::{now_us, Ctx};
use crate::format::attributes::Attributes;
use crate::format::headers;
use crate::format::record::{self, RecordHeader};
use crate::format::segment::SEGMENT_HEADER_BYTES;
use crate::group_commit::GroupCommit;
use crate::io::{self, EntryKind};
use crate::layout;
use crate::options::Durability;
use crate::report::RecoveryReport;
use crate::{Error, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

mod ids;
mod kept;
mod open;

/// A segment in the bucket's list. Sealed segments are opened on first use.
#[derive(Debug)]
struct Slot {
    base: u64,
    /// Records in a sealed segment (next base minus this base); `None` for
    /// the active segment.
    count: Option<u64>,
    seg: OnceLock<Arc<Segment>>,
    /// The file's length, once looked up (for a segment not open).
    len: OnceLock<u64>,
}

impl Slot {
    fn new(base: u64, count: Option<u64>, seg: OnceLock<Arc<Segment>>) -> Slot {
        Slot {
            base,
            count,
            seg,
            len: OnceLock::new(),
        }
    }
}

/// The writer's state, under the bucket's writer lock.
#[derive(Debug)]
struct Writer {
    active: ActiveWriter,
    /// Records in the active segment, published or not.
    count: u64,
    /// Byte position of the next record.
    write_pos: u64,
    /// Bytes `0..reserved_end` of the active segment are allocated.
    reserved_end: u64,
    /// Timestamp of the last record, or the active segment's created time
    /// if that is later: the floor of the next timestamp (timestamps never
    /// go backwards within the bucket, across restarts too).
    last_ts: u64,
    /// The header holds the epoch records are written with (false after a
    /// clean open, until the first append raises it).
    epoch_durable: bool,
}

impl Writer {
    fn next_offset(&self) -> u64 {
        self.active.seg.base + self.count
    }
}

/// One message to append, checked against the limits.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    /// The header pairs, written straight into the record.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Bytes of their encoded section (checked with
    /// [`headers::encoded_len`]).
    pub hdr_len: usize,
    /// The payload, or a claim-check reference.
    pub body: &'a [u8],
    /// Record flags (`FLAG_CLAIM_CHECK`, `FLAG_ATTRIBUTES`).
    pub flags: u16,
    /// The attributes, written before the headers (with `FLAG_ATTRIBUTES`).
    pub attrs: Option<Box<Attributes<'a>>>,
}

impl Prepared<'_> {
    /// Bytes the record takes in a segment.
    #[inline]
    pub(crate) fn stored_len(&self) -> u64 {
        record::stored_len(self.hdr_len, self.body.len())
    }
}

/// The log of one priority level of a stream.
#[derive(Debug)]
pub(crate) struct Bucket {
    ctx: Arc<Ctx>,
    pub(crate) priority: u8,
    dir: PathBuf,
    segments: RwLock<Vec<Arc<Slot>>>,
    writer: Mutex<Writer>,
    /// Offsets below `commit.durable()` are durable.
    commit: GroupCommit,
    /// Offsets below this are written and readable.
    written: AtomicU64,
    /// Set by a roll; the stream then applies retention.
    rolled: std::sync::atomic::AtomicBool,
    /// First retained offset (lock-free copy of the first segment's base):
    /// a reader's cached segment below it was deleted by retention.
    low: AtomicU64,
    /// The stream's name, for the error of an append after a deletion.
    stream: Box<str>,
    /// Set (under the writer's lock) when the stream is deleted: appends
    /// fail with `StreamNotFound`, the drop writes nothing.
    gone: std::sync::atomic::AtomicBool,
    /// The kept-ids files (`<base>.ids`), oldest first. Held across a
    /// deletion (`delete_before`) and across the window's rebuild
    /// (`recent_ids`), so that a rebuild finds each id of a segment being
    /// deleted either in the segment or in its kept file.
    kept: Mutex<Vec<kept::Kept>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bucket {
    /// First retained offset.
    pub(crate) fn first_offset(&self) -> u64 {
        self.segments.read().unwrap_or_else(|e| e.into_inner())[0].base
    }

    /// Adds the claim-check blobs referred to by retained messages to `out`.
    pub(crate) fn blob_refs(&self, out: &mut std::collections::HashSet<[u8; 32]>) -> Result<()> {
        let slots: Vec<Arc<Slot>> = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for slot in slots {
            let seg = match self.load(&slot, slot.base) {
                Ok(seg) => seg,
                // Deleted by retention meanwhile: it refers to nothing now.
                Err(Error::OffsetNotRetained { .. }) => continue,
                Err(e) => return Err(e),
            };
            out.extend(seg.blob_refs());
        }
        Ok(())
    }

    /// Whether a segment was sealed since the last `take_rolled`.
    pub(crate) fn rolled(&self) -> bool {
        self.rolled.load(Ordering::Relaxed)
    }

    /// Whether a segment was sealed since the last call.
    pub(crate) fn take_rolled(&self) -> bool {
        // A plain load first: the common case writes nothing to the shared line.
        self.rolled.load(Ordering::Relaxed) && self.rolled.swap(false, Ordering::AcqRel)
    }

    /// Bytes of the segment file at `base`.
    pub(crate) fn segment_file_bytes(&self, base: u64) -> u64 {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        match segs
            .iter()
            .find(|s| s.base == base)
            .and_then(|s| s.seg.get())
        {
            Some(seg) => seg.file_bytes(),
            None => self.file_len(&layout::segment_file_name(base)),
        }
    }

    /// Bytes of the index file of the sealed segment at `base` (0 if none).
    fn index_file_bytes(&self, base: u64) -> u64 {
        self.file_len(&layout::index_file_name(base))
    }

    /// Length of the file `name` in the bucket's directory (0 if missing).
    fn file_len(&self, name: &str) -> u64 {
        self.ctx
            .vfs
            .open(&self.dir.join(name), io::OpenMode::ReadOnly)
            .and_then(|f| f.len())
            .unwrap_or(0)
    }

    /// Sealed segments as `(base, end)` offset ranges, oldest first.
    pub(crate) fn sealed_segments(&self) -> Vec<(u64, u64)> {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.iter()
            .filter_map(|s| s.count.map(|c| (s.base, s.base + c)))
            .collect()
    }

    /// Timestamp of the newest message of the sealed segment at `base`.
    pub(crate) fn sealed_last_timestamp(&self, base: u64, end: u64) -> Result<Option<u64>> {
        if end == base {
            return Ok(None);
        }
        Ok(self.read(end - 1)?.map(|r| r.timestamp_us()))
    }

    /// Deletes every sealed segment that ends at or below `new_first`.
    /// Order: the new low-water mark is made durable, then the segments
    /// leave the list (their offsets are not retained from then on), then
    /// the files are removed oldest first, then the directory is synced.
    /// Returns the bytes of the files removed (freed once no reader maps
    /// them any more). The caller serializes calls (one retention pass of a
    /// stream at a time).
    ///
    /// With `keep_ids_from`, a segment whose newest id is that timestamp
    /// or later (within the stream's deduplication window) keeps its ids:
    /// its index is renamed `<base>.ids`, and the directory synced, before
    /// any segment file is removed (DESIGN.md §7.1). Whether it has such
    /// ids is read (its index's header, then its id section) before
    /// anything changes.
    pub(crate) fn delete_before(&self, new_first: u64, keep_ids_from: Option<u64>) -> Result<u64> {
        self.ctx.check()?;
        let mut kept = lock(&self.kept);
        let doomed: Vec<Arc<Slot>> = {
            let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
            segs.iter()
                .filter(|s| s.count.is_some_and(|c| s.base + c <= new_first))
                .cloned()
                .collect()
        };
        let Some(last) = doomed.last() else {
            return Ok(0);
        };
        let low = last.base + last.count.unwrap_or(0);
        let mut keep = Vec::new();
        if let Some(cutoff) = keep_ids_from {
            for s in &doomed {
                if let Some(newest) = self.newest_id_of(s)?.filter(|&n| n >= cutoff) {
                    keep.push((s.base, newest));
                }
            }
        }
        let d = self.ctx.open_dir(&self.dir)?;
        write_low_water(&self.ctx, &self.dir, low)?;
        let freed = doomed
            .iter()
            .map(|s| {
                let index = match keep.iter().any(|&(b, _)| b == s.base) {
                    true => 0,
                    false => self.index_file_bytes(s.base),
                };
                self.segment_file_bytes(s.base) + index
            })
            .sum();
        {
            // Before the files go: a reader that finds a file missing then
            // also finds its offsets below the first retained one.
            let mut segs = self.segments.write().unwrap_or_else(|e| e.into_inner());
            segs.retain(|s| s.base >= low);
            self.low.store(segs[0].base, Ordering::Release);
        }
        if !keep.is_empty() {
            for &(base, newest) in &keep {
                if keep_index(&self.ctx, &self.dir, base)? {
                    kept.push(kept::Kept {
                        base,
                        newest_us: Some(newest),
                    });
                }
            }
            // The kept ids are durable before their segment goes.
            d.sync()?;
        }
        for s in &doomed {
            remove_segment_files(&self.ctx, &self.dir, s.base)?;
        }
        d.sync()?;
        Ok(freed)
    }

    /// Offset the next message will get; everything below is readable.
    #[inline]
    pub(crate) fn end_offset(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Offsets below this are durable.
    pub(crate) fn durable_offset(&self) -> u64 {
        self.commit.durable()
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Appends `msgs` (all validated against the size limits; `bytes` is
    /// what their records take, to reserve disk space for at once) and
    /// returns their offsets. They become readable together, when this
    /// returns, also across a segment roll (the part in the old segment is
    /// made durable by the roll but not published to readers), and durable
    /// together: the durable offset never stops inside them (see
    /// `sync_to`). On error (also one that `msgs` yields), nothing of the
    /// failed part is kept; a prefix that a roll sealed into the old
    /// segment stays and is published (it is in the log either way).
    ///
    /// Per call, not per message: the writer's lock, the clock, and the
    /// publication (the segment's `(count, end)`, then the end offset).
    #[inline]
    pub(crate) fn append<'a>(
        &self,
        msgs: impl IntoIterator<Item = Result<Prepared<'a>>>,
        bytes: u64,
    ) -> Result<Range<u64>> {
        self.append_stamped(msgs, bytes).map(|(range, _)| range)
    }

    /// [`Bucket::append`], also returning the timestamp its records got.
    pub(crate) fn append_stamped<'a>(
        &self,
        msgs: impl IntoIterator<Item = Result<Prepared<'a>>>,
        bytes: u64,
    ) -> Result<(Range<u64>, u64)> {
        self.ctx.check()?;
        let mut w = lock(&self.writer);
        self.ctx.check()?;
        if self.gone.load(Ordering::Relaxed) {
            return Err(self.gone_error());
        }
        if !w.epoch_durable {
            self.raise_epoch(&mut w)?;
        }
        let ts = now_us().max(w.last_ts);
        w.last_ts = ts;
        let first = w.next_offset();
        let (start_seg, start_pos) = (w.active.seg.base, w.write_pos);
        let mut remaining = bytes;
        let result = (|| {
            let (mut id, mut epoch) = (w.active.seg.id, w.active.seg_epoch());
            for m in msgs {
                let m = m?;
                let stored = m.stored_len();
                if w.write_pos + stored > w.active.seg.file_bytes() {
                    // Against the segment a roll makes (of the configured
                    // size), not the active one: a recovered segment may be
                    // shorter (a file cut short), and a record that does
                    // not fit it goes to the next segment.
                    if SEGMENT_HEADER_BYTES as u64 + stored > self.ctx.opts.segment_bytes_max {
                        // Checked against the limits by the caller: only a
                        // message that changed since cannot fit a segment.
                        return Err(Error::MessageTooLarge {
                            bytes: stored,
                            limit: self.ctx.opts.message_limit(),
                        });
                    }
                    self.publish_segment(&mut w);
                    self.roll(&mut w)?;
                    (id, epoch) = (w.active.seg.id, w.active.seg_epoch());
                }
                if w.write_pos + stored > w.reserved_end {
                    self.reserve(&mut w, remaining.max(stored))?;
                }
                let pos = w.write_pos;
                let h = RecordHeader {
                    offset: w.next_offset(),
                    timestamp_us: ts,
                    epoch,
                    flags: m.flags,
                };
                let dst = w
                    .active
                    .map
                    .slice_mut(pos as usize..(pos + stored) as usize);
                record::encode_with(
                    dst,
                    id,
                    &h,
                    m.hdr_len,
                    |out| {
                        let at = match &m.attrs {
                            Some(a) => a.encode_into(out),
                            None => 0,
                        };
                        headers::encode_into(&mut out[at..], m.headers.iter().copied())
                    },
                    m.body,
                );
                let i = w.count;
                w.active.seg.push(i, pos as u32, m.flags);
                w.count += 1;
                w.write_pos += stored;
                remaining = remaining.saturating_sub(stored);
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.publish(&mut w);
                self.reserve_ahead(&mut w);
                let every = self.ctx.opts.writeback_bytes;
                if every > 0
                    && w.active.seg.base == start_seg
                    && start_pos / every != w.write_pos / every
                    && self.ctx.opts.durability != Durability::Always
                {
                    // Another `writeback_bytes` written: the background
                    // thread syncs them while the writer goes on.
                    self.ctx.syncer.kick();
                }
                Ok((first..w.next_offset(), ts))
            }
            Err(e) => {
                // Roll back the unpublished records of the current segment so
                // that stale bytes cannot pass for records later. What was
                // published (before a roll, or before this call) stays.
                let committed = w.active.map.map().committed() as u64;
                if w.write_pos > committed {
                    let range = committed as usize..w.write_pos as usize;
                    w.active.map.slice_mut(range).fill(0);
                }
                w.count = w.active.seg.count();
                w.write_pos = w.active.seg.data_end();
                debug_assert_eq!(w.write_pos, committed);
                // A prefix sealed into the old segment by a roll is in the
                // log now, whatever happens: readers may see it.
                self.written.store(w.next_offset(), Ordering::Release);
                Err(e)
            }
        }
    }

    #[cold]
    fn gone_error(&self) -> Error {
        Error::StreamNotFound {
            name: self.stream.to_string(),
        }
    }

    /// Marks the bucket's stream deleted, after waiting for an append in
    /// progress: no append starts after this, and the drop writes nothing.
    /// `false` undoes it (the deletion failed before its durable step).
    pub(crate) fn set_gone(&self, gone: bool) {
        let _w = lock(&self.writer);
        self.gone.store(gone, Ordering::Relaxed);
    }

    /// The map of the active segment (whose prefaults a deletion drops).
    pub(crate) fn active_map(&self) -> Arc<crate::io::SharedMap> {
        lock(&self.writer).active.map.map().clone()
    }

    /// Seals the active segment if it holds records (a roll, as an append
    /// that fills it makes), so that every offset below the returned end
    /// is in a sealed segment, which retention may delete (for
    /// `Stream::purge`).
    pub(crate) fn seal_active(&self) -> Result<u64> {
        self.ctx.check()?;
        let mut w = lock(&self.writer);
        self.ctx.check()?;
        if self.gone.load(Ordering::Relaxed) {
            return Err(self.gone_error());
        }
        if w.count > 0 {
            if !w.epoch_durable {
                // (This rolls a worn segment already.)
                self.raise_epoch(&mut w)?;
            }
            if w.count > 0 {
                self.roll(&mut w)?;
            }
        }
        Ok(w.next_offset())
    }

    /// Makes the records written so far readable.
    #[inline]
    fn publish(&self, w: &mut Writer) {
        self.publish_segment(w);
        self.written.store(w.next_offset(), Ordering::Release);
    }

    /// Publishes the records written so far within the active segment, for
    /// its sync, without making them readable through the bucket (readers
    /// look at `written` first).
    #[inline]
    fn publish_segment(&self, w: &mut Writer) {
        w.active.map.commit(w.write_pos as usize);
        w.active.seg.publish(w.count, w.write_pos);
    }

    /// The first append after a clean open: the header gets the new epoch
    /// (and loses its clean flag) durably before any record of that epoch
    /// is written, so stale bytes a later crash leaves can never pass for
    /// records of it. A failed sync poisons the store.
    ///
    /// A worn segment (its epoch above `scan::EPOCH_WORN`, from a damaged
    /// header or record) gets no record of its epoch: it is rolled past
    /// when it holds records, and replaced by a fresh segment of the same
    /// base when it holds none (the file is renamed over, atomically).
    #[cold]
    fn raise_epoch(&self, w: &mut Writer) -> Result<()> {
        if w.active.seg_epoch() > scan::EPOCH_WORN {
            if w.count > 0 {
                self.roll(w)?;
            } else {
                self.replace_empty_active(w)?;
            }
            w.epoch_durable = true;
            return Ok(());
        }
        let seg = &w.active.seg;
        if let Err(e) = self
            .ctx
            .timed_sync("segment header", &seg.path, || seg.raise_epoch())
        {
            self.ctx.poison("sync segment header", Some(&seg.path), &e);
            return Err(Error::io("sync", &seg.path, e));
        }
        w.epoch_durable = true;
        Ok(())
    }

    /// Replaces the active segment, which holds no record, by a new empty
    /// one of the same base (see `raise_epoch`).
    #[cold]
    fn replace_empty_active(&self, w: &mut Writer) -> Result<()> {
        let base = w.active.seg.base;
        let new = Segment::create(&self.ctx, &self.dir, self.priority, base, 1, w.last_ts)?;
        {
            let mut segs = self.segments.write().unwrap_or_else(|e| e.into_inner());
            let last = segs.len() - 1;
            segs[last] = Arc::new(Slot::new(base, None, OnceLock::from(new.seg.clone())));
        }
        w.active = new;
        w.write_pos = SEGMENT_HEADER_BYTES as u64;
        w.reserved_end = self.ctx.opts.chunk_bytes().min(w.active.seg.file_bytes());
        Ok(())
    }

    /// Reserves disk space for at least the next `need` bytes (capped at the
    /// segment's end), in whole allocation chunks.
    fn reserve(&self, w: &mut Writer, need: u64) -> Result<()> {
        let chunk = self.ctx.opts.chunk_bytes();
        let file_len = w.active.seg.file_bytes();
        let target = (w.write_pos + need)
            .div_ceil(chunk)
            .saturating_mul(chunk)
            .min(file_len);
        w.active
            .file
            .allocate(target)
            .map_err(|e| Error::io("allocate", &w.active.seg.path, e))?;
        w.reserved_end = target;
        Ok(())
    }

    /// With the background thread running: once the writer is within one
    /// allocation chunk of the reserved end, reserves the next chunk and has
    /// the thread fault it in, so the writer finds its pages ready. A failure
    /// here is left for the next append that really needs the space.
    fn reserve_ahead(&self, w: &mut Writer) {
        let chunk = self.ctx.opts.chunk_bytes();
        let file_len = w.active.seg.file_bytes();
        if !self.ctx.opts.background_thread()
            || w.reserved_end >= file_len
            || w.write_pos + chunk <= w.reserved_end
        {
            return;
        }
        let target = (w.reserved_end + chunk).min(file_len);
        if w.active.file.allocate(target).is_err() {
            return;
        }
        let range = w.reserved_end as usize..target as usize;
        self.ctx.syncer.prefault(w.active.map.map().clone(), range);
        w.reserved_end = target;
    }

    /// Seals the active segment and starts a new one. Order: everything in
    /// the old segment durable, its index durable, the new segment and its
    /// directory entry durable; only then do appends go to the new one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let next = w.next_offset();
        let old = w.active.seg.clone();
        // The old segment is synced directly, not through the group commit:
        // a batch being appended has records in it that are not readable
        // yet, and the durable offset must not pass them (see `sync_to`).
        // A leader syncing it at the same time is harmless (each writes an
        // end already durable as the watermark, and msyncs are idempotent).
        self.ctx.check()?;
        if self.commit.durable() < next {
            let synced = self
                .ctx
                .timed_sync("sealed segment", &old.path, || old.sync());
            if let Err(e) = synced {
                // As after any failed sync (see `GroupCommit::sync_to`).
                self.ctx.poison("sync sealed segment", Some(&old.path), &e);
                return Err(Error::Poisoned);
            }
            self.commit.advance(next.min(self.end_offset()));
        }
        segment::write_index(
            &self.ctx,
            &self.dir,
            &old.header(),
            &old.positions(),
            w.write_pos,
            &old.blob_refs(),
            &old.ids(),
        )?;
        let new = Segment::create(&self.ctx, &self.dir, self.priority, next, 1, w.last_ts)?;
        {
            let mut segs = self.segments.write().unwrap_or_else(|e| e.into_inner());
            let last = segs.len() - 1;
            let sealed = Slot::new(old.base, Some(next - old.base), OnceLock::new());
            let _ = sealed.len.set(old.file_bytes());
            segs[last] = Arc::new(sealed);
            segs.push(Arc::new(Slot::new(
                next,
                None,
                OnceLock::from(new.seg.clone()),
            )));
        }
        self.rolled.store(true, Ordering::Release);
        w.active = new;
        w.count = 0;
        w.write_pos = SEGMENT_HEADER_BYTES as u64;
        w.reserved_end = self.ctx.opts.chunk_bytes().min(w.active.seg.file_bytes());
        // The new segment is durable: mark it the head. If this fails the
        // roll is still complete (a lagging mark is rewritten at open).
        write_head(&self.ctx, &self.dir, next)
    }

    /// Returns once every offset below `target` (at most the end offset)
    /// is durable. Concurrent callers share syncs: one leads, the others
    /// wait for its result (group commit).
    ///
    /// The durable offset is never past the end offset: a sync that covers
    /// the records of a batch still being appended (the part before a roll)
    /// counts only up to the batch's start, so consumers, which with
    /// `Durability::Always` receive durable records only, get a batch
    /// together. The end is read before the sync: the active segment's
    /// synced records then reach at least that far.
    pub(crate) fn sync_to(&self, target: u64) -> Result<()> {
        self.commit.sync_to(&self.ctx, target, || {
            let end = self.end_offset();
            let seg = self.active_segment();
            let synced = self
                .ctx
                .timed_sync("segment", &seg.path, || seg.sync())
                .inspect_err(|e| self.ctx.poison("sync segment", Some(&seg.path), e))?;
            Ok(synced.min(end))
        })
    }

    /// Syncs everything written so far.
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.sync_to(self.end_offset())
    }

    fn active_segment(&self) -> Arc<Segment> {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let slot = segs.last().expect("a bucket always has an active segment");
        slot.seg
            .get()
            .expect("the active segment is always open")
            .clone()
    }

    /// Reads the message at `offset`; `None` if it has not been written yet.
    pub(crate) fn read(&self, offset: u64) -> Result<Option<Record>> {
        if offset >= self.end_offset() {
            return Ok(None);
        }
        let seg = self.segment_of(offset)?;
        seg.read(offset)
    }

    /// Reads the message at `offset` through `cache`, the segment the
    /// caller read last: the segment list is looked up (under its lock) only
    /// when the offset lies outside that segment. A cached segment that
    /// retention deleted meanwhile still reads (it stays mapped).
    pub(crate) fn read_cached(
        &self,
        offset: u64,
        cache: &mut Option<Arc<Pin>>,
    ) -> Result<Option<Record>> {
        if offset >= self.end_offset() {
            return Ok(None);
        }
        if cache
            .as_ref()
            .is_some_and(|seg| seg.base < self.low.load(Ordering::Acquire))
        {
            // Deleted by retention: not read again, and its mapping (and
            // disk space) is let go.
            *cache = None;
        }
        if let Some(pin) = cache {
            if offset >= pin.base {
                if let Some(r) = Pin::read(pin, offset)? {
                    return Ok(Some(r));
                }
            }
        }
        let pin = Pin::new(self.segment_of(offset)?);
        let r = Pin::read(&pin, offset);
        *cache = Some(pin);
        r
    }

    /// The segment holding `offset` (opened if it was not).
    fn segment_of(&self, offset: u64) -> Result<Arc<Segment>> {
        let slot = {
            let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let i = segs.partition_point(|s| s.base <= offset);
            if i == 0 {
                return Err(Error::OffsetNotRetained {
                    offset,
                    first: segs[0].base,
                });
            }
            segs[i - 1].clone()
        };
        self.load(&slot, offset)
    }

    /// The segment of `slot`, opened on first use. A sealed segment that
    /// retention deleted since the slot was looked up (its files gone before
    /// its first use) is [`Error::OffsetNotRetained`] for `offset`, not an
    /// I/O error.
    fn load(&self, slot: &Slot, offset: u64) -> Result<Arc<Segment>> {
        if let Some(s) = slot.seg.get() {
            return Ok(s.clone());
        }
        let count = slot.count.unwrap_or(0);
        let (seg, _) =
            match Segment::open_sealed(&self.ctx, &self.dir, self.priority, slot.base, count) {
                Ok(opened) => opened,
                Err(e) => {
                    let first = self.low.load(Ordering::Acquire);
                    if slot.count.is_some() && slot.base + count <= first {
                        return Err(Error::OffsetNotRetained { offset, first });
                    }
                    return Err(e);
                }
            };
        let _ = slot.seg.set(seg);
        Ok(slot.seg.get().expect("just set").clone())
    }

    /// Total bytes of the segment files (their lengths; each file not
    /// open is looked up once).
    pub(crate) fn file_bytes(&self) -> u64 {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.iter()
            .map(|s| match s.seg.get() {
                Some(seg) => seg.file_bytes(),
                None => *s
                    .len
                    .get_or_init(|| self.file_len(&layout::segment_file_name(s.base))),
            })
            .sum()
    }
}

impl ActiveWriter {
    fn seg_epoch(&self) -> u32 {
        self.seg.epoch()
    }
}

/// Renames the index of the segment at `base` to its kept-ids name
/// (`<base>.ids`, not synced: the caller syncs the directory); `false` if
/// there is no index to keep.
fn keep_index(ctx: &Ctx, dir: &Path, base: u64) -> Result<bool> {
    let from = dir.join(layout::index_file_name(base));
    let to = dir.join(layout::kept_ids_file_name(base));
    match ctx.vfs.rename(&from, &to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("rename", &from, e)),
    }
}

fn remove_segment_files(ctx: &Ctx, dir: &Path, base: u64) -> Result<()> {
    for name in [
        layout::segment_file_name(base),
        layout::index_file_name(base),
    ] {
        let p = dir.join(name);
        match ctx.vfs.remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &p, e)),
        }
    }
    Ok(())
}

impl Bucket {
    /// Waits for an append in progress to end. Called by `Store::close`
    /// after the closed flag is set, which every append checks under the
    /// writer's lock: none starts after this.
    pub(crate) fn fence(&self) {
        drop(lock(&self.writer));
    }

    /// Syncs, then marks the active segment closed cleanly so the next open
    /// need not check what lies past its end.
    pub(crate) fn close_files(&self) -> Result<()> {
        self.sync_all()?;
        self.active_segment()
            .mark_clean()
            .map_err(|e| Error::io("sync", &self.dir, e))
    }
}

impl Drop for Bucket {
    /// The last handle is gone: close the files (unless the store is
    /// poisoned, or closed: `Store::close` did it).
    fn drop(&mut self) {
        if self.ctx.check().is_ok() && !self.gone.load(Ordering::Relaxed) {
            let _ = self.close_files();
        }
    }
}
