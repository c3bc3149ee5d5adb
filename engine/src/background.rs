//! The store's two background threads (see `Options::writeback_bytes`):
//! `spool-sync` syncs on a timer (`Durability::Interval`) and when a bucket
//! has grown by `writeback_bytes`; `spool-prefault` faults segment and
//! journal space in ahead of the writer. They are separate so that a long
//! sync never delays a prefault the writer is about to need.

use crate::io::SharedMap;
use crate::limits::saturating_deadline;
use crate::threads::Threads;
use crate::Result;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The work queue of the store's two background threads (see
/// `Options::writeback_bytes`): the sync thread syncs on a timer
/// (`Durability::Interval`) and when a bucket has grown by `writeback_bytes`;
/// the prefault thread faults segment space in ahead of the writer. They are
/// separate so that a long sync never delays a prefault the writer is about
/// to need.
#[derive(Debug, Default)]
pub(crate) struct Syncer {
    state: Mutex<SyncerState>,
    sync_cv: Condvar,
    prefault_cv: Condvar,
    threads: Threads,
}

#[derive(Debug, Default)]
struct SyncerState {
    kicked: bool,
    stopped: bool,
    /// Map ranges to fault in ahead of the writer (see `SharedMap::prefault`).
    prefault: Vec<(Arc<SharedMap>, Range<usize>)>,
}

impl Syncer {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a sync soon (never waits for it).
    pub(crate) fn kick(&self) {
        let mut g = self.lock();
        if !g.kicked {
            g.kicked = true;
            self.sync_cv.notify_one();
        }
    }

    /// Asks for `range` of `map` to be faulted in soon.
    pub(crate) fn prefault(&self, map: Arc<SharedMap>, range: Range<usize>) {
        self.lock().prefault.push((map, range));
        self.prefault_cv.notify_one();
    }

    /// Drops the queued prefaults of `maps` (a deleted stream's segments):
    /// the prefault thread no longer touches them. One already taken from
    /// the queue ends on the mapping it holds.
    pub(crate) fn drop_prefaults(&self, maps: &[Arc<SharedMap>]) {
        self.lock()
            .prefault
            .retain(|(m, _)| !maps.iter().any(|d| Arc::ptr_eq(m, d)));
    }

    /// Ends both threads' loops.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.sync_cv.notify_all();
        self.prefault_cv.notify_all();
    }

    /// Waits for both threads to end (after [`Syncer::stop`]).
    pub(crate) fn join(&self) {
        self.threads.join();
    }

    /// Waits until a sync is due: kicked, or `deadline` passed (if given);
    /// false once stopped.
    pub(crate) fn wait_sync(&self, deadline: Option<Instant>) -> bool {
        let mut g = self.lock();
        while !g.kicked && !g.stopped {
            g = match deadline {
                None => self.sync_cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    self.sync_cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        g.kicked = false;
        !g.stopped
    }

    /// Waits for ranges to fault in; `None` once stopped.
    pub(crate) fn wait_prefault(&self) -> Option<Vec<(Arc<SharedMap>, Range<usize>)>> {
        let mut g = self.lock();
        while g.prefault.is_empty() && !g.stopped {
            g = self.prefault_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if g.stopped {
            return None;
        }
        Some(std::mem::take(&mut g.prefault))
    }
}

/// Starts the background threads: one syncs the store every `every`
/// (`Durability::Interval`) and whenever a bucket asks for writeback (see
/// `Options::writeback_bytes`); the other faults segment space in ahead of
/// the writer. Without them (spawning failed), `Interval` degrades to
/// `Never` until `sync` and the writer takes its own page faults; there is no
/// error channel from `open` for this rare case.
///
/// `sync` syncs the store's streams (the threads hold no reference to the
/// store itself, so the drop of its last handle, which stops and joins
/// them, never runs on one of them); the sync thread ends when it fails
/// (the store is poisoned then).
pub(crate) fn spawn(
    syncer: Arc<Syncer>,
    every: Option<Duration>,
    sync: impl Fn() -> Result<()> + Send + 'static,
) {
    let prefaulter = syncer.clone();
    syncer.threads.spawn("spool-prefault", move || {
        while let Some(work) = prefaulter.wait_prefault() {
            for (map, range) in work {
                map.prefault(range);
            }
        }
    });
    let me = syncer.clone();
    syncer.threads.spawn("spool-sync", move || loop {
        let due = every.map(|d| saturating_deadline(Instant::now(), d));
        if !me.wait_sync(due) {
            return;
        }
        if sync().is_err() {
            // Poisoned: later sends report it.
            return;
        }
    });
}
