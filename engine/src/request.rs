//! Request/response on streams.
//!
//! A request is a message with two headers: `reply-to` (the stream the reply
//! goes to) and `correlation-id` (random, 32 hex digits). A responder answers
//! with [`crate::Delivery::reply`], which appends the reply to the reply-to
//! stream with the same correlation id. The requester waits for it.
//!
//! Waiting: per reply stream the store keeps one router, which reads the
//! stream through the consumer [`REPLY_CONSUMER`] (a name reserved for it).
//! The waiting threads take turns reading ("pumping"); every reply read is
//! parked under its correlation id, unacknowledged, until its requester
//! takes it (then it is acknowledged). A reply whose request timed out is acknowledged and dropped.
//! Replies are durable messages: after a restart, a requester can still
//! collect the reply to a correlation id it sent before.

use crate::consumer::{Consumer, ConsumerConfig, ConsumerStats, Delivery};
use crate::ctx::random_u64;
use crate::log::Record;
use crate::message::request_headers::{CORRELATION_ID, REPLY_TO};
use crate::message::Message;
use crate::stream::{Stream, StreamInner, Streams};
use crate::{name, Error, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub use crate::stream::REPLY_CONSUMER;

/// Most replies parked at once per reply stream; beyond, the router stops
/// reading the stream (replies wait there) until requesters take some.
const PARKED_MAX: usize = 100_000;
/// Correlation ids of timed-out requests remembered (to drop late replies).
const TIMED_OUT_MAX: usize = 100_000;
/// A pumping thread returns at least this often to let others check.
const PUMP_SLICE: Duration = Duration::from_millis(100);

/// A new correlation id: 128 random bits as 32 hex digits.
pub(crate) fn new_correlation_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

impl Stream {
    /// Sends `msg` as a request whose reply goes to the stream `reply_to`,
    /// and waits up to `timeout` for it. Fails with [`Error::Timeout`] if no
    /// reply came in time (a later one is acknowledged and dropped). Many
    /// threads may have requests in flight on the same reply stream.
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
    pub fn send_request(&self, msg: Message<'_>, reply_to: &str) -> Result<String> {
        name::validate(reply_to)?;
        let id = new_correlation_id();
        let mut m = Message {
            payload: msg.payload,
            headers: msg.headers.clone(),
            priority: msg.priority,
        };
        m.headers
            .retain(|(k, _)| *k != CORRELATION_ID && *k != REPLY_TO);
        m.headers.push((REPLY_TO, reply_to.as_bytes()));
        m.headers.push((CORRELATION_ID, id.as_bytes()));
        self.send_message(m)?;
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
    /// request itself still needs its `ack`.
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
        };
        m.headers.retain(|(k, _)| *k != CORRELATION_ID);
        m.headers.push((CORRELATION_ID, corr));
        target.send_message(m)
    }
}

#[derive(Default)]
struct State {
    /// Replies read but not taken yet (unacknowledged in the stream).
    parked: HashMap<String, Record>,
    timed_out: HashSet<String>,
    timed_out_order: VecDeque<String>,
    pumping: bool,
}

/// The replies of one reply stream, routed to their requesters. Holds no
/// strong reference to the store (the store holds the router).
pub(crate) struct Router {
    stream: Arc<StreamInner>,
    store: Weak<dyn Streams>,
    state: Mutex<State>,
    arrived: Condvar,
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
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
        }
    }

    fn consumer(&self) -> Result<Consumer> {
        let store = self.store.upgrade().ok_or(Error::Closed)?;
        Stream::from_inner(self.stream.clone(), store).router_consumer(
            &ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600)),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the reply with `id`, acknowledges it and
    /// returns it. On timeout, a reply arriving later is dropped.
    pub(crate) fn wait(&self, id: &str, timeout: Duration) -> Result<Record> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.lock();
        loop {
            if let Some(record) = st.parked.remove(id) {
                drop(st);
                self.consumer()?
                    .ack_offset(record.priority(), record.offset())?;
                return Ok(record);
            }
            let now = Instant::now();
            let remaining = match deadline {
                Some(d) if now >= d => {
                    remember_timeout(&mut st, id);
                    return Err(Error::Timeout {
                        correlation_id: id.to_string(),
                    });
                }
                Some(d) => d - now,
                None => PUMP_SLICE,
            };
            if st.pumping || st.parked.len() >= PARKED_MAX {
                st = self
                    .arrived
                    .wait_timeout(st, remaining.min(PUMP_SLICE))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            st.pumping = true;
            drop(st);
            let got = self.pump(remaining.min(PUMP_SLICE));
            st = self.lock();
            st.pumping = false;
            self.arrived.notify_all();
            let got = got?;
            let mut late = Vec::new();
            for d in got {
                let record = d.record().clone();
                // Parked replies are acknowledged by offset when taken; the
                // lease itself may simply run out.
                drop(d);
                let corr = record
                    .header(CORRELATION_ID)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_string);
                match corr {
                    Some(c) if !st.timed_out.contains(&c) => {
                        st.parked.insert(c, record);
                    }
                    // Late (its request timed out) or not a reply at all.
                    _ => late.push(record),
                }
            }
            if !late.is_empty() {
                drop(st);
                let c = self.consumer()?;
                for r in late {
                    c.ack_offset(r.priority(), r.offset())?;
                }
                st = self.lock();
            }
        }
    }

    fn pump(&self, wait: Duration) -> Result<Vec<Delivery>> {
        self.consumer()?.receive_batch(256, wait)
    }
}

fn remember_timeout(st: &mut State, id: &str) {
    if st.timed_out.insert(id.to_string()) {
        st.timed_out_order.push_back(id.to_string());
        while st.timed_out_order.len() > TIMED_OUT_MAX {
            if let Some(old) = st.timed_out_order.pop_front() {
                st.timed_out.remove(&old);
            }
        }
    }
}
