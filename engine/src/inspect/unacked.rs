//! The oldest unacknowledged message of each consumer bucket: its offset
//! (the ack floor, or the first retained offset if retention removed those
//! below it) and its timestamp, read from the one record, as
//! `Consumer::stats` reads it in the engine.
//!
//! A sealed segment with a valid index is read at the record alone (its
//! position from the index, then the record, checked as the engine reads
//! it); the first and last records' timestamps are known from the segment's
//! analysis; any other record is found by scanning its segment again (the
//! active segment, or a sealed one whose index is unusable).

use super::read::{open_file, read_at_most, Bounded};
use super::segment::decode_at;
use super::{BucketInfo, ConsumerInfo, IndexStatus, Inspector, SegmentInfo};
use crate::format::index::INDEX_HEADER_BYTES;
use crate::format::record::{self, LEN_OFFSET, RECORD_HEADER_BYTES};
use crate::layout;
use crate::log::scan::{self, Scan};
use crate::options::SEGMENT_BYTES_LIMIT;
use std::collections::HashMap;
use std::path::PathBuf;

/// The segment scanned last, kept for the next consumer of its bucket.
type Scanned = Option<(PathBuf, Vec<u8>, Scan)>;

impl Inspector<'_> {
    /// Sets the oldest unacknowledged offset and its timestamp of every
    /// bucket of `consumers`, from the buckets found (`buckets`).
    pub(super) fn fill_oldest_unacked(
        &self,
        consumers: &mut [ConsumerInfo],
        buckets: &[BucketInfo],
    ) {
        let mut known: HashMap<(u8, u64), Option<u64>> = HashMap::new();
        let mut scanned: Scanned = None;
        for c in consumers.iter_mut() {
            for b in &mut c.buckets {
                let Some(bucket) = buckets.iter().find(|k| k.priority == b.priority) else {
                    continue;
                };
                let Some(end) = b.end_offset else { continue };
                let oldest = b.ack_floor.max(bucket.first_offset.unwrap_or(0));
                if oldest >= end {
                    continue;
                }
                b.oldest_unacked_offset = Some(oldest);
                b.oldest_unacked_timestamp_us = *known
                    .entry((b.priority, oldest))
                    .or_insert_with(|| self.timestamp_at(bucket, oldest, &mut scanned));
            }
        }
    }

    /// Timestamp of the record at `offset` of `bucket`, if it is readable.
    fn timestamp_at(&self, bucket: &BucketInfo, offset: u64, scanned: &mut Scanned) -> Option<u64> {
        let seg = bucket.segments.iter().find(|s| {
            s.base_offset()
                .is_some_and(|b| b <= offset && offset - b < s.record_count)
        })?;
        let base = seg.base_offset()?;
        let i = offset - base;
        if i == 0 {
            return seg.first_timestamp_us;
        }
        if i + 1 == seg.record_count {
            return seg.last_timestamp_us;
        }
        if seg.sealed && seg.index == IndexStatus::Valid {
            if let Some(ts) = self.timestamp_through_index(seg, base, offset) {
                return Some(ts);
            }
        }
        self.timestamp_by_scan(seg, offset, scanned)
    }

    /// Through the segment's index: the record's position, then the record.
    fn timestamp_through_index(&self, seg: &SegmentInfo, base: u64, offset: u64) -> Option<u64> {
        let header = seg.header?;
        let idx = open_file(self.vfs, &layout::index_path_of(&seg.path, base)).ok()??;
        let at = INDEX_HEADER_BYTES as u64 + 4 * (offset - base);
        let pos = read_at_most(&*idx, at, 4).ok()?;
        let pos = u64::from(u32::from_le_bytes(pos.as_slice().try_into().ok()?));
        let f = open_file(self.vfs, &seg.path).ok()??;
        let head = read_at_most(&*f, pos, RECORD_HEADER_BYTES as u64).ok()?;
        let len = head.get(LEN_OFFSET..LEN_OFFSET + 4)?;
        let len = u64::from(u32::from_le_bytes(len.try_into().ok()?));
        if len > SEGMENT_BYTES_LIMIT {
            return None;
        }
        let rec = read_at_most(&*f, pos, len).ok()?;
        record::decode(&rec, header.segment_id, u32::MAX, Some(offset))
            .ok()
            .map(|d| d.timestamp_us)
    }

    /// By scanning the segment again (kept in `scanned` for the next call).
    fn timestamp_by_scan(
        &self,
        seg: &SegmentInfo,
        offset: u64,
        scanned: &mut Scanned,
    ) -> Option<u64> {
        let header = seg.header?;
        if scanned.as_ref().is_none_or(|(p, _, _)| *p != seg.path) {
            *scanned = None;
            let Ok(Bounded::Bytes(bytes)) = self.read_segment_bytes(&seg.path, !seg.sealed) else {
                return None;
            };
            let epoch = if seg.sealed {
                None
            } else {
                seg.state.map(|s| s.epoch)
            };
            let scan = scan::scan_file(&bytes, &header, epoch);
            *scanned = Some((seg.path.clone(), bytes, scan));
        }
        let (_, bytes, scan) = scanned.as_ref()?;
        let i = usize::try_from(offset.checked_sub(header.base_offset)?).ok()?;
        decode_at(bytes, &header, scan, i).map(|d| d.timestamp_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Options, Store};

    /// Each way to a record's timestamp finds that record's, and the index
    /// is used where it is valid.
    #[test]
    fn index_and_scan_find_the_record_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default()
            .durability(Durability::Never)
            .segment_bytes_max(64 * 1024);
        let store = Store::open(dir.path(), opts).unwrap();
        let s = store.stream("s").unwrap();
        for _ in 0..150 {
            s.send(&[3u8; 1000]).unwrap();
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        let ts: Vec<u64> = (0..150)
            .map(|o| s.read(o).unwrap().unwrap().timestamp_us())
            .collect();
        drop(s);
        store.close().unwrap();
        let info = super::super::inspect_store(dir.path()).unwrap();
        let bucket = &info.streams[0].buckets[0];
        let sealed = &bucket.segments[0];
        assert!(sealed.sealed && sealed.index == IndexStatus::Valid);
        let active = bucket.segments.last().unwrap();
        let active_base = active.base_offset().unwrap();
        let ins = Inspector::real();
        for o in [1, 17, sealed.record_count - 2] {
            assert_eq!(
                ins.timestamp_through_index(sealed, 0, o),
                Some(ts[o as usize])
            );
        }
        // Past the segment: nothing (no record there has that offset).
        assert_eq!(
            ins.timestamp_through_index(sealed, 0, sealed.record_count),
            None
        );
        let mut scanned = None;
        for o in [active_base + 1, 148, active_base + 2] {
            assert_eq!(
                ins.timestamp_by_scan(active, o, &mut scanned),
                Some(ts[o as usize])
            );
        }
        for o in [0, 30, active_base, 149] {
            assert_eq!(
                ins.timestamp_at(bucket, o, &mut scanned),
                Some(ts[o as usize])
            );
        }
        assert_eq!(ins.timestamp_at(bucket, 150, &mut scanned), None);
    }
}
