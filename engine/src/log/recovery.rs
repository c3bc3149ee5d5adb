//! Recovery of a bucket at open (DESIGN.md §5): the active segment's torn
//! tail cut and quarantined on the verdicts of [`super::scan`], and the
//! low-water mark of retention.

use super::scan;
use super::segment::{ActiveWriter, RawActive, Segment};
use crate::ctx::Ctx;
use crate::format::meta;
use crate::format::segment::{SegmentState, SEGMENT_HEADER_BYTES, STATE_OFFSET};
use crate::io;
use crate::layout;
use crate::report::{RecoveryReport, TornTail};
use crate::{Error, Result};
use std::path::Path;

/// Reads the bucket's low-water mark (offsets below it were deleted).
pub(crate) fn read_low_water(ctx: &Ctx, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(layout::RETENTION_FILE);
    let Some(body) = io::read_framed(
        &*ctx.vfs,
        &path,
        meta::RETENTION_MAGIC,
        meta::RETENTION_VERSION,
        LOW_WATER_BYTES,
        "retention mark",
    )?
    else {
        return Ok(None);
    };
    let low: [u8; LOW_WATER_BYTES] = body.as_slice().try_into().map_err(|_| {
        Error::corrupt(
            &path,
            meta::BODY_OFFSET as u64,
            "retention mark has the wrong length",
        )
    })?;
    Ok(Some(u64::from_le_bytes(low)))
}

/// Bytes of the body of `retention.meta`: the low-water offset.
const LOW_WATER_BYTES: usize = 8;

/// Reads the bucket's head mark: the base offset of the newest segment it
/// made durable (`None` in a bucket written before the mark existed).
pub(crate) fn read_head(ctx: &Ctx, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(layout::HEAD_FILE);
    let Some(body) = io::read_framed(
        &*ctx.vfs,
        &path,
        meta::HEAD_MAGIC,
        meta::HEAD_VERSION,
        LOW_WATER_BYTES,
        "head mark",
    )?
    else {
        return Ok(None);
    };
    let head: [u8; 8] = body.as_slice().try_into().map_err(|_| {
        Error::corrupt(
            &path,
            meta::BODY_OFFSET as u64,
            "head mark has the wrong length",
        )
    })?;
    Ok(Some(u64::from_le_bytes(head)))
}

/// Writes the bucket's head mark durably, once the segment at `base` is
/// durable (file and directory entry): from then on a missing segment at or
/// below `base` is damage, not an empty log.
pub(crate) fn write_head(ctx: &Ctx, dir: &Path, base: u64) -> Result<()> {
    let bytes = meta::encode(meta::HEAD_MAGIC, meta::HEAD_VERSION, &base.to_le_bytes());
    io::write_file_atomic(&*ctx.vfs, dir, layout::HEAD_FILE, &bytes)
}

/// Writes the bucket's low-water mark durably.
pub(crate) fn write_low_water(ctx: &Ctx, dir: &Path, low: u64) -> Result<()> {
    let bytes = meta::encode(
        meta::RETENTION_MAGIC,
        meta::RETENTION_VERSION,
        &low.to_le_bytes(),
    );
    io::write_file_atomic(&*ctx.vfs, dir, layout::RETENTION_FILE, &bytes)
}

/// The runs of non-zero bytes in `from..len` of the active segment,
/// reading only the parts the file system does not report as holes.
fn nonzero_runs_outside_holes(
    raw: &RawActive,
    from: usize,
    len: usize,
) -> Result<Vec<std::ops::Range<usize>>> {
    let ranges = raw
        .file
        .data_ranges(from as u64..len as u64)
        .map_err(|e| Error::io("find data", &raw.path, e))?;
    let mut runs = Vec::new();
    for r in ranges {
        let (start, end) = ((r.start as usize).max(from), (r.end as usize).min(len));
        if start < end {
            let data = raw.writer.read_uncommitted(start..end);
            runs.extend(scan::nonzero_runs(data, start, start));
        }
    }
    Ok(runs)
}

/// Recovers the active segment: finds where its valid records end, tells a
/// torn tail (after the durable watermark) from damage (before it), moves a
/// torn tail to quarantine, bumps the epoch, and makes the result durable.
///
/// A segment closed cleanly needs none of that: nothing is written or
/// synced at open, and the new epoch is made durable by the first append
/// (see `Bucket::append`); the returned flag says whether it is durable
/// already.
pub(crate) fn recover_active(
    ctx: &Ctx,
    stream: &str,
    priority: u8,
    dir: &Path,
    base: u64,
    report: &mut RecoveryReport,
) -> Result<(ActiveWriter, bool)> {
    let path = dir.join(layout::segment_file_name(base));
    let mut raw = Segment::open_active_raw(ctx, &path, priority, base)?;
    // The scan reads the records and then (after a crash) what was
    // written past them: page by page, not in read-ahead windows.
    // (Read-ahead is switched back on for the readers of the live segment
    // before it is handed over; on an error the map is dropped.)
    raw.map.read_ahead(false);
    let len = raw.map.len();
    let data = raw.writer.read_uncommitted(SEGMENT_HEADER_BYTES..len);
    let scan = scan::scan_data(data, &raw.header, raw.state.map(|s| s.epoch));
    let damaged = |d: scan::Damage| Error::corrupt(&path, d.position, d.reason);
    scan::judge_active(&scan, raw.state).map_err(damaged)?;
    let end = scan.end as usize;
    // After a clean close every byte past the end is zero (each recovery
    // zeroes them, and a clean close writes nothing more). After a crash,
    // pages past the end may have been written back in any order, so the
    // whole rest of the segment is checked: the first run of non-zero bytes
    // is the torn tail (quarantined), later ones are scattered pages. Holes
    // (never written, or written and not yet allocated) read as zeros and
    // are skipped: the check reads what was written, not the segment size.
    let clean = scan::closed_cleanly(&scan, raw.state);
    let epoch = scan::next_epoch(&scan, raw.state);
    if !clean {
        let runs = nonzero_runs_outside_holes(&raw, end, len)?;
        if let Some(first) = runs.first().cloned() {
            let torn = raw.writer.read_uncommitted(first.clone()).to_vec();
            let qdir = dir.join(layout::QUARANTINE_DIR);
            if ctx
                .vfs
                .kind(&qdir)
                .map_err(|e| Error::io("stat", &qdir, e))?
                .is_none()
            {
                ctx.vfs
                    .create_dir(&qdir)
                    .map_err(|e| Error::io("create directory", &qdir, e))?;
                ctx.vfs
                    .sync_dir(dir)
                    .map_err(|e| Error::io("sync directory", dir, e))?;
            }
            let qname = layout::torn_tail_name(base, first.start as u64, epoch);
            io::write_file_atomic(&*ctx.vfs, &qdir, &qname, &torn)?;
            let mut scattered = 0u64;
            for (i, r) in runs.iter().enumerate() {
                if i > 0 {
                    scattered += r.len() as u64;
                }
                raw.writer.slice_mut(r.clone()).fill(0);
                ctx.timed_sync("recovered segment", &path, || raw.map.flush(r.clone()))
                    .map_err(|e| Error::io("sync", &path, e))?;
            }
            report.torn_tails.push(TornTail {
                stream: stream.to_string(),
                priority,
                segment: path.clone(),
                position: first.start as u64,
                bytes: torn.len() as u64,
                scattered_bytes: scattered,
                first_lost_offset: base + scan.positions.len() as u64,
                quarantine: qdir.join(qname),
            });
        }
    }
    if clean {
        let positions = scan.positions;
        raw.map.read_ahead(true);
        return Ok((raw.into_writer(&positions, end as u64, epoch), false));
    }
    // Make the recovered prefix durable, then record the new epoch and the
    // watermark; records of the new epoch are written only after that.
    ctx.timed_sync("recovered segment", &path, || raw.map.flush(0..end))
        .map_err(|e| Error::io("sync", &path, e))?;
    let state = SegmentState {
        epoch,
        synced_end: end as u64,
        clean: false,
    };
    raw.map
        .write_header(STATE_OFFSET, &state.encode(raw.header.segment_id));
    ctx.timed_sync("recovered segment", &path, || {
        raw.map.flush(0..SEGMENT_HEADER_BYTES)
    })
    .map_err(|e| Error::io("sync", &path, e))?;
    let positions = scan.positions;
    raw.map.read_ahead(true);
    // A worn segment's epoch is never durable for records: the first append
    // replaces the segment or rolls past it (see `Bucket::raise_epoch`).
    let durable = epoch <= scan::EPOCH_WORN;
    Ok((raw.into_writer(&positions, end as u64, epoch), durable))
}
