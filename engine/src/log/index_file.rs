//! The `.idx` file of a sealed segment: the checks that decide whether an
//! index may be used, and the index built from a scan of its segment. Pure
//! over `&[u8]`; the engine (which maps indexes) and the inspector and repair
//! (which read them) share these, so they agree on which index is usable and
//! rebuild the same bytes.

use super::scan::{blob_refs_in, ids_in, Scan};
use crate::format::index::{self, IdEntry, IndexHeader, INDEX_HEADER_BYTES};
use crate::format::record::RECORD_HEADER_BYTES;
use crate::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::limits::SEGMENT_BYTES_LIMIT;

/// Largest index file read: a header, one `u32` position per smallest
/// possible record of the largest segment, 64 MiB of blob references, and
/// an id section no larger than the segment (an id entry is shorter than
/// the record that carries the id).
pub(crate) const INDEX_FILE_BYTES_MAX: u64 = INDEX_HEADER_BYTES as u64
    + (SEGMENT_BYTES_LIMIT / RECORD_HEADER_BYTES as u64) * 4
    + (64 << 20)
    + SEGMENT_BYTES_LIMIT;

/// Checks an index file held whole in `b` against its segment: intact, of
/// the same segment (id, base offset, bucket), holding `count` records where
/// that is known, with its data end inside the segment of `segment_len`
/// bytes. The reason it is unusable otherwise (it is then rebuilt).
pub(crate) fn check(
    b: &[u8],
    header: &SegmentHeader,
    count: Option<u64>,
    segment_len: u64,
) -> Result<IndexHeader, String> {
    if b.len() as u64 > INDEX_FILE_BYTES_MAX {
        return Err(format!(
            "index of {} bytes exceeds the limit of {INDEX_FILE_BYTES_MAX}",
            b.len()
        ));
    }
    let ih = index::decode(b).map_err(|e| e.to_string())?;
    if ih.segment_id != header.segment_id {
        return Err("belongs to another segment (segment id differs)".into());
    }
    if ih.base_offset != header.base_offset || ih.bucket != header.bucket {
        return Err("base offset or bucket differs from the segment's".into());
    }
    if let Some(n) = count.filter(|&n| n != ih.count) {
        return Err(format!(
            "lists {} records, the segment must hold {n}",
            ih.count
        ));
    }
    if ih.data_end > segment_len || ih.data_end < SEGMENT_HEADER_BYTES as u64 {
        return Err(format!(
            "says the data ends at byte {}, outside the segment",
            ih.data_end
        ));
    }
    Ok(ih)
}

/// Checks a kept-ids file (`<base>.ids`: the index of a segment that
/// retention deleted while some of its ids were within the window, DESIGN
/// §7.1) held whole in `b`, for bucket `priority` and the base offset
/// `base` of its name: intact, an index of that bucket and base, with a
/// non-empty id section. The reason it is unusable otherwise (the engine
/// then ignores and removes it: a warning, nothing acknowledged is in it
/// but ids).
pub(crate) fn check_kept(b: &[u8], priority: u8, base: u64) -> Result<IndexHeader, String> {
    if b.len() as u64 > INDEX_FILE_BYTES_MAX {
        return Err(format!(
            "kept ids of {} bytes exceed the limit of {INDEX_FILE_BYTES_MAX}",
            b.len()
        ));
    }
    let ih = index::decode(b).map_err(|e| e.to_string())?;
    if ih.bucket != u32::from(priority) || ih.base_offset != base {
        return Err("base offset or bucket differs from the file's name".into());
    }
    if ih.ids == 0 {
        return Err("holds no ids".into());
    }
    Ok(ih)
}

/// The newest timestamp of the id section of an index `b` that
/// [`index::decode`] accepted with header `ih` (the last entry's:
/// timestamps do not decrease); `None` without ids.
pub(crate) fn newest_id_us(b: &[u8], ih: &IndexHeader) -> Option<u64> {
    index::ids(b, ih).last().map(|e| e.timestamp_us)
}

/// Checks a usable index (see [`check`]) against a scan of its segment
/// (whose whole file is `file`): the same records at the same positions,
/// ending at the same byte, and the same ids of the same records.
pub(crate) fn check_against_scan(
    b: &[u8],
    ih: &IndexHeader,
    scan: &Scan,
    file: &[u8],
) -> Result<(), String> {
    if ih.count != scan.positions.len() as u64 {
        return Err(format!(
            "lists {} records, the segment holds {}",
            ih.count,
            scan.positions.len()
        ));
    }
    if ih.data_end != scan.end {
        return Err(format!(
            "says the data ends at byte {}, the records end at {}",
            ih.data_end, scan.end
        ));
    }
    let wrong = scan
        .positions
        .iter()
        .enumerate()
        .find(|&(i, &p)| index::position(b, i as u64) != p);
    if let Some((i, _)) = wrong {
        return Err(format!("position of record {i} is wrong"));
    }
    let listed: Vec<IdEntry<'_>> = index::ids(b, ih).collect();
    let found = ids_in(file, ih.segment_id, &scan.positions);
    if listed != found {
        let at = listed
            .iter()
            .zip(&found)
            .position(|(a, b)| a != b)
            .unwrap_or(listed.len().min(found.len()));
        return Err(format!(
            "id section lists {} ids, the records carry {}; they differ from entry {at} on",
            listed.len(),
            found.len()
        ));
    }
    Ok(())
}

/// The index of a sealed segment whose whole file is `file`, from the
/// positions of its records (a scan, or the writer's in-memory index) and
/// the end of its data.
pub(crate) fn build(
    header: &SegmentHeader,
    file: &[u8],
    positions: &[u32],
    data_end: u64,
) -> Vec<u8> {
    let refs = blob_refs_in(file, header.segment_id, positions);
    let ids = ids_in(file, header.segment_id, positions);
    encode(header, positions, data_end, &refs, &ids)
}

/// The index of a sealed segment with the blob references `refs` and the
/// ids `ids` (version 1 if there are none).
pub(crate) fn encode(
    header: &SegmentHeader,
    positions: &[u32],
    data_end: u64,
    refs: &[[u8; 32]],
    ids: &[IdEntry<'_>],
) -> Vec<u8> {
    let ih = IndexHeader {
        bucket: header.bucket,
        segment_id: header.segment_id,
        base_offset: header.base_offset,
        count: positions.len() as u64,
        data_end,
        blob_refs: u32::try_from(refs.len()).unwrap_or(u32::MAX),
        ids: u32::try_from(ids.len()).unwrap_or(u32::MAX),
    };
    index::encode(&ih, positions, refs, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::scan::ScanStop;

    fn header() -> SegmentHeader {
        SegmentHeader {
            bucket: 1,
            segment_id: 77,
            base_offset: 10,
            created_us: 0,
            file_bytes: 1 << 16,
        }
    }

    #[test]
    fn an_index_is_usable_only_for_its_own_segment() {
        let b = encode(&header(), &[1024, 1056], 1088, &[], &[]);
        let ih = check(&b, &header(), Some(2), 1 << 16).unwrap();
        assert_eq!(ih.count, 2);
        assert!(check(&b, &header(), Some(3), 1 << 16).is_err());
        assert!(check(&b, &header(), None, 1000).is_err());
        let other = SegmentHeader {
            segment_id: 78,
            ..header()
        };
        assert!(check(&b, &other, None, 1 << 16).is_err());
        let scan = Scan {
            positions: vec![1024, 1056],
            end: 1088,
            stop: ScanStop::End,
            max_epoch: 1,
        };
        assert_eq!(check_against_scan(&b, &ih, &scan, &[]), Ok(()));
        let moved = Scan {
            positions: vec![1024, 1064],
            ..scan
        };
        assert!(check_against_scan(&b, &ih, &moved, &[]).is_err());
    }
}
