//! Request/response on streams.
//!
//! A request is a message with two headers: `reply-to` (the stream the reply
//! goes to) and `correlation-id` (random, 32 hex digits). A responder answers
//! with [`crate::Delivery::reply`], which appends the reply to the reply-to
//! stream with the same correlation id. The requester waits for it.
//!
//! Waiting: per reply stream the store keeps one router, which reads the
//! stream through the consumer [`REPLY_CONSUMER`] (a name reserved for it).
//! A waiting thread reads, under the router's lock, whatever the stream
//! holds (without blocking) and parks every reply under its correlation id,
//! unacknowledged, until its requester takes it; then it sleeps until the
//! next send to the stream. Every reply ends acknowledged, out of order so
//! that none holds up the others: taken by its requester; or dropped, as a
//! duplicate of a reply already parked or taken, as the reply to a wait
//! that timed out, or unclaimed for `UNCLAIMED_REPLY_AGE` (or the reply
//! stream's `max_age`) after it was read, or as the oldest parked one when
//! `PARKED_MAX` are. Replies are durable messages: after a restart, a
//! requester can still collect the reply to a correlation id it sent before.

use crate::consumer::{Consumer, ConsumerConfig, ConsumerStats, Delivery};
use crate::ctx::random_u64;
use crate::log::Record;
use crate::message::request_headers::{CORRELATION_ID, REPLY_TO};
use crate::message::Message;
use crate::stream::{Stream, StreamInner, Streams};
use crate::wake::Durable;
use crate::{name, Error, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use crate::stream::REPLY_CONSUMER;

/// How long a reply nobody waits for stays parked after the router read it,
/// unless the reply stream has a `max_age` (then that long): 10 minutes.
/// Then it is acknowledged and dropped.
const UNCLAIMED_REPLY_AGE: Duration = Duration::from_secs(600);
/// Most replies parked at once per reply stream; beyond, the oldest one
/// nobody waits for is dropped.
const PARKED_MAX: usize = 100_000;
/// Correlation ids of waits that timed out, remembered to drop late replies.
const TIMED_OUT_MAX: usize = 100_000;
/// Correlation ids whose reply was taken, remembered to drop duplicates.
const TAKEN_MAX: usize = 100_000;
/// The router's lease on the replies it read: far longer than any reply is
/// parked by default (a lease that ran out only redelivers a parked reply,
/// which the router recognizes).
const LEASE: Duration = Duration::from_secs(3600);
/// A waiting thread looks again at least this often (for leases run out).
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Replies read from the stream at once.
const BATCH: usize = 256;
/// A wait acknowledges at least this many dropped replies at a time, and
/// goes on for at most [`DROP_TIME`]; the rest are left to the next.
const DROP_MIN: usize = 16;
/// See [`DROP_MIN`] (with `Durability::Always` each acknowledgement waits
/// for a sync: a wait that drops many must not take that long).
const DROP_TIME: Duration = Duration::from_millis(10);

/// `msg` as a request: its own `reply-to` and `correlation-id` headers
/// replaced by these.
fn request_message<'a>(msg: Message<'a>, reply_to: &'a str, id: &'a str) -> Message<'a> {
    let mut m = Message {
        payload: msg.payload,
        headers: msg.headers,
        priority: msg.priority,
        attrs: msg.attrs,
    };
    m.headers
        .retain(|(k, _)| *k != CORRELATION_ID && *k != REPLY_TO);
    m.headers.push((REPLY_TO, reply_to.as_bytes()));
    m.headers.push((CORRELATION_ID, id.as_bytes()));
    m
}

/// A new correlation id: 128 random bits as 32 hex digits.
pub(crate) fn new_correlation_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

impl Stream {
    /// Sends `msg` as a request whose reply goes to the stream `reply_to`,
    /// and waits up to `timeout` for it. Fails with [`Error::Timeout`] if no
    /// reply came in time (a later one is acknowledged and dropped). Many
    /// threads may have requests in flight on the same reply stream.
    ///
    /// Only the first reply to a request is returned; duplicates (from a
    /// request answered twice) are dropped. See [`Stream::send_request`] for
    /// how long an uncollected reply is kept.
    ///
    /// ```
    /// use spool::{Error, Message, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let quotes = store.stream("quotes")?;
    ///
    ///     // A responder on another thread.
    ///     let pricing = quotes.consumer("pricing")?;
    ///     let responder = std::thread::spawn(move || -> spool::Result<()> {
    ///         let request = pricing.receive(Duration::from_secs(5))?.expect("a request");
    ///         request.reply(b"EUR 2.50")?;
    ///         request.ack()
    ///     });
    ///     let timeout = Duration::from_secs(5);
    ///     let reply = quotes.request(Message::new("espresso"), "quotes.replies", timeout)?;
    ///     assert_eq!(reply.payload(), b"EUR 2.50");
    ///     responder.join().expect("responder panicked")?;
    ///
    ///     // Nobody answers now.
    ///     let timeout = Duration::from_millis(50);
    ///     let unanswered = quotes.request(Message::new("tea"), "quotes.replies", timeout);
    ///     assert!(matches!(unanswered, Err(Error::Timeout { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn request(
        &self,
        msg: Message<'_>,
        reply_to: &str,
        timeout: std::time::Duration,
    ) -> Result<Record> {
        let id = self.send_request(msg, reply_to)?;
        self.store().wait_reply(reply_to, &id, timeout)
    }

    /// Sends `msg` as a request (with `reply-to` and a new `correlation-id`
    /// header) without waiting; returns the correlation id, to collect the
    /// reply later with [`crate::Store::wait_reply`] (also after a restart).
    ///
    /// A reply stays in the reply stream until the router reads it, which
    /// any wait for a reply on that stream does; from then on it is kept
    /// for 10 minutes, or for the reply stream's `max_age` if it has one
    /// (see [`crate::StreamConfig::max_age`]), and then acknowledged and
    /// dropped unless someone waits for it; at most 100,000 such replies
    /// per reply stream are kept (beyond, the oldest go first).
    ///
    /// ```
    /// use spool::{Message, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let quotes = store.stream("quotes")?;
    ///     let id = quotes.send_request(Message::new("espresso"), "quotes.replies")?;
    ///
    ///     // The responder may run much later (here: on this thread).
    ///     let request = quotes.consumer("pricing")?.try_receive()?.unwrap();
    ///     request.reply(b"EUR 2.50")?;
    ///     request.ack()?;
    ///
    ///     let reply = store.wait_reply("quotes.replies", &id, Duration::from_secs(5))?;
    ///     assert_eq!(reply.payload(), b"EUR 2.50");
    ///     Ok(())
    /// }
    /// ```
    pub fn send_request(&self, msg: Message<'_>, reply_to: &str) -> Result<String> {
        name::validate(reply_to)?;
        let id = new_correlation_id();
        self.send_message(request_message(msg, reply_to, &id))?;
        Ok(id)
    }

    /// Figures of the request router on this stream as a reply stream (its
    /// consumer [`REPLY_CONSUMER`]): `pending()` counts the replies neither
    /// taken by their requesters nor dropped yet. `None` if no requester has
    /// waited for a reply on this stream.
    pub fn reply_stats(&self) -> Option<ConsumerStats> {
        self.existing_consumer(REPLY_CONSUMER).map(|c| c.stats())
    }
}

impl Delivery {
    /// Answers a request: appends `payload` to the stream named by the
    /// request's `reply-to` header, with its `correlation-id`. Fails with
    /// [`Error::NotARequest`] if the message lacks those headers. The
    /// request itself still needs its `ack`. Returns the reply's offset in
    /// the reply stream.
    ///
    /// ```
    /// use spool::{request_headers, Error, Message, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let quotes = store.stream("quotes")?;
    ///     let id = quotes.send_request(Message::new("espresso"), "quotes.replies")?;
    ///     quotes.send(b"not a request")?;
    ///
    ///     let pricing = quotes.consumer("pricing")?;
    ///     let request = pricing.try_receive()?.unwrap();
    ///     assert_eq!(request.header(request_headers::CORRELATION_ID), Some(id.as_bytes()));
    ///     request.reply(b"EUR 2.50")?; // to "quotes.replies", with the same correlation id
    ///     request.ack()?;
    ///     let reply = store.wait_reply("quotes.replies", &id, Duration::ZERO)?;
    ///     assert_eq!(reply.header(request_headers::CORRELATION_ID), Some(id.as_bytes()));
    ///
    ///     let other = pricing.try_receive()?.unwrap();
    ///     assert!(matches!(other.reply(b"?"), Err(Error::NotARequest { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn reply(&self, payload: &[u8]) -> Result<u64> {
        self.reply_message(Message::new(payload))
    }

    /// Like [`Delivery::reply`], with headers and a priority of its own.
    pub fn reply_message(&self, msg: Message<'_>) -> Result<u64> {
        let reply_to = self
            .header(REPLY_TO)
            .and_then(|v| std::str::from_utf8(v).ok());
        let corr = self.header(CORRELATION_ID);
        let (Some(reply_to), Some(corr)) = (reply_to, corr) else {
            return Err(Error::NotARequest {
                offset: self.offset(),
            });
        };
        let target = self.consumer().stream().store_stream(reply_to)?;
        let mut m = Message {
            payload: msg.payload,
            headers: msg.headers.clone(),
            priority: msg.priority,
            attrs: msg.attrs,
        };
        m.headers.retain(|(k, _)| *k != CORRELATION_ID);
        m.headers.push((CORRELATION_ID, corr));
        target.send_message(m)
    }
}

/// A reply read and not taken yet (unacknowledged in the stream).
struct Parked {
    record: Record,
    /// When the router read it.
    at: Instant,
    /// Its key in [`State::arrival`].
    seq: u64,
}

/// A bounded set of correlation ids: beyond `max`, the oldest are forgotten.
struct Recent {
    ids: HashMap<String, u64>,
    /// Insertions, oldest first; an entry whose number no longer matches
    /// `ids` is stale (its id was removed or inserted again).
    order: VecDeque<(u64, String)>,
    next: u64,
    max: usize,
}

impl Recent {
    fn new(max: usize) -> Recent {
        Recent {
            ids: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max,
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    fn insert(&mut self, id: &str) {
        let n = self.next;
        self.next += 1;
        self.ids.insert(id.to_string(), n);
        self.order.push_back((n, id.to_string()));
        while self.order.len() > self.max {
            if let Some((n, old)) = self.order.pop_front() {
                if self.ids.get(&old) == Some(&n) {
                    self.ids.remove(&old);
                }
            }
        }
    }

    fn remove(&mut self, id: &str) {
        self.ids.remove(id);
    }
}

struct State {
    parked: HashMap<String, Parked>,
    /// Parked correlation ids in the order they were read, oldest first.
    arrival: BTreeMap<u64, String>,
    next_seq: u64,
    /// Ids whose reply was taken: a reply for one is a duplicate.
    taken: Recent,
    /// Ids whose wait timed out: a reply for one is late.
    timed_out: Recent,
    /// Threads waiting, per id: their replies are never dropped.
    waiting: HashMap<String, usize>,
    /// Replies dropped and not acknowledged yet.
    dropping: Vec<Position>,
}

/// Where a reply goes (its position, to acknowledge it).
type Position = (u8, u64);

fn position(r: &Record) -> Position {
    (r.priority(), r.offset())
}

impl State {
    fn new() -> State {
        State {
            parked: HashMap::new(),
            arrival: BTreeMap::new(),
            next_seq: 0,
            taken: Recent::new(TAKEN_MAX),
            timed_out: Recent::new(TIMED_OUT_MAX),
            waiting: HashMap::new(),
            dropping: Vec::new(),
        }
    }

    /// Takes the parked reply to `id`, if there is one.
    fn take(&mut self, id: &str) -> Option<Record> {
        let p = self.parked.remove(id)?;
        self.arrival.remove(&p.seq);
        self.taken.insert(id);
        Some(p.record)
    }

    /// Parks a reply just read, or drops it.
    fn park(&mut self, record: Record, now: Instant) {
        let corr = record
            .header(CORRELATION_ID)
            .and_then(|v| std::str::from_utf8(v).ok());
        let Some(corr) = corr else {
            // Not a reply at all.
            self.dropping.push(position(&record));
            return;
        };
        if self.taken.contains(corr) || self.timed_out.contains(corr) {
            // A duplicate of a reply taken, or late.
            self.dropping.push(position(&record));
            return;
        }
        if let Some(p) = self.parked.get(corr) {
            // The same reply again (its lease ran out) stays parked as it
            // was; another one is a duplicate.
            if position(&p.record) != position(&record) {
                self.dropping.push(position(&record));
            }
            return;
        }
        if self.parked.len() >= PARKED_MAX {
            self.drop_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.arrival.insert(seq, corr.to_string());
        self.parked.insert(
            corr.to_string(),
            Parked {
                record,
                at: now,
                seq,
            },
        );
    }

    /// Drops the oldest parked reply nobody waits for.
    fn drop_oldest(&mut self) {
        let oldest = self
            .arrival
            .iter()
            .find(|(_, id)| !self.waiting.contains_key(*id))
            .map(|(&seq, id)| (seq, id.clone()));
        if let Some((seq, id)) = oldest {
            self.arrival.remove(&seq);
            if let Some(p) = self.parked.remove(&id) {
                self.dropping.push(position(&p.record));
            }
        }
    }

    /// Drops the parked replies nobody waits for that were read `keep` ago
    /// or longer.
    fn age(&mut self, now: Instant, keep: Duration) {
        let mut old = Vec::new();
        for (&seq, id) in &self.arrival {
            let Some(p) = self.parked.get(id) else {
                continue;
            };
            if now.saturating_duration_since(p.at) < keep {
                // Read in order: the rest are younger.
                break;
            }
            if !self.waiting.contains_key(id) {
                old.push((seq, id.clone()));
            }
        }
        for (seq, id) in old {
            self.arrival.remove(&seq);
            if let Some(p) = self.parked.remove(&id) {
                self.dropping.push(position(&p.record));
            }
        }
    }
}

/// When a wait for `id` looks again: at `deadline` or after [`WAIT_SLICE`],
/// whichever is first; `Timeout` once the deadline has passed.
fn next_wake(id: &str, deadline: Option<Instant>) -> Result<Instant> {
    let now = Instant::now();
    match deadline {
        Some(d) if now >= d => Err(Error::Timeout {
            correlation_id: id.to_string(),
        }),
        Some(d) => Ok(d.min(now + WAIT_SLICE)),
        None => Ok(now + WAIT_SLICE),
    }
}

/// The replies of one reply stream, routed to their requesters. Holds no
/// strong reference to the store (the store holds the router).
pub(crate) struct Router {
    stream: Arc<StreamInner>,
    store: Weak<dyn Streams>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("stream", &self.stream.name())
            .finish()
    }
}

impl Router {
    pub(crate) fn new(stream: Arc<StreamInner>, store: Weak<dyn Streams>) -> Router {
        Router {
            stream,
            store,
            state: Mutex::new(State::new()),
        }
    }

    fn consumer(&self) -> Result<Consumer> {
        let store = self.store.upgrade().ok_or(Error::Closed)?;
        Stream::from_inner(self.stream.clone(), store)
            .router_consumer(&ConsumerConfig::default().visibility_timeout(LEASE))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the reply with `id`, acknowledges it and
    /// returns it. What the stream holds already is read first, also with a
    /// zero `timeout`; only a wait that timed out after waiting (a non-zero
    /// `timeout`, and no other thread waiting for `id`) has a reply arriving
    /// later dropped, unless `id` is waited for again before it is read.
    pub(crate) fn wait(&self, id: &str, timeout: Duration) -> Result<Record> {
        let deadline = Instant::now().checked_add(timeout);
        let (consumer, keep) = self.begin(id)?;
        let got = self.wait_for(&consumer, id, deadline, keep);
        self.end(id, &got, timeout);
        got
    }

    /// Starts a wait for `id`: the consumer to read replies with, and how
    /// long an unclaimed reply is kept.
    fn begin(&self, id: &str) -> Result<(Consumer, Duration)> {
        let consumer = self.consumer()?;
        let keep = consumer
            .stream()
            .config()
            .max_age
            .unwrap_or(UNCLAIMED_REPLY_AGE);
        let mut st = self.lock();
        // Waited for again: a reply is wanted after all.
        st.timed_out.remove(id);
        *st.waiting.entry(id.to_string()).or_insert(0) += 1;
        Ok((consumer, keep))
    }

    /// Ends a wait for `id` begun with [`Router::begin`] that ended with
    /// `got` (`None`: given up, as a dropped future does).
    fn end(&self, id: &str, got: &Result<Record>, timeout: Duration) {
        let mut st = self.lock();
        let others = match st.waiting.get_mut(id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            _ => {
                st.waiting.remove(id);
                false
            }
        };
        if matches!(got, Err(Error::Timeout { .. }))
            && !timeout.is_zero()
            && !others
            && !st.taken.contains(id)
        {
            st.timed_out.insert(id);
        }
    }

    fn wait_for(
        &self,
        consumer: &Consumer,
        id: &str,
        deadline: Option<Instant>,
        keep: Duration,
    ) -> Result<Record> {
        let notify = consumer.stream().notify();
        loop {
            // Registered before reading: a reply sent after the read wakes us.
            let waiter = notify.prepare();
            if let Some(r) = self.step(consumer, id, keep)? {
                return Ok(r);
            }
            waiter.wait_until(next_wake(id, deadline)?);
        }
    }

    /// One look for the reply to `id`: takes (and acknowledges) it if it
    /// was read already or is in the stream now.
    fn step(&self, consumer: &Consumer, id: &str, keep: Duration) -> Result<Option<Record>> {
        let mut st = self.lock();
        let mut read = Ok(());
        let mut found = st.take(id);
        if found.is_none() {
            read = self.read(&mut st, consumer, id);
            found = st.take(id);
        }
        st.age(Instant::now(), keep);
        let drops = std::mem::take(&mut st.dropping);
        std::mem::drop(st);
        // Acknowledged out of order, outside the lock (with
        // `Durability::Always`, an acknowledgement waits for a sync).
        if let Some(record) = found {
            if let Err(e) = consumer.ack_offset(record.priority(), record.offset()) {
                // Not taken after all: the next wait may take it.
                let mut st = self.lock();
                st.taken.remove(id);
                st.park(record, Instant::now());
                st.dropping.extend(drops);
                return Err(e);
            }
            // The reply is taken: a failure to acknowledge the dropped
            // ones (which stay to be acknowledged) is for later calls.
            let _ = self.ack_dropped(consumer, drops);
            return Ok(Some(record));
        }
        self.ack_dropped(consumer, drops)?;
        read?;
        Ok(None)
    }

    /// Acknowledges dropped replies: [`DROP_MIN`] at least, for
    /// [`DROP_TIME`] at most; gives back the rest (and one that failed).
    fn ack_dropped(&self, consumer: &Consumer, drops: Vec<Position>) -> Result<()> {
        let start = Instant::now();
        let mut rest = drops.into_iter();
        let mut done = 0;
        let mut result = Ok(());
        while done < DROP_MIN || start.elapsed() < DROP_TIME {
            let Some((priority, offset)) = rest.next() else {
                return Ok(());
            };
            if let Err(e) = consumer.ack_offset(priority, offset) {
                self.lock().dropping.push((priority, offset));
                result = Err(e);
                break;
            }
            done += 1;
        }
        let mut st = self.lock();
        st.dropping.extend(rest);
        result
    }

    /// Reads what the stream holds now (without waiting), parking every
    /// reply, until it holds no more or the reply to `id` was read.
    fn read(&self, st: &mut State, consumer: &Consumer, id: &str) -> Result<()> {
        loop {
            let got = consumer.receive_batch(BATCH, Duration::ZERO)?;
            let n = got.len();
            let now = Instant::now();
            for d in got {
                // Parked replies are acknowledged by position; the lease
                // itself may run out.
                st.park(d.record().clone(), now);
            }
            if n < BATCH || st.parked.contains_key(id) {
                return Ok(());
            }
        }
    }
}

/// The future of [`crate::Store::wait_reply_async`]: waits for the reply to
/// one request without blocking a thread (a reply arriving wakes it, and
/// the store's timer its deadline). Dropping it gives up the wait; a reply
/// that arrives later stays to be collected, as after a blocking wait that
/// was never made.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WaitReply {
    /// `None` if the wait failed before it began (`failed` says why).
    router: Option<Arc<Router>>,
    id: String,
    timeout: Duration,
    /// Set at the first poll.
    started: Option<Started>,
    /// An error found before the first poll.
    failed: Option<Error>,
    done: bool,
}

#[derive(Debug)]
struct Started {
    consumer: Consumer,
    keep: Duration,
    deadline: Option<Instant>,
    task: Option<crate::notify::TaskKey>,
    timer: Option<crate::wake::TimerKey>,
}

impl WaitReply {
    pub(crate) fn new(router: Result<Arc<Router>>, id: String, timeout: Duration) -> WaitReply {
        let (router, failed) = match router {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        WaitReply {
            router,
            id,
            timeout,
            started: None,
            failed,
            done: false,
        }
    }

    /// Gives the registrations back.
    fn release(&mut self) {
        if let Some(s) = &mut self.started {
            if let Some(k) = s.task.take() {
                s.consumer.stream().notify().deregister(k);
            }
            if let (Some(k), Some(r)) = (s.timer.take(), &self.router) {
                r.stream.ctx().timer.cancel(k);
            }
        }
    }

    fn finish(&mut self, got: Result<Record>) -> Poll<Result<Record>> {
        self.release();
        if let (Some(_), Some(r)) = (&self.started, &self.router) {
            r.end(&self.id, &got, self.timeout);
        }
        self.done = true;
        Poll::Ready(got)
    }
}

impl Future for WaitReply {
    type Output = Result<Record>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Record>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::Internal(
                "future polled after it resolved".into(),
            )));
        }
        if let Some(e) = this.failed.take() {
            return this.finish(Err(e));
        }
        let Some(router) = this.router.clone() else {
            return this.finish(Err(Error::Internal("a reply wait without a router".into())));
        };
        if this.started.is_none() {
            match router.begin(&this.id) {
                Ok((consumer, keep)) => {
                    this.started = Some(Started {
                        consumer,
                        keep,
                        deadline: Instant::now().checked_add(this.timeout),
                        task: None,
                        timer: None,
                    })
                }
                Err(e) => return this.finish(Err(e)),
            }
        }
        let s = this.started.as_mut().expect("started above");
        // Registered before reading: a reply sent after the read wakes us.
        s.consumer
            .stream()
            .notify()
            .register(&mut s.task, cx.waker());
        match router.step(&s.consumer, &this.id, s.keep) {
            Ok(Some(r)) => return this.finish(Ok(r)),
            Ok(None) => {}
            Err(e) => return this.finish(Err(e)),
        }
        match next_wake(&this.id, s.deadline) {
            Err(e) => this.finish(Err(e)),
            Ok(until) => {
                let timer = &router.stream.ctx().timer;
                if let Some(old) = s.timer.take() {
                    timer.cancel(old);
                }
                s.timer = Some(timer.at(until, cx.waker()));
                Poll::Pending
            }
        }
    }
}

impl Drop for WaitReply {
    fn drop(&mut self) {
        if !self.done {
            self.release();
            if let (Some(_), Some(r)) = (&self.started, &self.router) {
                // Given up: neither taken nor timed out.
                r.end(&self.id, &Err(Error::Closed), Duration::ZERO);
            }
        }
    }
}

/// The future of [`Stream::request_async`]: the request's durable send,
/// then the wait for its reply.
#[must_use = "futures do nothing unless polled"]
pub struct Request {
    send: Option<Durable<u64>>,
    wait: Pin<Box<dyn Future<Output = Result<Record>> + Send>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("sent", &self.send.is_none())
            .finish()
    }
}

impl Future for Request {
    type Output = Result<Record>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Record>> {
        let this = self.get_mut();
        if let Some(send) = &mut this.send {
            match Pin::new(send).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.send = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(_)) => this.send = None,
            }
        }
        this.wait.as_mut().poll(cx)
    }
}

impl Stream {
    /// [`Stream::request`] without blocking a thread: sends `msg` as a
    /// request (when this is called), then waits up to `timeout` for the
    /// reply on `reply_to`. Fails with [`Error::Timeout`] if none came in
    /// time.
    pub fn request_async(&self, msg: Message<'_>, reply_to: &str, timeout: Duration) -> Request {
        let failed = |e: Error| Request {
            send: Some(Durable::ready(Err(e))),
            wait: Box::pin(std::future::ready(Err(Error::Internal(
                "a failed request waited".into(),
            )))),
        };
        if let Err(e) = name::validate(reply_to) {
            return failed(e);
        }
        let id = new_correlation_id();
        let wait = self.store().wait_reply_async(reply_to, id.clone(), timeout);
        let send = self.send_message_async(request_message(msg, reply_to, &id));
        Request {
            send: Some(send),
            wait,
        }
    }
}
