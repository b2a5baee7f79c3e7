//! Primary uniqueness: at most one server is an established leader in any epoch, over the whole
//! run (a later leader of the same epoch on another server is a split brain even if the first
//! one has stepped down).
//!
//! Source: Zab paper §3, "Primary uniqueness"; the TLA+ spec's `Leadership1`/`Leadership2`.
//! Standalone, the one server leads epoch 0 of its own and the check is trivially true.

use std::collections::BTreeMap;

use zkr_core::Node;

use super::Violation;

/// Records `node` (slot `n`) if it is an established leader; `leaders` maps epoch → slot.
pub fn observe(
    leaders: &mut BTreeMap<u32, usize>,
    n: usize,
    node: &Node,
    now: u64,
) -> Option<Violation> {
    if node.config().is_standalone() || !node.is_established_leader() {
        return None;
    }
    let epoch = node.epochs().1;
    match leaders.get(&epoch) {
        None => {
            leaders.insert(epoch, n);
            None
        }
        Some(m) if *m == n => None,
        Some(m) => Some(Violation {
            invariant: "leaders",
            at_ns: now,
            message: format!("n{n} is an established leader of epoch {epoch}, as n{m} was"),
        }),
    }
}
