//! Golden bytes: one representative instance of every record type, as hex, pinned with insta.
//! Any change to the wire encoding shows up here as a reviewable diff. The fixed sizes from the
//! reference (§1) are asserted explicitly as well.

mod proto_support;

use proto_support::{hex, unframe};
use zkr_core::proto::client::{
    ClientInfo, ConnectRequest, ConnectResponse, EventType, MultiResult, OpCode, ReplyHeader,
    Request, RequestHeader, Response, WatcherEvent,
};
use zkr_core::proto::codec;
use zkr_core::proto::error::ZkError;
use zkr_core::proto::jute::Writer;
use zkr_core::proto::txn::encode_txn;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Stat, Zxid};

const PASSWD: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
];

fn sample_stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0002,
        mzxid: 0x1_0000_0003,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 1,
        cversion: 2,
        aversion: 0,
        ephemeral_owner: 0x0100_0000_0000_0001,
        data_length: 5,
        num_children: 1,
        pzxid: 0x1_0000_0004,
    }
}

fn entry(out: &mut String, name: &str, bytes: &[u8]) {
    out.push_str(&format!("{name} ({} bytes)\n{}\n\n", bytes.len(), hex(bytes)));
}

fn connect_request(read_only: Option<bool>) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0x1_0000_0007,
        timeout_ms: 30_000,
        session_id: 0x0100_0000_0000_0001,
        passwd: PASSWD.to_vec(),
        read_only,
    }
}

fn connect_response(read_only: Option<bool>) -> ConnectResponse {
    ConnectResponse {
        protocol_version: 0,
        timeout_ms: 30_000,
        session_id: 0x0100_0000_0000_0001,
        passwd: PASSWD.to_vec(),
        read_only,
    }
}

#[test]
fn fixed_sizes_match_the_reference() {
    assert_eq!(unframe(&codec::encode_connect_request(&connect_request(Some(false)))).len(), 45);
    assert_eq!(unframe(&codec::encode_connect_request(&connect_request(None))).len(), 44);
    assert_eq!(unframe(&codec::encode_connect_response(&connect_response(Some(true)))).len(), 37);
    assert_eq!(unframe(&codec::encode_connect_response(&connect_response(None))).len(), 36);
    let mut w = Writer::new();
    w.write_stat(&sample_stat());
    assert_eq!(w.len(), 68);
    let ping = codec::encode_request(&RequestHeader { xid: -2, op: 11 }, &Request::Ping);
    assert_eq!(unframe(&ping).len(), 8);
    let reply = codec::encode_reply(&ReplyHeader { xid: 5, zxid: 9, err: -101 }, None);
    assert_eq!(unframe(&reply).len(), 16);
}

#[test]
fn handshake_and_headers() {
    let mut out = String::new();
    entry(
        &mut out,
        "ConnectRequest",
        &codec::encode_connect_request(&connect_request(Some(false))),
    );
    entry(
        &mut out,
        "ConnectRequest, no readOnly",
        &codec::encode_connect_request(&connect_request(None)),
    );
    entry(
        &mut out,
        "ConnectResponse",
        &codec::encode_connect_response(&connect_response(Some(true))),
    );
    entry(
        &mut out,
        "ConnectResponse, no readOnly",
        &codec::encode_connect_response(&connect_response(None)),
    );
    let ping = codec::encode_request(&RequestHeader { xid: -2, op: 11 }, &Request::Ping);
    entry(&mut out, "RequestHeader (ping)", &ping);
    let reply = codec::encode_reply(&ReplyHeader { xid: 7, zxid: 0x1_0000_0009, err: -101 }, None);
    entry(&mut out, "ReplyHeader (NONODE, no body)", &reply);
    let ev = WatcherEvent {
        event_type: EventType::NodeDataChanged,
        state: 3,
        path: "/app/cfg".to_string(),
    };
    entry(&mut out, "notification WatcherEvent", &codec::encode_notification(0x1_0000_000a, &ev));
    let mut w = Writer::new();
    w.write_stat(&sample_stat());
    entry(&mut out, "Stat", w.as_slice());
    insta::assert_snapshot!("handshake_and_headers", out);
}

fn sample_requests() -> Vec<(&'static str, Request)> {
    let acl = Acl::open_unsafe();
    let create = |op| Request::Create {
        op,
        path: "/a".into(),
        data: Some(b"hi".to_vec()),
        acl: acl.clone(),
        flags: match op {
            OpCode::CreateContainer => 4,
            OpCode::CreateTtl => 5,
            _ => 1,
        },
        ttl: if op == OpCode::CreateTtl { 60_000 } else { -1 },
    };
    vec![
        ("create", create(OpCode::Create)),
        ("create2", create(OpCode::Create2)),
        ("createContainer", create(OpCode::CreateContainer)),
        ("createTTL", create(OpCode::CreateTtl)),
        (
            "create null data",
            Request::Create {
                op: OpCode::Create,
                path: "/n".into(),
                data: None,
                acl: vec![],
                flags: 0,
                ttl: -1,
            },
        ),
        ("delete", Request::Delete { path: "/a".into(), version: -1 }),
        ("exists", Request::Exists { path: "/a".into(), watch: true }),
        ("getData", Request::GetData { path: "/a".into(), watch: false }),
        ("setData", Request::SetData { path: "/a".into(), data: Some(vec![]), version: 3 }),
        ("getACL", Request::GetAcl { path: "/a".into() }),
        ("setACL", Request::SetAcl { path: "/a".into(), acl: Acl::read_unsafe(), version: 0 }),
        (
            "getChildren",
            Request::GetChildren { op: OpCode::GetChildren, path: "/".into(), watch: true },
        ),
        (
            "getChildren2",
            Request::GetChildren { op: OpCode::GetChildren2, path: "/".into(), watch: false },
        ),
        ("sync", Request::Sync { path: "/a".into() }),
        ("ping", Request::Ping),
        ("check", Request::Check { path: "/a".into(), version: 2 }),
        (
            "multi",
            Request::Multi(vec![
                create(OpCode::Create),
                Request::SetData { path: "/a".into(), data: None, version: -1 },
                Request::Check { path: "/a".into(), version: 1 },
                Request::Delete { path: "/a".into(), version: -1 },
            ]),
        ),
        ("multi empty", Request::Multi(vec![])),
        (
            "multiRead",
            Request::MultiRead(vec![
                Request::GetData { path: "/a".into(), watch: false },
                Request::GetChildren { op: OpCode::GetChildren, path: "/".into(), watch: false },
            ]),
        ),
        ("checkWatches", Request::CheckWatches { path: "/a".into(), watcher_type: 2 }),
        ("removeWatches", Request::RemoveWatches { path: "/a".into(), watcher_type: 3 }),
        ("auth", Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"u:p".to_vec() }),
        (
            "setWatches",
            Request::SetWatches {
                relative_zxid: 0x10,
                data: vec!["/d".into()],
                exist: vec!["/e".into()],
                child: vec![],
                persistent: vec![],
                persistent_recursive: vec![],
            },
        ),
        (
            "setWatches2",
            Request::SetWatches {
                relative_zxid: 0x10,
                data: vec![],
                exist: vec![],
                child: vec!["/c".into()],
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/r".into()],
            },
        ),
        ("getEphemerals", Request::GetEphemerals { prefix: "/e".into() }),
        ("getAllChildrenNumber", Request::GetAllChildrenNumber { path: "/".into() }),
        ("addWatch", Request::AddWatch { path: "/w".into(), mode: 1 }),
        ("whoAmI", Request::WhoAmI),
        ("closeSession", Request::CloseSession),
    ]
}

#[test]
fn requests() {
    let mut out = String::new();
    for (name, req) in sample_requests() {
        let header = codec::request_header(5, &req);
        let framed = codec::encode_request(&header, &req);
        // Each sample must decode back to itself, so the snapshot shows valid encodings.
        let decoded = codec::decode_request(unframe(&framed)).unwrap();
        assert_eq!(decoded, (header, Ok(req)), "{name}");
        entry(&mut out, name, &framed);
    }
    insta::assert_snapshot!("requests", out);
}

fn sample_responses() -> Vec<(&'static str, OpCode, Response)> {
    let stat = sample_stat();
    let kids = vec!["a".to_string(), "b".to_string()];
    vec![
        ("empty (delete)", OpCode::Delete, Response::Empty),
        ("CreateResponse", OpCode::Create, Response::Create { path: "/a0000000001".into() }),
        ("Create2Response", OpCode::Create2, Response::Create2 { path: "/a".into(), stat }),
        ("Stat (exists)", OpCode::Exists, Response::Stat(stat)),
        (
            "GetDataResponse",
            OpCode::GetData,
            Response::GetData { data: Some(b"hello".to_vec()), stat },
        ),
        ("GetDataResponse null", OpCode::GetData, Response::GetData { data: None, stat }),
        ("GetACLResponse", OpCode::GetAcl, Response::GetAcl { acl: Acl::open_unsafe(), stat }),
        (
            "GetChildrenResponse",
            OpCode::GetChildren,
            Response::GetChildren { children: kids.clone() },
        ),
        (
            "GetChildren2Response",
            OpCode::GetChildren2,
            Response::GetChildren2 { children: kids.clone(), stat },
        ),
        ("SyncResponse", OpCode::Sync, Response::Sync { path: "/a".into() }),
        (
            "GetEphemeralsResponse",
            OpCode::GetEphemerals,
            Response::GetEphemerals { paths: vec!["/e".into()] },
        ),
        (
            "GetAllChildrenNumberResponse",
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber { total: 7 },
        ),
        ("addWatch ErrorResponse{0}", OpCode::AddWatch, Response::AddWatch),
        (
            "WhoAmIResponse",
            OpCode::WhoAmI,
            Response::WhoAmI(vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into(),
            }]),
        ),
        (
            "multi results",
            OpCode::Multi,
            Response::Multi(vec![
                MultiResult::Create { path: "/a".into() },
                MultiResult::Create2 { path: "/b".into(), stat },
                MultiResult::Delete,
                MultiResult::SetData { stat },
                MultiResult::Check,
            ]),
        ),
        (
            "multi failed",
            OpCode::Multi,
            Response::Multi(vec![
                MultiResult::Error(ZkError::Ok),
                MultiResult::Error(ZkError::NoNode),
                MultiResult::Error(ZkError::RuntimeInconsistency),
            ]),
        ),
        (
            "multiRead results",
            OpCode::MultiRead,
            Response::Multi(vec![
                MultiResult::GetData { data: Some(b"x".to_vec()), stat },
                MultiResult::GetChildren { children: kids },
                MultiResult::Error(ZkError::NoNode),
            ]),
        ),
        ("multi empty", OpCode::Multi, Response::Multi(vec![])),
    ]
}

#[test]
fn responses() {
    let mut out = String::new();
    for (name, op, resp) in sample_responses() {
        let framed =
            codec::encode_reply(&ReplyHeader { xid: 5, zxid: 0x1_0000_0009, err: 0 }, Some(&resp));
        let mut r = zkr_core::proto::jute::Reader::new(&unframe(&framed)[16..]);
        assert_eq!(codec::decode_response(op, &mut r).unwrap(), resp, "{name}");
        assert_eq!(r.remaining(), 0, "{name}");
        entry(&mut out, name, &framed);
    }
    insta::assert_snapshot!("responses", out);
}

fn sample_txns() -> Vec<(&'static str, Txn)> {
    let create = |kind| Txn::Create {
        path: "/a".into(),
        data: Some(b"hi".to_vec()),
        acl: Acl::open_unsafe(),
        kind,
        parent_cversion: 3,
    };
    vec![
        ("CreateTxn", create(CreateKind::Persistent)),
        ("CreateTxn ephemeral", create(CreateKind::Ephemeral)),
        ("CreateContainerTxn", create(CreateKind::Container)),
        ("CreateTTLTxn", create(CreateKind::Ttl(60_000))),
        ("DeleteTxn", Txn::Delete { path: "/a".into() }),
        ("DeleteTxn (deleteContainer)", Txn::DeleteContainer { path: "/c".into() }),
        ("SetDataTxn", Txn::SetData { path: "/a".into(), data: None, version: 2 }),
        ("SetACLTxn", Txn::SetAcl { path: "/a".into(), acl: Acl::read_unsafe(), version: 1 }),
        ("CheckVersionTxn", Txn::Check { path: "/a".into(), version: 2 }),
        ("CreateSessionTxn", Txn::CreateSession { timeout_ms: 30_000 }),
        (
            "CloseSessionTxn",
            Txn::CloseSession { paths_to_delete: vec!["/e1".into(), "/e2".into()] },
        ),
        ("ErrorTxn", Txn::Error { err: ZkError::NodeExists }),
        (
            "MultiTxn",
            Txn::Multi(vec![
                create(CreateKind::Persistent),
                Txn::SetData { path: "/a".into(), data: Some(vec![]), version: 1 },
                Txn::Check { path: "/a".into(), version: 2 },
                Txn::Delete { path: "/a".into() },
            ]),
        ),
        (
            "MultiTxn failed",
            Txn::Multi(vec![
                Txn::Error { err: ZkError::Ok },
                Txn::Error { err: ZkError::BadVersion },
                Txn::Error { err: ZkError::RuntimeInconsistency },
            ]),
        ),
    ]
}

#[test]
fn txns() {
    let mut out = String::new();
    for (name, txn) in sample_txns() {
        let t = LoggedTxn {
            header: TxnHeader {
                session_id: SessionId(0x0100_0000_0000_0001),
                cxid: 9,
                zxid: Zxid(0x1_0000_0010),
                time_ms: 1_700_000_000_000,
            },
            txn,
        };
        let bytes = encode_txn(&t);
        assert_eq!(zkr_core::proto::txn::decode_txn(&bytes).unwrap(), t, "{name}");
        entry(&mut out, name, &bytes);
    }
    insta::assert_snapshot!("txns", out);
}
