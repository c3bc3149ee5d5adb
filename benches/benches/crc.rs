//! The record checksum's cost, by candidate: the CRC a segment record
//! carries is computed over the segment id (8 bytes), the record's `len`
//! (4 bytes) and its bytes 8..len, once when it is written and once each
//! time it is read (DESIGN.md §3.1). Records of a 128-byte and a 4 KiB
//! payload without headers (`len` 160 and 4,128), 8-byte aligned as in a
//! segment.
//!
//! Candidates: CRC-32 (IEEE) with `crc32fast` (format version 1's record
//! checksum), the same CRC with `crc-fast`, and CRC-32C (Castagnoli) with
//! `crc32c` (SSE 4.2's `crc32` instruction) and with `crc-fast`.

use crc_fast::{CrcAlgorithm, Digest};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A record of `len` bytes (`len` in its first 4 bytes). The allocator
/// aligns it at least to 8 bytes, as records are in a segment.
fn record(len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    b[..4].copy_from_slice(&(len as u32).to_le_bytes());
    assert_eq!(b.as_ptr() as usize % 8, 0);
    b
}

/// A record checksum: of the segment id and the record's bytes.
type Checksum = fn(u64, &[u8]) -> u32;

/// The prefix the checksum starts with: the segment id, then `len`.
#[inline]
fn prefix(segment_id: u64, rec: &[u8]) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..8].copy_from_slice(&segment_id.to_le_bytes());
    p[8..].copy_from_slice(&rec[..4]);
    p
}

fn crc32fast_ieee(segment_id: u64, rec: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prefix(segment_id, rec));
    h.update(&rec[8..]);
    h.finalize()
}

fn crc32c_castagnoli(segment_id: u64, rec: &[u8]) -> u32 {
    let c = crc32c::crc32c(&prefix(segment_id, rec));
    crc32c::crc32c_append(c, &rec[8..])
}

fn crc_fast(algorithm: CrcAlgorithm, segment_id: u64, rec: &[u8]) -> u32 {
    let mut d = Digest::new(algorithm);
    d.update(&prefix(segment_id, rec));
    d.update(&rec[8..]);
    d.finalize() as u32
}

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_crc");
    let id = 0x0123_4567_89ab_cdef_u64;
    for payload in [128usize, 4096] {
        let len = 32 + payload;
        let rec = record(len);
        agree(id, &rec);
        g.throughput(Throughput::Bytes(len as u64));
        let candidates: [(&str, Checksum); 4] = [
            ("crc32fast-ieee", crc32fast_ieee),
            ("crc-fast-ieee", |id, r| {
                crc_fast(CrcAlgorithm::Crc32IsoHdlc, id, r)
            }),
            ("crc32c-castagnoli", crc32c_castagnoli),
            ("crc-fast-castagnoli", |id, r| {
                crc_fast(CrcAlgorithm::Crc32Iscsi, id, r)
            }),
        ];
        for (name, f) in candidates {
            g.bench_with_input(BenchmarkId::new(name, payload), &rec, |b, r| {
                b.iter(|| f(black_box(id), black_box(r)))
            });
        }
    }
    g.finish();
}

/// Every candidate computes the CRC it names over the same bytes.
fn agree(id: u64, rec: &[u8]) {
    let mut whole = prefix(id, rec).to_vec();
    whole.extend_from_slice(&rec[8..]);
    let ieee = crc32fast::hash(&whole);
    let castagnoli = crc32c::crc32c(&whole);
    assert_eq!(crc32fast_ieee(id, rec), ieee);
    assert_eq!(crc_fast(CrcAlgorithm::Crc32IsoHdlc, id, rec), ieee);
    assert_eq!(crc32c_castagnoli(id, rec), castagnoli);
    assert_eq!(crc_fast(CrcAlgorithm::Crc32Iscsi, id, rec), castagnoli);
}

criterion_group!(benches, checksums);
criterion_main!(benches);
