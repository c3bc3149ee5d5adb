//! Group commit: many threads wait for one sync.
//!
//! A caller that needs position `target` durable calls [`GroupCommit::sync_to`].
//! If it is already durable, it returns at once. If a sync is running, the
//! caller waits for it and checks again. Otherwise the caller becomes the
//! leader: it runs the sync (which makes durable everything written so far,
//! usually covering the other waiters too), publishes the new durable
//! position, and wakes everyone. Waiters yield the CPU for about one sync
//! before they go to sleep (see `GroupCommit::spin_until`).

use crate::ctx::Ctx;
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest a follower yields before sleeping (see `GroupCommit::spin_until`).
const SPIN_MAX: Duration = Duration::from_micros(200);

#[derive(Debug, Default)]
struct Inner {
    durable: u64,
    leader: bool,
}

/// The durable position of one file (or log) and the threads waiting on it.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    inner: Mutex<Inner>,
    synced: Condvar,
    /// Copy of `inner.durable` for the lock-free fast path.
    durable: AtomicU64,
}

impl GroupCommit {
    /// Starts with everything below `durable` durable.
    pub(crate) fn new(durable: u64) -> GroupCommit {
        GroupCommit {
            inner: Mutex::new(Inner {
                durable,
                leader: false,
            }),
            synced: Condvar::new(),
            durable: AtomicU64::new(durable),
        }
    }

    /// Everything below this is durable.
    #[inline]
    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Records that everything below `d` became durable by other means (a
    /// checkpoint).
    pub(crate) fn advance(&self, d: u64) {
        let mut g = self.lock();
        if d > g.durable {
            g.durable = d;
            self.durable.store(d, Ordering::Release);
        }
        drop(g);
        self.synced.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A follower first waits for the running sync by yielding the CPU for
    /// up to [`SPIN_MAX`] (about one sync) instead of going to sleep: being
    /// put to sleep and woken costs each follower a futex round trip and a
    /// reschedule, which with many senders on few cores takes longer than
    /// the sync. Returns true if `target` became durable (or the store was
    /// poisoned) meanwhile.
    fn spin_until(&self, ctx: &Ctx, target: u64) -> bool {
        let start = Instant::now();
        loop {
            if self.durable() >= target || ctx.is_poisoned() {
                return true;
            }
            if start.elapsed() >= SPIN_MAX {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Returns once everything below `target` is durable. `sync` makes
    /// everything written so far durable and returns the new durable
    /// position; it runs without any lock held. A failed sync poisons the
    /// store: it is never retried, and this and every later call fails.
    pub(crate) fn sync_to(
        &self,
        ctx: &Ctx,
        target: u64,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<()> {
        if self.durable() >= target {
            return ctx.check();
        }
        let mut g = self.lock();
        loop {
            ctx.check()?;
            if g.durable >= target {
                return Ok(());
            }
            if g.leader {
                drop(g);
                let done = self.spin_until(ctx, target);
                g = self.lock();
                if !done && g.leader && g.durable < target {
                    g = self.synced.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                continue;
            }
            g.leader = true;
            drop(g);
            // Senders woken by the last sync are appending right now; a
            // moment's yield lets them get their records into this sync
            // instead of each waiting a whole sync more (a sync costs tens
            // of microseconds, the yield about one).
            std::thread::yield_now();
            let res = sync();
            g = self.lock();
            g.leader = false;
            match res {
                Ok(d) => {
                    if d > g.durable {
                        g.durable = d;
                        self.durable.store(d, Ordering::Release);
                    }
                    self.synced.notify_all();
                }
                Err(_) => {
                    // The kernel may have dropped the dirty pages: never retry
                    // and acknowledge. Everything after this is refused.
                    ctx.poison();
                    self.synced.notify_all();
                    return Err(Error::Poisoned);
                }
            }
        }
    }
}
