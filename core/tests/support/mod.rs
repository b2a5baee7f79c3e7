//! A tiny synchronous shell for driving one `Node` in tests: it encodes client requests, feeds
//! frames, optionally acknowledges persistence at once, and decodes what comes back. Outputs are
//! carried out by `zkr_core::io::ready::Executor`, as in the server and the simulator.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use zkr_core::io::Input;
use zkr_core::io::ready::{DiskWrite, Effects, Executor, LogReadRequest, Written};
use zkr_core::proto::client::{
    ConnectRequest, ConnectResponse, ReplyHeader, Request, Response, WatcherEvent,
};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;
use zkr_core::txn::LoggedTxn;
use zkr_core::types::{ConnId, ServerId, Zxid};
use zkr_core::zab::message::ZabMessage;
use zkr_core::{Config, Node, NodeInit};

pub struct Harness {
    pub node: Node,
    pub wall_ms: i64,
    pub auto_persist: bool,
    pub log: Vec<LoggedTxn>,
    pub inbox: BTreeMap<ConnId, VecDeque<Vec<u8>>>,
    pub closed: BTreeSet<ConnId>,
    pub events: BTreeMap<ConnId, Vec<(i64, WatcherEvent)>>,
    pub executor: Executor,
}

/// The harness's primitive effects: an in-memory log, an inbox per connection.
struct Shell<'a> {
    log: &'a mut Vec<LoggedTxn>,
    inbox: &'a mut BTreeMap<ConnId, VecDeque<Vec<u8>>>,
    closed: &'a mut BTreeSet<ConnId>,
    /// Connections closed in this plan, to answer with `ClientClosed` after it.
    closing: Vec<ConnId>,
    /// The last zxid appended in this plan.
    last: Option<Zxid>,
}

impl Effects for Shell<'_> {
    fn append(&mut self, txn: Arc<LoggedTxn>) {
        self.last = Some(txn.header.zxid);
        self.log.push(Arc::unwrap_or_clone(txn));
    }

    fn write(&mut self, write: DiskWrite) -> Written {
        panic!("a standalone node wrote {write:?}")
    }

    fn peer_send(&mut self, to: ServerId, msg: ZabMessage) {
        panic!("a standalone node sent {msg:?} to {to:?}")
    }

    fn client_send(&mut self, conn: ConnId, frame: Vec<u8>) {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4, "frame length prefix");
        assert!(!self.closed.contains(&conn), "send after close to {conn:?}");
        self.inbox.entry(conn).or_default().push_back(frame[4..].to_vec());
    }

    fn client_close(&mut self, conn: ConnId) {
        self.closed.insert(conn);
        self.closing.push(conn);
    }

    fn read_log(&mut self, read: LogReadRequest) {
        panic!("a standalone node has no learners to read its log for: {read:?}")
    }
}

pub const START_MS: i64 = 1_700_000_000_000;

impl Harness {
    pub fn new(config: Config) -> Harness {
        let init = NodeInit { wall_ms: START_MS, ..NodeInit::default() };
        Harness::from_node(Node::new(config, init).expect("node"))
    }

    pub fn from_node(node: Node) -> Harness {
        Harness {
            node,
            wall_ms: START_MS,
            auto_persist: true,
            log: vec![],
            inbox: BTreeMap::new(),
            closed: BTreeSet::new(),
            events: BTreeMap::new(),
            executor: Executor::new(),
        }
    }

    pub fn step(&mut self, input: Input) {
        self.node.step(input);
        self.collect();
    }

    /// Carries out the node's outputs through the one executor of the output contract until
    /// the node has nothing more to say: closes are answered with `ClientClosed`, and appends
    /// are reported durable at once when `auto_persist` is on.
    pub fn collect(&mut self) {
        loop {
            let outputs = self.node.take_outputs();
            if outputs.is_empty() {
                return;
            }
            let mut shell = Shell {
                log: &mut self.log,
                inbox: &mut self.inbox,
                closed: &mut self.closed,
                closing: Vec::new(),
                last: None,
            };
            self.executor.run_sync(outputs, &mut shell);
            let (closing, last) = (shell.closing, shell.last);
            for conn in closing {
                self.node.step(Input::ClientClosed { conn });
            }
            if let (true, Some(upto)) = (self.auto_persist, last) {
                self.node.step(self.executor.persisted(upto));
            }
        }
    }

    pub fn persist_all(&mut self) {
        if let Some(last) = self.log.last() {
            let upto = last.header.zxid;
            let persisted = self.executor.persisted(upto);
            self.step(persisted);
        }
    }

    pub fn tick(&mut self, n: u64) {
        for _ in 0..n {
            self.wall_ms += self.node.config().tick_ms as i64;
            self.step(Input::Tick { wall_ms: self.wall_ms });
        }
    }

    pub fn open(&mut self, conn: u64) -> ConnId {
        let conn = ConnId(conn);
        self.step(Input::ClientConnected { conn, remote_ip: "127.0.0.1".into() });
        conn
    }

    pub fn send_connect(&mut self, conn: ConnId, session_id: i64, passwd: Vec<u8>) {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30_000,
            session_id,
            passwd,
            read_only: Some(false),
        };
        let frame = codec::encode_connect_request(&req);
        self.step(Input::ClientFrame { conn, payload: frame[4..].to_vec(), wall_ms: self.wall_ms });
    }

    pub fn connect(&mut self, conn: u64) -> (ConnId, ConnectResponse) {
        let conn = self.open(conn);
        self.send_connect(conn, 0, vec![0; 16]);
        let payload = self.pop(conn).expect("connect response");
        (conn, codec::decode_connect_response(&payload).expect("decodes"))
    }

    pub fn send(&mut self, conn: ConnId, xid: i32, req: &Request) {
        let header = codec::request_header(xid, req);
        let frame = codec::encode_request(&header, req);
        self.step(Input::ClientFrame { conn, payload: frame[4..].to_vec(), wall_ms: self.wall_ms });
    }

    pub fn pop(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        self.inbox.get_mut(&conn)?.pop_front()
    }

    /// Pops the next reply for `conn`, moving notifications into `events`.
    pub fn reply(
        &mut self,
        conn: ConnId,
        req: &Request,
    ) -> Option<(ReplyHeader, Option<Response>)> {
        loop {
            let payload = self.pop(conn)?;
            let mut r = Reader::new(&payload);
            let header = codec::decode_reply_header(&mut r).expect("reply header");
            if header.xid == -1 {
                let event = codec::decode_watcher_event(&mut r).expect("event");
                self.events.entry(conn).or_default().push((header.zxid, event));
                continue;
            }
            if header.err != 0 || r.remaining() == 0 {
                return Some((header, None));
            }
            let body = codec::decode_response(codec::request_op(req), &mut r).expect("body");
            return Some((header, Some(body)));
        }
    }

    pub fn call(
        &mut self,
        conn: ConnId,
        xid: i32,
        req: Request,
    ) -> (ReplyHeader, Option<Response>) {
        self.send(conn, xid, &req);
        self.reply(conn, &req).expect("a reply")
    }

    pub fn drain_events(&mut self, conn: ConnId) -> Vec<(i64, WatcherEvent)> {
        while let Some(payload) = self.pop(conn) {
            let mut r = Reader::new(&payload);
            let header = codec::decode_reply_header(&mut r).expect("reply header");
            assert_eq!(header.xid, -1, "only notifications expected");
            let event = codec::decode_watcher_event(&mut r).expect("event");
            self.events.entry(conn).or_default().push((header.zxid, event));
        }
        self.events.remove(&conn).unwrap_or_default()
    }

    pub fn last_zxid(&self) -> Zxid {
        self.node.last_zxid()
    }
}

pub fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create {
        op: zkr_core::proto::client::OpCode::Create,
        path: path.into(),
        data: Some(data.to_vec()),
        acl: zkr_core::types::Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

pub fn get(path: &str, watch: bool) -> Request {
    Request::GetData { path: path.into(), watch }
}

pub fn set(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData { path: path.into(), data: Some(data.to_vec()), version }
}
