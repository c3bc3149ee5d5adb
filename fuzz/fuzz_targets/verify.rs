//! The inspection behind `segment-tool verify` on arbitrary files, checked
//! against the engine: a store (on the simulated file system) whose stream
//! `s` has the input as its only segment, the active one, goes through
//! `inspect_store`, the blob checks and a repair plan, then through
//! `Store::open` and a read of every message.
//!
//! Never a panic, allocations stay bounded, and the two agree: the
//! inspector finds no problem (warnings aside) exactly when the open and
//! the reads return no `Error::Corrupt` / `UnsupportedVersion`; when the open
//! accepts the store, what repair plans is what the open's recovery report
//! lists, and after the repair (on a copy) the next open has nothing to do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::inspect::repair::Action;
use spool::inspect::Inspector;
use spool::io::sim::{CutMode, SimFs};
use spool::{Durability, Error, Options, RecoveryReport, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

const ROOT: &str = "/v";
const SEGMENT: &str = "/v/streams/s/p0/00000000000000000000.seg";

/// Every write synced as it is made (free on the simulated file system), so
/// the store runs no background thread: nothing outlives an input.
fn options(fs: &SimFs) -> Options {
    spool_fuzz::options()
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
}

/// The store, created once: stream `s`, closed; each input is written over
/// its segment in a copy.
fn base() -> &'static SimFs {
    static BASE: OnceLock<SimFs> = OnceLock::new();
    BASE.get_or_init(|| {
        let fs = SimFs::new();
        let store = Store::open(ROOT, options(&fs)).expect("open");
        store.stream("s").expect("stream");
        store.close().expect("close");
        fs.power_cut(CutMode::DropUnsynced)
    })
}

/// Opens the store and reads every message of `s`.
fn open_and_read(fs: &SimFs) -> Result<RecoveryReport, Error> {
    let store = Store::open(ROOT, options(fs))?;
    let s = store.stream("s")?;
    let b = &s.stats().buckets[0];
    for off in b.first_offset..b.end_offset {
        s.read(off)?.expect("a retained message");
    }
    Ok(store.recovery_report().clone())
}

/// What the open reports, and what a plan's actions predict of it.
fn reported(r: &RecoveryReport) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = r.torn_tails.iter().map(|t| t.segment.clone()).collect();
    v.extend(r.rebuilt_indexes.iter().cloned());
    v.extend(r.removed_temp_files.iter().cloned());
    v.sort();
    v
}

fn planned(actions: &[Action]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CutTail { segment, .. } => Some(segment.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let fs = base().power_cut(CutMode::DropUnsynced);
    fs.write_file(Path::new(SEGMENT), data).expect("write");
    let copy = fs.power_cut(CutMode::DropUnsynced);
    let insp = Inspector::new(&fs);
    let info = insp.inspect_store(Path::new(ROOT)).expect("a store");
    let mut problems = info.problems.clone();
    problems.extend(insp.check_blobs(&info));
    problems.retain(|p| !p.warning);
    let plan = insp.repair_plan(Path::new(ROOT), None).expect("plan");
    let engine = open_and_read(&fs);
    let damaged = match &engine {
        Ok(_) => false,
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => true,
        Err(e) => panic!("the open failed otherwise: {e}"),
    };
    assert_eq!(
        !problems.is_empty(),
        damaged,
        "inspector: {problems:?}; engine: {:?}",
        engine.as_ref().err()
    );
    let Ok(report) = engine else {
        return;
    };
    assert_eq!(
        planned(&plan.actions),
        reported(&report),
        "plan {:?}; report {report}",
        plan.actions
    );
    if plan.actions.is_empty() {
        return;
    }
    let insp = Inspector::new(&copy);
    let plan = insp.repair_plan(Path::new(ROOT), None).expect("plan");
    insp.repair_apply(&plan).expect("repair");
    let after = open_and_read(&copy).expect("the repaired store opens");
    assert!(after.is_clean(), "after repair: {after}");
});
