//! Messages going in ([`Message`]), and the header names Spool itself sets
//! on messages (attributes, requests, replies, dead letters).

use std::time::{Duration, SystemTime};

/// A message to send: a payload, optional headers and a priority. It
/// borrows its parts; [`Stream::send_message`](crate::Stream::send_message)
/// and [`Stream::send_batch`](crate::Stream::send_batch) take it.
///
/// ```
/// use spool::{Message, Options, Store, StreamConfig};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let orders = store.create_stream("orders", StreamConfig::default().priorities(3))?;
///
///     let body = format!("{} x espresso", 2);
///     let message = Message::new(&body) // bytes: &str, &[u8], &Vec<u8>, ...
///         .header("customer", "ada")
///         .header("table", &[7u8])
///         .priority(2);
///     let offset = orders.send_message(message)?;
///
///     let record = orders.read_priority(2, offset)?.unwrap();
///     assert_eq!(record.payload(), body.as_bytes());
///     assert_eq!(record.header("table"), Some(&[7u8][..]));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Vec<(&'a str, &'a [u8])>,
    pub(crate) priority: u8,
    /// Boxed: a message without attributes (nearly all) stays small, and
    /// a batch's walks move less.
    pub(crate) attrs: Option<Box<MessageAttrs<'a>>>,
}

/// A moment given absolutely or as a span from the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    At(SystemTime),
    After(Duration),
}

/// The attributes a [`Message`] was given, resolved to times when it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MessageAttrs<'a> {
    pub deliver: Option<When>,
    pub expires: Option<When>,
    pub id: Option<&'a [u8]>,
    pub group: Option<&'a [u8]>,
}

impl MessageAttrs<'_> {
    /// Whether none is set.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.deliver.is_none()
            && self.expires.is_none()
            && self.id.is_none()
            && self.group.is_none()
    }
}

/// The longest delay, time to live or distance into the future a message
/// can be given: 100 years. Longer is
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
pub const ATTRIBUTE_SPAN_MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<'a> Message<'a> {
    /// A message with `payload`, no headers, priority 0.
    pub fn new(payload: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Message {
            payload: payload.as_ref(),
            headers: Vec::new(),
            priority: 0,
            attrs: None,
        }
    }

    /// Adds a header. Keys are 1..=255 bytes of UTF-8, values up to 65,535
    /// bytes, all headers of a message together up to 65,535 bytes encoded;
    /// beyond, the send fails with
    /// [`Error::InvalidHeaders`](crate::Error::InvalidHeaders). A key may
    /// repeat: [`Record::header`](crate::Record::header) finds the first,
    /// [`Record::headers`](crate::Record::headers) lists all in order.
    ///
    /// ```
    /// use spool::{Error, Message, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let mail = store.stream("mail")?;
    ///     let m = Message::new(b"hello").header("to", "ada").header("to", "grace");
    ///     let offset = mail.send_message(m)?;
    ///
    ///     let record = mail.read(offset)?.unwrap();
    ///     assert_eq!(record.header("to"), Some(&b"ada"[..]));
    ///     assert_eq!(record.headers().filter(|(k, _)| *k == "to").count(), 2);
    ///
    ///     let empty_key = mail.send_message(Message::new(b"hello").header("", "?"));
    ///     assert!(matches!(empty_key, Err(Error::InvalidHeaders { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn header(mut self, key: &'a str, value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.headers.push((key, value.as_ref()));
        self
    }

    /// Sets the priority level (0 = lowest, below the stream's `priorities`;
    /// [`Error::InvalidPriority`](crate::Error::InvalidPriority) otherwise).
    ///
    /// ```
    /// use spool::{Error, Message, Options, Store, StreamConfig};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let alerts = store.create_stream("alerts", StreamConfig::default().priorities(2))?;
    ///     alerts.send_message(Message::new(b"disk 80% full").priority(0))?;
    ///     alerts.send_message(Message::new(b"disk 99% full").priority(1))?;
    ///
    ///     let next = alerts.consumer("pager")?.try_receive()?.unwrap();
    ///     assert_eq!(next.payload(), b"disk 99% full"); // the higher level first
    ///
    ///     let too_high = alerts.send_message(Message::new(b"?").priority(2));
    ///     assert!(matches!(too_high, Err(Error::InvalidPriority { priorities: 2, .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Not delivered before `at` (scheduled delivery). A time in the past
    /// delivers at once. The schedule is stored with the message: it holds
    /// across restarts and crashes. At most [`ATTRIBUTE_SPAN_MAX`] ahead;
    /// beyond, or before 1970, the send fails with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn deliver_at(mut self, at: SystemTime) -> Self {
        self.attrs_mut().deliver = Some(When::At(at));
        self
    }

    /// Not delivered before `delay` after the send.
    ///
    /// ```
    /// use spool::{Message, Options, Store};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let reminders = store.stream("reminders")?;
    ///     let worker = reminders.consumer("worker")?;
    ///     reminders.send_message(Message::new(b"in an hour").deliver_after(Duration::from_secs(3600)))?;
    ///     reminders.send_message(Message::new(b"soon").deliver_after(Duration::from_millis(50)))?;
    ///
    ///     let scheduled = reminders.read(0)?.unwrap();
    ///     assert!(scheduled.deliver_at().unwrap() > std::time::SystemTime::now());
    ///     // Not delivered before its time: the receive waits for "soon"
    ///     // (woken when it is due), and "in an hour" stays behind.
    ///     assert!(worker.try_receive()?.is_none());
    ///     let d = worker.receive(Duration::from_secs(10))?.expect("due in 50 ms");
    ///     assert_eq!(d.payload(), b"soon");
    ///     d.ack()?;
    ///     assert!(worker.receive(Duration::from_millis(100))?.is_none());
    ///     Ok(())
    /// }
    /// ```
    pub fn deliver_after(mut self, delay: Duration) -> Self {
        self.attrs_mut().deliver = Some(When::After(delay));
        self
    }

    /// Never delivered at or after `at`: an expired message is counted
    /// (`expired` in the consumer's stats) and, for a consumer with a
    /// dead-letter stream, moved there with reason `expired`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.attrs_mut().expires = Some(When::At(at));
        self
    }

    /// Never delivered once `ttl` has passed since the send (a time to
    /// live; see [`Message::expires_at`]). A zero `ttl`, or one over
    /// [`ATTRIBUTE_SPAN_MAX`], fails the send with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.attrs_mut().expires = Some(When::After(ttl));
        self
    }

    /// A deduplication id (1..=255 bytes): a send whose id was sent to the
    /// stream within its [dedup window](crate::StreamConfig::dedup_window)
    /// stores nothing and returns the first one's offset — an offset at the
    /// first message's priority level, whatever this one's. It holds across
    /// restarts and crashes (an acknowledged send is never stored twice),
    /// and with [`Durability::Always`](crate::Durability::Always) the
    /// duplicate returns only once the first is durable. In one
    /// [`send_batch`](crate::Stream::send_batch), later duplicates get the
    /// first one's offset.
    ///
    /// ```
    /// use spool::{Message, Options, Store};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     let payments = store.stream("payments")?;
    ///     let first = payments.send_message(Message::new(b"charge").id("p-1"))?;
    ///     // A retry after a timeout: nothing stored, the same offset.
    ///     assert_eq!(payments.send_message(Message::new(b"charge").id("p-1"))?, first);
    ///     assert_eq!(payments.stats().messages(), 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn id(mut self, id: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.attrs_mut().id = Some(id.as_ref());
        self
    }

    /// A message group (ordering key, 1..=255 bytes): the workers of one
    /// consumer hold at most one leased message of a group at a time, in
    /// the group's order; different groups go in parallel.
    pub fn group(mut self, group: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.attrs_mut().group = Some(group.as_ref());
        self
    }

    /// The attributes set (all `None` for a message without).
    #[inline]
    pub(crate) fn attrs(&self) -> &MessageAttrs<'a> {
        const NONE: &MessageAttrs<'static> = &MessageAttrs {
            deliver: None,
            expires: None,
            id: None,
            group: None,
        };
        self.attrs.as_deref().unwrap_or(NONE)
    }

    fn attrs_mut(&mut self) -> &mut MessageAttrs<'a> {
        self.attrs.get_or_insert_with(Box::default)
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

/// Header names of a message's attributes ([`Message::deliver_at`],
/// [`Message::ttl`], [`Message::id`], [`Message::group`]). They are the
/// first headers of a record that has attributes, and
/// [`Record::headers`](crate::Record::headers) lists them like any other;
/// [`Record::deliver_at`](crate::Record::deliver_at) and its siblings read
/// them. Times are microseconds since the Unix epoch in decimal.
pub mod attribute_headers {
    /// Not delivered before this time.
    pub const DELIVER_AT: &str = "spool-deliver-at";
    /// Not delivered at or after this time.
    pub const EXPIRES_AT: &str = "spool-expires-at";
    /// The deduplication id.
    pub const MESSAGE_ID: &str = "spool-message-id";
    /// The message group.
    pub const GROUP: &str = "spool-group";
}

/// Header names of request/response: [`Stream::send_request`] and
/// [`Stream::request`] set them on the request, [`Delivery::reply`] copies
/// the correlation id onto the reply.
///
/// [`Stream::send_request`]: crate::Stream::send_request
/// [`Stream::request`]: crate::Stream::request
/// [`Delivery::reply`]: crate::Delivery::reply
///
/// ```
/// use spool::{request_headers, Message, Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let quotes = store.stream("quotes")?;
///     let id = quotes.send_request(Message::new(b"espresso"), "quotes.replies")?;
///
///     let request = quotes.read(0)?.unwrap();
///     assert_eq!(request.header(request_headers::REPLY_TO), Some(&b"quotes.replies"[..]));
///     assert_eq!(request.header(request_headers::CORRELATION_ID), Some(id.as_bytes()));
///     Ok(())
/// }
/// ```
pub mod request_headers {
    /// The stream a reply goes to.
    pub const REPLY_TO: &str = "reply-to";
    /// Matches a reply to its request.
    pub const CORRELATION_ID: &str = "correlation-id";
}

/// Header names set on a dead-lettered message, beside the headers it was
/// sent with.
///
/// ```
/// use spool::{dead_letter_headers as dl, ConsumerConfig, Options, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let jobs = store.stream("jobs")?;
///     jobs.send(b"poison")?;
///     let config = ConsumerConfig::default().max_deliveries(1).dead_letter("jobs.dead");
///     let worker = jobs.consumer_with("worker", config)?;
///     worker.try_receive()?.unwrap().nack()?;
///     assert!(worker.try_receive()?.is_none()); // moved to "jobs.dead"
///
///     let dead = store.stream("jobs.dead")?.read(0)?.unwrap();
///     assert_eq!(dead.payload(), b"poison");
///     assert_eq!(dead.header(dl::STREAM), Some(&b"jobs"[..]));
///     assert_eq!(dead.header(dl::CONSUMER), Some(&b"worker"[..]));
///     assert_eq!(dead.header(dl::OFFSET), Some(&b"0"[..]));
///     assert_eq!(dead.header(dl::ATTEMPTS), Some(&b"1"[..]));
///     assert_eq!(dead.header(dl::REASON), None); // `nack_with` gives one
///     Ok(())
/// }
/// ```
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
