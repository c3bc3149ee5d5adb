//! # Spool
//!
//! A durable, log-structured message-queue storage engine to embed: a
//! directory on local disk becomes a crash-safe store of named streams.
//!
//! ```
//! use spool::{Options, Store};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), Options::default())?;
//! let orders = store.stream("orders")?;
//! let offset = orders.send(b"order #1")?;          // on disk when it returns
//! let rec = orders.read(offset)?.expect("just sent");
//! assert_eq!(rec.payload(), b"order #1");
//! # Ok::<(), spool::Error>(())
//! ```
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

pub use blob::ClaimCheck;
pub use consumer::{
    Consumer, ConsumerBucketStats, ConsumerConfig, ConsumerStats, Delivery, StartAt,
};
pub use error::{Error, Result};
pub use log::Record;
pub use message::{dead_letter_headers, request_headers, Message};
pub use options::{
    Durability, Options, StreamConfig, PRIORITIES_MAX, SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN,
    SLOW_SYNC_THRESHOLD,
};
pub use report::{RecoveryReport, TornTail};
pub use request::REPLY_CONSUMER;
pub use store::Store;
pub use stream::{BucketStats, Iter, Stream, StreamStats};

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
