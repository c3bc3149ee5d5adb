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
/// Position of the journal id in the header.
pub const JOURNAL_ID_OFFSET: usize = 16;
/// Position of the generation in the header.
pub const GENERATION_OFFSET: usize = JOURNAL_ID_OFFSET + 8;
/// Position of the header's CRC (after 28 reserved bytes).
pub const HEADER_CRC_OFFSET: usize = GENERATION_OFFSET + 8 + 28;
/// Bytes before the first record.
pub const JOURNAL_HEADER_BYTES: usize = HEADER_CRC_OFFSET + 4;

/// Position of a record's CRC.
const RECORD_CRC: usize = 0;
/// Position of a record's kind.
const RECORD_KIND: usize = RECORD_CRC + 4;
/// Position of a record's priority level.
const RECORD_BUCKET: usize = RECORD_KIND + 1;
/// Position of a record's reserved bytes.
const RECORD_RESERVED: usize = RECORD_BUCKET + 1;
/// Position of a record's offset.
const RECORD_OFFSET: usize = RECORD_RESERVED + 2;
/// Position of a record's value (the attempt of a delivery).
const RECORD_VALUE: usize = RECORD_OFFSET + 8;
/// Bytes of one record.
pub const JOURNAL_RECORD_BYTES: usize = RECORD_VALUE + 8;

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
        put_u64(&mut b, JOURNAL_ID_OFFSET, self.journal_id);
        put_u64(&mut b, GENERATION_OFFSET, self.generation);
        let crc = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        put_u32(&mut b, HEADER_CRC_OFFSET, crc);
        b
    }

    /// Decodes and checks a header; `None` if it is not a valid version-1 header.
    pub fn decode(b: &[u8]) -> Option<JournalHeader> {
        if b.len() < JOURNAL_HEADER_BYTES || b[..8] != JOURNAL_MAGIC {
            return None;
        }
        if crc32fast::hash(&b[..HEADER_CRC_OFFSET]) != get_u32(b, HEADER_CRC_OFFSET)
            || get_u32(b, 8) != JOURNAL_VERSION
        {
            return None;
        }
        Some(JournalHeader {
            journal_id: get_u64(b, JOURNAL_ID_OFFSET),
            generation: get_u64(b, GENERATION_OFFSET),
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
    b[RECORD_KIND] = kind;
    b[RECORD_BUCKET] = bucket;
    put_u64(&mut b, RECORD_OFFSET, offset);
    put_u64(&mut b, RECORD_VALUE, value);
    let crc = record_crc(journal_id, &b);
    put_u32(&mut b, RECORD_CRC, crc);
    b
}

fn record_crc(journal_id: u64, b: &[u8]) -> u32 {
    // One update over a contiguous copy: cheaper than two on a few bytes.
    let mut buf = [0u8; 8 + JOURNAL_RECORD_BYTES - RECORD_KIND];
    buf[..8].copy_from_slice(&journal_id.to_le_bytes());
    buf[8..].copy_from_slice(&b[RECORD_KIND..JOURNAL_RECORD_BYTES]);
    crc32fast::hash(&buf)
}

/// Decodes one record: `Ok(None)` for the all-zero end marker, `Err(())` for
/// anything that is not a valid record (a torn write).
#[cfg_attr(
    feature = "sim",
    expect(
        clippy::result_unit_err,
        reason = "a record is valid or it is not: the replay stops at the first that is not, whatever the cause"
    )
)]
pub fn decode(journal_id: u64, b: &[u8]) -> Result<Option<Entry>, ()> {
    if b.len() < JOURNAL_RECORD_BYTES {
        return Err(());
    }
    let b = &b[..JOURNAL_RECORD_BYTES];
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if record_crc(journal_id, b) != get_u32(b, RECORD_CRC)
        || b[RECORD_RESERVED..RECORD_OFFSET] != [0, 0]
    {
        return Err(());
    }
    let (bucket, offset, value) = (
        b[RECORD_BUCKET],
        get_u64(b, RECORD_OFFSET),
        get_u64(b, RECORD_VALUE),
    );
    let e = match b[RECORD_KIND] {
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

/// A journal file's header and its valid records, in order: from byte
/// [`JOURNAL_HEADER_BYTES`] to the end marker, the first invalid record (a
/// torn tail) or the end of `file`. Record `i` lies at byte
/// `JOURNAL_HEADER_BYTES + i * JOURNAL_RECORD_BYTES`. `None` if the header
/// is unreadable (a journal never synced holds nothing).
pub fn decode_all(file: &[u8]) -> Option<(JournalHeader, Vec<Entry>)> {
    let h = JournalHeader::decode(file)?;
    let entries = file[JOURNAL_HEADER_BYTES..]
        .chunks_exact(JOURNAL_RECORD_BYTES)
        .map_while(|r| decode(h.journal_id, r).ok().flatten())
        .collect();
    Some((h, entries))
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
        let mut file = h.encode().to_vec();
        for e in &entries {
            file.extend_from_slice(&encode(5, e));
        }
        let torn = file.len();
        file.extend_from_slice(&encode(5, &entries[0]));
        file[torn] ^= 1;
        file.extend_from_slice(&encode(5, &entries[1]));
        assert_eq!(decode_all(&file), Some((h, entries.to_vec())));
        assert_eq!(decode_all(&file[..10]), None);
    }
}
