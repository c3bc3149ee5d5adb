//! Goal: running out of file descriptors fails the call that needed one
//! with `Error::TooManyOpenFiles`, never poisons the store, and once
//! descriptors are free again the same calls succeed and nothing
//! acknowledged is lost.
//!
//! Method: a child process of this test binary runs with `ulimit -n 64`
//! and creates streams (each holds its active segment open) until one
//! fails; every other stream must still take sends. On the simulated file
//! system, which can limit the descriptors open at once, a workload of
//! stream and consumer creations, sends with segment rolls, claim checks,
//! acks and retention runs at every limit that makes it fail somewhere
//! else; then the limit is lifted, everything is retried, and the power is
//! cut.

pub mod common;

use common::process::{rerun, with_descriptor_limit};
use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Options, Store, StreamConfig};
use std::collections::BTreeMap;
use std::time::Duration;

const CHILD_ENV: &str = "SPOOL_DESCRIPTORS_CHILD";

/// The child: creates streams until one fails, then checks the store.
#[test]
fn descriptors_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir, Options::default()).unwrap();
    let mut streams = Vec::new();
    let failure = loop {
        match store.create_stream(&format!("s{}", streams.len()), StreamConfig::default()) {
            Ok(s) => {
                s.send(b"first").unwrap();
                streams.push(s);
            }
            Err(e) => break e,
        }
        assert!(streams.len() < 1000, "the descriptors never ran out");
    };
    assert!(
        matches!(failure, Error::TooManyOpenFiles { .. }),
        "after {} streams: {failure:?}",
        streams.len()
    );
    assert!(
        !store.is_poisoned(),
        "a missing descriptor poisoned the store"
    );
    for s in &streams {
        s.send(b"second")
            .unwrap_or_else(|e| panic!("stream {}: {e}", s.name()));
        assert_eq!(s.read(1).unwrap().unwrap().payload(), b"second");
    }
    println!("{} streams, then: {failure}", streams.len());
}

#[test]
fn running_out_of_descriptors_fails_one_call_and_poisons_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rerun("descriptors_child");
    child.env(CHILD_ENV, dir.path());
    let status = with_descriptor_limit(&child, 64).status().unwrap();
    assert!(status.success(), "the child failed: {status}");
}

/// Acknowledged sends per stream (offset → payload) and acknowledged acks.
#[derive(Default)]
struct Done {
    sent: BTreeMap<String, Vec<(u64, Vec<u8>)>>,
    acked: BTreeMap<String, Vec<u64>>,
}

fn payload(i: usize, big: bool) -> Vec<u8> {
    let len = if big { 40_000 } else { 9_000 };
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

/// Every step of the workload; errors must all be `TooManyOpenFiles`.
fn workload(store: &Store, done: &mut Done, errors: &mut Vec<Error>) {
    let mut note = |r: spool::Result<()>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    for i in 0..4usize {
        let name = format!("s{i}");
        let r = (|| -> spool::Result<()> {
            let config = StreamConfig::default()
                .priorities(2)
                .claim_check_threshold(30_000);
            let s = match store.create_stream(&name, config) {
                Err(Error::StreamExists { .. }) => store.stream(&name)?,
                r => r?,
            };
            let c = s.consumer("c")?;
            for k in 0..12usize {
                let p = payload(i * 100 + k, k % 4 == 3);
                match s.send(&p) {
                    Ok(o) => done.sent.entry(name.clone()).or_default().push((o, p)),
                    Err(e) => return Err(e),
                }
            }
            while let Some(d) = c.try_receive()? {
                let o = d.offset();
                d.ack()?;
                done.acked.entry(name.clone()).or_default().push(o);
            }
            s.apply_retention()?;
            Ok(())
        })();
        note(r);
    }
}

fn check(store: &Store, done: &Done, what: &str) {
    for (name, sent) in &done.sent {
        let s = store.stream(name).unwrap();
        let first = s.stats().buckets[0].first_offset;
        for (o, p) in sent {
            if *o >= first {
                let r = s
                    .read(*o)
                    .unwrap_or_else(|e| panic!("{what}: {name}@{o}: {e}"));
                assert_eq!(r.unwrap().payload(), &p[..], "{what}: {name}@{o}");
            }
        }
        let c = s.consumer("c").unwrap();
        while let Some(d) = c.receive(Duration::ZERO).unwrap() {
            assert!(
                !done
                    .acked
                    .get(name)
                    .is_some_and(|a| a.contains(&d.offset())),
                "{what}: {name}: acknowledged offset {} delivered again",
                d.offset()
            );
            d.ack().unwrap();
        }
    }
}

#[test]
fn every_call_that_runs_out_of_descriptors_fails_alone() {
    let opts = |fs: &SimFs| {
        sim::options(fs, Durability::Always)
            .allocation_chunk_bytes(8192)
            .consumer_journal_bytes(4096)
    };
    let mut limits_that_failed = 0;
    for extra in 0..40u64 {
        let fs = SimFs::new();
        let store = Store::open("/d", opts(&fs)).unwrap();
        fs.set_descriptor_limit(fs.open_descriptors() + extra);
        let mut done = Done::default();
        let mut errors = Vec::new();
        workload(&store, &mut done, &mut errors);
        let what = format!("{extra} descriptors free");
        for e in &errors {
            assert!(matches!(e, Error::TooManyOpenFiles { .. }), "{what}: {e:?}");
        }
        assert!(!store.is_poisoned(), "{what}: poisoned");
        if errors.is_empty() {
            continue;
        }
        limits_that_failed += 1;
        // Descriptors again: the same calls succeed now.
        fs.set_descriptor_limit(u64::MAX);
        let mut again = Vec::new();
        workload(&store, &mut done, &mut again);
        assert!(
            again.is_empty(),
            "{what}: after the limit was lifted: {again:?}"
        );
        check(&store, &done, &what);
        drop(store);
        let cut = fs.power_cut(CutMode::DropUnsynced);
        let store = Store::open("/d", opts(&cut)).unwrap();
        check(&store, &done, &format!("{what}, after a power cut"));
    }
    assert!(limits_that_failed > 10, "{limits_that_failed}");
}
