//! Every name Spool gives a file or directory (DESIGN.md §2), and the one
//! parser of each. The engine, the inspector and repair all build and
//! recognise names here, so they cannot disagree about what a file is.
//!
//! ```text
//! <store>/LOCK
//! <store>/store.meta
//! <store>/streams/<stream>/stream.meta
//! <store>/streams/<stream>/message_type.meta
//! <store>/streams/<stream>/p<k>/<base:020>.seg | .idx
//! <store>/streams/<stream>/p<k>/<base:020>.ids   (ids of a deleted segment, DESIGN §7.1)
//! <store>/streams/<stream>/p<k>/quarantine/<base:020>-<pos:010>-e<epoch>.torn
//! <store>/streams/<stream>/p<k>/retention.meta | head.meta
//! <store>/streams/<stream>/consumers/<consumer>/config.meta | checkpoint | journal.<g:020>
//! <store>/blobs/<2 hex>/<64 hex>
//! <store>/blobs/tmp/<random:016x>.tmp
//! <store>/blobs/pending/<64 hex>-<random:016x>
//! ```
//!
//! Interrupted writes: a file being written is `.<name>.tmp` beside its
//! final name; a stream or consumer being created is a directory
//! `.tmp-<name>-<random:016x>` beside its final one. Both are removed at open.

use crate::limits::PRIORITIES_MAX;
use std::path::{Path, PathBuf};

/// The store's lock file (`flock`ed while the store is open).
pub(crate) const LOCK_FILE: &str = "LOCK";
/// The store's format file.
pub(crate) const STORE_META_FILE: &str = "store.meta";
/// Directory of the streams.
pub(crate) const STREAMS_DIR: &str = "streams";
/// A stream's configuration file.
pub(crate) const STREAM_META_FILE: &str = "stream.meta";
/// The identity of a stream's typed messages (type, schema version, codec).
pub(crate) const MESSAGE_TYPE_FILE: &str = "message_type.meta";
/// Directory of quarantined torn tails, in each bucket directory.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
/// A bucket's low-water mark (offsets below it were deleted by retention).
pub(crate) const RETENTION_FILE: &str = "retention.meta";
/// A bucket's head mark: the base offset of its newest segment.
pub(crate) const HEAD_FILE: &str = "head.meta";
/// Directory of a stream's consumers.
pub(crate) const CONSUMERS_DIR: &str = "consumers";
/// A consumer's configuration file.
pub(crate) const CONSUMER_CONFIG_FILE: &str = "config.meta";
/// A consumer's checkpoint file.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
/// Directory of claim-check blobs, under the store root.
pub(crate) const BLOBS_DIR: &str = "blobs";
/// Directory of blobs being written, under [`BLOBS_DIR`].
pub(crate) const BLOBS_TMP_DIR: &str = "tmp";
/// Directory of the marks of blobs stored for messages not yet appended,
/// under [`BLOBS_DIR`].
pub(crate) const BLOBS_PENDING_DIR: &str = "pending";

const SEGMENT_EXT: &str = "seg";
const INDEX_EXT: &str = "idx";
const KEPT_IDS_EXT: &str = "ids";
const JOURNAL_PREFIX: &str = "journal.";
const TMP_DIR_PREFIX: &str = ".tmp-";
const TMP_SUFFIX: &str = ".tmp";
/// Digits of an offset or generation in a file name.
const NUMBER_DIGITS: usize = 20;

/// Name of the directory of priority bucket `priority`: `p<k>`.
pub(crate) fn bucket_dir_name(priority: u8) -> String {
    format!("p{priority}")
}

/// Parses `p<k>` with `k` below [`PRIORITIES_MAX`], without leading zeros.
pub(crate) fn parse_bucket_dir(name: &str) -> Option<u8> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: u8 = digits.parse().ok()?;
    (k < PRIORITIES_MAX && k.to_string() == digits).then_some(k)
}

/// File name of the segment starting at `base`: `<base:020>.seg`.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.{SEGMENT_EXT}")
}

/// File name of the index of the segment starting at `base`: `<base:020>.idx`.
pub(crate) fn index_file_name(base: u64) -> String {
    format!("{base:020}.{INDEX_EXT}")
}

/// File name of the kept ids of the segment that started at `base`,
/// deleted by retention while some of its ids were within the stream's
/// deduplication window: its index renamed, `<base:020>.ids`.
pub(crate) fn kept_ids_file_name(base: u64) -> String {
    format!("{base:020}.{KEPT_IDS_EXT}")
}

/// The base offset of a kept-ids file name.
pub(crate) fn parse_kept_ids_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_suffix(KEPT_IDS_EXT)?.strip_suffix('.')?)
}

/// The base offset of a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_suffix(SEGMENT_EXT)?.strip_suffix('.')?)
}

/// The base offset of an index file name.
pub(crate) fn parse_index_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_suffix(INDEX_EXT)?.strip_suffix('.')?)
}

/// The index beside the segment at `segment`, whose base offset is `base`.
pub(crate) fn index_path_of(segment: &Path, base: u64) -> PathBuf {
    segment.with_file_name(index_file_name(base))
}

/// Name of the quarantine file of a torn tail cut from the segment at
/// `base`, at byte `position`, by the recovery that starts epoch `epoch`.
pub(crate) fn torn_tail_name(base: u64, position: u64, epoch: u32) -> String {
    format!("{base:020}-{position:010}-e{epoch}.torn")
}

/// File name of the consumer journal of generation `g`: `journal.<g:020>`.
pub(crate) fn journal_file_name(g: u64) -> String {
    format!("{JOURNAL_PREFIX}{g:020}")
}

/// The generation of a journal file name.
pub(crate) fn parse_journal_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_prefix(JOURNAL_PREFIX)?)
}

fn parse_numbered(digits: &str) -> Option<u64> {
    if digits.len() != NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Name of the temporary file that becomes `name`: `.<name>.tmp`.
pub(crate) fn tmp_file_name(name: &str) -> String {
    format!(".{name}{TMP_SUFFIX}")
}

/// Whether `name` is a temporary file of an interrupted write (`.*.tmp`).
pub(crate) fn is_tmp_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TMP_SUFFIX)
}

/// Name of the directory in which the stream or consumer `name` is created
/// before it is renamed into place.
pub(crate) fn tmp_dir_name(name: &str, random: u64) -> String {
    format!("{TMP_DIR_PREFIX}{name}-{random:016x}")
}

/// Whether `name` is a stream or consumer directory whose creation was
/// interrupted (`.tmp-*`).
pub(crate) fn is_tmp_dir(name: &str) -> bool {
    name.starts_with(TMP_DIR_PREFIX)
}

/// Name of a blob being written, in [`BLOBS_TMP_DIR`].
pub(crate) fn blob_tmp_name(random: u64) -> String {
    format!("{random:016x}{TMP_SUFFIX}")
}

/// Name of the mark, in [`BLOBS_PENDING_DIR`], of a blob stored for a
/// message not yet appended.
pub(crate) fn pending_mark_name(hash: &[u8; 32], random: u64) -> String {
    format!("{}-{random:016x}", hash_hex(hash))
}

/// Whether `name` is a blob being written (in [`BLOBS_TMP_DIR`]).
pub(crate) fn is_blob_tmp(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}

/// Path of the blob with `hash` under the blobs directory `blobs`:
/// `<2 hex>/<64 hex>`.
pub(crate) fn blob_path(blobs: &Path, hash: &[u8; 32]) -> PathBuf {
    let h = hash_hex(hash);
    blobs.join(&h[..2]).join(h)
}

/// Whether `name` is a blob shard directory (two lower-case hex digits).
pub(crate) fn is_blob_shard(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(is_hex_digit)
}

/// The hash of the blob file `name` in the shard directory `shard`: 64
/// lower-case hex digits starting with the shard's two. Spool writes
/// lower-case names only; any other name is not a blob (never removed,
/// never reported as one).
pub(crate) fn parse_blob_name(shard: &str, name: &str) -> Option<[u8; 32]> {
    if !name.starts_with(shard) {
        return None;
    }
    parse_hash_hex(name)
}

/// A hash as 64 lower-case hex digits (a blob's file name).
pub(crate) fn hash_hex(h: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses 64 lower-case hex digits into a hash.
pub(crate) fn parse_hash_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().copied().all(is_hex_digit) {
        return None;
    }
    let digit = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i]) << 4 | digit(b[2 * i + 1]);
    }
    Some(out)
}

fn is_hex_digit(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        assert_eq!(parse_segment_name(&segment_file_name(7)), Some(7));
        assert_eq!(parse_index_name(&index_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("00000000000000000007.idx"), None);
        assert_eq!(parse_kept_ids_name(&kept_ids_file_name(7)), Some(7));
        assert_eq!(parse_kept_ids_name(&index_file_name(7)), None);
        assert_eq!(parse_index_name(&kept_ids_file_name(7)), None);
        assert_eq!(parse_segment_name("0000000000000000007.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.seg"), None);
        assert_eq!(parse_journal_name(&journal_file_name(3)), Some(3));
        assert_eq!(parse_journal_name("journal.3"), None);
        assert!(is_tmp_file(&tmp_file_name("checkpoint")));
        assert!(!is_tmp_file("checkpoint"));
        assert!(is_tmp_dir(&tmp_dir_name("orders", 9)));
        assert!(is_blob_tmp(&blob_tmp_name(9)));
    }

    #[test]
    fn bucket_directory_names() {
        assert_eq!(parse_bucket_dir(&bucket_dir_name(0)), Some(0));
        assert_eq!(parse_bucket_dir("p15"), Some(15));
        assert_eq!(parse_bucket_dir("p16"), None);
        assert_eq!(parse_bucket_dir("p01"), None);
        assert_eq!(parse_bucket_dir("p"), None);
        assert_eq!(parse_bucket_dir("q1"), None);
    }

    #[test]
    fn blob_names_are_lower_case_hex_only() {
        let h = [0xabu8; 32];
        let name = hash_hex(&h);
        assert_eq!(parse_hash_hex(&name), Some(h));
        assert_eq!(parse_blob_name("ab", &name), Some(h));
        assert_eq!(parse_blob_name("cd", &name), None);
        assert_eq!(parse_hash_hex(&name.to_uppercase()), None);
        assert_eq!(parse_hash_hex(&name[1..]), None);
        assert!(is_blob_shard("ab"));
        assert!(!is_blob_shard("AB"));
        assert!(!is_blob_shard(BLOBS_TMP_DIR));
        assert_eq!(
            blob_path(Path::new("b"), &h),
            Path::new("b").join("ab").join(&name)
        );
    }
}
