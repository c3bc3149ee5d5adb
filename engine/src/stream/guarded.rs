//! The guarded send path: messages with an id on a stream that
//! deduplicates, and every send to a bounded stream. It takes the stream's
//! capacity lock (bounded streams) and its dedup lock (messages with ids)
//! across the decision, the append and the window's update; every other
//! send never comes here (one test of a flag the checks set).

use super::dedup::Seen;
use super::send::{Appended, Plan, Touched};
use super::Stream;
use crate::blob::Pending;
use crate::ctx::now_us;
use crate::format::record::{self, encode_claim_check, CLAIM_CHECK_BYTES, FLAG_CLAIM_CHECK};
use crate::log::bucket::Prepared;
use crate::message::Message;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What becomes of one message of a guarded batch.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Stored: the `k`-th message appended.
    Store(usize),
    /// A duplicate of a message stored before the batch.
    Known(Seen),
    /// A duplicate of the `i`-th message of the batch.
    SameAs(usize),
}

impl Stream {
    /// [`Stream::send_message`] on the guarded path.
    pub(super) fn send_guarded(&self, msg: Message<'_>) -> Result<u64> {
        let offsets = self.send_batch([msg])?;
        Ok(offsets.first().copied().unwrap_or(0))
    }

    /// Appends a batch on the guarded path (see [`Stream::send_batch`]):
    /// under the locks, each message with an id already in the window, or
    /// earlier in the batch, is a duplicate (not stored; it gets the
    /// first's offset); the rest must fit the stream's capacity, or the
    /// whole batch is refused; the rest is appended as any batch, and the
    /// window learns the ids it stored. The wait for durability (the
    /// caller's, after the locks are let go) covers the originals the
    /// duplicates point at.
    ///
    /// `plan` is the plan of all of `all`; it is used as it is when nothing
    /// turns out a duplicate (the common case), and made again for what is
    /// stored otherwise.
    pub(super) fn append_guarded<'m>(&self, all: Vec<Message<'m>>, plan: Plan) -> Result<Appended> {
        let _capacity = self.inner.capacity.as_ref().map(lock);
        let mut window = match &self.inner.dedup {
            Some(w) if all.iter().any(|m| m.attrs().id.is_some()) => Some(lock(w)),
            _ => None,
        };
        let now = now_us();
        if let Some(w) = window.as_mut() {
            w.load(&self.inner.buckets, now)?;
        }
        let mut fates = Vec::with_capacity(all.len());
        let mut stored: Vec<&Message<'m>> = Vec::with_capacity(all.len());
        let mut first: HashMap<&[u8], usize> = HashMap::new();
        for (i, m) in all.iter().enumerate() {
            if let (Some(w), Some(id)) = (window.as_mut(), m.attrs().id) {
                if let Some(seen) = w.get(id, now) {
                    fates.push(Fate::Known(seen));
                    continue;
                }
                // (One message cannot repeat itself: no map for it.)
                if all.len() > 1 {
                    if let Some(&j) = first.get(id) {
                        fates.push(Fate::SameAs(j));
                        continue;
                    }
                    first.insert(id, i);
                }
            }
            fates.push(Fate::Store(stored.len()));
            stored.push(m);
        }
        if self.inner.bounded() {
            let mut sizes = Vec::with_capacity(stored.len());
            for m in &stored {
                let shape = self.check(m)?;
                sizes.push((m.priority, shape.stored_len(m.payload.len())));
            }
            self.check_capacity(&sizes)?;
        }
        let (stored_offsets, mut touched, pending) = if stored.is_empty() {
            (Vec::new(), Touched::new(), Vec::new())
        } else {
            let msgs = stored.iter().map(|m| (*m).clone());
            let plan = if stored.len() == all.len() {
                plan
            } else {
                self.plan(msgs.clone())?
            };
            let ends: Vec<u64> = self.inner.buckets.iter().map(|b| b.end_offset()).collect();
            match self.append_planned(msgs, plan) {
                Ok(appended) => appended,
                Err(e) => {
                    if let Some(w) = window.as_mut() {
                        self.learn_ids(w, &ends);
                    }
                    return Err(e);
                }
            }
        };
        let mut offsets: Vec<u64> = Vec::with_capacity(all.len());
        for (m, fate) in all.iter().zip(&fates) {
            let offset = match *fate {
                Fate::Store(k) => {
                    let offset = stored_offsets.get(k).copied().unwrap_or(0);
                    if let (Some(w), Some(id)) = (window.as_mut(), m.attrs().id) {
                        w.insert(
                            id,
                            Seen {
                                priority: m.priority,
                                offset,
                                ts: touched.ts[m.priority as usize],
                            },
                        );
                    }
                    offset
                }
                Fate::Known(seen) => {
                    touched.wait_for(seen.priority, seen.offset + 1);
                    seen.offset
                }
                Fate::SameAs(j) => offsets.get(j).copied().unwrap_or(0),
            };
            offsets.push(offset);
        }
        Ok((offsets, touched, pending))
    }

    /// After a failed append: the part a roll sealed before the failure is
    /// in the log (DESIGN §10), so its ids go into the window (read from
    /// the records past `ends`, each bucket's end before the append): a
    /// retry finds them instead of storing them again. Only sends holding
    /// the dedup lock append ids, so nothing else is found there.
    fn learn_ids(&self, w: &mut super::dedup::Window, ends: &[u64]) {
        for (b, &from) in self.inner.buckets.iter().zip(ends) {
            for offset in from..b.end_offset() {
                let Ok(Some(r)) = b.read(offset) else {
                    continue;
                };
                if let Some(id) = r.message_id() {
                    let seen = Seen {
                        priority: b.priority,
                        offset,
                        ts: r.timestamp_us(),
                    };
                    w.insert(id, seen);
                }
            }
        }
    }

    /// [`Stream::send_reader`] on the guarded path: the blob is stored (and
    /// the reader read) only if the message is not a duplicate and fits.
    pub(super) fn send_reader_guarded(
        &self,
        reader: impl std::io::Read,
        msg: Message<'_>,
        shape: super::send::Shape<'_>,
    ) -> Result<u64> {
        let capacity = self.inner.capacity.as_ref().map(lock);
        let msg_id = msg.attrs().id;
        let mut window = match (&self.inner.dedup, msg_id) {
            (Some(w), Some(_)) => Some(lock(w)),
            _ => None,
        };
        let bucket = &self.inner.buckets[msg.priority as usize];
        if let (Some(w), Some(id)) = (window.as_mut(), msg_id) {
            let now = now_us();
            w.load(&self.inner.buckets, now)?;
            if let Some(seen) = w.get(id, now) {
                drop(window);
                drop(capacity);
                self.after_append(&self.inner.buckets[seen.priority as usize], seen.offset + 1)?;
                return Ok(seen.offset);
            }
        }
        let stored = record::stored_len(shape.hdr_len, CLAIM_CHECK_BYTES);
        if self.inner.bounded() {
            self.check_capacity(&[(msg.priority, stored)])?;
        }
        let hold = self.inner.blobs.hold();
        let (cc, pending) = self.inner.blobs.put_reader(reader)?;
        let reference = encode_claim_check(&cc.hash, cc.len);
        let p = Prepared {
            headers: msg.headers,
            hdr_len: shape.hdr_len,
            body: &reference,
            flags: FLAG_CLAIM_CHECK | shape.attribute_flags(),
            attrs: shape.attrs,
        };
        let (range, ts) = bucket.append_stamped(std::iter::once(Ok(p)), stored)?;
        drop(hold);
        if let (Some(w), Some(id)) = (window.as_mut(), msg_id) {
            let seen = Seen {
                priority: msg.priority,
                offset: range.start,
                ts,
            };
            w.insert(id, seen);
        }
        drop(window);
        drop(capacity);
        self.after_append(bucket, range.end)?;
        Pending::settle(pending);
        Ok(range.start)
    }

    /// Under the capacity lock: whether records of the stored lengths
    /// `sizes` (level, bytes; in send order) fit the stream's capacity. If
    /// not, retention runs once (consumers may have acknowledged whole
    /// segments since it last ran) and the check is made again;
    /// [`Error::StreamFull`] if they still do not fit.
    fn check_capacity(&self, sizes: &[(u8, u64)]) -> Result<()> {
        if self.over_capacity(sizes).is_none() {
            return Ok(());
        }
        self.apply_retention()?;
        match self.over_capacity(sizes) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The [`Error::StreamFull`] that storing records of `sizes` now would
    /// meet, if any.
    fn over_capacity(&self, sizes: &[(u8, u64)]) -> Option<Error> {
        let config = &self.inner.config;
        let buckets = &self.inner.buckets;
        let full = |held, capacity, unit| {
            Some(Error::StreamFull {
                name: self.inner.name.clone(),
                held,
                capacity,
                unit,
            })
        };
        if let Some(capacity) = config.capacity_messages {
            let held: u64 = buckets.iter().map(|b| b.held_messages()).sum();
            let after = held.saturating_add(sizes.len() as u64);
            if after > capacity {
                return full(after, capacity, "messages");
            }
        }
        if let Some(capacity) = config.capacity_bytes {
            let held: u64 = buckets.iter().map(|b| b.file_bytes()).sum();
            let segment = self.inner.ctx.opts.segment_bytes_max;
            let new: u64 = buckets
                .iter()
                .filter(|b| sizes.iter().any(|&(p, _)| p == b.priority))
                .map(|b| {
                    let level = sizes.iter().filter(|&&(p, _)| p == b.priority);
                    b.rolls_for(level.map(|&(_, s)| s)).saturating_mul(segment)
                })
                .sum();
            let after = held.saturating_add(new);
            if after > capacity {
                return full(after, capacity, "bytes");
            }
        }
        None
    }
}
