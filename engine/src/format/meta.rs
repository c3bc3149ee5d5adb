//! Small framed files (`store.meta`, `stream.meta`, `message_type.meta`,
//! `retention.meta`, a consumer's `config.meta` and `checkpoint`): a
//! checksummed body, and the magic and format version of every file Spool
//! writes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic |
//! | 8 | 4 | format version |
//! | 12 | 4 | body length `n` (at most the file kind's limit) |
//! | 16 | 4 | CRC-32 of bytes 0..16 and 20..24+n |
//! | 20 | 4 | reserved, zero |
//! | 24 | n | body: postcard encoding of the versioned struct (or raw bytes) |

use super::{get_u32, put_u32};

/// Magic of `store.meta`.
pub const STORE_META_MAGIC: [u8; 8] = *b"SPOOLSTR";
/// Format version of the store (`store.meta`).
pub const STORE_VERSION: u32 = 1;
/// Magic of a stream's `stream.meta`.
pub const STREAM_META_MAGIC: [u8; 8] = *b"SPOOLMTA";
/// Version of the `stream.meta` body.
pub const STREAM_META_VERSION: u32 = 1;
/// Version of a `stream.meta` body with a deduplication window or
/// capacity limits (version 1 and those fields).
pub const STREAM_META_VERSION_2: u32 = 2;
/// Magic of a stream's `message_type.meta` (the identity of its typed
/// messages; body in `format::typed`).
pub const MESSAGE_TYPE_MAGIC: [u8; 8] = *b"SPOOLTYP";
/// Version of the `message_type.meta` body.
pub const MESSAGE_TYPE_VERSION: u32 = 1;
/// Magic of a bucket's `retention.meta`.
pub const RETENTION_MAGIC: [u8; 8] = *b"SPOOLRET";
/// Version of the `retention.meta` body.
pub const RETENTION_VERSION: u32 = 1;
/// Magic of a bucket's `head.meta`.
pub const HEAD_MAGIC: [u8; 8] = *b"SPOOLHED";
/// Version of the `head.meta` body.
pub const HEAD_VERSION: u32 = 1;
/// Magic of a consumer's `config.meta`.
pub const CONSUMER_CONFIG_MAGIC: [u8; 8] = *b"SPOOLCCF";
/// Version of the consumer configuration body.
pub const CONSUMER_CONFIG_VERSION: u32 = 1;
/// Magic of a consumer's `checkpoint`.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"SPOOLCKP";
/// Version of the checkpoint body.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Version of a checkpoint whose journal is of version 2 (it may hold
/// acknowledged sets); the body is the same as in version 1. A build that
/// knows only version 1 refuses it (`UnsupportedVersion`) rather than
/// replay the checkpoint without its journal, whose header it cannot read.
pub const CHECKPOINT_VERSION_2: u32 = 2;
/// Version of a checkpoint whose journal is of version 3 (it may hold
/// expiries): the body of version 1 followed by the count of expired
/// messages (a varint). Versions 1 and 2 are read as counting none.
pub const CHECKPOINT_VERSION_3: u32 = 3;

/// Largest body of a configuration file; anything longer is corruption.
pub const META_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest checkpoint body (it grows with the unacknowledged messages).
pub const CHECKPOINT_BODY_BYTES_MAX: usize = 256 << 20;

/// Position of the magic.
pub const MAGIC_OFFSET: usize = 0;
/// Position of the format version.
pub const VERSION_OFFSET: usize = MAGIC_OFFSET + 8;
/// Position of the body length.
pub const LENGTH_OFFSET: usize = VERSION_OFFSET + 4;
/// Position of the CRC.
pub const CRC_OFFSET: usize = LENGTH_OFFSET + 4;
/// Position of the reserved word.
pub const RESERVED_OFFSET: usize = CRC_OFFSET + 4;
/// Position of the body: the frame's size.
pub const BODY_OFFSET: usize = RESERVED_OFFSET + 4;

/// Largest file of a kind whose body is at most `body_max` bytes.
pub const fn file_bytes_max(body_max: usize) -> u64 {
    (BODY_OFFSET + body_max) as u64
}

/// Why a framed file is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDecodeError {
    /// Too short, or longer than its length says.
    BadLength,
    /// Wrong magic: not a file of this kind.
    BadMagic,
    /// CRC mismatch.
    BadCrc,
    /// A format version this build does not know.
    Version(u32),
}

impl MetaDecodeError {
    /// Byte position of the field found wrong.
    pub fn position(&self) -> u64 {
        (match self {
            MetaDecodeError::BadLength => LENGTH_OFFSET,
            MetaDecodeError::BadMagic => MAGIC_OFFSET,
            MetaDecodeError::BadCrc => CRC_OFFSET,
            MetaDecodeError::Version(_) => VERSION_OFFSET,
        }) as u64
    }
}

impl std::fmt::Display for MetaDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaDecodeError::BadLength => write!(f, "length does not match its frame"),
            MetaDecodeError::BadMagic => write!(f, "not a file of this kind (bad magic)"),
            MetaDecodeError::BadCrc => write!(f, "checksum mismatch"),
            MetaDecodeError::Version(v) => {
                write!(f, "format version {v} is unknown to this build")
            }
        }
    }
}

/// Frames `body` with `magic` and `version`.
pub fn encode(magic: [u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= u32::MAX as usize, "meta body too large");
    let mut out = vec![0u8; BODY_OFFSET + body.len()];
    out[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&magic);
    put_u32(&mut out, VERSION_OFFSET, version);
    put_u32(&mut out, LENGTH_OFFSET, body.len() as u32);
    out[BODY_OFFSET..].copy_from_slice(body);
    let crc = frame_crc(&out);
    put_u32(&mut out, CRC_OFFSET, crc);
    out
}

/// Checks the frame and returns `(version, body)`, for bodies of up to
/// [`META_BODY_BYTES_MAX`] bytes.
#[cfg_attr(
    not(any(feature = "sim", test)),
    expect(
        dead_code,
        reason = "codec API of the fuzz targets and tests (public with `sim`)"
    )
)]
pub fn decode(magic: [u8; 8], b: &[u8]) -> Result<(u32, &[u8]), MetaDecodeError> {
    decode_limited(magic, b, META_BODY_BYTES_MAX)
}

/// Like [`decode`], for bodies of up to `body_max` bytes.
pub fn decode_limited(
    magic: [u8; 8],
    b: &[u8],
    body_max: usize,
) -> Result<(u32, &[u8]), MetaDecodeError> {
    if b.len() < BODY_OFFSET {
        return Err(MetaDecodeError::BadLength);
    }
    if b[MAGIC_OFFSET..VERSION_OFFSET] != magic {
        return Err(MetaDecodeError::BadMagic);
    }
    let n = get_u32(b, LENGTH_OFFSET) as usize;
    if n > body_max || BODY_OFFSET + n != b.len() {
        return Err(MetaDecodeError::BadLength);
    }
    if frame_crc(b) != get_u32(b, CRC_OFFSET) {
        return Err(MetaDecodeError::BadCrc);
    }
    Ok((get_u32(b, VERSION_OFFSET), &b[BODY_OFFSET..]))
}

/// Checks the frame and the version: the version and the body of a file of
/// `magic` in one of the format `versions`, of up to `body_max` bytes.
pub fn decode_versioned(
    magic: [u8; 8],
    versions: std::ops::RangeInclusive<u32>,
    b: &[u8],
    body_max: usize,
) -> Result<(u32, &[u8]), MetaDecodeError> {
    let (found, body) = decode_limited(magic, b, body_max)?;
    if !versions.contains(&found) {
        return Err(MetaDecodeError::Version(found));
    }
    Ok((found, body))
}

fn frame_crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..CRC_OFFSET]);
    h.update(&b[RESERVED_OFFSET..]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let b = encode(STREAM_META_MAGIC, 1, b"body");
        assert_eq!(decode(STREAM_META_MAGIC, &b), Ok((1, &b"body"[..])));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 4;
            assert!(decode(STREAM_META_MAGIC, &bad).is_err(), "byte {i}");
        }
        assert!(decode(STREAM_META_MAGIC, &b[..b.len() - 1]).is_err());
    }

    #[test]
    fn versions_are_checked() {
        let b = encode(RETENTION_MAGIC, 2, b"x");
        assert_eq!(
            decode_versioned(
                RETENTION_MAGIC,
                RETENTION_VERSION..=RETENTION_VERSION,
                &b,
                8
            ),
            Err(MetaDecodeError::Version(2))
        );
        assert_eq!(
            MetaDecodeError::Version(2).position(),
            VERSION_OFFSET as u64
        );
        let b = encode(RETENTION_MAGIC, 1, b"x");
        assert_eq!(
            decode_versioned(RETENTION_MAGIC, 1..=1, &b, 8),
            Ok((1, &b"x"[..]))
        );
        assert_eq!(
            decode_versioned(RETENTION_MAGIC, 1..=2, &b, 8),
            Ok((1, &b"x"[..]))
        );
        let b3 = encode(RETENTION_MAGIC, 3, b"x");
        assert_eq!(
            decode_versioned(RETENTION_MAGIC, 1..=2, &b3, 8),
            Err(MetaDecodeError::Version(3))
        );
        assert_eq!(
            decode_versioned(RETENTION_MAGIC, 1..=1, &b, 0),
            Err(MetaDecodeError::BadLength)
        );
        assert_eq!(
            MetaDecodeError::BadCrc.to_string(),
            "checksum mismatch",
            "users read Display, never Debug"
        );
    }
}
