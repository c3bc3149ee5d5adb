//! Sending dead letters back to where they came from (DESIGN.md §6,
//! "Re-driving dead letters").

use super::Stream;
use crate::consumer::Delivery;
use crate::message::{dead_letter_headers, Message};
use crate::options::Durability;
use crate::{Error, Result};
use std::time::Duration;

/// Dead letters taken at once by [`Stream::redrive`].
const REDRIVE_BATCH: usize = 256;

/// The prefix of the headers a dead letter gets (see
/// [`dead_letter_headers`]); a re-driven message goes without them.
const DEAD_LETTER_PREFIX: &str = "spool-dead-letter-";

impl Stream {
    /// Re-drives up to `max` dead letters of this (dead-letter) stream:
    /// each is sent again to the stream it came from
    /// ([`dead_letter_headers::STREAM`]), at its original priority
    /// ([`dead_letter_headers::PRIORITY`]), with its payload (a claim
    /// check is sent as the source stream's threshold makes it: as a claim
    /// check again when it is large) and its original headers, without the
    /// `spool-dead-letter-*` ones; it gets a new offset there and is
    /// delivered to that stream's consumers as a new message. Returns how
    /// many were re-driven.
    ///
    /// The dead letters are read through the durable consumer `consumer`
    /// of this stream (created if it does not exist, from the earliest
    /// message), and each is acknowledged there only after its copy is
    /// durable in the source stream; copies and acknowledgements are
    /// synced before this returns, whatever the store's durability. A
    /// crash between a copy and its acknowledgement re-sends it at the
    /// next call (at least once: one extra copy at most per crash); none
    /// is lost.
    ///
    /// A message that cannot be re-driven stays in this stream,
    /// unacknowledged, and is not counted: one without the dead-letter
    /// headers (not a dead letter), whose source stream no longer exists,
    /// whose priority the source does not have, or that the source refuses
    /// as too large. An error of a send or of the acknowledgement ends the
    /// call with that error; what was acknowledged before stays so.
    ///
    /// ```
    /// use spool::{ConsumerConfig, Options, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), Options::default())?;
    /// let jobs = store.stream("jobs")?;
    /// let config = ConsumerConfig::default().max_deliveries(1).dead_letter("jobs.dead");
    /// let worker = jobs.consumer_with("worker", config)?;
    /// jobs.send(b"needs the new schema")?;
    /// worker.try_receive()?.unwrap().nack()?; // fails once: a dead letter
    /// assert!(worker.try_receive()?.is_none());
    ///
    /// // The bug is fixed: send the dead letters back.
    /// let dead = store.stream("jobs.dead")?;
    /// assert_eq!(dead.redrive("redrive", 100)?, 1);
    /// let again = worker.try_receive()?.expect("re-driven");
    /// assert_eq!(again.payload(), b"needs the new schema");
    /// assert!(again.header("spool-dead-letter-stream").is_none());
    /// assert_eq!(dead.redrive("redrive", 100)?, 0); // each once
    /// # again.ack()?;
    /// # Ok::<(), spool::Error>(())
    /// ```
    pub fn redrive(&self, consumer: &str, max: usize) -> Result<usize> {
        let c = self.consumer(consumer)?;
        let always = self.inner.ctx.opts.durability == Durability::Always;
        let mut done = 0;
        // Not re-drivable: held (so that they are not received again by
        // this call) and given back at its end.
        let mut held: Vec<Delivery> = Vec::new();
        let mut failure = None;
        while failure.is_none() && done + held.len() < max {
            let want = (max - done - held.len()).min(REDRIVE_BATCH);
            let batch = c.receive_batch(want, Duration::ZERO)?;
            if batch.is_empty() {
                break;
            }
            let mut sent = Vec::with_capacity(batch.len());
            let mut targets: Vec<Stream> = Vec::new();
            for d in batch {
                if failure.is_some() {
                    held.push(d);
                    continue;
                }
                match self.redrive_one(&d) {
                    Ok(Some(target)) => {
                        if !targets.iter().any(|t| t.name() == target.name()) {
                            targets.push(target);
                        }
                        sent.push(d);
                    }
                    Ok(None) => held.push(d),
                    Err(e) => {
                        failure = Some(e);
                        held.push(d);
                    }
                }
            }
            // Every copy durable before any dead letter is acknowledged.
            if !always {
                for t in &targets {
                    if let Err(e) = t.sync() {
                        failure.get_or_insert(e);
                        held.append(&mut sent);
                        break;
                    }
                }
            }
            let n = sent.len();
            if n > 0 {
                // Durable too, whatever the store's durability: what this
                // returns as re-driven is never re-sent.
                let acked = c.ack_batch(sent).and_then(|()| {
                    if always {
                        Ok(())
                    } else {
                        c.inner_ref().sync_all()
                    }
                });
                if let Err(e) = acked {
                    failure.get_or_insert(e);
                    break;
                }
            }
            done += n;
        }
        for d in held {
            let _ = d.nack();
        }
        failure.map_or(Ok(done), Err)
    }

    /// Sends one dead letter back to its source stream; the stream, or
    /// `None` if it cannot be re-driven (see [`Stream::redrive`]).
    fn redrive_one(&self, d: &Delivery) -> Result<Option<Stream>> {
        let text = |key| d.header(key).and_then(|v| std::str::from_utf8(v).ok());
        let (Some(source), Some(priority)) = (
            text(dead_letter_headers::STREAM),
            text(dead_letter_headers::PRIORITY).and_then(|p| p.parse::<u8>().ok()),
        ) else {
            return Ok(None);
        };
        if source == self.name() {
            return Ok(None);
        }
        let target = match self.store.open_stream(source) {
            Ok(t) => t,
            Err(Error::StreamNotFound { .. } | Error::InvalidName { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if priority >= target.priorities() {
            return Ok(None);
        }
        let mut m = Message::new(d.payload()).priority(priority);
        m.headers = d
            .headers()
            .filter(|(k, _)| !k.starts_with(DEAD_LETTER_PREFIX))
            .collect();
        match target.send_message(m) {
            Ok(_) => Ok(Some(target)),
            Err(Error::MessageTooLarge { .. } | Error::InvalidHeaders { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
