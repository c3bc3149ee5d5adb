//! A crash-safe bridge between Spool streams and NATS JetStream.
//!
//! - [`outbound`]: a Spool stream forwarded to a JetStream subject, exactly
//!   once on the subject (the local store is the outbox).
//! - [`inbound`]: a JetStream subject appended to a Spool stream, exactly
//!   once in the stream (the local store is the inbox).
//!
//! Both are plain async functions over a [`spool::Store`] and an
//! [`async_nats::jetstream::Context`]; the `spool-bridge` binary runs one of
//! them; [`setup`] makes sure a JetStream stream captures the subject. The
//! protocols and their crash arguments are in DESIGN.md ("Bridge") and in
//! each module's documentation.

pub mod fault;
pub mod headers;
pub mod inbound;
pub mod outbound;
pub mod setup;

use std::time::Duration;

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
    /// No JetStream stream captures the subject and none could be made:
    /// the stream `stream` exists and captures other subjects, or a name
    /// or subject is not valid.
    #[error("JetStream stream {stream} for subject {subject}: {why}")]
    Setup {
        /// The stream to use or create.
        stream: String,
        /// The bridge's subject.
        subject: String,
        /// What went wrong.
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

/// Parses a duration setting (`500ms`, `2s`, `5m`, `1h`; a bare number is
/// seconds) and checks it lies in `min..=max`: a hostile value (0, 100
/// years, an overflowing number) is an [`BridgeError::InvalidConfig`]
/// naming the setting, not a panic.
///
/// ```
/// use spool_bridge::duration_setting;
/// use std::time::Duration;
/// let (min, max) = (Duration::from_millis(100), Duration::from_secs(600));
/// assert_eq!(duration_setting("--request-timeout", "1500ms", min, max).unwrap(), Duration::from_millis(1500));
/// assert!(duration_setting("--request-timeout", "0", min, max).is_err());
/// assert!(duration_setting("--request-timeout", "876000h", min, max).is_err());
/// ```
pub fn duration_setting(name: &str, text: &str, min: Duration, max: Duration) -> Result<Duration> {
    let bad = |why: String| BridgeError::InvalidConfig(format!("{name} {text:?}: {why}"));
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| bad("want a whole number and a unit (ms, s, m, h)".into()))?;
    let per = match unit.trim() {
        "ms" => Duration::from_millis(1),
        "" | "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        u => return Err(bad(format!("unknown unit {u:?} (ms, s, m, h)"))),
    };
    let d = u32::try_from(n)
        .ok()
        .and_then(|n| per.checked_mul(n))
        .ok_or_else(|| bad(format!("more than {max:?}")))?;
    check_duration(name, d, min, max)
}

/// Checks that the setting `name` lies in `min..=max`
/// ([`BridgeError::InvalidConfig`] otherwise).
pub fn check_duration(name: &str, d: Duration, min: Duration, max: Duration) -> Result<Duration> {
    if d < min || d > max {
        return Err(BridgeError::InvalidConfig(format!(
            "{name} {d:?}: must be between {min:?} and {max:?}"
        )));
    }
    Ok(d)
}

/// Bounds of the JetStream request (and publish ack) timeout.
pub const REQUEST_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

pub(crate) fn nats(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Nats(e.to_string())
}

/// The result type of the bridge.
pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
