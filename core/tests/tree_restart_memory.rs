//! RSS after a restart no higher than after the load (issues 14 and 16): a tree decoded from a
//! snapshot takes less memory than the same tree built by creates. Sequential creates leave
//! every leaf of the node map's B-tree half full (`imbl` splits a full leaf at its median);
//! the snapshot loader inserts each window of nodes in an order that fills them
//! (`TreeLoader`'s doc). Builds 100,000 sequential znodes of 100 bytes under one parent (the
//! million-znode benchmark's shape) by creates, decodes the tree from its snapshot, and
//! requires the decoded one to add at least 6% less resident memory (when written: 350 B/znode
//! by creates, 309 decoded; 340, and a failure, with the loader inserting in path order). It
//! checks itself: the same tree built by creates a second time must fail the comparison.
//!
//! Resident memory (VmRSS, Linux only), as `tree_memory.rs`: the workspace forbids `unsafe`,
//! so no counting allocator. One test in this file, so the harness runs nothing beside it.

use zkr_core::snapshot::{decode_deferring_checks, encode};
use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};

const ZNODES: usize = 100_000;
/// How much smaller (in percent) the decoded tree must be than the one built by creates.
const SMALLER_BY_PERCENT_MIN: usize = 6;

/// VmRSS in bytes, or None where /proc is not available.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The benchmark's tree: `/bench`, then `/bench/n-0000000000`… with 100 bytes each.
fn bench_tree() -> DataTree {
    let mut tree = DataTree::new();
    let mut create = |path: String| {
        let zxid = Zxid(tree.last_processed_zxid().0 + 1);
        let header = TxnHeader { session_id: SessionId(7), cxid: 0, zxid, time_ms: zxid.0 };
        let txn = Txn::Create {
            path,
            data: Some(vec![b'x'; 100]),
            acl: Acl::open_unsafe(),
            kind: CreateKind::Persistent,
            parent_cversion: -1,
        };
        tree.apply(&LoggedTxn { header, txn });
    };
    create("/bench".into());
    for i in 0..ZNODES {
        create(format!("/bench/n-{i:010}"));
    }
    assert_eq!(tree.node_count(), ZNODES + 5, "the system nodes, /bench and the znodes");
    tree
}

/// Resident bytes that `build` adds (what it returns is kept until measured).
fn resident<T>(build: impl FnOnce() -> T) -> Option<(usize, T)> {
    let before = rss_bytes()?;
    let built = build();
    let after = rss_bytes()?;
    Some((after.saturating_sub(before), built))
}

/// `Ok` when `restarted` is smaller than `loaded` by at least the margin.
fn check(loaded: usize, restarted: usize) -> Result<(), String> {
    if restarted * 100 > loaded * (100 - SMALLER_BY_PERCENT_MIN) {
        return Err(format!("{restarted} bytes after a restart against {loaded} after the load"));
    }
    Ok(())
}

#[test]
fn a_tree_decoded_from_a_snapshot_is_smaller_than_the_one_built_by_creates() {
    let Some((loaded, tree)) = resident(bench_tree) else {
        println!("no /proc/self/status here: not measured");
        return;
    };
    let bytes = encode(&tree, &[]);
    let (restarted, decoded) = resident(|| decode_deferring_checks(&bytes).unwrap()).unwrap();
    println!(
        "{ZNODES} znodes: {} B/znode built by creates, {} B/znode decoded from a snapshot",
        loaded / ZNODES,
        restarted / ZNODES
    );
    assert_eq!(decoded.tree, tree, "the same tree");
    check(loaded, restarted).unwrap();
    // The check catches a restart no smaller than the load: the tree built by creates again
    // (while the others stay alive, so the memory is fresh, not reused).
    let (again, rebuilt) = resident(bench_tree).unwrap();
    println!("built by creates again: {} B/znode", again / ZNODES);
    assert!(check(loaded, again).is_err(), "a tree built as the first passes ({again} B)");
    assert_eq!(rebuilt.digest(), tree.digest(), "equal trees");
}
