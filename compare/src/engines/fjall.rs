//! fjall: a keyspace `q` keyed by the big-endian sequence number. Writes go
//! to the journal without fsync (fjall's default hands them to the OS);
//! durable writes are followed by `Database::persist(PersistMode::SyncData)`.
//! One message per call is `Keyspace::insert`, and reading the oldest entry
//! from a cursor (so that no read rescans deleted keys) and
//! `Keyspace::remove`; batched is one write batch (`Database::batch`) for
//! the batch: its inserts, or the removal of the oldest entries read.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The fjall engine.
pub struct Fjall;

/// Opens the database in `dir` and its keyspace `q`; returns them with the
/// key the next message gets.
fn open_keyspace(dir: &Path) -> Result<(Database, Keyspace, u64)> {
    let db = Database::builder(dir).open()?;
    let part = db.keyspace("q", KeyspaceCreateOptions::default)?;
    let next = match part.last_key_value() {
        Some(kv) => key_of(&kv.key()?)? + 1,
        None => 0,
    };
    Ok((db, part, next))
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
        "fjall 3.1.13: default config (journal handed to the OS, no fsync); durable rows call \
         `Database::persist(PersistMode::SyncData)` after each write; one per call: \
         `Keyspace::insert`, and the oldest entry from a cursor + `Keyspace::remove`; batched: \
         one write batch per batch (its inserts, or the removal of the entries read from the \
         cursor); W3c: shared keyspace, persist after each insert"
            .to_string()
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        let (db, part, next) = open_keyspace(dir)?;
        Ok(Box::new(FjallQueue {
            db,
            part,
            next,
            cursor: 0,
            durable,
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        let (db, part, next) = open_keyspace(dir)?;
        Ok(Box::new(FjallShared {
            db,
            part,
            next: AtomicU64::new(next),
        }))
    }
}

/// The database, its keyspace, and the write and read positions.
struct FjallQueue {
    db: Database,
    part: Keyspace,
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
            let mut batch = self.db.batch();
            for m in msgs {
                batch.insert(&self.part, &self.next.to_be_bytes()[..], *m);
                self.next += 1;
            }
            batch.commit()?;
        }
        if self.durable {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        if max == 1 {
            let Some(kv) = self.part.range(self.cursor.to_be_bytes()..).next() else {
                return Ok(0);
            };
            let (k, v) = kv.into_inner()?;
            seen(&v)?;
            self.cursor = key_of(&k)? + 1;
            self.part.remove(k)?;
            if self.durable {
                self.db.persist(PersistMode::SyncData)?;
            }
            return Ok(1);
        }
        let mut keys = Vec::with_capacity(max.min(4096));
        for kv in self.part.range(self.cursor.to_be_bytes()..).take(max) {
            let (k, v) = kv.into_inner()?;
            seen(&v)?;
            keys.push(k);
        }
        let Some(last) = keys.last() else {
            return Ok(0);
        };
        self.cursor = key_of(last)? + 1;
        let count = keys.len();
        let mut batch = self.db.batch();
        for k in keys {
            batch.remove(&self.part, k);
        }
        batch.commit()?;
        if self.durable {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(count)
    }
}

/// One database shared by the producer threads: each inserts, then persists.
struct FjallShared {
    db: Database,
    part: Keyspace,
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
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }
}
