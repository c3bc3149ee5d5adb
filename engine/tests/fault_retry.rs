//! Goal: after one failed I/O operation, the program may carry on: the
//! store is either poisoned (a sync failed, whose effect is unknown) or the
//! call that failed can simply be made again. Creating a stream or a
//! consumer that failed at any point can be retried; a failed directory
//! sync poisons the store wherever it happens, also in the atomic write of
//! a small file (a consumer's configuration, a low-water mark, an index).
//!
//! Method: on the simulated file system, the same workload is run with
//! each of its operations failing once in turn; after the failure the call
//! is retried, and must succeed unless the store is poisoned.

pub mod common;

use common::sim;
use spool::io::sim::{FaultKind, SimFs};
use spool::{ConsumerConfig, Durability, Error, Store, StreamConfig};
use std::time::Duration;

const ROOT: &str = "/f";

/// A store with stream `base` (and a message in it), on a new file system.
fn setup() -> (SimFs, Store) {
    let fs = SimFs::new();
    let store = Store::open(ROOT, sim::options(&fs, Durability::Always)).unwrap();
    store.stream("base").unwrap().send(b"x").unwrap();
    (fs, store)
}

/// Operations `call` takes on a fresh [`setup`].
fn ops_of(call: impl Fn(&Store) -> spool::Result<()>) -> (u64, u64) {
    let (fs, store) = setup();
    let before = fs.stats().ops;
    call(&store).unwrap();
    (before, fs.stats().ops)
}

/// Fails each operation of `call` once in turn, then makes the call again:
/// it must succeed unless the store is poisoned. Returns how many faults
/// left the store unpoisoned and the call failed (the retries tested).
fn retry_after_each_fault(call: impl Fn(&Store) -> spool::Result<()>) -> usize {
    let (before, after) = ops_of(&call);
    let mut retried = 0;
    for n in before + 1..=after {
        let (fs, store) = setup();
        assert_eq!(fs.stats().ops, before, "the setup is deterministic");
        fs.fail_at(n, FaultKind::Eio, false);
        if call(&store).is_ok() {
            continue;
        }
        if store.is_poisoned() {
            continue;
        }
        retried += 1;
        if let Err(e) = call(&store) {
            panic!("fault at op {n} (of {before}..{after}), retry: {e}");
        }
    }
    retried
}

/// Regression: a stream whose creation failed after its directory was
/// renamed into place (its first segment could not be created) could not
/// be created again in the same process.
#[test]
fn a_failed_stream_creation_can_be_retried() {
    let retried = retry_after_each_fault(|store| {
        // Created, or found if an earlier try got that far.
        let s = match store.create_stream("new", StreamConfig::default().priorities(2)) {
            Err(Error::StreamExists { .. }) => store.stream("new")?,
            other => other?,
        };
        assert_eq!(s.config().priorities, 2);
        s.send(b"hello")?;
        Ok(())
    });
    assert!(retried > 0);
}

/// The same for a consumer (its first journal could not be created).
#[test]
fn a_failed_consumer_creation_can_be_retried() {
    let retried = retry_after_each_fault(|store| {
        let c = store.stream("base")?.consumer_with(
            "c",
            ConsumerConfig::default().visibility_timeout(Duration::from_secs(5)),
        )?;
        assert_eq!(c.config().visibility_timeout, Duration::from_secs(5));
        assert_eq!(c.stats().buckets[0].ack_floor, 0);
        Ok(())
    });
    assert!(retried > 0);
}

/// Regression: the directory sync of an atomic small-file write (here a
/// consumer's `config.meta`, rewritten by `consumer_with`) failed without
/// poisoning the store, against DESIGN §4 rule 2.
#[test]
fn a_failed_directory_sync_of_an_atomic_write_poisons() {
    let update = |store: &Store| {
        store
            .stream("base")?
            .consumer_with(
                "c",
                ConsumerConfig::default().visibility_timeout(Duration::from_secs(9)),
            )
            .map(drop)
    };
    let mut poisoned = 0;
    let (fs, store) = setup();
    store.stream("base").unwrap().consumer("c").unwrap();
    let before = fs.stats().ops;
    update(&store).unwrap();
    let after = fs.stats().ops;
    for n in before + 1..=after {
        let (fs, store) = setup();
        store.stream("base").unwrap().consumer("c").unwrap();
        assert_eq!(fs.stats().ops, before);
        fs.fail_at(n, FaultKind::Eio, false);
        if let Err(Error::Io {
            op: "sync directory",
            ..
        }) = update(&store)
        {
            assert!(store.is_poisoned(), "fault at op {n}");
            poisoned += 1;
        }
    }
    assert_eq!(poisoned, 1, "one directory sync in the rewrite");
}
