//! Zab: fast leader election, discovery, synchronization and broadcast (Junqueira, Reed,
//! Serafini, DSN 2011; ZooKeeper's `Leader`/`Learner`/`LearnerHandler`), as pure code.
//!
//! - [`message`]: the typed peer protocol;
//! - [`quorum`]: majority verifier over voting members;
//! - [`election`]: fast leader election.

pub mod election;
pub mod message;
pub mod quorum;
