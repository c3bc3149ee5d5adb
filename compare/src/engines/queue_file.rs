//! queue-file: one `QueueFile` (a ring buffer in one file). One message per
//! call is `add`, and `peek_into` + `remove`; batched is `add_n`, and
//! reading the oldest elements with its iterator + one `remove_n`. Writes are
//! synced (`set_sync_writes`) only for the durable workloads, and removed
//! elements are not zeroed (`set_overwrite_on_remove(false)`, as Spool does
//! not zero either).
//!
//! A `QueueFile` may not move between threads, so the W3c producers hand
//! their messages to the one thread that owns it and wait for its answer.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The queue-file engine.
pub struct QueueFile;

/// Opens the queue file in `dir`.
fn open_file(dir: &Path, durable: bool) -> Result<queue_file::QueueFile> {
    let mut qf = queue_file::QueueFile::open(path(dir))?;
    qf.set_sync_writes(durable);
    qf.set_overwrite_on_remove(false);
    Ok(qf)
}

/// The queue file's path.
fn path(dir: &Path) -> PathBuf {
    dir.join("q.qf")
}

impl Engine for QueueFile {
    fn name(&self) -> &'static str {
        "queue-file"
    }

    fn legend(&self) -> String {
        "queue-file 2.0.0: sync writes on only for durable rows, no zeroing on remove; one per \
         call: `add`, and `peek_into` + `remove`; batched: `add_n`, and its iterator + one \
         `remove_n`; W3c: `QueueFile` cannot be shared between threads, so one owner thread \
         adds for all producers, each waiting for its answer"
            .to_string()
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        Ok(Box::new(QfQueue {
            qf: open_file(dir, durable)?,
            buf: Vec::new(),
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let dir = dir.to_path_buf();
        let owner = std::thread::spawn(move || {
            let mut qf = match open_file(&dir, true) {
                Ok(qf) => {
                    let _ = ready_tx.send(Ok(()));
                    qf
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for (msg, reply) in rx {
                let _ = reply.send(qf.add(&msg).map_err(|e| e.to_string()));
            }
        });
        ready_rx
            .recv()
            .map_err(|_| "the queue-file owner thread died")??;
        Ok(Box::new(QfShared {
            tx: Some(tx),
            owner: Some(owner),
        }))
    }
}

/// The queue file, and the buffer a message is peeked into.
struct QfQueue {
    qf: queue_file::QueueFile,
    buf: Vec<u8>,
}

impl Queue for QfQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        match msgs {
            [one] => self.qf.add(one)?,
            many => self.qf.add_n(many.iter().copied())?,
        }
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        if max == 1 {
            if !self.qf.peek_into(&mut self.buf)? {
                return Ok(0);
            }
            seen(&self.buf)?;
            self.qf.remove()?;
            return Ok(1);
        }
        let mut count = 0;
        let mut items = self.qf.iter();
        while count < max {
            let Some(item) = items.borrowed_next() else {
                break;
            };
            seen(item)?;
            count += 1;
        }
        self.qf.remove_n(count)?;
        Ok(count)
    }
}

/// A message to add and where to answer once it is durable.
type Request = (Vec<u8>, mpsc::SyncSender<Result<(), String>>);

/// The channel to the owner thread; dropping it stops that thread and
/// closes the file.
struct QfShared {
    tx: Option<mpsc::Sender<Request>>,
    owner: Option<JoinHandle<()>>,
}

impl Shared for QfShared {
    fn producer(&self) -> Result<Box<dyn Producer + '_>> {
        let tx = self.tx.clone().ok_or("the queue-file store is closed")?;
        Ok(Box::new(QfProducer { tx }))
    }
}

impl Drop for QfShared {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(owner) = self.owner.take() {
            // A panic there has already been reported on stderr; the check
            // that follows finds whatever it left behind.
            let _ = owner.join();
        }
    }
}

/// One producer thread's end of the channel.
struct QfProducer {
    tx: mpsc::Sender<Request>,
}

impl Producer for QfProducer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.tx
            .send((msg.to_vec(), reply_tx))
            .map_err(|_| "the queue-file owner thread stopped")?;
        reply_rx
            .recv()
            .map_err(|_| "the queue-file owner thread stopped")??;
        Ok(())
    }
}
