//! `ByZxid`: the first value recorded at each zxid, kept as a vector sorted by zxid.
//!
//! The agreement and digest checks look a zxid up after every apply on every server: the first
//! server to apply a zxid records it, the others compare. Zxids are committed in increasing
//! order, so nearly every new zxid goes at the end (a push) and nearly every look-up is of a
//! recent one (a binary search over a contiguous vector); a `BTreeMap` paid a tree descent and
//! its node comparisons for both. A zxid first recorded out of order (a server that skipped
//! it by a SNAP may record older ones later) is inserted in place, so the order always holds.

use zkr_core::types::Zxid;

/// Values by zxid, sorted, one per zxid.
#[derive(Debug)]
pub struct ByZxid<V> {
    entries: Vec<(Zxid, V)>,
}

impl<V> Default for ByZxid<V> {
    fn default() -> Self {
        ByZxid { entries: Vec::new() }
    }
}

impl<V> ByZxid<V> {
    /// The value recorded at `zxid`, or `None` after recording `value()` there.
    pub fn first_or_record(&mut self, zxid: Zxid, value: impl FnOnce() -> V) -> Option<&V> {
        let at = match self.entries.last() {
            Some((last, _)) if *last >= zxid => {
                self.entries.binary_search_by_key(&zxid, |(z, _)| *z)
            }
            _ => Err(self.entries.len()),
        };
        match at {
            Ok(i) => {
                assert_eq!(self.entries[i].0, zxid, "found the zxid asked for");
                Some(&self.entries[i].1)
            }
            Err(i) => {
                assert!(i == 0 || self.entries[i - 1].0 < zxid, "sorted before {zxid}");
                assert!(i == self.entries.len() || self.entries[i].0 > zxid, "sorted after");
                self.entries.insert(i, (zxid, value()));
                None
            }
        }
    }

    /// Every entry, in zxid order.
    pub fn entries(&self) -> &[(Zxid, V)] {
        &self.entries
    }

    /// The value at `zxid`, if one was recorded.
    pub fn get(&self, zxid: Zxid) -> Option<&V> {
        let i = self.entries.binary_search_by_key(&zxid, |(z, _)| *z).ok()?;
        Some(&self.entries[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeMap;

    /// Against a `BTreeMap` with `entry().or_insert`: the same first value at each zxid, the
    /// same answers, the same order, for zxids that mostly increase but sometimes go back.
    #[test]
    fn answers_as_a_map_of_first_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut table = ByZxid::default();
        let mut reference: BTreeMap<Zxid, u32> = BTreeMap::new();
        let mut top = 0i64;
        for value in 0..5_000u32 {
            let zxid = match rng.random_range(0..10) {
                0..=5 => {
                    top += rng.random_range(1..3);
                    Zxid(top)
                }
                6..=8 => Zxid((top - rng.random_range(0..8)).max(0)),
                _ => Zxid(rng.random_range(0..=top)),
            };
            let expected = reference.get(&zxid).copied();
            reference.entry(zxid).or_insert(value);
            assert_eq!(table.first_or_record(zxid, || value).copied(), expected, "{zxid}");
            assert_eq!(table.get(zxid), reference.get(&zxid));
        }
        let flat: Vec<(Zxid, u32)> = reference.into_iter().collect();
        assert_eq!(table.entries(), &flat[..], "one entry per zxid, in order");
        // A later value at a recorded zxid does not replace the first.
        assert_eq!(table.first_or_record(flat[0].0, || u32::MAX), Some(&flat[0].1));
        assert_eq!(table.entries().len(), flat.len(), "nothing recorded twice");
    }
}
