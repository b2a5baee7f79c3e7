//! Liveness: after the fault phase ends (partitions healed, crashed servers restarted, pauses
//! over), a connected majority elects a leader (standalone: the one server serves) and a fresh
//! client's write is acknowledged within `swarm::LIVENESS_BOUND_NS`.
//!
//! Source: STYLE.md practice 12 (TigerBeetle VOPR `transition_to_liveness_mode`); Zab paper §3
//! assumes a quorum eventually up and connected for progress.

use super::Violation;

/// The verdict at the end of the liveness window: `acked_at` is when the fresh client's write
/// was acknowledged, if it was.
pub fn check(healed_at: u64, acked_at: Option<u64>, bound: u64, now: u64) -> Option<Violation> {
    match acked_at {
        Some(t) if t <= healed_at + bound => None,
        _ => Some(Violation {
            invariant: "liveness",
            at_ns: now,
            message: format!(
                "healed at {:.3}s, but a fresh client's write was not acknowledged within \
                 {:.3}s (acked at {:?})",
                healed_at as f64 / 1e9,
                bound as f64 / 1e9,
                acked_at.map(|t| t as f64 / 1e9)
            ),
        }),
    }
}
