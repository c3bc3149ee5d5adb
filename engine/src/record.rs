//! Messages going in ([`Message`]) and coming out ([`Record`]).

use crate::format::headers::HeaderIter;
use crate::format::record::DecodedRecord;
use crate::log::segment::Segment;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A message to send: a payload, optional headers and a priority.
///
/// ```
/// use spool::Message;
/// let m = Message::new(b"order #1").header("reply-to", "replies").priority(2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Vec<(&'a str, &'a [u8])>,
    pub(crate) priority: u8,
}

impl<'a> Message<'a> {
    /// A message with `payload`, no headers, priority 0.
    pub fn new(payload: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Message {
            payload: payload.as_ref(),
            headers: Vec::new(),
            priority: 0,
        }
    }

    /// Adds a header. Keys are 1..=255 bytes of UTF-8, values up to 65,535
    /// bytes, all headers of a message together up to 65,535 bytes encoded.
    pub fn header(mut self, key: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.headers.push((key, value.as_ref()));
        self
    }

    /// Sets the priority level (0 = lowest, below the stream's `priorities`).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(p: &'a [u8]) -> Self {
        Message::new(p)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Message<'a> {
    fn from(p: &'a [u8; N]) -> Self {
        Message::new(p)
    }
}

impl<'a> From<&'a Vec<u8>> for Message<'a> {
    fn from(p: &'a Vec<u8>) -> Self {
        Message::new(p)
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(p: &'a str) -> Self {
        Message::new(p)
    }
}

/// A stored message, read from the log. The payload is borrowed from the
/// segment's memory map (no copy); the record keeps the segment mapped, even
/// if retention deletes its file meanwhile.
#[derive(Clone)]
pub struct Record {
    seg: Arc<Segment>,
    pos: u32,
    d: DecodedRecord,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.d.offset)
            .field("priority", &self.seg.priority)
            .field("timestamp_us", &self.d.timestamp_us)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("payload_bytes", &self.payload().len())
            .finish()
    }
}

impl Record {
    pub(crate) fn new(seg: Arc<Segment>, pos: u32, d: DecodedRecord) -> Record {
        Record { seg, pos, d }
    }

    fn bytes(&self) -> &[u8] {
        self.seg.record_bytes(self.pos, &self.d)
    }

    /// The message's offset within its priority bucket.
    pub fn offset(&self) -> u64 {
        self.d.offset
    }

    /// The priority level it was sent with.
    pub fn priority(&self) -> u8 {
        self.seg.priority
    }

    /// When it was appended, in microseconds since the Unix epoch. Never
    /// decreases within a bucket.
    pub fn timestamp_us(&self) -> u64 {
        self.d.timestamp_us
    }

    /// When it was appended.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.d.timestamp_us)
    }

    /// The payload, borrowed from the memory map.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.d.body_range()]
    }

    /// The headers, in the order they were given.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        HeaderIter::new(&self.bytes()[self.d.headers_range()]).filter_map(|r| r.ok())
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}
