//! What the inspector reports: plain data, built by the other modules.

use crate::blob::ClaimCheck;
use crate::consumer::ConsumerConfig;
use crate::format::headers::HeaderIter;
use crate::format::record::{self, RECORD_HEADER_BYTES};
use crate::format::segment::{SegmentHeader, SegmentState};
use crate::options::StreamConfig;
use std::path::{Path, PathBuf};

/// Something wrong found in a store: the file, the byte position where known,
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or directory concerned.
    pub file: PathBuf,
    /// Byte position within the file, where it applies.
    pub position: Option<u64>,
    /// What is wrong, in words.
    pub reason: String,
    /// A warning: nothing stored is lost or unreadable, and the next open
    /// of the store accepts it (an orphan blob, a missing index it rebuilds).
    pub warning: bool,
}

impl Problem {
    pub(crate) fn at(file: &Path, position: u64, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            position: Some(position),
            reason: reason.into(),
            warning: false,
        }
    }

    pub(crate) fn file(file: &Path, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            position: None,
            reason: reason.into(),
            warning: false,
        }
    }

    /// A warning about `file` (see [`Problem::warning`]).
    pub(crate) fn warn(file: &Path, position: Option<u64>, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            position,
            reason: reason.into(),
            warning: true,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at byte {p}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// What was found in a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// The store directory.
    pub path: PathBuf,
    /// Format version in `store.meta`; `None` if it could not be read.
    pub format_version: Option<u32>,
    /// Streams, sorted by name.
    pub streams: Vec<StreamInfo>,
    /// Every problem found, in the order found (segment problems included;
    /// they are also in their [`SegmentInfo::problems`]).
    pub problems: Vec<Problem>,
    /// Whether a process had the store open (held its lock, `LOCK`) when
    /// the inspection began or when it ended: `Some(true)` if it did at
    /// either time, `None` if the system cannot tell (see
    /// [`super::store_in_use`]). A store in use is being written: see
    /// [`StoreInfo::tail_problems`] and [`super::check_blobs`].
    pub in_use: Option<bool>,
}

impl StoreInfo {
    /// The tails found past the durable watermark of active segments
    /// ([`ScanEnd::Tail`]), as problems, if they are torn tails: when no
    /// process has the store open, or that cannot be told. While one has
    /// it open (see [`StoreInfo::in_use`]), the bytes after the last
    /// complete valid record of an active segment are the record being
    /// written: none is a problem then. Neither is damage to acknowledged
    /// data (that is below the watermark, and in [`StoreInfo::problems`]).
    pub fn tail_problems(&self) -> Vec<Problem> {
        if self.in_use == Some(true) {
            return Vec::new();
        }
        self.streams
            .iter()
            .flat_map(|s| s.buckets.iter())
            .flat_map(|b| b.segments.iter())
            .filter_map(|seg| match &seg.end {
                ScanEnd::Tail { position, reason } => Some(Problem::at(
                    &seg.path,
                    *position,
                    format!(
                        "torn tail past the durable watermark: {reason} (never acknowledged; \
                         `repair` or the next open cuts it)"
                    ),
                )),
                _ => None,
            })
            .collect()
    }

    /// Messages in all streams.
    pub fn messages(&self) -> u64 {
        self.streams.iter().map(StreamInfo::messages).sum()
    }

    /// Bytes of all segment files.
    pub fn file_bytes(&self) -> u64 {
        self.streams.iter().map(StreamInfo::file_bytes).sum()
    }
}

/// One stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name (its directory name).
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// The configuration in `stream.meta`; `None` if it is missing or
    /// unreadable (the buckets are then the `p<k>` directories found).
    pub config: Option<StreamConfig>,
    /// The identity of its typed messages in `message_type.meta` (type
    /// name, schema version, codec); `None` if there is none (a stream
    /// never opened typed) or it is unreadable (then a problem says why).
    pub message_type: Option<crate::format::typed::TypeIdentity>,
    /// One entry per priority bucket, lowest first.
    pub buckets: Vec<BucketInfo>,
    /// The stream's durable consumers, sorted by name.
    pub consumers: Vec<ConsumerInfo>,
}

impl StreamInfo {
    /// Messages in all buckets.
    pub fn messages(&self) -> u64 {
        self.buckets.iter().map(|b| b.messages).sum()
    }

    /// Bytes of all segment files.
    pub fn file_bytes(&self) -> u64 {
        self.buckets.iter().map(|b| b.file_bytes).sum()
    }
}

/// One priority bucket of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Priority level.
    pub priority: u8,
    /// Its directory (`p<k>`).
    pub path: PathBuf,
    /// Segments in offset order, the active one last. Their `records` are
    /// left empty (see [`super::read_segment`] for one segment's records).
    pub segments: Vec<SegmentInfo>,
    /// Messages found (valid records in all segments).
    pub messages: u64,
    /// First retained offset (the base of the first segment).
    pub first_offset: Option<u64>,
    /// Offset of the last message found; `None` if there is none.
    pub last_offset: Option<u64>,
    /// Timestamp of the first message, microseconds since the Unix epoch.
    pub first_timestamp_us: Option<u64>,
    /// Timestamp of the last message, microseconds since the Unix epoch.
    pub last_timestamp_us: Option<u64>,
    /// Bytes of the segment files (allocated lengths).
    pub file_bytes: u64,
    /// Bytes holding records (from the end of each header to its data end).
    pub data_bytes: u64,
    /// Files in the bucket's `quarantine/` directory (torn tails cut by recovery).
    pub quarantined: Vec<PathBuf>,
    /// Kept-ids files (`<base>.ids`): the id sections of segments that
    /// retention deleted while some of their ids were within the stream's
    /// deduplication window (DESIGN.md §7.1), oldest first.
    pub kept_ids: Vec<KeptIdsInfo>,
}

/// One kept-ids file of a bucket (`<base>.ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptIdsInfo {
    /// The file.
    pub path: PathBuf,
    /// First offset of the deleted segment (from the file name).
    pub base_offset: u64,
    /// Ids it holds; 0 if it is unusable.
    pub ids: u32,
    /// Timestamp of its newest id (µs since the Unix epoch); `None` if it
    /// is unusable.
    pub newest_timestamp_us: Option<u64>,
    /// Why it is unusable (the engine ignores and removes it: a warning),
    /// or `None` if it is usable.
    pub unusable: Option<String>,
}

/// One durable consumer of a stream (`consumers/<name>/`), as its checkpoint
/// and the journal of the checkpoint's generation say, folded with the
/// engine's own replay.
///
/// Leases live only in the memory of the process that has the store open, so
/// a message delivered and not yet acknowledged is counted as an
/// *unacknowledged delivery*: it may be in flight or waiting for redelivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The consumer's name (its directory name).
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// The configuration in `config.meta`; `None` if it is missing or unreadable.
    pub config: Option<ConsumerConfig>,
    /// The checkpoint's generation (it names the journal replayed); `None`
    /// if the checkpoint is missing or unreadable.
    pub generation: Option<u64>,
    /// The journal of that generation, if it exists.
    pub journal: Option<PathBuf>,
    /// The format version of that journal (1, or 2 if it may hold
    /// acknowledged sets); `None` without a journal.
    pub journal_version: Option<u32>,
    /// Valid journal records replayed on top of the checkpoint.
    pub journal_records: u64,
    /// Of those, acknowledged sets (each written by one batch ack).
    pub journal_ack_sets: u64,
    /// Offsets those sets name, in all.
    pub journal_set_acks: u64,
    /// Journals of other generations (left over by an interrupted rotation;
    /// removed at the next open, not a problem).
    pub stale_journals: Vec<PathBuf>,
    /// One entry per priority bucket, lowest first; empty if the checkpoint
    /// is unusable.
    pub buckets: Vec<ConsumerBucketInfo>,
    /// Deliveries after the first (checkpoint counter plus the journal's
    /// deliveries with an attempt of 2 or more).
    pub redelivered: u64,
    /// Messages moved to the dead-letter stream (or dropped without one).
    pub dead_lettered: u64,
    /// Messages deleted by retention (or a purge) before this consumer
    /// acknowledged them: the checkpoint's count, plus what lies below the
    /// first retained offset of each level, as the open counts it.
    pub skipped: u64,
    /// Messages found expired (their time to live had passed) instead of
    /// delivered: checkpoint counter plus the journal's expiries (kind 7).
    pub expired: u64,
    /// Of the journal records replayed, expiries.
    pub journal_expiries: u64,
    /// What is wrong with this consumer's files (also in
    /// [`StoreInfo::problems`]).
    pub problems: Vec<Problem>,
}

impl ConsumerInfo {
    /// Timestamp of the oldest unacknowledged message of all priority
    /// levels (see [`ConsumerBucketInfo::oldest_unacked_timestamp_us`]).
    pub fn oldest_unacked_timestamp_us(&self) -> Option<u64> {
        self.buckets
            .iter()
            .filter_map(|b| b.oldest_unacked_timestamp_us)
            .min()
    }

    /// Messages never delivered, all levels whose end is known.
    pub fn undelivered(&self) -> u64 {
        self.buckets.iter().filter_map(|b| b.undelivered).sum()
    }

    /// Messages behind the ends of the logs, all levels whose end is known.
    pub fn lag(&self) -> u64 {
        self.buckets.iter().filter_map(|b| b.lag).sum()
    }
}

/// A consumer journal file as the engine replays it
/// ([`read_journal_file`](super::read_journal_file)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub file_bytes: u64,
    /// Its header; `None` if unreadable (a problem: the engine replays
    /// nothing of the file).
    pub header: Option<super::JournalHeader>,
    /// The records the replay takes, in order.
    pub records: Vec<JournalRecordInfo>,
    /// The byte after the last of them (where the next would be written).
    pub end: u64,
    /// `Some(end)` if the bytes there are no valid record and not the zeros
    /// that end a journal: a write a crash tore (an ack that never
    /// returned), or damage. Nothing from there on is replayed.
    pub stopped_at: Option<u64>,
    /// What is wrong with the file.
    pub problems: Vec<Problem>,
}

/// One record of a journal file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecordInfo {
    /// Its byte position.
    pub position: u64,
    /// Bytes it takes (24, or a multiple for an acknowledged set).
    pub bytes: u64,
    /// What it says.
    pub record: super::JournalRecord,
}

/// One consumer's position in one priority bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerBucketInfo {
    /// Priority level.
    pub priority: u8,
    /// Every offset below is acknowledged.
    pub ack_floor: u64,
    /// First offset never delivered.
    pub next_offset: u64,
    /// The bucket's end (offset after its last message), as found in its
    /// segments; `None` if the bucket has no readable segment.
    pub end_offset: Option<u64>,
    /// Messages not yet acknowledged counted from the floor: `end − floor`
    /// (0 if the floor is past the end, which is a problem).
    pub lag: Option<u64>,
    /// Offsets in `floor..next` acknowledged out of order.
    pub acked_out_of_order: u64,
    /// Offsets in `floor..next` delivered at least once and not acknowledged
    /// (in flight or waiting for redelivery: leases are not on disk).
    pub unacked_deliveries: u64,
    /// Of those, the ones delivered two times or more.
    pub unacked_redelivered: u64,
    /// The highest delivery count among them (0 if there is none).
    pub max_attempts: u32,
    /// Messages never delivered: `end − next` (0 if the next offset is
    /// past the end); `None` if the end is unknown.
    pub undelivered: Option<u64>,
    /// The oldest message not acknowledged: the ack floor, or the first
    /// retained offset if retention removed those below it; `None` if every
    /// message is acknowledged or the end is unknown.
    pub oldest_unacked_offset: Option<u64>,
    /// Its timestamp, microseconds since the Unix epoch; `None` also if the
    /// record could not be read.
    pub oldest_unacked_timestamp_us: Option<u64>,
}

/// Whether a segment's `.idx` file is present and matches the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexStatus {
    /// Present, intact, and it agrees with the records scanned.
    Valid,
    /// No index file (normal for the active segment).
    Missing,
    /// Present but unusable or disagreeing with the segment; the reason says why.
    Invalid(String),
}

/// How the scan of a segment's records ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// At zeros or the end of the file, on a record boundary.
    Clean,
    /// At bytes past the durable watermark of the active segment that are not
    /// a valid record: a record being written, or a torn tail that recovery
    /// will cut. Not damage to acknowledged data (see
    /// [`StoreInfo::tail_problems`]).
    Tail {
        /// Byte position where the valid records end.
        position: u64,
        /// What the bytes there are.
        reason: String,
    },
    /// At damage: the segment's problems say where and what.
    Damaged,
    /// Not scanned (the header is unusable).
    NotScanned,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Base offset from the file name; `None` if the name is not `<20 digits>.seg`.
    pub name_base_offset: Option<u64>,
    /// File length in bytes.
    pub file_bytes: u64,
    /// The static header; `None` if it is unusable (see `problems`).
    pub header: Option<SegmentHeader>,
    /// The mutable state block; `None` if it fails its checksum or the header
    /// is unusable.
    pub state: Option<SegmentState>,
    /// True for a sealed segment (not the last of its bucket), false for
    /// the active one, as the engine's open decides. A segment read alone
    /// ([`super::read_segment`]) is sealed if a usable index lies beside it.
    pub sealed: bool,
    /// The segment's index.
    pub index: IndexStatus,
    /// Number of valid records.
    pub record_count: u64,
    /// Byte position after the last valid record.
    pub data_end: u64,
    /// How the scan ended.
    pub end: ScanEnd,
    /// Timestamp of the first record, microseconds since the Unix epoch.
    pub first_timestamp_us: Option<u64>,
    /// Timestamp of the last record, microseconds since the Unix epoch.
    pub last_timestamp_us: Option<u64>,
    /// Every valid record, in offset order. Filled by [`super::read_segment`] only.
    pub records: Vec<RecordInfo>,
    /// Claim-check references of the valid records, in record order.
    pub blob_refs: Vec<BlobRef>,
    /// How many valid records carry each kind of message attribute.
    pub attributes: AttributeCounts,
    /// What is wrong with this segment.
    pub problems: Vec<Problem>,
}

/// How many records of a segment carry each kind of message attribute
/// (`spool::Message::deliver_at`, `ttl`, `id`, `group`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttributeCounts {
    /// Records with a delivery time.
    pub scheduled: u64,
    /// Records with a delivery time after the inspection's clock.
    pub scheduled_later: u64,
    /// Records with an expiry time.
    pub with_ttl: u64,
    /// Records whose expiry time has passed by the inspection's clock.
    pub expired: u64,
    /// Records with a deduplication id.
    pub with_id: u64,
    /// Records in a message group.
    pub grouped: u64,
}

impl SegmentInfo {
    /// The base offset: from the header if it is usable, else from the name.
    pub fn base_offset(&self) -> Option<u64> {
        self.header.map(|h| h.base_offset).or(self.name_base_offset)
    }
}

/// One valid record of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte position in the segment.
    pub position: u64,
    /// Offset in its bucket.
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Epoch of the writer that wrote it.
    pub epoch: u32,
    /// Flag bits (bit 0: the body is a claim-check reference).
    pub flags: u16,
    /// Bytes of the header section.
    pub headers_bytes: u16,
    /// Bytes of the body.
    pub body_bytes: u32,
    /// Bytes taken in the segment, padding included.
    pub stored_bytes: u64,
}

/// A record's contents, borrowed from the bytes of its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordParts<'a> {
    /// The headers, in order (a malformed section yields the pairs before the damage).
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body: the payload, or the claim-check reference of a payload stored as a blob.
    pub body: &'a [u8],
    /// The claim-check reference, if the record has one and its body holds it.
    pub claim_check: Option<ClaimCheck>,
}

impl RecordInfo {
    /// Whether the body is a claim-check reference (the payload is a blob).
    pub fn is_claim_check(&self) -> bool {
        self.flags & record::FLAG_CLAIM_CHECK != 0
    }

    /// The record's headers, body and claim-check reference, out of
    /// `segment_bytes`, the bytes of its segment file from its first byte;
    /// `None` if the record does not fit in them (never for a record of
    /// [`super::read_segment_raw`] with its bytes).
    pub fn parts<'a>(&self, segment_bytes: &'a [u8]) -> Option<RecordParts<'a>> {
        self.parts_at(segment_bytes, 0)
    }

    /// Like [`RecordInfo::parts`], out of `bytes` holding the segment file
    /// from byte `start` on (see [`super::Appended`]).
    pub fn parts_at<'a>(&self, bytes: &'a [u8], start: u64) -> Option<RecordParts<'a>> {
        let at = usize::try_from(self.position.checked_sub(start)?).ok()?;
        let hs = at.checked_add(RECORD_HEADER_BYTES)?;
        let he = hs.checked_add(usize::from(self.headers_bytes))?;
        let be = he.checked_add(usize::try_from(self.body_bytes).ok()?)?;
        let section = bytes.get(hs..he)?;
        let body = bytes.get(he..be)?;
        let claim_check = if self.is_claim_check() {
            record::decode_claim_check(body).map(|(hash, len)| ClaimCheck { hash, len })
        } else {
            None
        };
        Some(RecordParts {
            headers: HeaderIter::new(section).filter_map(|h| h.ok()).collect(),
            body,
            claim_check,
        })
    }
}

/// A claim-check reference held by a record (DESIGN.md 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// BLAKE3 hash of the payload: the blob's name.
    pub hash: [u8; 32],
    /// Payload length in bytes.
    pub length: u64,
    /// Offset of the record in its bucket.
    pub offset: u64,
    /// Byte position of the record in its segment.
    pub position: u64,
}
