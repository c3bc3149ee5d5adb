//! Goal: `Store::close` through the last handle leaves the store unlocked when
//! it returns, also while the background writeback thread is busy (it syncs
//! every `writeback_bytes` written with `Durability::Never`, holding the store
//! meanwhile), so a reopen right after never sees `Error::Locked`.
//!
//! Method: write enough through a small `writeback_bytes` that background syncs
//! are running, drop the stream, close the store, reopen at once and check
//! everything is there; many rounds. (This binary starts no child process: a
//! fork could hold a copy of the lock for a moment.)

use spool::{Durability, Options, Store};

#[test]
fn close_unlocks_at_once_while_writeback_runs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::default()
            .durability(Durability::Never)
            .writeback_bytes(64 << 10)
    };
    let payload = [5u8; 1000];
    let mut total = 0u64;
    for round in 0..60 {
        let store = Store::open(dir.path(), opts())
            .unwrap_or_else(|e| panic!("round {round}: reopen right after close: {e}"));
        let s = store.stream("s").unwrap();
        assert_eq!(s.stats().buckets[0].end_offset, total, "round {round}");
        for _ in 0..2_000 {
            s.send(&payload).unwrap();
        }
        total += 2_000;
        drop(s);
        store.close().unwrap();
    }
}
