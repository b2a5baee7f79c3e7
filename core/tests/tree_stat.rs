//! DataTree + PrepState: Stat exactness (reference §10.2), sequential names, watch triggers,
//! ephemerals and closeSession (§10.6), containers/TTL (§10.8), quotas (§10.9).

use zkr_core::prep::{PrepState, Requester};
use zkr_core::proto::client::{EventType, OpCode, Request};
use zkr_core::proto::error::ZkError;
use zkr_core::tree::{ApplyOutcome, DataTree, NodeKind, WatchTrigger};
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, ServerId, SessionId, Zxid};
use zkr_core::{Config, Node, NodeInit};

const S1: SessionId = SessionId(0x100);

struct World {
    tree: DataTree,
    prep: PrepState,
    cfg: Config,
    zxid: i64,
    time: i64,
}

impl World {
    fn new() -> World {
        let cfg = Config { extended_types_enabled: true, ..Config::default() };
        World { tree: DataTree::new(), prep: PrepState::new(), cfg, zxid: 0, time: 1000 }
    }

    fn prepare_as(&mut self, session: SessionId, req: &Request) -> LoggedTxn {
        self.zxid += 1;
        self.time += 10;
        let ids = [Id::new("ip", "127.0.0.1")];
        let who = Requester { session, session_valid: true, ids: &ids };
        let zxid = Zxid(self.zxid);
        let txn = self.prep.prepare(&self.tree, &self.cfg, &who, req, zxid, self.time);
        LoggedTxn { header: header(session, zxid, self.time), txn }
    }

    fn apply(&mut self, t: &LoggedTxn) -> zkr_core::tree::Applied {
        let applied = self.tree.apply(t);
        self.prep.applied(t.header.zxid);
        self.tree.invariants();
        applied
    }

    fn run_as(&mut self, session: SessionId, req: &Request) -> (Txn, ApplyOutcome) {
        let t = self.prepare_as(session, req);
        let applied = self.apply(&t);
        (t.txn, applied.outcome)
    }

    fn run(&mut self, req: &Request) -> (Txn, ApplyOutcome) {
        self.run_as(S1, req)
    }
}

fn header(session: SessionId, zxid: Zxid, time_ms: i64) -> TxnHeader {
    TxnHeader { session_id: session, cxid: 1, zxid, time_ms }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        path: path.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

fn delete(path: &str) -> Request {
    Request::Delete { path: path.into(), version: -1 }
}

#[test]
fn fresh_tree_stats() {
    let tree = DataTree::new();
    assert_eq!(tree.stat("/").unwrap().cversion, -1);
    assert_eq!(tree.stat("/zookeeper").unwrap().cversion, -2);
    assert_eq!(tree.stat("/zookeeper/quota").unwrap().cversion, 0);
    let config = tree.stat("/zookeeper/config").unwrap();
    assert_eq!((config.czxid, config.mzxid, config.pzxid, config.version), (0, 0, 0, 0));
    assert_eq!(tree.acl("/zookeeper/config").unwrap(), Acl::read_unsafe().as_slice());
    assert_eq!(tree.acl("/zookeeper").unwrap(), Acl::open_unsafe().as_slice());
    assert_eq!(tree.children("/").unwrap(), vec!["zookeeper".to_string()]);
    assert_eq!(tree.children("/zookeeper").unwrap(), vec!["config", "quota"]);
    assert_eq!(tree.node_count(), 4);
    assert_eq!(tree.approximate_data_size(), 1 + 10 + 16 + 17);
    assert_eq!(tree.all_children_number("/"), Some(3));
    assert_eq!(tree.all_children_number("/zookeeper"), Some(2));
    assert_eq!(tree.all_children_number("/nope"), None);
    assert_eq!(tree.last_processed_zxid(), Zxid(0));
}

#[test]
fn the_config_node_holds_the_membership_with_zookeepers_stat() {
    let text = "server.1=127.0.0.1:2888:3888:participant\nversion=0";
    let mut a = DataTree::new();
    let fresh_digest = a.digest();
    a.set_config_data(text.as_bytes());
    let stat = a.stat("/zookeeper/config").unwrap();
    assert_eq!((stat.version, stat.mzxid, stat.mtime, stat.data_length), (-1, 0, 0, 50));
    assert_eq!(a.get("/zookeeper/config").unwrap().data.as_deref(), Some(text.as_bytes()));
    assert_ne!(a.digest(), fresh_digest, "the digest follows the data");
    assert_eq!(a.approximate_data_size(), 1 + 10 + 16 + 17 + 50);
    let mut b = DataTree::new();
    b.set_config_data(text.as_bytes());
    b.set_config_data(text.as_bytes());
    assert_eq!(
        a.digest(),
        b.digest(),
        "members with one configuration agree; setting is idempotent"
    );
    assert_eq!(a.last_processed_zxid(), Zxid(0), "not a txn");
}

#[test]
fn an_ensemble_member_serves_its_membership_and_a_standalone_server_does_not() {
    let text = "server.1=a:2888:3888:participant\nserver.2=b:2888:3888:participant\nversion=0";
    let members = (1..=2).map(|i| zkr_core::config::Member { id: ServerId(i), observer: false });
    let config = Config {
        members: members.collect(),
        ensemble_config_text: Some(text.into()),
        ..Config::default()
    };
    let node = Node::new(config, NodeInit::default()).unwrap();
    let data = node.tree().get("/zookeeper/config").unwrap().data.clone();
    assert_eq!(data.as_deref(), Some(text.as_bytes()));
    let standalone = Node::new(Config::default(), NodeInit::default()).unwrap();
    let data = standalone.tree().get("/zookeeper/config").unwrap().data.clone();
    assert_eq!(data.as_deref(), Some(&b""[..]), "as on a standalone ZooKeeper");
}

#[test]
fn create_and_delete_stats() {
    let mut w = World::new();
    w.run(&create("/a", 0));
    let a = w.tree.stat("/a").unwrap();
    assert_eq!((a.czxid, a.mzxid, a.pzxid), (1, 1, 1));
    assert_eq!((a.ctime, a.mtime), (1010, 1010));
    assert_eq!((a.version, a.cversion, a.aversion, a.data_length), (0, 0, 0, 1));
    w.run(&create("/a/b", 0));
    let a = w.tree.stat("/a").unwrap();
    assert_eq!((a.cversion, a.num_children, a.pzxid, a.mzxid), (1, 1, 2, 1));
    w.run(&delete("/a/b"));
    let a = w.tree.stat("/a").unwrap();
    assert_eq!((a.cversion, a.num_children, a.pzxid), (2, 0, 3));
    assert_eq!(w.tree.get("/a").unwrap().stat.cversion, 1, "stored cversion counts creates");
    let (_, out) = w.run(&Request::SetData { path: "/a".into(), data: None, version: 0 });
    let ApplyOutcome::DataSet { stat } = out else { panic!("{out:?}") };
    assert_eq!((stat.version, stat.mzxid, stat.czxid, stat.data_length), (1, 4, 1, 0));
    assert_eq!(w.tree.last_processed_zxid(), Zxid(4));
}

#[test]
fn null_and_empty_data_stay_distinct() {
    let mut w = World::new();
    let mk = |p: &str, data: Option<Vec<u8>>| Request::Create {
        op: OpCode::Create2,
        path: p.into(),
        data,
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    };
    w.run(&mk("/null", None));
    w.run(&mk("/empty", Some(vec![])));
    assert_eq!(w.tree.stat("/null").unwrap().data_length, 0);
    assert_eq!(w.tree.stat("/empty").unwrap().data_length, 0);
    assert_eq!(w.tree.get("/null").unwrap().data, None);
    assert_eq!(w.tree.get("/empty").unwrap().data.as_deref(), Some(&[][..]));
    assert_ne!(w.tree.digest(), {
        let mut w2 = World::new();
        w2.run(&mk("/null", Some(vec![])));
        w2.run(&mk("/empty", Some(vec![])));
        w2.tree.digest()
    });
}

#[test]
fn sequential_names_come_from_stored_cversion() {
    let mut w = World::new();
    w.run(&create("/a", 0));
    let (t, _) = w.run(&create("/a/s-", 2));
    assert!(
        matches!(t, Txn::Create { ref path, parent_cversion: 1, .. } if path == "/a/s-0000000000")
    );
    w.run(&delete("/a/s-0000000000"));
    let (t, _) = w.run(&create("/a/", 2));
    assert!(matches!(t, Txn::Create { ref path, .. } if path == "/a/0000000001"), "{t:?}");
    // Error txns do not use up a sequence number.
    let bad = Request::Create {
        op: OpCode::Create,
        path: "/a/s-".into(),
        data: None,
        acl: vec![],
        flags: 2,
        ttl: -1,
    };
    let (t, _) = w.run(&bad);
    assert_eq!(t, Txn::Error { err: ZkError::InvalidAcl });
    let (t, _) = w.run(&create("/a/s-", 2));
    assert!(matches!(t, Txn::Create { ref path, .. } if path == "/a/s-0000000002"), "{t:?}");
}

#[test]
fn sequential_suffix_wraps_like_a_java_int() {
    let mut w = World::new();
    w.run(&create("/p", 0));
    // Force the stored cversion to i32::MAX with a decided txn.
    w.zxid += 1;
    let forced = Txn::Create {
        path: "/p/x".into(),
        data: None,
        acl: Acl::open_unsafe(),
        kind: CreateKind::Persistent,
        parent_cversion: i32::MAX,
    };
    w.apply(&LoggedTxn { header: header(S1, Zxid(w.zxid), 5), txn: forced });
    assert_eq!(w.tree.get("/p").unwrap().stat.cversion, i32::MAX);
    let first = w.prepare_as(S1, &create("/p/s", 2));
    let second = w.prepare_as(S1, &create("/p/s", 2));
    let name = |t: &LoggedTxn| match &t.txn {
        Txn::Create { path, parent_cversion, .. } => (path.clone(), *parent_cversion),
        other => panic!("{other:?}"),
    };
    assert_eq!(name(&first), ("/p/s2147483647".to_string(), i32::MIN));
    assert_eq!(name(&second), ("/p/s-2147483648".to_string(), i32::MIN + 1));
    w.apply(&first);
    w.apply(&second);
    // DataTree.createNode only raises the cversion when the new one is greater, so after the
    // wrap the stored cversion (and pzxid) stay where they were: ZooKeeper's behaviour.
    assert_eq!(w.tree.get("/p").unwrap().stat.cversion, i32::MAX);
    assert_eq!(w.tree.stat("/p").unwrap().pzxid, 2);
    assert_eq!(w.tree.children("/p").unwrap().len(), 3);
}

#[test]
fn triggers_in_zookeeper_order() {
    let mut w = World::new();
    let t = w.prepare_as(S1, &create("/a", 0));
    let applied = w.apply(&t);
    // Each trigger carries the ACL that decides delivery (CVE-2024-23944): the node's own, the
    // parent's for NodeChildrenChanged, as it was at the change.
    let trig =
        |p: &str, e, acl: Vec<Acl>| WatchTrigger { path: p.into(), event: e, acl: acl.into() };
    let (open, read) = (Acl::open_unsafe(), Acl::read_unsafe());
    let expected = vec![
        trig("/a", EventType::NodeCreated, open.clone()),
        trig("/", EventType::NodeChildrenChanged, open.clone()),
    ];
    assert_eq!(applied.triggers, expected);
    let t = w.prepare_as(S1, &Request::SetData { path: "/a".into(), data: None, version: -1 });
    assert_eq!(w.apply(&t).triggers, vec![trig("/a", EventType::NodeDataChanged, open.clone())]);
    let acl = Request::SetAcl { path: "/a".into(), acl: read.clone(), version: -1 };
    let t = w.prepare_as(S1, &acl);
    let applied = w.apply(&t);
    assert!(applied.triggers.is_empty());
    assert!(matches!(applied.outcome, ApplyOutcome::AclSet { stat } if stat.aversion == 1));
    // A deleted node's trigger keeps the ACL it had: nothing is left to look it up in.
    let t = w.prepare_as(S1, &delete("/a"));
    let expected = vec![
        trig("/a", EventType::NodeDeleted, read),
        trig("/", EventType::NodeChildrenChanged, open),
    ];
    assert_eq!(w.apply(&t).triggers, expected);
}

#[test]
fn ephemerals_and_close_session() {
    let mut w = World::new();
    let s2 = SessionId(0x200);
    w.run(&create("/p", 0));
    w.run(&create("/p/e1", 1));
    w.run_as(s2, &create("/p/e2", 1));
    assert_eq!(w.tree.ephemerals(S1), vec!["/p/e1"]);
    assert_eq!(w.tree.stat("/p/e1").unwrap().ephemeral_owner, S1.0);
    assert_eq!(w.tree.all_ephemerals().len(), 2);
    // Pending-aware: an unapplied ephemeral create is included, an unapplied delete excluded.
    let pending_create = w.prepare_as(S1, &create("/p/e3", 3));
    let pending_delete = w.prepare_as(S1, &delete("/p/e1"));
    w.zxid += 1;
    let close = w.prep.prepare_close_session(&w.tree, &w.cfg, S1, Zxid(w.zxid));
    assert_eq!(close, Txn::CloseSession { paths_to_delete: vec!["/p/e30000000002".into()] });
    w.apply(&pending_create);
    w.apply(&pending_delete);
    let applied = w.apply(&LoggedTxn { header: header(S1, Zxid(w.zxid), 1), txn: close });
    assert_eq!(applied.outcome, ApplyOutcome::SessionClosed);
    assert_eq!(applied.triggers.len(), 2);
    assert!(w.tree.ephemerals(S1).is_empty());
    assert_eq!(w.tree.children("/p").unwrap(), vec!["e2"]);
}

#[test]
fn close_session_also_deletes_ephemerals_missing_from_the_list() {
    let mut w = World::new();
    w.run(&create("/e", 1));
    w.zxid += 1;
    let close = Txn::CloseSession { paths_to_delete: vec!["/gone".into()] };
    let applied = w.apply(&LoggedTxn { header: header(S1, Zxid(w.zxid), 1), txn: close });
    assert_eq!(applied.outcome, ApplyOutcome::SessionClosed);
    assert!(w.tree.get("/e").is_none());
    assert_eq!(w.tree.last_processed_zxid(), Zxid(w.zxid));
}

#[test]
fn apply_refuses_impossible_txns_without_panicking() {
    let mut tree = DataTree::new();
    let bad = [
        Txn::Delete { path: "/missing".into() },
        Txn::Delete { path: "/zookeeper".into() },
        Txn::Delete { path: "/".into() },
        Txn::SetData { path: "/x".into(), data: None, version: 1 },
        Txn::Create {
            path: "/a/b".into(),
            data: None,
            acl: vec![],
            kind: CreateKind::Persistent,
            parent_cversion: 1,
        },
        Txn::Create {
            path: "bad".into(),
            data: None,
            acl: vec![],
            kind: CreateKind::Persistent,
            parent_cversion: 1,
        },
        Txn::Multi(vec![Txn::Multi(vec![])]),
    ];
    let digest = tree.digest();
    for (i, txn) in bad.into_iter().enumerate() {
        let t = LoggedTxn { header: header(S1, Zxid(i as i64 + 1), 1), txn };
        let out = tree.apply(&t).outcome;
        let failed = match out {
            ApplyOutcome::Failed(_) => true,
            ApplyOutcome::Multi(v) => v.iter().all(|o| matches!(o, ApplyOutcome::Failed(_))),
            _ => false,
        };
        assert!(failed, "txn {i} applied");
    }
    assert_eq!(tree.digest(), digest);
    assert_eq!(tree.last_processed_zxid(), Zxid(7), "failed txns still move the zxid");
    tree.invariants();
}

#[test]
fn error_txn_and_failed_multi_change_nothing_but_the_zxid() {
    let mut w = World::new();
    w.run(&create("/a", 0));
    let before = w.tree.clone();
    let (t, out) = w.run(&Request::Multi(vec![create("/b", 0), create("/a", 0)]));
    assert!(matches!(t, Txn::Multi(_)));
    let expected = ApplyOutcome::Multi(vec![
        ApplyOutcome::Failed(ZkError::Ok),
        ApplyOutcome::Failed(ZkError::NodeExists),
    ]);
    assert_eq!(out, expected);
    assert_eq!(w.tree.digest(), before.digest());
    assert_eq!(w.tree.last_processed_zxid(), Zxid(2));
}

fn ttl_create(path: &str, ttl: i64) -> Request {
    Request::Create {
        op: OpCode::CreateTtl,
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 5,
        ttl,
    }
}

fn container(path: &str) -> Request {
    Request::Create {
        op: OpCode::CreateContainer,
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 4,
        ttl: -1,
    }
}

#[test]
fn container_and_ttl_candidates() {
    let mut w = World::new();
    w.run(&container("/c_used")); // time 1010
    w.run(&container("/c_new"));
    w.run(&create("/c_used/x", 0));
    w.run(&delete("/c_used/x"));
    w.run(&container("/c_full"));
    w.run(&create("/c_full/x", 0));
    w.run(&ttl_create("/t", 100)); // time 1070
    let c = w.tree.stat("/c_used").unwrap();
    assert_eq!(c.ephemeral_owner, 0, "containers show ephemeralOwner 0");
    assert_eq!(w.tree.get("/c_used").unwrap().stat.ephemeral_owner, i64::MIN);
    assert_eq!(w.tree.get("/t").unwrap().kind(), NodeKind::Ttl(100));
    assert_eq!(
        w.tree.get("/t").unwrap().stat.ephemeral_owner,
        (0xff00_0000_0000_0000u64 | 100) as i64
    );
    assert_eq!(w.tree.stat("/t").unwrap().ephemeral_owner, 0);
    assert_eq!(w.tree.expired_containers_and_ttls(1170, true), vec!["/c_used"]);
    assert_eq!(w.tree.expired_containers_and_ttls(1171, true), vec!["/c_used", "/t"]);
    assert_eq!(w.tree.expired_containers_and_ttls(1171, false), vec!["/c_used"]);
    let with_never_used = w.tree.expired_containers_and_ttls_with(5000, true, 1000);
    assert_eq!(with_never_used, vec!["/c_new", "/c_used", "/t"]);
    // Deleting a container through the container manager path.
    w.zxid += 1;
    let t = w.prep.prepare_delete_container(&w.tree, "/c_used", Zxid(w.zxid));
    assert_eq!(t, Txn::DeleteContainer { path: "/c_used".into() });
    let applied = w.apply(&LoggedTxn { header: header(SessionId(0), Zxid(w.zxid), 1), txn: t });
    assert_eq!(applied.outcome, ApplyOutcome::Deleted);
    w.zxid += 1;
    let t = w.prep.prepare_delete_container(&w.tree, "/c_full", Zxid(w.zxid));
    assert_eq!(t, Txn::Error { err: ZkError::NotEmpty });
}

#[test]
fn delete_container_errors() {
    let mut w = World::new();
    w.run(&create("/e", 1));
    let mut z = || {
        w.zxid += 1;
        Zxid(w.zxid)
    };
    let (a, b, c) = (z(), z(), z());
    let t = w.prep.prepare_delete_container(&w.tree, "/e", a);
    assert_eq!(t, Txn::Error { err: ZkError::BadVersion });
    let t = w.prep.prepare_delete_container(&w.tree, "/none", b);
    assert_eq!(t, Txn::Error { err: ZkError::NoNode });
    let t = w.prep.prepare_delete_container(&w.tree, "/zookeeper", c);
    assert_eq!(t, Txn::Error { err: ZkError::BadArguments });
}

#[test]
fn ttl_needs_extended_types_and_a_valid_ttl() {
    let mut w = World::new();
    w.cfg.extended_types_enabled = false;
    assert_eq!(w.run(&ttl_create("/t", 10)).0, Txn::Error { err: ZkError::Unimplemented });
    w.cfg.extended_types_enabled = true;
    assert_eq!(w.run(&ttl_create("/t", 0)).0, Txn::Error { err: ZkError::BadArguments });
    let too_long = ttl_create("/t", 0xff_ffff_ffff + 1);
    assert_eq!(w.run(&too_long).0, Txn::Error { err: ZkError::BadArguments });
    let mut non_ttl_with_ttl = create("/t", 0);
    if let Request::Create { ttl, .. } = &mut non_ttl_with_ttl {
        *ttl = 5;
    }
    assert_eq!(w.run(&non_ttl_with_ttl).0, Txn::Error { err: ZkError::BadArguments });
    assert!(matches!(w.run(&ttl_create("/t", 0xff_ffff_ffff)).0, Txn::Create { .. }));
}

fn set_data(path: &str, data: &[u8]) -> Request {
    Request::SetData { path: path.into(), data: Some(data.to_vec()), version: -1 }
}

fn stats_text(w: &World, root: &str) -> String {
    let p = format!("/zookeeper/quota{root}/zookeeper_stats");
    String::from_utf8(w.tree.get(&p).unwrap().data.clone().unwrap().into()).unwrap()
}

#[test]
fn quota_stats_are_tracked_in_place() {
    let mut w = World::new();
    w.run(&create("/q", 0)); // 1 byte
    w.run(&create("/q/a", 0)); // 1 byte
    w.run(&create("/zookeeper/quota/q", 0));
    w.run(&Request::Create {
        op: OpCode::Create,
        path: "/zookeeper/quota/q/zookeeper_limits".into(),
        data: Some(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3".to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    });
    w.run(&create("/zookeeper/quota/q/zookeeper_stats", 0));
    assert_eq!(w.tree.quota_roots(), vec!["/q"]);
    assert_eq!(stats_text(&w, "/q"), "count=2,bytes=2");
    let stats_stat = w.tree.stat("/zookeeper/quota/q/zookeeper_stats").unwrap();
    w.run(&create("/q/b", 0));
    w.run(&set_data("/q/a", b"hello"));
    assert_eq!(stats_text(&w, "/q"), "count=3,bytes=7");
    let after = w.tree.stat("/zookeeper/quota/q/zookeeper_stats").unwrap();
    assert_eq!((after.version, after.mzxid), (stats_stat.version, stats_stat.mzxid));
    // Not enforced by default; enforced hard count limit with enforce_quota.
    assert!(matches!(w.run(&create("/q/c", 0)).0, Txn::Create { .. }));
    w.cfg.enforce_quota = true;
    assert_eq!(w.run(&create("/q/d", 0)).0, Txn::Error { err: ZkError::QuotaExceeded });
    w.run(&delete("/q/c"));
    assert_eq!(stats_text(&w, "/q"), "count=3,bytes=7");
    w.run(&delete("/zookeeper/quota/q/zookeeper_limits"));
    assert!(w.tree.quota_roots().is_empty());
    w.run(&create("/q/d", 0));
    assert_eq!(stats_text(&w, "/q"), "count=3,bytes=7", "no quota root: no tracking");
}

#[test]
fn quota_byte_hard_limit_on_set_data() {
    let mut w = World::new();
    w.cfg.enforce_quota = true;
    w.run(&create("/q", 0));
    w.run(&create("/zookeeper/quota/q", 0));
    let limits = b"count=-1,bytes=-1=;byteHardLimit=4".to_vec();
    w.run(&Request::Create {
        op: OpCode::Create,
        path: "/zookeeper/quota/q/zookeeper_limits".into(),
        data: Some(limits),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    });
    w.run(&create("/zookeeper/quota/q/zookeeper_stats", 0));
    assert!(matches!(w.run(&set_data("/q", b"abcd")).0, Txn::SetData { .. }));
    assert_eq!(w.run(&set_data("/q", b"abcde")).0, Txn::Error { err: ZkError::QuotaExceeded });
    // Quota comes before BADVERSION for setData.
    let bad_version = Request::SetData { path: "/q".into(), data: Some(vec![0; 9]), version: 7 };
    assert_eq!(w.run(&bad_version).0, Txn::Error { err: ZkError::QuotaExceeded });
}
