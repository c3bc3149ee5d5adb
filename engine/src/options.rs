//! Store options and stream configuration.

use crate::format::segment::SEGMENT_HEADER_BYTES;
use crate::io::Vfs;
pub use crate::limits::{PRIORITIES_MAX, SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// When a send is durable. Consumer acknowledgements follow the same setting.
///
/// ```
/// use spool::{Durability, Error, Options, Store};
/// use std::time::{Duration, Instant};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///
///     // Always (the default): on disk when `send` returns.
///     let store = Store::open(dir.path().join("always"), Options::default())?;
///     let events = store.stream("events")?;
///     events.send(b"paid")?;
///     assert_eq!(events.stats().buckets[0].durable_offset, 1);
///
///     // Interval: a background thread syncs every 10 ms (and `Store::sync` on demand).
///     let every_10ms = Durability::Interval(Duration::from_millis(10));
///     let options = Options::default().durability(every_10ms);
///     let store = Store::open(dir.path().join("interval"), options)?;
///     let events = store.stream("events")?;
///     events.send(b"viewed")?; // returns at once
///     let deadline = Instant::now() + Duration::from_secs(10);
///     while events.stats().buckets[0].durable_offset < 1 {
///         assert!(Instant::now() < deadline, "the background sync ran");
///         std::thread::sleep(Duration::from_millis(5));
///     }
///
///     let zero = Options::default().durability(Durability::Interval(Duration::ZERO));
///     let refused = Store::open(dir.path().join("zero"), zero);
///     assert!(matches!(refused, Err(Error::InvalidConfig(_))));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `send` returns after its bytes are on disk (msync `MS_SYNC`).
    /// Concurrent senders share one sync (group commit). Survives process
    /// crashes, OS crashes and power loss. The default.
    Always,
    /// A background thread syncs every interval; `Store::sync` forces one.
    /// A process crash loses nothing already sent (the data is in the page
    /// cache); an OS crash or power loss may lose up to one interval. The
    /// interval must be positive; 100 years or more (up to `Duration::MAX`)
    /// means no timer, leaving the syncs of [`Options::writeback_bytes`].
    Interval(Duration),
    /// Sends never wait for a sync. Data is written back in the background
    /// (see [`Options::writeback_bytes`]), at segment rolls, on
    /// `Store::sync` and when the store closes. A process crash loses
    /// nothing already sent; an OS crash or power loss may lose what was
    /// sent since the last sync. Not durable.
    Never,
}

/// Options of [`crate::Store::open`]. Build with the setters:
///
/// ```
/// use spool::{Durability, Error, Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let options = Options::default()
///         .durability(Durability::Never) // sends never wait for the disk
///         .segment_bytes_max(8 << 20) // 8 MiB segment files
///         .message_bytes_max(64 << 10); // messages up to 64 KiB
///     let store = Store::open(dir.path(), options)?;
///     let big = store.stream("events")?.send(&[0; 100 << 10]);
///     assert!(matches!(big, Err(Error::MessageTooLarge { .. })));
///
///     // Checked when the store opens.
///     let tiny = Options::default().segment_bytes_max(4096);
///     let refused = Store::open(dir.path().join("other"), tiny);
///     assert!(matches!(refused, Err(Error::InvalidConfig(_))));
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) segment_bytes_max: u64,
    message_bytes_max: Option<u64>,
    pub(crate) allocation_chunk_bytes: u64,
    pub(crate) durability: Durability,
    pub(crate) consumer_journal_bytes: u64,
    pub(crate) writeback_bytes: u64,
    pub(crate) slow_sync: Duration,
    pub(crate) vfs: Option<Arc<dyn Vfs>>,
}

/// Default of [`Options::slow_sync_threshold`]: 250 ms, a thousand times a
/// good disk's flush of a small append and several times the sync of a
/// whole 64 MiB segment at a segment roll.
pub const SLOW_SYNC_THRESHOLD: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("message_bytes_max", &self.message_limit())
            .field("allocation_chunk_bytes", &self.allocation_chunk_bytes)
            .field("durability", &self.durability)
            .field("consumer_journal_bytes", &self.consumer_journal_bytes)
            .field("writeback_bytes", &self.writeback_bytes)
            .field("slow_sync_threshold", &self.slow_sync)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes_max: 64 << 20,
            message_bytes_max: None,
            allocation_chunk_bytes: 1 << 20,
            durability: Durability::Always,
            consumer_journal_bytes: 16 << 20,
            writeback_bytes: 4 << 20,
            slow_sync: SLOW_SYNC_THRESHOLD,
            vfs: None,
        }
    }
}

impl Options {
    /// Size of a segment file; a bucket rolls to a new segment when the next
    /// record does not fit. Default = 64 MiB; 64 KiB..=1 GiB.
    pub fn segment_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_bytes_max = bytes;
        self
    }

    /// Largest message (headers plus payload, as encoded). Larger sends fail
    /// with [`Error::MessageTooLarge`]. Default = 8 MiB or a quarter of
    /// `segment_bytes_max`, whichever is smaller; at most that quarter.
    pub fn message_bytes_max(mut self, bytes: u64) -> Self {
        self.message_bytes_max = Some(bytes);
        self
    }

    /// The effective message size limit.
    pub(crate) fn message_limit(&self) -> u64 {
        self.message_bytes_max
            .unwrap_or_else(|| (8 << 20).min(self.message_bytes_limit()))
    }

    /// Whether the store runs its background thread (`Interval`, or
    /// `Never` with writeback): it syncs, and faults in segment space ahead
    /// of the writer.
    pub(crate) fn background_thread(&self) -> bool {
        match self.durability {
            Durability::Interval(_) => true,
            Durability::Never => self.writeback_bytes > 0,
            Durability::Always => false,
        }
    }

    /// The effective allocation chunk.
    pub(crate) fn chunk_bytes(&self) -> u64 {
        self.allocation_chunk_bytes.min(self.segment_bytes_max)
    }

    fn message_bytes_limit(&self) -> u64 {
        self.segment_bytes_max
            .saturating_sub(SEGMENT_HEADER_BYTES as u64)
            / 4
    }

    /// Disk space is reserved (fallocate) in chunks of this size ahead of
    /// appends. Default = 1 MiB; at least 4 KiB; capped at `segment_bytes_max`.
    pub fn allocation_chunk_bytes(mut self, bytes: u64) -> Self {
        self.allocation_chunk_bytes = bytes;
        self
    }

    /// Largest size of a consumer's journal file: every delivery and
    /// acknowledgement takes 24 bytes (a batch ack 24 bytes and 2 or more
    /// per run of consecutive offsets); when the journal is full, the
    /// consumer writes a checkpoint and starts a new one. The first journal
    /// after an open is 1/256 of this (4 KiB..=64 KiB), and each that fills
    /// up is followed by one twice its size, up to this (or larger, for a
    /// batch ack whose record needs more), so an idle consumer holds 64 KiB
    /// and an open needs little disk. Default = 16 MiB
    /// (about 700,000 records, some 350,000 messages received and
    /// acknowledged one by one); 4 KiB..=1 GiB. Disk space for each journal
    /// is reserved when it is created; if the disk has no room for a new
    /// one, the consumer still opens and receives, and its acks fail with
    /// [`crate::Error::DiskFull`] until there is room.
    pub fn consumer_journal_bytes(mut self, bytes: u64) -> Self {
        self.consumer_journal_bytes = bytes;
        self
    }

    /// With [`Durability::Never`] or [`Durability::Interval`], a background
    /// thread syncs a bucket each time this many more bytes were appended to
    /// it, so that the disk keeps up with the writer instead of a segment
    /// roll (which must sync the whole segment) stalling it, and the page
    /// cache does not fill with dirty pages. `0` turns it off. Default =
    /// 4 MiB. Sends never wait for these syncs.
    pub fn writeback_bytes(mut self, bytes: u64) -> Self {
        self.writeback_bytes = bytes;
        self
    }

    /// A sync (`msync` or `fsync` of a segment, a consumer journal, any
    /// other file or a directory) that takes at least this long emits the
    /// `slow sync` warning event (see [`crate::events`]): which file, how
    /// long. Syncs are timed with the kernel's coarse monotonic clock (it
    /// costs next to nothing; its resolution is one kernel tick, 4 ms on
    /// most kernels), and a sync is reported once its measured time reaches
    /// this plus that resolution, so that one reported really took this
    /// long. Default = [`SLOW_SYNC_THRESHOLD`] (250 ms); at least 1 ms;
    /// `Duration::MAX` reports none.
    pub fn slow_sync_threshold(mut self, threshold: Duration) -> Self {
        self.slow_sync = threshold;
        self
    }

    /// When sends and acknowledgements are durable. Default = [`Durability::Always`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Runs the store on another file system implementation (tests).
    #[doc(hidden)]
    #[cfg(feature = "sim")]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = Some(vfs);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return bad(format!(
                "segment_bytes_max {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                self.segment_bytes_max
            ));
        }
        if self.segment_bytes_max % 4096 != 0 {
            return bad("segment_bytes_max must be a multiple of 4096".into());
        }
        let message_limit = self.message_bytes_limit();
        let message_max = self.message_limit();
        if message_max == 0 || message_max > message_limit {
            return bad(format!(
                "message_bytes_max {message_max} is outside 1..={message_limit} (a quarter of a segment)"
            ));
        }
        if self.allocation_chunk_bytes < 4096 {
            return bad(format!(
                "allocation_chunk_bytes {} is below 4096",
                self.allocation_chunk_bytes
            ));
        }
        if !(4096..=1 << 30).contains(&self.consumer_journal_bytes) {
            return bad(format!(
                "consumer_journal_bytes {} is outside 4096..=1 GiB",
                self.consumer_journal_bytes
            ));
        }
        if self.slow_sync < Duration::from_millis(1) {
            return bad(format!(
                "slow_sync_threshold {:?} is below 1 ms",
                self.slow_sync
            ));
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return bad("Durability::Interval needs a non-zero interval".into());
            }
        }
        Ok(())
    }
}

/// Configuration of a stream, fixed at creation and persisted in `stream.meta`.
///
/// ```
/// use spool::{Error, Options, Store, StreamConfig};
/// use std::time::Duration;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let config = StreamConfig::default()
///         .priorities(3) // levels 0 ..= 2
///         .max_age(Duration::from_secs(7 * 24 * 3600)) // deleted after a week, read or not
///         .max_bytes(10 << 30) // at most 10 GiB of segment files per level
///         .claim_check_threshold(1 << 20); // payloads over 1 MiB go to blob files
///     let tasks = store.create_stream("tasks", config.clone())?;
///     assert_eq!(tasks.config(), &config);
///     drop(tasks);
///     store.close()?;
///
///     // Persisted: after a restart the stream has it.
///     let store = Store::open(dir.path(), Options::default())?;
///     assert_eq!(store.stream("tasks")?.config(), &config);
///
///     let seventeen = StreamConfig::default().priorities(17);
///     let refused = store.create_stream("more", seventeen);
///     assert!(matches!(refused, Err(Error::InvalidConfig(_))));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamConfig {
    /// Number of priority levels, 1..=16 (0 = lowest). Each level is a
    /// separate bucket with its own offsets. Default = 1.
    pub priorities: u8,
    /// Delete sealed segments whose newest message is older than this (by
    /// its [`crate::Record::timestamp_us`]), even if a consumer has not
    /// acknowledged them (it then counts them as skipped). Default = none:
    /// keep until every consumer acknowledged.
    /// An age beyond what a timestamp holds (about 584,000 years) deletes
    /// nothing.
    pub max_age: Option<Duration>,
    /// Delete the oldest sealed segments while a bucket's segment files take
    /// more than this many bytes, even if a consumer has not acknowledged
    /// them. Default = none.
    pub max_bytes: Option<u64>,
    /// Payloads larger than this many bytes are stored once as
    /// content-addressed blob files (claim checks) instead of in the log.
    /// Default = 256 KiB.
    pub claim_check_threshold: u64,
    /// How long a message id ([`crate::Message::id`]) is remembered: a
    /// send with an id sent within this span stores nothing and returns the
    /// first one's offset. Default = 2 minutes; zero turns deduplication
    /// off; at most [`crate::ATTRIBUTE_SPAN_MAX`].
    pub dedup_window: Duration,
    /// A bounded stream: a send that would make the stream's segment files
    /// (all levels together, by their lengths; a file is created at its
    /// full size when a segment rolls) exceed this many bytes fails with
    /// [`Error::StreamFull`] and stores nothing, until retention frees
    /// space (whole segments, once consumers acknowledged them, or by
    /// `max_age`/`max_bytes`). Default = none. Unlike
    /// [`StreamConfig::max_bytes`], which deletes the oldest messages, this
    /// refuses new ones. Choose several segments' worth: space frees a
    /// segment at a time.
    pub capacity_bytes: Option<u64>,
    /// A bounded stream: a send that would make the stream hold more than
    /// this many messages (all levels together, from each level's first
    /// retained offset to its end, acknowledged or not) fails with
    /// [`Error::StreamFull`] and stores nothing; a batch that would is
    /// refused whole. Default = none.
    pub capacity_messages: Option<u64>,
}

/// Default of [`StreamConfig::dedup_window`]: 2 minutes.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(120);

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            priorities: 1,
            max_age: None,
            max_bytes: None,
            claim_check_threshold: 256 * 1024,
            dedup_window: DEDUP_WINDOW,
            capacity_bytes: None,
            capacity_messages: None,
        }
    }
}

/// `stream.meta` body, version 1 (and every configuration without the
/// fields of version 2 at their defaults is still written so, for older
/// builds to read).
#[derive(Serialize, Deserialize)]
struct StreamConfigV1 {
    priorities: u8,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
    claim_check_threshold: u64,
}

/// `stream.meta` body, version 2: version 1 and then the deduplication
/// window and the capacity limits.
#[derive(Serialize, Deserialize)]
struct StreamConfigV2 {
    v1: StreamConfigV1,
    dedup_window: Duration,
    capacity_bytes: Option<u64>,
    capacity_messages: Option<u64>,
}

impl StreamConfig {
    /// Sets the number of priority levels (1..=16).
    pub fn priorities(mut self, priorities: u8) -> Self {
        self.priorities = priorities;
        self
    }

    /// Sets [`StreamConfig::max_age`].
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Sets [`StreamConfig::claim_check_threshold`].
    pub fn claim_check_threshold(mut self, bytes: u64) -> Self {
        self.claim_check_threshold = bytes;
        self
    }

    /// Sets [`StreamConfig::max_bytes`].
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Sets [`StreamConfig::dedup_window`].
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Sets [`StreamConfig::capacity_bytes`].
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity_bytes = Some(bytes);
        self
    }

    /// Sets [`StreamConfig::capacity_messages`].
    ///
    /// ```
    /// use spool::{Error, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let jobs = store.create_stream("jobs", StreamConfig::default().capacity_messages(2))?;
    ///     jobs.send_batch(["a", "b"])?;
    ///     assert!(matches!(jobs.send(b"c"), Err(Error::StreamFull { .. })));
    ///     assert_eq!(jobs.stats().messages(), 2);
    ///     Ok(())
    /// }
    /// ```
    pub fn capacity_messages(mut self, messages: u64) -> Self {
        self.capacity_messages = Some(messages);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.priorities == 0 || self.priorities > PRIORITIES_MAX {
            return bad(format!(
                "priorities {} is outside 1..={PRIORITIES_MAX}",
                self.priorities
            ));
        }
        if self.dedup_window > crate::message::ATTRIBUTE_SPAN_MAX {
            return bad(format!(
                "dedup_window {:?} is more than 100 years",
                self.dedup_window
            ));
        }
        if self.capacity_bytes == Some(0) || self.capacity_messages == Some(0) {
            return bad("a capacity of zero would refuse every send".into());
        }
        Ok(())
    }

    /// The `stream.meta` format version and body of this configuration:
    /// version 1 when everything version 2 added is at its default.
    pub(crate) fn encode_body(&self) -> Result<(u32, Vec<u8>)> {
        let v1 = StreamConfigV1 {
            priorities: self.priorities,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            claim_check_threshold: self.claim_check_threshold,
        };
        let d = StreamConfig::default();
        let enc = |e| Error::encode("stream config", e);
        if (
            self.dedup_window,
            self.capacity_bytes,
            self.capacity_messages,
        ) == (d.dedup_window, d.capacity_bytes, d.capacity_messages)
        {
            return Ok((1, postcard::to_allocvec(&v1).map_err(enc)?));
        }
        let v2 = StreamConfigV2 {
            v1,
            dedup_window: self.dedup_window,
            capacity_bytes: self.capacity_bytes,
            capacity_messages: self.capacity_messages,
        };
        Ok((2, postcard::to_allocvec(&v2).map_err(enc)?))
    }

    /// Decodes a `stream.meta` body of format `version` (1 or 2) and
    /// validates it; the reason it is unusable otherwise.
    pub(crate) fn decode_body(version: u32, body: &[u8]) -> std::result::Result<Self, String> {
        fn whole<'a, T: Deserialize<'a>>(b: &'a [u8]) -> std::result::Result<T, String> {
            match postcard::take_from_bytes::<T>(b) {
                Ok((v, [])) => Ok(v),
                Ok((_, rest)) => Err(format!("{} bytes after its end", rest.len())),
                Err(e) => Err(e.to_string()),
            }
        }
        let (v1, v2) = match version {
            1 => (whole::<StreamConfigV1>(body)?, None),
            2 => {
                let v2 = whole::<StreamConfigV2>(body)?;
                let extra = (v2.dedup_window, v2.capacity_bytes, v2.capacity_messages);
                (v2.v1, Some(extra))
            }
            v => return Err(format!("format version {v} is unknown to this build")),
        };
        let d = StreamConfig::default();
        let (dedup_window, capacity_bytes, capacity_messages) =
            v2.unwrap_or((d.dedup_window, d.capacity_bytes, d.capacity_messages));
        let c = StreamConfig {
            priorities: v1.priorities,
            max_age: v1.max_age,
            max_bytes: v1.max_bytes,
            claim_check_threshold: v1.claim_check_threshold,
            dedup_window,
            capacity_bytes,
            capacity_messages,
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}
