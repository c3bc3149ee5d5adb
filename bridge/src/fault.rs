//! A testing seam: abort the process at a named point of the protocol, so
//! that a kill test can crash the bridge exactly between two of its steps
//! (as SIGKILL would: no unwinding, no flush). Off unless set; a disabled
//! seam costs one branch per batch.

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

/// Aborts the process the `nth` time (from 1) [`Point`] is reached.
#[derive(Debug, Default)]
pub struct Fault {
    at: Option<(Point, u64)>,
    seen: AtomicU64,
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
            seen: AtomicU64::new(0),
        }
    }
    /// Parses `point:nth` (e.g. `publish-acked:3`).
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (p, n) = s.split_once(':').ok_or("want point:nth")?;
        let n = n.parse().map_err(|_| format!("bad count {n:?}"))?;
        Ok(Fault::at(p.parse()?, n))
    }
    pub(crate) fn reached(&self, point: Point) {
        if let Some((p, n)) = self.at {
            if p == point && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == n {
                std::process::abort();
            }
        }
    }
}
