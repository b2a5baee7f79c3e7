//! Shared proptest strategies for the `proto_*` tests: arbitrary paths, data, ACLs, Stats and
//! every `Request`, `Response`, `MultiResult`, `WatcherEvent` and `Txn` variant the model allows.

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use zkr_core::proto::client::{
    ClientInfo, ConnectRequest, ConnectResponse, EventType, MultiResult, OpCode, Request, Response,
    WatcherEvent,
};
use zkr_core::proto::error::ZkError;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Stat, Zxid};

/// Paths: mostly well-formed, sometimes any unicode (the codec does not validate paths).
pub fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => vec("[a-z0-9._-]{1,8}", 0..4).prop_map(|segs| format!("/{}", segs.join("/"))),
        1 => ".{0,16}",
    ]
}

/// Node data: null, empty or some bytes.
pub fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![Just(None), Just(Some(vec![])), vec(any::<u8>(), 0..48).prop_map(Some)]
}

/// Raw bytes, possibly empty.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..32)
}

/// Short strings for schemes, ids and names.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{0,8}", ".{0,8}"]
}

/// One ACL entry.
pub fn acl_entry() -> impl Strategy<Value = Acl> {
    (any::<i32>(), name(), name())
        .prop_map(|(perms, scheme, id)| Acl { perms, id: Id { scheme, id } })
}

/// An ACL list.
pub fn acl() -> impl Strategy<Value = Vec<Acl>> {
    vec(acl_entry(), 0..4)
}

/// A list of names or paths.
pub fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(name(), 0..5)
}

/// Any Stat.
pub fn stat() -> impl Strategy<Value = Stat> {
    let longs =
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>());
    let ints = (any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>());
    (longs, ints).prop_map(|((czxid, mzxid, ctime, mtime, owner, pzxid), (v, cv, av, dl, nc))| {
        Stat {
            czxid,
            mzxid,
            ctime,
            mtime,
            version: v,
            cversion: cv,
            aversion: av,
            ephemeral_owner: owner,
            data_length: dl,
            num_children: nc,
            pzxid,
        }
    })
}

/// Every defined ZkError.
pub fn all_errors() -> Vec<ZkError> {
    (-200..=0).filter_map(ZkError::from_code).collect()
}

/// Any defined ZkError.
pub fn zk_error() -> impl Strategy<Value = ZkError> {
    proptest::sample::select(all_errors())
}

/// A create request with any of the four create opcodes.
pub fn create_request() -> impl Strategy<Value = Request> {
    let ops = [OpCode::Create, OpCode::Create2, OpCode::CreateContainer, OpCode::CreateTtl];
    (proptest::sample::select(ops.to_vec()), path(), data(), acl(), any::<i32>(), any::<i64>())
        .prop_map(|(op, path, data, acl, flags, ttl)| {
            let ttl = if op == OpCode::CreateTtl { ttl } else { -1 };
            Request::Create { op, path, data, acl, flags, ttl }
        })
}

/// A sub-op allowed in multi (14).
pub fn multi_write_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request(),
        (path(), any::<i32>()).prop_map(|(path, version)| Request::Delete { path, version }),
        (path(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData {
            path,
            data,
            version
        }),
        (path(), any::<i32>()).prop_map(|(path, version)| Request::Check { path, version }),
    ]
}

/// A multi sub-op in the form it decodes to: ZooKeeper's `Op.create` turns a createTTL whose
/// flags are not a TTL mode into a plain create, so that is the form that round-trips.
pub fn multi_canonical(req: Request) -> Request {
    match req {
        Request::Create { op: OpCode::CreateTtl, path, data, acl, flags, .. }
            if !matches!(flags, 5 | 6) =>
        {
            Request::Create { op: OpCode::Create, path, data, acl, flags, ttl: -1 }
        }
        other => other,
    }
}

/// A sub-op allowed in multiRead (22), with the watch flag already dropped.
pub fn multi_read_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        path().prop_map(|path| Request::GetData { path, watch: false }),
        path().prop_map(|path| Request::GetChildren {
            op: OpCode::GetChildren,
            path,
            watch: false
        }),
    ]
}

/// Requests whose body starts with a path.
pub fn node_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        multi_write_op(),
        (path(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
        (path(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
        path().prop_map(|path| Request::GetAcl { path }),
        (path(), acl(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl {
            path,
            acl,
            version
        }),
        (
            proptest::sample::select(vec![OpCode::GetChildren, OpCode::GetChildren2]),
            path(),
            any::<bool>()
        )
            .prop_map(|(op, path, watch)| Request::GetChildren { op, path, watch }),
        path().prop_map(|path| Request::Sync { path }),
        (path(), any::<i32>())
            .prop_map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type }),
        (path(), any::<i32>())
            .prop_map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type }),
        path().prop_map(|prefix| Request::GetEphemerals { prefix }),
        path().prop_map(|path| Request::GetAllChildrenNumber { path }),
        (path(), any::<i32>()).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
    ]
}

/// setWatches (no persistent lists) or setWatches2.
pub fn set_watches() -> impl Strategy<Value = Request> {
    (any::<i64>(), strings(), strings(), strings(), strings(), strings(), any::<bool>()).prop_map(
        |(relative_zxid, data, exist, child, persistent, recursive, v2)| Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent: if v2 { persistent } else { vec![] },
            persistent_recursive: if v2 { recursive } else { vec![] },
        },
    )
}

/// Any request the model can hold.
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        6 => node_request(),
        1 => Just(Request::Ping),
        1 => Just(Request::WhoAmI),
        1 => Just(Request::CloseSession),
        2 => vec(multi_write_op().prop_map(multi_canonical), 0..5).prop_map(Request::Multi),
        2 => vec(multi_read_op(), 0..5).prop_map(Request::MultiRead),
        1 => (any::<i32>(), name(), bytes())
            .prop_map(|(auth_type, scheme, auth)| Request::Auth { auth_type, scheme, auth }),
        1 => set_watches(),
    ]
}

/// Any multi/multiRead result.
pub fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        path().prop_map(|path| MultiResult::Create { path }),
        (path(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        Just(MultiResult::Check),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        strings().prop_map(|children| MultiResult::GetChildren { children }),
        zk_error().prop_map(MultiResult::Error),
    ]
}

/// Any response, with the opcode of a request it answers.
pub fn response() -> impl Strategy<Value = (OpCode, Response)> {
    prop_oneof![
        Just((OpCode::Delete, Response::Empty)),
        path().prop_map(|path| (OpCode::Create, Response::Create { path })),
        (path(), stat())
            .prop_map(|(path, stat)| (OpCode::Create2, Response::Create2 { path, stat })),
        stat().prop_map(|s| (OpCode::Exists, Response::Stat(s))),
        (data(), stat())
            .prop_map(|(data, stat)| (OpCode::GetData, Response::GetData { data, stat })),
        (acl(), stat()).prop_map(|(acl, stat)| (OpCode::GetAcl, Response::GetAcl { acl, stat })),
        strings().prop_map(|children| (OpCode::GetChildren, Response::GetChildren { children })),
        (strings(), stat()).prop_map(|(children, stat)| {
            (OpCode::GetChildren2, Response::GetChildren2 { children, stat })
        }),
        path().prop_map(|path| (OpCode::Sync, Response::Sync { path })),
        vec(multi_result(), 0..5).prop_map(|r| (OpCode::Multi, Response::Multi(r))),
        strings().prop_map(|paths| (OpCode::GetEphemerals, Response::GetEphemerals { paths })),
        any::<i32>().prop_map(|total| {
            (OpCode::GetAllChildrenNumber, Response::GetAllChildrenNumber { total })
        }),
        Just((OpCode::AddWatch, Response::AddWatch)),
        vec((name(), name()), 0..3).prop_map(|v| {
            let infos = v.into_iter().map(|(auth_scheme, user)| ClientInfo { auth_scheme, user });
            (OpCode::WhoAmI, Response::WhoAmI(infos.collect()))
        }),
    ]
}

/// Any ConnectRequest, with and without the readOnly byte.
pub fn connect_request() -> impl Strategy<Value = ConnectRequest> {
    (any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>(), bytes(), any::<Option<bool>>())
        .prop_map(
            |(protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only)| {
                ConnectRequest {
                    protocol_version,
                    last_zxid_seen,
                    timeout_ms,
                    session_id,
                    passwd,
                    read_only,
                }
            },
        )
}

/// Any ConnectResponse, with and without the readOnly byte.
pub fn connect_response() -> impl Strategy<Value = ConnectResponse> {
    (any::<i32>(), any::<i32>(), any::<i64>(), bytes(), any::<Option<bool>>()).prop_map(
        |(protocol_version, timeout_ms, session_id, passwd, read_only)| ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        },
    )
}

/// Any watcher event the server can send.
pub fn watcher_event() -> impl Strategy<Value = WatcherEvent> {
    let types = vec![
        EventType::NodeCreated,
        EventType::NodeDeleted,
        EventType::NodeDataChanged,
        EventType::NodeChildrenChanged,
    ];
    (proptest::sample::select(types), any::<i32>(), path())
        .prop_map(|(event_type, state, path)| WatcherEvent { event_type, state, path })
}

/// Any create kind.
pub fn create_kind() -> impl Strategy<Value = CreateKind> {
    prop_oneof![
        Just(CreateKind::Persistent),
        Just(CreateKind::Ephemeral),
        Just(CreateKind::Container),
        any::<i64>().prop_map(CreateKind::Ttl),
    ]
}

/// A txn allowed inside a MultiTxn.
pub fn multi_sub_txn() -> impl Strategy<Value = Txn> {
    prop_oneof![
        (path(), data(), acl(), create_kind(), any::<i32>()).prop_map(
            |(path, data, acl, kind, parent_cversion)| Txn::Create {
                path,
                data,
                acl,
                kind,
                parent_cversion
            }
        ),
        path().prop_map(|path| Txn::Delete { path }),
        (path(), data(), any::<i32>()).prop_map(|(path, data, version)| Txn::SetData {
            path,
            data,
            version
        }),
        (path(), any::<i32>()).prop_map(|(path, version)| Txn::Check { path, version }),
        zk_error().prop_map(|err| Txn::Error { err }),
    ]
}

/// Any txn.
pub fn txn() -> impl Strategy<Value = Txn> {
    prop_oneof![
        5 => multi_sub_txn(),
        1 => any::<i32>().prop_map(|timeout_ms| Txn::CreateSession { timeout_ms }),
        1 => vec(path(), 0..4).prop_map(|paths_to_delete| Txn::CloseSession { paths_to_delete }),
        1 => path().prop_map(|path| Txn::DeleteContainer { path }),
        1 => (path(), acl(), any::<i32>())
            .prop_map(|(path, acl, version)| Txn::SetAcl { path, acl, version }),
        2 => vec(multi_sub_txn(), 0..5).prop_map(Txn::Multi),
    ]
}

/// Any logged txn.
pub fn logged_txn() -> impl Strategy<Value = LoggedTxn> {
    (any::<i64>(), any::<i32>(), any::<i64>(), any::<i64>(), txn()).prop_map(
        |(session, cxid, zxid, time_ms, txn)| LoggedTxn {
            header: TxnHeader { session_id: SessionId(session), cxid, zxid: Zxid(zxid), time_ms },
            txn,
        },
    )
}

/// Removes the 4-byte frame length, checking that it matches.
pub fn unframe(framed: &[u8]) -> &[u8] {
    assert!(framed.len() >= 4, "frame shorter than its length field");
    let len = i32::from_be_bytes(framed[..4].try_into().unwrap());
    assert_eq!(len as usize, framed.len() - 4, "frame length field");
    &framed[4..]
}

/// Lowercase hex, 16 bytes per line, grouped by 4.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let groups: Vec<String> = line
            .chunks(4)
            .map(|g| g.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .collect();
        out.push_str(&groups.join(" "));
    }
    out
}
