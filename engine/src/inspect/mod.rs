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
use crate::log::scan::{self, Scan, ScanStop};
use crate::options::{StreamConfig, PRIORITIES_MAX, SEGMENT_BYTES_LIMIT};
use crate::{name, Error, Result};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

mod blob;
mod consumer;
pub mod repair;
mod segment;
#[cfg(test)]
mod tests;
mod types;

pub use blob::{
    blob_path, check_blob_file, check_blobs, hash_hex, list_blob_files, parse_hash_hex, BLOBS_DIR,
    BLOBS_TMP_DIR,
};
pub use consumer::CONSUMER_SPAN_MAX;
use consumer::{fold_consumer, read_consumers};
use segment::{
    analyse_segment, index_path_of, inspect_bucket, load_index, parse_bucket_dir,
    read_segment_bytes, Role,
};
pub use types::*;

/// Largest meta file (`store.meta`, `stream.meta`) read; a longer one is a problem.
pub const META_FILE_BYTES_MAX: u64 = META_BODY_BYTES_MAX as u64 + 64;

/// Largest index file read: a header, one `u32` position per smallest
/// possible record of the largest segment, and 64 MiB of blob references.
pub const INDEX_FILE_BYTES_MAX: u64 =
    INDEX_HEADER_BYTES as u64 + (SEGMENT_BYTES_LIMIT / RECORD_HEADER_BYTES as u64) * 4 + (64 << 20);

/// How many times the file of an active segment is read again when its state
/// block fails its checksum (it may have been caught mid-update).
const STATE_REREADS: usize = 3;

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

/// Bytes read from files by this module in this process so far: a caller
/// can show progress of a long inspection from another thread.
static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes read from files by the inspection functions of this process so far
/// (segments, indexes, meta files, blobs), for a progress display.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(std::sync::atomic::Ordering::Relaxed)
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
