//! Majority quorums over the voting members of an ensemble (observers never count). Pure and
//! table-tested: every decision that needs "a quorum agrees" goes through `Quorum::contains`.

use std::collections::BTreeSet;

use crate::types::ServerId;

/// The voting members and the majority rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    voters: BTreeSet<ServerId>,
}

impl Quorum {
    /// A majority verifier over `voters` (must not be empty).
    pub fn new(voters: impl IntoIterator<Item = ServerId>) -> Quorum {
        let voters: BTreeSet<ServerId> = voters.into_iter().collect();
        assert!(!voters.is_empty(), "an ensemble needs at least one voter");
        Quorum { voters }
    }

    /// The voting members.
    pub fn voters(&self) -> &BTreeSet<ServerId> {
        &self.voters
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: ServerId) -> bool {
        self.voters.contains(&id)
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// True when the voters among `acks` form a strict majority. Non-voters are ignored.
    pub fn contains<'a>(&self, acks: impl IntoIterator<Item = &'a ServerId>) -> bool {
        let voting = acks.into_iter().filter(|id| self.voters.contains(id)).count();
        assert!(voting <= self.voters.len(), "acks are a set");
        voting >= self.majority()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<ServerId> {
        v.iter().map(|i| ServerId(*i)).collect()
    }

    #[test]
    fn majority_table() {
        for (n, majority) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            let q = Quorum::new((1..=n).map(ServerId));
            assert_eq!(q.majority(), majority, "n = {n}");
        }
    }

    #[test]
    fn observers_do_not_count() {
        let q = Quorum::new(ids(&[1, 2, 3]));
        assert!(!q.contains(&ids(&[1, 9, 10])));
        assert!(q.contains(&ids(&[1, 3])));
        assert!(!q.contains(&ids(&[2])));
    }
}
