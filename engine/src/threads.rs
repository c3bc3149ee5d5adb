//! The store's own threads (sync, prefault, timer, worker), started by
//! name and joined when the store goes: once `Store::close` returns or the
//! last handle is dropped, no thread of the store is left running.

use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Threads to join when their owner goes.
#[derive(Debug, Default)]
pub(crate) struct Threads(Mutex<Vec<JoinHandle<()>>>);

impl Threads {
    fn lock(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts thread `name` running `f`; false if the system refused a
    /// thread (the callers degrade to doing the work themselves).
    pub(crate) fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) -> bool {
        match std::thread::Builder::new().name(name.into()).spawn(f) {
            Ok(handle) => {
                self.lock().push(handle);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for every thread started here to end (the caller has told them
    /// to stop). A thread that is the caller itself (its last handle of the
    /// store was dropped by one of its own steps) is left to return on its
    /// own: it is already on its way out.
    pub(crate) fn join(&self) {
        let me = std::thread::current().id();
        let handles = std::mem::take(&mut *self.lock());
        for h in handles {
            if h.thread().id() != me {
                // A thread that panicked has nothing left to clean up.
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn join_waits_for_every_thread_and_skips_the_caller() {
        let threads = Arc::new(Threads::default());
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        assert!(threads.spawn("t-slow", move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            d.store(true, Ordering::SeqCst);
        }));
        threads.join();
        assert!(
            done.load(Ordering::SeqCst),
            "join returned before the thread ended"
        );

        // A thread that joins its own set does not wait for itself.
        let t2 = threads.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(threads.spawn("t-self", move || {
            t2.join();
            tx.send(()).unwrap();
        }));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a thread joining itself deadlocked");
        threads.join();
    }
}
