//! yaque: an on-disk channel (`yaque::channel`), used from synchronous code
//! through `futures::executor::block_on` as its documentation shows. One
//! message per call is `Sender::send`, and `recv` (here its non-blocking
//! form, `try_recv`) + `RecvGuard::commit`; batched is `Sender::send_batch`
//! (one write and flush for the batch), and `try_recv_batch_up_to` + one
//! `commit`.
//!
//! yaque never calls fsync, so it cannot make a write durable: the durable
//! rows are "n/a" for it.

use crate::engine::{Engine, Queue, Result, Shared};
use futures::executor::block_on;
use std::path::Path;
use yaque::TryRecvError;

/// The yaque engine.
pub struct Yaque;

impl Engine for Yaque {
    fn name(&self) -> &'static str {
        "yaque"
    }

    fn legend(&self) -> String {
        "yaque 0.6.6 (driven by `futures::executor::block_on`): one per call: `send`, and \
         `try_recv` + `commit`; batched: `send_batch`, and `try_recv_batch_up_to` + one \
         `commit`; it never calls fsync, so durable rows are n/a"
            .to_string()
    }

    fn can_sync(&self) -> bool {
        false
    }

    fn open(&self, dir: &Path, durable: bool) -> Result<Box<dyn Queue>> {
        if durable {
            return Err("yaque has no durable writes (it never calls fsync)".into());
        }
        let (tx, rx) = yaque::channel(dir.join("q"))?;
        Ok(Box::new(YaqueQueue { tx, rx }))
    }

    fn shared(&self, _dir: &Path) -> Result<Box<dyn Shared>> {
        Err("yaque has no durable writes (it never calls fsync)".into())
    }
}

/// Both ends of the channel.
struct YaqueQueue {
    tx: yaque::Sender,
    rx: yaque::Receiver,
}

impl Queue for YaqueQueue {
    fn append(&mut self, msgs: &[&[u8]]) -> Result<()> {
        match msgs {
            [one] => block_on(self.tx.send(one))?,
            many => block_on(self.tx.send_batch(many.iter().copied()))?,
        }
        Ok(())
    }

    fn take(&mut self, max: usize, seen: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<usize> {
        if max == 1 {
            return match self.rx.try_recv() {
                Ok(guard) => {
                    seen(&guard)?;
                    guard.commit()?;
                    Ok(1)
                }
                Err(TryRecvError::QueueEmpty) => Ok(0),
                Err(TryRecvError::Io(e)) => Err(e.into()),
            };
        }
        match self.rx.try_recv_batch_up_to(max) {
            Ok(guard) => {
                for m in guard.iter() {
                    seen(m)?;
                }
                let count = guard.len();
                guard.commit()?;
                Ok(count)
            }
            Err(TryRecvError::QueueEmpty) => Ok(0),
            Err(TryRecvError::Io(e)) => Err(e.into()),
        }
    }
}
