//! SQLite (rusqlite, bundled): a table `q (id INTEGER PRIMARY KEY, payload
//! BLOB)` in WAL mode, `synchronous=OFF` without fsync and `FULL` for
//! durable writes. Appends and takes are one transaction each (bulk loads
//! group 1,000 rows per transaction, as SQLite's documentation advises);
//! a take selects the oldest rows and deletes them.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SQLite engine.
pub struct Sqlite;

/// Rows per transaction in the bulk loads.
const GROUP: usize = 1000;

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
             for durable rows; 1,000 inserts per transaction in bulk loads, one transaction per \
             batch of 64 (W2) or per message (W3); receive: SELECT + DELETE of 1,000 rows per \
             transaction; W3c: one connection per thread, `busy_timeout`",
            rusqlite::version()
        )
    }

    fn bulk_append(&self) -> usize {
        GROUP
    }

    fn bulk_take(&self) -> usize {
        GROUP
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
