//! The rows of the table, in table order: their labels, their units, and
//! how their figures are written.

use crate::numbers::{bytes, megabytes, rate, sig3, thousands};
use crate::sizes::Sizes;
use crate::{BATCH, C4_BATCH, COMPETING, LARGE, PRODUCERS, SMALL, SUBSCRIBERS, W2_BATCH};

/// A row of the table, in table order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Row {
    /// W1 send, one message per call, msg/s.
    W1Send,
    /// W1 receive + ack, one message per call, msg/s.
    W1Receive,
    /// W1 send, batches of [`BATCH`], msg/s.
    W1SendBatched,
    /// W1 receive + ack, batches of [`BATCH`] (one acknowledgement each), msg/s.
    W1ReceiveBatched,
    /// W2, msg/s.
    W2,
    /// W2's messages received back durably, one receive and durable ack
    /// per message, msg/s.
    W2Receive,
    /// W2's next messages received back durably in batches of
    /// [`BATCH`], one durable acknowledgement per batch, msg/s.
    W2ReceiveBatched,
    /// W3, msg/s.
    W3,
    /// W3c, msg/s.
    W3c,
    /// W3c with tokio tasks and `send_async` (Spool only), msg/s.
    W3cAsync,
    /// W4 send, MB/s.
    W4Send,
    /// W4 receive + ack, MB/s.
    W4Receive,
    /// W4 send, batches of [`BATCH`], MB/s.
    W4SendBatched,
    /// W4 receive + ack, batches of [`BATCH`], MB/s.
    W4ReceiveBatched,
    /// W4 send with 1 GiB segments (Spool only), MB/s.
    W4SendOneSegment,
    /// F8, one subscriber, ms.
    F8One,
    /// F8, all subscribers at once, ms.
    F8Many,
    /// F8, time of all over time of one.
    F8Ratio,
    /// C4, msg/s.
    C4,
    /// C4 with tokio tasks, `receive_async` + `ack_async`, msg/s.
    C4Async,
    /// C4 durable (`Always`), `receive_batch` and one `Delivery::ack` per
    /// message, msg/s.
    C4AlwaysEach,
    /// C4 durable (`Always`), `receive_batch` and one `Consumer::ack_batch`
    /// per batch, msg/s.
    C4AlwaysBatch,
    /// O, full size, clean close, ms.
    OpenClean,
    /// O, quarter size, clean close, ms.
    OpenQuarter,
    /// O, full size, after kill -9, ms.
    OpenKilled,
    /// O, many small streams with a consumer each, clean close, ms.
    OpenManyClean,
    /// O, many small streams with a consumer each, after kill -9, ms.
    OpenManyKilled,
    /// M, peak anonymous resident memory with all messages queued, MiB.
    MemoryQueued,
    /// M, disk space with all messages queued, MiB.
    DiskQueued,
    /// M, disk space after draining and retention, MiB.
    DiskDrained,
}

/// How a row's figures read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Messages per second.
    Rate,
    /// Payload megabytes per second.
    MegabytesPerSec,
    /// Milliseconds.
    Millis,
    /// A plain factor.
    Factor,
    /// Mebibytes (of memory or disk space).
    Mebibytes,
}

impl Row {
    fn unit(self) -> Unit {
        match self {
            Row::W4Send
            | Row::W4Receive
            | Row::W4SendBatched
            | Row::W4ReceiveBatched
            | Row::W4SendOneSegment => Unit::MegabytesPerSec,
            Row::F8One
            | Row::F8Many
            | Row::OpenClean
            | Row::OpenQuarter
            | Row::OpenKilled
            | Row::OpenManyClean
            | Row::OpenManyKilled => Unit::Millis,
            Row::F8Ratio => Unit::Factor,
            Row::MemoryQueued | Row::DiskQueued | Row::DiskDrained => Unit::Mebibytes,
            _ => Unit::Rate,
        }
    }

    /// Whether the peers run this row (then Spool's ratio to the best peer
    /// is shown).
    pub fn has_peers(self) -> bool {
        matches!(
            self,
            Row::W1Send
                | Row::W1Receive
                | Row::W1SendBatched
                | Row::W1ReceiveBatched
                | Row::W2
                | Row::W2Receive
                | Row::W2ReceiveBatched
                | Row::W3
                | Row::W3c
                | Row::W4Send
                | Row::W4Receive
                | Row::W4SendBatched
                | Row::W4ReceiveBatched
        )
    }

    /// The row's label.
    pub fn label(self, sizes: &Sizes, open_segments: usize) -> String {
        let n = thousands;
        let small = format!("{SMALL} B");
        match self {
            Row::W1Send => format!(
                "W1 send, {} \u{d7} {small}, one per call, no fsync (msg/s)",
                n(sizes.w1)
            ),
            Row::W1Receive => "W1 receive + ack, one per call (msg/s)".into(),
            Row::W1SendBatched => format!("W1 send, batches of {BATCH} \u{d7} {small} (msg/s)"),
            Row::W1ReceiveBatched => format!("W1 receive, batches of {BATCH} + ack (msg/s)"),
            Row::W2 => format!(
                "W2 durable, batches of {W2_BATCH}, {} \u{d7} {small} (msg/s)",
                n(sizes.w2)
            ),
            Row::W2Receive => format!(
                "W2 receive + ack, durable, one at a time, the first {} (msg/s)",
                n(sizes.w2_receive)
            ),
            Row::W2ReceiveBatched => format!(
                "W2 receive, durable, batches of {BATCH} + one ack each, the next {} (msg/s)",
                n(sizes.w2_receive)
            ),
            Row::W3 => format!(
                "W3 durable, one at a time, {} \u{d7} {small} (msg/s)",
                n(sizes.w3)
            ),
            Row::W3c => format!(
                "W3c durable, {PRODUCERS} producers, {} \u{d7} {small} (msg/s)",
                n(sizes.w3c_per * PRODUCERS as u64)
            ),
            Row::W3cAsync => format!("W3c async: {PRODUCERS} tokio tasks, `send_async` (msg/s)"),
            Row::W4Send => format!(
                "W4 send, {} \u{d7} {} KiB, one per call, no fsync (MB/s)",
                n(sizes.w4),
                LARGE / 1024
            ),
            Row::W4Receive => "W4 receive + ack, one per call (MB/s)".into(),
            Row::W4SendBatched => format!(
                "W4 send, batches of {BATCH} \u{d7} {} KiB (MB/s)",
                LARGE / 1024
            ),
            Row::W4ReceiveBatched => {
                format!("W4 receive batched: batches of {BATCH} + ack (MB/s)")
            }
            Row::W4SendOneSegment => "W4 send with 1 GiB segments: no segment sealed (MB/s)".into(),
            Row::F8One => format!("F8 1 subscriber, {} \u{d7} {small} (ms)", n(sizes.f8)),
            Row::F8Many => format!("F8 {SUBSCRIBERS} subscribers at once (ms)"),
            Row::F8Ratio => format!("F8 time of {SUBSCRIBERS} / time of 1"),
            Row::C4 => format!(
                "C4 {COMPETING} competing consumers, {} \u{d7} {small} (msg/s)",
                n(sizes.c4)
            ),
            Row::C4Async => {
                format!("C4 async: {COMPETING} tokio tasks, `receive_async` + `ack_async` (msg/s)")
            }
            Row::C4AlwaysEach => format!(
                "C4 durable (`Always`), {COMPETING} competing workers, receive_batch({C4_BATCH}) + \
                 ack each, {} \u{d7} {small} (msg/s)",
                n(sizes.c4_each)
            ),
            Row::C4AlwaysBatch => format!(
                "C4 durable (`Always`), {COMPETING} competing workers, receive_batch({C4_BATCH}) + \
                 batch ack, {} \u{d7} {small} (msg/s)",
                n(sizes.c4_batch)
            ),
            Row::OpenClean => format!(
                "O open, {}, {open_segments} segment{}, clean close (ms)",
                bytes(sizes.open_bytes),
                if open_segments == 1 { "" } else { "s" }
            ),
            Row::OpenQuarter => format!(
                "O open, {} (1/4), clean close (ms)",
                bytes(sizes.open_bytes / 4)
            ),
            Row::OpenKilled => format!("O open, {}, after kill -9 (ms)", bytes(sizes.open_bytes)),
            Row::OpenManyClean => format!(
                "O open, {} streams \u{d7} (16 messages, a consumer; one blob), clean close (ms)",
                n(sizes.open_streams as u64)
            ),
            Row::OpenManyKilled => format!(
                "O open, {} streams, after kill -9 (ms)",
                n(sizes.open_streams as u64)
            ),
            Row::MemoryQueued => format!(
                "M anonymous memory, {} \u{d7} {small} queued (MiB)",
                n(sizes.m)
            ),
            Row::DiskQueued => "M disk used with them queued (MiB)".into(),
            Row::DiskDrained => "M disk used after draining and retention (MiB)".into(),
        }
    }

    /// What a row measures, among the rows of its workload (for progress
    /// reports; empty for a workload's only row).
    pub fn part(self) -> &'static str {
        match self {
            Row::W1Send | Row::W4Send | Row::W2 => "send",
            Row::W4SendOneSegment => "send with 1 GiB segments",
            Row::W1Receive | Row::W4Receive => "receive + ack",
            Row::W1SendBatched | Row::W4SendBatched => "batched send",
            Row::W1ReceiveBatched | Row::W4ReceiveBatched => "batched receive + ack",
            Row::W2Receive => "durable receive + ack",
            Row::W2ReceiveBatched => "durable batched receive + ack",
            Row::F8One => "1 subscriber",
            Row::F8Many => "all at once",
            Row::F8Ratio => "ratio",
            Row::OpenClean => "clean",
            Row::OpenQuarter => "quarter size",
            Row::OpenKilled => "after kill -9",
            Row::OpenManyClean => "many streams, clean",
            Row::OpenManyKilled => "many streams, after kill -9",
            Row::MemoryQueued => "anonymous memory",
            Row::DiskQueued => "disk queued",
            Row::DiskDrained => "disk drained",
            Row::W3cAsync | Row::C4Async => "async",
            Row::C4AlwaysEach => "durable, ack each",
            Row::C4AlwaysBatch => "durable, batch ack",
            Row::W3 | Row::W3c | Row::C4 => "",
        }
    }

    /// A figure of this row, formatted with its unit.
    pub fn format(self, v: f64) -> String {
        match self.unit() {
            Unit::Rate => format!("{} msg/s", rate(v)),
            Unit::MegabytesPerSec => format!("{} MB/s", megabytes(v)),
            Unit::Millis => format!("{} ms", sig3(v)),
            Unit::Factor => format!("{}x", sig3(v)),
            Unit::Mebibytes => format!("{} MiB", sig3(v)),
        }
    }

    /// A figure of this row for a table cell (the unit is in the label).
    pub fn cell(self, v: f64) -> String {
        match self.unit() {
            Unit::Rate => rate(v),
            Unit::MegabytesPerSec => megabytes(v),
            Unit::Millis | Unit::Mebibytes => sig3(v),
            Unit::Factor => format!("{}x", sig3(v)),
        }
    }
}
