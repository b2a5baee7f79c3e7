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
        ZabMessage::AckEpoch { current_epoch: Some(2), last_zxid: Zxid(5) },
        ZabMessage::AckEpoch { current_epoch: None, last_zxid: Zxid(5) },
        ZabMessage::Diff { txns: vec![txn(6), txn(7)], committed: Zxid(6) },
        ZabMessage::Trunc { zxid: Zxid(4) },
        ZabMessage::Snap { snapshot },
        ZabMessage::NewLeader { zxid: Zxid::new(3, 0) },
        ZabMessage::UpToDate,
        ZabMessage::Proposal { txn: std::sync::Arc::new(txn(8)) },
        ZabMessage::Ack { zxid: Zxid(8) },
        ZabMessage::Commit { zxid: Zxid(8) },
        ZabMessage::Request {
            session: SessionId(11),
            cxid: 4,
            ids: std::sync::Arc::new(vec![Id::new("ip", "127.0.0.1")]),
            forwarded: Forwarded::Write(Box::new(write)),
        },
        ZabMessage::Request {
            session: SessionId(12),
            cxid: 0,
            ids: Default::default(),
            forwarded: Forwarded::CreateSession { timeout_ms: 4000 },
        },
        ZabMessage::SyncRequest,
        ZabMessage::SyncReply,
        ZabMessage::Ping { round: 7 },
        ZabMessage::PingReply { touched: vec![SessionId(1), SessionId(2)], round: 7 },
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

/// One change to a valid encoding: truncation, byte change, insertion, removal, an
/// interesting 32-bit value (a length, a count, a type), or a splice with another message.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    SetI32(usize, i32),
    Splice { at: usize, other: usize, from: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting =
        prop_oneof![Just(-1), Just(0), Just(1), Just(i32::MAX), Just(i32::MIN), any::<i32>()];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), interesting).prop_map(|(i, v)| Mutation::SetI32(i, v)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, other, from)| Mutation::Splice { at, other, from }),
    ]
}

fn mutate(mut bytes: Vec<u8>, corpus: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let n = bytes.len();
    match *m {
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        Mutation::Set(i, b) if n > 0 => bytes[i % n] = b,
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Remove(i) if n > 0 => {
            bytes.remove(i % n);
        }
        Mutation::SetI32(i, v) if n >= 4 => {
            let at = i % (n - 3);
            bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Splice { at, other, from } => {
            let other = &corpus[other % corpus.len()];
            bytes.truncate(at % (n + 1));
            bytes.extend_from_slice(&other[from % (other.len() + 1)..]);
        }
        _ => {}
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any message with up to 4 mutations: a clean error or a message that round-trips.
    #[test]
    fn mutated_and_spliced_messages_decode_or_fail_cleanly(
        i in any::<usize>(),
        ms in proptest::collection::vec(mutation(), 1..5),
    ) {
        let corpus: Vec<Vec<u8>> = all().iter().map(encode_peer_message).collect();
        let mut bytes = corpus[i % corpus.len()].clone();
        for m in &ms {
            bytes = mutate(bytes, &corpus, m);
        }
        if let Ok(msg) = decode_peer_message(&bytes) {
            prop_assert_eq!(decode_peer_message(&encode_peer_message(&msg)), Ok(msg));
        }
    }
}
