//! Segments and buckets, judged with the verdicts of the engine's open and
//! reads ([`crate::log::scan`], [`crate::log::index_file`]): a bucket's
//! last segment is recovered as active, the others are read through their
//! index when it is usable and rebuilt from a scan when it is not.

use super::read::{list_dir, open_file, read_at_most, read_bounded, read_framed, too_large};
use super::read::{Bounded, Framed};
use super::{
    AttributeCounts, BlobRef, BucketInfo, IndexStatus, Inspector, KeptIdsInfo, Problem, RecordInfo,
    ScanEnd, SegmentInfo,
};
use crate::format::attributes::Attributes;
use crate::format::headers;
use crate::format::meta;
use crate::format::record::{self, DecodedRecord, RECORD_HEADER_BYTES};
use crate::format::segment::{
    SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES, STATE_BYTES, STATE_OFFSET,
};
use crate::io::EntryKind;
use crate::layout;
use crate::log::index_file::{self, INDEX_FILE_BYTES_MAX};
use crate::log::scan::{self, Damage, Scan};
use crate::options::SEGMENT_BYTES_LIMIT;
use std::io;
use std::path::{Path, PathBuf};

/// How many times the header of an active segment is read again when its
/// state block fails its checksum (it may have been caught mid-update: with
/// `Durability::Always` it is rewritten at every sync).
const STATE_REREADS: usize = 10;

/// How many times a bucket is inspected again when retention deleted the
/// segment it had listed as the newest before it was read.
const BUCKET_REREADS: usize = 3;

/// Bytes of the body of `retention.meta` and `head.meta`: an offset.
const LOW_WATER_BYTES: usize = 8;

/// What the caller knows about a segment.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// The last segment of its bucket: recovered at open (a segment read
    /// alone without a usable index is judged the same way).
    Active,
    /// A sealed segment, holding `count` records where known (the next
    /// segment's base minus its own).
    Sealed { count: Option<u64> },
}

/// The state block of a segment whose header says `segment_id`.
fn state_of(bytes: &[u8], segment_id: u64) -> Option<SegmentState> {
    bytes
        .get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
        .and_then(|b| SegmentState::decode(segment_id, b))
}

fn damage(path: &Path, d: Damage) -> Problem {
    Problem::at(path, d.position, d.reason)
}

impl Inspector<'_> {
    /// Reads a segment file of at most [`SEGMENT_BYTES_LIMIT`] bytes: its
    /// header first, then its data. The header's watermark only grows and
    /// data below it was written before, so every byte below the watermark
    /// seen is read as it stays. The header of an active segment whose state
    /// block fails its checksum is read again (caught mid-update).
    pub(super) fn read_segment_bytes(&self, path: &Path, active: bool) -> io::Result<Bounded> {
        let Some(f) = open_file(self.vfs, path)? else {
            return Ok(Bounded::Missing);
        };
        let len = f.len()?;
        if len > SEGMENT_BYTES_LIMIT {
            return Ok(Bounded::TooLarge(len));
        }
        let head_len = len.min(SEGMENT_HEADER_BYTES as u64);
        let mut bytes = read_at_most(&*f, 0, head_len)?;
        for _ in 0..STATE_REREADS {
            let torn = SegmentHeader::decode(&bytes)
                .is_ok_and(|h| state_of(&bytes, h.segment_id).is_none());
            if !active || !torn {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            bytes = read_at_most(&*f, 0, head_len)?;
        }
        if len > head_len {
            bytes.extend(read_at_most(&*f, head_len, len - head_len)?);
        }
        Ok(Bounded::Bytes(bytes))
    }

    /// Reads an index file: `Ok(None)` if missing, `Err(reason)` if
    /// unreadable or too large.
    pub(super) fn load_index(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
        match read_bounded(self.vfs, path, INDEX_FILE_BYTES_MAX) {
            Ok(Bounded::Bytes(b)) => Ok(Some(b)),
            Ok(Bounded::Missing) => Ok(None),
            Ok(Bounded::TooLarge(len)) => Err(format!(
                "index of {len} bytes exceeds the limit of {INDEX_FILE_BYTES_MAX}"
            )),
            Err(e) => Err(format!("cannot read: {e}")),
        }
    }

    /// Inspects one bucket directory as the engine's open lists it.
    pub(super) fn inspect_bucket(
        &self,
        priority: u8,
        dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> BucketInfo {
        let mut attempt = 0;
        loop {
            let mut found = Vec::new();
            let (info, outrun) = self.inspect_bucket_once(priority, dir, &mut found);
            attempt += 1;
            if !outrun || attempt > BUCKET_REREADS {
                problems.extend(found);
                return info;
            }
        }
    }

    /// One inspection of a bucket directory, and whether it was outrun: the
    /// newest segment listed was gone when it was opened (sealed by a roll
    /// and deleted by retention since), so the segments read do not reach
    /// the bucket's end.
    fn inspect_bucket_once(
        &self,
        priority: u8,
        dir: &Path,
        problems: &mut Vec<Problem>,
    ) -> (BucketInfo, bool) {
        let mut info = BucketInfo {
            priority,
            path: dir.to_path_buf(),
            segments: Vec::new(),
            messages: 0,
            first_offset: None,
            last_offset: None,
            first_timestamp_us: None,
            last_timestamp_us: None,
            file_bytes: 0,
            data_bytes: 0,
            quarantined: Vec::new(),
            kept_ids: Vec::new(),
        };
        // The head mark first: it names a segment only once that segment
        // exists, so a listing taken after it holds that segment (on a live
        // store, a roll between the two is no false alarm).
        let head = self.mark(
            dir,
            layout::HEAD_FILE,
            meta::HEAD_MAGIC,
            meta::HEAD_VERSION,
            "head mark",
            problems,
        );
        let entries = match list_dir(self.vfs, dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(Problem::file(dir, "bucket directory missing"));
                return (info, false);
            }
            Err(e) => {
                problems.push(Problem::file(dir, format!("cannot list: {e}")));
                return (info, false);
            }
        };
        let mut bases = Vec::new();
        let mut kept = Vec::new();
        for e in &entries {
            if let Some(base) = layout::parse_kept_ids_name(&e.name) {
                if e.kind == EntryKind::File {
                    kept.push(base);
                }
                continue;
            }
            let Some(base) = layout::parse_segment_name(&e.name) else {
                if e.name == layout::QUARANTINE_DIR && e.kind == EntryKind::Dir {
                    info.quarantined = self.list_quarantine(&dir.join(&e.name), problems);
                }
                continue;
            };
            let path = dir.join(&e.name);
            if e.kind != EntryKind::File {
                problems.push(Problem::at(&path, 0, "segment is not a regular file"));
            } else if base > u64::MAX >> 1 {
                problems.push(Problem::at(
                    &path,
                    0,
                    "impossible base offset in the file name",
                ));
            } else {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        // Segments below the low-water mark are what a retention pass cut
        // short by a crash was deleting: the next open finishes the pass.
        let low = self.mark(
            dir,
            layout::RETENTION_FILE,
            meta::RETENTION_MAGIC,
            meta::RETENTION_VERSION,
            "retention mark",
            problems,
        );
        if let Some(low) = low {
            while bases.len() > 1 && bases[1] <= low {
                bases.remove(0);
            }
        }
        // A segment file missing from the chain: the open refuses the store.
        if let Err((base, why)) = scan::judge_segment_chain(&bases, low, head) {
            problems.push(Problem::at(
                &dir.join(layout::segment_file_name(base)),
                0,
                why,
            ));
        }
        let (mut read, mut vanished) = (Vec::new(), Vec::new());
        for (i, &base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            let role = match next {
                Some(n) => Role::Sealed {
                    count: Some(n - base),
                },
                None => Role::Active,
            };
            let path = dir.join(layout::segment_file_name(base));
            match self.inspect_segment(&path, base, priority, role) {
                Some(seg) => read.push((next, seg)),
                None => vanished.push((base, path)),
            }
        }
        // Retention that ran meanwhile (its mark is written before it deletes
        // anything) explains files gone since the listing, and the missing
        // index of a segment read before its index was deleted: segments
        // below the new mark are left out. A file gone that it does not
        // explain is a problem.
        let low_now = self.mark(
            dir,
            layout::RETENTION_FILE,
            meta::RETENTION_MAGIC,
            meta::RETENTION_VERSION,
            "retention mark",
            &mut Vec::new(),
        );
        let deleted = |next: &Option<u64>| next.is_some_and(|n| low_now.is_some_and(|l| n <= l));
        if low_now.is_some_and(|now| low.is_none_or(|l| now > l)) {
            read.retain(|(next, _)| !deleted(next));
        }
        // A file gone is explained if its first offset is below the mark now
        // (the last one listed too: it was active, then sealed by a roll
        // and deleted since, and the bucket is read again).
        let newest = bases.last().copied();
        let outrun = vanished.iter().any(|&(base, _)| Some(base) == newest);
        for (base, path) in vanished {
            if low_now.is_none_or(|l| base >= l) {
                problems.push(Problem::at(
                    &path,
                    0,
                    format!(
                        "segment file removed while it was read, not by retention (low-water \
                         mark {})",
                        low_now.unwrap_or(0)
                    ),
                ));
            }
        }
        for (_, seg) in read {
            problems.extend(seg.problems.iter().cloned());
            info.segments.push(seg);
        }
        kept.sort_unstable();
        info.kept_ids = kept
            .into_iter()
            .filter_map(|base| self.inspect_kept(dir, priority, base, problems))
            .collect();
        info.first_offset = info.segments.first().and_then(SegmentInfo::base_offset);
        info.messages = info.segments.iter().map(|s| s.record_count).sum();
        info.last_offset = info
            .segments
            .iter()
            .rev()
            .find(|s| s.record_count > 0)
            .and_then(|s| Some(s.base_offset()? + s.record_count - 1));
        info.first_timestamp_us = info.segments.iter().find_map(|s| s.first_timestamp_us);
        info.last_timestamp_us = info.segments.iter().rev().find_map(|s| s.last_timestamp_us);
        info.file_bytes = info.segments.iter().map(|s| s.file_bytes).sum();
        info.data_bytes = info
            .segments
            .iter()
            .map(|s| s.data_end.saturating_sub(SEGMENT_HEADER_BYTES as u64))
            .sum();
        (info, outrun)
    }

    /// Reads a kept-ids file as the engine's window rebuild reads it
    /// (`index_file::check_kept`); `None` if it is gone (pruned since the
    /// listing). An unusable one is a warning: the engine ignores and
    /// removes it, and only ids are lost with it.
    fn inspect_kept(
        &self,
        dir: &Path,
        priority: u8,
        base: u64,
        problems: &mut Vec<Problem>,
    ) -> Option<KeptIdsInfo> {
        let path = dir.join(layout::kept_ids_file_name(base));
        let checked = match self.load_index(&path) {
            Ok(None) => return None,
            Ok(Some(b)) => index_file::check_kept(&b, priority, base)
                .map(|ih| (ih.ids, index_file::newest_id_us(&b, &ih))),
            Err(reason) => Err(reason),
        };
        let (ids, newest_timestamp_us, unusable) = match checked {
            Ok((ids, newest)) => (ids, newest, None),
            Err(reason) => {
                problems.push(Problem::warn(
                    &path,
                    None,
                    format!(
                        "kept ids of a deleted segment unusable: {reason} (the engine ignores \
                         and removes it; a retry of one of its ids within the window would be \
                         stored again)"
                    ),
                ));
                (0, None, Some(reason))
            }
        };
        Some(KeptIdsInfo {
            path,
            base_offset: base,
            ids,
            newest_timestamp_us,
            unusable,
        })
    }

    fn list_quarantine(&self, qdir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
        match list_dir(self.vfs, qdir) {
            Ok(q) => q
                .into_iter()
                .filter(|e| e.kind == EntryKind::File)
                .map(|e| qdir.join(e.name))
                .collect(),
            Err(e) => {
                problems.push(Problem::file(qdir, format!("cannot list: {e}")));
                Vec::new()
            }
        }
    }

    /// One of a bucket's offset marks (`retention.meta`, `head.meta`: an
    /// offset, u64), read as the open reads it.
    fn mark(
        &self,
        dir: &Path,
        file: &str,
        magic: [u8; 8],
        version: u32,
        what: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<u64> {
        let path = dir.join(file);
        let frame = (magic, version, LOW_WATER_BYTES);
        let Framed::Body(_, body) = read_framed(self.vfs, &path, frame, what, problems) else {
            return None;
        };
        match <[u8; LOW_WATER_BYTES]>::try_from(body.as_slice()) {
            Ok(b) => Some(u64::from_le_bytes(b)),
            Err(_) => {
                problems.push(Problem::at(
                    &path,
                    meta::BODY_OFFSET as u64,
                    format!("{what} has the wrong length"),
                ));
                None
            }
        }
    }

    /// Inspects one segment of a bucket listing; `None` if it vanished.
    fn inspect_segment(
        &self,
        path: &Path,
        base: u64,
        priority: u8,
        role: Role,
    ) -> Option<SegmentInfo> {
        let unreadable = |file_bytes: u64, problem: Problem| SegmentInfo {
            file_bytes,
            problems: vec![problem],
            ..empty_info(path, Some(base), role)
        };
        let bytes = match self.read_segment_bytes(path, matches!(role, Role::Active)) {
            Ok(Bounded::Bytes(b)) => b,
            Ok(Bounded::Missing) => return None,
            Ok(Bounded::TooLarge(len)) => {
                return Some(unreadable(len, too_large(path, len, SEGMENT_BYTES_LIMIT)))
            }
            Err(e) => {
                return Some(unreadable(
                    0,
                    Problem::file(path, format!("cannot read: {e}")),
                ))
            }
        };
        let index = self.load_index(&layout::index_path_of(path, base));
        Some(analyse(
            path,
            Some(base),
            Some(priority),
            &bytes,
            role,
            index,
            false,
        ))
    }
}

fn empty_info(path: &Path, name_base: Option<u64>, role: Role) -> SegmentInfo {
    SegmentInfo {
        path: path.to_path_buf(),
        name_base_offset: name_base,
        file_bytes: 0,
        header: None,
        state: None,
        sealed: matches!(role, Role::Sealed { .. }),
        index: IndexStatus::Missing,
        record_count: 0,
        data_end: 0,
        end: ScanEnd::NotScanned,
        first_timestamp_us: None,
        last_timestamp_us: None,
        records: Vec::new(),
        blob_refs: Vec::new(),
        attributes: AttributeCounts::default(),
        problems: Vec::new(),
    }
}

/// The role of a segment read alone: sealed if a usable index of the same
/// segment lies beside it (as many records as the index says), else active.
pub(super) fn role_alone(bytes: &[u8], index: &Result<Option<Vec<u8>>, String>) -> Role {
    let usable = SegmentHeader::decode(bytes).ok().and_then(|h| {
        let b = index.as_ref().ok()?.as_ref()?;
        index_file::check(b, &h, None, bytes.len() as u64).ok()
    });
    match usable {
        Some(ih) => Role::Sealed {
            count: Some(ih.count),
        },
        None => Role::Active,
    }
}

/// Checks a segment held whole in `bytes` as the engine would open and read
/// it in `role`, and summarises it. `index` is its index file as read.
pub(super) fn analyse(
    path: &Path,
    name_base: Option<u64>,
    priority: Option<u8>,
    bytes: &[u8],
    role: Role,
    index: Result<Option<Vec<u8>>, String>,
    keep_records: bool,
) -> SegmentInfo {
    let mut info = SegmentInfo {
        file_bytes: bytes.len() as u64,
        ..empty_info(path, name_base, role)
    };
    let len = bytes.len() as u64;
    let header = match scan::check_header(bytes, len, name_base, priority) {
        Ok(h) => h,
        Err(d) => {
            info.problems.push(damage(path, d));
            // A header naming another base or bucket is still scanned, for
            // the figures; an unusable one ends the analysis.
            match SegmentHeader::decode(bytes) {
                Ok(h) => h,
                Err(_) => return info,
            }
        }
    };
    info.header = Some(header);
    let state = state_of(bytes, header.segment_id);
    info.state = state;
    let idx_path = layout::index_path_of(path, header.base_offset);
    let (index_bytes, unreadable) = match index {
        Ok(b) => (b, None),
        Err(why) => (None, Some(why)),
    };
    let count = match role {
        Role::Sealed { count } => count,
        Role::Active => None,
    };
    let usable = index_bytes
        .as_deref()
        .map(|b| index_file::check(b, &header, count, len));
    let scan = match (role, &usable) {
        (Role::Active, _) => {
            let scan = scan::scan_file(bytes, &header, state.map(|s| s.epoch));
            info.end = judge_active(path, &scan, state, &mut info.problems);
            scan
        }
        // Read through the index, as the engine reads a sealed segment:
        // what lies past its data end is not part of the log.
        (Role::Sealed { .. }, Some(Ok(ih))) => {
            let end = usize::try_from(ih.data_end)
                .unwrap_or(bytes.len())
                .min(bytes.len());
            let scan = scan::scan_file(&bytes[..end], &header, None);
            info.end = judge_sealed(path, &scan, Some(ih.count), &mut info.problems);
            if let Some(run) =
                scan::nonzero_runs(&bytes[SEGMENT_HEADER_BYTES..], SEGMENT_HEADER_BYTES, end)
                    .first()
            {
                info.problems.push(Problem::warn(
                    path,
                    Some(run.start as u64),
                    "non-zero bytes past the end of a sealed segment's records: not part of the \
                     log, but its index could not be rebuilt from this segment",
                ));
            }
            scan
        }
        // Rebuilt from a scan at open (missing) or at first use (unusable).
        (Role::Sealed { count }, _) => {
            let scan = scan::scan_file(bytes, &header, None);
            info.end = judge_sealed(path, &scan, count, &mut info.problems);
            scan
        }
    };
    info.index = match (&usable, unreadable) {
        (_, Some(why)) => IndexStatus::Invalid(why),
        (None, None) => IndexStatus::Missing,
        (Some(Err(why)), None) => IndexStatus::Invalid(why.clone()),
        (Some(Ok(ih)), None) => {
            let b = index_bytes.as_deref().unwrap_or(&[]);
            match index_file::check_against_scan(b, ih, &scan, bytes) {
                Ok(()) => IndexStatus::Valid,
                Err(why) => IndexStatus::Invalid(why),
            }
        }
    };
    if matches!(role, Role::Sealed { .. }) {
        index_problem(
            &idx_path,
            &info.index,
            usable.as_ref().is_some_and(|u| u.is_ok()),
            &mut info.problems,
        );
    }
    info.record_count = scan.positions.len() as u64;
    info.data_end = scan.end;
    read_records(path, bytes, &header, &scan, keep_records, &mut info);
    info
}

/// The problem with the index of a sealed segment, if any: one the engine
/// reads through but that disagrees with the records is damage; a missing
/// or unusable one is rebuilt by the engine (a warning).
fn index_problem(idx: &Path, status: &IndexStatus, usable: bool, problems: &mut Vec<Problem>) {
    match (status, usable) {
        (IndexStatus::Valid, _) => {}
        (IndexStatus::Missing, _) => problems.push(Problem::warn(
            idx,
            None,
            "index of a sealed segment is missing; the next open rebuilds it",
        )),
        (IndexStatus::Invalid(why), false) => problems.push(Problem::warn(
            idx,
            None,
            format!("index: {why}; it is rebuilt from its segment when first read"),
        )),
        (IndexStatus::Invalid(why), true) => problems.push(Problem::file(
            idx,
            format!("index: {why}; reads through it fail (`repair` rebuilds it)"),
        )),
    }
}

/// The verdict of the engine's recovery on an active segment.
fn judge_active(
    path: &Path,
    scan: &Scan,
    state: Option<SegmentState>,
    problems: &mut Vec<Problem>,
) -> ScanEnd {
    if state.is_none() {
        problems.push(Problem::warn(
            path,
            Some(STATE_OFFSET as u64),
            "segment state block fails its checksum: the durable watermark is unknown (the \
             next open keeps every record that scans)",
        ));
    }
    if scan::next_epoch(scan, state) > scan::EPOCH_WORN {
        problems.push(Problem::warn(
            path,
            Some(STATE_OFFSET as u64),
            "segment epoch at its limit (a damaged but checksummed header or record): the next \
             append starts a new segment",
        ));
    }
    match (scan::judge_active(scan, state), scan.stop.reason()) {
        (Err(d), _) => {
            problems.push(damage(path, d));
            ScanEnd::Damaged
        }
        (Ok(_), None) => ScanEnd::Clean,
        (Ok(_), Some(reason)) => ScanEnd::Tail {
            position: scan.end,
            reason,
        },
    }
}

/// The verdict of the engine on a sealed segment it reads or rebuilds.
fn judge_sealed(
    path: &Path,
    scan: &Scan,
    count: Option<u64>,
    problems: &mut Vec<Problem>,
) -> ScanEnd {
    match scan::judge_sealed(scan, count) {
        Ok(()) => ScanEnd::Clean,
        Err(d) => {
            problems.push(damage(path, d));
            ScanEnd::Damaged
        }
    }
}

/// Decodes record `i` of a scan as the engine reads it (up to the data end,
/// with its expected offset).
pub(super) fn decode_at(
    bytes: &[u8],
    header: &SegmentHeader,
    scan: &Scan,
    i: usize,
) -> Option<DecodedRecord> {
    let pos = *scan.positions.get(i)? as usize;
    let rec = bytes.get(pos..usize::try_from(scan.end).ok()?)?;
    record::decode(
        rec,
        header.segment_id,
        u32::MAX,
        Some(header.base_offset + i as u64),
    )
    .ok()
}

/// The record of a decoded record at byte `position`.
pub(super) fn record_info(position: u64, d: &DecodedRecord) -> RecordInfo {
    RecordInfo {
        position,
        offset: d.offset,
        timestamp_us: d.timestamp_us,
        epoch: d.epoch,
        flags: d.flags,
        headers_bytes: d.hdr_len,
        body_bytes: d.len - RECORD_HEADER_BYTES as u32 - u32::from(d.hdr_len),
        stored_bytes: d.stored_len(),
    }
}

/// Reads the records of a scan as the engine's reads would: timestamps,
/// claim-check references, the records themselves if `keep`, and a problem
/// for each record whose header section is malformed (a read of it fails).
fn read_records(
    path: &Path,
    bytes: &[u8],
    header: &SegmentHeader,
    scan: &Scan,
    keep: bool,
    info: &mut SegmentInfo,
) {
    let n = scan.positions.len();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    info.first_timestamp_us = decode_at(bytes, header, scan, 0).map(|d| d.timestamp_us);
    info.last_timestamp_us = n
        .checked_sub(1)
        .and_then(|i| decode_at(bytes, header, scan, i))
        .map(|d| d.timestamp_us);
    for (i, &pos) in scan.positions.iter().enumerate() {
        let Some(d) = decode_at(bytes, header, scan, i) else {
            continue;
        };
        let rec = &bytes[pos as usize..pos as usize + d.len as usize];
        if d.hdr_len > 0 && headers::validate(&rec[d.headers_range()]).is_err() {
            info.problems
                .push(Problem::at(path, u64::from(pos), "malformed headers"));
        }
        if d.flags & record::FLAG_ATTRIBUTES != 0 {
            match Attributes::decode(&rec[d.headers_range()]) {
                Ok(a) => count_attributes(&mut info.attributes, &a, now_us),
                Err(e) => info.problems.push(Problem::at(
                    path,
                    u64::from(pos),
                    format!(
                        "record at offset {}: {e} (read as one without attributes)",
                        d.offset
                    ),
                )),
            }
        }
        if keep {
            info.records.push(record_info(u64::from(pos), &d));
        }
        if d.flags & record::FLAG_CLAIM_CHECK != 0 {
            if let Some((hash, length)) = record::decode_claim_check(&rec[d.body_range()]) {
                info.blob_refs.push(BlobRef {
                    hash,
                    length,
                    offset: d.offset,
                    position: u64::from(pos),
                });
            }
        }
    }
}

/// Adds one record's attributes to the counts, times judged at `now_us`.
fn count_attributes(c: &mut AttributeCounts, a: &Attributes<'_>, now_us: u64) {
    if let Some(t) = a.deliver_at_us {
        c.scheduled += 1;
        c.scheduled_later += u64::from(t > now_us);
    }
    if let Some(t) = a.expires_at_us {
        c.with_ttl += 1;
        c.expired += u64::from(t <= now_us);
    }
    c.with_id += u64::from(a.message_id.is_some());
    c.grouped += u64::from(a.group.is_some());
}
