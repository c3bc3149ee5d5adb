//! What the futures of the async API wait with, without an async runtime:
//! a timer thread that wakes wakers at deadlines, a worker thread that runs
//! blocking steps (syncs) and wakes the future waiting for each, and the
//! completion slot between them.
//!
//! Both threads belong to one store, start when first used, and end when
//! the store is closed or its last handle dropped. A sync run by the worker
//! goes through the same group commit as a blocking caller's: concurrent
//! durable sends of many tasks share one sync.

use crate::threads::Threads;
use crate::{Error, Result};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes wakers at deadlines, on its own thread.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    st: Mutex<TimerState>,
    cv: Condvar,
    threads: Threads,
}

#[derive(Debug, Default)]
struct TimerState {
    /// Deadline and key of each waker (keys make equal deadlines distinct).
    due: BTreeMap<(Instant, u64), Waker>,
    next_key: u64,
    started: bool,
    stopped: bool,
}

/// A registered deadline; cancel it with [`Timer::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey(Instant, u64);

impl Timer {
    /// Wakes `waker` at `at` (at once if the timer is stopped: the store is
    /// closing, and whoever waits finds out on its next poll).
    pub(crate) fn at(self: &Arc<Self>, at: Instant, waker: &Waker) -> TimerKey {
        let mut g = lock(&self.st);
        if g.stopped {
            drop(g);
            waker.wake_by_ref();
            return TimerKey(at, u64::MAX);
        }
        let key = g.next_key;
        g.next_key += 1;
        let first = g.due.keys().next().is_none_or(|&(d, _)| at < d);
        g.due.insert((at, key), waker.clone());
        if !g.started {
            g.started = true;
            let me = self.clone();
            // If no thread can be started, waits end at their next wake-up
            // by a send instead of at their deadline (and the next `at`
            // tries again).
            if !self.threads.spawn("spool-timer", move || me.run()) {
                g.started = false;
            }
        } else if first {
            self.cv.notify_one();
        }
        TimerKey(at, key)
    }

    /// Forgets a deadline (one that passed already is forgotten anyway).
    pub(crate) fn cancel(&self, key: TimerKey) {
        lock(&self.st).due.remove(&(key.0, key.1));
    }

    /// Wakes every registered waker and ends the thread.
    pub(crate) fn stop(&self) {
        let mut g = lock(&self.st);
        g.stopped = true;
        let due = std::mem::take(&mut g.due);
        drop(g);
        self.cv.notify_all();
        for w in due.into_values() {
            w.wake();
        }
    }

    /// Waits for the thread to end (after [`Timer::stop`]).
    pub(crate) fn join(&self) {
        self.threads.join();
    }

    fn run(&self) {
        let mut g = lock(&self.st);
        loop {
            if g.stopped {
                return;
            }
            let now = Instant::now();
            let mut ready = Vec::new();
            while let Some(entry) = g.due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                ready.push(entry.remove());
            }
            if !ready.is_empty() {
                drop(g);
                for w in ready {
                    w.wake();
                }
                g = lock(&self.st);
                continue;
            }
            g = match g.due.keys().next() {
                Some(&(d, _)) => {
                    self.cv
                        .wait_timeout(g, d.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// A blocking step for the worker thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs blocking steps (syncs) for futures, in order, on its own thread.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    st: Mutex<WorkerState>,
    cv: Condvar,
    threads: Threads,
}

#[derive(Default)]
struct WorkerState {
    jobs: VecDeque<Job>,
    started: bool,
    stopped: bool,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState")
            .field("jobs", &self.jobs.len())
            .field("started", &self.started)
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl Worker {
    /// Runs `step` on the worker thread; its result completes the returned
    /// slot. If no thread can be started, or the store is closing, the step
    /// runs on the caller's thread instead (it is never lost).
    pub(crate) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        step: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Arc<Completion<T>> {
        let done = Arc::new(Completion::default());
        let slot = done.clone();
        let job: Job = Box::new(move || slot.complete(step()));
        let mut g = lock(&self.st);
        if g.stopped {
            drop(g);
            job();
            return done;
        }
        g.jobs.push_back(job);
        if !g.started {
            let me = self.clone();
            if self.threads.spawn("spool-worker", move || me.serve()) {
                g.started = true;
            } else {
                let jobs = std::mem::take(&mut g.jobs);
                drop(g);
                jobs.into_iter().for_each(|j| j());
                return done;
            }
        } else {
            self.cv.notify_one();
        }
        done
    }

    /// Ends the thread once the steps queued are done; later steps run on
    /// their callers' threads.
    pub(crate) fn stop(&self) {
        lock(&self.st).stopped = true;
        self.cv.notify_all();
    }

    /// Waits for the thread to end, having run every step queued (after
    /// [`Worker::stop`]).
    pub(crate) fn join(&self) {
        self.threads.join();
    }

    fn serve(&self) {
        let mut g = lock(&self.st);
        loop {
            if let Some(job) = g.jobs.pop_front() {
                drop(g);
                job();
                g = lock(&self.st);
                continue;
            }
            if g.stopped {
                return;
            }
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The result of a step run elsewhere, and the waker of whoever waits for it.
#[derive(Debug)]
pub(crate) struct Completion<T> {
    st: Mutex<(Option<Result<T>>, Option<Waker>)>,
}

impl<T> Default for Completion<T> {
    fn default() -> Self {
        Completion {
            st: Mutex::new((None, None)),
        }
    }
}

impl<T> Completion<T> {
    fn complete(&self, r: Result<T>) {
        let mut g = lock(&self.st);
        g.0 = Some(r);
        let waker = g.1.take();
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The result, once there; else registers `cx`'s waker.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut g = lock(&self.st);
        match g.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                match &mut g.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// A future that resolves once what a call wrote is as durable as the
/// store's [`Durability`](crate::Durability) asks, with the call's value.
/// The write itself happened when the call returned this future; dropping
/// it gives up waiting, not the write (as a blocking call interrupted by a
/// crash: the write may or may not survive one).
#[must_use = "the write happened; await this to know it is durable"]
#[derive(Debug)]
pub struct Durable<T> {
    state: DurableState<T>,
}

#[derive(Debug)]
enum DurableState<T> {
    /// Decided already.
    Ready(Option<Result<T>>),
    /// A step runs on the worker thread; `T` once it succeeds.
    Waiting(Arc<Completion<()>>, Option<T>),
}

impl<T> Durable<T> {
    /// Already decided.
    pub(crate) fn ready(r: Result<T>) -> Durable<T> {
        Durable {
            state: DurableState::Ready(Some(r)),
        }
    }

    /// The same wait, resolving to `f` of the value.
    pub(crate) fn map_value<U>(self, f: impl FnOnce(T) -> U) -> Durable<U> {
        Durable {
            state: match self.state {
                DurableState::Ready(r) => DurableState::Ready(r.map(|r| r.map(f))),
                DurableState::Waiting(step, v) => DurableState::Waiting(step, v.map(f)),
            },
        }
    }

    /// Resolves to `value` once `step` (run on the worker) succeeds.
    pub(crate) fn after(step: Arc<Completion<()>>, value: T) -> Durable<T> {
        Durable {
            state: DurableState::Waiting(step, Some(value)),
        }
    }
}

impl<T: Unpin> Future for Durable<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        match &mut this.state {
            DurableState::Ready(r) => {
                Poll::Ready(r.take().unwrap_or_else(|| {
                    Err(Error::Internal("future polled after it resolved".into()))
                }))
            }
            DurableState::Waiting(step, value) => match step.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(r) => Poll::Ready(r.and_then(|()| {
                    value
                        .take()
                        .ok_or_else(|| Error::Internal("future polled after it resolved".into()))
                })),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_for(count: &Count, n: usize) {
        let start = Instant::now();
        while count.0.load(Ordering::SeqCst) < n {
            assert!(start.elapsed() < Duration::from_secs(60), "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_timer_wakes_at_deadlines_and_forgets_cancelled_ones() {
        let timer = Arc::new(Timer::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let now = Instant::now();
        let cancelled = timer.at(now + Duration::from_millis(5), &waker);
        timer.cancel(cancelled);
        timer.at(now + Duration::from_millis(20), &waker);
        timer.at(now + Duration::from_millis(10), &waker);
        wait_for(&count, 2);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "a cancelled deadline woke"
        );
        // Stopping wakes what is left at once.
        timer.at(now + Duration::from_secs(3600), &waker);
        timer.stop();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn worker_steps_complete_their_future() {
        let worker = Arc::new(Worker::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let g2 = gate.clone();
        let mut f = Durable::after(
            worker.run(move || {
                drop(g2.lock().unwrap());
                Ok(())
            }),
            7u32,
        );
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        drop(held);
        wait_for(&count, 1);
        assert!(matches!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(Ok(7))));
        worker.stop();
        // After stop, steps run on the caller's thread.
        let mut f = Durable::after(worker.run(|| Err(Error::Closed)), 1u32);
        assert!(matches!(
            Pin::new(&mut f).poll(&mut cx),
            Poll::Ready(Err(Error::Closed))
        ));
    }
}
