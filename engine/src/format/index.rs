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
/// Bytes before the positions.
pub const INDEX_HEADER_BYTES: usize = 64;
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
    put_u32(&mut out, 12, h.bucket);
    put_u64(&mut out, 16, h.segment_id);
    put_u64(&mut out, 24, h.base_offset);
    put_u64(&mut out, 32, h.count);
    put_u64(&mut out, 40, h.data_end);
    put_u32(&mut out, 48, h.blob_refs);
    put_u32(&mut out, 56, body_crc);
    let crc = crc32fast::hash(&out[..60]);
    put_u32(&mut out, 60, crc);
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
    if crc32fast::hash(&b[..60]) != get_u32(b, 60) {
        return Err(IndexDecodeError::BadCrc);
    }
    let version = get_u32(b, 8);
    if version != INDEX_VERSION {
        return Err(IndexDecodeError::Version(version));
    }
    let h = IndexHeader {
        bucket: get_u32(b, 12),
        segment_id: get_u64(b, 16),
        base_offset: get_u64(b, 24),
        count: get_u64(b, 32),
        data_end: get_u64(b, 40),
        blob_refs: get_u32(b, 48),
    };
    let expected = (INDEX_HEADER_BYTES as u128)
        + (h.count as u128) * 4
        + (h.blob_refs as u128) * BLOB_REF_BYTES as u128;
    if expected != b.len() as u128 {
        return Err(IndexDecodeError::BadLength);
    }
    if crc32fast::hash(&b[INDEX_HEADER_BYTES..]) != get_u32(b, 56) {
        return Err(IndexDecodeError::BadCrc);
    }
    Ok(h)
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
