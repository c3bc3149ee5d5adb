use super::*;

/// Makes the changes of `plan`, in order, each made durable before the
/// next. The caller holds the store's lock ([`lock`]). Returns the actions
/// done.
pub fn apply(plan: &Plan) -> Result<Vec<Action>> {
    let mut done = Vec::new();
    for a in &plan.actions {
        match a {
            Action::CutTail {
                segment,
                position,
                quarantine,
                epoch,
                ..
            } => cut_tail(segment, *position, quarantine.as_deref(), *epoch)?,
            Action::RebuildIndex { segment, .. } => rebuild_index(segment)?,
            Action::RemoveOrphanBlob(p) | Action::RemoveTempFile(p) | Action::RemoveIndex(p) => {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", p, e)),
                }
                if let Some(dir) = p.parent() {
                    sync_dir(dir)?;
                }
            }
        }
        done.push(a.clone());
    }
    Ok(done)
}

pub(super) fn read_segment_file(path: &Path) -> Result<Vec<u8>> {
    match read_bounded(path, SEGMENT_BYTES_LIMIT) {
        Ok(Bounded::Bytes(b)) => Ok(b),
        Ok(Bounded::Missing) => Err(Error::io(
            "read",
            path,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        Ok(Bounded::TooLarge(n)) => Err(Error::corrupt(
            path,
            0,
            format!("segment of {n} bytes exceeds the limit of {SEGMENT_BYTES_LIMIT}"),
        )),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Quarantines the first non-zero run at or after `position`, zeroes every
/// non-zero byte from `position` on, syncs, then writes the header state.
pub(super) fn cut_tail(
    path: &Path,
    position: u64,
    quarantine: Option<&Path>,
    epoch: u32,
) -> Result<()> {
    let bytes = read_segment_file(path)?;
    let header = crate::format::segment::SegmentHeader::decode(&bytes)
        .map_err(|e| Error::corrupt(path, 0, format!("segment header: {e:?}")))?;
    let position = position.max(SEGMENT_HEADER_BYTES as u64);
    let (first_run, _, end) = nonzero_runs(&bytes, position);
    if let (Some((s, e)), Some(q)) = (first_run, quarantine) {
        let (s, e) = (s as usize, e as usize);
        let qdir = q.parent().unwrap_or(Path::new("."));
        if !qdir.exists() {
            fs::create_dir(qdir).map_err(|e| Error::io("create directory", qdir, e))?;
            if let Some(parent) = qdir.parent() {
                sync_dir(parent)?;
            }
        }
        write_atomic(q, &bytes[s..e])?;
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    // Zero every non-zero byte in position..end, in chunks.
    let zeros = vec![0u8; 1 << 16];
    let mut at = position as usize;
    let end = end as usize;
    while at < end {
        let n = (end - at).min(zeros.len());
        if bytes[at..at + n].iter().any(|&b| b != 0) {
            file.write_all_at(&zeros[..n], at as u64)
                .map_err(|e| Error::io("write", path, e))?;
        }
        at += n;
    }
    file.sync_all().map_err(|e| Error::io("sync", path, e))?;
    let state = SegmentState {
        epoch,
        synced_end: position,
        clean: false,
    };
    file.write_all_at(&state.encode(header.segment_id), STATE_OFFSET as u64)
        .map_err(|e| Error::io("write", path, e))?;
    file.sync_all().map_err(|e| Error::io("sync", path, e))?;
    Ok(())
}

/// Writes the index of the sealed segment at `path` from a scan of it.
pub(super) fn rebuild_index(path: &Path) -> Result<()> {
    let (info, _) = inspect::read_segment_raw(path)?;
    let header = info
        .header
        .ok_or_else(|| Error::corrupt(path, 0, "segment header unusable"))?;
    if matches!(info.end, ScanEnd::Damaged | ScanEnd::NotScanned) {
        return Err(Error::corrupt(
            path,
            info.data_end,
            "sealed segment does not scan cleanly; index not rebuilt",
        ));
    }
    let positions: Vec<u32> = info
        .records
        .iter()
        .map(|r| u32::try_from(r.position).unwrap_or(u32::MAX))
        .collect();
    let mut refs: Vec<[u8; 32]> = Vec::new();
    for r in &info.blob_refs {
        if !refs.contains(&r.hash) {
            refs.push(r.hash);
        }
    }
    let ih = IndexHeader {
        bucket: header.bucket,
        segment_id: header.segment_id,
        base_offset: header.base_offset,
        count: positions.len() as u64,
        data_end: info.data_end,
        blob_refs: u32::try_from(refs.len()).unwrap_or(u32::MAX),
    };
    let bytes = index_fmt::encode(&ih, &positions, &refs);
    let idx = path.with_file_name(format!("{:020}.idx", header.base_offset));
    write_atomic(&idx, &bytes)
}

/// Writes `bytes` to `path` crash-safely: `.<name>.tmp`, sync, rename, sync
/// of the directory.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}
