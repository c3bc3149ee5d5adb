//! The targets: each compares a measured figure with a goal.

use super::Report;
use crate::memory;
use crate::numbers::{bytes, sig3, thousands};
use crate::results::SPOOL;
use crate::row::Row;
use crate::{SMALL, W2_BATCH, W2_BATCH_BYTES};

/// A target and whether it was met.
pub(super) struct Target {
    pub(super) what: &'static str,
    pub(super) detail: String,
    pub(super) met: bool,
}

impl Report<'_> {
    /// The targets whose figures were measured, judged.
    pub(super) fn targets(&self) -> Vec<Target> {
        let r = self.results;
        let spool = |row| r.get_named(row, SPOOL);
        let mut out = Vec::new();
        let mut vs_best = |what, row: Row, factor: f64| {
            if let (Some(s), Some((name, p))) = (spool(row), r.best_peer(row)) {
                out.push(Target {
                    what,
                    detail: format!(
                        "Spool {} vs {name} {}: {}x",
                        row.format(s),
                        row.format(p),
                        sig3(s / p)
                    ),
                    met: s >= factor * p,
                });
            }
        };
        // Each way against the peers driven the same way: one per call, and
        // batches of 64.
        vs_best("W1 send >= 4x best peer", Row::W1Send, 4.0);
        vs_best("W1 send >= 2x best peer, batched", Row::W1SendBatched, 2.0);
        vs_best("W1 receive >= 2x best peer", Row::W1Receive, 2.0);
        vs_best(
            "W1 receive >= 2x best peer, batched",
            Row::W1ReceiveBatched,
            2.0,
        );
        vs_best("W4 send >= 2x best peer (MB/s)", Row::W4Send, 2.0);
        vs_best(
            "W4 send >= 1.5x best peer, batched",
            Row::W4SendBatched,
            1.5,
        );
        vs_best(
            "W2 receive >= 1.5x best durable peer, batch ack",
            Row::W2ReceiveBatched,
            1.5,
        );
        vs_best("W4 receive >= 2x best peer (MB/s)", Row::W4Receive, 2.0);
        vs_best(
            "W4 receive >= 2x best peer, batched",
            Row::W4ReceiveBatched,
            2.0,
        );
        if let Some(s) = spool(Row::W4SendBatched) {
            let cache = self.limits.write_mb_per_sec;
            out.push(Target {
                what: "W4 send, batched >= 50% of the page cache's write rate",
                detail: format!(
                    "Spool {} MB/s = {:.0}% of {} MB/s (buffered sequential write, this run)",
                    sig3(s),
                    100.0 * s / cache,
                    sig3(cache)
                ),
                met: s >= 0.5 * cache,
            });
        }
        let syncs = self.limits.syncs_per_sec();
        if let Some(s) = spool(Row::W2) {
            let need = 0.8 * W2_BATCH as f64 * syncs;
            out.push(Target {
                what: "W2 >= 80% of 64 x fdatasync rate",
                detail: format!(
                    "Spool {}; 80% of {W2_BATCH} \u{d7} {} syncs/s = {}",
                    Row::W2.format(s),
                    sig3(syncs),
                    Row::W2.format(need)
                ),
                met: s >= need,
            });
            if let Some(batch) = self.limits.batch_syncs_per_sec() {
                let ceiling = W2_BATCH as f64 * batch;
                out.push(Target {
                    what: "(W2 vs the disk's sync rate for its batch size)",
                    detail: format!(
                        "Spool {} = {:.0}% of {W2_BATCH} \u{d7} {} syncs/s of {W2_BATCH_BYTES} B appends = {}",
                        Row::W2.format(s),
                        100.0 * s / ceiling,
                        sig3(batch),
                        Row::W2.format(ceiling)
                    ),
                    met: s >= 0.8 * ceiling,
                });
            }
            if let Some(q) = r.get_named(Row::W2, "SQLite") {
                out.push(Target {
                    what: "W2 >= 1.5x SQLite FULL",
                    detail: format!(
                        "Spool {} vs SQLite {}: {}x",
                        Row::W2.format(s),
                        Row::W2.format(q),
                        sig3(s / q)
                    ),
                    met: s >= 1.5 * q,
                });
            }
        }
        if let Some(s) = spool(Row::W3) {
            let need = 0.9 * syncs;
            out.push(Target {
                what: "W3 >= 90% of fdatasync rate",
                detail: format!(
                    "Spool {}; 90% of {} syncs/s = {}",
                    Row::W3.format(s),
                    sig3(syncs),
                    Row::W3.format(need)
                ),
                met: s >= need,
            });
        }
        if let (Some(c), Some(one)) = (spool(Row::W3c), spool(Row::W3)) {
            out.push(Target {
                what: "W3c >= 6x Spool W3",
                detail: format!(
                    "{} vs {}: {}x",
                    Row::W3c.format(c),
                    Row::W3.format(one),
                    sig3(c / one)
                ),
                met: c >= 6.0 * one,
            });
        }
        if let Some(f) = spool(Row::F8Ratio) {
            out.push(Target {
                what: "F8 time of 8 subscribers <= 2x time of 1",
                detail: format!("{}x", sig3(f)),
                met: f <= 2.0,
            });
        }
        if let Some(s) = spool(Row::C4AlwaysBatch) {
            let each = spool(Row::C4AlwaysEach)
                .map(|e| format!(" ({}x acking each)", sig3(s / e)))
                .unwrap_or_default();
            out.push(Target {
                what: "C4 durable, batch ack >= 200 k msg/s",
                detail: format!("{}{each}", Row::C4AlwaysBatch.format(s)),
                met: s >= 200_000.0,
            });
        }
        if let Some(ms) = spool(Row::OpenKilled) {
            out.push(Target {
                what: "open after kill -9 <= 100 ms",
                detail: format!("{} ms", sig3(ms)),
                met: ms <= 100.0,
            });
        }
        let streams = thousands(self.sizes.open_streams as u64);
        if let Some(ms) = spool(Row::OpenManyClean) {
            out.push(Target {
                what: "clean open of 2,000 streams <= 100 ms",
                detail: format!("{streams} streams: {} ms", sig3(ms)),
                met: ms <= 100.0,
            });
        }
        if let Some(ms) = spool(Row::OpenManyKilled) {
            out.push(Target {
                what: "open after kill -9 of 2,000 streams <= 500 ms",
                detail: format!("{streams} streams: {} ms", sig3(ms)),
                met: ms <= 500.0,
            });
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        if let Some(peak) = spool(Row::MemoryQueued) {
            let limit = mib(memory::MEMORY_LIMIT_BYTES);
            out.push(Target {
                what: "M anonymous memory <= 64 MiB with 10 M queued",
                detail: format!(
                    "peak {} with {} \u{d7} {SMALL} B queued; at most {}",
                    Row::MemoryQueued.format(peak),
                    thousands(self.sizes.m),
                    Row::MemoryQueued.format(limit)
                ),
                met: peak <= limit,
            });
        }
        if let (Some(before), Some(after)) = (spool(Row::DiskQueued), spool(Row::DiskDrained)) {
            let limit = mib(memory::DRAINED_LIMIT_BYTES);
            out.push(Target {
                what: "M disk space returned after draining",
                detail: format!(
                    "{} queued, {} after; at most {} (a {} segment, a {} consumer journal, \
                     {} slack) and no more than queued",
                    Row::DiskQueued.format(before),
                    Row::DiskDrained.format(after),
                    Row::DiskDrained.format(limit),
                    bytes(memory::SEGMENT_BYTES),
                    bytes(memory::JOURNAL_BYTES),
                    bytes(memory::SLACK_BYTES)
                ),
                met: after <= limit && after <= before,
            });
        }
        out
    }
}
