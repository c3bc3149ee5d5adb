//! Dead letters: a message delivered `max_deliveries` times without an ack
//! goes to the dead-letter stream with headers saying where it came from,
//! then is acknowledged. It is taken under the consumer's lock and moved
//! without it (see [`Consumer::move_dead_letters`]).
//!
//! Whatever the message holds, it leaves the consumer's queue: the
//! dead-letter headers always go on; original headers that do not fit
//! beside them (the header section is limited to 64 KiB, the message to
//! `message_bytes_max`) are left out and counted in
//! `spool-dead-letter-dropped-headers`; a payload that leaves no room for
//! them is stored as a claim check. A dead-letter stream that is the
//! consumer's own stream (refused at `consumer_with`, but possibly in an old
//! `config.meta`) is taken as none.

use super::{state, Consumer, State};
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

/// A message delivered `max_deliveries` times, taken from the consumer's
/// queue (not leased: other workers skip it) to be moved to the
/// dead-letter stream outside the consumer's lock.
#[derive(Debug)]
pub(super) struct Doomed {
    pub(super) priority: usize,
    pub(super) offset: u64,
    /// Deliveries so far.
    pub(super) attempts: u32,
    pub(super) record: Record,
    /// The reason of its last nack, if it had one (`expired` for an
    /// expired message).
    pub(super) reason: Option<String>,
    /// `State::seek_lease_floor` when it was taken.
    pub(super) seek: u64,
    /// Whether it expired (journaled as an expiry, counted as expired)
    /// rather than ran out of deliveries.
    pub(super) expired: bool,
}

/// The dead-letter reason of an expired message.
pub(crate) const EXPIRED_REASON: &str = "expired";

impl Consumer {
    /// Takes the message `taken` of bucket `p` (just taken, delivered
    /// `max_deliveries` times, or `expired`) to be dead-lettered: makes
    /// room for its acknowledgement first (a dead letter that could not be
    /// acknowledged would be sent again; an expiry needs a journal of
    /// version 3), else puts it back.
    pub(super) fn doom(
        &self,
        st: &mut State,
        p: usize,
        taken: state::Taken,
        record: Record,
        expired: bool,
    ) -> Result<Doomed> {
        let room = if expired {
            let e = Entry::Expired {
                bucket: p as u8,
                offset: taken.offset,
            };
            if st.journal.has_room() && e.fits_version(st.journal.version()) {
                Ok(())
            } else {
                self.make_room_for(st, &e)
            }
        } else {
            self.make_room(st)
        };
        if let Err(e) = room {
            // Not moved (e.g. a full disk): it stays waiting here, to be
            // tried again.
            st.buckets[p].untake(taken.offset);
            return Err(e);
        }
        Ok(Doomed {
            priority: p,
            offset: taken.offset,
            attempts: taken.attempts,
            reason: if expired {
                Some(EXPIRED_REASON.to_string())
            } else {
                st.nack_reasons.get(&(p as u8, taken.offset)).cloned()
            },
            record,
            seek: st.seek_lease_floor,
            expired,
        })
    }

    /// Moves messages taken by [`Consumer::doom`] to the dead-letter stream,
    /// then acknowledges them. Called without the consumer's lock: the
    /// append to the dead-letter stream may roll a segment there and run its
    /// retention, which takes the locks of that stream's consumers (a
    /// consumer of that stream may be dead-lettering into this one).
    ///
    /// Order, as when this ran under the lock: each copy is appended (and
    /// durable, if the store's durability asks) before its acknowledgement
    /// is journaled, so a crash in between sends it twice, never loses it.
    /// A message acknowledged or cut by retention meanwhile is left as it
    /// is (its copy stays: at least once). What could not be sent is put
    /// back, to be tried again, and the first error returned.
    pub(super) fn move_dead_letters(&self, doomed: Vec<Doomed>) -> Result<()> {
        let mut failure = None;
        let sent = self.send_dead_letters(&doomed, &mut failure);
        let mut st = self.lock_open()?;
        let mut journaled = Vec::new();
        let mut back = false;
        for (i, d) in doomed.iter().enumerate() {
            let b = &st.buckets[d.priority];
            if st.seek_lease_floor != d.seek || !b.is_taken(d.offset) {
                // Acknowledged, or cut by retention, meanwhile; or the
                // consumer was moved by a seek (its copy stays: at least
                // once).
                continue;
            }
            if i >= sent {
                st.buckets[d.priority].untake(d.offset);
                back = true;
                continue;
            }
            // Journaled before it takes effect: one that cannot be (no room
            // for a new journal) waits here, to be sent again (at least
            // once).
            let key = (d.priority as u8, d.offset);
            let entry = if d.expired {
                Entry::Expired {
                    bucket: key.0,
                    offset: key.1,
                }
            } else {
                Entry::DeadLettered {
                    bucket: key.0,
                    offset: key.1,
                }
            };
            if let Err(e) = self.journal(&mut st, entry) {
                failure.get_or_insert(e);
                st.buckets[d.priority].untake(d.offset);
                back = true;
                continue;
            }
            st.nack_reasons.remove(&key);
            st.buckets[d.priority].ack(d.offset);
            back |= st.settled(d.priority, d.offset, d.offset);
            if d.expired {
                st.expired += 1;
            } else {
                st.dead_lettered += 1;
            }
            journaled.push(i);
        }
        let target = st.logical();
        drop(st);
        if !journaled.is_empty() {
            self.dead_letter_events(&doomed, &journaled);
        }
        if back {
            // Waiting again: a receiver asleep meanwhile may take it.
            self.handle.stream.notify().notify();
        }
        if !journaled.is_empty() {
            self.persist(target)?;
        }
        failure.map_or(Ok(()), Err)
    }

    /// The `message dead-lettered` events of `doomed[i]` for each `i` of
    /// `moved` (see [`crate::events`]).
    #[cold]
    fn dead_letter_events(&self, doomed: &[Doomed], moved: &[usize]) {
        let config = self.config();
        let own = self.handle.stream.name();
        let to = config.dead_letter.as_deref().filter(|d| *d != own);
        // Expired messages are counted, not each reported.
        for d in moved
            .iter()
            .filter_map(|&i| doomed.get(i))
            .filter(|d| !d.expired)
        {
            tracing::warn!(
                target: crate::events::DEAD_LETTER,
                stream = own,
                consumer = self.name(),
                priority = d.priority,
                offset = d.offset,
                attempts = d.attempts,
                reason = d.reason.as_deref().unwrap_or(""),
                dead_letter_stream = to.unwrap_or(""),
                "message dead-lettered"
            );
        }
    }

    /// Appends the copies of `doomed` to the dead-letter stream, in order,
    /// until one fails (its error goes to `failure`); returns how many are
    /// done (sent, or dropped because they cannot go even so). Without a
    /// dead-letter stream, all are done.
    fn send_dead_letters(&self, doomed: &[Doomed], failure: &mut Option<Error>) -> usize {
        let config = self.config();
        let own = self.handle.stream.name();
        let Some(dlq) = config.dead_letter.as_deref().filter(|d| *d != own) else {
            return doomed.len();
        };
        let target = match self.handle.stream.store_stream(dlq) {
            Ok(t) => t,
            Err(e) => {
                *failure = Some(e);
                return 0;
            }
        };
        let limit = self.handle.inner.ctx.opts.message_limit();
        for (i, d) in doomed.iter().enumerate() {
            let p = d.record.priority();
            let offset_s = d.offset.to_string();
            let prio_s = p.to_string();
            let attempts_s = d.attempts.to_string();
            let mut ours: Vec<(&str, &[u8])> = vec![
                (dead_letter_headers::STREAM, own.as_bytes()),
                (dead_letter_headers::CONSUMER, self.name().as_bytes()),
                (dead_letter_headers::OFFSET, offset_s.as_bytes()),
                (dead_letter_headers::PRIORITY, prio_s.as_bytes()),
                (dead_letter_headers::ATTEMPTS, attempts_s.as_bytes()),
            ];
            if let Some(reason) = d.reason.as_deref().filter(|r| !r.is_empty()) {
                ours.push((dead_letter_headers::REASON, reason.as_bytes()));
            }
            match send_dead_letter(&target, &d.record, &ours, limit) {
                Ok(()) => {}
                // What the message holds cannot go even so (only with a
                // `message_bytes_max` below the dead-letter headers
                // themselves): dropped, as without a dead-letter stream,
                // rather than wedging the consumer.
                Err(Error::MessageTooLarge { .. } | Error::InvalidHeaders { .. }) => {}
                Err(e) => {
                    *failure = Some(e);
                    return i;
                }
            }
        }
        doomed.len()
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
