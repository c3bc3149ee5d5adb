//! Spool: one stream `q` and one consumer `c`. One message per call is
//! `Stream::send`, and `Consumer::try_receive` + `Delivery::ack`; batched is
//! `Stream::send_batch`, and `Consumer::receive_batch` + one
//! `Consumer::ack_up_to` for the batch.

use crate::engine::{Engine, Producer, Queue, Result, Shared};
use spool::{Consumer, Durability, Options, Store, Stream};
use std::path::Path;
use std::time::Duration;

/// The Spool engine.
pub struct Spool;

/// Store options: the default segment size, `Always` or `Never`.
pub fn options(durable: bool) -> Options {
    Options::default().durability(if durable {
        Durability::Always
    } else {
        Durability::Never
    })
}

impl Engine for Spool {
    fn name(&self) -> &'static str {
        "Spool"
    }

    fn legend(&self) -> String {
        "Spool (this repository): `Durability::Never` without fsync, `Always` for durable rows; \
         one per call: `Stream::send`, and `Consumer::try_receive` + `Delivery::ack`; batched: \
         `Stream::send_batch`, and `Consumer::receive_batch` + `Consumer::ack_up_to` (one \
         acknowledgement, one sync when durable); W3c: 8 threads share one `Stream`, whose \
         concurrent durable sends share syncs (group commit)"
            .to_string()
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        let store = Store::open(dir, options(durable))?;
        let stream = store.stream("q")?;
        let consumer = stream.consumer("c")?;
        Ok(Box::new(SpoolQueue {
            stream,
            consumer,
            _store: store,
        }))
    }

    fn shared(&self, dir: &Path) -> Result<Box<dyn Shared>> {
        let store = Store::open(dir, options(true))?;
        let stream = store.stream("q")?;
        Ok(Box::new(SpoolShared {
            stream,
            _store: store,
        }))
    }
}

/// A stream and its consumer.
struct SpoolQueue {
    stream: Stream,
    consumer: Consumer,
    _store: Store,
}

impl Queue for SpoolQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        match msgs {
            [one] => {
                self.stream.send(one)?;
            }
            many => {
                self.stream.send_batch(many.iter().copied())?;
            }
        }
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        if max == 1 {
            return match self.consumer.try_receive()? {
                Some(d) => {
                    seen(d.payload())?;
                    d.ack()?;
                    Ok(1)
                }
                None => Ok(0),
            };
        }
        let batch = self.consumer.receive_batch(max, Duration::ZERO)?;
        for d in &batch {
            seen(d.payload())?;
        }
        if let Some(last) = batch.last() {
            self.consumer.ack_up_to(last.priority(), last.offset())?;
        }
        Ok(batch.len())
    }
}

/// One stream handle shared by every producer thread: concurrent durable
/// sends share one sync (group commit).
struct SpoolShared {
    stream: Stream,
    _store: Store,
}

impl Shared for SpoolShared {
    fn producer(&self) -> Result<Box<dyn Producer + '_>> {
        Ok(Box::new(&self.stream))
    }
}

impl Producer for &Stream {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Stream::send(self, msg)?;
        Ok(())
    }
}
