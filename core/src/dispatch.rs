//! The dispatcher between `Node` and its role: which role handles a peer message, a tick, a
//! durable point or a lost peer, and the transitions between roles (election decided, leader
//! or learner gives up). Each role's handlers are methods of its own state that borrow
//! [`Shared`](crate::shared::Shared) (see `zab::leader`, `zab::learner`, `zab::election`); this
//! file is the only one besides `node.rs` that sees both `Node` and the roles, so `zab` never
//! imports `node`.
//!
//! Invariants: a node is in exactly one role; a role is replaced only here (a handler returns
//! [`Next::Elect`] instead of replacing itself); leaving a serving role closes every client
//! connection and drops every prepared change; a node serves clients only as an established
//! leader or a learner in broadcast.

use crate::node::Node;
use crate::txn::LoggedTxn;
use crate::types::ServerId;
use crate::zab::election::ElectionAction;
use crate::zab::leader::{HandlerPhase, Leader, LeaderPhase};
use crate::zab::learner::{Learner, LearnerPhase};
use crate::zab::message::{PeerState, Vote, ZabMessage};
use crate::zab::{LeaderCounts, Next, Role, start_election};

impl Node {
    /// True when this node is the established leader (always, standalone).
    pub fn is_established_leader(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if l.phase.is_established())
    }

    /// True when this node may serve clients.
    pub fn is_serving(&self) -> bool {
        match &self.role {
            Role::Leading(l) => l.phase.is_established(),
            // Before UPTODATE a learner's tree lags the history it is being synced to, and the
            // leader is not established: a read there could go back in time.
            Role::Following(l) => l.phase == LearnerPhase::Broadcast,
            Role::Looking(_) => false,
        }
    }

    /// The state election notifications report.
    pub fn peer_state(&self) -> PeerState {
        let observer = !self.shared.quorum.is_voter(self.shared.config.server_id);
        // An observer says so whatever it does, so that no voter counts its vote (FLE ignores
        // OBSERVING notifications) while it still learns who leads from the answers.
        let state = match &self.role {
            Role::Looking(_) if observer => PeerState::Observing,
            Role::Looking(_) => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Following(_) if observer => PeerState::Observing,
            Role::Following(_) => PeerState::Following,
        };
        assert!(!observer || !matches!(self.role, Role::Leading(_)), "observers never lead");
        assert_eq!(observer, state == PeerState::Observing, "observing is an observer's state");
        state
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
        // A follower handler is a voter other than us (non-voters are marked observers).
        let others = self.shared.quorum.voters().len() - 1;
        assert!(counts.synced_followers <= others, "synced followers are the other voters");
        Some(counts)
    }

    /// The leader this node follows or is, once decided.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.role {
            Role::Leading(_) => Some(self.shared.config.server_id),
            Role::Following(l) => Some(l.leader),
            Role::Looking(_) => None,
        }
    }

    /// Election notifications go to every member, observers included: an observer learns the
    /// leader from them, while a voter counts only voters (`Election::on_notification`).
    fn members_except_me(&self) -> Vec<ServerId> {
        let me = self.shared.config.server_id;
        self.shared.config.members.iter().map(|m| m.id).filter(|id| *id != me).collect()
    }

    /// Leaves any serving role: closes clients, forgets pending work, starts an election.
    pub(crate) fn become_looking(&mut self) {
        assert!(!self.shared.config.is_standalone(), "standalone servers never look");
        tracing::info!(server = self.shared.config.server_id.0, "going back to leader election");
        let conns: Vec<_> = self.shared.conns.keys().copied().collect();
        for conn in conns {
            self.shared.close_conn(conn);
        }
        self.shared.prep.clear();
        self.shared.connecting.clear();
        // A learner's forwarded syncs, touched sessions and revalidations go with its role.
        // Our vote is (current epoch, last logged zxid): FLE compares the epoch first, so a
        // server that missed an epoch's NEWLEADER cannot win with a long but stale log.
        let own = Vote {
            leader: self.shared.config.server_id,
            zxid: self.shared.log.last_logged(),
            peer_epoch: self.shared.current_epoch,
        };
        let (config, quorum, now) =
            (&self.shared.config, &self.shared.quorum, self.shared.now_tick);
        let (election, actions) =
            start_election(config, quorum, &mut self.shared.rng, own, self.shared.last_round, now);
        self.shared.last_round = election.logical_clock();
        self.role = Role::Looking(election);
        // Leaving a serving role closes every client (ZooKeeper's shutdown of the request
        // processors): a looking server has no committed view it may serve from.
        assert!(
            self.shared.conns.values().all(|c| !c.is_active()),
            "no client is served while looking"
        );
        assert_eq!(self.shared.prep.len(), 0, "no prepared change survives a role change");
        self.run_election_actions(actions);
    }

    pub(crate) fn run_election_actions(&mut self, actions: Vec<ElectionAction>) {
        assert!(matches!(self.role, Role::Looking(_)), "only an election acts");
        let count = actions.len();
        for (index, action) in actions.into_iter().enumerate() {
            match action {
                ElectionAction::Broadcast(msg) => {
                    for peer in self.members_except_me() {
                        self.shared.send_peer(peer, msg.clone());
                    }
                }
                ElectionAction::Send(to, msg) => self.shared.send_peer(to, msg),
                ElectionAction::Decided { leader, vote, election_epoch } => {
                    // The election goes with the decision: nothing may follow it, or it would
                    // act on a role that no longer exists.
                    assert_eq!(index + 1, count, "a decision is the election's last action");
                    return self.on_elected(leader, vote, election_epoch);
                }
            }
        }
    }

    fn on_elected(&mut self, leader: ServerId, vote: Vote, election_epoch: u64) {
        assert!(matches!(self.role, Role::Looking(_)), "decided by an election");
        tracing::info!(
            server = self.shared.config.server_id.0,
            leader = leader.0,
            election_epoch,
            "election decided"
        );
        self.shared.last_round = election_epoch;
        // Kept to answer looking servers: a server that restarts joins the established leader
        // from our FOLLOWING/LEADING answers, without a new round.
        self.shared.leader_vote = Some(vote);
        if leader == self.shared.config.server_id {
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
            let observer = !self.shared.quorum.is_voter(self.shared.config.server_id);
            self.become_learner(leader, observer);
        }
        // Leader election's output is the prospective leader of Zab phase 1 (the paper's
        // leader oracle): nothing is established yet, so nobody serves until discovery and
        // synchronization are done, unless we alone are a quorum (an ensemble of one voter).
        assert_eq!(self.leader(), Some(leader), "the decided leader is followed or is us");
        let alone = self.shared.quorum.majority() == 1;
        assert!(!self.is_serving() || alone, "nobody serves straight from an election");
    }

    /// Peer messages: notifications go to the election (or get our vote back), the rest to the
    /// current role.
    pub(crate) fn on_peer_message(&mut self, from: ServerId, msg: ZabMessage) {
        let known = self.shared.config.members.iter().any(|m| m.id == from);
        if !known || from == self.shared.config.server_id {
            // Peer input: dropped, never asserted on (STYLE.md practice 7).
            tracing::warn!(from = from.0, "message from a non-member ignored");
            return;
        }
        assert!(!self.shared.config.is_standalone(), "a standalone server has no members");
        if let ZabMessage::Notification { vote, election_epoch, state } = msg {
            return self.on_notification(from, vote, election_epoch, state);
        }
        if let Role::Leading(leader) = &mut self.role {
            // A learner message: the sender follows us, whatever it said before.
            leader.backing.heard(from);
        }
        if matches!(msg, ZabMessage::FollowerInfo { .. }) && self.answer_misdirected_info(from) {
            return;
        }
        // A learner hears only its own leader: a message from a former leader (delayed, or
        // from a leader that has not noticed it was replaced) must not touch our log.
        let next = match &mut self.role {
            Role::Leading(leader) => leader.on_message(&mut self.shared, from, msg),
            Role::Following(l) if l.leader == from => l.on_message(&mut self.shared, msg),
            _ => Next::Stay,
        };
        self.follow(next);
        let me = self.shared.config.server_id;
        assert!(!matches!(&self.role, Role::Following(l) if l.leader == me), "never self-led");
    }

    /// A FOLLOWERINFO reached us while we follow another server: its sender decided on us
    /// from a vote of ours we have since left (tier 1 seed 1161: it decided on our vote of
    /// round 2, we then followed server 4, and it waited `initLimit`, 18 s, repeating its
    /// FOLLOWERINFO). It sends no notification while it waits, so nothing answered it: now
    /// our FOLLOWING report does, and its `Learner::left_by_leader` leaves us if the report
    /// is of its round or later. ZooKeeper's learner finds out by its connection: a server
    /// that does not lead does not listen on the quorum port, and `connectToLeader` gives
    /// up. True when answered (a leader or a looking server handles the message as before).
    fn answer_misdirected_info(&mut self, from: ServerId) -> bool {
        if !matches!(self.role, Role::Following(_)) {
            return false;
        }
        let Some(vote) = self.shared.leader_vote else { return false };
        // `from` may be our own leader, restarted and now a learner of ours: the report that
        // we follow it tells it as much (peer input, never asserted on).
        let state = self.peer_state();
        assert!(matches!(state, PeerState::Following | PeerState::Observing));
        // Our answer to a looking server too: the vote we decided on, in the round we did.
        assert_eq!(self.leader(), Some(vote.leader), "we report the leader we follow");
        let reply =
            ZabMessage::Notification { vote, election_epoch: self.shared.last_round, state };
        self.shared.send_peer(from, reply);
        true
    }

    /// The shell lost its connection to `peer` (see `Input::PeerLost`). A learner whose leader
    /// it is elects at once instead of waiting `syncLimit` for silence; a leader forgets the
    /// learner (and steps down without a quorum); an election forgets the peer's votes, so it
    /// does not settle on a vote only a dead server still backs.
    pub(crate) fn on_peer_lost(&mut self, peer: ServerId) {
        let known = self.shared.config.members.iter().any(|m| m.id == peer);
        if !known
            || peer == self.shared.config.server_id
            || self.shared.config.bugs.ignore_peer_lost
        {
            return;
        }
        assert!(!self.shared.config.is_standalone(), "a standalone server has no peers");
        // A peer never heard from may be starting (the shell reports it lost when a notification
        // to it is dropped): deciding without it could elect a server that then follows it.
        let heard = self.shared.peers_heard.contains(&peer);
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
                let next = leader.on_peer_lost(&mut self.shared, peer);
                self.follow(next);
                self.leave_if_unbacked();
            }
        }
    }

    fn on_notification(&mut self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) {
        if self.left_by_leader(from, vote, epoch, state) {
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
        } else if self.learner_left(from, vote, state) {
            tracing::info!(learner = from.0, ?state, "a learner reports it left us; dropping it");
            self.on_peer_lost(from);
        }
        let now = self.shared.now_tick;
        if let Role::Looking(election) = &mut self.role {
            let actions = election.on_notification(now, from, vote, epoch, state);
            return self.run_election_actions(actions);
        }
        if state == PeerState::Looking || state == PeerState::Observing {
            // Tell a looking server who leads, so it can join without a new round.
            if let Some(vote) = self.shared.leader_vote {
                let reply = ZabMessage::Notification {
                    vote,
                    election_epoch: self.shared.last_round,
                    state: self.peer_state(),
                };
                self.shared.send_peer(from, reply);
            }
        }
    }

    /// A leader not yet established records what `from`'s notification says of it, and steps
    /// down when the voters that may still follow it no longer make a quorum (see
    /// [`crate::zab::election::Backing`]). True when it stepped down.
    fn unbacked_after(&mut self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) -> bool {
        let round = self.shared.last_round;
        let won = self.shared.leader_vote;
        let Role::Leading(leader) = &mut self.role else { return false };
        if leader.phase.is_established() {
            return false;
        }
        let won = won.expect("an elected leader knows the vote that elected it");
        assert_eq!(won.leader, self.shared.config.server_id, "we lead on our own vote");
        assert!(round >= 1, "a leader was elected in some round; rounds count from 1");
        leader.backing.on_notification(won, round, from, vote, epoch, state);
        leader.backing.saw_vote(won, leader.phase.epoch(), vote);
        self.leave_if_unbacked()
    }

    /// True when we lead, established, and `from`, one of our learners, reports that it no
    /// longer follows us: it looks, or follows or leads another server, in our epoch or a
    /// later one. ZooKeeper's leader learns this from the learner's socket, which a learner
    /// closes when it leaves; ours share the peer link, which stays up. Without it a leader
    /// keeps a learner that left until `syncLimit` of silence, counted in its own ticks: a
    /// leader paused past its followers' election held one of them after it resumed, and the
    /// next fail-over waited for it (tier 2 seed 36990, 1.77 s against the 1.54 s bound).
    /// Only a report made after the learner synced with us counts: its vote then names our
    /// epoch or later (a report from before it joined names an older one), so a delayed one
    /// is ignored. Dropping a learner wrongly costs it a rejoin, never safety.
    fn learner_left(&self, from: ServerId, vote: Vote, state: PeerState) -> bool {
        let me = self.shared.config.server_id;
        let Role::Leading(leader) = &self.role else { return false };
        if !leader.phase.is_established() || !leader.learners.contains_key(&from) {
            return false;
        }
        let epoch = leader.phase.epoch().expect("an established leader has an epoch");
        assert!(epoch >= 1, "an established leader's epoch counts from 1");
        assert!(from != me, "we are not our own learner");
        match state {
            PeerState::Looking => vote.peer_epoch >= epoch,
            PeerState::Following | PeerState::Leading | PeerState::Observing => {
                vote.leader != me && vote.peer_epoch >= epoch
            }
        }
    }

    /// Steps down a leader not yet established that no quorum can follow any more (issue 17:
    /// waiting `initLimit` for it keeps its followers out of every other election). True when
    /// it stepped down.
    fn leave_if_unbacked(&mut self) -> bool {
        let me = self.shared.config.server_id;
        let Role::Leading(leader) = &self.role else { return false };
        if leader.phase.is_established() || !leader.backing.hopeless(me, &self.shared.quorum) {
            return false;
        }
        // Safe to give up: nothing was committed in our epoch before establishment (the
        // history a quorum must hold is the one we were elected with), so no txn is lost.
        assert!(self.shared.log.committed() <= leader.history_end, "nothing new committed");
        tracing::info!(server = me.0, "no quorum can follow us any more; back to election");
        self.become_looking();
        assert!(matches!(self.role, Role::Looking(_)), "stepped down");
        true
    }

    /// True when `from` is the leader we follow and its notification shows it left the role
    /// (see `Learner::left_by_leader`). ZooKeeper's learner learns the same from its leader
    /// connection: a leader that stops leading closes its learners' sockets.
    fn left_by_leader(&self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) -> bool {
        let Role::Following(l) = &self.role else { return false };
        l.left_by_leader(from, vote, epoch, state, self.shared.last_round)
    }

    /// Role timers, once per tick.
    pub(crate) fn zab_tick(&mut self) {
        let now = self.shared.now_tick;
        // A standalone server leads epoch 0 for life: it has no quorum to lose, no timers that
        // could send it to an election it could not hold.
        let standalone = self.shared.config.is_standalone();
        assert!(!standalone || self.is_established_leader(), "standalone leads before a tick");
        match &mut self.role {
            Role::Looking(election) => {
                let actions = election.on_tick(now);
                self.run_election_actions(actions);
            }
            Role::Leading(leader) => {
                let next = leader.on_tick(&mut self.shared);
                self.follow(next);
            }
            Role::Following(learner) => {
                let next = learner.on_tick(&mut self.shared);
                self.follow(next);
            }
        }
        assert!(!standalone || self.is_established_leader(), "and after it");
    }

    /// The log's durable point moved.
    pub(crate) fn zab_durable(&mut self) {
        // Durability is an input (STYLE.md practice 2): ACKs, the epoch quorum and NEWLEADER
        // acknowledgements wait for it, never for the Persist output that asked for it.
        match &mut self.role {
            Role::Leading(leader) => leader.on_durable(&mut self.shared),
            Role::Following(learner) => learner.on_durable(&mut self.shared),
            Role::Looking(_) => {}
        }
    }

    /// Role-level invariants that cost O(1) in the node's tables (O(ensemble size) at most):
    /// run after every step.
    pub(crate) fn zab_invariants(&self) {
        match &self.role {
            Role::Leading(leader) => leader.invariants(&self.shared),
            Role::Following(learner) => learner.invariants(&self.shared),
            Role::Looking(election) => {
                assert!(!self.shared.config.is_standalone(), "standalone servers never look");
                let round = election.logical_clock();
                assert!(round >= self.shared.last_round, "an election round never goes back");
            }
        }
    }

    /// Role-level invariants that walk the connection table: part of the full sweep.
    pub(crate) fn zab_invariants_full(&self) {
        if !self.is_serving() {
            assert!(
                self.shared.conns.values().all(|c| !c.is_active()),
                "no sessions served unless serving"
            );
        }
        if let Role::Following(learner) = &self.role {
            for (session, (conn, _, _)) in &learner.revalidating {
                let exists = self.shared.conns.contains_key(conn);
                assert!(exists, "revalidating conn {conn:?} of {session} exists");
            }
        }
    }

    /// Follows a handler's answer: `Next::Elect` starts the election (see [`Next`]).
    fn follow(&mut self, next: Next) {
        if next == Next::Elect {
            self.become_looking();
            assert!(matches!(self.role, Role::Looking(_)), "back to election");
        }
    }

    /// Won an election: lead, starting discovery with our own accepted epoch on the table.
    fn become_leader(&mut self) {
        // A role change dropped every prepared change (`become_looking`); a node starts with none.
        assert_eq!(self.shared.prep.len(), 0, "a new leader prepares over the applied tree");
        let leader = Leader::elected(&self.shared);
        self.role = Role::Leading(Box::new(leader));
        let Role::Leading(leader) = &mut self.role else { unreachable!() };
        leader.maybe_decide_epoch(&mut self.shared);
        assert_eq!(self.leader(), Some(self.shared.config.server_id), "leading");
    }

    /// Follow (or observe) `leader`: introduce ourselves.
    fn become_learner(&mut self, leader: ServerId, observer: bool) {
        assert_eq!(self.shared.prep.len(), 0, "a learner prepares nothing");
        // A fresh learner each time: its session nonce is new, so what the leader sent an
        // earlier incarnation of us (still in flight) is dropped, not taken (`zab::fifo`).
        let learner = Learner::new(&mut self.shared, leader, observer);
        self.role = Role::Following(learner);
        let Role::Following(learner) = &mut self.role else { unreachable!() };
        learner.send_follower_info(&mut self.shared);
        assert_eq!(self.leader(), Some(leader), "following the elected leader");
        assert!(!self.is_serving(), "a learner serves only after UPTODATE");
    }

    /// The shell's answer to `Output::ReadLog` (see `Leader::on_log_read`); a node that no
    /// longer leads has nobody waiting for it.
    pub(crate) fn on_log_read(
        &mut self,
        request: u64,
        found_after: bool,
        txns: Result<Vec<LoggedTxn>, String>,
    ) {
        // A read answered after a role change finds nobody: the learner it was for gets a new
        // session with the next leader and is synced again from its own FOLLOWERINFO.
        if let Role::Leading(leader) = &mut self.role {
            leader.on_log_read(&mut self.shared, request, found_after, txns);
        }
    }

    /// After every step: the ping round the syncs of this step asked for (leader), and the
    /// step-down a proposal asked for when it used up the epoch's zxid counter.
    pub(crate) fn end_of_step(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        assert!(!leader.counter_exhausted || leader.phase.is_established(), "only proposals");
        if leader.counter_exhausted {
            assert_ne!(
                leader.phase,
                LeaderPhase::Standalone,
                "a standalone server never steps down"
            );
            tracing::warn!("zxid counter near its limit; forcing a new epoch");
            return self.follow(Next::Elect);
        }
        // Once per step, after every handler ran: the syncs that arrived in the step share one
        // ping round, so a burst of syncs costs one round trip to a quorum (ZOOKEEPER-1675).
        leader.send_sync_round(&mut self.shared);
    }

    /// Once per tick, after the role's timers: an established leader expires sessions and
    /// deletes expired containers and TTL nodes (only the leader decides txns).
    pub(crate) fn leader_housekeeping(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        // Only an established leader: a txn proposed earlier would be numbered in an epoch no
        // quorum has acknowledged yet.
        if !leader.phase.is_established() {
            return;
        }
        leader.expire_sessions(&mut self.shared);
        leader.check_containers(&mut self.shared);
        // Housekeeping only proposes: it never gives up the role, and leaves no session whose
        // timeout ran out without its CloseSession txn on the way.
        assert!(self.is_established_leader(), "housekeeping never steps down");
        if !self.shared.config.bugs.skip_session_expiry {
            let due = self.shared.sessions.expired(self.shared.now_tick);
            assert!(due.is_empty(), "every session due is closing");
        }
    }
}
