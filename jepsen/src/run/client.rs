//! A blocking ZooKeeper client over a real socket, enough for `jepsen test`: one session, one
//! request in flight at a time, replies matched by xid, pings skipped, watch notifications kept
//! in [`Client::events`] in the order they arrived (each before the reply read after it).
//! Every I/O error or timeout is reported as such: the caller records the op as `info` and
//! ends the session, closing it from a new connection if it can ([`Client::reattach`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use zkr_core::proto::client::{ConnectRequest, ReplyHeader, Request, Response, WatcherEvent, xid};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;

/// The largest reply frame accepted (ZooKeeper's default `jute.maxbuffer` is just under 1 MiB).
const MAX_FRAME: usize = 16 << 20;

/// What `open` says when the server answers the handshake with a refusal (timeout 0).
const REFUSED: &str = "the server refused the session";

/// Why a [`Client::reattach`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reattach {
    /// The server answered with a refusal: its leader holds the session expired or closing
    /// (ZooKeeper's client reports `SessionExpired`).
    Expired,
    /// No answer: the member is down, paused, cut off, electing (members close new
    /// connections while they have no leader), or the call timed out.
    Unreachable(String),
}

/// One session on one server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// The session id the server gave.
    pub session_id: i64,
    /// The session's password, to reattach to it from another connection.
    pub passwd: Vec<u8>,
    /// Watch notifications received and not yet taken, with their header zxid, oldest first.
    pub events: Vec<(i64, WatcherEvent)>,
}

impl Client {
    /// Connects to `addr` and opens a new session of `timeout_ms`; every read and write on the
    /// socket gives up after `io_timeout`.
    pub fn connect(
        addr: SocketAddr,
        timeout_ms: i32,
        io_timeout: Duration,
    ) -> Result<Client, String> {
        Client::open(addr, timeout_ms, io_timeout, 0, vec![0; 16])
    }

    /// Connects to `addr` and resumes session `session_id` (its password `passwd`), as a
    /// ZooKeeper client does after losing its connection; errs if the server refuses it
    /// ([`Reattach::Expired`]) or does not answer ([`Reattach::Unreachable`]).
    pub fn reattach(
        addr: SocketAddr,
        timeout_ms: i32,
        io_timeout: Duration,
        session_id: i64,
        passwd: Vec<u8>,
    ) -> Result<Client, Reattach> {
        let client = match Client::open(addr, timeout_ms, io_timeout, session_id, passwd) {
            Ok(client) => client,
            Err(e) if e == REFUSED => return Err(Reattach::Expired),
            Err(e) => return Err(Reattach::Unreachable(e)),
        };
        if client.session_id != session_id {
            let got = client.session_id;
            return Err(Reattach::Unreachable(format!("asked for {session_id}, got {got}")));
        }
        Ok(client)
    }

    fn open(
        addr: SocketAddr,
        timeout_ms: i32,
        io_timeout: Duration,
        session_id: i64,
        passwd: Vec<u8>,
    ) -> Result<Client, String> {
        let mut stream =
            TcpStream::connect_timeout(&addr, io_timeout).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(io_timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(io_timeout)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        };
        stream.write_all(&codec::encode_connect_request(&request)).map_err(|e| e.to_string())?;
        let payload = read_frame(&mut stream)?;
        let response = codec::decode_connect_response(&payload).map_err(|e| format!("{e:?}"))?;
        if response.timeout_ms <= 0 {
            return Err(REFUSED.into());
        }
        let (session_id, passwd) = (response.session_id, response.passwd);
        Ok(Client { stream, session_id, passwd, events: Vec::new() })
    }

    /// Sends `request` as `xid` and waits for its reply: the header and, when the request
    /// succeeded, the decoded body.
    pub fn call(
        &mut self,
        xid: i32,
        request: &Request,
    ) -> Result<(ReplyHeader, Option<Response>), String> {
        let header = codec::request_header(xid, request);
        let frame = codec::encode_request(&header, request);
        self.stream.write_all(&frame).map_err(|e| e.to_string())?;
        loop {
            let payload = read_frame(&mut self.stream)?;
            let mut r = Reader::new(&payload);
            let reply = codec::decode_reply_header(&mut r).map_err(|e| format!("{e:?}"))?;
            if reply.xid == xid::NOTIFICATION {
                // A state change (type -1, e.g. from Apache ZooKeeper) is not a watch event.
                if let Ok(event) = codec::decode_watcher_event(&mut r) {
                    self.events.push((reply.zxid, event));
                }
                continue;
            }
            if reply.xid == xid::PING {
                continue;
            }
            if reply.xid != xid {
                return Err(format!("reply for xid {} while waiting for {xid}", reply.xid));
            }
            if reply.err != 0 {
                return Ok((reply, None));
            }
            let op = codec::request_op(request);
            let body = codec::decode_response(op, &mut r).map_err(|e| format!("{e:?}"))?;
            return Ok((reply, Some(body)));
        }
    }
}

/// Reads one length-prefixed frame's payload.
fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).map_err(|_| format!("negative frame length {len}"))?;
    if len > MAX_FRAME {
        return Err(format!("frame of {len} bytes is over {MAX_FRAME}"));
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
    Ok(payload)
}
