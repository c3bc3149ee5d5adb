//! [`TypedConsumer`]: receiving decoded values; [`TypedDelivery`]: one
//! value with its delivery; the async forms.

use super::stream::decode_error;
use super::{decode_payload, Codec, MessageType, Postcard};
use crate::consumer::{Consumer, Deliveries, Delivery, Receive, ReceiveBatch};
use crate::message::{dead_letter_headers, Message};
use crate::wake::Durable;
use crate::{Error, Result};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A consumer of a [`TypedStream`](crate::TypedStream): the bytes API's
/// [`Consumer`] whose deliveries come decoded. Cheap to clone.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spool::{MessageType, Options, Store};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize, Debug)]
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
///     jobs.send_batch(&[Job { id: 1 }, Job { id: 2 }, Job { id: 3 }])?;
///
///     let worker = jobs.consumer("worker")?;
///     let mut done = Vec::new();
///     while let Some(job) = worker.receive(Duration::from_millis(100))? {
///         done.push(job.value()?.id);
///         job.ack()?;
///     }
///     assert_eq!(done, [1, 2, 3]);
///     Ok(())
/// }
/// ```
pub struct TypedConsumer<T, C = Postcard> {
    consumer: Consumer,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for TypedConsumer<T, C> {
    fn clone(&self) -> Self {
        TypedConsumer {
            consumer: self.consumer.clone(),
            _type: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for TypedConsumer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("consumer", &self.consumer)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: MessageType, C: Codec> TypedConsumer<T, C> {
    pub(super) fn new(consumer: Consumer) -> TypedConsumer<T, C> {
        TypedConsumer {
            consumer,
            _type: PhantomData,
        }
    }

    /// The bytes API's consumer (its name, stats, configuration, `ack_up_to`).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// [`Consumer::receive`], decoded: waits up to `timeout` for a message.
    pub fn receive(&self, timeout: Duration) -> Result<Option<TypedDelivery<T>>> {
        Ok(self.consumer.receive(timeout)?.map(decode::<T, C>))
    }

    /// [`Consumer::try_receive`], decoded: a message if one is available now.
    pub fn try_receive(&self) -> Result<Option<TypedDelivery<T>>> {
        Ok(self.consumer.try_receive()?.map(decode::<T, C>))
    }

    /// [`Consumer::receive_batch`], decoded: up to `max` messages, waiting
    /// up to `timeout` for the first.
    pub fn receive_batch(&self, max: usize, timeout: Duration) -> Result<Vec<TypedDelivery<T>>> {
        Ok(self
            .consumer
            .receive_batch(max, timeout)?
            .into_iter()
            .map(decode::<T, C>)
            .collect())
    }

    /// [`Consumer::ack_batch`] of typed deliveries: one record, one sync.
    pub fn ack_batch(&self, deliveries: impl IntoIterator<Item = TypedDelivery<T>>) -> Result<()> {
        self.consumer
            .ack_batch(deliveries.into_iter().map(TypedDelivery::into_delivery))
    }

    /// [`Consumer::receive_async`], decoded.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Job { id: u32 }
    /// # impl spool::MessageType for Job {
    /// #     const NAME: &'static str = "jobs.Job";
    /// #     const VERSION: u32 = 1;
    /// # }
    /// # fn main() -> spool::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = spool::Store::open(dir.path(), spool::Options::default())?;
    /// let jobs = store.typed_stream::<Job>("jobs")?;
    /// let worker = jobs.consumer("worker")?;
    /// futures::executor::block_on(async {
    ///     jobs.send_async(&Job { id: 7 }).await?;
    ///     let job = worker.receive_async(std::time::Duration::from_secs(1)).await?;
    ///     let job = job.expect("sent above");
    ///     assert_eq!(job.value()?.id, 7);
    ///     job.ack_async().await
    /// })
    /// # }
    /// ```
    pub fn receive_async(&self, timeout: Duration) -> TypedReceive<T, C> {
        TypedReceive {
            inner: self.consumer.receive_async(timeout),
            _type: PhantomData,
        }
    }

    /// [`Consumer::receive_batch_async`], decoded.
    pub fn receive_batch_async(&self, max: usize, timeout: Duration) -> TypedReceiveBatch<T, C> {
        TypedReceiveBatch {
            inner: self.consumer.receive_batch_async(max, timeout),
            _type: PhantomData,
        }
    }

    /// [`Consumer::deliveries`], decoded: every delivery as a
    /// `futures_core::Stream` that ends when the store is closed.
    pub fn deliveries(&self) -> TypedDeliveries<T, C> {
        TypedDeliveries {
            inner: self.consumer.deliveries(),
            _type: PhantomData,
        }
    }
}

/// Decodes a delivery's payload as `T`.
fn decode<T: MessageType, C: Codec>(delivery: Delivery) -> TypedDelivery<T> {
    let value = match decode_payload::<T, C>(delivery.payload()) {
        Ok((version, v)) => Ok((version, v)),
        Err((version, reason)) => Err(Box::new((
            version,
            decode_error::<T, C>(
                delivery.consumer().stream(),
                delivery.priority(),
                delivery.offset(),
                reason,
            ),
        ))),
    };
    TypedDelivery { delivery, value }
}

/// Why a payload did not decode: the schema version its envelope gave (if
/// it is an envelope), and the [`Error::Decode`].
type Undecoded = (Option<u32>, Error);

/// A typed message leased to the receiver: the decoded value (or why it
/// does not decode) and the [`Delivery`], to acknowledge or give back as
/// any other. A message that does not decode comes as one too, so that it
/// never holds the consumer up: [`TypedDelivery::value`] is then the
/// [`Error::Decode`], and the delivery can be acknowledged (dropped),
/// given back, or [dead-lettered](TypedDelivery::dead_letter).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spool::{ConsumerConfig, Error, MessageType, Options, Store};
///
/// #[derive(Serialize, Deserialize, Debug)]
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
///     jobs.stream().send(b"not a job")?; // through the bytes API
///     jobs.send(&Job { id: 2 })?;
///
///     let worker = jobs.consumer_with("worker", ConsumerConfig::default().dead_letter("jobs.dead"))?;
///     let bad = worker.try_receive()?.expect("delivered like any other");
///     assert!(matches!(bad.value(), Err(Error::Decode { offset: 0, .. })));
///     bad.dead_letter(Some("not a job"))?; // moved to "jobs.dead", acknowledged here
///     assert_eq!(worker.try_receive()?.expect("the next one").value()?.id, 2);
///     assert_eq!(store.stream("jobs.dead")?.read(0)?.unwrap().payload(), b"not a job");
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct TypedDelivery<T> {
    delivery: Delivery,
    /// The schema version the payload was written with (when its envelope
    /// decodes), and the value or the decode error.
    /// The error is boxed: a delivery that decodes (nearly all) moves
    /// through the receive without the size of an [`Error`].
    value: std::result::Result<(u32, T), Box<Undecoded>>,
}

impl<T> TypedDelivery<T> {
    /// The decoded value; [`Error::Decode`] (with the stream, priority and
    /// offset) if the payload does not decode as `T`.
    pub fn value(&self) -> Result<&T> {
        match &self.value {
            Ok((_, v)) => Ok(v),
            Err(b) => Err(copy_decode_error(&b.1)),
        }
    }

    /// The decoded value, taken. The delivery is dropped unacknowledged
    /// (its lease runs out, and the message is delivered again): to
    /// acknowledge it afterwards, use [`TypedDelivery::into_parts`].
    pub fn into_value(self) -> Result<T> {
        self.value.map(|(_, v)| v).map_err(|b| b.1)
    }

    /// The decoded value (or its error) and the delivery.
    pub fn into_parts(self) -> (Result<T>, Delivery) {
        (self.value.map(|(_, v)| v).map_err(|b| b.1), self.delivery)
    }

    /// Whether the payload decoded.
    pub fn is_decoded(&self) -> bool {
        self.value.is_ok()
    }

    /// The schema version the message was written with; `None` if its
    /// payload is no typed envelope.
    pub fn schema_version(&self) -> Option<u32> {
        match &self.value {
            Ok((v, _)) => Some(*v),
            Err(b) => b.0,
        }
    }

    /// The delivery: headers, offset, priority, attempt, the raw payload,
    /// [`Delivery::reply`].
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The delivery, without the value.
    pub fn into_delivery(self) -> Delivery {
        self.delivery
    }

    /// Its offset in the bucket of its priority level.
    pub fn offset(&self) -> u64 {
        self.delivery.offset()
    }

    /// Its priority level.
    pub fn priority(&self) -> u8 {
        self.delivery.priority()
    }

    /// Which delivery of the message this is (1 = first).
    pub fn attempt(&self) -> u32 {
        self.delivery.attempt()
    }

    /// The first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.delivery.header(key)
    }

    /// Acknowledges the message ([`Delivery::ack`]).
    pub fn ack(self) -> Result<()> {
        self.delivery.ack()
    }

    /// [`Delivery::ack_async`].
    pub fn ack_async(self) -> Durable<()> {
        self.delivery.ack_async()
    }

    /// Gives the message back for immediate redelivery ([`Delivery::nack`]).
    pub fn nack(self) -> Result<()> {
        self.delivery.nack()
    }

    /// Gives the message back after `delay`, with a reason
    /// ([`Delivery::nack_with`]; it counts towards `max_deliveries`).
    pub fn nack_with(self, delay: Option<Duration>, reason: Option<&str>) -> Result<()> {
        self.delivery.nack_with(delay, reason)
    }

    /// Extends the lease ([`Delivery::extend_lease`]).
    pub fn extend_lease(&self, by: Duration) -> Result<()> {
        self.delivery.extend_lease(by)
    }

    /// Moves the message to its consumer's dead-letter stream now, whatever
    /// its attempts: its payload and headers are appended there with the
    /// dead-letter headers ([`dead_letter_headers`], `reason` as
    /// [`REASON`](dead_letter_headers::REASON)), then it is acknowledged
    /// here. If the original headers do not fit beside the dead-letter
    /// ones, they are left out (counted in
    /// [`DROPPED_HEADERS`](dead_letter_headers::DROPPED_HEADERS)). A crash
    /// between the append and the acknowledgement dead-letters it twice (at
    /// least once, as dead letters of `max_deliveries`). Fails with
    /// [`Error::InvalidConfig`] if the consumer has no dead-letter stream
    /// (the delivery is dropped then: acknowledge or give back a clone of
    /// nothing... keep it with [`TypedDelivery::into_parts`] first if you
    /// need a fallback).
    pub fn dead_letter(self, reason: Option<&str>) -> Result<()> {
        let consumer = self.delivery.consumer();
        let Some(target) = consumer.config().dead_letter else {
            return Err(Error::InvalidConfig(format!(
                "consumer {:?} of stream {:?} has no dead-letter stream",
                consumer.name(),
                consumer.stream().name()
            )));
        };
        let d = &self.delivery;
        let offset = d.offset().to_string();
        let priority = d.priority().to_string();
        let attempts = d.attempt().to_string();
        let source = consumer.stream().name();
        let dropped = d.headers().count().to_string();
        let build = |keep: bool| {
            let mut m = Message::new(d.payload());
            if keep {
                for (k, v) in d.headers() {
                    m = m.header(k, v);
                }
            }
            m = m
                .header(dead_letter_headers::STREAM, source)
                .header(dead_letter_headers::CONSUMER, consumer.name())
                .header(dead_letter_headers::OFFSET, &offset)
                .header(dead_letter_headers::PRIORITY, &priority)
                .header(dead_letter_headers::ATTEMPTS, &attempts);
            if let Some(r) = reason {
                m = m.header(dead_letter_headers::REASON, r);
            }
            if !keep && dropped != "0" {
                m = m.header(dead_letter_headers::DROPPED_HEADERS, &dropped);
            }
            m
        };
        let dl = consumer.stream().store_stream(&target)?;
        match dl.send_message(build(true)) {
            Ok(_) => {}
            Err(Error::InvalidHeaders { .. } | Error::MessageTooLarge { .. }) => {
                dl.send_message(build(false))?;
            }
            Err(e) => return Err(e),
        }
        self.delivery.ack()
    }
}

/// A copy of a decode error (the stored one stays with the delivery).
fn copy_decode_error(e: &Error) -> Error {
    match e {
        Error::Decode {
            stream,
            priority,
            offset,
            type_name,
            reason,
        } => Error::Decode {
            stream: stream.clone(),
            priority: *priority,
            offset: *offset,
            type_name: type_name.clone(),
            reason: reason.clone(),
        },
        other => Error::Internal(format!("not a decode error: {other}")),
    }
}

/// The future of [`TypedConsumer::receive_async`].
#[must_use = "futures do nothing unless polled"]
pub struct TypedReceive<T, C = Postcard> {
    inner: Receive,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for TypedReceive<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReceive").finish_non_exhaustive()
    }
}

impl<T: MessageType, C: Codec> Future for TypedReceive<T, C> {
    type Output = Result<Option<TypedDelivery<T>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().inner)
            .poll(cx)
            .map(|r| r.map(|d| d.map(decode::<T, C>)))
    }
}

/// The future of [`TypedConsumer::receive_batch_async`].
#[must_use = "futures do nothing unless polled"]
pub struct TypedReceiveBatch<T, C = Postcard> {
    inner: ReceiveBatch,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for TypedReceiveBatch<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReceiveBatch").finish_non_exhaustive()
    }
}

impl<T: MessageType, C: Codec> Future for TypedReceiveBatch<T, C> {
    type Output = Result<Vec<TypedDelivery<T>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().inner)
            .poll(cx)
            .map(|r| r.map(|v| v.into_iter().map(decode::<T, C>).collect()))
    }
}

/// The stream of [`TypedConsumer::deliveries`].
#[must_use = "streams do nothing unless polled"]
pub struct TypedDeliveries<T, C = Postcard> {
    inner: Deliveries,
    _type: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for TypedDeliveries<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedDeliveries").finish_non_exhaustive()
    }
}

impl<T: MessageType, C: Codec> futures_core::Stream for TypedDeliveries<T, C> {
    type Item = Result<TypedDelivery<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_next(cx)
            .map(|o| o.map(|r| r.map(decode::<T, C>)))
    }
}

impl<T: MessageType, C: Codec> futures_core::FusedStream for TypedDeliveries<T, C> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
