//! Read-only inspection of a store with plain reads (no maps, no lock), for
//! `segment-tool`. Works on a live store: a tail being written is tolerated.
//!
//! # What it reads, and how
//!
//! Every file is read with `std::fs` into a buffer whose size is checked
//! against a hard limit first: segments up to [`SEGMENT_BYTES_LIMIT`], meta
//! files up to [`META_FILE_BYTES_MAX`], indexes up to [`INDEX_FILE_BYTES_MAX`].
//! Nothing is mapped, nothing is written, the `LOCK` file is not touched, so
//! a store open in another process can be inspected while it is written.
//! Bytes are decoded with the engine's own codecs ([`crate::format`] and the
//! segment scanner of the log), so the inspector and the engine cannot
//! disagree about the format.
//!
//! # Live stores
//!
//! A segment's header is read before its data (the read is sequential). The
//! header's durable watermark (`synced_end`) only grows, and data below it
//! was written before the header said so, so every byte below the watermark
//! we saw is in the buffer as it will stay. In the active (last) segment a
//! record that fails to decode *past* the watermark is a tail being written,
//! or a torn tail that recovery will cut: reported as
//! [`ScanEnd::Tail`], not a problem. Below the watermark, or anywhere in a
//! sealed segment, it is damage to acknowledged data: a [`Problem`].
//!
//! A file that vanishes while it is inspected (retention deleting a sealed
//! segment) is skipped; a segment created after the directory was listed is
//! not seen.
//!
//! # Problems, not errors
//!
//! [`inspect_store`] fails only when the directory cannot be read at all or is
//! not a store. Everything it finds wrong inside (damaged records, bad
//! headers, missing indexes, files above their limits, unreadable files) is
//! collected as a [`Problem`] naming the file and, where known, the byte
//! position, and the inspection goes on.

use crate::consumer::journal::JOURNAL_BYTES_LIMIT;
use crate::consumer::state::{self as consumer_state, BucketState, Replayed};
use crate::consumer::{CheckpointBody, ConsumerConfig};
use crate::format::index::{self as index_fmt, INDEX_HEADER_BYTES};
use crate::format::journal::{
    self as journal_fmt, Entry, JournalHeader, JOURNAL_HEADER_BYTES, JOURNAL_RECORD_BYTES,
};
use crate::format::meta::{self, META_BODY_BYTES_MAX, STREAM_META_MAGIC};
use crate::format::meta::{
    CHECKPOINT_BODY_BYTES_MAX as CHECKPOINT_BYTES_MAX, CHECKPOINT_MAGIC, CHECKPOINT_VERSION,
    CONSUMER_CONFIG_MAGIC as CONFIG_MAGIC, CONSUMER_CONFIG_VERSION as CONFIG_VERSION,
    STORE_META_MAGIC, STORE_VERSION, STREAM_META_VERSION,
};
use crate::format::record::{self, RECORD_HEADER_BYTES};
use crate::format::segment::{
    HeaderDecodeError, SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET,
};
use crate::layout::{
    parse_journal_name, CHECKPOINT_FILE, CONSUMERS_DIR, CONSUMER_CONFIG_FILE as CONFIG_FILE,
    QUARANTINE_DIR, STORE_META_FILE as STORE_META, STREAMS_DIR, STREAM_META_FILE as STREAM_META,
};
use crate::log::scan::{self as segment, Scan, ScanStop};
use crate::options::{StreamConfig, PRIORITIES_MAX, SEGMENT_BYTES_LIMIT};
use crate::{name, Error, Result};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub mod repair;

/// Largest meta file (`store.meta`, `stream.meta`) read; a longer one is a problem.
pub const META_FILE_BYTES_MAX: u64 = META_BODY_BYTES_MAX as u64 + 64;

/// Largest index file read: a header, one `u32` position per smallest
/// possible record of the largest segment, and 64 MiB of blob references.
pub const INDEX_FILE_BYTES_MAX: u64 =
    INDEX_HEADER_BYTES as u64 + (SEGMENT_BYTES_LIMIT / RECORD_HEADER_BYTES as u64) * 4 + (64 << 20);

/// How many times the file of an active segment is read again when its state
/// block fails its checksum (it may have been caught mid-update).
const STATE_REREADS: usize = 3;

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
    /// A warning: nothing stored is lost or unreadable (an orphan blob).
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
}

impl StoreInfo {
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
    /// left empty (see [`read_segment`] for one segment's records).
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
}

/// One durable consumer of a stream (`consumers/<name>/`), as its checkpoint
/// and the journal of the checkpoint's generation say, folded with the
/// engine's own replay ([`crate::consumer`]).
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
    /// Valid journal records replayed on top of the checkpoint.
    pub journal_records: u64,
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
    /// Messages deleted by retention before this consumer acknowledged them.
    pub skipped: u64,
    /// What is wrong with this consumer's files (also in
    /// [`StoreInfo::problems`]).
    pub problems: Vec<Problem>,
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
    /// will cut. Not a problem.
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
    /// True for a sealed segment (not the last of its bucket, or with an
    /// intact index), false for the active one.
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
    /// Every valid record, in offset order. Filled by [`read_segment`] only.
    pub records: Vec<RecordInfo>,
    /// Claim-check references of the valid records, in record order.
    pub blob_refs: Vec<BlobRef>,
    /// What is wrong with this segment.
    pub problems: Vec<Problem>,
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

/// What the caller of the segment analysis knows about the segment.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// The last segment of its bucket, without an intact index.
    Active,
    /// A sealed segment; it must hold this many records where known.
    Sealed { expected_records: Option<u64> },
}

/// Inspects the store at `path`.
///
/// Fails only if `path` cannot be read or is not a store (no `store.meta`);
/// everything wrong inside is collected in [`StoreInfo::problems`].
pub fn inspect_store(path: &Path) -> Result<StoreInfo> {
    let (format_version, mut problems) = read_store_meta(path)?;
    let streams_dir = path.join(STREAMS_DIR);
    let entries = match list_dir(&streams_dir) {
        Ok(e) => e,
        // A store whose first open stopped before creating `streams/`.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("list", &streams_dir, e)),
    };
    let mut streams = Vec::new();
    for (name, kind) in entries {
        // Interrupted creations (`.tmp-*`) and foreign names are not streams.
        if kind != Kind::Dir || name::validate(&name).is_err() {
            continue;
        }
        let dir = streams_dir.join(&name);
        if let Some(s) = inspect_stream_dir(&name, &dir, &mut problems) {
            streams.push(s);
        }
    }
    Ok(StoreInfo {
        path: path.to_path_buf(),
        format_version,
        streams,
        problems,
    })
}

/// Inspects one stream of the store at `path`: a [`StoreInfo`] whose
/// `streams` holds that stream alone and whose `problems` are the store
/// meta's and that stream's.
///
/// Fails if `path` is not a store, `stream` is not a valid name
/// ([`Error::InvalidName`]) or there is no such stream.
pub fn inspect_stream(path: &Path, stream: &str) -> Result<StoreInfo> {
    name::validate(stream)?;
    let (format_version, mut problems) = read_store_meta(path)?;
    let dir = path.join(STREAMS_DIR).join(stream);
    let missing = || {
        Error::io(
            "open stream",
            &dir,
            io::Error::new(io::ErrorKind::NotFound, "no such stream"),
        )
    };
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(missing()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(Error::io("open stream", &dir, e)),
    }
    let s = inspect_stream_dir(stream, &dir, &mut problems).ok_or_else(missing)?;
    Ok(StoreInfo {
        path: path.to_path_buf(),
        format_version,
        streams: vec![s],
        problems,
    })
}

/// Checks that `path` is a store directory and reads its `store.meta`:
/// the format version (`None` if unreadable) and the problems found.
fn read_store_meta(path: &Path) -> Result<(Option<u32>, Vec<Problem>)> {
    let meta = fs::metadata(path).map_err(|e| Error::io("open store", path, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            "open store",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    let mut problems = Vec::new();
    let meta_path = path.join(STORE_META);
    let format_version = match read_bounded(&meta_path, META_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => match meta::decode(STORE_META_MAGIC, &b) {
            Ok((version, _)) => {
                if version != STORE_VERSION {
                    problems.push(Problem::at(
                        &meta_path,
                        8,
                        format!("store format version {version} is unknown to this build"),
                    ));
                }
                Some(version)
            }
            Err(e) => {
                problems.push(Problem::at(&meta_path, 0, format!("store meta: {e:?}")));
                None
            }
        },
        Ok(Bounded::Missing) => {
            return Err(Error::io(
                "open store",
                &meta_path,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "not a Spool store (no store.meta); is this the right directory?",
                ),
            ))
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(&meta_path, len, META_FILE_BYTES_MAX));
            None
        }
        Err(e) => {
            problems.push(Problem::file(&meta_path, format!("cannot read: {e}")));
            None
        }
    };
    Ok((format_version, problems))
}

/// Reads one segment file and scans all its records.
///
/// If an intact index for the same segment lies beside it, the segment is
/// treated as sealed (every record must be valid, as many as the index
/// says); otherwise as active (damage past the durable watermark is a tail,
/// see [`ScanEnd::Tail`]). Fails only if the file cannot be read or is larger
/// than [`SEGMENT_BYTES_LIMIT`]; damage is reported in
/// [`SegmentInfo::problems`].
pub fn read_segment(path: &Path) -> Result<SegmentInfo> {
    read_segment_raw(path).map(|(info, _)| info)
}

/// Like [`read_segment`], and also returns the file's bytes (at most
/// [`SEGMENT_BYTES_LIMIT`]), so that a caller can show the records'
/// headers and bodies at the positions of [`SegmentInfo::records`].
pub fn read_segment_raw(path: &Path) -> Result<(SegmentInfo, Vec<u8>)> {
    let name_base = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| crate::layout::parse_segment_name(n));
    let bytes = match read_segment_bytes(path, false) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => {
            return Err(Error::io(
                "read",
                path,
                io::Error::from(io::ErrorKind::NotFound),
            ))
        }
        Ok(Bounded::TooLarge(len)) => {
            return Err(Error::corrupt(
                path,
                0,
                format!("segment of {len} bytes exceeds the limit of {SEGMENT_BYTES_LIMIT}"),
            ))
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let header = SegmentHeader::decode(&bytes).ok();
    let index = header.and_then(|h| {
        let idx_path = index_path_of(path, h.base_offset);
        load_index(&idx_path)
            .ok()
            .flatten()
            .and_then(|b| index_fmt::decode(&b).ok())
            .filter(|ih| ih.segment_id == h.segment_id && ih.base_offset == h.base_offset)
    });
    let role = match index {
        Some(ih) => Role::Sealed {
            expected_records: Some(ih.count),
        },
        None => Role::Active,
    };
    let info = analyse_segment(path, name_base, None, &bytes, role, true);
    Ok((info, bytes))
}

/// Inspects one stream directory; `None` if it is not a stream (neither a
/// meta file nor bucket directories).
///
/// The consumers' files are read before the buckets' segments: on a live
/// store a consumer can only acknowledge what was already written, so every
/// floor read is at or below the end found afterwards.
fn inspect_stream_dir(name: &str, dir: &Path, problems: &mut Vec<Problem>) -> Option<StreamInfo> {
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::file(dir, format!("cannot list: {e}")));
            return None;
        }
    };
    let bucket_dirs: Vec<u8> = entries
        .iter()
        .filter(|(_, k)| *k == Kind::Dir)
        .filter_map(|(n, _)| parse_bucket_dir(n))
        .collect();
    let meta_path = dir.join(STREAM_META);
    let config = match read_bounded(&meta_path, META_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => decode_stream_meta(&meta_path, &b, problems),
        Ok(Bounded::Missing) => {
            if bucket_dirs.is_empty() {
                return None;
            }
            problems.push(Problem::file(&meta_path, "stream config missing"));
            None
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(&meta_path, len, META_FILE_BYTES_MAX));
            None
        }
        Err(e) => {
            problems.push(Problem::file(&meta_path, format!("cannot read: {e}")));
            None
        }
    };
    let priorities: Vec<u8> = match &config {
        Some(c) => (0..c.priorities).collect(),
        None => {
            let mut p = bucket_dirs;
            p.sort_unstable();
            p
        }
    };
    let raw_consumers = if entries
        .iter()
        .any(|(n, k)| n == CONSUMERS_DIR && *k == Kind::Dir)
    {
        read_consumers(&dir.join(CONSUMERS_DIR), problems)
    } else {
        Vec::new()
    };
    let buckets: Vec<BucketInfo> = priorities
        .into_iter()
        .map(|p| inspect_bucket(p, &dir.join(format!("p{p}")), problems))
        .collect();
    let consumers = raw_consumers
        .into_iter()
        .map(|c| {
            let info = fold_consumer(c, &buckets);
            problems.extend(info.problems.iter().cloned());
            info
        })
        .collect();
    Some(StreamInfo {
        name: name.to_string(),
        path: dir.to_path_buf(),
        config,
        buckets,
        consumers,
    })
}

/// Widest range `floor..next` (offsets) of one bucket that the inspector
/// rebuilds slot by slot (about 50 bytes each); a checkpoint or journal
/// asking for more is reported instead of allocated.
pub const CONSUMER_SPAN_MAX: u64 = 1 << 20;

/// How many times the files of a consumer are read again when its
/// checkpoint changed while its journal was read (a rotation on a live store).
const CONSUMER_REREADS: usize = 3;

/// A consumer's files as read, before they are folded against the buckets.
struct RawConsumer {
    name: String,
    dir: PathBuf,
    config: Option<ConsumerConfig>,
    checkpoint: Option<CheckpointBody>,
    journal: Option<RawJournal>,
    stale_journals: Vec<PathBuf>,
    problems: Vec<Problem>,
}

/// The valid records of a journal, in order; record `i` is at byte
/// `JOURNAL_HEADER_BYTES + i * JOURNAL_RECORD_BYTES`.
struct RawJournal {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Reads every consumer directory under `cdir` (sorted by name).
fn read_consumers(cdir: &Path, problems: &mut Vec<Problem>) -> Vec<RawConsumer> {
    let entries = match list_dir(cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            problems.push(Problem::file(cdir, format!("cannot list: {e}")));
            return Vec::new();
        }
    };
    entries
        .into_iter()
        // Interrupted creations (`.tmp-*`) and foreign names are not consumers.
        .filter(|(n, k)| *k == Kind::Dir && name::validate(n).is_ok())
        .map(|(n, _)| read_consumer(&n, &cdir.join(&n)))
        .collect()
}

fn read_consumer(name: &str, dir: &Path) -> RawConsumer {
    let mut c = RawConsumer {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config: None,
        checkpoint: None,
        journal: None,
        stale_journals: Vec::new(),
        problems: Vec::new(),
    };
    c.config = read_consumer_config(&dir.join(CONFIG_FILE), &mut c.problems);
    let ckpt_path = dir.join(CHECKPOINT_FILE);
    for attempt in 0..=CONSUMER_REREADS {
        let mut problems = Vec::new();
        let Some((bytes, body)) = read_checkpoint(&ckpt_path, &mut problems) else {
            c.problems.extend(problems);
            break;
        };
        let journal = read_journal(
            &dir.join(journal_name(body.generation)),
            body.generation,
            &mut problems,
        );
        // On a live store the journal may have been rotated away meanwhile:
        // the checkpoint then changed, and both are read again.
        let again = match read_bounded(&ckpt_path, CHECKPOINT_BYTES_MAX as u64 + 64) {
            Ok(Bounded::Bytes(b)) => b == bytes,
            _ => false,
        };
        if again || attempt == CONSUMER_REREADS {
            c.problems.extend(problems);
            c.checkpoint = Some(body);
            c.journal = journal;
            break;
        }
    }
    let generation = c.checkpoint.as_ref().map(|b| b.generation);
    match list_dir(dir) {
        Ok(files) => {
            for (n, k) in files {
                if k != Kind::File {
                    continue;
                }
                if let Some(g) = parse_journal_name(&n) {
                    if Some(g) != generation {
                        c.stale_journals.push(dir.join(n));
                    }
                }
            }
        }
        Err(e) => c
            .problems
            .push(Problem::file(dir, format!("cannot list: {e}"))),
    }
    c
}

fn journal_name(g: u64) -> String {
    crate::layout::journal_file_name(g)
}

fn read_consumer_config(path: &Path, problems: &mut Vec<Problem>) -> Option<ConsumerConfig> {
    let b = match read_bounded(path, META_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => {
            problems.push(Problem::file(path, "consumer config missing"));
            return None;
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(path, len, META_FILE_BYTES_MAX));
            return None;
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let (version, body) = match meta::decode(CONFIG_MAGIC, &b) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::at(path, 0, format!("consumer config: {e:?}")));
            return None;
        }
    };
    if version != CONFIG_VERSION {
        problems.push(Problem::at(
            path,
            8,
            format!("consumer config format version {version} is unknown to this build"),
        ));
        return None;
    }
    let config: ConsumerConfig = match postcard::from_bytes(body) {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem::at(path, 24, format!("consumer config: {e}")));
            return None;
        }
    };
    if let Err(e) = config.validate() {
        problems.push(Problem::at(path, 24, format!("consumer config: {e}")));
        return None;
    }
    Some(config)
}

/// Reads and decodes a checkpoint: its bytes (to notice a rewrite) and body.
fn read_checkpoint(path: &Path, problems: &mut Vec<Problem>) -> Option<(Vec<u8>, CheckpointBody)> {
    let limit = CHECKPOINT_BYTES_MAX as u64 + 64;
    let b = match read_bounded(path, limit) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => {
            problems.push(Problem::file(path, "consumer checkpoint missing"));
            return None;
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(path, len, limit));
            return None;
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let (version, body) = match meta::decode_limited(CHECKPOINT_MAGIC, &b, CHECKPOINT_BYTES_MAX) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::at(path, 0, format!("consumer checkpoint: {e:?}")));
            return None;
        }
    };
    if version != CHECKPOINT_VERSION {
        problems.push(Problem::at(
            path,
            8,
            format!("consumer checkpoint format version {version} is unknown to this build"),
        ));
        return None;
    }
    match postcard::from_bytes::<CheckpointBody>(body) {
        Ok(c) => Some((b, c)),
        Err(e) => {
            problems.push(Problem::at(path, 24, format!("consumer checkpoint: {e}")));
            None
        }
    }
}

/// Reads the valid records of the journal at `path` with a buffered plain
/// read, as the engine's replay does: from byte 64 to the end marker, the
/// first invalid record (a torn tail, not a problem) or the end of the file.
/// `None` if there is no such file or its header is unreadable (a journal
/// that was never synced holds nothing).
fn read_journal(path: &Path, generation: u64, problems: &mut Vec<Problem>) -> Option<RawJournal> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    if !meta.is_file() {
        problems.push(Problem::file(path, "cannot read: not a regular file"));
        return None;
    }
    if meta.len() > JOURNAL_BYTES_LIMIT {
        problems.push(too_large(path, meta.len(), JOURNAL_BYTES_LIMIT));
        return None;
    }
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let mut r = io::BufReader::with_capacity(64 << 10, file.take(JOURNAL_BYTES_LIMIT));
    let mut header = [0u8; JOURNAL_HEADER_BYTES];
    if let Err(e) = r.read_exact(&mut header) {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
        }
        return None;
    }
    let h = JournalHeader::decode(&header)?;
    if h.generation != generation {
        problems.push(Problem::at(
            path,
            24,
            format!(
                "journal header says generation {}, its name says {generation}; not replayed",
                h.generation
            ),
        ));
        return None;
    }
    let mut entries = Vec::new();
    let mut rec = [0u8; JOURNAL_RECORD_BYTES];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                problems.push(Problem::file(path, format!("cannot read: {e}")));
                break;
            }
        }
        match journal_fmt::decode(h.journal_id, &rec) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) | Err(()) => break,
        }
    }
    Some(RawJournal {
        path: path.to_path_buf(),
        entries,
    })
}

/// Byte length of a postcard varint holding `v`.
fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// Byte position in the checkpoint file of bucket `i`'s floor field.
fn checkpoint_floor_position(body: &CheckpointBody, i: usize) -> u64 {
    let before: u64 = body
        .buckets
        .iter()
        .take(i)
        .map(|b| {
            varint_len(b.floor)
                + varint_len(b.next)
                + varint_len(b.acked.len() as u64)
                + b.acked.iter().map(|&o| varint_len(o)).sum::<u64>()
                + varint_len(b.attempts.len() as u64)
                + b.attempts
                    .iter()
                    .map(|&(o, n)| varint_len(o) + varint_len(u64::from(n)))
                    .sum::<u64>()
        })
        .sum();
    24 + varint_len(body.generation) + varint_len(body.buckets.len() as u64) + before
}

/// Folds a consumer's checkpoint and journal with the engine's replay and
/// measures it against the buckets found.
fn fold_consumer(c: RawConsumer, buckets: &[BucketInfo]) -> ConsumerInfo {
    let mut info = ConsumerInfo {
        name: c.name,
        path: c.dir,
        config: c.config,
        generation: c.checkpoint.as_ref().map(|b| b.generation),
        journal: None,
        journal_records: 0,
        stale_journals: c.stale_journals,
        buckets: Vec::new(),
        redelivered: 0,
        dead_lettered: 0,
        skipped: 0,
        problems: c.problems,
    };
    let Some(body) = c.checkpoint else {
        return info;
    };
    info.redelivered = body.redelivered;
    info.dead_lettered = body.dead_lettered;
    info.skipped = body.skipped;
    info.journal = c.journal.as_ref().map(|j| j.path.clone());
    let ckpt_path = info.path.join(CHECKPOINT_FILE);
    if body.buckets.len() != buckets.len() {
        info.problems.push(Problem::at(
            &ckpt_path,
            24,
            format!(
                "checkpoint has {} priority levels, the stream has {}",
                body.buckets.len(),
                buckets.len()
            ),
        ));
        return info;
    }
    let ends: Vec<Option<u64>> = buckets
        .iter()
        .map(|b| {
            b.last_offset
                .map(|l| l.saturating_add(1))
                .or(b.first_offset)
        })
        .collect();
    // Where each bucket's floor first went past the end: (file, position).
    let mut beyond: Vec<Option<(PathBuf, u64)>> = vec![None; buckets.len()];
    let too_wide = body
        .buckets
        .iter()
        .position(|b| b.next.saturating_sub(b.floor) > CONSUMER_SPAN_MAX);
    let states: Option<Vec<BucketState>> = match too_wide {
        Some(i) => {
            info.problems.push(Problem::at(
                &ckpt_path,
                checkpoint_floor_position(&body, i),
                format!(
                    "bucket p{i}: {} offsets between ack floor {} and next offset {}, more than \
                     the {CONSUMER_SPAN_MAX} this inspector rebuilds; the journal is not replayed",
                    body.buckets[i].next - body.buckets[i].floor,
                    body.buckets[i].floor,
                    body.buckets[i].next
                ),
            ));
            None
        }
        None => Some(
            body.buckets
                .iter()
                .map(BucketState::from_checkpoint)
                .collect(),
        ),
    };
    let Some(mut states) = states else {
        // Counted from the checkpoint's lists alone.
        for (i, b) in body.buckets.iter().enumerate() {
            let within = |o: u64| o >= b.floor && o < b.next;
            info.buckets.push(bucket_figures(
                i as u8,
                b.floor,
                b.next,
                ends[i],
                b.acked.iter().filter(|&&o| within(o)).count() as u64,
                b.attempts
                    .iter()
                    .filter(|&&(o, n)| n > 0 && within(o))
                    .map(|&(_, n)| n),
            ));
        }
        return info;
    };
    for (i, s) in states.iter().enumerate() {
        if ends[i].is_some_and(|end| s.floor() > end) {
            beyond[i] = Some((ckpt_path.clone(), checkpoint_floor_position(&body, i)));
        }
    }
    if let Some(j) = &c.journal {
        for (k, e) in j.entries.iter().enumerate() {
            let position = (JOURNAL_HEADER_BYTES + k * JOURNAL_RECORD_BYTES) as u64;
            let (bucket, offset) = match *e {
                Entry::Delivered { bucket, offset, .. }
                | Entry::Acked { bucket, offset }
                | Entry::AckedUpTo { bucket, offset }
                | Entry::DeadLettered { bucket, offset } => (bucket as usize, offset),
            };
            // The replay grows a bucket's slots up to the offset named: keep
            // that bounded (hostile or damaged journals).
            if let Some(s) = states.get(bucket) {
                if offset == u64::MAX || offset.saturating_sub(s.floor()) > CONSUMER_SPAN_MAX {
                    info.problems.push(Problem::at(
                        &j.path,
                        position,
                        format!(
                            "record names offset {offset} of bucket p{bucket}, more than \
                             {CONSUMER_SPAN_MAX} past its ack floor {}; replay stopped here",
                            s.floor()
                        ),
                    ));
                    break;
                }
            }
            info.journal_records += 1;
            match consumer_state::replay_entry(&mut states, e) {
                Replayed::Nothing => {}
                Replayed::Redelivery => info.redelivered += 1,
                Replayed::DeadLetter => info.dead_lettered += 1,
            }
            if let (Some(s), Some(Some(end))) = (states.get(bucket), ends.get(bucket)) {
                if s.floor() > *end && beyond[bucket].is_none() {
                    beyond[bucket] = Some((j.path.clone(), position));
                }
            }
        }
    }
    for (i, s) in states.iter().enumerate() {
        let cp = s.checkpoint();
        info.buckets.push(bucket_figures(
            i as u8,
            cp.floor,
            cp.next,
            ends[i],
            cp.acked.len() as u64,
            cp.attempts.iter().map(|&(_, n)| n).filter(|&n| n > 0),
        ));
        if let (Some((file, position)), Some(end)) = (&beyond[i], ends[i]) {
            if cp.floor > end {
                info.problems.push(Problem::at(
                    file,
                    *position,
                    format!(
                        "consumer {}: ack floor {} of bucket p{i} is past the bucket's end {end} \
                         (acknowledged messages are missing from the log)",
                        info.name, cp.floor
                    ),
                ));
            }
        }
    }
    info
}

fn bucket_figures(
    priority: u8,
    floor: u64,
    next: u64,
    end: Option<u64>,
    acked: u64,
    unacked_attempts: impl Iterator<Item = u32>,
) -> ConsumerBucketInfo {
    let mut b = ConsumerBucketInfo {
        priority,
        ack_floor: floor,
        next_offset: next,
        end_offset: end,
        lag: end.map(|e| e.saturating_sub(floor)),
        acked_out_of_order: acked,
        unacked_deliveries: 0,
        unacked_redelivered: 0,
        max_attempts: 0,
    };
    for n in unacked_attempts {
        b.unacked_deliveries += 1;
        if n >= 2 {
            b.unacked_redelivered += 1;
        }
        b.max_attempts = b.max_attempts.max(n);
    }
    b
}

fn decode_stream_meta(path: &Path, b: &[u8], problems: &mut Vec<Problem>) -> Option<StreamConfig> {
    let (version, body) = match meta::decode(STREAM_META_MAGIC, b) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::at(path, 0, format!("stream config: {e:?}")));
            return None;
        }
    };
    if version != STREAM_META_VERSION {
        problems.push(Problem::at(
            path,
            8,
            format!("stream config format version {version} is unknown to this build"),
        ));
        return None;
    }
    let config: StreamConfig = match postcard::from_bytes(body) {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem::at(path, 24, format!("stream config: {e}")));
            return None;
        }
    };
    if let Err(e) = config.validate() {
        problems.push(Problem::at(path, 24, e.to_string()));
        return None;
    }
    Some(config)
}

/// `p<k>` with `k` below [`PRIORITIES_MAX`], without leading zeros.
fn parse_bucket_dir(name: &str) -> Option<u8> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: u8 = digits.parse().ok()?;
    (k < PRIORITIES_MAX && k.to_string() == digits).then_some(k)
}

fn inspect_bucket(priority: u8, dir: &Path, problems: &mut Vec<Problem>) -> BucketInfo {
    let mut info = BucketInfo {
        priority,
        path: dir.to_path_buf(),
        segments: Vec::new(),
        messages: 0,
        first_offset: None,
        last_offset: None,
        first_timestamp_us: None,
        last_timestamp_us: None,
        file_bytes: 0,
        data_bytes: 0,
        quarantined: Vec::new(),
    };
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::file(dir, "bucket directory missing"));
            return info;
        }
        Err(e) => {
            problems.push(Problem::file(dir, format!("cannot list: {e}")));
            return info;
        }
    };
    let mut bases: Vec<u64> = entries
        .iter()
        .filter(|(_, k)| *k == Kind::File)
        .filter_map(|(n, _)| crate::layout::parse_segment_name(n))
        .collect();
    bases.sort_unstable();
    if entries
        .iter()
        .any(|(n, k)| n == QUARANTINE_DIR && *k == Kind::Dir)
    {
        let qdir = dir.join(QUARANTINE_DIR);
        match list_dir(&qdir) {
            Ok(q) => {
                info.quarantined = q
                    .into_iter()
                    .filter(|(_, k)| *k == Kind::File)
                    .map(|(n, _)| qdir.join(n))
                    .collect()
            }
            Err(e) => problems.push(Problem::file(&qdir, format!("cannot list: {e}"))),
        }
    }
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(crate::layout::segment_file_name(base));
        let next = bases.get(i + 1).copied();
        let Some(seg) = inspect_bucket_segment(&path, base, priority, next) else {
            continue;
        };
        problems.extend(seg.problems.iter().cloned());
        info.segments.push(seg);
    }
    info.first_offset = info.segments.first().and_then(SegmentInfo::base_offset);
    info.messages = info.segments.iter().map(|s| s.record_count).sum();
    info.last_offset = info
        .segments
        .iter()
        .rev()
        .find(|s| s.record_count > 0)
        .and_then(|s| Some(s.base_offset()? + s.record_count - 1));
    info.first_timestamp_us = info.segments.iter().find_map(|s| s.first_timestamp_us);
    info.last_timestamp_us = info.segments.iter().rev().find_map(|s| s.last_timestamp_us);
    info.file_bytes = info.segments.iter().map(|s| s.file_bytes).sum();
    info.data_bytes = info
        .segments
        .iter()
        .map(|s| s.data_end.saturating_sub(SEGMENT_HEADER_BYTES as u64))
        .sum();
    info
}

/// Inspects one segment of a bucket listing; `None` if it vanished.
fn inspect_bucket_segment(
    path: &Path,
    base: u64,
    priority: u8,
    next_base: Option<u64>,
) -> Option<SegmentInfo> {
    let unreadable = |reason: String| SegmentInfo {
        path: path.to_path_buf(),
        name_base_offset: Some(base),
        file_bytes: 0,
        header: None,
        state: None,
        sealed: next_base.is_some(),
        index: IndexStatus::Missing,
        record_count: 0,
        data_end: 0,
        end: ScanEnd::NotScanned,
        first_timestamp_us: None,
        last_timestamp_us: None,
        records: Vec::new(),
        blob_refs: Vec::new(),
        problems: vec![Problem::file(path, reason)],
    };
    let bytes = match read_segment_bytes(path, next_base.is_none()) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => return None,
        Ok(Bounded::TooLarge(len)) => {
            let mut s = unreadable(String::new());
            s.file_bytes = len;
            s.problems = vec![too_large(path, len, SEGMENT_BYTES_LIMIT)];
            return Some(s);
        }
        Err(e) => return Some(unreadable(format!("cannot read: {e}"))),
    };
    let role = match next_base {
        Some(n) => Role::Sealed {
            expected_records: n.checked_sub(base),
        },
        None => {
            // The last segment is sealed if it has an intact index: it was
            // rolled after the directory was listed (or the process stopped
            // between writing the index and creating the next segment).
            let h = SegmentHeader::decode(&bytes).ok();
            let sealed_count = h.and_then(|h| {
                load_index(&index_path_of(path, base))
                    .ok()
                    .flatten()
                    .and_then(|b| index_fmt::decode(&b).ok())
                    .filter(|ih| ih.segment_id == h.segment_id && ih.base_offset == base)
                    .map(|ih| ih.count)
            });
            match sealed_count {
                Some(n) => Role::Sealed {
                    expected_records: Some(n),
                },
                None => Role::Active,
            }
        }
    };
    Some(analyse_segment(
        path,
        Some(base),
        Some(priority),
        &bytes,
        role,
        false,
    ))
}

/// Checks a segment held whole in `bytes` and summarises it.
fn analyse_segment(
    path: &Path,
    name_base: Option<u64>,
    priority: Option<u8>,
    bytes: &[u8],
    role: Role,
    keep_records: bool,
) -> SegmentInfo {
    let mut info = SegmentInfo {
        path: path.to_path_buf(),
        name_base_offset: name_base,
        file_bytes: bytes.len() as u64,
        header: None,
        state: None,
        sealed: matches!(role, Role::Sealed { .. }),
        index: IndexStatus::Missing,
        record_count: 0,
        data_end: 0,
        end: ScanEnd::NotScanned,
        first_timestamp_us: None,
        last_timestamp_us: None,
        records: Vec::new(),
        blob_refs: Vec::new(),
        problems: Vec::new(),
    };
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            let reason = match e {
                HeaderDecodeError::Truncated => format!(
                    "segment of {} bytes is shorter than its {SEGMENT_HEADER_BYTES}-byte header",
                    bytes.len()
                ),
                HeaderDecodeError::BadMagic => "not a segment file (bad magic)".to_string(),
                HeaderDecodeError::Version(v) => {
                    format!("segment format version {v} is unknown to this build")
                }
                HeaderDecodeError::BadCrc => "segment header checksum mismatch".to_string(),
            };
            info.problems.push(Problem::at(path, 0, reason));
            return info;
        }
    };
    info.header = Some(header);
    if let Some(b) = name_base {
        if header.base_offset != b {
            info.problems.push(Problem::at(
                path,
                24,
                format!(
                    "header says base offset {} but the file name says {b}",
                    header.base_offset
                ),
            ));
        }
    }
    if let Some(p) = priority {
        if header.bucket != u32::from(p) {
            info.problems.push(Problem::at(
                path,
                12,
                format!(
                    "segment belongs to priority {} but lies in bucket p{p}",
                    header.bucket
                ),
            ));
        }
    }
    let state = bytes
        .get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
        .and_then(|b| SegmentState::decode(header.segment_id, b));
    info.state = state;
    let data = bytes.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
    let epoch_max = match role {
        Role::Active => state.map(|s| s.epoch),
        Role::Sealed { .. } => None,
    };
    let scan = segment::scan(
        data,
        SEGMENT_HEADER_BYTES,
        header.segment_id,
        header.base_offset,
        epoch_max,
    );
    info.record_count = scan.positions.len() as u64;
    info.data_end = scan.end;
    info.end = judge_scan(path, &scan, role, state, &mut info.problems);
    let decode_at = |i: usize| -> Option<record::DecodedRecord> {
        let pos = *scan.positions.get(i)? as usize;
        let rec = bytes.get(pos..scan.end as usize)?;
        record::decode(
            rec,
            header.segment_id,
            u32::MAX,
            Some(header.base_offset + i as u64),
        )
        .ok()
    };
    info.first_timestamp_us = decode_at(0).map(|d| d.timestamp_us);
    info.last_timestamp_us = scan
        .positions
        .len()
        .checked_sub(1)
        .and_then(decode_at)
        .map(|d| d.timestamp_us);
    if keep_records {
        info.records = scan
            .positions
            .iter()
            .enumerate()
            .filter_map(|(i, &pos)| {
                decode_at(i).map(|d| RecordInfo {
                    position: u64::from(pos),
                    offset: d.offset,
                    timestamp_us: d.timestamp_us,
                    epoch: d.epoch,
                    flags: d.flags,
                    headers_bytes: d.hdr_len,
                    body_bytes: d.len - RECORD_HEADER_BYTES as u32 - u32::from(d.hdr_len),
                    stored_bytes: d.stored_len(),
                })
            })
            .collect();
    }
    for (i, &pos) in scan.positions.iter().enumerate() {
        let Some(d) = decode_at(i) else { continue };
        if d.flags & record::FLAG_CLAIM_CHECK == 0 {
            continue;
        }
        let start = pos as usize;
        let body = bytes.get(start + d.body_range().start..start + d.body_range().end);
        if let Some((hash, length)) = body.and_then(record::decode_claim_check) {
            info.blob_refs.push(BlobRef {
                hash,
                length,
                offset: d.offset,
                position: u64::from(pos),
            });
        }
    }
    info.index = check_index(
        &index_path_of(path, header.base_offset),
        &header,
        &scan,
        bytes.len() as u64,
    );
    if info.sealed {
        let why = match &info.index {
            IndexStatus::Valid => None,
            IndexStatus::Missing => Some("index of a sealed segment is missing".to_string()),
            IndexStatus::Invalid(why) => Some(format!("index: {why}")),
        };
        if let Some(why) = why {
            let idx = index_path_of(path, header.base_offset);
            info.problems.push(Problem::file(
                &idx,
                format!("{why}; it is rebuilt when the store is next opened"),
            ));
        }
    }
    info
}

/// Decides what the end of a scan means for a segment in `role`.
fn judge_scan(
    path: &Path,
    scan: &Scan,
    role: Role,
    state: Option<SegmentState>,
    problems: &mut Vec<Problem>,
) -> ScanEnd {
    let why = match scan.stop {
        ScanStop::End => None,
        ScanStop::Bad(e) => Some(e.to_string()),
        ScanStop::StaleEpoch(e) => Some(format!("record of an older epoch {e}")),
        ScanStop::FutureEpoch(e) => Some(format!("record of a future epoch {e}")),
    };
    match role {
        Role::Sealed { expected_records } => {
            let found = scan.positions.len() as u64;
            if let Some(why) = why {
                problems.push(Problem::at(
                    path,
                    scan.end,
                    format!("{why} in a sealed segment (after {found} valid records)"),
                ));
                return ScanEnd::Damaged;
            }
            match expected_records {
                Some(n) if n != found => {
                    problems.push(Problem::at(
                        path,
                        scan.end,
                        format!("sealed segment holds {found} records, {n} expected"),
                    ));
                    ScanEnd::Damaged
                }
                _ => ScanEnd::Clean,
            }
        }
        Role::Active => {
            let Some(state) = state else {
                problems.push(Problem::at(
                    path,
                    STATE_OFFSET as u64,
                    "segment state block fails its checksum: the durable watermark is unknown",
                ));
                return match why {
                    None => ScanEnd::Clean,
                    Some(reason) => ScanEnd::Tail {
                        position: scan.end,
                        reason,
                    },
                };
            };
            let watermark = state.synced_end;
            if scan.end < watermark {
                let why = why.unwrap_or_else(|| "zeros where synced records were".to_string());
                problems.push(Problem::at(
                    path,
                    scan.end,
                    format!("{why} (synced up to byte {watermark})"),
                ));
                return ScanEnd::Damaged;
            }
            match why {
                None => ScanEnd::Clean,
                Some(reason) => ScanEnd::Tail {
                    position: scan.end,
                    reason,
                },
            }
        }
    }
}

/// Checks the index file at `idx_path` against the scanned segment.
fn check_index(idx_path: &Path, header: &SegmentHeader, scan: &Scan, len: u64) -> IndexStatus {
    let b = match load_index(idx_path) {
        Ok(Some(b)) => b,
        Ok(None) => return IndexStatus::Missing,
        Err(e) => return IndexStatus::Invalid(e),
    };
    let checked = crate::log::index_file::check(&b, header, None, len)
        .and_then(|ih| crate::log::index_file::check_against_scan(&b, &ih, scan));
    match checked {
        Ok(()) => IndexStatus::Valid,
        Err(e) => IndexStatus::Invalid(e),
    }
}

/// Reads an index file; `Ok(None)` if missing, `Err(reason)` if unreadable or
/// too large.
fn load_index(path: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    match read_bounded(path, INDEX_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => Ok(Some(b)),
        Ok(Bounded::Missing) => Ok(None),
        Ok(Bounded::TooLarge(len)) => Err(format!(
            "index of {len} bytes exceeds the limit of {INDEX_FILE_BYTES_MAX}"
        )),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

fn index_path_of(segment_path: &Path, base: u64) -> PathBuf {
    segment_path.with_file_name(format!("{base:020}.idx"))
}

/// Reads a segment file. For an active segment, a state block that fails its
/// checksum may have been caught mid-update by the writer: read again.
fn read_segment_bytes(path: &Path, maybe_active: bool) -> io::Result<Bounded> {
    let mut read = read_bounded(path, SEGMENT_BYTES_LIMIT)?;
    if !maybe_active {
        return Ok(read);
    }
    for _ in 0..STATE_REREADS {
        let Bounded::Bytes(b) = &read else {
            return Ok(read);
        };
        let state_ok = SegmentHeader::decode(b).is_ok_and(|h| {
            b.get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
                .and_then(|s| SegmentState::decode(h.segment_id, s))
                .is_some()
        });
        if state_ok || SegmentHeader::decode(b).is_err() {
            return Ok(read);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        read = read_bounded(path, SEGMENT_BYTES_LIMIT)?;
    }
    Ok(read)
}

/// Bytes read from files by this module in this process so far: a caller
/// can show progress of a long inspection from another thread.
static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes read from files by the inspection functions of this process so far
/// (segments, indexes, meta files, blobs), for a progress display.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(std::sync::atomic::Ordering::Relaxed)
}

/// Directory of claim-check blobs in a store.
pub const BLOBS_DIR: &str = "blobs";

/// Directory of blobs being written, under [`BLOBS_DIR`].
pub const BLOBS_TMP_DIR: &str = "tmp";

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

/// A hash as 64 lowercase hex digits (a blob's file name).
pub fn hash_hex(h: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses 64 hex digits (either case) into a hash.
pub fn parse_hash_hex(name: &str) -> Option<[u8; 32]> {
    let b = name.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// Path of the blob with hash `h` in the store at `store`.
pub fn blob_path(store: &Path, h: &[u8; 32]) -> PathBuf {
    let hex = hash_hex(h);
    store.join(BLOBS_DIR).join(&hex[..2]).join(hex)
}

/// What is wrong with a blob file, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStatus {
    /// Present, a regular file, of the right length and hash.
    Valid,
    /// No such file.
    Missing,
    /// Something else than a regular file (a symlink, a directory, a FIFO).
    NotAFile,
    /// Its length differs from the reference's.
    WrongLength(u64),
    /// Its BLAKE3 hash differs from its name.
    WrongHash([u8; 32]),
    /// It could not be read.
    Unreadable(String),
}

impl std::fmt::Display for BlobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobStatus::Valid => write!(f, "valid"),
            BlobStatus::Missing => write!(f, "blob file missing"),
            BlobStatus::NotAFile => write!(f, "blob is not a regular file"),
            BlobStatus::WrongLength(n) => write!(f, "blob holds {n} bytes"),
            BlobStatus::WrongHash(h) => {
                write!(f, "blob content has BLAKE3 hash {}", hash_hex(h))
            }
            BlobStatus::Unreadable(e) => write!(f, "cannot read blob: {e}"),
        }
    }
}

/// Checks the blob file at `path` against a reference: a regular file (not
/// followed if a symlink) of `length` bytes whose BLAKE3 hash is `hash`. The
/// file is hashed in 1 MiB chunks (bounded memory whatever its size).
pub fn check_blob_file(path: &Path, hash: &[u8; 32], length: u64) -> BlobStatus {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobStatus::Missing,
        Err(e) => return BlobStatus::Unreadable(e.to_string()),
    };
    if !meta.is_file() {
        return BlobStatus::NotAFile;
    }
    if meta.len() != length {
        return BlobStatus::WrongLength(meta.len());
    }
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobStatus::Missing,
        Err(e) => return BlobStatus::Unreadable(e.to_string()),
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return BlobStatus::Unreadable(e.to_string()),
        };
        total += n as u64;
        BYTES_READ.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if total > length {
            return BlobStatus::WrongLength(total);
        }
        hasher.update(&buf[..n]);
    }
    if total != length {
        return BlobStatus::WrongLength(total);
    }
    let got: [u8; 32] = *hasher.finalize().as_bytes();
    if &got != hash {
        return BlobStatus::WrongHash(got);
    }
    BlobStatus::Valid
}

/// The blob files of the store at `store` (`blobs/<2 hex>/<64 hex>`), with
/// their hashes; files of other names and `blobs/tmp/` are not listed.
pub fn list_blob_files(store: &Path) -> io::Result<Vec<([u8; 32], PathBuf)>> {
    let dir = store.join(BLOBS_DIR);
    let subs = match list_dir(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (sub, kind) in subs {
        if kind != Kind::Dir || sub.len() != 2 || sub == BLOBS_TMP_DIR {
            continue;
        }
        let sdir = dir.join(&sub);
        let files = match list_dir(&sdir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (name, _) in files {
            if let Some(h) = parse_hash_hex(&name).filter(|_| name.starts_with(&sub)) {
                out.push((h, sdir.join(name)));
            }
        }
    }
    Ok(out)
}

/// Checks the claim-check references of every segment in `info` against the
/// blob files of the store, and finds the blobs no record refers to.
///
/// Each distinct reference is checked once ([`check_blob_file`]); a bad one
/// is a problem on the blob file naming the segment and byte position of the
/// first record that refers to it. A blob nobody refers to is an orphan: a
/// problem with [`Problem::warning`] set (nothing is lost; the next open of
/// the store, or `segment-tool repair`, removes it).
pub fn check_blobs(info: &StoreInfo) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for seg in info
        .streams
        .iter()
        .flat_map(|s| s.buckets.iter())
        .flat_map(|b| b.segments.iter())
    {
        for r in &seg.blob_refs {
            if !seen.insert(r.hash) {
                continue;
            }
            let path = blob_path(&info.path, &r.hash);
            let status = check_blob_file(&path, &r.hash, r.length);
            if status != BlobStatus::Valid {
                let want = match status {
                    BlobStatus::WrongLength(_) => format!(", {} expected", r.length),
                    _ => String::new(),
                };
                problems.push(Problem::file(
                    &path,
                    format!(
                        "{status}{want}; referred to by offset {} in {} at byte {}",
                        r.offset,
                        seg.path.display(),
                        r.position
                    ),
                ));
            }
        }
    }
    match list_blob_files(&info.path) {
        Ok(files) => {
            for (h, path) in files {
                if !seen.contains(&h) {
                    let mut p = Problem::file(
                        &path,
                        "orphan blob: no message refers to it (warning: nothing is lost; \
                         the next open or `repair` removes it)",
                    );
                    p.warning = true;
                    problems.push(p);
                }
            }
        }
        Err(e) => problems.push(Problem::file(
            &info.path.join(BLOBS_DIR),
            format!("cannot list: {e}"),
        )),
    }
    problems
}

/// A file read with a size limit.
pub(crate) enum Bounded {
    /// The whole file.
    Bytes(Vec<u8>),
    /// No such file.
    Missing,
    /// The file is longer than the limit (its length); nothing was read.
    TooLarge(u64),
}

/// Reads the whole file at `path` if it is at most `limit` bytes. The length
/// is checked before anything is allocated, and the read stops at `limit + 1`
/// bytes in case the file grows meanwhile. Does not follow a final symlink.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Bounded> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bounded::Missing),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Ok(Bounded::TooLarge(meta.len()));
    }
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bounded::Missing),
        Err(e) => return Err(e),
    };
    // `meta.len() <= limit <= 1 GiB` fits in usize on every supported target.
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut buf)?;
    BYTES_READ.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
    if buf.len() as u64 > limit {
        return Ok(Bounded::TooLarge(buf.len() as u64));
    }
    Ok(Bounded::Bytes(buf))
}

fn too_large(path: &Path, len: u64, limit: u64) -> Problem {
    Problem::file(
        path,
        format!("file of {len} bytes exceeds the limit of {limit} bytes; not read"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Other,
}

/// Lists a directory, sorted by name; names that are not UTF-8 are skipped
/// (Spool never creates them). Symlinks are `Other`, never followed.
fn list_dir(dir: &Path) -> io::Result<Vec<(String, Kind)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let kind = match e.file_type() {
            Ok(t) if t.is_file() => Kind::File,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(_) => Kind::Other,
            // Removed between listing and stat: skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Goal: the inspector reports what the engine wrote, tells a live tail
    //! from damage, and never panics on hostile bytes. Method: build stores
    //! with the public API, then inspect them as they are, damaged, cut short.

    use super::*;
    use crate::{Durability, Message, Options, Store};

    fn opts() -> Options {
        Options::default().durability(Durability::Never)
    }

    fn bucket_dir(root: &Path, stream: &str, p: u8) -> PathBuf {
        root.join(STREAMS_DIR).join(stream).join(format!("p{p}"))
    }

    fn seg_paths(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn empty_store_has_no_streams_and_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), opts()).unwrap());
        let info = inspect_store(dir.path()).unwrap();
        assert_eq!(info.format_version, Some(STORE_VERSION));
        assert!(info.streams.is_empty());
        assert!(info.problems.is_empty(), "{:?}", info.problems);
    }

    #[test]
    fn not_a_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inspect_store(dir.path()).is_err());
        assert!(inspect_store(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn counts_offsets_and_timestamps_per_bucket() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), opts()).unwrap();
            let s = store.stream("orders").unwrap();
            for i in 0..10u32 {
                s.send(format!("m{i}").as_bytes()).unwrap();
            }
            let p = store
                .create_stream("prio", StreamConfig::default().priorities(3))
                .unwrap();
            p.send_message(Message::new(b"hi").priority(2).header("k", "v"))
                .unwrap();
            store.close().unwrap();
        }
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        assert_eq!(info.streams.len(), 2);
        assert_eq!(info.messages(), 11);
        let orders = &info.streams[0];
        assert_eq!(orders.name, "orders");
        let b = &orders.buckets[0];
        assert_eq!(b.messages, 10);
        assert_eq!(b.first_offset, Some(0));
        assert_eq!(b.last_offset, Some(9));
        assert!(b.first_timestamp_us.unwrap() <= b.last_timestamp_us.unwrap());
        assert_eq!(b.segments.len(), 1);
        assert!(!b.segments[0].sealed);
        assert_eq!(b.segments[0].end, ScanEnd::Clean);
        let prio = &info.streams[1];
        assert_eq!(prio.config.as_ref().map(|c| c.priorities), Some(3));
        let counts: Vec<u64> = prio.buckets.iter().map(|b| b.messages).collect();
        assert_eq!(counts, vec![0, 0, 1]);
        assert_eq!(prio.buckets[0].last_offset, None);
    }

    #[test]
    fn sealed_segments_have_valid_indexes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
            let s = store.stream("s").unwrap();
            for _ in 0..500 {
                s.send(&[7u8; 400]).unwrap();
            }
        }
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        let b = &info.streams[0].buckets[0];
        assert!(b.segments.len() > 2);
        assert_eq!(b.messages, 500);
        assert_eq!(b.last_offset, Some(499));
        let (last, sealed) = b.segments.split_last().unwrap();
        for s in sealed {
            assert!(s.sealed);
            assert_eq!(s.index, IndexStatus::Valid);
        }
        assert!(!last.sealed);
        assert_eq!(last.index, IndexStatus::Missing);
        // Consecutive bases, no gap.
        for w in b.segments.windows(2) {
            assert_eq!(
                w[0].base_offset().unwrap() + w[0].record_count,
                w[1].base_offset().unwrap()
            );
        }
    }

    #[test]
    fn damage_in_a_sealed_segment_and_a_missing_index_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
            let s = store.stream("s").unwrap();
            for _ in 0..300 {
                s.send(&[7u8; 400]).unwrap();
            }
        }
        let bdir = bucket_dir(dir.path(), "s", 0);
        let segs = seg_paths(&bdir);
        let mut bytes = fs::read(&segs[0]).unwrap();
        bytes[SEGMENT_HEADER_BYTES + 40] ^= 1;
        fs::write(&segs[0], &bytes).unwrap();
        fs::remove_file(segs[1].with_extension("idx")).unwrap();
        let info = inspect_store(dir.path()).unwrap();
        assert!(info
            .problems
            .iter()
            .any(|p| p.file == segs[0] && p.position == Some(SEGMENT_HEADER_BYTES as u64)));
        assert!(info
            .problems
            .iter()
            .any(|p| p.file == segs[1].with_extension("idx")));
        let b = &info.streams[0].buckets[0];
        assert_eq!(b.segments[0].end, ScanEnd::Damaged);
        assert_eq!(b.segments[0].record_count, 0);
    }

    #[test]
    fn live_tail_is_not_a_problem_but_damage_below_the_watermark_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        for _ in 0..10 {
            s.send(b"first").unwrap();
        }
        store.sync().unwrap();
        for _ in 0..10 {
            s.send(b"second").unwrap();
        }
        store.sync().unwrap();
        // The watermark now covers (at least) the first ten records.
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        assert_eq!(info.streams[0].buckets[0].messages, 20);
        let seg = &info.streams[0].buckets[0].segments[0];
        let watermark = seg.state.unwrap().synced_end;
        assert!(watermark > SEGMENT_HEADER_BYTES as u64);

        // A half-written record past everything: a tail, not a problem.
        let path = seg.path.clone();
        let mut bytes = fs::read(&path).unwrap();
        let end = seg.data_end as usize;
        bytes[end..end + 4].copy_from_slice(&64u32.to_le_bytes());
        bytes[end + 4] = 0xAB;
        let tail_path = dir.path().join("tail.seg");
        fs::write(&tail_path, &bytes).unwrap();
        let one = read_segment(&tail_path).unwrap();
        assert!(one.problems.is_empty(), "{:?}", one.problems);
        assert!(matches!(one.end, ScanEnd::Tail { .. }));
        assert_eq!(one.records.len(), 20);
        assert_eq!(one.records[3].offset, 3);
        assert_eq!(one.records[3].body_bytes, 5);

        // A flipped bit in the first record, below the watermark: damage.
        bytes[SEGMENT_HEADER_BYTES + 33] ^= 1;
        fs::write(&tail_path, &bytes).unwrap();
        let one = read_segment(&tail_path).unwrap();
        assert_eq!(one.end, ScanEnd::Damaged);
        assert_eq!(
            one.problems[0].position,
            Some(SEGMENT_HEADER_BYTES as u64),
            "{:?}",
            one.problems
        );
        drop(s);
        drop(store);
    }

    #[test]
    fn truncated_and_hostile_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), opts().segment_bytes_max(64 * 1024)).unwrap();
            let s = store.stream("s").unwrap();
            for i in 0..400u32 {
                s.send(format!("message {i}").repeat(40).as_bytes())
                    .unwrap();
            }
        }
        let bdir = bucket_dir(dir.path(), "s", 0);
        let segs = seg_paths(&bdir);
        assert!(segs.len() > 1);
        let original = fs::read(&segs[0]).unwrap();
        let cuts = [
            0usize, 1, 8, 60, 64, 513, 1023, 1024, 1025, 1100, 4096, 30_000,
        ];
        for &cut in &cuts {
            let cut = cut.min(original.len());
            fs::write(&segs[0], &original[..cut]).unwrap();
            let _ = read_segment(&segs[0]);
            let info = inspect_store(dir.path()).unwrap();
            assert!(!info.problems.is_empty(), "cut at {cut} went unnoticed");
        }
        fs::write(&segs[0], &original).unwrap();
        let meta = dir.path().join(STREAMS_DIR).join("s").join(STREAM_META);
        fs::write(&meta, vec![1u8; (META_FILE_BYTES_MAX + 1) as usize]).unwrap();
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.iter().any(|p| p.file == meta));
        // The buckets are still found from their directories.
        assert_eq!(info.streams[0].buckets.len(), 1);
        fs::write(&meta, b"SPOOLMTA garbage").unwrap();
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.iter().any(|p| p.file == meta));
    }

    #[test]
    fn consumers_agree_with_the_engine_and_hostile_checkpoints_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let stats = {
            let store = Store::open(dir.path(), opts()).unwrap();
            let s = store
                .create_stream("p", StreamConfig::default().priorities(2))
                .unwrap();
            for i in 0..8u8 {
                s.send_message(Message::new(&[i]).priority(i % 2)).unwrap();
            }
            let c = s.consumer("c").unwrap();
            let mut ds = Vec::new();
            while let Some(d) = c.try_receive().unwrap() {
                ds.push(d);
                if ds.len() == 5 {
                    break;
                }
            }
            for d in ds.drain(..).step_by(2) {
                d.ack().unwrap();
            }
            c.stats()
        };
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        let ci = &info.streams[0].consumers[0];
        assert_eq!(ci.name, "c");
        assert!(ci.journal_records > 0);
        for (b, s) in ci.buckets.iter().zip(&stats.buckets) {
            assert_eq!(b.ack_floor, s.ack_floor, "{ci:?}");
            assert_eq!(b.next_offset, s.next_offset, "{ci:?}");
            assert_eq!(b.end_offset, Some(s.end_offset));
            assert_eq!(b.lag, Some(s.end_offset - s.ack_floor));
            assert_eq!(b.unacked_deliveries, s.in_flight + s.waiting_redelivery);
        }
        // A checkpoint of the wrong number of levels, then garbage.
        let ckpt = ci.path.join(CHECKPOINT_FILE);
        let body = CheckpointBody {
            generation: 7,
            buckets: vec![Default::default()],
            ..Default::default()
        };
        let framed = meta::encode(
            CHECKPOINT_MAGIC,
            CHECKPOINT_VERSION,
            &postcard::to_allocvec(&body).unwrap(),
        );
        fs::write(&ckpt, framed).unwrap();
        let info = inspect_store(dir.path()).unwrap();
        assert!(info.problems.iter().any(|p| p.file == ckpt), "{info:?}");
        assert!(info.streams[0].consumers[0].buckets.is_empty());
        for cut in [0, 10, 24] {
            fs::write(&ckpt, &[0x5a; 40][..cut]).unwrap();
            let info = inspect_store(dir.path()).unwrap();
            assert!(info.problems.iter().any(|p| p.file == ckpt));
        }
    }

    #[test]
    fn bucket_directory_names() {
        assert_eq!(parse_bucket_dir("p0"), Some(0));
        assert_eq!(parse_bucket_dir("p15"), Some(15));
        assert_eq!(parse_bucket_dir("p16"), None);
        assert_eq!(parse_bucket_dir("p01"), None);
        assert_eq!(parse_bucket_dir("p"), None);
        assert_eq!(parse_bucket_dir("q1"), None);
    }
}
