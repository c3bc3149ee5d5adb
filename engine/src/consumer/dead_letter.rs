//! Dead letters: a message delivered `max_deliveries` times without an ack
//! goes to the dead-letter stream with headers saying where it came from,
//! then is acknowledged.

use super::{Consumer, ConsumerConfig, State};
use crate::format::journal::Entry;
use crate::log::Record;
use crate::message::{dead_letter_headers, Message};
use crate::Result;

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
        if let Some(dlq) = &config.dead_letter {
            let target = self.handle.stream.store_stream(dlq)?;
            let reason = st
                .nack_reasons
                .get(&(p, offset))
                .cloned()
                .unwrap_or_default();
            let offset_s = offset.to_string();
            let prio_s = p.to_string();
            let attempts_s = attempts.to_string();
            let priority = if p < target.priorities() { p } else { 0 };
            let mut m = Message::new(record.payload()).priority(priority);
            for (k, v) in record.headers() {
                m = m.header(k, v);
            }
            m = m
                .header(dead_letter_headers::STREAM, self.handle.stream.name())
                .header(dead_letter_headers::CONSUMER, self.name())
                .header(dead_letter_headers::OFFSET, &offset_s)
                .header(dead_letter_headers::PRIORITY, &prio_s)
                .header(dead_letter_headers::ATTEMPTS, &attempts_s);
            if !reason.is_empty() {
                m = m.header(dead_letter_headers::REASON, &reason);
            }
            target.send_message(m)?;
        }
        st.nack_reasons.remove(&(p, offset));
        st.buckets[p as usize].ack(offset);
        st.dead_lettered += 1;
        self.journal(st, Entry::DeadLettered { bucket: p, offset })
    }
}
