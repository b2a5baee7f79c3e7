//! Snapshot encode/decode: roundtrip equality (digest included) and robustness against
//! corrupt or truncated input.

use proptest::prelude::*;
use zkr_core::proto::error::DecodeError;
use zkr_core::snapshot::{PieceChecksum, PieceDecoder, Snapshot, Step, TreeBuilder};
use zkr_core::snapshot::{decode, decode_deferring_checks, encode, encode_in_pieces, encoded_len};
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

/// A tree of several of the loader's windows (4,096 nodes; the loader puts a window's nodes
/// into the map out of order, to fill the B-tree's leaves) decodes to itself: a parent in the
/// window being filled or already in the map, a parent's children in several runs, runs
/// across windows. A node whose parent is missing is refused wherever it falls, at a window's
/// start or inside one, as are a repeated path and one out of order.
#[test]
fn a_tree_of_several_loader_windows_roundtrips() {
    let mut tree = DataTree::new();
    let mut zxid = 0;
    let mut create = |tree: &mut DataTree, path: String, ephemeral: bool| {
        zxid += 1;
        let kind = if ephemeral { CreateKind::Ephemeral } else { CreateKind::Persistent };
        apply(tree, zxid, 5, mk(&path, Some(path.as_bytes()), kind, -1));
    };
    for dir in 0..4 {
        create(&mut tree, format!("/d{dir}"), false);
        for i in 0..3_500 {
            create(&mut tree, format!("/d{dir}/n{i:05}"), false);
            if i % 700 == 3 {
                create(&mut tree, format!("/d{dir}/n{i:05}/c"), false);
                create(&mut tree, format!("/d{dir}/n{i:05}/c/e"), true);
            }
        }
    }
    assert!(tree.node_count() > 3 * 4_096, "several windows: {}", tree.node_count());
    let sessions = vec![(SessionId(5), 30_000)];
    let bytes = encode(&tree, &sessions);
    let snap = decode(&bytes).expect("decodes");
    assert_eq!(snap.tree, tree);
    assert_eq!(snap.tree.digest(), tree.digest());
    assert_eq!(snap.tree.ephemerals(SessionId(5)).len(), 4 * 5, "/d*/n*/c/e");
    assert_eq!(encode(&snap.tree, &snap.sessions), bytes, "re-encoding is byte-identical");
    assert_eq!(
        decode_in_pieces(&bytes, 4_000).as_ref(),
        Ok(&decode_deferring_checks(&bytes).unwrap())
    );
    let node = |path: &str| {
        let stat = zkr_core::tree::StatPersisted::default();
        let acl: std::sync::Arc<[Acl]> = Acl::open_unsafe().into();
        (
            path.into(),
            zkr_core::tree::ZNode::new(None, acl, stat, zkr_core::tree::NodeKind::Persistent),
        )
    };
    for at in [4_095, 4_096, 5_000] {
        for (bad, refusal) in
            [("/b/x", "parent missing"), ("/a00000", "snapshot paths out of order")]
        {
            let head = zkr_core::snapshot::SnapshotHead {
                zxid: Zxid(1),
                sessions: vec![],
                node_count: at + 2,
            };
            let mut builder = TreeBuilder::deferring_digest(head);
            let (root, root_node) = node("/");
            builder.push(root, root_node).unwrap();
            for i in 0..at {
                let (path, node) = node(&format!("/a{i:05}"));
                builder.push(path, node).unwrap();
            }
            let (path, node) = node(bad);
            let refused = builder.push(path, node).expect_err("refused");
            assert!(format!("{refused:?}").contains(refusal), "{refused:?} at {at}");
        }
    }
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

/// `decode_deferring_checks` with the body fed to a `PieceDecoder` in pieces of `piece` bytes
/// and the checksum to a `PieceChecksum` beside it, as the server reads a snapshot file.
fn decode_in_pieces(bytes: &[u8], piece: usize) -> Result<Snapshot, DecodeError> {
    let (mut records, mut sum) =
        (PieceDecoder::new(bytes.len())?, PieceChecksum::new(bytes.len())?);
    let (mut builder, mut digest) = (None, None);
    for p in bytes.chunks(piece) {
        sum.feed(p);
        records.feed(p);
        while digest.is_none() {
            match records.step()? {
                Step::NeedMore => break,
                Step::Head(head) => builder = Some(TreeBuilder::deferring_digest(head)),
                Step::Node(path, node) => builder.as_mut().expect("head").push(path, node)?,
                Step::Digest(d) => digest = Some(d),
            }
        }
    }
    sum.finish()?;
    let digest = digest.ok_or(DecodeError::Truncated { what: "snapshot" })?;
    builder.expect("a head before the digest").finish(digest)
}

/// Fed in pieces of any size, a snapshot decodes to what the whole bytes decode to, and
/// damaged bytes (truncated, a byte flipped anywhere, resealed or not) are refused as the whole
/// bytes are: a record cut by a piece's end is read again, never taken for the end.
#[test]
fn pieces_of_any_size_decode_as_the_whole() {
    let bytes = encode(&sample_tree(), &[(SessionId(5), 30_000), (SessionId(7), 4_000)]);
    let whole = decode_deferring_checks(&bytes).expect("decodes");
    for piece in [1, 2, 3, 7, 8, 64, 100, bytes.len()] {
        assert_eq!(decode_in_pieces(&bytes, piece).as_ref(), Ok(&whole), "pieces of {piece}");
    }
    let body = &bytes[..bytes.len() - 8];
    for at in 0..body.len() {
        for damaged in [body[..at].to_vec(), [body, &body[..at]].concat(), {
            let mut flipped = body.to_vec();
            flipped[at] ^= 0x41;
            flipped
        }] {
            let damaged = reseal(&damaged);
            let expected = zkr_core::snapshot::verify_checksum(&damaged)
                .and_then(|()| decode_deferring_checks(&damaged));
            for piece in [1, 5, 64] {
                assert_eq!(decode_in_pieces(&damaged, piece), expected, "at {at}, pieces {piece}");
            }
        }
    }
    let mut unsealed = bytes.clone();
    unsealed[30] ^= 1;
    assert_eq!(decode_in_pieces(&unsealed, 16), Err(DecodeError::BadChecksum));
}
