use super::*;

/// Widest range `floor..next` (offsets) of one bucket that the inspector
/// rebuilds slot by slot (about 50 bytes each); a checkpoint or journal
/// asking for more is reported instead of allocated.
pub const CONSUMER_SPAN_MAX: u64 = 1 << 20;

/// How many times the files of a consumer are read again when its
/// checkpoint changed while its journal was read (a rotation on a live store).
pub(super) const CONSUMER_REREADS: usize = 3;

/// A consumer's files as read, before they are folded against the buckets.
pub(super) struct RawConsumer {
    name: String,
    dir: PathBuf,
    config: Option<ConsumerConfig>,
    checkpoint: Option<CheckpointBody>,
    journal: Option<RawJournal>,
    stale_journals: Vec<PathBuf>,
    problems: Vec<Problem>,
}

/// The valid records of a journal, in order; record `i` is at byte
/// `JOURNAL_HEADER_BYTES + i * JOURNAL_RECORD_BYTES`.
pub(super) struct RawJournal {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Reads every consumer directory under `cdir` (sorted by name).
pub(super) fn read_consumers(cdir: &Path, problems: &mut Vec<Problem>) -> Vec<RawConsumer> {
    let entries = match list_dir(cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            problems.push(Problem::file(cdir, format!("cannot list: {e}")));
            return Vec::new();
        }
    };
    entries
        .into_iter()
        // Interrupted creations (`.tmp-*`) and foreign names are not consumers.
        .filter(|(n, k)| *k == Kind::Dir && name::validate(n).is_ok())
        .map(|(n, _)| read_consumer(&n, &cdir.join(&n)))
        .collect()
}

pub(super) fn read_consumer(name: &str, dir: &Path) -> RawConsumer {
    let mut c = RawConsumer {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config: None,
        checkpoint: None,
        journal: None,
        stale_journals: Vec::new(),
        problems: Vec::new(),
    };
    c.config = read_consumer_config(&dir.join(CONFIG_FILE), &mut c.problems);
    let ckpt_path = dir.join(CHECKPOINT_FILE);
    for attempt in 0..=CONSUMER_REREADS {
        let mut problems = Vec::new();
        let Some((bytes, body)) = read_checkpoint(&ckpt_path, &mut problems) else {
            c.problems.extend(problems);
            break;
        };
        let journal = read_journal(
            &dir.join(journal_name(body.generation)),
            body.generation,
            &mut problems,
        );
        // On a live store the journal may have been rotated away meanwhile:
        // the checkpoint then changed, and both are read again.
        let again = match read_bounded(&ckpt_path, CHECKPOINT_BYTES_MAX as u64 + 64) {
            Ok(Bounded::Bytes(b)) => b == bytes,
            _ => false,
        };
        if again || attempt == CONSUMER_REREADS {
            c.problems.extend(problems);
            c.checkpoint = Some(body);
            c.journal = journal;
            break;
        }
    }
    let generation = c.checkpoint.as_ref().map(|b| b.generation);
    match list_dir(dir) {
        Ok(files) => {
            for (n, k) in files {
                if k != Kind::File {
                    continue;
                }
                if let Some(g) = parse_journal_name(&n) {
                    if Some(g) != generation {
                        c.stale_journals.push(dir.join(n));
                    }
                }
            }
        }
        Err(e) => c
            .problems
            .push(Problem::file(dir, format!("cannot list: {e}"))),
    }
    c
}

pub(super) fn journal_name(g: u64) -> String {
    crate::layout::journal_file_name(g)
}

pub(super) fn read_consumer_config(
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<ConsumerConfig> {
    let b = match read_bounded(path, META_FILE_BYTES_MAX) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => {
            problems.push(Problem::file(path, "consumer config missing"));
            return None;
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(path, len, META_FILE_BYTES_MAX));
            return None;
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let (version, body) = match meta::decode(CONFIG_MAGIC, &b) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::at(path, 0, format!("consumer config: {e:?}")));
            return None;
        }
    };
    if version != CONFIG_VERSION {
        problems.push(Problem::at(
            path,
            8,
            format!("consumer config format version {version} is unknown to this build"),
        ));
        return None;
    }
    let config: ConsumerConfig = match postcard::from_bytes(body) {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem::at(path, 24, format!("consumer config: {e}")));
            return None;
        }
    };
    if let Err(e) = config.validate() {
        problems.push(Problem::at(path, 24, format!("consumer config: {e}")));
        return None;
    }
    Some(config)
}

/// Reads and decodes a checkpoint: its bytes (to notice a rewrite) and body.
pub(super) fn read_checkpoint(
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<(Vec<u8>, CheckpointBody)> {
    let limit = CHECKPOINT_BYTES_MAX as u64 + 64;
    let b = match read_bounded(path, limit) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => {
            problems.push(Problem::file(path, "consumer checkpoint missing"));
            return None;
        }
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(path, len, limit));
            return None;
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let (version, body) = match meta::decode_limited(CHECKPOINT_MAGIC, &b, CHECKPOINT_BYTES_MAX) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::at(path, 0, format!("consumer checkpoint: {e:?}")));
            return None;
        }
    };
    if version != CHECKPOINT_VERSION {
        problems.push(Problem::at(
            path,
            8,
            format!("consumer checkpoint format version {version} is unknown to this build"),
        ));
        return None;
    }
    match postcard::from_bytes::<CheckpointBody>(body) {
        Ok(c) => Some((b, c)),
        Err(e) => {
            problems.push(Problem::at(path, 24, format!("consumer checkpoint: {e}")));
            None
        }
    }
}

/// Reads the valid records of the journal at `path` with a buffered plain
/// read, as the engine's replay does: from byte 64 to the end marker, the
/// first invalid record (a torn tail, not a problem) or the end of the file.
/// `None` if there is no such file or its header is unreadable (a journal
/// that was never synced holds nothing).
pub(super) fn read_journal(
    path: &Path,
    generation: u64,
    problems: &mut Vec<Problem>,
) -> Option<RawJournal> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    if !meta.is_file() {
        problems.push(Problem::file(path, "cannot read: not a regular file"));
        return None;
    }
    if meta.len() > JOURNAL_BYTES_LIMIT {
        problems.push(too_large(path, meta.len(), JOURNAL_BYTES_LIMIT));
        return None;
    }
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return None;
        }
    };
    let mut r = io::BufReader::with_capacity(64 << 10, file.take(JOURNAL_BYTES_LIMIT));
    let mut header = [0u8; JOURNAL_HEADER_BYTES];
    if let Err(e) = r.read_exact(&mut header) {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
        }
        return None;
    }
    let h = JournalHeader::decode(&header)?;
    if h.generation != generation {
        problems.push(Problem::at(
            path,
            24,
            format!(
                "journal header says generation {}, its name says {generation}; not replayed",
                h.generation
            ),
        ));
        return None;
    }
    let mut entries = Vec::new();
    let mut rec = [0u8; JOURNAL_RECORD_BYTES];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                problems.push(Problem::file(path, format!("cannot read: {e}")));
                break;
            }
        }
        match journal_fmt::decode(h.journal_id, &rec) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) | Err(()) => break,
        }
    }
    Some(RawJournal {
        path: path.to_path_buf(),
        entries,
    })
}

/// Byte length of a postcard varint holding `v`.
pub(super) fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// Byte position in the checkpoint file of bucket `i`'s floor field.
pub(super) fn checkpoint_floor_position(body: &CheckpointBody, i: usize) -> u64 {
    let before: u64 = body
        .buckets
        .iter()
        .take(i)
        .map(|b| {
            varint_len(b.floor)
                + varint_len(b.next)
                + varint_len(b.acked.len() as u64)
                + b.acked.iter().map(|&o| varint_len(o)).sum::<u64>()
                + varint_len(b.attempts.len() as u64)
                + b.attempts
                    .iter()
                    .map(|&(o, n)| varint_len(o) + varint_len(u64::from(n)))
                    .sum::<u64>()
        })
        .sum();
    24 + varint_len(body.generation) + varint_len(body.buckets.len() as u64) + before
}

/// Folds a consumer's checkpoint and journal with the engine's replay and
/// measures it against the buckets found.
pub(super) fn fold_consumer(c: RawConsumer, buckets: &[BucketInfo]) -> ConsumerInfo {
    let mut info = ConsumerInfo {
        name: c.name,
        path: c.dir,
        config: c.config,
        generation: c.checkpoint.as_ref().map(|b| b.generation),
        journal: None,
        journal_records: 0,
        stale_journals: c.stale_journals,
        buckets: Vec::new(),
        redelivered: 0,
        dead_lettered: 0,
        skipped: 0,
        problems: c.problems,
    };
    let Some(body) = c.checkpoint else {
        return info;
    };
    info.redelivered = body.redelivered;
    info.dead_lettered = body.dead_lettered;
    info.skipped = body.skipped;
    info.journal = c.journal.as_ref().map(|j| j.path.clone());
    let ckpt_path = info.path.join(CHECKPOINT_FILE);
    if body.buckets.len() != buckets.len() {
        info.problems.push(Problem::at(
            &ckpt_path,
            24,
            format!(
                "checkpoint has {} priority levels, the stream has {}",
                body.buckets.len(),
                buckets.len()
            ),
        ));
        return info;
    }
    let ends: Vec<Option<u64>> = buckets
        .iter()
        .map(|b| {
            b.last_offset
                .map(|l| l.saturating_add(1))
                .or(b.first_offset)
        })
        .collect();
    // Where each bucket's floor first went past the end: (file, position).
    let mut beyond: Vec<Option<(PathBuf, u64)>> = vec![None; buckets.len()];
    let too_wide = body
        .buckets
        .iter()
        .position(|b| b.next.saturating_sub(b.floor) > CONSUMER_SPAN_MAX);
    let states: Option<Vec<BucketState>> = match too_wide {
        Some(i) => {
            info.problems.push(Problem::at(
                &ckpt_path,
                checkpoint_floor_position(&body, i),
                format!(
                    "bucket p{i}: {} offsets between ack floor {} and next offset {}, more than \
                     the {CONSUMER_SPAN_MAX} this inspector rebuilds; the journal is not replayed",
                    body.buckets[i].next - body.buckets[i].floor,
                    body.buckets[i].floor,
                    body.buckets[i].next
                ),
            ));
            None
        }
        None => Some(
            body.buckets
                .iter()
                .map(BucketState::from_checkpoint)
                .collect(),
        ),
    };
    let Some(mut states) = states else {
        // Counted from the checkpoint's lists alone.
        for (i, b) in body.buckets.iter().enumerate() {
            let within = |o: u64| o >= b.floor && o < b.next;
            info.buckets.push(bucket_figures(
                i as u8,
                b.floor,
                b.next,
                ends[i],
                b.acked.iter().filter(|&&o| within(o)).count() as u64,
                b.attempts
                    .iter()
                    .filter(|&&(o, n)| n > 0 && within(o))
                    .map(|&(_, n)| n),
            ));
        }
        return info;
    };
    for (i, s) in states.iter().enumerate() {
        if ends[i].is_some_and(|end| s.floor() > end) {
            beyond[i] = Some((ckpt_path.clone(), checkpoint_floor_position(&body, i)));
        }
    }
    if let Some(j) = &c.journal {
        for (k, e) in j.entries.iter().enumerate() {
            let position = (JOURNAL_HEADER_BYTES + k * JOURNAL_RECORD_BYTES) as u64;
            let (bucket, offset) = match *e {
                Entry::Delivered { bucket, offset, .. }
                | Entry::Acked { bucket, offset }
                | Entry::AckedUpTo { bucket, offset }
                | Entry::DeadLettered { bucket, offset } => (bucket as usize, offset),
            };
            // The replay grows a bucket's slots up to the offset named: keep
            // that bounded (hostile or damaged journals).
            if let Some(s) = states.get(bucket) {
                if offset == u64::MAX || offset.saturating_sub(s.floor()) > CONSUMER_SPAN_MAX {
                    info.problems.push(Problem::at(
                        &j.path,
                        position,
                        format!(
                            "record names offset {offset} of bucket p{bucket}, more than \
                             {CONSUMER_SPAN_MAX} past its ack floor {}; replay stopped here",
                            s.floor()
                        ),
                    ));
                    break;
                }
            }
            info.journal_records += 1;
            match consumer_state::replay_entry(&mut states, e) {
                Replayed::Nothing => {}
                Replayed::Redelivery => info.redelivered += 1,
                Replayed::DeadLetter => info.dead_lettered += 1,
            }
            if let (Some(s), Some(Some(end))) = (states.get(bucket), ends.get(bucket)) {
                if s.floor() > *end && beyond[bucket].is_none() {
                    beyond[bucket] = Some((j.path.clone(), position));
                }
            }
        }
    }
    for (i, s) in states.iter().enumerate() {
        let cp = s.checkpoint();
        info.buckets.push(bucket_figures(
            i as u8,
            cp.floor,
            cp.next,
            ends[i],
            cp.acked.len() as u64,
            cp.attempts.iter().map(|&(_, n)| n).filter(|&n| n > 0),
        ));
        if let (Some((file, position)), Some(end)) = (&beyond[i], ends[i]) {
            if cp.floor > end {
                info.problems.push(Problem::at(
                    file,
                    *position,
                    format!(
                        "consumer {}: ack floor {} of bucket p{i} is past the bucket's end {end} \
                         (acknowledged messages are missing from the log)",
                        info.name, cp.floor
                    ),
                ));
            }
        }
    }
    info
}

pub(super) fn bucket_figures(
    priority: u8,
    floor: u64,
    next: u64,
    end: Option<u64>,
    acked: u64,
    unacked_attempts: impl Iterator<Item = u32>,
) -> ConsumerBucketInfo {
    let mut b = ConsumerBucketInfo {
        priority,
        ack_floor: floor,
        next_offset: next,
        end_offset: end,
        lag: end.map(|e| e.saturating_sub(floor)),
        acked_out_of_order: acked,
        unacked_deliveries: 0,
        unacked_redelivered: 0,
        max_attempts: 0,
    };
    for n in unacked_attempts {
        b.unacked_deliveries += 1;
        if n >= 2 {
            b.unacked_redelivered += 1;
        }
        b.max_attempts = b.max_attempts.max(n);
    }
    b
}
