//! Spool → JetStream, exactly once on the subject.
//!
//! A durable Spool consumer reads the stream. Messages are published in
//! batches (many publishes in flight), each with
//!
//! - `Nats-Msg-Id: <origin>/<stream>/<priority>/<offset>`,
//! - `Nats-Expected-Last-Subject-Sequence`: the subject's last sequence as
//!   this bridge knows it (for the i-th message of a batch, the last known
//!   sequence + i: the sequences a stream gives one publisher are
//!   consecutive when nothing else writes to it in between; when something
//!   does, the check fails and the bridge re-reads the subject),
//! - [`ORIGIN`] and [`POSITION`]: the bridge's origin and, per priority, the
//!   highest Spool offset published so far, this message included,
//! - the message's own headers and payload unchanged.
//!
//! A message is acknowledged locally only after JetStream's publish ack.
//! At start and after any failure the bridge reads the last message on the
//! subject from the stream leader (`STREAM.MSG.GET` last-by-subject) and
//! takes its position: a delivery at or below it, per priority, is already
//! on the subject and is acknowledged without publishing. Because the
//! compare-and-set makes the subject a single chain, and a priority's
//! messages reach the chain in offset order, "at or below the last
//! position" is exactly "published", whatever happened to the bridge or
//! for how long NATS was away (the duplicate window plays no part).

use crate::{nats, BridgeError, Result};
use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::Context;
use spool::{ConsumerConfig, Delivery, Store};
use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
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
    fn encode(&self) -> String {
        let parts: Vec<String> = self
            .published
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect();
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

fn message_headers(d: &Delivery) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in d.headers() {
        let bad = || BridgeError::BadHeader {
            priority: d.priority(),
            offset: d.offset(),
            name: name.to_string(),
        };
        let n = HeaderName::from_str(name).map_err(|_| bad())?;
        let v = std::str::from_utf8(value).map_err(|_| bad())?;
        let v = HeaderValue::from_str(v).map_err(|_| bad())?;
        headers.append(n, v);
    }
    Ok(headers)
}

/// Publishes `batch` (all above `pos`) as one pipelined run. Returns how
/// many of them JetStream stored, in order; `pos` follows them. An error
/// after the first stored message is not returned: the caller re-reads the
/// subject and retries the rest.
async fn publish_batch(
    js: &Context,
    config: &OutboundConfig,
    batch: &[Delivery],
    pos: &mut Position,
) -> Result<usize> {
    let mut next = pos.clone();
    let mut acks = Vec::with_capacity(batch.len());
    for (i, d) in batch.iter().enumerate() {
        let mut headers = message_headers(d)?;
        next.published.insert(d.priority(), d.offset());
        headers.insert(ORIGIN, config.origin.as_str());
        headers.insert(POSITION, next.encode());
        headers.insert(PRIORITY, d.priority().to_string());
        headers.insert(OFFSET, d.offset().to_string());
        let id = format!(
            "{}/{}/{}/{}",
            config.origin,
            config.stream,
            d.priority(),
            d.offset()
        );
        let msg = PublishMessage::build()
            .payload(bytes::Bytes::copy_from_slice(d.payload()))
            .headers(headers)
            .message_id(id)
            .expected_last_subject_sequence(pos.last_sequence + i as u64);
        match js.send_publish(config.subject.clone(), msg).await {
            Ok(ack) => acks.push(ack),
            Err(_) => break,
        }
    }
    config.fault.reached(crate::fault::Point::PublishSent);
    let mut stored = 0;
    for ack in acks {
        match ack.await {
            Ok(ack) if !ack.duplicate => {
                let d = &batch[stored];
                pos.published.insert(d.priority(), d.offset());
                pos.last_sequence = ack.sequence;
                stored += 1;
            }
            // A duplicate (its id seen within the window) or a failure:
            // what is on the subject is re-read before going on.
            Ok(_) => break,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => break,
            Err(_) => break,
        }
    }
    Ok(stored)
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
    let consumer = stream.consumer_with(
        &config.consumer,
        ConsumerConfig::default().visibility_timeout(Duration::from_secs(24 * 3600)),
    )?;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut published = 0u64;
    let mut pos: Option<Position> = None;
    let mut window = config.window.max(1);
    loop {
        let take = consumer.receive_batch_async(window, Duration::from_millis(200));
        let mut batch = tokio::select! {
            _ = &mut shutdown => return Ok(published),
            b = take => match b {
                Ok(b) => b,
                Err(spool::Error::Closed) => return Ok(published),
                Err(e) => return Err(e.into()),
            },
        };
        while !batch.is_empty() {
            let p = match &pos {
                Some(p) => p.clone(),
                None => match read_position(js, config).await {
                    Ok(p) => p,
                    Err(e @ BridgeError::ForeignSubject { .. }) => return Err(e),
                    Err(_) => {
                        tokio::select! {
                            _ = &mut shutdown => return Ok(published),
                            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        }
                    }
                },
            };
            // Already on the subject: acknowledge without publishing.
            let (done, rest): (Vec<Delivery>, Vec<Delivery>) = batch
                .into_iter()
                .partition(|d| p.covers(d.priority(), d.offset()));
            if !done.is_empty() {
                consumer.ack_batch_async(done).await?;
            }
            batch = rest;
            if batch.is_empty() {
                pos = Some(p);
                break;
            }
            let mut p = p;
            let stored = publish_batch(js, config, &batch, &mut p).await?;
            // The local acks, only after the publish acks.
            if stored > 0 {
                config.fault.reached(crate::fault::Point::PublishAcked);
            }
            let rest = batch.split_off(stored);
            if !batch.is_empty() {
                consumer.ack_batch_async(batch).await?; // one record, one sync
            }
            published += stored as u64;
            batch = rest;
            if batch.is_empty() {
                pos = Some(p);
                window = (window * 2).min(config.window.max(1));
            } else {
                // Something failed: re-read the subject, go on one by one.
                pos = None;
                window = 1;
                if stored == 0 {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(published),
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
    }
}
