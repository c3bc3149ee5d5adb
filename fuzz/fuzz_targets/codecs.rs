//! The pure codecs of `spool::format` on arbitrary bytes (segment header,
//! segment state, index, meta frame, message attributes, header section, consumer journal header
//! and records of both journal versions, acknowledged sets and delivered
//! ranges among them, and whole journals), then encode -> decode round trips
//! of structured values built from the same bytes: delivered ranges are
//! records of version 2 journals only, and a slot of kind 6 with a valid CRC
//! but a count below 2 or a range past `u64::MAX` is no record.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use spool::format::attributes::Attributes;
use spool::format::headers::{self, HeaderIter};
use spool::format::index::{self, IndexHeader, INDEX_HEADER_BYTES};
use spool::format::journal::{
    self, AckRun, AckSet, Entry, JournalHeader, Record, JOURNAL_HEADER_BYTES, JOURNAL_RECORD_BYTES,
    JOURNAL_VERSION_1, JOURNAL_VERSION_2, JOURNAL_VERSION_3,
};

/// Kind byte of a delivered range.
const KIND_DELIVERED_RANGE: u8 = 6;

/// Whether `first .. first + count` is a range a record may hold.
fn range_is_valid(first: u64, count: u64) -> bool {
    count >= 2 && first.checked_add(count - 1).is_some()
}

/// A one-slot record of `journal_id` with its CRC made right over bytes
/// 4..24, whatever they hold.
fn with_crc(journal_id: u64, mut b: [u8; JOURNAL_RECORD_BYTES]) -> [u8; JOURNAL_RECORD_BYTES] {
    let mut h = crc32fast::Hasher::new();
    h.update(&journal_id.to_le_bytes());
    h.update(&b[4..]);
    b[..4].copy_from_slice(&h.finalize().to_le_bytes());
    b
}
use spool::format::meta::{self, META_BODY_BYTES_MAX, STREAM_META_MAGIC};
use spool::format::record::{self, RecordHeader, FLAGS_KNOWN};
use spool::format::segment::{SegmentHeader, SegmentState, STATE_BYTES, STATE_OFFSET};

#[derive(Arbitrary, Debug)]
struct SegIn {
    bucket: u32,
    segment_id: u64,
    base_offset: u64,
    created_us: u64,
    file_bytes: u64,
    epoch: u32,
    synced_end: u64,
}

#[derive(Arbitrary, Debug)]
struct IdxIn {
    bucket: u32,
    segment_id: u64,
    base_offset: u64,
    data_end: u64,
    positions: Vec<u32>,
    blob_refs: Vec<[u8; 32]>,
    /// Id entries: (offset step, timestamp step, id), made valid below.
    ids: Vec<(u8, u16, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
struct MetaIn {
    magic: [u8; 8],
    version: u32,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct RecIn {
    segment_id: u64,
    offset: u64,
    timestamp_us: u64,
    epoch: u32,
    flags: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct JnlIn {
    journal_id: u64,
    generation: u64,
    /// `(kind, bucket, offset, attempt)`.
    entries: Vec<(u8, u8, u64, u32)>,
    /// Acknowledged sets: `(priority level, offset)`s.
    sets: Vec<Vec<(u8, u64)>>,
    /// Runs for `AckSet::from_runs`: `(level, first, length - 1)`.
    runs: Vec<(u8, u64, u64)>,
    /// Where to damage each set's record: `(byte, xor)`.
    damage: (u16, u8),
    /// Delivered ranges: `(level, first, count)`, made valid (at least 2
    /// offsets, not past `u64::MAX`), and the count of a slot forged from
    /// each one with its CRC made right, made invalid.
    ranges: Vec<(u8, u64, u64, u64)>,
}

#[derive(Arbitrary, Debug)]
struct Structured {
    seg: SegIn,
    idx: IdxIn,
    meta: MetaIn,
    rec: RecIn,
    jnl: JnlIn,
}

fn raw(data: &[u8]) {
    // Segment header and state.
    let id = match SegmentHeader::decode(data) {
        Ok(h) => {
            let again = SegmentHeader::decode(&h.encode(SegmentState::default()));
            assert_eq!(again, Ok(h), "segment header does not round-trip");
            h.segment_id
        }
        Err(_) => data
            .get(16..24)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(0),
    };
    for block in [data, data.get(STATE_OFFSET..).unwrap_or(&[])] {
        if let Some(s) = SegmentState::decode(id, block) {
            let enc = s.encode(id);
            assert_eq!(&enc[..], &block[..STATE_BYTES], "state is not canonical");
            assert_eq!(SegmentState::decode(id, &enc), Some(s));
        }
    }

    // Index (also a kept-ids file, `<base>.ids`: the same bytes). Its
    // header alone (what a retention pass reads) agrees with the whole.
    let head = index::decode_header(data);
    if let Ok(h) = index::decode(data) {
        assert_eq!(head, Ok(h), "the header alone decodes to the same fields");
        let n = usize::try_from(h.count).expect("count fits: the length was checked");
        assert!(INDEX_HEADER_BYTES + n * 4 <= data.len());
        let positions: Vec<u32> = (0..h.count).map(|i| index::position(data, i)).collect();
        let refs: Vec<[u8; 32]> = index::blob_refs(data, &h).collect();
        assert_eq!(refs.len(), h.blob_refs as usize);
        let ids: Vec<index::IdEntry<'_>> = index::ids(data, &h).collect();
        assert_eq!(ids.len(), h.ids as usize);
        let enc = index::encode(&h, &positions, &refs, &ids);
        assert_eq!(index::decode(&enc), Ok(h), "index does not round-trip");
        assert_eq!(enc, data, "an index that decodes has one encoding");
    }

    // Meta frame, with the stream magic and with whatever magic the input has.
    let mut magics = vec![STREAM_META_MAGIC];
    if let Some(m) = data.get(..8) {
        magics.push(m.try_into().expect("8 bytes"));
    }
    for magic in magics {
        if let Ok((version, body)) = meta::decode(magic, data) {
            assert!(body.len() <= META_BODY_BYTES_MAX);
            let enc = meta::encode(magic, version, body);
            assert_eq!(meta::decode(magic, &enc), Ok((version, body)));
        }
    }

    // Consumer journal: header, then records with the header's id (or, for
    // bytes that are no journal, the id the first 8 bytes spell).
    let jid = match JournalHeader::decode(data) {
        Some(h) => {
            assert!(data.len() >= JOURNAL_HEADER_BYTES);
            assert_eq!(JournalHeader::decode(&h.encode()), Some(h));
            h.journal_id
        }
        None => data
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(0),
    };
    for start in [0, JOURNAL_HEADER_BYTES] {
        let Some(rec) = data.get(start..) else {
            continue;
        };
        // Version 2: kinds 1 to 4 as in version 1, and acknowledged sets
        // and delivered ranges, which must be canonical too.
        let v1 = journal::decode(jid, rec);
        match journal::decode_record(jid, JOURNAL_VERSION_2, rec) {
            Ok(Some((Record::Entry(e @ Entry::DeliveredRange { first, count, .. }), n))) => {
                assert_eq!(n, JOURNAL_RECORD_BYTES);
                assert!(v1.is_err(), "a delivered range is no version 1 record");
                assert!(range_is_valid(first, count), "range {first}+{count}");
                assert!(e.fits_version(JOURNAL_VERSION_2) && !e.fits_version(JOURNAL_VERSION_1));
                assert_eq!(rec[4], KIND_DELIVERED_RANGE);
                let enc = journal::encode(jid, &e);
                assert_eq!(
                    &enc[..],
                    &rec[..JOURNAL_RECORD_BYTES],
                    "range record is not canonical"
                );
            }
            Ok(Some((Record::AckSet(set), n))) => {
                assert!(v1.is_err(), "a set is no version 1 record");
                assert!(!set.is_empty());
                assert_eq!(n, journal::ack_set_record_bytes(&set));
                assert_eq!(n % JOURNAL_RECORD_BYTES, 0);
                let mut enc = vec![0u8; n];
                journal::encode_ack_set(jid, &set, &mut enc);
                assert_eq!(&enc[..], &rec[..n], "set record is not canonical");
                assert_eq!(AckSet::from_runs(set.runs().to_vec()), Some(set.clone()));
                let total: u64 = set.runs().iter().map(|r| r.last - r.first + 1).sum();
                assert_eq!(total, set.len());
            }
            Ok(Some((Record::Entry(e), n))) => {
                assert_eq!(n, JOURNAL_RECORD_BYTES);
                assert!(e.fits_version(JOURNAL_VERSION_1));
                assert_eq!(v1, Ok(Some(e)));
            }
            Ok(None) => assert_eq!(v1, Ok(None)),
            Err(()) => assert!(v1.is_err()),
        }
        assert_eq!(
            journal::decode_record(jid, JOURNAL_VERSION_1, rec),
            v1.map(|o| o.map(|e| (Record::Entry(e), JOURNAL_RECORD_BYTES)))
        );
        match journal::decode(jid, rec) {
            Ok(Some(e)) => {
                let enc = journal::encode(jid, &e);
                assert_eq!(
                    &enc[..],
                    &rec[..JOURNAL_RECORD_BYTES],
                    "record is not canonical"
                );
            }
            Ok(None) => assert!(rec[..JOURNAL_RECORD_BYTES].iter().all(|&b| b == 0)),
            Err(()) => assert!(
                rec.len() < JOURNAL_RECORD_BYTES
                    || rec[..JOURNAL_RECORD_BYTES].iter().any(|&b| b != 0)
            ),
        }
    }

    // Message attributes at the start of a header section: whatever
    // decodes re-encodes to attributes that decode the same, and to a
    // valid header section of the length `encoded_len` says.
    if let Ok(a) = Attributes::decode(data) {
        assert!(!a.is_empty() && a.lengths_valid());
        let mut enc = vec![0u8; a.encoded_len()];
        assert_eq!(a.encode_into(&mut enc), enc.len());
        assert!(headers::validate(&enc).is_ok());
        assert_eq!(Attributes::decode(&enc), Ok(a), "attributes do not round-trip");
    }

    // Header section.
    let ok = headers::validate(data).is_ok();
    let mut errors = 0;
    let mut pairs = Vec::new();
    for item in HeaderIter::new(data) {
        match item {
            Ok(p) => pairs.push(p),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1, "the header iterator yields at most one error");
    assert_eq!(ok, errors == 0);
    if ok {
        let mut enc = Vec::new();
        for (k, v) in &pairs {
            headers::encode_pair(&mut enc, k, v);
        }
        assert_eq!(enc, data, "header section is not canonical");
    }
}

fn structured(s: Structured) {
    let seg = SegmentHeader {
        bucket: s.seg.bucket,
        segment_id: s.seg.segment_id,
        base_offset: s.seg.base_offset,
        created_us: s.seg.created_us,
        file_bytes: s.seg.file_bytes,
    };
    let state = SegmentState {
        epoch: s.seg.epoch,
        synced_end: s.seg.synced_end,
        ..SegmentState::default()
    };
    let b = seg.encode(state);
    assert_eq!(SegmentHeader::decode(&b), Ok(seg));
    assert_eq!(
        SegmentState::decode(seg.segment_id, &b[STATE_OFFSET..]),
        Some(state)
    );

    // Valid id entries: increasing offsets within the segment, timestamps
    // not decreasing, ids of 1..=255 bytes.
    let base = s.idx.base_offset >> 1;
    let count = s.idx.positions.len() as u64;
    let mut ids = Vec::new();
    let (mut next, mut ts) = (base, 0u64);
    for (step, dt, id) in &s.idx.ids {
        let offset = next + *step as u64 % 3;
        if offset >= base + count || id.is_empty() {
            break;
        }
        ts += *dt as u64;
        ids.push(index::IdEntry {
            offset,
            timestamp_us: ts,
            id: &id[..id.len().min(255)],
        });
        next = offset + 1;
    }
    let h = IndexHeader {
        bucket: s.idx.bucket,
        segment_id: s.idx.segment_id,
        base_offset: base,
        count,
        data_end: s.idx.data_end,
        blob_refs: s.idx.blob_refs.len() as u32,
        ids: ids.len() as u32,
    };
    let b = index::encode(&h, &s.idx.positions, &s.idx.blob_refs, &ids);
    assert_eq!(index::decode(&b), Ok(h));
    assert_eq!(index::ids(&b, &h).collect::<Vec<_>>(), ids);
    for (i, p) in s.idx.positions.iter().enumerate() {
        assert_eq!(index::position(&b, i as u64), *p);
    }
    if !b.is_empty() {
        assert!(index::decode(&b[..b.len() - 1]).is_err());
    }

    if s.meta.body.len() <= META_BODY_BYTES_MAX {
        let b = meta::encode(s.meta.magic, s.meta.version, &s.meta.body);
        assert_eq!(
            meta::decode(s.meta.magic, &b),
            Ok((s.meta.version, &s.meta.body[..]))
        );
        assert!(meta::decode(s.meta.magic, &b[..b.len() - 1]).is_err());
    }

    let j = &s.jnl;
    let h = JournalHeader {
        journal_id: j.journal_id,
        generation: j.generation,
        version: JOURNAL_VERSION_3,
    };
    let hb = h.encode();
    assert_eq!(JournalHeader::decode(&hb), Some(h));
    assert_eq!(JournalHeader::decode(&hb[..JOURNAL_HEADER_BYTES - 1]), None);
    // A whole version 3 journal: the entries, then the sets, in order.
    let mut file = hb.to_vec();
    let mut want = Vec::new();
    for &(kind, bucket, offset, attempt) in &j.entries {
        let e = match kind % 5 {
            0 => Entry::Delivered {
                bucket,
                offset,
                attempt,
            },
            1 => Entry::Acked { bucket, offset },
            2 => Entry::AckedUpTo { bucket, offset },
            3 => Entry::DeadLettered { bucket, offset },
            _ => Entry::Expired { bucket, offset },
        };
        let b = journal::encode(j.journal_id, &e);
        want.push((file.len() as u64, Record::Entry(e)));
        file.extend_from_slice(&b);
        if let Entry::Expired { .. } = e {
            // A record of version 3 journals only.
            assert_eq!(
                journal::decode_record(j.journal_id, JOURNAL_VERSION_3, &b),
                Ok(Some((Record::Entry(e), JOURNAL_RECORD_BYTES)))
            );
            assert_eq!(journal::decode(j.journal_id, &b), Err(()));
            assert_eq!(journal::decode_record(j.journal_id, JOURNAL_VERSION_2, &b), Err(()));
            continue;
        }
        assert_eq!(journal::decode(j.journal_id, &b), Ok(Some(e)));
        assert_eq!(journal::decode(j.journal_id ^ 1, &b), Err(()));
        assert_eq!(
            journal::decode(j.journal_id, &b[..JOURNAL_RECORD_BYTES - 1]),
            Err(())
        );
    }
    for positions in &j.sets {
        let set = AckSet::from_positions(positions.iter().copied());
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(set.positions().collect::<Vec<_>>(), sorted);
        assert_eq!(set.len(), sorted.len() as u64);
        if set.is_empty() {
            continue;
        }
        let mut b = vec![0u8; journal::ack_set_record_bytes(&set)];
        journal::encode_ack_set(j.journal_id, &set, &mut b);
        let id = j.journal_id;
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_2, &b),
            Ok(Some((Record::AckSet(set.clone()), b.len())))
        );
        assert_eq!(journal::decode_record(id, JOURNAL_VERSION_1, &b), Err(()));
        assert_eq!(
            journal::decode_record(id ^ 1, JOURNAL_VERSION_2, &b),
            Err(())
        );
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_2, &b[..b.len() - 1]),
            Err(())
        );
        let (at, xor) = j.damage;
        if xor != 0 {
            let mut bad = b.clone();
            let i = at as usize % bad.len();
            bad[i] ^= xor;
            assert_eq!(
                journal::decode_record(id, JOURNAL_VERSION_2, &bad),
                Err(()),
                "damage at byte {i} went unnoticed"
            );
        }
        want.push((file.len() as u64, Record::AckSet(set)));
        file.extend_from_slice(&b);
    }
    for &(bucket, first, count, bad) in &j.ranges {
        // Made valid: at least 2 offsets, the last no later than u64::MAX.
        let first = first.min(u64::MAX - 1);
        let most = (u64::MAX - first).saturating_add(1);
        let count = 2 + count % (most - 1);
        assert!(range_is_valid(first, count));
        let e = Entry::DeliveredRange {
            bucket,
            first,
            count,
        };
        let id = j.journal_id;
        let b = journal::encode(id, &e);
        assert_eq!(b[4], KIND_DELIVERED_RANGE);
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_2, &b),
            Ok(Some((Record::Entry(e), JOURNAL_RECORD_BYTES)))
        );
        // Not a record of version 1 journals, nor of the kinds-1-to-4
        // decoder; nor of another journal, nor cut short.
        assert_eq!(journal::decode_record(id, JOURNAL_VERSION_1, &b), Err(()));
        assert_eq!(journal::decode(id, &b), Err(()));
        assert_eq!(
            journal::decode_record(id ^ 1, JOURNAL_VERSION_2, &b),
            Err(())
        );
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_2, &b[..JOURNAL_RECORD_BYTES - 1]),
            Err(())
        );
        assert!(e.fits_version(JOURNAL_VERSION_2) && !e.fits_version(JOURNAL_VERSION_1));
        let (at, xor) = j.damage;
        if xor != 0 {
            let mut bad = b;
            let i = at as usize % bad.len();
            bad[i] ^= xor;
            assert_eq!(
                journal::decode_record(id, JOURNAL_VERSION_2, &bad),
                Err(()),
                "damage at byte {i} of a range went unnoticed"
            );
        }
        // The same slot with an invalid count (0, 1, or a range past
        // u64::MAX) and its CRC made right: one encoding per set of
        // deliveries, so no record.
        // One offset too many, where a u64 can say it (not from 0 or 1).
        let past = (u64::MAX - first).checked_add(2);
        let bad_count = match (bad % 3, past) {
            (1, Some(p)) => p,
            (2, Some(p)) => p.saturating_add(bad >> 2),
            _ => bad % 2,
        };
        assert!(!range_is_valid(first, bad_count), "{first}+{bad_count}");
        let mut forged = b;
        forged[16..24].copy_from_slice(&bad_count.to_le_bytes());
        let forged = with_crc(id, forged);
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_2, &forged),
            Err(()),
            "range {first}+{bad_count} accepted"
        );
        assert_eq!(
            journal::decode_record(id, JOURNAL_VERSION_1, &forged),
            Err(())
        );
        // And the valid slot forged the same way is the encoded one.
        assert_eq!(with_crc(id, b), b);
        want.push((file.len() as u64, Record::Entry(e)));
        file.extend_from_slice(&b);
    }
    assert_eq!(journal::decode_all(&file), Some((h, want.clone())));
    // The same records in a version 1 journal: the replay ends at the first
    // acknowledged set or delivered range.
    let mut v1 = file.clone();
    let h1 = JournalHeader {
        version: JOURNAL_VERSION_1,
        ..h
    };
    v1[..JOURNAL_HEADER_BYTES].copy_from_slice(&h1.encode());
    let v1_records: Vec<_> = want
        .iter()
        .take_while(|(_, r)| matches!(r, Record::Entry(e) if e.fits_version(JOURNAL_VERSION_1)))
        .cloned()
        .collect();
    assert_eq!(journal::decode_all(&v1), Some((h1, v1_records)));
    // Cut anywhere: the records before the cut, and none after it.
    let cut = (j.damage.0 as usize) % (file.len() + 1);
    if cut >= JOURNAL_HEADER_BYTES {
        let (_, got) = journal::decode_all(&file[..cut]).expect("header intact");
        let whole: Vec<_> = want
            .iter()
            .filter(|(at, r)| {
                let len = match r {
                    Record::Entry(_) => JOURNAL_RECORD_BYTES,
                    Record::AckSet(s) => journal::ack_set_record_bytes(s),
                };
                *at as usize + len <= cut
            })
            .cloned()
            .collect();
        assert_eq!(got, whole);
    }
    // Runs in any form: accepted only in the canonical one, which is the
    // form `from_positions` builds.
    let runs: Vec<AckRun> = j
        .runs
        .iter()
        .map(|&(bucket, first, extra)| AckRun {
            bucket,
            first,
            last: first.saturating_add(extra),
        })
        .collect();
    if let Some(set) = AckSet::from_runs(runs.clone()) {
        assert_eq!(set.runs(), &runs[..]);
        if set.len() <= 10_000 {
            assert_eq!(AckSet::from_positions(set.positions()), set);
        }
    }

    let r = &s.rec;
    let pairs: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let Some(n) = headers::encoded_len(pairs.iter().copied()) else {
        return;
    };
    let mut section = Vec::with_capacity(n);
    for (k, v) in &pairs {
        headers::encode_pair(&mut section, k, v);
    }
    assert_eq!(section.len(), n);
    let back: Vec<(&str, &[u8])> = HeaderIter::new(&section)
        .map(|p| p.expect("encoded headers decode"))
        .collect();
    assert_eq!(back, pairs);
    if r.body.len() > (1 << 20) {
        return;
    }
    let rh = RecordHeader {
        offset: r.offset,
        timestamp_us: r.timestamp_us,
        epoch: r.epoch,
        flags: r.flags & FLAGS_KNOWN,
    };
    let mut out = vec![0u8; record::stored_len(section.len(), r.body.len()) as usize];
    record::encode(&mut out, r.segment_id, &rh, &section, &r.body);
    let d = record::decode(&out, r.segment_id, u32::MAX, Some(r.offset)).expect("round trip");
    assert_eq!(d.offset, r.offset);
    assert_eq!(d.timestamp_us, r.timestamp_us);
    assert_eq!(d.epoch, r.epoch);
    assert_eq!(d.flags, rh.flags);
    assert_eq!(d.stored_len(), out.len() as u64);
    assert_eq!(&out[d.headers_range()], &section[..]);
    assert_eq!(&out[d.body_range()], &r.body[..]);
    assert!(record::decode(&out, r.segment_id ^ 1, u32::MAX, None).is_err());
    assert!(record::decode(&out, r.segment_id, u32::MAX, Some(r.offset ^ 1)).is_err());
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    if let Ok(s) = Structured::arbitrary(&mut Unstructured::new(data)) {
        structured(s);
    }
});
