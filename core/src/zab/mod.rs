//! Zab: fast leader election, discovery, synchronization and broadcast (Junqueira, Reed,
//! Serafini, DSN 2011; ZooKeeper's `Leader`/`Learner`/`LearnerHandler`), as pure code.
//!
//! - [`message`]: the typed peer protocol;
//! - [`quorum`]: majority verifier over voting members;
//! - [`election`]: fast leader election;
//! - [`fifo`]: the FIFO sequencer of a leader–learner session, used by both ends;
//! - [`log`]: the in-memory view of the txn log (logged, durable, committed);
//! - [`leader`]: discovery, sync and broadcast from the leader's side (and standalone mode,
//!   which is a leader with a quorum of one in epoch 0);
//! - [`learner`]: the same from a follower's or observer's side.
//!
//! This file holds the role enum, whose variants own their phase state, and the roles' answers to
//! the client pipeline ([`Upstream`]). Each role's handlers are methods of its own state that
//! borrow the node's shared state ([`Shared`]); the dispatcher that picks the role and replaces
//! it lives in `crate::dispatch`, so nothing here imports `Node`.
//! Invariants: a node is in exactly one role; only an established leader prepares txns,
//! proposes, expires sessions or deletes containers; a node serves clients only as an established
//! leader or a learner in broadcast; a role never replaces itself (its handlers return [`Next`]).

pub mod election;
pub mod fifo;
pub mod leader;
pub mod learner;
pub mod log;
pub mod message;
pub mod quorum;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::proto::client::Request;
use crate::proto::error::ZkError;
use crate::shared::{Shared, Upstream};
use crate::types::{ConnId, SessionId, Zxid};
use crate::zab::election::{Election, ElectionAction};
use crate::zab::leader::Leader;
use crate::zab::learner::Learner;
use crate::zab::message::Vote;
use crate::zab::quorum::Quorum;

/// A leader's learner counts, for `mntr` (see `Node::leader_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderCounts {
    /// Learners connected (any phase).
    pub learners: usize,
    /// Voting followers that acknowledged NEWLEADER.
    pub synced_followers: usize,
    /// Observers that acknowledged NEWLEADER.
    pub synced_observers: usize,
    /// Syncs waiting for the commit point.
    pub pending_syncs: usize,
}

/// Starts an election round after `last_round` with our own vote, drawing the finalize wait's
/// jitter from the node's PRNG (so two servers that start together rarely time out together).
pub(crate) fn start_election(
    config: &Config,
    quorum: &Quorum,
    rng: &mut ChaCha8Rng,
    own: Vote,
    last_round: u64,
    now: u64,
) -> (Election, Vec<ElectionAction>) {
    assert!(!config.is_standalone(), "standalone servers never look");
    assert_eq!(own.leader, config.server_id, "we start by voting for ourselves");
    let finalize = config.ms_to_ticks(election::FINALIZE_WAIT_MS).max(1);
    let finalize = finalize + rng.random_range(0..=finalize);
    let max_backoff = config.ms_to_ticks(election::MAX_NOTIFICATION_TIMEOUT_MS).max(finalize);
    let id = config.server_id;
    Election::start(id, quorum.clone(), own, last_round, now, finalize, max_backoff)
}

/// What this server is doing in the ensemble.
#[derive(Clone, Debug)]
pub enum Role {
    /// Electing a leader.
    Looking(Election),
    /// Leading (standalone servers always lead).
    Leading(Box<Leader>),
    /// Following or observing a leader.
    Following(Learner),
}

/// What a role's handler asks of the dispatcher once it returns. A role never replaces itself:
/// a handler that must give up the role (a leader without a quorum, a learner whose leader is
/// gone or broke the protocol) returns `Elect` at once, and the dispatcher starts the election,
/// so nothing the handler would have done after it runs in a role it no longer holds.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep the role.
    Stay,
    /// Go back to leader election.
    Elect,
}

/// The role's answers to the client pipeline and the apply path: the leader's or the learner's
/// (see their `Upstream` impls). A looking server serves no client (its connections were closed
/// when it left its role), so a request that would reach it is a broken state.
impl Upstream for Role {
    fn serving(&self) -> bool {
        match self {
            Role::Leading(leader) => leader.serving(),
            Role::Following(learner) => learner.serving(),
            Role::Looking(_) => false,
        }
    }

    fn is_learner(&self) -> bool {
        matches!(self, Role::Following(_))
    }

    fn create_session(&mut self, shared: &mut Shared, session: SessionId, timeout_ms: i32) {
        self.upstream().create_session(shared, session, timeout_ms)
    }

    fn write(
        &mut self,
        shared: &mut Shared,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
    ) {
        self.upstream().write(shared, conn, session, xid, req)
    }

    fn failed_write(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        xid: i32,
        err: ZkError,
    ) -> Zxid {
        self.upstream().failed_write(shared, session, xid, err)
    }

    fn close_session(&mut self, shared: &mut Shared, conn: ConnId, session: SessionId, xid: i32) {
        self.upstream().close_session(shared, conn, session, xid)
    }

    fn sync(&mut self, shared: &mut Shared, conn: ConnId, xid: i32) {
        self.upstream().sync(shared, conn, xid)
    }

    fn revalidating(
        &mut self,
        session: SessionId,
        waiter: (ConnId, i32, Option<bool>),
    ) -> Option<ConnId> {
        self.upstream().revalidating(session, waiter)
    }

    fn revalidate(&mut self, shared: &mut Shared, session: SessionId) {
        self.upstream().revalidate(shared, session)
    }

    fn touched(&mut self, session: SessionId) {
        if let Role::Following(learner) = self {
            learner.touched(session);
        }
    }

    fn conn_closed(&mut self, conn: ConnId, session: SessionId) {
        if let Role::Following(learner) = self {
            learner.conn_closed(conn, session);
        }
    }

    fn applied(&mut self, shared: &mut Shared) {
        if let Role::Leading(leader) = self {
            leader.applied(shared);
        }
    }

    fn log_read_upto(&self) -> Option<Zxid> {
        match self {
            Role::Leading(leader) => leader.log_read_upto(),
            _ => None,
        }
    }
}

impl Role {
    /// The serving role's own answers; a looking server has none (see `impl Upstream for Role`).
    fn upstream(&mut self) -> &mut dyn Upstream {
        match self {
            Role::Leading(leader) => &mut **leader,
            Role::Following(learner) => learner,
            Role::Looking(_) => panic!("a looking server serves no client"),
        }
    }
}
