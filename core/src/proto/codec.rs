//! Encoding and decoding of the client records (reference §2–§5, §9) on top of [`jute`].
//!
//! Server side: [`decode_connect_request`], [`decode_request`], [`encode_connect_response`],
//! [`encode_reply`], [`encode_notification`]. Client side (simulated clients and tests):
//! [`encode_connect_request`], [`encode_request`], [`decode_connect_response`],
//! [`decode_reply_header`], [`decode_response`], [`decode_watcher_event`].
//!
//! Invariants:
//! - every `encode_*` that produces a whole message returns it **framed** (4-byte length first);
//!   every `decode_*` takes a frame **payload** (length already removed) or a [`Reader`] on one;
//! - decoders never panic on any bytes; bytes after a request body or a ConnectRequest are
//!   ignored, as ZooKeeper's record deserialization ignores them;
//! - a null path is read as ZooKeeper's processors treat it: where they dereference it (reads,
//!   create, delete, checkWatches) it makes the body malformed (MARSHALLINGERROR), elsewhere it
//!   reads as the empty path (which then fails validation as BADARGUMENTS, or is harmless);
//! - `decode_request` separates "the header itself is unreadable" (the connection is closed) from
//!   "the body is bad" (the server answers the xid with MARSHALLINGERROR or UNIMPLEMENTED);
//! - for every value the model can hold, `decode(encode(x)) == x`, except that multiRead drops its
//!   sub-ops' watch flags (as ZooKeeper does, §9) and setWatches (101) carries no persistent lists.

use crate::proto::client::{
    ClientInfo, ConnectRequest, ConnectResponse, EventType, MultiResult, OpCode, ReplyHeader,
    Request, RequestHeader, Response, WatcherEvent, xid,
};
use crate::proto::error::{DecodeError, ZkError};
use crate::proto::frame::frame;
use crate::proto::jute::{self, Reader, Writer};

/// Why a request body (after a readable `RequestHeader`) was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// An opcode the server does not serve from clients (unknown, reconfig, sasl, notification,
    /// deleteContainer, ...): ZooKeeper answers UNIMPLEMENTED and closes the connection.
    UnknownOp(i32),
    /// The body does not decode, has trailing bytes, or is a multi with a forbidden or mixed op:
    /// ZooKeeper answers MARSHALLINGERROR.
    Malformed(DecodeError),
}

impl From<DecodeError> for BodyError {
    fn from(e: DecodeError) -> BodyError {
        BodyError::Malformed(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake.

fn read_connect_tail(r: &mut Reader<'_>, what: &'static str) -> Result<Option<bool>, DecodeError> {
    // The readOnly byte is optional (clients up to 3.3 leave it out; ProtocolManager tries it).
    let read_only = if r.remaining() == 0 { None } else { Some(r.read_bool(what)?) };
    r.finish(what)?;
    Ok(read_only)
}

/// Decodes the first frame of a connection. The trailing `readOnly` byte is optional; anything
/// after it is ignored, as ZooKeeper's `readConnectRequest` ignores it.
pub fn decode_connect_request(payload: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let mut r = Reader::new(payload);
    let protocol_version = r.read_i32("ConnectRequest.protocolVersion")?;
    let last_zxid_seen = r.read_i64("ConnectRequest.lastZxidSeen")?;
    let timeout_ms = r.read_i32("ConnectRequest.timeOut")?;
    let session_id = r.read_i64("ConnectRequest.sessionId")?;
    let passwd = r.read_buffer("ConnectRequest.passwd")?.unwrap_or_default();
    let read_only = match r.remaining() {
        0 => None,
        _ => Some(r.read_bool("ConnectRequest.readOnly")?),
    };
    assert!(r.position() >= 28 + passwd.len());
    Ok(ConnectRequest {
        protocol_version,
        last_zxid_seen,
        timeout_ms,
        session_id,
        passwd,
        read_only,
    })
}

/// Encodes a `ConnectRequest`, framed (client side).
pub fn encode_connect_request(req: &ConnectRequest) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i32(req.protocol_version);
    w.write_i64(req.last_zxid_seen);
    w.write_i32(req.timeout_ms);
    w.write_i64(req.session_id);
    w.write_buffer(Some(&req.passwd));
    if let Some(read_only) = req.read_only {
        w.write_bool(read_only);
    }
    assert!(w.len() == 28 + req.passwd.len() + usize::from(req.read_only.is_some()));
    frame(w.as_slice())
}

/// Encodes a `ConnectResponse`, framed; the `readOnly` byte is written only when `Some`.
pub fn encode_connect_response(resp: &ConnectResponse) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i32(resp.protocol_version);
    w.write_i32(resp.timeout_ms);
    w.write_i64(resp.session_id);
    w.write_buffer(Some(&resp.passwd));
    if let Some(read_only) = resp.read_only {
        w.write_bool(read_only);
    }
    assert!(w.len() == 20 + resp.passwd.len() + usize::from(resp.read_only.is_some()));
    frame(w.as_slice())
}

/// Decodes a `ConnectResponse` payload (client side).
pub fn decode_connect_response(payload: &[u8]) -> Result<ConnectResponse, DecodeError> {
    let mut r = Reader::new(payload);
    let protocol_version = r.read_i32("ConnectResponse.protocolVersion")?;
    let timeout_ms = r.read_i32("ConnectResponse.timeOut")?;
    let session_id = r.read_i64("ConnectResponse.sessionId")?;
    let passwd = r.read_buffer("ConnectResponse.passwd")?.unwrap_or_default();
    let read_only = read_connect_tail(&mut r, "ConnectResponse.readOnly")?;
    assert!(r.remaining() == 0);
    Ok(ConnectResponse { protocol_version, timeout_ms, session_id, passwd, read_only })
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// The opcode a request is sent with. `SetWatches` maps to setWatches2 (105) only when it holds
/// persistent watches, as the Java client chooses.
pub fn request_op(req: &Request) -> OpCode {
    match req {
        Request::Create { op, .. } | Request::GetChildren { op, .. } => *op,
        Request::Delete { .. } => OpCode::Delete,
        Request::Exists { .. } => OpCode::Exists,
        Request::GetData { .. } => OpCode::GetData,
        Request::SetData { .. } => OpCode::SetData,
        Request::GetAcl { .. } => OpCode::GetAcl,
        Request::SetAcl { .. } => OpCode::SetAcl,
        Request::Sync { .. } => OpCode::Sync,
        Request::Ping => OpCode::Ping,
        Request::Check { .. } => OpCode::Check,
        Request::Multi(_) => OpCode::Multi,
        Request::MultiRead(_) => OpCode::MultiRead,
        Request::CheckWatches { .. } => OpCode::CheckWatches,
        Request::RemoveWatches { .. } => OpCode::RemoveWatches,
        Request::Auth { .. } => OpCode::Auth,
        Request::SetWatches { persistent, persistent_recursive, .. } => {
            if persistent.is_empty() && persistent_recursive.is_empty() {
                OpCode::SetWatches
            } else {
                OpCode::SetWatches2
            }
        }
        Request::GetEphemerals { .. } => OpCode::GetEphemerals,
        Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
        Request::AddWatch { .. } => OpCode::AddWatch,
        Request::WhoAmI => OpCode::WhoAmI,
        Request::CloseSession => OpCode::CloseSession,
    }
}

/// The header that goes with `req` for the given client xid (special xids for ping, auth and
/// setWatches are chosen here).
pub fn request_header(client_xid: i32, req: &Request) -> RequestHeader {
    let xid = match req {
        Request::Ping => xid::PING,
        Request::Auth { .. } => xid::AUTH,
        Request::SetWatches { .. } => xid::SET_WATCHES,
        _ => client_xid,
    };
    RequestHeader { xid, op: request_op(req).code() }
}

/// Reads `RequestHeader{xid, type}`.
pub fn decode_request_header(r: &mut Reader<'_>) -> Result<RequestHeader, DecodeError> {
    let xid = r.read_i32("RequestHeader.xid")?;
    let op = r.read_i32("RequestHeader.type")?;
    Ok(RequestHeader { xid, op })
}

/// Decodes one client frame after the handshake. `Err` only when the 8-byte header itself is
/// unreadable; a bad body is reported next to the header so that the xid can be answered.
pub fn decode_request(
    payload: &[u8],
) -> Result<(RequestHeader, Result<Request, BodyError>), DecodeError> {
    let mut r = Reader::new(payload);
    let header = decode_request_header(&mut r)?;
    assert!(r.position() == 8);
    // Trailing bytes are ignored, as `ByteBufferInputStream.byteBuffer2Record` does (issue 12).
    let body = decode_request_body(header.op, &mut r);
    assert!(r.position() <= payload.len());
    Ok((header, body))
}

/// Decodes the body of a request with raw opcode `op`, leaving the reader after it.
pub fn decode_request_body(op: i32, r: &mut Reader<'_>) -> Result<Request, BodyError> {
    let Some(code) = OpCode::from_i32(op) else {
        return Err(BodyError::UnknownOp(op));
    };
    match code {
        OpCode::Multi => Ok(Request::Multi(decode_multi_ops(r, MultiKind::Write)?)),
        OpCode::MultiRead => Ok(Request::MultiRead(decode_multi_ops(r, MultiKind::Read)?)),
        OpCode::Ping => Ok(Request::Ping),
        OpCode::WhoAmI => Ok(Request::WhoAmI),
        OpCode::CloseSession => Ok(Request::CloseSession),
        OpCode::Auth => Ok(Request::Auth {
            auth_type: r.read_i32("AuthPacket.type")?,
            scheme: r.read_string("AuthPacket.scheme")?,
            auth: r.read_buffer("AuthPacket.auth")?.unwrap_or_default(),
        }),
        OpCode::SetWatches | OpCode::SetWatches2 => decode_set_watches(code, r),
        OpCode::Notification
        | OpCode::Reconfig
        | OpCode::DeleteContainer
        | OpCode::Sasl
        | OpCode::CreateSession
        | OpCode::Error => Err(BodyError::UnknownOp(op)),
        _ => Ok(decode_node_op(code, r)?),
    }
}

/// A setWatches path list: ZooKeeper iterates it, so a null list is malformed.
fn read_watch_paths(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
    let list = r.read_vec_sized(what, jute::STRING_MIN_BYTES, |r| r.read_string(what))?;
    list.ok_or(DecodeError::BadValue { what, value: -1 })
}

fn decode_set_watches(code: OpCode, r: &mut Reader<'_>) -> Result<Request, BodyError> {
    assert!(code == OpCode::SetWatches || code == OpCode::SetWatches2);
    let relative_zxid = r.read_i64("SetWatches.relativeZxid")?;
    let data = read_watch_paths(r, "SetWatches.dataWatches")?;
    let exist = read_watch_paths(r, "SetWatches.existWatches")?;
    let child = read_watch_paths(r, "SetWatches.childWatches")?;
    let (persistent, persistent_recursive) = if code == OpCode::SetWatches2 {
        let p = read_watch_paths(r, "SetWatches2.persistentWatches")?;
        (p, read_watch_paths(r, "SetWatches2.persistentRecursiveWatches")?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Request::SetWatches { relative_zxid, data, exist, child, persistent, persistent_recursive })
}

/// Reads the rest of a `CreateRequest` (or `CreateTTLRequest` for op 21) after its path.
fn decode_create(code: OpCode, path: String, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    let data = r.read_buffer("CreateRequest.data")?;
    let acl = r.read_acls()?;
    let flags = r.read_i32("CreateRequest.flags")?;
    let ttl = if code == OpCode::CreateTtl { r.read_i64("CreateTTLRequest.ttl")? } else { -1 };
    Ok(Request::Create { op: code, path, data, acl, flags, ttl })
}

/// Decodes the per-path ops: everything that can appear inside a multi, plus the other ops whose
/// body starts with a path. `code` must be one of them.
fn decode_node_op(code: OpCode, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    let path = match r.read_ustring("path")? {
        Some(path) => path,
        None if null_path_is_malformed(code) => {
            return Err(DecodeError::BadValue { what: "null path", value: -1 });
        }
        None => String::new(),
    };
    let req = match code {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            decode_create(code, path, r)?
        }
        OpCode::Delete => Request::Delete { path, version: r.read_i32("DeleteRequest.version")? },
        OpCode::Exists => Request::Exists { path, watch: r.read_bool("ExistsRequest.watch")? },
        OpCode::GetData => Request::GetData { path, watch: r.read_bool("GetDataRequest.watch")? },
        OpCode::SetData => {
            let data = r.read_buffer("SetDataRequest.data")?;
            Request::SetData { path, data, version: r.read_i32("SetDataRequest.version")? }
        }
        OpCode::GetAcl => Request::GetAcl { path },
        OpCode::SetAcl => {
            let acl = r.read_acls()?;
            Request::SetAcl { path, acl, version: r.read_i32("SetACLRequest.version")? }
        }
        OpCode::GetChildren | OpCode::GetChildren2 => {
            Request::GetChildren { op: code, path, watch: r.read_bool("GetChildren.watch")? }
        }
        OpCode::Sync => Request::Sync { path },
        OpCode::Check => Request::Check { path, version: r.read_i32("CheckVersion.version")? },
        OpCode::CheckWatches => {
            Request::CheckWatches { path, watcher_type: r.read_i32("CheckWatches.type")? }
        }
        OpCode::RemoveWatches => {
            Request::RemoveWatches { path, watcher_type: r.read_i32("RemoveWatches.type")? }
        }
        OpCode::GetEphemerals => Request::GetEphemerals { prefix: path },
        OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber { path },
        OpCode::AddWatch => Request::AddWatch { path, mode: r.read_i32("AddWatch.mode")? },
        other => unreachable!("decode_node_op called for {other:?}"),
    };
    Ok(req)
}

/// A per-path op whose path is null (jute length -1). ZooKeeper's processors dereference the
/// path of reads, creates, deletes and checkWatches (a NullPointerException, answered
/// MARSHALLINGERROR, as a failed txn for the writes); the others go through `validatePath`
/// (BADARGUMENTS) or never look at it, as the empty path does here.
fn null_path_is_malformed(code: OpCode) -> bool {
    matches!(
        code,
        OpCode::Exists
            | OpCode::GetData
            | OpCode::GetChildren
            | OpCode::GetChildren2
            | OpCode::GetAcl
            | OpCode::GetAllChildrenNumber
            | OpCode::CheckWatches
            | OpCode::Create
            | OpCode::Create2
            | OpCode::CreateContainer
            | OpCode::CreateTtl
            | OpCode::Delete
    )
}

/// Which multi a sub-op list belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MultiKind {
    /// multi (14): create*, delete, setData, check.
    Write,
    /// multiRead (22): getChildren, getData.
    Read,
}

/// The kind of a sub-op ZooKeeper's `MultiOperationRecord` accepts (`Op.OpKind`), or `None`
/// for any other opcode ("Invalid type of op").
fn multi_op_kind(code: OpCode) -> Option<MultiKind> {
    match code {
        OpCode::Create
        | OpCode::Create2
        | OpCode::CreateContainer
        | OpCode::CreateTtl
        | OpCode::Delete
        | OpCode::SetData
        | OpCode::Check => Some(MultiKind::Write),
        OpCode::GetChildren | OpCode::GetData => Some(MultiKind::Read),
        _ => None,
    }
}

/// `Op.create(path, data, acl, flags, ttl)`: a createTTL sub-op whose flags are not a TTL mode
/// becomes a plain create (opcode 1, its ttl dropped), so its result is `create`'s.
fn multi_create_ttl(req: Request) -> Request {
    match req {
        Request::Create { op: OpCode::CreateTtl, path, data, acl, flags, .. }
            if !matches!(flags, 5 | 6) =>
        {
            Request::Create { op: OpCode::Create, path, data, acl, flags, ttl: -1 }
        }
        other => other,
    }
}

/// Reads `MultiHeader{type, done, err}` + request records until a header with `done` set
/// (ZooKeeper's `MultiOperationRecord` stops on `done` whatever the type). As there, the ops
/// must all be of one kind (reads or writes: mixing them is malformed), whichever the opcode
/// of the request: a multi of reads is refused when it is prepared, and a multiRead of writes
/// is answered MARSHALLINGERROR with an empty result list when it is served.
fn decode_multi_ops(r: &mut Reader<'_>, kind: MultiKind) -> Result<Vec<Request>, DecodeError> {
    let mut ops = Vec::new();
    let mut list_kind = None;
    loop {
        let start = r.position();
        let op = r.read_i32("MultiHeader.type")?;
        let done = r.read_bool("MultiHeader.done")?;
        let _err = r.read_i32("MultiHeader.err")?;
        if done {
            return Ok(ops);
        }
        let bad = |what| DecodeError::BadValue { what, value: i64::from(op) };
        let code = OpCode::from_i32(op).ok_or(bad("multi op type"))?;
        let sub_kind = multi_op_kind(code).ok_or(bad("multi op type"))?;
        if *list_kind.get_or_insert(sub_kind) != sub_kind {
            return Err(bad("multi mixing read and write ops"));
        }
        if kind == MultiKind::Write && sub_kind == MultiKind::Read {
            // ZooKeeper fails such a multi when it prepares it: the same MARSHALLINGERROR txn.
            return Err(bad("multi of read ops"));
        }
        let sub = match multi_create_ttl(decode_node_op(code, r)?) {
            // Watches are never set by multiRead (§9).
            Request::GetData { path, .. } => Request::GetData { path, watch: false },
            Request::GetChildren { op, path, .. } => {
                Request::GetChildren { op, path, watch: false }
            }
            other => other,
        };
        // Every sub-op takes its 9-byte header plus a path: the loop is bounded by the input.
        assert!(r.position() >= start + 9 + jute::STRING_MIN_BYTES);
        ops.push(sub);
    }
}

/// Encodes a request with its header, framed (client side). The body is chosen by the request,
/// except that `SetWatches` is written as setWatches2 when `header.op` says 105.
pub fn encode_request(header: &RequestHeader, req: &Request) -> Vec<u8> {
    // Written in place behind its length prefix, with room for a typical request up front:
    // growing field by field and then copying into a frame was a third of the cost.
    let mut w = Writer::framed(ENCODE_REQUEST_ROOM);
    w.write_i32(header.xid);
    w.write_i32(header.op);
    write_request_body(&mut w, header.op, req);
    w.into_frame()
}

/// Bytes `encode_request` reserves: a header, a path and a small value with an ACL.
const ENCODE_REQUEST_ROOM: usize = 256;

fn write_request_body(w: &mut Writer, op: i32, req: &Request) {
    match req {
        Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        Request::Multi(ops) | Request::MultiRead(ops) => write_multi_ops(w, ops),
        Request::Auth { auth_type, scheme, auth } => {
            w.write_i32(*auth_type);
            w.write_string(scheme);
            w.write_buffer(Some(auth));
        }
        Request::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } => {
            let v2 = op == OpCode::SetWatches2.code();
            if !v2 {
                assert!(persistent.is_empty(), "setWatches (101) cannot carry persistent watches");
                assert!(persistent_recursive.is_empty(), "setWatches (101): no recursive watches");
            }
            w.write_i64(*relative_zxid);
            w.write_strings(data);
            w.write_strings(exist);
            w.write_strings(child);
            if v2 {
                w.write_strings(persistent);
                w.write_strings(persistent_recursive);
            }
        }
        _ => write_node_op(w, req),
    }
}

fn write_node_op(w: &mut Writer, req: &Request) {
    match req {
        Request::Create { op, path, data, acl, flags, ttl } => {
            w.write_string(path);
            w.write_buffer(data.as_deref());
            w.write_acls(acl);
            w.write_i32(*flags);
            if *op == OpCode::CreateTtl {
                w.write_i64(*ttl);
            }
        }
        Request::Delete { path, version } | Request::Check { path, version } => {
            w.write_string(path);
            w.write_i32(*version);
        }
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch, .. } => {
            w.write_string(path);
            w.write_bool(*watch);
        }
        Request::SetData { path, data, version } => {
            w.write_string(path);
            w.write_buffer(data.as_deref());
            w.write_i32(*version);
        }
        Request::SetAcl { path, acl, version } => {
            w.write_string(path);
            w.write_acls(acl);
            w.write_i32(*version);
        }
        Request::GetAcl { path }
        | Request::Sync { path }
        | Request::GetEphemerals { prefix: path }
        | Request::GetAllChildrenNumber { path } => w.write_string(path),
        Request::CheckWatches { path, watcher_type: n }
        | Request::RemoveWatches { path, watcher_type: n }
        | Request::AddWatch { path, mode: n } => {
            w.write_string(path);
            w.write_i32(*n);
        }
        other => unreachable!("write_node_op called for {other:?}"),
    }
}

fn write_multi_header(w: &mut Writer, op: i32, done: bool, err: i32) {
    w.write_i32(op);
    w.write_bool(done);
    w.write_i32(err);
}

/// Writes sub-ops with their `MultiHeader`s and the end marker. Any op with a path-first body
/// can be written, even one the server will refuse (clients may test MARSHALLINGERROR); ops
/// without such a body cannot be framed inside a multi at all.
fn write_multi_ops(w: &mut Writer, ops: &[Request]) {
    for sub in ops {
        let op = request_op(sub);
        let bodyless_or_nested = matches!(
            sub,
            Request::Ping
                | Request::WhoAmI
                | Request::CloseSession
                | Request::Multi(_)
                | Request::MultiRead(_)
                | Request::Auth { .. }
                | Request::SetWatches { .. }
        );
        assert!(!bodyless_or_nested, "{op:?} cannot be framed inside a multi");
        write_multi_header(w, op.code(), false, -1);
        write_node_op(w, sub);
    }
    write_multi_header(w, -1, true, -1);
}

// ---------------------------------------------------------------------------------------------
// Replies and notifications.

fn write_reply_header(w: &mut Writer, h: &ReplyHeader) {
    w.write_i32(h.xid);
    w.write_i64(h.zxid);
    w.write_i32(h.err);
}

/// Encodes a reply, framed: the header, then the body only when `body` is `Some` (the caller
/// passes `None` for errors and for ops without a body).
pub fn encode_reply(header: &ReplyHeader, body: Option<&Response>) -> Vec<u8> {
    // Header and Stat (96 bytes) and ~100 bytes of data fit without growing.
    let mut w = Writer::framed(REPLY_BYTES_TYPICAL);
    write_reply_header(&mut w, header);
    assert!(w.len() == 4 + 16);
    if let Some(body) = body {
        write_response(&mut w, body);
    }
    w.into_frame()
}

/// Room reserved for a reply before encoding it (issue 14: one allocation per reply).
const REPLY_BYTES_TYPICAL: usize = 240;

/// Encodes a watch notification, framed: `ReplyHeader{-1, zxid, 0}` + `WatcherEvent`.
pub fn encode_notification(zxid: i64, ev: &WatcherEvent) -> Vec<u8> {
    let mut w = Writer::framed(16 + 12 + ev.path.len());
    write_reply_header(&mut w, &ReplyHeader { xid: xid::NOTIFICATION, zxid, err: 0 });
    w.write_i32(ev.event_type as i32);
    w.write_i32(ev.state);
    w.write_string(&ev.path);
    assert!(w.len() == 4 + 16 + 12 + ev.path.len());
    w.into_frame()
}

/// Writes a response body (no header).
pub fn write_response(w: &mut Writer, resp: &Response) {
    match resp {
        Response::Empty => {}
        Response::Create { path } | Response::Sync { path } => w.write_string(path),
        Response::Create2 { path, stat } => {
            w.write_string(path);
            w.write_stat(stat);
        }
        Response::Stat(stat) => w.write_stat(stat),
        Response::GetData { data, stat } => {
            w.write_buffer(data.as_deref());
            w.write_stat(stat);
        }
        Response::GetAcl { acl, stat } => {
            w.write_acls(acl);
            w.write_stat(stat);
        }
        Response::GetChildren { children } => w.write_strings(children),
        Response::GetChildren2 { children, stat } => {
            w.write_strings(children);
            w.write_stat(stat);
        }
        Response::Multi(results) => write_multi_results(w, results),
        Response::GetEphemerals { paths } => w.write_strings(paths),
        Response::GetAllChildrenNumber { total } => w.write_i32(*total),
        Response::AddWatch => w.write_i32(0),
        Response::WhoAmI(infos) => w.write_vec(infos, |w, info| {
            w.write_string(&info.auth_scheme);
            w.write_string(&info.user);
        }),
    }
}

fn write_multi_results(w: &mut Writer, results: &[MultiResult]) {
    for result in results {
        match result {
            MultiResult::Create { path } => {
                write_multi_header(w, OpCode::Create.code(), false, 0);
                w.write_string(path);
            }
            MultiResult::Create2 { path, stat } => {
                write_multi_header(w, OpCode::Create2.code(), false, 0);
                w.write_string(path);
                w.write_stat(stat);
            }
            MultiResult::Delete => write_multi_header(w, OpCode::Delete.code(), false, 0),
            MultiResult::Check => write_multi_header(w, OpCode::Check.code(), false, 0),
            MultiResult::SetData { stat } => {
                write_multi_header(w, OpCode::SetData.code(), false, 0);
                w.write_stat(stat);
            }
            MultiResult::GetData { data, stat } => {
                write_multi_header(w, OpCode::GetData.code(), false, 0);
                w.write_buffer(data.as_deref());
                w.write_stat(stat);
            }
            MultiResult::GetChildren { children } => {
                write_multi_header(w, OpCode::GetChildren.code(), false, 0);
                w.write_strings(children);
            }
            MultiResult::Error(err) => {
                write_multi_header(w, OpCode::Error.code(), false, err.code());
                w.write_i32(err.code());
            }
        }
    }
    write_multi_header(w, -1, true, -1);
}

/// Reads `ReplyHeader{xid, zxid, err}` (client side).
pub fn decode_reply_header(r: &mut Reader<'_>) -> Result<ReplyHeader, DecodeError> {
    let xid = r.read_i32("ReplyHeader.xid")?;
    let zxid = r.read_i64("ReplyHeader.zxid")?;
    let err = r.read_i32("ReplyHeader.err")?;
    Ok(ReplyHeader { xid, zxid, err })
}

/// Reads a `WatcherEvent` (after a `ReplyHeader` with xid -1). Types the server never sends are
/// `BadValue`.
pub fn decode_watcher_event(r: &mut Reader<'_>) -> Result<WatcherEvent, DecodeError> {
    let raw = r.read_i32("WatcherEvent.type")?;
    let Some(event_type) = EventType::from_i32(raw) else {
        return Err(DecodeError::BadValue { what: "WatcherEvent.type", value: i64::from(raw) });
    };
    let state = r.read_i32("WatcherEvent.state")?;
    let path = r.read_string("WatcherEvent.path")?;
    Ok(WatcherEvent { event_type, state, path })
}

/// Reads the body of a successful (`err == 0`) reply to a request sent with opcode `op`
/// (client side). The caller checks [`Reader::finish`] if it wants the frame filled exactly.
pub fn decode_response(op: OpCode, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    let resp = match op {
        OpCode::Create => Response::Create { path: r.read_string("CreateResponse.path")? },
        // createContainer and createTTL are answered with Create2Response (§5).
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2 { path: r.read_string("Create2Response.path")?, stat: r.read_stat()? }
        }
        OpCode::Delete
        | OpCode::Ping
        | OpCode::Check
        | OpCode::CheckWatches
        | OpCode::RemoveWatches
        | OpCode::Auth
        | OpCode::SetWatches
        | OpCode::SetWatches2
        | OpCode::CloseSession => Response::Empty,
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(r.read_stat()?),
        // reconfig answers with the new config as a GetDataResponse.
        OpCode::GetData | OpCode::Reconfig => {
            Response::GetData { data: r.read_buffer("GetDataResponse.data")?, stat: r.read_stat()? }
        }
        OpCode::GetAcl => Response::GetAcl { acl: r.read_acls()?, stat: r.read_stat()? },
        OpCode::GetChildren => {
            Response::GetChildren { children: r.read_strings("GetChildrenResponse.children")? }
        }
        OpCode::GetChildren2 => Response::GetChildren2 {
            children: r.read_strings("GetChildren2Response.children")?,
            stat: r.read_stat()?,
        },
        OpCode::Sync => Response::Sync { path: r.read_string("SyncResponse.path")? },
        OpCode::Multi | OpCode::MultiRead => Response::Multi(decode_multi_results(r)?),
        OpCode::GetEphemerals => {
            Response::GetEphemerals { paths: r.read_strings("GetEphemeralsResponse")? }
        }
        OpCode::GetAllChildrenNumber => {
            Response::GetAllChildrenNumber { total: r.read_i32("GetAllChildrenNumber.total")? }
        }
        OpCode::AddWatch => decode_add_watch(r)?,
        OpCode::WhoAmI => Response::WhoAmI(decode_client_infos(r)?),
        OpCode::Notification
        | OpCode::DeleteContainer
        | OpCode::Sasl
        | OpCode::CreateSession
        | OpCode::Error => {
            return Err(DecodeError::BadValue { what: "reply op", value: i64::from(op.code()) });
        }
    };
    Ok(resp)
}

fn decode_add_watch(r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    match r.read_i32("AddWatch ErrorResponse.err")? {
        0 => Ok(Response::AddWatch),
        err => Err(DecodeError::BadValue { what: "AddWatch ErrorResponse.err", value: err.into() }),
    }
}

fn decode_client_infos(r: &mut Reader<'_>) -> Result<Vec<ClientInfo>, DecodeError> {
    let infos = r.read_vec_sized("WhoAmIResponse.clientInfo", 2 * jute::STRING_MIN_BYTES, |r| {
        let auth_scheme = r.read_string("ClientInfo.authScheme")?;
        let user = r.read_string("ClientInfo.user")?;
        Ok(ClientInfo { auth_scheme, user })
    })?;
    Ok(infos.unwrap_or_default())
}

fn decode_multi_results(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
    let mut results = Vec::new();
    loop {
        let start = r.position();
        let op = r.read_i32("MultiHeader.type")?;
        let done = r.read_bool("MultiHeader.done")?;
        let _err = r.read_i32("MultiHeader.err")?;
        if done {
            return Ok(results);
        }
        let result = match OpCode::from_i32(op) {
            Some(OpCode::Create) => MultiResult::Create { path: r.read_string("path")? },
            Some(OpCode::Create2) => {
                MultiResult::Create2 { path: r.read_string("path")?, stat: r.read_stat()? }
            }
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::SetData) => MultiResult::SetData { stat: r.read_stat()? },
            Some(OpCode::GetData) => MultiResult::GetData {
                data: r.read_buffer("GetDataResponse.data")?,
                stat: r.read_stat()?,
            },
            Some(OpCode::GetChildren) => {
                MultiResult::GetChildren { children: r.read_strings("children")? }
            }
            Some(OpCode::Error) => {
                // The ErrorResponse body carries the code the Java client uses.
                let code = r.read_i32("ErrorResponse.err")?;
                let Some(err) = ZkError::from_code(code) else {
                    return Err(DecodeError::BadValue {
                        what: "ErrorResponse.err",
                        value: code.into(),
                    });
                };
                MultiResult::Error(err)
            }
            _ => {
                return Err(DecodeError::BadValue { what: "multi result type", value: op.into() });
            }
        };
        // Every result takes at least its 9-byte header: the loop is bounded by the input.
        assert!(r.position() >= start + 9);
        results.push(result);
    }
}
