//! Messages coming out of the log ([`Record`]).

use super::segment::Pin;
use crate::blob::{BlobBytes, ClaimCheck};
use crate::format::attributes::Attributes;
use crate::format::headers::HeaderIter;
use crate::format::record::{decode_claim_check, DecodedRecord, FLAG_ATTRIBUTES, FLAG_CLAIM_CHECK};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A stored message, read from the log. The payload is borrowed from the
/// segment's memory map (no copy); the record keeps the segment mapped, even
/// if retention deletes its file meanwhile.
///
/// ```
/// use spool::{Message, Options, Store};
/// use std::time::{SystemTime, UNIX_EPOCH};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let orders = store.stream("orders")?;
///     let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
///     let order = Message::new(b"2 x espresso").header("customer", "ada").header("table", "7");
///     orders.send_message(order)?;
///
///     let record = orders.read(0)?.expect("just sent");
///     assert_eq!((record.offset(), record.priority()), (0, 0));
///     assert_eq!(record.payload(), b"2 x espresso");
///     assert_eq!(record.header("table"), Some(&b"7"[..]));
///     let headers: Vec<(&str, &[u8])> = record.headers().collect();
///     assert_eq!(headers, [("customer", &b"ada"[..]), ("table", &b"7"[..])]);
///     assert!(record.timestamp_us() >= before);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Record {
    /// The segment it lies in, held through its reader's pin.
    pin: Arc<Pin>,
    /// Byte position in the segment.
    position: u32,
    /// Its fields, checked when it was read.
    decoded: DecodedRecord,
    /// The verified payload of a claim check.
    blob: Option<Arc<BlobBytes>>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.decoded.offset)
            .field("priority", &self.pin.priority)
            .field("timestamp_us", &self.decoded.timestamp_us)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("payload_bytes", &self.payload().len())
            .finish()
    }
}

impl Record {
    pub(crate) fn new(pin: Arc<Pin>, position: u32, decoded: DecodedRecord) -> Record {
        Record {
            pin,
            position,
            decoded,
            blob: None,
        }
    }

    pub(crate) fn with_blob(mut self, blob: Arc<BlobBytes>) -> Record {
        self.blob = Some(blob);
        self
    }

    pub(crate) fn segment_path(&self) -> &std::path::Path {
        &self.pin.path
    }

    pub(crate) fn position(&self) -> u64 {
        self.position as u64
    }

    /// Whether the payload is stored as a claim-check blob.
    pub fn is_claim_check(&self) -> bool {
        self.decoded.flags & FLAG_CLAIM_CHECK != 0
    }

    /// The claim-check reference (hash and length) if the payload is stored
    /// as a blob.
    pub fn claim_check(&self) -> Option<ClaimCheck> {
        if !self.is_claim_check() {
            return None;
        }
        let (hash, len) = decode_claim_check(&self.bytes()[self.decoded.body_range()])?;
        Some(ClaimCheck { hash, len })
    }

    /// A reader over the payload, for streaming large (claim-checked)
    /// payloads into a file or socket without copying them into memory: it
    /// reads from the memory map, so anonymous memory stays bounded.
    ///
    /// ```
    /// use spool::{Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let files = store.stream("files")?;
    ///     let offset = files.send(&vec![1; 1 << 20])?; // a claim check: over 256 KiB
    ///
    ///     let record = files.read(offset)?.unwrap();
    ///     let mut out = tempfile::tempfile()?;
    ///     let copied = std::io::copy(&mut record.open_payload(), &mut out)?;
    ///     assert_eq!(copied, 1 << 20);
    ///     Ok(())
    /// }
    /// ```
    pub fn open_payload(&self) -> impl std::io::Read + Send + 'static {
        std::io::Cursor::new(RecordBytes(self.clone()))
    }

    fn bytes(&self) -> &[u8] {
        self.pin.record_bytes(self.position, &self.decoded)
    }

    /// The message's offset within its priority bucket.
    pub fn offset(&self) -> u64 {
        self.decoded.offset
    }

    /// The priority level it was sent with.
    pub fn priority(&self) -> u8 {
        self.pin.priority
    }

    /// When it was appended, in microseconds since the Unix epoch: the
    /// system clock when its send began, but never below the timestamp of
    /// an earlier message of its priority bucket (across restarts too), so
    /// timestamps never decrease within a bucket and
    /// [`crate::StartAt::TimestampUs`] can search them. The price: while the
    /// clock is behind the newest timestamp (set back, or after it once ran
    /// ahead, however far), new messages get that newest timestamp, and
    /// `max_age` counts from it (DESIGN.md §3.1).
    pub fn timestamp_us(&self) -> u64 {
        self.decoded.timestamp_us
    }

    /// When it was appended ([`Record::timestamp_us`] as a `SystemTime`).
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.decoded.timestamp_us)
    }

    /// The payload, borrowed from the memory map (for a claim check, from
    /// the blob's map, verified against its hash when the record was read).
    pub fn payload(&self) -> &[u8] {
        match &self.blob {
            Some(b) => b.bytes(),
            None => &self.bytes()[self.decoded.body_range()],
        }
    }

    /// The headers, in the order they were given.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        HeaderIter::new(&self.bytes()[self.decoded.headers_range()]).filter_map(|r| r.ok())
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the record carries attributes (a flag test: free).
    #[inline]
    pub(crate) fn has_attributes(&self) -> bool {
        self.decoded.flags & FLAG_ATTRIBUTES != 0
    }

    /// The message's attributes ([`Message::deliver_at`] and the others);
    /// all `None` for a record without them. A record whose attribute
    /// section does not decode (it passed its checksum, so only a writer
    /// other than Spool could make one) reads as one without attributes;
    /// `segment-tool verify` reports it.
    ///
    /// [`Message::deliver_at`]: crate::Message::deliver_at
    pub(crate) fn attributes(&self) -> Attributes<'_> {
        if !self.has_attributes() {
            return Attributes::default();
        }
        Attributes::decode(&self.bytes()[self.decoded.headers_range()]).unwrap_or_default()
    }

    /// When the message becomes deliverable ([`crate::Message::deliver_at`]).
    pub fn deliver_at(&self) -> Option<SystemTime> {
        self.attributes().deliver_at_us.map(time_of_us)
    }

    /// When the message expires ([`crate::Message::ttl`]).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.attributes().expires_at_us.map(time_of_us)
    }

    /// The deduplication id ([`crate::Message::id`]).
    pub fn message_id(&self) -> Option<&[u8]> {
        self.attributes().message_id
    }

    /// The message group ([`crate::Message::group`]).
    pub fn group(&self) -> Option<&[u8]> {
        self.attributes().group
    }
}

fn time_of_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// The payload bytes of an inline record, owned for `open_payload`.
struct RecordBytes(Record);

impl AsRef<[u8]> for RecordBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.payload()
    }
}
