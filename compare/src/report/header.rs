//! The lines above the table: the run and the machine's limits.

use super::Report;
use crate::limits::Limits;
use crate::numbers::{bytes, megabytes, rate, sig3, thousands};
use crate::W2_BATCH_BYTES;
use std::path::Path;

impl Report<'_> {
    /// The lines above the table: the run and the machine's limits.
    pub(super) fn header(&self) -> Vec<String> {
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
