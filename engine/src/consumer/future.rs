//! The async receive: futures for one delivery and for a batch, and a
//! `futures_core::Stream` of deliveries. They wait on the stream's notifier
//! (a send wakes them) and the store's timer (their timeout, the next lease
//! expiry or nack delay), so no thread blocks while they wait, whatever the
//! executor.
//!
//! Cancellation: a message is taken only inside `poll`, and a poll that
//! takes one returns it, so dropping a future between polls loses nothing
//! and leases nothing.

use super::{Consumer, Delivery, Sink};
use crate::limits::saturating_deadline;
use crate::notify::TaskKey;
use crate::wake::TimerKey;
use crate::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a waiting future holds between polls: its registrations.
#[derive(Debug)]
struct Wait {
    consumer: Consumer,
    /// Up to when it waits (`None` before the first poll, then fixed).
    deadline: Option<Option<Instant>>,
    timeout: Option<Duration>,
    task: Option<TaskKey>,
    timer: Option<TimerKey>,
}

impl Wait {
    fn new(consumer: Consumer, timeout: Option<Duration>) -> Wait {
        Wait {
            consumer,
            deadline: None,
            timeout,
            task: None,
            timer: None,
        }
    }

    /// One poll: takes up to `max` into `out`; `Ready` when something was
    /// taken, the deadline passed, or an error came.
    fn poll_take<S: Sink>(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut S,
    ) -> Poll<Result<()>> {
        if self.task.is_none() {
            // The common case (a message is there) asks nothing of the
            // waiting machinery.
            match self.consumer.take(max, out) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(_) if out.count() > 0 => return Poll::Ready(Ok(())),
                Ok(_) => {}
            }
        }
        let stream = self.consumer.handle.stream.clone();
        let notify = stream.notify();
        // Registered before looking (again): a send after the look wakes us.
        notify.register(&mut self.task, cx.waker());
        let (wake, now) = match self.consumer.take(max, out) {
            Ok(t) => t,
            Err(e) => {
                self.release();
                return Poll::Ready(Err(e));
            }
        };
        if out.count() > 0 {
            self.release();
            return Poll::Ready(Ok(()));
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| self.timeout.map(|t| saturating_deadline(now, t)));
        if deadline.is_some_and(|d| now >= d) {
            self.release();
            return Poll::Ready(Ok(()));
        }
        let until = match (deadline, wake) {
            (Some(d), Some(w)) => Some(d.min(w)),
            (d, w) => d.or(w),
        };
        let timer = &self.consumer.handle.inner.ctx.timer;
        if let Some(old) = self.timer.take() {
            timer.cancel(old);
        }
        if let Some(at) = until {
            self.timer = Some(timer.at(at, cx.waker()));
        }
        Poll::Pending
    }

    /// Gives the registrations back.
    fn release(&mut self) {
        if let Some(k) = self.task.take() {
            self.consumer.handle.stream.notify().deregister(k);
        }
        if let Some(k) = self.timer.take() {
            self.consumer.handle.inner.ctx.timer.cancel(k);
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.release();
    }
}

/// The future of [`Consumer::receive_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Receive {
    wait: Wait,
}

impl Future for Receive {
    type Output = Result<Option<Delivery>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut got: Option<Delivery> = None;
        self.get_mut()
            .wait
            .poll_take(cx, 1, &mut got)
            .map(|r| r.map(|()| got))
    }
}

/// The future of [`Consumer::receive_batch_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReceiveBatch {
    wait: Wait,
    max: usize,
}

impl Future for ReceiveBatch {
    type Output = Result<Vec<Delivery>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.max == 0 {
            return Poll::Ready(Ok(Vec::new()));
        }
        let mut got = Vec::new();
        let max = this.max;
        this.wait
            .poll_take(cx, max, &mut got)
            .map(|r| r.map(|()| got))
    }
}

/// The deliveries of a consumer as a `futures_core::Stream` (see
/// [`Consumer::deliveries`]): it waits without end for the next message,
/// and ends when the store is closed.
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct Deliveries {
    wait: Wait,
    done: bool,
}

impl futures_core::Stream for Deliveries {
    type Item = Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut got: Option<Delivery> = None;
        match this.wait.poll_take(cx, 1, &mut got) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(got.map(Ok)),
            Poll::Ready(Err(Error::Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl futures_core::FusedStream for Deliveries {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Consumer {
    /// [`Consumer::receive`] as a future: waits up to `timeout` for a
    /// message without blocking a thread (a send, a lease expiring or a
    /// nack delay ending wakes it), then leases it to the caller. Works on
    /// any executor. Dropping the future before it resolves leases nothing.
    ///
    /// ```
    /// # fn main() -> spool::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = spool::Store::open(dir.path(), spool::Options::default())?;
    /// let jobs = store.stream("jobs")?;
    /// let workers = jobs.consumer("workers")?;
    /// jobs.send(b"resize image 7")?;
    /// futures::executor::block_on(async {
    ///     let job = workers.receive_async(std::time::Duration::from_secs(1)).await?;
    ///     let job = job.expect("a message was sent");
    ///     assert_eq!(job.payload(), b"resize image 7");
    ///     job.ack_async().await
    /// })
    /// # }
    /// ```
    pub fn receive_async(&self, timeout: Duration) -> Receive {
        Receive {
            wait: Wait::new(self.clone(), Some(timeout)),
        }
    }

    /// [`Consumer::receive_batch`] as a future: waits up to `timeout` for
    /// at least one message, then leases up to `max` available at once.
    pub fn receive_batch_async(&self, max: usize, timeout: Duration) -> ReceiveBatch {
        ReceiveBatch {
            wait: Wait::new(self.clone(), Some(timeout)),
            max,
        }
    }

    /// Every delivery of this consumer, as a `futures_core::Stream` that
    /// waits without end for the next one and ends when the store is
    /// closed (so a service's receive loop ends with it).
    pub fn deliveries(&self) -> Deliveries {
        Deliveries {
            wait: Wait::new(self.clone(), None),
            done: false,
        }
    }
}
