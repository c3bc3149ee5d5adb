//! Spool → JetStream, exactly once on the subject.
//!
//! A durable Spool consumer reads the stream. Messages are published as a
//! continuous pipeline (up to `window` publishes in flight; the next ones
//! go out while earlier acks come in), each with
//!
//! - `Nats-Msg-Id: <origin>/<stream>/<priority>/<offset>`,
//! - `Nats-Expected-Last-Subject-Sequence`: the subject's last sequence as
//!   this bridge knows it (exact when nothing of its own is in flight,
//!   else the last one sent + 1: consecutive when nothing else writes to
//!   the JetStream stream),
//! - while an earlier publish is unconfirmed, `Nats-Expected-Last-Msg-Id`:
//!   that publish's id, so a message is stored only right after the one
//!   before it (a wrong sequence guess can then only fail, never leave a
//!   hole: a later guess that happens to match is refused by the id),
//! - [`ORIGIN`] and [`POSITION`]: the bridge's origin and, per priority, the
//!   highest Spool offset published so far, this message included,
//! - the message's own headers (those NATS cannot carry exactly encoded,
//!   see [`crate::headers`]) and its payload.
//!
//! A message is acknowledged locally only after JetStream's publish ack;
//! the acks that are in are acknowledged together (one journal record, one
//! sync), in order, while later publishes are in flight.
//! At start and after any failure the bridge waits out what is in flight,
//! reads the last message on the subject from the stream leader
//! (`STREAM.MSG.GET` last-by-subject) and takes its position: a delivery at
//! or below it, per priority, is already on the subject and is
//! acknowledged without publishing. Because the compare-and-set makes the
//! subject a single chain without holes, and a priority's messages reach
//! the chain in offset order, "at or below the last position" is exactly
//! "published", whatever happened to the bridge or for how long NATS was
//! away (the duplicate window plays no part).

use crate::{nats, BridgeError, Result};
use async_nats::header::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::Context;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use spool::{dead_letter_headers, Consumer, ConsumerConfig, Delivery, Message, Store};
use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::time::Duration;

/// Header: the origin of the bridge that published the message.
pub const ORIGIN: &str = "Spool-Bridge-Origin";
/// Header: per priority, the highest Spool offset published so far
/// (`p:o,p:o`), this message included.
pub const POSITION: &str = "Spool-Bridge-Position";
/// Header: the message's Spool priority.
pub const PRIORITY: &str = "Spool-Priority";
/// Header: the message's Spool offset within its priority.
pub const OFFSET: &str = "Spool-Offset";

/// What to forward, and how.
#[derive(Clone, Debug)]
pub struct OutboundConfig {
    /// The Spool stream read.
    pub stream: String,
    /// The JetStream subject written; a JetStream stream must capture it.
    pub subject: String,
    /// The durable Spool consumer's name.
    pub consumer: String,
    /// Names this store in message ids and in [`ORIGIN`]: the subject
    /// must be written by this bridge alone.
    pub origin: String,
    /// Most publishes in flight at once.
    pub window: usize,
    /// Where a message NATS cannot carry (larger than the server's
    /// `max_payload`) is set aside, as the Spool consumer's dead-letter
    /// stream: appended there (durably, with
    /// [`spool::dead_letter_headers`] and the reason) before any later
    /// message is published, then acknowledged. `None`: such a message
    /// stops the bridge with [`BridgeError::TooLarge`].
    pub dead_letter: Option<String>,
    /// A testing seam (off by default): abort at a protocol step.
    pub fault: std::sync::Arc<crate::fault::Fault>,
}

impl OutboundConfig {
    /// Forward `stream` to `subject`, with the consumer `bridge-out`, the
    /// origin `spool` and 256 publishes in flight.
    pub fn new(stream: &str, subject: &str) -> OutboundConfig {
        OutboundConfig {
            stream: stream.to_string(),
            subject: subject.to_string(),
            consumer: "bridge-out".to_string(),
            origin: "spool".to_string(),
            window: 256,
            dead_letter: None,
            fault: Default::default(),
        }
    }
}

/// Where the subject stands: its last sequence and the published positions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The stream sequence of the subject's last message (0: none).
    pub last_sequence: u64,
    /// Per priority, the highest offset published.
    pub published: BTreeMap<u8, u64>,
}

impl Position {
    fn covers(&self, priority: u8, offset: u64) -> bool {
        self.published.get(&priority).is_some_and(|&o| offset <= o)
    }
    fn encode_map(map: &BTreeMap<u8, u64>) -> String {
        let parts: Vec<String> = map.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        parts.join(",")
    }
    fn decode(s: &str) -> Option<BTreeMap<u8, u64>> {
        let mut map = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once(':')?;
            map.insert(p.parse().ok()?, o.parse().ok()?);
        }
        Some(map)
    }
}

/// Reads the subject's last message from the stream leader and the
/// position it carries.
pub async fn read_position(js: &Context, config: &OutboundConfig) -> Result<Position> {
    let name = js
        .stream_by_subject(config.subject.clone())
        .await
        .map_err(nats)?;
    let stream = js.get_stream_no_info(name).await.map_err(nats)?;
    let last = match stream
        .get_last_raw_message_by_subject(&config.subject)
        .await
    {
        Ok(m) => m,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
            return Ok(Position::default())
        }
        Err(e) => return Err(nats(e)),
    };
    let foreign = |why: &str| BridgeError::ForeignSubject {
        subject: config.subject.clone(),
        sequence: last.sequence,
        why: why.to_string(),
    };
    match last.headers.get(ORIGIN) {
        Some(o) if o.as_str() == config.origin => {}
        Some(o) => return Err(foreign(&format!("origin {:?}", o.as_str()))),
        None => return Err(foreign("no origin header")),
    }
    let published = last
        .headers
        .get(POSITION)
        .and_then(|v| Position::decode(v.as_str()))
        .ok_or_else(|| foreign("no readable position header"))?;
    Ok(Position {
        last_sequence: last.sequence,
        published,
    })
}

fn message_headers(d: &Delivery) -> HeaderMap {
    let mut headers = HeaderMap::new();
    crate::headers::encode(d.headers(), &mut headers);
    headers
}

type AckFuture = <PublishAckFuture as IntoFuture>::IntoFuture;

/// A delivery in the pipeline, in the order it entered the chain.
struct Entry {
    delivery: Delivery,
    /// The publish ack to wait for; `None`: nothing was published for it
    /// (already on the subject), acknowledged locally once every entry
    /// before it is.
    ack: Option<AckFuture>,
}

/// The pipeline's state between its steps.
struct Pipeline {
    /// Received, not yet published (in delivery order).
    pending: VecDeque<Delivery>,
    /// Published (or covered) and not yet acknowledged locally, in order.
    in_flight: VecDeque<Entry>,
    /// The subject's position as read or confirmed by publish acks.
    confirmed: Option<Position>,
    /// The position after every publish sent (the next message's header).
    sent: Position,
    /// The id of the last publish sent while its ack is outstanding.
    last_sent_id: Option<String>,
    /// Local acks journaled, their syncs under way.
    syncs: FuturesUnordered<spool::Durable<()>>,
    /// Most entries in flight now (1 after a failure, grows per ack).
    limit: usize,
}

fn message_id(config: &OutboundConfig, d: &Delivery) -> String {
    format!(
        "{}/{}/{}/{}",
        config.origin,
        config.stream,
        d.priority(),
        d.offset()
    )
}

impl Pipeline {
    fn sends_in_flight(&self) -> bool {
        self.in_flight.iter().any(|e| e.ack.is_some())
    }

    /// Publishes pending deliveries up to the limit. Returns `false` if a
    /// publish could not be sent (the caller treats it as a failure).
    async fn fill(
        &mut self,
        js: &Context,
        consumer: &Consumer,
        dl: Option<&spool::Stream>,
        config: &OutboundConfig,
    ) -> Result<bool> {
        let mut sent_any = false;
        let mut ok = true;
        while self.in_flight.len() < self.limit {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            if self.sent.covers(d.priority(), d.offset()) {
                // On the subject already (or its publish is in flight).
                self.in_flight.push_back(Entry {
                    delivery: d,
                    ack: None,
                });
                continue;
            }
            let mut next = self.sent.published.clone();
            next.insert(d.priority(), d.offset());
            let mut headers = message_headers(&d);
            headers.insert(ORIGIN, config.origin.as_str());
            headers.insert(POSITION, Position::encode_map(&next));
            headers.insert(PRIORITY, d.priority().to_string());
            headers.insert(OFFSET, d.offset().to_string());
            let id = message_id(config, &d);
            let mut msg = PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(d.payload()))
                .headers(headers)
                .message_id(&id)
                .expected_last_subject_sequence(self.sent.last_sequence);
            // While the previous publish is unconfirmed, this one may only
            // be stored right after it: the subject sequence is a guess
            // then (consecutive unless something else writes to the
            // JetStream stream), the previous message id is not.
            if let Some(prev) = &self.last_sent_id {
                msg = msg.expected_last_message_id(prev);
            }
            match js.send_publish(config.subject.clone(), msg).await {
                Ok(ack) => {
                    self.sent.published = next;
                    self.sent.last_sequence += 1;
                    self.last_sent_id = Some(id);
                    self.in_flight.push_back(Entry {
                        delivery: d,
                        ack: Some(Box::pin(ack.into_future())),
                    });
                    sent_any = true;
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    let why = e.to_string();
                    // Set aside before any later message is published (its
                    // position would cover this one).
                    if let Err(e) = dead_letter(dl, config, &d, &why).await {
                        self.pending.push_front(d);
                        return Err(e);
                    }
                    self.syncs.push(consumer.ack_batch_async([d]));
                }
                Err(_) => {
                    self.pending.push_front(d);
                    ok = false;
                    break;
                }
            }
        }
        if sent_any {
            config.fault.reached(crate::fault::Point::PublishSent);
        }
        Ok(ok)
    }

    /// Takes the front entries whose acks are in (`first` is the front's
    /// result, if it was just awaited), acknowledges them locally (one
    /// journal record, one sync). Returns `false` on a failed publish.
    fn confirm(
        &mut self,
        consumer: &Consumer,
        config: &OutboundConfig,
        mut first: Option<Result<PublishAck, PublishError>>,
        published: &mut u64,
    ) -> Result<bool> {
        let mut done = Vec::new();
        let mut ok = true;
        while let Some(front) = self.in_flight.front_mut() {
            let result = match (first.take(), front.ack.as_mut()) {
                (Some(r), _) => Some(r),
                (None, None) => None,
                (None, Some(ack)) => match ack.as_mut().now_or_never() {
                    Some(r) => Some(r),
                    None => break,
                },
            };
            if let Some(r) = result {
                match r {
                    Ok(ack) if !ack.duplicate => {
                        let d = &front.delivery;
                        if let Some(c) = self.confirmed.as_mut() {
                            c.published.insert(d.priority(), d.offset());
                            c.last_sequence = ack.sequence;
                        }
                        *published += 1;
                        self.limit = (self.limit + 1).min(config.window.max(1));
                    }
                    // A duplicate (its id seen within the window) or a
                    // failure: what is on the subject is re-read.
                    _ => {
                        front.ack = None; // resolved: not to be awaited again
                        ok = false;
                        break;
                    }
                }
            }
            if let Some(e) = self.in_flight.pop_front() {
                done.push(e.delivery);
            }
        }
        if !self.sends_in_flight() {
            self.last_sent_id = None;
            if let Some(c) = &self.confirmed {
                self.sent.last_sequence = c.last_sequence;
            }
        }
        if !done.is_empty() {
            config.fault.reached(crate::fault::Point::PublishAcked);
            // The local acks, only after the publish acks.
            self.syncs.push(consumer.ack_batch_async(done));
        }
        Ok(ok)
    }

    /// After a failure: waits out every outstanding publish, puts the
    /// unacknowledged deliveries back in front, forgets the position.
    async fn reset(&mut self) {
        let mut back = Vec::with_capacity(self.in_flight.len());
        while let Some(e) = self.in_flight.pop_front() {
            if let Some(ack) = e.ack {
                let _ = ack.await;
            }
            back.push(e.delivery);
        }
        for d in back.into_iter().rev() {
            self.pending.push_front(d);
        }
        self.confirmed = None;
        self.last_sent_id = None;
        self.limit = 1;
    }
}

/// Forwards the stream to the subject until `shutdown` resolves or the
/// store closes. Returns how many messages it published.
///
/// NATS being away is not an error: the bridge retries (every 200 ms) and
/// the stream keeps taking sends meanwhile.
pub async fn run(
    store: &Store,
    js: &Context,
    config: &OutboundConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<u64> {
    let stream = store.stream(&config.stream)?;
    // Leases long enough that a held message is not redelivered while
    // NATS is away (a redelivery would be filtered by the position anyway).
    let mut consumer_config =
        ConsumerConfig::default().visibility_timeout(Duration::from_secs(24 * 3600));
    consumer_config.dead_letter = config.dead_letter.clone();
    let consumer = stream.consumer_with(&config.consumer, consumer_config)?;
    let dl = match &config.dead_letter {
        Some(name) => Some(store.stream(name)?),
        None => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut published = 0u64;
    let window = config.window.max(1);
    let mut p = Pipeline {
        pending: VecDeque::new(),
        in_flight: VecDeque::new(),
        confirmed: None,
        sent: Position::default(),
        last_sent_id: None,
        syncs: FuturesUnordered::new(),
        limit: window,
    };
    loop {
        let before = published;
        if p.confirmed.is_none() && !p.pending.is_empty() {
            let pos = match read_position(js, config).await {
                Ok(pos) => pos,
                Err(e @ BridgeError::ForeignSubject { .. }) => return Err(e),
                Err(_) => {
                    tokio::select! {
                        _ = &mut shutdown => return finish(&mut p, published).await,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            };
            // Already on the subject: acknowledge without publishing.
            let (done, rest): (VecDeque<Delivery>, VecDeque<Delivery>) = p
                .pending
                .drain(..)
                .partition(|d| pos.covers(d.priority(), d.offset()));
            p.pending = rest;
            if !done.is_empty() {
                p.syncs.push(consumer.ack_batch_async(done));
            }
            p.sent = pos.clone();
            p.confirmed = Some(pos);
        }
        let mut ok = true;
        if p.confirmed.is_some() {
            ok = match p.fill(js, &consumer, dl.as_ref(), config).await {
                Ok(ok) => ok,
                Err(e) => {
                    // Stopping: what it holds is given back, so that a run
                    // in the same process receives it again.
                    p.reset().await;
                    for d in p.pending.drain(..) {
                        let _ = d.nack();
                    }
                    let _ = finish(&mut p, published).await;
                    return Err(e);
                }
            };
        }
        if ok && !p.in_flight.is_empty() && p.in_flight.front().is_some_and(|e| e.ack.is_none()) {
            ok = p.confirm(&consumer, config, None, &mut published)?;
        }
        if ok {
            let room = p.limit.saturating_sub(p.in_flight.len() + p.pending.len());
            let receive = async {
                if room == 0 {
                    std::future::pending::<()>().await;
                }
                consumer
                    .receive_batch_async(room, Duration::from_millis(200))
                    .await
            };
            tokio::select! {
                _ = &mut shutdown => return finish(&mut p, published).await,
                r = front_ack(&mut p.in_flight) => {
                    ok = p.confirm(&consumer, config, Some(r), &mut published)?;
                }
                b = receive => match b {
                    Ok(b) => p.pending.extend(b),
                    Err(spool::Error::Closed) => return finish(&mut p, published).await,
                    Err(e) => return Err(e.into()),
                },
                Some(r) = p.syncs.next(), if !p.syncs.is_empty() => r?,
            }
        }
        if !ok {
            p.reset().await;
            if published == before {
                tokio::select! {
                    _ = &mut shutdown => return finish(&mut p, published).await,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Appends `d` to the consumer's dead-letter stream (durably), with the
/// dead-letter headers and `why`; or [`BridgeError::TooLarge`] without one.
/// The Spool message id `spool-bridge/<consumer>/<priority>/<offset>` keeps
/// a crash between the append and the local ack from setting it aside
/// twice (within the dead-letter stream's dedup window).
async fn dead_letter(
    dl: Option<&spool::Stream>,
    config: &OutboundConfig,
    d: &Delivery,
    why: &str,
) -> Result<()> {
    let too_large = || BridgeError::TooLarge {
        stream: config.stream.clone(),
        priority: d.priority(),
        offset: d.offset(),
        why: why.to_string(),
    };
    let Some(dl) = dl else {
        return Err(too_large());
    };
    let reason = format!("spool-bridge: NATS cannot carry it: {why}");
    let (offset, priority) = (d.offset().to_string(), d.priority().to_string());
    let attempts = d.attempt().to_string();
    let id = format!("spool-bridge/{}/{}/{}", config.consumer, priority, offset);
    let build = |keep: bool| {
        let mut m = Message::new(d.payload()).id(&id);
        if keep {
            for (k, v) in d.headers() {
                m = m.header(k, v);
            }
        }
        m.header(dead_letter_headers::STREAM, &config.stream)
            .header(dead_letter_headers::CONSUMER, &config.consumer)
            .header(dead_letter_headers::OFFSET, &offset)
            .header(dead_letter_headers::PRIORITY, &priority)
            .header(dead_letter_headers::ATTEMPTS, &attempts)
            .header(dead_letter_headers::REASON, &reason)
    };
    match dl.send_message_async(build(true)).await {
        Ok(_) => {}
        // Its own headers do not fit beside the dead-letter ones.
        Err(spool::Error::InvalidHeaders { .. } | spool::Error::MessageTooLarge { .. }) => {
            dl.send_message_async(build(false)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Resolves with the front entry's publish ack (never, if none).
async fn front_ack(in_flight: &mut VecDeque<Entry>) -> Result<PublishAck, PublishError> {
    match in_flight.front_mut().and_then(|e| e.ack.as_mut()) {
        Some(ack) => ack.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Stops: the local acks journaled so far are made durable.
async fn finish(p: &mut Pipeline, published: u64) -> Result<u64> {
    while let Some(r) = p.syncs.next().await {
        r?;
    }
    Ok(published)
}
