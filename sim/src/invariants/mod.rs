//! Invariants, one module per property, each headed by its source. The simulator calls them at
//! fixed hook points (after a node step, at a crash, at a restart, when a client gets a reply,
//! on every tick of a node, at the end of the seed); each returns [`Violation`]s instead of
//! panicking, so a campaign can report the seed and go on.
//!
//! | property | source | module |
//! |---|---|---|
//! | no two servers commit different txns at one zxid (also across restarts of one server) | Zab paper §3 "Agreement", "Total order"; TLA+ `PrefixConsistency` | [`agreement`] |
//! | committed txns are never lost or truncated (durable on a quorum after every crash) | TLA+ `CommittedLogDurability`; Zab §3 "Integrity" | [`durability`] |
//! | every acknowledged client write survives (same txn at its zxid, on a quorum) | ZooKeeper guarantee "Reliability" | [`acked_writes`] |
//! | replicas that applied the same zxid have equal tree digests (recovery replays to the same digest) | ZooKeeper `DigestCalculator` (ZOOKEEPER-3114) | [`digest`] |
//! | ephemerals disappear once their session is closed or expired, within the timeout plus a bound | ZooKeeper programmer's guide, "Ephemeral Nodes" | [`ephemerals`] |
//! | replies come back in request order per session | ZooKeeper guarantee "Sequential consistency" / FIFO client order | [`session_fifo`] |
//! | client-visible history: linearizable writes, FIFO sessions, monotone reads, sync, watch before data | ZooKeeper guarantees; checked by `zkr-jepsen` | [`history`] |
//! | core's own `invariants()` hold after every step (panics are caught per seed) | core/src/node.rs `Node::invariants` | `runner` (`catch_unwind`) |
//! | after faults stop, a connected majority commits a fresh client's write within a bound | STYLE.md practice 12 (liveness phase) | [`liveness`] |
//! | at most one established leader per epoch | Zab §3 "Primary uniqueness"; TLA+ `Leadership1` | [`leaders`] |
//! | local and global primary order, primary integrity | Zab §3; TLA+ `LocalPrimaryOrder`, `GlobalPrimaryOrder`, `PrimaryIntegrity` | needs multi-node seeds (not yet a module) |
//!
//! To add an invariant: write a module here headed by its source, give it a struct with the
//! hooks it needs, add a row to this table and a field to [`Checks`], and call it from
//! `sim.rs` at the hook point (see docs/TESTING.md).

pub mod acked_writes;
pub mod agreement;
pub mod digest;
pub mod durability;
pub mod ephemerals;
pub mod history;
pub mod leaders;
pub mod liveness;
pub mod session_fifo;

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The module that found it.
    pub invariant: &'static str,
    /// Simulated time, ns.
    pub at_ns: u64,
    /// What went wrong, for a person.
    pub message: String,
}

/// The state of every continuously checked invariant of one seed.
#[derive(Debug, Default)]
pub struct Checks {
    /// See [`agreement`].
    pub agreement: agreement::Agreement,
    /// See [`acked_writes`].
    pub acked: acked_writes::AckedWrites,
    /// See [`digest`].
    pub digest: digest::Digests,
    /// See [`ephemerals`].
    pub ephemerals: ephemerals::Ephemerals,
}

/// The majority of a cluster of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}
