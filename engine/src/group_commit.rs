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
    /// Followers waiting for the running sync (yielding or asleep).
    followers: u32,
    /// Followers asleep on the condition variable.
    sleepers: u32,
    /// Followers the last sync released: they are appending again now.
    released: u32,
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
                ..Inner::default()
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
        self.wake(g);
    }

    /// Wakes the sleeping followers, if any: `notify_all` is a system call
    /// even when nobody waits, and a single producer should not pay it on
    /// every sync.
    fn wake(&self, g: MutexGuard<'_, Inner>) {
        let sleepers = g.sleepers;
        drop(g);
        if sleepers > 0 {
            self.synced.notify_all();
        }
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
            return ctx.check_poisoned();
        }
        let mut g = self.lock();
        loop {
            ctx.check_poisoned()?;
            if g.durable >= target {
                return Ok(());
            }
            if g.leader {
                g.followers += 1;
                drop(g);
                let done = self.spin_until(ctx, target);
                g = self.lock();
                if !done && g.leader && g.durable < target {
                    g.sleepers += 1;
                    g = self.synced.wait(g).unwrap_or_else(|e| e.into_inner());
                    g.sleepers -= 1;
                }
                g.followers -= 1;
                continue;
            }
            g.leader = true;
            let others = g.released > 0;
            drop(g);
            if others {
                // Senders released by the last sync are appending right
                // now; a moment's yield lets them get their records into
                // this sync instead of each waiting a whole sync more (a
                // sync costs tens of microseconds, the yield about one).
                std::thread::yield_now();
            }
            let mut leading = Leading {
                gc: self,
                ctx,
                done: false,
            };
            let res = sync();
            leading.done = true;
            g = self.lock();
            g.leader = false;
            g.released = g.followers;
            match res {
                Ok(d) => {
                    if d > g.durable {
                        g.durable = d;
                        self.durable.store(d, Ordering::Release);
                    }
                    let reached = g.durable >= target;
                    self.wake(g);
                    if reached {
                        return ctx.check_poisoned();
                    }
                    g = self.lock();
                }
                Err(e) => {
                    // The kernel may have dropped the dirty pages: never retry
                    // and acknowledge. Everything after this is refused.
                    // (The engine's syncs poison first, naming their file.)
                    ctx.poison("sync", None, &e);
                    self.wake(g);
                    return Err(Error::Poisoned);
                }
            }
        }
    }
}

/// Hands leadership back if the leader's sync panics, so that its followers
/// are not left waiting for a leader that is gone. The sync's outcome is
/// unknown then, so the store is poisoned, as after a failed sync.
struct Leading<'a> {
    gc: &'a GroupCommit,
    ctx: &'a Ctx,
    done: bool,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ctx.poison("sync", None, &"the sync panicked");
            let mut g = self.gc.lock();
            g.leader = false;
            self.gc.wake(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::real::RealFs;
    use crate::io::LockGuard;
    use crate::Options;
    use std::sync::Arc;

    #[derive(Debug)]
    struct NoLock;
    impl LockGuard for NoLock {}

    fn ctx() -> Arc<Ctx> {
        let vfs = Arc::new(RealFs);
        Ctx::new(vfs, Options::default(), ".".into(), Box::new(NoLock))
    }

    #[test]
    fn followers_asleep_through_a_slow_sync_are_woken() {
        // A sync slower than the followers' yielding phase puts them to
        // sleep; every one must be woken and find its position durable.
        let ctx = ctx();
        let gc = GroupCommit::new(0);
        let written = AtomicU64::new(0);
        let syncs = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let target = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.sync_to(&ctx, target, || {
                            let upto = written.load(Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            syncs.fetch_add(1, Ordering::SeqCst);
                            Ok(upto)
                        })
                        .unwrap();
                        assert!(gc.durable() >= target);
                    }
                });
            }
        });
        assert_eq!(gc.durable(), 120);
        assert!(syncs.load(Ordering::SeqCst) < 120, "no sync was shared");
        let g = gc.lock();
        assert_eq!((g.followers, g.sleepers), (0, 0));
    }

    #[test]
    fn a_panic_in_the_leaders_sync_poisons_and_releases_the_followers() {
        let ctx = ctx();
        let gc = GroupCommit::new(0);
        let follower = std::thread::scope(|s| {
            let leader = s.spawn(|| {
                gc.sync_to(&ctx, 1, || -> std::io::Result<u64> {
                    std::thread::sleep(Duration::from_millis(50));
                    panic!("bug in a sync");
                })
            });
            // Joins while the leader sleeps in its sync, then sleeps too.
            std::thread::sleep(Duration::from_millis(10));
            let follower = s.spawn(|| gc.sync_to(&ctx, 2, || Ok(2)));
            assert!(leader.join().is_err(), "the leader's panic propagates");
            follower.join().unwrap()
        });
        assert!(matches!(follower, Err(Error::Poisoned)), "{follower:?}");
        let g = gc.lock();
        assert_eq!((g.leader, g.followers, g.sleepers), (false, 0, 0));
    }

    #[test]
    fn a_failed_sync_wakes_sleepers_with_poisoned() {
        let ctx = ctx();
        let gc = GroupCommit::new(0);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let hs: Vec<_> = (1..=4u64)
                .map(|t| {
                    let (gc, ctx) = (&gc, &ctx);
                    s.spawn(move || {
                        gc.sync_to(ctx, t, || {
                            std::thread::sleep(Duration::from_millis(5));
                            Err(std::io::Error::other("disk gone"))
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|r| matches!(r, Err(Error::Poisoned))));
    }
}
