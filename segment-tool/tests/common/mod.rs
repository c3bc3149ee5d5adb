//! Helpers shared by the command tests: run the binary, parse JSON Lines,
//! build and damage stores.
#![allow(dead_code)]

use serde_json::Value;
use spool::{Durability, Options, StreamConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args(args)
        .output()
        .expect("run segment-tool")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn json_records(o: &Output) -> Vec<(String, Value)> {
    stdout(o)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            assert_eq!(v.as_object().expect("object").len(), 2, "{line}");
            (
                v["type"].as_str().expect("type").to_string(),
                v["data"].clone(),
            )
        })
        .collect()
}

pub fn opts() -> Options {
    Options::default().durability(Durability::Never)
}

pub fn bucket(root: &Path, stream: &str, p: u8) -> PathBuf {
    root.join("streams").join(stream).join(format!("p{p}"))
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// A closed store: stream `s` with 300 messages of 400 bytes in several
/// 64 KiB segments, stream `b` with one 5000-byte claim-check payload.
pub fn store_with_segments(dir: &Path) {
    let store = open_store(dir, opts().segment_bytes_max(64 * 1024));
    let st = store.stream("s").expect("stream");
    for i in 0..300u32 {
        let mut body = format!("message {i} ").into_bytes();
        body.resize(400, b'.');
        st.send(&body).expect("send");
    }
    let b = store
        .create_stream("b", StreamConfig::default().claim_check_threshold(1000))
        .expect("create");
    b.send(&[42u8; 5000]).expect("send");
    store.close().expect("close");
}

/// The problems of a JSON `verify` run.
pub fn verify_problems(store: &Path) -> (i32, Vec<Value>) {
    let o = tool(&["verify", s(store), "--format", "json"]);
    let recs = json_records(&o);
    let problems = recs
        .iter()
        .filter(|(k, _)| k == "problem")
        .map(|(_, v)| v.clone())
        .collect();
    (code(&o), problems)
}

/// Writes `garbage` right after the data end of the active segment of
/// `s`/p0 (past its watermark): a torn tail. Returns the segment and the position.
pub fn torn_tail(root: &Path) -> (PathBuf, u64) {
    let o = tool(&["info", s(root), "--format", "json"]);
    let seg = json_records(&o)
        .into_iter()
        .filter(|(k, v)| k == "segment" && v["stream"] == "s" && !v["sealed"].as_bool().unwrap())
        .map(|(_, v)| v)
        .next()
        .expect("active segment");
    let path = PathBuf::from(seg["path"].as_str().unwrap());
    let end = seg["data_end"].as_u64().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[end as usize..end as usize + 100].fill(0xAB);
    std::fs::write(&path, bytes).unwrap();
    (path, end)
}

/// A checkpoint for consumer `c` of a 1-level stream whose floor is `floor`.
pub fn checkpoint(floor: u8) -> Vec<u8> {
    assert!(floor < 128);
    // postcard: generation, buckets [floor, next, acked [], attempts []],
    // redelivered, dead_lettered, skipped.
    let body = [1u8, 1, floor, floor, 0, 0, 0, 0, 0];
    spool::format::meta::encode(*b"SPOOLCKP", 1, &body)
}

/// Opens a store, retrying briefly on `Locked`: other tests in this process
/// spawn the tool, and between fork and exec a child holds copies of every
/// descriptor (the lock's too) for a moment.
pub fn open_store(path: &std::path::Path, opts: spool::Options) -> spool::Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match spool::Store::open(path, opts.clone()) {
            Ok(s) => return s,
            Err(spool::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }
}
