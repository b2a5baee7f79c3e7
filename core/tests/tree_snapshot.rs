//! Snapshot encode/decode: roundtrip equality (digest included) and robustness against
//! corrupt or truncated input.

use proptest::prelude::*;
use zkr_core::proto::error::DecodeError;
use zkr_core::snapshot::{decode, encode, encode_in_pieces, encoded_len};
use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid};

fn apply(tree: &mut DataTree, zxid: i64, session: i64, txn: Txn) {
    let header =
        TxnHeader { session_id: SessionId(session), cxid: 0, zxid: Zxid(zxid), time_ms: zxid };
    let is_error = matches!(txn, Txn::Error { .. });
    let out = tree.apply(&LoggedTxn { header, txn });
    let failed = matches!(out.outcome, zkr_core::tree::ApplyOutcome::Failed(_));
    assert_eq!(failed, is_error, "{out:?}");
}

fn mk(path: &str, data: Option<&[u8]>, kind: CreateKind, parent_cversion: i32) -> Txn {
    Txn::Create {
        path: path.into(),
        data: data.map(|d| d.to_vec()),
        acl: vec![Acl { perms: 3, id: Id::new("digest", "u:h=") }],
        kind,
        parent_cversion,
    }
}

/// A tree with every node kind, null and empty data, a quota, and a "/a-b" path that sorts
/// between "/a" and "/a/b".
fn sample_tree() -> DataTree {
    let mut t = DataTree::new();
    apply(&mut t, 1, 5, mk("/a", Some(b"x"), CreateKind::Persistent, 1));
    apply(&mut t, 2, 5, mk("/a-b", None, CreateKind::Persistent, 2));
    apply(&mut t, 3, 5, mk("/a/b", Some(b""), CreateKind::Ephemeral, 1));
    apply(&mut t, 4, 5, mk("/c", None, CreateKind::Container, 3));
    apply(&mut t, 5, 5, mk("/t", None, CreateKind::Ttl(1000), 4));
    apply(&mut t, 6, 5, mk("/zookeeper/quota/a", None, CreateKind::Persistent, 1));
    let limits = b"count=5,bytes=-1".as_slice();
    apply(
        &mut t,
        7,
        5,
        mk("/zookeeper/quota/a/zookeeper_limits", Some(limits), CreateKind::Persistent, 1),
    );
    apply(&mut t, 8, 5, mk("/zookeeper/quota/a/zookeeper_stats", None, CreateKind::Persistent, 2));
    apply(&mut t, 9, 0, Txn::SetData { path: "/a".into(), data: Some(b"yy".to_vec()), version: 1 });
    apply(&mut t, 10, 0, Txn::Error { err: zkr_core::proto::error::ZkError::NoNode });
    t
}

#[test]
fn roundtrip_equality() {
    let tree = sample_tree();
    let sessions = vec![(SessionId(5), 30_000), (SessionId(7), 4_000)];
    let bytes = encode(&tree, &sessions);
    let snap = decode(&bytes).expect("decodes");
    assert_eq!(snap.zxid, Zxid(10));
    assert_eq!(snap.sessions, sessions);
    assert_eq!(snap.tree.digest(), tree.digest());
    assert_eq!(snap.tree, tree);
    assert_eq!(snap.tree.ephemerals(SessionId(5)), vec!["/a/b"]);
    assert_eq!(snap.tree.quota_roots(), vec!["/a"]);
    assert_eq!(encode(&snap.tree, &snap.sessions), bytes, "re-encoding is byte-identical");
    let fresh = decode(&encode(&DataTree::new(), &[])).unwrap();
    assert_eq!(fresh.tree, DataTree::new());
}

/// The pieces a shell writes as it encodes (issue 16) are exactly `encode`'s bytes, whatever
/// the piece size, and `encoded_len` predicts their length (the file header states it before
/// the first piece); ACL lists shared by runs of nodes and changing between them, null and
/// empty data, sessions and none.
#[test]
fn pieces_make_the_encoding_and_its_predicted_length() {
    let mut many = DataTree::new();
    for i in 0..300 {
        let id = Id::new(if i % 5 == 0 { "ip" } else { "digest" }, &"u".repeat(i / 10));
        let txn = Txn::Create {
            path: format!("/n{i:04}"),
            data: (i % 3 != 0).then(|| vec![b'd'; i % 50]),
            acl: vec![Acl { perms: 1 + (i / 7) as i32 % 31, id }],
            kind: CreateKind::Persistent,
            parent_cversion: 1 + i as i32,
        };
        apply(&mut many, 1 + i as i64, 5, txn);
    }
    for (tree, sessions) in [
        (sample_tree(), vec![(SessionId(5), 30_000), (SessionId(7), 4_000)]),
        (many, vec![]),
        (DataTree::new(), vec![]),
    ] {
        let whole = encode(&tree, &sessions);
        assert_eq!(encoded_len(&tree, &sessions), whole.len());
        for piece_bytes in [1, 7, 100, 4096, usize::MAX] {
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            let sent = encode_in_pieces(&tree, &sessions, piece_bytes, |piece| {
                pieces.push(piece.to_vec());
                Ok::<(), ()>(())
            });
            assert_eq!(sent, Ok(whole.len()));
            assert_eq!(pieces.concat(), whole, "pieces of {piece_bytes}");
            assert!(pieces.len() > 1 || piece_bytes > whole.len(), "{piece_bytes} makes pieces");
        }
        // The first error of the sink ends the encoding and is returned.
        let mut calls = 0;
        let failed = encode_in_pieces(&tree, &sessions, 1, |_| {
            calls += 1;
            Err("disk full")
        });
        assert_eq!((failed, calls), (Err("disk full"), 1));
    }
}

#[test]
fn digest_differs_for_different_trees() {
    let a = sample_tree();
    let mut b = a.clone();
    apply(&mut b, 11, 0, Txn::SetAcl { path: "/a".into(), acl: Acl::open_unsafe(), version: 1 });
    assert_ne!(a.digest(), b.digest());
    let mut c = a.clone();
    apply(&mut c, 11, 0, Txn::Check { path: "/a".into(), version: 1 });
    assert_eq!(a.digest(), c.digest(), "the digest covers the nodes, not the zxid");
}

#[test]
fn truncation_and_bad_checksum_are_errors() {
    let bytes = encode(&sample_tree(), &[(SessionId(1), 1)]);
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert_eq!(decode(&flipped), Err(DecodeError::BadChecksum));
}

/// Re-seals a body with a valid checksum, so that structural checks are reached.
fn reseal(body: &[u8]) -> Vec<u8> {
    let mut h = zkr_core::tree::digest::Fnv64::default();
    h.bytes(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&h.finish().to_be_bytes());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corrupt_input_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let bytes = encode(&sample_tree(), &[(SessionId(9), 100)]);
        let mut body = bytes[..bytes.len() - 8].to_vec();
        for (at, v) in edits {
            let i = at % body.len();
            body[i] = v;
        }
        body.truncate(body.len() - cut % 16);
        // Without a fixed checksum the corruption is caught at once...
        let mut raw = body.clone();
        raw.extend_from_slice(&bytes[bytes.len() - 8..]);
        let _ = decode(&raw);
        // ...and with one the structural checks must catch it without panicking.
        if let Ok(snap) = decode(&reseal(&body)) {
            snap.tree.invariants();
        }
    }
}
