//! The index of a sealed segment: the `.idx` file beside each sealed `.seg`.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPOOLIDX` |
//! | 8 | 4 | format version: 1, or 2 when the id section is not empty |
//! | 12 | 4 | bucket |
//! | 16 | 8 | segment id (must match the segment's) |
//! | 24 | 8 | base offset |
//! | 32 | 8 | record count `n` |
//! | 40 | 8 | data end: byte position after the last record |
//! | 48 | 4 | blob reference count `b` |
//! | 52 | 4 | version 2: id entry count `d` (at least 1); version 1: reserved, zero |
//! | 56 | 4 | CRC-32 of the body (positions, blob references, ids) |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//! | 64 | 4·n | position of each record, u32 LE, in offset order |
//! | 64+4n | 32·b | claim-check blob references held by the segment's records |
//! | 64+4n+32b | … | version 2: `d` id entries, then the end of the file |
//!
//! An id entry is the deduplication id of one record (`spool-message-id`,
//! see [`super::attributes`]), in offset order:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | offset of the record |
//! | 8 | 8 | its timestamp, µs since the Unix epoch |
//! | 16 | 1 | id length `k`, 1..=255 |
//! | 17 | k | the id |
//!
//! Offsets strictly increase and lie in `base .. base + n`; timestamps do
//! not decrease. A segment none of whose records has an id gets a version
//! 1 index (what older builds write and read).
//!
//! The file is written to a temporary name, synced and renamed, so a present
//! `.idx` is complete unless damaged; a damaged or missing one is rebuilt from
//! the segment.

use super::{get_u32, get_u64, put_u32, put_u64};

/// The magic at byte 0 of an index.
pub const INDEX_MAGIC: [u8; 8] = *b"SPOOLIDX";
/// The index format version without an id section.
pub const INDEX_VERSION: u32 = 1;
/// The index format version with an id section.
pub const INDEX_VERSION_IDS: u32 = 2;
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
/// Position of the id entry count (version 2; reserved in version 1).
pub const IDS_OFFSET: usize = BLOB_REFS_OFFSET + 4;
/// Position of the body's CRC.
pub const BODY_CRC_OFFSET: usize = IDS_OFFSET + 4;
/// Position of the header's CRC.
pub const HEADER_CRC_OFFSET: usize = BODY_CRC_OFFSET + 4;
/// Bytes before the positions.
pub const INDEX_HEADER_BYTES: usize = HEADER_CRC_OFFSET + 4;
/// Bytes of one blob reference.
pub const BLOB_REF_BYTES: usize = 32;
/// Bytes of an id entry before its id.
pub const ID_ENTRY_HEADER_BYTES: usize = 17;
/// Longest id in an id entry.
pub const ID_BYTES_MAX: usize = 255;

/// One entry of an index's id section: a record's deduplication id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdEntry<'a> {
    /// Offset of the record.
    pub offset: u64,
    /// Its timestamp (µs since the Unix epoch).
    pub timestamp_us: u64,
    /// The id, 1..=255 bytes.
    pub id: &'a [u8],
}

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
    /// Number of id entries (0: a version 1 index).
    pub ids: u32,
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
    /// An id entry is malformed, out of order or outside the segment.
    BadIds,
}

/// Encodes a whole index file: version 1 if `ids` is empty, else version 2.
/// The caller gives entries as [`decode`] requires them (`h.ids` of them,
/// in offset order, within the segment, ids of 1..=255 bytes).
pub fn encode(
    h: &IndexHeader,
    positions: &[u32],
    blob_refs: &[[u8; 32]],
    ids: &[IdEntry<'_>],
) -> Vec<u8> {
    debug_assert_eq!(h.count, positions.len() as u64);
    debug_assert_eq!(h.blob_refs as usize, blob_refs.len());
    debug_assert_eq!(h.ids as usize, ids.len());
    let mut out = vec![0u8; INDEX_HEADER_BYTES];
    let id_bytes: usize = ids.iter().map(|e| ID_ENTRY_HEADER_BYTES + e.id.len()).sum();
    out.reserve(positions.len() * 4 + blob_refs.len() * BLOB_REF_BYTES + id_bytes);
    for p in positions {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for r in blob_refs {
        out.extend_from_slice(r);
    }
    for e in ids {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.timestamp_us.to_le_bytes());
        out.push(e.id.len().min(ID_BYTES_MAX) as u8);
        out.extend_from_slice(&e.id[..e.id.len().min(ID_BYTES_MAX)]);
    }
    let body_crc = crc32fast::hash(&out[INDEX_HEADER_BYTES..]);
    out[..8].copy_from_slice(&INDEX_MAGIC);
    let version = if ids.is_empty() {
        INDEX_VERSION
    } else {
        INDEX_VERSION_IDS
    };
    put_u32(&mut out, 8, version);
    put_u32(&mut out, BUCKET_OFFSET, h.bucket);
    put_u64(&mut out, SEGMENT_ID_OFFSET, h.segment_id);
    put_u64(&mut out, BASE_OFFSET_OFFSET, h.base_offset);
    put_u64(&mut out, COUNT_OFFSET, h.count);
    put_u64(&mut out, DATA_END_OFFSET, h.data_end);
    put_u32(&mut out, BLOB_REFS_OFFSET, h.blob_refs);
    put_u32(&mut out, IDS_OFFSET, ids.len() as u32);
    put_u32(&mut out, BODY_CRC_OFFSET, body_crc);
    let crc = crc32fast::hash(&out[..HEADER_CRC_OFFSET]);
    put_u32(&mut out, HEADER_CRC_OFFSET, crc);
    out
}

/// Decodes and checks the 64-byte header of an index alone (`b` holds at
/// least its first [`INDEX_HEADER_BYTES`]): magic, header CRC, version,
/// and a version that agrees with the id count. What a retention pass
/// reads to tell whether a segment it deletes has ids (version 2), without
/// reading its positions; [`decode`] checks the rest.
pub fn decode_header(b: &[u8]) -> Result<IndexHeader, IndexDecodeError> {
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
    if version != INDEX_VERSION && version != INDEX_VERSION_IDS {
        return Err(IndexDecodeError::Version(version));
    }
    let ids = get_u32(b, IDS_OFFSET);
    // Version 1 has no id section; version 2 has a non-empty one (an index
    // without ids is written as version 1), so each index has one encoding.
    if (version == INDEX_VERSION) != (ids == 0) {
        return Err(IndexDecodeError::BadIds);
    }
    Ok(IndexHeader {
        bucket: get_u32(b, BUCKET_OFFSET),
        segment_id: get_u64(b, SEGMENT_ID_OFFSET),
        base_offset: get_u64(b, BASE_OFFSET_OFFSET),
        count: get_u64(b, COUNT_OFFSET),
        data_end: get_u64(b, DATA_END_OFFSET),
        blob_refs: get_u32(b, BLOB_REFS_OFFSET),
        ids,
    })
}

/// Decodes and checks an index file held whole in `b`.
pub fn decode(b: &[u8]) -> Result<IndexHeader, IndexDecodeError> {
    let h = decode_header(b)?;
    let fixed = (INDEX_HEADER_BYTES as u128)
        + (h.count as u128) * 4
        + (h.blob_refs as u128) * BLOB_REF_BYTES as u128;
    // Each id entry takes at least 18 bytes: what is left must hold them.
    let least = fixed + (h.ids as u128) * (ID_ENTRY_HEADER_BYTES as u128 + 1);
    if (h.ids == 0 && fixed != b.len() as u128) || least > b.len() as u128 {
        return Err(IndexDecodeError::BadLength);
    }
    if crc32fast::hash(&b[INDEX_HEADER_BYTES..]) != get_u32(b, BODY_CRC_OFFSET) {
        return Err(IndexDecodeError::BadCrc);
    }
    if h.ids > 0 {
        // The section must end exactly at the file's end.
        let mut it = IdIter::new(b, &h);
        let (mut prev_offset, mut prev_ts) = (None::<u64>, 0u64);
        let end = h.base_offset.saturating_add(h.count);
        for _ in 0..h.ids {
            let e = it.next_entry()?;
            if e.offset < h.base_offset
                || e.offset >= end
                || prev_offset.is_some_and(|p| e.offset <= p)
                || e.timestamp_us < prev_ts
            {
                return Err(IndexDecodeError::BadIds);
            }
            (prev_offset, prev_ts) = (Some(e.offset), e.timestamp_us);
        }
        if it.at != b.len() {
            return Err(IndexDecodeError::BadLength);
        }
    }
    Ok(h)
}

/// Walks the id section of a decoded index.
struct IdIter<'a> {
    b: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> IdIter<'a> {
    fn new(b: &'a [u8], h: &IndexHeader) -> IdIter<'a> {
        let at = INDEX_HEADER_BYTES
            + (h.count as usize).saturating_mul(4)
            + (h.blob_refs as usize).saturating_mul(BLOB_REF_BYTES);
        IdIter { b, at, left: h.ids }
    }

    fn next_entry(&mut self) -> Result<IdEntry<'a>, IndexDecodeError> {
        let head = self
            .b
            .get(self.at..self.at.saturating_add(ID_ENTRY_HEADER_BYTES))
            .ok_or(IndexDecodeError::BadLength)?;
        let k = head[16] as usize;
        if k == 0 {
            return Err(IndexDecodeError::BadIds);
        }
        let start = self.at + ID_ENTRY_HEADER_BYTES;
        let id = self
            .b
            .get(start..start + k)
            .ok_or(IndexDecodeError::BadLength)?;
        self.at = start + k;
        Ok(IdEntry {
            offset: get_u64(head, 0),
            timestamp_us: get_u64(head, 8),
            id,
        })
    }
}

impl<'a> Iterator for IdIter<'a> {
    type Item = IdEntry<'a>;

    fn next(&mut self) -> Option<IdEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.next_entry().ok()
    }
}

/// The id entries of an index `b` that [`decode`] accepted with header `h`,
/// in offset order.
pub fn ids<'a>(b: &'a [u8], h: &IndexHeader) -> impl Iterator<Item = IdEntry<'a>> + 'a {
    IdIter::new(b, h)
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
            IndexDecodeError::BadIds => write!(
                f,
                "id section malformed (an empty id, offsets out of order or outside the segment, \
                 timestamps decreasing, or a version that disagrees with the id count)"
            ),
        }
    }
}

/// The blob references of a decoded index `b` whose header is `h`.
pub fn blob_refs<'a>(b: &'a [u8], h: &IndexHeader) -> impl Iterator<Item = [u8; 32]> + 'a {
    let start = INDEX_HEADER_BYTES + (h.count as usize) * 4;
    let end = start + (h.blob_refs as usize) * BLOB_REF_BYTES;
    b.get(start..end)
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
            ids: 0,
        };
        let b = encode(&h, &[128, 200, 300], &[[7u8; 32]], &[]);
        assert_eq!(decode(&b), Ok(h));
        assert_eq!(get_u32(&b, 8), INDEX_VERSION);
        assert_eq!(position(&b, 1), 200);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        assert_eq!(decode(&b[..b.len() - 1]), Err(IndexDecodeError::BadLength));
    }

    fn with_ids(ids: &[IdEntry<'_>]) -> (IndexHeader, Vec<u8>) {
        let h = IndexHeader {
            bucket: 2,
            segment_id: 9,
            base_offset: 100,
            count: 3,
            data_end: 400,
            blob_refs: 1,
            ids: ids.len() as u32,
        };
        (h, encode(&h, &[128, 200, 300], &[[7u8; 32]], ids))
    }

    #[test]
    fn an_id_section_round_trips_and_every_damage_is_caught() {
        let entries = [
            IdEntry {
                offset: 100,
                timestamp_us: 5,
                id: b"order-1",
            },
            IdEntry {
                offset: 102,
                timestamp_us: 5,
                id: &[0xff; 255],
            },
        ];
        let (h, b) = with_ids(&entries);
        assert_eq!(get_u32(&b, 8), INDEX_VERSION_IDS);
        assert_eq!(decode(&b), Ok(h));
        assert_eq!(ids(&b, &h).collect::<Vec<_>>(), entries);
        assert_eq!(blob_refs(&b, &h).collect::<Vec<_>>(), [[7u8; 32]]);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        for cut in 1..b.len() - INDEX_HEADER_BYTES {
            assert!(decode(&b[..b.len() - cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn ids_out_of_order_or_outside_the_segment_are_refused() {
        let e = |offset, timestamp_us| IdEntry {
            offset,
            timestamp_us,
            id: b"x",
        };
        for bad in [
            vec![e(99, 1)],
            vec![e(103, 1)],
            vec![e(101, 1), e(101, 1)],
            vec![e(101, 1), e(100, 1)],
            vec![e(100, 2), e(101, 1)],
        ] {
            let (_, b) = with_ids(&bad);
            assert_eq!(decode(&b), Err(IndexDecodeError::BadIds), "{bad:?}");
        }
        let (_, b) = with_ids(&[e(100, 1), e(102, 1)]);
        assert!(decode(&b).is_ok());
        // Version 1 with a count, version 2 without: refused.
        let (h, mut v1) = with_ids(&[]);
        put_u32(&mut v1, IDS_OFFSET, 1);
        let crc = crc32fast::hash(&v1[..HEADER_CRC_OFFSET]);
        put_u32(&mut v1, HEADER_CRC_OFFSET, crc);
        assert_eq!(decode(&v1), Err(IndexDecodeError::BadIds));
        let mut v2 = encode(&h, &[128, 200, 300], &[[7u8; 32]], &[]);
        put_u32(&mut v2, 8, INDEX_VERSION_IDS);
        let crc = crc32fast::hash(&v2[..HEADER_CRC_OFFSET]);
        put_u32(&mut v2, HEADER_CRC_OFFSET, crc);
        assert_eq!(decode(&v2), Err(IndexDecodeError::BadIds));
    }
}
