//! The learner's side of Zab (followers and observers): FOLLOWERINFO, accept the new epoch
//! durably before ACKEPOCH, apply TRUNC/SNAP/DIFF, adopt the epoch at NEWLEADER and acknowledge it
//! once the synced log is durable, start serving at UPTODATE; then log proposals, send cumulative
//! ACKs of what is durable, and apply commits in order. Client writes, new sessions and syncs are
//! forwarded to the leader.
//!
//! Invariants (`Learner::invariants`):
//! - the learner never acknowledges anything that is not durable (NEWLEADER only after the
//!   synced log is durable; ACK(z) only for z ≤ durable);
//! - it never truncates committed txns: a TRUNC below its commit point is refused;
//! - it serves clients only in broadcast; any gap in what the leader sends (a proposal that
//!   does not follow the log, a commit beyond it) sends it back to election.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::Rng;

use crate::node::Node;
use crate::proto::client::Request;
use crate::types::{ConnId, ServerId, SessionId, Zxid};
use crate::zab::Role;
use crate::zab::fifo::{FifoChannel, Receipt};
use crate::zab::message::{Forwarded, ZabMessage};

/// Where the learner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnerPhase {
    /// FOLLOWERINFO sent; waiting for LEADERINFO.
    Discovery,
    /// ACKEPOCH sent; receiving TRUNC/SNAP/DIFF/NEWLEADER, then UPTODATE.
    Syncing,
    /// Serving clients; proposals and commits flow.
    Broadcast,
}

/// Learner state.
#[derive(Clone, Debug)]
pub struct Learner {
    /// The leader.
    pub leader: ServerId,
    /// Non-voting.
    pub observer: bool,
    /// Phase.
    pub phase: LearnerPhase,
    /// The epoch the leader is establishing (from LEADERINFO).
    pub new_epoch: u32,
    /// Last tick anything arrived from the leader.
    pub last_heard: u64,
    /// NEWLEADER received (its zxid), and the log end it covers.
    pub newleader: Option<(Zxid, Zxid)>,
    /// NEWLEADER acknowledged.
    pub newleader_acked: bool,
    /// The highest commit point the leader announced.
    pub commit_seen: Zxid,
    /// The highest ACK sent.
    pub acked: Zxid,
    /// The session with the leader, named by this incarnation's FOLLOWERINFO nonce.
    pub channel: FifoChannel,
    /// Sessions touched by local clients since the last PING reply (reported in PINGREPLY, so
    /// the leader, which alone expires sessions, sees them alive).
    pub touched: BTreeSet<SessionId>,
    /// Client syncs forwarded to the leader, oldest first (answered by SYNC replies in order).
    pub pending_syncs: VecDeque<(ConnId, i32)>,
    /// Reconnects waiting for the leader to revalidate the session: the connection, the
    /// negotiated timeout and the client's readOnly byte.
    pub revalidating: BTreeMap<SessionId, (ConnId, i32, Option<bool>)>,
    /// When to repeat FOLLOWERINFO while no LEADERINFO came (the leader may still be electing).
    pub next_info: u64,
}

impl Learner {
    /// Checks the learner's invariants against the node.
    pub fn invariants(&self, node: &Node) {
        self.channel.invariants();
        assert!(
            self.acked <= node.log.durable().max(self.newleader.map(|n| n.0).unwrap_or_default()),
            "never acknowledge what is not durable"
        );
        if self.phase != LearnerPhase::Broadcast {
            // Serving only in broadcast: the connection scan is in `Node::check_full`.
            assert!(self.pending_syncs.is_empty(), "syncs are forwarded only in broadcast");
            assert!(self.revalidating.is_empty(), "revalidations only in broadcast");
        }
        if self.newleader_acked {
            assert!(self.newleader.is_some(), "NEWLEADER acked after it arrived");
            assert_eq!(node.current_epoch, self.new_epoch, "the epoch is adopted before the ACK");
        }
    }
}

/// How often a learner repeats FOLLOWERINFO while no LEADERINFO came, ms: half the finalize
/// wait, so a leader that decided after us hears from us soon after (repeats are idempotent).
pub const FOLLOWER_INFO_RESEND_MS: u64 = crate::zab::election::FINALIZE_WAIT_MS / 2;

/// Whether a leader message belongs to the learner's phase (only those keep it alive).
fn expected_in_phase(phase: LearnerPhase, msg: &ZabMessage) -> bool {
    matches!(
        (phase, msg),
        (LearnerPhase::Discovery, ZabMessage::LeaderInfo { .. })
            | (
                LearnerPhase::Syncing,
                ZabMessage::Trunc { .. }
                    | ZabMessage::Snap { .. }
                    | ZabMessage::Diff { .. }
                    | ZabMessage::NewLeader { .. }
                    | ZabMessage::UpToDate
                    | ZabMessage::Proposal { .. }
                    | ZabMessage::Commit { .. }
            )
            | (LearnerPhase::Broadcast, _)
    )
}

fn learner_mut(node: &mut Node) -> &mut Learner {
    match &mut node.role {
        Role::Following(l) => l,
        _ => panic!("not a learner"),
    }
}

fn learner_ref(node: &Node) -> &Learner {
    match &node.role {
        Role::Following(l) => l,
        _ => panic!("not a learner"),
    }
}

impl Node {
    /// Follow (or observe) `leader`: introduce ourselves.
    pub(crate) fn become_learner(&mut self, leader: ServerId, observer: bool) {
        assert_ne!(leader, self.config.server_id, "a learner follows another server");
        assert!(!self.config.is_standalone(), "standalone servers never follow");
        // A fresh random nonce names this incarnation's session, so messages the leader sent to
        // an earlier one (delayed in the network) can never be taken as ours (see `fifo`).
        let learner = Learner {
            leader,
            observer,
            phase: LearnerPhase::Discovery,
            new_epoch: 0,
            last_heard: self.now_tick,
            newleader: None,
            newleader_acked: false,
            commit_seen: Zxid::ZERO,
            acked: Zxid::ZERO,
            channel: FifoChannel::new(self.rng.random()),
            next_info: self.now_tick,
            touched: BTreeSet::new(),
            pending_syncs: VecDeque::new(),
            revalidating: BTreeMap::new(),
        };
        self.role = Role::Following(learner);
        self.send_follower_info();
    }

    fn send_follower_info(&mut self) {
        // Repeated every half finalize wait (at most every half tickTime): the elected leader may
        // decide a little after us and drops what reaches it while it still looks, so a
        // tickTime-based resend would add up to half a tickTime to every fail-over.
        let half_tick = (self.config.tick_times(1) / 2).max(1);
        let resend = self.config.ms_to_ticks(FOLLOWER_INFO_RESEND_MS).clamp(1, half_tick);
        assert!(resend >= 1, "never resend in the same tick");
        let now = self.now_tick;
        let l = learner_mut(self);
        // Zab phase 1 (discovery) opens with CEPOCH = FOLLOWERINFO; only then is it repeated.
        assert_eq!(l.phase, LearnerPhase::Discovery, "FOLLOWERINFO belongs to discovery");
        l.next_info = now + resend;
        let (leader, observer, nonce) = (l.leader, l.observer, l.channel.nonce());
        let info = ZabMessage::FollowerInfo {
            accepted_epoch: self.accepted_epoch,
            last_zxid: self.log.last_logged(),
            observer,
            nonce,
        };
        self.send_peer(leader, info);
    }

    /// Sends a message in our session with the leader (numbered; see `zab::message`).
    fn send_leader(&mut self, msg: ZabMessage) {
        let l = learner_mut(self);
        let (leader, numbered) = (l.leader, l.channel.wrap(msg));
        assert!(l.channel.sent() >= 1, "the message took a number");
        assert!(matches!(numbered, ZabMessage::Session { .. }), "session messages are numbered");
        self.send_peer(leader, numbered);
    }

    /// Takes the messages of our session with the leader in order: duplicates and anything
    /// outside the session are dropped, early ones wait for the hole before them (a hole that
    /// never fills stalls the session until the leader counts as silent), and too many early
    /// ones abandon the leader.
    pub(crate) fn learner_on_message(&mut self, msg: ZabMessage) {
        let ZabMessage::Session { nonce, seq, msg } = msg else { return };
        let l = learner_mut(self);
        let mut next = match l.channel.receive(nonce, seq, *msg) {
            Receipt::Deliver(msg) => {
                assert_eq!(nonce, l.channel.nonce(), "only our session delivers");
                assert!(l.channel.expected() > seq, "delivered messages are consumed");
                Some(msg)
            }
            Receipt::Dropped | Receipt::Held => None,
            Receipt::Overflow => {
                let expected = l.channel.expected();
                tracing::info!(expected, "a message of the leader's session is lost");
                self.become_looking();
                None
            }
        };
        while let Some(msg) = next {
            self.learner_on_session_message(msg);
            next = match &mut self.role {
                Role::Following(l) if l.channel.nonce() == nonce => l.channel.next_ready(),
                _ => None,
            };
        }
    }

    fn learner_on_session_message(&mut self, msg: ZabMessage) {
        let phase = learner_ref(self).phase;
        let expected = expected_in_phase(phase, &msg);
        if !expected {
            // E.g. PINGs meant for an earlier incarnation of this learner: they must not keep a
            // stuck handshake alive, or it would never time out and start over.
            return;
        }
        learner_mut(self).last_heard = self.now_tick;
        match (phase, msg) {
            (LearnerPhase::Discovery, ZabMessage::LeaderInfo { new_epoch }) => {
                self.on_leader_info(new_epoch)
            }
            (LearnerPhase::Syncing, ZabMessage::Trunc { zxid }) => self.on_trunc(zxid),
            (LearnerPhase::Syncing, ZabMessage::Snap { snapshot }) => self.on_snap(snapshot),
            (LearnerPhase::Syncing, ZabMessage::Diff { txns, committed }) => {
                for txn in txns {
                    if !self.log_proposal(txn) {
                        return;
                    }
                }
                let l = learner_mut(self);
                l.commit_seen = l.commit_seen.max(committed);
                // The DIFF's commit point applies at UPTODATE, not now: until the leader is
                // established nothing of its history may be served (Zab phase 2).
                assert_eq!(l.phase, LearnerPhase::Syncing, "a DIFF is applied only at UPTODATE");
            }
            (LearnerPhase::Syncing, ZabMessage::NewLeader { zxid }) => self.on_new_leader(zxid),
            (LearnerPhase::Syncing, ZabMessage::UpToDate) => self.on_up_to_date(),
            (LearnerPhase::Syncing | LearnerPhase::Broadcast, ZabMessage::Proposal { txn }) => {
                self.log_proposal(txn);
            }
            (LearnerPhase::Syncing | LearnerPhase::Broadcast, ZabMessage::Commit { zxid }) => {
                self.on_commit(zxid)
            }
            (LearnerPhase::Broadcast, ZabMessage::Ping { round }) => {
                let touched: Vec<SessionId> =
                    std::mem::take(&mut learner_mut(self).touched).into_iter().collect();
                // The round echoed tells the leader this follower still followed it after it
                // sent the ping: what a pending sync waits for (ZOOKEEPER-1675).
                self.send_leader(ZabMessage::PingReply { touched, round });
            }
            (LearnerPhase::Broadcast, ZabMessage::RevalidateReply { session, valid }) => {
                self.on_revalidated(session, valid)
            }
            (LearnerPhase::Broadcast, ZabMessage::SyncReply) => {
                if let Some((conn, xid)) = learner_mut(self).pending_syncs.pop_front() {
                    self.sync_done(conn, xid);
                }
            }
            _ => {}
        }
    }

    fn on_snap(&mut self, snapshot: Box<crate::snapshot::Snapshot>) {
        tracing::info!(zxid = %snapshot.zxid, "installing the leader's snapshot");
        if snapshot.zxid < self.log.committed() {
            tracing::error!(zxid = %snapshot.zxid, "a SNAP older than our commits; refusing");
            return self.become_looking();
        }
        self.tree = snapshot.tree.clone();
        if let Some(text) = &self.config.ensemble_config_text {
            // The leader's snapshot carries its view of the membership; ours is our own config.
            self.tree.set_config_data(text.as_bytes());
        }
        let now = self.now_tick;
        let bucket = self.config.tick_times(1);
        self.sessions = crate::session::SessionTable::new(bucket, self.config.tick_ms as u64);
        for (id, timeout) in &snapshot.sessions {
            self.sessions.add(*id, *timeout, now);
        }
        self.log.reset(snapshot.zxid);
        assert_eq!(self.tree.last_processed_zxid(), snapshot.zxid);
        assert_eq!(self.log.committed(), snapshot.zxid, "a snapshot holds only committed txns");
        assert_eq!(self.log.last_logged(), snapshot.zxid, "the log starts again at the SNAP");
        self.outputs.push(crate::io::Output::InstallSnapshot { snapshot });
    }

    fn on_leader_info(&mut self, new_epoch: u32) {
        assert_eq!(learner_ref(self).phase, LearnerPhase::Discovery, "LEADERINFO ends discovery");
        // Zab phase 1: a follower accepts NEWEPOCH(e') only if e' ≥ its acceptedEpoch, and
        // records it durably before ACK-E (ZOOKEEPER-3608 split acceptedEpoch/currentEpoch so
        // that a crash here cannot make it promise two leaders the same epoch).
        #[cfg(feature = "bugs")]
        let stale = new_epoch < self.accepted_epoch && !self.config.bugs.accept_stale_epoch;
        #[cfg(not(feature = "bugs"))]
        let stale = new_epoch < self.accepted_epoch;
        if stale {
            tracing::warn!(new_epoch, accepted = self.accepted_epoch, "stale LEADERINFO; looking");
            return self.become_looking();
        }
        // An epoch equal to the one already accepted may come from a second prospective leader
        // that picked the same number: follow it if it gets established, but do not vote for it
        // (ZooKeeper answers -1 and its leader does not count the ack). Counting it let two
        // leaders be established in one epoch (core/testdata/two_leaders_one_epoch.txt).
        #[cfg(feature = "bugs")]
        let promised_before =
            new_epoch == self.accepted_epoch && !self.config.bugs.ack_repeated_epoch;
        #[cfg(not(feature = "bugs"))]
        let promised_before = new_epoch == self.accepted_epoch;
        if new_epoch > self.accepted_epoch {
            self.accepted_epoch = new_epoch;
            self.persist_epochs();
        }
        assert!(new_epoch <= self.accepted_epoch, "the new epoch is accepted before ACKEPOCH");
        // Only the deliberate `accept_stale_epoch` bug takes an epoch below the current one.
        let stale_taken = new_epoch < self.accepted_epoch;
        assert!(stale_taken || self.current_epoch <= new_epoch, "currentEpoch moves at NEWLEADER");
        let l = learner_mut(self);
        l.new_epoch = new_epoch;
        l.phase = LearnerPhase::Syncing;
        let ack = ZabMessage::AckEpoch {
            current_epoch: (!promised_before).then_some(self.current_epoch),
            last_zxid: self.log.last_logged(),
        };
        self.send_leader(ack);
    }

    fn on_trunc(&mut self, zxid: Zxid) {
        if zxid < self.log.committed() {
            tracing::error!(%zxid, committed = %self.log.committed(),
                "leader asked to truncate committed txns; refusing");
            return self.become_looking();
        }
        #[cfg(feature = "bugs")]
        if self.config.bugs.trunc_keeps_memory {
            // ZOOKEEPER-2845: the log on disk is cut, the in-memory state is not.
            return self.outputs.push(crate::io::Output::TruncateLog { after: zxid });
        }
        self.log.truncate_after(zxid);
        // TRUNC drops txns of an epoch that never committed them (ZOOKEEPER-1154: a former
        // leader's uncommitted tail); what is committed stays, as refused above.
        assert!(self.log.last_logged() <= zxid, "nothing after the TRUNC point is left");
        assert!(self.log.committed() <= zxid, "no committed txn was truncated");
        self.outputs.push(crate::io::Output::TruncateLog { after: zxid });
    }

    /// Logs a proposal that follows the log; a duplicate is ignored, a gap sends us looking.
    /// Returns false when it sent us looking.
    fn log_proposal(&mut self, txn: crate::txn::LoggedTxn) -> bool {
        let zxid = txn.header.zxid;
        let last = self.log.last_logged();
        if zxid <= last {
            return true;
        }
        let epoch = learner_ref(self).new_epoch;
        let follows = zxid.epoch() < epoch
            || (zxid.epoch() == epoch
                && (last.epoch() < epoch && zxid.counter() == 1 || zxid == last.next()));
        if !follows || zxid.epoch() > epoch {
            tracing::info!(%zxid, %last, "gap in the leader's stream; resyncing");
            self.become_looking();
            return false;
        }
        assert_ne!(learner_ref(self).phase, LearnerPhase::Discovery, "no proposals before sync");
        let txn = std::sync::Arc::new(txn);
        self.log.append(txn.clone());
        assert_eq!(self.log.last_logged(), zxid, "the proposal extends the log");
        // Logged now, durable later: the ACK waits for `Input::Persisted` (`learner_durable`).
        self.outputs.push(crate::io::Output::Persist { txn });
        true
    }

    fn on_new_leader(&mut self, zxid: Zxid) {
        let epoch = learner_ref(self).new_epoch;
        if zxid != Zxid::new(epoch, 0) {
            tracing::warn!(%zxid, epoch, "NEWLEADER for another epoch; looking");
            return self.become_looking();
        }
        // Zab phase 2: NEWLEADER certifies the history sent before it (the FIFO channel puts
        // the DIFF first); `end` is the log end the ACK must find durable.
        let end = self.log.last_logged();
        let l = learner_mut(self);
        assert_eq!(l.phase, LearnerPhase::Syncing, "NEWLEADER belongs to synchronization");
        l.newleader = Some((zxid, end));
        assert!(end >= self.log.committed(), "the certified history covers the commits");
        if self.config.bugs.epoch_before_sync {
            self.adopt_new_epoch();
        }
        self.maybe_ack_new_leader();
    }

    /// Makes the leader's epoch our current epoch, durably. Called only once the txns of the
    /// synchronization are durable: a disk that said "epoch e+1" over a log lacking them could
    /// win a later election against a member of epoch e that holds them, and truncate committed
    /// txns (ZOOKEEPER-4643; Zab's order is: log the synced txns, then currentEpoch, then ACK).
    fn adopt_new_epoch(&mut self) {
        let epoch = learner_ref(self).new_epoch;
        assert!(epoch <= self.accepted_epoch, "the new epoch was accepted at LEADERINFO");
        if self.current_epoch < epoch {
            self.current_epoch = epoch;
            self.persist_epochs();
        }
        assert_eq!(self.current_epoch, epoch);
    }

    /// Acknowledges NEWLEADER once everything the leader synced us with is durable: first the
    /// epoch (a synchronous write, so it is durable before the ACK leaves), then the ACK.
    fn maybe_ack_new_leader(&mut self) {
        let l = learner_ref(self);
        let Some((zxid, end)) = l.newleader else {
            return;
        };
        let synced = self.log.durable() >= end || self.config.bugs.ack_newleader_before_sync;
        if l.newleader_acked || !synced {
            return;
        }
        self.adopt_new_epoch();
        if !self.config.bugs.ack_newleader_before_sync {
            // ZOOKEEPER-3911: an ACK of NEWLEADER before the synced txns are durable lets a
            // quorum that then crashes lose txns the new leader counts as committed.
            assert!(self.log.durable() >= end, "NEWLEADER is acked over a durable log");
        }
        let l = learner_mut(self);
        assert_eq!(zxid.counter(), 0, "NEWLEADER's zxid is (epoch, 0)");
        l.newleader_acked = true;
        l.acked = zxid;
        self.send_leader(ZabMessage::Ack { zxid });
    }

    fn on_up_to_date(&mut self) {
        if !learner_ref(self).newleader_acked {
            return;
        }
        let last = self.log.last_logged();
        let server = self.config.server_id.0;
        let l = learner_mut(self);
        // UPTODATE: the leader is established (a quorum acked NEWLEADER), so the synced history
        // is committed and may be served (Zab phase 2 → 3; ZooKeeper's Learner.syncWithLeader).
        assert_eq!(l.phase, LearnerPhase::Syncing, "UPTODATE ends synchronization");
        l.phase = LearnerPhase::Broadcast;
        let point = l.commit_seen.min(last);
        tracing::info!(server, leader = l.leader.0, "synced; serving");
        self.log.mark_committed(point.max(self.log.committed()));
        self.apply_committed();
        assert_eq!(self.tree.last_processed_zxid(), self.log.committed(), "applied what is known");
        self.learner_durable();
    }

    fn on_commit(&mut self, zxid: Zxid) {
        if zxid > self.log.last_logged() {
            tracing::info!(%zxid, "commit beyond the log; resyncing");
            return self.become_looking();
        }
        let l = learner_mut(self);
        l.commit_seen = l.commit_seen.max(zxid);
        assert!(l.commit_seen >= zxid);
        // Before UPTODATE a COMMIT is only remembered: nothing is applied (or served) until the
        // leader is established, else an uncommitted-then-lost txn could be read (ZOOKEEPER-2845).
        if l.phase == LearnerPhase::Broadcast && zxid > self.log.committed() {
            self.log.mark_committed(zxid);
            self.apply_committed();
            assert!(self.log.committed() <= zxid, "commit in zxid order, never beyond");
        }
    }

    pub(crate) fn learner_durable(&mut self) {
        self.maybe_ack_new_leader();
        let l = learner_ref(self);
        let durable = self.log.durable();
        let Some((newleader, _)) = l.newleader else {
            return;
        };
        if l.observer || !l.newleader_acked || durable <= newleader || durable <= l.acked {
            return;
        }
        // Cumulative ACK of what is durable (Zab phase 3: a follower acknowledges a proposal
        // only once it is logged to disk); observers do not vote and never ACK.
        assert!(!l.observer, "observers never ACK");
        assert!(durable > l.acked, "ACKs only move forward");
        learner_mut(self).acked = durable;
        self.send_leader(ZabMessage::Ack { zxid: durable });
    }

    pub(crate) fn learner_tick(&mut self) {
        let l = learner_ref(self);
        if l.phase == LearnerPhase::Discovery && self.now_tick >= l.next_info {
            self.send_follower_info();
        }
        let l = learner_ref(self);
        // ZooKeeper's limits: initLimit bounds discovery and sync, syncLimit a silent leader
        // in broadcast (it PINGs every half tick, so silence means it is gone or cut off).
        let limit = if l.phase == LearnerPhase::Broadcast {
            self.config.tick_times(self.config.sync_limit)
        } else {
            self.config.tick_times(self.config.init_limit)
        };
        assert!(limit > 0, "a limit of zero ticks would drop every leader");
        assert!(l.last_heard <= self.now_tick, "heard in the past");
        if self.now_tick.saturating_sub(l.last_heard) > limit {
            tracing::info!(leader = l.leader.0, "leader silent; back to election");
            self.become_looking();
        }
    }

    /// Forwards a client write to the leader (learners).
    pub(crate) fn forward_write(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
    ) {
        let ids = self.conns.get(&conn).map(|c| c.ids.clone()).unwrap_or_default();
        let forwarded = Forwarded::Write(req);
        self.send_leader(ZabMessage::Request { session, cxid: xid, ids, forwarded });
    }

    /// Forwards a new session to the leader (learners).
    pub(crate) fn forward_create_session(&mut self, session: SessionId, timeout_ms: i32) {
        let forwarded = Forwarded::CreateSession { timeout_ms };
        self.send_leader(ZabMessage::Request { session, cxid: 0, ids: vec![], forwarded });
    }

    /// Tells the leader a client reconnected here with `session` (learners).
    pub(crate) fn revalidate(&mut self, session: SessionId) {
        self.send_leader(ZabMessage::Revalidate { session });
    }

    /// Sends a client's sync to the leader (learners).
    pub(crate) fn learner_sync(&mut self, conn: ConnId, xid: i32) {
        learner_mut(self).pending_syncs.push_back((conn, xid));
        self.send_leader(ZabMessage::SyncRequest);
    }

    /// True when this node is a learner.
    pub(crate) fn is_learner(&self) -> bool {
        matches!(self.role, Role::Following(_))
    }
}
