//! Goal: hostile store contents (reliability matrix S1) are typed errors,
//! never followed or parsed: a symlink planted where a segment or a blob
//! should be, a FIFO as a blob (must not hang), a directory where a file
//! should be, traversal in names, and absurd length fields.
//!
//! Method: build a real store, plant the object, open and read.

pub mod common;

// Stores are opened with `open_retry`: tests here spawn `mkfifo`, which holds
// a just-closed store's lock for a moment.
use common::process::{make_fifo, open_retry};
use spool::{Durability, Error, Options, StreamConfig};
use std::path::Path;

fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

fn store_with_blob(dir: &Path) -> std::path::PathBuf {
    let store = open_retry(dir, opts()).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(10))
        .unwrap();
    s.send(b"this payload goes to a blob").unwrap();
    let cc = s.read(0).unwrap().unwrap().claim_check().unwrap();
    store.close().unwrap();
    dir.join("blobs").join(&cc.hex()[..2]).join(cc.hex())
}

#[test]
fn a_symlinked_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_retry(dir.path(), opts()).unwrap();
        store.stream("s").unwrap().send(b"x").unwrap();
    }
    let seg = dir.path().join("streams/s/p0/00000000000000000000.seg");
    let elsewhere = dir.path().join("elsewhere.seg");
    std::fs::rename(&seg, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &seg).unwrap();
    // Not followed, and not silently skipped (the log would lose its data
    // from view): a typed error naming the file.
    match open_retry(dir.path(), opts()) {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, seg),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(elsewhere.exists(), "the link target was not touched");
}

#[test]
fn a_symlinked_or_fifo_blob_is_refused_without_hanging() {
    for kind in ["symlink", "fifo"] {
        let dir = tempfile::tempdir().unwrap();
        let blob = store_with_blob(dir.path());
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"this payload goes to a blob").unwrap();
        std::fs::remove_file(&blob).unwrap();
        if kind == "symlink" {
            std::os::unix::fs::symlink(&secret, &blob).unwrap();
        } else {
            make_fifo(&blob);
        }
        let store = open_retry(dir.path(), opts()).unwrap();
        let s = store.stream("s").unwrap();
        match s.read(0) {
            Err(Error::Io { .. }) | Err(Error::Corrupt { .. }) => {}
            other => panic!("{kind}: expected a typed error, got {other:?}"),
        }
    }
}

#[test]
fn a_directory_where_a_file_should_be() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_retry(dir.path(), opts()).unwrap();
        store.stream("s").unwrap().send(b"x").unwrap();
    }
    let meta = dir.path().join("streams/s/stream.meta");
    std::fs::remove_file(&meta).unwrap();
    std::fs::create_dir(&meta).unwrap();
    assert!(matches!(
        open_retry(dir.path(), opts()),
        Err(Error::Io { .. }) | Err(Error::Corrupt { .. })
    ));
}

#[test]
fn traversal_in_names_never_leaves_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_retry(dir.path().join("store"), opts()).unwrap();
    for name in ["../escape", "..", "a/../../b", "/etc", "x\0y", ".hidden"] {
        assert!(
            matches!(store.stream(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
        let s = store.stream("ok").unwrap();
        assert!(
            matches!(s.consumer(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
        assert!(matches!(
            s.send_request(spool::Message::new(b"x"), name),
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn absurd_length_fields_are_rejected_before_use() {
    use spool::format::record::{decode, DecodeError};
    let mut rec = vec![0u8; 64];
    rec[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode(&rec, 1, 1 << 20, None),
        Err(DecodeError::BadLength(u32::MAX))
    );
    // A framed file claiming a 4 GiB body.
    let mut meta = spool::format::meta::encode(*b"SPOOLMTA", 1, b"x");
    meta[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(spool::format::meta::decode(*b"SPOOLMTA", &meta).is_err());
}
