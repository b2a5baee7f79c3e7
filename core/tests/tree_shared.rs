//! The shared tree layout of issue 16: children found by walking the ordered keys (no name
//! sets), clones that share structure yet stay frozen at their zxid (what a snapshot relies
//! on), and ACL lists shared between nodes.

use std::sync::Arc;

use proptest::prelude::*;
use zkr_core::snapshot::{decode, encode};
use zkr_core::tree::{ApplyOutcome, DataTree, path};
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid};

fn apply(tree: &mut DataTree, txn: Txn) -> ApplyOutcome {
    let zxid = Zxid(tree.last_processed_zxid().0 + 1);
    let header = TxnHeader { session_id: SessionId(7), cxid: 0, zxid, time_ms: zxid.0 };
    tree.apply(&LoggedTxn { header, txn }).outcome
}

fn create(path: &str, kind: CreateKind) -> Txn {
    let acl = Acl::open_unsafe();
    Txn::Create { path: path.into(), data: Some(b"d".to_vec()), acl, kind, parent_cversion: -1 }
}

/// Children by brute force: every key whose parent is `p`.
fn scanned_children(tree: &DataTree, p: &str) -> Vec<String> {
    let below = tree.nodes().filter(|(k, _)| *k != "/" && path::parent(k) == p);
    below.map(|(k, _)| path::last_segment(k).to_string()).collect()
}

/// Names chosen so that siblings sort between a node and its own children: "a-b" and "a.c"
/// sort between "a" and "a/…", "a0" right after them.
const NAMES: [&str; 5] = ["a", "a-b", "a.c", "a0", "b"];

fn arbitrary_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAMES.to_vec()), 1..4)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The key walk lists exactly the children a full scan finds, in order, for every node,
    /// and `numChildren` agrees, through creates and deletes (failed ones included).
    #[test]
    fn children_walk_matches_a_full_scan(
        ops in prop::collection::vec((any::<bool>(), arbitrary_path(), any::<bool>()), 1..60)
    ) {
        let mut tree = DataTree::new();
        for (is_create, p, ephemeral) in ops {
            let kind = if ephemeral { CreateKind::Ephemeral } else { CreateKind::Persistent };
            let txn = if is_create { create(&p, kind) } else { Txn::Delete { path: p } };
            apply(&mut tree, txn);
        }
        tree.invariants();
        for (p, node) in tree.nodes() {
            let walked = tree.children(p).expect("the node exists");
            prop_assert_eq!(&walked, &scanned_children(&tree, p), "children of {}", p);
            prop_assert_eq!(node.num_children as usize, walked.len());
            prop_assert_eq!(tree.stat(p).unwrap().num_children as usize, walked.len());
        }
    }
}

/// A clone (what `Node::snapshot` takes) keeps the tree exactly as it was at its zxid while the
/// live tree goes on: same bytes, same digest, same children, though the two share structure.
#[test]
fn a_clone_stays_frozen_at_its_zxid() {
    let mut tree = DataTree::new();
    for i in 0..300 {
        apply(&mut tree, create(&format!("/p{}", i % 3), CreateKind::Persistent));
        apply(&mut tree, create(&format!("/p{}/n{i:04}", i % 3), CreateKind::Persistent));
    }
    let frozen = tree.clone();
    let bytes = encode(&frozen, &[]);
    let (zxid, digest) = (frozen.last_processed_zxid(), frozen.digest());
    let children = frozen.children("/p1").unwrap();
    apply(&mut tree, Txn::SetData { path: "/p1/n0001".into(), data: None, version: 1 });
    apply(&mut tree, Txn::Delete { path: "/p2/n0002".into() });
    apply(&mut tree, create("/p1/z", CreateKind::Ephemeral));
    let acl = vec![Acl { perms: 1, id: Id::new("digest", "u:h=") }];
    apply(&mut tree, Txn::SetAcl { path: "/p0".into(), acl, version: 1 });
    assert_ne!(tree.digest(), digest, "the live tree moved on");
    assert_eq!(tree.children("/p1").unwrap().len(), children.len() + 1);
    assert_eq!(frozen.last_processed_zxid(), zxid);
    assert_eq!(frozen.digest(), digest);
    assert_eq!(frozen.children("/p1").unwrap(), children);
    assert_eq!(encode(&frozen, &[]), bytes, "the clone encodes to the same bytes");
    frozen.invariants();
    tree.invariants();
    let reloaded = decode(&bytes).expect("decodes");
    assert_eq!(reloaded.tree, frozen);
    assert_eq!(reloaded.tree.ephemerals(SessionId(7)), Vec::<String>::new());
    assert_eq!(tree.ephemerals(SessionId(7)), vec!["/p1/z".to_string()]);
}

/// Siblings created with equal ACLs hold one shared list, after a create and after a reload;
/// a different list is kept apart.
#[test]
fn equal_acl_lists_are_shared() {
    let mut tree = DataTree::new();
    apply(&mut tree, create("/x", CreateKind::Persistent));
    apply(&mut tree, create("/x/a", CreateKind::Persistent));
    apply(&mut tree, create("/x/b", CreateKind::Persistent));
    let acl = vec![Acl { perms: 31, id: Id::new("digest", "u:h=") }];
    let txn = Txn::Create {
        path: "/x/c".into(),
        data: None,
        acl,
        kind: CreateKind::Persistent,
        parent_cversion: -1,
    };
    apply(&mut tree, txn);
    let acl_of = |t: &DataTree, p: &str| t.get(p).unwrap().acl.clone();
    assert!(Arc::ptr_eq(&acl_of(&tree, "/x/a"), &acl_of(&tree, "/x/b")));
    assert!(Arc::ptr_eq(&acl_of(&tree, "/x"), &acl_of(&tree, "/x/a")));
    assert!(!Arc::ptr_eq(&acl_of(&tree, "/x/b"), &acl_of(&tree, "/x/c")));
    let reloaded = decode(&encode(&tree, &[])).unwrap().tree;
    assert!(Arc::ptr_eq(&acl_of(&reloaded, "/x/a"), &acl_of(&reloaded, "/x/b")));
    assert_eq!(reloaded, tree);
}

/// A version-1 snapshot written by hand with the nodes in the given order: every node is a
/// persistent node with empty data and the open ACL, and the digest is the one of the same tree
/// (path order does not change a sum), so only the order can be wrong.
fn handmade_snapshot(paths: &[&str]) -> Vec<u8> {
    use zkr_core::proto::jute::Writer;
    use zkr_core::tree::digest::Fnv64;
    let mut sorted = paths.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut tree = DataTree::new();
    for p in sorted.iter().filter(|p| DataTree::new().get(p).is_none()) {
        let acl = Acl::open_unsafe();
        let txn = Txn::Create {
            path: p.to_string(),
            data: Some(Vec::new()),
            acl,
            kind: CreateKind::Persistent,
            parent_cversion: -1,
        };
        apply(&mut tree, txn);
    }
    let mut w = Writer::new();
    w.write_i32(zkr_core::snapshot::MAGIC);
    w.write_i32(zkr_core::snapshot::VERSION);
    w.write_i64(tree.last_processed_zxid().0);
    w.write_i32(0);
    w.write_i32(paths.len() as i32);
    for p in paths {
        let node = tree.get(p).unwrap();
        w.write_string(p);
        w.write_buffer(node.data.as_deref());
        w.write_acls(&node.acl);
        w.write_u8(0);
        let s = &node.stat;
        for v in [s.czxid, s.mzxid, s.ctime, s.mtime] {
            w.write_i64(v);
        }
        for v in [s.version, s.cversion, s.aversion] {
            w.write_i32(v);
        }
        w.write_i64(s.ephemeral_owner);
        w.write_i64(s.pzxid);
    }
    w.write_i64(tree.digest() as i64);
    let mut h = Fnv64::default();
    h.bytes(w.as_slice());
    w.write_i64(h.finish() as i64);
    w.into_inner()
}

/// The loader takes nodes in strictly increasing path order (what `encode` writes) and reports
/// any other order, or a repeated path, as corruption instead of building a wrong tree.
#[test]
fn snapshot_nodes_out_of_order_or_repeated_are_rejected() {
    use zkr_core::proto::error::DecodeError;
    let system = ["/zookeeper", "/zookeeper/config", "/zookeeper/quota"];
    let with = |user: [&'static str; 3]| -> Vec<&'static str> {
        ["/"].into_iter().chain(user).chain(system).collect()
    };
    let good = with(["/a", "/a-b", "/a/b"]);
    let tree = decode(&handmade_snapshot(&good)).expect("path order loads").tree;
    assert_eq!(tree.children("/a").unwrap(), vec!["b".to_string()]);
    let swapped = with(["/a", "/a/b", "/a-b"]);
    let out_of_order = DecodeError::BadValue { what: "snapshot paths out of order", value: 0 };
    assert_eq!(decode(&handmade_snapshot(&swapped)), Err(out_of_order));
    let twice = with(["/a", "/a", "/a/b"]);
    let repeated = DecodeError::BadValue { what: "duplicate snapshot path", value: 0 };
    assert_eq!(decode(&handmade_snapshot(&twice)), Err(repeated));
}
