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
//! This file holds the role enum, the transitions between roles and the peer-message dispatch.
//! Invariants: a node is in exactly one role; only an established leader prepares txns,
//! proposes, expires sessions or deletes containers; a node serves clients only as an established
//! leader or a learner in broadcast; leaving a serving role closes every client connection.

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
use crate::io::Output;
use crate::node::Node;
use crate::types::{ServerId, Zxid};
use crate::zab::election::{Election, ElectionAction};
use crate::zab::leader::{HandlerPhase, Leader, LeaderPhase};
use crate::zab::learner::Learner;
use crate::zab::message::{PeerState, Vote, ZabMessage};
use crate::zab::quorum::Quorum;

/// A leader's learner counts, for `mntr` (see [`Node::leader_counts`]).
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

impl Node {
    /// True when this node is the established leader (always, standalone).
    pub fn is_established_leader(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if l.phase.is_established())
    }

    /// True when this node may serve clients.
    pub fn is_serving(&self) -> bool {
        match &self.role {
            Role::Leading(l) => l.phase.is_established(),
            Role::Following(l) => l.phase == learner::LearnerPhase::Broadcast,
            Role::Looking(_) => false,
        }
    }

    /// The state election notifications report.
    pub fn peer_state(&self) -> PeerState {
        let observer = !self.quorum.is_voter(self.config.server_id);
        match &self.role {
            Role::Looking(_) if observer => PeerState::Observing,
            Role::Looking(_) => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Following(_) if observer => PeerState::Observing,
            Role::Following(_) => PeerState::Following,
        }
    }

    /// The counts ZooKeeper's leader reports in `mntr` (`zk_learners`, `zk_synced_followers`,
    /// `zk_synced_observers`, `zk_pending_syncs`); `None` unless this node leads an ensemble.
    pub fn leader_counts(&self) -> Option<LeaderCounts> {
        let Role::Leading(leader) = &self.role else { return None };
        if leader.phase == LeaderPhase::Standalone {
            return None;
        }
        let synced = |observer: bool| {
            let handlers = leader.learners.values();
            handlers.filter(|h| h.observer == observer && h.phase == HandlerPhase::Synced).count()
        };
        let counts = LeaderCounts {
            learners: leader.learners.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
            pending_syncs: leader.syncs.len(),
        };
        assert!(counts.synced_followers + counts.synced_observers <= counts.learners);
        Some(counts)
    }

    /// The leader this node follows or is, once decided.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.role {
            Role::Leading(_) => Some(self.config.server_id),
            Role::Following(l) => Some(l.leader),
            Role::Looking(_) => None,
        }
    }

    pub(crate) fn send_peer(&mut self, to: ServerId, msg: ZabMessage) {
        assert_ne!(to, self.config.server_id, "never send to self");
        self.outputs.push(Output::PeerSend { to, msg });
    }

    pub(crate) fn persist_epochs(&mut self) {
        assert!(self.current_epoch <= self.accepted_epoch);
        let (accepted_epoch, current_epoch) = (self.accepted_epoch, self.current_epoch);
        self.outputs.push(Output::PersistEpochs { accepted_epoch, current_epoch });
    }

    fn members_except_me(&self) -> Vec<ServerId> {
        let me = self.config.server_id;
        self.config.members.iter().map(|m| m.id).filter(|id| *id != me).collect()
    }

    /// Leaves any serving role: closes clients, forgets pending work, starts an election.
    pub(crate) fn become_looking(&mut self) {
        assert!(!self.config.is_standalone(), "standalone servers never look");
        tracing::info!(server = self.config.server_id.0, "going back to leader election");
        let conns: Vec<_> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close_conn(conn);
        }
        self.prep.clear();
        self.connecting.clear();
        // A learner's forwarded syncs, touched sessions and revalidations go with its role.
        let own = Vote {
            leader: self.config.server_id,
            zxid: self.log.last_logged(),
            peer_epoch: self.current_epoch,
        };
        let (config, quorum, now) = (&self.config, &self.quorum, self.now_tick);
        let (election, actions) =
            start_election(config, quorum, &mut self.rng, own, self.last_round, now);
        self.last_round = election.logical_clock();
        self.role = Role::Looking(election);
        // Leaving a serving role closes every client (ZooKeeper's shutdown of the request
        // processors): a looking server has no committed view it may serve from.
        assert!(self.conns.values().all(|c| !c.is_active()), "no client is served while looking");
        assert_eq!(self.prep.len(), 0, "no prepared change survives a role change");
        self.run_election_actions(actions);
    }

    pub(crate) fn run_election_actions(&mut self, actions: Vec<ElectionAction>) {
        for action in actions {
            match action {
                ElectionAction::Broadcast(msg) => {
                    for peer in self.members_except_me() {
                        self.send_peer(peer, msg.clone());
                    }
                }
                ElectionAction::Send(to, msg) => self.send_peer(to, msg),
                ElectionAction::Decided { leader, vote, election_epoch } => {
                    return self.on_elected(leader, vote, election_epoch);
                }
            }
        }
    }

    fn on_elected(&mut self, leader: ServerId, vote: Vote, election_epoch: u64) {
        tracing::info!(
            server = self.config.server_id.0,
            leader = leader.0,
            election_epoch,
            "election decided"
        );
        self.last_round = election_epoch;
        self.leader_vote = Some(vote);
        if leader == self.config.server_id {
            // Peers the election saw lost cannot follow us either until they speak again.
            let lost = match &self.role {
                Role::Looking(election) => election.lost_peers(),
                _ => Vec::new(),
            };
            self.become_leader();
            if let Role::Leading(l) = &mut self.role {
                for peer in lost {
                    l.backing.lost(peer);
                }
            }
        } else {
            let observer = !self.quorum.is_voter(self.config.server_id);
            self.become_learner(leader, observer);
        }
    }

    /// Peer messages: notifications go to the election (or get our vote back), the rest to the
    /// current role.
    pub(crate) fn on_peer_message(&mut self, from: ServerId, msg: ZabMessage) {
        let known = self.config.members.iter().any(|m| m.id == from);
        if !known || from == self.config.server_id {
            tracing::warn!(from = from.0, "message from a non-member ignored");
            return;
        }
        if let ZabMessage::Notification { vote, election_epoch, state } = msg {
            return self.on_notification(from, vote, election_epoch, state);
        }
        if let Role::Leading(leader) = &mut self.role {
            // A learner message: the sender follows us, whatever it said before.
            leader.backing.heard(from);
        }
        match &self.role {
            Role::Leading(_) => self.leader_on_message(from, msg),
            Role::Following(l) if l.leader == from => self.learner_on_message(msg),
            _ => {}
        }
    }

    /// The shell lost its connection to `peer` (see `Input::PeerLost`). A learner whose leader
    /// it is elects at once instead of waiting `syncLimit` for silence; a leader forgets the
    /// learner (and steps down without a quorum); an election forgets the peer's votes, so it
    /// does not settle on a vote only a dead server still backs.
    pub(crate) fn on_peer_lost(&mut self, peer: ServerId) {
        let known = self.config.members.iter().any(|m| m.id == peer);
        if !known || peer == self.config.server_id || self.config.bugs.ignore_peer_lost {
            return;
        }
        // A peer never heard from may be starting (the shell reports it lost when a notification
        // to it is dropped): deciding without it could elect a server that then follows it.
        let heard = self.peers_heard.contains(&peer);
        match &mut self.role {
            Role::Looking(election) if heard => election.forget(peer),
            Role::Looking(_) => {}
            Role::Following(l) if l.leader == peer => {
                tracing::info!(leader = peer.0, "lost the connection to the leader; electing");
                self.become_looking();
                if let Role::Looking(election) = &mut self.role {
                    // Nothing better can come from it: the others need not wait for its vote.
                    election.forget(peer);
                }
                assert!(self.leader().is_none(), "a lost leader is not followed");
            }
            Role::Following(_) => {}
            Role::Leading(leader) => {
                leader.backing.lost(peer);
                self.leader_on_peer_lost(peer);
                self.leave_if_unbacked();
            }
        }
    }

    fn on_notification(&mut self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) {
        if self.left_by_leader(from, epoch, state) {
            tracing::info!(
                leader = from.0,
                round = epoch,
                "the leader is electing again; electing"
            );
            self.become_looking();
            assert!(self.leader().is_none(), "a leader that left is not followed");
            // The election counts the notification that told us: the leader's vote in its round.
        } else if self.unbacked_after(from, vote, epoch, state) {
            // Stepped down; the election counts the notification too (it may name a new round).
            assert!(self.leader().is_none(), "a leader that stepped down leads no more");
        }
        let now = self.now_tick;
        if let Role::Looking(election) = &mut self.role {
            let actions = election.on_notification(now, from, vote, epoch, state);
            return self.run_election_actions(actions);
        }
        if state == PeerState::Looking || state == PeerState::Observing {
            // Tell a looking server who leads, so it can join without a new round.
            if let Some(vote) = self.leader_vote {
                let reply = ZabMessage::Notification {
                    vote,
                    election_epoch: self.last_round,
                    state: self.peer_state(),
                };
                self.send_peer(from, reply);
            }
        }
    }

    /// A leader not yet established records what `from`'s notification says of it, and steps
    /// down when the voters that may still follow it no longer make a quorum (see
    /// [`election::Backing`]). True when it stepped down.
    fn unbacked_after(&mut self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) -> bool {
        let round = self.last_round;
        let won = self.leader_vote;
        let Role::Leading(leader) = &mut self.role else { return false };
        if leader.phase.is_established() {
            return false;
        }
        let won = won.expect("an elected leader knows the vote that elected it");
        assert_eq!(won.leader, self.config.server_id, "we lead on our own vote");
        leader.backing.on_notification(won, round, from, vote, epoch, state);
        self.leave_if_unbacked()
    }

    /// Steps down a leader not yet established that no quorum can follow any more (issue 17:
    /// waiting `initLimit` for it keeps its followers out of every other election). True when
    /// it stepped down.
    fn leave_if_unbacked(&mut self) -> bool {
        let me = self.config.server_id;
        let Role::Leading(leader) = &self.role else { return false };
        if leader.phase.is_established() || !leader.backing.hopeless(me, &self.quorum) {
            return false;
        }
        tracing::info!(server = me.0, "no quorum can follow us any more; back to election");
        self.become_looking();
        assert!(matches!(self.role, Role::Looking(_)), "stepped down");
        true
    }

    /// True when `from` is the leader we follow and it reports looking in a round after the one
    /// we elected it in: it left the role (stepped down, or never took it and moved on), so
    /// waiting for it in discovery (`initLimit`) or broadcast (`syncLimit`) is wasted. Its
    /// looking notifications of our own round are not that: they predate its decision (a
    /// delayed one, or its answer to a vote of ours), and it may still be about to lead us.
    /// ZooKeeper's learner learns the same from its leader connection: a leader that stops
    /// leading closes its learners' sockets and stops accepting new ones.
    fn left_by_leader(&self, from: ServerId, epoch: u64, state: PeerState) -> bool {
        let Role::Following(l) = &self.role else { return false };
        l.leader == from && state == PeerState::Looking && epoch > self.last_round
    }

    /// Role timers, once per tick.
    pub(crate) fn zab_tick(&mut self) {
        let now = self.now_tick;
        match &mut self.role {
            Role::Looking(election) => {
                let actions = election.on_tick(now);
                self.run_election_actions(actions);
            }
            Role::Leading(_) => self.leader_tick(),
            Role::Following(_) => self.learner_tick(),
        }
    }

    /// The log's durable point moved.
    pub(crate) fn zab_durable(&mut self) {
        match &self.role {
            Role::Leading(_) => self.leader_durable(),
            Role::Following(_) => self.learner_durable(),
            Role::Looking(_) => {}
        }
    }

    /// The zxid the leader gives its next proposal.
    pub(crate) fn next_zxid(&self) -> Zxid {
        let Role::Leading(leader) = &self.role else { panic!("only the leader numbers txns") };
        let epoch = leader.phase.epoch().expect("an established leader has an epoch");
        let last = self.log.last_logged();
        // zxid = (epoch << 32) | counter; the first proposal of an epoch has counter 1, as
        // (epoch, 0) names NEWLEADER (ZooKeeper's ZxidUtils, Zab phase 2).
        let zxid = if last.epoch() < epoch { Zxid::new(epoch, 1) } else { last.next() };
        assert!(zxid > last, "zxids strictly increase");
        assert_eq!(zxid.epoch(), epoch, "a leader numbers txns in its own epoch only");
        zxid
    }

    /// Role-level invariants that cost O(1) in the node's tables (O(ensemble size) at most):
    /// run after every step.
    pub(crate) fn zab_invariants(&self) {
        match &self.role {
            Role::Leading(leader) => leader.invariants(self),
            Role::Following(learner) => learner.invariants(self),
            Role::Looking(election) => {
                assert!(!self.config.is_standalone(), "standalone servers never look");
                let round = election.logical_clock();
                assert!(round >= self.last_round, "an election round never goes back");
            }
        }
    }

    /// Role-level invariants that walk the connection table: part of the full sweep.
    pub(crate) fn zab_invariants_full(&self) {
        if !self.is_serving() {
            assert!(
                self.conns.values().all(|c| !c.is_active()),
                "no sessions served unless serving"
            );
        }
        if let Role::Following(learner) = &self.role {
            for (session, (conn, _, _)) in &learner.revalidating {
                let exists = self.conns.contains_key(conn);
                assert!(exists, "revalidating conn {conn:?} of {session} exists");
            }
        }
    }
}
