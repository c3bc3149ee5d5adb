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
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// A sequence number with waiters.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    seq: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
}

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
        let seen = *self.seq.lock().unwrap_or_else(|e| e.into_inner());
        Waiter { notify: self, seen }
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
        let mut g = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *g = g.wrapping_add(1);
        drop(g);
        self.cv.notify_all();
    }
}

impl Waiter<'_> {
    /// Waits until a notification after [`Notify::prepare`], or `deadline`.
    pub(crate) fn wait_until(self, deadline: Instant) {
        let n = self.notify;
        let mut g = n.seq.lock().unwrap_or_else(|e| e.into_inner());
        while *g == self.seen {
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
