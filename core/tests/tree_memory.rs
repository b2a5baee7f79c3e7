//! Bytes per znode (issue 16): builds a tree of 100,000 sequential znodes of 100 bytes under one
//! parent (the shape of the million-znode benchmark), prints the resident memory it added per
//! znode, and fails above a bound about 1.5x what the tree took when this test was written
//! (385 B: 100 bytes of data, a 19-byte path, the node, its `Arc`s, its share of the B-tree
//! and the allocator's overhead), so that a regression to twice the size is caught. It checks
//! itself: a tree held twice, the memory of a 2x regression, must break the bound.
//!
//! Resident memory (VmRSS of this process, Linux only) rather than a counting allocator: the
//! workspace forbids `unsafe`, and RSS is what an operator sees. This file holds one test, so
//! the test harness runs nothing beside it in this process.

use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};

const ZNODES: usize = 100_000;
/// The most resident bytes one znode may add.
const BYTES_PER_ZNODE_MAX: usize = 575;

/// VmRSS in bytes, or None where /proc is not available.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn apply(tree: &mut DataTree, txn: Txn) {
    let zxid = Zxid(tree.last_processed_zxid().0 + 1);
    let header = TxnHeader { session_id: SessionId(7), cxid: 0, zxid, time_ms: zxid.0 };
    tree.apply(&LoggedTxn { header, txn });
}

/// The benchmark's tree: `/bench`, then `/bench/n-0000000000`… with 100 bytes each.
fn bench_tree(znodes: usize) -> DataTree {
    let mut tree = DataTree::new();
    let create = |path: String| Txn::Create {
        path,
        data: Some(vec![b'x'; 100]),
        acl: Acl::open_unsafe(),
        kind: CreateKind::Persistent,
        parent_cversion: -1,
    };
    apply(&mut tree, create("/bench".into()));
    for i in 0..znodes {
        apply(&mut tree, create(format!("/bench/n-{i:010}")));
    }
    assert_eq!(tree.node_count(), znodes + 5, "the system nodes, /bench and the znodes");
    tree
}

/// Resident bytes per znode that `build` adds (what it returns is kept until measured).
fn bytes_per_znode<T>(build: impl FnOnce() -> T) -> Option<(usize, T)> {
    let before = rss_bytes()?;
    let built = build();
    let after = rss_bytes()?;
    Some((after.saturating_sub(before) / ZNODES, built))
}

fn check(bytes_per_znode: usize) -> Result<(), String> {
    if bytes_per_znode > BYTES_PER_ZNODE_MAX {
        return Err(format!("{bytes_per_znode} B/znode is over {BYTES_PER_ZNODE_MAX}"));
    }
    Ok(())
}

#[test]
fn a_znode_of_100_bytes_takes_less_than_the_bound() {
    let Some((per_znode, tree)) = bytes_per_znode(|| bench_tree(ZNODES)) else {
        println!("no /proc/self/status here: bytes per znode not measured");
        return;
    };
    println!("tree of {ZNODES} znodes of 100 bytes: {per_znode} bytes per znode (RSS)");
    check(per_znode).unwrap();
    // The check catches a 2x regression: the same tree held twice, built while the first one
    // stays alive (so the memory is fresh, not reused).
    let (doubled, trees) = bytes_per_znode(|| (bench_tree(ZNODES), bench_tree(ZNODES))).unwrap();
    println!("the same tree held twice: {doubled} bytes per znode");
    assert!(check(doubled).is_err(), "a tree twice the size ({doubled} B/znode) passes");
    assert_eq!(trees.0.digest(), tree.digest(), "equal trees");
}
