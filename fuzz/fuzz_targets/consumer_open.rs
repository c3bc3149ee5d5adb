//! Consumer recovery on fuzzed files. A real store (stream `s`, 12 messages,
//! consumer `c` that received six of them, acknowledged some, gave one back
//! and received it again, batch-acked two more and received two more with
//! one batch receive; journal and checkpoint as a crash leaves them) is
//! copied into a fresh directory; the input then damages the consumer's
//! `checkpoint` or journal: raw bytes, a validly framed checkpoint with a
//! fuzzed postcard body (or one built field by field from the input), a
//! journal with a valid header (format version 1 or 2) and records with
//! valid CRCs built from the input (acknowledged sets, delivered ranges
//! and expiries among them, of any width; format version 1, 2 or 3),
//! checkpoints of versions 1 to 3 (3 counts expired messages), overwrites,
//! truncations, extensions,
//! deletions, stale journals.
//! Then `Store::open` and a drain of the consumer with `try_receive`/`ack`.
//!
//! Never a panic; every delivered message is the one sent at its offset;
//! failures are `spool::Error` values whose rendering does not panic.
//!
//! Input: up to 4 edits, each `kind u8 | mode u8 | len u16 | len bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::format::journal::{self, AckSet, Entry, JournalHeader, Record, JOURNAL_HEADER_BYTES};
use spool::format::meta;
use spool::{Message, Options, Store};
use spool_fuzz::{golden_message, options, scratch_dir, Expected, Golden, Reader, STREAM};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const MESSAGES: u64 = 12;
const CONSUMER: &str = "c";
const EDITS_MAX: usize = 4;
const JOURNAL_BYTES: u64 = 4096;
const CHECKPOINT_MAGIC: [u8; 8] = *b"SPOOLCKP";
const CONFIG_MAGIC: [u8; 8] = *b"SPOOLCCF";

fn store_options() -> Options {
    options().consumer_journal_bytes(JOURNAL_BYTES)
}

fn consumer_dir() -> PathBuf {
    Path::new("streams")
        .join(STREAM)
        .join("consumers")
        .join(CONSUMER)
}

struct ConsumerGolden {
    store: Golden,
    checkpoint: PathBuf,
    journal: PathBuf,
    generation: u64,
    journal_id: u64,
}

fn capture(root: &Path, rel: &Path, g: &mut Golden) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .expect("list golden store")
        .map(|e| e.expect("list golden store"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        let ty = e.file_type().expect("file type");
        if ty.is_dir() {
            g.dirs.push(rel.clone());
            capture(root, &rel, g);
        } else if ty.is_file() && e.file_name() != "LOCK" {
            let bytes = std::fs::read(root.join(&rel)).expect("read golden file");
            g.files.push((rel, bytes));
        }
    }
}

fn golden() -> &'static ConsumerGolden {
    static G: OnceLock<ConsumerGolden> = OnceLock::new();
    G.get_or_init(|| {
        let dir = scratch_dir();
        let messages: Vec<Expected> = (0..MESSAGES).map(|i| golden_message(i, false)).collect();
        {
            let store = Store::open(dir.path(), store_options()).expect("open a new store");
            let s = store.stream(STREAM).expect("create stream");
            for m in &messages {
                let mut msg = Message::new(&m.payload);
                for (k, v) in &m.headers {
                    msg = msg.header(k, v);
                }
                assert_eq!(s.send_message(msg).expect("send"), m.offset);
            }
            let c = s.consumer(CONSUMER).expect("consumer");
            let mut ds: Vec<_> = (0..6)
                .map(|_| c.try_receive().expect("receive").expect("message"))
                .collect();
            let d5 = ds.pop().expect("5");
            let d4 = ds.pop().expect("4");
            let d3 = ds.pop().expect("3");
            let d2 = ds.pop().expect("2");
            let d1 = ds.pop().expect("1");
            let d0 = ds.pop().expect("0");
            d0.ack().expect("ack");
            d1.ack().expect("ack");
            d3.ack().expect("ack");
            d2.nack().expect("nack");
            let again = c.try_receive().expect("receive").expect("redelivery");
            assert_eq!(again.attempt(), 2);
            d5.ack().expect("ack");
            // Two more acknowledged with one batch ack: the journal is of
            // version 2 and holds an acknowledged set.
            let d6 = c.try_receive().expect("receive").expect("6");
            let d7 = c.try_receive().expect("receive").expect("7");
            c.ack_batch([d7, d6]).expect("batch ack");
            // Two new ones at once: a delivered range (8..=9) in the
            // version 2 journal.
            let fresh = c.receive_batch(2, Duration::ZERO).expect("batch receive");
            assert_eq!(fresh.iter().map(|d| d.offset()).collect::<Vec<_>>(), [8, 9]);
            drop((again, d4, fresh));
            store.sync().expect("sync");
            // Dropped without reopening: the journal holds the records.
        }
        let mut g = Golden {
            dirs: Vec::new(),
            files: Vec::new(),
            messages,
        };
        capture(dir.path(), Path::new(""), &mut g);
        let cdir = consumer_dir();
        let checkpoint = cdir.join("checkpoint");
        let journal = g
            .files
            .iter()
            .map(|(p, _)| p.clone())
            .find(|p| {
                p.parent() == Some(cdir.as_path())
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("journal."))
            })
            .expect("golden journal");
        let jbytes = g
            .file(journal.to_str().expect("utf-8"))
            .expect("journal bytes");
        let h = JournalHeader::decode(jbytes).expect("golden journal header");
        let (_, records) = journal::decode_all(jbytes).expect("golden journal");
        let range = Record::Entry(Entry::DeliveredRange {
            bucket: 0,
            first: 8,
            count: 2,
        });
        assert!(
            records.iter().any(|(_, r)| *r == range),
            "the golden journal holds the range: {records:?}"
        );
        ConsumerGolden {
            store: g,
            checkpoint,
            journal,
            generation: h.generation,
            journal_id: h.journal_id,
        }
    })
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An offset from the input: small and near the real ones, or any `u64`.
fn offset(r: &mut Reader<'_>, wide: bool) -> u64 {
    if wide {
        r.u64()
    } else {
        u64::from(r.u8() % 32)
    }
}

/// A checkpoint body built field by field (postcard of `CheckpointBody`).
fn structured_checkpoint(g: &ConsumerGolden, mode: u8, version: u32, r: &mut Reader<'_>) -> Vec<u8> {
    let wide = mode & 0x02 != 0;
    let mut b = Vec::new();
    let generation = if mode & 0x04 == 0 {
        g.generation
    } else {
        u64::from(r.u8())
    };
    varint(generation, &mut b);
    let buckets = if mode & 0x08 == 0 { 1 } else { r.u8() % 3 };
    varint(u64::from(buckets), &mut b);
    for _ in 0..buckets {
        varint(offset(r, wide), &mut b);
        varint(offset(r, wide), &mut b);
        let n = r.u8() % 6;
        varint(u64::from(n), &mut b);
        for _ in 0..n {
            varint(offset(r, wide), &mut b);
        }
        let n = r.u8() % 6;
        varint(u64::from(n), &mut b);
        for _ in 0..n {
            varint(offset(r, wide), &mut b);
            varint(u64::from(r.u32()), &mut b);
        }
    }
    // Version 3 counts expired messages too.
    for _ in 0..if version >= 3 { 4 } else { 3 } {
        varint(u64::from(r.u16()), &mut b);
    }
    // Trailing bytes, if any are left, are part of the body too.
    if mode & 0x10 != 0 {
        b.extend_from_slice(r.rest());
    }
    b
}

/// Journal records with valid CRCs, built from the input.
fn forged_records(g: &ConsumerGolden, mode: u8, id: u64, r: &mut Reader<'_>) -> Vec<u8> {
    let wide = mode & 0x02 != 0;
    let mut out = Vec::new();
    while !r.is_empty() {
        let kind = r.u8();
        let bucket = if mode & 0x08 == 0 { 0 } else { r.u8() % 3 };
        let off = offset(r, wide);
        let e = match kind % 8 {
            0 => Entry::Delivered {
                bucket,
                offset: off,
                attempt: u32::from(r.u8() % 5),
            },
            1 => Entry::Acked {
                bucket,
                offset: off,
            },
            2 => Entry::AckedUpTo {
                bucket,
                offset: off,
            },
            3 => Entry::DeadLettered {
                bucket,
                offset: off,
            },
            4 => {
                // An acknowledged set (a record of version 2 journals).
                let n = r.u8() % 40;
                let mut positions = vec![(bucket, off)];
                for _ in 0..n {
                    let bucket = if mode & 0x08 == 0 { 0 } else { r.u8() % 3 };
                    positions.push((bucket, offset(r, wide)));
                }
                let set = AckSet::from_positions(positions);
                let mut b = vec![0u8; journal::ack_set_record_bytes(&set)];
                journal::encode_ack_set(id, &set, &mut b);
                out.extend_from_slice(&b);
                continue;
            }
            7 => Entry::Expired {
                // An expiry (a record of version 3 journals).
                bucket,
                offset: off,
            },
            6 => {
                // A delivered range (a record of version 2 journals): a few
                // offsets, or (wide) any number that does not pass u64::MAX.
                let first = off.min(u64::MAX - 1);
                let count = if wide {
                    r.u64().clamp(2, (u64::MAX - first).saturating_add(1))
                } else {
                    2 + u64::from(r.u8() % 16)
                };
                Entry::DeliveredRange {
                    bucket,
                    first,
                    count,
                }
            }
            _ => {
                // Any bytes, with the CRC made right.
                let mut b = [0u8; 24];
                let src = r.bytes(20);
                b[4..4 + src.len()].copy_from_slice(src);
                let mut h = crc32fast::Hasher::new();
                h.update(&id.to_le_bytes());
                h.update(&b[4..]);
                b[..4].copy_from_slice(&h.finalize().to_le_bytes());
                out.extend_from_slice(&b);
                continue;
            }
        };
        out.extend_from_slice(&journal::encode(id, &e));
    }
    let _ = g;
    out
}

fn edit(root: &Path, g: &ConsumerGolden, kind: u8, mode: u8, data: &[u8]) {
    let ckpt = root.join(&g.checkpoint);
    let jpath = root.join(&g.journal);
    let mut r = Reader::new(data);
    match kind % 8 {
        0 => std::fs::write(&ckpt, data).expect("write checkpoint"),
        1 => {
            // Versions 1 to 3 are known; 4 is not.
            let version = match mode >> 6 {
                3 => 4,
                2 => 3,
                1 => 2,
                _ => 1,
            };
            std::fs::write(&ckpt, meta::encode(CHECKPOINT_MAGIC, version, data))
                .expect("write checkpoint");
        }
        2 => {
            let version = match (mode & 0x20 != 0, mode & 0x40 != 0) {
                (false, false) => 1,
                (true, false) => 2,
                _ => 3,
            };
            let body = structured_checkpoint(g, mode, version, &mut r);
            std::fs::write(&ckpt, meta::encode(CHECKPOINT_MAGIC, version, &body))
                .expect("write checkpoint");
        }
        3 => {
            // Overwrite at a position, truncate, or extend the journal.
            let mut file = std::fs::read(&jpath).unwrap_or_default();
            let pos = r.u16() as usize % (file.len() + 1);
            match mode % 3 {
                0 => file.truncate(pos),
                1 => {
                    let bytes = r.rest();
                    let end = pos + bytes.len();
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    file[pos..end].copy_from_slice(bytes);
                }
                _ => file.extend_from_slice(r.rest()),
            }
            std::fs::write(&jpath, file).expect("write journal");
        }
        4 => {
            // A journal with a valid header (the real one, or another
            // generation or id) and records with valid CRCs.
            let id = if mode & 0x40 == 0 {
                g.journal_id
            } else {
                r.u64()
            };
            let generation = if mode & 0x20 == 0 {
                g.generation
            } else {
                u64::from(r.u8())
            };
            let version = match (mode & 0x10 != 0, mode & 0x04 != 0) {
                (true, _) => 1,
                (false, false) => 2,
                (false, true) => 3,
            };
            let mut file = JournalHeader {
                journal_id: id,
                generation,
                version,
            }
            .encode()
            .to_vec();
            if mode & 0x80 != 0 {
                // Keep the real records first.
                let real = g
                    .store
                    .file(g.journal.to_str().expect("utf-8"))
                    .expect("journal");
                let used = real[JOURNAL_HEADER_BYTES..]
                    .chunks_exact(24)
                    .take_while(|c| c.iter().any(|&b| b != 0))
                    .count();
                file.extend_from_slice(
                    &real[JOURNAL_HEADER_BYTES..JOURNAL_HEADER_BYTES + used * 24],
                );
            }
            file.extend_from_slice(&forged_records(g, mode, id, &mut r));
            if mode & 0x01 != 0 {
                file.resize(JOURNAL_BYTES as usize, 0);
            }
            std::fs::write(&jpath, file).expect("write journal");
        }
        5 => match mode % 4 {
            0 => {
                let _ = std::fs::remove_file(&ckpt);
            }
            1 => {
                let _ = std::fs::remove_file(&jpath);
            }
            2 => {
                // A stale journal of another generation beside the real one.
                let g2 = u64::from(r.u8());
                let name = format!("journal.{g2:020}");
                std::fs::write(root.join(consumer_dir()).join(name), r.rest())
                    .expect("write stale journal");
            }
            _ => {
                // A leftover temporary file.
                std::fs::write(root.join(consumer_dir()).join(".checkpoint.tmp"), data)
                    .expect("write tmp");
            }
        },
        6 => {
            let cfg = root.join(consumer_dir()).join("config.meta");
            let bytes = if mode & 1 == 0 {
                data.to_vec()
            } else {
                meta::encode(CONFIG_MAGIC, 1, data)
            };
            std::fs::write(cfg, bytes).expect("write config");
        }
        _ => {
            // Flip bits of the real checkpoint's body, keeping a valid frame.
            let real = g
                .store
                .file(g.checkpoint.to_str().expect("utf-8"))
                .expect("checkpoint");
            let mut body = real[24..].to_vec();
            while !r.is_empty() && !body.is_empty() {
                let i = r.u8() as usize % body.len();
                body[i] ^= r.u8();
            }
            std::fs::write(&ckpt, meta::encode(CHECKPOINT_MAGIC, 1, &body))
                .expect("write checkpoint");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = golden();
    let dir = scratch_dir();
    g.store.materialize(dir.path());
    let mut r = Reader::new(data);
    for _ in 0..EDITS_MAX {
        if r.is_empty() {
            break;
        }
        let kind = r.u8();
        let mode = r.u8();
        let bytes = r.chunk();
        edit(dir.path(), g, kind, mode, bytes);
    }
    let store = match Store::open(dir.path(), store_options()) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = store.recovery_report().to_string();
    let s = match store.stream(STREAM) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let c = match s.consumer(CONSUMER) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let stats = c.stats();
    for b in &stats.buckets {
        assert!(b.ack_floor <= b.end_offset, "floor past the end: {stats:?}");
        assert!(
            b.next_offset <= b.end_offset,
            "next past the end: {stats:?}"
        );
    }
    // Drain: everything not yet acknowledged comes out, each message is the
    // one sent at its offset.
    let mut seen = 0u64;
    loop {
        let d = match c.try_receive() {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        };
        assert_eq!(d.priority(), 0);
        let off = d.offset();
        let want = g
            .store
            .messages
            .get(off as usize)
            .unwrap_or_else(|| panic!("delivered offset {off}, only {MESSAGES} were sent"));
        assert_eq!(d.payload(), &want.payload[..], "payload at offset {off}");
        let headers: Vec<(String, Vec<u8>)> = d
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(headers, want.headers, "headers at offset {off}");
        assert!(d.attempt() >= 1);
        if let Err(e) = d.ack() {
            let _ = e.to_string();
            break;
        }
        seen += 1;
        assert!(seen <= MESSAGES, "more deliveries than messages");
    }
    if let Err(e) = store.close() {
        let _ = e.to_string();
    }
});
