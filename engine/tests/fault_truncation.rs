//! Goal: files truncated or extended by someone else (reliability matrix K2,
//! fault F8) give typed errors or recover: opening and reading never panics,
//! never returns a record that differs from what was sent, and a consumer
//! never delivers a wrong payload.
//!
//! Method: a small store (a sealed and an active segment with headers, an
//! index, stream and store metadata, a consumer's checkpoint and journal, a
//! claim-check blob) is built once on the simulated file system. Then every
//! file is truncated at every byte of its meaningful part (the sealed
//! segment's record area every 7th byte, zero padding every 509th), and
//! extended by 1..=1024 random bytes; each time the store is opened and
//! everything is read.

pub mod common;

use common::{damage, Xorshift};
use spool::io::sim::CutMode;

#[test]
fn every_file_truncated_and_extended() {
    let (base, blob_at) = damage::build();
    let mut cases = 0u64;
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    for f in damage::files(&base) {
        for cut in 0..f.bytes.len() {
            let take = if f.sealed && cut >= 1024 {
                cut % 7 == 0
            } else {
                cut <= f.last_nonzero + 8 || cut % 509 == 0
            };
            if !take {
                continue;
            }
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&f.path, &f.bytes[..cut]).unwrap();
            damage::open_and_read(&fs, blob_at, &format!("{} cut at {cut}", f.name));
            cases += 1;
        }
        for _ in 0..16 {
            let r = rng.next_u64();
            let n = 1 + (r % 1024) as usize;
            let mut longer = f.bytes.clone();
            longer.extend((0..n).map(|i| (r >> (i % 56)) as u8));
            let fs = base.power_cut(CutMode::DropUnsynced);
            fs.write_file(&f.path, &longer).unwrap();
            damage::open_and_read(&fs, blob_at, &format!("{} extended by {n}", f.name));
            cases += 1;
        }
    }
    assert!(cases > 5_000, "too few cases: {cases}");
    eprintln!("truncations and extensions checked: {cases}");
}
