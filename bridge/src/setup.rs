//! The JetStream side of a bridge: a stream that captures its subject.
//!
//! Both directions need a JetStream stream whose subjects cover the
//! bridge's subject. [`ensure_stream`] finds the one that does, or creates
//! one (file storage, the subject as its only subject, no limits) when none
//! does. It never changes an existing stream: a stream of that name that
//! does not capture the subject is an error, not a stream to rewrite.
//!
//! The outbound bridge resumes from the subject's last message (see
//! [`crate::outbound`]), so the stream's limits must keep it; the stream
//! created here has none. One made by other means may have age or count
//! limits that keep the newest message; a purge of the subject is not
//! allowed for.

use crate::{nats, BridgeError, Result};
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::Context;

/// What [`ensure_stream`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// A stream of this name captures the subject already.
    Found(String),
    /// The stream was created.
    Created(String),
}

/// Makes sure a JetStream stream captures `subject`: the one that does if
/// there is one (whatever its name: `name` only names a stream to create),
/// else a new stream `name` (file storage, `subject` its only subject, no
/// limits).
///
/// A stream `name` that exists and does not capture `subject` is
/// [`BridgeError::Setup`]; so is an invalid subject or stream name.
pub async fn ensure_stream(js: &Context, name: &str, subject: &str) -> Result<Ensured> {
    let setup = |why: String| BridgeError::Setup {
        stream: name.to_string(),
        subject: subject.to_string(),
        why,
    };
    match js.stream_by_subject(subject.to_string()).await {
        Ok(found) => return Ok(Ensured::Found(found)),
        Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => {}
        Err(e) if e.kind() == GetStreamByNameErrorKind::InvalidSubject => {
            return Err(setup("not a valid subject".to_string()))
        }
        Err(e) => return Err(nats(e)),
    }
    if name.is_empty() || name.contains(['.', '*', '>', ' ', '\t', '/', '\\']) {
        return Err(setup(
            "not a valid JetStream stream name (empty, or with '.', '*', '>', '/', '\\' or \
             white space)"
                .to_string(),
        ));
    }
    let config = Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: StorageType::File,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => Ok(Ensured::Created(name.to_string())),
        Err(e) => {
            // Another stream of that name, capturing other subjects; or a
            // creation raced by another process (then it captures the
            // subject now).
            match js.stream_by_subject(subject.to_string()).await {
                Ok(found) => Ok(Ensured::Found(found)),
                Err(_) => Err(setup(format!(
                    "no stream captures the subject, and creating one failed: {e}"
                ))),
            }
        }
    }
}
