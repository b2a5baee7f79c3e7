//! Data-model basics through the `zookeeper-client` crate: create/get/set/delete with versions and
//! Stat fields, sequential names, getChildren2 / getAllChildrenNumber / getEphemerals, multi
//! atomicity and result shapes, ACLs with digest auth.

use zkr_tests::client::{EPHEMERAL, EPHEMERAL_SEQ, PERSISTENT, PERSISTENT_SEQ};
use zkr_tests::{TestServer, connect, op, op_err};
use zookeeper_client::{
    Acl, Acls, AuthId, CreateMode, Error, MultiReadResult, MultiWriteError, MultiWriteResult,
    Permission,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_with_versions_and_stat() {
    let server = TestServer::start();
    let zk = connect(&server).await;

    let (stat, _) = op("create /a", zk.create("/a", b"hello", &PERSISTENT)).await;
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!((stat.num_children, stat.data_length, stat.ephemeral_owner), (0, 5, 0));
    assert_eq!(stat.czxid, stat.mzxid, "new node: czxid == mzxid");
    assert_eq!(stat.czxid, stat.pzxid, "new node: czxid == pzxid");
    assert!(stat.czxid > 0);
    assert_eq!(stat.ctime, stat.mtime);
    assert!(stat.ctime > 1_500_000_000_000, "ctime is wall-clock ms: {}", stat.ctime);

    let (data, got) = op("get /a", zk.get_data("/a")).await;
    assert_eq!(data, b"hello");
    assert_eq!(got, stat, "getData returns the create2 stat");

    assert_eq!(
        op_err("create /a again", zk.create("/a", b"", &PERSISTENT)).await,
        Error::NodeExists
    );

    let set1 = op("set /a v0", zk.set_data("/a", b"world!", Some(0))).await;
    assert_eq!(set1.version, 1);
    assert_eq!(set1.data_length, 6);
    assert_eq!(set1.czxid, stat.czxid, "setData keeps czxid");
    assert!(set1.mzxid > stat.mzxid, "setData moves mzxid");
    assert!(set1.czxid <= set1.mzxid);
    assert_eq!(set1.ctime, stat.ctime);
    assert_eq!(
        op_err("set /a stale version", zk.set_data("/a", b"x", Some(0))).await,
        Error::BadVersion
    );
    let set2 = op("set /a any version", zk.set_data("/a", b"", None)).await;
    assert_eq!((set2.version, set2.data_length), (2, 0));
    assert!(set2.mzxid > set1.mzxid);
    let (data, _) = op("get /a", zk.get_data("/a")).await;
    assert!(data.is_empty());

    let (b, _) = op("create /a/b", zk.create("/a/b", b"1", &PERSISTENT)).await;
    let (c, _) = op("create /a/c", zk.create("/a/c", b"2", &PERSISTENT)).await;
    assert!(c.czxid > b.czxid);
    let (_, parent) = op("get /a", zk.get_data("/a")).await;
    assert_eq!(parent.num_children, 2);
    assert_eq!(parent.cversion, 2);
    assert_eq!(parent.pzxid, c.czxid, "pzxid = zxid of the last child change");
    assert_eq!(parent.version, 2, "child changes do not bump the data version");
    assert_eq!(parent.mzxid, set2.mzxid, "child changes do not move mzxid");

    assert_eq!(op_err("delete non-empty /a", zk.delete("/a", None)).await, Error::NotEmpty);
    assert_eq!(
        op_err("delete /a/b bad version", zk.delete("/a/b", Some(5))).await,
        Error::BadVersion
    );
    op("delete /a/b v0", zk.delete("/a/b", Some(0))).await;
    let (_, parent) = op("get /a", zk.get_data("/a")).await;
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.cversion, 3, "visible cversion counts creates and deletes");
    assert!(parent.pzxid > c.czxid, "a child delete moves pzxid");

    assert_eq!(op_err("delete missing", zk.delete("/a/b", None)).await, Error::NoNode);
    assert_eq!(op_err("get missing", zk.get_data("/nope")).await, Error::NoNode);
    assert_eq!(op("exists missing", zk.check_stat("/nope")).await, None);
    let exists = op("exists /a/c", zk.check_stat("/a/c")).await.expect("/a/c exists");
    assert_eq!(exists, c);
    assert_eq!(
        op_err("create under missing parent", zk.create("/x/y", b"", &PERSISTENT)).await,
        Error::NoNode
    );
    op("delete /a/c", zk.delete("/a/c", None)).await;
    op("delete /a", zk.delete("/a", Some(2))).await;
    assert_eq!(op("exists /a", zk.check_stat("/a")).await, None);

    let mut root = op("ls /", zk.list_children("/")).await;
    root.sort();
    assert_eq!(root, vec!["zookeeper".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_nodes_cannot_have_children() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let (stat, _) = op("create /e", zk.create("/e", b"", &EPHEMERAL)).await;
    assert_eq!(stat.ephemeral_owner, zk.session_id().0);
    assert_eq!(
        op_err("child of ephemeral", zk.create("/e/c", b"", &PERSISTENT)).await,
        Error::NoChildrenForEphemerals
    );
    // NODEEXISTS is checked before NOCHILDRENFOREPHEMERALS.
    assert_eq!(
        op_err("create /e again", zk.create("/e", b"", &EPHEMERAL)).await,
        Error::NodeExists
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_follow_parent_create_count() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    op("create /seq", zk.create("/seq", b"", &PERSISTENT)).await;
    for i in 0..3 {
        let (_, seq) = op("create seq", zk.create("/seq/n-", b"", &PERSISTENT_SEQ)).await;
        assert_eq!(seq.into_i64(), i);
        assert_eq!(seq.to_string(), format!("{i:010}"));
    }
    op("create plain", zk.create("/seq/plain", b"", &PERSISTENT)).await;
    let (_, seq) = op("create seq after plain", zk.create("/seq/n-", b"", &PERSISTENT_SEQ)).await;
    assert_eq!(seq.into_i64(), 4, "the suffix counts every child create, not only sequential");
    op("delete n-0", zk.delete("/seq/n-0000000000", None)).await;
    let (_, seq) = op("create seq after delete", zk.create("/seq/e-", b"", &EPHEMERAL_SEQ)).await;
    assert_eq!(seq.into_i64(), 5, "deletes do not reuse suffixes");
    // A sequential name directly under the parent path: "/seq/" + suffix.
    let (_, seq) = op("create /seq/<n>", zk.create("/seq/", b"", &PERSISTENT_SEQ)).await;
    assert_eq!(seq.into_i64(), 6);

    let mut children = op("ls /seq", zk.list_children("/seq")).await;
    children.sort();
    let expected =
        ["0000000006", "e-0000000005", "n-0000000001", "n-0000000002", "n-0000000004", "plain"];
    assert_eq!(children, expected);
    let (_, ephemeral) = op("get e-5", zk.get_data("/seq/e-0000000005")).await;
    assert_eq!(ephemeral.ephemeral_owner, zk.session_id().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children2_all_children_number_and_ephemerals() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let other = connect(&server).await;
    for path in ["/t", "/t/a", "/t/a/b", "/t/c", "/tx"] {
        op(path, zk.create(path, b"", &PERSISTENT)).await;
    }
    op("e1", zk.create("/t/e1", b"", &EPHEMERAL)).await;
    op("e2", zk.create("/t/a/e2", b"", &EPHEMERAL)).await;
    op("e3", zk.create("/tx/e3", b"", &EPHEMERAL)).await;
    op("other's", other.create("/t/o1", b"", &EPHEMERAL)).await;

    let (mut children, stat) = op("getChildren2 /t", zk.get_children("/t")).await;
    children.sort();
    assert_eq!(children, ["a", "c", "e1", "o1"]);
    assert_eq!(stat.num_children, 4);
    let (_, direct) = op("get /t", zk.get_data("/t")).await;
    assert_eq!(stat, direct, "getChildren2's stat is the node's stat");

    assert_eq!(op("count /t", zk.count_descendants_number("/t")).await, 6);
    assert_eq!(op("count /t/a/b", zk.count_descendants_number("/t/a/b")).await, 0);
    // "/" counts every node below it, /zookeeper, /zookeeper/quota and /zookeeper/config too.
    assert_eq!(op("count /", zk.count_descendants_number("/")).await, 12);
    assert_eq!(op_err("count missing", zk.count_descendants_number("/no")).await, Error::NoNode);

    let mut mine = op("ephemerals /", zk.list_ephemerals("/")).await;
    mine.sort();
    assert_eq!(mine, ["/t/a/e2", "/t/e1", "/tx/e3"]);
    let mut under = op("ephemerals /t/a", zk.list_ephemerals("/t/a")).await;
    under.sort();
    assert_eq!(under, ["/t/a/e2"]);
    // The filter is a string prefix: "/t" also matches "/tx/...".
    let mut prefixed = op("ephemerals /t", zk.list_ephemerals("/t")).await;
    prefixed.sort();
    assert_eq!(prefixed, ["/t/a/e2", "/t/e1", "/tx/e3"]);
    assert_eq!(op("other's ephemerals", other.list_ephemerals("/")).await, ["/t/o1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_atomic_and_reports_results_in_order() {
    let server = TestServer::start();
    let zk = connect(&server).await;

    let mut writer = zk.new_multi_writer();
    writer.add_create("/m1", b"a", &PERSISTENT).unwrap();
    writer.add_create("/m2", b"b", &PERSISTENT).unwrap();
    writer.add_set_data("/m1", b"a2", Some(0)).unwrap();
    writer.add_check_version("/m1", 1).unwrap();
    writer.add_create("/m2/s-", b"", &PERSISTENT_SEQ).unwrap();
    writer.add_delete("/m2/s-0000000000", Some(0)).unwrap();
    let results = op("multi ok", writer.commit()).await;
    assert_eq!(results.len(), 6);
    let MultiWriteResult::Create { path, stat: m1 } = &results[0] else {
        panic!("result 0: {:?}", results[0])
    };
    assert_eq!(path, "/m1");
    assert!(matches!(&results[1], MultiWriteResult::Create { path, .. } if path == "/m2"));
    let MultiWriteResult::SetData { stat: set } = &results[2] else {
        panic!("result 2: {:?}", results[2])
    };
    assert_eq!(set.version, 1);
    if server.target().is_apache() {
        // ZOOKEEPER-4026 (fixed in 3.9.0): 3.8 answers create2 inside multi without the Stat.
        assert!(m1.is_invalid(), "3.8 multi create stat: {m1:?}");
    } else {
        assert_eq!(set.mzxid, m1.czxid, "all ops of one multi share one zxid");
        assert_eq!((m1.version, m1.data_length), (0, 1));
    }
    assert_eq!(results[3], MultiWriteResult::Check);
    assert!(
        matches!(&results[4], MultiWriteResult::Create { path, .. } if path == "/m2/s-0000000000")
    );
    assert_eq!(results[5], MultiWriteResult::Delete);
    let (data, _) = op("get /m1", zk.get_data("/m1")).await;
    assert_eq!(data, b"a2");

    // A failing op (index 2) rolls back everything before it; the sequence number is not used.
    let mut writer = zk.new_multi_writer();
    writer.add_create("/m3", b"", &PERSISTENT).unwrap();
    writer.add_create("/m2/s-", b"", &PERSISTENT_SEQ).unwrap();
    writer.add_delete("/missing", None).unwrap();
    writer.add_set_data("/m1", b"never", None).unwrap();
    let err = op_err("multi failing", writer.commit()).await;
    assert_eq!(err, MultiWriteError::OperationFailed { index: 2, source: Error::NoNode });
    assert_eq!(op("exists /m3", zk.check_stat("/m3")).await, None);
    let (data, stat) = op("get /m1", zk.get_data("/m1")).await;
    assert_eq!((data.as_slice(), stat.version), (&b"a2"[..], 1));
    let (children, _) = op("ls /m2", zk.get_children("/m2")).await;
    assert!(children.is_empty(), "{children:?}");

    // A failing version check.
    let mut writer = zk.new_multi_writer();
    writer.add_check_version("/m1", 7).unwrap();
    writer.add_create("/m4", b"", &PERSISTENT).unwrap();
    let err = op_err("multi bad check", writer.commit()).await;
    assert_eq!(err, MultiWriteError::OperationFailed { index: 0, source: Error::BadVersion });
    assert_eq!(op("exists /m4", zk.check_stat("/m4")).await, None);

    // Sequence numbers were not consumed by the failed multi.
    let (_, seq) = op("create seq", zk.create("/m2/s-", b"", &PERSISTENT_SEQ)).await;
    assert_eq!(seq.into_i64(), 1);

    // multiRead: each op succeeds or fails on its own.
    let mut reader = zk.new_multi_reader();
    reader.add_get_data("/m1").unwrap();
    reader.add_get_children("/m2").unwrap();
    reader.add_get_data("/missing").unwrap();
    let results = op("multiRead", reader.commit()).await;
    assert_eq!(results.len(), 3);
    assert!(matches!(&results[0], MultiReadResult::Data { data, .. } if data == b"a2"));
    let MultiReadResult::Children { children } = &results[1] else {
        panic!("result 1: {:?}", results[1])
    };
    assert_eq!(children, &["s-0000000001"]);
    assert!(matches!(&results[2], MultiReadResult::Error { err: Error::NoNode }));
}

/// base64(SHA1("alice:secret")), the digest id for `addauth digest alice:secret`.
const ALICE_DIGEST: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_digest_auth_and_noauth() {
    let server = TestServer::start();
    let alice = connect(&server).await;
    let anon = connect(&server).await;
    let creator_all = CreateMode::Persistent.with_acls(Acls::creator_all());

    assert_eq!(
        op_err("creator_all without auth", anon.create("/s", b"", &creator_all)).await,
        Error::InvalidAcl
    );
    op("addauth alice", alice.auth("digest", b"alice:secret")).await;
    let (created, _) = op("create /secret", alice.create("/secret", b"s", &creator_all)).await;
    let (acl, stat) = op("getAcl /secret", alice.get_acl("/secret")).await;
    assert_eq!(acl, vec![Acl::new(Permission::ALL, AuthId::new("digest", ALICE_DIGEST))]);
    assert_eq!(stat, created);

    assert_eq!(op_err("anon get", anon.get_data("/secret")).await, Error::NoAuth);
    assert_eq!(op_err("anon set", anon.set_data("/secret", b"x", None)).await, Error::NoAuth);
    assert_eq!(op_err("anon ls", anon.list_children("/secret")).await, Error::NoAuth);
    assert_eq!(op_err("anon getAcl", anon.get_acl("/secret")).await, Error::NoAuth);
    assert_eq!(
        op_err("anon create child", anon.create("/secret/c", b"", &PERSISTENT)).await,
        Error::NoAuth
    );
    assert_eq!(
        op_err("anon setAcl", anon.set_acl("/secret", &Acls::anyone_all(), None)).await,
        Error::NoAuth
    );
    if !server.target().is_apache() {
        // exists needs READ since 3.9.2 / 3.8.4; the Debian Apache is 3.8.0, which allows it.
        assert_eq!(op_err("anon exists", anon.check_stat("/secret")).await, Error::NoAuth);
    }
    // A wrong password adds an id that does not match.
    op("addauth wrong", anon.auth("digest", b"alice:wrong")).await;
    assert_eq!(op_err("wrong password get", anon.get_data("/secret")).await, Error::NoAuth);

    op("alice child", alice.create("/secret/c", b"", &PERSISTENT)).await;
    assert_eq!(op_err("anon delete child", anon.delete("/secret/c", None)).await, Error::NoAuth);

    // Another session authenticating as alice gets in; so does super.
    let alice2 = connect(&server).await;
    op("addauth alice2", alice2.auth("digest", b"alice:secret")).await;
    assert_eq!(op("alice2 get", alice2.get_data("/secret")).await.0, b"s");
    let root = connect(&server).await;
    op("addauth super", root.auth("digest", b"super:test")).await;
    assert_eq!(op("super get", root.get_data("/secret")).await.0, b"s");

    // setAcl with aversion checks; read-only ACL then blocks writes even for the creator.
    assert_eq!(
        op_err("setAcl bad aversion", alice.set_acl("/secret", &Acls::anyone_read(), Some(3)))
            .await,
        Error::BadVersion
    );
    let stat = op("setAcl", alice.set_acl("/secret", &Acls::anyone_read(), Some(0))).await;
    assert_eq!(stat.aversion, 1);
    assert_eq!(op("anon get after setAcl", anon.get_data("/secret")).await.0, b"s");
    assert_eq!(
        op_err("alice set on read-only", alice.set_data("/secret", b"", None)).await,
        Error::NoAuth
    );
    let (acl, _) = op("getAcl", anon.get_acl("/secret")).await;
    assert_eq!(acl, vec![Acl::new(Permission::READ, AuthId::anyone())]);
    let whoami = op("whoami", alice.list_auth_users()).await;
    assert!(
        whoami.iter().any(|u| u.scheme() == "digest" && u.user() == "alice"),
        "whoAmI: {whoami:?}"
    );
}

#[test]
fn raw_multi_result_shapes() {
    use zkr_tests::raw::{MultiOp, RawClient, code};
    let server = TestServer::start();
    let mut zk = RawClient::connect(server.addr(), 10_000).expect("connect");
    zk.create("/r", b"x", 0).expect("create /r");

    let ok = zk.multi(&[
        MultiOp::Create { path: "/r/a", data: b"", flags: 0 },
        MultiOp::SetData { path: "/r", data: b"y", version: 0 },
        MultiOp::Check { path: "/r", version: 1 },
        MultiOp::Delete { path: "/r/a", version: 0 },
    ]);
    // create (op 1) answers as type 1; setData 5; check 13; delete 2.
    assert_eq!(ok, (0, vec![(1, 0), (5, 0), (13, 0), (2, 0)]));

    // Header err stays 0; ops before the failure say 0, the failure its code, the rest -2.
    let failed = zk.multi(&[
        MultiOp::Create { path: "/r/b", data: b"", flags: 0 },
        MultiOp::Delete { path: "/missing", version: -1 },
        MultiOp::SetData { path: "/r", data: b"z", version: -1 },
    ]);
    assert_eq!(failed, (0, vec![(-1, 0), (-1, code::NO_NODE), (-1, -2)]));
    assert_eq!(zk.exists("/r/b", false), Err(code::NO_NODE));
    let (data, stat) = zk.get_data("/r", false).expect("get /r");
    assert_eq!((data.as_slice(), stat.version), (&b"y"[..], 1));

    assert_eq!(zk.multi(&[]), (0, vec![]), "an empty multi has an empty result list");
}
