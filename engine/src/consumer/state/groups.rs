//! Message groups of one consumer (all its priority levels): at most one
//! message of a group is leased at a time, a group's messages go in offset
//! order within a level, different groups go in parallel. Pure logic, no
//! I/O, in memory only: rebuilt by the takes after an open (there are no
//! leases then), from the records they read.
//!
//! Each group that has a message taken has an **owner**: the message whose
//! turn it is. It is leased, or waiting for redelivery (its lease ran out,
//! it was given back with or without a delay), or being moved to the
//! dead-letter stream; it stays the owner until it is done (acknowledged,
//! dead-lettered or expired). A take that reaches another message of the
//! group parks it among the group's **waiting** messages (not leased, not
//! journaled). When the owner is done, the next owner is the waiting
//! message of the highest priority level with the lowest offset, which is
//! then made ready. A message of a level reaches the take in offset order
//! (redeliveries lowest first, then new ones), so each level's messages of
//! a group are leased in offset order; across levels the higher one goes
//! first whenever both are waiting, and there is no other order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A position: priority level and offset.
pub(crate) type Position = (u8, u64);

#[derive(Debug)]
struct Group {
    owner: Position,
    /// Parked messages: highest level first, then lowest offset.
    waiting: BTreeSet<(Reverse<u8>, u64)>,
}

/// What a take does with a message of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// It is the group's owner (now, or already): lease it.
    Lease,
    /// Another message owns the group: park it.
    Wait,
}

/// The groups of one consumer.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: HashMap<Box<[u8]>, Group>,
    /// Every owner and waiting message, by position, with its group.
    members: BTreeMap<Position, Box<[u8]>>,
}

impl Groups {
    /// Whether no group has a message taken (then acks need not look).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Groups that have an owner.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether `pos` owns its group.
    pub(crate) fn is_owner(&self, pos: Position) -> bool {
        self.members
            .get(&pos)
            .and_then(|g| self.groups.get(g))
            .is_some_and(|g| g.owner == pos)
    }

    /// A take reached the message at `pos` of group `name`.
    pub(crate) fn admit(&mut self, pos: Position, name: &[u8]) -> Admit {
        if let Some(known) = self.members.get(&pos) {
            if **known == *name {
                return match self.groups.get(known) {
                    Some(g) if g.owner == pos => Admit::Lease,
                    _ => Admit::Wait,
                };
            }
            // The same position in another group: a log that was cut and
            // written again. Start over for it.
            self.done(pos);
        }
        match self.groups.get_mut(name) {
            None => {
                self.groups.insert(
                    name.into(),
                    Group {
                        owner: pos,
                        waiting: BTreeSet::new(),
                    },
                );
                self.members.insert(pos, name.into());
                Admit::Lease
            }
            Some(g) => {
                g.waiting.insert((Reverse(pos.0), pos.1));
                self.members.insert(pos, name.into());
                Admit::Wait
            }
        }
    }

    /// The message at `pos` is done (acknowledged, dead-lettered or
    /// expired): out of its group. Returns the group's next owner if it was
    /// the owner and another message waits (the caller makes it ready).
    pub(crate) fn done(&mut self, pos: Position) -> Option<Position> {
        let name = self.members.remove(&pos)?;
        let g = self.groups.get_mut(&name)?;
        if g.owner != pos {
            g.waiting.remove(&(Reverse(pos.0), pos.1));
            return None;
        }
        match g.waiting.pop_first() {
            Some((Reverse(level), offset)) => {
                g.owner = (level, offset);
                Some(g.owner)
            }
            None => {
                self.groups.remove(&name);
                None
            }
        }
    }

    /// [`Groups::done`] of every member of `level` in `first..=last`; the
    /// next owners that are left (outside the range), added to `promoted`.
    pub(crate) fn done_range(
        &mut self,
        level: u8,
        first: u64,
        last: u64,
        promoted: &mut Vec<Position>,
    ) {
        if first > last {
            return;
        }
        let inside: Vec<Position> = self
            .members
            .range((level, first)..=(level, last))
            .map(|(p, _)| *p)
            .collect();
        let start = promoted.len();
        for pos in inside {
            if let Some(next) = self.done(pos) {
                promoted.push(next);
            }
        }
        // A next owner inside the range was done after it was promoted.
        let mut i = start;
        while i < promoted.len() {
            if self.is_owner(promoted[i]) {
                i += 1;
            } else {
                promoted.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_per_group_and_the_next_is_the_highest_level_lowest_offset() {
        let mut g = Groups::default();
        assert!(g.is_empty());
        assert_eq!(g.admit((0, 1), b"a"), Admit::Lease);
        assert_eq!(
            g.admit((0, 2), b"b"),
            Admit::Lease,
            "other groups go in parallel"
        );
        assert_eq!(g.admit((0, 3), b"a"), Admit::Wait);
        assert_eq!(g.admit((0, 5), b"a"), Admit::Wait);
        assert_eq!(g.admit((1, 9), b"a"), Admit::Wait);
        // Reached again (a redelivery): the same answer.
        assert_eq!(g.admit((0, 1), b"a"), Admit::Lease);
        assert_eq!(g.admit((0, 3), b"a"), Admit::Wait);
        assert_eq!(g.len(), 2);
        // A waiting message acknowledged (ack_up_to) just leaves.
        assert_eq!(g.done((0, 5)), None);
        assert_eq!(g.done((0, 1)), Some((1, 9)), "the higher level first");
        assert!(g.is_owner((1, 9)));
        assert_eq!(g.admit((0, 3), b"a"), Admit::Wait);
        assert_eq!(g.done((1, 9)), Some((0, 3)));
        assert_eq!(g.admit((0, 3), b"a"), Admit::Lease);
        assert_eq!(g.done((0, 3)), None);
        assert_eq!(g.done((0, 2)), None);
        assert!(g.is_empty());
        assert_eq!(g.len(), 0);
        assert_eq!(g.done((0, 2)), None, "twice changes nothing");
    }

    #[test]
    fn a_range_done_at_once_leaves_the_owner_after_it() {
        let mut g = Groups::default();
        for o in 0..6 {
            g.admit((0, o), b"a");
        }
        g.admit((1, 0), b"b");
        g.admit((1, 1), b"b");
        let mut promoted = Vec::new();
        g.done_range(0, 0, 3, &mut promoted);
        assert_eq!(promoted, [(0, 4)]);
        assert!(g.is_owner((0, 4)));
        promoted.clear();
        g.done_range(0, 0, u64::MAX, &mut promoted);
        assert!(promoted.is_empty());
        assert!(g.is_owner((1, 0)), "another level untouched");
        g.done_range(1, 5, 2, &mut promoted);
        assert!(promoted.is_empty());
        g.done_range(1, 0, 1, &mut promoted);
        assert!(promoted.is_empty());
        assert!(g.is_empty());
    }
}
