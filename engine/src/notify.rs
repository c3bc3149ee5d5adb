//! Wake-ups for blocked receivers: senders bump a sequence number; a
//! receiver that found nothing waits until the number moves or a deadline
//! passes. Senders pay for a wake-up only when someone is waiting.
//!
//! No lost wake-up: a receiver registers (`prepare`) *before* it looks for
//! messages; a sender publishes *before* it looks for registered receivers.
//! The receiver registers with a read-modify-write of the waiter count; the
//! sender, after publishing, reads the count with a read-modify-write too
//! (see [`Notify::notify`]): either the sender sees the receiver, or the
//! sender's read-modify-write synchronizes with the receiver's and the
//! receiver sees the message.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

/// A sequence number with waiters: threads (on the condition variable) and
/// tasks (their wakers).
#[derive(Debug, Default)]
pub(crate) struct Notify {
    st: Mutex<State>,
    cv: Condvar,
    /// Registered waiters of both kinds.
    waiters: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    /// The wakers of registered tasks not woken since they registered.
    wakers: Vec<(u64, Waker)>,
    next_key: u64,
}

/// A task's registration (see [`Notify::register`]); give it back with
/// [`Notify::deregister`].
#[derive(Debug)]
pub(crate) struct TaskKey(u64);

/// A registered receiver; look for messages, then [`Waiter::wait_until`].
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Notify {
    /// Registers a receiver about to look for messages.
    pub(crate) fn prepare(&self) -> Waiter<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let seen = self.lock().seq;
        Waiter { notify: self, seen }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a task about to look for messages (as [`Notify::prepare`]
    /// a thread): the next notification wakes `waker`. Called again on
    /// every poll with the same `key` (the first time with `None`): it
    /// stores the current waker. The task looks for messages after this.
    pub(crate) fn register(&self, key: &mut Option<TaskKey>, waker: &Waker) {
        let k = match key {
            Some(k) => k.0,
            None => {
                self.waiters.fetch_add(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                let mut g = self.lock();
                let k = g.next_key;
                g.next_key += 1;
                g.wakers.push((k, waker.clone()));
                *key = Some(TaskKey(k));
                return;
            }
        };
        let mut g = self.lock();
        match g.wakers.iter_mut().find(|(x, _)| *x == k) {
            Some((_, w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
            }
            // Woken since (and so removed): wake it again next time.
            None => g.wakers.push((k, waker.clone())),
        }
    }

    /// Gives a task's registration back (when its future is done or
    /// dropped).
    pub(crate) fn deregister(&self, key: TaskKey) {
        let mut g = self.lock();
        if let Some(i) = g.wakers.iter().position(|(x, _)| *x == key.0) {
            g.wakers.swap_remove(i);
        }
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes every waiter; call after publishing (cheap when none waits).
    pub(crate) fn notify(&self) {
        // A read-modify-write that changes nothing, in place of a fence and
        // a load. If it reads 0, it precedes the registering receiver's
        // `fetch_add(1)` in the count's modification order; every write to
        // the count is a read-modify-write, so that `fetch_add(1)` is in the
        // release sequence headed by this one and reads from it: this
        // (release) synchronizes with it (acquire), and the receiver's look
        // for messages, after it, sees our publish, before this. Keep every
        // write to `waiters` a read-modify-write: a plain store would break
        // the release sequence.
        if self.waiters.fetch_add(0, Ordering::SeqCst) == 0 {
            return;
        }
        let mut g = self.lock();
        g.seq = g.seq.wrapping_add(1);
        let wakers = std::mem::take(&mut g.wakers);
        drop(g);
        self.cv.notify_all();
        for (_, w) in wakers {
            w.wake();
        }
    }
}

impl Waiter<'_> {
    /// Waits until a notification after [`Notify::prepare`], or `deadline`.
    pub(crate) fn wait_until(self, deadline: Instant) {
        let n = self.notify;
        let mut g = n.lock();
        while g.seq == self.seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g =
                n.cv.wait_timeout(g, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.notify.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_notify_after_prepare_wakes_the_waiter() {
        let n = Arc::new(Notify::default());
        let w = n.prepare();
        let n2 = n.clone();
        let t = std::thread::spawn(move || n2.notify());
        t.join().unwrap();
        // Would wait for an hour if the notification were lost.
        w.wait_until(Instant::now() + Duration::from_secs(3600));
    }
}
