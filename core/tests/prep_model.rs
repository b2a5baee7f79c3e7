//! PrepState + DataTree against a plain sequential model: random create/delete/setData/multi
//! over a small path alphabet, prepared in pipelined batches, must give the same successes and
//! errors as the model and leave the same nodes, data, versions and child versions.

use std::collections::BTreeMap;

use proptest::prelude::*;
use zkr_core::Config;
use zkr_core::prep::{PrepState, Requester};
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::error::ZkError;
use zkr_core::tree::DataTree;
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid};

#[derive(Clone, Debug, PartialEq)]
struct MNode {
    data: Option<Vec<u8>>,
    version: i32,
    ephemeral: bool,
    creates: i32,
}

/// The model: user nodes only (the system nodes are left out and never touched).
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    root_creates: i32,
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => unreachable!(),
    }
}

impl Model {
    fn has_children(&self, p: &str) -> bool {
        let prefix = format!("{p}/");
        self.nodes.keys().any(|k| k.starts_with(&prefix))
    }

    fn step(&mut self, req: &Request) -> Result<(), ZkError> {
        match req {
            Request::Create { path, data, flags, .. } => {
                let par = parent(path);
                let seq = flags & 2 != 0;
                let (creates, eph_parent) = if par == "/" {
                    (self.root_creates, false)
                } else {
                    let n = self.nodes.get(par).ok_or(ZkError::NoNode)?;
                    (n.creates, n.ephemeral)
                };
                let full = if seq { format!("{path}{creates:010}") } else { path.clone() };
                if self.nodes.contains_key(&full) {
                    return Err(ZkError::NodeExists);
                }
                if eph_parent {
                    return Err(ZkError::NoChildrenForEphemerals);
                }
                match self.nodes.get_mut(par) {
                    Some(n) => n.creates += 1,
                    None => self.root_creates += 1,
                }
                let node =
                    MNode { data: data.clone(), version: 0, ephemeral: flags & 1 != 0, creates: 0 };
                self.nodes.insert(full, node);
                Ok(())
            }
            Request::Delete { path, version } => {
                let n = self.nodes.get(path).ok_or(ZkError::NoNode)?;
                if *version != -1 && *version != n.version {
                    return Err(ZkError::BadVersion);
                }
                if self.has_children(path) {
                    return Err(ZkError::NotEmpty);
                }
                self.nodes.remove(path);
                Ok(())
            }
            Request::SetData { path, data, version } => {
                let n = self.nodes.get_mut(path).ok_or(ZkError::NoNode)?;
                if *version != -1 && *version != n.version {
                    return Err(ZkError::BadVersion);
                }
                n.version += 1;
                n.data = data.clone();
                Ok(())
            }
            Request::Multi(ops) => {
                let mut scratch = self.clone();
                for op in ops {
                    scratch.step(op)?;
                }
                *self = scratch;
                Ok(())
            }
            _ => unreachable!(),
        }
    }
}

fn path_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b")], 1..4)
        .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn op_strategy() -> impl Strategy<Value = Request> {
    let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3));
    let version = prop_oneof![Just(-1), 0..3];
    prop_oneof![
        (path_strategy(), data.clone(), 0..4i32).prop_map(|(path, data, flags)| {
            Request::Create {
                op: OpCode::Create,
                path,
                data,
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            }
        }),
        (path_strategy(), version.clone())
            .prop_map(|(path, version)| Request::Delete { path, version }),
        (path_strategy(), data, version).prop_map(|(path, data, version)| Request::SetData {
            path,
            data,
            version
        }),
    ]
}

fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        4 => op_strategy(),
        1 => proptest::collection::vec(op_strategy(), 0..4).prop_map(Request::Multi),
    ]
}

/// Requests prepared back to back before any of them is applied.
fn batch_strategy() -> impl Strategy<Value = Vec<Request>> {
    proptest::collection::vec(request_strategy(), 1..5)
}

fn expect_success(txn: &Txn) -> Result<(), ZkError> {
    match txn {
        Txn::Error { err } => Err(*err),
        Txn::Multi(subs) => {
            match subs.iter().find(|t| !matches!(t, Txn::Error { err: ZkError::Ok })) {
                Some(Txn::Error { err }) => Err(*err),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn compare(tree: &DataTree, model: &Model) {
    tree.invariants();
    let system = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
    let user: Vec<&str> = tree.nodes().map(|(p, _)| p).filter(|p| !system.contains(p)).collect();
    let expected: Vec<&str> = model.nodes.keys().map(String::as_str).collect();
    assert_eq!(user, expected);
    for (p, m) in &model.nodes {
        let node = tree.get(p).unwrap();
        assert_eq!(node.data.as_deref(), m.data.as_deref(), "{p}");
        assert_eq!(node.stat.version, m.version, "{p}");
        assert_eq!(node.stat.cversion, m.creates, "{p}");
        assert_eq!(node.kind().owner_session().is_some(), m.ephemeral, "{p}");
    }
    assert_eq!(tree.get("/").unwrap().stat.cversion, model.root_creates);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn prep_and_tree_match_the_model(
        batches in proptest::collection::vec(batch_strategy(), 1..12)
    ) {
        let mut tree = DataTree::new();
        let mut prep = PrepState::new();
        let mut model = Model::default();
        let cfg = Config::default();
        let ids = [Id::new("ip", "127.0.0.1")];
        let who = Requester { session: SessionId(0x42), session_valid: true, ids: &ids };
        let mut zxid = 0;
        for batch in batches {
            let mut pending = Vec::new();
            for req in &batch {
                zxid += 1;
                let txn = prep.prepare(&tree, &cfg, &who, req, Zxid(zxid), zxid * 10);
                prop_assert_eq!(expect_success(&txn), model.step(req), "{:?} -> {:?}", req, txn);
                let (session_id, time_ms) = (who.session, zxid * 10);
                let header = TxnHeader { session_id, cxid: 0, zxid: Zxid(zxid), time_ms };
                pending.push(LoggedTxn { header, txn });
            }
            for t in &pending {
                let applied = tree.apply(t);
                let ok = expect_success(&t.txn).is_ok();
                let failed = match &applied.outcome {
                    zkr_core::tree::ApplyOutcome::Failed(_) => true,
                    zkr_core::tree::ApplyOutcome::Multi(v) => {
                        v.iter().any(|o| matches!(o, zkr_core::tree::ApplyOutcome::Failed(_)))
                    }
                    _ => false,
                };
                prop_assert_eq!(failed, !ok, "{:?}", applied);
                prep.applied(t.header.zxid);
            }
            prop_assert!(prep.is_empty());
            compare(&tree, &model);
        }
    }
}
