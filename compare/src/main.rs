//! Side-by-side comparison of Spool with embedded peers (SQLite, redb, fjall,
//! queue-file, yaque) on the same workloads, on the same disk, in the same
//! run, next to the machine's own limits; every run checks that each message
//! comes back exactly once and in order.
//!
//! ```sh
//! cargo run --release -p spool-compare                   # full size
//! cargo run --release -p spool-compare -- --scale 0.01   # quick smoke run
//! ```
//!
//! Scratch directories go under `SPOOL_BENCH_DIR` if set, else the system's
//! temporary directory. `--help` lists the options.

mod async_rows;
mod check;
mod engine;
mod engines;
mod limits;
mod memory;
mod numbers;
mod open_time;
mod report;
mod results;
mod row;
mod sizes;
mod spool_only;
mod workloads;

use clap::{Parser, ValueEnum};
use engine::{Engine, Result};
use limits::Limits;
use results::Results;
use row::Row;
use sizes::Sizes;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Spool compared with embedded peers: one table of throughputs and times,
/// with the machine's limits and the targets.
#[derive(Parser, Debug)]
struct Args {
    /// Multiplies every workload's size: 1 is full size, 0.01 a quick smoke run.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    /// Runs per cell; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Workloads to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', ignore_case = true)]
    only: Vec<Workload>,

    /// Engines to run, comma-separated (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        ignore_case = true,
        value_parser = ["spool", "sqlite", "redb", "fjall", "queue-file", "yaque"],
    )]
    engines: Vec<String>,

    /// Skips the open-time workload O (it writes 5 GiB at full size).
    #[arg(long)]
    skip_open: bool,

    /// Prints the report as Markdown (for the README).
    #[arg(long)]
    markdown: bool,

    /// Internal: the writer that workload O kills with SIGKILL.
    #[arg(long, hide = true, value_name = "DIR")]
    child_writer: Option<PathBuf>,

    /// Internal: the writer of workload O's many-streams store, killed with SIGKILL.
    #[arg(long, hide = true, value_name = "DIR")]
    child_many: Option<PathBuf>,

    /// Internal: the child process of workload M, measuring a store in DIR.
    #[arg(long, hide = true, value_name = "DIR", requires = "child_messages")]
    child_memory: Option<PathBuf>,

    /// Internal: the messages the child process of workload M queues.
    #[arg(long, hide = true, value_name = "N", requires = "child_memory")]
    child_messages: Option<u64>,
}

/// The workloads.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Workload {
    /// 128-byte messages without fsync: send, then receive and acknowledge.
    W1,
    /// Durable sends in batches of 64.
    W2,
    /// Durable sends, one at a time.
    W3,
    /// Durable sends, one at a time, from 8 threads.
    W3c,
    /// 4 KiB messages without fsync: send, then receive and acknowledge.
    W4,
    /// Fan-out: 8 subscribers against 1 (Spool only).
    F8,
    /// 4 competing consumers (Spool only).
    C4,
    /// Open time after a clean close and after kill -9 (Spool only).
    O,
    /// Memory and disk space with many messages queued, and disk space
    /// after draining them (Spool only).
    M,
}

impl Workload {
    /// Every workload, in run order.
    const ALL: [Workload; 9] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W3c,
        Workload::W4,
        Workload::F8,
        Workload::C4,
        Workload::O,
        Workload::M,
    ];

    /// The name used in the table and on the command line.
    fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W3c => "W3c",
            Workload::W4 => "W4",
            Workload::F8 => "F8",
            Workload::C4 => "C4",
            Workload::O => "O",
            Workload::M => "M",
        }
    }
}

/// Payload size of W1 to W3c, F8, C4 and M.
const SMALL: usize = 128;
/// Payload size of W4.
const LARGE: usize = 4096;
/// Messages per batch in W2.
const W2_BATCH: usize = 64;
/// Messages per `send_batch` in Spool's batched rows of W1 and W4.
const SEND_BATCH: usize = 64;
/// Bytes Spool appends for one W2 batch: 64 records of a 128 B payload and
/// a 32-byte header (the size of the batch sync probe's appends).
const W2_BATCH_BYTES: usize = W2_BATCH * (SMALL + 32);
/// Producer threads in W3c.
const PRODUCERS: usize = 8;
/// Subscribers in F8.
const SUBSCRIBERS: usize = 8;
/// Competing consumer threads in C4.
const COMPETING: usize = 4;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.child_writer {
        return match open_time::child_writer(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare --child-writer: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(dir) = &args.child_many {
        return match open_time::child_many(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare --child-many: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let (Some(dir), Some(n)) = (&args.child_memory, args.child_messages) {
        return match memory::child(dir, n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare --child-memory: {e}");
                ExitCode::from(2)
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected workloads on the selected engines and prints the report.
fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err("--scale must be a positive number".into());
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let progress = |msg: &str| eprintln!("[{:7.1} s] {msg}", started.elapsed().as_secs_f64());
    let base = bench_dir()?;
    let engines: Vec<Box<dyn Engine>> = engines::all()
        .into_iter()
        .filter(|e| {
            args.engines.is_empty()
                || args
                    .engines
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(e.name()))
        })
        .collect();
    let workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.contains(w))
        .filter(|w| !(args.skip_open && *w == Workload::O))
        .collect();
    let sizes = Sizes::new(args.scale);

    progress("measuring the machine's limits");
    let mut limits = {
        let dir = scratch(&base, "machine", "limits")?;
        limits::measure(dir.path(), sizes.syncs, sizes.probe_bytes)?
    };

    let mut results = Results::new(engines.iter().map(|e| e.name()).collect());
    for &w in &workloads {
        let ctx = Context {
            engines: &engines,
            sizes: &sizes,
            runs: args.runs,
            base: &base,
            results: &mut results,
            limits: &mut limits,
            progress: &progress,
        };
        run_workload(w, ctx).map_err(|e| format!("{}: {e}", w.name()))?;
    }

    let report = report::Report {
        results: &results,
        engines: &engines,
        workloads: &workloads,
        sizes: &sizes,
        limits: &limits,
        scale: args.scale,
        runs: args.runs,
        dir: &base,
        elapsed: started.elapsed(),
    };
    if args.markdown {
        report.print_markdown();
    } else {
        report.print_text();
    }
    Ok(())
}

/// What running a workload needs.
struct Context<'a> {
    /// The engines to run it on.
    engines: &'a [Box<dyn Engine>],
    /// The sizes of the workloads.
    sizes: &'a Sizes,
    /// Runs per cell.
    runs: usize,
    /// Where scratch directories go.
    base: &'a Path,
    /// Where the figures go.
    results: &'a mut Results,
    /// The machine's limits (durable workloads add fdatasync samples).
    limits: &'a mut Limits,
    /// Progress reports.
    progress: &'a dyn Fn(&str),
}

/// Runs workload `w` `runs` times on every engine (the runs interleave
/// engines, so that a noisy moment does not hit one engine only) and
/// records the figures.
fn run_workload(w: Workload, ctx: Context<'_>) -> Result<()> {
    match w {
        Workload::O => return run_open(ctx),
        Workload::M => return run_memory(ctx),
        _ => {}
    }
    let (runs, sizes, progress) = (ctx.runs, ctx.sizes, ctx.progress);
    for run in 1..=runs {
        if matches!(w, Workload::W2 | Workload::W3 | Workload::W3c) {
            let dir = scratch(ctx.base, "machine", "limits")?;
            let rate = ctx.limits.sample_syncs(dir.path(), sizes.syncs)?;
            progress(&format!(
                "{} run {run}/{runs}: fdatasync probe {rate:.0} syncs/s",
                w.name()
            ));
            if w == Workload::W2 {
                let rate =
                    ctx.limits
                        .sample_batch_syncs(dir.path(), sizes.syncs, W2_BATCH_BYTES)?;
                progress(&format!(
                    "W2 run {run}/{runs}: fdatasync probe of {W2_BATCH_BYTES} B appends \
                     {rate:.0} syncs/s"
                ));
            }
        }
        for (i, e) in ctx.engines.iter().enumerate() {
            let name = e.name();
            let dir = scratch(ctx.base, name, w.name())?;
            let cells = measure(w, &**e, dir.path(), sizes)
                .map_err(|err| format!("{name}, run {run}: {err}"))?;
            let mut figures = Vec::new();
            for (row, cell) in cells {
                match cell {
                    Cell::Value(v) => {
                        ctx.results.add(row, i, v);
                        figures.push(format!("{} {}", row.part(), row.format(v)));
                    }
                    Cell::Na(why) => ctx.results.na(row, i, why),
                }
            }
            if !figures.is_empty() {
                progress(&format!(
                    "{} run {run}/{runs}, {name}: {}",
                    w.name(),
                    figures.join(", ").trim_start()
                ));
            }
        }
    }
    Ok(())
}

/// A cell's content from one run.
enum Cell {
    /// A figure.
    Value(f64),
    /// Not applicable, with a short reason (or none).
    Na(&'static str),
}

/// One run of workload `w` (not O) on engine `e` in `dir`: its rows' cells.
fn measure(w: Workload, e: &dyn Engine, dir: &Path, sizes: &Sizes) -> Result<Vec<(Row, Cell)>> {
    let secs = |d: Duration| d.as_secs_f64().max(1e-9);
    let per_sec = |n: u64, d: Duration| Cell::Value(n as f64 / secs(d));
    let mb_per_sec = |n: u64, d: Duration| Cell::Value((n * LARGE as u64) as f64 / 1e6 / secs(d));
    let is_spool = e.name() == engines::Spool.name();
    let na = |rows: &[Row], why| rows.iter().map(|&r| (r, Cell::Na(why))).collect();
    Ok(match w {
        Workload::W1 => {
            let p = workloads::send_then_receive(e, dir, sizes.w1, SMALL)?;
            let batched = if is_spool {
                let d =
                    spool_only::send_batches(&dir.join("batched"), sizes.w1, SMALL, SEND_BATCH)?;
                per_sec(sizes.w1, d)
            } else {
                Cell::Na("")
            };
            vec![
                (Row::W1Send, per_sec(sizes.w1, p.send)),
                (Row::W1Receive, per_sec(sizes.w1, p.receive)),
                (Row::W1SendBatch, batched),
            ]
        }
        Workload::W4 => {
            let p = workloads::send_then_receive(e, dir, sizes.w4, LARGE)?;
            let (one_segment, batched) = if is_spool {
                let d = spool_only::w4_send_one_segment(&dir.join("one-segment"), sizes.w4, LARGE)?;
                let b =
                    spool_only::send_batches(&dir.join("batched"), sizes.w4, LARGE, SEND_BATCH)?;
                (mb_per_sec(sizes.w4, d), mb_per_sec(sizes.w4, b))
            } else {
                (Cell::Na(""), Cell::Na(""))
            };
            vec![
                (Row::W4Send, mb_per_sec(sizes.w4, p.send)),
                (Row::W4Receive, mb_per_sec(sizes.w4, p.receive)),
                (Row::W4SendOneSegment, one_segment),
                (Row::W4SendBatch, batched),
            ]
        }
        Workload::W2 if !e.can_sync() => na(&[Row::W2], "no fsync"),
        Workload::W3 if !e.can_sync() => na(&[Row::W3], "no fsync"),
        Workload::W3c if !e.can_sync() => na(&[Row::W3c, Row::W3cAsync], "no fsync"),
        Workload::W2 => {
            let d = workloads::durable_sends(e, dir, sizes.w2, SMALL, W2_BATCH)?;
            vec![(Row::W2, per_sec(sizes.w2, d))]
        }
        Workload::W3 => {
            let d = workloads::durable_sends(e, dir, sizes.w3, SMALL, 1)?;
            vec![(Row::W3, per_sec(sizes.w3, d))]
        }
        Workload::W3c => {
            let d = workloads::concurrent_durable_sends(e, dir, PRODUCERS, sizes.w3c_per, SMALL)?;
            let n = sizes.w3c_per * PRODUCERS as u64;
            let tasks = if is_spool {
                let d = async_rows::durable_sends(
                    &dir.join("async"),
                    PRODUCERS,
                    COMPETING,
                    sizes.w3c_per,
                    SMALL,
                )?;
                per_sec(n, d)
            } else {
                Cell::Na("")
            };
            vec![(Row::W3c, per_sec(n, d)), (Row::W3cAsync, tasks)]
        }
        Workload::F8 if !is_spool => na(&[Row::F8One, Row::F8Many, Row::F8Ratio], ""),
        Workload::C4 if !is_spool => na(&[Row::C4, Row::C4Async], ""),
        Workload::F8 => {
            let t = spool_only::fan_out(dir, sizes.f8, SMALL, SUBSCRIBERS)?;
            let (one, many) = (secs(t.one) * 1e3, secs(t.many) * 1e3);
            vec![
                (Row::F8One, Cell::Value(one)),
                (Row::F8Many, Cell::Value(many)),
                (Row::F8Ratio, Cell::Value(many / one)),
            ]
        }
        Workload::C4 => {
            let d = spool_only::competing(dir, sizes.c4, SMALL, COMPETING)?;
            let a = async_rows::competing(&dir.join("async"), sizes.c4, SMALL, COMPETING)?;
            vec![
                (Row::C4, per_sec(sizes.c4, d)),
                (Row::C4Async, per_sec(sizes.c4, a)),
            ]
        }
        Workload::O => return Err("workload O is run by run_open".into()),
        Workload::M => return Err("workload M is run by run_memory".into()),
    })
}

/// Workload O on Spool (n/a for the peers): fills its stores once, then
/// times `runs` opens of each kind.
fn run_open(ctx: Context<'_>) -> Result<()> {
    let rows = [
        Row::OpenClean,
        Row::OpenQuarter,
        Row::OpenKilled,
        Row::OpenManyClean,
        Row::OpenManyKilled,
    ];
    for (i, e) in ctx.engines.iter().enumerate() {
        if e.name() != engines::Spool.name() {
            for row in rows {
                ctx.results.na(row, i, "");
            }
            continue;
        }
        let t = open_time::run(ctx.base, ctx.sizes.open_bytes, ctx.runs, ctx.progress)?;
        for (row, ms) in rows
            .into_iter()
            .zip([t.clean_ms, t.quarter_ms, t.killed_ms])
        {
            ctx.results.add(row, i, ms);
        }
        ctx.results.open_segments = t.segments;
        (ctx.progress)(&format!(
            "O: clean {:.1} ms, quarter size {:.1} ms, after kill -9 {:.1} ms \
             ({} messages added by the killed writers)",
            t.clean_ms, t.quarter_ms, t.killed_ms, t.added_by_children
        ));
        let streams = ctx.sizes.open_streams;
        let m = open_time::run_many(ctx.base, streams, ctx.runs, ctx.progress)?;
        ctx.results.add(Row::OpenManyClean, i, m.clean_ms);
        ctx.results.add(Row::OpenManyKilled, i, m.killed_ms);
        (ctx.progress)(&format!(
            "O: {streams} streams: clean {:.1} ms, after kill -9 {:.1} ms",
            m.clean_ms, m.killed_ms
        ));
    }
    Ok(())
}

/// Workload M on Spool (n/a for the peers): `runs` child processes, each
/// queueing and draining the messages in a fresh directory.
fn run_memory(ctx: Context<'_>) -> Result<()> {
    let rows = [Row::MemoryQueued, Row::DiskQueued, Row::DiskDrained];
    let runs = ctx.runs;
    for (i, e) in ctx.engines.iter().enumerate() {
        if e.name() != engines::Spool.name() {
            for row in rows {
                ctx.results.na(row, i, "");
            }
            continue;
        }
        for run in 1..=runs {
            let f =
                memory::run(ctx.base, ctx.sizes.m).map_err(|err| format!("run {run}: {err}"))?;
            for (row, mib) in rows
                .into_iter()
                .zip([f.rss_peak, f.disk_before, f.disk_after])
            {
                ctx.results.add(row, i, mib);
            }
            (ctx.progress)(&format!(
                "M run {run}/{runs}: anonymous memory {:.1} MiB queued, {:.1} MiB peak while \
                 sending, {:.1} MiB peak while draining, {:.1} MiB after; disk {:.1} MiB \
                 queued, {:.1} MiB after draining (`apply_retention` reported {:.1} MiB of \
                 segments removed)",
                f.rss_queued,
                f.rss_peak,
                f.rss_drain_peak,
                f.rss_after_drain,
                f.disk_before,
                f.disk_after,
                f.freed
            ));
        }
    }
    Ok(())
}

/// The directory scratch directories go in: `SPOOL_BENCH_DIR` or the
/// system's temporary directory.
fn bench_dir() -> Result<PathBuf> {
    match std::env::var_os("SPOOL_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("SPOOL_BENCH_DIR {}: {e}", Path::new(&d).display()))?;
            Ok(PathBuf::from(d))
        }
        None => Ok(std::env::temp_dir()),
    }
}

/// A fresh directory under `base` for one engine and one workload, removed
/// when dropped.
pub fn scratch(base: &Path, engine: &str, workload: &str) -> Result<tempfile::TempDir> {
    let prefix = format!("spool-compare-{engine}-{workload}-").to_lowercase();
    Ok(tempfile::Builder::new().prefix(&prefix).tempdir_in(base)?)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
