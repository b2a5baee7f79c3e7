//! Sessions: ephemerals vanish on close and on expiry, reconnecting with id + password keeps a
//! session (and its ephemerals), wrong passwords and dead sessions are refused, timeouts are
//! negotiated into [2*tickTime, 20*tickTime] (tickTime = 2000 ms in the suite's config).

use std::time::{Duration, Instant};

use zkr_tests::client::{EPHEMERAL, PERSISTENT};
use zkr_tests::raw::{RawClient, RawError, event};
use zkr_tests::{TestServer, connect, connect_with, op, op_err, within};
use zookeeper_client::{Client, Error, EventType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_vanish_when_session_is_closed() {
    let server = TestServer::start();
    // A long session timeout: the node must go at close, long before any expiry.
    let owner =
        connect_with(&server, Client::connector().with_session_timeout(Duration::from_secs(30)))
            .await;
    let observer = connect(&server).await;
    let (stat, _) = op("create /eph", owner.create("/eph", b"", &EPHEMERAL)).await;
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    let (seen, watcher) = op("watch /eph", observer.check_and_watch_stat("/eph")).await;
    assert_eq!(seen, Some(stat));

    let closed_at = Instant::now();
    drop(owner); // the last handle: the crate sends closeSession
    let event = within(Duration::from_secs(20), "NodeDeleted after close", watcher.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/eph"));
    assert!(closed_at.elapsed() < Duration::from_secs(20));
    assert_eq!(op("exists /eph", observer.check_stat("/eph")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_vanish_after_session_expiry() {
    let server = TestServer::start();
    let observer = connect(&server).await;
    // Detached: dropping the last handle closes the TCP connection WITHOUT closeSession.
    let owner = connect_with(
        &server,
        Client::connector().with_session_timeout(Duration::from_secs(4)).with_detached(),
    )
    .await;
    assert_eq!(owner.session_timeout(), Duration::from_secs(4));
    let session = owner.session().clone();
    op("create /eph", owner.create("/eph", b"", &EPHEMERAL)).await;
    op("create /keep", owner.create("/keep", b"", &PERSISTENT)).await;
    let (_, watcher) = op("watch /eph", observer.check_and_watch_stat("/eph")).await;

    let dropped_at = Instant::now();
    drop(owner);
    assert!(
        op("exists /eph right after drop", observer.check_stat("/eph")).await.is_some(),
        "an abandoned session keeps its ephemerals until it expires"
    );
    let event = within(Duration::from_secs(30), "NodeDeleted at expiry", watcher.changed()).await;
    assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDeleted, "/eph"));
    let waited = dropped_at.elapsed();
    assert!(waited >= Duration::from_secs(2), "deleted after {waited:?}: too early for expiry");
    assert!(op("exists /keep", observer.check_stat("/keep")).await.is_some());

    let resumed = within(
        Duration::from_secs(30),
        "reconnect to an expired session",
        Client::connector().with_session(session).connect(&server.hosts()),
    )
    .await;
    assert_eq!(resumed.err(), Some(Error::SessionExpired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_session_id_and_password_keeps_ephemerals() {
    let server = TestServer::start();
    let observer = connect(&server).await;
    let first = connect_with(
        &server,
        Client::connector().with_session_timeout(Duration::from_secs(4)).with_detached(),
    )
    .await;
    let session = first.session().clone();
    op("create /eph", first.create("/eph", b"", &EPHEMERAL)).await;
    drop(first);

    let second = connect_with(
        &server,
        Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .with_session(session.clone()),
    )
    .await;
    assert_eq!(second.session_id(), session.id());
    // Time must pass beyond the session timeout to show the new connection keeps it alive.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let stat = op("exists /eph after 2x timeout", observer.check_stat("/eph")).await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.id().0));
    op("create as the resumed session", second.create("/eph2", b"", &EPHEMERAL)).await;
    let mine = op("own ephemerals", second.list_ephemerals("/")).await;
    assert_eq!(mine.len(), 2, "{mine:?}");

    let (_, watcher) = op("watch /eph", observer.check_and_watch_stat("/eph")).await;
    drop(second); // not detached: closeSession
    within(Duration::from_secs(20), "NodeDeleted after close", watcher.changed()).await;
    assert_eq!(op("exists /eph2", observer.check_stat("/eph2")).await, None);
    assert_eq!(
        op_err("get /eph", observer.get_data("/eph")).await,
        Error::NoNode,
        "closing the resumed session deletes the ephemerals of the first connection too"
    );
}

#[test]
fn raw_reconnect_checks_the_password() {
    let server = TestServer::start();
    let mut first = RawClient::connect(server.addr(), 6000).expect("connect");
    let session = first.session.clone();
    assert_eq!(session.passwd.len(), 16, "a 16-byte password");
    assert_eq!(session.timeout_ms, 6000);
    first.create("/eph", b"x", 1).expect("create ephemeral");
    let last_zxid = first.last_zxid;

    let mut wrong = session.passwd.clone();
    wrong[0] ^= 0xff;
    let refused = RawClient::resume(server.addr(), 6000, session.id, &wrong, last_zxid);
    assert!(matches!(refused, Err(RawError::Expired)), "wrong password: {refused:?}");
    let unknown = RawClient::resume(server.addr(), 6000, session.id ^ 0x5555, &wrong, 0);
    assert!(matches!(unknown, Err(RawError::Expired)), "unknown session: {unknown:?}");

    let mut second = RawClient::resume(server.addr(), 6000, session.id, &session.passwd, last_zxid)
        .expect("resume with the right password");
    assert_eq!(second.session.id, session.id);
    let (data, stat) = second.get_data("/eph", false).expect("the ephemeral survives");
    assert_eq!((data.as_slice(), stat.ephemeral_owner), (&b"x"[..], session.id));
    second.close_session();

    let mut observer = RawClient::connect(server.addr(), 6000).expect("observer");
    assert_eq!(observer.exists("/eph", false), Err(zkr_tests::raw::code::NO_NODE));
    let closed = RawClient::resume(server.addr(), 6000, session.id, &session.passwd, 0);
    assert!(matches!(closed, Err(RawError::Expired)), "closed session: {closed:?}");
    first.abandon();
}

#[test]
fn raw_abandoned_connection_expires_the_session() {
    let server = TestServer::start();
    let mut owner = RawClient::connect(server.addr(), 4000).expect("owner");
    owner.create("/eph", b"", 1).expect("create ephemeral");
    let mut observer = RawClient::connect(server.addr(), 10_000).expect("observer");
    observer.exists("/eph", true).expect("watch /eph");
    let abandoned_at = Instant::now();
    owner.abandon();
    let deleted = observer.wait_for_event(Duration::from_secs(30), "NodeDeleted /eph", |e| {
        e.event_type == event::DELETED && e.path == "/eph"
    });
    assert_eq!(deleted.state, 3, "notifications carry SyncConnected");
    assert!(abandoned_at.elapsed() >= Duration::from_secs(2), "expired too early");
    assert_eq!(observer.events.len(), 1, "{:?}", observer.events);
}

#[test]
fn session_timeout_is_negotiated_into_bounds() {
    let server = TestServer::start();
    let low = RawClient::connect(server.addr(), 1000).expect("connect low");
    assert_eq!(low.session.timeout_ms, 4000, "min = 2 * tickTime");
    let high = RawClient::connect(server.addr(), 100_000).expect("connect high");
    assert_eq!(high.session.timeout_ms, 40_000, "max = 20 * tickTime");
    let mid = RawClient::connect(server.addr(), 7000).expect("connect mid");
    assert_eq!(mid.session.timeout_ms, 7000);
    assert_ne!(low.session.id, high.session.id);
    assert_ne!(high.session.id, mid.session.id);
    for client in [low, high, mid] {
        client.close_session();
    }
}
