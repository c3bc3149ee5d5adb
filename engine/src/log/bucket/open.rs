//! Opening a bucket: its directory listed, an interrupted retention
//! finished, the chain of segment files checked, the active segment
//! recovered.

use super::*;

impl Bucket {
    /// Opens (creating if empty) and recovers the bucket in `dir`.
    pub(crate) fn open(
        ctx: &Arc<Ctx>,
        stream: &str,
        priority: u8,
        dir: &Path,
        report: &mut RecoveryReport,
    ) -> Result<Bucket> {
        let vfs = &*ctx.vfs;
        let entries = vfs.read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut bases = Vec::new();
        let mut indexes = Vec::new();
        let mut kept = Vec::new();
        let mut removed_tmp = false;
        for e in &entries {
            if e.kind != EntryKind::File {
                // A segment's name on a symlink, FIFO or directory: never
                // followed, and not silently skipped either (the log would
                // lose its data from view).
                if layout::parse_segment_name(&e.name).is_some() {
                    return Err(Error::corrupt(
                        dir.join(&e.name),
                        0,
                        "segment is not a regular file",
                    ));
                }
                continue;
            }
            if let Some(b) = layout::parse_segment_name(&e.name) {
                // Offsets this large are never reached (2^63 messages); a
                // name like that would only make offset arithmetic overflow.
                if b > u64::MAX >> 1 {
                    return Err(Error::corrupt(
                        dir.join(&e.name),
                        0,
                        "impossible base offset in the file name",
                    ));
                }
                bases.push(b);
            } else if let Some(b) = layout::parse_index_name(&e.name) {
                indexes.push(b);
            } else if let Some(b) = layout::parse_kept_ids_name(&e.name) {
                // Ids of a deleted segment (§7.1): listed, never read here.
                kept.push(b);
            } else if layout::is_tmp_file(&e.name) {
                // Left by a crash while writing a segment or an index.
                let p = dir.join(&e.name);
                vfs.remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
                report.removed_temp_files.push(p);
                removed_tmp = true;
            }
        }
        if removed_tmp {
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("sync directory", dir, e))?;
        }
        bases.sort_unstable();
        // Finish a retention pass that a crash interrupted: the low-water
        // mark was made durable before any segment below it was removed.
        let low_water = read_low_water(ctx, dir)?;
        // A segment whose index has ids keeps them as the pass would have
        // (its index renamed `<base>.ids`, durable before the segment
        // goes); whether they are within the window is judged when they
        // are next walked. Only this rare path reads an index here.
        if let Some(low) = low_water {
            let mut doomed = Vec::new();
            while bases.len() > 1 && bases[1] <= low {
                doomed.push(bases.remove(0));
            }
            let mut renamed = false;
            for &base in &doomed {
                if indexes.contains(&base) && kept::index_says_ids(ctx, dir, base) == Some(true) {
                    renamed |= keep_index(ctx, dir, base)?;
                    kept.push(base);
                }
            }
            if renamed {
                vfs.sync_dir(dir)
                    .map_err(|e| Error::io("sync directory", dir, e))?;
            }
            for &base in &doomed {
                remove_segment_files(ctx, dir, base)?;
            }
            if !doomed.is_empty() {
                vfs.sync_dir(dir)
                    .map_err(|e| Error::io("sync directory", dir, e))?;
            }
        }
        kept.sort_unstable();
        kept.dedup();
        let head = read_head(ctx, dir)?;
        scan::judge_segment_chain(&bases, low_water, head).map_err(|(base, why)| {
            Error::corrupt(dir.join(layout::segment_file_name(base)), 0, why)
        })?;
        let mut slots: Vec<Arc<Slot>> = Vec::with_capacity(bases.len() + 1);
        for w in bases.windows(2) {
            slots.push(Arc::new(Slot::new(
                w[0],
                Some(w[1] - w[0]),
                OnceLock::new(),
            )));
        }
        // A sealed segment without an index: rebuild it now (rare: only after
        // the index was lost), so reads never scan.
        for s in &slots {
            if !indexes.contains(&s.base) {
                let (seg, rebuilt) =
                    Segment::open_sealed(ctx, dir, priority, s.base, s.count.unwrap_or(0))?;
                if rebuilt {
                    report
                        .rebuilt_indexes
                        .push(dir.join(layout::index_file_name(s.base)));
                }
                let _ = s.seg.set(seg);
            }
        }
        let (active, epoch_durable) = match bases.last() {
            None => (Segment::create(ctx, dir, priority, 0, 1, 0)?, true),
            Some(&base) => {
                if indexes.contains(&base) {
                    // An index of the active segment is left from a crash
                    // while rolling; it will be written again on the next roll.
                    let p = dir.join(layout::index_file_name(base));
                    vfs.remove_file(&p)
                        .map_err(|e| Error::io("remove", &p, e))?;
                    vfs.sync_dir(dir)
                        .map_err(|e| Error::io("sync directory", dir, e))?;
                }
                recovery::recover_active(ctx, stream, priority, dir, base, report)?
            }
        };
        if head != Some(active.seg.base) {
            // A new bucket, a bucket older than the mark, or a mark that
            // lags after a crash between a roll and its write.
            write_head(ctx, dir, active.seg.base)?;
        }
        let count = active.seg.count();
        let write_pos = active.seg.data_end();
        // The newest timestamp of the bucket: its last record's, which is in
        // the active segment unless that is empty (after a crash that took
        // its records), and then not above the created time a roll gave it.
        let last_record_ts = match count {
            0 => 0,
            n => active
                .seg
                .read(active.seg.base + n - 1)?
                .map(|r| r.timestamp_us())
                .unwrap_or(0),
        };
        let last_ts = last_record_ts.max(active.seg.header().created_us);
        let chunk = ctx.opts.chunk_bytes();
        let file_len = active.seg.file_bytes();
        let reserved_end = (write_pos.div_ceil(chunk) * chunk).clamp(write_pos, file_len);
        active
            .file
            .allocate(reserved_end)
            .map_err(|e| Error::io("allocate", &active.seg.path, e))?;
        let next = active.seg.base + count;
        slots.push(Arc::new(Slot::new(
            active.seg.base,
            None,
            OnceLock::from(active.seg.clone()),
        )));
        let low = slots[0].base;
        Ok(Bucket {
            ctx: ctx.clone(),
            priority,
            dir: dir.to_path_buf(),
            segments: RwLock::new(slots),
            writer: Mutex::new(Writer {
                active,
                count,
                write_pos,
                reserved_end,
                last_ts,
                epoch_durable,
            }),
            commit: GroupCommit::new(next),
            written: AtomicU64::new(next),
            rolled: std::sync::atomic::AtomicBool::new(false),
            low: AtomicU64::new(low),
            stream: stream.into(),
            gone: std::sync::atomic::AtomicBool::new(false),
            kept: Mutex::new(kept.into_iter().map(kept::Kept::listed).collect()),
        })
    }
}
