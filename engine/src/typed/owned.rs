//! [`OwnedMessage`]: a message that owns its payload and headers.

use crate::message::Message;

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
}

impl OwnedMessage {
    /// A message with `payload`, no headers, priority 0.
    pub fn new(payload: impl Into<Vec<u8>>) -> OwnedMessage {
        OwnedMessage {
            payload: payload.into(),
            headers: Vec::new(),
            priority: 0,
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
        }
    }
}
