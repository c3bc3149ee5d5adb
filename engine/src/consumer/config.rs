//! A consumer's configuration (persisted in its `config.meta`).

use crate::limits::micros_saturating;
use crate::{name, Error, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a new consumer starts reading. Applies to every priority bucket.
///
/// ```
/// use spool::{ConsumerConfig, Options, StartAt, Store};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let events = store.stream("events")?;
///     events.send(b"a")?;
///     events.send(b"b")?;
///     std::thread::sleep(std::time::Duration::from_millis(2));
///     events.send(b"c")?;
///
///     let start = |at| ConsumerConfig::default().start(at);
///     let from_1 = events.consumer_with("from-1", start(StartAt::Offset(1)))?;
///     assert_eq!(from_1.try_receive()?.unwrap().payload(), b"b");
///
///     let sent_c = events.read(2)?.unwrap().timestamp();
///     let since = events.consumer_with("since", start(StartAt::timestamp(sent_c)))?;
///     assert_eq!(since.try_receive()?.unwrap().payload(), b"c");
///
///     let latest = events.consumer_with("latest", start(StartAt::Latest))?;
///     assert!(latest.try_receive()?.is_none()); // only what comes next
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAt {
    /// The first retained message (the default).
    Earliest,
    /// After the last message at creation time: only new messages.
    Latest,
    /// This offset (clamped to what is retained and written).
    Offset(u64),
    /// The first message at or after this many microseconds since the Unix
    /// epoch.
    TimestampUs(u64),
}

impl StartAt {
    /// The first message at or after `t`.
    pub fn timestamp(t: SystemTime) -> StartAt {
        StartAt::TimestampUs(
            t.duration_since(UNIX_EPOCH)
                .map(micros_saturating)
                .unwrap_or(0),
        )
    }
}

/// Configuration of a consumer, persisted with it.
///
/// ```
/// use spool::{ConsumerConfig, Error, Options, Store};
/// use std::time::Duration;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let dir = tempfile::tempdir()?;
///     let store = Store::open(dir.path(), Options::default())?;
///     let config = ConsumerConfig::default()
///         .visibility_timeout(Duration::from_secs(60)) // a job may take a minute
///         .max_deliveries(5) // then it is a dead letter
///         .dead_letter("jobs.dead")
///         .starvation_limit(10); // on a priority stream, a lower level's turn
///     let worker = store.stream("jobs")?.consumer_with("worker", config.clone())?;
///     drop(worker);
///     store.close()?;
///
///     // Stored with the consumer: after a restart, `consumer` finds it as it was.
///     let store = Store::open(dir.path(), Options::default())?;
///     let jobs = store.stream("jobs")?;
///     assert_eq!(jobs.consumer("worker")?.config(), config);
///
///     // Checked when the consumer is created or updated.
///     let never = ConsumerConfig::default().max_deliveries(0);
///     assert!(matches!(jobs.consumer_with("bad", never), Err(Error::InvalidConfig(_))));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Where a new consumer starts. Default = [`StartAt::Earliest`].
    pub start: StartAt,
    /// How long a delivery is leased before it is redelivered. Default = 30 s.
    /// Must be positive; 100 years or more (up to `Duration::MAX`) means the
    /// lease never expires (it ends with an ack, a nack or a restart).
    pub visibility_timeout: Duration,
    /// After this many deliveries without an ack, a message goes to the
    /// dead-letter stream (or, without one, is dropped and counted).
    /// Default = unlimited.
    pub max_deliveries: Option<u32>,
    /// Stream that receives dead letters (see [`crate::dead_letter_headers`]
    /// for what they carry). Default = none. Must be another stream than the
    /// consumer's own ([`crate::Error::InvalidConfig`] from
    /// `consumer_with`); a stored configuration naming its own stream is
    /// taken as none.
    pub dead_letter: Option<String>,
    /// Anti-starvation for priority streams: after this many deliveries from
    /// higher levels while a lower level has messages waiting, one message of
    /// the highest waiting lower level is served. Default = none (strict
    /// priority).
    pub starvation_limit: Option<u32>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            start: StartAt::Earliest,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: None,
            dead_letter: None,
            starvation_limit: None,
        }
    }
}

impl ConsumerConfig {
    /// Sets [`ConsumerConfig::start`].
    pub fn start(mut self, s: StartAt) -> Self {
        self.start = s;
        self
    }
    /// Sets [`ConsumerConfig::visibility_timeout`].
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility_timeout = d;
        self
    }
    /// Sets [`ConsumerConfig::max_deliveries`].
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = Some(n);
        self
    }
    /// Sets [`ConsumerConfig::dead_letter`].
    pub fn dead_letter(mut self, stream: &str) -> Self {
        self.dead_letter = Some(stream.to_string());
        self
    }
    /// Sets [`ConsumerConfig::starvation_limit`].
    pub fn starvation_limit(mut self, k: u32) -> Self {
        self.starvation_limit = Some(k);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.visibility_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "visibility_timeout must be positive".into(),
            ));
        }
        if self.max_deliveries == Some(0) {
            return Err(Error::InvalidConfig(
                "max_deliveries must be at least 1".into(),
            ));
        }
        if self.starvation_limit == Some(0) {
            return Err(Error::InvalidConfig(
                "starvation_limit must be at least 1".into(),
            ));
        }
        if let Some(d) = &self.dead_letter {
            name::validate(d)?;
        }
        Ok(())
    }
}
