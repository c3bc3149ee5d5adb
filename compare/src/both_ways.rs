//! The rows of the shared workloads that drive every engine both ways, as
//! data: one message per call (the engine's call for one message) and
//! batches of [`BATCH`] (the batched API it documents for bulk work), both
//! through [`Queue`](crate::engine::Queue). A row more is an entry more in
//! one of these lists; the workloads run and check every entry alike.

use crate::engine::{Engine, Result};
use crate::row::Row;
use crate::sizes::Sizes;
use crate::workloads;
use crate::{Cell, BATCH, SMALL, W2_BATCH};
use std::path::Path;
use std::time::Duration;

/// One run of W1 or W4 in a directory of its own: every message sent, then
/// every message received and acknowledged, `group` per call both times.
pub struct SendReceive {
    /// Messages per append and per take.
    pub group: usize,
    /// The row of the send phase.
    pub send: Row,
    /// The row of the receive phase.
    pub receive: Row,
}

/// W1's ways, in run order.
pub const W1: [SendReceive; 2] = [
    SendReceive {
        group: 1,
        send: Row::W1Send,
        receive: Row::W1Receive,
    },
    SendReceive {
        group: BATCH,
        send: Row::W1SendBatched,
        receive: Row::W1ReceiveBatched,
    },
];

/// W4's ways, in run order.
pub const W4: [SendReceive; 2] = [
    SendReceive {
        group: 1,
        send: Row::W4Send,
        receive: Row::W4Receive,
    },
    SendReceive {
        group: BATCH,
        send: Row::W4SendBatched,
        receive: Row::W4ReceiveBatched,
    },
];

/// A timed durable receive of W2's messages: its row, and the messages
/// one take receives and acknowledges (1: a receive and a durable
/// acknowledgement per message).
pub struct DurableReceive {
    /// The row.
    pub row: Row,
    /// Messages per take.
    pub group: usize,
}

/// W2's durable receives, in run order: each receives the next
/// [`Sizes::w2_receive`] of W2's messages.
pub const W2_RECEIVES: [DurableReceive; 2] = [
    DurableReceive {
        row: Row::W2Receive,
        group: 1,
    },
    DurableReceive {
        row: Row::W2ReceiveBatched,
        group: BATCH,
    },
];

/// Runs every way of `ways` on engine `e`, each in a fresh subdirectory of
/// `dir` (removed after it), with `n` messages of `size` bytes; `figure`
/// turns a phase's time into its cell.
pub fn send_receive(
    e: &dyn Engine,
    dir: &Path,
    n: u64,
    size: usize,
    ways: &[SendReceive],
    figure: &dyn Fn(Duration) -> Cell,
) -> Result<Vec<(Row, Cell)>> {
    let mut cells = Vec::with_capacity(2 * ways.len());
    for way in ways {
        let sub = dir.join(format!("group-{}", way.group));
        std::fs::create_dir_all(&sub)?;
        let p = workloads::send_then_receive(e, &sub, n, size, way.group)?;
        // The next way starts without this one's files on the disk.
        std::fs::remove_dir_all(&sub)?;
        cells.push((way.send, figure(p.send)));
        cells.push((way.receive, figure(p.receive)));
    }
    Ok(cells)
}

/// W2 on engine `e` (one that can sync): its durable sends, then each of
/// [`W2_RECEIVES`] on the messages sent; `figure` turns a count of messages
/// and a time into a cell.
pub fn w2(
    e: &dyn Engine,
    dir: &Path,
    sizes: &Sizes,
    figure: &dyn Fn(u64, Duration) -> Cell,
) -> Result<Vec<(Row, Cell)>> {
    let groups: Vec<usize> = W2_RECEIVES.iter().map(|r| r.group).collect();
    let (sends, receives) = workloads::durable_sends_and_receives(
        e,
        dir,
        sizes.w2,
        SMALL,
        W2_BATCH,
        &groups,
        sizes.w2_receive,
    )?;
    let mut cells = vec![(Row::W2, figure(sizes.w2, sends))];
    for (r, d) in W2_RECEIVES.iter().zip(receives) {
        cells.push((r.row, figure(sizes.w2_receive, d)));
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines;

    /// Every engine, both ways, on a few messages (not a multiple of a
    /// batch): the workloads' own checks pass, so every message came back
    /// exactly once and in order.
    #[test]
    fn every_engine_both_ways_returns_every_message_once_in_order() {
        for e in engines::all() {
            let dir = tempfile::tempdir().expect("scratch directory");
            let cells = send_receive(&*e, dir.path(), 300, SMALL, &W1, &|_| Cell::Value(1.0))
                .unwrap_or_else(|err| panic!("{}: {err}", e.name()));
            let rows: Vec<Row> = cells.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                rows,
                [
                    Row::W1Send,
                    Row::W1Receive,
                    Row::W1SendBatched,
                    Row::W1ReceiveBatched
                ]
            );
        }
    }

    /// Every engine that can sync: W2's durable sends, then a durable
    /// receive one at a time and one in batches of 64 of the next messages,
    /// then the rest after a reopen, all checked.
    #[test]
    fn every_durable_engine_receives_w2_back_once_in_order() {
        for e in engines::all().into_iter().filter(|e| e.can_sync()) {
            let dir = tempfile::tempdir().expect("scratch directory");
            let (_, times) = workloads::durable_sends_and_receives(
                &*e,
                dir.path(),
                640,
                SMALL,
                64,
                &[1, 64],
                100,
            )
            .unwrap_or_else(|err| panic!("{}: {err}", e.name()));
            assert_eq!(times.len(), 2, "{}", e.name());
        }
    }

    /// The durable receives fit in W2's messages at any scale, and every row
    /// of these lists has peers (so the table shows Spool's ratio).
    #[test]
    fn rows_fit_and_have_peers() {
        for scale in [0.001, 0.01, 0.1, 1.0, 3.0] {
            let s = Sizes::new(scale);
            assert!(
                s.w2_receive * W2_RECEIVES.len() as u64 <= s.w2,
                "scale {scale}"
            );
            assert!(s.w2_receive > 0, "scale {scale}");
        }
        let rows = W1
            .iter()
            .chain(&W4)
            .flat_map(|w| [w.send, w.receive])
            .chain(W2_RECEIVES.iter().map(|r| r.row));
        for r in rows {
            assert!(r.has_peers(), "{r:?}");
        }
    }
}
