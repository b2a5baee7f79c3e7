//! How transcripts show things: zxids as `epoch:counter`, roles, and one-line peer messages.

use zkr_core::Node;
use zkr_core::types::Zxid;
use zkr_core::zab::message::{PeerState, SessionMessage, ZabMessage};

/// `epoch:counter`.
pub fn zx(z: Zxid) -> String {
    format!("{}:{}", z.epoch(), z.counter())
}

/// `epoch:counter` of a raw zxid.
pub fn zx_i64(z: i64) -> String {
    zx(Zxid(z))
}

/// The role as transcripts show it.
pub fn role(node: &Node) -> String {
    let epoch = node.epochs().1;
    let observing = node.peer_state() == PeerState::Observing;
    match node.leader() {
        None => "looking".into(),
        Some(l) if l == node.config().server_id => {
            if node.is_established_leader() {
                format!("leading, established in epoch {epoch}")
            } else {
                "leading, establishing".into()
            }
        }
        Some(l) => {
            let verb = if observing { "observing" } else { "following" };
            let phase = if node.is_serving() { "serving" } else { "syncing" };
            format!("{verb} {} ({phase})", l.0)
        }
    }
}

/// One peer message on one line (a session message shows its position and content).
pub fn describe(msg: &ZabMessage) -> String {
    match msg {
        ZabMessage::Session { seq, msg, .. } => format!("[{seq}] {}", describe_session(msg)),
        ZabMessage::Notification { vote, election_epoch, state } => format!(
            "Notification(vote {} {} e{}, round {election_epoch}, {state:?})",
            vote.leader.0,
            zx(vote.zxid),
            vote.peer_epoch
        ),
        ZabMessage::FollowerInfo { accepted_epoch, last_zxid, observer, .. } => {
            let kind = if *observer { "ObserverInfo" } else { "FollowerInfo" };
            format!("{kind}(accepted {accepted_epoch}, last {})", zx(*last_zxid))
        }
    }
}

/// A session message on one line.
fn describe_session(msg: &SessionMessage) -> String {
    match msg {
        SessionMessage::LeaderInfo { new_epoch } => format!("LeaderInfo({new_epoch})"),
        SessionMessage::AckEpoch { current_epoch, last_zxid } => {
            let current = current_epoch.map_or("-1".to_string(), |e| e.to_string());
            format!("AckEpoch(current {current}, last {})", zx(*last_zxid))
        }
        SessionMessage::Diff { txns, committed } => {
            let z: Vec<String> = txns.iter().map(|t| zx(t.header.zxid)).collect();
            format!("Diff([{}], committed {})", z.join(" "), zx(*committed))
        }
        SessionMessage::Trunc { zxid } => format!("Trunc({})", zx(*zxid)),
        SessionMessage::Snap { snapshot } => format!("Snap({})", zx(snapshot.zxid)),
        SessionMessage::NewLeader { zxid } => format!("NewLeader({})", zx(*zxid)),
        SessionMessage::UpToDate => "UpToDate".into(),
        SessionMessage::Proposal { txn } => format!("Proposal({})", zx(txn.header.zxid)),
        SessionMessage::Ack { zxid } => format!("Ack({})", zx(*zxid)),
        SessionMessage::Commit { zxid } => format!("Commit({})", zx(*zxid)),
        SessionMessage::Request { cxid, .. } => format!("Request(cxid {cxid})"),
        SessionMessage::Revalidate { .. } => "Revalidate".into(),
        SessionMessage::RevalidateReply { valid, .. } => format!("RevalidateReply({valid})"),
        SessionMessage::SyncRequest => "SyncRequest".into(),
        SessionMessage::SyncReply => "SyncReply".into(),
        SessionMessage::Ping { round } => format!("Ping round={round}"),
        SessionMessage::PingReply { round, .. } => format!("PingReply round={round}"),
    }
}

/// The kind name scripts select messages by (`kind=diff`), lower case; a session message is
/// selected by what it carries.
pub fn kind(msg: &ZabMessage) -> String {
    let name = match msg {
        ZabMessage::Session { msg, .. } => session_kind(msg),
        ZabMessage::Notification { .. } => "notification",
        ZabMessage::FollowerInfo { .. } => "followerinfo",
    };
    name.into()
}

/// The kind name of a session message.
fn session_kind(msg: &SessionMessage) -> &'static str {
    match msg {
        SessionMessage::LeaderInfo { .. } => "leaderinfo",
        SessionMessage::AckEpoch { .. } => "ackepoch",
        SessionMessage::Diff { .. } => "diff",
        SessionMessage::Trunc { .. } => "trunc",
        SessionMessage::Snap { .. } => "snap",
        SessionMessage::NewLeader { .. } => "newleader",
        SessionMessage::UpToDate => "uptodate",
        SessionMessage::Proposal { .. } => "proposal",
        SessionMessage::Ack { .. } => "ack",
        SessionMessage::Commit { .. } => "commit",
        SessionMessage::Request { .. } => "request",
        SessionMessage::Revalidate { .. } | SessionMessage::RevalidateReply { .. } => "revalidate",
        SessionMessage::SyncRequest | SessionMessage::SyncReply => "sync",
        SessionMessage::Ping { .. } | SessionMessage::PingReply { .. } => "ping",
    }
}
