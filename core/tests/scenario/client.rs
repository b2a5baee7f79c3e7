//! Scripted clients: encode requests, decode what the server sends back, and remember the
//! answers the checks ask about (the last read of each path).

use std::collections::{BTreeMap, VecDeque};

use zkr_core::proto::client::{ConnectRequest, OpCode, Request, Response};
use zkr_core::proto::codec;
use zkr_core::proto::error::ZkError;
use zkr_core::proto::jute::Reader;
use zkr_core::types::{Acl, ConnId};

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// The node's data.
    Data(String),
    /// An error code name (e.g. NONODE).
    Error(String),
}

/// One client connection.
#[derive(Debug)]
pub struct Client {
    /// Its name in the script.
    pub name: String,
    /// The server it is connected to.
    pub server: u64,
    /// Its connection id there.
    pub conn: ConnId,
    /// The next xid.
    pub xid: i32,
    /// Requests sent and not answered, by xid.
    pub pending: BTreeMap<i32, Request>,
    /// Frames received and not yet decoded.
    pub inbox: VecDeque<Vec<u8>>,
    /// The server closed the connection (or crashed).
    pub closed: bool,
    /// The session, once the handshake was answered.
    pub session: Option<i64>,
    /// Answers to reads, by xid.
    pub reads: BTreeMap<i32, ReadResult>,
    /// Syncs answered OK, by xid.
    pub synced: Vec<i32>,
}

/// The handshake payload every scripted client sends (no length prefix).
pub fn connect_payload() -> Vec<u8> {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: None,
    };
    codec::encode_connect_request(&req)[4..].to_vec()
}

/// The request payload (no length prefix).
pub fn request_payload(xid: i32, req: &Request) -> Vec<u8> {
    codec::encode_request(&codec::request_header(xid, req), req)[4..].to_vec()
}

/// Builds a request from a script command.
pub fn request(op: &str, path: &str, data: Option<&str>) -> Request {
    let data = data.map(|d| d.as_bytes().to_vec());
    match op {
        "create" => Request::Create {
            op: OpCode::Create,
            path: path.into(),
            data: Some(data.unwrap_or_default()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
        "set" => Request::SetData { path: path.into(), data, version: -1 },
        "get" => Request::GetData { path: path.into(), watch: false },
        "delete" => Request::Delete { path: path.into(), version: -1 },
        "sync" => Request::Sync { path: path.into() },
        other => panic!("unknown client operation {other}"),
    }
}

fn err_name(code: i32) -> String {
    match ZkError::from_code(code) {
        Some(e) => format!("{e:?}").to_uppercase(),
        None => format!("ERR{code}"),
    }
}

impl Client {
    /// A client whose handshake is about to be sent.
    pub fn new(name: &str, server: u64, conn: ConnId) -> Client {
        Client {
            name: name.to_string(),
            server,
            conn,
            xid: 1,
            pending: BTreeMap::new(),
            inbox: VecDeque::new(),
            closed: false,
            session: None,
            reads: BTreeMap::new(),
            synced: Vec::new(),
        }
    }

    /// Decodes every received frame into printable lines.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(payload) = self.inbox.pop_front() {
            lines.push(self.decode(&payload));
        }
        lines
    }

    fn decode(&mut self, payload: &[u8]) -> String {
        let name = self.name.clone();
        if self.session.is_none() {
            let resp = codec::decode_connect_response(payload).expect("connect response");
            self.session = Some(resp.session_id);
            return format!("{name}: connected (session 0x{:x})", resp.session_id);
        }
        let mut r = Reader::new(payload);
        let header = codec::decode_reply_header(&mut r).expect("reply header");
        if header.xid == -1 {
            let event = codec::decode_watcher_event(&mut r).expect("event");
            return format!("{name}: event {:?} {}", event.event_type, event.path);
        }
        let req = self.pending.remove(&header.xid).expect("a reply to a request we sent");
        let what = describe_request(&req);
        if header.err != 0 {
            if matches!(req, Request::GetData { .. }) {
                self.reads.insert(header.xid, ReadResult::Error(err_name(header.err)));
            }
            return format!("{name}: {what} -> {}", err_name(header.err));
        }
        let body = codec::decode_response(codec::request_op(&req), &mut r).expect("body");
        match (&req, body) {
            (Request::GetData { .. }, Response::GetData { data, .. }) => {
                let text = String::from_utf8_lossy(&data.unwrap_or_default()).to_string();
                self.reads.insert(header.xid, ReadResult::Data(text.clone()));
                format!("{name}: {what} -> {text:?} (zxid {})", super::fmt::zx_i64(header.zxid))
            }
            (Request::Sync { .. }, _) => {
                self.synced.push(header.xid);
                format!("{name}: {what} -> ok")
            }
            _ => format!("{name}: {what} -> ok (zxid {})", super::fmt::zx_i64(header.zxid)),
        }
    }
}

fn describe_request(req: &Request) -> String {
    match req {
        Request::Create { path, .. } => format!("create {path}"),
        Request::SetData { path, .. } => format!("set {path}"),
        Request::GetData { path, .. } => format!("get {path}"),
        Request::Delete { path, .. } => format!("delete {path}"),
        Request::Sync { path } => format!("sync {path}"),
        other => format!("{other:?}"),
    }
}
