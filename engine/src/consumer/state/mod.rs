//! The state of one consumer in one priority bucket: what is acknowledged,
//! leased, waiting for redelivery, and never delivered. Pure logic, no I/O.
//!
//! Offsets below `floor` are acknowledged. Offsets in `floor..next` have a
//! slot each (delivered at least once, or acknowledged out of order). Offsets
//! from `next` on were never delivered.

use crate::format::journal::{Entry, Record};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Waiting in `ready` for (re)delivery.
    Ready,
    /// Leased to a receiver until `deadline`.
    Leased { lease: u64, deadline: Instant },
    /// Negatively acknowledged; ready again at `until`.
    Delayed { until: Instant },
    /// Taken, and found to be scheduled (its deliver-at is ahead): ready at
    /// `until`, when the take that reaches it reads the record again. Not
    /// journaled: a restart makes it ready, and the next take parks it
    /// again.
    Scheduled { until: Instant },
    /// Taken, and found to belong to a message group whose turn is another
    /// message's: ready again when the group moves on to it (see
    /// `groups.rs`). In memory only, like `Scheduled`.
    Grouped,
    /// Acknowledged (above the floor).
    Acked,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    attempts: u32,
    state: SlotState,
}

/// The persistent part of a bucket state (checkpoint body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BucketCheckpoint {
    pub floor: u64,
    pub next: u64,
    /// Acknowledged offsets in `floor..next`.
    pub acked: Vec<u64>,
    /// Delivery attempts of unacknowledged offsets in `floor..next`.
    pub attempts: Vec<(u64, u32)>,
}

impl BucketCheckpoint {
    /// The same state with nothing at or past `end` (the end of the log).
    pub(crate) fn clamped(&self, end: u64) -> BucketCheckpoint {
        let floor = self.floor.min(end);
        let next = self.next.clamp(floor, end);
        BucketCheckpoint {
            floor,
            next,
            acked: self
                .acked
                .iter()
                .copied()
                .filter(|&o| o >= floor && o < next)
                .collect(),
            attempts: self
                .attempts
                .iter()
                .copied()
                .filter(|&(o, _)| o >= floor && o < next)
                .collect(),
        }
    }
}

/// A journal record limited to the logs' ends (`ends[bucket]`): entries
/// about offsets at or past the end are dropped, an ack-up-to is cut at the
/// end. An acknowledged set is kept whole: an ack of an offset never
/// delivered changes nothing.
pub(crate) fn bounded_record(r: &Record, ends: &[u64]) -> Option<Record> {
    match r {
        Record::Entry(e) => bounded_entry(e, ends).map(Record::Entry),
        Record::AckSet(_) => Some(r.clone()),
    }
}

/// [`bounded_record`] of one entry.
fn bounded_entry(e: &Entry, ends: &[u64]) -> Option<Entry> {
    let end = |bucket: u8| ends.get(bucket as usize).copied().unwrap_or(0);
    match *e {
        Entry::Delivered { bucket, offset, .. }
        | Entry::Acked { bucket, offset }
        | Entry::DeadLettered { bucket, offset }
        | Entry::Expired { bucket, offset } => (offset < end(bucket)).then_some(*e),
        Entry::AckedUpTo { bucket, offset } => {
            let last = end(bucket).checked_sub(1)?;
            Some(Entry::AckedUpTo {
                bucket,
                offset: offset.min(last),
            })
        }
        Entry::DeliveredRange {
            bucket,
            first,
            count,
        } => Entry::first_deliveries(bucket, first, end(bucket).saturating_sub(first).min(count)),
    }
}

/// One consumer's view of one bucket.
#[derive(Debug)]
pub(crate) struct BucketState {
    floor: u64,
    next: u64,
    slots: VecDeque<Slot>,
    ready: BTreeSet<u64>,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Scheduled messages by the time they are due (entries of slots no
    /// longer `Scheduled` at that time are dropped when they reach the top).
    scheduled: BinaryHeap<Reverse<(Instant, u64)>>,
    leases: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    in_flight: u64,
}

/// A message taken for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub offset: u64,
    /// Deliveries before this one.
    pub attempts: u32,
}

impl BucketState {
    /// Nothing delivered, everything below `start` acknowledged.
    pub(crate) fn new(start: u64) -> BucketState {
        BucketState {
            floor: start,
            next: start,
            slots: VecDeque::new(),
            ready: BTreeSet::new(),
            delayed: BinaryHeap::new(),
            scheduled: BinaryHeap::new(),
            leases: BinaryHeap::new(),
            in_flight: 0,
        }
    }

    /// Messages taken and parked: `(scheduled, waiting for their group)`
    /// (a scan of the slots, as [`BucketState::checkpoint`] is).
    pub(crate) fn parked(&self) -> (u64, u64) {
        let (mut scheduled, mut grouped) = (0, 0);
        for s in &self.slots {
            match s.state {
                SlotState::Scheduled { .. } => scheduled += 1,
                SlotState::Grouped => grouped += 1,
                _ => {}
            }
        }
        (scheduled, grouped)
    }

    /// Parks a taken message until `until` (its deliver-at).
    pub(crate) fn schedule(&mut self, offset: u64, until: Instant) {
        if let Some(s) = self.slot_mut(offset) {
            if s.state == SlotState::Ready {
                s.state = SlotState::Scheduled { until };
                self.scheduled.push(Reverse((until, offset)));
            }
        }
    }

    /// Parks a taken message behind its group.
    pub(crate) fn park_grouped(&mut self, offset: u64) {
        if let Some(s) = self.slot_mut(offset) {
            if s.state == SlotState::Ready {
                s.state = SlotState::Grouped;
            }
        }
    }

    /// Makes a message parked behind its group ready (its group's turn
    /// came); false if it was not parked so.
    pub(crate) fn unpark_grouped(&mut self, offset: u64) -> bool {
        let Some(s) = self.slot_mut(offset) else {
            return false;
        };
        if s.state != SlotState::Grouped {
            return false;
        }
        s.state = SlotState::Ready;
        self.ready.insert(offset);
        true
    }

    /// Everything below is acknowledged.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// First never-delivered offset.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Messages leased right now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Messages waiting for redelivery (now or after a nack delay).
    pub(crate) fn waiting_redelivery(&self) -> u64 {
        (self.ready.len() + self.delayed.len()) as u64
    }

    fn slot(&self, offset: u64) -> Option<&Slot> {
        let i = offset.checked_sub(self.floor)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn slot_mut(&mut self, offset: u64) -> Option<&mut Slot> {
        let i = offset.checked_sub(self.floor)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Moves expired leases and elapsed delays to `ready`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(Reverse((deadline, offset, lease))) = self.leases.peek().copied() {
            if deadline > now {
                break;
            }
            self.leases.pop();
            if let Some(s) = self.slot_mut(offset) {
                if s.state == (SlotState::Leased { lease, deadline }) {
                    s.state = SlotState::Ready;
                    self.in_flight -= 1;
                    self.ready.insert(offset);
                }
            }
        }
        while let Some(Reverse((until, offset))) = self.delayed.peek().copied() {
            if until > now {
                break;
            }
            self.delayed.pop();
            if let Some(s) = self.slot_mut(offset) {
                if s.state == (SlotState::Delayed { until }) {
                    s.state = SlotState::Ready;
                    self.ready.insert(offset);
                }
            }
        }
        while let Some(Reverse((until, offset))) = self.scheduled.peek().copied() {
            if until > now {
                break;
            }
            self.scheduled.pop();
            if let Some(s) = self.slot_mut(offset) {
                if s.state == (SlotState::Scheduled { until }) {
                    s.state = SlotState::Ready;
                    self.ready.insert(offset);
                }
            }
        }
    }

    /// Whether a message can be taken now (after [`BucketState::expire`]);
    /// `end` is the first offset not available in the log.
    pub(crate) fn has_available(&self, end: u64) -> bool {
        !self.ready.is_empty() || self.next < end
    }

    /// The earliest moment a lease expires, a delay elapses or a scheduled
    /// message is due.
    #[inline]
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let l = self.leases.peek().map(|Reverse((d, _, _))| *d);
        let d = self.delayed.peek().map(|Reverse((u, _))| *u);
        let s = self.scheduled.peek().map(|Reverse((u, _))| *u);
        earlier(earlier(l, d), s)
    }

    /// Takes the next message to deliver: the lowest offset waiting for
    /// redelivery, else the next never-delivered one below `end`.
    pub(crate) fn take(&mut self, end: u64) -> Option<Taken> {
        if let Some(offset) = self.ready.pop_first() {
            let attempts = self.slot(offset).map(|s| s.attempts).unwrap_or(0);
            return Some(Taken { offset, attempts });
        }
        if self.next < end {
            let offset = self.next;
            self.next += 1;
            self.slots.push_back(Slot {
                attempts: 0,
                state: SlotState::Ready,
            });
            return Some(Taken {
                offset,
                attempts: 0,
            });
        }
        None
    }

    /// Puts a taken message back (its read failed), unchanged.
    pub(crate) fn untake(&mut self, offset: u64) {
        if let Some(s) = self.slot(offset) {
            if s.state == SlotState::Ready {
                self.ready.insert(offset);
            }
        }
    }

    /// Whether `offset` is still as [`BucketState::take`] left it: not
    /// leased, not acknowledged, not waiting in `ready` (a caller that let
    /// go of the lock between taking and leasing checks this first).
    pub(crate) fn is_taken(&self, offset: u64) -> bool {
        self.slot(offset)
            .is_some_and(|s| s.state == SlotState::Ready && !self.ready.contains(&offset))
    }

    /// Leases a taken message; returns its attempt number.
    #[inline]
    pub(crate) fn lease(&mut self, offset: u64, lease: u64, deadline: Instant) -> u32 {
        let Some(s) = self.slot_mut(offset) else {
            return 0;
        };
        s.attempts = s.attempts.saturating_add(1);
        s.state = SlotState::Leased { lease, deadline };
        let attempts = s.attempts;
        self.in_flight += 1;
        self.leases.push(Reverse((deadline, offset, lease)));
        attempts
    }

    /// Records a delivery replayed from the journal (after a restart the
    /// message is waiting for redelivery, with its count).
    pub(crate) fn replay_delivered(&mut self, offset: u64, attempt: u32) {
        if offset < self.floor {
            return;
        }
        self.extend_to(offset.saturating_add(1));
        if let Some(s) = self.slot_mut(offset) {
            if s.state != SlotState::Acked {
                s.attempts = s.attempts.max(attempt);
            }
        }
    }

    /// Replays the first deliveries of `first .. first + count`.
    pub(crate) fn replay_delivered_range(&mut self, first: u64, count: u64) {
        let end = first.saturating_add(count);
        let start = first.max(self.floor);
        if start >= end {
            return;
        }
        self.extend_to(end);
        let (from, to) = ((start - self.floor) as usize, (end - self.floor) as usize);
        for s in self.slots.range_mut(from..to) {
            if s.state != SlotState::Acked {
                s.attempts = s.attempts.max(1);
            }
        }
    }

    /// Makes sure `next >= end`, adding ready slots for the new offsets.
    fn extend_to(&mut self, end: u64) {
        while self.next < end {
            self.slots.push_back(Slot {
                attempts: 0,
                state: SlotState::Ready,
            });
            self.next += 1;
        }
    }

    /// Acknowledges one delivered offset. Returns false if it was already
    /// acknowledged or never delivered.
    pub(crate) fn ack(&mut self, offset: u64) -> bool {
        let Some(s) = self.slot_mut(offset) else {
            return false;
        };
        match s.state {
            SlotState::Acked => return false,
            SlotState::Leased { .. } => {
                s.state = SlotState::Acked;
                self.in_flight -= 1;
            }
            SlotState::Ready
            | SlotState::Delayed { .. }
            | SlotState::Scheduled { .. }
            | SlotState::Grouped => {
                s.state = SlotState::Acked;
                self.ready.remove(&offset);
            }
        }
        self.advance_floor();
        self.prune_leases();
        true
    }

    /// Whether [`BucketState::ack`] of `offset` would change something: it
    /// was delivered and is not acknowledged.
    pub(crate) fn is_unacked(&self, offset: u64) -> bool {
        self.slot(offset)
            .is_some_and(|s| s.state != SlotState::Acked)
    }

    /// [`BucketState::ack`] of every offset of `first..=last`, in time
    /// proportional to the offsets that have a slot (those in
    /// `floor..next`), however wide the run.
    pub(crate) fn ack_run(&mut self, first: u64, last: u64) {
        let Some(end) = self.next.checked_sub(1) else {
            return;
        };
        for offset in first.max(self.floor)..=last.min(end) {
            self.ack(offset);
        }
    }

    /// Acknowledges every offset up to and including `offset`, delivered or
    /// not. Returns false if nothing changed.
    pub(crate) fn ack_up_to(&mut self, offset: u64) -> bool {
        let new_floor = offset.saturating_add(1);
        if new_floor <= self.floor {
            return false;
        }
        if new_floor >= self.next {
            // Covers everything delivered so far (and maybe more): no slot
            // is needed for the offsets in between.
            self.slots.clear();
            self.ready.clear();
            self.in_flight = 0;
            self.floor = new_floor;
            self.next = new_floor;
            self.leases.clear();
            self.delayed.clear();
            self.scheduled.clear();
            return true;
        }
        while self.floor < new_floor {
            if let Some(s) = self.slots.pop_front() {
                if matches!(s.state, SlotState::Leased { .. }) {
                    self.in_flight -= 1;
                }
            }
            self.floor += 1;
        }
        self.ready = self.ready.split_off(&self.floor);
        self.advance_floor();
        self.prune_leases();
        true
    }

    fn advance_floor(&mut self) {
        while let Some(s) = self.slots.front() {
            if s.state != SlotState::Acked {
                break;
            }
            self.slots.pop_front();
            self.floor += 1;
        }
    }

    /// Returns a leased message for redelivery, at once or at `until`.
    /// Returns false if the lease is not current any more.
    pub(crate) fn nack(&mut self, offset: u64, lease: u64, until: Option<Instant>) -> bool {
        let Some(s) = self.slot_mut(offset) else {
            return false;
        };
        if !matches!(s.state, SlotState::Leased { lease: l, .. } if l == lease) {
            return false;
        }
        match until {
            None => {
                s.state = SlotState::Ready;
                self.ready.insert(offset);
            }
            Some(until) => {
                s.state = SlotState::Delayed { until };
                self.delayed.push(Reverse((until, offset)));
            }
        }
        self.in_flight -= 1;
        self.prune_leases();
        true
    }

    /// Extends a lease that is current at `now` to `deadline`. Returns
    /// false if the lease ran out or was given back.
    pub(crate) fn extend(
        &mut self,
        offset: u64,
        lease: u64,
        now: Instant,
        deadline: Instant,
    ) -> bool {
        let Some(s) = self.slot_mut(offset) else {
            return false;
        };
        if !matches!(s.state, SlotState::Leased { lease: l, deadline: d } if l == lease && d > now)
        {
            return false;
        }
        s.state = SlotState::Leased { lease, deadline };
        self.leases.push(Reverse((deadline, offset, lease)));
        self.prune_leases();
        true
    }

    /// Drops heap entries of leases that ended (acknowledged, given back or
    /// extended): those on top at once, and all of them whenever they
    /// outnumber the live leases, so the heap stays proportional to the
    /// messages in flight however many are acknowledged before they expire.
    fn prune_leases(&mut self) {
        let (floor, slots) = (self.floor, &self.slots);
        let live = |&Reverse((deadline, offset, lease)): &Reverse<(Instant, u64, u64)>| {
            offset
                .checked_sub(floor)
                .and_then(|i| slots.get(usize::try_from(i).ok()?))
                .is_some_and(|s| s.state == SlotState::Leased { lease, deadline })
        };
        while let Some(top) = self.leases.peek() {
            if live(top) {
                break;
            }
            self.leases.pop();
        }
        if self.leases.len() > 2 * self.in_flight as usize + 64 {
            self.leases.retain(live);
        }
    }

    /// Entries in the lease heap (live and not yet pruned).
    #[cfg(test)]
    fn lease_entries(&self) -> usize {
        self.leases.len()
    }

    /// Whether `offset` is leased under `lease` at `now`.
    pub(crate) fn is_leased(&self, offset: u64, lease: u64, now: Instant) -> bool {
        matches!(self.slot(offset), Some(Slot { state: SlotState::Leased { lease: l, deadline }, .. }) if *l == lease && *deadline > now)
    }

    /// After a restart, or when the log lost its tail: never let the state
    /// reach past the log's `end`, nor below its first retained offset
    /// `first` (returns how many unacknowledged messages were skipped).
    pub(crate) fn clamp(&mut self, first: u64, end: u64) -> u64 {
        let mut skipped = 0;
        if self.next > end {
            let keep = end.saturating_sub(self.floor) as usize;
            self.slots.truncate(keep);
            self.next = end.max(self.floor);
            self.ready.retain(|&o| o < end);
            self.in_flight = self
                .slots
                .iter()
                .filter(|s| matches!(s.state, SlotState::Leased { .. }))
                .count() as u64;
        }
        if self.floor > end {
            self.floor = end;
            self.next = end;
            self.slots.clear();
            self.ready.clear();
            self.in_flight = 0;
        }
        if self.floor < first {
            for o in self.floor..first.min(self.next) {
                if !matches!(
                    self.slot(o),
                    Some(Slot {
                        state: SlotState::Acked,
                        ..
                    })
                ) {
                    skipped += 1;
                }
            }
            if self.next < first {
                skipped += first - self.next;
            }
            self.ack_up_to(first - 1);
        }
        skipped
    }

    /// Makes every unacknowledged slot ready for redelivery (after replay).
    pub(crate) fn all_ready(&mut self) {
        self.ready.clear();
        self.delayed.clear();
        self.scheduled.clear();
        self.leases.clear();
        self.in_flight = 0;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.state != SlotState::Acked {
                s.state = SlotState::Ready;
                self.ready.insert(self.floor + i as u64);
            }
        }
    }

    /// The persistent part.
    pub(crate) fn checkpoint(&self) -> BucketCheckpoint {
        let mut c = BucketCheckpoint {
            floor: self.floor,
            next: self.next,
            ..BucketCheckpoint::default()
        };
        for (i, s) in self.slots.iter().enumerate() {
            let o = self.floor + i as u64;
            if s.state == SlotState::Acked {
                c.acked.push(o);
            } else if s.attempts > 0 {
                c.attempts.push((o, s.attempts));
            }
        }
        c
    }

    /// Rebuilds from a checkpoint; every unacknowledged delivered message is
    /// ready for redelivery. Entries outside `floor..next` are ignored.
    pub(crate) fn from_checkpoint(c: &BucketCheckpoint) -> BucketState {
        let mut b = BucketState::new(c.floor);
        b.extend_to(c.next.max(c.floor));
        for &(o, n) in &c.attempts {
            if let Some(s) = b.slot_mut(o) {
                s.attempts = n;
            }
        }
        for &o in &c.acked {
            if let Some(s) = b.slot_mut(o) {
                s.state = SlotState::Acked;
            }
        }
        b.advance_floor();
        b.all_ready();
        b
    }
}

/// What replaying one journal entry did to the consumer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replayed {
    /// Nothing to count (or the entry names a priority level that does not exist).
    Nothing,
    /// A delivery after the first (attempt 2 or more).
    Redelivery,
    /// A message moved to the dead-letter stream.
    DeadLetter,
    /// A message that had expired (acknowledged without a delivery).
    Expired,
}

/// Applies one journal record on top of the states rebuilt from a
/// checkpoint (the replay at open; `inspect` folds journals with it too):
/// an acknowledged set as an ack of each of its offsets. Records for a
/// priority level beyond `buckets` are ignored. Pure: no I/O, no clock.
pub(crate) fn replay_record(buckets: &mut [BucketState], r: &Record) -> Replayed {
    match r {
        Record::Entry(e) => replay_entry(buckets, e),
        Record::AckSet(set) => {
            for run in set.runs() {
                if let Some(b) = buckets.get_mut(run.bucket as usize) {
                    b.ack_run(run.first, run.last);
                }
            }
            Replayed::Nothing
        }
    }
}

/// Applies one journal entry on top of the states rebuilt from a checkpoint.
/// Entries for a priority level beyond `buckets` are ignored.
fn replay_entry(buckets: &mut [BucketState], e: &Entry) -> Replayed {
    match *e {
        Entry::Delivered {
            bucket,
            offset,
            attempt,
        } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                b.replay_delivered(offset, attempt);
                if attempt > 1 {
                    return Replayed::Redelivery;
                }
            }
        }
        Entry::Acked { bucket, offset } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                b.ack(offset);
            }
        }
        Entry::AckedUpTo { bucket, offset } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                b.ack_up_to(offset);
            }
        }
        Entry::DeadLettered { bucket, offset } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                b.ack(offset);
                return Replayed::DeadLetter;
            }
        }
        Entry::DeliveredRange {
            bucket,
            first,
            count,
        } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                b.replay_delivered_range(first, count);
            }
        }
        Entry::Expired { bucket, offset } => {
            if let Some(b) = buckets.get_mut(bucket as usize) {
                // A message may expire at its first take, with no delivery
                // journaled: the slots grow to it (as for a delivery), so
                // that it is not taken, and counted, again.
                b.replay_delivered(offset, 0);
                b.ack(offset);
                return Replayed::Expired;
            }
        }
    }
    Replayed::Nothing
}

pub(crate) mod groups;

#[cfg(test)]
mod tests;

/// The earlier of two optional moments (`None`: never).
#[inline]
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
