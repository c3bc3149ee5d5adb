//! Goal: `segment-tool dump` shows messages with filters in both formats, one
//! segment with byte positions, and claim-check blobs with their hash check.
//! Method: a store built with the spool API, the real binary.

mod common;
use common::*;

#[test]
fn filters_formats_segments_and_blobs() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let o = tool(&[
        "dump",
        s(dir.path()),
        "s",
        "--from",
        "5",
        "--limit",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    let r = json_records(&o);
    let offs: Vec<u64> = r
        .iter()
        .filter(|(k, _)| k == "message")
        .map(|(_, v)| v["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, vec![5, 6, 7]);
    let o = tool(&["dump", s(dir.path()), "s", "--grep", "message 42 "]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("#42 "), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 messages"));
    let o = tool(&[
        "dump",
        s(dir.path()),
        "s",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "1",
        "--payload",
        "hex",
    ]);
    assert!(stdout(&o).contains("0 messages"));
    let o = tool(&[
        "dump",
        s(dir.path()),
        "b",
        "--format",
        "json",
        "--payload",
        "base64",
    ]);
    assert_eq!(code(&o), 0);
    let r = json_records(&o);
    let m = &r[0].1;
    assert_eq!(m["claim_check"]["status"], "valid", "{m}");
    assert_eq!(m["claim_check"]["length"], 5000);
    let o = tool(&["dump", s(dir.path()), "b", "--max-blob-bytes", "100"]);
    assert!(stdout(&o).contains("too_large"));
    let seg = &segments(&bucket(dir.path(), "s", 0))[0];
    let o = tool(&["dump", "--segment", s(seg), "--limit", "2"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("@1024+"), "{}", stdout(&o));
    let o = tool(&["dump", s(dir.path()), "nope"]);
    assert_eq!(code(&o), 2);
}
