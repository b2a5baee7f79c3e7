//! Container and TTL nodes. The suite's config checks containers every 1 s
//! (`znode.container.checkIntervalMs=1000`) and enables TTL (`extendedTypesEnabled=true`).
//!
//! "Not deleted" is shown without sleeping: a node that must stay is created BEFORE one that must
//! go, so by the time the second is deleted the checker has passed over the first as well.

use std::time::Duration;

use zkr_tests::client::{CONTAINER, EPHEMERAL, PERSISTENT};
use zkr_tests::{ServerOptions, TestServer, connect, op, op_err, wait_until};
use zookeeper_client::{Acls, Client, CreateMode, Error};

async fn wait_gone(zk: &Client, path: &str, timeout: Duration) {
    wait_until(timeout, &format!("{path} deleted by the server"), || async {
        op("exists", zk.check_stat(path)).await.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_deleted_after_its_last_child_goes() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let (never_used, _) = op("create /unused", zk.create("/unused", b"", &CONTAINER)).await;
    assert_eq!(never_used.ephemeral_owner, 0, "clients see 0 for containers");
    op("create /c", zk.create("/c", b"", &CONTAINER)).await;
    op("create /c/x", zk.create("/c/x", b"", &PERSISTENT)).await;
    op("create /c/e", zk.create("/c/e", b"", &EPHEMERAL)).await;
    op("delete /c/x", zk.delete("/c/x", None)).await;
    // One child left: the container must stay; delete it and the container goes.
    op("exists /c", zk.check_stat("/c")).await.expect("container with a child stays");
    op("delete /c/e", zk.delete("/c/e", None)).await;
    wait_gone(&zk, "/c", Duration::from_secs(30)).await;
    assert!(
        op("exists /unused", zk.check_stat("/unused")).await.is_some(),
        "a container that never had a child is kept (maxNeverUsedIntervalMs = 0)"
    );
    // A container whose last child was removed by a multi also goes.
    op("create /c2", zk.create("/c2", b"", &CONTAINER)).await;
    op("create /c2/x", zk.create("/c2/x", b"", &PERSISTENT)).await;
    let mut multi = zk.new_multi_writer();
    multi.add_delete("/c2/x", None).unwrap();
    op("multi delete", multi.commit()).await;
    wait_gone(&zk, "/c2", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_node_is_deleted_after_ttl_without_children() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let ttl = |ms| {
        CreateMode::Persistent.with_acls(Acls::anyone_all()).with_ttl(Duration::from_millis(ms))
    };
    // Kept: it has a child when its TTL runs out.
    op("create /kept", zk.create("/kept", b"", &ttl(500))).await;
    op("create /kept/c", zk.create("/kept/c", b"", &PERSISTENT)).await;
    let (stat, _) = op("create /ttl", zk.create("/ttl", b"v", &ttl(1000))).await;
    assert_eq!(stat.ephemeral_owner, 0, "clients see 0 for TTL nodes");
    let (_, seq) = op(
        "create ttl sequential",
        zk.create(
            "/tseq-",
            b"",
            &CreateMode::PersistentSequential
                .with_acls(Acls::anyone_all())
                .with_ttl(Duration::from_millis(1000)),
        ),
    )
    .await;
    wait_gone(&zk, "/ttl", Duration::from_secs(30)).await;
    wait_gone(&zk, &format!("/tseq-{seq}"), Duration::from_secs(30)).await;
    op("exists /kept", zk.check_stat("/kept")).await.expect("a TTL node with children stays");
    op("delete /kept/c", zk.delete("/kept/c", None)).await;
    wait_gone(&zk, "/kept", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_needs_extended_types() {
    let server = TestServer::start_with(ServerOptions::new().set("extendedTypesEnabled", "false"));
    let zk = connect(&server).await;
    let opts =
        CreateMode::Persistent.with_acls(Acls::anyone_all()).with_ttl(Duration::from_secs(10));
    assert_eq!(op_err("create ttl", zk.create("/t", b"", &opts)).await, Error::Unimplemented);
    assert_eq!(op("exists /t", zk.check_stat("/t")).await, None);
}
