//! Dead letters: a message delivered `max_deliveries` times without an ack
//! goes to the dead-letter stream with headers saying where it came from,
//! then is acknowledged.
//!
//! Whatever the message holds, it leaves the consumer's queue: the
//! dead-letter headers always go on; original headers that do not fit
//! beside them (the header section is limited to 64 KiB, the message to
//! `message_bytes_max`) are left out and counted in
//! `spool-dead-letter-dropped-headers`; a payload that leaves no room for
//! them is stored as a claim check. A dead-letter stream that is the
//! consumer's own stream (refused at `consumer_with`, but possibly in an old
//! `config.meta`) is taken as none.

use super::{Consumer, ConsumerConfig, State};
use crate::format::headers::{self, HEADERS_BYTES_MAX};
use crate::format::journal::Entry;
use crate::format::record::CLAIM_CHECK_BYTES;
use crate::log::Record;
use crate::message::{dead_letter_headers, Message};
use crate::stream::Stream;
use crate::{Error, Result};

/// Bytes one header takes in the encoded header section.
fn pair_bytes(key: &str, value: &[u8]) -> usize {
    headers::encoded_len([(key, value)]).unwrap_or(usize::MAX)
}

/// The longest `spool-dead-letter-dropped-headers` header (a count of at
/// most 65,535 / 4 headers: five digits).
const DROPPED_BYTES_MAX: usize = 1 + dead_letter_headers::DROPPED_HEADERS.len() + 2 + 5;

impl Consumer {
    /// Moves a message that was delivered `attempts` times to the dead-letter
    /// stream, then acknowledges it.
    pub(super) fn dead_letter(
        &self,
        st: &mut State,
        config: &ConsumerConfig,
        record: &Record,
        attempts: u32,
    ) -> Result<()> {
        let p = record.priority();
        let offset = record.offset();
        let own = self.handle.stream.name();
        if let Some(dlq) = config.dead_letter.as_deref().filter(|d| *d != own) {
            let target = self.handle.stream.store_stream(dlq)?;
            let reason = st
                .nack_reasons
                .get(&(p, offset))
                .cloned()
                .unwrap_or_default();
            let offset_s = offset.to_string();
            let prio_s = p.to_string();
            let attempts_s = attempts.to_string();
            let mut ours: Vec<(&str, &[u8])> = vec![
                (dead_letter_headers::STREAM, own.as_bytes()),
                (dead_letter_headers::CONSUMER, self.name().as_bytes()),
                (dead_letter_headers::OFFSET, offset_s.as_bytes()),
                (dead_letter_headers::PRIORITY, prio_s.as_bytes()),
                (dead_letter_headers::ATTEMPTS, attempts_s.as_bytes()),
            ];
            if !reason.is_empty() {
                ours.push((dead_letter_headers::REASON, reason.as_bytes()));
            }
            let limit = self.handle.inner.ctx.opts.message_limit();
            match send_dead_letter(&target, record, &ours, limit) {
                Ok(()) => {}
                // What the message holds cannot go even so (only with a
                // `message_bytes_max` below the dead-letter headers
                // themselves): dropped, as without a dead-letter stream,
                // rather than wedging the consumer.
                Err(Error::MessageTooLarge { .. } | Error::InvalidHeaders { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        st.nack_reasons.remove(&(p, offset));
        st.buckets[p as usize].ack(offset);
        st.dead_lettered += 1;
        self.journal(st, Entry::DeadLettered { bucket: p, offset })
    }
}

/// Appends `record` to `target` with the dead-letter headers `ours` after
/// the original headers that fit beside them, within the message limit
/// `limit`.
fn send_dead_letter(
    target: &Stream,
    record: &Record,
    ours: &[(&str, &[u8])],
    limit: u64,
) -> Result<()> {
    let payload = record.payload();
    let priority = if record.priority() < target.priorities() {
        record.priority()
    } else {
        0
    };
    let ours_bytes: usize = ours.iter().map(|(k, v)| pair_bytes(k, v)).sum();
    // Bytes of the body against the message limit: a claim check counts as
    // its reference (see `Stream::send_message`).
    let threshold = target.config().claim_check_threshold;
    let blob = payload.len() as u64 > threshold;
    let inline_body = if blob {
        CLAIM_CHECK_BYTES
    } else {
        payload.len().max(CLAIM_CHECK_BYTES)
    };
    let room = |body: usize| -> usize {
        let left = limit.saturating_sub(body as u64);
        usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(HEADERS_BYTES_MAX)
    };
    // A payload that leaves no room for the dead-letter headers goes as a
    // claim check.
    let as_blob = blob || ours_bytes + DROPPED_BYTES_MAX > room(inline_body);
    let budget = room(if as_blob {
        CLAIM_CHECK_BYTES
    } else {
        inline_body
    });
    let original: Vec<(&str, &[u8])> = record.headers().collect();
    let all: usize = original.iter().map(|(k, v)| pair_bytes(k, v)).sum();
    let mut kept = Vec::with_capacity(original.len() + ours.len() + 1);
    let mut dropped = 0usize;
    if all.saturating_add(ours_bytes) <= budget {
        kept.extend_from_slice(&original);
    } else {
        // Keep each original header, in order, that still fits.
        let mut used = ours_bytes + DROPPED_BYTES_MAX;
        for &(k, v) in &original {
            let n = pair_bytes(k, v);
            if used.saturating_add(n) <= budget {
                used += n;
                kept.push((k, v));
            } else {
                dropped += 1;
            }
        }
    }
    kept.extend_from_slice(ours);
    let dropped_s = dropped.to_string();
    if dropped > 0 {
        kept.push((dead_letter_headers::DROPPED_HEADERS, dropped_s.as_bytes()));
    }
    let mut m = Message::new(if as_blob && !blob { &[][..] } else { payload }).priority(priority);
    m.headers = kept;
    if as_blob && !blob {
        target.send_reader(payload, m)?;
    } else {
        target.send_message(m)?;
    }
    Ok(())
}
