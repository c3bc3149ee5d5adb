use super::*;

/// What the caller of the segment analysis knows about the segment.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// The last segment of its bucket, without an intact index.
    Active,
    /// A sealed segment; it must hold this many records where known.
    Sealed { expected_records: Option<u64> },
}

/// `p<k>` with `k` below [`PRIORITIES_MAX`], without leading zeros.
pub(super) fn parse_bucket_dir(name: &str) -> Option<u8> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k: u8 = digits.parse().ok()?;
    (k < PRIORITIES_MAX && k.to_string() == digits).then_some(k)
}

pub(super) fn inspect_bucket(priority: u8, dir: &Path, problems: &mut Vec<Problem>) -> BucketInfo {
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
    };
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::file(dir, "bucket directory missing"));
            return info;
        }
        Err(e) => {
            problems.push(Problem::file(dir, format!("cannot list: {e}")));
            return info;
        }
    };
    let mut bases: Vec<u64> = entries
        .iter()
        .filter(|(_, k)| *k == Kind::File)
        .filter_map(|(n, _)| crate::layout::parse_segment_name(n))
        .collect();
    bases.sort_unstable();
    if entries
        .iter()
        .any(|(n, k)| n == QUARANTINE_DIR && *k == Kind::Dir)
    {
        let qdir = dir.join(QUARANTINE_DIR);
        match list_dir(&qdir) {
            Ok(q) => {
                info.quarantined = q
                    .into_iter()
                    .filter(|(_, k)| *k == Kind::File)
                    .map(|(n, _)| qdir.join(n))
                    .collect()
            }
            Err(e) => problems.push(Problem::file(&qdir, format!("cannot list: {e}"))),
        }
    }
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(crate::layout::segment_file_name(base));
        let next = bases.get(i + 1).copied();
        let Some(seg) = inspect_bucket_segment(&path, base, priority, next) else {
            continue;
        };
        problems.extend(seg.problems.iter().cloned());
        info.segments.push(seg);
    }
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
    info
}

/// Inspects one segment of a bucket listing; `None` if it vanished.
pub(super) fn inspect_bucket_segment(
    path: &Path,
    base: u64,
    priority: u8,
    next_base: Option<u64>,
) -> Option<SegmentInfo> {
    let unreadable = |reason: String| SegmentInfo {
        path: path.to_path_buf(),
        name_base_offset: Some(base),
        file_bytes: 0,
        header: None,
        state: None,
        sealed: next_base.is_some(),
        index: IndexStatus::Missing,
        record_count: 0,
        data_end: 0,
        end: ScanEnd::NotScanned,
        first_timestamp_us: None,
        last_timestamp_us: None,
        records: Vec::new(),
        blob_refs: Vec::new(),
        problems: vec![Problem::file(path, reason)],
    };
    let bytes = match read_segment_bytes(path, next_base.is_none()) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => return None,
        Ok(Bounded::TooLarge(len)) => {
            let mut s = unreadable(String::new());
            s.file_bytes = len;
            s.problems = vec![too_large(path, len, SEGMENT_BYTES_LIMIT)];
            return Some(s);
        }
        Err(e) => return Some(unreadable(format!("cannot read: {e}"))),
    };
    let role = match next_base {
        Some(n) => Role::Sealed {
            expected_records: n.checked_sub(base),
        },
        None => {
            // The last segment is sealed if it has an intact index: it was
            // rolled after the directory was listed (or the process stopped
            // between writing the index and creating the next segment).
            let h = SegmentHeader::decode(&bytes).ok();
            let sealed_count = h.and_then(|h| {
                load_index(&index_path_of(path, base))
                    .ok()
                    .flatten()
                    .and_then(|b| index_fmt::decode(&b).ok())
                    .filter(|ih| ih.segment_id == h.segment_id && ih.base_offset == base)
                    .map(|ih| ih.count)
            });
            match sealed_count {
                Some(n) => Role::Sealed {
                    expected_records: Some(n),
                },
                None => Role::Active,
            }
        }
    };
    Some(analyse_segment(
        path,
        Some(base),
        Some(priority),
        &bytes,
        role,
        false,
    ))
}

/// Checks a segment held whole in `bytes` and summarises it.
pub(super) fn analyse_segment(
    path: &Path,
    name_base: Option<u64>,
    priority: Option<u8>,
    bytes: &[u8],
    role: Role,
    keep_records: bool,
) -> SegmentInfo {
    let mut info = SegmentInfo {
        path: path.to_path_buf(),
        name_base_offset: name_base,
        file_bytes: bytes.len() as u64,
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
        problems: Vec::new(),
    };
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            let reason = match e {
                HeaderDecodeError::Truncated => format!(
                    "segment of {} bytes is shorter than its {SEGMENT_HEADER_BYTES}-byte header",
                    bytes.len()
                ),
                HeaderDecodeError::BadMagic => "not a segment file (bad magic)".to_string(),
                HeaderDecodeError::Version(v) => {
                    format!("segment format version {v} is unknown to this build")
                }
                HeaderDecodeError::BadCrc => "segment header checksum mismatch".to_string(),
            };
            info.problems.push(Problem::at(path, 0, reason));
            return info;
        }
    };
    info.header = Some(header);
    if let Some(b) = name_base {
        if header.base_offset != b {
            info.problems.push(Problem::at(
                path,
                24,
                format!(
                    "header says base offset {} but the file name says {b}",
                    header.base_offset
                ),
            ));
        }
    }
    if let Some(p) = priority {
        if header.bucket != u32::from(p) {
            info.problems.push(Problem::at(
                path,
                12,
                format!(
                    "segment belongs to priority {} but lies in bucket p{p}",
                    header.bucket
                ),
            ));
        }
    }
    let state = bytes
        .get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
        .and_then(|b| SegmentState::decode(header.segment_id, b));
    info.state = state;
    let data = bytes.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
    let epoch_max = match role {
        Role::Active => state.map(|s| s.epoch),
        Role::Sealed { .. } => None,
    };
    let scan = scan::scan(
        data,
        SEGMENT_HEADER_BYTES,
        header.segment_id,
        header.base_offset,
        epoch_max,
    );
    info.record_count = scan.positions.len() as u64;
    info.data_end = scan.end;
    info.end = judge_scan(path, &scan, role, state, &mut info.problems);
    let decode_at = |i: usize| -> Option<record::DecodedRecord> {
        let pos = *scan.positions.get(i)? as usize;
        let rec = bytes.get(pos..scan.end as usize)?;
        record::decode(
            rec,
            header.segment_id,
            u32::MAX,
            Some(header.base_offset + i as u64),
        )
        .ok()
    };
    info.first_timestamp_us = decode_at(0).map(|d| d.timestamp_us);
    info.last_timestamp_us = scan
        .positions
        .len()
        .checked_sub(1)
        .and_then(decode_at)
        .map(|d| d.timestamp_us);
    if keep_records {
        info.records = scan
            .positions
            .iter()
            .enumerate()
            .filter_map(|(i, &pos)| {
                decode_at(i).map(|d| RecordInfo {
                    position: u64::from(pos),
                    offset: d.offset,
                    timestamp_us: d.timestamp_us,
                    epoch: d.epoch,
                    flags: d.flags,
                    headers_bytes: d.hdr_len,
                    body_bytes: d.len - RECORD_HEADER_BYTES as u32 - u32::from(d.hdr_len),
                    stored_bytes: d.stored_len(),
                })
            })
            .collect();
    }
    for (i, &pos) in scan.positions.iter().enumerate() {
        let Some(d) = decode_at(i) else { continue };
        if d.flags & record::FLAG_CLAIM_CHECK == 0 {
            continue;
        }
        let start = pos as usize;
        let body = bytes.get(start + d.body_range().start..start + d.body_range().end);
        if let Some((hash, length)) = body.and_then(record::decode_claim_check) {
            info.blob_refs.push(BlobRef {
                hash,
                length,
                offset: d.offset,
                position: u64::from(pos),
            });
        }
    }
    info.index = check_index(
        &index_path_of(path, header.base_offset),
        &header,
        &scan,
        bytes.len() as u64,
    );
    if info.sealed {
        let why = match &info.index {
            IndexStatus::Valid => None,
            IndexStatus::Missing => Some("index of a sealed segment is missing".to_string()),
            IndexStatus::Invalid(why) => Some(format!("index: {why}")),
        };
        if let Some(why) = why {
            let idx = index_path_of(path, header.base_offset);
            info.problems.push(Problem::file(
                &idx,
                format!("{why}; it is rebuilt when the store is next opened"),
            ));
        }
    }
    info
}

/// Decides what the end of a scan means for a segment in `role`.
pub(super) fn judge_scan(
    path: &Path,
    scan: &Scan,
    role: Role,
    state: Option<SegmentState>,
    problems: &mut Vec<Problem>,
) -> ScanEnd {
    let why = match scan.stop {
        ScanStop::End => None,
        ScanStop::Bad(e) => Some(e.to_string()),
        ScanStop::StaleEpoch(e) => Some(format!("record of an older epoch {e}")),
        ScanStop::FutureEpoch(e) => Some(format!("record of a future epoch {e}")),
    };
    match role {
        Role::Sealed { expected_records } => {
            let found = scan.positions.len() as u64;
            if let Some(why) = why {
                problems.push(Problem::at(
                    path,
                    scan.end,
                    format!("{why} in a sealed segment (after {found} valid records)"),
                ));
                return ScanEnd::Damaged;
            }
            match expected_records {
                Some(n) if n != found => {
                    problems.push(Problem::at(
                        path,
                        scan.end,
                        format!("sealed segment holds {found} records, {n} expected"),
                    ));
                    ScanEnd::Damaged
                }
                _ => ScanEnd::Clean,
            }
        }
        Role::Active => {
            let Some(state) = state else {
                problems.push(Problem::at(
                    path,
                    STATE_OFFSET as u64,
                    "segment state block fails its checksum: the durable watermark is unknown",
                ));
                return match why {
                    None => ScanEnd::Clean,
                    Some(reason) => ScanEnd::Tail {
                        position: scan.end,
                        reason,
                    },
                };
            };
            let watermark = state.synced_end;
            if scan.end < watermark {
                let why = why.unwrap_or_else(|| "zeros where synced records were".to_string());
                problems.push(Problem::at(
                    path,
                    scan.end,
                    format!("{why} (synced up to byte {watermark})"),
                ));
                return ScanEnd::Damaged;
            }
            match why {
                None => ScanEnd::Clean,
                Some(reason) => ScanEnd::Tail {
                    position: scan.end,
                    reason,
                },
            }
        }
    }
}

/// Checks the index file at `idx_path` against the scanned segment.
pub(super) fn check_index(
    idx_path: &Path,
    header: &SegmentHeader,
    scan: &Scan,
    len: u64,
) -> IndexStatus {
    let b = match load_index(idx_path) {
        Ok(Some(b)) => b,
        Ok(None) => return IndexStatus::Missing,
        Err(e) => return IndexStatus::Invalid(e),
    };
    let checked = crate::log::index_file::check(&b, header, None, len)
        .and_then(|ih| crate::log::index_file::check_against_scan(&b, &ih, scan));
    match checked {
        Ok(()) => IndexStatus::Valid,
        Err(e) => IndexStatus::Invalid(e),
    }
}

/// Reads an index file; `Ok(None)` if missing, `Err(reason)` if unreadable or
/// too large.
pub(super) fn load_index(path: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    match read_bounded(path, INDEX_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => Ok(Some(b)),
        Ok(Bounded::Missing) => Ok(None),
        Ok(Bounded::TooLarge(len)) => Err(format!(
            "index of {len} bytes exceeds the limit of {INDEX_FILE_BYTES_MAX}"
        )),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

pub(super) fn index_path_of(segment_path: &Path, base: u64) -> PathBuf {
    segment_path.with_file_name(format!("{base:020}.idx"))
}

/// Reads a segment file. For an active segment, a state block that fails its
/// checksum may have been caught mid-update by the writer: read again.
pub(super) fn read_segment_bytes(path: &Path, maybe_active: bool) -> io::Result<Bounded> {
    let mut read = read_bounded(path, SEGMENT_BYTES_LIMIT)?;
    if !maybe_active {
        return Ok(read);
    }
    for _ in 0..STATE_REREADS {
        let Bounded::Bytes(b) = &read else {
            return Ok(read);
        };
        let state_ok = SegmentHeader::decode(b).is_ok_and(|h| {
            b.get(STATE_OFFSET..STATE_OFFSET + STATE_BYTES)
                .and_then(|s| SegmentState::decode(h.segment_id, s))
                .is_some()
        });
        if state_ok || SegmentHeader::decode(b).is_err() {
            return Ok(read);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        read = read_bounded(path, SEGMENT_BYTES_LIMIT)?;
    }
    Ok(read)
}
