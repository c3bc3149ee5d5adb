//! Goal: record timestamps never decrease within a bucket, across restarts
//! too (what `StartAt::TimestampUs`'s binary search relies on); a clock
//! behind the newest timestamp holds the stamps at it (the freeze DESIGN §3.1
//! describes) rather than stepping back.
//!
//! Method: a record's timestamp is set ten years ahead on disk (its CRC
//! recomputed), standing in for a clock that once ran ahead; then the
//! stamps written after it are read back, also after a power cut that took
//! every record of the active segment.

pub mod common;

use common::sim;
use spool::format::record::{record_crc, CRC_OFFSET, LEN_OFFSET, TIMESTAMP_OFFSET};
use spool::format::segment::SEGMENT_HEADER_BYTES;
use spool::io::sim::{CutMode, SimFs};
use spool::{ConsumerConfig, Durability, StartAt, Store};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const SEGMENT: &str = "/t/streams/s/p0/00000000000000000000.seg";

/// Rewrites the timestamp of the first record of the segment at `path`.
fn set_first_timestamp(fs: &SimFs, path: &Path, ts: u64) {
    let mut b = fs.read_file(path).unwrap();
    let id = u64::from_le_bytes(b[16..24].try_into().unwrap());
    let at = SEGMENT_HEADER_BYTES;
    let len = u32::from_le_bytes(b[at + LEN_OFFSET..at + 4].try_into().unwrap()) as usize;
    b[at + TIMESTAMP_OFFSET..at + TIMESTAMP_OFFSET + 8].copy_from_slice(&ts.to_le_bytes());
    let crc = record_crc(id, &b[at..at + len]);
    b[at + CRC_OFFSET..at + CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    fs.write_file(path, &b).unwrap();
}

fn timestamps(s: &spool::Stream) -> Vec<u64> {
    s.iter_from(0).map(|r| r.unwrap().timestamp_us()).collect()
}

/// Regression: after a restart the floor came from the active segment's
/// records only; when a crash took them all, the next stamp followed the
/// clock back below the sealed segments' stamps.
#[test]
fn timestamps_never_decrease_across_a_restart_with_an_empty_active_segment() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let ahead = now + 10 * 365 * 24 * 3600 * 1_000_000;
    let fs = SimFs::new();
    let opts = sim::options(&fs, Durability::Never);
    {
        let store = Store::open("/t", opts.clone()).unwrap();
        store.stream("s").unwrap().send(&[0u8; 1000]).unwrap();
    }
    set_first_timestamp(&fs, Path::new(SEGMENT), ahead);
    let cut = {
        let store = Store::open("/t", opts.clone()).unwrap();
        let s = store.stream("s").unwrap();
        // Held at the stamp ahead (the clock is behind it), until a roll.
        while s.stats().buckets[0].segments < 2 {
            s.send(&[1u8; 1000]).unwrap();
        }
        let ts = timestamps(&s);
        assert!(ts.iter().all(|&t| t == ahead), "frozen at the newest stamp");
        // The roll synced the sealed segment; the new one's record is not
        // synced, and the power cut takes it.
        fs.power_cut(CutMode::DropUnsynced)
    };
    let store = Store::open("/t", sim::options(&cut, Durability::Never)).unwrap();
    let s = store.stream("s").unwrap();
    let sealed = s.stats().buckets[0].end_offset;
    assert_eq!(s.stats().buckets[0].segments, 2);
    s.send(b"after the restart").unwrap();
    let ts = timestamps(&s);
    assert_eq!(ts.len() as u64, sealed + 1);
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "non-decreasing: last sealed {} then {}",
        ts[ts.len() - 2],
        ts[ts.len() - 1]
    );
    // The binary search of a start time finds the first stamp at or after it.
    let c = s
        .consumer_with(
            "c",
            ConsumerConfig::default().start(StartAt::TimestampUs(ahead)),
        )
        .unwrap();
    assert_eq!(c.try_receive().unwrap().unwrap().offset(), 0);
    let later = s
        .consumer_with(
            "later",
            ConsumerConfig::default().start(StartAt::TimestampUs(ahead + 1)),
        )
        .unwrap();
    assert!(later.try_receive().unwrap().is_none());
}
