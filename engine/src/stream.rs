//! Streams: named logs with one bucket per priority level.

use crate::blob::Blobs;
use crate::consumer::{self, Consumer, ConsumerConfig, ConsumerInner};
use crate::ctx::Ctx;
use crate::format::headers;
use crate::format::record::RECORD_HEADER_BYTES;
use crate::format::record::{encode_claim_check, CLAIM_CHECK_BYTES, FLAG_CLAIM_CHECK};
use crate::log::bucket::Prepared;
use crate::log::segment::Pin;
use crate::log::Bucket;
use crate::log::Record;
use crate::message::Message;
use crate::notify::Notify;
use crate::options::{Durability, StreamConfig};
use crate::store::StoreInner;
use crate::{name, Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// A named, durable stream of messages. Cheap to clone; all clones share the
/// same log. `Send + Sync`: any number of threads may send and read at once.
/// A handle keeps its store open.
#[derive(Clone)]
pub struct Stream {
    inner: Arc<StreamInner>,
    store: Arc<StoreInner>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.inner.name)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct StreamInner {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) config: StreamConfig,
    pub(crate) buckets: Vec<Bucket>,
    pub(crate) ctx: Arc<Ctx>,
    /// Woken after every send (and nack) for blocked receivers.
    pub(crate) notify: Notify,
    /// Every consumer of the stream, open for as long as the stream is.
    pub(crate) consumers: RwLock<BTreeMap<String, Arc<ConsumerInner>>>,
    pub(crate) consumer_create: Mutex<()>,
    /// The store's claim-check blobs.
    pub(crate) blobs: Arc<Blobs>,
}

/// Figures of one priority bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketStats {
    /// Priority level.
    pub priority: u8,
    /// First retained offset.
    pub first_offset: u64,
    /// Offset the next message will get.
    pub end_offset: u64,
    /// Offsets below this are durable.
    pub durable_offset: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Bytes of the segment files.
    pub bytes: u64,
}

/// Figures of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// One entry per priority level, lowest first.
    pub buckets: Vec<BucketStats>,
}

impl StreamStats {
    /// Messages retained in all buckets.
    pub fn messages(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.end_offset - b.first_offset)
            .sum()
    }
}

/// A message encoded and checked, ready to append.
struct Encoded<'a> {
    headers: Vec<u8>,
    payload: &'a [u8],
    /// The claim-check reference that replaces a large payload.
    claim: Option<[u8; CLAIM_CHECK_BYTES]>,
    priority: u8,
}

impl Encoded<'_> {
    fn prepared(&self) -> Prepared<'_> {
        match &self.claim {
            Some(c) => (&self.headers, c, FLAG_CLAIM_CHECK),
            None => (&self.headers, self.payload, 0),
        }
    }
}

impl Stream {
    pub(crate) fn from_inner(inner: Arc<StreamInner>, store: Arc<StoreInner>) -> Stream {
        Stream { inner, store }
    }

    /// Number of priority levels.
    pub(crate) fn levels(&self) -> u8 {
        self.inner.buckets.len() as u8
    }

    /// Wake-ups for receivers.
    pub(crate) fn notify(&self) -> &Notify {
        &self.inner.notify
    }

    /// End of a bucket's log.
    pub(crate) fn end_offset(&self, priority: u8) -> u64 {
        self.inner
            .buckets
            .get(priority as usize)
            .map(|b| b.end_offset())
            .unwrap_or(0)
    }

    /// The first offset consumers may not receive yet: with
    /// `Durability::Always` only durable messages are delivered, so an
    /// acknowledgement can never refer to a message a crash could take back.
    pub(crate) fn deliverable_end(&self, priority: u8) -> u64 {
        let Some(b) = self.inner.buckets.get(priority as usize) else {
            return 0;
        };
        match self.inner.ctx.opts.durability {
            Durability::Always => b.durable_offset(),
            _ => b.end_offset(),
        }
    }

    /// Another stream of the same store (dead-letter and reply streams).
    pub(crate) fn store_stream(&self, name: &str) -> Result<Stream> {
        crate::store::stream_of(&self.store, name)
    }

    /// Gets the consumer `name`, creating it with the default configuration
    /// (start at the earliest message) if it does not exist.
    pub fn consumer(&self, name: &str) -> Result<Consumer> {
        name::validate(name)?;
        if let Some(c) = self.get_consumer(name) {
            return Ok(c);
        }
        self.create_consumer(name, &ConsumerConfig::default(), false)
    }

    /// Gets or creates the consumer `name` with `config`. For an existing
    /// consumer the new configuration replaces the stored one (its start
    /// position only matters at creation).
    pub fn consumer_with(&self, name: &str, config: ConsumerConfig) -> Result<Consumer> {
        name::validate(name)?;
        self.create_consumer(name, &config, true)
    }

    /// Names of the stream's consumers, sorted.
    pub fn consumers(&self) -> Vec<String> {
        self.inner
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn get_consumer(&self, name: &str) -> Option<Consumer> {
        let c = self
            .inner
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()?;
        Some(Consumer::new(c, self.clone()))
    }

    fn create_consumer(
        &self,
        name: &str,
        config: &ConsumerConfig,
        update: bool,
    ) -> Result<Consumer> {
        self.inner.ctx.check()?;
        let _g = self
            .inner
            .consumer_create
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = self.get_consumer(name) {
            if update {
                consumer::update_config(c.inner_ref(), config)?;
            }
            return Ok(c);
        }
        let dir = consumer::create(&self.inner.ctx, &self.inner, name, config)?;
        let inner = Arc::new(consumer::open(&self.inner.ctx, &self.inner, name, &dir)?);
        self.inner
            .consumers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), inner.clone());
        Ok(Consumer::new(inner, self.clone()))
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The stream's configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// Appends `payload` at priority 0 and returns its offset. With
    /// [`Durability::Always`] it is on disk when this returns.
    pub fn send(&self, payload: &[u8]) -> Result<u64> {
        if payload.len() as u64 > self.inner.config.claim_check_threshold {
            return self.send_message(Message::new(payload));
        }
        self.check_size(0, payload.len())?;
        let bucket = &self.inner.buckets[0];
        let range = bucket.append(&[(&[], payload, 0)])?;
        self.after_append(bucket, range.end)?;
        Ok(range.start)
    }

    /// Appends a message with headers and a priority; returns its offset
    /// within its priority's bucket.
    ///
    /// A payload larger than the stream's `claim_check_threshold` is stored
    /// once as a content-addressed blob (see [`Stream::send_reader`]) and the
    /// message carries the reference; readers get the payload transparently.
    pub fn send_message(&self, msg: Message<'_>) -> Result<u64> {
        let hold = self.blob_hold(msg.payload.len());
        let e = self.encode(&msg)?;
        let bucket = &self.inner.buckets[e.priority as usize];
        let range = bucket.append(&[e.prepared()])?;
        // Referenced now: the collector may run again (retention after a
        // roll, in `after_append`, takes its lock on this very thread).
        drop(hold);
        self.after_append(bucket, range.end)?;
        Ok(range.start)
    }

    /// Sends a payload read from `reader` (a file of any size, streamed with
    /// bounded memory) as a claim check: the payload is stored once as a
    /// content-addressed blob, made durable, and only then is the message
    /// with its reference appended. `msg` supplies headers and priority; its
    /// payload must be empty.
    pub fn send_reader(&self, reader: impl std::io::Read, msg: Message<'_>) -> Result<u64> {
        if !msg.payload.is_empty() {
            return Err(Error::InvalidConfig("send_reader takes the payload from the reader; the message's own payload must be empty".into()));
        }
        let blobs = &self.inner.blobs;
        let hold = blobs.hold();
        let cc = blobs.put_reader(reader)?;
        let mut e = self.encode_inline(&msg)?;
        e.claim = Some(encode_claim_check(&cc.hash, cc.len));
        let bucket = &self.inner.buckets[e.priority as usize];
        let range = bucket.append(&[e.prepared()])?;
        drop(hold);
        self.after_append(bucket, range.end)?;
        Ok(range.start)
    }

    /// Sends `msg` as a request whose reply goes to the stream `reply_to`,
    /// and waits up to `timeout` for it. Fails with [`Error::Timeout`] if no
    /// reply came in time (a later one is acknowledged and dropped). Many
    /// threads may have requests in flight on the same reply stream.
    pub fn request(
        &self,
        msg: Message<'_>,
        reply_to: &str,
        timeout: std::time::Duration,
    ) -> Result<Record> {
        let id = self.send_request(msg, reply_to)?;
        crate::store::wait_reply(&self.store, reply_to, &id, timeout)
    }

    /// Sends `msg` as a request (with `reply-to` and a new `correlation-id`
    /// header) without waiting; returns the correlation id, to collect the
    /// reply later with [`crate::Store::wait_reply`] (also after a restart).
    pub fn send_request(&self, msg: Message<'_>, reply_to: &str) -> Result<String> {
        use crate::message::request_headers::{CORRELATION_ID, REPLY_TO};
        name::validate(reply_to)?;
        let id = crate::request::new_correlation_id();
        let mut m = Message {
            payload: msg.payload,
            headers: msg.headers.clone(),
            priority: msg.priority,
        };
        m.headers
            .retain(|(k, _)| *k != CORRELATION_ID && *k != REPLY_TO);
        m.headers.push((REPLY_TO, reply_to.as_bytes()));
        m.headers.push((CORRELATION_ID, id.as_bytes()));
        self.send_message(m)?;
        Ok(id)
    }

    /// Holds the blob collector off while a large payload is stored and
    /// referenced.
    fn blob_hold(&self, payload_len: usize) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        (payload_len as u64 > self.inner.config.claim_check_threshold)
            .then(|| self.inner.blobs.hold())
    }

    /// Appends many messages with one reservation and one sync per bucket.
    /// Returns their offsets in input order. Every message is checked before
    /// anything is written; if writing fails midway (disk full, failed
    /// sync) a prefix of the batch may have been stored, unacknowledged.
    pub fn send_batch<'m, I, M>(&self, msgs: I) -> Result<Vec<u64>>
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
        let levels = self.inner.buckets.len();
        let mut touched = Vec::new();
        for p in 0..levels {
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
        for (p, end) in touched {
            self.after_append(&self.inner.buckets[p], end)?;
        }
        Ok(offsets)
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

    /// Deletes the sealed segments that retention allows: those every
    /// consumer has acknowledged (a stream without consumers keeps
    /// everything), and, whatever the consumers, those beyond the stream's
    /// `max_age` / `max_bytes`. Runs by itself after each segment roll and at
    /// open; call it to enforce an age limit on an idle stream. Returns the
    /// bytes of the files removed.
    pub fn apply_retention(&self) -> Result<u64> {
        let freed = self.inner.apply_retention()?;
        if freed > 0 {
            // Segments went away: so may the last references to some blobs.
            self.store.collect_blobs()?;
        }
        Ok(freed)
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
            let cc = self.inner.blobs.put_reader(m.payload)?;
            e.claim = Some(encode_claim_check(&cc.hash, cc.len));
            return Ok(e);
        }
        self.encode_inline(m)
    }

    fn encode_inline<'m>(&self, m: &Message<'m>) -> Result<Encoded<'m>> {
        let levels = self.inner.buckets.len() as u8;
        if m.priority >= levels {
            return Err(Error::InvalidPriority {
                priority: m.priority,
                levels,
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
            priority: m.priority,
        })
    }

    /// Reads the message at `offset` of priority 0; `None` if no message has
    /// that offset yet.
    pub fn read(&self, offset: u64) -> Result<Option<Record>> {
        self.read_priority(0, offset)
    }

    /// Reads the message at `offset` of a priority level.
    ///
    /// A claim-checked payload is mapped from its blob and verified against
    /// its hash here (once per process while it stays mapped); a missing or
    /// damaged blob is `Error::Corrupt`.
    pub fn read_priority(&self, priority: u8, offset: u64) -> Result<Option<Record>> {
        let r = self.bucket(priority)?.read(offset)?;
        match r {
            Some(r) if r.is_claim_check() => Ok(Some(self.inner.resolve(r)?)),
            other => Ok(other),
        }
    }

    /// [`Stream::read_priority`] through a per-reader segment cache (see
    /// `Bucket::read_cached`).
    pub(crate) fn read_priority_cached(
        &self,
        priority: u8,
        offset: u64,
        cache: &mut Option<Arc<Pin>>,
    ) -> Result<Option<Record>> {
        let r = self.bucket(priority)?.read_cached(offset, cache)?;
        match r {
            Some(r) if r.is_claim_check() => Ok(Some(self.inner.resolve(r)?)),
            other => Ok(other),
        }
    }

    /// Iterates over priority 0 from `offset` to the current end. Called
    /// again after it returned `None`, the iterator goes on with messages
    /// sent since. Between calls it keeps the segment it read last mapped
    /// (until it reaches the end or is dropped).
    pub fn iter_from(&self, offset: u64) -> Iter {
        Iter {
            stream: self.clone(),
            priority: 0,
            next: offset,
            done: false,
            cache: None,
        }
    }

    /// Iterates over one priority level from `offset` to the current end.
    pub fn iter_priority(&self, priority: u8, offset: u64) -> Result<Iter> {
        self.bucket(priority)?;
        Ok(Iter {
            stream: self.clone(),
            priority,
            next: offset,
            done: false,
            cache: None,
        })
    }

    /// Makes everything sent to this stream so far durable, then its
    /// consumers' acknowledgements.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Offsets and sizes of each priority bucket.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            buckets: self
                .inner
                .buckets
                .iter()
                .map(|b| BucketStats {
                    priority: b.priority,
                    first_offset: b.first_offset(),
                    end_offset: b.end_offset(),
                    durable_offset: b.durable_offset(),
                    segments: b.segment_count(),
                    bytes: b.file_bytes(),
                })
                .collect(),
        }
    }

    fn bucket(&self, priority: u8) -> Result<&Bucket> {
        self.inner
            .buckets
            .get(priority as usize)
            .ok_or(Error::InvalidPriority {
                priority,
                levels: self.inner.buckets.len() as u8,
            })
    }
}

impl StreamInner {
    /// Attaches the verified blob of a claim-check record.
    pub(crate) fn resolve(&self, r: Record) -> Result<Record> {
        let Some(cc) = r.claim_check() else {
            return Err(Error::corrupt(
                r.segment_path(),
                r.position(),
                "malformed claim-check reference",
            ));
        };
        let blob = self.blobs.load(&cc)?;
        Ok(r.with_blob(blob))
    }

    /// Every blob referred to by a retained message of this stream.
    pub(crate) fn blob_refs(&self, out: &mut std::collections::HashSet<[u8; 32]>) -> Result<()> {
        for b in &self.buckets {
            b.blob_refs(out)?;
        }
        Ok(())
    }

    pub(crate) fn apply_retention(&self) -> Result<u64> {
        self.ctx.check()?;
        let consumers: Vec<_> = self
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut freed = 0;
        for b in &self.buckets {
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
                let cutoff = crate::ctx::now_us().saturating_sub(age.as_micros() as u64);
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
                freed += b.delete_before(new_first)?;
            }
        }
        Ok(freed)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        for b in &self.buckets {
            b.sync_all()?;
        }
        let consumers: Vec<_> = self
            .consumers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for c in consumers {
            c.sync_all()?;
        }
        Ok(())
    }
}

/// Iterator over the messages of one bucket, from an offset to the end as it
/// is when `next` is called. Yields an error (and then stops) on damage.
#[derive(Debug)]
pub struct Iter {
    stream: Stream,
    priority: u8,
    next: u64,
    done: bool,
    /// The segment read last (see [`Stream::read_priority_cached`]).
    cache: Option<Arc<Pin>>,
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        let read = self
            .stream
            .read_priority_cached(self.priority, self.next, &mut self.cache);
        match read {
            Ok(Some(r)) => {
                self.next += 1;
                Some(Ok(r))
            }
            Ok(None) => {
                // Caught up: let go of the segment, so that an iterator kept
                // for later does not hold a segment retention deleted.
                self.cache = None;
                None
            }
            Err(Error::OffsetNotRetained { first, .. }) => {
                // Retention moved past us: continue at the first retained.
                self.next = first;
                self.next()
            }
            Err(e) => {
                self.done = true;
                self.cache = None;
                Some(Err(e))
            }
        }
    }
}
