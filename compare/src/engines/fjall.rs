//! fjall: a partition `q` keyed by the big-endian sequence number. Writes go
//! to the journal without fsync (fjall's default hands them to the OS);
//! durable writes are followed by `Keyspace::persist(PersistMode::SyncData)`.
//! Bulk loads put 1,000 inserts in one write batch; a take reads the oldest
//! entries from a cursor (so it never rescans deleted keys) and removes them
//! in one batch.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The fjall engine.
pub struct Fjall;

/// Inserts (or removes) per write batch in the bulk loads.
const GROUP: usize = 1000;

/// Opens the keyspace in `dir` and its partition `q`; returns them with the
/// key the next message gets.
fn open_partition(dir: &Path) -> Result<(Keyspace, PartitionHandle, u64)> {
    let keyspace = Config::new(dir).open()?;
    let part = keyspace.open_partition("q", PartitionCreateOptions::default())?;
    let next = match part.last_key_value()? {
        Some((k, _)) => key_of(&k)? + 1,
        None => 0,
    };
    Ok((keyspace, part, next))
}

/// The sequence number a key holds.
fn key_of(k: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = k
        .try_into()
        .map_err(|_| format!("fjall returned a key of {} bytes", k.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn legend(&self) -> String {
        "fjall 2.11.2: default config (journal handed to the OS, no fsync); durable rows call \
         `Keyspace::persist(PersistMode::SyncData)` after each write; 1,000 inserts per write \
         batch in bulk loads, one batch per 64 (W2), `insert` per message (W3); receive: range \
         from a cursor + one batch removing 1,000; W3c: shared keyspace, persist after each insert"
            .to_string()
    }

    fn bulk_append(&self) -> usize {
        GROUP
    }

    fn bulk_take(&self) -> usize {
        GROUP
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        let (keyspace, part, next) = open_partition(dir)?;
        Ok(Box::new(FjallQueue {
            keyspace,
            part,
            next,
            cursor: 0,
            durable,
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        let (keyspace, part, next) = open_partition(dir)?;
        Ok(Box::new(FjallShared {
            keyspace,
            part,
            next: AtomicU64::new(next),
        }))
    }
}

/// The keyspace, its partition, and the write and read positions.
struct FjallQueue {
    keyspace: Keyspace,
    part: PartitionHandle,
    next: u64,
    /// Keys below this one have been taken.
    cursor: u64,
    durable: bool,
}

impl Queue for FjallQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        if let [one] = msgs {
            self.part.insert(&self.next.to_be_bytes()[..], *one)?;
            self.next += 1;
        } else {
            let mut batch = self.keyspace.batch();
            for m in msgs {
                batch.insert(&self.part, &self.next.to_be_bytes()[..], *m);
                self.next += 1;
            }
            batch.commit()?;
        }
        if self.durable {
            self.keyspace.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let mut keys = Vec::with_capacity(max.min(4096));
        for kv in self.part.range(self.cursor.to_be_bytes()..).take(max) {
            let (k, v) = kv?;
            seen(&v)?;
            keys.push(k);
        }
        let Some(last) = keys.last() else {
            return Ok(0);
        };
        self.cursor = key_of(last)? + 1;
        let count = keys.len();
        let mut batch = self.keyspace.batch();
        for k in keys {
            batch.remove(&self.part, k);
        }
        batch.commit()?;
        if self.durable {
            self.keyspace.persist(PersistMode::SyncData)?;
        }
        Ok(count)
    }
}

/// One keyspace shared by the producer threads: each inserts, then persists.
struct FjallShared {
    keyspace: Keyspace,
    part: PartitionHandle,
    next: AtomicU64,
}

impl Shared for FjallShared {
    fn producer(&self) -> Result<Box<dyn Producer + '_>> {
        Ok(Box::new(self))
    }
}

impl Producer for &FjallShared {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        // Each producer's keys increase, so its messages stay in its order.
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.part.insert(&key.to_be_bytes()[..], msg)?;
        self.keyspace.persist(PersistMode::SyncData)?;
        Ok(())
    }
}
