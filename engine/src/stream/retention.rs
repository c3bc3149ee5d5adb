//! Retention: which sealed segments may go (DESIGN.md §7).

use super::StreamInner;
use crate::blob::Pending;
use crate::limits::micros_saturating;
use crate::Result;

/// What a retention pass did: the bytes of the files it removed, and, when
/// it removed any in a store with blobs, the "collection due" mark it made
/// durable before the first removal. The caller collects blobs and then
/// settles the mark; a crash (or a failed collection) in between leaves the
/// mark, and the next open collects, so a blob the deleted segments alone
/// referred to is never left behind.
#[must_use = "collect blobs after a pass that freed space, then settle the mark"]
pub(crate) struct Pass {
    pub freed: u64,
    pub due: Option<Pending>,
}

impl StreamInner {
    /// Deletes the sealed segments that retention allows (see
    /// [`super::Stream::apply_retention`]).
    pub(crate) fn apply_retention(&self) -> Result<Pass> {
        // One pass at a time: two would write the same temporary file of
        // the low-water mark, and delete the same segments.
        let _one = self.retention.lock().unwrap_or_else(|e| e.into_inner());
        self.ctx.check()?;
        self.check_live()?;
        let consumers = self.consumer_list();
        let mut freed = 0;
        // The blob collection mark, made once per pass (`None` also when
        // the store has no blobs).
        let (mut marked, mut due) = (false, None);
        // Ids of this timestamp or later are within the dedup window: a
        // segment deleted with some keeps them (DESIGN.md §7.1).
        let keep_ids_from = match micros_saturating(self.config.dedup_window) {
            0 => None,
            w => Some(crate::ctx::now_us().saturating_sub(w)),
        };
        for b in &self.buckets {
            // Best effort: one that fails is removed by a later pass.
            let _ = b.prune_kept(keep_ids_from.unwrap_or(u64::MAX));
            let sealed = b.sealed_segments();
            let Some(&(first_base, first_end)) = sealed.first() else {
                continue;
            };
            let mut new_first = first_base;
            if !consumers.is_empty() {
                // Interest: only acknowledged, checkpointed floors count, so
                // a crash can never bring back a floor below deleted data.
                let in_memory = consumers
                    .iter()
                    .map(|c| c.floors()[b.priority as usize])
                    .min()
                    .unwrap_or(0);
                if in_memory >= first_end {
                    let mut floor = u64::MAX;
                    for c in &consumers {
                        floor = floor.min(c.checkpoint_floors()?[b.priority as usize]);
                    }
                    for &(_, end) in &sealed {
                        if end <= floor {
                            new_first = new_first.max(end);
                        }
                    }
                }
            }
            if let Some(age) = self.config.max_age {
                let cutoff = crate::ctx::now_us().saturating_sub(micros_saturating(age));
                for &(base, end) in &sealed {
                    match b.sealed_last_timestamp(base, end)? {
                        Some(ts) if ts < cutoff => new_first = new_first.max(end),
                        _ => break,
                    }
                }
            }
            if let Some(max) = self.config.max_bytes {
                let mut total = b.file_bytes();
                for &(base, end) in &sealed {
                    if total <= max {
                        break;
                    }
                    total = total.saturating_sub(b.segment_file_bytes(base));
                    new_first = new_first.max(end);
                }
            }
            if new_first > first_base {
                if !marked {
                    // Before the first segment goes: the references it
                    // holds may be some blobs' last.
                    due = self.blobs.mark_collection_due()?;
                    marked = true;
                }
                let bytes = b.delete_before(new_first, keep_ids_from)?;
                freed += bytes;
                let segments = sealed.iter().filter(|&&(_, end)| end <= new_first).count();
                tracing::info!(
                    target: crate::events::RETENTION,
                    stream = %self.name(),
                    priority = b.priority,
                    segments,
                    bytes,
                    low_water = b.first_offset(),
                    "segments deleted"
                );
            }
        }
        if freed > 0 && (self.config.max_age.is_some() || self.config.max_bytes.is_some()) {
            // Age and size may delete what a consumer had not acknowledged:
            // it is moved past them and counts them as skipped now, with a
            // checkpoint (as a purge does), so that an ack journaled later
            // that covers them cannot hide them from the count an open
            // makes. A consumer that skipped nothing writes nothing; one
            // whose checkpoint fails (a full disk) counts them at its next
            // read, as before, and the pass still succeeds: it freed space.
            let logs: Vec<_> = (0..self.priorities()).map(|p| self.log_range(p)).collect();
            for c in &consumers {
                let _ = c.clamp_to(&logs);
            }
        }
        Ok(Pass { freed, due })
    }
}
