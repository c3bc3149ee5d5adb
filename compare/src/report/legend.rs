//! The lines below the table: how to read it and how each engine is used.

use super::Report;
use crate::memory;
use crate::numbers::{bytes, thousands};
use crate::{Workload, SMALL};

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
             after reopening the store. Bulk loads (W1, W4) group 1,000 messages per \
             transaction or batch for SQLite, redb and fjall, as their documentation advises; \
             Spool, queue-file and yaque make one call per message."
                .into(),
        ];
        lines.extend(self.engines.iter().map(|e| e.legend()));
        let spool_only = [Workload::F8, Workload::C4, Workload::O];
        if self.workloads.iter().any(|w| spool_only.contains(w)) {
            lines.push(
                "F8, C4 and O are Spool only (n/a for the peers: none has named subscribers \
                 that each see every message, or competing consumers sharing one cursor). F8: \
                 `receive_batch(256)` + `ack_up_to`, one thread per subscriber. C4: \
                 `try_receive` + `ack`, one thread each. Without fsync."
                    .into(),
            );
        }
        if self.workloads.contains(&Workload::W1) || self.workloads.contains(&Workload::W4) {
            lines.push(format!(
                "W1 and W4 send in `send_batch` (Spool only): the same messages, {} per \
                 `Stream::send_batch` call, a fresh store; read back and checked after the \
                 timed part.",
                crate::SEND_BATCH
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
