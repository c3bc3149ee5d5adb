//! The events Spool emits through [`tracing`](https://docs.rs/tracing), for
//! operators to watch: what recovery did at open, what retention deleted,
//! messages moved to a dead-letter stream, the store refusing writes after a
//! failed durability step, syncs slower than
//! [`Options::slow_sync_threshold`](crate::Options::slow_sync_threshold),
//! and consumer journal rotations.
//!
//! Spool installs no subscriber: a program that wants the events installs
//! one (`tracing-subscriber`'s `fmt()`, a JSON layer, …) and filters on the
//! targets below. Without a subscriber an event costs one relaxed atomic
//! load. None is emitted per message: sends, receives, acks and syncs emit
//! nothing unless a sync is slow, a message is dead-lettered or the store
//! is poisoned; the slow-sync check is two readings of the coarse monotonic
//! clock around each sync (a few nanoseconds, against tens of microseconds
//! for a sync on a disk).
//!
//! | target | level | message | fields |
//! |---|---|---|---|
//! | `spool::recovery` | INFO | `store opened` | `path`, `streams`, `duration_us`, `torn_tails`, `rebuilt_indexes`, `removed_temp_files`, `removed_incomplete_streams`, `removed_orphan_blobs` |
//! | `spool::recovery` | WARN | `torn tail cut` | `stream`, `priority`, `segment`, `position`, `bytes`, `scattered_bytes`, `next_offset`, `quarantine` |
//! | `spool::recovery` | INFO | `index rebuilt` | `path` |
//! | `spool::recovery` | INFO | `temporary file removed` | `path` |
//! | `spool::recovery` | INFO | `incomplete stream removed` | `path` |
//! | `spool::recovery` | INFO | `orphan blobs removed` | `count` |
//! | `spool::retention` | INFO | `segments deleted` | `stream`, `priority`, `segments`, `bytes`, `low_water` |
//! | `spool::retention` | WARN | `damaged kept ids removed` | `path` |
//! | `spool::dead_letter` | WARN | `message dead-lettered` | `stream`, `consumer`, `priority`, `offset`, `attempts`, `reason`, `dead_letter_stream` |
//! | `spool::poison` | ERROR | `store poisoned` | `what`, `path`, `error` |
//! | `spool::sync` | WARN | `slow sync` | `what`, `path`, `duration_us`, `threshold_us` |
//! | `spool::consumer` | DEBUG | `journal rotated` | `stream`, `consumer`, `generation`, `journal`, `journal_bytes` |
//!
//! What the fields hold:
//!
//! - `store opened` comes last of the recovery events of an open, after the
//!   others; its counts are those of [`crate::RecoveryReport`] (all zero
//!   after a clean close), `duration_us` the time `Store::open` took.
//! - `torn tail cut`: one per [`crate::TornTail`]: `position` is the byte
//!   of `segment` where the cut starts, `bytes` how many were cut and
//!   copied to `quarantine`, `scattered_bytes` further non-zero bytes
//!   zeroed, `next_offset` the offset the next message of the bucket gets.
//! - `segments deleted`: one per bucket and retention pass that deleted
//!   something: `segments` files (with their indexes) removed, `bytes` their
//!   size, `low_water` the bucket's new first retained offset.
//! - `damaged kept ids removed`: a kept-ids file (`<base>.ids`, the ids of
//!   a segment retention deleted within the dedup window) at `path` did not
//!   pass its checks when read: it is ignored and removed (only ids are
//!   lost with it; DESIGN.md §7.1).
//! - `message dead-lettered`: a message delivered `max_deliveries` times,
//!   acknowledged after its copy went to `dead_letter_stream` (empty when
//!   the consumer has none: the message was dropped); `reason` is the
//!   reason of its last nack, empty if none; `attempts` its deliveries.
//! - `store poisoned`: emitted once, when the first failed durability step
//!   poisons the store (every later write fails with
//!   [`crate::Error::Poisoned`] until it is reopened): `what` failed on
//!   `path` (empty where no file is known) with `error`.
//! - `slow sync`: an `msync` or `fsync` of the open store that took at least
//!   the threshold: `what` (`segment`, `sealed segment`, `segment header`,
//!   `consumer journal`, `file`, `directory`, `recovered segment`), `path`,
//!   `duration_us` as measured on the coarse monotonic clock (within one
//!   kernel tick, 4 ms on most kernels; a sync is reported once that reaches
//!   the threshold plus one tick).
//! - `journal rotated`: a consumer wrote a checkpoint of `generation` and
//!   started the journal `journal` of `journal_bytes` bytes.
//!
//! Paths are shown with `Display`; durations are in microseconds.

/// Target of the recovery events of `Store::open`.
pub const RECOVERY: &str = "spool::recovery";
/// Target of the events of retention deletions.
pub const RETENTION: &str = "spool::retention";
/// Target of the dead-letter events.
pub const DEAD_LETTER: &str = "spool::dead_letter";
/// Target of the event of the store being poisoned.
pub const POISON: &str = "spool::poison";
/// Target of the slow-sync events.
pub const SYNC: &str = "spool::sync";
/// Target of consumer events (journal rotations).
pub const CONSUMER: &str = "spool::consumer";
