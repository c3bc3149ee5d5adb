//! Goal: `segment-tool verify` finds every kind of damage (a flipped byte in a
//! sealed segment, a torn tail, a missing index, a changed blob, a consumer
//! floor past the end, an orphan blob), names the file and byte position,
//! exits 1 then and 0 on a clean store, and never panics on files truncated
//! anywhere. Method: build stores with the spool API, damage them with
//! std::fs, run the real binary in both formats.

mod common;
use common::*;
use std::fs;

fn mentions(problems: &[serde_json::Value], file: &std::path::Path) -> Vec<serde_json::Value> {
    problems
        .iter()
        .filter(|p| p["file"].as_str() == file.to_str())
        .cloned()
        .collect()
}

#[test]
fn a_clean_store_verifies_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 0, "{problems:?}");
    let o = tool(&["verify", s(dir.path())]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("0 problems"), "{}", stdout(&o));
    assert!(
        o.stderr.is_empty(),
        "no progress when stderr is not a terminal"
    );
}

#[test]
fn a_flipped_byte_in_a_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let segs = segments(&bucket(dir.path(), "s", 0));
    assert!(segs.len() > 2);
    let mut b = fs::read(&segs[1]).unwrap();
    b[1024 + 500] ^= 1;
    fs::write(&segs[1], b).unwrap();
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1);
    let p = mentions(&problems, &segs[1]);
    assert!(!p.is_empty(), "{problems:?}");
    assert!(p[0]["position"].as_u64().is_some());
    let o = tool(&["verify", s(dir.path())]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains(segs[1].to_str().unwrap()));
}

#[test]
fn a_torn_tail_a_missing_index_a_changed_blob_and_a_floor_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    {
        let store = open_store(dir.path(), opts());
        let st = store.stream("s").unwrap();
        let c = st.consumer("c").unwrap();
        while let Some(d) = c.try_receive().unwrap() {
            d.ack().unwrap();
        }
        store.close().unwrap();
    }
    let (tail_seg, tail_pos) = torn_tail(dir.path());
    let segs = segments(&bucket(dir.path(), "s", 0));
    let idx = segs[0].with_extension("idx");
    fs::remove_file(&idx).unwrap();
    let blob_dir = dir.path().join("blobs");
    let blob = fs::read_dir(&blob_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "tmp")
        .flat_map(|e| fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.path())
        .next()
        .expect("a blob");
    let mut b = fs::read(&blob).unwrap();
    b[10] ^= 0xff;
    fs::write(&blob, b).unwrap();
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1);
    let t = mentions(&problems, &tail_seg);
    assert!(
        t.iter().any(|p| p["position"].as_u64() == Some(tail_pos)),
        "{problems:?}"
    );
    assert!(!mentions(&problems, &idx).is_empty(), "{problems:?}");
    assert!(!mentions(&problems, &blob).is_empty(), "{problems:?}");

    // A hand-written checkpoint of a consumer of `b` (1 message) whose
    // floor is 100: past the end of the log.
    let cdir = dir.path().join("streams/b/consumers/c");
    fs::create_dir_all(&cdir).unwrap();
    fs::copy(
        dir.path().join("streams/s/consumers/c/config.meta"),
        cdir.join("config.meta"),
    )
    .unwrap();
    fs::write(cdir.join("checkpoint"), checkpoint(100)).unwrap();
    let (_, problems) = verify_problems(dir.path());
    assert!(
        !mentions(&problems, &cdir.join("checkpoint")).is_empty(),
        "{problems:?}"
    );
}

#[test]
fn an_orphan_blob_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let hash = blake3::hash(b"nobody");
    let hex = hash.to_hex().to_string();
    let sub = dir.path().join("blobs").join(&hex[..2]);
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join(&hex), b"nobody").unwrap();
    let (c, problems) = verify_problems(dir.path());
    assert_eq!(c, 1);
    let p = mentions(&problems, &sub.join(&hex));
    assert_eq!(p[0]["warning"], true, "{problems:?}");
}

#[test]
fn truncated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path(), opts().segment_bytes_max(64 * 1024));
        let st = store.stream("s").unwrap();
        for i in 0..20u32 {
            st.send(format!("m{i}").as_bytes()).unwrap();
        }
        let c = st.consumer("c").unwrap();
        c.try_receive().unwrap().unwrap().ack().unwrap();
        store.close().unwrap();
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "LOCK" {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in &files {
        let original = fs::read(f).unwrap();
        // Every byte of the first 1.2 KiB (headers, first records), then a
        // sparse sample of the rest.
        let mut cuts: Vec<usize> = (0..original.len().min(1200)).step_by(7).collect();
        cuts.extend((1200..original.len()).step_by(4099));
        for cut in cuts {
            fs::write(f, &original[..cut]).unwrap();
            for cmd in ["info", "verify"] {
                let o = tool(&[cmd, s(dir.path())]);
                let c = code(&o);
                assert!(
                    (0..=2).contains(&c),
                    "{cmd} on {} cut at {cut}: {c}",
                    f.display()
                );
                assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
            }
        }
        fs::write(f, &original).unwrap();
    }
}
