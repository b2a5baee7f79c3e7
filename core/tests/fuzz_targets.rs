//! The short form of the fuzz targets, run in CI: the libFuzzer targets' own checks
//! (`core/fuzz/checks.rs`: no panic on untrusted bytes, and what decodes round-trips) fed with
//! valid encodings of every kind from the proptest generators, each damaged by a few byte
//! edits and a cut. The long, coverage-guided form runs the same checks under `cargo fuzz`
//! (`bash tests/fuzz.sh`). An input `cargo fuzz` finds crashing belongs in `regressions()`.

#[path = "../fuzz/checks.rs"]
mod checks;
mod proto_support;

use proptest::collection::vec;
use proptest::prelude::*;
use proto_support as s;
use zkr_core::proto::codec;
use zkr_core::proto::peer::encode_peer_message;
use zkr_core::proto::txn::encode_txn;
use zkr_core::snapshot;
use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};
use zkr_core::zab::message::{SessionMessage, ZabMessage};

/// Byte edits (xor at an index), then, one time in three, a cut in the second half. Damage
/// that is too heavy only tests the decoders' first length check.
fn damage(mut bytes: Vec<u8>, edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    for &(at, x) in edits {
        if !bytes.is_empty() {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
    }
    if keep.is_multiple_of(3) {
        let n = bytes.len();
        bytes.truncate(n / 2 + (keep / 3) % (n / 2 + 1));
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    vec((any::<usize>(), any::<u8>()), 0..3)
}

/// A session message in a session with a random nonce and number.
fn peer_message() -> impl Strategy<Value = ZabMessage> {
    (any::<u64>(), any::<u64>(), session_message())
        .prop_map(|(nonce, seq, msg)| ZabMessage::Session { nonce, seq, msg })
}

fn session_message() -> impl Strategy<Value = SessionMessage> {
    let txns = vec(s::logged_txn(), 0..3);
    prop_oneof![
        s::logged_txn().prop_map(|txn| SessionMessage::Proposal { txn: std::sync::Arc::new(txn) }),
        (txns, any::<i64>())
            .prop_map(|(txns, c)| SessionMessage::Diff { txns, committed: Zxid(c) }),
        any::<u64>().prop_map(|round| SessionMessage::Ping { round }),
        (any::<u32>(), any::<i64>()).prop_map(|(e, z)| SessionMessage::AckEpoch {
            current_epoch: Some(e),
            last_zxid: Zxid(z)
        }),
        any::<i64>().prop_map(|z| SessionMessage::Commit { zxid: Zxid(z) }),
    ]
}

/// A snapshot of a tree of persistent nodes `/n0`, `/n1`, ... with these data, without its
/// trailing checksum (the snapshot check seals what it is given).
fn snapshot_body(data: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut tree = DataTree::new();
    for (i, d) in data.iter().enumerate() {
        let zxid = Zxid(i as i64 + 1);
        let header = TxnHeader { session_id: SessionId(9), cxid: 0, zxid, time_ms: 7 };
        let txn = Txn::Create {
            path: format!("/n{i}"),
            data: d.clone(),
            acl: Acl::open_unsafe(),
            kind: CreateKind::Persistent,
            parent_cversion: i as i32 + 1,
        };
        tree.apply(&LoggedTxn { header, txn });
    }
    let mut bytes = snapshot::encode(&tree, &[(SessionId(9), 4000)]);
    bytes.truncate(bytes.len() - 8);
    assert_eq!(checks::seal(&bytes), snapshot::encode(&tree, &[(SessionId(9), 4000)]));
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_frames(
        cut in any::<u8>(),
        connect in s::connect_request(),
        requests in vec(s::request(), 0..4),
        edits in edits(),
        keep in any::<usize>(),
    ) {
        let mut stream = vec![cut];
        stream.extend(codec::encode_connect_request(&connect));
        for (xid, r) in requests.iter().enumerate() {
            stream.extend(codec::encode_request(&codec::request_header(xid as i32, r), r));
        }
        checks::client_frames(&damage(stream, &edits, keep));
    }

    #[test]
    fn peer_messages(msg in peer_message(), edits in edits(), keep in any::<usize>()) {
        checks::peer_message(&damage(encode_peer_message(&msg), &edits, keep));
    }

    #[test]
    fn txns(t in s::logged_txn(), edits in edits(), keep in any::<usize>()) {
        checks::txn(&damage(encode_txn(&t), &edits, keep));
    }

    #[test]
    fn snapshots(data in vec(s::data(), 0..6), edits in edits(), keep in any::<usize>()) {
        checks::snapshot(&damage(snapshot_body(&data), &edits, keep));
    }
}

/// Inputs the fuzzers once found, replayed (none has crashed a decoder yet; the undamaged
/// seeds are here so each check's success path is run too).
fn regressions() -> Vec<(&'static str, Vec<u8>)> {
    vec![("snapshot", snapshot_body(&[Some(b"x".to_vec()), None])), ("txn", Vec::new())]
}

#[test]
fn regressions_pass() {
    for (target, input) in regressions() {
        match target {
            "client_frames" => checks::client_frames(&input),
            "peer_message" => checks::peer_message(&input),
            "txn" => checks::txn(&input),
            "snapshot" => checks::snapshot(&input),
            other => panic!("unknown target {other}"),
        }
    }
}

/// The short form is not vacuous: the damaged inputs reach both the decoders' error paths and
/// the checks' round-trip assertions (some still decode, some do not).
#[test]
fn damaged_inputs_reach_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (s::logged_txn(), edits(), any::<usize>());
    let (mut decoded, mut rejected) = (0, 0);
    for _ in 0..400 {
        let (t, e, keep) = strategy.new_tree(&mut runner).expect("a value").current();
        match zkr_core::proto::txn::decode_txn(&damage(encode_txn(&t), &e, keep)) {
            Ok(_) => decoded += 1,
            Err(_) => rejected += 1,
        }
    }
    assert!(decoded >= 40 && rejected >= 40, "decoded {decoded}, rejected {rejected}");
}
