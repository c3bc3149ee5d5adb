//! Offline repair of a store, for `segment-tool repair`: what the engine's
//! next open would do (DESIGN.md 5), planned from the inspection and from
//! the recovery's own verdicts (`log::scan`), and done through the
//! engine's file-system layer with its own atomic writes.
//!
//! # What it does, and what it never does
//!
//! [`plan`] inspects the store and lists [`Action`]s, each what the next
//! open would do:
//!
//! - a torn tail of an active segment not closed cleanly (non-zero bytes past
//!   the end of its valid records, which end at or above the durable
//!   watermark) is cut as recovery cuts it: the first run of non-zero pages
//!   is copied to the bucket's `quarantine/` (named `<base>-<pos>-e<epoch>.torn`),
//!   every run is zeroed in place, and the header state is rewritten (the
//!   next epoch, watermark = end of the records);
//! - a missing or unusable index of a sealed segment that scans cleanly is
//!   rebuilt from the scan;
//! - orphan blobs (no record refers to them), the temporary files of
//!   interrupted writes (`.*.tmp` in bucket and consumer directories,
//!   `blobs/tmp/*.tmp`) and the directories of streams and consumers whose
//!   creation was interrupted (`.tmp-*`) are removed.
//!
//! So after [`apply`] the next open has nothing left to recover: its
//! [`crate::RecoveryReport`] is clean.
//!
//! Damage to acknowledged data (below a segment's watermark, or anywhere in
//! a sealed segment), missing or damaged blobs and consumer states past the
//! log are **refused**: listed, never changed. The one exception is a forced
//! truncation ([`Force`]) naming the exact segment and byte position, which is
//! allowed only in the last segment of a bucket, since every later segment
//! of the bucket could no longer follow it.
//!
//! [`apply`] needs the store's lock ([`lock`]) held by the caller.

use super::read::{list_dir, Bounded};
use super::{IndexStatus, Inspector, Problem, ScanEnd, SegmentInfo, StoreInfo};
use crate::format::segment::{
    SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET,
};
use crate::io::{EntryKind, LockGuard};
use crate::layout::{self, BLOBS_DIR, BLOBS_TMP_DIR, CONSUMERS_DIR, QUARANTINE_DIR, STREAMS_DIR};
use crate::log::scan::{self, Damage, Scan};
use crate::{name, Error, Result};
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

mod apply;
#[cfg(test)]
mod tests;

/// Name of the store's lock file.
pub const LOCK_FILE: &str = layout::LOCK_FILE;

/// The store's lock, taken by [`lock`]; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _guard: Box<dyn LockGuard>,
}

/// Takes the store's lock (`flock` on `<store>/LOCK`, as [`crate::Store::open`]
/// does) without waiting. [`Error::Locked`] if another process (or a `Store`
/// of this one) holds it. The lock lasts as long as the returned value.
pub fn lock(store: &Path) -> Result<StoreLock> {
    Inspector::real().repair_lock(store)
}

/// Inspects the store at `store` and lists what repair would do. With
/// `force`, the named segment is cut at the named position if that is
/// allowed; otherwise the force is refused with an [`Error::Corrupt`]
/// explaining why (nothing else is planned then).
pub fn plan(store: &Path, force: Option<&Force>) -> Result<Plan> {
    Inspector::real().repair_plan(store, force)
}

/// Makes the changes of `plan`, in order, each made durable before the
/// next. The caller holds the store's lock ([`lock`]). Returns the actions
/// done.
pub fn apply(plan: &Plan) -> Result<Vec<Action>> {
    Inspector::real().repair_apply(plan)
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
#[non_exhaustive]
pub enum Action {
    /// Quarantine the first run of non-zero bytes of `segment` from
    /// `position` on, zero every non-zero run from `position` to `end`, and
    /// set the header state to `epoch`, watermark `position`.
    CutTail {
        /// The segment file.
        segment: PathBuf,
        /// First byte cut: the end of the valid records (or the forced position).
        position: u64,
        /// Byte after the last non-zero byte of the file.
        end: u64,
        /// Bytes of the non-zero runs from `position` to `end` (the torn
        /// tail and the scattered pages, as the recovery report counts them).
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
    /// Remove the directory of a stream or consumer whose creation was
    /// interrupted (`.tmp-*`), with everything in it.
    RemoveIncompleteDir(PathBuf),
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
            Action::RemoveIncompleteDir(p) => {
                write!(f, "remove interrupted creation {}", p.display())
            }
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
    /// or damaged blobs, consumer states. Each says why. (Warnings are not
    /// listed: nothing is lost, and the next open takes care of them.)
    pub refused: Vec<Problem>,
}

/// The active segment held whole in `bytes` as the engine's recovery sees
/// it: its header, state block and the scan of its records.
fn active_scan(
    bytes: &[u8],
) -> std::result::Result<(SegmentHeader, Option<SegmentState>, Scan), Damage> {
    let header = scan::check_header(bytes, bytes.len() as u64, None, None)?;
    let state = bytes
        .get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
        .and_then(|b| SegmentState::decode(header.segment_id, b));
    let s = scan::scan_file(bytes, &header, state.map(|s| s.epoch));
    Ok((header, state, s))
}

/// The non-zero runs of `bytes` from `from` on (see [`scan::nonzero_runs`]).
fn runs_from(bytes: &[u8], from: u64) -> Vec<Range<usize>> {
    let data = bytes.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
    scan::nonzero_runs(
        data,
        SEGMENT_HEADER_BYTES,
        usize::try_from(from).unwrap_or(usize::MAX),
    )
}

/// The cut of the segment at `path` (base offset `base`) at `position`,
/// past which lie `runs`, by the recovery that starts epoch `epoch`.
fn cut_action(
    path: &Path,
    base: u64,
    position: u64,
    runs: &[Range<usize>],
    epoch: u32,
    forced: bool,
) -> Action {
    let quarantine = runs.first().map(|r| {
        path.with_file_name(QUARANTINE_DIR)
            .join(layout::torn_tail_name(base, r.start as u64, epoch))
    });
    Action::CutTail {
        segment: path.to_path_buf(),
        position,
        end: runs.last().map_or(position, |r| r.end as u64),
        nonzero_bytes: runs.iter().map(|r| r.len() as u64).sum(),
        quarantine,
        epoch,
        forced,
    }
}

/// Whether `a` and `b` name the same file: the same path once made absolute
/// and rid of `.` and `..`, or (on the real file system) the same file once
/// symlinks are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    fn lexical(p: &Path) -> PathBuf {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
    lexical(a) == lexical(b)
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

impl Inspector<'_> {
    /// Takes the store's lock (see [`lock`]).
    pub fn repair_lock(&self, store: &Path) -> Result<StoreLock> {
        let meta = store.join(layout::STORE_META_FILE);
        match self.vfs.kind(&meta) {
            Ok(Some(EntryKind::File)) => {}
            Ok(_) => {
                return Err(Error::io(
                    "open store",
                    store,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a Spool store (no store.meta); is this the right directory?",
                    ),
                ))
            }
            Err(e) => return Err(Error::io("stat", &meta, e)),
        }
        let path = store.join(LOCK_FILE);
        match self.vfs.lock(&path) {
            Ok(g) => Ok(StoreLock { _guard: g }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked {
                path: store.to_path_buf(),
                this_process: crate::ctx::locked_by_this_process(store),
            }),
            Err(e) => Err(Error::io("lock", &path, e)),
        }
    }

    /// Inspects the store and lists what repair would do (see [`plan`]).
    pub fn repair_plan(&self, store: &Path, force: Option<&Force>) -> Result<Plan> {
        let info = self.inspect_store(store)?;
        let mut plan = Plan::default();
        let mut forced: Option<PathBuf> = None;
        if let Some(f) = force {
            let (action, extra) = self.plan_force(&info, f)?;
            if let Action::CutTail { segment, .. } = &action {
                forced = Some(segment.clone());
            }
            plan.actions.push(action);
            plan.actions.extend(extra);
        }
        for bucket in info.streams.iter().flat_map(|s| s.buckets.iter()) {
            for seg in &bucket.segments {
                if forced.as_ref() != Some(&seg.path) {
                    self.plan_segment(seg, &mut plan);
                }
            }
        }
        // Problems no action resolves: refused. Warnings are left out.
        let resolved: HashSet<PathBuf> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CutTail {
                    segment,
                    forced: true,
                    ..
                } => Some(segment.clone()),
                Action::RebuildIndex { index, .. } | Action::RemoveIndex(index) => {
                    Some(index.clone())
                }
                _ => None,
            })
            .collect();
        for p in info.problems.iter().filter(|p| !p.warning) {
            let already = plan
                .refused
                .iter()
                .any(|r| r.file == p.file && r.position == p.position);
            if !resolved.contains(&p.file) && !already {
                plan.refused.push(p.clone());
            }
        }
        for p in self.check_blobs(&info) {
            if p.warning {
                plan.actions.push(Action::RemoveOrphanBlob(p.file));
            } else {
                plan.refused.push(p);
            }
        }
        plan.actions.extend(self.leftovers(store, &info));
        Ok(plan)
    }

    /// Plans the repair of one segment: a torn tail of the active one, a bad
    /// index of a sealed one; damage to acknowledged data is refused.
    fn plan_segment(&self, seg: &SegmentInfo, plan: &mut Plan) {
        if matches!(seg.end, ScanEnd::Damaged | ScanEnd::NotScanned) {
            for p in seg.problems.iter().filter(|p| !p.warning) {
                let mut p = p.clone();
                p.reason.push_str(
                    "; acknowledged data: not repaired (see --force-truncate-at, allowed in the \
                     last segment of a bucket only)",
                );
                plan.refused.push(p);
            }
            return;
        }
        if seg.sealed {
            if seg.index != IndexStatus::Valid {
                let base = seg.base_offset().unwrap_or(0);
                plan.actions.push(Action::RebuildIndex {
                    segment: seg.path.clone(),
                    index: layout::index_path_of(&seg.path, base),
                });
            }
            return;
        }
        // The active segment: what the next open's recovery would cut.
        let bytes = match self.read_segment_bytes(&seg.path, true) {
            Ok(Bounded::Bytes(b)) => b,
            Ok(_) => return,
            Err(e) => {
                plan.refused
                    .push(Problem::file(&seg.path, format!("cannot read: {e}")));
                return;
            }
        };
        let recovery = active_scan(&bytes).and_then(|(header, state, s)| {
            scan::judge_active(&s, state)?;
            let epoch = scan::next_epoch(&s, state);
            let runs = if scan::closed_cleanly(&s, state) {
                Vec::new()
            } else {
                runs_from(&bytes, s.end)
            };
            Ok((header, s.end, runs, epoch))
        });
        match recovery {
            Ok((_, _, runs, _)) if runs.is_empty() => {}
            Ok((header, end, runs, epoch)) => plan.actions.push(cut_action(
                &seg.path,
                header.base_offset,
                end,
                &runs,
                epoch,
                false,
            )),
            // Changed since it was inspected (a live store).
            Err(d) => plan
                .refused
                .push(Problem::at(&seg.path, d.position, d.reason)),
        }
    }

    /// Checks a forced truncation and plans it.
    fn plan_force(&self, info: &StoreInfo, f: &Force) -> Result<(Action, Vec<Action>)> {
        let refuse = |why: String| Error::corrupt(&f.segment, f.position, why);
        for bucket in info.streams.iter().flat_map(|s| s.buckets.iter()) {
            let n = bucket.segments.len();
            for (i, seg) in bucket.segments.iter().enumerate() {
                if !same_file(&seg.path, &f.segment) {
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
                let bytes = match self.read_segment_bytes(&seg.path, true) {
                    Ok(Bounded::Bytes(b)) => b,
                    Ok(_) => return Err(refuse("the segment vanished or is too large".into())),
                    Err(e) => return Err(Error::io("read", &seg.path, e)),
                };
                let (header, state, s) = active_scan(&bytes)
                    .map_err(|d| Error::corrupt(&seg.path, d.position, d.reason))?;
                let boundary =
                    s.positions.iter().any(|&p| u64::from(p) == f.position) || f.position == s.end;
                if !boundary {
                    return Err(refuse(format!(
                        "byte {} is not the start of a valid record of {} nor the end of its \
                         valid records (byte {})",
                        f.position,
                        seg.path.display(),
                        s.end
                    )));
                }
                let epoch = scan::next_epoch(&s, state);
                let runs = runs_from(&bytes, f.position);
                let action = cut_action(
                    &seg.path,
                    header.base_offset,
                    f.position,
                    &runs,
                    epoch,
                    true,
                );
                let idx = layout::index_path_of(&seg.path, header.base_offset);
                let extra = match self.vfs.kind(&idx) {
                    Ok(Some(_)) => vec![Action::RemoveIndex(idx)],
                    _ => Vec::new(),
                };
                return Ok((action, extra));
            }
        }
        Err(refuse(format!(
            "{} is not a segment of this store",
            f.segment.display()
        )))
    }

    /// What the next open removes besides segments' tails and blobs:
    /// directories of interrupted stream and consumer creations, temporary
    /// files in bucket and consumer directories, blobs being written.
    fn leftovers(&self, store: &Path, info: &StoreInfo) -> Vec<Action> {
        let entries = |dir: &Path| list_dir(self.vfs, dir).unwrap_or_default();
        let mut out = Vec::new();
        let tmp_dirs = |dir: &Path, out: &mut Vec<Action>| {
            for e in entries(dir) {
                if e.kind == EntryKind::Dir && layout::is_tmp_dir(&e.name) {
                    out.push(Action::RemoveIncompleteDir(dir.join(&e.name)));
                }
            }
        };
        tmp_dirs(&store.join(STREAMS_DIR), &mut out);
        let tmp_files = |dir: &Path, out: &mut Vec<Action>| {
            for e in entries(dir) {
                if e.kind == EntryKind::File && layout::is_tmp_file(&e.name) {
                    out.push(Action::RemoveTempFile(dir.join(&e.name)));
                }
            }
        };
        for s in &info.streams {
            let cdir = s.path.join(CONSUMERS_DIR);
            tmp_dirs(&cdir, &mut out);
            for c in entries(&cdir) {
                if c.kind == EntryKind::Dir && name::validate(&c.name).is_ok() {
                    tmp_files(&cdir.join(&c.name), &mut out);
                }
            }
            for b in &s.buckets {
                tmp_files(&b.path, &mut out);
            }
        }
        let blob_tmp = store.join(BLOBS_DIR).join(BLOBS_TMP_DIR);
        for e in entries(&blob_tmp) {
            if e.kind == EntryKind::File && layout::is_blob_tmp(&e.name) {
                out.push(Action::RemoveTempFile(blob_tmp.join(&e.name)));
            }
        }
        out
    }
}
