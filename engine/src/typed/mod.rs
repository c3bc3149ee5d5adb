//! Typed messages: serde types over the bytes API.
//!
//! A [`TypedStream<T>`] sends values of a [`MessageType`] `T`, encoded by a
//! [`Codec`] ([`Postcard`] by default) behind a small versioned envelope; a
//! [`TypedConsumer<T>`] receives [`TypedDelivery<T>`]s, the decoded value
//! beside the [`Delivery`](crate::Delivery) it came with. The type's
//! identity (its name, schema version and the codec's name) is recorded
//! with the stream, in `message_type.meta`, the first time a typed handle
//! opens it, and checked at every later typed open: another type or codec,
//! or a newer schema version than the opener's, is
//! [`Error::TypeMismatch`](crate::Error::TypeMismatch). The bytes API keeps
//! working on the same stream (it sees the envelopes as payloads).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use spool::{MessageType, Options, Store};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     id: u64,
//!     item: String,
//! }
//!
//! impl MessageType for Order {
//!     const NAME: &'static str = "shop.Order";
//!     const VERSION: u32 = 1;
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let store = Store::open(dir.path(), Options::default())?;
//!     let orders = store.typed_stream::<Order>("orders")?;
//!     orders.send(&Order { id: 1, item: "espresso".into() })?;
//!
//!     let kitchen = orders.consumer("kitchen")?;
//!     let order = kitchen.receive(Duration::from_secs(1))?.expect("sent above");
//!     assert_eq!(order.value()?.item, "espresso");
//!     order.ack()?;
//!     Ok(())
//! }
//! ```
//!
//! # Evolving a type
//!
//! Postcard is not self-describing: a message written before a field was
//! added does not decode as the new struct, `#[serde(default)]` or not (the
//! decoder runs out of bytes, or worse, reads the next field's bytes as the
//! new one). So a type is evolved by version, never in place:
//!
//! 1. keep the old struct under another name (`OrderV1`), unchanged;
//! 2. change the type and bump its [`MessageType::VERSION`];
//! 3. implement [`MessageType::upgrade`]: decode an old body with the codec
//!    as the old struct, and convert it.
//!
//! Every payload carries the schema version it was written with, so
//! messages of every version mix in one stream: those of the current
//! version decode directly, older ones through `upgrade`. The first typed
//! open with the new version records it with the stream; from then on an
//! open with the old version is refused (`TypeMismatch`: it could not read
//! the new messages), so deploy readers before, or together with, writers.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use spool::{Codec, CodecError, Error, MessageType, Options, Store};
//!
//! mod v1 {
//!     use super::*;
//!     /// The type as it was: kept, unchanged, to read old messages.
//!     #[derive(Serialize, Deserialize, Debug, PartialEq)]
//!     pub struct Order {
//!         pub id: u64,
//!         pub item: String,
//!     }
//!     impl MessageType for Order {
//!         const NAME: &'static str = "shop.Order";
//!         const VERSION: u32 = 1;
//!     }
//! }
//!
//! /// The type now: a field added, the version bumped.
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Order {
//!     id: u64,
//!     item: String,
//!     quantity: u32,
//! }
//!
//! impl MessageType for Order {
//!     const NAME: &'static str = "shop.Order";
//!     const VERSION: u32 = 2;
//!
//!     fn upgrade<C: Codec>(from_version: u32, body: &[u8]) -> Result<Self, CodecError> {
//!         match from_version {
//!             1 => {
//!                 let old: v1::Order = C::decode(body)?;
//!                 Ok(Order { id: old.id, item: old.item, quantity: 1 })
//!             }
//!             v => Err(CodecError::new(format!("no upgrade from version {v}"))),
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     {
//!         // Yesterday's program.
//!         let store = Store::open(dir.path(), Options::default())?;
//!         let orders = store.typed_stream::<v1::Order>("orders")?;
//!         orders.send(&v1::Order { id: 1, item: "espresso".into() })?;
//!         store.close()?;
//!     }
//!     // Today's program reads yesterday's message, and writes new ones.
//!     let store = Store::open(dir.path(), Options::default())?;
//!     let orders = store.typed_stream::<Order>("orders")?; // records version 2
//!     orders.send(&Order { id: 2, item: "tea".into(), quantity: 3 })?;
//!     let kitchen = orders.consumer("kitchen")?;
//!     let first = kitchen.try_receive()?.expect("the old message");
//!     assert_eq!(first.schema_version(), Some(1));
//!     assert_eq!(first.value()?, &Order { id: 1, item: "espresso".into(), quantity: 1 });
//!     let second = kitchen.try_receive()?.expect("the new one");
//!     assert_eq!(second.value()?.quantity, 3);
//!
//!     // Yesterday's program cannot come back: it could not read version 2.
//!     let old = store.typed_stream::<v1::Order>("orders");
//!     assert!(matches!(old, Err(Error::TypeMismatch { newer: true, .. })));
//!     Ok(())
//! }
//! ```
//!
//! Renaming a type is a change of identity (refused); a self-describing
//! codec of your own (a [`Codec`] with another name) is a new stream.
//!
//! # A message that does not decode
//!
//! It does not stop the consumer: the receive returns it like any other,
//! and [`TypedDelivery::value`] is the typed error
//! ([`Error::Decode`](crate::Error::Decode), with the stream, priority and
//! offset). The delivery is leased as usual: acknowledge it to drop it,
//! give it back, or [`TypedDelivery::dead_letter`] it.

mod consumer;
mod identity;
mod owned;
mod stream;

pub use consumer::{
    TypedConsumer, TypedDeliveries, TypedDelivery, TypedReceive, TypedReceiveBatch,
};
pub use owned::OwnedMessage;
pub use stream::{TypedMessage, TypedStream};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type sent as typed messages: serde, a name and a schema version.
///
/// `NAME` identifies the type in the stream (a stream holds one type; a
/// qualified name such as `"shop.Order"` avoids clashes), at most 1,024
/// bytes. `VERSION` is the schema version, bumped at every change of the
/// encoded form; [`MessageType::upgrade`] reads bodies of older versions.
/// See the [module documentation](crate::typed) for an evolution.
pub trait MessageType: Serialize + DeserializeOwned {
    /// The type's name, recorded with the stream.
    const NAME: &'static str;
    /// The schema version this build writes.
    const VERSION: u32;

    /// Decodes `body`, written by the codec `C` as schema `from_version`
    /// (older than [`MessageType::VERSION`]), into the current type. The
    /// default refuses every older version.
    fn upgrade<C: Codec>(from_version: u32, body: &[u8]) -> Result<Self, CodecError> {
        let _ = body;
        Err(CodecError::new(format!(
            "schema version {from_version} is older than {} and `{}` has no upgrade from it",
            Self::VERSION,
            Self::NAME
        )))
    }
}

/// Why a codec could not encode or decode a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// An error saying `message`.
    pub fn new(message: impl std::fmt::Display) -> CodecError {
        CodecError {
            message: message.to_string(),
        }
    }

    /// What it says.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

/// How typed values become bytes. Its `NAME` is part of the identity
/// recorded with the stream (a stream's messages are all of one codec).
pub trait Codec: 'static {
    /// The codec's name, recorded with the stream: 1..=64 bytes.
    const NAME: &'static str;
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes a value from all of `bytes` (bytes left over are an error).
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// [postcard](https://docs.rs/postcard): compact, fast, not
/// self-describing (see [Evolving a type](crate::typed#evolving-a-type)).
/// The default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    const NAME: &'static str = "postcard";

    #[inline]
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let buf = std::mem::take(out);
        *out = postcard::to_extend(value, buf).map_err(CodecError::new)?;
        Ok(())
    }

    #[inline]
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) = postcard::take_from_bytes(bytes).map_err(CodecError::new)?;
        if !rest.is_empty() {
            return Err(CodecError::new(format!(
                "{} bytes left over after the value",
                rest.len()
            )));
        }
        Ok(value)
    }
}

/// The identity of `T` encoded by `C`.
pub(crate) fn identity_of<T: MessageType, C: Codec>() -> crate::format::typed::TypeIdentity {
    crate::format::typed::TypeIdentity {
        name: T::NAME.to_string(),
        version: T::VERSION,
        codec: C::NAME.to_string(),
    }
}

/// Encodes `value` as a typed payload (envelope, then the codec's bytes),
/// appended to `out`.
#[inline]
pub(crate) fn encode_into<T: MessageType, C: Codec>(
    value: &T,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    crate::format::typed::put_envelope(out, T::VERSION);
    C::encode(value, out).map_err(|e| crate::Error::Encode {
        type_name: T::NAME.to_string(),
        reason: e.to_string(),
    })
}

/// Decodes a typed payload: the schema version it was written with and the
/// value, or why not.
#[inline]
pub(crate) fn decode_payload<T: MessageType, C: Codec>(
    payload: &[u8],
) -> Result<(u32, T), (Option<u32>, String)> {
    let (version, body) =
        crate::format::typed::decode_envelope(payload).map_err(|e| (None, e.to_string()))?;
    let value = if version == T::VERSION {
        C::decode(body)
    } else if version < T::VERSION {
        T::upgrade::<C>(version, body)
    } else {
        Err(CodecError::new(format!(
            "schema version {version} is newer than this build's {}",
            T::VERSION
        )))
    };
    value
        .map(|v| (version, v))
        .map_err(|e| (Some(version), e.to_string()))
}
