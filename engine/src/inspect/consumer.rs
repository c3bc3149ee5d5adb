//! Durable consumers (`consumers/<name>/`): their files read as the engine's
//! open reads them, and their state folded with the engine's own replay
//! ([`replay::fold`]) against the buckets found, but not clamped to them:
//! the inspector shows what is on disk, and a state past the end of the log
//! is a problem (the open clamps it by design).

use super::read::{
    list_dir, read_bounded, read_framed, read_framed_versions, too_large, Bounded, Framed,
};
use super::{BucketInfo, ConsumerBucketInfo, ConsumerInfo, Inspector, Problem};
use crate::consumer::journal::JOURNAL_BYTES_LIMIT;
use crate::consumer::{replay, state, CheckpointBody, ConsumerConfig};
use crate::format::journal::{self, Entry, Record};
use crate::format::meta;
use crate::io::EntryKind;
use crate::layout::{self, CHECKPOINT_FILE, CONSUMER_CONFIG_FILE};
use crate::name;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Widest range `floor..next` (offsets) of one bucket that the inspector
/// rebuilds slot by slot (about 50 bytes each); a checkpoint or journal
/// asking for more is reported instead of allocated.
pub const CONSUMER_SPAN_MAX: u64 = 1 << 20;

/// How many times the files of a consumer are read again when its
/// checkpoint changed while its journal was read (a rotation on a live store).
const CONSUMER_REREADS: usize = 3;

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

/// The valid records of a journal, in order, each with its byte position.
struct RawJournal {
    path: PathBuf,
    version: u32,
    records: Vec<(u64, Record)>,
}

/// The checkpoint file's limits, as the engine reads it (version 2 goes
/// with a journal of version 2, the same body; version 3 with a journal of
/// version 3, its body counts the expired messages too).
const CHECKPOINT_FRAME: ([u8; 8], RangeInclusive<u32>, usize) = (
    meta::CHECKPOINT_MAGIC,
    meta::CHECKPOINT_VERSION..=meta::CHECKPOINT_VERSION_3,
    meta::CHECKPOINT_BODY_BYTES_MAX,
);

impl Inspector<'_> {
    /// Reads every consumer directory under `cdir`, sorted by name.
    pub(super) fn read_consumers(
        &self,
        cdir: &Path,
        problems: &mut Vec<Problem>,
    ) -> Vec<RawConsumer> {
        let entries = match list_dir(self.vfs, cdir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                problems.push(Problem::file(cdir, format!("cannot list: {e}")));
                return Vec::new();
            }
        };
        entries
            .into_iter()
            // Interrupted creations (`.tmp-*`) and foreign names are not consumers.
            .filter(|e| e.kind == EntryKind::Dir && name::validate(&e.name).is_ok())
            .map(|e| self.read_consumer(&e.name, &cdir.join(&e.name)))
            .collect()
    }

    fn read_consumer(&self, name: &str, dir: &Path) -> RawConsumer {
        let mut c = RawConsumer {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config: None,
            checkpoint: None,
            journal: None,
            stale_journals: Vec::new(),
            problems: Vec::new(),
        };
        c.config = self.read_config(&dir.join(CONSUMER_CONFIG_FILE), &mut c.problems);
        let ckpt_path = dir.join(CHECKPOINT_FILE);
        for attempt in 0..=CONSUMER_REREADS {
            let mut problems = Vec::new();
            let Some((bytes, body)) = self.read_checkpoint(&ckpt_path, &mut problems) else {
                c.problems.extend(problems);
                break;
            };
            let jpath = dir.join(layout::journal_file_name(body.generation));
            let journal = self.read_journal(&jpath, body.generation, &mut problems);
            // On a live store the journal may have been rotated away meanwhile:
            // the checkpoint then changed, and both are read again.
            let again = self
                .read_checkpoint(&ckpt_path, &mut Vec::new())
                .is_some_and(|(b, _)| b == bytes);
            if again || attempt == CONSUMER_REREADS {
                c.problems.extend(problems);
                c.checkpoint = Some(body);
                c.journal = journal;
                break;
            }
        }
        let generation = c.checkpoint.as_ref().map(|b| b.generation);
        match list_dir(self.vfs, dir) {
            Ok(files) => {
                for f in files {
                    if f.kind != EntryKind::File {
                        continue;
                    }
                    if let Some(g) = layout::parse_journal_name(&f.name) {
                        if Some(g) != generation {
                            c.stale_journals.push(dir.join(f.name));
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

    fn read_config(&self, path: &Path, problems: &mut Vec<Problem>) -> Option<ConsumerConfig> {
        let frame = (
            meta::CONSUMER_CONFIG_MAGIC,
            meta::CONSUMER_CONFIG_VERSION,
            meta::META_BODY_BYTES_MAX,
        );
        let body = match read_framed(self.vfs, path, frame, "consumer config", problems) {
            Framed::Body(_, b) => b,
            Framed::Missing => {
                problems.push(Problem::file(path, "consumer config missing"));
                return None;
            }
            Framed::Bad(_) => return None,
        };
        let at_body = meta::BODY_OFFSET as u64;
        let config = match postcard::from_bytes::<ConsumerConfig>(&body) {
            Ok(c) => c,
            Err(e) => {
                problems.push(Problem::at(path, at_body, format!("consumer config: {e}")));
                return None;
            }
        };
        if let Err(e) = config.validate() {
            problems.push(Problem::at(path, at_body, format!("consumer config: {e}")));
            return None;
        }
        Some(config)
    }

    /// Reads and decodes a checkpoint: its body's bytes (to notice a
    /// rewrite) and the body.
    fn read_checkpoint(
        &self,
        path: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<(Vec<u8>, CheckpointBody)> {
        let (version, body) = match read_framed_versions(
            self.vfs,
            path,
            CHECKPOINT_FRAME,
            "consumer checkpoint",
            problems,
        ) {
            Framed::Body(v, b) => (v, b),
            Framed::Missing => {
                problems.push(Problem::file(path, "consumer checkpoint missing"));
                return None;
            }
            Framed::Bad(_) => return None,
        };
        match CheckpointBody::decode(version, &body) {
            Ok(c) => Some((body, c)),
            Err(e) => {
                problems.push(Problem::at(
                    path,
                    meta::BODY_OFFSET as u64,
                    format!("consumer checkpoint: {e}"),
                ));
                None
            }
        }
    }

    /// Reads the valid records of the journal at `path` as the engine's
    /// replay does ([`journal::decode_all`]): `None` if there is no such
    /// file or its header is unreadable (a journal never synced holds
    /// nothing), or if it belongs to another generation (the open ignores
    /// it then: a warning).
    fn read_journal(
        &self,
        path: &Path,
        generation: u64,
        problems: &mut Vec<Problem>,
    ) -> Option<RawJournal> {
        let bytes = match read_bounded(self.vfs, path, JOURNAL_BYTES_LIMIT) {
            Ok(Bounded::Bytes(b)) => b,
            Ok(Bounded::Missing) => return None,
            Ok(Bounded::TooLarge(len)) => {
                problems.push(too_large(path, len, JOURNAL_BYTES_LIMIT));
                return None;
            }
            Err(e) => {
                problems.push(Problem::file(path, format!("cannot read: {e}")));
                return None;
            }
        };
        let (header, records) = journal::decode_all(&bytes)?;
        if header.generation != generation {
            problems.push(Problem::warn(
                path,
                Some(journal::GENERATION_OFFSET as u64),
                format!(
                    "journal header says generation {}, its name says {generation}: the next \
                     open does not replay it (its deliveries and acknowledgements are not counted)",
                    header.generation
                ),
            ));
            return None;
        }
        Some(RawJournal {
            path: path.to_path_buf(),
            version: header.version,
            records,
        })
    }
}

/// Byte length of a postcard varint holding `v`.
fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// Byte position in the checkpoint file of bucket `i`'s floor field.
fn checkpoint_floor_position(body: &CheckpointBody, i: usize) -> u64 {
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
    meta::BODY_OFFSET as u64
        + varint_len(body.generation)
        + varint_len(body.buckets.len() as u64)
        + before
}

/// Where a bucket's state first went past the end of its log.
#[derive(Default, Clone)]
struct PastEnd {
    /// The floor: acknowledged messages are missing from the log.
    floor: Option<(PathBuf, u64)>,
    /// The next offset: delivered messages are missing from the log.
    next: Option<(PathBuf, u64)>,
}

impl PastEnd {
    /// Notes `at` as where `floor` or `next` first went past `end`.
    fn note(&mut self, floor: u64, next: u64, end: Option<u64>, at: impl Fn() -> (PathBuf, u64)) {
        let Some(end) = end else { return };
        if floor > end && self.floor.is_none() {
            self.floor = Some(at());
        }
        if next > end && self.next.is_none() {
            self.next = Some(at());
        }
    }
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
        journal_version: None,
        journal_records: 0,
        journal_ack_sets: 0,
        journal_set_acks: 0,
        stale_journals: c.stale_journals,
        buckets: Vec::new(),
        redelivered: 0,
        dead_lettered: 0,
        skipped: 0,
        expired: 0,
        journal_expiries: 0,
        problems: c.problems,
    };
    let Some(body) = c.checkpoint else {
        return info;
    };
    info.redelivered = body.redelivered;
    info.dead_lettered = body.dead_lettered;
    info.skipped = body.skipped;
    info.expired = body.expired;
    info.journal = c.journal.as_ref().map(|j| j.path.clone());
    info.journal_version = c.journal.as_ref().map(|j| j.version);
    let ckpt_path = info.path.join(CHECKPOINT_FILE);
    if body.buckets.len() != buckets.len() {
        info.problems.push(Problem::at(
            &ckpt_path,
            meta::BODY_OFFSET as u64,
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
    let mut past: Vec<PastEnd> = vec![PastEnd::default(); buckets.len()];
    for (i, b) in body.buckets.iter().enumerate() {
        let floor_at = checkpoint_floor_position(&body, i);
        past[i].note(b.floor, b.next, ends[i], || {
            let at = if b.floor > ends[i].unwrap_or(u64::MAX) {
                floor_at
            } else {
                floor_at + varint_len(b.floor)
            };
            (ckpt_path.clone(), at)
        });
    }
    let too_wide = body
        .buckets
        .iter()
        .position(|b| b.next.saturating_sub(b.floor) > CONSUMER_SPAN_MAX);
    if let Some(i) = too_wide {
        let b = &body.buckets[i];
        let reason = format!(
            "bucket p{i}: {} offsets between ack floor {} and next offset {}, more than the \
             {CONSUMER_SPAN_MAX} this inspector rebuilds; the journal is not replayed",
            b.next - b.floor,
            b.floor,
            b.next
        );
        info.problems.push(Problem::warn(
            &ckpt_path,
            Some(checkpoint_floor_position(&body, i)),
            reason,
        ));
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
        report_past_end(&mut info, &past, &ends);
        return info;
    }
    let mut states: Vec<state::BucketState> = body
        .buckets
        .iter()
        .map(state::BucketState::from_checkpoint)
        .collect();
    if let Some(j) = &c.journal {
        for (position, r) in &j.records {
            let position = *position;
            let (bucket, offset) = match r {
                Record::Entry(
                    Entry::Delivered { bucket, offset, .. }
                    | Entry::Acked { bucket, offset }
                    | Entry::AckedUpTo { bucket, offset }
                    | Entry::DeadLettered { bucket, offset }
                    | Entry::Expired { bucket, offset },
                ) => (*bucket as usize, *offset),
                // Its last offset: the slots grow that far.
                Record::Entry(Entry::DeliveredRange {
                    bucket,
                    first,
                    count,
                }) => (*bucket as usize, first.saturating_add(count - 1)),
                // An acknowledged set grows no slots (an ack of an offset
                // never delivered changes nothing), however wide its runs.
                Record::AckSet(_) => (usize::MAX, 0),
            };
            // The replay grows a bucket's slots up to the offset named: keep
            // that bounded (hostile or damaged journals).
            if let Some(s) = states.get(bucket) {
                if offset == u64::MAX || offset.saturating_sub(s.floor()) > CONSUMER_SPAN_MAX {
                    let reason = format!(
                        "record names offset {offset} of bucket p{bucket}, more than \
                         {CONSUMER_SPAN_MAX} past its ack floor {}; replay stopped here",
                        s.floor()
                    );
                    // Past the end of the log, the state names messages that
                    // are not there; within it, this is the inspector's limit.
                    let past_end = ends[bucket].is_none_or(|end| offset >= end);
                    info.problems.push(Problem {
                        warning: !past_end,
                        ..Problem::at(&j.path, position, reason)
                    });
                    break;
                }
            }
            info.journal_records += 1;
            if let Record::AckSet(set) = r {
                info.journal_ack_sets += 1;
                info.journal_set_acks += set.len();
            }
            let counts = replay::fold(&mut states, [r]);
            info.redelivered += counts.redelivered;
            info.dead_lettered += counts.dead_lettered;
            info.expired += counts.expired;
            info.journal_expiries += counts.expired;
            // A set may move several levels' floors: each level it names.
            let touched: Vec<usize> = match r {
                Record::Entry(_) => vec![bucket],
                Record::AckSet(set) => set.runs().iter().map(|r| r.bucket as usize).collect(),
            };
            for b in touched {
                if let (Some(s), Some(p)) = (states.get(b), past.get_mut(b)) {
                    p.note(s.floor(), s.next(), ends[b], || (j.path.clone(), position));
                }
            }
        }
    }
    // As the open does: what retention (or a purge) removed below a
    // level's first retained offset is skipped, the position moved past
    // it. The end is not clamped: a state past the end is a problem here.
    for (s, b) in states.iter_mut().zip(buckets) {
        if let Some(first) = b.first_offset {
            info.skipped += s.clamp(first, u64::MAX);
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
    }
    report_past_end(&mut info, &past, &ends);
    info
}

/// The problems of a state that names offsets past the end of its log (as
/// it stands after the fold): a floor past the end means acknowledged
/// messages are missing from the log, a next offset past it (below a floor
/// within it) delivered ones.
fn report_past_end(info: &mut ConsumerInfo, past: &[PastEnd], ends: &[Option<u64>]) {
    for i in 0..info.buckets.len() {
        let (b, Some(end)) = (info.buckets[i], ends[i]) else {
            continue;
        };
        if b.ack_floor > end {
            if let Some((file, position)) = &past[i].floor {
                let reason = format!(
                    "consumer {}: ack floor {} of bucket p{i} is past the bucket's end {end} \
                     (acknowledged messages are missing from the log)",
                    info.name, b.ack_floor
                );
                info.problems.push(Problem::at(file, *position, reason));
            }
        } else if b.next_offset > end {
            if let Some((file, position)) = &past[i].next {
                let reason = format!(
                    "consumer {}: next offset {} of bucket p{i} is past the bucket's end {end} \
                     (delivered messages are missing from the log)",
                    info.name, b.next_offset
                );
                info.problems.push(Problem::at(file, *position, reason));
            }
        }
    }
}

fn bucket_figures(
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
        undelivered: end.map(|e| e.saturating_sub(next)),
        // Filled by `Inspector::fill_oldest_unacked` (it reads a record).
        oldest_unacked_offset: None,
        oldest_unacked_timestamp_us: None,
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
