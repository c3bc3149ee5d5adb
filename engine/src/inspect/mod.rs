//! Read-only inspection and offline repair of a store: the API of
//! `segment-tool`. **Not covered by semver**: it follows the engine's
//! internals and changes with them; applications use [`crate::Store`].
//!
//! # What it reads, and how
//!
//! Every file is read with plain reads through the engine's own file-system
//! layer (the real file system here; a simulated one in the engine's tests),
//! into a buffer whose size is checked against a hard limit first: segments
//! up to [`crate::SEGMENT_BYTES_LIMIT`], meta files up to
//! [`META_FILE_BYTES_MAX`], indexes up to [`INDEX_FILE_BYTES_MAX`]. Nothing
//! is mapped, nothing is written, the `LOCK` file is not touched, so a store
//! open in another process can be inspected while it is written.
//!
//! # One set of verdicts
//!
//! The inspector decides nothing on its own: it calls the functions the
//! engine's open and reads call, with the bytes it read. File names come
//! from the engine's layout (a file Spool would not recognise is ignored
//! here too), meta files are decoded as the open decodes them, a segment is
//! judged by the verdicts of `log::scan` (torn tail or damage, epochs) and
//! `log::index_file` (which index the engine reads through), a consumer is
//! folded with the engine's replay. So a store in which the inspector finds
//! no problem (warnings aside) opens and reads without `Error::Corrupt`, and
//! the other way round; the exceptions are a consumer state naming offsets
//! past the end of its log (a problem here; the open clamps it) and files
//! the inspector cannot read whole within its limits.
//!
//! # Live stores
//!
//! A store open in another process is the normal case: its files change
//! while they are read, and none of those changes is reported as a problem
//! (nothing is locked, nothing waited for; each race is settled by the order
//! of the reads or by reading again):
//!
//! - **The record being written.** A segment's header is read before its
//!   data. The header's durable watermark (`synced_end`) only grows, and
//!   data below it was written before the header said so, so every byte
//!   below the watermark we saw is in the buffer as it will stay. In the
//!   active (last) segment a record that fails to decode *past* the
//!   watermark is a tail ([`ScanEnd::Tail`], never a [`Problem`] of the
//!   inspection). While a process has the store open
//!   ([`StoreInfo::in_use`], from the kernel's list of locks, read before
//!   and after), it is the record being written; otherwise it is a torn
//!   tail, which [`StoreInfo::tail_problems`] reports. Below the watermark,
//!   or anywhere in a sealed segment, it is damage to acknowledged data: a
//!   [`Problem`], live or not. A state block caught mid-update fails its
//!   checksum and is read again.
//! - **Rolls.** The head mark is read before the bucket's listing (it names
//!   a segment only once that exists); a segment sealed after the listing
//!   is judged as the active one it was (its bytes are all there); a
//!   segment created after it is not seen. A sealed segment's index is
//!   written (and renamed into place) before the next segment exists.
//! - **Retention.** The low-water mark is read after the listing, and again
//!   after the segments: a segment whose files vanished, or whose offsets
//!   went below the mark meanwhile, was deleted by retention and is left
//!   out (with whatever its missing index or file looked like); a file
//!   gone that the mark does not explain is a problem. If the newest
//!   segment listed vanished (sealed by a roll, then deleted), the bucket
//!   is read again, a bounded number of times, to find its end. A blob a
//!   record refers to that is gone together with the record's segment was
//!   collected after that deletion.
//! - **Consumers.** A consumer's files are read before the buckets' (it can
//!   only acknowledge what was written before), and its checkpoint again
//!   after its journal: if it changed (a rotation), the pair is read again,
//!   a bounded number of times; the journal read is always the one the
//!   checkpoint read names.
//! - **Blobs.** While the store is in use, a blob file no record refers to
//!   is not reported: a send in progress, a message appended after its
//!   segment was read, and a collection due after retention all look like
//!   that.

//! # Problems, not errors
//!
//! [`inspect_store`] fails only when the directory cannot be read at all or is
//! not a store. Everything it finds wrong inside (damaged records, bad
//! headers, files above their limits, unreadable files) is collected as a
//! [`Problem`] naming the file and, where known, the byte position, and the
//! inspection goes on. What the next open repairs by itself without losing
//! anything (a missing index, an orphan blob) is a problem marked as a
//! warning.

mod blob;
mod consumer;
mod disk;
mod follow;
mod journal;
mod read;
pub mod repair;
mod segment;
#[cfg(test)]
mod tests;
mod types;
mod unacked;

pub use blob::{blob_path, hash_hex, parse_hash_hex, BlobStatus, BLOBS_DIR, BLOBS_TMP_DIR};
pub use consumer::CONSUMER_SPAN_MAX;
pub use disk::{disk_usage, DiskUsage, StoreDiskUsage, StreamDiskUsage};
pub use follow::{Appended, SegmentCursor};
pub use read::bytes_read;
pub use types::*;

/// A journal record of one slot (kinds 1 to 4: delivered, acknowledged,
/// acknowledged up to, dead-lettered; DESIGN.md 3.5).
pub use crate::format::journal::Entry as JournalEntry;
/// A consumer journal's header: id, generation, format version (DESIGN.md 3.5).
pub use crate::format::journal::JournalHeader;
/// A journal record, decoded: an entry, or an acknowledged set (kind 5).
pub use crate::format::journal::Record as JournalRecord;
/// Offsets acknowledged by one batch ack, as runs by priority level.
pub use crate::format::journal::{AckRun, AckSet};
/// The static header of a segment file (DESIGN.md 3.1).
pub use crate::format::segment::SegmentHeader;
/// The mutable state block of a segment file: epoch, durable watermark,
/// clean-close flag (DESIGN.md 3.1).
pub use crate::format::segment::SegmentState;
/// The identity of a stream's typed messages, as `message_type.meta`
/// holds it (DESIGN.md 3.9).
pub use crate::format::typed::TypeIdentity;

use crate::format::meta::{self, META_BODY_BYTES_MAX};
use crate::format::segment::SEGMENT_HEADER_BYTES;
use crate::io::{real::RealFs, EntryKind};
use crate::layout::{
    self, CONSUMERS_DIR, MESSAGE_TYPE_FILE, STORE_META_FILE, STREAMS_DIR, STREAM_META_FILE,
};
use crate::options::{StreamConfig, SEGMENT_BYTES_LIMIT};
use crate::{name, Error, Result};
use read::{list_dir, Bounded, Framed};
use segment::{analyse, role_alone};
use std::io;
use std::path::Path;

/// Largest meta file (`store.meta`, `stream.meta`, `config.meta`) read, as
/// the engine's open reads them; a longer one is a problem.
pub const META_FILE_BYTES_MAX: u64 = meta::file_bytes_max(META_BODY_BYTES_MAX);

/// Largest index file read: a header, one `u32` position per smallest
/// possible record of the largest segment, and 64 MiB of blob references.
pub const INDEX_FILE_BYTES_MAX: u64 = crate::log::index_file::INDEX_FILE_BYTES_MAX;

/// Byte position of a segment's first record: the end of its header.
pub const SEGMENT_DATA_START: u64 = SEGMENT_HEADER_BYTES as u64;

mod inspector {
    /// The inspection functions over a file system of the caller's choice:
    /// the free functions of [`crate::inspect`] use the real one, tests a
    /// simulated one (to inspect what survived a simulated power cut).
    #[derive(Debug, Clone, Copy)]
    pub struct Inspector<'a> {
        pub(in crate::inspect) vfs: &'a dyn crate::io::Vfs,
    }
}

#[cfg(feature = "sim")]
pub use inspector::Inspector;
#[cfg(not(feature = "sim"))]
pub(crate) use inspector::Inspector;

#[cfg(feature = "sim")]
impl<'a> Inspector<'a> {
    /// Inspects files through `vfs`.
    pub fn new(vfs: &'a dyn crate::io::Vfs) -> Inspector<'a> {
        Inspector { vfs }
    }
}

impl Inspector<'static> {
    /// Inspects files on the real file system.
    pub(crate) fn real() -> Inspector<'static> {
        Inspector { vfs: &RealFs }
    }
}

/// Whether a process has the store at `path` open: whether its lock file
/// is locked, as the kernel lists its locks (`/proc/locks`), found without
/// taking the lock (a `Store::open` at the same moment is never refused
/// because of it). `None` where the system does not list them; a lock held
/// in another PID namespace may not be listed.
pub fn store_in_use(path: &Path) -> Option<bool> {
    Inspector::real().store_in_use(path)
}

/// Inspects the store at `path`.
///
/// Fails only if `path` cannot be read or is not a store (no `store.meta`);
/// everything wrong inside is collected in [`StoreInfo::problems`].
pub fn inspect_store(path: &Path) -> Result<StoreInfo> {
    Inspector::real().inspect_store(path)
}

/// Inspects one stream of the store at `path`: a [`StoreInfo`] whose
/// `streams` holds that stream alone and whose `problems` are the store
/// meta's and that stream's.
///
/// Fails if `path` is not a store, `stream` is not a valid name
/// ([`Error::InvalidName`]) or there is no such stream.
pub fn inspect_stream(path: &Path, stream: &str) -> Result<StoreInfo> {
    Inspector::real().inspect_stream(path, stream)
}

/// Reads one segment file and scans all its records.
///
/// If a usable index of the same segment lies beside it, the segment is
/// treated as sealed (read through its index, as the engine reads it);
/// otherwise as active (damage past the durable watermark is a tail, see
/// [`ScanEnd::Tail`]). Fails only if the file cannot be read or is larger
/// than [`crate::SEGMENT_BYTES_LIMIT`]; damage is reported in
/// [`SegmentInfo::problems`].
pub fn read_segment(path: &Path) -> Result<SegmentInfo> {
    Inspector::real().read_segment(path)
}

/// Like [`read_segment`], and also returns the file's bytes (at most
/// [`crate::SEGMENT_BYTES_LIMIT`]), so that a caller can show the records'
/// headers and bodies ([`RecordInfo::parts`]).
pub fn read_segment_raw(path: &Path) -> Result<(SegmentInfo, Vec<u8>)> {
    Inspector::real().read_segment_raw(path)
}

/// The records of the segment at `path` that start where `from` left off
/// (at its first record if `None`), and where to go on from. Only the
/// file's bytes from there on are read (the header only when `from` is
/// `None`), a page or so past the last record. The records are those of the
/// scan the engine recovers with: it stops at the first byte that is not the
/// next valid record, which on a live segment is where the writer is.
pub fn read_segment_from(path: &Path, from: Option<SegmentCursor>) -> Result<Appended> {
    Inspector::real().read_segment_from(path, from)
}

/// The segment files of a bucket directory (regular files named
/// `<base:020>.seg`), by base offset.
pub fn list_segments(bucket_dir: &Path) -> io::Result<Vec<(u64, std::path::PathBuf)>> {
    Inspector::real().list_segments(bucket_dir)
}

/// Reads one consumer journal file (at most 1 GiB) record by record, as the
/// engine's replay reads it: its header, the records the replay takes, in
/// order, and where the replay stops if bytes that are no valid record
/// follow them (a write a crash tore, or damage: nothing after it is
/// replayed). An unreadable header is a problem: the engine replays nothing
/// of such a file (a journal never synced).
pub fn read_journal_file(path: &Path) -> Result<JournalInfo> {
    Inspector::real().read_journal_file(path)
}

/// Checks the blob file at `path` against a reference: a regular file (not
/// followed if a symlink) of `length` bytes whose BLAKE3 hash is `hash`. The
/// file is hashed in 1 MiB chunks (bounded memory whatever its size).
pub fn check_blob_file(path: &Path, hash: &[u8; 32], length: u64) -> BlobStatus {
    Inspector::real().check_blob_file(path, hash, length)
}

/// The blob files of the store at `store` (regular files named
/// `blobs/<2 hex>/<64 hex>` in lower case, as the engine names them), with
/// their hashes; other names and `blobs/tmp/` are not listed.
pub fn list_blob_files(store: &Path) -> io::Result<Vec<([u8; 32], std::path::PathBuf)>> {
    Inspector::real().list_blob_files(store)
}

/// Checks the claim-check references of every segment in `info` against
/// the blob files of the store, and finds the blobs no record refers to.
///
/// Each distinct reference is checked once ([`check_blob_file`]); a bad one
/// is a problem on the blob file naming the segment and byte position of
/// the first record that refers to it. A blob nobody refers to is an
/// orphan: a problem with [`Problem::warning`] set (nothing is lost; the
/// next open of the store, or `segment-tool repair`, removes it); orphans
/// are not looked for while the store is in use ([`StoreInfo::in_use`]). A
/// reference whose segment file is gone since (deleted by retention, its
/// blob collected after it) is not checked.
pub fn check_blobs(info: &StoreInfo) -> Vec<Problem> {
    Inspector::real().check_blobs(info)
}

/// In use if it was at either of two looks; not in use if it was at neither.
fn either_in_use(before: Option<bool>, after: Option<bool>) -> Option<bool> {
    match (before, after) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn not_found(op: &'static str, path: &Path, why: &'static str) -> Error {
    Error::io(op, path, io::Error::new(io::ErrorKind::NotFound, why))
}

impl Inspector<'_> {
    /// Whether a process has the store at `path` open (see [`store_in_use`]).
    pub fn store_in_use(&self, path: &Path) -> Option<bool> {
        self.vfs
            .lock_held(&path.join(layout::LOCK_FILE))
            .ok()
            .flatten()
    }

    /// Inspects the store at `path` (see [`inspect_store`]).
    pub fn inspect_store(&self, path: &Path) -> Result<StoreInfo> {
        let before = self.store_in_use(path);
        let (format_version, mut problems) = self.read_store_meta(path)?;
        let streams_dir = path.join(STREAMS_DIR);
        let entries = match list_dir(self.vfs, &streams_dir) {
            Ok(e) => e,
            // A store whose first open stopped before creating `streams/`.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("list", &streams_dir, e)),
        };
        let mut streams = Vec::new();
        for e in entries {
            // Interrupted creations (`.tmp-*`) and foreign names are not streams.
            if e.kind != EntryKind::Dir || name::validate(&e.name).is_err() {
                continue;
            }
            let dir = streams_dir.join(&e.name);
            if let Some(s) = self.inspect_stream_dir(&e.name, &dir, &mut problems) {
                streams.push(s);
            }
        }
        Ok(StoreInfo {
            path: path.to_path_buf(),
            format_version,
            streams,
            problems,
            in_use: either_in_use(before, self.store_in_use(path)),
        })
    }

    /// Inspects one stream of the store at `path` (see [`inspect_stream`]).
    pub fn inspect_stream(&self, path: &Path, stream: &str) -> Result<StoreInfo> {
        name::validate(stream)?;
        let before = self.store_in_use(path);
        let (format_version, mut problems) = self.read_store_meta(path)?;
        let dir = path.join(STREAMS_DIR).join(stream);
        let missing = || not_found("open stream", &dir, "no such stream");
        match self.vfs.kind(&dir) {
            Ok(Some(EntryKind::Dir)) => {}
            Ok(_) => return Err(missing()),
            Err(e) => return Err(Error::io("open stream", &dir, e)),
        }
        let s = self
            .inspect_stream_dir(stream, &dir, &mut problems)
            .ok_or_else(missing)?;
        Ok(StoreInfo {
            path: path.to_path_buf(),
            format_version,
            streams: vec![s],
            problems,
            in_use: either_in_use(before, self.store_in_use(path)),
        })
    }

    /// Reads one segment file (see [`read_segment`]).
    pub fn read_segment(&self, path: &Path) -> Result<SegmentInfo> {
        self.read_segment_raw(path).map(|(info, _)| info)
    }

    /// Reads one segment file and returns its bytes too (see [`read_segment_raw`]).
    pub fn read_segment_raw(&self, path: &Path) -> Result<(SegmentInfo, Vec<u8>)> {
        let name_base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(layout::parse_segment_name);
        let bytes = match self.read_segment_bytes(path, true) {
            Ok(Bounded::Bytes(b)) => b,
            Ok(Bounded::Missing) => {
                return Err(Error::io("read", path, io::ErrorKind::NotFound.into()))
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
        let index = crate::format::segment::SegmentHeader::decode(&bytes)
            .map(|h| self.load_index(&layout::index_path_of(path, h.base_offset)))
            .unwrap_or(Ok(None));
        let role = role_alone(&bytes, &index);
        let info = analyse(path, name_base, None, &bytes, role, index, true);
        Ok((info, bytes))
    }

    /// Checks that `path` is a store directory and reads its `store.meta`:
    /// the format version (`None` if unreadable) and the problems found.
    fn read_store_meta(&self, path: &Path) -> Result<(Option<u32>, Vec<Problem>)> {
        match self.vfs.kind(path) {
            Ok(Some(EntryKind::Dir)) => {}
            Ok(None) => return Err(not_found("open store", path, "no such directory")),
            Ok(Some(_)) => {
                return Err(Error::io(
                    "open store",
                    path,
                    io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
                ))
            }
            Err(e) => return Err(Error::io("open store", path, e)),
        }
        let mut problems = Vec::new();
        let meta_path = path.join(STORE_META_FILE);
        let frame = (
            meta::STORE_META_MAGIC,
            meta::STORE_VERSION,
            META_BODY_BYTES_MAX,
        );
        let format_version =
            match read::read_framed(self.vfs, &meta_path, frame, "store meta", &mut problems) {
                Framed::Body(..) => Some(meta::STORE_VERSION),
                Framed::Bad(version) => version,
                Framed::Missing => {
                    return Err(not_found(
                        "open store",
                        &meta_path,
                        "not a Spool store (no store.meta); is this the right directory?",
                    ))
                }
            };
        Ok((format_version, problems))
    }

    /// Inspects one stream directory as the engine's open does; `None` if
    /// it is not a stream (neither a meta file nor bucket directories).
    ///
    /// The consumers' files are read before the buckets' segments: on a live
    /// store a consumer can only acknowledge what was already written, so
    /// every floor read is at or below the end found afterwards.
    fn inspect_stream_dir(
        &self,
        name: &str,
        dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<StreamInfo> {
        let entries = match list_dir(self.vfs, dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem::file(dir, format!("cannot list: {e}")));
                return None;
            }
        };
        let mut bucket_dirs: Vec<u8> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .filter_map(|e| layout::parse_bucket_dir(&e.name))
            .collect();
        let meta_path = dir.join(STREAM_META_FILE);
        let frame = (
            meta::STREAM_META_MAGIC,
            meta::STREAM_META_VERSION..=meta::STREAM_META_VERSION_2,
            META_BODY_BYTES_MAX,
        );
        let config = match read::read_framed_versions(
            self.vfs,
            &meta_path,
            frame,
            "stream config",
            problems,
        ) {
            Framed::Body(version, b) => decode_stream_config(&meta_path, version, &b, problems),
            Framed::Missing if bucket_dirs.is_empty() => return None,
            Framed::Missing => {
                problems.push(Problem::at(&meta_path, 0, "stream config missing"));
                None
            }
            Framed::Bad(_) => None,
        };
        let message_type = read_message_type(self.vfs, &dir.join(MESSAGE_TYPE_FILE), problems);
        let priorities: Vec<u8> = match &config {
            Some(c) => (0..c.priorities).collect(),
            None => {
                bucket_dirs.sort_unstable();
                bucket_dirs
            }
        };
        let has_consumers = entries
            .iter()
            .any(|e| e.name == CONSUMERS_DIR && e.kind == EntryKind::Dir);
        let raw_consumers = if has_consumers {
            self.read_consumers(&dir.join(CONSUMERS_DIR), problems)
        } else {
            Vec::new()
        };
        let buckets: Vec<BucketInfo> = priorities
            .into_iter()
            .map(|p| self.inspect_bucket(p, &dir.join(layout::bucket_dir_name(p)), problems))
            .collect();
        let mut consumers: Vec<ConsumerInfo> = raw_consumers
            .into_iter()
            .map(|c| {
                let info = consumer::fold_consumer(c, &buckets);
                problems.extend(info.problems.iter().cloned());
                info
            })
            .collect();
        self.fill_oldest_unacked(&mut consumers, &buckets);
        Some(StreamInfo {
            name: name.to_string(),
            path: dir.to_path_buf(),
            config,
            message_type,
            buckets,
            consumers,
        })
    }
}

/// Reads a stream's `message_type.meta` as a typed open reads it: `None`
/// if there is none or it is unusable (a problem then says why: a typed
/// open would fail with `Error::Corrupt`; the bytes API does not read it).
fn read_message_type(
    vfs: &dyn crate::io::Vfs,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<TypeIdentity> {
    let frame = (
        meta::MESSAGE_TYPE_MAGIC,
        meta::MESSAGE_TYPE_VERSION,
        META_BODY_BYTES_MAX,
    );
    match read::read_framed(vfs, path, frame, "message type", problems) {
        Framed::Body(_, b) => match crate::format::typed::decode_identity(&b) {
            Ok(id) => Some(id),
            Err(e) => {
                let at = meta::BODY_OFFSET as u64 + e.position();
                problems.push(Problem::at(path, at, format!("message type: {e}")));
                None
            }
        },
        Framed::Missing | Framed::Bad(_) => None,
    }
}

/// Decodes a stream configuration body as the engine's open does.
fn decode_stream_config(
    path: &Path,
    version: u32,
    body: &[u8],
    problems: &mut Vec<Problem>,
) -> Option<StreamConfig> {
    let at_body = meta::BODY_OFFSET as u64;
    match StreamConfig::decode_body(version, body) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(Problem::at(path, at_body, format!("stream config: {e}")));
            None
        }
    }
}
