//! Goal: an active segment whose epoch is at its limit (a damaged header
//! with a valid checksum: one open raises the epoch by one, so nothing else
//! gets there) never wedges the store. It opens, its records read back, a
//! send works, and every later open, with or without sends in between,
//! works too: the first append starts a new segment (or replaces an empty
//! one) instead of raising the epoch further.
//!
//! Method: a store with 0 or 5 messages is closed; its active segment's
//! state block is rewritten with a valid checksum and an epoch around
//! `u32::MAX / 2` and at `u32::MAX`, marked closed cleanly or not. The
//! store is then opened four times, sending after the first, second and
//! fourth opens. The inspector warns about the worn epoch until it is gone,
//! and never calls the segment damaged.

use spool::format::segment::{
    SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET,
};
use spool::inspect;
use spool::{Durability, Options, Store};
use std::path::Path;

const SEGMENT: &str = "streams/s/p0/00000000000000000000.seg";

fn options() -> Options {
    Options::default()
        .segment_bytes_max(64 * 1024)
        .durability(Durability::Always)
}

fn forge_epoch(dir: &Path, epoch: u32, clean: bool) {
    let path = dir.join(SEGMENT);
    let mut file = std::fs::read(&path).unwrap();
    let header = SegmentHeader::decode(&file[..SEGMENT_HEADER_BYTES]).unwrap();
    let old = SegmentState::decode(
        header.segment_id,
        &file[STATE_OFFSET..STATE_OFFSET + STATE_BYTES],
    )
    .expect("the closed store's state block decodes");
    let state = SegmentState {
        epoch,
        synced_end: old.synced_end,
        clean,
    };
    file[STATE_OFFSET..STATE_OFFSET + STATE_BYTES]
        .copy_from_slice(&state.encode(header.segment_id));
    std::fs::write(&path, &file).unwrap();
}

fn worn_warnings(dir: &Path) -> usize {
    let info = inspect::inspect_store(dir).unwrap();
    let damaged: Vec<_> = info.problems.iter().filter(|p| !p.warning).collect();
    assert!(damaged.is_empty(), "{damaged:?}");
    info.problems
        .iter()
        .filter(|p| p.reason.contains("epoch at its limit"))
        .count()
}

fn payload(i: u64) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

/// Opens the store, checks every message sent so far, and sends `more`.
fn open_check_send(dir: &Path, sent: &mut u64, more: u64, case: &str) {
    let store = Store::open(dir, options()).unwrap_or_else(|e| panic!("{case}: open: {e}"));
    let s = store.stream("s").unwrap();
    let all: Vec<_> = s.iter_from(0).map(|r| r.unwrap()).collect();
    assert_eq!(all.len() as u64, *sent, "{case}");
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset(), i as u64, "{case}");
        assert_eq!(r.payload(), payload(i as u64), "{case}");
    }
    for _ in 0..more {
        let at = s
            .send(&payload(*sent))
            .unwrap_or_else(|e| panic!("{case}: send: {e}"));
        assert_eq!(at, *sent, "{case}");
        *sent += 1;
    }
}

#[test]
fn a_worn_epoch_rolls_to_a_new_segment_and_every_open_works() {
    for epoch in [u32::MAX / 2 - 1, u32::MAX / 2, u32::MAX / 2 + 1, u32::MAX] {
        for records in [0u64, 5] {
            for clean in [true, false] {
                let case = format!("epoch {epoch}, {records} records, clean {clean}");
                let dir = tempfile::tempdir().unwrap();
                let mut sent = 0;
                open_check_send(dir.path(), &mut sent, records, &case);
                forge_epoch(dir.path(), epoch, clean);
                // The open of a worn segment (whose next epoch is past the
                // limit) warns about it until an append replaces it.
                let worn = epoch >= u32::MAX / 2;
                assert_eq!(worn_warnings(dir.path()), usize::from(worn), "{case}");
                open_check_send(dir.path(), &mut sent, 3, &case);
                // Just below the limit, the first writer's own epoch is the
                // last one below it: the open after wears the segment.
                let last_below = epoch == u32::MAX / 2 - 1;
                assert_eq!(worn_warnings(dir.path()), usize::from(last_below), "{case}");
                open_check_send(dir.path(), &mut sent, 2, &case);
                open_check_send(dir.path(), &mut sent, 0, &case);
                open_check_send(dir.path(), &mut sent, 1, &case);
                open_check_send(dir.path(), &mut sent, 0, &case);
                assert_eq!(sent, records + 6, "{case}");
                let segments = std::fs::read_dir(dir.path().join("streams/s/p0"))
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(".seg")
                    })
                    .count();
                // A worn segment with records is sealed by a roll; an
                // empty one is replaced in place.
                let expected = if last_below || (worn && records > 0) {
                    2
                } else {
                    1
                };
                assert_eq!(segments, expected, "{case}");
            }
        }
    }
}
