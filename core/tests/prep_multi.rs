//! Multi (reference §9) and pipelining: requests prepared before earlier txns are applied see
//! those txns' effects through the outstanding change records.

use zkr_core::Config;
use zkr_core::prep::{PrepState, Requester};
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::error::ZkError;
use zkr_core::tree::{ApplyOutcome, DataTree};
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid, perms};

const S1: SessionId = SessionId(0x100);

struct Leader {
    tree: DataTree,
    prep: PrepState,
    cfg: Config,
    zxid: i64,
    ids: Vec<Id>,
}

impl Leader {
    fn new() -> Leader {
        Leader {
            tree: DataTree::new(),
            prep: PrepState::new(),
            cfg: Config::default(),
            zxid: 0,
            ids: vec![Id::new("ip", "127.0.0.1")],
        }
    }

    fn prepare(&mut self, req: &Request) -> LoggedTxn {
        self.zxid += 1;
        let who = Requester { session: S1, session_valid: true, ids: &self.ids };
        let zxid = Zxid(self.zxid);
        let txn = self.prep.prepare(&self.tree, &self.cfg, &who, req, zxid, 7);
        LoggedTxn { header: TxnHeader { session_id: S1, cxid: 0, zxid, time_ms: 7 }, txn }
    }

    fn apply(&mut self, t: &LoggedTxn) -> ApplyOutcome {
        let out = self.tree.apply(t).outcome;
        self.prep.applied(t.header.zxid);
        self.tree.invariants();
        out
    }

    /// What `req` would decide now, on a copy (nothing changes here).
    fn clone_prepare(&self, req: &Request) -> Txn {
        let who = Requester { session: S1, session_valid: true, ids: &self.ids };
        let mut prep = self.prep.clone();
        prep.prepare(&self.tree, &self.cfg, &who, req, Zxid(self.zxid + 1), 7)
    }

    fn run(&mut self, req: &Request) -> (Txn, ApplyOutcome) {
        let t = self.prepare(req);
        let out = self.apply(&t);
        (t.txn, out)
    }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

fn set_data(path: &str, version: i32) -> Request {
    Request::SetData { path: path.into(), data: Some(b"x".to_vec()), version }
}

fn err(e: ZkError) -> Txn {
    Txn::Error { err: e }
}

#[test]
fn failed_multi_result_shape() {
    let mut l = Leader::new();
    l.run(&create("/a", 0));
    let multi = Request::Multi(vec![
        create("/b", 0),
        set_data("/b", 0),
        Request::Delete { path: "/a".into(), version: 3 },
        create("/c", 0),
        Request::Check { path: "/a".into(), version: 0 },
    ]);
    let (txn, out) = l.run(&multi);
    let expected = vec![
        err(ZkError::Ok),
        err(ZkError::Ok),
        err(ZkError::BadVersion),
        err(ZkError::RuntimeInconsistency),
        err(ZkError::RuntimeInconsistency),
    ];
    assert_eq!(txn, Txn::Multi(expected));
    let ApplyOutcome::Multi(outs) = out else { panic!("{out:?}") };
    assert_eq!(outs.len(), 5);
    assert!(l.tree.get("/b").is_none(), "a failed multi changes nothing");
    assert!(l.prep.is_empty(), "a failed multi leaves no record behind");
}

#[test]
fn multi_ops_see_earlier_ops() {
    let mut l = Leader::new();
    let multi = Request::Multi(vec![
        create("/a", 0),
        set_data("/a", 0),
        set_data("/a", 1),
        create("/a/b", 2),
        Request::Check { path: "/a".into(), version: 2 },
        Request::Delete { path: "/a/b0000000000".into(), version: 0 },
    ]);
    let (txn, out) = l.run(&multi);
    let Txn::Multi(subs) = txn else { panic!("{txn:?}") };
    assert!(matches!(&subs[2], Txn::SetData { version: 2, .. }), "{subs:?}");
    assert!(matches!(&subs[3], Txn::Create { path, .. } if path == "/a/b0000000000"));
    assert_eq!(subs[4], Txn::Check { path: "/a".into(), version: 3 });
    let ApplyOutcome::Multi(outs) = out else { panic!("{out:?}") };
    assert!(outs.iter().all(|o| !matches!(o, ApplyOutcome::Failed(_))), "{outs:?}");
    let a = l.tree.stat("/a").unwrap();
    assert_eq!((a.version, a.cversion, a.num_children, a.mzxid), (2, 2, 0, 1));
}

#[test]
fn failed_multi_does_not_use_up_sequence_numbers() {
    let mut l = Leader::new();
    l.run(&create("/s", 0));
    let failing = Request::Multi(vec![create("/s/n", 2), create("/s/n", 2), create("/s", 0)]);
    let (txn, _) = l.run(&failing);
    let expected = Txn::Multi(vec![err(ZkError::Ok), err(ZkError::Ok), err(ZkError::NodeExists)]);
    assert_eq!(txn, expected);
    let (txn, _) = l.run(&create("/s/n", 2));
    assert!(matches!(txn, Txn::Create { ref path, .. } if path == "/s/n0000000000"), "{txn:?}");
}

#[test]
fn empty_multi() {
    let mut l = Leader::new();
    let (txn, out) = l.run(&Request::Multi(vec![]));
    assert_eq!(txn, Txn::Multi(vec![]));
    assert_eq!(out, ApplyOutcome::Multi(vec![]));
}

#[test]
fn multi_create_kind_comes_from_the_flags() {
    let mut l = Leader::new();
    let (txn, _) = l.run(&Request::Multi(vec![create("/c", 4), create("/e", 1)]));
    let Txn::Multi(subs) = txn else { panic!() };
    use zkr_core::txn::CreateKind;
    assert!(matches!(subs[0], Txn::Create { kind: CreateKind::Container, .. }), "{subs:?}");
    assert!(matches!(subs[1], Txn::Create { kind: CreateKind::Ephemeral, .. }), "{subs:?}");
    assert_eq!(l.tree.ephemerals(S1), vec!["/e"]);
}

#[test]
fn pipelined_creates_see_each_other() {
    let mut l = Leader::new();
    let t1 = l.prepare(&create("/a", 0));
    let t2 = l.prepare(&create("/a/b", 0));
    let t3 = l.prepare(&create("/x", 0));
    let t4 = l.prepare(&create("/x", 0));
    assert!(matches!(t2.txn, Txn::Create { parent_cversion: 1, .. }), "{:?}", t2.txn);
    assert_eq!(t4.txn, err(ZkError::NodeExists));
    for t in [&t1, &t2, &t3, &t4] {
        l.apply(t);
    }
    assert!(l.prep.is_empty());
    assert_eq!(l.tree.children("/a").unwrap(), vec!["b"]);
    assert_eq!(l.tree.last_processed_zxid(), Zxid(4));
}

#[test]
fn pipelined_delete_and_versions() {
    let mut l = Leader::new();
    l.run(&create("/a", 0));
    let t1 = l.prepare(&set_data("/a", 0));
    let t2 = l.prepare(&set_data("/a", 0));
    let t3 = l.prepare(&set_data("/a", 1));
    let t4 = l.prepare(&Request::Delete { path: "/a".into(), version: 2 });
    let t5 = l.prepare(&set_data("/a", -1));
    let t6 = l.prepare(&create("/a", 1));
    assert!(matches!(t1.txn, Txn::SetData { version: 1, .. }));
    assert_eq!(t2.txn, err(ZkError::BadVersion));
    assert!(matches!(t3.txn, Txn::SetData { version: 2, .. }));
    assert_eq!(t4.txn, Txn::Delete { path: "/a".into() });
    assert_eq!(t5.txn, err(ZkError::NoNode));
    assert!(matches!(t6.txn, Txn::Create { parent_cversion: 2, .. }), "{:?}", t6.txn);
    // The session's ephemerals as the leader sees them right now: the pending /a.
    l.zxid += 1;
    let close = l.prep.prepare_close_session(&l.tree, &l.cfg, S1, Zxid(l.zxid));
    assert_eq!(close, Txn::CloseSession { paths_to_delete: vec!["/a".into()] });
    // Partially applied: records up to t3 are dropped, later ones stay.
    for t in [&t1, &t2, &t3] {
        l.apply(t);
    }
    assert!(!l.prep.is_empty());
    for t in [&t4, &t5, &t6] {
        l.apply(t);
    }
    let header = TxnHeader { session_id: S1, cxid: 0, zxid: Zxid(l.zxid), time_ms: 9 };
    l.apply(&LoggedTxn { header, txn: close });
    assert!(l.tree.get("/a").is_none());
    assert!(l.prep.is_empty());
}

#[test]
fn pipelined_set_acl_is_seen_by_later_requests() {
    let mut l = Leader::new();
    l.run(&create("/a", 0));
    let read_only = vec![Acl { perms: perms::READ, id: Id::new("world", "anyone") }];
    let t1 = l.prepare(&Request::SetAcl { path: "/a".into(), acl: read_only, version: -1 });
    let t2 = l.prepare(&set_data("/a", -1));
    assert!(matches!(t1.txn, Txn::SetAcl { version: 1, .. }));
    assert_eq!(t2.txn, err(ZkError::NoAuth));
}

#[test]
fn clear_forgets_outstanding_changes() {
    let mut l = Leader::new();
    let _ = l.prepare(&create("/a", 0));
    assert!(!l.prep.is_empty());
    l.prep.clear();
    assert!(l.prep.is_empty());
    let t = l.prepare(&set_data("/a", -1));
    assert_eq!(t.txn, err(ZkError::NoNode));
}

/// A create whose ACL is `auth`: it expands to every id of the connection.
fn create_with_auth_acl(path: &str) -> Request {
    Request::Create {
        op: OpCode::Create,
        path: path.into(),
        data: None,
        acl: vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }],
        flags: 0,
        ttl: -1,
    }
}

/// ZOOKEEPER-2101 / -3496: a txn larger than 2 × jute.maxbuffer (what ZooKeeper's recovery
/// reads back) is refused with MARSHALLINGERROR before it is logged, single op or multi, and
/// leaves no change record behind: the same paths can be created afterwards.
#[test]
fn a_txn_over_twice_the_max_frame_is_refused_and_leaves_no_record() {
    let mut l = Leader::new();
    l.cfg.max_frame_bytes = 1000;
    l.ids = (0..20).map(|i| Id::new("digest", &format!("user{i:02}:{}", "h".repeat(28)))).collect();
    let one = create_with_auth_acl("/a");
    let decided = l.clone_prepare(&one);
    assert!(matches!(decided, Txn::Create { .. }), "{decided:?}");
    let one_len = zkr_core::proto::txn::encoded_txn_len(&decided);
    assert!(one_len > 1000 && one_len < 2000, "one create is under the limit: {one_len}");
    let multi = Request::Multi(vec![create_with_auth_acl("/a"), create_with_auth_acl("/b")]);
    let (txn, out) = l.run(&multi);
    assert_eq!(txn, Txn::Error { err: ZkError::MarshallingError });
    assert!(matches!(out, ApplyOutcome::Failed(_)), "{out:?}");
    assert!(l.prep.is_empty(), "the refused multi left change records");
    let (txn, _) = l.run(&one);
    assert!(matches!(txn, Txn::Create { .. }), "{txn:?}");
    assert!(l.tree.get("/a").is_some());
    assert!(l.tree.get("/b").is_none());
    l.ids.extend(l.ids.clone().into_iter().map(|id| Id::new("digest", &format!("x{}", id.id))));
    let (txn, _) = l.run(&create_with_auth_acl("/c"));
    assert_eq!(txn, Txn::Error { err: ZkError::MarshallingError }, "40 ids: one create is over");
    assert!(l.tree.get("/c").is_none());
}

/// A TTL mode on a create that is not a createTTL cannot be decoded in ZooKeeper (3.9's
/// `CreateOptions` refuses a TTL mode without a TTL; 3.8 fails a cast): the whole multi is
/// MARSHALLINGERROR, as for invalid flags (tests/tests/differential_gen.rs, seeds 4, 22, 37,
/// 40: a BADARGUMENTS result here, MARSHALLINGERROR from ZooKeeper).
#[test]
fn a_ttl_mode_on_a_plain_create_op_is_a_malformed_multi() {
    for op in [OpCode::Create, OpCode::Create2, OpCode::CreateContainer] {
        for flags in [5, 6] {
            let mut l = Leader::new();
            let bad = Request::Create {
                op,
                path: "/t".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            };
            let (txn, _) = l.run(&Request::Multi(vec![create("/a", 0), bad]));
            assert_eq!(txn, err(ZkError::MarshallingError), "{op:?} flags {flags}");
            assert!(l.tree.get("/a").is_none(), "nothing of the multi is applied");
        }
    }
    // The same flags on a createTTL with a TTL are a TTL node.
    let mut l = Leader::new();
    l.cfg.extended_types_enabled = true;
    let ttl = Request::Create {
        op: OpCode::CreateTtl,
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 5,
        ttl: 1000,
    };
    let (txn, _) = l.run(&Request::Multi(vec![ttl]));
    assert!(matches!(&txn, Txn::Multi(subs) if matches!(subs[0], Txn::Create { .. })), "{txn:?}");
}

/// Inside a multi ZooKeeper 3.9 serves a create as `Op.create` rebuilds it: a createContainer
/// with plain flags is still a container, a create with container flags a createContainer
/// (answered with a Stat), a createTTL with plain flags a plain create
/// (tests/tests/differential_gen.rs, seeds 4, 293, 314, 339: zkr answered by the header's
/// opcode and made a plain node of a createContainer).
#[test]
fn multi_create_kind_and_answer_follow_op_create() {
    use zkr_core::prep::multi_create_opcode;
    use zkr_core::txn::CreateKind;
    assert_eq!(multi_create_opcode(OpCode::Create, 4), Some(OpCode::CreateContainer));
    assert_eq!(multi_create_opcode(OpCode::CreateContainer, 0), Some(OpCode::CreateContainer));
    assert_eq!(multi_create_opcode(OpCode::CreateContainer, 1), Some(OpCode::CreateContainer));
    assert_eq!(multi_create_opcode(OpCode::CreateTtl, 0), Some(OpCode::Create));
    assert_eq!(multi_create_opcode(OpCode::Create2, 2), Some(OpCode::Create2));
    assert_eq!(multi_create_opcode(OpCode::Create, 7), None);
    let mut l = Leader::new();
    let container = |flags| Request::Create {
        op: OpCode::CreateContainer,
        path: "/c".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    };
    let (txn, _) = l.run(&Request::Multi(vec![container(1)]));
    let Txn::Multi(subs) = txn else { panic!("{txn:?}") };
    assert!(matches!(subs[0], Txn::Create { kind: CreateKind::Container, .. }), "{subs:?}");
    assert!(l.tree.ephemerals(S1).is_empty(), "a container, not an ephemeral");
}
