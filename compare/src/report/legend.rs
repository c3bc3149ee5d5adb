//! The lines below the table: how to read it and how each engine is used.

use super::Report;
use crate::memory;
use crate::numbers::{bytes, thousands};
use crate::{Workload, BATCH, C4_BATCH, COMPETING, SMALL};

impl Report<'_> {
    /// The lines below the table: how to read it and how each engine is used.
    pub(super) fn legend(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "Each cell is the median of {} run{}; every run uses a fresh directory per engine \
                 and workload, and checks that every message came back exactly once and in order \
                 (per producer in W3c; across the threads in C4), or the program stops with an \
                 error. Payloads carry their sequence number at both ends.",
                self.runs,
                if self.runs == 1 { "" } else { "s" },
            ),
            "Durable rows: each call returns once its messages are on disk; they are read back \
             after reopening the store. W1 and W4 drive every engine both ways, each in a fresh \
             directory: one message per call (the engine's call for one message: a send, or a \
             receive and its acknowledgement; one transaction per message where the engine is a \
             database), and batches of 64 with the batched API the engine documents for bulk \
             work (one batch call, write batch or transaction per 64 messages, and one \
             acknowledgement per 64 received)."
                .into(),
        ];
        lines.extend(self.engines.iter().map(|e| e.legend()));
        let spool_only = [Workload::F8, Workload::C4, Workload::O];
        if self.workloads.iter().any(|w| spool_only.contains(w)) {
            lines.push(format!(
                "F8, C4 and O are Spool only (n/a for the peers: none has named subscribers \
                     that each see every message, or competing consumers sharing one cursor). \
                     F8: `receive_batch(256)` + `ack_up_to`, one thread per subscriber. C4: \
                     `try_receive` + `ack`, one thread each, without fsync. C4 durable: a store \
                     with `Durability::Always` (filled before the timer starts), {COMPETING} \
                     threads each taking `receive_batch({C4_BATCH})` and acknowledging it with \
                     one `Delivery::ack` per message (each waits for a sync of the journal; \
                     concurrent ones share it) or with one `Consumer::ack_batch` (one journal \
                     record and one sync per batch); then the store is reopened and must \
                     deliver nothing."
            ));
        }
        if self.workloads.contains(&Workload::W2) {
            lines.push(format!(
                "W2 receive + ack, durable: the W2 store reopened with durable writes, and the \
                 first {} of its messages received one at a time, each acknowledgement durable \
                 before the next receive (Spool: `Durability::Always`, `try_receive` + \
                 `Delivery::ack`; the databases: a durable transaction per message); then the \
                 next {} in batches of {BATCH}, each batch acknowledged durably before the next \
                 (Spool: `receive_batch` + `ack_up_to`; the databases: a durable transaction \
                 per batch; queue-file: `remove_n` with sync writes); the rest is then read \
                 after another reopen, so every message is checked, and none acknowledged \
                 comes back.",
                thousands(self.sizes.w2_receive),
                thousands(self.sizes.w2_receive)
            ));
        }
        if self.workloads.contains(&Workload::W4) {
            lines.push(
                "W4 send with 1 GiB segments (Spool only): the same sends into a store whose \
                 segments hold the whole run, so no segment is sealed (the background writeback \
                 still runs); sealing makes a segment durable (an open then scans only the \
                 active segment), and with 64 MiB segments that holds sends to the disk's write \
                 rate."
                    .into(),
            );
        }
        if self.workloads.contains(&Workload::O) {
            lines.push(format!(
                "O: `Store::open` plus getting the stream, with a warm page cache, on a store \
                 filled with {} KiB messages; after kill -9: a child process sends batches of \
                 64 without fsync for 300 ms and is killed with SIGKILL, then the open must find \
                 at least every message there before, the last one intact. Many streams: \
                 `Store::open` plus getting every stream and its consumer `c`, on a store of \
                 {} streams (default 64 MiB segments) of 16 \u{d7} 128 B messages each, 8 of \
                 them acknowledged and one in flight, and one 256 KiB claim check; after kill \
                 -9: a child process sends one message to every stream in turn and receives \
                 and acknowledges one, without fsync, for 300 ms.",
                crate::open_time::SIZE / 1024,
                thousands(self.sizes.open_streams as u64)
            ));
        }
        if self.workloads.contains(&Workload::M) {
            lines.push(format!(
                "M (Spool only): what a store costs in memory and disk space. A child process \
                 (so that the comparison's own allocations do not count) opens a store with \
                 `Durability::Never`, creates consumer `drain`, and sends {} \u{d7} {SMALL} B \
                 messages with `send_batch` of {}; memory is its anonymous resident memory \
                 (RssAnon: heap and private memory, not the memory-mapped segments, whose pages \
                 belong to the page cache), the largest of samples every {} messages and with \
                 all queued; disk is the space allocated to the store's files (st_blocks), after \
                 a `sync`. Then the consumer receives everything (`receive_batch({})` + \
                 `ack_up_to`), `apply_retention` and `sync` run, and the disk space is measured \
                 again: the active segment (a {} file, its disk space reserved in chunks as it \
                 fills) and the consumer journal ({}, reserved up front) stay.",
                thousands(self.sizes.m),
                thousands(memory::SEND_BATCH),
                thousands(memory::SAMPLE_EVERY),
                memory::RECEIVE_BATCH,
                bytes(memory::SEGMENT_BYTES),
                bytes(memory::JOURNAL_BYTES)
            ));
        }
        lines
    }
}
