//! Recovery of a damaged active segment. A real store (one stream, a few
//! messages, closed cleanly) is copied into a fresh directory; its active
//! segment `streams/s/p0/00000000000000000000.seg` is then overwritten,
//! truncated, extended, bit-flipped, or given misdirected copies of its own
//! bytes, a rewritten state block, or records forged with the real segment id,
//! as the input says. The store is reopened and read from offset 0.
//!
//! Never a panic; every record returned is the one sent at its offset (or a
//! forged one); after a successful open the records read back without error,
//! a send works, and the store reopens again with the same records plus it.
//!
//! Input: a flag byte, then up to 32 operations (opcode byte and fields, see
//! `apply`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::format::record::{self, RecordHeader};
use spool::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET};
use spool::{Message, Store};
use spool_fuzz::{options, read_and_check, scratch_dir, small_golden, Expected, Reader};

const SEGMENT: &str = "streams/s/p0/00000000000000000000.seg";
const OPS_MAX: usize = 32;

/// Flag bits of the first input byte.
const KEEP_STATIC_HEADER: u8 = 1;
const KEEP_STATE: u8 = 2;
const SEND_AND_REOPEN: u8 = 4;

struct Damage {
    file: Vec<u8>,
    forged: Vec<Expected>,
    state_written: bool,
}

fn apply(r: &mut Reader<'_>, d: &mut Damage, segment_id: u64, sent: &[Expected]) {
    let len = d.file.len();
    match r.u8() % 9 {
        // Overwrite (or extend) at a position.
        0 => {
            let pos = r.u32() as usize % (len + 256);
            let bytes = r.chunk();
            write_at(&mut d.file, pos, bytes);
        }
        // A misdirected write: copy bytes of the file elsewhere in it.
        1 => {
            let from = r.u32() as usize % (len + 1);
            let to = r.u32() as usize % (len + 1);
            let n = r.u16() as usize;
            let bytes = d.file[from..(from + n).min(len)].to_vec();
            write_at(&mut d.file, to, &bytes);
        }
        // Zero a range (a lost sector or page).
        2 => {
            let pos = r.u32() as usize % (len + 1);
            let n = r.u16() as usize;
            let end = (pos + n).min(len);
            d.file[pos..end].fill(0);
        }
        3 => {
            let n = r.u32() as usize % (len + 1);
            d.file.truncate(n);
        }
        4 => {
            let bytes = r.chunk();
            d.file.extend_from_slice(bytes);
        }
        5 => {
            let bit = r.u32() as usize % (len * 8).max(1);
            if let Some(b) = d.file.get_mut(bit / 8) {
                *b ^= 1 << (bit % 8);
            }
        }
        // A state block with a valid CRC and chosen fields (watermark, epoch,
        // clean flag, unknown flags).
        6 => {
            let mut b = [0u8; STATE_BYTES];
            b[..4].copy_from_slice(&r.u32().to_le_bytes());
            let flags = match r.u8() {
                0..=127 => 0u32,
                128..=250 => 1,
                _ => r.u32(),
            };
            b[4..8].copy_from_slice(&flags.to_le_bytes());
            b[8..16].copy_from_slice(&(r.u32() as u64).to_le_bytes());
            let mut h = crc32fast::Hasher::new();
            h.update(&segment_id.to_le_bytes());
            h.update(&b[..16]);
            b[16..].copy_from_slice(&h.finalize().to_le_bytes());
            write_at(&mut d.file, STATE_OFFSET, &b);
            d.state_written = true;
        }
        // Damage to the segment header's reserved bytes.
        7 => {
            let pos = 48 + r.u16() as usize % (SEGMENT_HEADER_BYTES - 48);
            let v = r.u8();
            if (STATE_OFFSET..STATE_OFFSET + STATE_BYTES).contains(&pos) || pos < 64 {
                return;
            }
            if let Some(b) = d.file.get_mut(pos) {
                *b = v;
            }
        }
        // A record forged with the real segment id: an original payload at a
        // chosen offset, epoch, timestamp and position. The engine may return
        // it; the oracle knows it.
        _ => {
            let pos = (r.u32() as usize % (len + 64)) & !7;
            let offset = r.u8() as u64;
            let epoch = r.u32() % 8;
            let timestamp_us = match r.u8() {
                0 => u64::MAX,
                _ => r.u32() as u64,
            };
            let payload = sent[r.u8() as usize % sent.len()].payload.clone();
            let h = RecordHeader {
                offset,
                timestamp_us,
                epoch,
                flags: 0,
            };
            let mut out = vec![0u8; record::stored_len(0, payload.len()) as usize];
            record::encode(&mut out, segment_id, &h, &[], &payload);
            write_at(&mut d.file, pos, &out);
            d.forged.push(Expected {
                offset,
                payload,
                headers: Vec::new(),
            });
        }
    }
}

fn write_at(file: &mut Vec<u8>, pos: usize, bytes: &[u8]) {
    let end = pos + bytes.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[pos..end].copy_from_slice(bytes);
}

fuzz_target!(|data: &[u8]| {
    let golden = small_golden();
    let original = golden.file(SEGMENT).expect("golden store has the segment");
    let segment_id = SegmentHeader::decode(original)
        .expect("golden header decodes")
        .segment_id;

    let mut r = Reader::new(data);
    let flags = r.u8();
    let mut d = Damage {
        file: original.to_vec(),
        forged: Vec::new(),
        state_written: false,
    };
    for _ in 0..OPS_MAX {
        if r.is_empty() {
            break;
        }
        apply(&mut r, &mut d, segment_id, &golden.messages);
    }
    if flags & KEEP_STATIC_HEADER != 0 && d.file.len() >= 64 {
        d.file[..64].copy_from_slice(&original[..64]);
    }
    if flags & KEEP_STATE != 0 && !d.state_written && d.file.len() >= STATE_OFFSET + STATE_BYTES {
        d.file[STATE_OFFSET..STATE_OFFSET + STATE_BYTES]
            .copy_from_slice(&original[STATE_OFFSET..STATE_OFFSET + STATE_BYTES]);
    }

    let dir = scratch_dir();
    golden.materialize(dir.path());
    std::fs::write(dir.path().join(SEGMENT), &d.file).expect("write the damaged segment");

    let store = match Store::open(dir.path(), options()) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = store.recovery_report().to_string();
    let (n, err) = read_and_check(&store, &golden.messages, &d.forged);
    if let Some(e) = err {
        panic!("open recovered the segment, then reading offset {n} failed: {e}");
    }
    if flags & SEND_AND_REOPEN == 0 {
        return;
    }

    // The recovered log must take new messages and survive a reopen.
    let payload = b"after recovery".to_vec();
    let stream = store
        .stream(spool_fuzz::STREAM)
        .expect("stream exists after open");
    let sent = match stream.send_message(Message::new(&payload).header("h", "v")) {
        Ok(off) => off,
        Err(e) => panic!("send after recovery failed: {e}"),
    };
    assert_eq!(sent, n, "a send after recovery must continue the offsets");
    let mut expected: Vec<Expected> = golden.messages.clone();
    let mut forged = d.forged.clone();
    expected.retain(|m| m.offset < n);
    forged.retain(|m| m.offset < n);
    let new = Expected {
        offset: n,
        payload,
        headers: vec![("h".into(), b"v".to_vec())],
    };
    expected.push(new);
    drop(stream);
    if let Err(e) = store.close() {
        panic!("close after recovery failed: {e}");
    }
    let store = match Store::open(dir.path(), options()) {
        Ok(s) => s,
        Err(e) => panic!("reopen after a successful recovery and a send failed: {e}"),
    };
    let (m, err) = read_and_check(&store, &expected, &forged);
    if let Some(e) = err {
        panic!("reading offset {m} after the second open failed: {e}");
    }
    assert_eq!(m, n + 1, "the second open lost records");
});
