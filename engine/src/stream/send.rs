//! Sending: messages encoded and checked, appended, made durable as the
//! store's durability asks, receivers woken.

use super::Stream;
use crate::blob::Pending;
use crate::format::headers;
use crate::format::record::{
    encode_claim_check, CLAIM_CHECK_BYTES, FLAG_CLAIM_CHECK, RECORD_HEADER_BYTES,
};
use crate::log::bucket::Prepared;
use crate::log::Bucket;
use crate::message::Message;
use crate::options::Durability;
use crate::wake::Durable;
use crate::{Error, Result};

/// A message encoded and checked, ready to append.
struct Encoded<'a> {
    headers: Vec<u8>,
    payload: &'a [u8],
    /// The claim-check reference that replaces a large payload.
    claim: Option<[u8; CLAIM_CHECK_BYTES]>,
    /// The pending mark of a blob stored for it.
    pending: Option<Pending>,
    priority: u8,
}

impl Encoded<'_> {
    /// The message is appended (and synced, if the store's durability asks):
    /// its blob, if it has one, is referred to.
    fn settle(self) {
        if let Some(p) = self.pending {
            p.settle();
        }
    }

    fn prepared(&self) -> Prepared<'_> {
        match &self.claim {
            Some(c) => Prepared {
                headers: &self.headers,
                body: c,
                flags: FLAG_CLAIM_CHECK,
            },
            None => Prepared {
                headers: &self.headers,
                body: self.payload,
                flags: 0,
            },
        }
    }
}

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
        if payload.len() as u64 > self.inner.config.claim_check_threshold {
            return self.send_message(Message::new(payload));
        }
        self.check_size(0, payload.len())?;
        let bucket = &self.inner.buckets[0];
        let range = bucket.append(&[Prepared {
            headers: &[],
            body: payload,
            flags: 0,
        }])?;
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
        let hold = self.blob_hold(msg.payload.len());
        let e = self.encode(&msg)?;
        let bucket = &self.inner.buckets[e.priority as usize];
        let range = bucket.append(&[e.prepared()])?;
        // Referenced now: the collector may run again (retention after a
        // roll, in `after_append`, takes its lock on this very thread).
        drop(hold);
        self.after_append(bucket, range.end)?;
        e.settle();
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
        let mut e = self.encode_inline(&msg)?;
        let (cc, pending) = blobs.put_reader(reader)?;
        e.claim = Some(encode_claim_check(&cc.hash, cc.len));
        e.pending = Some(pending);
        let bucket = &self.inner.buckets[e.priority as usize];
        let range = bucket.append(&[e.prepared()])?;
        drop(hold);
        self.after_append(bucket, range.end)?;
        e.settle();
        Ok(range.start)
    }

    /// Holds the blob collector off while a large payload is stored and
    /// referenced.
    fn blob_hold(&self, payload_len: usize) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        (payload_len as u64 > self.inner.config.claim_check_threshold)
            .then(|| self.inner.blobs.hold())
    }

    /// Appends many messages with one reservation and one sync per bucket.
    /// Returns their offsets in input order. Every message is checked before
    /// anything is written.
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
        M: Into<Message<'m>>,
    {
        let (offsets, touched, pending) = self.append_batch(msgs)?;
        for (p, end) in touched {
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
        M: Into<Message<'m>>,
    {
        let (offsets, touched, pending) = match self.append_batch(msgs) {
            Ok(t) => t,
            Err(e) => return Durable::ready(Err(e)),
        };
        let always = self.inner.ctx.opts.durability == Durability::Always;
        let blocking = touched.iter().any(|&(p, end)| {
            let b = &self.inner.buckets[p];
            (always && b.durable_offset() < end) || b.rolled()
        });
        if !blocking {
            // Nothing to wait for: wake receivers here.
            for (p, end) in touched {
                if let Err(e) = self.after_append(&self.inner.buckets[p], end) {
                    return Durable::ready(Err(e));
                }
            }
            pending.into_iter().for_each(Pending::settle);
            return Durable::ready(Ok(offsets));
        }
        let s = self.clone();
        let step = self.inner.ctx.worker.run(move || {
            for (p, end) in touched {
                s.after_append(&s.inner.buckets[p], end)?;
            }
            pending.into_iter().for_each(Pending::settle);
            Ok(())
        });
        Durable::after(step, offsets)
    }

    /// Appends a batch (see [`Stream::send_batch`]) without waiting for
    /// durability: the offsets, the end of what each touched bucket got,
    /// and the pending marks of the blobs stored, to settle once durable.
    #[allow(clippy::type_complexity)]
    fn append_batch<'m, I, M>(&self, msgs: I) -> Result<(Vec<u64>, Vec<(usize, u64)>, Vec<Pending>)>
    where
        I: IntoIterator<Item = M>,
        M: Into<Message<'m>>,
    {
        let msgs: Vec<Message<'m>> = msgs.into_iter().map(Into::into).collect();
        let largest = msgs.iter().map(|m| m.payload.len()).max().unwrap_or(0);
        let hold = self.blob_hold(largest);
        for m in &msgs {
            // Size and header checks before any blob is written.
            if m.payload.len() as u64 <= self.inner.config.claim_check_threshold {
                self.encode_inline(m)?;
            }
        }
        let encoded = msgs
            .iter()
            .map(|m| self.encode(m))
            .collect::<Result<Vec<_>>>()?;
        let mut offsets = vec![0u64; encoded.len()];
        let priorities = self.inner.buckets.len();
        let mut touched = Vec::new();
        for p in 0..priorities {
            let mut which = Vec::new();
            let mut prepared: Vec<Prepared<'_>> = Vec::new();
            for (i, e) in encoded.iter().enumerate() {
                if e.priority as usize == p {
                    which.push(i);
                    prepared.push(e.prepared());
                }
            }
            if prepared.is_empty() {
                continue;
            }
            let bucket = &self.inner.buckets[p];
            let range = bucket.append(&prepared)?;
            for (k, i) in which.into_iter().enumerate() {
                offsets[i] = range.start + k as u64;
            }
            touched.push((p, range.end));
        }
        drop(hold);
        let pending = encoded.into_iter().filter_map(|e| e.pending).collect();
        Ok((offsets, touched, pending))
    }

    fn after_append(&self, bucket: &Bucket, end: u64) -> Result<()> {
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

    /// Encodes a message; a payload above the claim-check threshold is
    /// written as a blob first (the caller holds the blob lock).
    fn encode<'m>(&self, m: &Message<'m>) -> Result<Encoded<'m>> {
        if m.payload.len() as u64 > self.inner.config.claim_check_threshold {
            let mut e = self.encode_inline(&Message {
                payload: &[],
                headers: m.headers.clone(),
                priority: m.priority,
            })?;
            let (cc, pending) = self.inner.blobs.put_reader(m.payload)?;
            e.claim = Some(encode_claim_check(&cc.hash, cc.len));
            e.pending = Some(pending);
            return Ok(e);
        }
        self.encode_inline(m)
    }

    fn encode_inline<'m>(&self, m: &Message<'m>) -> Result<Encoded<'m>> {
        let priorities = self.inner.priorities();
        if m.priority >= priorities {
            return Err(Error::InvalidPriority {
                priority: m.priority,
                priorities,
            });
        }
        let mut hdr = Vec::new();
        if !m.headers.is_empty() {
            let n = headers::encoded_len(m.headers.iter().copied()).ok_or(Error::InvalidHeaders {
                reason: "a key is empty or longer than 255 bytes, a value longer than 65,535 bytes, or all together longer than 65,535 bytes",
            })?;
            hdr.reserve_exact(n);
            for (k, v) in &m.headers {
                headers::encode_pair(&mut hdr, k, v);
            }
        }
        self.check_size(hdr.len(), m.payload.len().max(CLAIM_CHECK_BYTES))?;
        Ok(Encoded {
            headers: hdr,
            payload: m.payload,
            claim: None,
            pending: None,
            priority: m.priority,
        })
    }
}
