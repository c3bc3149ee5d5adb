//! Workload sizes, the figures collected, and the printed report: the
//! machine's limits, one table (a row per measure, a column per engine, and
//! Spool's ratio to the best peer), the targets and a legend.

use crate::engine::Engine;
use crate::limits::Limits;
use crate::memory;
use crate::{Workload, COMPETING, LARGE, PRODUCERS, SMALL, SUBSCRIBERS, W2_BATCH, W2_BATCH_BYTES};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Workload sizes at a given scale (each has a floor that keeps it meaningful).
pub struct Sizes {
    /// W1 messages.
    pub w1: u64,
    /// W2 messages (a multiple of the batch).
    pub w2: u64,
    /// W3 messages.
    pub w3: u64,
    /// W3c messages per producer.
    pub w3c_per: u64,
    /// W4 messages.
    pub w4: u64,
    /// F8 messages.
    pub f8: u64,
    /// C4 messages.
    pub c4: u64,
    /// Bytes of the large store of O.
    pub open_bytes: u64,
    /// M messages.
    pub m: u64,
    /// Syncs of the fdatasync probe.
    pub syncs: u64,
    /// Bytes of the write and memory-map probes.
    pub probe_bytes: u64,
}

impl Sizes {
    /// The sizes at `scale` (1 = full size).
    pub fn new(scale: f64) -> Sizes {
        let s = |full: u64, min: u64| ((full as f64 * scale).round() as u64).max(min);
        let batch = W2_BATCH as u64;
        let mib = |full: u64, min: u64| s(full, min) >> 20 << 20;
        Sizes {
            w1: s(1_000_000, 1_000),
            w2: s(200_000, 10 * batch).div_ceil(batch) * batch,
            w3: s(2_000, 50),
            w3c_per: s(2_000 / PRODUCERS as u64, 10),
            w4: s(200_000, 500),
            f8: s(200_000, 1_000),
            c4: s(200_000, 1_000),
            open_bytes: mib(4 << 30, 16 << 20),
            m: s(10_000_000, 10_000),
            syncs: s(2_000, 50),
            probe_bytes: mib(256 << 20, 8 << 20),
        }
    }
}

/// A row of the table, in table order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Row {
    /// W1 send, msg/s.
    W1Send,
    /// W1 receive + ack, msg/s.
    W1Receive,
    /// W2, msg/s.
    W2,
    /// W3, msg/s.
    W3,
    /// W3c, msg/s.
    W3c,
    /// W4 send, MB/s.
    W4Send,
    /// W4 receive + ack, MB/s.
    W4Receive,
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
    /// O, full size, clean close, ms.
    OpenClean,
    /// O, quarter size, clean close, ms.
    OpenQuarter,
    /// O, full size, after kill -9, ms.
    OpenKilled,
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
            Row::W4Send | Row::W4Receive | Row::W4SendOneSegment => Unit::MegabytesPerSec,
            Row::F8One | Row::F8Many | Row::OpenClean | Row::OpenQuarter | Row::OpenKilled => {
                Unit::Millis
            }
            Row::F8Ratio => Unit::Factor,
            Row::MemoryQueued | Row::DiskQueued | Row::DiskDrained => Unit::Mebibytes,
            _ => Unit::Rate,
        }
    }

    /// Whether the peers run this row (then Spool's ratio to the best peer
    /// is shown).
    fn has_peers(self) -> bool {
        matches!(
            self,
            Row::W1Send
                | Row::W1Receive
                | Row::W2
                | Row::W3
                | Row::W3c
                | Row::W4Send
                | Row::W4Receive
        )
    }

    /// The row's label.
    fn label(self, sizes: &Sizes, open_segments: usize) -> String {
        let n = thousands;
        let small = format!("{SMALL} B");
        match self {
            Row::W1Send => format!("W1 send, {} \u{d7} {small}, no fsync (msg/s)", n(sizes.w1)),
            Row::W1Receive => "W1 receive + ack (msg/s)".into(),
            Row::W2 => format!(
                "W2 durable, batches of {W2_BATCH}, {} \u{d7} {small} (msg/s)",
                n(sizes.w2)
            ),
            Row::W3 => format!(
                "W3 durable, one at a time, {} \u{d7} {small} (msg/s)",
                n(sizes.w3)
            ),
            Row::W3c => format!(
                "W3c durable, {PRODUCERS} producers, {} \u{d7} {small} (msg/s)",
                n(sizes.w3c_per * PRODUCERS as u64)
            ),
            Row::W4Send => format!(
                "W4 send, {} \u{d7} {} KiB, no fsync (MB/s)",
                n(sizes.w4),
                LARGE / 1024
            ),
            Row::W4Receive => "W4 receive + ack (MB/s)".into(),
            Row::W4SendOneSegment => "W4 send with 1 GiB segments: no segment sealed (MB/s)".into(),
            Row::F8One => format!("F8 1 subscriber, {} \u{d7} {small} (ms)", n(sizes.f8)),
            Row::F8Many => format!("F8 {SUBSCRIBERS} subscribers at once (ms)"),
            Row::F8Ratio => format!("F8 time of {SUBSCRIBERS} / time of 1"),
            Row::C4 => format!(
                "C4 {COMPETING} competing consumers, {} \u{d7} {small} (msg/s)",
                n(sizes.c4)
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
            Row::W1Send | Row::W4Send => "send",
            Row::W4SendOneSegment => "send with 1 GiB segments",
            Row::W1Receive | Row::W4Receive => "receive + ack",
            Row::F8One => "1 subscriber",
            Row::F8Many => "all at once",
            Row::F8Ratio => "ratio",
            Row::OpenClean => "clean",
            Row::OpenQuarter => "quarter size",
            Row::OpenKilled => "after kill -9",
            Row::MemoryQueued => "anonymous memory",
            Row::DiskQueued => "disk queued",
            Row::DiskDrained => "disk drained",
            Row::W2 | Row::W3 | Row::W3c | Row::C4 => "",
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
    fn cell(self, v: f64) -> String {
        match self.unit() {
            Unit::Rate => rate(v),
            Unit::MegabytesPerSec => megabytes(v),
            Unit::Millis | Unit::Mebibytes => sig3(v),
            Unit::Factor => format!("{}x", sig3(v)),
        }
    }
}

/// Every figure measured: the runs of each cell, and the cells that do not
/// apply.
pub struct Results {
    names: Vec<&'static str>,
    values: BTreeMap<(Row, usize), Vec<f64>>,
    na: BTreeMap<(Row, usize), &'static str>,
    /// Segment files of the large store of O.
    pub open_segments: usize,
}

impl Results {
    /// No figures yet, for the engines named (in column order).
    pub fn new(names: Vec<&'static str>) -> Results {
        Results {
            names,
            values: BTreeMap::new(),
            na: BTreeMap::new(),
            open_segments: 0,
        }
    }

    /// Records one run's figure of `row` for engine number `engine`.
    pub fn add(&mut self, row: Row, engine: usize, v: f64) {
        self.values.entry((row, engine)).or_default().push(v);
    }

    /// Marks a cell as not applicable, with a short reason (or none).
    pub fn na(&mut self, row: Row, engine: usize, why: &'static str) {
        self.na.insert((row, engine), why);
    }

    /// The median of a cell's runs.
    fn get(&self, row: Row, engine: usize) -> Option<f64> {
        let mut v = self.values.get(&(row, engine))?.clone();
        Some(crate::median(&mut v))
    }

    /// A cell by engine name.
    fn get_named(&self, row: Row, name: &str) -> Option<f64> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.get(row, i)
    }

    /// The rows that have anything, in table order.
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .values
            .keys()
            .chain(self.na.keys())
            .map(|(r, _)| *r)
            .collect();
        rows.sort();
        rows.dedup();
        rows
    }

    /// The best peer of a row (highest figure) and its figure.
    fn best_peer(&self, row: Row) -> Option<(&'static str, f64)> {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != SPOOL)
            .filter_map(|(i, n)| Some((*n, self.get(row, i)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// A table cell.
    fn cell(&self, row: Row, engine: usize) -> String {
        if let Some(v) = self.get(row, engine) {
            return row.cell(v);
        }
        match self.na.get(&(row, engine)) {
            Some(&"") => "n/a".into(),
            Some(why) => format!("n/a ({why})"),
            None => "-".into(),
        }
    }

    /// The last column: Spool over the best peer.
    fn ratio(&self, row: Row) -> String {
        if !row.has_peers() {
            return "-".into();
        }
        match (self.get_named(row, SPOOL), self.best_peer(row)) {
            (Some(s), Some((name, p))) => format!("{}x ({name})", sig3(s / p)),
            _ => "-".into(),
        }
    }
}

/// Spool's column name.
const SPOOL: &str = "Spool";

/// Everything the report shows.
pub struct Report<'a> {
    /// The figures.
    pub results: &'a Results,
    /// The engines, in column order.
    pub engines: &'a [Box<dyn Engine>],
    /// The workloads that ran.
    pub workloads: &'a [Workload],
    /// Their sizes.
    pub sizes: &'a Sizes,
    /// The machine's limits.
    pub limits: &'a Limits,
    /// `--scale`.
    pub scale: f64,
    /// `--runs`.
    pub runs: usize,
    /// Where the scratch directories were.
    pub dir: &'a Path,
    /// Time of the whole run so far.
    pub elapsed: Duration,
}

/// A target and whether it was met.
struct Target {
    what: &'static str,
    detail: String,
    met: bool,
}

impl Report<'_> {
    /// Prints the report as plain text with an aligned table.
    pub fn print_text(&self) {
        for line in self.header() {
            println!("{line}");
        }
        println!();
        let table = self.table();
        let widths: Vec<usize> = (0..table[0].len())
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in table.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, text)| {
                    if c == 0 {
                        format!("{text:<w$}", w = widths[c])
                    } else {
                        format!("{text:>w$}", w = widths[c])
                    }
                })
                .collect();
            println!("{}", cells.join("  ").trim_end());
            if i == 0 {
                let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                println!("{}", "-".repeat(rule));
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!();
            println!("Targets:");
            let w = targets.iter().map(|t| t.what.len()).max().unwrap_or(0);
            for t in &targets {
                println!(
                    "  {:<w$}  {:<7}  {}",
                    t.what,
                    if t.met { "met" } else { "NOT met" },
                    t.detail
                );
            }
        }
        println!();
        println!("Legend:");
        for line in self.legend() {
            println!("  - {line}");
        }
        println!();
        println!("Total run time: {:.0} s", self.elapsed.as_secs_f64());
    }

    /// Prints the report as Markdown: the header as a list, the table, the
    /// targets and the legend as lists.
    pub fn print_markdown(&self) {
        // Indented header lines become list items, the others paragraphs.
        let mut in_list = false;
        for line in self.header() {
            match line.strip_prefix("  ") {
                Some(item) => println!("- {item}"),
                None if in_list => println!("\n{line}\n"),
                None => println!("{line}\n"),
            }
            in_list = line.starts_with("  ");
        }
        println!();
        for (i, row) in self.table().iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            println!("| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<&str> = (0..row.len())
                    .map(|c| if c == 0 { "---" } else { "---:" })
                    .collect();
                println!("|{}|", rule.join("|"));
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!();
            println!("Targets:");
            println!();
            for t in &targets {
                let verdict = if t.met { "met" } else { "**NOT met**" };
                println!("- {}: {verdict} ({})", t.what, t.detail);
            }
        }
        println!();
        for line in self.legend() {
            println!("- {line}");
        }
        println!();
        println!("Total run time: {:.0} s.", self.elapsed.as_secs_f64());
    }

    /// The lines above the table: the run and the machine's limits.
    fn header(&self) -> Vec<String> {
        let l = self.limits;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let fs = fs_type(self.dir).unwrap_or_else(|| "file system unknown".into());
        let mut lines = vec![
            format!(
                "Spool compared with embedded peers: scale {}, median of {} run{}, {cores} cores, \
                 scratch directories in {} ({fs})",
                self.scale,
                self.runs,
                if self.runs == 1 { "" } else { "s" },
                self.dir.display()
            ),
            "Machine limits, measured in this run on the same disk:".into(),
            sync_line(l, self.sizes.syncs),
            format!(
                "  buffered sequential write, {} in 1 MiB chunks, no sync: {} MB/s",
                bytes(self.sizes.probe_bytes),
                megabytes(l.write_mb_per_sec)
            ),
            format!(
                "  the same followed by one fdatasync (what the disk takes in): {} MB/s",
                megabytes(l.disk_write_mb_per_sec)
            ),
            format!(
                "  128 B records copied into a warm memory map of {}: {} records/s",
                bytes(self.sizes.probe_bytes),
                rate(l.copies_per_sec)
            ),
        ];
        if let Some(why) = &l.copy_fallback {
            lines.push(format!(
                "  (the copy probe used a heap buffer: mapping failed: {why})"
            ));
        }
        lines
    }

    /// The table: a header row, then one row per measure.
    fn table(&self) -> Vec<Vec<String>> {
        let r = self.results;
        let with_ratio = self.engines.len() > 1 && r.names.contains(&SPOOL);
        let mut head = vec!["workload".to_string()];
        head.extend(self.engines.iter().map(|e| e.name().to_string()));
        if with_ratio {
            head.push("Spool / best peer".into());
        }
        let mut table = vec![head];
        for row in r.rows() {
            let mut line = vec![row.label(self.sizes, r.open_segments)];
            line.extend((0..self.engines.len()).map(|i| r.cell(row, i)));
            if with_ratio {
                line.push(r.ratio(row));
            }
            table.push(line);
        }
        table
    }

    /// The targets whose figures were measured, judged.
    fn targets(&self) -> Vec<Target> {
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
        vs_best("W1 send >= 4x best peer", Row::W1Send, 4.0);
        vs_best("W1 receive >= 2x best peer", Row::W1Receive, 2.0);
        vs_best("W4 send >= 2x best peer (MB/s)", Row::W4Send, 2.0);
        vs_best("W4 receive >= 2x best peer (MB/s)", Row::W4Receive, 2.0);
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
        if let Some(ms) = spool(Row::OpenKilled) {
            out.push(Target {
                what: "open after kill -9 <= 100 ms",
                detail: format!("{} ms", sig3(ms)),
                met: ms <= 100.0,
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

    /// The lines below the table: how to read it and how each engine is used.
    fn legend(&self) -> Vec<String> {
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
                 at least every message there before, the last one intact.",
                crate::open_time::SIZE / 1024
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

/// The header line of the fdatasync probe: the median and, for more than
/// one sample, the range.
fn sync_line(l: &Limits, syncs: u64) -> String {
    let s = &l.sync_samples;
    let mut line = format!(
        "  fdatasync after each 128 B append ({} appends): {} syncs/s",
        thousands(syncs),
        sig3(l.syncs_per_sec())
    );
    if s.len() > 1 {
        let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = s.iter().copied().fold(0.0, f64::max);
        line.push_str(&format!(
            " (median of {} samples taken through the run: {} to {})",
            s.len(),
            sig3(lo),
            sig3(hi)
        ));
    }
    if let Some(b) = l.batch_syncs_per_sec() {
        line.push_str(&format!(
            "; after each {W2_BATCH_BYTES} B append (one W2 batch): {} syncs/s",
            sig3(b)
        ));
    }
    line
}

/// The type of the file system holding `dir`, from /proc/mounts.
fn fs_type(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            let point = point.replace("\\040", " ");
            dir.starts_with(&point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// `v` with three significant digits (all of its digits from 1,000 up,
/// with thousands separators).
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 && v.is_finite() {
        thousands(v.round() as u64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A rate with a k or M suffix.
fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", sig3(v / 1e3))
    } else {
        sig3(v)
    }
}

/// Megabytes per second, whole above 1,000.
fn megabytes(v: f64) -> String {
    if v >= 1000.0 {
        thousands(v.round() as u64)
    } else {
        sig3(v)
    }
}

/// A byte count in MiB or GiB.
fn bytes(b: u64) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{} GiB", b >> 30)
    } else {
        format!("{} MiB", thousands(b >> 20))
    }
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
