//! Following a segment as it grows (`segment-tool tail -f`): each read goes
//! on from where the previous one stopped and reads only from there, a few
//! pages at a time, until the records stop. The header is read once.

use super::read::{list_dir, open_file, read_at_most};
use super::segment::record_info;
use super::{Inspector, RecordInfo, RecordParts};
use crate::format::record::{self, RECORD_HEADER_BYTES};
use crate::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::format::{align8, get_u32};
use crate::io::EntryKind;
use crate::layout;
use crate::log::scan::{self, Scan, ScanStop};
use crate::{Error, Result};
use std::io;
use std::path::{Path, PathBuf};

/// Bytes read first past the last record; doubled while records go on.
const PROBE_BYTES: u64 = 4096;

/// Where a read of a segment's records stopped, to go on from there with
/// [`super::read_segment_from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCursor {
    header: SegmentHeader,
    /// Byte position after the last record read.
    pub position: u64,
    /// Offset of the next record.
    pub next_offset: u64,
    /// Epoch of the last record read: a later one cannot be older.
    epoch: u32,
}

/// The records appended to a segment since a [`SegmentCursor`].
#[derive(Debug, Clone)]
pub struct Appended {
    /// The records found, in offset order.
    pub records: Vec<RecordInfo>,
    /// File position of `bytes[0]`: where the read started.
    pub start: u64,
    /// The file's bytes from `start` to the end of the last record (or a
    /// little beyond).
    pub bytes: Vec<u8>,
    /// Where to go on from.
    pub cursor: SegmentCursor,
}

impl Appended {
    /// The headers, body and claim-check reference of one of [`Appended::records`].
    pub fn parts(&self, r: &RecordInfo) -> Option<RecordParts<'_>> {
        r.parts_at(&self.bytes, self.start)
    }
}

impl Inspector<'_> {
    /// The records appended to a segment (see [`super::read_segment_from`]).
    pub fn read_segment_from(&self, path: &Path, from: Option<SegmentCursor>) -> Result<Appended> {
        let io_err = |e| Error::io("read", path, e);
        let f = open_file(self.vfs, path)
            .map_err(io_err)?
            .ok_or_else(|| io_err(io::ErrorKind::NotFound.into()))?;
        let len = f.len().map_err(io_err)?;
        let cursor = match from {
            Some(c) => c,
            None => {
                let head =
                    read_at_most(&*f, 0, len.min(SEGMENT_HEADER_BYTES as u64)).map_err(io_err)?;
                let name_base = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(layout::parse_segment_name);
                let header = scan::check_header(&head, len, name_base, None)
                    .map_err(|d| Error::corrupt(path, d.position, d.reason))?;
                SegmentCursor {
                    header,
                    position: SEGMENT_HEADER_BYTES as u64,
                    next_offset: header.base_offset,
                    epoch: 0,
                }
            }
        };
        let start = cursor.position;
        let mut bytes = Vec::new();
        let mut want = PROBE_BYTES;
        let scan = loop {
            let have = start + bytes.len() as u64;
            let target = start.saturating_add(want).min(len);
            if target > have {
                bytes.extend(read_at_most(&*f, have, target - have).map_err(io_err)?);
            }
            let s = scan::scan(
                &bytes,
                start as usize,
                cursor.header.segment_id,
                cursor.next_offset,
                None,
            );
            match more_needed(&s, &bytes, start, len) {
                Some(n) => want = (want * 2).max(n - start),
                None => break s,
            }
        };
        let mut out = Appended {
            records: Vec::new(),
            start,
            bytes: Vec::new(),
            cursor,
        };
        let end = usize::try_from(scan.end - start).unwrap_or(0);
        for &pos in &scan.positions {
            let at = (u64::from(pos) - start) as usize;
            let Ok(d) = record::decode(&bytes[at..end], cursor.header.segment_id, u32::MAX, None)
            else {
                break;
            };
            // Stale bytes of an older epoch are never part of the log.
            if d.epoch < out.cursor.epoch {
                break;
            }
            out.records.push(record_info(u64::from(pos), &d));
            out.cursor.epoch = d.epoch;
            out.cursor.position = u64::from(pos) + d.stored_len();
            out.cursor.next_offset = d.offset + 1;
        }
        bytes.truncate((out.cursor.position - start) as usize);
        out.bytes = bytes;
        Ok(out)
    }

    /// The segment files of a bucket directory (see [`super::list_segments`]).
    pub fn list_segments(&self, bucket_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
        Ok(list_dir(self.vfs, bucket_dir)?
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| {
                Some((
                    layout::parse_segment_name(&e.name)?,
                    bucket_dir.join(e.name),
                ))
            })
            .collect())
    }
}

/// Whether the scan of `bytes` (the file from `start` on, `len` bytes in
/// all) stopped only because the bytes read end: if so, the file position
/// up to which to read before scanning again.
fn more_needed(s: &Scan, bytes: &[u8], start: u64, len: u64) -> Option<u64> {
    let read_end = start + bytes.len() as u64;
    if read_end >= len || matches!(s.stop, ScanStop::StaleEpoch(_) | ScanStop::FutureEpoch(_)) {
        return None;
    }
    let at = (s.end - start) as usize;
    // Not even the length of the next record was read.
    let Some(head) = bytes.get(at..at + 4) else {
        return Some(s.end + RECORD_HEADER_BYTES as u64);
    };
    let record_len = u64::from(get_u32(head, record::LEN_OFFSET));
    if record_len == 0 {
        // The end of the data (zeros): nothing more is written yet.
        return None;
    }
    let need = s.end + align8(record_len.max(RECORD_HEADER_BYTES as u64));
    // A record that runs past the bytes read but fits in the file.
    (need > read_end && need <= len).then_some(need)
}
