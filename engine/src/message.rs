//! Messages going in ([`Message`]), and the header names Spool itself sets
//! on messages (requests, replies, dead letters).

/// A message to send: a payload, optional headers and a priority.
///
/// ```
/// use spool::Message;
/// let m = Message::new(b"order #1").header("reply-to", "replies").priority(2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Vec<(&'a str, &'a [u8])>,
    pub(crate) priority: u8,
}

impl<'a> Message<'a> {
    /// A message with `payload`, no headers, priority 0.
    pub fn new(payload: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Message {
            payload: payload.as_ref(),
            headers: Vec::new(),
            priority: 0,
        }
    }

    /// Adds a header. Keys are 1..=255 bytes of UTF-8, values up to 65,535
    /// bytes, all headers of a message together up to 65,535 bytes encoded.
    pub fn header(mut self, key: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.headers.push((key, value.as_ref()));
        self
    }

    /// Sets the priority level (0 = lowest, below the stream's `priorities`).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(p: &'a [u8]) -> Self {
        Message::new(p)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Message<'a> {
    fn from(p: &'a [u8; N]) -> Self {
        Message::new(p)
    }
}

impl<'a> From<&'a Vec<u8>> for Message<'a> {
    fn from(p: &'a Vec<u8>) -> Self {
        Message::new(p)
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(p: &'a str) -> Self {
        Message::new(p)
    }
}

/// Header names of request/response.
pub mod request_headers {
    /// The stream a reply goes to.
    pub const REPLY_TO: &str = "reply-to";
    /// Matches a reply to its request.
    pub const CORRELATION_ID: &str = "correlation-id";
}

/// Header names set on a dead-lettered message.
pub mod dead_letter_headers {
    /// The stream the message came from.
    pub const STREAM: &str = "spool-dead-letter-stream";
    /// The consumer that gave up on it.
    pub const CONSUMER: &str = "spool-dead-letter-consumer";
    /// Its offset in the source stream.
    pub const OFFSET: &str = "spool-dead-letter-offset";
    /// Its priority in the source stream.
    pub const PRIORITY: &str = "spool-dead-letter-priority";
    /// How many times it was delivered.
    pub const ATTEMPTS: &str = "spool-dead-letter-attempts";
    /// The reason given with the last negative acknowledgement, if any.
    pub const REASON: &str = "spool-dead-letter-reason";
    /// How many of the original headers were left out because they did not
    /// fit beside the dead-letter headers (a header section holds at most
    /// 65,535 bytes, a message at most `message_bytes_max`); absent when
    /// every original header was kept. The dead-letter headers always go
    /// on; of the original ones, each that still fits is kept, in order.
    pub const DROPPED_HEADERS: &str = "spool-dead-letter-dropped-headers";
}
