//! The leader's side of Zab: discovery (FOLLOWERINFO → LEADERINFO → ACKEPOCH), synchronization
//! of each learner (DIFF, TRUNC or SNAP, then NEWLEADER and UPTODATE), and broadcast (PROPOSAL,
//! cumulative ACK, COMMIT in zxid order). A standalone server is a leader of a quorum of one in
//! epoch 0 that is established from the start.
//!
//! Invariants (`Leader::invariants`):
//! - nothing is committed in the new epoch before the leader is established, and establishment
//!   needs a quorum of NEWLEADER acknowledgements (the leader's own counts once its history is
//!   durable);
//! - every proposal has a fresh zxid in the leader's epoch (log zxids strictly increase), so
//!   no two proposals share a zxid;
//! - a commit point is backed by a quorum of voters whose cumulative ACKs cover it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::proto::client::Request;
use crate::proto::error::ZkError;
use crate::shared::{Shared, Upstream};
use crate::txn::{LoggedTxn, Txn, TxnHeader};
use crate::types::{ConnId, Id, ServerId, SessionId, Zxid};
use crate::zab::Next;
use crate::zab::election::Backing;
use crate::zab::fifo::{FifoChannel, Receipt};
use crate::zab::message::{Forwarded, SessionMessage, ZabMessage};

/// Where a learner is in its handshake with the leader (`LearnerHandler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerPhase {
    /// FOLLOWERINFO received; the epoch is not decided yet.
    Info,
    /// LEADERINFO sent; waiting for ACKEPOCH.
    AwaitAckEpoch,
    /// ACKEPOCH received; waiting for a quorum of them before syncing.
    AwaitSync,
    /// Behind the in-memory log, but not too far: `Output::ReadLog { request, after, upto }`
    /// went to the shell and the DIFF waits for its `Input::LogRead`. Gets nothing meanwhile
    /// (proposals made now are in memory, after `upto`, and go into the DIFF).
    AwaitLogRead {
        /// The read's name.
        request: u64,
        /// The learner's last zxid.
        after: Zxid,
        /// The oldest in-memory zxid when the read was asked for.
        upto: Zxid,
    },
    /// DIFF/TRUNC/SNAP and NEWLEADER sent; waiting for the NEWLEADER ACK. Gets proposals.
    Syncing,
    /// Acknowledged NEWLEADER: its ACKs count. Gets proposals and commits.
    Synced,
}

/// The leader's view of one learner.
#[derive(Clone, Debug)]
pub struct LearnerHandler {
    /// Non-voting.
    pub observer: bool,
    /// Handshake phase.
    pub phase: HandlerPhase,
    /// The learner's last logged zxid (from FOLLOWERINFO / ACKEPOCH).
    pub last_zxid: Zxid,
    /// Last tick anything arrived from it.
    pub last_heard: u64,
    /// Sent UPTODATE.
    pub up_to_date: bool,
    /// The session with this learner incarnation (named by its FOLLOWERINFO nonce).
    pub channel: FifoChannel,
    /// The latest ping round it answered: it still followed this leader after that round was
    /// sent (what a pending sync waits for from a quorum).
    pub acked_round: u64,
}

impl LearnerHandler {
    /// Gets proposals and commits: a syncing learner too, since everything proposed after its
    /// DIFF follows the DIFF in the same FIFO session and so extends the history it is synced
    /// to (Zab phase 2); it applies them at UPTODATE.
    fn forwarding(&self) -> bool {
        matches!(self.phase, HandlerPhase::Syncing | HandlerPhase::Synced)
    }
}

/// A sync waiting for its answer (ZOOKEEPER-1675). It is answered once everything logged when
/// it arrived (`target`) is committed and applied, and once a quorum proved this server still
/// led after it arrived: by answering ping `round`, the first sent after its arrival, or by
/// acknowledging a proposal logged after it (a commit point beyond `target`). A leader paused
/// while the others elected a new one (a stop-the-world pause, a suspended VM) resumes
/// believing it leads; without the proof it would answer the sync from its stale state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSync {
    /// Who is answered.
    pub waiter: SyncWaiter,
    /// The last logged zxid when the sync arrived.
    pub target: Zxid,
    /// The first ping round sent after it arrived.
    pub round: u64,
}

/// Who waits for a sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncWaiter {
    /// A client of this server.
    Local(ConnId, i32),
    /// A learner, answered with SYNC.
    Learner(ServerId),
}

/// Where the leader is in establishing its epoch: Zab's phases from the leader's side (Zab
/// paper, DSN 2011: "Phase 1: Discovery", "Phase 2: Synchronization", "Phase 3: Broadcast"). One
/// enum instead of four flags (`standalone`, `epoch`, `established`, `epoch_acked`), whose
/// sixteen combinations held five meaningful states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderPhase {
    /// Phase 1: collecting FOLLOWERINFO until a quorum of voters reported its accepted epoch;
    /// then `epoch` is decided (one above every reported accepted epoch, the paper's CEPOCH),
    /// LEADERINFO goes out and the leader waits for a quorum of ACKEPOCH.
    Discovery {
        /// The epoch being established, once decided.
        epoch: Option<u32>,
    },
    /// Phase 2: a quorum acknowledged `epoch`, which is now our current epoch; each learner gets
    /// DIFF/TRUNC/SNAP and NEWLEADER; waiting for a quorum of NEWLEADER acknowledgements.
    Synchronization {
        /// The epoch being established.
        epoch: u32,
    },
    /// Phase 3: established; proposals, ACKs and commits flow.
    Broadcast {
        /// The established epoch.
        epoch: u32,
    },
    /// A standalone server: leads epoch 0 with a quorum of one, established from the start,
    /// never steps down.
    Standalone,
}

impl LeaderPhase {
    /// The epoch being established or established, once decided (0 when standalone).
    pub fn epoch(self) -> Option<u32> {
        let epoch = match self {
            LeaderPhase::Discovery { epoch } => epoch,
            LeaderPhase::Synchronization { epoch } | LeaderPhase::Broadcast { epoch } => {
                Some(epoch)
            }
            LeaderPhase::Standalone => Some(0),
        };
        // A decided epoch is one above some accepted epoch (>= 0), so epoch 0 belongs to the
        // standalone server alone: a quorum leader numbering txns 0:n would collide with it
        // after a reconfiguration from standalone (zxids must be unique, Zab paper §IV).
        assert!(epoch != Some(0) || self == LeaderPhase::Standalone, "epoch 0 is standalone's");
        assert!(epoch.is_some() || !self.is_epoch_acked(), "an acknowledged epoch is decided");
        epoch
    }

    /// A quorum acknowledged NEWLEADER (always, standalone): the leader may propose.
    pub fn is_established(self) -> bool {
        matches!(self, LeaderPhase::Broadcast { .. } | LeaderPhase::Standalone)
    }

    /// A quorum acknowledged the epoch (always, standalone): learners may be synced.
    pub fn is_epoch_acked(self) -> bool {
        !matches!(self, LeaderPhase::Discovery { .. })
    }
}

/// Leader state.
#[derive(Clone, Debug)]
pub struct Leader {
    /// Where establishing the epoch stands.
    pub phase: LeaderPhase,
    /// Tick at which leadership began.
    pub started: u64,
    /// Accepted epochs reported by voters (the leader's own included).
    pub infos: BTreeMap<ServerId, u32>,
    /// Voters that acknowledged the epoch (the leader included).
    pub epoch_acks: BTreeSet<ServerId>,
    /// Voters that acknowledged NEWLEADER.
    pub newleader_acks: BTreeSet<ServerId>,
    /// The last logged zxid when leadership began: the history the new epoch commits.
    pub history_end: Zxid,
    /// Learners by id.
    pub learners: BTreeMap<ServerId, LearnerHandler>,
    /// Synced voters' cumulative ACKs.
    pub acked: BTreeMap<ServerId, Zxid>,
    /// Pending syncs in arrival order (targets and rounds never decrease).
    pub syncs: VecDeque<PendingSync>,
    /// Next tick to ping learners.
    pub next_ping: u64,
    /// The last ping round sent (0: none yet).
    pub ping_round: u64,
    /// A sync arrived since the last round: send one at the end of this step.
    pub sync_round_due: bool,
    /// The highest zxid a quorum of voters has durable (the commit point before it is capped
    /// by what is logged); a sync whose target is below it has its quorum proof.
    pub quorum_acked: Zxid,
    /// Before establishment: the voters that can no longer follow us (see [`Backing`]).
    pub backing: Backing,
    /// A proposal used up the epoch's zxid counter: step down at the end of the step.
    pub counter_exhausted: bool,
    /// `try_commit`'s list of the voters' durable points, kept between calls so that an ACK
    /// does not allocate one; empty outside `try_commit`.
    commit_points: Vec<Zxid>,
}

impl Leader {
    fn new(phase: LeaderPhase, now: u64, history_end: Zxid) -> Leader {
        // A leadership starts at the beginning of Zab phase 1 with nothing decided, or is the
        // standalone server's, which has no discovery and leads from tick 0.
        let fresh = matches!(phase, LeaderPhase::Discovery { epoch: None });
        assert!(fresh || phase == LeaderPhase::Standalone, "a leadership starts undecided");
        assert!(fresh || now == 0, "a standalone server leads from the start");
        Leader {
            phase,
            started: now,
            infos: BTreeMap::new(),
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            history_end,
            learners: BTreeMap::new(),
            acked: BTreeMap::new(),
            syncs: VecDeque::new(),
            next_ping: now,
            ping_round: 0,
            sync_round_due: false,
            quorum_acked: Zxid::ZERO,
            backing: Backing::default(),
            counter_exhausted: false,
            commit_points: Vec::new(),
        }
    }

    /// A standalone server's leadership: epoch 0, a quorum of one, established from the start
    /// (at tick 0, over the recovered log).
    pub fn standalone(history_end: Zxid) -> Leader {
        let leader = Leader::new(LeaderPhase::Standalone, 0, history_end);
        assert!(leader.phase.is_established());
        assert_eq!(leader.phase.epoch(), Some(0));
        leader
    }

    /// The learners `keep` selects, in id order (the map is ordered, so messages to several
    /// learners go out in the same order in every run: part of the trace a seed replays).
    pub fn learners_where(&self, keep: impl Fn(&LearnerHandler) -> bool) -> Vec<ServerId> {
        self.learners.iter().filter(|(_, h)| keep(h)).map(|(id, _)| *id).collect()
    }

    /// Checks the leader's invariants against the shared state.
    pub(crate) fn invariants(&self, shared: &Shared) {
        if !self.phase.is_established() {
            assert!(shared.log.committed() <= self.history_end, "no commits before establishment");
            assert!(
                shared.log.last_logged() == self.history_end,
                "no proposals before establishment"
            );
        } else {
            assert!(self.phase.epoch().is_some(), "an established leader has an epoch");
            assert!(shared.log.committed() >= self.history_end, "the history is committed");
        }
        if self.phase.is_epoch_acked() && self.phase != LeaderPhase::Standalone {
            let epoch = self.phase.epoch();
            assert_eq!(Some(shared.current_epoch), epoch, "the epoch is current once acked");
            let early = shared.config.bugs.epoch_before_sync;
            assert!(
                early || shared.log.durable() >= self.history_end,
                "current over a durable log"
            );
        }
        if let Some(epoch) = self.phase.epoch() {
            assert!(epoch <= shared.accepted_epoch, "the leader accepted its own epoch");
            assert!(shared.log.last_logged().epoch() <= epoch, "no zxid beyond the epoch");
        }
        for (id, handler) in &self.learners {
            assert_ne!(*id, shared.config.server_id, "the leader is not its own learner");
            handler.channel.invariants();
            // Only synced learners ack: asked from the other side, so that the usual learner
            // (synced) costs no search of `acked` (this runs after every step).
            if handler.phase != HandlerPhase::Synced {
                assert!(!self.acked.contains_key(id), "only synced learners ack");
            }
            if let HandlerPhase::AwaitLogRead { request, after, upto } = handler.phase {
                assert!(after < upto, "a log read is for a learner behind the in-memory log");
                assert!(request <= shared.log_reads, "a log read the node asked for");
            }
        }
    }
}

/// Discovery and synchronization from the leader's side: methods of the leader's state that
/// borrow the shared state. A handler that must give up the role returns [`Next::Elect`]; the
/// dispatcher (`Node`) then starts the election, so a role never replaces itself.
impl Leader {
    /// Won an election: discovery starts with our own accepted epoch on the table.
    pub(crate) fn elected(shared: &Shared) -> Leader {
        let me = shared.config.server_id;
        assert!(!shared.config.is_standalone(), "a standalone server leads from the start");
        assert!(shared.quorum.is_voter(me), "observers never lead");
        // Fast leader election picked the server with the newest (currentEpoch, last zxid)
        // among a quorum, so our log holds every committed txn: `history_end` is what the new
        // epoch commits first (Zab's "initial history"; the implementation's Leader.lead).
        let discovery = LeaderPhase::Discovery { epoch: None };
        let mut leader = Leader::new(discovery, shared.now_tick, shared.log.last_logged());
        leader.infos.insert(me, shared.accepted_epoch);
        assert_eq!(leader.history_end, shared.log.last_logged(), "the history is the whole log");
        leader
    }

    /// Decides the epoch once a quorum of voters reported its accepted epoch (Zab phase 1).
    pub(crate) fn maybe_decide_epoch(&mut self, shared: &mut Shared) {
        if self.phase.epoch().is_some() || !shared.quorum.contains(self.infos.keys()) {
            return;
        }
        // Zab phase 1: the new epoch is above every acceptedEpoch of a quorum, so no follower
        // of that quorum can still accept an older leader's NEWEPOCH, and two leaders never
        // establish the same epoch (the TLA+ spec's Leadership1).
        let epoch = self.infos.values().copied().max().expect("own info") + 1;
        assert!(epoch > shared.accepted_epoch, "our own accepted epoch is among the infos");
        assert!(epoch > shared.current_epoch, "a new epoch is newer than any we led or followed");
        tracing::info!(server = shared.config.server_id.0, epoch, "proposing a new epoch");
        // Accepted (and durable, a synchronous write) before any LEADERINFO names it: a crash
        // after this may not let us propose an older epoch again (ZOOKEEPER-3608).
        shared.accepted_epoch = epoch;
        shared.persist_epochs();
        let me = shared.config.server_id;
        assert_eq!(self.phase, LeaderPhase::Discovery { epoch: None });
        self.phase = LeaderPhase::Discovery { epoch: Some(epoch) };
        self.epoch_acks.insert(me);
        let waiting: Vec<ServerId> = self.learners_where(|h| h.phase == HandlerPhase::Info);
        for id in waiting {
            self.learners.get_mut(&id).expect("listed").phase = HandlerPhase::AwaitAckEpoch;
            self.send_learner(shared, id, SessionMessage::LeaderInfo { new_epoch: epoch });
        }
        self.maybe_epoch_quorum(shared);
    }

    /// Once a quorum acknowledged the epoch and our own history is durable, makes the epoch our
    /// current epoch and synchronizes the learners. The history must be durable first: a leader
    /// elected with txns still waiting for fsync that wrote "epoch e+1" and then crashed would
    /// restart with a newer epoch over a shorter log, win again and truncate txns a quorum of
    /// epoch e committed (ZOOKEEPER-4643, the leader's side).
    fn maybe_epoch_quorum(&mut self, shared: &mut Shared) {
        if self.phase.is_epoch_acked() || !shared.quorum.contains(self.epoch_acks.iter()) {
            return;
        }
        let durable = shared.log.durable() >= self.history_end;
        if !durable && !shared.config.bugs.epoch_before_sync {
            return;
        }
        let epoch = self.phase.epoch().expect("decided");
        assert!(epoch > shared.current_epoch, "a new epoch is newer than any we led or followed");
        assert!(epoch <= shared.accepted_epoch, "the epoch was accepted when it was decided");
        self.phase = LeaderPhase::Synchronization { epoch };
        shared.current_epoch = epoch;
        shared.persist_epochs();
        let waiting: Vec<ServerId> = self.learners_where(|h| h.phase == HandlerPhase::AwaitSync);
        for id in waiting {
            self.sync_learner(shared, id);
        }
        self.maybe_establish(shared);
    }

    /// Re-sends the session's first message (a LEADERINFO the learner never got).
    fn resend_first(&self, shared: &mut Shared, id: ServerId, msg: SessionMessage) {
        let Some(h) = self.learners.get(&id) else { return };
        // Only LEADERINFO opens a session, and only while its ACKEPOCH is awaited: a resend in
        // a later phase would put message 0 after messages the learner already took.
        assert!(matches!(msg, SessionMessage::LeaderInfo { .. }), "LEADERINFO is message 0");
        assert_eq!(h.phase, HandlerPhase::AwaitAckEpoch, "resent only while it is unanswered");
        if let Some(numbered) = h.channel.rewrap_first(msg) {
            shared.send_peer(id, numbered);
        }
    }

    /// A message from a learner (the dispatcher checked it is a member): FOLLOWERINFO opens
    /// (or repeats) its session, everything else travels numbered in that session.
    pub(crate) fn on_message(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        msg: ZabMessage,
    ) -> Next {
        let now = shared.now_tick;
        // The dispatcher drops a message from ourselves or a non-member (peer input is never
        // trusted); a standalone server has no members to hear from.
        assert_ne!(from, shared.config.server_id, "the leader is not its own learner");
        assert_ne!(self.phase, LeaderPhase::Standalone, "a standalone server has no learners");
        match msg {
            ZabMessage::Session { nonce, seq, msg } => {
                return self.on_learner_session(shared, from, (nonce, seq), msg, now);
            }
            ZabMessage::FollowerInfo { accepted_epoch, last_zxid, observer, nonce } => {
                let known = self.learners.get(&from).map(|h| (h.channel.nonce(), h.phase));
                match known {
                    Some((n, HandlerPhase::AwaitAckEpoch)) if n == nonce => {
                        let epoch = self.phase.epoch().expect("sent LEADERINFO");
                        // A repeat of a lost LEADERINFO: the session's first message again.
                        let info = SessionMessage::LeaderInfo { new_epoch: epoch };
                        self.resend_first(shared, from, info);
                    }
                    // A repeat of the session we have: nothing new to say.
                    Some((n, _)) if n == nonce => {}
                    _ => {
                        let info = (accepted_epoch, last_zxid, observer, nonce);
                        self.on_follower_info(shared, from, info);
                    }
                }
                // Whichever way, the learner now has a session named by this FOLLOWERINFO.
                let session = self.learners.get(&from).map(|h| h.channel.nonce());
                assert_eq!(session, Some(nonce), "a FOLLOWERINFO opens or repeats its session");
            }
            _ => {}
        }
        Next::Stay
    }

    /// Takes a learner's session messages in order (see `Learner::on_message` for the rules).
    /// Stops at the first handler that gives up the role.
    fn on_learner_session(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        (nonce, seq): (u64, u64),
        msg: SessionMessage,
        now: u64,
    ) -> Next {
        let Some(h) = self.learners.get_mut(&from) else { return Next::Stay };
        let mut next = match h.channel.receive(nonce, seq, msg) {
            Receipt::Deliver(msg) => {
                // Only the current session delivers: an old incarnation's message is dropped.
                assert_eq!(h.channel.nonce(), nonce, "delivered in its own session");
                h.last_heard = now;
                Some(msg)
            }
            Receipt::Dropped | Receipt::Held => None,
            Receipt::Overflow => {
                // A hole that never fills is a lost message: like a broken TCP connection, the
                // session is given up and the learner starts over from FOLLOWERINFO.
                tracing::info!(learner = from.0, "a learner's message is lost; dropping it");
                self.drop_learner(from);
                assert!(!self.learners.contains_key(&from), "an overflowing session is gone");
                None
            }
        };
        while let Some(msg) = next {
            if self.on_session_message(shared, from, msg) == Next::Elect {
                return Next::Elect;
            }
            // The handler may have dropped the learner, or a new FOLLOWERINFO replaced its
            // session: then what waits in the old one is not delivered.
            next = match self.learners.get_mut(&from) {
                Some(h) if h.channel.nonce() == nonce => h.channel.next_ready(),
                _ => None,
            };
        }
        Next::Stay
    }

    fn drop_learner(&mut self, id: ServerId) {
        self.learners.remove(&id);
        self.acked.remove(&id);
        if !self.phase.is_established() {
            // Before establishment its NEWLEADER ACK must not count: it may come back and be
            // synced again. After, the quorum that established the epoch stays what it was.
            self.newleader_acks.remove(&id);
        }
        assert!(!self.learners.contains_key(&id));
        assert!(!self.acked.contains_key(&id), "a dropped learner's ACKs go too");
    }

    fn on_session_message(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        msg: SessionMessage,
    ) -> Next {
        let now = shared.now_tick;
        // `on_learner_session` delivers only while the learner's session is current.
        assert!(self.learners.contains_key(&from), "session messages come from a learner");
        match msg {
            SessionMessage::AckEpoch { current_epoch, last_zxid } => {
                return self.on_ack_epoch(shared, from, current_epoch, last_zxid);
            }
            SessionMessage::Ack { zxid } => self.on_ack(shared, from, zxid),
            SessionMessage::Request { session, cxid, ids, forwarded } => {
                // Only from a learner that serves (UPTODATE sent): before that its clients
                // cannot have sent anything through it.
                let synced = self
                    .learners
                    .get(&from)
                    .is_some_and(|h| h.phase == HandlerPhase::Synced && h.up_to_date);
                if synced && self.phase.is_established() {
                    self.on_forwarded(shared, from, session, cxid, ids, forwarded);
                }
            }
            SessionMessage::Revalidate { session } => {
                let valid = shared.sessions.get(session).is_some_and(|s| !s.closing);
                if valid {
                    // The client reconnected through `from`: its requests come from there now.
                    shared.sessions.set_owner(session, from);
                    shared.sessions.touch(session, now);
                }
                self.send_learner(shared, from, SessionMessage::RevalidateReply { session, valid });
            }
            SessionMessage::SyncRequest => self.queue_sync(shared, SyncWaiter::Learner(from)),
            SessionMessage::PingReply { touched, round } => {
                #[cfg(feature = "bugs")]
                let touched =
                    if shared.config.bugs.drop_learner_touches { vec![] } else { touched };
                for session in touched {
                    shared.sessions.touch(session, now);
                }
                // A round this leader never sent (a peer's bug, or a reply meant for an earlier
                // leadership of this server) proves nothing: ignored, never trusted.
                if round <= self.ping_round
                    && let Some(h) = self.learners.get_mut(&from)
                {
                    h.acked_round = h.acked_round.max(round);
                }
                let acked = self.learners.get(&from).map_or(0, |h| h.acked_round);
                assert!(acked <= self.ping_round, "a round counts only once it was sent");
                self.complete_syncs(shared);
            }
            _ => {}
        }
        Next::Stay
    }

    /// A FOLLOWERINFO that opens a new session: `info` is the learner's (accepted epoch, last
    /// zxid, observer flag, session nonce). Before the epoch is decided a voter's accepted
    /// epoch counts toward deciding it; after, the learner gets LEADERINFO at once.
    fn on_follower_info(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        info: (u32, Zxid, bool, u64),
    ) {
        let (accepted, last_zxid, observer, nonce) = info;
        let now = shared.now_tick;
        let voter = shared.quorum.is_voter(from);
        // A new session of the learner: what its earlier incarnation acknowledged is void.
        self.acked.remove(&from);
        self.newleader_acks.remove(&from);
        let handler = LearnerHandler {
            // Not in our voter list means an observer, whatever it claims: the flag is peer
            // input, and a learner counted as a voter it is not could fake a quorum.
            observer: observer || !voter,
            phase: HandlerPhase::Info,
            last_zxid,
            last_heard: now,
            up_to_date: false,
            channel: FifoChannel::new(nonce),
            acked_round: 0,
        };
        self.learners.insert(from, handler);
        assert!(!self.acked.contains_key(&from), "a new session's ACKs start over");
        match self.phase.epoch() {
            Some(epoch) => {
                self.learners.get_mut(&from).expect("inserted").phase = HandlerPhase::AwaitAckEpoch;
                self.send_learner(shared, from, SessionMessage::LeaderInfo { new_epoch: epoch });
                assert_eq!(self.learners[&from].channel.sent(), 1, "LEADERINFO opens the session");
            }
            None => {
                // Only voters' accepted epochs decide the new epoch: the epoch must be above
                // every promise a voting quorum could have made, and observers promise nothing.
                if voter {
                    self.infos.insert(from, accepted);
                }
                self.maybe_decide_epoch(shared);
            }
        }
    }

    /// An ACKEPOCH: the learner promised our epoch (`Some`), or had promised it before, maybe to
    /// another leader (`None`): then it is synchronized once the epoch is established but is not
    /// counted toward the epoch's quorum (ZooKeeper's `Leader.waitForEpochAck` skips -1).
    fn on_ack_epoch(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        current_epoch: Option<u32>,
        last_zxid: Zxid,
    ) -> Next {
        let mine = (shared.current_epoch, shared.log.last_logged());
        let Some(h) = self.learners.get_mut(&from) else {
            return Next::Stay;
        };
        if h.phase != HandlerPhase::AwaitAckEpoch {
            return Next::Stay;
        }
        // Without a current epoch (`None`) the learner's log alone is compared: ZooKeeper skips
        // the check then, but a learner with txns we lack would be truncated by our sync.
        let ahead = match current_epoch {
            Some(epoch) => (epoch, last_zxid) > mine,
            None => last_zxid > mine.1,
        };
        // Abdicating is what keeps committed txns: a learner ahead of us may hold txns a
        // quorum committed that we lack, and our sync would truncate them. The next election
        // picks the newer history (Zab phase 1 adopts the most up-to-date one).
        if ahead {
            tracing::warn!(
                learner = from.0,
                "a learner is more up to date than the leader; abdicating"
            );
            return Next::Elect;
        }
        // Zab phase 1: the leader's history is at least as new as any that promised it.
        assert!(last_zxid <= mine.1 || current_epoch.is_some_and(|e| e < mine.0));
        h.last_zxid = last_zxid;
        h.phase = HandlerPhase::AwaitSync;
        let voter = !h.observer && current_epoch.is_some();
        if voter {
            self.epoch_acks.insert(from);
        }
        if self.phase.is_epoch_acked() {
            self.sync_learner(shared, from);
        } else {
            self.maybe_epoch_quorum(shared);
        }
        // One ACKEPOCH per session: a repeat finds the learner past AwaitAckEpoch and is
        // ignored above, so the learner is never synced twice in one session.
        let phase = self.learners[&from].phase;
        assert_ne!(phase, HandlerPhase::AwaitAckEpoch, "the ACKEPOCH moved the learner on");
        Next::Stay
    }

    /// Brings one learner's log to the leader's: TRUNC, SNAP or nothing, then DIFF, NEWLEADER;
    /// or, when it is behind the in-memory log but its txns are in our log files, a read of
    /// them first (`Output::ReadLog`, answered by `on_log_read`).
    fn sync_learner(&mut self, shared: &mut Shared, id: ServerId) {
        assert!(self.phase.is_epoch_acked(), "sync only after a quorum ACK-E");
        let theirs = self.learners[&id].last_zxid;
        let last = shared.log.last_logged();
        // The choice of LearnerHandler.syncFollower: DIFF when their last zxid is in our log,
        // SNAP when it is older than what we keep, else TRUNC back to the last zxid we share:
        // they hold a tail no quorum committed (ZOOKEEPER-1154 sent DIFF there and left it).
        // Their last zxid in our log means their history is a prefix of ours (one leader per
        // epoch makes equal zxids equal txns), so the txns after it complete it.
        if theirs == last || shared.log.contains(theirs) && theirs <= last {
            self.send_diff(shared, id, Vec::new(), theirs);
        } else if theirs < shared.log.oldest() {
            if !self.read_log_for(shared, id, theirs) {
                self.send_snap(shared, id);
            }
        } else {
            let keep = shared.log.floor(theirs);
            assert!(keep <= theirs, "a TRUNC keeps only what the learner holds");
            assert!(keep <= last, "a TRUNC keeps only what we hold");
            if !shared.config.bugs.diff_instead_of_trunc {
                self.send_learner(shared, id, SessionMessage::Trunc { zxid: keep });
            }
            self.send_diff(shared, id, Vec::new(), keep);
        }
    }

    /// A learner whose last zxid is older than the in-memory log: asks the shell for the log
    /// files' records after it (ZooKeeper's `LearnerHandler.syncFollower` reads its txn log
    /// when the gap is small against the snapshot) if they hold it and the gap is under
    /// `disk_diff_max_txns`. Returns false when a SNAP is the way.
    fn read_log_for(&mut self, shared: &mut Shared, id: ServerId, theirs: Zxid) -> bool {
        let upto = shared.log.oldest();
        let max_txns = shared.config.disk_diff_max_txns;
        assert!(theirs < upto, "only a learner behind the in-memory log");
        // Within an epoch zxids count txns; across epochs only the newer counter is known, so
        // the estimate is low then: the shell enforces `max_txns` on what it reads.
        let behind = match theirs.epoch() == upto.epoch() {
            true => u64::from(upto.counter() - theirs.counter()),
            false => u64::from(upto.counter()),
        };
        let missed = behind + shared.log.len() as u64;
        if max_txns == 0 || theirs < shared.log.on_disk_from() || missed > max_txns {
            return false;
        }
        shared.log_reads += 1;
        let request = shared.log_reads;
        // The deliberate bug: the read starts one txn late, and the re-check trusts it.
        #[cfg(feature = "bugs")]
        let theirs = match shared.config.bugs.disk_diff_skips_one && theirs.next() < upto {
            true => theirs.next(),
            false => theirs,
        };
        let h = self.learners.get_mut(&id).expect("synced learner exists");
        assert_eq!(h.phase, HandlerPhase::AwaitSync, "each learner is synced once per session");
        h.phase = HandlerPhase::AwaitLogRead { request, after: theirs, upto };
        tracing::info!(learner = id.0, %theirs, %upto, request, "reading the txn log for a DIFF");
        shared.outputs.push(crate::io::Output::ReadLog { request, after: theirs, upto, max_txns });
        true
    }

    /// The shell's answer to `Output::ReadLog`. Re-checks everything before it sends: the
    /// learner still waits for this read, its last zxid is in our history (`found_after`), the
    /// records run from right after it to `upto` with no hole, and `upto` is still in memory (the
    /// log keeps it while the read is pending, `log_read_upto`, but only up to
    /// `disk_diff_max_txns` entries past `commit_log_count`). Then DIFF = the records + the
    /// in-memory log after `upto`, and NEWLEADER; on any failure a SNAP, as before.
    pub(crate) fn on_log_read(
        &mut self,
        shared: &mut Shared,
        request: u64,
        found_after: bool,
        txns: Result<Vec<LoggedTxn>, String>,
    ) {
        // Reads are numbered per node (`log_reads`), so at most one learner waits for this one.
        let waiting = self.learners.iter().find_map(|(id, h)| match h.phase {
            HandlerPhase::AwaitLogRead { request: r, after, upto } if r == request => {
                Some((*id, after, upto))
            }
            _ => None,
        });
        let Some((id, after, upto)) = waiting else {
            tracing::debug!(request, "a txn log read nobody waits for any more");
            return;
        };
        assert!(after < upto, "the read was for a learner behind the in-memory log");
        assert!(request <= shared.log_reads, "a read this incarnation asked for");
        let checked = txns.and_then(|txns| {
            check_log_read(found_after, after, upto, &txns)?;
            match shared.log.contains(upto) {
                true => Ok(txns),
                false => Err(format!("{upto} left the in-memory log during the read")),
            }
        });
        match checked {
            Ok(txns) => {
                tracing::info!(learner = id.0, from_disk = txns.len(), %after, %upto,
                    "syncing a learner by DIFF from the txn log files");
                self.send_diff(shared, id, txns, upto);
            }
            Err(reason) => {
                tracing::info!(learner = id.0, %after, "no DIFF from the txn log ({reason}): SNAP");
                self.send_snap(shared, id);
            }
        }
    }

    /// SNAP of our applied state, then the DIFF of what we logged after it.
    fn send_snap(&mut self, shared: &mut Shared, id: ServerId) {
        // The snapshot is of the applied tree only; the DIFF after it carries what we logged
        // but have not applied yet (committed or not), so the learner ends with our whole log.
        let snapshot = Box::new(shared.snapshot());
        let base = snapshot.zxid;
        assert!(shared.log.contains(base), "a snapshot is at the applied zxid, in the log");
        assert!(base <= shared.log.committed(), "a snapshot holds only committed txns");
        self.send_learner(shared, id, SessionMessage::Snap { snapshot });
        self.send_diff(shared, id, Vec::new(), base);
    }

    /// DIFF of `head` (records read from the log files, ending at `from`) and the in-memory log
    /// after `from`, then NEWLEADER: the learner is syncing and gets proposals from now on.
    fn send_diff(&mut self, shared: &mut Shared, id: ServerId, head: Vec<LoggedTxn>, from: Zxid) {
        let epoch = self.phase.epoch().expect("decided");
        let (last, committed) = (shared.log.last_logged(), shared.log.committed());
        assert!(head.last().is_none_or(|t| t.header.zxid == from), "the head ends at `from`");
        assert!(shared.log.contains(from), "the rest is in memory");
        let mut txns = head;
        txns.extend(shared.log.range(from, last).cloned());
        // The FIFO session puts the DIFF before NEWLEADER: NEWLEADER certifies it (Zab phase 2).
        self.send_learner(shared, id, SessionMessage::Diff { txns, committed });
        self.send_learner(shared, id, SessionMessage::NewLeader { zxid: Zxid::new(epoch, 0) });
        let h = self.learners.get_mut(&id).expect("synced learner exists");
        let once = matches!(h.phase, HandlerPhase::AwaitSync | HandlerPhase::AwaitLogRead { .. });
        assert!(once, "each learner is synced once per session");
        h.phase = HandlerPhase::Syncing;
        assert!(h.forwarding());
    }

    fn on_ack(&mut self, shared: &mut Shared, from: ServerId, zxid: Zxid) {
        let Some(epoch) = self.phase.epoch() else {
            return;
        };
        let established = self.phase.is_established();
        let Some(h) = self.learners.get_mut(&from) else {
            return;
        };
        match h.phase {
            // Only the NEWLEADER ACK, `(epoch, 0)`, moves a syncing learner on: until then its
            // history is not certified to be ours, so its proposal ACKs cannot count.
            HandlerPhase::Syncing if zxid == Zxid::new(epoch, 0) => {
                h.phase = HandlerPhase::Synced;
                let observer = h.observer;
                // Observers never vote: their NEWLEADER ACK establishes nothing.
                assert!(observer || shared.quorum.is_voter(from), "only voters count");
                if !observer {
                    self.newleader_acks.insert(from);
                    self.acked.insert(from, zxid);
                }
                if established {
                    // Joined after establishment: it serves at once (ZooKeeper's UPTODATE to
                    // a late learner).
                    self.learners.get_mut(&from).expect("present").up_to_date = true;
                    self.send_learner(shared, from, SessionMessage::UpToDate);
                } else {
                    self.maybe_establish(shared);
                }
            }
            HandlerPhase::Synced if !h.observer => {
                // Cumulative: an older ACK overtaken by a newer one moves nothing back.
                let acked = self.acked.entry(from).or_insert(zxid);
                *acked = (*acked).max(zxid);
                assert!(self.acked[&from] >= zxid, "ACKs are cumulative");
                self.try_commit(shared);
            }
            _ => {}
        }
    }

    fn maybe_establish(&mut self, shared: &mut Shared) {
        let me = shared.config.server_id;
        let LeaderPhase::Synchronization { epoch } = self.phase else {
            return;
        };
        let mut acks = self.newleader_acks.clone();
        if shared.log.durable() >= self.history_end {
            acks.insert(me);
        }
        if !shared.quorum.contains(acks.iter()) {
            return;
        }
        let history_end = self.history_end;
        assert!(shared.quorum.contains(acks.iter()), "a quorum acked NEWLEADER");
        tracing::info!(server = me.0, epoch, "established as leader");
        // Zab phase 2 ends: a quorum holds the initial history durably under the new epoch, so
        // it is committed (the paper's COMMIT-LD) and the leader may propose (phase 3).
        self.phase = LeaderPhase::Broadcast { epoch };
        shared.log.mark_committed(history_end);
        shared.apply_committed(self);
        assert!(shared.log.committed() >= history_end, "the initial history is committed");
        // Sessions restart their timeouts: the old leader's view of client liveness is gone
        // (ZooKeeper's SessionTrackerImpl starts over after an election).
        shared.sessions.touch_all(shared.now_tick);
        shared.sessions.clear_owners();
        let synced: Vec<ServerId> = self.learners_where(|h| h.phase == HandlerPhase::Synced);
        let forwarding: Vec<ServerId> = self.learners_where(|h| h.forwarding());
        for id in forwarding {
            self.send_learner(shared, id, SessionMessage::Commit { zxid: history_end });
        }
        // UPTODATE only to the synced: they acknowledged NEWLEADER, so they hold the history
        // durably; a syncing learner got the COMMIT above and is told once it acknowledges.
        for id in synced {
            self.learners.get_mut(&id).expect("listed").up_to_date = true;
            self.send_learner(shared, id, SessionMessage::UpToDate);
        }
        assert!(self.phase.is_established());
    }

    /// The log's durable point moved: our own vote for a commit, an epoch or NEWLEADER.
    pub(crate) fn on_durable(&mut self, shared: &mut Shared) {
        let phase = self.phase;
        if phase.is_established() {
            self.try_commit(shared);
        } else if phase.epoch().is_some() {
            // Our own history becoming durable is our own vote in both quorums: the epoch's
            // (ZOOKEEPER-4643: not current before the history is on disk) and NEWLEADER's.
            self.maybe_epoch_quorum(shared);
            self.maybe_establish(shared);
        }
        // Phases only move forward: a durable point never undoes an acknowledgement.
        assert!(!phase.is_epoch_acked() || self.phase.is_epoch_acked(), "acked stays acked");
        assert!(!phase.is_established() || self.phase.is_established(), "established stays");
    }

    /// Commits everything a quorum of voters has durable, in zxid order.
    fn try_commit(&mut self, shared: &mut Shared) {
        let me = shared.config.server_id;
        if !self.phase.is_established() {
            return;
        }
        let mut points = std::mem::take(&mut self.commit_points);
        assert!(points.is_empty(), "the list is left empty between calls");
        points.extend(shared.quorum.voters().iter().map(|id| {
            if *id == me {
                shared.log.durable()
            } else {
                self.acked.get(id).copied().unwrap_or(Zxid::ZERO)
            }
        }));
        // Our own vote is what is durable here, not what is logged (Zab phase 3 acknowledges
        // only what is on disk). Sorted newest first, the majority-th point is one a quorum
        // of voters holds durably: everything up to it survives any minority of crashes.
        points.sort_by(|a, b| b.cmp(a));
        let (quorum_point, newest) = (points[shared.quorum.majority() - 1], points[0]);
        points.clear();
        self.commit_points = points;
        let point = if shared.config.bugs.commit_after_one_ack { newest } else { quorum_point };
        // ACKs are peer input: a zxid past our log (a confused or stale learner) must never
        // commit what we did not propose.
        let point = point.min(shared.log.last_logged());
        let committed = shared.log.committed();
        assert!(quorum_point <= newest, "the quorum point is one a voter has durable");
        assert!(point <= shared.log.last_logged(), "never commit what is not logged");
        self.quorum_acked = self.quorum_acked.max(quorum_point);
        // Syncs whose target was already committed may have their proof now: answer them
        // before anything later is committed, or their replies would show later writes.
        self.complete_syncs(shared);
        if point <= committed {
            return;
        }
        // Commit in steps at each pending sync's target, so a learner gets COMMIT(target),
        // then SYNC, then the later commits: its sync is answered before it applies writes
        // proposed after the sync (which the same client may have pipelined behind it). A
        // commit point beyond the target is also the sync's quorum proof (`still_led_after`),
        // so no sync waits at its step once later txns commit.
        if self.syncs.is_empty() {
            // The common case, with no list to build: one step.
            return self.commit_to(shared, point);
        }
        let mut steps: Vec<Zxid> =
            self.syncs.iter().map(|s| s.target).filter(|t| *t > committed && *t < point).collect();
        steps.dedup();
        steps.push(point);
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "sync targets are in order");
        for step in steps {
            self.commit_to(shared, step);
        }
    }

    fn commit_to(&mut self, shared: &mut Shared, point: Zxid) {
        assert!(self.phase.is_established(), "commits only once established");
        shared.log.mark_committed(point);
        // COMMIT goes to syncing learners too: they hold the proposal (sent after their DIFF)
        // and apply it at UPTODATE; observers get it as well (the implementation's INFORM).
        self.send_forwarding(shared, || SessionMessage::Commit { zxid: point });
        shared.apply_committed(self);
        assert_eq!(shared.tree.last_processed_zxid(), shared.log.committed(), "applied in order");
        self.complete_syncs(shared);
    }

    /// Timers, once per tick: `initLimit` for establishment, `syncLimit` for each learner's
    /// silence, a ping round every half tick. `Next::Elect` when the quorum is gone.
    pub(crate) fn on_tick(&mut self, shared: &mut Shared) -> Next {
        let now = shared.now_tick;
        let config = &shared.config;
        let init = config.tick_times(config.init_limit);
        let sync = config.tick_times(config.sync_limit);
        #[cfg(feature = "bugs")]
        let sync = match config.bugs.stale_leader_lease {
            // ZOOKEEPER-1675: the leader outlives its followers' patience.
            true => config.tick_times(config.init_limit),
            false => sync,
        };
        let ping_every = (config.tick_times(1) / 2).max(1);
        // A standalone server has no learners to hear from and no quorum to lose.
        if self.phase == LeaderPhase::Standalone {
            return Next::Stay;
        }
        if !self.phase.is_established() {
            if now.saturating_sub(self.started) > init {
                tracing::info!("leader not established within initLimit; back to election");
                return Next::Elect;
            }
            assert!(now.saturating_sub(self.started) <= init, "within initLimit");
            return Next::Stay;
        }
        // A learner silent for syncLimit goes even if its connection looks alive: it may be
        // paused or cut off one way, and a leader that still counted it could keep a quorum it
        // no longer has (ZooKeeper's leader checks each LearnerHandler's last ping the same way).
        let silent: Vec<ServerId> =
            self.learners_where(|h| now.saturating_sub(h.last_heard) > sync);
        for id in silent {
            tracing::info!(learner = id.0, "learner silent for syncLimit; dropping it");
            self.drop_learner(id);
        }
        assert!(self.learners.values().all(|h| now.saturating_sub(h.last_heard) <= sync));
        if !self.has_synced_quorum(shared) {
            tracing::warn!("lost the quorum of synced followers; back to election");
            return Next::Elect;
        }
        if now >= self.next_ping {
            self.next_ping = now + ping_every;
            self.send_ping_round(shared);
        }
        // Pings keep the learners' syncLimit from running out (ZooKeeper pings every half
        // tick); a next ping in the past would let a quiet learner drop us.
        assert!(self.next_ping > now, "the next ping is ahead");
        Next::Stay
    }

    /// The leader and its synced voting followers still make a quorum. Synced, not merely
    /// connected: a learner that has not acknowledged NEWLEADER may lack the history, so it
    /// cannot help commit (ZooKeeper's leader checks its `syncedAckSet` the same way).
    fn has_synced_quorum(&self, shared: &Shared) -> bool {
        let mut live: Vec<ServerId> = self.learners_where(|h| h.phase == HandlerPhase::Synced);
        live.push(shared.config.server_id);
        shared.quorum.contains(live.iter())
    }

    /// The connection to learner `peer` is gone: forget it at once rather than after
    /// `syncLimit` of silence, and step down if the synced followers left no longer make a
    /// quorum (ZooKeeper's leader checks its synced set every half tick). Before establishment
    /// the learner is only forgotten: `initLimit` bounds the wait for a quorum, and a learner
    /// that comes back introduces itself again.
    pub(crate) fn on_peer_lost(&mut self, shared: &mut Shared, peer: ServerId) -> Next {
        if self.phase == LeaderPhase::Standalone || !self.learners.contains_key(&peer) {
            return Next::Stay;
        }
        tracing::info!(learner = peer.0, "lost the connection to a learner; dropping it");
        self.drop_learner(peer);
        assert!(!self.learners.contains_key(&peer), "a lost learner is forgotten");
        assert!(!self.acked.contains_key(&peer), "a dropped learner's ACKs are gone");
        if self.phase.is_established() && !self.has_synced_quorum(shared) {
            tracing::warn!("lost the quorum of synced followers; back to election");
            return Next::Elect;
        }
        Next::Stay
    }

    /// Sends the ping round the syncs of this step asked for (called after every step).
    pub(crate) fn send_sync_round(&mut self, shared: &mut Shared) {
        if !self.sync_round_due {
            return;
        }
        self.send_ping_round(shared);
        assert!(!self.sync_round_due, "the round is sent once");
        assert!(self.ping_round >= 1, "rounds count from 1");
    }
}

/// The leader's write path and syncs: what the client pipeline reaches through [`Upstream`],
/// as methods of the leader's state that borrow the shared state.
impl Leader {
    /// The zxid the leader gives its next proposal.
    pub(crate) fn next_zxid(&self, shared: &Shared) -> Zxid {
        let epoch = self.phase.epoch().expect("an established leader has an epoch");
        let last = shared.log.last_logged();
        // zxid = (epoch << 32) | counter; the first proposal of an epoch has counter 1, as
        // (epoch, 0) names NEWLEADER (ZooKeeper's ZxidUtils, Zab phase 2).
        let zxid = if last.epoch() < epoch { Zxid::new(epoch, 1) } else { last.next() };
        assert!(zxid > last, "zxids strictly increase");
        assert_eq!(zxid.epoch(), epoch, "a leader numbers txns in its own epoch only");
        zxid
    }

    /// Sends a message in the learner's session (numbered; see `zab::message`).
    pub(crate) fn send_learner(&mut self, shared: &mut Shared, id: ServerId, msg: SessionMessage) {
        let Some(h) = self.learners.get_mut(&id) else { return };
        let numbered = h.channel.wrap(msg);
        assert!(h.channel.sent() >= 1, "the message took a number");
        assert!(matches!(numbered, ZabMessage::Session { .. }), "session messages are numbered");
        shared.send_peer(id, numbered);
    }

    /// Sends `make()` to every learner that gets proposals and commits, in id order: what
    /// `send_learner` does for each of `learners_where(forwarding)`, without collecting the ids
    /// first (a PROPOSAL and a COMMIT go out this way for every txn, and a ping every round).
    fn send_forwarding(&mut self, shared: &mut Shared, make: impl Fn() -> SessionMessage) {
        let mut sent = 0;
        for (id, h) in self.learners.iter_mut().filter(|(_, h)| h.forwarding()) {
            let numbered = h.channel.wrap(make());
            assert!(h.channel.sent() >= 1, "the message took a number");
            shared.send_peer(*id, numbered);
            sent += 1;
        }
        assert!(sent <= self.learners.len(), "at most one message per learner");
    }

    /// Appends a decided txn to the log, asks the shell to persist it and sends it to learners.
    /// A proposal that uses up the epoch's zxid counter marks the leader to step down at the
    /// end of the step (ZooKeeper forces an election before the low 32 bits roll over).
    pub(crate) fn propose(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        cxid: i32,
        txn: Txn,
    ) -> Zxid {
        assert!(self.phase.is_established(), "only an established leader proposes");
        let zxid = self.next_zxid(shared);
        let header = TxnHeader { session_id: session, cxid, zxid, time_ms: shared.wall_ms };
        // One copy shared by the log, the append and every PROPOSAL.
        let logged = std::sync::Arc::new(LoggedTxn { header, txn });
        shared.log.append(logged.clone());
        assert_eq!(shared.log.last_logged(), zxid, "the proposal extends the log");
        // Persist is listed before the sends, but our own vote waits for `Input::Persisted`
        // (`on_durable`): the leader's ACK means on disk, like everyone's (Zab phase 3).
        shared.outputs.push(crate::io::Output::Persist { txn: logged.clone() });
        self.send_forwarding(shared, || SessionMessage::Proposal { txn: logged.clone() });
        // The deliberate bug: commit before any quorum (ourselves included) has it on disk.
        if shared.config.bugs.ack_before_fsync {
            shared.log.mark_committed(zxid);
            shared.apply_committed(self);
        }
        if zxid.counter() >= ZXID_COUNTER_LIMIT && self.phase != LeaderPhase::Standalone {
            // At the end of the step, not now: the caller holds this zxid and must see its
            // proposal through (a multi's reply, a close's bookkeeping) before the role goes.
            self.counter_exhausted = true;
        }
        zxid
    }

    /// A learner's client request, decided here.
    fn on_forwarded(
        &mut self,
        shared: &mut Shared,
        from: ServerId,
        session: SessionId,
        cxid: i32,
        ids: std::sync::Arc<Vec<Id>>,
        fwd: Forwarded,
    ) {
        assert!(self.phase.is_established(), "only an established leader decides requests");
        assert!(self.learners.get(&from).is_some_and(|h| h.up_to_date), "from a serving learner");
        if !matches!(fwd, Forwarded::CreateSession { .. })
            && !shared.sessions.check_owner(session, from)
        {
            // The client has moved to another server since (ZooKeeper: SessionMovedException);
            // applying this late request after its newer ones would break its FIFO order.
            tracing::info!(%session, from = from.0, "request through a former owner; refused");
            self.propose(shared, session, cxid, Txn::Error { err: ZkError::SessionMoved });
            return;
        }
        match fwd {
            // A new session has no owner to check yet; it adopts the first server that
            // speaks for it (`check_owner`).
            Forwarded::CreateSession { timeout_ms } => {
                self.propose(shared, session, 0, Txn::CreateSession { timeout_ms });
            }
            Forwarded::Write(req) if matches!(*req, Request::CloseSession) => {
                if self.close_session(shared, session, cxid).is_none()
                    && shared.sessions.get(session).is_none()
                {
                    let txn = Txn::Error { err: ZkError::SessionExpired };
                    self.propose(shared, session, cxid, txn);
                }
            }
            Forwarded::Write(req) => self.prepare_and_propose(shared, session, cxid, &ids, &req),
        }
    }

    /// Starts closing a session: marks it and proposes its CloseSession txn. `None` when it
    /// is already closing (or gone): its CloseSession txn, if any, is on its way.
    pub(crate) fn close_session(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        cxid: i32,
    ) -> Option<Zxid> {
        assert!(self.phase.is_established(), "only the leader closes sessions");
        if !shared.sessions.mark_closing(session) {
            return None;
        }
        // The zxid is taken before preparing: the close's delete records carry it, and the
        // proposal must use the same one.
        let zxid = self.next_zxid(shared);
        let txn = shared.prep.prepare_close_session(&shared.tree, &shared.config, session, zxid);
        assert!(matches!(txn, Txn::CloseSession { .. }));
        let proposed = self.propose(shared, session, cxid, txn);
        assert_eq!(proposed, zxid);
        Some(proposed)
    }

    /// Prepares a write from one of this server's own clients, after the ownership check.
    fn local_write(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        cxid: i32,
        ids: &[Id],
        req: &Request,
    ) {
        assert!(self.phase.is_established(), "only an established leader decides writes");
        let before = shared.log.last_logged();
        if !shared.sessions.check_owner(session, shared.config.server_id) {
            // The session moved to a learner: an error txn keeps this reply in its zxid order.
            self.propose(shared, session, cxid, Txn::Error { err: ZkError::SessionMoved });
            assert!(shared.log.last_logged() > before, "a refusal is proposed too");
            return;
        }
        self.prepare_and_propose(shared, session, cxid, ids, req);
        assert!(shared.log.last_logged() > before, "every write is proposed");
    }

    /// Prepares a client write (local or forwarded) and proposes it.
    fn prepare_and_propose(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        cxid: i32,
        ids: &[Id],
        req: &Request,
    ) {
        // Read at prepare time, as PrepRequestProcessor does: a request pipelined behind its
        // session's close fails with SESSIONEXPIRED instead of outliving the session.
        let session_valid = shared.sessions.get(session).is_some_and(|s| !s.closing);
        let who = crate::prep::Requester { session, session_valid, ids };
        let zxid = self.next_zxid(shared);
        assert!(zxid > shared.tree.last_processed_zxid(), "prepared over the applied tree");
        let (tree, config, wall_ms) = (&shared.tree, &shared.config, shared.wall_ms);
        let txn = shared.prep.prepare(tree, config, &who, req, zxid, wall_ms);
        let proposed = self.propose(shared, session, cxid, txn);
        assert_eq!(proposed, zxid, "prepared and proposed under one zxid");
    }

    /// Answers syncs whose target is committed and whose quorum proof has come.
    pub(crate) fn complete_syncs(&mut self, shared: &mut Shared) {
        // Applied, not just committed: a local sync's reply must show everything before it.
        let committed = shared.tree.last_processed_zxid();
        while let Some(sync) = self.syncs.front().copied() {
            if sync.target > committed || !self.still_led_after(shared, &sync) {
                break;
            }
            self.syncs.pop_front();
            match sync.waiter {
                SyncWaiter::Learner(id) => self.send_learner(shared, id, SessionMessage::SyncReply),
                SyncWaiter::Local(conn, xid) => shared.sync_done(conn, xid),
            }
        }
        // What is left waits for its target to apply or for its quorum proof.
        let waits = |s: &PendingSync| s.target > committed || !self.still_led_after(shared, s);
        assert!(self.syncs.front().is_none_or(waits), "the first sync left waits");
        assert_eq!(shared.tree.last_processed_zxid(), committed, "answering applies nothing");
    }

    /// A quorum of voters followed this leader after `sync` arrived: they acknowledged a
    /// proposal logged after it, or answered a ping round sent after it. Any newer leader needs
    /// a quorum's promise, which intersects this one in a voter that promised only later, so
    /// nothing was committed in a newer epoch before the sync arrived. (Without it a leader
    /// paused while the others elected answers from its own stale view: ZOOKEEPER-1675.)
    fn still_led_after(&self, shared: &Shared, sync: &PendingSync) -> bool {
        assert!(sync.round >= 1, "rounds count from 1");
        assert!(sync.round <= self.ping_round + 1, "a sync waits at most for the next round");
        // The log never shrinks under a leader (only learners truncate), so the target stays.
        assert!(sync.target <= shared.log.last_logged(), "the target is in our log");
        if self.quorum_acked > sync.target || shared.config.bugs.sync_without_quorum {
            return true;
        }
        let mut answered: Vec<ServerId> =
            self.learners_where(|h| !h.observer && h.acked_round >= sync.round);
        answered.push(shared.config.server_id);
        shared.quorum.contains(answered.iter())
    }

    /// Queues a sync (a local client's or a learner's); it asks for a ping round at the end
    /// of this step, which all syncs of the step share.
    fn queue_sync(&mut self, shared: &mut Shared, waiter: SyncWaiter) {
        // The target is what is logged, not committed: a read after the sync must see every
        // write proposed before it, including those still waiting for their quorum.
        let target = shared.log.last_logged();
        let round = self.ping_round + 1;
        assert!(self.syncs.back().is_none_or(|s| s.target <= target && s.round <= round));
        self.syncs.push_back(PendingSync { waiter, target, round });
        self.sync_round_due = true;
        assert!(round > self.ping_round, "the sync waits for a round not yet sent");
        self.complete_syncs(shared);
    }

    /// Pings every learner that is synced or syncing, as the next round.
    fn send_ping_round(&mut self, shared: &mut Shared) {
        self.ping_round += 1;
        self.sync_round_due = false;
        let round = self.ping_round;
        assert!(round >= 1, "rounds count from 1");
        assert!(!self.sync_round_due, "this round covers the syncs that asked for one");
        self.send_forwarding(shared, || SessionMessage::Ping { round });
    }
}

/// What the client pipeline and the apply path ask of a leader: it decides writes, new
/// sessions and closes itself, and answers syncs once they are committed and proven.
impl Upstream for Leader {
    fn serving(&self) -> bool {
        self.phase.is_established()
    }

    fn is_learner(&self) -> bool {
        false
    }

    // A session is a txn: every server learns it and its timeout from the log, so any of them
    // can take the client over after a reconnect.
    fn create_session(&mut self, shared: &mut Shared, session: SessionId, timeout_ms: i32) {
        self.propose(shared, session, 0, Txn::CreateSession { timeout_ms });
    }

    fn write(
        &mut self,
        shared: &mut Shared,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
    ) {
        let ids = shared.requester_ids_shared(conn);
        self.local_write(shared, session, xid, &ids, &req);
    }

    fn failed_write(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        xid: i32,
        err: ZkError,
    ) -> Zxid {
        self.propose(shared, session, xid, Txn::Error { err })
    }

    fn close_session(&mut self, shared: &mut Shared, _conn: ConnId, session: SessionId, xid: i32) {
        if Leader::close_session(self, shared, session, xid).is_none() {
            // Already closing: its CloseSession txn answers this entry when it applies.
            tracing::debug!(%session, "closeSession while already closing");
        }
    }

    fn sync(&mut self, shared: &mut Shared, conn: ConnId, xid: i32) {
        self.queue_sync(shared, SyncWaiter::Local(conn, xid));
    }

    fn revalidating(&mut self, _: SessionId, _: (ConnId, i32, Option<bool>)) -> Option<ConnId> {
        unreachable!("the leader decides reconnects itself; only learners revalidate")
    }

    fn revalidate(&mut self, _: &mut Shared, _: SessionId) {
        unreachable!("the leader decides reconnects itself; only learners revalidate")
    }

    fn touched(&mut self, _: SessionId) {}

    fn conn_closed(&mut self, _: ConnId, _: SessionId) {}

    fn applied(&mut self, shared: &mut Shared) {
        self.complete_syncs(shared);
    }

    fn log_read_upto(&self) -> Option<Zxid> {
        let pending = self.learners.values().filter_map(|h| match h.phase {
            HandlerPhase::AwaitLogRead { upto, .. } => Some(upto),
            _ => None,
        });
        pending.min()
    }
}

/// An established leader's housekeeping, once per tick (see `Node::leader_housekeeping`).
impl Leader {
    /// Proposes a CloseSession for every session whose timeout ran out (the deliberate bugs
    /// skip expiry or expire at half the timeout). Only the leader expires sessions: learners
    /// report their clients' activity in PINGREPLY, so its table sees every session's use.
    pub(crate) fn expire_sessions(&mut self, shared: &mut Shared) {
        assert!(self.phase.is_established(), "only an established leader expires sessions");
        for session in Leader::expired_sessions(shared) {
            tracing::info!(%session, "session expired");
            self.close_session(shared, session, 0);
            assert!(shared.sessions.get(session).is_none_or(|s| s.closing), "closing now");
        }
    }

    fn expired_sessions(shared: &Shared) -> Vec<SessionId> {
        let now = shared.now_tick;
        if shared.config.bugs.skip_session_expiry {
            return Vec::new();
        }
        if shared.config.bugs.expire_early {
            let half = |ms: i32| shared.config.ms_to_ticks(ms.max(0) as u64) / 2;
            let early = shared
                .sessions
                .iter()
                .filter(|(_, s)| !s.closing && s.expiry_tick <= now + half(s.timeout_ms));
            return early.map(|(id, _)| *id).collect();
        }
        let due = shared.sessions.expired(now);
        assert!(due.windows(2).all(|w| w[0] < w[1]), "each due session once, in id order");
        // A closing session already has its CloseSession txn on the way: a second one would
        // close it twice (ZooKeeper's SessionTrackerImpl marks it closing for the same reason).
        let closing = |id: &SessionId| shared.sessions.get(*id).is_some_and(|s| s.closing);
        assert!(!due.iter().any(closing), "a closing session is not expired again");
        due
    }

    /// Every `container_check_interval_ms`, deletes up to the per-minute budget of empty
    /// containers and expired TTL nodes, each as its own txn (ZooKeeper's ContainerManager).
    pub(crate) fn check_containers(&mut self, shared: &mut Shared) {
        if shared.now_tick < shared.next_container_check_tick {
            return;
        }
        let interval = shared.config.ms_to_ticks(shared.config.container_check_interval_ms);
        shared.next_container_check_tick = shared.now_tick + interval.max(1);
        assert!(shared.next_container_check_tick > shared.now_tick, "the next check is later");
        let extended = shared.config.extended_types_enabled;
        let candidates = shared.tree.expired_containers_and_ttls(shared.wall_ms, extended);
        let per_minute = shared.config.container_max_per_minute as u64;
        let interval_ms = shared.config.container_check_interval_ms.max(1);
        // ZooKeeper's ContainerManager rate limit: a mass expiry of TTL nodes must not flood
        // the log (and every learner) with deletes in one check.
        let budget = (per_minute * interval_ms / 60_000).max(1) as usize;
        assert!(budget >= 1, "at least one deletion per check");
        for path in candidates.into_iter().take(budget) {
            let zxid = self.next_zxid(shared);
            let txn = shared.prep.prepare_delete_container(&shared.tree, &path, zxid);
            self.propose(shared, SessionId(0), 0, txn);
        }
    }
}

/// The shell's log records for a DIFF, as the leader re-checks them: the learner's last zxid
/// `after` is in our history, the first record follows it, each record follows the one before
/// (the next counter, or the first txn of a later epoch: recovery's rule, made stricter by
/// Zab's numbering, where every epoch's txns count from 1), and the last is `upto`.
fn check_log_read(
    found_after: bool,
    after: Zxid,
    upto: Zxid,
    txns: &[LoggedTxn],
) -> Result<(), String> {
    // The records come from disk through the shell: untrusted, so checked and refused (SNAP
    // instead), never asserted on (STYLE.md practice 7).
    let follows = |previous: Zxid, next: Zxid| {
        next == previous.next() || next.epoch() > previous.epoch() && next.counter() == 1
    };
    if !found_after {
        return Err(format!("{after} is not in our txn log files"));
    }
    let (Some(first), Some(last)) = (txns.first(), txns.last()) else {
        return Err("no records".into());
    };
    if !follows(after, first.header.zxid) {
        return Err(format!("the first record {} does not follow {after}", first.header.zxid));
    }
    if let Some(w) = txns.windows(2).find(|w| !follows(w[0].header.zxid, w[1].header.zxid)) {
        return Err(format!("{} does not follow {}", w[1].header.zxid, w[0].header.zxid));
    }
    if last.header.zxid != upto {
        return Err(format!("the last record is {}, not {upto}", last.header.zxid));
    }
    assert!(first.header.zxid > after);
    assert_eq!(last.header.zxid, upto);
    Ok(())
}

/// A leader steps down before its epoch's counter can wrap (ZooKeeper forces an election when
/// the low 32 bits roll over).
pub const ZXID_COUNTER_LIMIT: u32 = u32::MAX - 1024;
