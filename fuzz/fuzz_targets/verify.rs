//! The inspection behind `segment-tool verify` on arbitrary files: a fresh
//! store whose only segment (the active one of stream `s`) is the input, then
//! `inspect_store`, the blob checks and a repair plan (read-only). Never a
//! panic, and allocations stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::inspect::{self, repair};
use spool::{Options, Store};
use std::sync::OnceLock;

/// One store per process, created once; each input replaces its segment
/// (nothing here writes to the store, so runs do not affect each other).
fn store() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(Store::open(dir.path(), Options::default()).expect("open"));
        std::fs::create_dir_all(dir.path().join("streams/s/p0")).expect("bucket");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = store();
    let bucket = dir.path().join("streams/s/p0");
    std::fs::write(bucket.join("00000000000000000000.seg"), data).expect("write");
    if let Ok(info) = inspect::inspect_store(dir.path()) {
        let _ = inspect::check_blobs(&info);
    }
    let _ = repair::plan(dir.path(), None);
});
