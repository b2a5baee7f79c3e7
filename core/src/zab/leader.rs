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

use crate::node::Node;
use crate::proto::client::Request;
use crate::proto::error::ZkError;
use crate::txn::{LoggedTxn, Txn, TxnHeader};
use crate::types::{ConnId, Id, ServerId, SessionId, Zxid};
use crate::zab::Role;
use crate::zab::election::Backing;
use crate::zab::fifo::{FifoChannel, Receipt};
use crate::zab::message::{Forwarded, ZabMessage};

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
        match self {
            LeaderPhase::Discovery { epoch } => epoch,
            LeaderPhase::Synchronization { epoch } | LeaderPhase::Broadcast { epoch } => {
                Some(epoch)
            }
            LeaderPhase::Standalone => Some(0),
        }
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
}

impl Leader {
    fn new(phase: LeaderPhase, now: u64, history_end: Zxid) -> Leader {
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

    /// The learners `keep` selects, in id order.
    pub fn learners_where(&self, keep: impl Fn(&LearnerHandler) -> bool) -> Vec<ServerId> {
        self.learners.iter().filter(|(_, h)| keep(h)).map(|(id, _)| *id).collect()
    }

    /// Checks the leader's invariants against the node.
    pub fn invariants(&self, node: &Node) {
        if !self.phase.is_established() {
            assert!(node.log.committed() <= self.history_end, "no commits before establishment");
            assert!(
                node.log.last_logged() == self.history_end,
                "no proposals before establishment"
            );
        } else {
            assert!(self.phase.epoch().is_some(), "an established leader has an epoch");
            assert!(node.log.committed() >= self.history_end, "the history is committed");
        }
        if self.phase.is_epoch_acked() && self.phase != LeaderPhase::Standalone {
            let epoch = self.phase.epoch();
            assert_eq!(Some(node.current_epoch), epoch, "the epoch is current once acked");
            let early = node.config.bugs.epoch_before_sync;
            assert!(early || node.log.durable() >= self.history_end, "current over a durable log");
        }
        if let Some(epoch) = self.phase.epoch() {
            assert!(epoch <= node.accepted_epoch, "the leader accepted its own epoch");
            assert!(node.log.last_logged().epoch() <= epoch, "no zxid beyond the epoch");
        }
        for (id, handler) in &self.learners {
            assert_ne!(*id, node.config.server_id, "the leader is not its own learner");
            handler.channel.invariants();
            if self.acked.contains_key(id) {
                assert_eq!(handler.phase, HandlerPhase::Synced, "only synced learners ack");
            }
            if let HandlerPhase::AwaitLogRead { request, after, upto } = handler.phase {
                assert!(after < upto, "a log read is for a learner behind the in-memory log");
                assert!(request <= node.log_reads, "a log read the node asked for");
            }
        }
    }
}

fn leader_mut(node: &mut Node) -> &mut Leader {
    match &mut node.role {
        Role::Leading(leader) => leader,
        _ => panic!("not leading"),
    }
}

fn leader_ref(node: &Node) -> &Leader {
    match &node.role {
        Role::Leading(leader) => leader,
        _ => panic!("not leading"),
    }
}

impl Node {
    /// Won an election: start discovery with our own accepted epoch on the table.
    pub(crate) fn become_leader(&mut self) {
        let me = self.config.server_id;
        assert!(!self.config.is_standalone(), "a standalone server leads from the start");
        assert!(self.quorum.is_voter(me), "observers never lead");
        // Fast leader election picked the server with the newest (currentEpoch, last zxid)
        // among a quorum, so our log holds every committed txn: `history_end` is what the new
        // epoch commits first (Zab's "initial history"; the implementation's Leader.lead).
        let discovery = LeaderPhase::Discovery { epoch: None };
        let mut leader = Leader::new(discovery, self.now_tick, self.log.last_logged());
        leader.infos.insert(me, self.accepted_epoch);
        self.role = Role::Leading(Box::new(leader));
        self.maybe_decide_epoch();
    }

    fn maybe_decide_epoch(&mut self) {
        let leader = leader_ref(self);
        if leader.phase.epoch().is_some() || !self.quorum.contains(leader.infos.keys()) {
            return;
        }
        // Zab phase 1: the new epoch is above every acceptedEpoch of a quorum, so no follower
        // of that quorum can still accept an older leader's NEWEPOCH, and two leaders never
        // establish the same epoch (the TLA+ spec's Leadership1).
        let epoch = leader.infos.values().copied().max().expect("own info") + 1;
        assert!(epoch > self.accepted_epoch, "our own accepted epoch is among the infos");
        assert!(epoch > self.current_epoch, "a new epoch is newer than any we led or followed");
        tracing::info!(server = self.config.server_id.0, epoch, "proposing a new epoch");
        self.accepted_epoch = epoch;
        self.persist_epochs();
        let me = self.config.server_id;
        let leader = leader_mut(self);
        assert_eq!(leader.phase, LeaderPhase::Discovery { epoch: None });
        leader.phase = LeaderPhase::Discovery { epoch: Some(epoch) };
        leader.epoch_acks.insert(me);
        let waiting: Vec<ServerId> = leader.learners_where(|h| h.phase == HandlerPhase::Info);
        for id in waiting {
            leader_mut(self).learners.get_mut(&id).expect("listed").phase =
                HandlerPhase::AwaitAckEpoch;
            self.send_learner(id, ZabMessage::LeaderInfo { new_epoch: epoch });
        }
        self.maybe_epoch_quorum();
    }

    /// Once a quorum acknowledged the epoch and our own history is durable, makes the epoch our
    /// current epoch and synchronizes the learners. The history must be durable first: a leader
    /// elected with txns still waiting for fsync that wrote "epoch e+1" and then crashed would
    /// restart with a newer epoch over a shorter log, win again and truncate txns a quorum of
    /// epoch e committed (ZOOKEEPER-4643, the leader's side).
    fn maybe_epoch_quorum(&mut self) {
        let leader = leader_ref(self);
        if leader.phase.is_epoch_acked() || !self.quorum.contains(leader.epoch_acks.iter()) {
            return;
        }
        let durable = self.log.durable() >= leader.history_end;
        if !durable && !self.config.bugs.epoch_before_sync {
            return;
        }
        let epoch = leader.phase.epoch().expect("decided");
        assert!(epoch > self.current_epoch, "a new epoch is newer than any we led or followed");
        leader_mut(self).phase = LeaderPhase::Synchronization { epoch };
        self.current_epoch = epoch;
        self.persist_epochs();
        let waiting: Vec<ServerId> =
            leader_ref(self).learners_where(|h| h.phase == HandlerPhase::AwaitSync);
        for id in waiting {
            self.sync_learner(id);
        }
        self.maybe_establish();
    }

    /// Sends a message in the learner's session (numbered; see `zab::message`).
    pub(crate) fn send_learner(&mut self, id: ServerId, msg: ZabMessage) {
        let Some(h) = leader_mut(self).learners.get_mut(&id) else { return };
        let numbered = h.channel.wrap(msg);
        assert!(h.channel.sent() >= 1, "the message took a number");
        assert!(matches!(numbered, ZabMessage::Session { .. }), "session messages are numbered");
        self.send_peer(id, numbered);
    }

    /// Re-sends the session's first message (a LEADERINFO the learner never got).
    fn resend_first(&mut self, id: ServerId, msg: ZabMessage) {
        let Some(h) = leader_ref(self).learners.get(&id) else { return };
        if let Some(numbered) = h.channel.rewrap_first(msg) {
            self.send_peer(id, numbered);
        }
    }

    pub(crate) fn leader_on_message(&mut self, from: ServerId, msg: ZabMessage) {
        let now = self.now_tick;
        match msg {
            ZabMessage::Session { nonce, seq, msg } => {
                self.on_learner_session(from, nonce, seq, *msg, now)
            }
            ZabMessage::FollowerInfo { accepted_epoch, last_zxid, observer, nonce } => {
                let known =
                    leader_ref(self).learners.get(&from).map(|h| (h.channel.nonce(), h.phase));
                match known {
                    Some((n, HandlerPhase::AwaitAckEpoch)) if n == nonce => {
                        let epoch = leader_ref(self).phase.epoch().expect("sent LEADERINFO");
                        // A repeat of a lost LEADERINFO: the session's first message again.
                        self.resend_first(from, ZabMessage::LeaderInfo { new_epoch: epoch });
                    }
                    Some((n, _)) if n == nonce => {}
                    _ => self.on_follower_info(from, accepted_epoch, last_zxid, observer, nonce),
                }
            }
            _ => {}
        }
    }

    /// Takes a learner's session messages in order (see `learner_on_message` for the rules).
    fn on_learner_session(
        &mut self,
        from: ServerId,
        nonce: u64,
        seq: u64,
        msg: ZabMessage,
        now: u64,
    ) {
        let Some(h) = leader_mut(self).learners.get_mut(&from) else { return };
        let mut next = match h.channel.receive(nonce, seq, msg) {
            Receipt::Deliver(msg) => {
                h.last_heard = now;
                Some(msg)
            }
            Receipt::Dropped | Receipt::Held => None,
            Receipt::Overflow => {
                tracing::info!(learner = from.0, "a learner's message is lost; dropping it");
                self.drop_learner(from);
                None
            }
        };
        while let Some(msg) = next {
            self.leader_on_session_message(from, msg);
            next = match &mut self.role {
                Role::Leading(l) => match l.learners.get_mut(&from) {
                    Some(h) if h.channel.nonce() == nonce => h.channel.next_ready(),
                    _ => None,
                },
                _ => None,
            };
        }
    }

    fn drop_learner(&mut self, id: ServerId) {
        let leader = leader_mut(self);
        leader.learners.remove(&id);
        leader.acked.remove(&id);
        if !leader.phase.is_established() {
            // Before establishment its NEWLEADER ACK must not count: it may come back and be
            // synced again. After, the quorum that established the epoch stays what it was.
            leader.newleader_acks.remove(&id);
        }
        assert!(!leader_ref(self).learners.contains_key(&id));
        assert!(!leader_ref(self).acked.contains_key(&id), "a dropped learner's ACKs go too");
    }

    fn leader_on_session_message(&mut self, from: ServerId, msg: ZabMessage) {
        let now = self.now_tick;
        match msg {
            ZabMessage::AckEpoch { current_epoch, last_zxid } => {
                self.on_ack_epoch(from, current_epoch, last_zxid)
            }
            ZabMessage::Ack { zxid } => self.on_ack(from, zxid),
            ZabMessage::Request { session, cxid, ids, forwarded } => {
                let synced = leader_ref(self)
                    .learners
                    .get(&from)
                    .is_some_and(|h| h.phase == HandlerPhase::Synced && h.up_to_date);
                if synced && self.is_established_leader() {
                    self.on_forwarded(from, session, cxid, ids, forwarded);
                }
            }
            ZabMessage::Revalidate { session } => {
                let valid = self.sessions.get(session).is_some_and(|s| !s.closing);
                if valid {
                    self.sessions.set_owner(session, from);
                    self.sessions.touch(session, now);
                }
                self.send_learner(from, ZabMessage::RevalidateReply { session, valid });
            }
            ZabMessage::SyncRequest => self.queue_sync(SyncWaiter::Learner(from)),
            ZabMessage::PingReply { touched, round } => {
                for session in touched {
                    self.sessions.touch(session, now);
                }
                let leader = leader_mut(self);
                // A round this leader never sent (a peer's bug, or a reply meant for an earlier
                // leadership of this server) proves nothing: ignored, never trusted.
                if round <= leader.ping_round
                    && let Some(h) = leader.learners.get_mut(&from)
                {
                    h.acked_round = h.acked_round.max(round);
                }
                self.complete_syncs();
            }
            _ => {}
        }
    }

    fn on_follower_info(
        &mut self,
        from: ServerId,
        accepted: u32,
        last_zxid: Zxid,
        observer: bool,
        nonce: u64,
    ) {
        let now = self.now_tick;
        let voter = self.quorum.is_voter(from);
        let leader = leader_mut(self);
        leader.acked.remove(&from);
        leader.newleader_acks.remove(&from);
        let handler = LearnerHandler {
            observer: observer || !voter,
            phase: HandlerPhase::Info,
            last_zxid,
            last_heard: now,
            up_to_date: false,
            channel: FifoChannel::new(nonce),
            acked_round: 0,
        };
        leader.learners.insert(from, handler);
        match leader.phase.epoch() {
            Some(epoch) => {
                leader.learners.get_mut(&from).expect("inserted").phase =
                    HandlerPhase::AwaitAckEpoch;
                self.send_learner(from, ZabMessage::LeaderInfo { new_epoch: epoch });
            }
            None => {
                if voter {
                    leader.infos.insert(from, accepted);
                }
                self.maybe_decide_epoch();
            }
        }
    }

    /// An ACKEPOCH: the learner promised our epoch (`Some`), or had promised it before, maybe to
    /// another leader (`None`): then it is synchronized once the epoch is established but is not
    /// counted toward the epoch's quorum (ZooKeeper's `Leader.waitForEpochAck` skips -1).
    fn on_ack_epoch(&mut self, from: ServerId, current_epoch: Option<u32>, last_zxid: Zxid) {
        let mine = (self.current_epoch, self.log.last_logged());
        let Some(h) = leader_mut(self).learners.get_mut(&from) else {
            return;
        };
        if h.phase != HandlerPhase::AwaitAckEpoch {
            return;
        }
        // Without a current epoch (`None`) the learner's log alone is compared: ZooKeeper skips
        // the check then, but a learner with txns we lack would be truncated by our sync.
        let ahead = match current_epoch {
            Some(epoch) => (epoch, last_zxid) > mine,
            None => last_zxid > mine.1,
        };
        if ahead {
            tracing::warn!(
                learner = from.0,
                "a learner is more up to date than the leader; abdicating"
            );
            return self.become_looking();
        }
        h.last_zxid = last_zxid;
        h.phase = HandlerPhase::AwaitSync;
        let voter = !h.observer && current_epoch.is_some();
        let leader = leader_mut(self);
        if voter {
            leader.epoch_acks.insert(from);
        }
        if leader.phase.is_epoch_acked() {
            self.sync_learner(from);
        } else {
            self.maybe_epoch_quorum();
        }
    }

    /// Brings one learner's log to the leader's: TRUNC, SNAP or nothing, then DIFF, NEWLEADER;
    /// or, when it is behind the in-memory log but its txns are in our log files, a read of
    /// them first (`Output::ReadLog`, answered by `leader_on_log_read`).
    fn sync_learner(&mut self, id: ServerId) {
        assert!(leader_ref(self).phase.is_epoch_acked(), "sync only after a quorum ACK-E");
        let theirs = leader_ref(self).learners[&id].last_zxid;
        let last = self.log.last_logged();
        // The choice of LearnerHandler.syncFollower: DIFF when their last zxid is in our log,
        // SNAP when it is older than what we keep, else TRUNC back to the last zxid we share:
        // they hold a tail no quorum committed (ZOOKEEPER-1154 sent DIFF there and left it).
        if theirs == last || self.log.contains(theirs) && theirs <= last {
            self.send_diff(id, Vec::new(), theirs);
        } else if theirs < self.log.oldest() {
            if !self.read_log_for(id, theirs) {
                self.send_snap(id);
            }
        } else {
            let keep = self.log.floor(theirs);
            if !self.config.bugs.diff_instead_of_trunc {
                self.send_learner(id, ZabMessage::Trunc { zxid: keep });
            }
            self.send_diff(id, Vec::new(), keep);
        }
    }

    /// A learner whose last zxid is older than the in-memory log: asks the shell for the log
    /// files' records after it (ZooKeeper's `LearnerHandler.syncFollower` reads its txn log
    /// when the gap is small against the snapshot) if they hold it and the gap is under
    /// `disk_diff_max_txns`. Returns false when a SNAP is the way.
    fn read_log_for(&mut self, id: ServerId, theirs: Zxid) -> bool {
        let upto = self.log.oldest();
        let max_txns = self.config.disk_diff_max_txns;
        assert!(theirs < upto, "only a learner behind the in-memory log");
        // Within an epoch zxids count txns; across epochs only the newer counter is known, so
        // the estimate is low then: the shell enforces `max_txns` on what it reads.
        let behind = match theirs.epoch() == upto.epoch() {
            true => u64::from(upto.counter() - theirs.counter()),
            false => u64::from(upto.counter()),
        };
        let missed = behind + self.log.len() as u64;
        if max_txns == 0 || theirs < self.log.on_disk_from() || missed > max_txns {
            return false;
        }
        self.log_reads += 1;
        let request = self.log_reads;
        // The deliberate bug: the read starts one txn late, and the re-check trusts it.
        #[cfg(feature = "bugs")]
        let theirs = match self.config.bugs.disk_diff_skips_one && theirs.next() < upto {
            true => theirs.next(),
            false => theirs,
        };
        let h = leader_mut(self).learners.get_mut(&id).expect("synced learner exists");
        assert_eq!(h.phase, HandlerPhase::AwaitSync, "each learner is synced once per session");
        h.phase = HandlerPhase::AwaitLogRead { request, after: theirs, upto };
        tracing::info!(learner = id.0, %theirs, %upto, request, "reading the txn log for a DIFF");
        self.outputs.push(crate::io::Output::ReadLog { request, after: theirs, upto, max_txns });
        true
    }

    /// The shell's answer to `Output::ReadLog`. Re-checks everything before it sends: the
    /// learner still waits for this read, its last zxid is in our history (`found_after`), the
    /// records run from right after it to `upto` with no hole, and `upto` is still in memory (a
    /// burst of commits during the read may have trimmed it). Then DIFF = the records + the
    /// in-memory log after `upto`, and NEWLEADER; on any failure a SNAP, as before.
    pub(crate) fn leader_on_log_read(
        &mut self,
        request: u64,
        found_after: bool,
        txns: Result<Vec<LoggedTxn>, String>,
    ) {
        let waiting = leader_ref(self).learners.iter().find_map(|(id, h)| match h.phase {
            HandlerPhase::AwaitLogRead { request: r, after, upto } if r == request => {
                Some((*id, after, upto))
            }
            _ => None,
        });
        let Some((id, after, upto)) = waiting else {
            tracing::debug!(request, "a txn log read nobody waits for any more");
            return;
        };
        let checked = txns.and_then(|txns| {
            check_log_read(found_after, after, upto, &txns)?;
            match self.log.contains(upto) {
                true => Ok(txns),
                false => Err(format!("{upto} left the in-memory log during the read")),
            }
        });
        match checked {
            Ok(txns) => {
                tracing::info!(learner = id.0, from_disk = txns.len(), %after, %upto,
                    "syncing a learner by DIFF from the txn log files");
                self.send_diff(id, txns, upto);
            }
            Err(reason) => {
                tracing::info!(learner = id.0, %after, "no DIFF from the txn log ({reason}): SNAP");
                self.send_snap(id);
            }
        }
    }

    /// SNAP of our applied state, then the DIFF of what we logged after it.
    fn send_snap(&mut self, id: ServerId) {
        let snapshot = Box::new(self.snapshot());
        let base = snapshot.zxid;
        assert!(self.log.contains(base), "a snapshot is at the applied zxid, in the log");
        self.send_learner(id, ZabMessage::Snap { snapshot });
        self.send_diff(id, Vec::new(), base);
    }

    /// DIFF of `head` (records read from the log files, ending at `from`) and the in-memory log
    /// after `from`, then NEWLEADER: the learner is syncing and gets proposals from now on.
    fn send_diff(&mut self, id: ServerId, head: Vec<LoggedTxn>, from: Zxid) {
        let epoch = leader_ref(self).phase.epoch().expect("decided");
        let (last, committed) = (self.log.last_logged(), self.log.committed());
        assert!(head.last().is_none_or(|t| t.header.zxid == from), "the head ends at `from`");
        assert!(self.log.contains(from), "the rest is in memory");
        let mut txns = head;
        txns.extend(self.log.range(from, last).cloned());
        self.send_learner(id, ZabMessage::Diff { txns, committed });
        self.send_learner(id, ZabMessage::NewLeader { zxid: Zxid::new(epoch, 0) });
        let h = leader_mut(self).learners.get_mut(&id).expect("synced learner exists");
        let once = matches!(h.phase, HandlerPhase::AwaitSync | HandlerPhase::AwaitLogRead { .. });
        assert!(once, "each learner is synced once per session");
        h.phase = HandlerPhase::Syncing;
        assert!(h.forwarding());
    }

    fn on_ack(&mut self, from: ServerId, zxid: Zxid) {
        let Some(epoch) = leader_ref(self).phase.epoch() else {
            return;
        };
        let established = leader_ref(self).phase.is_established();
        let leader = leader_mut(self);
        let Some(h) = leader.learners.get_mut(&from) else {
            return;
        };
        match h.phase {
            HandlerPhase::Syncing if zxid == Zxid::new(epoch, 0) => {
                h.phase = HandlerPhase::Synced;
                if !h.observer {
                    leader.newleader_acks.insert(from);
                    leader.acked.insert(from, zxid);
                }
                if established {
                    leader.learners.get_mut(&from).expect("present").up_to_date = true;
                    self.send_learner(from, ZabMessage::UpToDate);
                } else {
                    self.maybe_establish();
                }
            }
            HandlerPhase::Synced if !h.observer => {
                let acked = leader.acked.entry(from).or_insert(zxid);
                *acked = (*acked).max(zxid);
                self.try_commit();
            }
            _ => {}
        }
    }

    fn maybe_establish(&mut self) {
        let me = self.config.server_id;
        let leader = leader_ref(self);
        let LeaderPhase::Synchronization { epoch } = leader.phase else {
            return;
        };
        let mut acks = leader.newleader_acks.clone();
        if self.log.durable() >= leader.history_end {
            acks.insert(me);
        }
        if !self.quorum.contains(acks.iter()) {
            return;
        }
        let history_end = leader.history_end;
        assert!(self.quorum.contains(acks.iter()), "a quorum acked NEWLEADER");
        tracing::info!(server = me.0, epoch, "established as leader");
        // Zab phase 2 ends: a quorum holds the initial history durably under the new epoch, so
        // it is committed (the paper's COMMIT-LD) and the leader may propose (phase 3).
        leader_mut(self).phase = LeaderPhase::Broadcast { epoch };
        self.log.mark_committed(history_end);
        self.apply_committed();
        assert!(self.log.committed() >= history_end, "the initial history is committed");
        // Sessions restart their timeouts: the old leader's view of client liveness is gone
        // (ZooKeeper's SessionTrackerImpl starts over after an election).
        self.sessions.touch_all(self.now_tick);
        self.sessions.clear_owners();
        let synced: Vec<ServerId> =
            leader_ref(self).learners_where(|h| h.phase == HandlerPhase::Synced);
        let forwarding: Vec<ServerId> = leader_ref(self).learners_where(|h| h.forwarding());
        for id in forwarding {
            self.send_learner(id, ZabMessage::Commit { zxid: history_end });
        }
        for id in synced {
            leader_mut(self).learners.get_mut(&id).expect("listed").up_to_date = true;
            self.send_learner(id, ZabMessage::UpToDate);
        }
        assert!(self.is_established_leader());
    }

    pub(crate) fn leader_durable(&mut self) {
        let phase = leader_ref(self).phase;
        if phase.is_established() {
            self.try_commit();
        } else if phase.epoch().is_some() {
            self.maybe_epoch_quorum();
            self.maybe_establish();
        }
    }

    /// Commits everything a quorum of voters has durable, in zxid order.
    pub(crate) fn try_commit(&mut self) {
        let me = self.config.server_id;
        let leader = leader_ref(self);
        if !leader.phase.is_established() {
            return;
        }
        let mut points: Vec<Zxid> = self
            .quorum
            .voters()
            .iter()
            .map(|id| {
                if *id == me {
                    self.log.durable()
                } else {
                    leader.acked.get(id).copied().unwrap_or(Zxid::ZERO)
                }
            })
            .collect();
        points.sort_by(|a, b| b.cmp(a));
        let quorum_point = points[self.quorum.majority() - 1];
        let point = if self.config.bugs.commit_after_one_ack { points[0] } else { quorum_point };
        let point = point.min(self.log.last_logged());
        let committed = self.log.committed();
        let acked = &mut leader_mut(self).quorum_acked;
        *acked = (*acked).max(quorum_point);
        // Syncs whose target was already committed may have their proof now: answer them
        // before anything later is committed, or their replies would show later writes.
        self.complete_syncs();
        if point <= committed {
            return;
        }
        // Commit in steps at each pending sync's target, so a learner gets COMMIT(target),
        // then SYNC, then the later commits: its sync is answered before it applies writes
        // proposed after the sync (which the same client may have pipelined behind it). A
        // commit point beyond the target is also the sync's quorum proof (`still_led_after`),
        // so no sync waits at its step once later txns commit.
        let mut steps: Vec<Zxid> = leader_ref(self)
            .syncs
            .iter()
            .map(|s| s.target)
            .filter(|t| *t > committed && *t < point)
            .collect();
        steps.dedup();
        steps.push(point);
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "sync targets are in order");
        for step in steps {
            self.commit_to(step);
        }
    }

    fn commit_to(&mut self, point: Zxid) {
        assert!(leader_ref(self).phase.is_established(), "commits only once established");
        let forwarding: Vec<ServerId> = leader_ref(self).learners_where(|h| h.forwarding());
        self.log.mark_committed(point);
        // COMMIT goes to syncing learners too: they hold the proposal (sent after their DIFF)
        // and apply it at UPTODATE; observers get it as well (the implementation's INFORM).
        for id in forwarding {
            self.send_learner(id, ZabMessage::Commit { zxid: point });
        }
        self.apply_committed();
        assert_eq!(self.tree.last_processed_zxid(), self.log.committed(), "applied in order");
        self.complete_syncs();
    }

    /// Appends a decided txn to the log, asks the shell to persist it and sends it to learners.
    pub(crate) fn propose(&mut self, session: SessionId, cxid: i32, txn: Txn) -> Zxid {
        assert!(self.is_established_leader(), "only an established leader proposes");
        let zxid = self.next_zxid();
        let header = TxnHeader { session_id: session, cxid, zxid, time_ms: self.wall_ms };
        // One copy shared by the log and the append; each PROPOSAL takes its own.
        let logged = std::sync::Arc::new(LoggedTxn { header, txn });
        self.log.append(logged.clone());
        let forwarding: Vec<ServerId> = leader_ref(self).learners_where(|h| h.forwarding());
        self.outputs.push(crate::io::Output::Persist { txn: logged.clone() });
        for id in forwarding {
            self.send_learner(id, ZabMessage::Proposal { txn: (*logged).clone() });
        }
        if self.config.bugs.ack_before_fsync {
            self.log.mark_committed(zxid);
            self.apply_committed();
        }
        if zxid.counter() >= ZXID_COUNTER_LIMIT && leader_ref(self).phase != LeaderPhase::Standalone
        {
            tracing::warn!("zxid counter near its limit; forcing a new epoch");
            self.become_looking();
        }
        zxid
    }

    /// A learner's client request, decided here.
    fn on_forwarded(
        &mut self,
        from: ServerId,
        session: SessionId,
        cxid: i32,
        ids: Vec<Id>,
        fwd: Forwarded,
    ) {
        if !matches!(fwd, Forwarded::CreateSession { .. })
            && !self.sessions.check_owner(session, from)
        {
            // The client has moved to another server since (ZooKeeper: SessionMovedException);
            // applying this late request after its newer ones would break its FIFO order.
            tracing::info!(%session, from = from.0, "request through a former owner; refused");
            self.propose(session, cxid, Txn::Error { err: ZkError::SessionMoved });
            return;
        }
        match fwd {
            Forwarded::CreateSession { timeout_ms } => {
                self.propose(session, 0, Txn::CreateSession { timeout_ms });
            }
            Forwarded::Write(Request::CloseSession) => {
                if self.close_session(session, cxid).is_none()
                    && self.sessions.get(session).is_none()
                {
                    self.propose(session, cxid, Txn::Error { err: ZkError::SessionExpired });
                }
            }
            Forwarded::Write(req) => self.prepare_and_propose(session, cxid, &ids, &req),
        }
    }

    /// Prepares a write from one of this server's own clients, after the ownership check.
    pub(crate) fn local_write(&mut self, session: SessionId, cxid: i32, ids: &[Id], req: &Request) {
        if !self.sessions.check_owner(session, self.config.server_id) {
            self.propose(session, cxid, Txn::Error { err: ZkError::SessionMoved });
            return;
        }
        self.prepare_and_propose(session, cxid, ids, req);
    }

    /// Prepares a client write (local or forwarded) and proposes it.
    pub(crate) fn prepare_and_propose(
        &mut self,
        session: SessionId,
        cxid: i32,
        ids: &[Id],
        req: &Request,
    ) {
        let session_valid = self.sessions.get(session).is_some_and(|s| !s.closing);
        let who = crate::prep::Requester { session, session_valid, ids };
        let zxid = self.next_zxid();
        let txn = self.prep.prepare(&self.tree, &self.config, &who, req, zxid, self.wall_ms);
        let proposed = self.propose(session, cxid, txn);
        assert!(proposed == zxid || !self.is_established_leader());
    }

    /// Answers syncs whose target is committed and whose quorum proof has come (leader only).
    pub(crate) fn complete_syncs(&mut self) {
        let Role::Leading(_) = &self.role else { return };
        // Applied, not just committed: a local sync's reply must show everything before it.
        let committed = self.tree.last_processed_zxid();
        while let Some(sync) = leader_ref(self).syncs.front().copied() {
            if sync.target > committed || !self.still_led_after(&sync) {
                break;
            }
            leader_mut(self).syncs.pop_front();
            match sync.waiter {
                SyncWaiter::Learner(id) => self.send_learner(id, ZabMessage::SyncReply),
                SyncWaiter::Local(conn, xid) => self.sync_done(conn, xid),
            }
        }
    }

    /// A quorum of voters followed this leader after `sync` arrived: they acknowledged a
    /// proposal logged after it, or answered a ping round sent after it. Any newer leader needs
    /// a quorum's promise, which intersects this one in a voter that promised only later, so
    /// nothing was committed in a newer epoch before the sync arrived. (Without it a leader
    /// paused while the others elected answers from its own stale view: ZOOKEEPER-1675.)
    fn still_led_after(&self, sync: &PendingSync) -> bool {
        let leader = leader_ref(self);
        assert!(sync.round >= 1 && sync.round <= leader.ping_round + 1, "rounds count from 1");
        if leader.quorum_acked > sync.target || self.config.bugs.sync_without_quorum {
            return true;
        }
        let mut answered: Vec<ServerId> =
            leader.learners_where(|h| !h.observer && h.acked_round >= sync.round);
        answered.push(self.config.server_id);
        self.quorum.contains(answered.iter())
    }

    /// Queues a sync (a local client's or a learner's); it asks for a ping round at the end
    /// of this step, which all syncs of the step share.
    fn queue_sync(&mut self, waiter: SyncWaiter) {
        let target = self.log.last_logged();
        let leader = leader_mut(self);
        let round = leader.ping_round + 1;
        assert!(leader.syncs.back().is_none_or(|s| s.target <= target && s.round <= round));
        leader.syncs.push_back(PendingSync { waiter, target, round });
        leader.sync_round_due = true;
        self.complete_syncs();
    }

    /// Queues a local client's sync (leader).
    pub(crate) fn leader_sync(&mut self, conn: ConnId, xid: i32) {
        self.queue_sync(SyncWaiter::Local(conn, xid));
    }

    /// Sends the ping round the syncs of this step asked for (called after every step).
    pub(crate) fn send_sync_round(&mut self) {
        let Role::Leading(leader) = &self.role else { return };
        if !leader.sync_round_due {
            return;
        }
        self.send_ping_round();
        assert!(!leader_ref(self).sync_round_due, "the round is sent once");
    }

    /// Pings every learner that is synced or syncing, as the next round.
    fn send_ping_round(&mut self) {
        let leader = leader_mut(self);
        leader.ping_round += 1;
        leader.sync_round_due = false;
        let round = leader.ping_round;
        let targets: Vec<ServerId> = leader.learners_where(|h| h.forwarding());
        for id in targets {
            self.send_learner(id, ZabMessage::Ping { round });
        }
    }

    pub(crate) fn leader_tick(&mut self) {
        let now = self.now_tick;
        let init = self.config.tick_times(self.config.init_limit);
        let sync = self.config.tick_times(self.config.sync_limit);
        #[cfg(feature = "bugs")]
        let sync = match self.config.bugs.stale_leader_lease {
            // ZOOKEEPER-1675: the leader outlives its followers' patience.
            true => self.config.tick_times(self.config.init_limit),
            false => sync,
        };
        let ping_every = (self.config.tick_times(1) / 2).max(1);
        let leader = leader_ref(self);
        if leader.phase == LeaderPhase::Standalone {
            return;
        }
        if !leader.phase.is_established() {
            if now.saturating_sub(leader.started) > init {
                tracing::info!("leader not established within initLimit; back to election");
                self.become_looking();
            }
            return;
        }
        let silent: Vec<ServerId> =
            leader.learners_where(|h| now.saturating_sub(h.last_heard) > sync);
        for id in silent {
            tracing::info!(learner = id.0, "learner silent for syncLimit; dropping it");
            self.drop_learner(id);
        }
        if !self.has_synced_quorum() {
            tracing::warn!("lost the quorum of synced followers; back to election");
            return self.become_looking();
        }
        if now >= leader_ref(self).next_ping {
            leader_mut(self).next_ping = now + ping_every;
            self.send_ping_round();
        }
    }
}

impl Node {
    /// The leader and its synced voting followers still make a quorum.
    fn has_synced_quorum(&self) -> bool {
        let leader = leader_ref(self);
        let mut live: Vec<ServerId> = leader.learners_where(|h| h.phase == HandlerPhase::Synced);
        live.push(self.config.server_id);
        self.quorum.contains(live.iter())
    }

    /// The connection to learner `peer` is gone: forget it at once rather than after
    /// `syncLimit` of silence, and step down if the synced followers left no longer make a
    /// quorum (ZooKeeper's leader checks its synced set every half tick). Before establishment
    /// the learner is only forgotten: `initLimit` bounds the wait for a quorum, and a learner
    /// that comes back introduces itself again.
    pub(crate) fn leader_on_peer_lost(&mut self, peer: ServerId) {
        let leader = leader_ref(self);
        if leader.phase == LeaderPhase::Standalone || !leader.learners.contains_key(&peer) {
            return;
        }
        tracing::info!(learner = peer.0, "lost the connection to a learner; dropping it");
        self.drop_learner(peer);
        assert!(!leader_ref(self).acked.contains_key(&peer), "a dropped learner's ACKs are gone");
        if leader_ref(self).phase.is_established() && !self.has_synced_quorum() {
            tracing::warn!("lost the quorum of synced followers; back to election");
            self.become_looking();
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
