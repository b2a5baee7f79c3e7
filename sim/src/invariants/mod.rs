//! Invariants, one module per property, each headed by its source. The simulator calls them at
//! fixed hook points (after a node step, at a crash, at a restart, when a client gets a reply,
//! on every tick of a node, at the end of the seed); each returns [`Violation`]s instead of
//! panicking, so a campaign can report the seed and go on.
//!
//! | property | source | module |
//! |---|---|---|
//! | one txn per zxid across servers and restarts | Zab §3 Agreement, Total order | [`agreement`] |
//! | committed txns never lost or truncated | TLA+ `CommittedLogDurability` | [`durability`] |
//! | acknowledged writes survive (same txn) | ZooKeeper "Reliability" | [`acked_writes`] |
//! | equal tree digest at equal zxid | ZooKeeper `DigestCalculator` | [`digest`] |
//! | ephemerals end with their session | ZooKeeper guide, "Ephemeral Nodes" | [`ephemerals`] |
//! | no session expires before its timeout | ZooKeeper guide, "Sessions" | [`expiry`] |
//! | nor one a learner heard from (once reported) | `LearnerSessionTracker` | [`follower_expiry`] |
//! | a session id is created once (any server, restart) | `SessionTrackerImpl` | [`session_ids`] |
//! | replies in request order per session | ZooKeeper "Sequential Consistency" | [`session_fifo`] |
//! | client-visible history (via zkr-jepsen) | ZooKeeper guarantees | [`history`] |
//! | core's `check_step`/`check_full` (panics caught) | core/src/node.rs | `run_seed`, `sim.rs` |
//! | a healed majority commits a fresh write | STYLE.md practice 12 | [`liveness`] |
//! | at most one established leader per epoch | Zab §3; TLA+ `Leadership1` | [`leaders`] |
//! | a clean leader crash fails over within the election timeouts | issue 17; FLE | [`failover`] |
//! | local/global primary order, integrity | Zab §3; TLA+ `*PrimaryOrder` | needs Zab seeds |
//!
//! Details: the history check covers linearizable writes, FIFO sessions, monotone reads, sync
//! and watch-before-data; the digest check also compares a restarted server (which replays its
//! durable log) with what it showed before; the leaders check is trivially true standalone.
//! [`by_zxid`] is not a property: it is the table the agreement and digest checks record into.
//!
//! To add an invariant: write a module here headed by its source, give it a struct with the
//! hooks it needs, add a row to this table and a field to [`Checks`], and call it from
//! `sim.rs` at the hook point (see docs/TESTING.md).

pub mod acked_writes;
pub mod agreement;
pub mod by_zxid;
pub mod digest;
pub mod durability;
pub mod ephemerals;
pub mod expiry;
pub mod failover;
pub mod follower_expiry;
pub mod history;
pub mod leaders;
pub mod liveness;
pub mod session_fifo;
pub mod session_ids;

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
    /// See [`expiry`].
    pub expiry: expiry::Expiry,
    /// See [`failover`].
    pub failover: failover::Failover,
    /// See [`follower_expiry`].
    pub follower_expiry: follower_expiry::FollowerExpiry,
    /// See [`session_ids`].
    pub session_ids: session_ids::SessionIds,
}

/// The majority of a cluster of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}
