//! [`TypedStream`]: sending typed values; [`TypedMessage`]: one with
//! headers and a priority; the `Store` methods that open them.

use super::consumer::TypedConsumer;
use super::owned::OwnedMessage;
use super::{decode_payload, encode_into, identity, identity_of, Codec, MessageType, Postcard};
use crate::consumer::ConsumerConfig;
use crate::message::Message;
use crate::options::StreamConfig;
use crate::store::Store;
use crate::stream::Stream;
use crate::wake::Durable;
use crate::{Error, Result};
use std::marker::PhantomData;

/// Encode buffers larger than this are not kept for the next send.
const KEPT_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Runs `f` with an empty buffer of this thread's, reused from one send to
/// the next (so a typed send allocates nothing once warm).
#[inline]
fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buf = BUFFER.with(|b| b.take());
    buf.clear();
    let r = f(&mut buf);
    if buf.capacity() <= KEPT_BUFFER_BYTES_MAX {
        BUFFER.with(|b| b.set(buf));
    }
    r
}

/// A stream of typed messages: values of `T` encoded by `C` (see the
/// [module documentation](crate::typed)). Cheap to clone; `Send + Sync`.
/// [`TypedStream::stream`] is the bytes API on the same stream.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spool::{MessageType, Options, Store, TypedMessage};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Alert { host: String, level: u8 }
/// impl MessageType for Alert {
///     const NAME: &'static str = "ops.Alert";
///     const VERSION: u32 = 1;
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let config = spool::StreamConfig::default().priorities(2);
///     let alerts = store.typed_stream_with::<Alert>("alerts", config)?;
///     alerts.send(&Alert { host: "db1".into(), level: 2 })?;
///     let urgent = TypedMessage::new(&Alert { host: "db2".into(), level: 9 })?
///         .header("team", "storage")
///         .priority(1);
///     let offset = alerts.send_message(&urgent)?;
///     assert_eq!(alerts.read_priority(1, offset)?.unwrap().host, "db2");
///     assert_eq!(alerts.send_batch(&[
///         Alert { host: "web1".into(), level: 1 },
///         Alert { host: "web2".into(), level: 1 },
///     ])?, [1, 2]);
///     Ok(())
/// }
/// ```
pub struct TypedStream<T, C = Postcard> {
    stream: Stream,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for TypedStream<T, C> {
    fn clone(&self) -> Self {
        TypedStream {
            stream: self.stream.clone(),
            _type: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for TypedStream<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedStream")
            .field("stream", &self.stream.name())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl Store {
    /// Gets or creates the stream `name` (as [`Store::stream`]) as a stream
    /// of `T` encoded by [`Postcard`]: the first typed open records the
    /// type's identity with the stream, later ones check it
    /// ([`Error::TypeMismatch`]; see [`TypedStream::open`]).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use spool::{Error, MessageType, Options, Store};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Order { id: u64 }
    /// impl MessageType for Order {
    ///     const NAME: &'static str = "shop.Order";
    ///     const VERSION: u32 = 1;
    /// }
    /// #[derive(Serialize, Deserialize)]
    /// struct Invoice { id: u64 }
    /// impl MessageType for Invoice {
    ///     const NAME: &'static str = "shop.Invoice";
    ///     const VERSION: u32 = 1;
    /// }
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let dir = tempfile::tempdir()?;
    ///     let store = Store::open(dir.path(), Options::default())?;
    ///     store.typed_stream::<Order>("orders")?.send(&Order { id: 1 })?;
    ///     let wrong = store.typed_stream::<Invoice>("orders");
    ///     assert!(matches!(wrong, Err(Error::TypeMismatch { .. })));
    ///     assert_eq!(store.stream("orders")?.stats().messages(), 1); // bytes API: fine
    ///     Ok(())
    /// }
    /// ```
    pub fn typed_stream<T: MessageType>(&self, name: &str) -> Result<TypedStream<T>> {
        TypedStream::open(&self.stream(name)?)
    }

    /// [`Store::typed_stream`] of a stream got or created with `config`
    /// (as [`Store::stream_with`]: a stream stored with another
    /// configuration is [`Error::ConfigMismatch`]).
    pub fn typed_stream_with<T: MessageType>(
        &self,
        name: &str,
        config: StreamConfig,
    ) -> Result<TypedStream<T>> {
        TypedStream::open(&self.stream_with(name, config)?)
    }
}

impl<T: MessageType, C: Codec> TypedStream<T, C> {
    /// Opens `stream` as a stream of `T` encoded by `C`. If the stream has
    /// no recorded identity yet, it gets `T`'s (`T::NAME`,
    /// `T::VERSION`, `C::NAME`, in `message_type.meta`, written in one
    /// durable step). If it has one: another name or codec is
    /// [`Error::TypeMismatch`]; a newer version than `T::VERSION` too
    /// (`newer: true`: this build could not read the stream's new
    /// messages); an older one is raised to `T::VERSION` durably, after
    /// which the older type is refused. A damaged `message_type.meta` is
    /// [`Error::Corrupt`] here; the bytes API does not read it.
    pub fn open(stream: &Stream) -> Result<TypedStream<T, C>> {
        identity::check_or_record(stream, &identity_of::<T, C>())?;
        Ok(TypedStream {
            stream: stream.clone(),
            _type: PhantomData,
        })
    }

    /// The bytes API on the same stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.stream.name()
    }

    /// Encodes `value` and appends it at priority 0 (as [`Stream::send`]);
    /// returns its offset.
    pub fn send(&self, value: &T) -> Result<u64> {
        with_buffer(|buf| {
            encode_into::<T, C>(value, buf)?;
            self.stream.send(buf)
        })
    }

    /// Appends a typed message with headers and a priority (as
    /// [`Stream::send_message`]).
    pub fn send_message(&self, msg: &TypedMessage<T, C>) -> Result<u64> {
        self.stream.send_message(msg.message.as_message())
    }

    /// Encodes `values` and appends them at priority 0 with one
    /// reservation and one sync (as [`Stream::send_batch`]); returns their
    /// offsets in order. All are encoded before anything is written.
    pub fn send_batch<'v>(&self, values: impl IntoIterator<Item = &'v T>) -> Result<Vec<u64>>
    where
        T: 'v,
    {
        let (buf, ends) = encode_all::<T, C>(values)?;
        self.stream.send_batch(slices(&buf, &ends))
    }

    /// Appends typed messages, each with its headers and priority, in one
    /// batch (as [`Stream::send_batch`]).
    pub fn send_messages<'m>(
        &self,
        msgs: impl IntoIterator<Item = &'m TypedMessage<T, C>, IntoIter: Clone>,
    ) -> Result<Vec<u64>>
    where
        T: 'm,
        C: 'm,
    {
        self.stream
            .send_batch(msgs.into_iter().map(|m| m.message.as_message()))
    }

    /// [`TypedStream::send`] without blocking a thread for durability (as
    /// [`Stream::send_async`]).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Order { id: u64 }
    /// # impl spool::MessageType for Order {
    /// #     const NAME: &'static str = "shop.Order";
    /// #     const VERSION: u32 = 1;
    /// # }
    /// # fn main() -> spool::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = spool::Store::open(dir.path(), spool::Options::default())?;
    /// let orders = store.typed_stream::<Order>("orders")?;
    /// let offset = futures::executor::block_on(orders.send_async(&Order { id: 7 }))?;
    /// assert_eq!(orders.read(offset)?.unwrap().id, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_async(&self, value: &T) -> Durable<u64> {
        with_buffer(|buf| match encode_into::<T, C>(value, buf) {
            Ok(()) => self.stream.send_async(buf),
            Err(e) => Durable::ready(Err(e)),
        })
    }

    /// [`TypedStream::send_message`] without blocking a thread for
    /// durability.
    pub fn send_message_async(&self, msg: &TypedMessage<T, C>) -> Durable<u64> {
        self.stream.send_message_async(msg.message.as_message())
    }

    /// [`TypedStream::send_batch`] without blocking a thread for
    /// durability.
    pub fn send_batch_async<'v>(&self, values: impl IntoIterator<Item = &'v T>) -> Durable<Vec<u64>>
    where
        T: 'v,
    {
        match encode_all::<T, C>(values) {
            Ok((buf, ends)) => self.stream.send_batch_async(slices(&buf, &ends)),
            Err(e) => Durable::ready(Err(e)),
        }
    }

    /// Reads and decodes the message at `offset` of priority 0 (as
    /// [`Stream::read`]); one that does not decode is [`Error::Decode`].
    pub fn read(&self, offset: u64) -> Result<Option<T>> {
        self.read_priority(0, offset)
    }

    /// Reads and decodes the message at `offset` of priority `priority`.
    pub fn read_priority(&self, priority: u8, offset: u64) -> Result<Option<T>> {
        let Some(record) = self.stream.read_priority(priority, offset)? else {
            return Ok(None);
        };
        decode_payload::<T, C>(record.payload())
            .map(|(_, v)| Some(v))
            .map_err(|(_, reason)| decode_error::<T, C>(&self.stream, priority, offset, reason))
    }

    /// Gets the consumer `name` (as [`Stream::consumer`]), receiving
    /// decoded values.
    pub fn consumer(&self, name: &str) -> Result<TypedConsumer<T, C>> {
        Ok(TypedConsumer::new(self.stream.consumer(name)?))
    }

    /// Gets the consumer `name` with `config` (as
    /// [`Stream::consumer_with`]), receiving decoded values.
    pub fn consumer_with(&self, name: &str, config: ConsumerConfig) -> Result<TypedConsumer<T, C>> {
        Ok(TypedConsumer::new(self.stream.consumer_with(name, config)?))
    }
}

/// [`Error::Decode`] of the message at `offset` of level `priority`.
pub(super) fn decode_error<T: MessageType, C: Codec>(
    stream: &Stream,
    priority: u8,
    offset: u64,
    reason: String,
) -> Error {
    Error::Decode {
        stream: stream.name().to_string(),
        priority,
        offset,
        type_name: identity_of::<T, C>().to_string(),
        reason,
    }
}

/// Encodes every value into one buffer: the buffer and where each ends.
fn encode_all<'v, T: MessageType + 'v, C: Codec>(
    values: impl IntoIterator<Item = &'v T>,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for v in values {
        encode_into::<T, C>(v, &mut buf)?;
        ends.push(buf.len());
    }
    Ok((buf, ends))
}

/// The payloads of [`encode_all`].
fn slices<'a>(buf: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + Clone + 'a {
    ends.iter().enumerate().map(move |(i, &end)| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &buf[start..end]
    })
}

/// A typed message with headers and a priority: the value is encoded when
/// the message is made, so it owns its payload (an [`OwnedMessage`]) and
/// the value need not outlive it.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spool::{MessageType, Options, Store, TypedMessage};
///
/// #[derive(Serialize, Deserialize)]
/// struct Job { id: u32 }
/// impl MessageType for Job {
///     const NAME: &'static str = "jobs.Job";
///     const VERSION: u32 = 1;
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let jobs = store.typed_stream::<Job>("jobs")?;
///     let batch = (0..3)
///         .map(|id| Ok(TypedMessage::new(&Job { id })?.header("owner", "ada")))
///         .collect::<spool::Result<Vec<_>>>()?;
///     assert_eq!(jobs.send_messages(&batch)?, [0, 1, 2]);
///     let d = jobs.consumer("worker")?.try_receive()?.unwrap();
///     assert_eq!(d.header("owner"), Some(&b"ada"[..]));
///     Ok(())
/// }
/// ```
pub struct TypedMessage<T, C = Postcard> {
    message: OwnedMessage,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for TypedMessage<T, C> {
    fn clone(&self) -> Self {
        TypedMessage {
            message: self.message.clone(),
            _type: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for TypedMessage<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedMessage")
            .field("type", &std::any::type_name::<T>())
            .field("message", &self.message)
            .finish()
    }
}

impl<T: MessageType, C: Codec> TypedMessage<T, C> {
    /// Encodes `value` (priority 0, no headers);
    /// [`Error::Encode`] if the codec refuses it.
    pub fn new(value: &T) -> Result<TypedMessage<T, C>> {
        let mut payload = Vec::new();
        encode_into::<T, C>(value, &mut payload)?;
        Ok(TypedMessage {
            message: OwnedMessage::new(payload),
            _type: PhantomData,
        })
    }

    /// Adds a header (as [`Message::header`]).
    pub fn header(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.message = self.message.header(key, value);
        self
    }

    /// Sets the priority level (as [`Message::priority`]).
    pub fn priority(mut self, priority: u8) -> Self {
        self.message = self.message.priority(priority);
        self
    }

    /// Not delivered before `at` (as [`Message::deliver_at`]).
    pub fn deliver_at(mut self, at: std::time::SystemTime) -> Self {
        self.message = self.message.deliver_at(at);
        self
    }

    /// Not delivered before `delay` after the send (as
    /// [`Message::deliver_after`]).
    pub fn deliver_after(mut self, delay: std::time::Duration) -> Self {
        self.message = self.message.deliver_after(delay);
        self
    }

    /// Never delivered at or after `at` (as [`Message::expires_at`]).
    pub fn expires_at(mut self, at: std::time::SystemTime) -> Self {
        self.message = self.message.expires_at(at);
        self
    }

    /// Never delivered once `ttl` has passed since the send (as
    /// [`Message::ttl`]).
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.message = self.message.ttl(ttl);
        self
    }

    /// A deduplication id (as [`Message::id`]).
    pub fn id(mut self, id: impl AsRef<[u8]>) -> Self {
        self.message = self.message.id(id);
        self
    }

    /// A message group (as [`Message::group`]).
    pub fn group(mut self, group: impl AsRef<[u8]>) -> Self {
        self.message = self.message.group(group);
        self
    }

    /// The message as it will be sent: the envelope and encoded value as
    /// payload, the headers, the priority.
    pub fn message(&self) -> &OwnedMessage {
        &self.message
    }

    /// The [`OwnedMessage`] (to send with the bytes API, or keep).
    pub fn into_message(self) -> OwnedMessage {
        self.message
    }
}

impl<'a, T, C> From<&'a TypedMessage<T, C>> for Message<'a> {
    fn from(m: &'a TypedMessage<T, C>) -> Message<'a> {
        m.message.as_message()
    }
}
