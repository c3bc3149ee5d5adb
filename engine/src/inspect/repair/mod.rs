//! Offline repair of a store, for `segment-tool repair`: plain file I/O
//! (`std::fs`, no maps), the engine's codecs, and [`crate::inspect`] to find
//! what is wrong.
//!
//! # What it does, and what it never does
//!
//! [`plan`] inspects the store and lists [`Action`]s, each what the engine's
//! recovery (DESIGN.md 5) would do at the next open:
//!
//! - a torn tail of an active segment (bytes past the durable watermark
//!   that are not valid records) is copied to the bucket's `quarantine/`
//!   (named `<base>-<pos>-e<epoch>.torn`, like recovery names it), every
//!   non-zero byte past the end of the data is zeroed in place, and the
//!   header state is rewritten (epoch + 1, watermark = end of data);
//! - a missing or bad index of a sealed segment that scans cleanly is
//!   rebuilt from the scan;
//! - orphan blobs (no record refers to them) and leftover temporary files
//!   (`.*.tmp`, `blobs/tmp/*`) are removed.
//!
//! Damage to acknowledged data (below a segment's watermark, or anywhere in
//! a sealed segment), missing or damaged blobs and consumer states past the
//! log are **refused**: listed, never changed. The one exception is a forced
//! truncation ([`Force`]) naming the exact segment and byte position, which is
//! allowed only in the last segment of a bucket, since every later segment
//! of the bucket could no longer follow it.
//!
//! [`apply`] needs the store's lock ([`lock`]) held by the caller.

use crate::format::index::{self as index_fmt, IndexHeader};
use crate::format::segment::{SegmentState, SEGMENT_HEADER_BYTES, STATE_OFFSET};
use crate::inspect::{
    self, read_bounded, Bounded, IndexStatus, Problem, ScanEnd, SegmentInfo, StoreInfo, BLOBS_DIR,
    BLOBS_TMP_DIR,
};
use crate::layout::{QUARANTINE_DIR, STREAMS_DIR};
use crate::options::SEGMENT_BYTES_LIMIT;
use crate::{Error, Result};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod apply;
#[cfg(test)]
mod tests;

pub use apply::apply;

/// Name of the store's lock file.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the store's lock (`flock` on `<store>/LOCK`, as [`crate::Store::open`]
/// does) without waiting. [`Error::Locked`] if another process (or a `Store`
/// of this one) holds it. The lock lasts as long as the returned file.
pub fn lock(store: &Path) -> Result<fs::File> {
    use fs2::FileExt as _;
    let path = store.join(LOCK_FILE);
    if !store.join(crate::layout::STORE_META_FILE).exists() {
        return Err(Error::io(
            "open store",
            store,
            io::Error::new(
                io::ErrorKind::NotFound,
                "not a Spool store (no store.meta); is this the right directory?",
            ),
        ));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Locked {
            path: store.to_path_buf(),
        }),
        Err(e) => Err(Error::io("lock", &path, e)),
    }
}

/// A forced truncation: cut the segment `segment` at byte `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Force {
    /// The segment file, as named on the command line.
    pub segment: PathBuf,
    /// The byte position from which the data is cut.
    pub position: u64,
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Quarantine the bytes of `segment` from `position` to `end` (the end
    /// of its non-zero bytes), zero every non-zero byte from `position` on,
    /// and set the header state to `epoch`, watermark `position`.
    CutTail {
        /// The segment file.
        segment: PathBuf,
        /// First byte cut: the end of the valid records (or the forced position).
        position: u64,
        /// Byte after the last non-zero byte of the file.
        end: u64,
        /// Non-zero bytes from `position` to `end`.
        nonzero_bytes: u64,
        /// Where the first run of cut bytes is copied (`None` if there is
        /// nothing to cut, only the header state to rewrite).
        quarantine: Option<PathBuf>,
        /// The epoch written to the header state.
        epoch: u32,
        /// True if acknowledged data is cut (a forced truncation).
        forced: bool,
    },
    /// Write the index of a sealed segment from a scan of its records.
    RebuildIndex {
        /// The segment file.
        segment: PathBuf,
        /// The index file written.
        index: PathBuf,
    },
    /// Remove a blob no record refers to.
    RemoveOrphanBlob(PathBuf),
    /// Remove a temporary file of an interrupted write.
    RemoveTempFile(PathBuf),
    /// Remove the index of the last segment of a bucket, which a forced
    /// truncation makes wrong (the segment becomes the active one).
    RemoveIndex(PathBuf),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CutTail {
                segment,
                position,
                end,
                nonzero_bytes,
                quarantine,
                forced,
                ..
            } => {
                let what = if *forced {
                    "force-truncate"
                } else {
                    "cut torn tail of"
                };
                write!(f, "{what} {} at byte {position}", segment.display())?;
                if *end > *position {
                    write!(f, " ({nonzero_bytes} non-zero bytes up to byte {end})")?;
                }
                match quarantine {
                    Some(q) => write!(f, ", copied to {}", q.display()),
                    None => write!(f, ", header state only"),
                }
            }
            Action::RebuildIndex { index, .. } => write!(f, "rebuild index {}", index.display()),
            Action::RemoveOrphanBlob(p) => write!(f, "remove orphan blob {}", p.display()),
            Action::RemoveTempFile(p) => write!(f, "remove temporary file {}", p.display()),
            Action::RemoveIndex(p) => write!(f, "remove stale index {}", p.display()),
        }
    }
}

/// What [`plan`] found: the changes to make, and the problems left alone.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The changes, in the order [`apply`] makes them.
    pub actions: Vec<Action>,
    /// Problems repair does not touch: damage to acknowledged data, missing
    /// or damaged blobs, consumer states. Each says why.
    pub refused: Vec<Problem>,
}

/// Inspects the store at `store` and lists what repair would do. With
/// `force`, the named segment is cut at the named position if that is
/// allowed; otherwise the force is refused with an [`Error::Corrupt`]
/// explaining why (nothing else is planned then).
pub fn plan(store: &Path, force: Option<&Force>) -> Result<Plan> {
    let info = inspect::inspect_store(store)?;
    let mut plan = Plan::default();
    let mut handled: HashSet<PathBuf> = HashSet::new();
    if let Some(f) = force {
        let (action, extra) = plan_force(&info, f)?;
        let Action::CutTail { segment, .. } = &action else {
            unreachable!("plan_force returns a cut");
        };
        handled.insert(segment.clone());
        plan.actions.push(action);
        plan.actions.extend(extra);
    }
    for stream in &info.streams {
        for bucket in &stream.buckets {
            let last = bucket.segments.len().checked_sub(1);
            for (i, seg) in bucket.segments.iter().enumerate() {
                if handled.contains(&seg.path) {
                    continue;
                }
                plan_segment(seg, Some(i) == last, &mut plan)?;
            }
        }
    }
    // Problems that are not about segments or indexes: keep them as refused.
    let seg_files: HashSet<PathBuf> = plan
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::CutTail { segment, .. } => vec![segment.clone()],
            Action::RebuildIndex { segment, index } => vec![segment.clone(), index.clone()],
            Action::RemoveIndex(p) => vec![p.clone()],
            _ => vec![],
        })
        .collect();
    for p in &info.problems {
        let already = plan.refused.iter().any(|r| r.file == p.file);
        if !seg_files.contains(&p.file) && !already {
            plan.refused.push(p.clone());
        }
    }
    for p in inspect::check_blobs(&info) {
        if p.warning {
            plan.actions.push(Action::RemoveOrphanBlob(p.file));
        } else {
            plan.refused.push(p);
        }
    }
    for t in temp_files(store) {
        plan.actions.push(Action::RemoveTempFile(t));
    }
    Ok(plan)
}

/// Plans the repair of one segment: a torn tail of the active one, a bad
/// index of a sealed one; damage to acknowledged data is refused.
fn plan_segment(seg: &SegmentInfo, last: bool, plan: &mut Plan) -> Result<()> {
    let damaged = matches!(seg.end, ScanEnd::Damaged | ScanEnd::NotScanned);
    if damaged {
        for p in &seg.problems {
            let mut p = p.clone();
            p.reason.push_str(
                "; acknowledged data: not repaired (see --force-truncate-at, allowed in the \
                 last segment of a bucket only)",
            );
            plan.refused.push(p);
        }
        return Ok(());
    }
    if seg.sealed {
        if seg.index != IndexStatus::Valid {
            let base = seg.base_offset().unwrap_or(0);
            plan.actions.push(Action::RebuildIndex {
                segment: seg.path.clone(),
                index: seg.path.with_file_name(format!("{base:020}.idx")),
            });
        }
        return Ok(());
    }
    if !last {
        return Ok(());
    }
    // The active segment: cut whatever lies past the end of its records,
    // unless it is closed cleanly and all zero there.
    let tail = matches!(seg.end, ScanEnd::Tail { .. });
    let state_ok = seg.state.is_some_and(|s| s.synced_end <= seg.data_end);
    if !tail && state_ok && seg.state.is_some_and(|s| s.clean) {
        return Ok(());
    }
    let (info, bytes) = match inspect::read_segment_raw(&seg.path) {
        Ok(r) => r,
        Err(e) => {
            plan.refused
                .push(Problem::at(&seg.path, 0, format!("cannot read: {e}")));
            return Ok(());
        }
    };
    let position = info.data_end;
    let (first_run, nonzero, end) = nonzero_runs(&bytes, position);
    if nonzero == 0 && state_ok {
        return Ok(());
    }
    plan.actions
        .push(cut_action(&info, position, first_run, nonzero, end, false));
    Ok(())
}

/// The cut of `info`'s segment at `position`.
fn cut_action(
    info: &SegmentInfo,
    position: u64,
    first_run: Option<(u64, u64)>,
    nonzero: u64,
    end: u64,
    forced: bool,
) -> Action {
    let records_epoch = info.records.iter().map(|r| r.epoch).max().unwrap_or(0);
    let epoch = info
        .state
        .map(|s| s.epoch)
        .unwrap_or(0)
        .max(records_epoch)
        .saturating_add(1);
    let base = info.base_offset().unwrap_or(0);
    let quarantine = first_run.map(|(start, _)| {
        info.path
            .with_file_name(QUARANTINE_DIR)
            .join(format!("{base:020}-{start:010}-e{epoch}.torn"))
    });
    Action::CutTail {
        segment: info.path.clone(),
        position,
        end,
        nonzero_bytes: nonzero,
        quarantine,
        epoch,
        forced,
    }
}

/// The non-zero bytes of `bytes` from `from` on, found as the engine's
/// recovery finds them: runs of 4 KiB pages holding a non-zero byte, each
/// trimmed to its first and last non-zero byte. Returns the first run
/// (start, end), the non-zero bytes in all, and the byte after the last one
/// (`from` if there is none).
pub(super) fn nonzero_runs(bytes: &[u8], from: u64) -> (Option<(u64, u64)>, u64, u64) {
    const PAGE: usize = 4096;
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let mut first: Option<(usize, usize)> = None;
    let mut first_closed = false;
    let mut count = 0u64;
    let mut last_end = from;
    let mut p = from;
    while p < bytes.len() {
        let chunk_end = ((p / PAGE + 1) * PAGE).min(bytes.len());
        let chunk = &bytes[p..chunk_end];
        match chunk.iter().position(|&b| b != 0) {
            None => {
                if first.is_some() {
                    first_closed = true;
                }
            }
            Some(f) => {
                let l = chunk.iter().rposition(|&b| b != 0).unwrap_or(f) + 1;
                count += chunk.iter().filter(|&&b| b != 0).count() as u64;
                last_end = p + l;
                match &mut first {
                    None => first = Some((p + f, p + l)),
                    Some(r) if !first_closed => r.1 = p + l,
                    Some(_) => {}
                }
            }
        }
        p = chunk_end;
    }
    (
        first.map(|(a, b)| (a as u64, b as u64)),
        count,
        last_end as u64,
    )
}

/// Checks a forced truncation and plans it.
fn plan_force(info: &StoreInfo, f: &Force) -> Result<(Action, Vec<Action>)> {
    let refuse = |why: String| Error::corrupt(&f.segment, f.position, why);
    let wanted = fs::canonicalize(&f.segment).map_err(|e| Error::io("open", &f.segment, e))?;
    for stream in &info.streams {
        for bucket in &stream.buckets {
            let n = bucket.segments.len();
            for (i, seg) in bucket.segments.iter().enumerate() {
                if fs::canonicalize(&seg.path).ok().as_ref() != Some(&wanted) {
                    continue;
                }
                if i + 1 != n {
                    return Err(refuse(format!(
                        "refusing to force a truncation in {}: it is not the last segment of \
                         its bucket ({} later segment(s) could no longer follow it)",
                        seg.path.display(),
                        n - i - 1
                    )));
                }
                let (one, bytes) = inspect::read_segment_raw(&seg.path)?;
                let boundary = one.records.iter().any(|r| r.position == f.position)
                    || f.position == one.data_end;
                if !boundary {
                    return Err(refuse(format!(
                        "byte {} is not the start of a valid record of {} nor the end of its \
                         valid records (byte {})",
                        f.position,
                        seg.path.display(),
                        one.data_end
                    )));
                }
                let mut kept = one.clone();
                kept.records.retain(|r| r.position < f.position);
                let (first_run, nonzero, end) = nonzero_runs(&bytes, f.position);
                let action = cut_action(&kept, f.position, first_run, nonzero, end, true);
                let idx = seg
                    .path
                    .with_file_name(format!("{:020}.idx", seg.base_offset().unwrap_or(0)));
                let extra = if idx.exists() {
                    vec![Action::RemoveIndex(idx)]
                } else {
                    Vec::new()
                };
                return Ok((action, extra));
            }
        }
    }
    Err(refuse(format!(
        "{} is not a segment of this store",
        f.segment.display()
    )))
}

/// Temporary files of interrupted writes: `.*.tmp` in the store, stream,
/// bucket and consumer directories, and everything in `blobs/tmp/`.
fn temp_files(store: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![store.to_path_buf()];
    let streams = store.join(STREAMS_DIR);
    for s in subdirs(&streams) {
        dirs.push(s.clone());
        for d in subdirs(&s) {
            dirs.push(d.clone());
            if d.file_name().is_some_and(|n| n == "consumers") {
                dirs.extend(subdirs(&d));
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        for (name, path, is_file) in entries(&d) {
            if is_file && name.starts_with('.') && name.ends_with(".tmp") {
                out.push(path);
            }
        }
    }
    for (_, path, is_file) in entries(&store.join(BLOBS_DIR).join(BLOBS_TMP_DIR)) {
        if is_file {
            out.push(path);
        }
    }
    out
}

fn entries(dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_file = e.file_type().ok()?.is_file();
            Some((name, e.path(), is_file))
        })
        .collect();
    v.sort();
    v
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}
