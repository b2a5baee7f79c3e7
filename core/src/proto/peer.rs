//! The peer wire format: `ZabMessage` ↔ bytes, for the shell's quorum connections. Our own
//! format (zkr servers talk only to zkr servers), built from jute primitives with ZooKeeper's
//! QuorumPacket type numbers where a packet has one. Values are frozen; never reuse a number.
//!
//! Decoding untrusted bytes never panics: every length is checked against what is left, and an
//! unknown type is an error.

use crate::proto::codec;
use crate::proto::error::DecodeError;
use crate::proto::jute::{Reader, Writer};
use crate::proto::txn::{read_txn, write_txn};
use crate::types::{ServerId, SessionId, Zxid};
use crate::zab::message::{Forwarded, PeerState, SessionMessage, Vote, ZabMessage};

/// Frozen packet type numbers (ZooKeeper's `Leader.java` values where they exist).
mod kind {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const REVALIDATE: i32 = 6;
    pub const SYNC_REQUEST: i32 = 7;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    // Ours: election notifications travel on the same connection.
    pub const NOTIFICATION: i32 = 100;
    pub const PING_REPLY: i32 = 105;
    pub const SYNC_REPLY: i32 = 107;
    pub const SESSION: i32 = 200;
    pub const REVALIDATE_REPLY: i32 = 206;
}

fn state_code(s: PeerState) -> i32 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn write_zxid(w: &mut Writer, z: Zxid) {
    w.write_i64(z.0);
}

/// Encodes one message (no length prefix; the shell frames it).
pub fn encode_peer_message(msg: &ZabMessage) -> Vec<u8> {
    let mut out = Writer::new();
    let w = &mut out;
    match msg {
        ZabMessage::Notification { vote, election_epoch, state } => {
            w.write_i32(kind::NOTIFICATION);
            w.write_i64(vote.leader.0 as i64);
            write_zxid(w, vote.zxid);
            w.write_i32(vote.peer_epoch as i32);
            w.write_i64(*election_epoch as i64);
            w.write_i32(state_code(*state));
        }
        ZabMessage::FollowerInfo { accepted_epoch, last_zxid, observer, nonce } => {
            w.write_i32(kind::FOLLOWERINFO);
            w.write_i32(*accepted_epoch as i32);
            write_zxid(w, *last_zxid);
            w.write_bool(*observer);
            w.write_i64(*nonce as i64);
        }
        ZabMessage::Session { nonce, seq, msg } => {
            w.write_i32(kind::SESSION);
            w.write_i64(*nonce as i64);
            w.write_i64(*seq as i64);
            w.write_buffer(Some(&encode_session_message(msg)));
        }
    }
    out.into_inner()
}

/// Encodes the message a session carries: the bytes inside SESSION's buffer.
fn encode_session_message(msg: &SessionMessage) -> Vec<u8> {
    let mut w = Writer::new();
    if !write_sync(&mut w, msg) {
        write_broadcast(&mut w, msg);
    }
    w.into_inner()
}

/// Discovery and sync messages; false for the others.
fn write_sync(w: &mut Writer, msg: &SessionMessage) -> bool {
    match msg {
        SessionMessage::LeaderInfo { new_epoch } => {
            w.write_i32(kind::LEADERINFO);
            w.write_i32(*new_epoch as i32);
        }
        SessionMessage::AckEpoch { current_epoch, last_zxid } => {
            w.write_i32(kind::ACKEPOCH);
            w.write_i32(current_epoch.map_or(-1, |e| e as i32));
            write_zxid(w, *last_zxid);
        }
        SessionMessage::Diff { txns, committed } => {
            w.write_i32(kind::DIFF);
            write_zxid(w, *committed);
            w.write_vec(txns, write_txn);
        }
        SessionMessage::Trunc { zxid } => {
            w.write_i32(kind::TRUNC);
            write_zxid(w, *zxid);
        }
        SessionMessage::Snap { snapshot } => {
            w.write_i32(kind::SNAP);
            let bytes = crate::snapshot::encode(&snapshot.tree, &snapshot.sessions);
            w.write_buffer(Some(&bytes));
        }
        SessionMessage::NewLeader { zxid } => {
            w.write_i32(kind::NEWLEADER);
            write_zxid(w, *zxid);
        }
        SessionMessage::UpToDate => w.write_i32(kind::UPTODATE),
        _ => return false,
    }
    true
}

/// Broadcast-phase messages.
fn write_broadcast(w: &mut Writer, msg: &SessionMessage) {
    match msg {
        SessionMessage::Proposal { txn } => {
            w.write_i32(kind::PROPOSAL);
            write_txn(w, txn);
        }
        SessionMessage::Ack { zxid } => {
            w.write_i32(kind::ACK);
            write_zxid(w, *zxid);
        }
        SessionMessage::Commit { zxid } => {
            w.write_i32(kind::COMMIT);
            write_zxid(w, *zxid);
        }
        SessionMessage::Request { session, cxid, ids, forwarded } => {
            w.write_i32(kind::REQUEST);
            w.write_i64(session.0);
            w.write_i32(*cxid);
            w.write_vec(ids, |w, id| w.write_id(id));
            match forwarded {
                Forwarded::CreateSession { timeout_ms } => {
                    w.write_i32(0);
                    w.write_i32(*timeout_ms);
                }
                Forwarded::Write(req) => {
                    w.write_i32(1);
                    let header = codec::request_header(*cxid, req);
                    let framed = codec::encode_request(&header, req);
                    w.write_buffer(Some(&framed[4..]));
                }
            }
        }
        SessionMessage::SyncRequest => w.write_i32(kind::SYNC_REQUEST),
        SessionMessage::Revalidate { session } => {
            w.write_i32(kind::REVALIDATE);
            w.write_i64(session.0);
        }
        SessionMessage::RevalidateReply { session, valid } => {
            w.write_i32(kind::REVALIDATE_REPLY);
            w.write_i64(session.0);
            w.write_bool(*valid);
        }
        SessionMessage::SyncReply => w.write_i32(kind::SYNC_REPLY),
        SessionMessage::Ping { round } => {
            w.write_i32(kind::PING);
            w.write_i64(*round as i64);
        }
        SessionMessage::PingReply { touched, round } => {
            w.write_i32(kind::PING_REPLY);
            w.write_vec(touched, |w, s| w.write_i64(s.0));
            w.write_i64(*round as i64);
        }
        other => unreachable!("{other:?} is written by write_sync"),
    }
}

/// Decodes one message; the whole input must be consumed.
pub fn decode_peer_message(bytes: &[u8]) -> Result<ZabMessage, DecodeError> {
    let mut r = Reader::new(bytes);
    let msg = read_message(&mut r)?;
    r.finish("peer message")?;
    Ok(msg)
}

fn read_zxid(r: &mut Reader<'_>, what: &'static str) -> Result<Zxid, DecodeError> {
    r.read_i64(what).map(Zxid)
}

fn read_u32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    let v = r.read_i32(what)?;
    u32::try_from(v).map_err(|_| DecodeError::BadValue { what, value: v as i64 })
}

/// ACKEPOCH's current epoch: -1 when the learner had already accepted the epoch.
fn read_ack_epoch(r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    match r.read_i32("current_epoch")? {
        -1 => Ok(None),
        v => u32::try_from(v)
            .map(Some)
            .map_err(|_| DecodeError::BadValue { what: "current_epoch", value: v as i64 }),
    }
}

/// A ping round: the leader counts them from 1; never negative on the wire.
fn read_round(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let v = r.read_i64("ping round")?;
    u64::try_from(v).map_err(|_| DecodeError::BadValue { what: "ping round", value: v })
}

/// A message outside a session: a notification, a FOLLOWERINFO or a session's message. A
/// session's kind of message sent bare is an error (none of ours is ever sent so).
fn read_message(r: &mut Reader<'_>) -> Result<ZabMessage, DecodeError> {
    let t = r.read_i32("peer message type")?;
    Ok(match t {
        kind::NOTIFICATION => {
            let leader = ServerId(r.read_i64("vote.leader")? as u64);
            let zxid = read_zxid(r, "vote.zxid")?;
            let peer_epoch = read_u32(r, "vote.peer_epoch")?;
            let election_epoch = r.read_i64("election_epoch")? as u64;
            let state = match r.read_i32("state")? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                v => return Err(DecodeError::BadValue { what: "state", value: v as i64 }),
            };
            ZabMessage::Notification {
                vote: Vote { leader, zxid, peer_epoch },
                election_epoch,
                state,
            }
        }
        kind::FOLLOWERINFO => ZabMessage::FollowerInfo {
            accepted_epoch: read_u32(r, "accepted_epoch")?,
            last_zxid: read_zxid(r, "last_zxid")?,
            observer: r.read_bool("observer")?,
            nonce: r.read_i64("nonce")? as u64,
        },
        kind::SESSION => read_session(r)?,
        other => {
            return Err(DecodeError::BadValue { what: "peer message type", value: other as i64 });
        }
    })
}

/// The message inside a SESSION's buffer: anything but a notification, a FOLLOWERINFO or a
/// session (sessions never nest).
fn read_session_message(r: &mut Reader<'_>) -> Result<SessionMessage, DecodeError> {
    let t = r.read_i32("session message type")?;
    Ok(match t {
        kind::LEADERINFO => SessionMessage::LeaderInfo { new_epoch: read_u32(r, "new_epoch")? },
        kind::ACKEPOCH => SessionMessage::AckEpoch {
            current_epoch: read_ack_epoch(r)?,
            last_zxid: read_zxid(r, "last_zxid")?,
        },
        kind::DIFF => {
            let committed = read_zxid(r, "committed")?;
            let txns = r.read_vec_sized("diff txns", 32, read_txn)?.unwrap_or_default();
            SessionMessage::Diff { txns, committed }
        }
        kind::TRUNC => SessionMessage::Trunc { zxid: read_zxid(r, "trunc zxid")? },
        kind::SNAP => {
            let bytes = r.read_buffer("snapshot")?.unwrap_or_default();
            SessionMessage::Snap { snapshot: Box::new(crate::snapshot::decode(&bytes)?) }
        }
        kind::NEWLEADER => SessionMessage::NewLeader { zxid: read_zxid(r, "newleader zxid")? },
        kind::UPTODATE => SessionMessage::UpToDate,
        kind::PROPOSAL => SessionMessage::Proposal { txn: std::sync::Arc::new(read_txn(r)?) },
        kind::ACK => SessionMessage::Ack { zxid: read_zxid(r, "ack zxid")? },
        kind::COMMIT => SessionMessage::Commit { zxid: read_zxid(r, "commit zxid")? },
        kind::REQUEST => read_request(r)?,
        kind::SYNC_REQUEST => SessionMessage::SyncRequest,
        kind::REVALIDATE => {
            SessionMessage::Revalidate { session: SessionId(r.read_i64("session")?) }
        }
        kind::REVALIDATE_REPLY => SessionMessage::RevalidateReply {
            session: SessionId(r.read_i64("session")?),
            valid: r.read_bool("valid")?,
        },
        kind::SYNC_REPLY => SessionMessage::SyncReply,
        kind::PING => SessionMessage::Ping { round: read_round(r)? },
        kind::PING_REPLY => {
            let touched =
                r.read_vec_sized("touched", 8, |r| r.read_i64("session").map(SessionId))?;
            SessionMessage::PingReply {
                touched: touched.unwrap_or_default(),
                round: read_round(r)?,
            }
        }
        other => {
            return Err(DecodeError::BadValue {
                what: "session message type",
                value: other as i64,
            });
        }
    })
}

fn read_session(r: &mut Reader<'_>) -> Result<ZabMessage, DecodeError> {
    let nonce = r.read_i64("session nonce")? as u64;
    let seq = r.read_i64("session seq")? as u64;
    let inner = r.read_buffer("session message")?.unwrap_or_default();
    let mut inner_reader = Reader::new(&inner);
    let msg = read_session_message(&mut inner_reader)?;
    inner_reader.finish("session message")?;
    Ok(ZabMessage::Session { nonce, seq, msg })
}

fn read_request(r: &mut Reader<'_>) -> Result<SessionMessage, DecodeError> {
    let session = SessionId(r.read_i64("request.session")?);
    let cxid = r.read_i32("request.cxid")?;
    let ids = r.read_vec_sized("request.ids", 8, |r| r.read_id())?.unwrap_or_default();
    let ids = std::sync::Arc::new(ids);
    let forwarded = match r.read_i32("request.kind")? {
        0 => Forwarded::CreateSession { timeout_ms: r.read_i32("timeout")? },
        1 => {
            let payload = r.read_buffer("request bytes")?.unwrap_or_default();
            let (_, body) = codec::decode_request(&payload)?;
            let req = body.map_err(|_| DecodeError::BadValue { what: "forwarded op", value: 0 })?;
            Forwarded::Write(Box::new(req))
        }
        v => return Err(DecodeError::BadValue { what: "request.kind", value: v as i64 }),
    };
    Ok(SessionMessage::Request { session, cxid, ids, forwarded })
}
