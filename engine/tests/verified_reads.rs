//! Goal: a record's checksum is trusted only after its own check. Reads
//! remember which records of a segment passed (so fan-out does not check
//! them again), but a damaged record is refused by every reader, every
//! time, whatever its neighbours passed; and the undamaged records around
//! it read back intact from every reader.
//!
//! Method: a store on the simulated file system whose first (sealed)
//! segment has one payload byte flipped on "disk" while closed; reopened,
//! read in orders that verify the records on both sides first.

pub mod common;

use spool::io::sim::SimFs;
use spool::{Durability, Error, Options, Store};
use std::sync::Arc;

const ROOT: &str = "/v";
const SEGMENT: &str = "/v/streams/s/p0/00000000000000000000.seg";
/// Bytes before the first record of a segment.
const FIRST_RECORD: usize = 1024;
const PAYLOAD: usize = 40;
/// Bytes of one record: a 32-byte header and the payload, 8-byte aligned.
const RECORD: usize = (32 + PAYLOAD).div_ceil(8) * 8;
/// Enough for the first 64 KiB segment to be sealed.
const N: u64 = 2000;
const BAD: u64 = 500;

fn options(fs: &SimFs) -> Options {
    Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(64 * 1024)
        .vfs(Arc::new(fs.clone()))
}

fn payload(o: u64) -> Vec<u8> {
    vec![o as u8; PAYLOAD]
}

#[test]
fn a_damaged_record_is_refused_by_every_reader_after_its_neighbours_passed() {
    let fs = SimFs::new();
    {
        let store = Store::open(ROOT, options(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        for o in 0..N {
            assert_eq!(s.send(&payload(o)).unwrap(), o);
        }
        assert!(
            s.stats().buckets[0].segments > 1,
            "the first segment is sealed"
        );
        store.close().unwrap();
    }
    let mut seg = fs.read_file(SEGMENT.as_ref()).unwrap();
    let at = FIRST_RECORD + BAD as usize * RECORD + 32 + 5;
    assert_eq!(seg[at], BAD as u8, "the layout this test assumes");
    seg[at] ^= 0x10;
    fs.write_file(SEGMENT.as_ref(), &seg).unwrap();

    let store = Store::open(ROOT, options(&fs)).unwrap();
    let s = store.stream("s").unwrap();
    // Every record but the damaged one, from both ends towards it: the
    // records next to it on both sides are checked and remembered.
    let order: Vec<u64> = (0..BAD).chain((BAD + 1..N).rev()).collect();
    for round in 0..3 {
        for &o in &order {
            let r = s.read(o).unwrap().expect("published");
            assert_eq!(r.payload(), &payload(o)[..], "offset {o}, round {round}");
        }
        match s.read(BAD) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("round {round}: damaged record read as {other:?}"),
        }
    }
    // Consumers (each a reader of its own) stop at it too, after the
    // records before it.
    for name in ["a", "b", "c"] {
        let c = s.consumer(name).unwrap();
        for o in 0..BAD {
            let d = c
                .try_receive()
                .unwrap()
                .expect("a message before the damage");
            assert_eq!((d.offset(), d.payload()), (o, &payload(o)[..]));
            d.ack().unwrap();
        }
        match c.try_receive() {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("consumer {name}: damaged record delivered as {other:?}"),
        }
    }
}
