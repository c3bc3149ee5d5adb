//! The record: one message in a segment.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | `len` | bytes from 0 through the end of `body` (unpadded), `>= 32`; `0` = end of data |
//! | 4 | 4 | `crc` | CRC-32 of the segment id, `len` and bytes 8..len (see [`record_crc`]) |
//! | 8 | 8 | `offset` | the message's offset in its bucket |
//! | 16 | 8 | `timestamp_us` | microseconds since the Unix epoch, non-decreasing per bucket |
//! | 24 | 4 | `epoch` | the segment epoch the record was written in (see DESIGN.md, recovery) |
//! | 28 | 2 | `flags` | bit 0: payload is a claim-check reference; bit 1: the headers begin with the message's attributes ([`super::attributes`]); other bits zero |
//! | 30 | 2 | `hdr_len` | length of the header section |
//! | 32 | hdr_len | headers | see [`super::headers`] |
//! | 32+hdr_len | len-32-hdr_len | body | the payload |
//!
//! Records start at 8-byte aligned positions; the padding up to the next one is zero.

use super::{align8, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};

/// Bytes of the fixed record header.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Position of `len`.
pub const LEN_OFFSET: usize = 0;
/// Position of `crc`.
pub const CRC_OFFSET: usize = 4;
/// Position of `offset`.
pub const OFFSET_OFFSET: usize = 8;
/// Position of `timestamp_us`.
pub const TIMESTAMP_OFFSET: usize = 16;
/// Position of `epoch`.
pub const EPOCH_OFFSET: usize = 24;
/// Position of `flags`.
pub const FLAGS_OFFSET: usize = 28;
/// Position of `hdr_len`.
pub const HDR_LEN_OFFSET: usize = 30;

/// Flag: the body is a claim-check reference, not the payload itself.
pub const FLAG_CLAIM_CHECK: u16 = 1;
/// Flag: the header section begins with the message's attributes
/// (deliver-at, expires-at, message id, group: [`super::attributes`]).
pub const FLAG_ATTRIBUTES: u16 = 2;
/// Every flag this version knows.
pub const FLAGS_KNOWN: u16 = FLAG_CLAIM_CHECK | FLAG_ATTRIBUTES;

/// Bytes a record with `hdr_len` header bytes and `body_len` body bytes takes in
/// a segment, padding included.
#[inline]
pub const fn stored_len(hdr_len: usize, body_len: usize) -> u64 {
    align8((RECORD_HEADER_BYTES + hdr_len + body_len) as u64)
}

/// The record CRC: CRC-32 (IEEE, as computed by `crc32fast`) of the segment id
/// (8 bytes LE), then `len` (bytes 0..4), then bytes 8..len.
///
/// Seeding with the segment id makes a record copied from another segment fail;
/// covering `offset` makes a record copied within a segment fail.
#[inline]
pub fn record_crc(segment_id: u64, record: &[u8]) -> u32 {
    // Two updates, not three: each call on a few bytes has a fixed cost.
    let mut prefix = [0u8; 12];
    prefix[..8].copy_from_slice(&segment_id.to_le_bytes());
    prefix[8..].copy_from_slice(&record[..4]);
    let mut h = super::crc32();
    h.update(&prefix);
    h.update(&record[8..]);
    h.finalize()
}

/// The fixed fields of a record to be written.
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    /// Offset of the message in its bucket.
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Epoch of the segment at write time.
    pub epoch: u32,
    /// Flag bits.
    pub flags: u16,
}

/// Encodes a record into `out`, which must be exactly
/// `stored_len(headers.len(), body.len())` bytes and zeroed where padding goes.
#[cfg_attr(
    not(feature = "sim"),
    expect(
        dead_code,
        reason = "codec API of the fuzz targets and tests (public with `sim`)"
    )
)]
pub fn encode(out: &mut [u8], segment_id: u64, h: &RecordHeader, headers: &[u8], body: &[u8]) {
    encode_with(
        out,
        segment_id,
        h,
        headers.len(),
        |o| o.copy_from_slice(headers),
        body,
    );
}

/// [`encode`] with the header section written in place by `headers`, which
/// gets exactly `hdr_len` bytes to fill (so that a message's header pairs
/// are encoded straight into the segment, with no buffer of their own).
///
/// The bytes are copied in first and the CRC is computed over them in one
/// pass (they are still in the cache), then written into its field.
#[inline]
pub fn encode_with(
    out: &mut [u8],
    segment_id: u64,
    h: &RecordHeader,
    hdr_len: usize,
    headers: impl FnOnce(&mut [u8]),
    body: &[u8],
) {
    let len = RECORD_HEADER_BYTES + hdr_len + body.len();
    debug_assert_eq!(out.len() as u64, align8(len as u64));
    debug_assert!(hdr_len <= u16::MAX as usize);
    let mut fixed = [0u8; RECORD_HEADER_BYTES];
    put_u32(&mut fixed, LEN_OFFSET, len as u32);
    put_u64(&mut fixed, OFFSET_OFFSET, h.offset);
    put_u64(&mut fixed, TIMESTAMP_OFFSET, h.timestamp_us);
    put_u32(&mut fixed, EPOCH_OFFSET, h.epoch);
    put_u16(&mut fixed, FLAGS_OFFSET, h.flags);
    put_u16(&mut fixed, HDR_LEN_OFFSET, hdr_len as u16);
    out[..RECORD_HEADER_BYTES].copy_from_slice(&fixed);
    let hdr_end = RECORD_HEADER_BYTES + hdr_len;
    if hdr_len > 0 {
        headers(&mut out[RECORD_HEADER_BYTES..hdr_end]);
    }
    out[hdr_end..len].copy_from_slice(body);
    out[len..].fill(0);
    let crc = record_crc(segment_id, &out[..len]);
    put_u32(out, CRC_OFFSET, crc);
}

/// A record that decoded and passed its checks. Ranges are relative to the
/// record's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Unpadded length.
    pub len: u32,
    /// Offset in the bucket.
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Epoch it was written in.
    pub epoch: u32,
    /// Flag bits.
    pub flags: u16,
    /// Length of the header section.
    pub hdr_len: u16,
}

impl DecodedRecord {
    /// Bytes the record takes in the segment, padding included.
    pub fn stored_len(&self) -> u64 {
        align8(self.len as u64)
    }
    /// Range of the header section within the record.
    pub fn headers_range(&self) -> std::ops::Range<usize> {
        RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + self.hdr_len as usize
    }
    /// Range of the body within the record.
    pub fn body_range(&self) -> std::ops::Range<usize> {
        RECORD_HEADER_BYTES + self.hdr_len as usize..self.len as usize
    }
}

/// Why the bytes at a position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// `len == 0`: the end of the data.
    End,
    /// Fewer bytes remain than a record header, or than `len` says.
    Truncated,
    /// `len` is below the header size or above the allowed maximum.
    BadLength(u32),
    /// The CRC does not match.
    BadCrc,
    /// The record's offset is not the expected one.
    WrongOffset {
        /// What the record says.
        found: u64,
    },
    /// `hdr_len` runs past `len`.
    BadHeaderLength,
    /// Unknown flag bits are set.
    UnknownFlags(u16),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::End => write!(f, "end of data"),
            DecodeError::Truncated => write!(f, "record runs past the end of the segment"),
            DecodeError::BadLength(l) => write!(f, "impossible record length {l}"),
            DecodeError::BadCrc => write!(f, "record checksum mismatch"),
            DecodeError::WrongOffset { found } => write!(f, "record has offset {found}"),
            DecodeError::BadHeaderLength => write!(f, "header section runs past the record"),
            DecodeError::UnknownFlags(fl) => write!(f, "unknown record flags {fl:#06x}"),
        }
    }
}

/// Decodes and checks the record at the start of `bytes` (which may extend past
/// the record). `len_max` bounds `len` before it is used; `expected_offset`, if
/// given, must match.
pub fn decode(
    bytes: &[u8],
    segment_id: u64,
    len_max: u32,
    expected_offset: Option<u64>,
) -> Result<DecodedRecord, DecodeError> {
    decode_with(bytes, Some(segment_id), len_max, expected_offset)
}

/// [`decode`] of a record whose checksum was checked before, in this
/// process, at this position (see the segment's verified range): every
/// check but the CRC.
pub fn decode_verified(
    bytes: &[u8],
    len_max: u32,
    expected_offset: Option<u64>,
) -> Result<DecodedRecord, DecodeError> {
    decode_with(bytes, None, len_max, expected_offset)
}

/// [`decode`], checking the CRC only with a `segment_id`.
#[inline(always)]
fn decode_with(
    bytes: &[u8],
    segment_id: Option<u64>,
    len_max: u32,
    expected_offset: Option<u64>,
) -> Result<DecodedRecord, DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated);
    }
    let len = get_u32(bytes, LEN_OFFSET);
    if len == 0 {
        return Err(DecodeError::End);
    }
    if (len as usize) < RECORD_HEADER_BYTES || len > len_max {
        return Err(DecodeError::BadLength(len));
    }
    if bytes.len() < len as usize {
        return Err(DecodeError::Truncated);
    }
    let rec = &bytes[..len as usize];
    if let Some(id) = segment_id {
        if get_u32(rec, CRC_OFFSET) != record_crc(id, rec) {
            return Err(DecodeError::BadCrc);
        }
    }
    let d = DecodedRecord {
        len,
        offset: get_u64(rec, OFFSET_OFFSET),
        timestamp_us: get_u64(rec, TIMESTAMP_OFFSET),
        epoch: get_u32(rec, EPOCH_OFFSET),
        flags: get_u16(rec, FLAGS_OFFSET),
        hdr_len: get_u16(rec, HDR_LEN_OFFSET),
    };
    if let Some(expected) = expected_offset {
        if d.offset != expected {
            return Err(DecodeError::WrongOffset { found: d.offset });
        }
    }
    if RECORD_HEADER_BYTES + d.hdr_len as usize > len as usize {
        return Err(DecodeError::BadHeaderLength);
    }
    if d.flags & !FLAGS_KNOWN != 0 {
        return Err(DecodeError::UnknownFlags(d.flags));
    }
    Ok(d)
}

/// Reads the flags and body range of a record known to be valid (already
/// checked when it was written or recovered), without recomputing its CRC;
/// `None` if the lengths do not fit `bytes`.
pub fn peek(bytes: &[u8]) -> Option<(u16, std::ops::Range<usize>)> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return None;
    }
    let len = get_u32(bytes, LEN_OFFSET) as usize;
    let hdr_len = get_u16(bytes, HDR_LEN_OFFSET) as usize;
    if len > bytes.len() || RECORD_HEADER_BYTES + hdr_len > len {
        return None;
    }
    Some((
        get_u16(bytes, FLAGS_OFFSET),
        RECORD_HEADER_BYTES + hdr_len..len,
    ))
}

/// Bytes of a claim-check reference (the body of a record with
/// [`FLAG_CLAIM_CHECK`]): the BLAKE3 hash of the payload, then its length.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 32 | BLAKE3 hash of the payload |
/// | 32 | 8 | payload length, u64 LE |
pub const CLAIM_CHECK_BYTES: usize = 40;

/// Encodes a claim-check reference.
pub fn encode_claim_check(hash: &[u8; 32], len: u64) -> [u8; CLAIM_CHECK_BYTES] {
    let mut b = [0u8; CLAIM_CHECK_BYTES];
    b[..32].copy_from_slice(hash);
    put_u64(&mut b, 32, len);
    b
}

/// Decodes a claim-check reference into its fixed 32-byte hash and length;
/// `None` unless the body is exactly [`CLAIM_CHECK_BYTES`] long.
pub fn decode_claim_check(body: &[u8]) -> Option<([u8; 32], u64)> {
    if body.len() != CLAIM_CHECK_BYTES {
        return None;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&body[..32]);
    Some((hash, get_u64(body, 32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(seg: u64, offset: u64, headers: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; stored_len(headers.len(), body.len()) as usize];
        let h = RecordHeader {
            offset,
            timestamp_us: 42,
            epoch: 3,
            flags: 0,
        };
        encode(&mut out, seg, &h, headers, body);
        out
    }

    #[test]
    fn round_trip_and_alignment() {
        let rec = make(7, 9, b"", b"hello");
        assert_eq!(rec.len() % 8, 0);
        let d = decode(&rec, 7, 1 << 20, Some(9)).unwrap();
        assert_eq!(d.offset, 9);
        assert_eq!(d.timestamp_us, 42);
        assert_eq!(d.epoch, 3);
        assert_eq!(&rec[d.body_range()], b"hello");
        assert_eq!(d.stored_len(), rec.len() as u64);
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let rec = make(7, 9, &[1, b'k', 1, 0, b'v'], b"payload!");
        let len = decode(&rec, 7, 1 << 20, Some(9)).unwrap().len as usize;
        for bit in 0..len * 8 {
            let mut bad = rec.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&bad, 7, 1 << 20, Some(9)).is_err(),
                "bit {bit} undetected"
            );
        }
    }

    #[test]
    fn record_from_another_segment_or_offset_fails() {
        let rec = make(7, 9, b"", b"x");
        assert_eq!(decode(&rec, 8, 1 << 20, Some(9)), Err(DecodeError::BadCrc));
        assert_eq!(
            decode(&rec, 7, 1 << 20, Some(10)),
            Err(DecodeError::WrongOffset { found: 9 })
        );
    }

    #[test]
    fn hostile_lengths_are_rejected_before_use() {
        let mut rec = make(7, 9, b"", b"x");
        put_u32(&mut rec, 0, u32::MAX);
        assert_eq!(
            decode(&rec, 7, 1 << 20, None),
            Err(DecodeError::BadLength(u32::MAX))
        );
        put_u32(&mut rec, 0, 100);
        assert_eq!(decode(&rec, 7, 1 << 20, None), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0; 40], 7, 1 << 20, None), Err(DecodeError::End));
        assert_eq!(
            decode(&[1, 2], 7, 1 << 20, None),
            Err(DecodeError::Truncated)
        );
    }
}
