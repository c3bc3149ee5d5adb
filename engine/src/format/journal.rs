//! The consumer journal: an append-only file of records, one per delivery or
//! acknowledgement (or one per acknowledged set), replayed on top of the
//! last checkpoint.
//!
//! Header (64 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPOOLJNL` |
//! | 8 | 4 | format version: 1, 2 (acknowledged sets and delivered ranges may follow) or 3 (expiries too) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | journal id (random; seeds every record CRC) |
//! | 24 | 8 | generation (matches the checkpoint it follows) |
//! | 32 | 28 | reserved, zero |
//! | 60 | 4 | CRC-32 of bytes 0..60 |
//!
//! Records from byte 64, each a whole number of 24-byte slots; an all-zero
//! slot ends the journal. Kinds 1 to 4, 6 and 7 take one slot:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC-32 of the journal id (8 bytes LE) and bytes 4..24 |
//! | 4 | 1 | kind: 1 = delivered, 2 = acknowledged, 3 = acknowledged up to, 4 = dead-lettered, 6 = delivered range, 7 = expired |
//! | 5 | 1 | bucket (priority level) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 8 | offset (the first of the range for kind 6) |
//! | 16 | 8 | value: the delivery attempt for kind 1, the number of offsets (at least 2) for kind 6, zero otherwise |
//!
//! Kind 6, a delivered range (version 2 journals only), says that offsets
//! `offset .. offset + value` were each delivered for the first time: a
//! batch receive's fresh deliveries in one slot.
//!
//! Kind 7, an expiry (version 3 journals only), says that `offset` was
//! found expired (its `expires-at` had passed) when a receive reached it:
//! it was not delivered, and is acknowledged (and counted as expired).
//!
//! Kind 5, an acknowledged set (version 2 journals only), takes
//! `1 + ceil(b / 24)` slots for a body of `b` bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC-32 of the journal id (8 bytes LE) and every byte of the record from 4 on |
//! | 4 | 1 | kind 5 |
//! | 5 | 3 | reserved, zero |
//! | 8 | 4 | `b`: body bytes (at least 1) |
//! | 12 | 4 | runs in the body |
//! | 16 | 8 | offsets in the set (the runs' lengths added up) |
//! | 24 | b | body: groups, by increasing priority level |
//! | 24 + b | … | zeros up to the end of the last slot |
//!
//! A group is `bucket u8, runs varint`, then per run `start varint,
//! length − 1 varint`, runs by increasing offset: `start` is the first
//! offset of the group's first run, and for each later run the gap to the
//! run before minus one (`first − previous last − 2`: runs of one level
//! neither overlap nor touch). Varints are LEB128, shortest form. Exactly
//! one encoding per set: a record that decodes re-encodes to its bytes.

use super::{get_u32, get_u64, put_u32, put_u64};

/// The magic of a journal.
pub const JOURNAL_MAGIC: [u8; 8] = *b"SPOOLJNL";
/// The journal format version of fixed-size records only (kinds 1 to 4).
pub const JOURNAL_VERSION_1: u32 = 1;
/// The journal format version that may also hold acknowledged sets (kind 5)
/// and delivered ranges (kind 6).
/// Its checkpoint has [`CHECKPOINT_VERSION_2`](super::meta::CHECKPOINT_VERSION_2),
/// so that a build that knows only version 1 refuses the consumer instead
/// of taking the journal for one never synced.
pub const JOURNAL_VERSION_2: u32 = 2;
/// The journal format version that may also hold expiries (kind 7). Its
/// checkpoint has [`CHECKPOINT_VERSION_3`](super::meta::CHECKPOINT_VERSION_3),
/// whose body also counts the expired messages.
pub const JOURNAL_VERSION_3: u32 = 3;
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
    /// Offsets `first .. first + count` of `bucket` were each delivered for
    /// the first time (attempt 1). Version 2 journals only; `count` is at
    /// least 2 and the range does not pass `u64::MAX` (one delivery is a
    /// [`Entry::Delivered`]).
    DeliveredRange {
        /// Priority level.
        bucket: u8,
        /// First offset of the range.
        first: u64,
        /// Offsets in the range.
        count: u64,
    },
    /// `offset` of `bucket` had expired when a receive reached it: not
    /// delivered, acknowledged and counted (moved to the dead-letter
    /// stream first, if the consumer has one). Version 3 journals only.
    Expired {
        /// Priority level.
        bucket: u8,
        /// Offset in the bucket.
        offset: u64,
    },
}

impl Entry {
    /// The record of the first deliveries of `first .. first + count` of
    /// `bucket`: none for no offset, a [`Entry::Delivered`] (attempt 1) for
    /// one, a [`Entry::DeliveredRange`] for more (the one encoding of each).
    pub fn first_deliveries(bucket: u8, first: u64, count: u64) -> Option<Entry> {
        match count {
            0 => None,
            1 => Some(Entry::Delivered {
                bucket,
                offset: first,
                attempt: 1,
            }),
            count => Some(Entry::DeliveredRange {
                bucket,
                first,
                count,
            }),
        }
    }

    /// Whether a journal of format `version` may hold this entry.
    pub fn fits_version(&self, version: u32) -> bool {
        match self {
            Entry::DeliveredRange { .. } => version >= JOURNAL_VERSION_2,
            Entry::Expired { .. } => version >= JOURNAL_VERSION_3,
            _ => true,
        }
    }
}

/// Kind byte of an acknowledged set.
const KIND_ACK_SET: u8 = 5;
/// Position of an acknowledged set's reserved bytes.
const SET_RESERVED: usize = RECORD_KIND + 1;
/// Position of an acknowledged set's body length.
const SET_BODY_BYTES: usize = SET_RESERVED + 3;
/// Position of an acknowledged set's run count.
const SET_RUNS: usize = SET_BODY_BYTES + 4;
/// Position of an acknowledged set's offset count.
const SET_OFFSETS: usize = SET_RUNS + 4;
/// Position of an acknowledged set's body (after the record's first slot).
const SET_BODY: usize = SET_OFFSETS + 8;

/// A run of consecutive offsets of one priority level, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AckRun {
    /// Priority level.
    pub bucket: u8,
    /// First offset of the run.
    pub first: u64,
    /// Last offset of the run (at least `first`).
    pub last: u64,
}

/// Offsets acknowledged together (one journal record of kind 5): runs of
/// consecutive offsets sorted by priority level, then offset, that neither
/// overlap nor touch within a level, so a set has one form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSet {
    runs: Vec<AckRun>,
    offsets: u64,
}

impl AckSet {
    /// The set of `positions` (`(priority level, offset)`), in any order;
    /// repeats count once.
    pub fn from_positions(positions: impl IntoIterator<Item = (u8, u64)>) -> AckSet {
        let mut v: Vec<(u8, u64)> = positions.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        AckSet::from_sorted(&v)
    }

    /// The set of `positions`, sorted and without repeats.
    pub(crate) fn from_sorted(positions: &[(u8, u64)]) -> AckSet {
        let mut runs: Vec<AckRun> = Vec::new();
        for &(bucket, offset) in positions {
            match runs.last_mut() {
                Some(r) if r.bucket == bucket && r.last.checked_add(1) == Some(offset) => {
                    r.last = offset;
                }
                _ => runs.push(AckRun {
                    bucket,
                    first: offset,
                    last: offset,
                }),
            }
        }
        AckSet {
            runs,
            offsets: positions.len() as u64,
        }
    }

    /// The set of `runs`, if they are in the one form of a set: sorted by
    /// priority level, then offset, each with `first <= last`, neither
    /// overlapping nor touching within a level, at most `u64::MAX` offsets
    /// in all.
    pub fn from_runs(runs: Vec<AckRun>) -> Option<AckSet> {
        let mut offsets = 0u64;
        for (i, r) in runs.iter().enumerate() {
            if r.first > r.last {
                return None;
            }
            if let Some(p) = i.checked_sub(1).map(|j| &runs[j]) {
                let after = p.bucket < r.bucket
                    || (p.bucket == r.bucket && p.last.checked_add(1).is_some_and(|n| r.first > n));
                if !after {
                    return None;
                }
            }
            offsets = offsets.checked_add((r.last - r.first).checked_add(1)?)?;
        }
        Some(AckSet { runs, offsets })
    }

    /// The runs, by priority level, then offset.
    pub fn runs(&self) -> &[AckRun] {
        &self.runs
    }

    /// How many offsets the set holds.
    pub fn len(&self) -> u64 {
        self.offsets
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Every `(priority level, offset)` of the set, in order.
    pub fn positions(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (r.first..=r.last).map(move |o| (r.bucket, o)))
    }
}

/// A journal record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A record of one slot (kinds 1 to 4, and 6).
    Entry(Entry),
    /// An acknowledged set (kind 5): each of its offsets was acknowledged,
    /// as by an `Entry::Acked` of its own.
    AckSet(AckSet),
}

/// The journal header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    /// Random id seeding record CRCs.
    pub journal_id: u64,
    /// The checkpoint generation this journal follows.
    pub generation: u64,
    /// The format version: 1, 2 if acknowledged sets and delivered ranges
    /// may follow, 3 if expiries may too.
    pub version: u32,
}

impl JournalHeader {
    /// Encodes the 64-byte header.
    pub fn encode(&self) -> [u8; JOURNAL_HEADER_BYTES] {
        let mut b = [0u8; JOURNAL_HEADER_BYTES];
        b[..8].copy_from_slice(&JOURNAL_MAGIC);
        put_u32(&mut b, 8, self.version);
        put_u64(&mut b, JOURNAL_ID_OFFSET, self.journal_id);
        put_u64(&mut b, GENERATION_OFFSET, self.generation);
        let crc = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        put_u32(&mut b, HEADER_CRC_OFFSET, crc);
        b
    }

    /// Decodes and checks a header; `None` if it is not a valid header of
    /// version 1, 2 or 3.
    pub fn decode(b: &[u8]) -> Option<JournalHeader> {
        if b.len() < JOURNAL_HEADER_BYTES || b[..8] != JOURNAL_MAGIC {
            return None;
        }
        let version = get_u32(b, 8);
        if crc32fast::hash(&b[..HEADER_CRC_OFFSET]) != get_u32(b, HEADER_CRC_OFFSET)
            || !(JOURNAL_VERSION_1..=JOURNAL_VERSION_3).contains(&version)
        {
            return None;
        }
        Some(JournalHeader {
            journal_id: get_u64(b, JOURNAL_ID_OFFSET),
            generation: get_u64(b, GENERATION_OFFSET),
            version,
        })
    }
}

/// Encodes one record of kinds 1 to 4, 6 or 7.
///
/// # Panics
///
/// On a [`Entry::DeliveredRange`] of fewer than 2 offsets or past `u64::MAX`.
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
        Entry::Expired { bucket, offset } => (KIND_EXPIRED, bucket, offset, 0),
        Entry::DeliveredRange {
            bucket,
            first,
            count,
        } => {
            assert!(
                range_is_valid(first, count),
                "delivered range {first}+{count}"
            );
            (KIND_DELIVERED_RANGE, bucket, first, count)
        }
    };
    b[RECORD_KIND] = kind;
    b[RECORD_BUCKET] = bucket;
    put_u64(&mut b, RECORD_OFFSET, offset);
    put_u64(&mut b, RECORD_VALUE, value);
    let crc = record_crc(journal_id, &b);
    put_u32(&mut b, RECORD_CRC, crc);
    b
}

/// Kind byte of a delivered range.
const KIND_DELIVERED_RANGE: u8 = 6;
/// Kind byte of an expiry.
const KIND_EXPIRED: u8 = 7;

/// Whether `first .. first + count` is a range a record may hold.
fn range_is_valid(first: u64, count: u64) -> bool {
    count >= 2 && first.checked_add(count - 1).is_some()
}

fn record_crc(journal_id: u64, b: &[u8]) -> u32 {
    // One update over a contiguous copy: cheaper than two on a few bytes.
    let mut buf = [0u8; 8 + JOURNAL_RECORD_BYTES - RECORD_KIND];
    buf[..8].copy_from_slice(&journal_id.to_le_bytes());
    buf[8..].copy_from_slice(&b[RECORD_KIND..JOURNAL_RECORD_BYTES]);
    super::crc32_of(&buf)
}

/// Decodes one record of kinds 1 to 4: `Ok(None)` for the all-zero end
/// marker, `Err(())` for anything that is not a valid record (a torn write;
/// an acknowledged set or a delivered range, too, which [`decode_record`]
/// reads).
#[cfg_attr(
    feature = "sim",
    expect(
        clippy::result_unit_err,
        reason = "a record is valid or it is not: the replay stops at the first that is not, whatever the cause"
    )
)]
#[cfg(any(test, feature = "sim"))]
pub fn decode(journal_id: u64, b: &[u8]) -> Result<Option<Entry>, ()> {
    decode_slot(journal_id, b, JOURNAL_VERSION_1)
}

/// [`decode`] in a journal of format `version`: kind 6 from version 2 on,
/// kind 7 from version 3 on.
fn decode_slot(journal_id: u64, b: &[u8], version: u32) -> Result<Option<Entry>, ()> {
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
        KIND_DELIVERED_RANGE if version >= JOURNAL_VERSION_2 && range_is_valid(offset, value) => {
            Entry::DeliveredRange {
                bucket,
                first: offset,
                count: value,
            }
        }
        KIND_EXPIRED if version >= JOURNAL_VERSION_3 && value == 0 => {
            Entry::Expired { bucket, offset }
        }
        _ => return Err(()),
    };
    Ok(Some(e))
}

/// Bytes of a LEB128 varint holding `v`.
fn varint_len(v: u64) -> usize {
    ((64 - v.leading_zeros()).max(1) as usize).div_ceil(7)
}

fn put_varint(out: &mut [u8], at: &mut usize, mut v: u64) {
    while v >= 0x80 {
        out[*at] = (v as u8) | 0x80;
        *at += 1;
        v >>= 7;
    }
    out[*at] = v as u8;
    *at += 1;
}

/// Reads a varint in its shortest form at `*at` of `b`.
fn get_varint(b: &[u8], at: &mut usize) -> Result<u64, ()> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at).ok_or(())?;
        *at += 1;
        // The tenth byte holds the 64th bit only, and ends the varint.
        if i == 9 && byte > 1 {
            return Err(());
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after others: not the shortest form.
            return if i > 0 && byte == 0 { Err(()) } else { Ok(v) };
        }
    }
    Err(())
}

/// The value a run is encoded with: its first offset for the first run of a
/// group, else the gap to the run before minus one.
fn run_start(prev: Option<&AckRun>, r: &AckRun) -> u64 {
    match prev {
        None => r.first,
        Some(p) => r.first - p.last - 2,
    }
}

/// The groups of a set: its runs of one priority level each.
fn groups(runs: &[AckRun]) -> impl Iterator<Item = &[AckRun]> {
    runs.chunk_by(|a, b| a.bucket == b.bucket)
}

/// Bytes of the body of `set`'s record.
fn ack_set_body_bytes(set: &AckSet) -> usize {
    groups(&set.runs)
        .map(|g| {
            let mut n = 1 + varint_len(g.len() as u64);
            let mut prev = None;
            for r in g {
                n += varint_len(run_start(prev, r)) + varint_len(r.last - r.first);
                prev = Some(r);
            }
            n
        })
        .sum()
}

/// Bytes of the record of `set`: its first slot and its body, padded to
/// whole slots.
pub fn ack_set_record_bytes(set: &AckSet) -> usize {
    SET_BODY + ack_set_body_bytes(set).div_ceil(JOURNAL_RECORD_BYTES) * JOURNAL_RECORD_BYTES
}

fn ack_set_crc(journal_id: u64, rec: &[u8]) -> u32 {
    let mut h = super::crc32();
    h.update(&journal_id.to_le_bytes());
    h.update(&rec[RECORD_KIND..]);
    h.finalize()
}

/// Encodes the record of `set` (not empty) into `out`, which is
/// [`ack_set_record_bytes`] long.
///
/// # Panics
///
/// If `set` is empty, its body exceeds `u32::MAX` bytes, or `out` has
/// another length.
pub fn encode_ack_set(journal_id: u64, set: &AckSet, out: &mut [u8]) {
    let body = ack_set_body_bytes(set);
    assert!(!set.is_empty(), "an acknowledged set is never empty");
    assert!(u32::try_from(body).is_ok(), "acknowledged set too large");
    assert_eq!(out.len(), ack_set_record_bytes(set), "record length");
    out.fill(0);
    out[RECORD_KIND] = KIND_ACK_SET;
    put_u32(out, SET_BODY_BYTES, body as u32);
    // At most one run per body byte: fits too.
    put_u32(out, SET_RUNS, set.runs.len() as u32);
    put_u64(out, SET_OFFSETS, set.offsets);
    let mut at = SET_BODY;
    for g in groups(&set.runs) {
        out[at] = g[0].bucket;
        at += 1;
        put_varint(out, &mut at, g.len() as u64);
        let mut prev = None;
        for r in g {
            put_varint(out, &mut at, run_start(prev, r));
            put_varint(out, &mut at, r.last - r.first);
            prev = Some(r);
        }
    }
    debug_assert_eq!(at, SET_BODY + body);
    let crc = ack_set_crc(journal_id, out);
    put_u32(out, RECORD_CRC, crc);
}

/// Decodes the acknowledged set at the start of `b` (its kind byte read):
/// the set and the bytes its record takes.
fn decode_ack_set(journal_id: u64, b: &[u8]) -> Result<(AckSet, usize), ()> {
    if b[SET_RESERVED..SET_BODY_BYTES] != [0, 0, 0] {
        return Err(());
    }
    let body_len = get_u32(b, SET_BODY_BYTES) as usize;
    let len = body_len
        .div_ceil(JOURNAL_RECORD_BYTES)
        .checked_mul(JOURNAL_RECORD_BYTES)
        .and_then(|n| n.checked_add(SET_BODY))
        .ok_or(())?;
    if body_len == 0 || len > b.len() {
        return Err(());
    }
    let rec = &b[..len];
    if ack_set_crc(journal_id, rec) != get_u32(rec, RECORD_CRC) {
        return Err(());
    }
    let (body, padding) = rec[SET_BODY..].split_at(body_len);
    if padding.iter().any(|&x| x != 0) {
        return Err(());
    }
    let declared_runs = get_u32(rec, SET_RUNS) as usize;
    let declared_offsets = get_u64(rec, SET_OFFSETS);
    // Each run takes two bytes at least: the declared count cannot make
    // this allocate more than the body.
    let mut runs = Vec::with_capacity(declared_runs.min(body_len / 2));
    let mut offsets = 0u64;
    let mut at = 0;
    let mut prev_bucket = None;
    while at < body.len() {
        let bucket = body[at];
        at += 1;
        if prev_bucket.is_some_and(|p| bucket <= p) {
            return Err(());
        }
        prev_bucket = Some(bucket);
        let n = get_varint(body, &mut at)?;
        if n == 0 {
            return Err(());
        }
        let mut prev_last: Option<u64> = None;
        // Every run reads two bytes at least, so this ends with the body.
        for _ in 0..n {
            let start = get_varint(body, &mut at)?;
            let extra = get_varint(body, &mut at)?;
            let first = match prev_last {
                None => start,
                Some(l) => l
                    .checked_add(2)
                    .and_then(|x| x.checked_add(start))
                    .ok_or(())?,
            };
            let last = first.checked_add(extra).ok_or(())?;
            offsets = extra
                .checked_add(1)
                .and_then(|k| offsets.checked_add(k))
                .ok_or(())?;
            if runs.len() == declared_runs {
                return Err(());
            }
            runs.push(AckRun {
                bucket,
                first,
                last,
            });
            prev_last = Some(last);
        }
    }
    if runs.len() != declared_runs || offsets != declared_offsets {
        return Err(());
    }
    Ok((AckSet { runs, offsets }, len))
}

/// Decodes the record at the start of `b`, in a journal of format
/// `version`: `Ok(None)` for the end marker (an all-zero slot),
/// `Ok(Some((record, bytes it takes)))`, or `Err(())` for anything that is
/// not a valid record (a torn write). Acknowledged sets and delivered
/// ranges are records of version 2 journals (and later) only, expiries of
/// version 3 journals only.
#[cfg_attr(
    feature = "sim",
    expect(
        clippy::result_unit_err,
        reason = "a record is valid or it is not: the replay stops at the first that is not, whatever the cause"
    )
)]
pub fn decode_record(
    journal_id: u64,
    version: u32,
    b: &[u8],
) -> Result<Option<(Record, usize)>, ()> {
    if version >= JOURNAL_VERSION_2
        && b.len() >= JOURNAL_RECORD_BYTES
        && b[RECORD_KIND] == KIND_ACK_SET
    {
        return decode_ack_set(journal_id, b).map(|(s, n)| Some((Record::AckSet(s), n)));
    }
    Ok(decode_slot(journal_id, b, version)?.map(|e| (Record::Entry(e), JOURNAL_RECORD_BYTES)))
}

/// A journal file's header and its valid records, in order, each with its
/// byte position: from byte [`JOURNAL_HEADER_BYTES`] to the end marker, the
/// first invalid record (a torn tail) or the end of `file`. `None` if the
/// header is unreadable (a journal never synced holds nothing).
pub fn decode_all(file: &[u8]) -> Option<(JournalHeader, Vec<(u64, Record)>)> {
    let h = JournalHeader::decode(file)?;
    let mut records = Vec::new();
    let mut at = JOURNAL_HEADER_BYTES;
    while let Ok(Some((r, n))) = decode_record(h.journal_id, h.version, &file[at..]) {
        records.push((at as u64, r));
        at += n;
    }
    Some((h, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> [Entry; 4] {
        [
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
        ]
    }

    fn header(version: u32) -> JournalHeader {
        JournalHeader {
            journal_id: 5,
            generation: 6,
            version,
        }
    }

    fn set_record(id: u64, set: &AckSet) -> Vec<u8> {
        let mut b = vec![0u8; ack_set_record_bytes(set)];
        encode_ack_set(id, set, &mut b);
        b
    }

    #[test]
    fn round_trip_and_damage() {
        let entries = entries();
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
        for version in [JOURNAL_VERSION_1, JOURNAL_VERSION_2, JOURNAL_VERSION_3] {
            let h = header(version);
            assert_eq!(JournalHeader::decode(&h.encode()), Some(h));
            let mut file = h.encode().to_vec();
            for e in &entries {
                file.extend_from_slice(&encode(5, e));
            }
            let torn = file.len();
            file.extend_from_slice(&encode(5, &entries[0]));
            file[torn] ^= 1;
            file.extend_from_slice(&encode(5, &entries[1]));
            let want: Vec<(u64, Record)> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| ((64 + 24 * i) as u64, Record::Entry(*e)))
                .collect();
            assert_eq!(decode_all(&file), Some((h, want)));
            assert_eq!(decode_all(&file[..10]), None);
        }
        for version in [0, 4, u32::MAX] {
            assert_eq!(JournalHeader::decode(&header(version).encode()), None);
        }
    }

    #[test]
    fn expiries_are_version_3_records() {
        let e = Entry::Expired {
            bucket: 3,
            offset: 77,
        };
        let b = encode(9, &e);
        assert_eq!(b[RECORD_KIND], 7);
        assert_eq!(
            decode_record(9, JOURNAL_VERSION_3, &b),
            Ok(Some((Record::Entry(e), JOURNAL_RECORD_BYTES)))
        );
        // Unknown to journals of version 1 and 2: the replay ends there.
        assert_eq!(decode_record(9, JOURNAL_VERSION_1, &b), Err(()));
        assert_eq!(decode_record(9, JOURNAL_VERSION_2, &b), Err(()));
        assert!(e.fits_version(JOURNAL_VERSION_3) && !e.fits_version(JOURNAL_VERSION_2));
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x08;
            assert_eq!(
                decode_record(9, JOURNAL_VERSION_3, &bad),
                Err(()),
                "byte {i}"
            );
        }
        // A value other than zero is not an expiry.
        let mut forged = [0u8; JOURNAL_RECORD_BYTES];
        forged[RECORD_KIND] = 7;
        put_u64(&mut forged, RECORD_VALUE, 1);
        let crc = record_crc(9, &forged);
        put_u32(&mut forged, RECORD_CRC, crc);
        assert_eq!(decode_record(9, JOURNAL_VERSION_3, &forged), Err(()));
        // Version 3 journals hold the records of version 2 too.
        let h = header(JOURNAL_VERSION_3);
        assert_eq!(JournalHeader::decode(&h.encode()), Some(h));
        let mut file = h.encode().to_vec();
        let set = AckSet::from_positions([(0, 1), (0, 2)]);
        file.extend(set_record(5, &set));
        file.extend(encode(5, &e));
        let range = Entry::DeliveredRange {
            bucket: 0,
            first: 4,
            count: 3,
        };
        file.extend(encode(5, &range));
        file.extend([0u8; JOURNAL_RECORD_BYTES]);
        let (_, records) = decode_all(&file).unwrap();
        let got: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            got,
            [Record::AckSet(set), Record::Entry(e), Record::Entry(range)]
        );
        let mut h4 = h.encode();
        put_u32(&mut h4, 8, 4);
        let crc = crc32fast::hash(&h4[..HEADER_CRC_OFFSET]);
        put_u32(&mut h4, HEADER_CRC_OFFSET, crc);
        assert_eq!(JournalHeader::decode(&h4), None);
    }

    #[test]
    fn delivered_ranges_are_version_2_records_of_two_offsets_or_more() {
        let e = Entry::DeliveredRange {
            bucket: 3,
            first: 10,
            count: 64,
        };
        let b = encode(9, &e);
        assert_eq!(b[4], 6);
        assert_eq!(
            decode_record(9, JOURNAL_VERSION_2, &b),
            Ok(Some((Record::Entry(e), 24)))
        );
        // Not in a version 1 journal, nor through the kinds-1-to-4 decoder.
        assert_eq!(decode_record(9, JOURNAL_VERSION_1, &b), Err(()));
        assert_eq!(decode(9, &b), Err(()));
        assert!(e.fits_version(JOURNAL_VERSION_2) && !e.fits_version(JOURNAL_VERSION_1));
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x04;
            assert_eq!(
                decode_record(9, JOURNAL_VERSION_2, &bad),
                Err(()),
                "byte {i}"
            );
        }
        // A count of 0 or 1, or a range past u64::MAX, is not a record
        // (with a valid CRC: one form per set of deliveries).
        for (first, count) in [(5u64, 0u64), (5, 1), (u64::MAX, 2), (u64::MAX - 5, 7)] {
            let mut bad = b;
            bad[8..16].copy_from_slice(&first.to_le_bytes());
            bad[16..24].copy_from_slice(&count.to_le_bytes());
            let crc = record_crc(9, &bad);
            bad[..4].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                decode_record(9, JOURNAL_VERSION_2, &bad),
                Err(()),
                "{first}+{count}"
            );
        }
        let last = Entry::DeliveredRange {
            bucket: 0,
            first: u64::MAX - 1,
            count: 2,
        };
        assert_eq!(
            decode_record(9, JOURNAL_VERSION_2, &encode(9, &last)),
            Ok(Some((Record::Entry(last), 24)))
        );
    }

    #[test]
    fn ack_sets_are_runs_by_level() {
        let set = AckSet::from_positions([(1, 7), (0, 3), (0, 5), (0, 4), (1, 7), (0, 9), (1, 8)]);
        assert_eq!(
            set.runs(),
            &[
                AckRun {
                    bucket: 0,
                    first: 3,
                    last: 5
                },
                AckRun {
                    bucket: 0,
                    first: 9,
                    last: 9
                },
                AckRun {
                    bucket: 1,
                    first: 7,
                    last: 8
                },
            ]
        );
        assert_eq!(set.len(), 6);
        let back: Vec<_> = set.positions().collect();
        assert_eq!(back, [(0, 3), (0, 4), (0, 5), (0, 9), (1, 7), (1, 8)]);
        // Body: group 0 (level, 2 runs, 3 + 2, 9 - 5 - 2 = 2 + 0), group 1
        // (level, 1 run, 7 + 1): 10 bytes, one slot of body.
        assert_eq!(ack_set_record_bytes(&set), 48);
        let b = set_record(42, &set);
        assert_eq!(
            &b[24..34],
            &[0, 2, 3, 2, 2, 0, 1, 1, 7, 1][..],
            "the body as DESIGN.md describes it"
        );
        assert!(AckSet::from_positions([]).is_empty());
        let run = |bucket, first, last| AckRun {
            bucket,
            first,
            last,
        };
        assert_eq!(AckSet::from_runs(set.runs().to_vec()), Some(set.clone()));
        for bad in [
            vec![run(0, 5, 4)],
            vec![run(0, 3, 5), run(0, 6, 9)],
            vec![run(0, 3, 5), run(0, 5, 9)],
            vec![run(1, 3, 5), run(0, 9, 9)],
            vec![run(0, 0, u64::MAX)],
            vec![run(0, 0, u64::MAX - 1), run(1, 0, 0)],
        ] {
            assert_eq!(AckSet::from_runs(bad.clone()), None, "{bad:?}");
        }
    }

    #[test]
    fn ack_sets_round_trip_and_any_damage_is_caught() {
        let sets = [
            AckSet::from_positions([(0, 0), (0, 1)]),
            AckSet::from_positions([(3, u64::MAX), (3, u64::MAX - 1), (15, 0)]),
            AckSet::from_positions((0..2000u64).map(|o| ((o % 3) as u8, o * 7 / 2))),
            AckSet::from_positions([(0, 1 << 40), (0, (1 << 40) + 300), (255, 2)]),
        ];
        for set in &sets {
            let b = set_record(42, set);
            assert_eq!(b.len() % JOURNAL_RECORD_BYTES, 0);
            let got = decode_record(42, JOURNAL_VERSION_2, &b);
            assert_eq!(got, Ok(Some((Record::AckSet(set.clone()), b.len()))));
            // Not a record of a version 1 journal, nor of another journal,
            // nor one cut short.
            assert_eq!(decode_record(42, JOURNAL_VERSION_1, &b), Err(()));
            assert_eq!(decode(42, &b), Err(()));
            assert_eq!(decode_record(43, JOURNAL_VERSION_2, &b), Err(()));
            assert_eq!(
                decode_record(42, JOURNAL_VERSION_2, &b[..b.len() - 1]),
                Err(())
            );
            for i in 0..b.len() {
                for bit in [0x01, 0x20, 0x80] {
                    let mut bad = b.clone();
                    bad[i] ^= bit;
                    assert_eq!(
                        decode_record(42, JOURNAL_VERSION_2, &bad),
                        Err(()),
                        "byte {i} bit {bit:#x}"
                    );
                }
            }
        }
    }

    /// A record with a valid CRC over a body of `body`, declaring `runs`
    /// and `offsets`.
    fn forged(body: &[u8], runs: u32, offsets: u64) -> Vec<u8> {
        let mut b = vec![0u8; SET_BODY + body.len().div_ceil(24) * 24];
        b[RECORD_KIND] = KIND_ACK_SET;
        put_u32(&mut b, SET_BODY_BYTES, body.len() as u32);
        put_u32(&mut b, SET_RUNS, runs);
        put_u64(&mut b, SET_OFFSETS, offsets);
        b[SET_BODY..SET_BODY + body.len()].copy_from_slice(body);
        let crc = ack_set_crc(9, &b);
        put_u32(&mut b, RECORD_CRC, crc);
        b
    }

    #[test]
    fn only_the_canonical_encoding_of_a_set_decodes() {
        let ok = forged(&[0, 1, 3, 1], 1, 2);
        assert_eq!(
            decode_record(9, JOURNAL_VERSION_2, &ok),
            Ok(Some((
                Record::AckSet(AckSet::from_positions([(0, 3), (0, 4)])),
                48
            )))
        );
        let bad: [(&[u8], u32, u64, &str); 12] = [
            (&[], 0, 0, "empty"),
            (&[0, 0], 0, 0, "a group without runs"),
            (&[0, 1, 3, 1], 1, 3, "wrong offset count"),
            (&[0, 1, 3, 1], 2, 2, "wrong run count"),
            (&[0, 1, 0x83, 0x00, 1], 1, 2, "overlong varint"),
            (&[0, 1, 3], 1, 1, "run cut short"),
            (&[1, 1, 3, 0, 0, 1, 5, 0], 2, 2, "levels not increasing"),
            (&[0, 1, 3, 0, 0, 1, 5, 0], 2, 2, "level repeated"),
            (
                &[
                    0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,
                ],
                1,
                2,
                "run past the last offset",
            ),
            (
                &[
                    0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                1,
                0,
                "run of 2^64 offsets",
            ),
            (
                &[
                    0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                1,
                0,
                "varint over 64 bits",
            ),
            (&[0, 1, 3, 1, 9], 1, 2, "trailing byte"),
        ];
        for (body, runs, offsets, what) in bad {
            assert_eq!(
                decode_record(9, JOURNAL_VERSION_2, &forged(body, runs, offsets)),
                Err(()),
                "{what}"
            );
        }
        // Non-zero padding.
        let mut b = ok.clone();
        b[47] = 1;
        let crc = ack_set_crc(9, &b);
        put_u32(&mut b, RECORD_CRC, crc);
        assert_eq!(decode_record(9, JOURNAL_VERSION_2, &b), Err(()));
        // A body length reaching past the file.
        let mut b = ok;
        put_u32(&mut b, SET_BODY_BYTES, u32::MAX);
        assert_eq!(decode_record(9, JOURNAL_VERSION_2, &b), Err(()));
    }

    #[test]
    fn a_version_2_journal_mixes_records_and_stops_at_a_torn_set() {
        let h = header(JOURNAL_VERSION_2);
        let set = AckSet::from_positions((0..300u64).map(|o| (0, o * 3)));
        let mut file = h.encode().to_vec();
        file.extend_from_slice(&encode(5, &entries()[0]));
        let at_set = file.len() as u64;
        file.extend_from_slice(&set_record(5, &set));
        let at_after = file.len() as u64;
        file.extend_from_slice(&encode(5, &entries()[1]));
        let torn = file.len();
        file.extend_from_slice(&set_record(5, &set));
        file.extend_from_slice(&encode(5, &entries()[2]));
        let whole = file.clone();
        // The second set torn (a slot of its body never written): the
        // replay ends before it.
        let lost = torn + 24 * 10;
        assert!(file[lost..lost + 24].iter().any(|&b| b != 0));
        file[lost..lost + 24].fill(0);
        let want = vec![
            (64, Record::Entry(entries()[0])),
            (at_set, Record::AckSet(set.clone())),
            (at_after, Record::Entry(entries()[1])),
        ];
        assert_eq!(decode_all(&file), Some((h, want.clone())));
        let (_, all) = decode_all(&whole).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(&all[..3], &want[..]);
        // The same bytes under a version 1 header end at the first set.
        let mut v1 = whole;
        v1[..64].copy_from_slice(&header(JOURNAL_VERSION_1).encode());
        assert_eq!(
            decode_all(&v1),
            Some((header(JOURNAL_VERSION_1), want[..1].to_vec()))
        );
    }
}
