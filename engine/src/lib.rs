//! # Spool
//!
//! A durable, log-structured message-queue storage engine to embed: a
//! directory on local disk becomes a crash-safe store of named streams.
//!
//! ```
//! use spool::{Options, Store};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let store = Store::open(dir.path(), Options::default())?;
//!     let orders = store.stream("orders")?;
//!     let offset = orders.send(b"order #1")?; // on disk when it returns
//!     let record = orders.read(offset)?.expect("just sent");
//!     assert_eq!(record.payload(), b"order #1");
//!
//!     let kitchen = orders.consumer("kitchen")?; // a durable, named cursor
//!     let order = kitchen.receive(Duration::from_secs(1))?.expect("order #1");
//!     order.ack()?;
//!     Ok(())
//! }
//! ```
//!
//! # The API
//!
//! - [`Store`]: a locked directory of named [`Stream`]s ([`Store::open`]
//!   with [`Options`] and a [`Durability`]; what recovery did at open is its
//!   [`RecoveryReport`]).
//! - [`Stream`]: an append-only log per priority level. [`Stream::send`],
//!   [`Stream::send_message`] (a [`Message`] with headers and a priority),
//!   [`Stream::send_batch`], [`Stream::send_reader`]; [`Stream::read`] and
//!   [`Stream::iter_from`] return [`Record`]s. Created with a
//!   [`StreamConfig`].
//! - [`Consumer`]: a named, durable cursor over a stream
//!   ([`Stream::consumer`], [`Stream::consumer_with`] and a
//!   [`ConsumerConfig`]); [`Consumer::receive`] leases a [`Delivery`], to
//!   [`ack`](Delivery::ack) or [`nack`](Delivery::nack).
//! - Typed messages ([`typed`]): serde values of a [`MessageType`] over the
//!   same streams, [`Store::typed_stream`] → [`TypedStream`] →
//!   [`TypedConsumer`] → [`TypedDelivery`], encoded by a [`Codec`]
//!   ([`Postcard`] by default) in a versioned envelope; [`OwnedMessage`], a
//!   message that owns its payload.
//! - Every failure is an [`Error`].
//!
//! The messaging patterns on these:
//!
//! | pattern | how |
//! |---|---|
//! | queue | one consumer name; [`Delivery::ack`], [`Delivery::nack`], leases that expire |
//! | publish/subscribe | one consumer name per subscriber; [`Consumer::ack_up_to`] |
//! | competing consumers | many handles or threads on one name; [`ConsumerConfig::max_deliveries`] and [`ConsumerConfig::dead_letter`] |
//! | priority queue | [`StreamConfig::priorities`], [`Message::priority`], [`ConsumerConfig::starvation_limit`] |
//! | request/response | [`Stream::request`] (or [`Stream::send_request`] and [`Store::wait_reply`]), [`Delivery::reply`] |
//! | claim check | [`StreamConfig::claim_check_threshold`], [`Stream::send_reader`], [`Record::open_payload`] |
//!
//! Each pattern has a program in the repository's `engine/examples/`
//! (`cargo run --release --example queue`, `pubsub`, `competing`,
//! `request_response`, `priority`, `claim_check`; `tour` runs them all).
//!
//! The design (on-disk format, durability and recovery rules, the memory-map
//! soundness argument) is in DESIGN.md at the repository root.
//!
//! # Observability
//!
//! Spool emits structured events through `tracing` (recovery findings,
//! retention deletions, dead letters, the store poisoned, slow syncs,
//! consumer journal rotations): [`events`] lists each by target, level,
//! message and fields. [`Consumer::stats`] gives a consumer's figures
//! (undelivered, in flight, lag, age of the oldest unacknowledged message,
//! redeliveries, dead letters), cheap enough to poll.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod background;
mod blob;
mod consumer;
mod ctx;
mod error;
pub mod events;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod format;
#[cfg(not(feature = "sim"))]
mod format;
mod group_commit;
pub mod inspect;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod io;
#[cfg(not(feature = "sim"))]
mod io;
mod layout;
mod limits;
mod log;
mod message;
mod name;
mod notify;
mod options;
mod report;
mod request;
mod store;
mod stream;
mod threads;
pub mod typed;
mod wake;

pub use blob::ClaimCheck;
pub use consumer::{
    Consumer, ConsumerBucketStats, ConsumerConfig, ConsumerStats, Deliveries, Delivery, Receive,
    ReceiveBatch, StartAt,
};
pub use error::{Error, Result};
pub use log::Record;
pub use message::{
    attribute_headers, dead_letter_headers, request_headers, Message, ATTRIBUTE_SPAN_MAX,
};
pub use options::{
    Durability, Options, StreamConfig, PRIORITIES_MAX, SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN,
    SLOW_SYNC_THRESHOLD,
};
pub use report::{RecoveryReport, TornTail};
pub use request::{Request, WaitReply, REPLY_CONSUMER};
pub use store::Store;
pub use stream::{BucketStats, Iter, Stream, StreamStats};
pub use typed::{
    Codec, CodecError, MessageType, OwnedMessage, Postcard, TypedConsumer, TypedDeliveries,
    TypedDelivery, TypedMessage, TypedReceive, TypedReceiveBatch, TypedStream,
};
pub use wake::Durable;

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
