//! Claim check: a payload above the stream's `claim_check_threshold` is
//! stored once as a content-addressed blob file (named by its BLAKE3 hash),
//! and the message carries only the reference. Readers get the payload
//! transparently, checked against its hash. `send_reader` streams a payload
//! of any size from a file with bounded memory; `open_payload` streams it
//! back out.
//!
//! ```text
//! cargo run --release --example claim_check               # on a temporary store
//! cargo run --release --example claim_check -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Message, Options, Store, StreamConfig};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);

    let store = Store::open(&dir, Options::default())?;
    check(
        store.streams().is_empty(),
        "the store is new (give a new directory)",
    )?;
    // Payloads over 64 KiB go to blobs (the default threshold is 256 KiB).
    let files = store.create_stream(
        "files",
        StreamConfig::default().claim_check_threshold(64 << 10),
    )?;

    // 1. A small payload stays in the log.
    let note = files.send(b"small note")?;
    check(
        files.read(note)?.ok_or("missing")?.claim_check().is_none(),
        "inline",
    )?;
    println!("#{note} \"small note\": 10 bytes, in the log");

    // 2. A 1 MiB payload becomes a blob; sent twice, it is still stored once.
    let scan: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let a = files.send_message(Message::new(&scan).header("name", "scan.tiff"))?;
    let b = files.send_message(Message::new(&scan).header("name", "scan-copy.tiff"))?;
    let ra = files.read(a)?.ok_or("missing")?;
    let rb = files.read(b)?.ok_or("missing")?;
    let cc = ra
        .claim_check()
        .ok_or("check failed: a 1 MiB payload is a claim check")?;
    check(
        rb.claim_check() == Some(cc),
        "both messages refer to one blob",
    )?;
    check(
        cc.hash == *blake3::hash(&scan).as_bytes(),
        "named by its BLAKE3 hash",
    )?;
    check(
        ra.payload() == &scan[..] && rb.payload() == &scan[..],
        "read back as sent",
    )?;
    println!(
        "#{a} and #{b}: {} bytes each, one blob {}..",
        cc.len,
        &cc.hex()[..16]
    );
    check(blob_files(store.path())? == 1, "one blob file")?;

    // 3. From a file: `send_reader` streams it into a blob (the message's own payload
    //    stays empty; it gives the headers).
    let mut backup = tempfile::tempfile()?;
    for i in 0..5u8 {
        backup.write_all(&vec![i; 1 << 20])?;
    }
    backup.rewind()?;
    let c = files.send_reader(&mut backup, Message::default().header("name", "backup.tar"))?;
    println!("#{c} \"backup.tar\": sent from a 5 MiB file");
    check(blob_files(store.path())? == 2, "two blob files")?;

    // 4. A consumer receives the references like any message and streams each
    //    payload out (here into a hasher) without copying it into memory.
    let archiver = files.consumer("archiver")?;
    let mut got = Vec::new();
    while let Some(d) = archiver.receive(Duration::from_millis(100))? {
        let name = String::from_utf8_lossy(d.header("name").unwrap_or(b"(note)")).into_owned();
        let mut hasher = blake3::Hasher::new();
        let bytes = std::io::copy(&mut d.open_payload(), &mut hasher)?;
        if let Some(cc) = d.claim_check() {
            check(
                *hasher.finalize().as_bytes() == cc.hash && bytes == cc.len,
                "intact",
            )?;
        }
        println!("archiver got #{} {name:?}: {bytes} bytes", d.offset());
        got.push((name, bytes));
        d.ack()?;
    }
    let want = [
        ("(note)", 10),
        ("scan.tiff", 1 << 20),
        ("scan-copy.tiff", 1 << 20),
        ("backup.tar", 5 << 20),
    ];
    check(
        got.iter().map(|(n, b)| (n.as_str(), *b)).eq(want),
        "every message, with its whole payload",
    )?;
    Ok(())
}

/// Blob files in the store: `blobs/<2 hex digits>/<64 hex digits>`.
fn blob_files(store: &Path) -> Result<usize> {
    let mut n = 0;
    for shard in std::fs::read_dir(store.join("blobs"))? {
        let shard = shard?;
        if shard.file_name().len() == 2 {
            n += std::fs::read_dir(shard.path())?.count();
        }
    }
    Ok(n)
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
