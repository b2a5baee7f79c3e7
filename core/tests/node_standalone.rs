//! Scenario tests of the standalone `Node` through encoded client frames.

mod support;

use support::*;
use zkr_core::Config;
use zkr_core::io::{Input, Output};
use zkr_core::proto::client::{EventType, MultiResult, Request, Response};
use zkr_core::proto::error::ZkError;
use zkr_core::types::Zxid;

#[test]
fn new_session_takes_a_zxid_and_gets_a_derived_password() {
    let mut h = Harness::new(Config::default());
    let (_, resp) = h.connect(1);
    assert_eq!(resp.timeout_ms, 30_000);
    assert_eq!((resp.session_id as u64) >> 56, 1, "standalone ids start with 0x01");
    assert_eq!(
        resp.passwd,
        zkr_core::session::session_password(zkr_core::types::SessionId(resp.session_id))
    );
    assert_eq!(resp.read_only, Some(false), "readOnly echoed because the client sent it");
    assert_eq!(h.last_zxid(), Zxid(1), "createSession uses up zxid 1");
}

#[test]
fn no_reply_to_a_write_before_it_is_durable() {
    let mut h = Harness::new(Config::default());
    let (c, _) = h.connect(1);
    h.auto_persist = false;
    h.send(c, 1, &create("/a", b"x", 0));
    assert!(h.pop(c).is_none(), "no reply before Persisted");
    assert!(matches!(h.log.last().unwrap().txn, zkr_core::txn::Txn::Create { .. }));
    h.persist_all();
    let (hdr, body) = h.reply(c, &create("/a", b"x", 0)).expect("reply after Persisted");
    assert_eq!(hdr.err, 0);
    assert_eq!(hdr.zxid, 2, "a write's reply carries its own zxid");
    assert_eq!(body, Some(Response::Create { path: "/a".into() }));
}

#[test]
fn reads_wait_behind_the_sessions_own_writes() {
    let mut h = Harness::new(Config::default());
    let (c, _) = h.connect(1);
    h.auto_persist = false;
    h.send(c, 1, &create("/a", b"v1", 0));
    h.send(c, 2, &get("/a", false));
    assert!(h.pop(c).is_none(), "the read waits for the write before it");
    h.persist_all();
    let (hdr1, _) = h.reply(c, &create("/a", b"v1", 0)).unwrap();
    let (hdr2, body) = h.reply(c, &get("/a", false)).unwrap();
    assert_eq!((hdr1.xid, hdr2.xid), (1, 2), "replies in request order");
    let Some(Response::GetData { data, stat }) = body else { panic!("{body:?}") };
    assert_eq!(data.as_deref(), Some(&b"v1"[..]), "read-your-writes");
    assert_eq!(stat.czxid, 2);
}

#[test]
fn pipelined_writes_see_each_other_before_commit() {
    let mut h = Harness::new(Config::default());
    let (c, _) = h.connect(1);
    h.auto_persist = false;
    h.send(c, 1, &create("/a", b"", 0));
    h.send(c, 2, &create("/a/b", b"", 0));
    h.send(c, 3, &create("/a", b"", 0));
    h.persist_all();
    assert_eq!(h.reply(c, &create("/a", b"", 0)).unwrap().0.err, 0);
    assert_eq!(h.reply(c, &create("/a/b", b"", 0)).unwrap().0.err, 0);
    let (hdr, _) = h.reply(c, &create("/a", b"", 0)).unwrap();
    assert_eq!(hdr.err, ZkError::NodeExists.code());
    assert_eq!(hdr.zxid, 4, "a failed write still takes a zxid");
}

#[test]
fn watch_event_reaches_the_watcher_before_its_next_reply() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    let (b, _) = h.connect(2);
    h.call(a, 1, create("/w", b"0", 0));
    let (_, body) = h.call(b, 1, get("/w", true));
    assert!(matches!(body, Some(Response::GetData { .. })));
    h.call(a, 2, set("/w", b"1", -1));
    // b's next read must come after the event.
    let (_, body) = h.call(b, 2, get("/w", false));
    let events = h.events.remove(&b).expect("event delivered before the read reply");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.event_type, EventType::NodeDataChanged);
    assert_eq!(events[0].0, 4, "3.9: the event carries the zxid of the change");
    let Some(Response::GetData { data, .. }) = body else { panic!() };
    assert_eq!(data.as_deref(), Some(&b"1"[..]));
    // One-shot: a second change fires nothing.
    h.call(a, 3, set("/w", b"2", -1));
    assert!(h.drain_events(b).is_empty());
}

#[test]
fn expired_session_loses_its_ephemerals_and_its_connection() {
    let config = Config { session_timeout_ms_min: 4000, ..Config::default() };
    let mut h = Harness::new(config);
    let (a, resp) = h.connect(1);
    assert_eq!(resp.timeout_ms, 30_000);
    h.call(a, 1, create("/e", b"", 1));
    let (b, _) = h.connect(2);
    h.call(b, 1, Request::Exists { path: "/e".into(), watch: true });
    // 30 s = 300 ticks of 100 ms, rounded up to the 2 s (20 tick) bucket: expiry at tick 300.
    h.tick(299);
    assert!(h.node.tree().get("/e").is_some(), "not expired before its timeout");
    h.tick(1);
    assert!(h.node.tree().get("/e").is_none(), "ephemeral gone after expiry");
    assert!(h.closed.contains(&a), "expired session's connection is closed");
    let events = h.drain_events(b);
    assert_eq!(
        events.iter().map(|e| e.1.event_type).collect::<Vec<_>>(),
        vec![EventType::NodeDeleted]
    );
}

#[test]
fn touched_session_does_not_expire() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    h.call(a, 1, create("/e", b"", 1));
    for i in 0..10 {
        h.tick(100);
        h.call(a, 2 + i, Request::Ping);
    }
    assert!(h.node.tree().get("/e").is_some());
}

#[test]
fn reconnect_with_id_and_password_keeps_ephemerals() {
    let mut h = Harness::new(Config::default());
    let (a, resp) = h.connect(1);
    h.call(a, 1, create("/e", b"", 1));
    h.step(Input::ClientClosed { conn: a });
    let b = h.open(2);
    h.send_connect(b, resp.session_id, resp.passwd.clone());
    let payload = h.pop(b).unwrap();
    let again = zkr_core::proto::codec::decode_connect_response(&payload).unwrap();
    assert_eq!(again.session_id, resp.session_id);
    let (_, body) = h.call(b, 2, Request::GetEphemerals { prefix: "/".into() });
    assert_eq!(body, Some(Response::GetEphemerals { paths: vec!["/e".into()] }));

    let c = h.open(3);
    h.send_connect(c, resp.session_id, vec![1; 16]);
    let refused = zkr_core::proto::codec::decode_connect_response(&h.pop(c).unwrap()).unwrap();
    assert_eq!((refused.timeout_ms, refused.session_id), (0, 0), "bad password refused");
    assert!(h.closed.contains(&c));
    assert!(!h.closed.contains(&b), "the holder is untouched by a refused attempt");
}

#[test]
fn session_moves_to_the_newest_connection() {
    let mut h = Harness::new(Config::default());
    let (a, resp) = h.connect(1);
    let b = h.open(2);
    h.send_connect(b, resp.session_id, resp.passwd.clone());
    assert!(h.closed.contains(&a), "old connection closed when the session moves");
    assert!(!h.closed.contains(&b));
}

/// A client may start its xids again on a new connection (the simulator's client does). The txn
/// of the old connection's request, applied after the session moved, must not answer the new
/// connection's request that reused its xid (sim-shell seed 100763: a delete's outcome was
/// matched to a create and the core panicked; seed 100223: a reply with an older zxid).
#[test]
fn an_old_connections_txn_never_answers_a_reused_xid() {
    let mut h = Harness::new(Config::default());
    let (a, resp) = h.connect(1);
    h.call(a, 1, create("/x", b"", 0));
    h.auto_persist = false;
    h.send(a, 5, &Request::Delete { path: "/x".into(), version: -1 });
    let b = h.open(2);
    h.send_connect(b, resp.session_id, resp.passwd.clone());
    assert!(h.closed.contains(&a), "the session moved to b");
    h.pop(b).expect("connect response");
    h.send(b, 5, &create("/y", b"", 0));
    h.persist_all();
    let (hdr, body) = h.reply(b, &create("/y", b"", 0)).expect("the create's own reply");
    assert_eq!(hdr.xid, 5);
    assert_eq!(hdr.err, 0);
    assert_eq!(hdr.zxid, h.last_zxid().0, "the create's txn, not the delete's");
    assert_eq!(body, Some(Response::Create { path: "/y".into() }));
    assert!(h.pop(b).is_none(), "one reply for one request");
}

#[test]
fn unknown_op_is_unimplemented_then_closed() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    let mut payload = Vec::new();
    payload.extend_from_slice(&7i32.to_be_bytes());
    payload.extend_from_slice(&999i32.to_be_bytes());
    let wall_ms = h.wall_ms;
    h.step(Input::ClientFrame { conn: a, payload, wall_ms });
    let reply = h.pop(a).unwrap();
    assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), -6);
    assert!(h.closed.contains(&a));
}

#[test]
fn failed_multi_changes_nothing_and_reports_each_op() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    let multi = Request::Multi(vec![
        create("/m", b"", 0),
        Request::Delete { path: "/missing".into(), version: -1 },
        set("/m", b"x", -1),
    ]);
    let (hdr, body) = h.call(a, 1, multi);
    assert_eq!(hdr.err, 0, "a failed multi has header err 0");
    assert_eq!(
        body,
        Some(Response::Multi(vec![
            MultiResult::Error(ZkError::Ok),
            MultiResult::Error(ZkError::NoNode),
            MultiResult::Error(ZkError::RuntimeInconsistency),
        ]))
    );
    assert!(h.node.tree().get("/m").is_none());
}

#[test]
fn close_session_replies_then_closes_and_removes_ephemerals() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    h.call(a, 1, create("/e", b"", 1));
    let (hdr, _) = h.call(a, 2, Request::CloseSession);
    assert_eq!(hdr.err, 0);
    assert!(h.closed.contains(&a));
    assert!(h.node.tree().get("/e").is_none());
    assert!(h.node.sessions().is_empty());
}

#[test]
fn recovery_replays_the_log_to_the_same_state() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    h.call(a, 1, create("/p", b"1", 0));
    h.call(a, 2, create("/p/s-", b"", 2));
    h.call(a, 3, create("/e", b"", 1));
    let digest = h.node.tree().digest();
    let init = zkr_core::NodeInit {
        wall_ms: START_MS + 10_000,
        txns: h.log.clone(),
        ..Default::default()
    };
    let node = zkr_core::Node::new(Config::default(), init).expect("recovers");
    assert_eq!(node.tree().digest(), digest);
    assert_eq!(node.last_zxid(), h.last_zxid());
    assert_eq!(node.sessions().len(), 1, "the session survives a restart until it expires");
    // A snapshot plus the rest of the log recovers the same state too.
    let snap = h.node.snapshot();
    let bytes = zkr_core::snapshot::encode(&snap.tree, &snap.sessions);
    let decoded = zkr_core::snapshot::decode(&bytes).unwrap();
    let init =
        zkr_core::NodeInit { wall_ms: START_MS, snapshot: Some(decoded), ..Default::default() };
    let node = zkr_core::Node::new(Config::default(), init).expect("recovers from snapshot");
    assert_eq!(node.tree().digest(), digest);
}

/// Session ids start from the wall clock. A restart whose clock repeats the milliseconds of the
/// previous start (it stepped back) must not hand a new client the id of a session recovered
/// from the log: both clients would hold one session (the password is derived from the id), and
/// the newer connection would take it over while the older one is still established (sim seed
/// 46734 on an ensemble member: "established conn holds its session").
#[test]
fn a_restart_on_a_repeated_clock_never_reuses_a_live_session_id() {
    let mut h = Harness::new(Config::default());
    let (_, first) = h.connect(1);
    let init = zkr_core::NodeInit { wall_ms: START_MS, txns: h.log.clone(), ..Default::default() };
    let node = zkr_core::Node::new(Config::default(), init).expect("recovers");
    let mut h = Harness::from_node(node);
    let back = h.open(2);
    h.send_connect(back, first.session_id, first.passwd.clone());
    let payload = h.pop(back).expect("connect response");
    let resumed = zkr_core::proto::codec::decode_connect_response(&payload).expect("decodes");
    assert_eq!(resumed.session_id, first.session_id, "the recovered session is resumed");
    let (_, second) = h.connect(3);
    assert_ne!(second.session_id, first.session_id, "a new client gets a fresh session id");
    assert_eq!(h.node.sessions().len(), 2, "two sessions, one per client");
    assert!(!h.closed.contains(&back), "the resumed connection keeps its session");
    h.node.check_full();
}

/// A server picks its next session id at start, before it applies its log (an ensemble member
/// before its leader's DIFF). A session of ours that the log creates and closes again is gone
/// from the table by the time a new client asks: a restart whose clock repeats (or is behind)
/// the previous start must still not hand that id out again, or the old client's password
/// (derived from the id) opens the new session. Applying a CreateSession of ours moves the
/// next id past it (`session::past_created`).
#[test]
fn a_restart_never_reuses_the_id_of_a_session_its_log_created_and_closed() {
    let mut h = Harness::new(Config::default());
    let (_, first) = h.connect(1);
    let (b, closed) = h.connect(2);
    let (hdr, _) = h.call(b, 1, Request::CloseSession);
    assert_eq!(hdr.err, 0, "the second session is closed");
    assert_eq!(h.node.sessions().len(), 1, "only the first is live");
    let init = zkr_core::NodeInit { wall_ms: START_MS, txns: h.log.clone(), ..Default::default() };
    let node = zkr_core::Node::new(Config::default(), init).expect("recovers");
    let mut h = Harness::from_node(node);
    assert_eq!(h.node.sessions().len(), 1, "the log recreated the first session only");
    let (_, third) = h.connect(3);
    assert_ne!(third.session_id, first.session_id, "not the live session's id");
    assert_ne!(third.session_id, closed.session_id, "not the closed session's id either");
    assert!(third.session_id > closed.session_id, "past every id the log showed");
    h.node.check_full();
}

#[test]
fn outputs_are_exact_for_a_create() {
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    h.auto_persist = false;
    h.node.step(Input::ClientFrame {
        conn: a,
        payload: {
            let req = create("/x", b"", 0);
            let frame = zkr_core::proto::codec::encode_request(
                &zkr_core::proto::codec::request_header(1, &req),
                &req,
            );
            frame[4..].to_vec()
        },
        wall_ms: h.wall_ms,
    });
    let outputs = h.node.take_outputs();
    assert_eq!(outputs.len(), 1);
    let Output::Persist { txn } = &outputs[0] else { panic!("{outputs:?}") };
    assert_eq!((txn.header.zxid, txn.header.cxid), (Zxid(2), 1));
}

#[test]
fn set_watches_after_reconnect_reports_what_changed_and_rearms_the_rest() {
    let mut h = Harness::new(Config::default());
    let (a, resp) = h.connect(1);
    h.call(a, 1, create("/same", b"", 0));
    h.call(a, 2, create("/changed", b"", 0));
    h.call(a, 3, create("/gone", b"", 0));
    h.call(a, 4, create("/kids", b"", 0));
    let seen = h.last_zxid().0;
    h.call(a, 5, set("/changed", b"x", -1));
    h.call(a, 6, Request::Delete { path: "/gone".into(), version: -1 });
    h.call(a, 7, create("/kids/k", b"", 0));
    h.call(a, 8, create("/born", b"", 0));
    // A second connection takes over the session and re-registers its watches.
    let b = h.open(2);
    h.send_connect(b, resp.session_id, resp.passwd.clone());
    assert!(h.pop(b).is_some(), "connect response");
    let set_watches = Request::SetWatches {
        relative_zxid: seen,
        data: vec!["/same".into(), "/changed".into(), "/gone".into()],
        exist: vec!["/born".into(), "/unborn".into()],
        child: vec!["/kids".into()],
        persistent: vec![],
        persistent_recursive: vec![],
    };
    let (hdr, _) = h.call(b, -8, set_watches);
    assert_eq!(hdr.xid, -8);
    let mut events: Vec<(i64, EventType, String)> = h
        .events
        .remove(&b)
        .unwrap_or_default()
        .into_iter()
        .map(|(z, e)| (z, e.event_type, e.path))
        .collect();
    events.sort_by(|x, y| x.2.cmp(&y.2));
    assert_eq!(
        events,
        vec![
            (-1, EventType::NodeCreated, "/born".to_string()),
            (-1, EventType::NodeDataChanged, "/changed".to_string()),
            (-1, EventType::NodeDeleted, "/gone".to_string()),
            (-1, EventType::NodeChildrenChanged, "/kids".to_string()),
        ],
        "events for what changed since relativeZxid, before the setWatches reply, zxid -1"
    );
    // The unchanged ones are armed again (the old connection was closed by the move).
    assert!(h.closed.contains(&a));
    let (c, _) = h.connect(3);
    h.call(c, 1, set("/same", b"y", -1));
    h.call(c, 2, create("/unborn", b"", 0));
    let again: Vec<EventType> = h.drain_events(b).into_iter().map(|(_, e)| e.event_type).collect();
    assert_eq!(again, vec![EventType::NodeDataChanged, EventType::NodeCreated]);
}

/// Issue 12: ctime/mtime to the millisecond. A txn is stamped with the clock reading its
/// request's frame carried, so a setData 3 ms after a create, within one tick, shows a later
/// mtime (it showed the create's, the last tick's reading, before).
#[test]
fn a_write_is_stamped_with_the_time_its_request_arrived() {
    let mut h = Harness::new(Config::default());
    let (c, _) = h.connect(1);
    h.wall_ms += 42;
    let (header, _) = h.call(c, 1, create("/t", b"", 0));
    assert_eq!(header.err, 0);
    h.wall_ms += 3;
    let (header, body) = h.call(c, 2, set("/t", b"x", -1));
    assert_eq!(header.err, 0);
    let Some(Response::Stat(stat)) = body else { panic!("setData answers a Stat: {body:?}") };
    assert_eq!(stat.ctime, START_MS + 42, "the create's arrival, not the start's tick");
    assert_eq!(stat.mtime, START_MS + 45);
    assert!(stat.mtime > stat.ctime);
}

/// CVE-2024-23944 (ZooKeeper 3.9.2): a watcher is told of a change only if it may READ the
/// node (the parent, for NodeChildrenChanged), whatever the watch's kind; a deleted node is
/// judged by the ACL it had. A recursive watch on /p must not reveal that /p/secret was
/// created, changed or deleted; the deletion leaked until 2026-12-05 (found by the generated
/// differential run, seeds 135 and 177: an ephemeral closed with its session).
#[test]
fn watchers_are_told_only_of_nodes_they_may_read_deleted_ones_included() {
    use zkr_core::types::{Acl, Id, perms};
    let mut h = Harness::new(Config::default());
    let (a, _) = h.connect(1);
    let (b, _) = h.connect(2);
    h.call(a, 1, create("/p", b"", 0));
    let recursive = Request::AddWatch { path: "/p".into(), mode: 1 };
    assert_eq!(h.call(b, 1, recursive).0.err, 0, "addWatch, persistent and recursive");
    // Only a digest user that nobody here is may read it.
    let hidden = vec![Acl { perms: perms::ALL, id: Id::new("digest", "u:bm9ib2R5") }];
    let secret = Request::Create {
        op: zkr_core::proto::client::OpCode::Create,
        path: "/p/secret".into(),
        data: Some(b"s".to_vec()),
        acl: hidden,
        flags: 0,
        ttl: -1,
    };
    assert_eq!(h.call(a, 2, secret).0.err, 0, "creating needs CREATE on /p only");
    assert_eq!(h.call(a, 3, Request::Delete { path: "/p/secret".into(), version: -1 }).0.err, 0);
    h.call(b, 2, get("/p", false));
    assert!(h.drain_events(b).is_empty(), "nothing of /p/secret reaches b");
    // The watch itself works: an open node's create and delete are told.
    h.call(a, 4, create("/p/open", b"", 0));
    h.call(a, 5, Request::Delete { path: "/p/open".into(), version: -1 });
    h.call(b, 3, get("/p", false));
    let told: Vec<(EventType, String)> =
        h.drain_events(b).into_iter().map(|(_, e)| (e.event_type, e.path)).collect();
    let open = |e| (e, "/p/open".to_string());
    assert_eq!(told, vec![open(EventType::NodeCreated), open(EventType::NodeDeleted)]);
}
