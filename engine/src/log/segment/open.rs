//! Creating a segment file, and opening one: the active segment (for
//! recovery) and sealed ones (with their index, rebuilt if unusable).

use super::*;

impl Segment {
    /// Creates a new, empty segment file at `dir/<base>.seg`, durable
    /// (file and directory synced) before it is returned. Its created time
    /// is the clock's, but never below `floor_us` (the bucket's newest
    /// timestamp): an open that finds it empty takes its timestamp floor
    /// from there.
    pub(crate) fn create(
        ctx: &Ctx,
        dir: &Path,
        priority: u8,
        base: u64,
        epoch: u32,
        floor_us: u64,
    ) -> Result<ActiveWriter> {
        let vfs = &*ctx.vfs;
        let file_bytes = ctx.opts.segment_bytes_max;
        let name = layout::segment_file_name(base);
        let path = dir.join(&name);
        let tmp = dir.join(layout::tmp_file_name(&name));
        // Opened before anything changes: if no descriptor is left, this
        // roll fails and nothing else.
        let d = ctx.open_dir(dir)?;
        let header = SegmentHeader {
            bucket: priority as u32,
            segment_id: random_u64(),
            base_offset: base,
            created_us: now_us().max(floor_us),
            file_bytes,
        };
        let state = SegmentState {
            epoch,
            synced_end: SEGMENT_HEADER_BYTES as u64,
            clean: false,
        };
        let file = io::create_preallocated(
            vfs,
            &tmp,
            file_bytes,
            ctx.opts.chunk_bytes().min(file_bytes),
            &header.encode(state),
            "create segment",
        )?;
        vfs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        d.sync()?;
        drop(d);
        let mem = file
            .map_mut(file_bytes)
            .map_err(|e| Error::io("map", &path, e))?;
        let (map, writer) = SharedMap::writable(mem, SEGMENT_HEADER_BYTES);
        let capacity = ((file_bytes as usize) - SEGMENT_HEADER_BYTES) / RECORD_HEADER_BYTES;
        let seg = Arc::new(Segment {
            path,
            priority,
            base,
            id: header.segment_id,
            map,
            index: SegIndex::Active {
                positions: AppendIndex::new(capacity),
                tail: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
                synced_end: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
                epoch,
                blobs: AtomicBool::new(false),
                attrs: AtomicBool::new(false),
            },
            verified: AtomicU64::new(0),
        });
        Ok(ActiveWriter {
            seg,
            map: writer,
            file,
        })
    }

    /// Opens the active (last) segment of a bucket for appending and recovers
    /// it: see [`crate::log::recovery`].
    pub(crate) fn open_active_raw(
        ctx: &Ctx,
        path: &Path,
        priority: u8,
        base: u64,
    ) -> Result<RawActive> {
        let vfs = &*ctx.vfs;
        let file = vfs
            .open(path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open segment", path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", path, e))?;
        if len < SEGMENT_HEADER_BYTES as u64 || len > crate::limits::SEGMENT_BYTES_LIMIT {
            // Not mapped: the header check names what is wrong.
            return Err(check_header(path, &[], len, base, priority)
                .err()
                .unwrap_or_else(|| {
                    Error::corrupt(path, 0, format!("segment length {len} is impossible"))
                }));
        }
        let mem = file.map_mut(len).map_err(|e| Error::io("map", path, e))?;
        let (map, writer) = SharedMap::writable(mem, SEGMENT_HEADER_BYTES);
        let mut hb = [0u8; SEGMENT_HEADER_BYTES];
        map.read_header(0, &mut hb);
        let header = check_header(path, &hb, len, base, priority)?;
        let state = SegmentState::decode(
            header.segment_id,
            &hb[STATE_OFFSET..STATE_OFFSET + STATE_BYTES],
        );
        Ok(RawActive {
            path: path.to_path_buf(),
            priority,
            header,
            state,
            map,
            writer,
            file,
        })
    }

    /// The static header of the sealed segment at `dir/<base>.seg` (its
    /// first 64 bytes, checked: its CRC, base offset and bucket) and the
    /// file's length, read without mapping or reading anything else of it.
    pub(crate) fn read_static_header(
        ctx: &Ctx,
        dir: &Path,
        priority: u8,
        base: u64,
    ) -> Result<(SegmentHeader, u64)> {
        use crate::format::segment::STATIC_BYTES;
        let path = dir.join(layout::segment_file_name(base));
        let file = ctx
            .vfs
            .open(&path, OpenMode::ReadOnly)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        if len >= SEGMENT_HEADER_BYTES as u64 {
            io::read_exact_at(&*file, &mut head[..STATIC_BYTES], 0)
                .map_err(|e| Error::io("read", &path, e))?;
        }
        let h = SegmentHeader::decode(&head)
            .map_err(|e| Error::corrupt(&path, 0, format!("segment header: {e}")))?;
        if h.base_offset != base || h.bucket != priority as u32 {
            return Err(Error::corrupt(
                &path,
                0,
                "segment header names another base offset or bucket",
            ));
        }
        Ok((h, len))
    }

    /// The ids of the sealed segment at `base` holding `count` records,
    /// read from its index alone when that is usable for the segment whose
    /// static header is `header` (of `len` bytes); `None` if it is not
    /// (missing or damaged: the caller opens the segment, which rebuilds
    /// it). Owned: the index is not kept mapped.
    pub(crate) fn ids_from_index(
        ctx: &Ctx,
        dir: &Path,
        header: &SegmentHeader,
        count: u64,
        len: u64,
    ) -> Result<Option<Vec<OwnedId>>> {
        let idx_path = dir.join(layout::index_file_name(header.base_offset));
        let Some((map, ih)) = load_index(ctx, &idx_path, header, count, len)? else {
            return Ok(None);
        };
        let b = map.get(0..map.len()).unwrap_or(&[]);
        Ok(Some(
            index::ids(b, &ih)
                .map(|e| (e.offset, e.timestamp_us, e.id.into()))
                .collect(),
        ))
    }

    /// Opens a sealed segment and its index, rebuilding the index if it is
    /// missing or damaged. `count` is the number of records it must hold
    /// (the next segment's base minus this one's).
    pub(crate) fn open_sealed(
        ctx: &Ctx,
        dir: &Path,
        priority: u8,
        base: u64,
        count: u64,
    ) -> Result<(Arc<Segment>, bool)> {
        let vfs = &*ctx.vfs;
        let path = dir.join(layout::segment_file_name(base));
        let file = vfs
            .open(&path, OpenMode::ReadOnly)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if !(SEGMENT_HEADER_BYTES as u64..=crate::limits::SEGMENT_BYTES_LIMIT).contains(&len) {
            return Err(check_header(&path, &[], len, base, priority)
                .err()
                .unwrap_or_else(|| {
                    Error::corrupt(&path, 0, format!("segment length {len} is impossible"))
                }));
        }
        let map = SharedMap::read_only(file.map_read(len).map_err(|e| Error::io("map", &path, e))?);
        let all = map.get(0..map.len()).unwrap_or(&[]);
        let header = check_header(&path, all, len, base, priority)?;
        let idx_path = dir.join(layout::index_file_name(base));
        let mut rebuilt = false;
        let (idx, ih) = match load_index(ctx, &idx_path, &header, count, len)? {
            Some(m) => m,
            None => {
                let s = scan::scan_file(all, &header, None);
                scan::judge_sealed(&s, Some(count))
                    .map_err(|d| Error::corrupt(&path, d.position, d.reason))?;
                let bytes = index_file::build(&header, all, &s.positions, s.end);
                io::write_file_atomic(vfs, dir, &layout::index_file_name(base), &bytes)?;
                rebuilt = true;
                load_index(ctx, &idx_path, &header, count, len)?.ok_or_else(|| {
                    Error::corrupt(&idx_path, 0, "index unreadable right after writing it")
                })?
            }
        };
        let seg = Segment {
            path,
            priority,
            base,
            id: header.segment_id,
            map,
            index: SegIndex::Sealed {
                count: ih.count,
                data_end: ih.data_end,
                idx,
                ih,
            },
            verified: AtomicU64::new(0),
        };
        Ok((Arc::new(seg), rebuilt))
    }
}
