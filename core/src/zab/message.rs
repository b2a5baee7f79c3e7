//! `ZabMessage`: the typed peer protocol, fast leader election notifications included.
//!
//! Transport contract: messages between two servers may be lost, delayed, duplicated or
//! reordered by the network (the simulator does all four). Zab itself needs FIFO channels
//! between a leader and each learner (ZooKeeper gets them from TCP): a learner must never take
//! NEWLEADER before the DIFF it certifies, nor a forwarded write before the one its client sent
//! first. So after FOLLOWERINFO opens a leader–learner session (named by the learner's random
//! nonce), every message of that session travels inside `Session { nonce, seq, msg }`, numbered
//! per direction from 0: the receiver takes only the next number; an earlier one is a duplicate
//! and is dropped; a later one is held until the hole before it fills (`zab::fifo`). A hole
//! that never fills (a lost message) stalls the session until the peer counts as silent
//! (`syncLimit`/`initLimit`) or the held messages overflow; then the learner goes back to
//! election and re-syncs, and the leader forgets the learner. Election notifications are
//! idempotent and travel bare; ACK and COMMIT are also cumulative. Over TCP only loss at breaks
//! happens.

use std::sync::Arc;

use crate::proto::client::Request;
use crate::snapshot::Snapshot;
use crate::txn::LoggedTxn;
use crate::types::{Id, ServerId, SessionId, Zxid};

/// A vote in fast leader election: who should lead and how up to date its history is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The proposed leader.
    pub leader: ServerId,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader's current epoch (`peerEpoch`).
    pub peer_epoch: u32,
}

impl Vote {
    /// `totalOrderPredicate`: higher epoch, then higher zxid, then higher server id wins.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// A server's state as election notifications report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Electing.
    Looking,
    /// Following an established or establishing leader.
    Following,
    /// Leading.
    Leading,
    /// Observing (non-voting).
    Observing,
}

/// Learner → leader: a client request the learner cannot decide alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// A write from a client connection (create, delete, setData, setACL, multi, closeSession).
    /// Boxed: a `Request` is the largest thing a peer message can hold, and every message,
    /// `Output::PeerSend` and `Input::PeerMessage` is as large as its largest variant, moved by
    /// value through the executor and the shells (the size checks in `io.rs`).
    Write(Box<Request>),
    /// A new session the learner has named (`CreateSession` txn with this id).
    CreateSession {
        /// The negotiated timeout, ms.
        timeout_ms: i32,
    },
}

/// One peer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZabMessage {
    /// FLE notification (`Notification` in FastLeaderElection).
    Notification {
        /// The sender's current vote.
        vote: Vote,
        /// The sender's logical clock (election round).
        election_epoch: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// FOLLOWERINFO / OBSERVERINFO (11 / 16): a learner introduces itself to its leader.
    FollowerInfo {
        /// The learner's accepted epoch.
        accepted_epoch: u32,
        /// The learner's last logged zxid.
        last_zxid: Zxid,
        /// True for an observer.
        observer: bool,
        /// Random per learner incarnation: a repeat with the same nonce is a duplicate, a new
        /// nonce a learner that started over.
        nonce: u64,
    },
    /// A message of a leader–learner session (see the module doc). The message is held
    /// inline: every proposal, ack and commit travels in a session, and a boxed message cost
    /// an allocation and a free per peer message (143,405 in the 20 three-server seeds of
    /// docs/TIER1-SPEED.md's eleventh pass).
    Session {
        /// The learner's FOLLOWERINFO nonce.
        nonce: u64,
        /// Position in this direction of the session, from 0.
        seq: u64,
        /// The message.
        msg: SessionMessage,
    },
}

/// A message that travels only inside a leader–learner session (`ZabMessage::Session`): every
/// peer message but the election notifications and the FOLLOWERINFO that opens a session. Its
/// own type, so a session cannot nest and a session message cannot travel bare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionMessage {
    /// LEADERINFO (17): the epoch the leader is establishing.
    LeaderInfo {
        /// The new epoch.
        new_epoch: u32,
    },
    /// ACKEPOCH (18): the learner accepted the epoch; sent only once it is durable.
    AckEpoch {
        /// The learner's current epoch; `None` (-1 on the wire, as ZooKeeper's
        /// `Learner.registerWithLeader` writes) when the learner had already accepted this very
        /// epoch before this LEADERINFO, possibly from another prospective leader. Such an ack
        /// must not count toward the epoch's quorum: a follower promises an epoch to one leader
        /// only (Zab paper §IV, phase 1), or two leaders can be established in one epoch.
        current_epoch: Option<u32>,
        /// The learner's last logged zxid.
        last_zxid: Zxid,
    },
    /// DIFF (13): the learner's log is a prefix of the leader's; here is the rest.
    Diff {
        /// Txns after the learner's last zxid, in order.
        txns: Vec<LoggedTxn>,
        /// Those up to this zxid are committed.
        committed: Zxid,
    },
    /// TRUNC (14): drop everything after `zxid`, then a DIFF follows.
    Trunc {
        /// The last zxid to keep.
        zxid: Zxid,
    },
    /// SNAP (15): replace the state with this snapshot; a DIFF follows.
    Snap {
        /// The leader's committed state.
        snapshot: Box<Snapshot>,
    },
    /// NEWLEADER (10): end of sync; the learner adopts `epoch` as its current epoch.
    NewLeader {
        /// `(new_epoch, 0)`.
        zxid: Zxid,
    },
    /// UPTODATE (12): a quorum has the leader's history; start serving.
    UpToDate,
    /// PROPOSAL (2).
    Proposal {
        /// The txn, shared with the sender's log and the other learners' proposals (one copy
        /// per txn, not one per learner: simulated networks move it; the wire encodes it).
        txn: std::sync::Arc<LoggedTxn>,
    },
    /// ACK (3), cumulative: everything up to `zxid` is durable at the sender. Also acknowledges
    /// NEWLEADER when `zxid` is `(new_epoch, 0)`.
    Ack {
        /// The acknowledged zxid.
        zxid: Zxid,
    },
    /// COMMIT (4), cumulative: everything up to `zxid` is committed.
    Commit {
        /// The committed zxid.
        zxid: Zxid,
    },
    /// REQUEST (1): a learner forwards a client request.
    Request {
        /// The session.
        session: SessionId,
        /// The client's xid.
        cxid: i32,
        /// The connection's auth ids (QuorumPacket.authinfo), shared with the connection they
        /// came from (`Conn::ids`): a forwarded write holds them by a reference count instead
        /// of copying every id's two strings.
        ids: Arc<Vec<Id>>,
        /// What is asked.
        forwarded: Forwarded,
    },
    /// REVALIDATE (6) from a learner: a client asks to reconnect there with this session. The
    /// leader answers whether the session is alive, and if so makes that learner its owner;
    /// requests for the session arriving through any other server are then refused.
    Revalidate {
        /// The session.
        session: SessionId,
    },
    /// REVALIDATE (6) from the leader: whether the session may be resumed on that learner.
    RevalidateReply {
        /// The session.
        session: SessionId,
        /// Alive and now owned by the learner.
        valid: bool,
    },
    /// SYNC (7) from a learner: answer once everything proposed so far is committed.
    SyncRequest,
    /// SYNC (7) from the leader: the oldest pending sync of the learner may be answered.
    SyncReply,
    /// PING (5) from the leader, numbered: the leader's pings form rounds, and a sync is
    /// answered only once a quorum has answered a round sent after the sync arrived
    /// (ZOOKEEPER-1675).
    Ping {
        /// The leader's ping round.
        round: u64,
    },
    /// PING (5) from a learner: the sessions its clients touched since its last reply.
    PingReply {
        /// Touched sessions.
        touched: Vec<SessionId>,
        /// The round of the ping this answers.
        round: u64,
    },
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Sender.
    pub from: ServerId,
    /// Receiver.
    pub to: ServerId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_order_is_epoch_then_zxid_then_id() {
        let v = |e, z, id| Vote { leader: ServerId(id), zxid: Zxid(z), peer_epoch: e };
        assert!(v(2, 0, 1).beats(&v(1, 99, 9)), "epoch first");
        assert!(v(1, 5, 1).beats(&v(1, 4, 9)), "then zxid");
        assert!(v(1, 5, 3).beats(&v(1, 5, 2)), "then server id");
        assert!(!v(1, 5, 2).beats(&v(1, 5, 2)), "a vote does not beat itself");
    }
}
