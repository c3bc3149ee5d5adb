//! What a stream's deduplication window and capacity limits ask of a
//! bucket: the ids of its recent records (at open) and the segment files
//! an append would create.

use super::*;

/// A deduplication id found in the log: the id, its record's offset and
/// timestamp.
pub(crate) type FoundId = (Box<[u8]>, u64, u64);

impl Bucket {
    /// The ids of the records whose timestamp is `cutoff_us` or later, in
    /// no particular order. Reads the active segment's records (as recovery
    /// did) and, for the sealed segments, newest first, only their index's
    /// id section and their 64-byte static header, never their records,
    /// while they can hold a record of `cutoff_us` or later: a segment's
    /// created time is at least the newest timestamp of every segment
    /// before it (a roll creates it so), so the walk stops at the first
    /// segment whose successor was created before the cutoff. A sealed
    /// segment whose index is missing or unusable is opened, which rebuilds
    /// the index from its records (as any first read would).
    ///
    /// The ids of deleted segments' kept-ids files (DESIGN.md §7.1) count
    /// too: they are older than every retained segment, so they are read
    /// only when the walk reached the oldest one without stopping; those a
    /// window old, or unusable, are removed.
    pub(crate) fn recent_ids(&self, cutoff_us: u64) -> Result<Vec<FoundId>> {
        // Across the walk: a deletion in between cannot take a segment
        // from the walk before its ids are in its kept file.
        let mut kept = lock(&self.kept);
        let slots: Vec<Arc<Slot>> = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = Vec::new();
        let mut keep = |offset: u64, ts: u64, id: &[u8]| {
            if ts >= cutoff_us {
                out.push((Box::<[u8]>::from(id), offset, ts));
            }
        };
        let active = self.active_segment();
        for e in active.ids() {
            keep(e.offset, e.timestamp_us, e.id);
        }
        // At least every timestamp of the segments before the one looked at.
        let mut upper = active.header().created_us;
        for slot in slots.iter().rev().skip(1) {
            if upper < cutoff_us {
                break;
            }
            let count = slot.count.unwrap_or(0);
            if let Some(seg) = slot.seg.get() {
                for e in seg.ids() {
                    keep(e.offset, e.timestamp_us, e.id);
                }
                upper = seg.header().created_us;
                continue;
            }
            let (header, len) =
                Segment::read_static_header(&self.ctx, &self.dir, self.priority, slot.base)?;
            match Segment::ids_from_index(&self.ctx, &self.dir, &header, count, len)? {
                Some(ids) => {
                    for (offset, ts, id) in ids {
                        keep(offset, ts, &id);
                    }
                }
                None => {
                    let seg = self.load(slot, slot.base)?;
                    for e in seg.ids() {
                        keep(e.offset, e.timestamp_us, e.id);
                    }
                }
            }
            upper = header.created_us;
        }
        if !kept.is_empty() {
            // Every kept id is older than `upper`: out of the window (and
            // removed without being read) once `upper` is.
            let cutoff = match upper < cutoff_us {
                true => u64::MAX,
                false => cutoff_us,
            };
            self.walk_kept(&mut kept, cutoff, Some(&mut out))?;
        }
        Ok(out)
    }

    /// How many new segment files appending records of the stored lengths
    /// `sizes` (in order) would create now. Exact while no other append to
    /// the bucket runs in between (the caller holds the stream's capacity
    /// lock, which every send of a bounded stream takes).
    pub(crate) fn rolls_for(&self, sizes: impl IntoIterator<Item = u64>) -> u64 {
        let w = lock(&self.writer);
        let mut pos = w.write_pos;
        let mut file = w.active.seg.file_bytes();
        let mut rolls = 0;
        for s in sizes {
            if pos + s > file {
                rolls += 1;
                pos = SEGMENT_HEADER_BYTES as u64;
                file = self.ctx.opts.segment_bytes_max;
            }
            pos += s;
        }
        rolls
    }

    /// Messages held: from the first retained offset to the end.
    pub(crate) fn held_messages(&self) -> u64 {
        self.end_offset()
            .saturating_sub(self.low.load(Ordering::Acquire))
    }
}
