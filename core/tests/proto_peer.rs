//! Peer wire format: every ZabMessage variant round-trips, and arbitrary or truncated bytes are
//! rejected without panicking.

use proptest::prelude::*;
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};
use zkr_core::snapshot::Snapshot;
use zkr_core::tree::DataTree;
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, ServerId, SessionId, Zxid};
use zkr_core::zab::message::{Forwarded, PeerState, SessionMessage, Vote, ZabMessage};

fn txn(z: i64) -> LoggedTxn {
    LoggedTxn {
        header: TxnHeader { session_id: SessionId(7), cxid: 3, zxid: Zxid(z), time_ms: 99 },
        txn: Txn::SetData { path: "/a".into(), data: Some(b"x".to_vec()), version: 2 },
    }
}

/// Every kind of message a session carries.
fn session_messages() -> Vec<SessionMessage> {
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
        SessionMessage::LeaderInfo { new_epoch: 3 },
        SessionMessage::AckEpoch { current_epoch: Some(2), last_zxid: Zxid(5) },
        SessionMessage::AckEpoch { current_epoch: None, last_zxid: Zxid(5) },
        SessionMessage::Diff { txns: vec![txn(6), txn(7)], committed: Zxid(6) },
        SessionMessage::Trunc { zxid: Zxid(4) },
        SessionMessage::Snap { snapshot },
        SessionMessage::NewLeader { zxid: Zxid::new(3, 0) },
        SessionMessage::UpToDate,
        SessionMessage::Proposal { txn: std::sync::Arc::new(txn(8)) },
        SessionMessage::Ack { zxid: Zxid(8) },
        SessionMessage::Commit { zxid: Zxid(8) },
        SessionMessage::Request {
            session: SessionId(11),
            cxid: 4,
            ids: std::sync::Arc::new(vec![Id::new("ip", "127.0.0.1")]),
            forwarded: Forwarded::Write(Box::new(write)),
        },
        SessionMessage::Request {
            session: SessionId(12),
            cxid: 0,
            ids: Default::default(),
            forwarded: Forwarded::CreateSession { timeout_ms: 4000 },
        },
        SessionMessage::SyncRequest,
        SessionMessage::SyncReply,
        SessionMessage::Ping { round: 7 },
        SessionMessage::PingReply { touched: vec![SessionId(1), SessionId(2)], round: 7 },
    ]
}

/// Every kind of peer message: the two that travel bare, and each session message in a
/// session of its own (the last one with the largest nonce and number).
fn all() -> Vec<ZabMessage> {
    let vote = Vote { leader: ServerId(3), zxid: Zxid(0x1_0000_0005), peer_epoch: 1 };
    let mut msgs = vec![
        ZabMessage::Notification { vote, election_epoch: 9, state: PeerState::Leading },
        ZabMessage::FollowerInfo {
            accepted_epoch: 2,
            last_zxid: Zxid(5),
            observer: true,
            nonce: u64::MAX,
        },
    ];
    let inner = session_messages();
    let last = inner.len() - 1;
    msgs.extend(inner.into_iter().enumerate().map(|(i, msg)| {
        let (nonce, seq) =
            if i == last { (u64::MAX, u64::MAX >> 1) } else { (9 + i as u64, 3 * i as u64) };
        ZabMessage::Session { nonce, seq, msg }
    }));
    msgs
}

/// A big-endian jute int and long.
fn be4(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn be8(v: i64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

#[test]
fn session_wire_bytes_are_frozen() {
    // SESSION (200), the nonce, the number, then the carried message as a length-prefixed
    // buffer holding its own type and fields: the bytes of the format before the session
    // message had its own type (a servers of either build read the other's).
    let commit =
        ZabMessage::Session { nonce: 9, seq: 3, msg: SessionMessage::Commit { zxid: Zxid(8) } };
    let inner = [be4(4), be8(8)].concat();
    let expected = [be4(200), be8(9), be8(3), be4(inner.len() as i32), inner].concat();
    assert_eq!(encode_peer_message(&commit), expected);
    let request = ZabMessage::Session {
        nonce: 1,
        seq: 0,
        msg: SessionMessage::Request {
            session: SessionId(12),
            cxid: 0,
            ids: std::sync::Arc::new(vec![Id::new("ip", "1")]),
            forwarded: Forwarded::CreateSession { timeout_ms: 4000 },
        },
    };
    let id = [be4(2), b"ip".to_vec(), be4(1), b"1".to_vec()].concat();
    let inner = [be4(1), be8(12), be4(0), be4(1), id, be4(0), be4(4000)].concat();
    let expected = [be4(200), be8(1), be8(0), be4(inner.len() as i32), inner].concat();
    assert_eq!(encode_peer_message(&request), expected);
    assert_eq!(decode_peer_message(&expected), Ok(request));
}

#[test]
fn session_messages_travel_only_in_a_session() {
    let ack = [be4(3), be8(8)].concat();
    assert!(decode_peer_message(&ack).is_err(), "a bare ACK");
    let in_session =
        |inner: Vec<u8>| [be4(200), be8(9), be8(0), be4(inner.len() as i32), inner].concat();
    assert!(decode_peer_message(&in_session(ack)).is_ok(), "an ACK in a session");
    let vote = Vote { leader: ServerId(3), zxid: Zxid(5), peer_epoch: 1 };
    let notification =
        ZabMessage::Notification { vote, election_epoch: 9, state: PeerState::Looking };
    let nested = encode_peer_message(&notification);
    assert!(decode_peer_message(&in_session(nested)).is_err(), "a notification in a session");
    let session = encode_peer_message(&all()[2]);
    assert!(decode_peer_message(&in_session(session)).is_err(), "a session in a session");
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
