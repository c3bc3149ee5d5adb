//! Goal: `segment-tool repair` fixes what it may (torn tail, missing index,
//! orphan blob) so that verify exits 0, changes nothing with --dry-run,
//! refuses damage to acknowledged data without --force-truncate-at, refuses
//! forcing anywhere but a bucket's last segment, and refuses a store in use.
//! Method: damage stores with std::fs, run the real binary.

mod common;
use common::*;
use std::fs;

#[test]
fn fixes_a_torn_tail_a_missing_index_and_an_orphan_blob() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let (seg, pos) = torn_tail(dir.path());
    let segs = segments(&bucket(dir.path(), "s", 0));
    let idx = segs[0].with_extension("idx");
    fs::remove_file(&idx).unwrap();
    let before = fs::read(&seg).unwrap();
    let o = tool(&["repair", s(dir.path()), "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("would do"));
    assert_eq!(fs::read(&seg).unwrap(), before, "dry run changes nothing");
    assert!(!idx.exists());
    let o = tool(&["repair", s(dir.path()), "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(json_records(&o).iter().any(|(k, _)| k == "action"));
    assert!(idx.exists());
    let q = bucket(dir.path(), "s", 0).join("quarantine");
    let names: Vec<String> = fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains(&format!("-{pos:010}-"))),
        "{names:?}"
    );
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");
}

#[test]
fn refuses_acknowledged_damage_and_forces_only_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let segs = segments(&bucket(dir.path(), "s", 0));
    let mut b = fs::read(&segs[0]).unwrap();
    b[1024 + 8] ^= 1;
    fs::write(&segs[0], &b).unwrap();
    let o = tool(&["repair", s(dir.path())]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("not repaired"));
    assert_eq!(fs::read(&segs[0]).unwrap(), b, "never touched");
    let arg = format!("{}:1024", s(&segs[0]));
    let o = tool(&["repair", s(dir.path()), "--force-truncate-at", &arg]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not the last segment"));
    b[1024 + 8] ^= 1;
    fs::write(&segs[0], &b).unwrap();

    // Damage below the watermark of the active segment: forced at the record.
    let last = segs.last().unwrap();
    let mut b = fs::read(last).unwrap();
    b[1024 + 8] ^= 1;
    fs::write(last, &b).unwrap();
    let o = tool(&["repair", s(dir.path())]);
    assert_eq!(code(&o), 1);
    let arg = format!("{}:1024", s(last));
    let o = tool(&["repair", s(dir.path()), "--force-truncate-at", &arg]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");
}

#[test]
fn a_store_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let store = open_store(dir.path(), opts());
    let o = tool(&["repair", s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("store is in use"));
    drop(store);
}
