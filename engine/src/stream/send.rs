//! Sending: messages checked, appended, made durable as the store's
//! durability asks, receivers woken.

use super::Stream;
use crate::blob::Pending;
use crate::ctx::now_us;
use crate::format::attributes::{Attributes, ATTRIBUTE_BYTES_MAX};
use crate::format::headers;
use crate::format::record::{
    self, encode_claim_check, CLAIM_CHECK_BYTES, FLAG_ATTRIBUTES, FLAG_CLAIM_CHECK,
    RECORD_HEADER_BYTES,
};
use crate::limits::PRIORITIES_MAX;
use crate::log::bucket::Prepared;
use crate::log::Bucket;
use crate::message::{Message, MessageAttrs, When, ATTRIBUTE_SPAN_MAX};
use crate::options::Durability;
use crate::wake::Durable;
use crate::{Error, Result};
use std::time::{Duration, UNIX_EPOCH};

const LEVELS: usize = PRIORITIES_MAX as usize;

/// What the checks found of a message.
#[derive(Debug)]
pub(super) struct Shape<'a> {
    /// Bytes of its encoded header section (attributes included).
    pub(super) hdr_len: usize,
    /// The payload goes to a blob; the record carries its reference.
    claim: bool,
    /// Its attributes, times resolved (boxed: `None` for a message
    /// without, which keeps the shape and the record to write small).
    pub(super) attrs: Option<Box<Attributes<'a>>>,
    /// It goes through the guarded path (`guarded.rs`): it has an id the
    /// stream deduplicates, or the stream is bounded.
    pub(super) guarded: bool,
}

impl Shape<'_> {
    /// The record flags the message's record gets, but the claim check's.
    pub(super) fn attribute_flags(&self) -> u16 {
        if self.attrs.is_some() {
            FLAG_ATTRIBUTES
        } else {
            0
        }
    }

    /// Bytes the message's record takes in a segment.
    pub(super) fn stored_len(&self, payload_len: usize) -> u64 {
        let body = if self.claim {
            CLAIM_CHECK_BYTES
        } else {
            payload_len
        };
        record::stored_len(self.hdr_len, body)
    }
}

/// What the first walk over a batch found.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Messages.
    n: usize,
    /// Messages per priority level.
    counts: [usize; LEVELS],
    /// Bytes their records take, per level.
    bytes: [u64; LEVELS],
    /// Messages sent as claim checks.
    claims: usize,
    /// Messages that take the guarded path.
    guarded: usize,
}

impl Plan {
    fn add(&mut self, priority: u8, stored: u64, shape: &Shape<'_>) {
        self.n += 1;
        self.counts[priority as usize] += 1;
        self.bytes[priority as usize] += stored;
        self.claims += shape.claim as usize;
        self.guarded += shape.guarded as usize;
    }

    /// The level of every message, if they share one.
    fn one_level(&self) -> Option<u8> {
        let p = self.counts.iter().position(|&c| c > 0)?;
        (self.counts[p] == self.n).then_some(p as u8)
    }
}

/// A claim check of a batch: its blob is stored, its record not yet
/// appended.
struct Claim {
    /// Position of its message in the batch.
    index: usize,
    /// The reference its record carries.
    reference: [u8; CLAIM_CHECK_BYTES],
    /// The pending mark of its blob.
    pending: Pending,
}

/// The end offset of each bucket a batch appended to (or, for duplicates,
/// must wait for), lowest level first, and the timestamp of each append.
#[derive(Debug, Clone, Copy)]
pub(super) struct Touched {
    ends: [(u8, u64); LEVELS],
    len: usize,
    /// The timestamp of each level's append.
    pub(super) ts: [u64; LEVELS],
}

impl Touched {
    pub(super) fn new() -> Touched {
        Touched {
            ends: [(0, 0); LEVELS],
            len: 0,
            ts: [0; LEVELS],
        }
    }

    fn push(&mut self, priority: u8, end: u64) {
        self.ends[self.len] = (priority, end);
        self.len += 1;
    }

    /// Adds the wait for `end` at `priority` (the end of an original a
    /// duplicate returns the offset of).
    pub(super) fn wait_for(&mut self, priority: u8, end: u64) {
        match self.ends[..self.len]
            .iter_mut()
            .find(|(p, _)| *p == priority)
        {
            Some((_, e)) => *e = (*e).max(end),
            None => self.push(priority, end),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.ends[..self.len].iter().map(|&(p, e)| (p as usize, e))
    }
}

/// A batch appended, not yet waited for: the offsets, the end of what each
/// touched bucket got, the pending marks of the blobs stored.
pub(super) type Appended = (Vec<u64>, Touched, Vec<Pending>);

impl Stream {
    /// Appends `payload` at priority 0 and returns its offset. With
    /// [`Durability::Always`] it is on disk when this returns.
    ///
    /// ```
    /// use spool::{Error, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let orders = store.stream("orders")?;
    ///     assert_eq!(orders.send(b"order #1")?, 0);
    ///     assert_eq!(orders.send(b"order #2")?, 1);
    ///
    ///     // Beyond `Options::message_bytes_max` (8 MiB by default): refused, nothing written.
    ///     let small = Options::default().message_bytes_max(1024);
    ///     let store = Store::open(dir.path().join("small"), small)?;
    ///     let too_big = store.stream("orders")?.send(&[0; 2048]);
    ///     assert!(matches!(too_big, Err(Error::MessageTooLarge { limit: 1024, .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn send(&self, payload: &[u8]) -> Result<u64> {
        if payload.len() as u64 > self.inner.config.claim_check_threshold || self.inner.bounded() {
            return self.send_message(Message::new(payload));
        }
        self.check_size(0, payload.len())?;
        let bucket = &self.inner.buckets[0];
        let p = Prepared {
            headers: Vec::new(),
            hdr_len: 0,
            body: payload,
            flags: 0,
            attrs: None,
        };
        let bytes = p.stored_len();
        let range = bucket.append(std::iter::once(Ok(p)), bytes)?;
        self.after_append(bucket, range.end)?;
        Ok(range.start)
    }

    /// Appends a message with headers and a priority; returns its offset
    /// within its priority's bucket.
    ///
    /// A payload larger than the stream's `claim_check_threshold` is stored
    /// once as a content-addressed blob (see [`Stream::send_reader`]) and the
    /// message carries the reference; readers get the payload transparently.
    ///
    /// ```
    /// use spool::{Message, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let orders = store.create_stream("orders", StreamConfig::default().priorities(2))?;
    ///     let offset = orders.send_message(
    ///         Message::new(b"2 x espresso")
    ///             .header("customer", "ada")
    ///             .priority(1),
    ///     )?;
    ///
    ///     let record = orders.read_priority(1, offset)?.unwrap();
    ///     assert_eq!(record.payload(), b"2 x espresso");
    ///     assert_eq!(record.header("customer"), Some(&b"ada"[..]));
    ///     Ok(())
    /// }
    /// ```
    pub fn send_message(&self, msg: Message<'_>) -> Result<u64> {
        let shape = self.check(&msg)?;
        if shape.guarded {
            return self.send_guarded(msg);
        }
        if !shape.claim {
            return self.append_one(msg, shape, None);
        }
        let hold = self.inner.blobs.hold();
        let (cc, pending) = self.inner.blobs.put_reader(msg.payload)?;
        let reference = encode_claim_check(&cc.hash, cc.len);
        self.append_one(msg, shape, Some((&reference, pending, hold)))
    }

    /// Appends one checked message (with the claim-check reference that
    /// replaces its payload, its blob's pending mark and the collector's
    /// hold), waits as the durability asks, and settles the mark.
    fn append_one(
        &self,
        msg: Message<'_>,
        shape: Shape<'_>,
        claim: Option<(&[u8; CLAIM_CHECK_BYTES], Pending, BlobHold<'_>)>,
    ) -> Result<u64> {
        let bucket = &self.inner.buckets[msg.priority as usize];
        let (body, flags, settle) = match claim {
            Some((reference, pending, hold)) => {
                (&reference[..], FLAG_CLAIM_CHECK, Some((pending, hold)))
            }
            None => (msg.payload, 0, None),
        };
        let p = Prepared {
            headers: msg.headers,
            hdr_len: shape.hdr_len,
            body,
            flags: flags | shape.attribute_flags(),
            attrs: shape.attrs,
        };
        let bytes = p.stored_len();
        let range = bucket.append(std::iter::once(Ok(p)), bytes)?;
        let pending = settle.map(|(pending, hold)| {
            // Referenced now: the collector may run again (retention after
            // a roll, in `after_append`, takes its lock on this very thread).
            drop(hold);
            pending
        });
        self.after_append(bucket, range.end)?;
        if let Some(p) = pending {
            p.settle();
        }
        Ok(range.start)
    }

    /// Sends a payload read from `reader` (a file of any size, streamed with
    /// bounded memory) as a claim check: the payload is stored once as a
    /// content-addressed blob, made durable, and only then is the message
    /// with its reference appended. `msg` supplies headers and priority; its
    /// payload must be empty ([`Error::InvalidArgument`] otherwise).
    ///
    /// ```
    /// use spool::{Message, Options, Store};
    /// use std::io::{Seek, Write};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let backups = store.stream("backups")?;
    ///
    ///     let mut file = tempfile::tempfile()?;
    ///     file.write_all(&vec![42; 3 << 20])?;
    ///     file.rewind()?;
    ///     let offset = backups.send_reader(file, Message::default().header("name", "db.tar"))?;
    ///
    ///     let record = backups.read(offset)?.unwrap();
    ///     assert_eq!(record.claim_check().unwrap().len, 3 << 20);
    ///     assert_eq!(record.payload().len(), 3 << 20); // read back transparently
    ///     Ok(())
    /// }
    /// ```
    pub fn send_reader(&self, reader: impl std::io::Read, msg: Message<'_>) -> Result<u64> {
        if !msg.payload.is_empty() {
            return Err(Error::InvalidArgument(
                "send_reader takes the payload from the reader; the message's own payload must be empty"
                    .into(),
            ));
        }
        let blobs = &self.inner.blobs;
        let hold = blobs.hold();
        // An empty payload is checked as the reference that replaces it.
        let shape = self.check(&msg)?;
        if shape.guarded {
            drop(hold);
            return self.send_reader_guarded(reader, msg, shape);
        }
        let (cc, pending) = blobs.put_reader(reader)?;
        let reference = encode_claim_check(&cc.hash, cc.len);
        self.append_one(msg, shape, Some((&reference, pending, hold)))
    }

    /// Appends many messages with one reservation and one sync per bucket.
    /// Returns their offsets in input order. Every message is checked before
    /// anything is written.
    ///
    /// The messages are walked twice, checked, then written (with nothing
    /// copied or allocated in between but the offsets returned), so the
    /// iterator is `Clone`: a slice's iterator, an array, a `map` over one
    /// cost nothing to clone (a `Vec` passed by value would be copied:
    /// pass `v.iter()`). An iterator whose clone yields other messages fails
    /// with [`Error::InvalidArgument`] once it is found, as a failed write
    /// would (below).
    ///
    /// The messages of one priority level become readable together, when
    /// their bucket's append ends, also if they do not fit the active segment
    /// (the part before the roll is synced by it, not published); with
    /// [`Durability::Always`] they become durable, and so receivable by
    /// consumers, together as well. Levels are appended one after another,
    /// lowest first, so a reader may see one level's part before the next.
    /// If writing fails midway (disk full, failed sync), the part that a
    /// roll sealed into the old segment stays in the log, readable and
    /// unacknowledged; so may it after a crash during the call.
    ///
    /// ```
    /// use spool::{Message, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let events = store.stream("events")?;
    ///
    ///     // Anything that converts into a `Message`: byte strings, `&str`, messages.
    ///     let offsets = events.send_batch(["signed up", "logged in"])?;
    ///     assert_eq!(offsets, [0, 1]);
    ///     let offsets = events.send_batch([Message::new("logged out").header("user", "ada")])?;
    ///     assert_eq!(offsets, [2]);
    ///     assert_eq!(events.stats().messages(), 3);
    ///     Ok(())
    /// }
    /// ```
    pub fn send_batch<'m, I, M>(&self, msgs: I) -> Result<Vec<u64>>
    where
        I: IntoIterator<Item = M>,
        I::IntoIter: Clone,
        M: Into<Message<'m>>,
    {
        let (offsets, touched, pending) = self.append_batch(msgs)?;
        for (p, end) in touched.iter() {
            self.after_append(&self.inner.buckets[p], end)?;
        }
        pending.into_iter().for_each(Pending::settle);
        Ok(offsets)
    }

    /// [`Stream::send`] without blocking a thread for durability: the
    /// message is appended when this is called (its offset is decided);
    /// the future resolves with the offset once it is as durable as the
    /// store's [`Durability`] asks. Under `Always` the sync runs on the
    /// store's worker thread, shared (group commit) with every concurrent
    /// durable send of the bucket, blocking or async. Dropping the future
    /// gives up waiting, not the message. (A payload above the claim-check
    /// threshold is stored as a blob within this call.)
    ///
    /// ```
    /// # fn main() -> spool::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = spool::Store::open(dir.path(), spool::Options::default())?;
    /// let orders = store.stream("orders")?;
    /// let offset = futures::executor::block_on(orders.send_async(b"order 1"))?;
    /// assert_eq!(orders.read(offset)?.unwrap().payload(), b"order 1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_async(&self, payload: &[u8]) -> Durable<u64> {
        self.send_batch_async([payload])
            .map_value(|offsets| offsets.first().copied().unwrap_or(0))
    }

    /// [`Stream::send_message`] without blocking a thread for durability
    /// (see [`Stream::send_async`]).
    pub fn send_message_async(&self, msg: Message<'_>) -> Durable<u64> {
        self.send_batch_async([msg])
            .map_value(|offsets| offsets.first().copied().unwrap_or(0))
    }

    /// [`Stream::send_batch`] without blocking a thread for durability
    /// (see [`Stream::send_async`]): one sync per bucket for the batch.
    pub fn send_batch_async<'m, I, M>(&self, msgs: I) -> Durable<Vec<u64>>
    where
        I: IntoIterator<Item = M>,
        I::IntoIter: Clone,
        M: Into<Message<'m>>,
    {
        let (offsets, touched, pending) = match self.append_batch(msgs) {
            Ok(t) => t,
            Err(e) => return Durable::ready(Err(e)),
        };
        let always = self.inner.ctx.opts.durability == Durability::Always;
        let blocking = touched.iter().any(|(p, end)| {
            let b = &self.inner.buckets[p];
            (always && b.durable_offset() < end) || b.rolled()
        });
        if !blocking {
            // Nothing to wait for: wake receivers here.
            for (p, end) in touched.iter() {
                if let Err(e) = self.after_append(&self.inner.buckets[p], end) {
                    return Durable::ready(Err(e));
                }
            }
            pending.into_iter().for_each(Pending::settle);
            return Durable::ready(Ok(offsets));
        }
        let s = self.clone();
        let step = self.inner.ctx.worker.run(move || {
            for (p, end) in touched.iter() {
                s.after_append(&s.inner.buckets[p], end)?;
            }
            pending.into_iter().for_each(Pending::settle);
            Ok(())
        });
        Durable::after(step, offsets)
    }

    /// Appends a batch (see [`Stream::send_batch`]) without waiting for
    /// durability.
    ///
    /// The first walk checks every message and sums up the records per
    /// level. A batch of one level without claim checks is then one append,
    /// fed by the second walk; others store their blobs first (a third
    /// walk), then append level by level, lowest first, each append walking
    /// the batch for its level's messages. Nothing is allocated but the
    /// offsets (and, with claim checks, their references and marks).
    fn append_batch<'m, I, M>(&self, msgs: I) -> Result<Appended>
    where
        I: IntoIterator<Item = M>,
        I::IntoIter: Clone,
        M: Into<Message<'m>>,
    {
        let msgs = msgs.into_iter();
        let plan = self.plan(msgs.clone())?;
        if plan.guarded > 0 {
            return self.append_guarded(msgs.map(Into::into).collect(), plan);
        }
        self.append_planned(msgs, plan)
    }

    /// The first walk over a batch: every message checked, the records
    /// summed up per level.
    #[inline]
    pub(super) fn plan<'m, M: Into<Message<'m>>>(
        &self,
        msgs: impl Iterator<Item = M>,
    ) -> Result<Plan> {
        let mut plan = Plan::default();
        for m in msgs {
            let m: Message<'m> = m.into();
            let shape = self.check(&m)?;
            plan.add(m.priority, shape.stored_len(m.payload.len()), &shape);
        }
        Ok(plan)
    }

    /// Appends a batch whose first walk found `plan` (the messages must be
    /// the same when walked again).
    pub(super) fn append_planned<'m, I, M>(&self, msgs: I, plan: Plan) -> Result<Appended>
    where
        I: Iterator<Item = M> + Clone,
        M: Into<Message<'m>>,
    {
        let mut touched = Touched::new();
        if plan.n == 0 {
            return Ok((Vec::new(), touched, Vec::new()));
        }
        let mut offsets = Vec::with_capacity(plan.n);
        if let (0, Some(p)) = (plan.claims, plan.one_level()) {
            let bucket = &self.inner.buckets[p as usize];
            let records = msgs.enumerate().map(|(i, m)| match i < plan.n {
                true => self.prepare(m.into(), p, None),
                false => Err(changed_batch()),
            });
            let (range, ts) = bucket.append_stamped(records, plan.bytes[p as usize])?;
            if range.end - range.start != plan.n as u64 {
                return Err(changed_batch());
            }
            offsets.extend(range.clone());
            touched.push(p, range.end);
            touched.ts[p as usize] = ts;
            return Ok((offsets, touched, Vec::new()));
        }

        let hold = (plan.claims > 0).then(|| self.inner.blobs.hold());
        let mut claims = Vec::with_capacity(plan.claims);
        if plan.claims > 0 {
            let threshold = self.inner.config.claim_check_threshold;
            for (index, m) in msgs.clone().enumerate() {
                let m: Message<'m> = m.into();
                if m.payload.len() as u64 > threshold {
                    let (cc, pending) = self.inner.blobs.put_reader(m.payload)?;
                    claims.push(Claim {
                        index,
                        reference: encode_claim_check(&cc.hash, cc.len),
                        pending,
                    });
                }
            }
        }
        // Each level's append tags its messages' entries with the level;
        // the offsets follow from the levels' first offsets at the end.
        offsets.resize(plan.n, 0);
        let mut starts = [0u64; LEVELS];
        for p in 0..self.inner.priorities() {
            let planned = plan.counts[p as usize];
            if planned == 0 {
                continue;
            }
            let tags = &mut offsets;
            let claims = &claims;
            let mut seen = 0;
            let records = msgs.clone().enumerate().filter_map(|(i, m)| {
                let m: Message<'m> = m.into();
                if m.priority != p {
                    return None;
                }
                seen += 1;
                match tags.get_mut(i) {
                    Some(tag) if seen <= planned => *tag = p as u64,
                    _ => return Some(Err(changed_batch())),
                }
                let claim = claims
                    .binary_search_by_key(&i, |c| c.index)
                    .ok()
                    .map(|j| &claims[j].reference);
                Some(self.prepare(m, p, claim))
            });
            let bucket = &self.inner.buckets[p as usize];
            let (range, ts) = bucket.append_stamped(records, plan.bytes[p as usize])?;
            starts[p as usize] = range.start;
            touched.push(p, range.end);
            touched.ts[p as usize] = ts;
            if range.end - range.start != planned as u64 {
                return Err(changed_batch());
            }
        }
        drop(hold);
        let mut next = starts;
        for o in &mut offsets {
            let level = (*o as usize).min(LEVELS - 1);
            *o = next[level];
            next[level] += 1;
        }
        let pending = claims.into_iter().map(|c| c.pending).collect();
        Ok((offsets, touched, pending))
    }

    /// A message of a batch's second walk, to append at level `level`, with
    /// the reference of its blob if the first walk found it a claim check.
    /// It is measured again: writing it needs the length of its header
    /// section, and a cloned iterator is not trusted to yield the same
    /// messages twice (one that does not fails the append).
    #[inline]
    fn prepare<'a>(
        &self,
        m: Message<'a>,
        level: u8,
        claim: Option<&'a [u8; CLAIM_CHECK_BYTES]>,
    ) -> Result<Prepared<'a>> {
        let shape = self.check(&m)?;
        if m.priority != level || shape.claim != claim.is_some() {
            return Err(changed_batch());
        }
        let (body, flags) = match claim {
            Some(reference) => (&reference[..], FLAG_CLAIM_CHECK),
            None => (m.payload, 0),
        };
        Ok(Prepared {
            headers: m.headers,
            hdr_len: shape.hdr_len,
            body,
            flags: flags | shape.attribute_flags(),
            attrs: shape.attrs,
        })
    }

    pub(super) fn after_append(&self, bucket: &Bucket, end: u64) -> Result<()> {
        let r = match self.inner.ctx.opts.durability {
            Durability::Always => bucket.sync_to(end),
            Durability::Interval(_) | Durability::Never => Ok(()),
        };
        self.inner.notify.notify();
        if r.is_ok() && bucket.take_rolled() {
            // The send itself succeeded; a retention failure that matters
            // (a failed sync) poisons the store and shows up on the next call.
            let _ = self.apply_retention();
        }
        r
    }

    fn check_size(&self, headers_len: usize, payload_len: usize) -> Result<()> {
        let bytes = (headers_len + payload_len) as u64;
        let limit = self.inner.ctx.opts.message_limit();
        if bytes > limit {
            return Err(Error::MessageTooLarge { bytes, limit });
        }
        debug_assert!(RECORD_HEADER_BYTES as u64 + bytes < self.inner.ctx.opts.segment_bytes_max);
        Ok(())
    }

    /// Checks a message against the stream and the limits (its priority
    /// level, its headers, its size; a claim check by the reference that
    /// replaces its payload). Writes and allocates nothing.
    #[inline]
    pub(super) fn check<'a>(&self, m: &Message<'a>) -> Result<Shape<'a>> {
        let priorities = self.inner.priorities();
        if m.priority >= priorities {
            return Err(Error::InvalidPriority {
                priority: m.priority,
                priorities,
            });
        }
        let mut hdr_len = if m.headers.is_empty() {
            0
        } else {
            headers::encoded_len(m.headers.iter().copied()).ok_or(Error::InvalidHeaders {
                reason: "a key is empty or longer than 255 bytes, a value longer than 65,535 bytes, or all together longer than 65,535 bytes",
            })?
        };
        let mut guarded = self.inner.bounded();
        let attrs = match m.attrs.as_deref() {
            None => None,
            Some(a) if a.is_empty() => None,
            Some(a) => {
                let attrs = resolve(a, now_us())?;
                guarded |= attrs.message_id.is_some() && self.inner.deduplicates();
                hdr_len += attrs.encoded_len();
                if hdr_len > headers::HEADERS_BYTES_MAX {
                    return Err(Error::InvalidHeaders {
                        reason:
                            "the headers and the attributes together are longer than 65,535 bytes",
                    });
                }
                Some(Box::new(attrs))
            }
        };
        let claim = m.payload.len() as u64 > self.inner.config.claim_check_threshold;
        let body = if claim {
            CLAIM_CHECK_BYTES
        } else {
            m.payload.len().max(CLAIM_CHECK_BYTES)
        };
        self.check_size(hdr_len, body)?;
        Ok(Shape {
            hdr_len,
            claim,
            attrs,
            guarded,
        })
    }
}

/// A message's attributes with their times resolved against `now_us` (the
/// send's clock), checked: a time before 1970 or over
/// [`ATTRIBUTE_SPAN_MAX`] away, a zero time to live, an empty or over-long
/// id or group are [`Error::InvalidArgument`].
fn resolve<'a>(a: &MessageAttrs<'a>, now_us: u64) -> Result<Attributes<'a>> {
    let bad = |what: &str| Error::InvalidArgument(what.to_string());
    let span_max_us = ATTRIBUTE_SPAN_MAX.as_micros() as u64;
    let time = |w: When, what: &str| -> Result<u64> {
        let us = match w {
            When::After(d) => {
                if d > ATTRIBUTE_SPAN_MAX {
                    return Err(bad(&format!("{what}: {d:?} is more than 100 years")));
                }
                now_us.saturating_add(d.as_micros() as u64)
            }
            When::At(t) => {
                let Ok(since) = t.duration_since(UNIX_EPOCH) else {
                    return Err(bad(&format!("{what}: a time before 1970")));
                };
                let us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
                if us > now_us.saturating_add(span_max_us) {
                    return Err(bad(&format!("{what}: a time more than 100 years ahead")));
                }
                us
            }
        };
        Ok(us)
    };
    if a.expires == Some(When::After(Duration::ZERO)) {
        return Err(bad(
            "ttl: a zero time to live (the message would expire as it is sent)",
        ));
    }
    let out = Attributes {
        deliver_at_us: a.deliver.map(|w| time(w, "deliver_at")).transpose()?,
        expires_at_us: a.expires.map(|w| time(w, "expires_at")).transpose()?,
        message_id: a.id,
        group: a.group,
    };
    if !out.lengths_valid() {
        return Err(bad(&format!(
            "a message id or group must be 1..={ATTRIBUTE_BYTES_MAX} bytes"
        )));
    }
    Ok(out)
}

/// The collector's hold, kept while a blob is stored and referenced.
type BlobHold<'a> = std::sync::RwLockReadGuard<'a, ()>;

/// The error of a batch whose iterator yielded other messages the second
/// time it was walked.
fn changed_batch() -> Error {
    Error::InvalidArgument(
        "send_batch: the batch's iterator yielded other messages when walked again".into(),
    )
}
