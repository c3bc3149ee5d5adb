//! The consumer's state rebuilt from its files: a checkpoint, then the
//! entries of its journal folded on top. Pure: no I/O, no clock. The
//! engine's open and the inspector both fold with [`fold`], so they count
//! the same deliveries, redeliveries and dead letters.

use super::state::{bounded_record, BucketState, Replayed};
use super::CheckpointBody;
use crate::format::journal::Record;
use std::borrow::Borrow;
use std::ops::Range;

/// What folding journal records added to the checkpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Records applied.
    pub entries: u64,
    /// Deliveries after the first of their message.
    pub redelivered: u64,
    /// Messages moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Messages found expired.
    pub expired: u64,
}

/// Applies `records`, in order, to the bucket states rebuilt from a
/// checkpoint. Records for a priority level beyond `buckets` are ignored.
pub(crate) fn fold<R: Borrow<Record>>(
    buckets: &mut [BucketState],
    records: impl IntoIterator<Item = R>,
) -> Counts {
    let mut counts = Counts::default();
    for r in records {
        counts.entries += 1;
        match super::state::replay_record(buckets, r.borrow()) {
            Replayed::Nothing => {}
            Replayed::Redelivery => counts.redelivered += 1,
            Replayed::DeadLetter => counts.dead_lettered += 1,
            Replayed::Expired => counts.expired += 1,
        }
    }
    counts
}

/// The state a consumer resumes with at open.
#[derive(Debug)]
pub(crate) struct Resumed {
    /// One state per priority level; every unacknowledged delivered message
    /// is ready for redelivery, with its count.
    pub buckets: Vec<BucketState>,
    /// Deliveries after the first, in all.
    pub redelivered: u64,
    /// Messages moved to the dead-letter stream, in all.
    pub dead_lettered: u64,
    /// Messages retention removed before they were acknowledged, in all.
    pub skipped: u64,
    /// Messages found expired, in all.
    pub expired: u64,
}

/// The state of a consumer whose checkpoint is `ckpt` and whose journal of
/// the checkpoint's generation holds `records`, against logs that hold the
/// offsets `logs[priority]`. Offsets are trusted only below each log's end:
/// past it they refer to messages a crash took back (or to nothing, in a
/// hostile file), and would make the state grow without bound. What
/// retention removed below a log's start counts as skipped.
pub(crate) fn resume(ckpt: &CheckpointBody, records: &[Record], logs: &[Range<u64>]) -> Resumed {
    let ends: Vec<u64> = logs.iter().map(|l| l.end).collect();
    let mut buckets: Vec<BucketState> = ckpt
        .buckets
        .iter()
        .zip(&ends)
        .map(|(c, &end)| BucketState::from_checkpoint(&c.clamped(end)))
        .collect();
    let counts = fold(
        &mut buckets,
        records.iter().filter_map(|r| bounded_record(r, &ends)),
    );
    let mut skipped = ckpt.skipped;
    for (b, log) in buckets.iter_mut().zip(logs) {
        b.all_ready();
        skipped += b.clamp(log.start, log.end);
    }
    Resumed {
        buckets,
        redelivered: ckpt.redelivered + counts.redelivered,
        dead_lettered: ckpt.dead_lettered + counts.dead_lettered,
        skipped,
        expired: ckpt.expired + counts.expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::state::BucketCheckpoint;
    use crate::format::journal::{AckRun, AckSet, Entry};

    /// The logs of a one-priority stream holding `first..end`.
    fn one_log(first: u64, end: u64) -> Vec<Range<u64>> {
        std::iter::once(first..end).collect()
    }

    fn delivered(offset: u64, attempt: u32) -> Record {
        Record::Entry(Entry::Delivered {
            bucket: 0,
            offset,
            attempt,
        })
    }

    /// Regression: the engine's open counted only dead letters when it
    /// replayed a journal, so a consumer's `redelivered` count was lost at
    /// every reopen (and the new checkpoint made the loss permanent).
    #[test]
    fn redeliveries_in_the_journal_are_counted_at_resume() {
        let ckpt = CheckpointBody {
            generation: 2,
            buckets: vec![BucketCheckpoint::default()],
            redelivered: 5,
            dead_lettered: 1,
            skipped: 0,
            expired: 3,
        };
        let entries = [
            delivered(0, 1),
            delivered(0, 2),
            delivered(1, 1),
            Record::Entry(Entry::DeadLettered {
                bucket: 0,
                offset: 1,
            }),
            delivered(0, 3),
            Record::Entry(Entry::Expired {
                bucket: 0,
                offset: 4,
            }),
        ];
        let logs = one_log(0, 10);
        let r = resume(&ckpt, &entries, &logs);
        assert_eq!(r.redelivered, 5 + 2);
        assert_eq!(r.dead_lettered, 1 + 1);
        assert_eq!(r.expired, 3 + 1);
        assert_eq!(r.buckets[0].floor(), 0);
        // The expiry of 4 (never delivered) grows the slots past it: 2 and
        // 3 are taken again, 4 is not.
        assert_eq!(r.buckets[0].next(), 5);
        assert!(
            !r.buckets[0].is_unacked(4),
            "an expiry is an acknowledgement"
        );
        assert!(r.buckets[0].is_unacked(2) && r.buckets[0].is_unacked(3));
        let mut states = vec![BucketState::new(0)];
        let c = fold(&mut states, &entries);
        assert_eq!(
            c,
            Counts {
                entries: 6,
                redelivered: 2,
                dead_lettered: 1,
                expired: 1,
            }
        );
    }

    #[test]
    fn an_acknowledged_set_acks_what_was_delivered_as_one_record() {
        let ckpt = CheckpointBody {
            generation: 1,
            buckets: vec![BucketCheckpoint::default(), BucketCheckpoint::default()],
            ..CheckpointBody::default()
        };
        let mut records: Vec<Record> = (0..6).map(|o| delivered(o, 1)).collect();
        records.push(Record::Entry(Entry::Delivered {
            bucket: 1,
            offset: 0,
            attempt: 1,
        }));
        // 0, 1, 3 of level 0, 0 of level 1; 9 of level 0 and level 7 were
        // never delivered (or do not exist): nothing to do for them.
        records.push(Record::AckSet(AckSet::from_positions([
            (0, 0),
            (0, 1),
            (0, 3),
            (0, 9),
            (1, 0),
            (7, 2),
        ])));
        let logs = vec![0..10, 0..10];
        let r = resume(&ckpt, &records, &logs);
        let b = &r.buckets[0];
        assert_eq!((b.floor(), b.next()), (2, 6));
        assert!(b.is_unacked(2) && !b.is_unacked(3) && b.is_unacked(4));
        assert_eq!((r.buckets[1].floor(), r.buckets[1].next()), (1, 1));
        let mut states = vec![BucketState::new(0), BucketState::new(0)];
        assert_eq!(fold(&mut states, &records).entries, 8);
        // A hostile run as wide as the offsets go costs what the slots do.
        let mut states = vec![BucketState::new(0)];
        fold(&mut states, &records[..6]);
        let wide = AckSet::from_runs(vec![AckRun {
            bucket: 0,
            first: 1,
            last: u64::MAX - 1,
        }])
        .unwrap();
        fold(&mut states, [&Record::AckSet(wide)]);
        assert_eq!((states[0].floor(), states[0].next()), (0, 6));
        assert!(states[0].is_unacked(0));
        assert!((1..6).all(|o| !states[0].is_unacked(o)));
    }

    #[test]
    fn nothing_past_the_log_is_trusted() {
        let ckpt = CheckpointBody {
            generation: 1,
            buckets: vec![BucketCheckpoint {
                floor: 8,
                next: 50,
                ..BucketCheckpoint::default()
            }],
            ..CheckpointBody::default()
        };
        let logs = one_log(5, 20);
        let r = resume(&ckpt, &[delivered(u64::MAX, 1)], &logs);
        assert_eq!(r.buckets[0].floor(), 8);
        assert_eq!(r.buckets[0].next(), 20);
        // Retention removed 0..12 under a floor of 8: four skipped.
        let logs = one_log(12, 20);
        let r = resume(&ckpt, &[], &logs);
        assert_eq!(r.skipped, 4);
        assert_eq!(r.buckets[0].floor(), 12);
    }
}
