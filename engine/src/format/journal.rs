//! The consumer journal: an append-only file of fixed-size records, one per
//! delivery or acknowledgement, replayed on top of the last checkpoint.
//!
//! Header (64 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPOOLJNL` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | journal id (random; seeds every record CRC) |
//! | 24 | 8 | generation (matches the checkpoint it follows) |
//! | 32 | 28 | reserved, zero |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Records (24 bytes each, from byte 64; an all-zero record ends the journal):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC-32 of the journal id (8 bytes LE) and bytes 4..24 |
//! | 4 | 1 | kind: 1 = delivered, 2 = acknowledged, 3 = acknowledged up to, 4 = dead-lettered |
//! | 5 | 1 | bucket (priority level) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 8 | offset |
//! | 16 | 8 | value: the delivery attempt for kind 1, zero otherwise |

use super::{get_u32, get_u64, put_u32, put_u64};

/// The magic of a journal.
pub const JOURNAL_MAGIC: [u8; 8] = *b"SPOOLJNL";
/// The journal format version.
pub const JOURNAL_VERSION: u32 = 1;
/// Bytes before the first record.
pub const JOURNAL_HEADER_BYTES: usize = 64;
/// Bytes of one record.
pub const JOURNAL_RECORD_BYTES: usize = 24;

/// What a journal record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `offset` of `bucket` was delivered; this was attempt `attempt`.
    Delivered {
        /// Priority level.
        bucket: u8,
        /// Offset in the bucket.
        offset: u64,
        /// 1 for the first delivery.
        attempt: u32,
    },
    /// `offset` of `bucket` was acknowledged.
    Acked {
        /// Priority level.
        bucket: u8,
        /// Offset in the bucket.
        offset: u64,
    },
    /// Every offset of `bucket` up to and including `offset` was acknowledged.
    AckedUpTo {
        /// Priority level.
        bucket: u8,
        /// Last acknowledged offset.
        offset: u64,
    },
    /// `offset` of `bucket` was moved to the dead-letter stream (and so acknowledged).
    DeadLettered {
        /// Priority level.
        bucket: u8,
        /// Offset in the bucket.
        offset: u64,
    },
}

/// The journal header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    /// Random id seeding record CRCs.
    pub journal_id: u64,
    /// The checkpoint generation this journal follows.
    pub generation: u64,
}

impl JournalHeader {
    /// Encodes the 64-byte header.
    pub fn encode(&self) -> [u8; JOURNAL_HEADER_BYTES] {
        let mut b = [0u8; JOURNAL_HEADER_BYTES];
        b[..8].copy_from_slice(&JOURNAL_MAGIC);
        put_u32(&mut b, 8, JOURNAL_VERSION);
        put_u64(&mut b, 16, self.journal_id);
        put_u64(&mut b, 24, self.generation);
        let crc = crc32fast::hash(&b[..60]);
        put_u32(&mut b, 60, crc);
        b
    }

    /// Decodes and checks a header; `None` if it is not a valid version-1 header.
    pub fn decode(b: &[u8]) -> Option<JournalHeader> {
        if b.len() < JOURNAL_HEADER_BYTES || b[..8] != JOURNAL_MAGIC {
            return None;
        }
        if crc32fast::hash(&b[..60]) != get_u32(b, 60) || get_u32(b, 8) != JOURNAL_VERSION {
            return None;
        }
        Some(JournalHeader {
            journal_id: get_u64(b, 16),
            generation: get_u64(b, 24),
        })
    }
}

/// Encodes one record.
pub fn encode(journal_id: u64, e: &Entry) -> [u8; JOURNAL_RECORD_BYTES] {
    let mut b = [0u8; JOURNAL_RECORD_BYTES];
    let (kind, bucket, offset, value) = match *e {
        Entry::Delivered {
            bucket,
            offset,
            attempt,
        } => (1u8, bucket, offset, attempt as u64),
        Entry::Acked { bucket, offset } => (2, bucket, offset, 0),
        Entry::AckedUpTo { bucket, offset } => (3, bucket, offset, 0),
        Entry::DeadLettered { bucket, offset } => (4, bucket, offset, 0),
    };
    b[4] = kind;
    b[5] = bucket;
    put_u64(&mut b, 8, offset);
    put_u64(&mut b, 16, value);
    let crc = record_crc(journal_id, &b);
    put_u32(&mut b, 0, crc);
    b
}

fn record_crc(journal_id: u64, b: &[u8]) -> u32 {
    // One update over a contiguous copy: cheaper than two on a few bytes.
    let mut buf = [0u8; 8 + JOURNAL_RECORD_BYTES - 4];
    buf[..8].copy_from_slice(&journal_id.to_le_bytes());
    buf[8..].copy_from_slice(&b[4..JOURNAL_RECORD_BYTES]);
    crc32fast::hash(&buf)
}

/// Decodes one record: `Ok(None)` for the all-zero end marker, `Err(())` for
/// anything that is not a valid record (a torn write).
#[allow(clippy::result_unit_err)]
pub fn decode(journal_id: u64, b: &[u8]) -> Result<Option<Entry>, ()> {
    if b.len() < JOURNAL_RECORD_BYTES {
        return Err(());
    }
    let b = &b[..JOURNAL_RECORD_BYTES];
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if record_crc(journal_id, b) != get_u32(b, 0) || b[6] != 0 || b[7] != 0 {
        return Err(());
    }
    let (bucket, offset, value) = (b[5], get_u64(b, 8), get_u64(b, 16));
    let e = match b[4] {
        1 => Entry::Delivered {
            bucket,
            offset,
            attempt: u32::try_from(value).map_err(|_| ())?,
        },
        2 if value == 0 => Entry::Acked { bucket, offset },
        3 if value == 0 => Entry::AckedUpTo { bucket, offset },
        4 if value == 0 => Entry::DeadLettered { bucket, offset },
        _ => return Err(()),
    };
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let entries = [
            Entry::Delivered {
                bucket: 2,
                offset: 7,
                attempt: 3,
            },
            Entry::Acked {
                bucket: 0,
                offset: 9,
            },
            Entry::AckedUpTo {
                bucket: 1,
                offset: 100,
            },
            Entry::DeadLettered {
                bucket: 0,
                offset: 4,
            },
        ];
        for e in entries {
            let b = encode(42, &e);
            assert_eq!(decode(42, &b), Ok(Some(e)));
            assert_eq!(decode(43, &b), Err(()));
            for i in 0..b.len() {
                let mut bad = b;
                bad[i] ^= 0x20;
                assert_eq!(decode(42, &bad), Err(()), "byte {i}");
            }
        }
        assert_eq!(decode(42, &[0; 24]), Ok(None));
        let h = JournalHeader {
            journal_id: 5,
            generation: 6,
        };
        assert_eq!(JournalHeader::decode(&h.encode()), Some(h));
    }
}
