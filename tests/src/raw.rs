//! A minimal blocking ZooKeeper client written against the wire format by hand (jute encoding,
//! 4-byte length framing), independent of both `zkr-core` and the `zookeeper-client` crate.
//!
//! It exists for what a real client library hides: exact notification counts and order relative
//! to replies, reconnecting with a chosen session id/password (including a wrong one), and
//! dropping a TCP connection without a closeSession. Every notification (xid -1) received while
//! waiting for a reply is appended to [`RawClient::events`] in arrival order.
//!
//! Only blocking std sockets with read/write timeouts are used: every call is bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Per-frame I/O timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest frame we accept from a server (jute.maxbuffer default plus headroom).
const MAX_FRAME: usize = 4 << 20;

/// Opcodes used here (`ZooDefs.OpCode`).
pub mod opcode {
    /// create
    pub const CREATE: i32 = 1;
    /// delete
    pub const DELETE: i32 = 2;
    /// exists
    pub const EXISTS: i32 = 3;
    /// getData
    pub const GET_DATA: i32 = 4;
    /// setData
    pub const SET_DATA: i32 = 5;
    /// getChildren
    pub const GET_CHILDREN: i32 = 8;
    /// sync
    pub const SYNC: i32 = 9;
    /// ping
    pub const PING: i32 = 11;
    /// closeSession
    pub const CLOSE_SESSION: i32 = -11;
}

/// Watch event types (`Watcher.Event.EventType`).
pub mod event {
    /// NodeCreated
    pub const CREATED: i32 = 1;
    /// NodeDeleted
    pub const DELETED: i32 = 2;
    /// NodeDataChanged
    pub const DATA_CHANGED: i32 = 3;
    /// NodeChildrenChanged
    pub const CHILDREN_CHANGED: i32 = 4;
}

/// Error codes used in assertions (`KeeperException.Code`).
pub mod code {
    /// NONODE
    pub const NO_NODE: i32 = -101;
    /// NODEEXISTS
    pub const NODE_EXISTS: i32 = -110;
}

/// Why a raw call failed below the ZooKeeper error-code level.
#[derive(Debug)]
pub enum RawError {
    /// Socket error or timeout.
    Io(std::io::Error),
    /// The server closed the connection without (further) answer.
    Closed,
    /// ConnectResponse with timeOut 0 / sessionId 0: the session is unknown, expired, or the
    /// password is wrong.
    Expired,
    /// The server sent bytes we cannot decode.
    Decode(String),
}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> RawError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => RawError::Closed,
            _ => RawError::Io(e),
        }
    }
}

/// A watch notification as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// ReplyHeader.zxid of the notification (-1 before ZooKeeper 3.9).
    pub zxid: i64,
    /// EventType (see [`event`]).
    pub event_type: i32,
    /// KeeperState (3 = SyncConnected).
    pub state: i32,
    /// Znode path.
    pub path: String,
}

/// The client-visible Stat record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawStat {
    /// Creating zxid.
    pub czxid: i64,
    /// Last modifying zxid.
    pub mzxid: i64,
    /// Data version.
    pub version: i32,
    /// Child version (client-visible form).
    pub cversion: i32,
    /// Owner session of an ephemeral, else 0.
    pub ephemeral_owner: i64,
    /// Data length.
    pub data_length: i32,
    /// Live children.
    pub num_children: i32,
    /// Last child-change zxid.
    pub pzxid: i64,
}

/// A session established with a ConnectResponse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSession {
    /// Session id given by the server.
    pub id: i64,
    /// Session password (16 bytes from a ZooKeeper server).
    pub passwd: Vec<u8>,
    /// Negotiated timeout in ms.
    pub timeout_ms: i32,
}

/// One raw connection.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    next_xid: i32,
    /// The session this connection is attached to.
    pub session: RawSession,
    /// Notifications received so far, in arrival order.
    pub events: Vec<RawEvent>,
    /// Highest ReplyHeader.zxid seen.
    pub last_zxid: i64,
}

impl RawClient {
    /// Opens a new session asking for `timeout_ms`.
    pub fn connect(addr: SocketAddr, timeout_ms: i32) -> Result<RawClient, RawError> {
        RawClient::resume(addr, timeout_ms, 0, &[0u8; 16], 0)
    }

    /// Attaches to an existing session `id` with `passwd` (id 0 = new session).
    pub fn resume(
        addr: SocketAddr,
        timeout_ms: i32,
        id: i64,
        passwd: &[u8],
        last_zxid_seen: i64,
    ) -> Result<RawClient, RawError> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut body = Vec::new();
        put_i32(&mut body, 0); // protocolVersion
        put_i64(&mut body, last_zxid_seen);
        put_i32(&mut body, timeout_ms);
        put_i64(&mut body, id);
        put_buf(&mut body, Some(passwd));
        body.push(0); // readOnly = false
        let mut client = RawClient {
            stream,
            next_xid: 1,
            session: RawSession { id: 0, passwd: Vec::new(), timeout_ms: 0 },
            events: Vec::new(),
            last_zxid: 0,
        };
        client.write_frame(&body)?;
        let frame = client.read_frame()?;
        let mut r = Reader::new(&frame);
        let _protocol = r.i32()?;
        let timeout = r.i32()?;
        let session_id = r.i64()?;
        let passwd = r.buf()?.unwrap_or_default();
        if timeout <= 0 || session_id == 0 {
            return Err(RawError::Expired);
        }
        client.session = RawSession { id: session_id, passwd, timeout_ms: timeout };
        Ok(client)
    }

    /// How long a read or write on the socket may block (20 s unless set).
    pub fn set_io_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("read timeout");
        self.stream.set_write_timeout(Some(timeout)).expect("write timeout");
    }

    /// Sends one request and waits for its reply, collecting notifications on the way.
    /// Returns (ReplyHeader.err, zxid, body).
    pub fn call(&mut self, op: i32, body: &[u8]) -> Result<(i32, i64, Vec<u8>), RawError> {
        let xid = match op {
            opcode::PING => -2,
            _ => {
                let xid = self.next_xid;
                self.next_xid += 1;
                xid
            }
        };
        let mut frame = Vec::with_capacity(8 + body.len());
        put_i32(&mut frame, xid);
        put_i32(&mut frame, op);
        frame.extend_from_slice(body);
        self.write_frame(&frame)?;
        loop {
            let reply = self.read_frame()?;
            let mut r = Reader::new(&reply);
            let reply_xid = r.i32()?;
            let zxid = r.i64()?;
            let err = r.i32()?;
            self.last_zxid = self.last_zxid.max(zxid);
            if reply_xid == -1 {
                let event_type = r.i32()?;
                let state = r.i32()?;
                let path = r.string()?;
                self.events.push(RawEvent { zxid, event_type, state, path });
                continue;
            }
            if reply_xid != xid {
                return Err(RawError::Decode(format!("reply xid {reply_xid}, expected {xid}")));
            }
            return Ok((err, zxid, r.rest().to_vec()));
        }
    }

    /// create with OPEN_ACL_UNSAFE; `flags` as CreateMode (0 persistent, 1 ephemeral, ...).
    /// Returns the created path or the error code.
    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Result<String, i32> {
        self.try_create(path, data, flags).expect("raw create I/O")
    }

    /// `create` that returns an I/O error (the server went away) instead of panicking.
    pub fn try_create(
        &mut self,
        path: &str,
        data: &[u8],
        flags: i32,
    ) -> Result<Result<String, i32>, RawError> {
        let mut body = Vec::new();
        put_str(&mut body, path);
        put_buf(&mut body, Some(data));
        put_i32(&mut body, 1); // one ACL
        put_i32(&mut body, 31);
        put_str(&mut body, "world");
        put_str(&mut body, "anyone");
        put_i32(&mut body, flags);
        let (err, _, reply) = self.call(opcode::CREATE, &body)?;
        if err != 0 {
            return Ok(Err(err));
        }
        Ok(Ok(Reader::new(&reply).string().expect("CreateResponse")))
    }

    /// setData with `version` (-1 = any).
    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Result<RawStat, i32> {
        let mut body = Vec::new();
        put_str(&mut body, path);
        put_buf(&mut body, Some(data));
        put_i32(&mut body, version);
        let (err, _, reply) = self.call(opcode::SET_DATA, &body).expect("raw setData I/O");
        if err != 0 {
            return Err(err);
        }
        Ok(Reader::new(&reply).stat().expect("SetDataResponse"))
    }

    /// delete with `version` (-1 = any).
    pub fn delete(&mut self, path: &str, version: i32) -> Result<(), i32> {
        let mut body = Vec::new();
        put_str(&mut body, path);
        put_i32(&mut body, version);
        let (err, _, _) = self.call(opcode::DELETE, &body).expect("raw delete I/O");
        if err != 0 { Err(err) } else { Ok(()) }
    }

    /// exists, optionally leaving a watch.
    pub fn exists(&mut self, path: &str, watch: bool) -> Result<RawStat, i32> {
        let (err, reply) = self.path_watch_call(opcode::EXISTS, path, watch);
        if err != 0 {
            return Err(err);
        }
        Ok(Reader::new(&reply).stat().expect("ExistsResponse"))
    }

    /// getData, optionally leaving a watch.
    pub fn get_data(&mut self, path: &str, watch: bool) -> Result<(Vec<u8>, RawStat), i32> {
        let (err, reply) = self.path_watch_call(opcode::GET_DATA, path, watch);
        if err != 0 {
            return Err(err);
        }
        let mut r = Reader::new(&reply);
        let data = r.buf().expect("GetDataResponse data").unwrap_or_default();
        Ok((data, r.stat().expect("GetDataResponse stat")))
    }

    /// getChildren (sorted here, since the server's order is unspecified).
    pub fn get_children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, i32> {
        let (err, reply) = self.path_watch_call(opcode::GET_CHILDREN, path, watch);
        if err != 0 {
            return Err(err);
        }
        let mut r = Reader::new(&reply);
        let n = r.i32().expect("children count");
        let mut children = Vec::new();
        for _ in 0..n.max(0) {
            children.push(r.string().expect("child name"));
        }
        children.sort();
        Ok(children)
    }

    /// multi (op 14). Returns ReplyHeader.err and, when it is 0, each result's
    /// `(MultiHeader.type, MultiHeader.err)`; an ErrorResult is type -1 with its code.
    pub fn multi(&mut self, ops: &[MultiOp<'_>]) -> (i32, Vec<(i32, i32)>) {
        let mut body = Vec::new();
        for op in ops {
            let (op_type, record) = op.encode();
            put_i32(&mut body, op_type);
            body.push(0); // done = false
            put_i32(&mut body, -1);
            body.extend_from_slice(&record);
        }
        put_i32(&mut body, -1);
        body.push(1); // done = true
        put_i32(&mut body, -1);
        let (err, _, reply) = self.call(14, &body).expect("raw multi I/O");
        if err != 0 {
            return (err, Vec::new());
        }
        (0, decode_multi_results(&reply).expect("multi response"))
    }

    /// A ping round trip: every notification queued before it has arrived when this returns.
    pub fn ping(&mut self) {
        let (err, _, _) = self.call(opcode::PING, &[]).expect("raw ping I/O");
        assert_eq!(err, 0, "ping error");
    }

    /// Pings every 100 ms until an event matching `pred` has arrived; returns it. Panics after
    /// `timeout`. Pings keep this session alive while it waits.
    pub fn wait_for_event(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&RawEvent) -> bool,
    ) -> RawEvent {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.events.iter().find(|e| pred(e)) {
                return found.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no event {what} within {timeout:?}; got {:?}",
                self.events
            );
            std::thread::sleep(Duration::from_millis(100));
            self.ping();
        }
    }

    /// closeSession; the server then closes the socket.
    pub fn close_session(mut self) {
        let (err, _, _) = self.call(opcode::CLOSE_SESSION, &[]).expect("raw closeSession I/O");
        assert_eq!(err, 0, "closeSession error");
    }

    /// Drops the TCP connection without closeSession: the session lives on until it expires.
    pub fn abandon(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn path_watch_call(&mut self, op: i32, path: &str, watch: bool) -> (i32, Vec<u8>) {
        let mut body = Vec::new();
        put_str(&mut body, path);
        body.push(u8::from(watch));
        let (err, _, reply) = self.call(op, &body).expect("raw read I/O");
        (err, reply)
    }

    fn write_frame(&mut self, payload: &[u8]) -> Result<(), RawError> {
        let mut frame = Vec::with_capacity(4 + payload.len());
        put_i32(&mut frame, payload.len() as i32);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)?;
        Ok(())
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, RawError> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if len < 0 || len as usize > MAX_FRAME {
            return Err(RawError::Decode(format!("frame length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// One operation inside a raw multi.
#[derive(Clone, Copy, Debug)]
pub enum MultiOp<'a> {
    /// create (op 1) with OPEN_ACL_UNSAFE and CreateMode flags.
    Create {
        /// Path.
        path: &'a str,
        /// Data.
        data: &'a [u8],
        /// CreateMode flags.
        flags: i32,
    },
    /// delete (op 2).
    Delete {
        /// Path.
        path: &'a str,
        /// Expected version, -1 = any.
        version: i32,
    },
    /// setData (op 5).
    SetData {
        /// Path.
        path: &'a str,
        /// Data.
        data: &'a [u8],
        /// Expected version, -1 = any.
        version: i32,
    },
    /// check (op 13).
    Check {
        /// Path.
        path: &'a str,
        /// Expected version.
        version: i32,
    },
}

impl MultiOp<'_> {
    fn encode(&self) -> (i32, Vec<u8>) {
        let mut out = Vec::new();
        match *self {
            MultiOp::Create { path, data, flags } => {
                put_str(&mut out, path);
                put_buf(&mut out, Some(data));
                put_i32(&mut out, 1);
                put_i32(&mut out, 31);
                put_str(&mut out, "world");
                put_str(&mut out, "anyone");
                put_i32(&mut out, flags);
                (opcode::CREATE, out)
            }
            MultiOp::Delete { path, version } => {
                put_str(&mut out, path);
                put_i32(&mut out, version);
                (opcode::DELETE, out)
            }
            MultiOp::SetData { path, data, version } => {
                put_str(&mut out, path);
                put_buf(&mut out, Some(data));
                put_i32(&mut out, version);
                (opcode::SET_DATA, out)
            }
            MultiOp::Check { path, version } => {
                put_str(&mut out, path);
                put_i32(&mut out, version);
                (13, out)
            }
        }
    }
}

fn decode_multi_results(reply: &[u8]) -> Result<Vec<(i32, i32)>, RawError> {
    let mut r = Reader::new(reply);
    let mut results = Vec::new();
    loop {
        let op_type = r.i32()?;
        let done = r.take(1)?[0] != 0;
        let err = r.i32()?;
        if done {
            return Ok(results);
        }
        match op_type {
            -1 => {
                let code = r.i32()?; // ErrorResponse
                if code != err {
                    return Err(RawError::Decode(format!("error result {code} vs header {err}")));
                }
            }
            opcode::CREATE => drop(r.string()?),
            15 | 19 | 21 => {
                r.string()?;
                r.stat()?;
            }
            opcode::SET_DATA => drop(r.stat()?),
            opcode::DELETE | 13 => {}
            other => return Err(RawError::Decode(format!("multi result type {other}"))),
        }
        results.push((op_type, err));
    }
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_buf(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(bytes) => {
            put_i32(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
        None => put_i32(out, -1),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_buf(out, Some(s.as_bytes()));
}

/// Bounds-checked jute reader: never panics on short or hostile input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RawError> {
        if self.buf.len() < n {
            return Err(RawError::Decode(format!("need {n} bytes, have {}", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, RawError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, RawError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn buf(&mut self) -> Result<Option<Vec<u8>>, RawError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }

    fn string(&mut self) -> Result<String, RawError> {
        let bytes = self.buf()?.unwrap_or_default();
        String::from_utf8(bytes).map_err(|e| RawError::Decode(format!("path not UTF-8: {e}")))
    }

    fn stat(&mut self) -> Result<RawStat, RawError> {
        let czxid = self.i64()?;
        let mzxid = self.i64()?;
        let _ctime = self.i64()?;
        let _mtime = self.i64()?;
        let version = self.i32()?;
        let cversion = self.i32()?;
        let _aversion = self.i32()?;
        let ephemeral_owner = self.i64()?;
        let data_length = self.i32()?;
        let num_children = self.i32()?;
        let pzxid = self.i64()?;
        Ok(RawStat {
            czxid,
            mzxid,
            version,
            cversion,
            ephemeral_owner,
            data_length,
            num_children,
            pzxid,
        })
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }
}
