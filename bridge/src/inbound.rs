//! JetStream → Spool, exactly once in the stream.
//!
//! Each JetStream message is appended to the Spool stream (priority 0) with
//! its JetStream stream sequence in the record itself: the header
//! [`SEQUENCE`] (and [`STREAM`], the JetStream stream's name), and the
//! Spool message id `nats/<stream>/<sequence>` (Spool's own dedup, within
//! its window). Only once the append is durable is the message acked to
//! NATS.
//!
//! **The last appended sequence is read from the stream's tail**, not kept
//! in a file of its own: a separate record written after the append could
//! lag it (a crash between the two: the message appended again), one
//! written before could lead it (a crash between the two: a message
//! skipped). In the record, the sequence is durable exactly when the
//! message is. Appends are in sequence order and a bucket's durable part is
//! a prefix, so after any crash the tail's sequence `L` says: everything up
//! to `L` is in, nothing after it is.
//!
//! At start the bridge (re)creates its durable pull consumer to deliver
//! from `L + 1` (the consumer is a cursor hint: the truth is in Spool), so
//! no message above `L` can arrive before one below it that a dead bridge
//! left unacked. A redelivery at or below `L` is acked without appending.
//! The tail must stay retained (retention that deletes every message of
//! the stream would forget `L`).

use crate::{nats, Result};
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::Context;
use futures::StreamExt;
use spool::{Message, Store};
use std::future::Future;
use std::time::Duration;

/// Header: the JetStream stream sequence of an appended message.
pub const SEQUENCE: &str = "Nats-Stream-Sequence";
/// Header: the JetStream stream an appended message came from.
pub const STREAM: &str = "Nats-Stream";
/// Header: the subject an appended message was published to.
pub const SUBJECT: &str = "Nats-Subject";

/// Bounds of [`InboundConfig::ack_wait`].
pub const ACK_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// What to take in, and how.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// The JetStream subject (filter, wildcards allowed) read.
    pub subject: String,
    /// The Spool stream written.
    pub stream: String,
    /// The durable JetStream consumer's name.
    pub durable: String,
    /// Most messages fetched at once.
    pub batch: usize,
    /// The JetStream consumer's ack wait: how long a fetched message may
    /// stay unacked (appended and made durable) before NATS redelivers it
    /// (a redelivery at or below the last appended sequence is acked
    /// without appending). Within [`ACK_WAIT`]; default 60 s.
    pub ack_wait: Duration,
    /// A testing seam (off by default): abort at a protocol step.
    pub fault: std::sync::Arc<crate::fault::Fault>,
}

impl InboundConfig {
    /// Take `subject` into `stream` with the durable `spool-bridge-in` and
    /// batches of up to 256.
    pub fn new(subject: &str, stream: &str) -> InboundConfig {
        InboundConfig {
            subject: subject.to_string(),
            stream: stream.to_string(),
            durable: "spool-bridge-in".to_string(),
            batch: 256,
            ack_wait: Duration::from_secs(60),
            fault: Default::default(),
        }
    }
}

/// The JetStream sequence of the last message appended to `stream` from
/// the JetStream stream `js_stream` (0: none), read from the stream's tail.
pub fn last_appended(stream: &spool::Stream, js_stream: &str) -> Result<u64> {
    let stats = stream.stats();
    let Some(bucket) = stats.buckets.first() else {
        return Ok(0);
    };
    let mut offset = bucket.end_offset;
    while offset > bucket.first_offset {
        offset -= 1;
        let Some(record) = stream.read_priority(0, offset)? else {
            continue;
        };
        if record.header(STREAM) != Some(js_stream.as_bytes()) {
            continue;
        }
        let seq = record
            .header(SEQUENCE)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok());
        if let Some(seq) = seq {
            return Ok(seq);
        }
    }
    Ok(0)
}

/// Appends the subject's messages to the stream until `shutdown` resolves.
/// Returns how many it appended.
pub async fn run(
    store: &Store,
    js: &Context,
    config: &InboundConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<u64> {
    crate::check_duration("ack_wait", config.ack_wait, ACK_WAIT.0, ACK_WAIT.1)?;
    let stream = store.stream(&config.stream)?;
    let js_name = js
        .stream_by_subject(config.subject.clone())
        .await
        .map_err(nats)?;
    let js_stream = js.get_stream_no_info(&js_name).await.map_err(nats)?;
    let mut last = last_appended(&stream, &js_name)?;
    // The consumer restarts at last + 1 (see the module documentation).
    let _ = js_stream.delete_consumer(&config.durable).await;
    let deliver_policy = if last == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: last + 1,
        }
    };
    let consumer = js_stream
        .create_consumer(pull::Config {
            durable_name: Some(config.durable.clone()),
            filter_subject: config.subject.clone(),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut appended = 0u64;
    loop {
        let fetch = consumer
            .fetch()
            .max_messages(config.batch.max(1))
            .expires(Duration::from_millis(500))
            .messages();
        let mut messages = tokio::select! {
            _ = &mut shutdown => return Ok(appended),
            m = fetch => match m {
                Ok(m) => m,
                // NATS away: an outage, not an end. Try again.
                Err(_) => {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(appended),
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            },
        };
        let mut batch = Vec::new();
        while let Some(m) = messages.next().await {
            match m {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        // Append in sequence order (each write is placed when called),
        // then wait for them to be durable, then ack to NATS.
        let mut writes = Vec::new();
        let mut acks = Vec::new();
        for m in batch {
            let seq = m.info().map_err(nats)?.stream_sequence;
            if seq <= last {
                acks.push(m);
                continue;
            }
            let seq_text = seq.to_string();
            let id = format!("nats/{js_name}/{seq}");
            let subject = m.subject.to_string();
            let mut msg = Message::new(&m.payload[..])
                .id(&id)
                .header(STREAM, &js_name)
                .header(SEQUENCE, &seq_text)
                .header(SUBJECT, &subject);
            // Headers a bridge encoded come back as they were in Spool.
            let owned = m
                .headers
                .as_ref()
                .map(crate::headers::decode)
                .unwrap_or_default();
            for (n, v) in &owned {
                msg = msg.header(n, v);
            }
            writes.push(stream.send_message_async(msg));
            last = seq;
            appended += 1;
            acks.push(m);
        }
        let wrote = !writes.is_empty();
        if wrote {
            config.fault.reached(crate::fault::Point::AppendWritten);
        }
        for w in writes {
            w.await?;
        }
        if wrote {
            config.fault.reached(crate::fault::Point::AppendDurable);
            if config.fault.drops_acks() {
                continue;
            }
        }
        for m in acks {
            // A lost ack only means a redelivery, which is at or below
            // `last` and acked then.
            let _ = m.ack().await;
        }
    }
}
