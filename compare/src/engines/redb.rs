//! redb: a table `q` of `u64 -> &[u8]` keyed by sequence. Without fsync every
//! write transaction commits with `Durability::None`; durable ones with the
//! default, `Durability::Immediate`. One message per call is one write
//! transaction inserting it, and one popping the first entry; batched is one
//! write transaction for the batch (redb's advice for throughput): its
//! inserts, or as many `pop_first` calls.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The redb engine.
pub struct Redb;

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("q");

/// Opens the database in `dir`, creates the table, and returns the key the
/// next message gets.
fn open_db(dir: &Path) -> Result<(Database, u64)> {
    let db = Database::create(dir.join("q.redb"))?;
    let w = db.begin_write()?;
    let next = {
        let t = w.open_table(TABLE)?;
        let last = t.last()?.map(|(k, _)| k.value());
        last.map_or(0, |k| k + 1)
    };
    w.commit()?;
    Ok((db, next))
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn legend(&self) -> String {
        "redb 4.6.0: `Durability::None` without fsync, `Immediate` (the default) for durable \
         rows; one per call: a write transaction per insert and per `pop_first`; batched: one \
         write transaction per batch (its inserts, or its `pop_first` calls); W3c: one shared \
         `Database`, write transactions take turns"
            .to_string()
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        let (db, next) = open_db(dir)?;
        Ok(Box::new(RedbQueue {
            db,
            next,
            durability: if durable {
                Durability::Immediate
            } else {
                Durability::None
            },
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        let (db, next) = open_db(dir)?;
        Ok(Box::new(RedbShared {
            db,
            next: AtomicU64::new(next),
        }))
    }
}

/// The database and the next key.
struct RedbQueue {
    db: Database,
    next: u64,
    durability: Durability,
}

impl Queue for RedbQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        let mut w = self.db.begin_write()?;
        w.set_durability(self.durability)?;
        {
            let mut t = w.open_table(TABLE)?;
            for m in msgs {
                t.insert(self.next, *m)?;
                self.next += 1;
            }
        }
        w.commit()?;
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let mut w = self.db.begin_write()?;
        w.set_durability(self.durability)?;
        let mut count = 0;
        {
            let mut t = w.open_table(TABLE)?;
            while count < max {
                let Some((_, v)) = t.pop_first()? else { break };
                seen(v.value())?;
                count += 1;
            }
        }
        w.commit()?;
        Ok(count)
    }
}

/// One database shared by the producer threads: their write transactions
/// run one at a time, each committed durably.
struct RedbShared {
    db: Database,
    next: AtomicU64,
}

impl Shared for RedbShared {
    fn producer(&self) -> Result<Box<dyn Producer + '_>> {
        Ok(Box::new(self))
    }
}

impl Producer for &RedbShared {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(TABLE)?;
            // Taken inside the write transaction, which holds redb's single
            // writer lock: keys follow commit order.
            let key = self.next.fetch_add(1, Ordering::Relaxed);
            t.insert(key, msg)?;
        }
        w.commit()?;
        Ok(())
    }
}
