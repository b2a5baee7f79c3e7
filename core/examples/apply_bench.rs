//! The tree's apply alone, for instruction counts (issue 11's eighth pass, docs/TIER1-SPEED.md):
//! `valgrind --tool=callgrind target/release/examples/apply_bench [create|set|delete]` applies
//! 20,001 creates (`/bench` and 20,000 children with 100 bytes each), then 200,000 setData
//! txns (`set`) or 20,000 deletes (`delete`), and prints the node count and the digest, which
//! must be the same on the builds compared.
use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    let mut tree = DataTree::new();
    let mut z = 0i64;
    let mut apply = |tree: &mut DataTree, txn: Txn| {
        z += 1;
        let header = TxnHeader { session_id: SessionId(7), cxid: 0, zxid: Zxid(z), time_ms: z };
        tree.apply(&LoggedTxn { header, txn });
    };
    let create = |path: String| Txn::Create {
        path,
        data: Some(vec![b'x'; 100]),
        acl: Acl::open_unsafe(),
        kind: CreateKind::Persistent,
        parent_cversion: -1,
    };
    apply(&mut tree, create("/bench".into()));
    let n = 20_000;
    for i in 0..n {
        apply(&mut tree, create(format!("/bench/n-{i:010}")));
    }
    if what == "set" {
        for r in 0..10 {
            for i in 0..n {
                let data = Some(vec![b'a' + r as u8; 100]);
                apply(
                    &mut tree,
                    Txn::SetData { path: format!("/bench/n-{i:010}"), data, version: r + 1 },
                );
            }
        }
    }
    if what == "delete" {
        for i in 0..n {
            apply(&mut tree, Txn::Delete { path: format!("/bench/n-{i:010}") });
        }
    }
    println!("{} {}", tree.node_count(), tree.digest());
}
