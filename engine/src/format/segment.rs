//! The segment file header: the first [`SEGMENT_HEADER_BYTES`] bytes of a `.seg` file.
//!
//! Static part, written once before the file is renamed into place:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPOOLSEG` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | bucket (priority level) |
//! | 16 | 8 | segment id (random; seeds every record CRC) |
//! | 24 | 8 | base offset (offset of the first record) |
//! | 32 | 8 | created, microseconds since the Unix epoch, not below the bucket's newest record timestamp |
//! | 40 | 8 | file size at creation (the mapped length) |
//! | 48 | 12 | reserved, zero |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Bytes 64..512 are reserved (zero). The mutable state lives in a sector of
//! its own, so that a torn write of it can never damage the static part:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 512 | 4 | epoch: bumped and synced on every open that will append |
//! | 516 | 4 | flags: bit 0 = closed cleanly (nothing past `synced end` but zeros) |
//! | 520 | 8 | synced end: byte position up to which data is known durable |
//! | 528 | 4 | CRC-32 of the segment id (8 bytes LE) and bytes 512..528 |
//! | 532 | 492 | reserved, zero |
//!
//! Records start at byte 1024.

use super::{get_u32, get_u64, put_u32, put_u64};

/// The magic at byte 0 of a segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SPOOLSEG";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Bytes before the first record.
pub const SEGMENT_HEADER_BYTES: usize = 1024;
/// Position of the magic.
pub const MAGIC_OFFSET: usize = 0;
/// Position of the format version.
pub const VERSION_OFFSET: usize = MAGIC_OFFSET + 8;
/// Position of the bucket (priority level).
pub const BUCKET_OFFSET: usize = VERSION_OFFSET + 4;
/// Position of the segment id.
pub const SEGMENT_ID_OFFSET: usize = BUCKET_OFFSET + 4;
/// Position of the base offset.
pub const BASE_OFFSET_OFFSET: usize = SEGMENT_ID_OFFSET + 8;
/// Position of the creation time.
pub const CREATED_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Position of the file size at creation.
pub const FILE_BYTES_OFFSET: usize = CREATED_OFFSET + 8;
/// Position of the static part's CRC (after 12 reserved bytes).
pub const STATIC_CRC_OFFSET: usize = FILE_BYTES_OFFSET + 8 + 12;
/// Bytes of the static part that a reader needs (through its CRC).
pub const STATIC_BYTES: usize = STATIC_CRC_OFFSET + 4;

/// Start of the mutable state (its own 512-byte sector).
pub const STATE_OFFSET: usize = 512;
/// Position of the epoch, within the state block.
const STATE_EPOCH: usize = 0;
/// Position of the flags, within the state block.
const STATE_FLAGS: usize = STATE_EPOCH + 4;
/// Position of the synced end, within the state block.
const STATE_SYNCED_END: usize = STATE_FLAGS + 4;
/// Position of the state's CRC, within the state block.
const STATE_CRC: usize = STATE_SYNCED_END + 8;
/// Length of the mutable state block (epoch through its CRC).
pub const STATE_BYTES: usize = STATE_CRC + 4;

/// The static fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Priority level the segment belongs to.
    pub bucket: u32,
    /// Random id seeding the record CRCs.
    pub segment_id: u64,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Creation time, microseconds since the Unix epoch; not below the
    /// timestamp of any earlier record of the bucket (the timestamp floor
    /// of a segment found empty at open).
    pub created_us: u64,
    /// File size at creation.
    pub file_bytes: u64,
}

/// The mutable state of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentState {
    /// Epoch of the current writer.
    pub epoch: u32,
    /// Byte position up to which data is known durable.
    pub synced_end: u64,
    /// The segment was closed cleanly: everything up to `synced_end` is
    /// durable and every byte after it is zero.
    pub clean: bool,
}

/// Why a segment header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderDecodeError {
    /// Fewer bytes than a header.
    Truncated,
    /// Not a segment file.
    BadMagic,
    /// A version this build does not know.
    Version(u32),
    /// The static CRC does not match.
    BadCrc,
}

impl std::fmt::Display for HeaderDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderDecodeError::Truncated => write!(f, "shorter than a segment header"),
            HeaderDecodeError::BadMagic => write!(f, "not a segment file (bad magic)"),
            HeaderDecodeError::Version(v) => {
                write!(f, "segment format version {v} is unknown to this build")
            }
            HeaderDecodeError::BadCrc => write!(f, "header checksum mismatch"),
        }
    }
}

impl SegmentHeader {
    /// Encodes the whole header with `state`.
    pub fn encode(&self, state: SegmentState) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, VERSION_OFFSET, SEGMENT_VERSION);
        put_u32(&mut b, BUCKET_OFFSET, self.bucket);
        put_u64(&mut b, SEGMENT_ID_OFFSET, self.segment_id);
        put_u64(&mut b, BASE_OFFSET_OFFSET, self.base_offset);
        put_u64(&mut b, CREATED_OFFSET, self.created_us);
        put_u64(&mut b, FILE_BYTES_OFFSET, self.file_bytes);
        let crc = crc32fast::hash(&b[..STATIC_CRC_OFFSET]);
        put_u32(&mut b, STATIC_CRC_OFFSET, crc);
        b[STATE_OFFSET..STATE_OFFSET + STATE_BYTES].copy_from_slice(&state.encode(self.segment_id));
        b
    }

    /// Decodes the static part from the first bytes of a segment.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderDecodeError> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderDecodeError::Truncated);
        }
        if b[MAGIC_OFFSET..VERSION_OFFSET] != SEGMENT_MAGIC {
            return Err(HeaderDecodeError::BadMagic);
        }
        if crc32fast::hash(&b[..STATIC_CRC_OFFSET]) != get_u32(b, STATIC_CRC_OFFSET) {
            return Err(HeaderDecodeError::BadCrc);
        }
        let version = get_u32(b, VERSION_OFFSET);
        if version != SEGMENT_VERSION {
            return Err(HeaderDecodeError::Version(version));
        }
        Ok(SegmentHeader {
            bucket: get_u32(b, BUCKET_OFFSET),
            segment_id: get_u64(b, SEGMENT_ID_OFFSET),
            base_offset: get_u64(b, BASE_OFFSET_OFFSET),
            created_us: get_u64(b, CREATED_OFFSET),
            file_bytes: get_u64(b, FILE_BYTES_OFFSET),
        })
    }
}

impl SegmentState {
    /// Encodes the state block (bytes 512..532 of the header).
    pub fn encode(&self, segment_id: u64) -> [u8; STATE_BYTES] {
        let mut b = [0u8; STATE_BYTES];
        put_u32(&mut b, STATE_EPOCH, self.epoch);
        put_u32(&mut b, STATE_FLAGS, self.clean as u32);
        put_u64(&mut b, STATE_SYNCED_END, self.synced_end);
        let crc = state_crc(segment_id, &b[..STATE_CRC]);
        put_u32(&mut b, STATE_CRC, crc);
        b
    }

    /// Decodes the state block; `None` if its CRC fails.
    pub fn decode(segment_id: u64, b: &[u8]) -> Option<SegmentState> {
        if b.len() < STATE_BYTES {
            return None;
        }
        if state_crc(segment_id, &b[..STATE_CRC]) != get_u32(b, STATE_CRC) {
            return None;
        }
        let flags = get_u32(b, STATE_FLAGS);
        if flags & !1 != 0 {
            return None;
        }
        Some(SegmentState {
            epoch: get_u32(b, STATE_EPOCH),
            synced_end: get_u64(b, STATE_SYNCED_END),
            clean: flags & 1 == 1,
        })
    }
}

fn state_crc(segment_id: u64, b: &[u8]) -> u32 {
    let mut h = super::crc32();
    h.update(&segment_id.to_le_bytes());
    h.update(b);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            bucket: 3,
            segment_id: 0xdead_beef,
            base_offset: 1000,
            created_us: 5,
            file_bytes: 1 << 20,
        }
    }

    #[test]
    fn round_trip() {
        let st = SegmentState {
            epoch: 4,
            synced_end: 4096,
            clean: true,
        };
        let b = header().encode(st);
        assert_eq!(SegmentHeader::decode(&b), Ok(header()));
        assert_eq!(
            SegmentState::decode(0xdead_beef, &b[STATE_OFFSET..]),
            Some(st)
        );
        assert_eq!(SegmentState::decode(1, &b[STATE_OFFSET..]), None);
    }

    #[test]
    fn damage_is_detected() {
        let b = header().encode(SegmentState::default());
        for i in 0..STATIC_CRC_OFFSET + 4 {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "byte {i}");
        }
        for i in STATE_OFFSET..STATE_OFFSET + STATE_BYTES {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(
                SegmentState::decode(0xdead_beef, &bad[STATE_OFFSET..]),
                None
            );
        }
        assert_eq!(
            SegmentHeader::decode(&b[..10]),
            Err(HeaderDecodeError::Truncated)
        );
    }
}
