//! SQLite (rusqlite, bundled): a table `q (id INTEGER PRIMARY KEY, payload
//! BLOB)` in WAL mode, `synchronous=OFF` without fsync and `FULL` for
//! durable writes. One message per call is one INSERT in its own
//! (autocommit) transaction, and one transaction selecting and deleting the
//! oldest row; batched is one transaction for the batch (SQLite's advice
//! for bulk work): its INSERTs, or one SELECT of the oldest rows and one
//! DELETE of them.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SQLite engine.
pub struct Sqlite;

const INSERT: &str = "INSERT INTO q (payload) VALUES (?1)";

/// Opens the database file in `dir` with the benchmark's settings.
fn connect(dir: &Path, durable: bool) -> Result<Connection> {
    let conn = Connection::open(dir.join("q.sqlite"))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite refused WAL mode (journal_mode = {mode})").into());
    }
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    // Concurrent writers (W3c) wait for the write lock instead of failing.
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
    )?;
    Ok(conn)
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn legend(&self) -> String {
        format!(
            "SQLite {} (rusqlite 0.43.0, bundled): WAL, `synchronous=OFF` without fsync, `FULL` \
             for durable rows; one per call: an INSERT in its own transaction, and a transaction \
             of SELECT + DELETE of the oldest row; batched: one transaction per batch (its \
             INSERTs, or SELECT + DELETE of the batch's rows); W3c: one connection per thread, \
             `busy_timeout`",
            rusqlite::version()
        )
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        Ok(Box::new(SqliteQueue {
            conn: connect(dir, durable)?,
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        // Creates the file and the table once, before the producers race.
        drop(connect(dir, true)?);
        Ok(Box::new(SqliteShared {
            dir: dir.to_path_buf(),
        }))
    }
}

/// One connection.
struct SqliteQueue {
    conn: Connection,
}

impl Queue for SqliteQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        if let [one] = msgs {
            self.conn.prepare_cached(INSERT)?.execute(params![one])?;
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for m in msgs {
                insert.execute(params![m])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut count = 0;
        let mut last = None;
        {
            let mut select = tx.prepare_cached("SELECT id, payload FROM q ORDER BY id LIMIT ?1")?;
            let mut rows = select.query([max as i64])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                seen(row.get_ref(1)?.as_blob()?)?;
                last = Some(id);
                count += 1;
            }
        }
        if let Some(last) = last {
            tx.prepare_cached("DELETE FROM q WHERE id <= ?1")?
                .execute([last])?;
        }
        tx.commit()?;
        Ok(count)
    }
}

/// Producers each open their own connection (SQLite's way to write from
/// many threads); writers wait for the database's one write lock.
struct SqliteShared {
    dir: PathBuf,
}

impl Shared for SqliteShared {
    fn producer(&self) -> Result<Box<dyn Producer + '_>> {
        Ok(Box::new(SqliteProducer {
            conn: connect(&self.dir, true)?,
        }))
    }
}

/// One thread's connection; each insert is its own (durable) transaction.
struct SqliteProducer {
    conn: Connection,
}

impl Producer for SqliteProducer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.conn.prepare_cached(INSERT)?.execute(params![msg])?;
        Ok(())
    }
}
