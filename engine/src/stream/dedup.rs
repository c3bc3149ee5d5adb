//! A stream's deduplication window: the message ids sent within the last
//! [`StreamConfig::dedup_window`](crate::StreamConfig::dedup_window), and
//! where each was stored (DESIGN.md, "Deduplication").

use crate::log::Bucket;
use crate::Result;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Where the first message of an id was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Its priority level.
    pub priority: u8,
    /// Its offset within the level's bucket.
    pub offset: u64,
    /// Its record's timestamp (µs since the Unix epoch).
    pub ts: u64,
}

/// The ids of a stream within its window. Behind the stream's dedup lock,
/// which a send with an id holds across its look-up, its append and its
/// insertion, so that of concurrent sends of one id exactly one stores.
#[derive(Debug)]
pub(crate) struct Window {
    window_us: u64,
    /// The ids of the log have been read in (at the first send with an id
    /// since the open: see [`Window::load`]).
    loaded: bool,
    map: HashMap<Arc<[u8]>, Seen>,
    /// Ids by insertion, oldest first, to forget them (roughly in
    /// timestamp order: a look-up checks the timestamp itself). Each id is
    /// stored once, shared with the map.
    order: VecDeque<(u64, Arc<[u8]>)>,
}

impl Window {
    /// An empty window of `window_us` microseconds.
    pub(crate) fn new(window_us: u64) -> Window {
        Window {
            window_us,
            loaded: false,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Reads in, once, the ids of the stream's records of the last window
    /// before `now_us` (see [`Bucket::recent_ids`]: no sealed segment's
    /// records are read). Called under the dedup lock by the first send
    /// with an id after the open, before its look-up: every record with an
    /// id written since the open was written by such a send, so none is
    /// missed, and an open (or a stream that never sends ids) pays
    /// nothing. An id found more than once (a retry after a crash that
    /// took its entry, never an acknowledged send's) maps to its earliest
    /// record.
    pub(crate) fn load(&mut self, buckets: &[Bucket], now_us: u64) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        let mut w = Window::new(self.window_us);
        let window_us = self.window_us;
        let cutoff = now_us.saturating_sub(window_us);
        let mut found = Vec::new();
        for b in buckets {
            for (id, offset, ts) in b.recent_ids(cutoff)? {
                found.push((
                    id,
                    Seen {
                        priority: b.priority,
                        offset,
                        ts,
                    },
                ));
            }
        }
        found.sort_by_key(|(_, s)| (s.ts, s.priority, s.offset));
        for (id, seen) in found {
            if !w.map.contains_key(&*id) {
                let id: Arc<[u8]> = id.into();
                w.order.push_back((seen.ts, id.clone()));
                w.map.insert(id, seen);
            }
        }
        w.loaded = true;
        *self = w;
        Ok(())
    }

    /// The first message of `id` if it was stored within the window before
    /// `now_us`.
    pub(crate) fn get(&mut self, id: &[u8], now_us: u64) -> Option<Seen> {
        self.forget_before(now_us);
        let seen = *self.map.get(id)?;
        (seen.ts.saturating_add(self.window_us) > now_us).then_some(seen)
    }

    /// Records that the first message of `id` was stored as `seen`.
    pub(crate) fn insert(&mut self, id: &[u8], seen: Seen) {
        let key: Arc<[u8]> = id.into();
        self.order.push_back((seen.ts, key.clone()));
        self.map.insert(key, seen);
    }

    /// Forgets everything, to be read in again from the log by the next
    /// send with an id (after a purge: the ids of the messages it removed
    /// are in no retained segment, so a reopen would not find them either;
    /// forgetting them now keeps the window what the log says).
    pub(crate) fn reset(&mut self) {
        *self = Window::new(self.window_us);
    }

    /// Ids remembered (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Forgets the ids older than the window, oldest first: memory stays
    /// bounded by the ids sent within one window.
    fn forget_before(&mut self, now_us: u64) {
        while let Some((ts, _)) = self.order.front() {
            if ts.saturating_add(self.window_us) > now_us {
                break;
            }
            let Some((ts, id)) = self.order.pop_front() else {
                break;
            };
            // Only if it is the same entry (an id stored again after its
            // window ended has a newer one).
            if self.map.get(&id).is_some_and(|s| s.ts == ts) {
                self.map.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(offset: u64, ts: u64) -> Seen {
        Seen {
            priority: 0,
            offset,
            ts,
        }
    }

    #[test]
    fn an_id_is_remembered_for_its_window_only() {
        let mut w = Window::new(100);
        assert_eq!(w.get(b"a", 1_000), None);
        w.insert(b"a", seen(7, 1_000));
        assert_eq!(w.get(b"a", 1_099), Some(seen(7, 1_000)));
        assert_eq!(w.get(b"b", 1_099), None);
        assert_eq!(w.get(b"a", 1_100), None);
        // Forgotten: memory is bounded by the window.
        assert_eq!(w.len(), 0);
        // Stored again after its window: the new entry counts, and the old
        // one's order entry does not remove it.
        w.insert(b"a", seen(9, 1_200));
        w.insert(b"c", seen(10, 1_250));
        assert_eq!(w.get(b"a", 1_260), Some(seen(9, 1_200)));
        assert_eq!(w.get(b"a", 1_300), None);
        assert_eq!(w.get(b"c", 1_300), Some(seen(10, 1_250)));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn an_entry_out_of_order_is_judged_by_its_own_timestamp() {
        let mut w = Window::new(100);
        w.insert(b"new", seen(1, 1_000));
        // Inserted later with an older timestamp (another level's clock).
        w.insert(b"old", seen(2, 900));
        assert_eq!(w.get(b"old", 1_000), None);
        assert_eq!(w.get(b"new", 1_000), Some(seen(1, 1_000)));
    }
}
