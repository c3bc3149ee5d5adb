//! The index of a sealed segment: the `.idx` file beside each sealed `.seg`.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPOOLIDX` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | bucket |
//! | 16 | 8 | segment id (must match the segment's) |
//! | 24 | 8 | base offset |
//! | 32 | 8 | record count `n` |
//! | 40 | 8 | data end: byte position after the last record |
//! | 48 | 4 | blob reference count `b` |
//! | 52 | 4 | reserved, zero |
//! | 56 | 4 | CRC-32 of the body (positions and blob references) |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//! | 64 | 4·n | position of each record, u32 LE, in offset order |
//! | 64+4n | 32·b | claim-check blob references held by the segment's records |
//!
//! The file is written to a temporary name, synced and renamed, so a present
//! `.idx` is complete unless damaged; a damaged or missing one is rebuilt from
//! the segment.

use super::{get_u32, get_u64, put_u32, put_u64};

/// The magic at byte 0 of an index.
pub const INDEX_MAGIC: [u8; 8] = *b"SPOOLIDX";
/// The index format version.
pub const INDEX_VERSION: u32 = 1;
/// Position of the bucket.
pub const BUCKET_OFFSET: usize = 12;
/// Position of the segment id.
pub const SEGMENT_ID_OFFSET: usize = BUCKET_OFFSET + 4;
/// Position of the base offset.
pub const BASE_OFFSET_OFFSET: usize = SEGMENT_ID_OFFSET + 8;
/// Position of the record count.
pub const COUNT_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Position of the data end.
pub const DATA_END_OFFSET: usize = COUNT_OFFSET + 8;
/// Position of the blob reference count.
pub const BLOB_REFS_OFFSET: usize = DATA_END_OFFSET + 8;
/// Position of the body's CRC (after 4 reserved bytes).
pub const BODY_CRC_OFFSET: usize = BLOB_REFS_OFFSET + 4 + 4;
/// Position of the header's CRC.
pub const HEADER_CRC_OFFSET: usize = BODY_CRC_OFFSET + 4;
/// Bytes before the positions.
pub const INDEX_HEADER_BYTES: usize = HEADER_CRC_OFFSET + 4;
/// Bytes of one blob reference.
pub const BLOB_REF_BYTES: usize = 32;

/// The header fields of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Bucket of the segment.
    pub bucket: u32,
    /// Id of the segment it indexes.
    pub segment_id: u64,
    /// First offset.
    pub base_offset: u64,
    /// Number of records.
    pub count: u64,
    /// Byte position after the last record.
    pub data_end: u64,
    /// Number of blob references.
    pub blob_refs: u32,
}

/// Why an index is unusable (it is then rebuilt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexDecodeError {
    /// Too short, or its length does not match its counts.
    BadLength,
    /// Not an index file.
    BadMagic,
    /// Unknown version.
    Version(u32),
    /// A CRC does not match.
    BadCrc,
}

/// Encodes a whole index file.
pub fn encode(h: &IndexHeader, positions: &[u32], blob_refs: &[[u8; 32]]) -> Vec<u8> {
    debug_assert_eq!(h.count, positions.len() as u64);
    debug_assert_eq!(h.blob_refs as usize, blob_refs.len());
    let mut out = vec![0u8; INDEX_HEADER_BYTES];
    out.reserve(positions.len() * 4 + blob_refs.len() * BLOB_REF_BYTES);
    for p in positions {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for r in blob_refs {
        out.extend_from_slice(r);
    }
    let body_crc = crc32fast::hash(&out[INDEX_HEADER_BYTES..]);
    out[..8].copy_from_slice(&INDEX_MAGIC);
    put_u32(&mut out, 8, INDEX_VERSION);
    put_u32(&mut out, BUCKET_OFFSET, h.bucket);
    put_u64(&mut out, SEGMENT_ID_OFFSET, h.segment_id);
    put_u64(&mut out, BASE_OFFSET_OFFSET, h.base_offset);
    put_u64(&mut out, COUNT_OFFSET, h.count);
    put_u64(&mut out, DATA_END_OFFSET, h.data_end);
    put_u32(&mut out, BLOB_REFS_OFFSET, h.blob_refs);
    put_u32(&mut out, BODY_CRC_OFFSET, body_crc);
    let crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
    put_u32(&mut out, HEADER_CRC_OFFSET, crc);
    out
}

/// Decodes and checks an index file held whole in `b`.
pub fn decode(b: &[u8]) -> Result<IndexHeader, IndexDecodeError> {
    if b.len() < INDEX_HEADER_BYTES {
        return Err(IndexDecodeError::BadLength);
    }
    if b[..8] != INDEX_MAGIC {
        return Err(IndexDecodeError::BadMagic);
    }
    if crc32fast::hash(&b[..HEADER_CRC_OFFSET]) != get_u32(b, HEADER_CRC_OFFSET) {
        return Err(IndexDecodeError::BadCrc);
    }
    let version = get_u32(b, 8);
    if version != INDEX_VERSION {
        return Err(IndexDecodeError::Version(version));
    }
    let h = IndexHeader {
        bucket: get_u32(b, BUCKET_OFFSET),
        segment_id: get_u64(b, SEGMENT_ID_OFFSET),
        base_offset: get_u64(b, BASE_OFFSET_OFFSET),
        count: get_u64(b, COUNT_OFFSET),
        data_end: get_u64(b, DATA_END_OFFSET),
        blob_refs: get_u32(b, BLOB_REFS_OFFSET),
    };
    let expected = (INDEX_HEADER_BYTES as u128)
        + (h.count as u128) * 4
        + (h.blob_refs as u128) * BLOB_REF_BYTES as u128;
    if expected != b.len() as u128 {
        return Err(IndexDecodeError::BadLength);
    }
    if crc32fast::hash(&b[INDEX_HEADER_BYTES..]) != get_u32(b, BODY_CRC_OFFSET) {
        return Err(IndexDecodeError::BadCrc);
    }
    Ok(h)
}

impl std::fmt::Display for IndexDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexDecodeError::BadLength => write!(f, "length does not match its counts"),
            IndexDecodeError::BadMagic => write!(f, "not an index file (bad magic)"),
            IndexDecodeError::Version(v) => {
                write!(f, "index format version {v} is unknown to this build")
            }
            IndexDecodeError::BadCrc => write!(f, "checksum mismatch"),
        }
    }
}

/// The blob references of a decoded index `b` whose header is `h`.
#[cfg_attr(
    not(feature = "sim"),
    expect(
        dead_code,
        reason = "codec API of the fuzz targets and tests (public with `sim`)"
    )
)]
pub fn blob_refs<'a>(b: &'a [u8], h: &IndexHeader) -> impl Iterator<Item = [u8; 32]> + 'a {
    let start = INDEX_HEADER_BYTES + (h.count as usize) * 4;
    b.get(start..)
        .unwrap_or(&[])
        .chunks_exact(BLOB_REF_BYTES)
        .map(|c| {
            let mut r = [0u8; BLOB_REF_BYTES];
            r.copy_from_slice(c);
            r
        })
}

/// The position of record `i` in a decoded index `b`. The caller checked `i < count`.
#[inline]
pub fn position(b: &[u8], i: u64) -> u32 {
    get_u32(b, INDEX_HEADER_BYTES + (i as usize) * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let h = IndexHeader {
            bucket: 0,
            segment_id: 9,
            base_offset: 100,
            count: 3,
            data_end: 400,
            blob_refs: 1,
        };
        let b = encode(&h, &[128, 200, 300], &[[7u8; 32]]);
        assert_eq!(decode(&b), Ok(h));
        assert_eq!(position(&b, 1), 200);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        assert_eq!(decode(&b[..b.len() - 1]), Err(IndexDecodeError::BadLength));
    }
}
