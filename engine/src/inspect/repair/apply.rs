//! Making a repair plan's changes, each durable before the next, through the
//! engine's file-system layer and its atomic writes (`io::write_file_atomic`:
//! a temporary file, synced, renamed, the directory synced).

use super::{runs_from, Action, Plan};
use crate::format::segment::{SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_OFFSET};
use crate::inspect::read::Bounded;
use crate::inspect::Inspector;
use crate::io::{self, OpenMode};
use crate::layout;
use crate::log::{index_file, scan};
use crate::options::SEGMENT_BYTES_LIMIT;
use crate::{Error, Result};
use std::path::Path;

/// Bytes of zeros written at a time over a torn tail.
const ZERO_CHUNK_BYTES: usize = 1 << 16;

impl Inspector<'_> {
    /// Makes the changes of `plan` (see [`super::apply`]).
    pub fn repair_apply(&self, plan: &Plan) -> Result<Vec<Action>> {
        let mut done = Vec::new();
        for a in &plan.actions {
            match a {
                Action::CutTail {
                    segment,
                    position,
                    quarantine,
                    epoch,
                    ..
                } => self.cut_tail(segment, *position, quarantine.as_deref(), *epoch)?,
                Action::RebuildIndex { segment, .. } => self.rebuild_index(segment)?,
                Action::RemoveOrphanBlob(p)
                | Action::RemoveTempFile(p)
                | Action::RemoveIndex(p) => {
                    match self.vfs.remove_file(p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("remove", p, e)),
                    }
                    self.sync_parent(p)?;
                }
                Action::RemoveIncompleteDir(p) => {
                    if self
                        .vfs
                        .kind(p)
                        .map_err(|e| Error::io("stat", p, e))?
                        .is_some()
                    {
                        io::remove_dir_all(self.vfs, p)?;
                    }
                    self.sync_parent(p)?;
                }
            }
            done.push(a.clone());
        }
        Ok(done)
    }

    fn sync_parent(&self, p: &Path) -> Result<()> {
        let dir = p.parent().unwrap_or(Path::new("."));
        self.vfs
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))
    }

    fn segment_file(&self, path: &Path) -> Result<Vec<u8>> {
        match self.read_segment_bytes(path, true) {
            Ok(Bounded::Bytes(b)) => Ok(b),
            Ok(Bounded::Missing) => {
                Err(Error::io("read", path, std::io::ErrorKind::NotFound.into()))
            }
            Ok(Bounded::TooLarge(n)) => Err(Error::corrupt(
                path,
                0,
                format!("segment of {n} bytes exceeds the limit of {SEGMENT_BYTES_LIMIT}"),
            )),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Cuts a segment at `position` as recovery does: quarantines the first
    /// non-zero run from there, zeroes every run, syncs, then writes the
    /// header state (`epoch`, watermark `position`) and syncs again.
    fn cut_tail(
        &self,
        path: &Path,
        position: u64,
        quarantine: Option<&Path>,
        epoch: u32,
    ) -> Result<()> {
        let bytes = self.segment_file(path)?;
        let header = SegmentHeader::decode(&bytes)
            .map_err(|e| Error::corrupt(path, 0, format!("segment header: {e}")))?;
        let position = position.max(SEGMENT_HEADER_BYTES as u64);
        let runs = runs_from(&bytes, position);
        if let (Some(first), Some(q)) = (runs.first(), quarantine) {
            let qdir = q.parent().unwrap_or(Path::new("."));
            if self
                .vfs
                .kind(qdir)
                .map_err(|e| Error::io("stat", qdir, e))?
                .is_none()
            {
                self.vfs
                    .create_dir(qdir)
                    .map_err(|e| Error::io("create directory", qdir, e))?;
                self.sync_parent(qdir)?;
            }
            let name = q.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            io::write_file_atomic(self.vfs, qdir, name, &bytes[first.clone()])?;
        }
        let file = self
            .vfs
            .open(path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", path, e))?;
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        for r in &runs {
            let mut at = r.start;
            while at < r.end {
                let n = (r.end - at).min(zeros.len());
                file.write_all_at(&zeros[..n], at as u64)
                    .map_err(|e| Error::io("write", path, e))?;
                at += n;
            }
        }
        file.sync().map_err(|e| Error::io("sync", path, e))?;
        let state = SegmentState {
            epoch,
            synced_end: position,
            clean: false,
        };
        file.write_all_at(&state.encode(header.segment_id), STATE_OFFSET as u64)
            .map_err(|e| Error::io("write", path, e))?;
        file.sync().map_err(|e| Error::io("sync", path, e))
    }

    /// Writes the index of the sealed segment at `path` from a scan of it,
    /// as the engine's open rebuilds a missing one.
    fn rebuild_index(&self, path: &Path) -> Result<()> {
        let bytes = self.segment_file(path)?;
        let corrupt = |d: scan::Damage| Error::corrupt(path, d.position, d.reason);
        let name_base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(layout::parse_segment_name);
        let header =
            scan::check_header(&bytes, bytes.len() as u64, name_base, None).map_err(corrupt)?;
        let s = scan::scan_file(&bytes, &header, None);
        scan::judge_sealed(&s, None).map_err(|d| {
            corrupt(scan::Damage {
                reason: format!("{}; index not rebuilt", d.reason),
                ..d
            })
        })?;
        let index = index_file::build(&header, &bytes, &s.positions, s.end);
        let dir = path.parent().unwrap_or(Path::new("."));
        io::write_file_atomic(
            self.vfs,
            dir,
            &layout::index_file_name(header.base_offset),
            &index,
        )
    }
}
