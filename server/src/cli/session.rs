//! One client session over a blocking socket, for `zkr-cli`.
//!
//! Three parties share the socket: the caller (one request in flight at a time, replies matched
//! by xid), a reader thread (decodes every frame; prints watch notifications as they arrive,
//! hands replies to the caller through a channel) and a pinger thread (keeps an idle shell's
//! session alive). A notification for a write this session made is printed before that write's
//! reply is handed over, because the server sends it first, so output order is deterministic.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use zkr_core::proto::client::{ConnectRequest, ReplyHeader, Request, RequestHeader, Response, xid};
use zkr_core::proto::codec;
use zkr_core::proto::error::ZkError;
use zkr_core::proto::jute::Reader;

use super::format;

/// The largest reply frame accepted.
const MAX_FRAME: usize = 16 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with this error code.
    Zk(ZkError),
    /// The connection broke or the server sent something we cannot read.
    Io(String),
}

/// A frame the reader thread hands to the caller.
type Reply = Result<(ReplyHeader, Vec<u8>), String>;

/// Whether watch events are printed (`printwatches on|off`), shared with the reader thread.
pub type PrintWatches = Arc<AtomicBool>;

/// One open session.
pub struct Session {
    writer: Arc<Mutex<TcpStream>>,
    replies: Receiver<Reply>,
    alive: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    next_xid: i32,
    timeout: Duration,
    /// The session id the server gave.
    pub session_id: i64,
    /// The server this session is connected to.
    pub addr: SocketAddr,
}

impl Session {
    /// Connects to the first reachable server of `hosts` (`h1:p1,h2:p2`) and opens a session of
    /// `timeout_ms`; notifications are printed to stdout while `print_watches` is set.
    pub fn connect(hosts: &str, timeout_ms: i32, print: PrintWatches) -> Result<Session, String> {
        let mut last_error = format!("no server in {hosts:?}");
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let addrs = match host.to_socket_addrs() {
                Ok(addrs) => addrs.collect::<Vec<_>>(),
                Err(e) => {
                    last_error = format!("{host}: {e}");
                    continue;
                }
            };
            for addr in addrs {
                match Session::connect_one(addr, timeout_ms, print.clone()) {
                    Ok(session) => return Ok(session),
                    Err(e) => last_error = format!("{addr}: {e}"),
                }
            }
        }
        Err(last_error)
    }

    fn connect_one(
        addr: SocketAddr,
        timeout_ms: i32,
        print: PrintWatches,
    ) -> Result<Session, String> {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms.max(1)).expect("positive"));
        let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        stream.write_all(&codec::encode_connect_request(&request)).map_err(|e| e.to_string())?;
        let payload = read_frame(&mut stream)?;
        let response = codec::decode_connect_response(&payload).map_err(|e| format!("{e:?}"))?;
        if response.timeout_ms <= 0 {
            return Err("the server refused the session".into());
        }
        // The reader thread blocks until a frame or EOF; close() shuts the socket down.
        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
        let reader = stream.try_clone().map_err(|e| e.to_string())?;
        let writer = Arc::new(Mutex::new(stream));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, replies) = mpsc::channel();
        let negotiated = u64::try_from(response.timeout_ms).expect("positive");
        let threads = vec![
            std::thread::spawn(move || read_loop(reader, tx, print)),
            spawn_pinger(writer.clone(), alive.clone(), Duration::from_millis(negotiated / 3)),
        ];
        Ok(Session {
            writer,
            replies,
            alive,
            threads,
            next_xid: 1,
            timeout,
            session_id: response.session_id,
            addr,
        })
    }

    /// Sends `request` and waits for its reply body.
    pub fn call(&mut self, request: &Request) -> Result<Response, CallError> {
        let header = codec::request_header(self.next_xid, request);
        self.next_xid += 1;
        self.send(&header, request)?;
        loop {
            let (reply, payload) = match self.replies.recv_timeout(self.timeout) {
                Ok(reply) => reply.map_err(CallError::Io)?,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(CallError::Io("no reply within the session timeout".into()));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(CallError::Io("the connection is closed".into()));
                }
            };
            if reply.xid != header.xid {
                // A reply left over from an earlier call that gave up waiting.
                continue;
            }
            if reply.err != 0 {
                let err = ZkError::from_code(reply.err).unwrap_or(ZkError::SystemError);
                return Err(CallError::Zk(err));
            }
            let mut r = Reader::new(&payload);
            // Skip the ReplyHeader the reader thread already decoded.
            r.read_bytes(16, "ReplyHeader").map_err(|e| CallError::Io(format!("{e:?}")))?;
            let op = codec::request_op(request);
            return codec::decode_response(op, &mut r).map_err(|e| CallError::Io(format!("{e:?}")));
        }
    }

    fn send(&self, header: &RequestHeader, request: &Request) -> Result<(), CallError> {
        let frame = codec::encode_request(header, request);
        let mut stream = self.writer.lock().expect("writer lock");
        stream.write_all(&frame).map_err(|e| CallError::Io(e.to_string()))
    }

    /// Closes the session on the server (its ephemerals go at once) and stops both threads.
    pub fn close(mut self) {
        let _ = self.call(&Request::CloseSession);
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        let _ = self.writer.lock().expect("writer lock").shutdown(Shutdown::Both);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads frames until EOF: prints notifications, drops ping replies, forwards the rest.
fn read_loop(mut stream: TcpStream, tx: Sender<Reply>, print: PrintWatches) {
    loop {
        let payload = match read_frame(&mut stream) {
            Ok(payload) => payload,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut r = Reader::new(&payload);
        let reply = match codec::decode_reply_header(&mut r) {
            Ok(reply) => reply,
            Err(e) => {
                let _ = tx.send(Err(format!("{e:?}")));
                return;
            }
        };
        if reply.xid == xid::NOTIFICATION {
            if let Ok(ev) = codec::decode_watcher_event(&mut r)
                && print.load(Ordering::Relaxed)
            {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(format::watched_event(&ev).as_bytes());
                let _ = out.flush();
            }
            continue;
        }
        if reply.xid == xid::PING {
            continue;
        }
        if tx.send(Ok((reply, payload))).is_err() {
            return;
        }
    }
}

/// Sends a ping every `every` while the session is alive (checked ten times a second).
fn spawn_pinger(
    writer: Arc<Mutex<TcpStream>>,
    alive: Arc<AtomicBool>,
    every: Duration,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while alive.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            waited += step;
            if waited < every {
                continue;
            }
            waited = Duration::ZERO;
            let header =
                RequestHeader { xid: xid::PING, op: codec::request_op(&Request::Ping).code() };
            let frame = codec::encode_request(&header, &Request::Ping);
            if writer.lock().expect("writer lock").write_all(&frame).is_err() {
                return;
            }
        }
    })
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
