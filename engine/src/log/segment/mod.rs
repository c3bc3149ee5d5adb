//! One segment file: its map, its index, scanning and reading records.

use super::append_index::AppendIndex;
use super::record::Record;
use super::{index_file, scan};
use crate::ctx::{now_us, random_u64, Ctx};
use crate::format::index::{self, IdEntry, IndexHeader, INDEX_HEADER_BYTES};
use crate::format::record::{self, DecodedRecord, RECORD_HEADER_BYTES};
use crate::format::segment::{
    SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET,
};
use crate::io::{self, MapWriter, OpenMode, SharedMap, VFile};
use crate::layout;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

mod open;

/// An id entry read out of an index: offset, timestamp, id.
pub(crate) type OwnedId = (u64, u64, Box<[u8]>);

/// Where a segment's record positions come from.
#[derive(Debug)]
enum SegIndex {
    /// The segment being appended to.
    Active {
        positions: AppendIndex,
        /// `count << 32 | end`: published record count and data end.
        tail: AtomicU64,
        /// Data end known durable (goes into the header on the next sync).
        synced_end: AtomicU64,
        epoch: u32,
        /// Whether a record may carry a claim-check reference (set by an
        /// append of one, and for a recovered segment), so that sealing a
        /// segment without any does not read it again to find them.
        blobs: AtomicBool,
        /// Whether a record may carry attributes (and so an id), likewise.
        attrs: AtomicBool,
    },
    /// A sealed segment with its `.idx` file mapped.
    Sealed {
        idx: Arc<SharedMap>,
        count: u64,
        data_end: u64,
        /// Its header (the counts of its sections).
        ih: IndexHeader,
    },
}

/// An open segment. Readers hold it by `Arc`, so a segment removed by
/// retention stays mapped until its last reader is done.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    pub(crate) priority: u8,
    pub(crate) base: u64,
    pub(crate) id: u64,
    map: Arc<SharedMap>,
    index: SegIndex,
    /// `start << 32 | end`: the records `start..end` of the segment (offsets
    /// `base + start ..`) were read at the positions the index gives and
    /// their checksums checked by a reader of this process (empty at
    /// first). A read of one of them checks everything but the CRC; a read
    /// of the record next to either edge checks it and widens the range.
    /// So each record's CRC is computed once per process, however many
    /// consumers read it (fan-out): the bytes of a published record, and
    /// its index entry, never change. A range of records, not of bytes: an
    /// index entry damaged before it was first read cannot point into
    /// checked bytes and be believed.
    verified: AtomicU64,
}

/// A reader's own hold on a segment, which its records share.
///
/// A record keeps its segment mapped by holding a reference. Were that a
/// clone of the segment's one `Arc`, every record read by every reader
/// would change the same reference count, and readers on different cores
/// (subscribers of one stream) would pass its cache line back and forth on
/// each record. A reader that reads many records (a consumer, an iterator)
/// takes one `Pin` per segment instead, and its records count on that.
#[derive(Debug)]
pub(crate) struct Pin(Arc<Segment>);

impl Pin {
    /// A new pin on `seg`.
    pub(crate) fn new(seg: Arc<Segment>) -> Arc<Pin> {
        Arc::new(Pin(seg))
    }

    /// Reads the record at `offset` of the pinned segment, held by `pin`;
    /// `None` if it is not published yet.
    pub(crate) fn read(pin: &Arc<Pin>, offset: u64) -> Result<Option<Record>> {
        Ok(pin
            .0
            .locate(offset)?
            .map(|(pos, d)| Record::new(pin.clone(), pos, d)))
    }
}

impl std::ops::Deref for Pin {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.0
    }
}

/// The writable side of the active segment, owned by the bucket's writer.
#[derive(Debug)]
pub(crate) struct ActiveWriter {
    pub(crate) seg: Arc<Segment>,
    pub(crate) map: MapWriter,
    pub(crate) file: Arc<dyn VFile>,
}

/// Checks a segment's header (see [`scan::check_header`]); an unknown
/// format version is [`Error::UnsupportedVersion`], anything else wrong
/// [`Error::Corrupt`].
fn check_header(
    path: &Path,
    head: &[u8],
    len: u64,
    base: u64,
    priority: u8,
) -> Result<SegmentHeader> {
    use crate::format::segment::{HeaderDecodeError, SEGMENT_VERSION};
    if let Err(HeaderDecodeError::Version(v)) = SegmentHeader::decode(head) {
        debug_assert_ne!(v, SEGMENT_VERSION);
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            version: v,
        });
    }
    scan::check_header(head, len, Some(base), Some(priority))
        .map_err(|d| Error::corrupt(path, d.position, d.reason))
}

impl Segment {
    /// Epoch records are written with (0 for a sealed segment).
    pub(crate) fn epoch(&self) -> u32 {
        match &self.index {
            SegIndex::Active { epoch, .. } => *epoch,
            SegIndex::Sealed { .. } => 0,
        }
    }

    /// Number of published records.
    #[inline]
    pub(crate) fn count(&self) -> u64 {
        match &self.index {
            SegIndex::Active { tail, .. } => tail.load(Ordering::Acquire) >> 32,
            SegIndex::Sealed { count, .. } => *count,
        }
    }

    /// Offset after the last published record.
    pub(crate) fn end_offset(&self) -> u64 {
        self.base + self.count()
    }

    /// Byte position after the last published record.
    pub(crate) fn data_end(&self) -> u64 {
        match &self.index {
            SegIndex::Active { tail, .. } => tail.load(Ordering::Acquire) & 0xffff_ffff,
            SegIndex::Sealed { data_end, .. } => *data_end,
        }
    }

    /// Bytes on disk (the file length).
    pub(crate) fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Reads the record at `offset`; `None` if it is not published yet.
    /// The record gets a pin of its own; readers of many records read
    /// through one pin with [`Pin::read`].
    pub(crate) fn read(self: &Arc<Self>, offset: u64) -> Result<Option<Record>> {
        Ok(self
            .locate(offset)?
            .map(|(pos, d)| Record::new(Pin::new(self.clone()), pos, d)))
    }

    /// Finds, checks and decodes the record at `offset`: its position and
    /// fields; `None` if it is not published yet.
    fn locate(&self, offset: u64) -> Result<Option<(u32, DecodedRecord)>> {
        let Some(i) = offset.checked_sub(self.base) else {
            return Ok(None);
        };
        let (pos, limit) = match &self.index {
            SegIndex::Active {
                positions, tail, ..
            } => {
                let t = tail.load(Ordering::Acquire);
                if i >= t >> 32 {
                    return Ok(None);
                }
                let Some(pos) = positions.get(i as usize) else {
                    return Ok(None);
                };
                (pos as usize, (t & 0xffff_ffff) as usize)
            }
            SegIndex::Sealed {
                idx,
                count,
                data_end,
                ..
            } => {
                if i >= *count {
                    return Ok(None);
                }
                let at = INDEX_HEADER_BYTES + i as usize * 4;
                let idx_bytes = idx.get(0..idx.len()).unwrap_or(&[]);
                if at + 4 > idx_bytes.len() {
                    return Err(Error::corrupt(
                        self.index_path(),
                        at as u64,
                        "index too short",
                    ));
                }
                (index::position(idx_bytes, i) as usize, *data_end as usize)
            }
        };
        if pos < SEGMENT_HEADER_BYTES || pos >= limit {
            return Err(Error::corrupt(
                &self.path,
                pos as u64,
                "index points outside the data",
            ));
        }
        let Some(bytes) = self.map.get(pos..limit) else {
            return Err(Error::corrupt(
                &self.path,
                pos as u64,
                "record outside the mapped data",
            ));
        };
        let verified = self.verified.load(Ordering::Acquire);
        let (start, end) = (verified >> 32, verified & 0xffff_ffff);
        if (start..end).contains(&i) {
            return match record::decode_verified(bytes, u32::MAX, Some(offset)) {
                Ok(d) => Ok(Some((pos as u32, d))),
                Err(e) => Err(Error::corrupt(&self.path, pos as u64, e.to_string())),
            };
        }
        match record::decode(bytes, self.id, u32::MAX, Some(offset)) {
            Ok(d) => {
                if d.hdr_len > 0
                    && crate::format::headers::validate(&bytes[d.headers_range()]).is_err()
                {
                    return Err(Error::corrupt(&self.path, pos as u64, "malformed headers"));
                }
                self.widen_verified(verified, i);
                Ok(Some((pos as u32, d)))
            }
            Err(e) => Err(Error::corrupt(&self.path, pos as u64, e.to_string())),
        }
    }

    /// Adds record `i`, just checked, to the verified range (read as
    /// `seen`) if it is next to it, or starts the range with it if it is
    /// empty. A lost race leaves the range as another reader set it.
    #[inline]
    fn widen_verified(&self, seen: u64, i: u64) {
        let (start, end) = (seen >> 32, seen & 0xffff_ffff);
        let (start, end) = if start == end {
            (i, i + 1)
        } else if i == end {
            (start, end + 1)
        } else if i + 1 == start {
            (i, end)
        } else {
            return;
        };
        if end > u64::from(u32::MAX) {
            return;
        }
        let new = (start << 32) | end;
        let _ = self
            .verified
            .compare_exchange(seen, new, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The bytes of a record decoded earlier by [`Segment::read`].
    #[inline]
    pub(crate) fn record_bytes(&self, pos: u32, d: &DecodedRecord) -> &[u8] {
        let start = pos as usize;
        self.map
            .get(start..start + d.len as usize)
            .expect("a decoded record stays committed")
    }

    fn index_path(&self) -> PathBuf {
        layout::index_path_of(&self.path, self.base)
    }

    /// Sets the position of record `i` (writer only; not yet published).
    #[inline]
    pub(crate) fn push(&self, i: u64, pos: u32, flags: u16) {
        if let SegIndex::Active {
            positions,
            blobs,
            attrs,
            ..
        } = &self.index
        {
            positions.set(i as usize, pos);
            if flags != 0 {
                if flags & record::FLAG_CLAIM_CHECK != 0 {
                    blobs.store(true, Ordering::Relaxed);
                }
                if flags & record::FLAG_ATTRIBUTES != 0 {
                    attrs.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Publishes the first `count` records, which end at byte `end`. One
    /// `Release` store makes both visible together.
    #[inline]
    pub(crate) fn publish(&self, count: u64, end: u64) {
        if let SegIndex::Active { tail, .. } = &self.index {
            tail.store((count << 32) | end, Ordering::Release);
        }
    }

    /// Makes everything published so far durable, and records the previous
    /// durable end in the header (see DESIGN.md, "the durable watermark").
    /// Returns the offset up to which the segment is now durable.
    pub(crate) fn sync(&self) -> std::io::Result<u64> {
        let SegIndex::Active {
            tail,
            synced_end,
            epoch,
            ..
        } = &self.index
        else {
            return Ok(self.end_offset());
        };
        let t = tail.load(Ordering::Acquire);
        let (count, end) = (t >> 32, t & 0xffff_ffff);
        let prev = synced_end.load(Ordering::Relaxed);
        let state = SegmentState {
            epoch: *epoch,
            synced_end: prev,
            clean: false,
        };
        self.map.write_header(STATE_OFFSET, &state.encode(self.id));
        self.map.flush(0..end as usize)?;
        synced_end.store(end, Ordering::Relaxed);
        Ok(self.base + count)
    }

    /// Makes the epoch of this writer durable in the header (with the clean
    /// flag cleared), before the first record of that epoch is written into
    /// a segment that was opened after a clean close.
    pub(crate) fn raise_epoch(&self) -> std::io::Result<()> {
        let SegIndex::Active {
            synced_end, epoch, ..
        } = &self.index
        else {
            return Ok(());
        };
        let state = SegmentState {
            epoch: *epoch,
            synced_end: synced_end.load(Ordering::Relaxed),
            clean: false,
        };
        self.map.write_header(STATE_OFFSET, &state.encode(self.id));
        self.map.flush(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
    }

    /// Marks the segment closed cleanly, after a final [`Segment::sync`]
    /// with no append since: the next open need not look past the end.
    pub(crate) fn mark_clean(&self) -> std::io::Result<()> {
        let SegIndex::Active { tail, epoch, .. } = &self.index else {
            return Ok(());
        };
        let end = tail.load(Ordering::Acquire) & 0xffff_ffff;
        let state = SegmentState {
            epoch: *epoch,
            synced_end: end,
            clean: true,
        };
        self.map.write_header(STATE_OFFSET, &state.encode(self.id));
        self.map.flush(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
    }

    /// The claim-check blobs its records refer to: from the index of a
    /// sealed segment, by reading the records of the active one.
    pub(crate) fn blob_refs(&self) -> Vec<[u8; 32]> {
        match &self.index {
            SegIndex::Sealed { idx, ih, .. } => {
                let b = idx.get(0..idx.len()).unwrap_or(&[]);
                index::blob_refs(b, ih).collect()
            }
            SegIndex::Active { blobs, .. } => {
                if !blobs.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                let end = self.data_end() as usize;
                let mut refs = std::collections::BTreeSet::new();
                for p in self.positions() {
                    let Some(rec) = self.map.get(p as usize..end) else {
                        continue;
                    };
                    // Published records were checked when written or
                    // recovered: only the flags are needed here.
                    if let Some((flags, body)) = record::peek(rec) {
                        if flags & record::FLAG_CLAIM_CHECK != 0 {
                            if let Some((hash, _)) = record::decode_claim_check(&rec[body]) {
                                refs.insert(hash);
                            }
                        }
                    }
                }
                refs.into_iter().collect()
            }
        }
    }

    /// The deduplication ids of its records, in offset order: from the
    /// index of a sealed segment (its records are not read), from the
    /// records of the active one (not checksummed again: they were when
    /// written or recovered), only if one may carry attributes.
    pub(crate) fn ids(&self) -> Vec<IdEntry<'_>> {
        match &self.index {
            SegIndex::Sealed { idx, ih, .. } => {
                let b = idx.get(0..idx.len()).unwrap_or(&[]);
                index::ids(b, ih).collect()
            }
            SegIndex::Active { attrs, .. } => {
                if !attrs.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                let end = self.data_end() as usize;
                let data = self.map.get(SEGMENT_HEADER_BYTES..end).unwrap_or(&[]);
                scan::ids_at(data, SEGMENT_HEADER_BYTES, None, &self.positions())
            }
        }
    }

    /// Positions of all published records (for sealing).
    pub(crate) fn positions(&self) -> Vec<u32> {
        match &self.index {
            SegIndex::Active { positions, .. } => (0..self.count() as usize)
                .map(|i| positions.get(i).unwrap_or(0))
                .collect(),
            SegIndex::Sealed { idx, count, .. } => {
                let b = idx.get(0..idx.len()).unwrap_or(&[]);
                (0..*count).map(|i| index::position(b, i)).collect()
            }
        }
    }

    /// Segment header (for sealing).
    pub(crate) fn header(&self) -> SegmentHeader {
        let mut hb = [0u8; 64];
        if self.map.len() >= SEGMENT_HEADER_BYTES {
            match &self.index {
                SegIndex::Active { .. } => self.map.read_header(0, &mut hb),
                SegIndex::Sealed { .. } => {
                    hb.copy_from_slice(self.map.get(0..64).unwrap_or(&[0; 64]))
                }
            }
        }
        let mut full = [0u8; SEGMENT_HEADER_BYTES];
        full[..64].copy_from_slice(&hb);
        SegmentHeader::decode(&full).unwrap_or(SegmentHeader {
            bucket: self.priority as u32,
            segment_id: self.id,
            base_offset: self.base,
            created_us: 0,
            file_bytes: self.map.len() as u64,
        })
    }
}

/// The active segment as found on disk, before recovery decides where its
/// data ends.
pub(crate) struct RawActive {
    pub(crate) path: PathBuf,
    pub(crate) priority: u8,
    pub(crate) header: SegmentHeader,
    pub(crate) state: Option<SegmentState>,
    pub(crate) map: Arc<SharedMap>,
    pub(crate) writer: MapWriter,
    pub(crate) file: Arc<dyn VFile>,
}

impl RawActive {
    /// Finishes opening: publishes `positions` (ending at `end`) as the
    /// segment's records and returns the writer.
    pub(crate) fn into_writer(mut self, positions: &[u32], end: u64, epoch: u32) -> ActiveWriter {
        let capacity = (self.map.len() - SEGMENT_HEADER_BYTES) / RECORD_HEADER_BYTES;
        let idx = AppendIndex::new(capacity);
        for (i, p) in positions.iter().enumerate() {
            idx.set(i, *p);
        }
        self.writer.commit(end as usize);
        let seg = Arc::new(Segment {
            path: self.path,
            priority: self.priority,
            base: self.header.base_offset,
            id: self.header.segment_id,
            map: self.map,
            index: SegIndex::Active {
                positions: idx,
                tail: AtomicU64::new(((positions.len() as u64) << 32) | end),
                synced_end: AtomicU64::new(end),
                epoch,
                blobs: AtomicBool::new(true),
                attrs: AtomicBool::new(true),
            },
            verified: AtomicU64::new(0),
        });
        ActiveWriter {
            seg,
            map: self.writer,
            file: self.file,
        }
    }
}

/// Maps and checks an index file ([`index_file::check`]); `None` if it is
/// missing or unusable (the caller rebuilds it).
fn load_index(
    ctx: &Ctx,
    path: &Path,
    header: &SegmentHeader,
    count: u64,
    segment_len: u64,
) -> Result<Option<(Arc<SharedMap>, index::IndexHeader)>> {
    let file = match ctx.vfs.open(path, OpenMode::ReadOnly) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let len = file.len().map_err(|e| Error::io("stat", path, e))?;
    // Positions, blob references, and ids (no more than the segment).
    let max = (INDEX_HEADER_BYTES as u64 + count.saturating_mul(4) + (1 << 26))
        .saturating_add(segment_len);
    if len < INDEX_HEADER_BYTES as u64 || len > max {
        return Ok(None);
    }
    let map = SharedMap::read_only(file.map_read(len).map_err(|e| Error::io("map", path, e))?);
    let b = map.get(0..map.len()).unwrap_or(&[]);
    Ok(index_file::check(b, header, Some(count), segment_len)
        .ok()
        .map(|ih| (map.clone(), ih)))
}

/// Writes the index of a sealed segment (temporary file, sync, rename, sync
/// directory).
pub(crate) fn write_index(
    ctx: &Ctx,
    dir: &Path,
    header: &SegmentHeader,
    positions: &[u32],
    data_end: u64,
    blob_refs: &[[u8; 32]],
    ids: &[IdEntry<'_>],
) -> Result<()> {
    let bytes = index_file::encode(header, positions, data_end, blob_refs, ids);
    io::write_file_atomic(
        &*ctx.vfs,
        dir,
        &layout::index_file_name(header.base_offset),
        &bytes,
    )
}
