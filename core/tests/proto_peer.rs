//! Peer wire format: every ZabMessage variant round-trips, and arbitrary or truncated bytes are
//! rejected without panicking.

use proptest::prelude::*;
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};
use zkr_core::snapshot::Snapshot;
use zkr_core::tree::DataTree;
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, ServerId, SessionId, Zxid};
use zkr_core::zab::message::{Forwarded, PeerState, Vote, ZabMessage};

fn txn(z: i64) -> LoggedTxn {
    LoggedTxn {
        header: TxnHeader { session_id: SessionId(7), cxid: 3, zxid: Zxid(z), time_ms: 99 },
        txn: Txn::SetData { path: "/a".into(), data: Some(b"x".to_vec()), version: 2 },
    }
}

fn all() -> Vec<ZabMessage> {
    let vote = Vote { leader: ServerId(3), zxid: Zxid(0x1_0000_0005), peer_epoch: 1 };
    let snapshot = Box::new(Snapshot {
        zxid: Zxid::ZERO,
        tree: DataTree::new(),
        sessions: vec![(SessionId(5), 4000)],
    });
    let write = Request::Create {
        op: OpCode::Create2,
        path: "/n".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 1,
        ttl: -1,
    };
    vec![
        ZabMessage::Notification { vote, election_epoch: 9, state: PeerState::Leading },
        ZabMessage::FollowerInfo {
            accepted_epoch: 2,
            last_zxid: Zxid(5),
            observer: true,
            nonce: u64::MAX,
        },
        ZabMessage::LeaderInfo { new_epoch: 3 },
        ZabMessage::AckEpoch { current_epoch: 2, last_zxid: Zxid(5) },
        ZabMessage::Diff { txns: vec![txn(6), txn(7)], committed: Zxid(6) },
        ZabMessage::Trunc { zxid: Zxid(4) },
        ZabMessage::Snap { snapshot },
        ZabMessage::NewLeader { zxid: Zxid::new(3, 0) },
        ZabMessage::UpToDate,
        ZabMessage::Proposal { txn: txn(8) },
        ZabMessage::Ack { zxid: Zxid(8) },
        ZabMessage::Commit { zxid: Zxid(8) },
        ZabMessage::Request {
            session: SessionId(11),
            cxid: 4,
            ids: vec![Id::new("ip", "127.0.0.1")],
            forwarded: Forwarded::Write(write),
        },
        ZabMessage::Request {
            session: SessionId(12),
            cxid: 0,
            ids: vec![],
            forwarded: Forwarded::CreateSession { timeout_ms: 4000 },
        },
        ZabMessage::SyncRequest,
        ZabMessage::SyncReply,
        ZabMessage::Ping,
        ZabMessage::PingReply { touched: vec![SessionId(1), SessionId(2)] },
        ZabMessage::Session {
            nonce: 9,
            seq: 3,
            msg: Box::new(ZabMessage::Commit { zxid: Zxid(8) }),
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for msg in all() {
        let bytes = encode_peer_message(&msg);
        assert_eq!(decode_peer_message(&bytes), Ok(msg.clone()), "{msg:?}");
    }
}

#[test]
fn every_strict_prefix_is_rejected() {
    for msg in all() {
        let bytes = encode_peer_message(&msg);
        for cut in 0..bytes.len() {
            assert!(decode_peer_message(&bytes[..cut]).is_err(), "{msg:?} cut at {cut}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_peer_message(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(i in 0usize..19, pos in any::<usize>(), bit in 0u8..8) {
        let msgs = all();
        let mut bytes = encode_peer_message(&msgs[i % msgs.len()]);
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        let _ = decode_peer_message(&bytes);
    }
}
