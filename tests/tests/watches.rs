//! Watches: one-shot data/child/exist watches fire once, in order, at most once per connection
//! per trigger, and before any later reply that shows the change; persistent and
//! persistent-recursive watches (addWatch) keep firing with exactly the documented event kinds.
//!
//! Watch event zxids differ by version: -1 before 3.9, the txn zxid since 3.9 (ZOOKEEPER-4655).
//! We follow 3.9, so those assertions run only against zkr.

use std::time::Duration;

use zkr_tests::client::PERSISTENT;
use zkr_tests::raw::{RawClient, RawEvent, code, event};
use zkr_tests::{Target, TestServer, connect, op, within};
use zookeeper_client::{AddWatchMode, EventType, PersistentWatcher, WatchedEvent};

fn ev(event_type: i32, path: &str, zxid: i64) -> RawEvent {
    RawEvent { zxid, event_type, state: 3, path: path.to_string() }
}

/// The zxid a notification must carry: the txn's (3.9+), or -1 on Apache 3.8.
fn event_zxid(target: Target, txn_zxid: i64) -> i64 {
    if target.is_apache() { -1 } else { txn_zxid }
}

#[test]
fn raw_oneshot_watches_fire_once_and_in_order() {
    let server = TestServer::start();
    let t = server.target();
    let mut writer = RawClient::connect(server.addr(), 10_000).expect("writer");
    let mut watcher = RawClient::connect(server.addr(), 10_000).expect("watcher");
    writer.create("/w", b"0", 0).expect("create /w");

    watcher.get_data("/w", true).expect("getData watch");
    watcher.exists("/w", true).expect("exists watch on the same path");
    watcher.get_children("/w", true).expect("getChildren watch");
    assert_eq!(watcher.exists("/w/c", true), Err(code::NO_NODE), "exists watch on a missing node");

    let set = writer.set_data("/w", b"1", -1).expect("set /w");
    writer.create("/w/c", b"", 0).expect("create /w/c");
    let (_, c) = writer.get_data("/w/c", false).expect("get /w/c");
    // The watches are used up: these fire nothing.
    writer.set_data("/w", b"2", -1).expect("set /w again");
    writer.create("/w/d", b"", 0).expect("create /w/d");
    writer.set_data("/w/c", b"x", -1).expect("set /w/c");
    watcher.ping();
    let expected = vec![
        ev(event::DATA_CHANGED, "/w", event_zxid(t, set.mzxid)),
        ev(event::CREATED, "/w/c", event_zxid(t, c.czxid)),
        ev(event::CHILDREN_CHANGED, "/w", event_zxid(t, c.czxid)),
    ];
    assert_eq!(watcher.events, expected, "one event per trigger per connection, in order");

    // Delete with a data and a child watch on the node and a child watch on the parent:
    // NodeDeleted once (not once per table), then NodeChildrenChanged on the parent.
    watcher.events.clear();
    watcher.get_data("/w/c", true).expect("getData /w/c watch");
    watcher.get_children("/w/c", true).expect("getChildren /w/c watch");
    watcher.get_children("/w", true).expect("getChildren /w watch");
    writer.delete("/w/c", -1).expect("delete /w/c");
    let (_, parent) = writer.get_data("/w", false).expect("get /w");
    watcher.ping();
    let expected = vec![
        ev(event::DELETED, "/w/c", event_zxid(t, parent.pzxid)),
        ev(event::CHILDREN_CHANGED, "/w", event_zxid(t, parent.pzxid)),
    ];
    assert_eq!(watcher.events, expected);
}

#[test]
fn raw_event_arrives_before_the_reply_that_shows_the_change() {
    let server = TestServer::start();
    let mut writer = RawClient::connect(server.addr(), 10_000).expect("writer");
    let mut reader = RawClient::connect(server.addr(), 10_000).expect("reader");
    writer.create("/n", b"old", 0).expect("create /n");

    reader.get_data("/n", true).expect("watch /n");
    writer.set_data("/n", b"new", -1).expect("set /n");
    // The reader's next read returns the new data; the notification must already be here.
    let (data, _) = reader.get_data("/n", false).expect("read /n");
    assert_eq!(data, b"new");
    assert_eq!(reader.events.len(), 1, "event before the read reply: {:?}", reader.events);
    assert_eq!(reader.events[0].event_type, event::DATA_CHANGED);

    // Same session writing: the event comes before the setData reply.
    reader.events.clear();
    reader.get_data("/n", true).expect("watch /n again");
    reader.set_data("/n", b"mine", -1).expect("own set");
    assert_eq!(reader.events.len(), 1, "event before own reply: {:?}", reader.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crate_oneshot_watchers() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let other = connect(&server).await;
    op("create /o", zk.create("/o", b"", &PERSISTENT)).await;
    let (_, _, data_watch) = op("getData watch", zk.get_and_watch_data("/o")).await;
    let (_, child_watch) = op("ls watch", zk.list_and_watch_children("/o")).await;
    let (none, exist_watch) = op("exists watch", zk.check_and_watch_stat("/o/k")).await;
    assert!(none.is_none());

    let set = op("set /o", other.set_data("/o", b"v", None)).await;
    let (k, _) = op("create /o/k", other.create("/o/k", b"", &PERSISTENT)).await;
    let t = server.target();
    let d = within(Duration::from_secs(20), "data event", data_watch.changed()).await;
    assert_eq!((d.event_type, d.path.as_str()), (EventType::NodeDataChanged, "/o"));
    assert_eq!(d.zxid, event_zxid(t, set.mzxid));
    let e = within(Duration::from_secs(20), "exist event", exist_watch.changed()).await;
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeCreated, "/o/k"));
    assert_eq!(e.zxid, event_zxid(t, k.czxid));
    let c = within(Duration::from_secs(20), "child event", child_watch.changed()).await;
    assert_eq!((c.event_type, c.path.as_str()), (EventType::NodeChildrenChanged, "/o"));
}

async fn next(watcher: &mut PersistentWatcher, what: &str) -> WatchedEvent {
    within(Duration::from_secs(20), what, watcher.changed()).await
}

fn kind_path(e: &WatchedEvent) -> (EventType, &str) {
    (e.event_type, e.path.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_sees_node_and_child_list_changes() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let other = connect(&server).await;
    let mut w = op("addWatch /p persistent", zk.watch("/p", AddWatchMode::Persistent)).await;

    let (p, _) = op("create /p", other.create("/p", b"", &PERSISTENT)).await;
    op("set /p", other.set_data("/p", b"1", None)).await;
    op("create /p/c", other.create("/p/c", b"", &PERSISTENT)).await;
    op("set /p/c (not watched)", other.set_data("/p/c", b"1", None)).await;
    op("create /p/c/g (not watched)", other.create("/p/c/g", b"", &PERSISTENT)).await;
    op("delete /p/c/g", other.delete("/p/c/g", None)).await;
    op("delete /p/c", other.delete("/p/c", None)).await;
    op("set /p again", other.set_data("/p", b"2", None)).await;
    op("delete /p", other.delete("/p", None)).await;

    let first = next(&mut w, "created").await;
    assert_eq!(kind_path(&first), (EventType::NodeCreated, "/p"));
    assert_eq!(first.zxid, event_zxid(server.target(), p.czxid));
    let expected = [
        (EventType::NodeDataChanged, "/p"),
        (EventType::NodeChildrenChanged, "/p"),
        (EventType::NodeChildrenChanged, "/p"),
        (EventType::NodeDataChanged, "/p"),
        (EventType::NodeDeleted, "/p"),
    ];
    for (i, want) in expected.iter().enumerate() {
        let got = next(&mut w, &format!("persistent event {i}")).await;
        assert_eq!(kind_path(&got), *want, "event {i}");
    }
    // Still registered after firing: a new create is seen again.
    op("create /p again", other.create("/p", b"", &PERSISTENT)).await;
    assert_eq!(kind_path(&next(&mut w, "re-created").await), (EventType::NodeCreated, "/p"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_recursive_watch_sees_the_subtree_without_child_events() {
    let server = TestServer::start();
    let zk = connect(&server).await;
    let other = connect(&server).await;
    let mut w =
        op("addWatch /r recursive", zk.watch("/r", AddWatchMode::PersistentRecursive)).await;

    op("create /r", other.create("/r", b"", &PERSISTENT)).await;
    op("create /rx (sibling prefix, not watched)", other.create("/rx", b"", &PERSISTENT)).await;
    op("create /r/a", other.create("/r/a", b"", &PERSISTENT)).await;
    op("set /r/a", other.set_data("/r/a", b"1", None)).await;
    op("create /r/a/b", other.create("/r/a/b", b"", &PERSISTENT)).await;
    op("delete /r/a/b", other.delete("/r/a/b", None)).await;
    op("set /rx (not watched)", other.set_data("/rx", b"1", None)).await;
    op("set /r", other.set_data("/r", b"1", None)).await;

    let expected = [
        (EventType::NodeCreated, "/r"),
        (EventType::NodeCreated, "/r/a"),
        (EventType::NodeDataChanged, "/r/a"),
        (EventType::NodeCreated, "/r/a/b"),
        (EventType::NodeDeleted, "/r/a/b"),
        (EventType::NodeDataChanged, "/r"),
    ];
    for (i, want) in expected.iter().enumerate() {
        let got = next(&mut w, &format!("recursive event {i}")).await;
        assert_eq!(kind_path(&got), *want, "event {i} (no NodeChildrenChanged, no /rx)");
    }
}
