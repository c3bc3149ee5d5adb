//! What every engine offers the shared workloads: a queue opened in a
//! directory, and producers on many threads sharing one store.

use std::path::Path;

/// Errors of a run: I/O and engine errors, and failed checks.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result of a run.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A FIFO queue on one engine, in one directory. Each engine is driven two
/// ways through it: one message per call, with the call the engine offers
/// for one message, and many per call, with the batched API it documents
/// for bulk work (one transaction, one write batch or one batch call).
pub trait Queue {
    /// Appends `msgs` as one unit: for one message the engine's call for one
    /// message, for more its batched call (or one transaction). If the queue
    /// was opened durable, they are on disk when this returns.
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()>;

    /// Receives up to `max` of the oldest messages, hands each to `seen` in
    /// order, and acknowledges (removes) them as one unit: for `max` 1 the
    /// engine's receive and acknowledgement of one message, for more its
    /// batched receive and one acknowledgement of the batch (or one
    /// transaction). Returns how many it received: 0 when the queue is
    /// empty.
    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize>;
}

/// One store shared by producers on many threads, each waiting for its own
/// message to be durable (W3c). Dropping it closes the store.
pub trait Shared: Sync {
    /// A producer for the calling thread.
    fn producer(&self) -> Result<Box<dyn Producer + '_>>;
}

/// One thread's producer on a [`Shared`] store.
pub trait Producer {
    /// Sends one message and returns once it is durable.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
}

/// An engine under test.
pub trait Engine: Sync {
    /// Column name in the table.
    fn name(&self) -> &'static str;

    /// One line for the table's legend: the version and how the workloads
    /// use the engine, one message per call and batched.
    fn legend(&self) -> String;

    /// Whether the engine can make a write durable at all (fsync). Engines
    /// that cannot are "n/a" in the durable rows.
    fn can_sync(&self) -> bool {
        true
    }

    /// Opens (creating if needed) the queue stored in `dir`. With `durable`,
    /// every append, and every take's acknowledgement, is on disk when it
    /// returns; without, nothing is synced.
    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>>;

    /// Opens the queue in `dir` for durable producers on many threads.
    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>>;
}
