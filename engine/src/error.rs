//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Result type of every fallible Spool operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Spool.
///
/// Corruption errors name the file and the byte position; I/O errors name the
/// operation and the path. Messages say what to do about it.
///
/// The enum is `#[non_exhaustive]`: a `match` ends with a catch-all arm.
///
/// ```
/// use spool::{Error, Message, Options, Store, StreamConfig};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default().message_bytes_max(1024))?;
///     let tasks = store.create_stream("tasks", StreamConfig::default().priorities(2))?;
///
///     let refused = [
///         tasks.send(&[0; 4096]),
///         tasks.send_message(Message::new(b"job").priority(5)),
///         store.create_stream("tasks", StreamConfig::default()).map(|_| 0),
///         store.stream("no spaces").map(|_| 0),
///     ];
///     for result in refused {
///         match result {
///             Err(Error::MessageTooLarge { bytes, limit }) => assert!(bytes > limit),
///             Err(Error::InvalidPriority { priority, priorities }) => {
///                 assert_eq!((priority, priorities), (5, 2))
///             }
///             Err(Error::StreamExists { name }) => assert_eq!(name, "tasks"),
///             Err(e @ Error::InvalidName { .. }) => {
///                 assert!(e.to_string().starts_with("invalid name \"no spaces\""))
///             }
///             // Free space and retry: nothing was written.
///             Err(Error::DiskFull { path }) => eprintln!("{} is full", path.display()),
///             // Damaged data: inspect the store with `segment-tool`.
///             Err(Error::Corrupt { file, position, .. }) => {
///                 eprintln!("damage in {} at byte {position}", file.display())
///             }
///             Err(other) => return Err(other.into()),
///             Ok(_) => panic!("each of these is refused"),
///         }
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"open"`, `"sync"`, ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The disk (or the file system quota) is full. Nothing was written; free
    /// space and try again.
    #[error("no space left for {path}: free disk space and retry; nothing was written")]
    DiskFull {
        /// The file that could not grow.
        path: PathBuf,
    },

    /// The process has no file descriptor left (`EMFILE`, or `ENFILE` for
    /// the whole system): every priority bucket of an open stream holds its
    /// active segment open. Only this call failed; the store goes on. Raise
    /// the limit (`ulimit -n`) or close something, and retry.
    #[error(
        "too many open files to open {path}: raise the limit of open files (ulimit -n) and retry"
    )]
    TooManyOpenFiles {
        /// What could not be opened.
        path: PathBuf,
    },

    /// Another `Store` has the store open: in this process (a handle of an
    /// earlier `Store::open` that was not closed is still alive: a stream,
    /// a consumer, a delivery) or in another process.
    #[error("store {path} is locked {}", if *.this_process {
        "by this process: a handle of an earlier open (a store, stream, consumer or delivery) is still alive; close the store or drop them"
    } else {
        "by another process"
    })]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// Whether this process holds the lock.
        this_process: bool,
    },

    /// A stream or consumer name is not `[A-Za-z0-9_.-]{1,128}` or starts with `.`.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name (lossily converted).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A message is larger than `Options::message_bytes_max` allows. Nothing was written.
    #[error("message of {bytes} bytes exceeds the limit of {limit} bytes; nothing was written")]
    MessageTooLarge {
        /// Encoded size of the message (headers and payload).
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },

    /// Message headers are malformed or too large. Nothing was written.
    #[error("invalid headers: {reason}; nothing was written")]
    InvalidHeaders {
        /// What is wrong with them.
        reason: &'static str,
    },

    /// Acknowledged data is damaged: a checksum, a length or an offset does not
    /// match. Spool stops rather than silently dropping it; `segment-tool info`
    /// lists every problem of a store with its file and position.
    #[error("corrupt data in {file} at byte {position}: {reason}; inspect the store with `segment-tool info`")]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte position of the damage within the file.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A file was written by a newer (or unknown) format version.
    #[error("{file} has format version {version}, which this build does not know; upgrade Spool")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version found in it.
        version: u32,
    },

    /// An earlier sync failed, so the kernel may have dropped written pages. No
    /// write is acknowledged any more; close the store and reopen it to recover
    /// from what is on disk.
    #[error("store is poisoned by an earlier failed sync; reopen it to recover")]
    Poisoned,

    /// `create_stream` was called for a stream that already exists.
    #[error("stream {name:?} already exists")]
    StreamExists {
        /// The stream's name.
        name: String,
    },

    /// [`crate::Store::open_stream`] named a stream that does not exist.
    #[error("stream {name:?} does not exist")]
    StreamNotFound {
        /// The stream's name.
        name: String,
    },

    /// [`crate::Stream::open_consumer`] named a consumer that does not exist.
    #[error("consumer {consumer:?} of stream {stream:?} does not exist")]
    ConsumerNotFound {
        /// The stream's name.
        stream: String,
        /// The consumer's name.
        consumer: String,
    },

    /// A typed open ([`crate::Store::typed_stream`],
    /// [`crate::TypedStream::open`]) found the stream holding messages of
    /// another type or codec, or of a newer schema version than this
    /// build's type (see [`crate::MessageType`]). Nothing was changed.
    #[error("stream {stream:?} holds messages of type {stored}; this handle asked for {requested}{}",
        if *.newer { ": the stream's schema version is newer than this build's (a downgrade is refused)" } else { "" })]
    TypeMismatch {
        /// The stream's name.
        stream: String,
        /// The identity recorded with the stream: type name, schema
        /// version, codec.
        stored: String,
        /// The identity of the handle's type.
        requested: String,
        /// Whether only the version differs, the stored one being newer.
        newer: bool,
    },

    /// A typed message could not be decoded as the handle's type: its
    /// payload is no typed envelope, its schema version is newer than the
    /// type's or has no upgrade, or the codec refused its bytes. The
    /// delivery it came with is still leased to the caller, to acknowledge,
    /// give back or dead-letter ([`crate::TypedDelivery::value`]).
    #[error("message at offset {offset} (priority {priority}) of stream {stream:?} does not decode as {type_name}: {reason}")]
    Decode {
        /// The stream's name.
        stream: String,
        /// Its priority level.
        priority: u8,
        /// Its offset in the bucket of that level.
        offset: u64,
        /// The identity of the type it was decoded as.
        type_name: String,
        /// What failed.
        reason: String,
    },

    /// A value could not be encoded by its codec (for example a map whose
    /// keys the codec cannot write). Nothing was written.
    #[error("cannot encode a value of type {type_name}: {reason}; nothing was written")]
    Encode {
        /// The type's name.
        type_name: String,
        /// What the codec said.
        reason: String,
    },

    /// [`crate::Store::stream_with`] found the stream with another
    /// configuration than the one asked for.
    #[error("stream {name:?} exists with another configuration: {existing}; asked for {wanted}")]
    ConfigMismatch {
        /// The stream's name.
        name: String,
        /// Its configuration, as stored.
        existing: String,
        /// The configuration asked for.
        wanted: String,
    },

    /// A bounded stream ([`crate::StreamConfig::capacity_bytes`],
    /// [`crate::StreamConfig::capacity_messages`]) is full: the send stored
    /// nothing (a batch: none of it). It succeeds again once retention
    /// frees space (consumers acknowledge whole segments, or `max_age` /
    /// `max_bytes` delete them).
    #[error("stream {name:?} is full: {held} of its capacity of {capacity} {unit}")]
    StreamFull {
        /// The stream's name.
        name: String,
        /// What it would hold after the send (bytes: with the segment files
        /// the send would have created).
        held: u64,
        /// Its capacity.
        capacity: u64,
        /// `"bytes"` or `"messages"`.
        unit: &'static str,
    },

    /// An offset below the first retained message was requested.
    #[error("offset {offset} is no longer retained; the first retained offset is {first}")]
    OffsetNotRetained {
        /// The requested offset.
        offset: u64,
        /// The first retained offset of the bucket.
        first: u64,
    },

    /// A priority outside the stream's configured levels was used.
    #[error("priority {priority} is out of range: the stream has {priorities} priority levels (0..{priorities})")]
    InvalidPriority {
        /// The requested priority.
        priority: u8,
        /// Number of priority levels of the stream.
        priorities: u8,
    },

    /// A lease was extended after it had expired or been given back; the
    /// message may have been delivered to someone else meanwhile.
    #[error("the lease on offset {offset} is no longer held")]
    LeaseExpired {
        /// The message's offset.
        offset: u64,
    },

    /// No reply with this correlation id arrived in time. A reply that
    /// arrives later is acknowledged and dropped.
    #[error("no reply for correlation id {correlation_id} in time")]
    Timeout {
        /// The request's correlation id.
        correlation_id: String,
    },

    /// `reply` was called on a message without `reply-to` and
    /// `correlation-id` headers.
    #[error(
        "the message at offset {offset} is not a request (no reply-to / correlation-id headers)"
    )]
    NotARequest {
        /// The message's offset.
        offset: u64,
    },

    /// An option, stream or consumer configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A call's arguments do not fit together (say, `send_reader` with a
    /// message that has a payload of its own). Nothing was done.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The store was closed: every `Store` handle was dropped or closed while
    /// this handle (a stream, a consumer, a waiting request) still lived.
    #[error("the store is closed")]
    Closed,

    /// A bug in Spool: an internal invariant did not hold (for example a
    /// state that could not be encoded). Nothing acknowledged is lost; please
    /// report it.
    #[error("internal error (a bug in Spool, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with the operation and path, turning `ENOSPC` and
    /// `EDQUOT` into [`Error::DiskFull`], `EMFILE` and `ENFILE` into
    /// [`Error::TooManyOpenFiles`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if is_disk_full(&source) {
            return Error::DiskFull { path };
        }
        if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            return Error::TooManyOpenFiles { path };
        }
        Error::Io { op, path, source }
    }

    /// An [`Error::Internal`] for a state that failed to encode.
    pub(crate) fn encode(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("cannot encode the {what}: {e}"))
    }

    /// Builds a [`Error::Corrupt`].
    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            file: file.into(),
            position,
            reason: reason.into(),
        }
    }
}

fn is_disk_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
        || err.kind() == io::ErrorKind::StorageFull
}
