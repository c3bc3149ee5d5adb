//! A testing seam: abort the process at a named point of the protocol, so
//! that a kill test can crash the bridge exactly between two of its steps
//! (as SIGKILL would: no unwinding, no flush); or lose the inbound bridge's
//! acknowledgements of one batch to NATS, as a dropped packet would, so
//! that JetStream delivers those messages again while the bridge runs. Off
//! unless set; a disabled seam costs one branch per batch.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where [`Fault`] can abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Outbound: publishes of a run sent, their acks not yet awaited.
    PublishSent,
    /// Outbound: publish acks in, the local ack not yet written.
    PublishAcked,
    /// Inbound: appends of a batch written, not yet known durable.
    AppendWritten,
    /// Inbound: appends durable, not yet acked to NATS.
    AppendDurable,
}

impl std::str::FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Point, String> {
        Ok(match s {
            "publish-sent" => Point::PublishSent,
            "publish-acked" => Point::PublishAcked,
            "append-written" => Point::AppendWritten,
            "append-durable" => Point::AppendDurable,
            _ => return Err(format!("unknown fault point {s:?}")),
        })
    }
}

/// Aborts the process the `nth` time (from 1) [`Point`] is reached, or
/// loses the NATS acks of the `nth` inbound batch.
#[derive(Debug, Default)]
pub struct Fault {
    at: Option<(Point, u64)>,
    seen: AtomicU64,
    drop_acks: Option<u64>,
    batches: AtomicU64,
}

impl Fault {
    /// No fault.
    pub fn none() -> Fault {
        Fault::default()
    }
    /// Abort the `nth` time `point` is reached.
    pub fn at(point: Point, nth: u64) -> Fault {
        Fault {
            at: Some((point, nth)),
            ..Fault::default()
        }
    }
    /// Lose the NATS acks of the `nth` inbound batch that appended
    /// something (from 1): its messages are delivered again once the
    /// consumer's ack wait has passed.
    pub fn drop_acks(nth: u64) -> Fault {
        Fault {
            drop_acks: Some(nth),
            ..Fault::default()
        }
    }
    /// Parses `point:nth` (e.g. `publish-acked:3`).
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (p, n) = s.split_once(':').ok_or("want point:nth")?;
        let n = n.parse().map_err(|_| format!("bad count {n:?}"))?;
        Ok(Fault::at(p.parse()?, n))
    }
    /// Whether the acks of this inbound batch are to be lost (counts the
    /// batch).
    pub(crate) fn drops_acks(&self) -> bool {
        match self.drop_acks {
            Some(n) => self.batches.fetch_add(1, Ordering::Relaxed) + 1 == n,
            None => false,
        }
    }
    pub(crate) fn reached(&self, point: Point) {
        if let Some((p, n)) = self.at {
            if p == point && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == n {
                std::process::abort();
            }
        }
    }
}
