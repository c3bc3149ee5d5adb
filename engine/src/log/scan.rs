//! The verdicts on a segment's bytes, pure over `&[u8]`: where its valid
//! records end, whether that end is a torn tail or damage to acknowledged
//! data, what lies past it, and the epoch of the next writer.
//!
//! The engine's recovery and the inspector (`segment-tool`) both call these
//! functions with the bytes they read, so they cannot disagree about a
//! segment (DESIGN.md §5).

use crate::format::record::{self, DecodeError};
use crate::format::segment::{
    HeaderDecodeError, SegmentHeader, SegmentState, BASE_OFFSET_OFFSET, BUCKET_OFFSET,
    SEGMENT_HEADER_BYTES,
};
use crate::limits::SEGMENT_BYTES_LIMIT;
use std::ops::Range;

/// Damage found in a file: the byte position and what is wrong. The engine
/// turns it into `Error::Corrupt`, the inspector into a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte position within the file.
    pub position: u64,
    /// What is wrong, in words.
    pub reason: String,
}

impl Damage {
    pub(crate) fn at(position: u64, reason: impl Into<String>) -> Damage {
        Damage {
            position,
            reason: reason.into(),
        }
    }
}

/// How a scan of a segment's records ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// Reached zeros (or the end of the file) at a record boundary.
    End,
    /// Found something that is not the next valid record.
    Bad(DecodeError),
    /// Found a valid record of an older epoch: stale bytes from before a
    /// recovery, never part of the log.
    StaleEpoch(u32),
    /// Found a record whose epoch is newer than the header's.
    FutureEpoch(u32),
}

impl ScanStop {
    /// Why the scan stopped, in words; `None` at a clean end.
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            ScanStop::End => None,
            ScanStop::Bad(e) => Some(e.to_string()),
            ScanStop::StaleEpoch(e) => Some(format!("record of an older epoch {e}")),
            ScanStop::FutureEpoch(e) => Some(format!("record of a future epoch {e}")),
        }
    }
}

/// Result of scanning a segment from its first record.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Position of each valid record.
    pub positions: Vec<u32>,
    /// Byte position after the last valid record.
    pub end: u64,
    /// Why the scan stopped at `end`.
    pub stop: ScanStop,
    /// Highest epoch among valid records.
    pub max_epoch: u32,
}

/// Scans the records of a segment. `data` holds the file's bytes from
/// position `data_start` (the end of the header) on. `epoch_max`, when known,
/// bounds record epochs.
pub(crate) fn scan(
    data: &[u8],
    data_start: usize,
    segment_id: u64,
    base: u64,
    epoch_max: Option<u32>,
) -> Scan {
    let mut positions = Vec::new();
    let mut at = 0usize;
    let mut last_epoch = 0u32;
    let len_max = u32::try_from(data.len() + data_start).unwrap_or(u32::MAX);
    let stop = loop {
        if at + record::RECORD_HEADER_BYTES > data.len() {
            // Not even a record header fits: only zeros make this an end.
            if data[at.min(data.len())..].iter().all(|&b| b == 0) {
                break ScanStop::End;
            }
            break ScanStop::Bad(DecodeError::Truncated);
        }
        let expected = base + positions.len() as u64;
        match record::decode(&data[at..], segment_id, len_max, Some(expected)) {
            Ok(d) => {
                // `decode` checked the unpadded length; the padding must fit
                // too, or the next position would lie past the file (a file
                // cut right after a record's last byte).
                if at as u64 + d.stored_len() > data.len() as u64 {
                    break ScanStop::Bad(DecodeError::Truncated);
                }
                if d.epoch < last_epoch {
                    break ScanStop::StaleEpoch(d.epoch);
                }
                if matches!(epoch_max, Some(m) if d.epoch > m) {
                    break ScanStop::FutureEpoch(d.epoch);
                }
                last_epoch = d.epoch;
                positions.push((data_start + at) as u32);
                at += d.stored_len() as usize;
            }
            Err(DecodeError::End) => break ScanStop::End,
            Err(e) => break ScanStop::Bad(e),
        }
    };
    Scan {
        positions,
        end: (data_start + at) as u64,
        stop,
        max_epoch: last_epoch,
    }
}

/// Scans a whole segment file held in `file` whose header is `header`.
pub(crate) fn scan_file(file: &[u8], header: &SegmentHeader, epoch_max: Option<u32>) -> Scan {
    scan_data(
        file.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]),
        header,
        epoch_max,
    )
}

/// Scans a segment's data: `data` holds its bytes from the end of the header on.
pub(crate) fn scan_data(data: &[u8], header: &SegmentHeader, epoch_max: Option<u32>) -> Scan {
    scan(
        data,
        SEGMENT_HEADER_BYTES,
        header.segment_id,
        header.base_offset,
        epoch_max,
    )
}

/// Checks a segment's length and static header against what its file name
/// (`base`) and directory (`priority`) say. `head` holds at least the
/// header's bytes if the file has them.
pub(crate) fn check_header(
    head: &[u8],
    file_len: u64,
    base: Option<u64>,
    priority: Option<u8>,
) -> Result<SegmentHeader, Damage> {
    if file_len > SEGMENT_BYTES_LIMIT {
        return Err(Damage::at(
            0,
            format!("segment of {file_len} bytes exceeds the limit of {SEGMENT_BYTES_LIMIT}"),
        ));
    }
    let header = SegmentHeader::decode(head).map_err(|e| {
        Damage::at(
            0,
            match e {
                HeaderDecodeError::Truncated => format!(
                    "segment of {file_len} bytes is shorter than its \
                     {SEGMENT_HEADER_BYTES}-byte header"
                ),
                other => format!("segment header: {other}"),
            },
        )
    })?;
    if let Some(b) = base.filter(|&b| b != header.base_offset) {
        return Err(Damage::at(
            BASE_OFFSET_OFFSET as u64,
            format!(
                "header says base offset {} but the file name says {b}",
                header.base_offset
            ),
        ));
    }
    if let Some(p) = priority.filter(|&p| u32::from(p) != header.bucket) {
        return Err(Damage::at(
            BUCKET_OFFSET as u64,
            format!(
                "segment belongs to priority {} but lies in bucket p{p}",
                header.bucket
            ),
        ));
    }
    Ok(header)
}

/// The durable watermark of an active segment: data below it was
/// acknowledged. Unknown (its state block torn by a crash) counts as the
/// start of the data: nothing is known durable then.
pub(crate) fn watermark(state: Option<SegmentState>) -> u64 {
    state
        .map(|s| s.synced_end)
        .unwrap_or(SEGMENT_HEADER_BYTES as u64)
}

/// The verdict on the scan of an active segment: damage if its valid records
/// end below the durable watermark (acknowledged data is never cut);
/// otherwise everything past the end is a torn tail, which recovery may cut.
pub(crate) fn judge_active(scan: &Scan, state: Option<SegmentState>) -> Result<(), Damage> {
    let watermark = watermark(state);
    if scan.end >= watermark {
        return Ok(());
    }
    let why = scan
        .stop
        .reason()
        .unwrap_or_else(|| "zeros where synced records were".to_string());
    Err(Damage::at(
        scan.end,
        format!("{why} (synced up to byte {watermark})"),
    ))
}

/// Whether the active segment was closed cleanly: its flag is set, the
/// watermark is the end of its records and nothing stopped the scan, so
/// every byte past the end is zero and need not be read.
pub(crate) fn closed_cleanly(scan: &Scan, state: Option<SegmentState>) -> bool {
    matches!(state, Some(s) if s.clean && s.synced_end == scan.end) && scan.stop == ScanStop::End
}

/// Above this epoch a segment is worn: its writer appends nothing to it and
/// starts a new segment (at epoch 1) before its first record (see
/// `Bucket::raise_epoch`). One open or recovery raises the epoch by one, so
/// only a damaged (CRC-valid but absurd) header or record gets here; such a
/// segment is still read whole, and nothing is refused because of it.
pub(crate) const EPOCH_WORN: u32 = u32::MAX / 2;

/// The epoch of the next writer of an active segment: above the header's
/// and every record's, saturating at `u32::MAX` (a worn segment's writer,
/// above [`EPOCH_WORN`], writes no record of its epoch).
pub(crate) fn next_epoch(scan: &Scan, state: Option<SegmentState>) -> u32 {
    state
        .map(|s| s.epoch)
        .unwrap_or(0)
        .max(scan.max_epoch)
        .saturating_add(1)
}

/// The verdict on the scan of a sealed segment: every record must be valid,
/// and there must be `expected` of them where that is known.
pub(crate) fn judge_sealed(scan: &Scan, expected: Option<u64>) -> Result<(), Damage> {
    let found = scan.positions.len() as u64;
    if let Some(why) = scan.stop.reason() {
        return Err(Damage::at(
            scan.end,
            format!("{why} in a sealed segment (after {found} valid records)"),
        ));
    }
    match expected {
        Some(n) if n != found => Err(Damage::at(
            scan.end,
            format!("sealed segment holds {found} records, {n} expected"),
        )),
        _ => Ok(()),
    }
}

/// The verdict on the segment files of a bucket, by their base offsets
/// (sorted, after an interrupted retention was finished): the first must
/// start at the low-water mark `low` (0 if retention never ran), and the
/// newest must not be older than the head mark `head` (the newest segment
/// the bucket made durable; `None` in a bucket older than the mark). A
/// missing segment would otherwise look like an empty or shorter log, and
/// its acknowledged offsets would be handed out again. The damage names the
/// base offset of the first missing segment.
pub(crate) fn judge_segment_chain(
    bases: &[u64],
    low: Option<u64>,
    head: Option<u64>,
) -> Result<(), (u64, String)> {
    let first = low.unwrap_or(0);
    match bases.first() {
        Some(&b) if b > first => {
            return Err((
                first,
                format!(
                    "segment missing: offsets {first}..{b} are neither retained nor deleted by retention"
                ),
            ))
        }
        None if head.is_some() || low.is_some_and(|l| l > 0) => {
            let base = head.unwrap_or(first);
            return Err((
                base,
                "segment missing: the bucket has no segment file, but it had made one durable"
                    .to_string(),
            ));
        }
        _ => {}
    }
    if let (Some(&newest), Some(head)) = (bases.last(), head) {
        if newest < head {
            return Err((
                head,
                format!(
                    "segment missing: the newest segment made durable starts at offset {head}, \
                     the newest file found at {newest}"
                ),
            ));
        }
    }
    Ok(())
}

/// Bytes of the pages in which [`nonzero_runs`] looks for non-zero bytes.
const PAGE_BYTES: usize = 4096;

/// Runs of non-zero bytes from file position `from` on, in `data`, which
/// holds the file's bytes from position `data_start`: maximal sequences of
/// 4 KiB pages of the file holding a non-zero byte, each trimmed to its
/// first and last non-zero byte, as file positions. After a crash the first
/// run is the torn tail (quarantined); later ones are pages written back out
/// of order.
pub(crate) fn nonzero_runs(data: &[u8], data_start: usize, from: usize) -> Vec<Range<usize>> {
    let end = data_start + data.len();
    let mut runs = Vec::new();
    let mut current: Option<Range<usize>> = None;
    let mut p = from.max(data_start);
    while p < end {
        let chunk_end = (((p / PAGE_BYTES) + 1) * PAGE_BYTES).min(end);
        let chunk = &data[p - data_start..chunk_end - data_start];
        if is_zero(chunk) {
            if let Some(r) = current.take() {
                runs.push(r);
            }
        } else {
            let first = chunk.iter().position(|&b| b != 0).unwrap_or(0);
            let last = chunk.iter().rposition(|&b| b != 0).unwrap_or(first) + 1;
            match &mut current {
                Some(r) => r.end = p + last,
                None => current = Some(p + first..p + last),
            }
        }
        p = chunk_end;
    }
    runs.extend(current);
    runs
}

/// True if every byte is zero (eight at a time).
fn is_zero(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .fold(0, |a, w| a | w)
        == 0
        && rest.iter().all(|&b| b == 0)
}

/// The claim-check references among the records at `positions` of a
/// segment whose whole file is `file`, each once, in hash order.
pub(crate) fn blob_refs_in(file: &[u8], segment_id: u64, positions: &[u32]) -> Vec<[u8; 32]> {
    let mut refs = std::collections::BTreeSet::new();
    for &p in positions {
        let Some(rec) = file.get(p as usize..) else {
            continue;
        };
        if let Ok(d) = record::decode(rec, segment_id, u32::MAX, None) {
            if d.flags & record::FLAG_CLAIM_CHECK != 0 {
                if let Some((hash, _)) = record::decode_claim_check(&rec[d.body_range()]) {
                    refs.insert(hash);
                }
            }
        }
    }
    refs.into_iter().collect()
}

/// The deduplication ids of the records at `positions` of a segment whose
/// whole file is `file`, in offset order (what a version 2 index lists). A
/// record whose attribute section does not decode has none, as it reads.
pub(crate) fn ids_in<'a>(
    file: &'a [u8],
    segment_id: u64,
    positions: &[u32],
) -> Vec<crate::format::index::IdEntry<'a>> {
    ids_at(file, 0, Some(segment_id), positions)
}

/// [`ids_in`] over `data`, the bytes of a segment from position `start`
/// on; with `segment_id` `None`, of records already checked (their
/// checksums are not computed again).
pub(crate) fn ids_at<'a>(
    data: &'a [u8],
    start: usize,
    segment_id: Option<u64>,
    positions: &[u32],
) -> Vec<crate::format::index::IdEntry<'a>> {
    let mut out = Vec::new();
    for &p in positions {
        let Some(rec) = (p as usize)
            .checked_sub(start)
            .and_then(|at| data.get(at..))
        else {
            continue;
        };
        let d = match segment_id {
            Some(id) => record::decode(rec, id, u32::MAX, None),
            None => record::decode_verified(rec, u32::MAX, None),
        };
        if let Ok(d) = d {
            if let Some(id) = record_id(rec, &d) {
                out.push(crate::format::index::IdEntry {
                    offset: d.offset,
                    timestamp_us: d.timestamp_us,
                    id,
                });
            }
        }
    }
    out
}

/// The deduplication id of a decoded record `rec`, if it has one.
#[inline]
pub(crate) fn record_id<'a>(rec: &'a [u8], d: &record::DecodedRecord) -> Option<&'a [u8]> {
    if d.flags & record::FLAG_ATTRIBUTES == 0 {
        return None;
    }
    let section = rec.get(d.headers_range())?;
    crate::format::attributes::Attributes::decode(section)
        .ok()?
        .message_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::{encode, stored_len, RecordHeader, RECORD_HEADER_BYTES};

    /// Regression (found by the `segment_recovery` fuzz target): a segment
    /// truncated right after a record whose length is not a multiple of 8
    /// made the scan end past the file, and opening the store panicked.
    #[test]
    fn a_record_whose_padding_is_cut_off_ends_the_scan() {
        let body = b"seven b";
        let n = stored_len(0, body.len()) as usize;
        let mut data = vec![0u8; n];
        let h = RecordHeader {
            offset: 0,
            timestamp_us: 1,
            epoch: 1,
            flags: 0,
        };
        encode(&mut data, 9, &h, &[], body);
        let unpadded = RECORD_HEADER_BYTES + body.len();
        let s = scan(&data[..unpadded], SEGMENT_HEADER_BYTES, 9, 0, None);
        assert_eq!(s.positions.len(), 0);
        assert_eq!(s.end, SEGMENT_HEADER_BYTES as u64);
        assert_eq!(s.stop, ScanStop::Bad(DecodeError::Truncated));
        let s = scan(&data, SEGMENT_HEADER_BYTES, 9, 0, None);
        assert_eq!(s.positions.len(), 1);
        assert_eq!(s.end, (SEGMENT_HEADER_BYTES + n) as u64);
    }

    #[test]
    fn runs_are_pages_trimmed_to_their_non_zero_bytes() {
        let mut b = vec![0u8; 4 * 4096];
        b[100] = 1; // a record's length byte, then zeros: still one run
        b[200] = 2;
        b[4096 + 5] = 3; // the next page: same run
        b[4 * 4096 - 1] = 4; // after an all-zero page: scattered
        assert_eq!(
            nonzero_runs(&b, 0, 0),
            vec![100..4096 + 6, 4 * 4096 - 1..4 * 4096]
        );
        assert_eq!(nonzero_runs(&b, 0, 4 * 4096), vec![]);
        assert_eq!(
            nonzero_runs(&b, 0, 150),
            vec![200..4096 + 6, 4 * 4096 - 1..4 * 4096]
        );
        // The same file seen from byte 1024 on: the same pages.
        assert_eq!(nonzero_runs(&b[1024..], 1024, 0), nonzero_runs(&b, 0, 1024));
        assert_eq!(
            nonzero_runs(&b[1024..], 1024, 0),
            vec![4096 + 5..4096 + 6, 4 * 4096 - 1..4 * 4096]
        );
    }

    #[test]
    fn a_missing_segment_breaks_the_chain() {
        assert_eq!(judge_segment_chain(&[], None, None), Ok(()));
        assert_eq!(judge_segment_chain(&[0, 10, 20], None, Some(20)), Ok(()));
        // The head mark lags after a crash between a roll and its write.
        assert_eq!(judge_segment_chain(&[0, 10, 20], None, Some(10)), Ok(()));
        assert_eq!(judge_segment_chain(&[10, 20], Some(10), Some(20)), Ok(()));
        // The newest (active) segment deleted.
        assert_eq!(
            judge_segment_chain(&[0, 10], None, Some(20)).unwrap_err().0,
            20
        );
        // The only segment deleted.
        assert_eq!(judge_segment_chain(&[], None, Some(0)).unwrap_err().0, 0);
        assert_eq!(judge_segment_chain(&[], Some(30), None).unwrap_err().0, 30);
        // The oldest deleted, not by retention.
        assert_eq!(
            judge_segment_chain(&[10, 20], None, Some(20))
                .unwrap_err()
                .0,
            0
        );
        assert_eq!(
            judge_segment_chain(&[20], Some(10), None).unwrap_err().0,
            10
        );
    }

    #[test]
    fn the_watermark_tells_a_torn_tail_from_damage() {
        let stopped = Scan {
            positions: vec![],
            end: 2048,
            stop: ScanStop::Bad(DecodeError::BadCrc),
            max_epoch: 3,
        };
        let state = |synced_end| {
            Some(SegmentState {
                epoch: 3,
                synced_end,
                clean: false,
            })
        };
        assert_eq!(judge_active(&stopped, state(2048)), Ok(()));
        let d = judge_active(&stopped, state(4096)).unwrap_err();
        assert_eq!(d.position, 2048);
        assert!(d.reason.contains("checksum"), "{}", d.reason);
        assert_eq!(judge_active(&stopped, None), Ok(()));
        assert_eq!(next_epoch(&stopped, state(0)), 4);
        let absurd = |epoch| {
            Some(SegmentState {
                epoch,
                synced_end: 0,
                clean: false,
            })
        };
        assert_eq!(next_epoch(&stopped, absurd(EPOCH_WORN)), EPOCH_WORN + 1);
        assert_eq!(next_epoch(&stopped, absurd(u32::MAX)), u32::MAX);
        assert!(judge_sealed(&stopped, None).is_err());
    }
}
