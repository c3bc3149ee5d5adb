//! The consumer journal decoder (`spool::format::journal::decode_all`, which
//! the engine's replay and the inspector both read journals with) on
//! journals of records whose CRCs are made right, so that the input reaches
//! every check behind the CRC: kinds, reserved bytes, acknowledged sets'
//! lengths, counts, groups, varints and padding, delivered ranges' counts.
//!
//! Checks: no panic; the records found lie back to back from the header on;
//! each re-encodes to exactly its bytes (one encoding per record); version
//! 1 journals hold no acknowledged set and no delivered range, journals of
//! versions 1 and 2 no expiry; the decoder stops only where no valid
//! record starts, and never at a well-formed delivered range of a journal
//! of version 2 or 3, nor at a well-formed expiry of one of version 3;
//! sets are sorted, non-touching
//! runs whose lengths add up to the set's size; ranges hold 2 offsets or
//! more and end at `u64::MAX` at the latest.
//!
//! Input: `version u8 | journal id u64 | chunks`, each chunk `len u16 |
//! len bytes` made into a record: padded with zeros to whole 24-byte slots
//! (one at least), its CRC written over the bytes the record's own length
//! says it covers (kind 5: the body length at byte 8; else one slot).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::format::journal::{
    self, Entry, JournalHeader, Record, JOURNAL_HEADER_BYTES, JOURNAL_RECORD_BYTES,
    JOURNAL_VERSION_1, JOURNAL_VERSION_2, JOURNAL_VERSION_3,
};
use spool_fuzz::Reader;

/// Kind byte of an acknowledged set.
const KIND_ACK_SET: u8 = 5;
/// Kind byte of a delivered range.
const KIND_DELIVERED_RANGE: u8 = 6;
/// Kind byte of an expiry.
const KIND_EXPIRED: u8 = 7;

/// Whether the slot at the start of `rec` is an expiry of journal `id` as
/// version 3 defines it: its CRC right, kind 7, reserved bytes and value
/// zero.
fn well_formed_expiry(id: u64, rec: &[u8]) -> bool {
    if rec.len() < JOURNAL_RECORD_BYTES {
        return false;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(&rec[4..JOURNAL_RECORD_BYTES]);
    rec[..4] == h.finalize().to_le_bytes()
        && rec[4] == KIND_EXPIRED
        && rec[6..8] == [0, 0]
        && rec[16..24] == [0; 8]
}

/// Whether the slot at the start of `rec` is a delivered range of journal
/// `id` as version 2 defines it: its CRC right, kind 6, reserved bytes
/// zero, at least 2 offsets, the last no later than `u64::MAX`.
fn well_formed_range(id: u64, rec: &[u8]) -> bool {
    if rec.len() < JOURNAL_RECORD_BYTES {
        return false;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(&rec[4..JOURNAL_RECORD_BYTES]);
    let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().expect("8 bytes"));
    let (first, count) = (u64_at(8), u64_at(16));
    rec[..4] == h.finalize().to_le_bytes()
        && rec[4] == KIND_DELIVERED_RANGE
        && rec[6..8] == [0, 0]
        && count >= 2
        && first.checked_add(count - 1).is_some()
}

/// The bytes a record starting with `rec` covers, as its CRC does.
fn covered(rec: &[u8]) -> usize {
    if rec[4] == KIND_ACK_SET {
        let body = u32::from_le_bytes(rec[8..12].try_into().expect("4 bytes")) as usize;
        (24 + body.div_ceil(24) * 24).min(rec.len())
    } else {
        JOURNAL_RECORD_BYTES
    }
}

fn encoded(id: u64, r: &Record) -> Vec<u8> {
    match r {
        Record::Entry(e) => journal::encode(id, e).to_vec(),
        Record::AckSet(s) => {
            let mut b = vec![0u8; journal::ack_set_record_bytes(s)];
            journal::encode_ack_set(id, s, &mut b);
            b
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let version = match r.u8() % 4 {
        0 => JOURNAL_VERSION_1,
        3 => JOURNAL_VERSION_3,
        _ => JOURNAL_VERSION_2,
    };
    let id = r.u64();
    let header = JournalHeader {
        journal_id: id,
        generation: 1,
        version,
    };
    let mut file = header.encode().to_vec();
    while !r.is_empty() {
        let chunk = r.chunk();
        let mut rec = chunk.to_vec();
        let slots = rec.len().div_ceil(JOURNAL_RECORD_BYTES).max(1);
        rec.resize(slots * JOURNAL_RECORD_BYTES, 0);
        let n = covered(&rec);
        let mut h = crc32fast::Hasher::new();
        h.update(&id.to_le_bytes());
        h.update(&rec[4..n]);
        rec[..4].copy_from_slice(&h.finalize().to_le_bytes());
        file.extend_from_slice(&rec);
    }

    let (h, records) = journal::decode_all(&file).expect("the header is valid");
    assert_eq!(h, header);
    let mut at = JOURNAL_HEADER_BYTES;
    for (position, rec) in &records {
        assert_eq!(*position as usize, at, "records are back to back");
        let enc = encoded(id, rec);
        assert_eq!(&file[at..at + enc.len()], &enc[..], "not canonical");
        assert_eq!(
            journal::decode_record(id, version, &file[at..]),
            Ok(Some((rec.clone(), enc.len())))
        );
        if let Record::AckSet(s) = rec {
            assert!(version >= JOURNAL_VERSION_2, "a set in a version 1 journal");
            assert!(!s.is_empty());
            let runs = s.runs();
            let mut total = 0u64;
            for (i, run) in runs.iter().enumerate() {
                assert!(run.first <= run.last);
                total += run.last - run.first + 1;
                if i > 0 {
                    let p = &runs[i - 1];
                    assert!(
                        p.bucket < run.bucket || p.last + 1 < run.first,
                        "runs out of order or touching"
                    );
                }
            }
            assert_eq!(total, s.len());
        }
        if let Record::Entry(e @ Entry::DeliveredRange { first, count, .. }) = rec {
            assert!(version >= JOURNAL_VERSION_2, "a range in a version 1 journal");
            assert!(*count >= 2, "a range of {count}");
            assert!(first.checked_add(count - 1).is_some(), "{first}+{count}");
            assert!(!e.fits_version(JOURNAL_VERSION_1));
            assert!(well_formed_range(id, &file[at..]));
        }
        if let Record::Entry(e @ Entry::Expired { .. }) = rec {
            assert_eq!(version, JOURNAL_VERSION_3, "an expiry in a journal of version 1 or 2");
            assert!(!e.fits_version(JOURNAL_VERSION_2));
            assert!(well_formed_expiry(id, &file[at..]));
        }
        at += enc.len();
    }
    // Where the decoder stopped, no valid record starts; a well-formed
    // range stops only a version 1 journal.
    if at < file.len() {
        assert!(!matches!(
            journal::decode_record(id, version, &file[at..]),
            Ok(Some(_))
        ));
        if version >= JOURNAL_VERSION_2 {
            assert!(
                !well_formed_range(id, &file[at..]),
                "a valid delivered range refused at byte {at}"
            );
        }
        if version == JOURNAL_VERSION_3 {
            assert!(
                !well_formed_expiry(id, &file[at..]),
                "a valid expiry refused at byte {at}"
            );
        }
    }
});
