//! A crash-safe bridge between Spool streams and NATS JetStream.
//!
//! - [`outbound`]: a Spool stream forwarded to a JetStream subject, exactly
//!   once on the subject (the local store is the outbox).
//! - [`inbound`]: a JetStream subject appended to a Spool stream, exactly
//!   once in the stream (the local store is the inbox).
//!
//! Both are plain async functions over a [`spool::Store`] and an
//! [`async_nats::jetstream::Context`]; the `spool-bridge` binary runs one of
//! them. The protocols and their crash arguments are in DESIGN.md ("Bridge
//! (in progress)") and in each module's documentation.

pub mod fault;
pub mod headers;
pub mod inbound;
pub mod outbound;

/// What can stop a bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The local store failed.
    #[error("spool: {0}")]
    Spool(#[from] spool::Error),
    /// NATS or JetStream failed in a way a retry does not cure.
    #[error("nats: {0}")]
    Nats(String),
    /// The last message on the subject was not written by this bridge
    /// (another origin, or no position header): resuming from it could
    /// publish twice or skip, so the bridge stops.
    #[error("subject {subject}: last message (sequence {sequence}) is not this bridge's: {why}")]
    ForeignSubject {
        /// The subject.
        subject: String,
        /// Its last message's stream sequence.
        sequence: u64,
        /// What did not match.
        why: String,
    },
    /// A message larger than the NATS server takes (`max_payload`, its
    /// headers included), and no dead-letter stream configured: the bridge
    /// stops rather than retry it forever or skip it.
    #[error(
        "stream {stream:?}, message {priority}/{offset}: NATS cannot carry it ({why}); \
         configure a dead-letter stream to set it aside"
    )]
    TooLarge {
        /// The Spool stream.
        stream: String,
        /// The message's priority.
        priority: u8,
        /// Its offset.
        offset: u64,
        /// What NATS said (sizes).
        why: String,
    },
    /// A setting out of its bounds.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
}

pub(crate) fn nats(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Nats(e.to_string())
}

/// The result type of the bridge.
pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
