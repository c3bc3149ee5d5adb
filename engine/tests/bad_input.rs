//! Goal: bad input gets a clear typed error, never a panic, and nothing
//! already stored is lost: oversized messages, bad names, bad priorities and
//! headers, stray files in the store, damaged or truncated files, a full disk.
//!
//! Method: one behaviour per test, each on a fresh store (real or simulated
//! file system), checking the error variant and that earlier data still reads.

pub mod common;

use common::{process::make_fifo, sim, temp_store};
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Message, Options, Store, StreamConfig};

fn sim_opts(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Always).allocation_chunk_bytes(4096)
}

#[test]
fn oversized_message_is_refused_and_nothing_is_written() {
    let (_dir, store) = temp_store(Options::default().message_bytes_max(1000));
    let s = store.stream("s").unwrap();
    s.send(b"before").unwrap();
    let big = vec![1u8; 1001];
    assert!(matches!(
        s.send(&big),
        Err(Error::MessageTooLarge {
            bytes: 1001,
            limit: 1000
        })
    ));
    let batch = [&b"ok"[..], &big[..]];
    assert!(matches!(
        s.send_batch(batch),
        Err(Error::MessageTooLarge { .. })
    ));
    assert_eq!(
        s.stats().buckets[0].end_offset,
        1,
        "nothing of the batch was written"
    );
    assert_eq!(s.send(b"after").unwrap(), 1);
}

#[test]
fn bad_names_priorities_headers_and_configs_are_typed_errors() {
    let (dir, store) = temp_store(Options::default());
    for name in [
        "",
        "..",
        "../x",
        "a/b",
        ".hidden",
        "nul\0",
        &"x".repeat(129),
    ] {
        assert!(
            matches!(store.stream(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
    }
    let p = store
        .create_stream("p", StreamConfig::default().priorities(2))
        .unwrap();
    assert!(matches!(
        p.send_message(Message::new(b"x").priority(2)),
        Err(Error::InvalidPriority {
            priority: 2,
            priorities: 2
        })
    ));
    assert!(matches!(
        p.send_message(Message::new(b"x").header("", "v")),
        Err(Error::InvalidHeaders { .. })
    ));
    assert!(matches!(
        store.create_stream("p", StreamConfig::default()),
        Err(Error::StreamExists { .. })
    ));
    assert!(matches!(
        store.create_stream("q", StreamConfig::default().priorities(17)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Store::open(
            dir.path().join("other"),
            Options::default().segment_bytes_max(1000)
        ),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Store::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn stray_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        store.stream("s").unwrap().send(b"kept").unwrap();
    }
    let root = dir.path();
    std::fs::write(root.join(".DS_Store"), b"junk").unwrap();
    std::fs::write(root.join("streams/notes.txt"), b"junk").unwrap();
    std::fs::create_dir(root.join("streams/not a stream")).unwrap();
    std::fs::create_dir(root.join("streams/empty")).unwrap();
    std::fs::write(root.join("streams/s/p0/readme.tmp"), b"junk").unwrap();
    std::fs::write(root.join("streams/s/p0/123.seg"), b"junk").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("streams/s/p0/link")).unwrap();
    std::os::unix::fs::symlink("/tmp", root.join("streams/linkdir")).unwrap();
    let fifo = root.join("streams/s/p0/fifo");
    make_fifo(&fifo);
    let store = Store::open(root, Options::default()).unwrap();
    assert_eq!(store.streams(), vec!["s".to_string()]);
    let s = store.stream("s").unwrap();
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"kept");
    assert_eq!(s.send(b"more").unwrap(), 1);
}

#[test]
fn damage_in_a_sealed_segment_is_reported_with_file_and_position() {
    let fs = SimFs::new();
    {
        let store = Store::open("/d", sim_opts(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        while s.stats().buckets[0].segments < 3 {
            s.send(&[9u8; 500]).unwrap();
        }
    }
    let seg = std::path::Path::new("/d/streams/s/p0/00000000000000000000.seg");
    let mut bytes = fs.read_file(seg).unwrap();
    bytes[1024 + 40] ^= 0x40; // inside the first record's body
    fs.write_file(seg, &bytes).unwrap();
    let store = Store::open("/d", sim_opts(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    match s.read(0) {
        Err(Error::Corrupt { file, position, .. }) => {
            assert_eq!(file, seg);
            assert_eq!(position, 1024);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The rest of the segment and the other segments still read.
    assert_eq!(s.read(1).unwrap().unwrap().payload(), &[9u8; 500][..]);
    let end = s.stats().buckets[0].end_offset;
    assert_eq!(s.read(end - 1).unwrap().unwrap().payload(), &[9u8; 500][..]);
}

#[test]
fn damage_below_the_watermark_fails_open_with_file_and_position() {
    let fs = SimFs::new();
    {
        let store = Store::open("/d", sim_opts(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        for _ in 0..20 {
            s.send(&[1u8; 100]).unwrap();
        }
    }
    let seg = std::path::Path::new("/d/streams/s/p0/00000000000000000000.seg");
    let mut bytes = fs.read_file(seg).unwrap();
    bytes[1024 + 8] ^= 1; // the first record's offset field
    fs.write_file(seg, &bytes).unwrap();
    match Store::open("/d", sim_opts(&fs)) {
        Err(Error::Corrupt { file, position, .. }) => {
            assert_eq!(file, seg);
            assert_eq!(position, 1024);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn truncated_segments_give_typed_errors_or_recover() {
    let fs = SimFs::new();
    {
        let store = Store::open("/d", sim_opts(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        while s.stats().buckets[0].segments < 2 {
            s.send(&[3u8; 300]).unwrap();
        }
        s.send(b"tail").unwrap();
    }
    let image = fs.power_cut(CutMode::DropUnsynced);
    let files = image.files();
    for f in files.iter().filter(|f| {
        f.extension()
            .is_some_and(|e| e == "seg" || e == "idx" || e == "meta")
    }) {
        let full = image.read_file(f).unwrap();
        for cut in [
            0,
            1,
            7,
            63,
            64,
            600,
            1024,
            1100,
            full.len() / 2,
            full.len() - 1,
        ] {
            if cut >= full.len() {
                continue;
            }
            let fs2 = image.power_cut(CutMode::DropUnsynced);
            fs2.write_file(f, &full[..cut]).unwrap();
            // Must not panic; either opens (and reads without panicking) or
            // fails with a typed error.
            if let Ok(store) = Store::open("/d", sim_opts(&fs2)) {
                for name in store.streams() {
                    let s = store.stream(&name).unwrap();
                    for r in s.iter_from(0) {
                        if r.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn disk_full_is_an_error_and_sending_works_again_once_space_is_freed() {
    let fs = SimFs::new();
    let store = Store::open("/d", sim_opts(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    let used_now = 64 * 1024; // headroom for the files created so far
    fs.set_capacity(used_now * 3);
    let mut acked = Vec::new();
    let mut full = false;
    for i in 0..10_000u32 {
        match s.send(&i.to_le_bytes().repeat(50)) {
            Ok(o) => acked.push((o, i)),
            Err(Error::DiskFull { .. }) => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full, "the disk never filled up");
    assert!(fs.violations().is_empty(), "{:?}", fs.violations());
    fs.set_capacity(u64::MAX);
    let o = s.send(b"after").unwrap();
    assert_eq!(o, acked.len() as u64);
    for (o, i) in &acked {
        assert_eq!(
            s.read(*o).unwrap().unwrap().payload(),
            &i.to_le_bytes().repeat(50)[..]
        );
    }
    drop(s);
    drop(store);
    let store = Store::open("/d", sim_opts(&fs.power_cut(CutMode::DropUnsynced))).unwrap();
    let s = store.stream("s").unwrap();
    assert_eq!(s.stats().buckets[0].end_offset, acked.len() as u64 + 1);
}
