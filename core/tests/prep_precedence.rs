//! The order of checks per op (reference §10.3, §16.4): one test per rule, each built so that
//! two rules conflict and the earlier one must win.

use zkr_core::Config;
use zkr_core::prep::{PrepState, Requester};
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::error::ZkError;
use zkr_core::tree::DataTree;
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid, perms};

const S1: SessionId = SessionId(0x100);

fn world_acl(p: i32) -> Vec<Acl> {
    vec![Acl { perms: p, id: Id::new("world", "anyone") }]
}

struct Fixture {
    tree: DataTree,
    prep: PrepState,
    cfg: Config,
    zxid: i64,
    ids: Vec<Id>,
}

impl Fixture {
    /// `/open`; `/noc` (no CREATE) and `/nod` (no DELETE), each with child `x`; `/ro` (READ
    /// only); `/noread` (no READ); `/full` with child `c`; ephemeral `/e`.
    fn new() -> Fixture {
        let mut f = Fixture {
            tree: DataTree::new(),
            prep: PrepState::new(),
            cfg: Config::default(),
            zxid: 0,
            ids: vec![Id::new("ip", "10.0.0.1")],
        };
        let all = perms::ALL;
        for (p, acl, flags) in [
            ("/open", all, 0),
            ("/noc", all & !perms::CREATE, 0),
            ("/nod", all & !perms::DELETE, 0),
            ("/full", all, 0),
            ("/full/c", all, 0),
            ("/e", all, 1),
            ("/ro", perms::READ, 0),
            ("/noread", all & !perms::READ, 0),
        ] {
            let t = f.txn(true, &create_acl(p, flags, world_acl(acl)));
            assert!(matches!(t, Txn::Create { .. }), "{p}: {t:?}");
        }
        for p in ["/noc/x", "/nod/x"] {
            let t = LoggedTxn {
                header: TxnHeader { session_id: S1, cxid: 0, zxid: Zxid(f.zxid + 1), time_ms: 1 },
                txn: Txn::Create {
                    path: p.into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    kind: zkr_core::txn::CreateKind::Persistent,
                    parent_cversion: 1,
                },
            };
            f.zxid += 1;
            f.tree.apply(&t);
        }
        f
    }

    /// Prepares `req` and applies the result; returns the txn.
    fn txn(&mut self, session_valid: bool, req: &Request) -> Txn {
        self.zxid += 1;
        let who = Requester { session: S1, session_valid, ids: &self.ids };
        let zxid = Zxid(self.zxid);
        let txn = self.prep.prepare(&self.tree, &self.cfg, &who, req, zxid, 5);
        let header = TxnHeader { session_id: S1, cxid: 0, zxid, time_ms: 5 };
        self.tree.apply(&LoggedTxn { header, txn: txn.clone() });
        self.prep.applied(zxid);
        txn
    }

    fn err(&mut self, req: &Request) -> ZkError {
        match self.txn(true, req) {
            Txn::Error { err } => err,
            other => panic!("expected an error for {req:?}, got {other:?}"),
        }
    }

    fn err_expired(&mut self, req: &Request) -> ZkError {
        match self.txn(false, req) {
            Txn::Error { err } => err,
            other => panic!("expected an error for {req:?}, got {other:?}"),
        }
    }
}

fn create_acl(path: &str, flags: i32, acl: Vec<Acl>) -> Request {
    Request::Create { op: OpCode::Create, path: path.into(), data: None, acl, flags, ttl: -1 }
}

fn create(path: &str) -> Request {
    create_acl(path, 0, Acl::open_unsafe())
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete { path: path.into(), version }
}

fn set_data(path: &str, version: i32) -> Request {
    Request::SetData { path: path.into(), data: None, version }
}

fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> Request {
    Request::SetAcl { path: path.into(), acl, version }
}

// ---- create ----

#[test]
fn create_bad_flags_beat_session() {
    let mut f = Fixture::new();
    assert_eq!(f.err_expired(&create_acl("/open/a", 7, vec![])), ZkError::BadArguments);
    assert_eq!(f.err_expired(&create_acl("/open/a", -1, vec![])), ZkError::BadArguments);
}

#[test]
fn create_ttl_checks_beat_session() {
    let mut f = Fixture::new();
    let ttl = |ttl| Request::Create {
        op: OpCode::CreateTtl,
        path: "/open/t".into(),
        data: None,
        acl: vec![],
        flags: 5,
        ttl,
    };
    assert_eq!(f.err_expired(&ttl(10)), ZkError::Unimplemented);
    f.cfg.extended_types_enabled = true;
    assert_eq!(f.err_expired(&ttl(0)), ZkError::BadArguments);
    assert_eq!(f.err_expired(&ttl(10)), ZkError::SessionExpired);
}

#[test]
fn create_session_beats_path_syntax() {
    let mut f = Fixture::new();
    assert_eq!(f.err_expired(&create("noslash")), ZkError::SessionExpired);
}

#[test]
fn create_path_syntax_beats_invalid_acl() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create_acl("noslash", 0, vec![])), ZkError::BadArguments);
    assert_eq!(f.err(&create_acl("/open/a\0b", 0, vec![])), ZkError::BadArguments);
}

#[test]
fn create_invalid_acl_beats_no_node() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create_acl("/missing/x", 0, vec![])), ZkError::InvalidAcl);
    let auth_without_ids = vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }];
    assert_eq!(f.err(&create_acl("/missing/x", 0, auth_without_ids)), ZkError::InvalidAcl);
    assert_eq!(f.err(&create("/missing/x")), ZkError::NoNode);
}

#[test]
fn create_no_node_beats_path_validation() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create("/a//b")), ZkError::NoNode);
    assert_eq!(f.err(&create("/missing/.")), ZkError::NoNode);
}

#[test]
fn create_no_auth_beats_node_exists_and_path_validation() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create("/noc/x")), ZkError::NoAuth);
    assert_eq!(f.err(&create("/noc/.")), ZkError::NoAuth);
    assert_eq!(f.err(&create("/open/.")), ZkError::BadArguments);
    assert_eq!(f.err(&create("/open/")), ZkError::BadArguments);
}

#[test]
fn create_root_is_node_exists() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create("/")), ZkError::NodeExists);
    assert_eq!(f.err(&create("/open")), ZkError::NodeExists);
}

#[test]
fn create_path_validation_beats_ephemeral_parent() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&create("/e/.")), ZkError::BadArguments);
    assert_eq!(f.err(&create("/e/x")), ZkError::NoChildrenForEphemerals);
}

#[test]
fn create_no_auth_beats_ephemeral_parent() {
    // NODEEXISTS before NOCHILDRENFOREPHEMERALS cannot be observed on a consistent tree (an
    // ephemeral never has a child), so this checks the ephemeral-parent rule against the ACL:
    // an ephemeral parent without CREATE gives NOAUTH.
    let mut f = Fixture::new();
    let acl = world_acl(perms::ALL & !perms::CREATE);
    assert!(matches!(f.txn(true, &create_acl("/e2", 1, acl)), Txn::Create { .. }));
    assert_eq!(f.err(&create("/e2/x")), ZkError::NoAuth);
}

#[test]
fn super_and_skip_acl_bypass_no_auth() {
    let mut f = Fixture::new();
    f.ids.push(Id::new("super", ""));
    assert!(matches!(f.txn(true, &create("/noc/y")), Txn::Create { .. }));
    f.ids.pop();
    f.cfg.skip_acl = true;
    assert!(matches!(f.txn(true, &create("/noc/z")), Txn::Create { .. }));
}

// ---- delete ----

#[test]
fn delete_session_first() {
    let mut f = Fixture::new();
    assert_eq!(f.err_expired(&delete("/", -1)), ZkError::SessionExpired);
}

#[test]
fn delete_special_and_bad_paths() {
    let mut f = Fixture::new();
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "noslash", "/a\0"] {
        assert_eq!(f.err(&delete(p, -1)), ZkError::BadArguments, "{p:?}");
    }
    assert_eq!(f.err(&delete("/a//b", -1)), ZkError::NoNode);
}

#[test]
fn delete_parent_no_auth_beats_missing_node() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&delete("/missing/x", -1)), ZkError::NoNode);
    assert_eq!(f.err(&delete("/nod/missing", -1)), ZkError::NoAuth);
    assert_eq!(f.err(&delete("/nod/x", -1)), ZkError::NoAuth);
    assert_eq!(f.err(&delete("/open/missing", -1)), ZkError::NoNode);
}

#[test]
fn delete_bad_version_beats_not_empty() {
    let mut f = Fixture::new();
    assert_eq!(f.err(&delete("/full", 5)), ZkError::BadVersion);
    assert_eq!(f.err(&delete("/full", -1)), ZkError::NotEmpty);
    assert_eq!(f.err(&delete("/full", 0)), ZkError::NotEmpty);
    assert_eq!(f.txn(true, &delete("/full/c", 0)), Txn::Delete { path: "/full/c".into() });
}

// ---- setData ----

#[test]
fn set_data_order() {
    let mut f = Fixture::new();
    assert_eq!(f.err_expired(&set_data("bad", -1)), ZkError::SessionExpired);
    assert_eq!(f.err(&set_data("/missing/", -1)), ZkError::BadArguments);
    assert_eq!(f.err(&set_data("/missing", -1)), ZkError::NoNode);
    assert_eq!(f.err(&set_data("/ro", 9)), ZkError::NoAuth);
    assert_eq!(f.err(&set_data("/open", 9)), ZkError::BadVersion);
    let t = f.txn(true, &set_data("/open", 0));
    assert_eq!(t, Txn::SetData { path: "/open".into(), data: None, version: 1 });
}

// ---- setACL ----

#[test]
fn set_acl_order() {
    let mut f = Fixture::new();
    let open = Acl::open_unsafe();
    assert_eq!(f.err_expired(&set_acl("bad", vec![], -1)), ZkError::SessionExpired);
    assert_eq!(f.err(&set_acl("/missing/", vec![], -1)), ZkError::BadArguments);
    assert_eq!(f.err(&set_acl("/missing", vec![], -1)), ZkError::InvalidAcl);
    assert_eq!(f.err(&set_acl("/missing", open.clone(), -1)), ZkError::NoNode);
    assert_eq!(f.err(&set_acl("/ro", open.clone(), 9)), ZkError::NoAuth);
    assert_eq!(f.err(&set_acl("/open", open.clone(), 9)), ZkError::BadVersion);
    let t = f.txn(true, &set_acl("/open", open.clone(), 0));
    assert_eq!(t, Txn::SetAcl { path: "/open".into(), acl: open, version: 1 });
}

// ---- check (multi only) ----

fn check(path: &str, version: i32) -> Request {
    Request::Check { path: path.into(), version }
}

fn multi_err(f: &mut Fixture, op: Request) -> ZkError {
    match f.txn(true, &Request::Multi(vec![op])) {
        Txn::Multi(subs) => match subs.as_slice() {
            [Txn::Error { err }] => *err,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_order() {
    let mut f = Fixture::new();
    assert_eq!(multi_err(&mut f, check("/missing/", 9)), ZkError::BadArguments);
    assert_eq!(multi_err(&mut f, check("/missing", 9)), ZkError::NoNode);
    assert_eq!(multi_err(&mut f, check("/noread", 9)), ZkError::NoAuth);
    assert_eq!(multi_err(&mut f, check("/open", 9)), ZkError::BadVersion);
    let ok = f.txn(true, &Request::Multi(vec![check("/open", 0)]));
    assert_eq!(ok, Txn::Multi(vec![Txn::Check { path: "/open".into(), version: 1 }]));
    // A standalone check is not a write.
    assert_eq!(f.err(&check("/open", 0)), ZkError::Unimplemented);
}

#[test]
fn bad_flags_inside_multi_are_a_marshalling_error() {
    let mut f = Fixture::new();
    let multi = Request::Multi(vec![create("/open/a"), create_acl("/open/b", 9, vec![])]);
    assert_eq!(f.err(&multi), ZkError::MarshallingError);
    assert!(f.tree.get("/open/a").is_none());
    let nested = Request::Multi(vec![Request::GetData { path: "/".into(), watch: false }]);
    assert_eq!(f.err(&nested), ZkError::MarshallingError);
}

/// A createTTL with a plain mode and no TTL passes ZooKeeper's checks (`validateTTL` refuses a
/// plain mode only with a TTL ≥ 0) and fails later, in apply: every failure ZooKeeper reports
/// first is reported here first too (seen by tests/tests/differential_gen.rs, seeds 2, 17, 20,
/// 72, 75, 98: BADARGUMENTS where ZooKeeper answered NONODE, NODEEXISTS or INVALIDACL).
#[test]
fn create_ttl_on_a_plain_mode_fails_after_the_other_checks() {
    let mut f = Fixture::new();
    f.cfg.extended_types_enabled = true;
    let plain = |path: &str, flags, acl, ttl| Request::Create {
        op: OpCode::CreateTtl,
        path: path.into(),
        data: None,
        acl,
        flags,
        ttl,
    };
    let open = Acl::open_unsafe;
    assert_eq!(f.err(&plain("/missing/t", 0, open(), -1)), ZkError::NoNode);
    assert_eq!(f.err(&plain("/open", 0, open(), -1)), ZkError::NodeExists);
    assert_eq!(f.err(&plain("/open/t", 1, vec![], -1)), ZkError::InvalidAcl);
    assert_eq!(f.err(&plain("/noc/t", 2, open(), -1)), ZkError::NoAuth);
    assert_eq!(f.err(&plain("/e/t", 0, open(), -1)), ZkError::NoChildrenForEphemerals);
    // Where ZooKeeper would create (and then fail to apply), and with a TTL on a plain mode.
    assert_eq!(f.err(&plain("/open/t", 0, open(), -1)), ZkError::BadArguments);
    assert_eq!(f.err(&plain("/missing/t", 0, open(), 100)), ZkError::BadArguments);
}
