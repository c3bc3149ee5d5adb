//! Whole-store open on fuzzed files. A real store (one stream, several sealed
//! segments with their `.idx` files) is copied into a fresh directory; the
//! input then replaces `store.meta`, `stream.meta` or the index of a sealed
//! segment with arbitrary bytes (raw, or framed with valid CRCs so that the
//! body is what gets tested), deletes an index, damages a sealed segment, or
//! writes a kept-ids file (`<base>.ids`, the index of a segment retention
//! deleted within the dedup window: raw bytes, or a forged index with ids).
//! Then `Store::open`, a read of everything from offset 0, and a send with
//! an id (which reads the kept ids into the window).
//!
//! Never a panic; every record returned is the one sent at its offset.
//!
//! Input: up to 4 edits, each `kind u8 | mode u8 | len u16 | len bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::format::index::{self, IndexHeader};
use spool::format::meta;
use spool::Store;
use spool_fuzz::{options, read_and_check, scratch_dir, sealed_golden, Golden, Reader};
use std::path::{Path, PathBuf};

const STORE_META: &str = "store.meta";
const STREAM_META: &str = "streams/s/stream.meta";
const EDITS_MAX: usize = 4;

fn framed(original: &[u8], mode: u8, body: &[u8]) -> Vec<u8> {
    let magic: [u8; 8] = original[..8].try_into().expect("golden meta has a magic");
    let version = match mode >> 4 {
        0..=12 => u32::from_le_bytes(
            original[8..12]
                .try_into()
                .expect("golden meta has a version"),
        ),
        n => n as u32 - 12,
    };
    let body = &body[..body.len().min(meta::META_BODY_BYTES_MAX)];
    meta::encode(magic, version, body)
}

/// An index with valid CRCs: the real header with fields the input chooses
/// to override, and positions and blob references from the input.
fn forged_index(original: &[u8], mode: u8, r: &mut Reader<'_>) -> Vec<u8> {
    let real = index::decode(original).expect("golden index decodes");
    let mut h: IndexHeader = real;
    if mode & 0x10 != 0 {
        h.segment_id = r.u64();
    }
    if mode & 0x20 != 0 {
        h.data_end = r.u32() as u64;
    }
    if mode & 0x40 != 0 {
        h.base_offset = r.u64();
    }
    if mode & 0x80 != 0 {
        h.bucket = r.u32();
    }
    let positions: Vec<u32> = if mode & 0x08 != 0 {
        // Keep the real positions, overwrite some.
        let mut p: Vec<u32> = (0..real.count)
            .map(|i| index::position(original, i))
            .collect();
        while !r.is_empty() && !p.is_empty() {
            let i = r.u8() as usize % p.len();
            p[i] = r.u32();
        }
        p
    } else {
        let n = r.u8() as usize;
        (0..n).map(|_| r.u32()).collect()
    };
    let refs: Vec<[u8; 32]> = (0..(mode & 3))
        .map(|_| {
            let mut b = [0u8; 32];
            let src = r.bytes(32);
            b[..src.len()].copy_from_slice(src);
            b
        })
        .collect();
    h.count = positions.len() as u64;
    h.blob_refs = refs.len() as u32;
    // Id entries from the input when asked (valid or not: a bad section
    // makes the index unusable, and it is rebuilt).
    let mut ids = Vec::new();
    if mode & 0x04 != 0 {
        for _ in 0..(r.u8() % 4) {
            let offset = h.base_offset.wrapping_add(r.u8() as u64);
            let timestamp_us = r.u64();
            let len = (r.u8() as usize % 8).max(1);
            ids.push(index::IdEntry {
                offset,
                timestamp_us,
                id: r.bytes(len),
            });
        }
        ids.retain(|e| !e.id.is_empty());
    }
    h.ids = ids.len() as u32;
    index::encode(&h, &positions, &refs, &ids)
}

fn edit(root: &Path, g: &Golden, kind: u8, mode: u8, data: &[u8]) {
    let idx = g.bucket_files("idx");
    let segs = g.bucket_files("seg");
    let pick = |v: &[PathBuf]| v[mode as usize % v.len()].clone();
    let mut r = Reader::new(data);
    match kind % 7 {
        6 => {
            // A kept-ids file beside a segment's index, raw or forged.
            let rel = pick(&idx).with_extension("ids");
            let bytes = if mode & 1 == 0 {
                data.to_vec()
            } else {
                let original = g
                    .file(pick(&idx).to_str().expect("utf-8 path"))
                    .expect("golden index");
                forged_index(original, mode | 0x04, &mut r)
            };
            std::fs::write(root.join(rel), bytes).expect("write kept ids");
        }
        k @ (0 | 1) => {
            let rel = [STORE_META, STREAM_META][k as usize];
            let original = g.file(rel).expect("golden meta file");
            let bytes = if mode & 1 == 0 {
                data.to_vec()
            } else {
                framed(original, mode, data)
            };
            std::fs::write(root.join(rel), bytes).expect("write meta");
        }
        2 => {
            std::fs::write(root.join(pick(&idx)), data).expect("write index");
        }
        3 => {
            let rel = pick(&idx);
            let original = g
                .file(rel.to_str().expect("utf-8 path"))
                .expect("golden index");
            let bytes = forged_index(original, mode, &mut r);
            std::fs::write(root.join(rel), bytes).expect("write index");
        }
        4 => {
            let _ = std::fs::remove_file(root.join(pick(&idx)));
        }
        _ => {
            // Damage a segment (sealed ones mostly): overwrite at a position
            // or truncate.
            let rel = pick(&segs);
            let path = root.join(&rel);
            let mut file = std::fs::read(&path).expect("read segment");
            let pos = r.u32() as usize % (file.len() + 1);
            if mode & 0x80 != 0 {
                file.truncate(pos);
            } else {
                let bytes = r.rest();
                let end = pos + bytes.len();
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[pos..end].copy_from_slice(bytes);
            }
            std::fs::write(path, file).expect("write segment");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = sealed_golden();
    let dir = scratch_dir();
    g.materialize(dir.path());
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
    let store = match Store::open(dir.path(), options()) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = store.recovery_report().to_string();
    let _ = store.streams();
    let (_, err) = read_and_check(&store, &g.messages, &[]);
    if let Some(e) = err {
        let _ = e.to_string();
    }
    // The window's rebuild reads the kept ids (damaged ones are ignored).
    if let Ok(s) = store.stream(spool_fuzz::STREAM) {
        if let Err(e) = s.send_message(spool::Message::new(b"after").id("fuzz")) {
            let _ = e.to_string();
        }
    }
});
