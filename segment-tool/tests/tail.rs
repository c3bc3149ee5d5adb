//! Goal: `segment-tool tail` prints the last N messages, and with -f the new
//! ones as they are sent. Method: the real binary beside a live store.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn last_n_and_follow() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path());
    let o = tool(&["tail", s(dir.path()), "s", "-n", "3", "--format", "json"]);
    assert_eq!(code(&o), 0);
    let offs: Vec<u64> = json_records(&o)
        .iter()
        .map(|(_, v)| v["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, vec![297, 298, 299]);
    let o = tool(&["tail", s(dir.path()), "s", "-n", "1"]);
    assert!(stdout(&o).contains("#299 "));

    let store = open_store(dir.path(), opts());
    let st = store.stream("s").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_segment-tool"))
        .args([
            "tail",
            "-f",
            s(dir.path()),
            "s",
            "-n",
            "0",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..200 {
        st.send(&[b'x'; 400]).unwrap();
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0;
    for _ in 0..200 {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        last = v["data"]["offset"].as_u64().unwrap();
    }
    assert_eq!(last, 499, "followed across segment rolls");
    child.kill().unwrap();
    child.wait().unwrap();
}
