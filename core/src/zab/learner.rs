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

use crate::proto::client::Request;
use crate::proto::error::ZkError;
use crate::shared::{Shared, Upstream};
use crate::txn::LoggedTxn;
use crate::types::{ConnId, ServerId, SessionId, Zxid};
use crate::zab::Next;
use crate::zab::fifo::{FifoChannel, Receipt};
use crate::zab::message::{Forwarded, PeerState, SessionMessage, Vote, ZabMessage};

/// Where the learner is. Ordered as the phases run: a learner only moves forward within one
/// leadership (a step back is a new election and a new `Learner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    /// Checks the learner's invariants against the shared state.
    pub(crate) fn invariants(&self, shared: &Shared) {
        self.channel.invariants();
        assert!(
            self.acked <= shared.log.durable().max(self.newleader.map(|n| n.0).unwrap_or_default()),
            "never acknowledge what is not durable"
        );
        if self.phase != LearnerPhase::Broadcast {
            // Serving only in broadcast: the connection scan is in `Node::check_full`.
            assert!(self.pending_syncs.is_empty(), "syncs are forwarded only in broadcast");
            assert!(self.revalidating.is_empty(), "revalidations only in broadcast");
        }
        if self.newleader_acked {
            assert!(self.newleader.is_some(), "NEWLEADER acked after it arrived");
            assert_eq!(shared.current_epoch, self.new_epoch, "the epoch is adopted before the ACK");
        }
    }
}

/// How often a learner repeats FOLLOWERINFO while no LEADERINFO came, ms: half the finalize
/// wait, so a leader that decided after us hears from us soon after (repeats are idempotent).
pub const FOLLOWER_INFO_RESEND_MS: u64 = crate::zab::election::FINALIZE_WAIT_MS / 2;

/// Whether a leader message belongs to the learner's phase (only those keep it alive).
fn expected_in_phase(phase: LearnerPhase, msg: &SessionMessage) -> bool {
    matches!(
        (phase, msg),
        (LearnerPhase::Discovery, SessionMessage::LeaderInfo { .. })
            | (
                LearnerPhase::Syncing,
                SessionMessage::Trunc { .. }
                    | SessionMessage::Snap { .. }
                    | SessionMessage::Diff { .. }
                    | SessionMessage::NewLeader { .. }
                    | SessionMessage::UpToDate
                    | SessionMessage::Proposal { .. }
                    | SessionMessage::Commit { .. }
            )
            | (LearnerPhase::Broadcast, _)
    )
}

/// The learner's handlers: methods of the learner's state that borrow the shared state. A
/// handler that must give up the leader returns [`Next::Elect`]; the dispatcher (`Node`) then
/// starts the election, so a role never replaces itself.
impl Learner {
    /// Follow (or observe) `leader`: the learner, before it introduces itself.
    pub(crate) fn new(shared: &mut Shared, leader: ServerId, observer: bool) -> Learner {
        assert_ne!(leader, shared.config.server_id, "a learner follows another server");
        assert!(!shared.config.is_standalone(), "standalone servers never follow");
        // A fresh random nonce names this incarnation's session, so messages the leader sent to
        // an earlier one (delayed in the network) can never be taken as ours (see `fifo`).
        Learner {
            leader,
            observer,
            phase: LearnerPhase::Discovery,
            new_epoch: 0,
            last_heard: shared.now_tick,
            newleader: None,
            newleader_acked: false,
            commit_seen: Zxid::ZERO,
            acked: Zxid::ZERO,
            channel: FifoChannel::new(shared.rng.random()),
            next_info: shared.now_tick,
            touched: BTreeSet::new(),
            pending_syncs: VecDeque::new(),
            revalidating: BTreeMap::new(),
        }
    }

    /// Introduces us to the leader (Zab phase 1's CEPOCH), again every resend interval while
    /// no LEADERINFO came.
    pub(crate) fn send_follower_info(&mut self, shared: &mut Shared) {
        // Repeated every half finalize wait (at most every half tickTime): the elected leader may
        // decide a little after us and drops what reaches it while it still looks, so a
        // tickTime-based resend would add up to half a tickTime to every fail-over.
        let half_tick = (shared.config.tick_times(1) / 2).max(1);
        let resend = shared.config.ms_to_ticks(FOLLOWER_INFO_RESEND_MS).clamp(1, half_tick);
        assert!(resend >= 1, "never resend in the same tick");
        // Zab phase 1 (discovery) opens with CEPOCH = FOLLOWERINFO; only then is it repeated.
        assert_eq!(self.phase, LearnerPhase::Discovery, "FOLLOWERINFO belongs to discovery");
        self.next_info = shared.now_tick + resend;
        let info = ZabMessage::FollowerInfo {
            accepted_epoch: shared.accepted_epoch,
            last_zxid: shared.log.last_logged(),
            observer: self.observer,
            nonce: self.channel.nonce(),
        };
        shared.send_peer(self.leader, info);
    }

    /// Takes the messages of our session with the leader in order: duplicates and anything
    /// outside the session are dropped, early ones wait for the hole before them (a hole that
    /// never fills stalls the session until the leader counts as silent), and too many early
    /// ones abandon the leader. Stops at the first handler that gives up the leader.
    pub(crate) fn on_message(&mut self, shared: &mut Shared, msg: ZabMessage) -> Next {
        let ZabMessage::Session { nonce, seq, msg } = msg else { return Next::Stay };
        if self.replaced_by_leader(shared, nonce, &msg) {
            tracing::info!(leader = self.leader.0, "the leader replaced our session; electing");
            return Next::Elect;
        }
        let mut next = match self.channel.receive(nonce, seq, msg) {
            Receipt::Deliver(msg) => {
                assert_eq!(nonce, self.channel.nonce(), "only our session delivers");
                assert!(self.channel.expected() > seq, "delivered messages are consumed");
                Some(msg)
            }
            Receipt::Dropped | Receipt::Held => None,
            // Too many messages ahead of a hole: the hole is a lost message, and a session that
            // lost one can never deliver in order again. Electing (and so a new session) is how
            // a broken TCP connection ends in ZooKeeper too.
            Receipt::Overflow => {
                let expected = self.channel.expected();
                tracing::info!(expected, "a message of the leader's session is lost");
                return Next::Elect;
            }
        };
        while let Some(msg) = next {
            if self.on_session_message(shared, msg) == Next::Elect {
                return Next::Elect;
            }
            // Our session's nonce never changes while we follow this leader.
            assert_eq!(self.channel.nonce(), nonce, "one session per learner incarnation");
            next = self.channel.next_ready();
        }
        Next::Stay
    }

    /// True when `msg`, sent in another session (`nonce`) than ours, is a LEADERINFO of the
    /// epoch our own LEADERINFO named (E) or a later one. A leader keeps one session per
    /// learner, and only one incarnation of it ever proposes E (a restarted one proposes above
    /// its accepted epoch), so that incarnation opened another session with us after ours: it
    /// took a FOLLOWERINFO of an earlier session of ours (a duplicate or late datagram; tier 1
    /// seed 214269) for a new one and no longer reads ours. Serving on would lose every
    /// request we forward until `syncLimit`. The one misreading: a late LEADERINFO(E) of an
    /// earlier session of ours with this same leader, which costs one election round.
    fn replaced_by_leader(&self, shared: &Shared, nonce: u64, msg: &SessionMessage) -> bool {
        let SessionMessage::LeaderInfo { new_epoch } = *msg else { return false };
        if nonce == self.channel.nonce() || self.phase == LearnerPhase::Discovery {
            return false;
        }
        assert!(self.new_epoch > 0, "LEADERINFO names an epoch after 0");
        assert_ne!(self.channel.nonce(), nonce, "another session");
        // A deliberate bug only (`Config::validate` refuses bugs in a build without them).
        if shared.config.bugs.ignore_replaced_session {
            return false;
        }
        new_epoch >= self.new_epoch
    }

    fn on_session_message(&mut self, shared: &mut Shared, msg: SessionMessage) -> Next {
        let phase = self.phase;
        let expected = expected_in_phase(phase, &msg);
        if !expected {
            // E.g. PINGs meant for an earlier incarnation of this learner: they must not keep a
            // stuck handshake alive, or it would never time out and start over.
            assert_ne!(phase, LearnerPhase::Broadcast, "a serving learner takes every message");
            return Next::Stay;
        }
        self.last_heard = shared.now_tick;
        match (phase, msg) {
            (LearnerPhase::Discovery, SessionMessage::LeaderInfo { new_epoch }) => {
                return self.on_leader_info(shared, new_epoch);
            }
            (LearnerPhase::Syncing, SessionMessage::Trunc { zxid }) => {
                return self.on_trunc(shared, zxid);
            }
            (LearnerPhase::Syncing, SessionMessage::Snap { snapshot }) => {
                return self.on_snap(shared, snapshot);
            }
            (LearnerPhase::Syncing, SessionMessage::Diff { txns, committed }) => {
                return self.on_diff(shared, txns, committed);
            }
            (LearnerPhase::Syncing, SessionMessage::NewLeader { zxid }) => {
                return self.on_new_leader(shared, zxid);
            }
            (LearnerPhase::Syncing, SessionMessage::UpToDate) => self.on_up_to_date(shared),
            (LearnerPhase::Syncing | LearnerPhase::Broadcast, SessionMessage::Proposal { txn }) => {
                return self.log_proposal(shared, txn);
            }
            (LearnerPhase::Syncing | LearnerPhase::Broadcast, SessionMessage::Commit { zxid }) => {
                return self.on_commit(shared, zxid);
            }
            (LearnerPhase::Broadcast, SessionMessage::Ping { round }) => {
                let touched: Vec<SessionId> =
                    std::mem::take(&mut self.touched).into_iter().collect();
                // The round echoed tells the leader this follower still followed it after it
                // sent the ping: what a pending sync waits for (ZOOKEEPER-1675).
                self.send_leader(shared, SessionMessage::PingReply { touched, round });
            }
            // A reply nobody waits for any more (the connection closed: `conn_closed`) is
            // dropped; the client reconnects and asks again.
            (LearnerPhase::Broadcast, SessionMessage::RevalidateReply { session, valid }) => {
                if let Some(waiter) = self.revalidating.remove(&session) {
                    shared.on_revalidated(session, waiter, valid, self);
                }
            }
            (LearnerPhase::Broadcast, SessionMessage::SyncReply) => {
                // SYNC replies come in the order the syncs were forwarded (one FIFO session).
                if let Some((conn, xid)) = self.pending_syncs.pop_front() {
                    shared.sync_done(conn, xid);
                }
            }
            _ => {}
        }
        // Zab's phases run forward within a leadership: only UPTODATE moves a learner on here
        // (LEADERINFO returns above), and a way back is an election, never a message.
        assert!(self.phase >= phase, "a learner's phase never goes back");
        Next::Stay
    }

    /// DIFF: the leader's txns after our last zxid, logged now; their commit point is only
    /// remembered, and applies at UPTODATE.
    fn on_diff(&mut self, shared: &mut Shared, txns: Vec<LoggedTxn>, committed: Zxid) -> Next {
        let applied = shared.tree.last_processed_zxid();
        // A DIFF txn that does not follow our log means the leader chose DIFF where a TRUNC or
        // SNAP was needed (the shape of ZOOKEEPER-1154): `log_proposal` gives up rather than
        // log a history with a hole in it.
        for txn in txns {
            if self.log_proposal(shared, std::sync::Arc::new(txn)) == Next::Elect {
                return Next::Elect;
            }
        }
        self.commit_seen = self.commit_seen.max(committed);
        // The DIFF's commit point applies at UPTODATE, not now: until the leader is established
        // nothing of its history may be served (Zab phase 2; ZOOKEEPER-2845 served it early).
        assert_eq!(self.phase, LearnerPhase::Syncing, "a DIFF is applied only at UPTODATE");
        assert_eq!(shared.tree.last_processed_zxid(), applied, "a DIFF applies nothing");
        Next::Stay
    }

    fn on_snap(&mut self, shared: &mut Shared, snapshot: Box<crate::snapshot::Snapshot>) -> Next {
        tracing::info!(zxid = %snapshot.zxid, "installing the leader's snapshot");
        // Peer input, refused rather than asserted: installing a snapshot older than our
        // commits would take back txns clients have seen (a read going back in time).
        if snapshot.zxid < shared.log.committed() {
            tracing::error!(zxid = %snapshot.zxid, "a SNAP older than our commits; refusing");
            return Next::Elect;
        }
        shared.tree = snapshot.tree.clone();
        if let Some(text) = &shared.config.ensemble_config_text {
            // The leader's snapshot carries its view of the membership; ours is our own config.
            shared.tree.set_config_data(text.as_bytes());
        }
        // The sessions restart their timeouts now: the leader's expiry clock is not shipped,
        // and a learner never expires a session (the leader does, from our PINGREPLY reports).
        let now = shared.now_tick;
        let bucket = shared.config.tick_times(1);
        shared.sessions = crate::session::SessionTable::new(bucket, shared.config.tick_ms as u64);
        for (id, timeout) in &snapshot.sessions {
            shared.sessions.add(*id, *timeout, now);
        }
        // Sessions of ours the leader knows and we did not (our log lagged, or was cut): hand
        // out no id at or just after them (`past_own_live`).
        #[cfg(feature = "bugs")]
        let keep_next = shared.config.bugs.session_id_from_tree;
        #[cfg(not(feature = "bugs"))]
        let keep_next = false;
        if !keep_next {
            let server_id = shared.config.server_id.0;
            let own = snapshot.sessions.iter().map(|(id, _)| *id);
            let own = own.filter(|id| crate::session::server_of(*id) == server_id);
            let next = SessionId(shared.next_session_id);
            let rng = &mut shared.rng;
            let jump = || rng.random_range(0..crate::session::JUMP_SLOTS);
            shared.next_session_id = crate::session::past_own_live(server_id, next, own, jump).0;
        }
        shared.log.reset(snapshot.zxid);
        assert_eq!(shared.tree.last_processed_zxid(), snapshot.zxid);
        assert_eq!(shared.log.committed(), snapshot.zxid, "a snapshot holds only committed txns");
        assert_eq!(shared.log.last_logged(), snapshot.zxid, "the log starts again at the SNAP");
        shared.outputs.push(crate::io::Output::InstallSnapshot { snapshot });
        Next::Stay
    }

    fn on_leader_info(&mut self, shared: &mut Shared, new_epoch: u32) -> Next {
        assert_eq!(self.phase, LearnerPhase::Discovery, "LEADERINFO ends discovery");
        // Zab phase 1: a follower accepts NEWEPOCH(e') only if e' ≥ its acceptedEpoch, and
        // records it durably before ACK-E (ZOOKEEPER-3608 split acceptedEpoch/currentEpoch so
        // that a crash here cannot make it promise two leaders the same epoch).
        #[cfg(feature = "bugs")]
        let stale = new_epoch < shared.accepted_epoch && !shared.config.bugs.accept_stale_epoch;
        #[cfg(not(feature = "bugs"))]
        let stale = new_epoch < shared.accepted_epoch;
        if stale {
            tracing::warn!(
                new_epoch,
                accepted = shared.accepted_epoch,
                "stale LEADERINFO; looking"
            );
            return Next::Elect;
        }
        // An epoch equal to the one already accepted may come from a second prospective leader
        // that picked the same number: follow it if it gets established, but do not vote for it
        // (ZooKeeper answers -1 and its leader does not count the ack). Counting it let two
        // leaders be established in one epoch (core/testdata/two_leaders_one_epoch.txt).
        #[cfg(feature = "bugs")]
        let promised_before =
            new_epoch == shared.accepted_epoch && !shared.config.bugs.ack_repeated_epoch;
        #[cfg(not(feature = "bugs"))]
        let promised_before = new_epoch == shared.accepted_epoch;
        if new_epoch > shared.accepted_epoch {
            shared.accepted_epoch = new_epoch;
            shared.persist_epochs();
        }
        assert!(new_epoch <= shared.accepted_epoch, "the new epoch is accepted before ACKEPOCH");
        // Only the deliberate `accept_stale_epoch` bug takes an epoch below the current one.
        let stale_taken = new_epoch < shared.accepted_epoch;
        let current = shared.current_epoch;
        assert!(stale_taken || current <= new_epoch, "currentEpoch moves at NEWLEADER");
        self.new_epoch = new_epoch;
        // From here the leader's DIFF/TRUNC/SNAP, NEWLEADER and UPTODATE are expected; PINGs
        // meant for an earlier incarnation of us are ignored (`expected_in_phase`).
        self.phase = LearnerPhase::Syncing;
        let ack = SessionMessage::AckEpoch {
            current_epoch: (!promised_before).then_some(shared.current_epoch),
            last_zxid: shared.log.last_logged(),
        };
        self.send_leader(shared, ack);
        Next::Stay
    }

    fn on_trunc(&mut self, shared: &mut Shared, zxid: Zxid) -> Next {
        if zxid < shared.log.committed() {
            tracing::error!(%zxid, committed = %shared.log.committed(),
                "leader asked to truncate committed txns; refusing");
            return Next::Elect;
        }
        #[cfg(feature = "bugs")]
        if shared.config.bugs.trunc_keeps_memory {
            // ZOOKEEPER-2845: the log on disk is cut, the in-memory state is not.
            shared.outputs.push(crate::io::Output::TruncateLog { after: zxid });
            return Next::Stay;
        }
        shared.log.truncate_after(zxid);
        // TRUNC drops txns of an epoch that never committed them (ZOOKEEPER-1154: a former
        // leader's uncommitted tail); what is committed stays, as refused above.
        assert!(shared.log.last_logged() <= zxid, "nothing after the TRUNC point is left");
        assert!(shared.log.committed() <= zxid, "no committed txn was truncated");
        shared.outputs.push(crate::io::Output::TruncateLog { after: zxid });
        Next::Stay
    }

    /// Logs a proposal that follows the log; a duplicate is ignored, a gap gives up the leader
    /// (`Next::Elect`): a learner must hold every txn of the leader's history, in order.
    fn log_proposal(
        &mut self,
        shared: &mut Shared,
        txn: std::sync::Arc<crate::txn::LoggedTxn>,
    ) -> Next {
        let zxid = txn.header.zxid;
        let last = shared.log.last_logged();
        // Already logged: the txn we hold at this zxid is the same one (zxids are unique, one
        // leader per epoch, Zab paper §IV), so a repeat is harmless and ignored.
        if zxid <= last {
            return Next::Stay;
        }
        // The next txn follows the last one: the next counter, or counter 1 of the leader's
        // epoch when our log ends in an older epoch; older epochs' txns come only in the DIFF.
        let epoch = self.new_epoch;
        let follows = zxid.epoch() < epoch
            || (zxid.epoch() == epoch
                && (last.epoch() < epoch && zxid.counter() == 1 || zxid == last.next()));
        if !follows || zxid.epoch() > epoch {
            tracing::info!(%zxid, %last, "gap in the leader's stream; resyncing");
            return Next::Elect;
        }
        assert_ne!(self.phase, LearnerPhase::Discovery, "no proposals before sync");
        shared.log.append(txn.clone());
        assert_eq!(shared.log.last_logged(), zxid, "the proposal extends the log");
        // Logged now, durable later: the ACK waits for `Input::Persisted` (`on_durable`).
        shared.outputs.push(crate::io::Output::Persist { txn });
        Next::Stay
    }

    fn on_new_leader(&mut self, shared: &mut Shared, zxid: Zxid) -> Next {
        let epoch = self.new_epoch;
        if zxid != Zxid::new(epoch, 0) {
            tracing::warn!(%zxid, epoch, "NEWLEADER for another epoch; looking");
            return Next::Elect;
        }
        // Zab phase 2: NEWLEADER certifies the history sent before it (the FIFO channel puts
        // the DIFF first); `end` is the log end the ACK must find durable.
        let end = shared.log.last_logged();
        assert_eq!(self.phase, LearnerPhase::Syncing, "NEWLEADER belongs to synchronization");
        self.newleader = Some((zxid, end));
        assert!(end >= shared.log.committed(), "the certified history covers the commits");
        if shared.config.bugs.epoch_before_sync {
            self.adopt_new_epoch(shared);
        }
        self.maybe_ack_new_leader(shared);
        Next::Stay
    }

    /// Makes the leader's epoch our current epoch, durably. Called only once the txns of the
    /// synchronization are durable: a disk that said "epoch e+1" over a log lacking them could
    /// win a later election against a member of epoch e that holds them, and truncate committed
    /// txns (ZOOKEEPER-4643; Zab's order is: log the synced txns, then currentEpoch, then ACK).
    fn adopt_new_epoch(&self, shared: &mut Shared) {
        let epoch = self.new_epoch;
        assert!(epoch <= shared.accepted_epoch, "the new epoch was accepted at LEADERINFO");
        if shared.current_epoch < epoch {
            shared.current_epoch = epoch;
            shared.persist_epochs();
        }
        assert_eq!(shared.current_epoch, epoch);
    }

    /// Acknowledges NEWLEADER once everything the leader synced us with is durable: first the
    /// epoch (a synchronous write, so it is durable before the ACK leaves), then the ACK.
    fn maybe_ack_new_leader(&mut self, shared: &mut Shared) {
        let Some((zxid, end)) = self.newleader else {
            return;
        };
        let synced = shared.log.durable() >= end || shared.config.bugs.ack_newleader_before_sync;
        if self.newleader_acked || !synced {
            return;
        }
        self.adopt_new_epoch(shared);
        if !shared.config.bugs.ack_newleader_before_sync {
            // ZOOKEEPER-3911: an ACK of NEWLEADER before the synced txns are durable lets a
            // quorum that then crashes lose txns the new leader counts as committed.
            assert!(shared.log.durable() >= end, "NEWLEADER is acked over a durable log");
        }
        assert_eq!(zxid.counter(), 0, "NEWLEADER's zxid is (epoch, 0)");
        self.newleader_acked = true;
        self.acked = zxid;
        self.send_leader(shared, SessionMessage::Ack { zxid });
    }

    fn on_up_to_date(&mut self, shared: &mut Shared) {
        if !self.newleader_acked {
            return;
        }
        let last = shared.log.last_logged();
        // UPTODATE: the leader is established (a quorum acked NEWLEADER), so the synced history
        // is committed and may be served (Zab phase 2 → 3; ZooKeeper's Learner.syncWithLeader).
        assert_eq!(self.phase, LearnerPhase::Syncing, "UPTODATE ends synchronization");
        self.phase = LearnerPhase::Broadcast;
        let point = self.commit_seen.min(last);
        tracing::info!(
            server = shared.config.server_id.0,
            leader = self.leader.0,
            "synced; serving"
        );
        shared.log.mark_committed(point.max(shared.log.committed()));
        shared.apply_committed(self);
        let applied = shared.tree.last_processed_zxid();
        assert_eq!(applied, shared.log.committed(), "applied what is known");
        self.on_durable(shared);
    }

    fn on_commit(&mut self, shared: &mut Shared, zxid: Zxid) -> Next {
        // A COMMIT for a txn we never logged means we missed its proposal: applying around
        // the hole would skip a txn, so we resync from scratch instead.
        if zxid > shared.log.last_logged() {
            tracing::info!(%zxid, "commit beyond the log; resyncing");
            return Next::Elect;
        }
        self.commit_seen = self.commit_seen.max(zxid);
        assert!(self.commit_seen >= zxid);
        // Before UPTODATE a COMMIT is only remembered: nothing is applied (or served) until the
        // leader is established, else an uncommitted-then-lost txn could be read (ZOOKEEPER-2845).
        if self.phase == LearnerPhase::Broadcast && zxid > shared.log.committed() {
            shared.log.mark_committed(zxid);
            shared.apply_committed(self);
            assert!(shared.log.committed() <= zxid, "commit in zxid order, never beyond");
        }
        Next::Stay
    }

    /// The log's durable point moved: NEWLEADER may be acknowledged now, and in broadcast a
    /// cumulative ACK covers what became durable.
    pub(crate) fn on_durable(&mut self, shared: &mut Shared) {
        self.maybe_ack_new_leader(shared);
        let durable = shared.log.durable();
        let Some((newleader, _)) = self.newleader else {
            return;
        };
        if self.observer || !self.newleader_acked || durable <= newleader || durable <= self.acked {
            return;
        }
        // Cumulative ACK of what is durable (Zab phase 3: a follower acknowledges a proposal
        // only once it is logged to disk); observers do not vote and never ACK.
        assert!(!self.observer, "observers never ACK");
        assert!(durable > self.acked, "ACKs only move forward");
        self.acked = durable;
        self.send_leader(shared, SessionMessage::Ack { zxid: durable });
    }

    /// Timers, once per tick: FOLLOWERINFO repeats in discovery; `Next::Elect` when the leader
    /// was silent for `initLimit` (discovery, sync) or `syncLimit` (broadcast).
    pub(crate) fn on_tick(&mut self, shared: &mut Shared) -> Next {
        let now = shared.now_tick;
        // Repeats are idempotent on the leader (same nonce, same session), so resending costs
        // nothing and reaches a leader that decided after we did.
        if self.phase == LearnerPhase::Discovery && now >= self.next_info {
            self.send_follower_info(shared);
        }
        // ZooKeeper's limits: initLimit bounds discovery and sync, syncLimit a silent leader
        // in broadcast (it PINGs every half tick, so silence means it is gone or cut off).
        let limit = if self.phase == LearnerPhase::Broadcast {
            shared.config.tick_times(shared.config.sync_limit)
        } else {
            shared.config.tick_times(shared.config.init_limit)
        };
        assert!(limit > 0, "a limit of zero ticks would drop every leader");
        assert!(self.last_heard <= now, "heard in the past");
        if now.saturating_sub(self.last_heard) > limit {
            tracing::info!(leader = self.leader.0, "leader silent; back to election");
            return Next::Elect;
        }
        Next::Stay
    }
}

/// Whether a notification of our leader proves that it gave us up.
impl Learner {
    /// True when `from` is our leader and its notification (its `vote` in round `round`, state
    /// `state`) shows it left the leadership we elected it to in round `last_round`: waiting
    /// for it in discovery or synchronization (`initLimit`) or broadcast (`syncLimit`) is then
    /// wasted.
    /// - Looking in a later round, in any phase: a leader looks again only in a later round,
    ///   unless it restarted (seed 60789).
    /// - Following or leading another server in our round or a later one, in any phase: it
    ///   moved on (tier 1 seed 158547: the leader crashed unannounced, restarted, and joined
    ///   the others' next election), or never took the leadership we elected it to (seed 67:
    ///   its vote for itself in our round reached us after it adopted a better one, and we
    ///   decided on it at once, the third voter reported lost; it followed that better vote's
    ///   server in our round, and we waited `initLimit` in discovery). A server reports
    ///   FOLLOWING or LEADING in a round only once it decided in it, it decides once per round
    ///   (its next election starts after it, and joining a leader from outside the election
    ///   never makes it lead), so such a report is never older than its decision in our
    ///   round, whatever the order of delivery. Unlike looking in our round, which it did
    ///   before deciding.
    /// - Rule (a): once LEADERINFO came, a vote of an epoch at least the one it named
    ///   (`new_epoch`, E), in any state but our leader leading us in our round: a vote's
    ///   `peer_epoch` is a current epoch, and a current epoch reaches E only after a quorum
    ///   accepted E or more.
    ///   Our leader chose E above the accepted epochs of a quorum, which meets that one, so
    ///   either the vote was cast after its decision (it looks, or follows or leads again: it
    ///   left us), or a quorum had accepted E or more before its FOLLOWERINFOs were counted
    ///   (late datagrams of earlier sessions), and it can never establish E (those voters
    ///   refuse it, or acknowledge it uncounted). Either way waiting is wasted, whatever the
    ///   order of delivery. It frees a learner whose leader crashed unannounced and restarted
    ///   into an election older in rounds than ours (its round counter starts from 0).
    ///
    /// Not used, rule (b): looking in an older round than ours. It leans on order: the
    /// leader's older rounds ended before it reached ours and decided, but a LOOKING
    /// notification sent in round r-1 and delayed past its LEADERINFO (datagrams, or a peer
    /// connection that re-sends the last notification) would send us away from a leader
    /// that still leads us, for one election round. Rule (a) covers what it was for (a
    /// restarted leader that had decided our epoch votes with an epoch at least E).
    ///
    /// Tier 1 seed 214269 failed liveness with either rule, and passes with rule (a) since
    /// the fix below: neither rule was wrong. Rule (a) made s1 leave its restarted leader
    /// s5 at 6.4165 s (a LOOKING notification of round 1, vote of epoch 3 = LEADERINFO's);
    /// the changed schedule later made s5 (restarted at 10.0 s) take a duplicate of s3's
    /// FOLLOWERINFO from an earlier session (sent at 9.91 s, accepted epoch 2) after s3's
    /// live session had acknowledged epoch 5: the leader replaced the live session, s3 kept
    /// serving on it, its clients' requests were dropped until `syncLimit`, and the fresh
    /// client's session expired with its one write. Fixed on the learner
    /// (`Learner::replaced_by_leader`).
    ///
    /// Before LEADERINFO an older round proves nothing (a notification from before the
    /// leader's decision, its answer to an earlier incarnation of ours), and looking in our
    /// own round may predate its decision: we wait, as before. The round rules can still be
    /// fooled when a server passes through a round twice (its rounds start again from 1 when
    /// it restarts, and a join takes the leader's round, maybe an older one) and a report
    /// from its first pass arrives late. ZooKeeper's learner does none of this: it waits for
    /// its socket to the leader to close or time out. The difference is safe: leaving a
    /// leader never risks safety (it is what the timeouts do), and a wrong judgement costs
    /// one election round.
    pub(crate) fn left_by_leader(
        &self,
        from: ServerId,
        vote: Vote,
        round: u64,
        state: PeerState,
        last_round: u64,
    ) -> bool {
        if from != self.leader {
            return false;
        }
        let looking_later = state == PeerState::Looking && round > last_round;
        // Its decision in our round (or a later move): a server decides once per round, and
        // reports FOLLOWING or LEADING only after deciding (seed 67).
        let established = matches!(state, PeerState::Following | PeerState::Leading);
        let elsewhere = established && vote.leader != from && round >= last_round;
        if self.phase == LearnerPhase::Discovery {
            return looking_later || elsewhere;
        }
        assert!(self.new_epoch > 0, "LEADERINFO names an epoch after 0");
        // Rule (a): a vote of an epoch at least the one LEADERINFO named. Our own leader's
        // LEADING answer in our round is the one notification that may carry it and still
        // lead us (its kept vote names the epoch it was elected with, below ours, but the
        // rule does not lean on that).
        let leads_us = state == PeerState::Leading && vote.leader == from && round == last_round;
        let later_epoch = vote.peer_epoch >= self.new_epoch && !leads_us;
        let left = match state {
            PeerState::Looking => round > last_round || later_epoch,
            PeerState::Following | PeerState::Leading => elsewhere || later_epoch,
            PeerState::Observing => false,
        };
        assert!(left || !(looking_later || elsewhere), "what proves it in discovery still does");
        // Our own leader leading us in our round is never a reason to leave.
        assert!(!left || !leads_us, "left a leader that leads us");
        left
    }
}

/// A learner's session with its leader, as seen from the client pipeline.
impl Learner {
    /// Sends a message in our session with the leader (numbered; see `zab::message`).
    fn send_leader(&mut self, shared: &mut Shared, msg: SessionMessage) {
        let numbered = self.channel.wrap(msg);
        assert!(self.channel.sent() >= 1, "the message took a number");
        assert!(matches!(numbered, ZabMessage::Session { .. }), "session messages are numbered");
        shared.send_peer(self.leader, numbered);
    }
}

/// What the client pipeline asks of a learner: it decides nothing itself, so writes, new
/// sessions, closes, syncs and reconnects go to the leader in the learner's session (FIFO, so
/// the leader decides them in the order the clients sent them), and local use of sessions is
/// reported in the next PINGREPLY (the leader alone expires sessions).
impl Upstream for Learner {
    fn serving(&self) -> bool {
        self.phase == LearnerPhase::Broadcast
    }

    fn is_learner(&self) -> bool {
        true
    }

    fn create_session(&mut self, shared: &mut Shared, session: SessionId, timeout_ms: i32) {
        let forwarded = Forwarded::CreateSession { timeout_ms };
        self.send_leader(
            shared,
            SessionMessage::Request { session, cxid: 0, ids: Default::default(), forwarded },
        );
    }

    fn write(
        &mut self,
        shared: &mut Shared,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
    ) {
        // The connection's auth ids travel with the request: the leader checks the ACLs and
        // does not know this connection.
        let ids = shared.requester_ids_shared(conn);
        let forwarded = Forwarded::Write(Box::new(req));
        self.send_leader(shared, SessionMessage::Request { session, cxid: xid, ids, forwarded });
    }

    fn failed_write(&mut self, _: &mut Shared, _: SessionId, _: i32, _: ZkError) -> Zxid {
        unreachable!("a learner answers a write it could not decode itself")
    }

    fn close_session(&mut self, shared: &mut Shared, conn: ConnId, session: SessionId, xid: i32) {
        self.write(shared, conn, session, xid, Request::CloseSession);
    }

    fn sync(&mut self, shared: &mut Shared, conn: ConnId, xid: i32) {
        // The SYNC reply comes back in our FIFO session after every COMMIT the leader sent
        // before it, so the client's next read sees at least what was logged at the leader
        // when the sync got there (the leader proves it still leads first: ZOOKEEPER-1675).
        self.pending_syncs.push_back((conn, xid));
        self.send_leader(shared, SessionMessage::SyncRequest);
    }

    fn revalidating(
        &mut self,
        session: SessionId,
        waiter: (ConnId, i32, Option<bool>),
    ) -> Option<ConnId> {
        self.revalidating.insert(session, waiter).map(|(stale, _, _)| stale)
    }

    fn revalidate(&mut self, shared: &mut Shared, session: SessionId) {
        self.send_leader(shared, SessionMessage::Revalidate { session });
    }

    fn touched(&mut self, session: SessionId) {
        // Reported in the next PINGREPLY: only the leader expires sessions, so it must hear
        // of a session's activity on every server.
        self.touched.insert(session);
    }

    fn conn_closed(&mut self, conn: ConnId, session: SessionId) {
        if self.revalidating.get(&session).is_some_and(|r| r.0 == conn) {
            self.revalidating.remove(&session);
        }
    }

    fn applied(&mut self, _: &mut Shared) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner(phase: LearnerPhase, new_epoch: u32) -> Learner {
        Learner {
            leader: ServerId(2),
            observer: false,
            phase,
            new_epoch,
            last_heard: 0,
            newleader: None,
            newleader_acked: false,
            commit_seen: Zxid::ZERO,
            acked: Zxid::ZERO,
            channel: FifoChannel::new(7),
            touched: BTreeSet::new(),
            pending_syncs: VecDeque::new(),
            revalidating: BTreeMap::new(),
            next_info: 0,
        }
    }

    fn vote(leader: u64, peer_epoch: u32) -> Vote {
        Vote { leader: ServerId(leader), zxid: Zxid::new(1, 6), peer_epoch }
    }

    /// Seed 158547 in small: we elected 2 in round 2 and took its LEADERINFO of epoch 4.
    #[test]
    fn a_leader_that_moved_on_is_left_at_once() {
        let l = learner(LearnerPhase::Syncing, 4);
        let left = |from: u64, v: Vote, round: u64, state: PeerState| {
            l.left_by_leader(ServerId(from), v, round, state, 2)
        };
        // A later round is news from after its decision in ours (unless a restart reset its
        // round and it passed ours again: the one-round risk the doc comment names).
        assert!(left(2, vote(1, 3), 3, PeerState::Looking), "a later round (seed 60789)");
        assert!(left(2, vote(3, 3), 3, PeerState::Leading), "leads from a later round");
        assert!(left(2, vote(3, 4), 3, PeerState::Following), "follows 3 in a later round");
        assert!(left(2, vote(3, 3), 2, PeerState::Following), "follows 3 in our round");
        // Rule (a): a vote of epoch 4 or later, in any round, was cast after its decision.
        assert!(left(2, vote(2, 4), 1, PeerState::Looking), "restarted: round 1, epoch 4");
        assert!(left(2, vote(3, 4), 2, PeerState::Looking), "our round, a vote of epoch 4");
        assert!(left(2, vote(3, 5), 1, PeerState::Following), "follows 3 in epoch 5");
        assert!(left(2, vote(2, 4), 1, PeerState::Leading), "leads again, from epoch 4");
        // What its election could have sent before it decided epoch 4: wait, as ZooKeeper.
        assert!(!left(2, vote(2, 3), 2, PeerState::Looking), "maybe stale: our round, epoch 3");
        assert!(!left(2, vote(2, 3), 1, PeerState::Looking), "an older round (rule b is out)");
        assert!(!left(2, vote(3, 3), 1, PeerState::Following), "its role before the election");
        assert!(!left(2, vote(2, 4), 2, PeerState::Leading), "leads us, whatever its vote");
        assert!(!left(2, vote(2, 3), 3, PeerState::Leading), "it leads us");
        assert!(!left(2, vote(2, 9), 9, PeerState::Observing), "observing says nothing");
        assert!(!left(3, vote(3, 4), 3, PeerState::Looking), "not our leader");
    }

    /// Seed 67 in small: s2 decided on s1 in round 2 from s1's vote for itself, sent before s1
    /// adopted s3's better vote; s1 follows s3 in round 2 and never answers our FOLLOWERINFO.
    #[test]
    fn a_leader_following_another_is_left_in_discovery() {
        let l = learner(LearnerPhase::Discovery, 0);
        let left = |v: Vote, round: u64, state: PeerState| {
            l.left_by_leader(ServerId(2), v, round, state, 2)
        };
        // Its decision in our round, or a move after it: it will not lead us in round 2.
        assert!(left(vote(3, 3), 2, PeerState::Following), "follows 3 in our round (seed 67)");
        assert!(left(vote(3, 3), 3, PeerState::Following), "follows 3 in a later round");
        assert!(left(vote(3, 3), 2, PeerState::Leading), "reports 3's lead in our round");
        // What it said before deciding in our round, or says while it leads us: wait.
        assert!(!left(vote(3, 3), 2, PeerState::Looking), "its vote in our round, maybe older");
        assert!(!left(vote(3, 3), 1, PeerState::Following), "an older round, its old role");
        assert!(!left(vote(2, 3), 2, PeerState::Leading), "it leads, us among others");
        assert!(!left(vote(3, 3), 2, PeerState::Observing), "observing says nothing");
    }

    #[test]
    fn before_leaderinfo_only_rounds_count() {
        // In discovery no epoch of ours proves the notification newer than its decision.
        let l = learner(LearnerPhase::Discovery, 0);
        let left = |v: Vote, round: u64, state: PeerState| {
            l.left_by_leader(ServerId(2), v, round, state, 2)
        };
        assert!(!left(vote(2, 4), 1, PeerState::Looking), "an older round proves nothing yet");
        assert!(!left(vote(3, 4), 1, PeerState::Following), "its role before the election");
        assert!(!left(vote(3, 9), 2, PeerState::Looking), "no epoch is ours to compare yet");
        assert!(left(vote(2, 1), 3, PeerState::Looking), "a later round");
        // Serving, the same rules as in synchronization.
        let serving = learner(LearnerPhase::Broadcast, 4);
        assert!(serving.left_by_leader(ServerId(2), vote(3, 4), 3, PeerState::Following, 2));
        assert!(!serving.left_by_leader(ServerId(2), vote(2, 3), 2, PeerState::Looking, 2));
    }
}
