//! [`OwnedMessage`]: a message that owns its payload and headers.

use crate::message::{Message, MessageAttrs, When};
use std::time::{Duration, SystemTime};

/// A message that owns its parts: a payload, headers and a priority. Where
/// a [`Message`] borrows (so a payload serialized in a loop must outlive
/// the batch that sends it), an `OwnedMessage` can be built, stored,
/// returned from a function and sent later; `&OwnedMessage` converts into
/// a [`Message`] borrowing from it, so [`Stream::send_batch`] takes a slice
/// of them.
///
/// [`Stream::send_batch`]: crate::Stream::send_batch
///
/// ```
/// use spool::{OwnedMessage, Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let events = store.stream("events")?;
///
///     // Payloads made in a loop, kept by their messages.
///     let batch: Vec<OwnedMessage> = (0..3)
///         .map(|i| OwnedMessage::new(format!("event {i}")).header("seq", i.to_string()))
///         .collect();
///     let offsets = events.send_batch(&batch)?;
///     assert_eq!(offsets, [0, 1, 2]);
///     let one = OwnedMessage::new(b"last".to_vec());
///     events.send_message((&one).into())?;
///
///     let record = events.read(2)?.unwrap();
///     assert_eq!(record.payload(), b"event 2");
///     assert_eq!(record.header("seq"), Some(&b"2"[..]));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedMessage {
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    priority: u8,
    deliver: Option<When>,
    expires: Option<When>,
    id: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
}

impl OwnedMessage {
    /// A message with `payload`, no headers, priority 0.
    pub fn new(payload: impl Into<Vec<u8>>) -> OwnedMessage {
        OwnedMessage {
            payload: payload.into(),
            headers: Vec::new(),
            priority: 0,
            deliver: None,
            expires: None,
            id: None,
            group: None,
        }
    }

    /// Adds a header (checked when the message is sent, as
    /// [`Message::header`] says).
    pub fn header(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> OwnedMessage {
        self.headers.push((key.into(), value.as_ref().to_vec()));
        self
    }

    /// Sets the priority level (as [`Message::priority`]).
    pub fn priority(mut self, priority: u8) -> OwnedMessage {
        self.priority = priority;
        self
    }

    /// Not delivered before `at` (as [`Message::deliver_at`]).
    pub fn deliver_at(mut self, at: SystemTime) -> OwnedMessage {
        self.deliver = Some(When::At(at));
        self
    }

    /// Not delivered before `delay` after the send (as
    /// [`Message::deliver_after`]).
    pub fn deliver_after(mut self, delay: Duration) -> OwnedMessage {
        self.deliver = Some(When::After(delay));
        self
    }

    /// Never delivered at or after `at` (as [`Message::expires_at`]).
    pub fn expires_at(mut self, at: SystemTime) -> OwnedMessage {
        self.expires = Some(When::At(at));
        self
    }

    /// Never delivered once `ttl` has passed since the send (as
    /// [`Message::ttl`]).
    pub fn ttl(mut self, ttl: Duration) -> OwnedMessage {
        self.expires = Some(When::After(ttl));
        self
    }

    /// A deduplication id (as [`Message::id`]).
    pub fn id(mut self, id: impl AsRef<[u8]>) -> OwnedMessage {
        self.id = Some(id.as_ref().to_vec());
        self
    }

    /// A message group (as [`Message::group`]).
    pub fn group(mut self, group: impl AsRef<[u8]>) -> OwnedMessage {
        self.group = Some(group.as_ref().to_vec());
        self
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, to change in place.
    pub fn payload_mut(&mut self) -> &mut Vec<u8> {
        &mut self.payload
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The priority level set.
    pub fn priority_level(&self) -> u8 {
        self.priority
    }

    /// A [`Message`] borrowing this one's parts.
    pub fn as_message(&self) -> Message<'_> {
        let mut m = Message::new(&self.payload[..]).priority(self.priority);
        for (k, v) in &self.headers {
            m = m.header(k, &v[..]);
        }
        if self.deliver.is_some()
            || self.expires.is_some()
            || self.id.is_some()
            || self.group.is_some()
        {
            m.attrs = Some(Box::new(MessageAttrs {
                deliver: self.deliver,
                expires: self.expires,
                id: self.id.as_deref(),
                group: self.group.as_deref(),
            }));
        }
        m
    }
}

impl<'a> From<&'a OwnedMessage> for Message<'a> {
    fn from(m: &'a OwnedMessage) -> Message<'a> {
        m.as_message()
    }
}

impl From<Message<'_>> for OwnedMessage {
    /// Copies a borrowed message's parts.
    fn from(m: Message<'_>) -> OwnedMessage {
        OwnedMessage {
            payload: m.payload.to_vec(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            priority: m.priority,
            deliver: m.attrs().deliver,
            expires: m.attrs().expires,
            id: m.attrs().id.map(<[u8]>::to_vec),
            group: m.attrs().group.map(<[u8]>::to_vec),
        }
    }
}
