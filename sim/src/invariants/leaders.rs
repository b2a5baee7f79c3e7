//! Primary uniqueness: at most one server is an established leader in any epoch, over the whole
//! run (a later leader of the same epoch on another server is a split brain even if the first
//! one has stepped down).
//!
//! Source: Zab paper §3, "Primary uniqueness"; the TLA+ spec's `Leadership1`/`Leadership2`.
//! Standalone, the one server leads epoch 0 of its own and the check is trivially true.

use std::collections::BTreeMap;

use zkr_core::Node;

use super::Violation;

/// The established leaders seen, by epoch, over the whole run.
#[derive(Debug, Default)]
pub struct Leaders {
    /// Epoch → the slot that first led it established.
    by_epoch: BTreeMap<u32, usize>,
    /// A slot and epoch that `by_epoch` maps to each other. Entries never change, so while
    /// that slot steps on as the established leader of that epoch there is nothing to find:
    /// its look-up after every leader step is skipped.
    confirmed: Option<(usize, u32)>,
}

impl Leaders {
    /// Records `node` (slot `n`) if it is an established leader.
    pub fn observe(&mut self, n: usize, node: &Node, now: u64) -> Option<Violation> {
        if node.config().is_standalone() || !node.is_established_leader() {
            return None;
        }
        self.leading(n, node.epochs().1, now)
    }

    /// Slot `n` is an established leader of `epoch`.
    pub fn leading(&mut self, n: usize, epoch: u32, now: u64) -> Option<Violation> {
        if self.confirmed == Some((n, epoch)) {
            debug_assert_eq!(self.by_epoch.get(&epoch), Some(&n), "a confirmed leader");
            return None;
        }
        match self.by_epoch.get(&epoch) {
            Some(m) if *m != n => {
                return Some(Violation {
                    invariant: "leaders",
                    at_ns: now,
                    message: format!("n{n} is an established leader of epoch {epoch}, as n{m} was"),
                });
            }
            Some(_) => {}
            None => {
                self.by_epoch.insert(epoch, n);
            }
        }
        self.confirmed = Some((n, epoch));
        assert_eq!(self.by_epoch.get(&epoch), Some(&n), "confirmed as recorded");
        None
    }

    /// The newest epoch an established leader was seen in, and its slot.
    pub fn newest(&self) -> Option<(u32, usize)> {
        self.by_epoch.last_key_value().map(|(e, n)| (*e, *n))
    }

    /// The newest epoch slot `n` led established (0 if none).
    pub fn last_epoch_of(&self, n: usize) -> u32 {
        self.by_epoch.iter().rev().find(|(_, l)| **l == n).map_or(0, |(e, _)| *e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second leader of an epoch is caught whatever slot was confirmed last: right after the
    /// first leader's own steps (the skipped look-ups), after it stepped down, and when the
    /// first comes back to an epoch another slot led since.
    #[test]
    fn a_second_leader_of_an_epoch_is_caught_after_the_first_was_confirmed() {
        let mut leaders = Leaders::default();
        assert!(leaders.leading(0, 5, 1).is_none(), "the first leader of epoch 5");
        assert!(leaders.leading(0, 5, 2).is_none(), "its next step");
        let v = leaders.leading(1, 5, 3).expect("a second leader of epoch 5 is a split brain");
        assert_eq!(v.invariant, "leaders");
        assert!(leaders.leading(1, 6, 4).is_none(), "slot 1 leads epoch 6");
        assert!(leaders.leading(1, 6, 5).is_none(), "and steps on");
        assert!(leaders.leading(0, 6, 6).is_some(), "slot 0 in epoch 6 is caught");
        assert!(leaders.leading(0, 5, 7).is_none(), "slot 0 led epoch 5 itself");
        assert!(leaders.leading(1, 5, 8).is_some(), "caught again, after slot 0's step");
        assert_eq!((leaders.last_epoch_of(0), leaders.last_epoch_of(1)), (5, 6));
        assert_eq!(leaders.last_epoch_of(2), 0, "never led");
    }
}
