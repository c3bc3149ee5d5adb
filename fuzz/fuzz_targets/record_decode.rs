//! `spool::format::record::decode` on arbitrary bytes, segment ids and
//! expected offsets. Input: segment id (u64 LE), mode (u8), expected offset
//! (u64 LE), `len_max` (u32 LE), then the bytes to decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::format::headers::HeaderIter;
use spool::format::record::{self, RECORD_HEADER_BYTES};
use spool_fuzz::Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let segment_id = r.u64();
    let mode = r.u8();
    let expected = r.u64();
    let len_max = match mode & 0b110 {
        0 => u32::MAX,
        2 => r.u32(),
        _ => 1 << 20,
    };
    let bytes = r.rest();
    let expected_offset = (mode & 1 == 1).then_some(expected);
    let Ok(d) = record::decode(bytes, segment_id, len_max, expected_offset) else {
        return;
    };
    let len = d.len as usize;
    assert!(
        len >= RECORD_HEADER_BYTES,
        "decoded a record shorter than its header"
    );
    assert!(len <= bytes.len(), "decoded a record longer than the input");
    assert!(d.len <= len_max, "decoded a record longer than len_max");
    if let Some(e) = expected_offset {
        assert_eq!(d.offset, e);
    }
    let h = d.headers_range();
    let b = d.body_range();
    assert!(
        h.start <= h.end && h.end <= len,
        "headers outside the record"
    );
    assert!(b.start <= b.end && b.end <= len, "body outside the record");
    assert_eq!(h.end, b.start);
    assert!(d.stored_len() >= d.len as u64 && d.stored_len() % 8 == 0);
    assert_eq!(
        record::record_crc(segment_id, &bytes[..len]),
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
    );
    let section = &bytes[h];
    let mut used = 0usize;
    for item in HeaderIter::new(section) {
        match item {
            Ok((k, v)) => {
                assert!(!k.is_empty());
                used += 1 + k.len() + 2 + v.len();
                assert!(used <= section.len());
            }
            Err(_) => {
                assert!(spool::format::headers::validate(section).is_err());
                return;
            }
        }
    }
    assert_eq!(used, section.len());
    assert!(spool::format::headers::validate(section).is_ok());
    let _ = &bytes[b];
});
