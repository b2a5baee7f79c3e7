//! Tier-2 clients: real wire protocol over madsim TCP to the real servers. Each client holds one
//! session at a time and one request in flight, issues the seed's op mix (tier 1's workload,
//! watches off), and records every request and reply in the jepsen history.
//!
//! Session end follows tier 1 (see `crate::client`): when the connection is lost while a session
//! is held, a `close` op is invoked, placed just after the last line the session's client
//! recorded (the leader may have expired the session before the client noticed); the same open
//! `close` is recorded for a session still held when the run ends, since the servers go on and
//! expire it (seed 2610: another session saw the ephemerals of an idle client's session go
//! after the run's end). The client reconnects to a random server with the session's id,
//! password and last zxid; the close completes `info` (SessionExpired) if the server refuses
//! the session, and stays open if the run ends first. When a server takes the session back, the
//! close completes `info` too (Reconnected), not `fail` as in tier 1: a deposed leader that has
//! not yet noticed it lost its quorum (it was paused, say) takes back a session the new leader
//! has already expired, as ZooKeeper's does, so the client cannot know the session survived
//! (seed 44: the session's ephemeral was gone while its client was told it reconnected). An op
//! whose reply never came is completed `info`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkr_core::proto::client::{ConnectRequest, ReplyHeader, Request, Response, xid};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;
use zkr_jepsen::history::{F, Kind};

use super::world::World;
use crate::swarm::{OpKind, Swarm};
use crate::workload::{self, Memory};

/// The largest reply frame a client accepts.
const MAX_FRAME: usize = 16 << 20;

/// The session a client holds.
struct Held {
    id: i64,
    passwd: Vec<u8>,
    /// The timeout the server granted.
    timeout_ms: i32,
    process: u64,
    /// The highest zxid its replies showed: sent on reconnect, so that a server behind it
    /// refuses the session (as ZooKeeper's client does, keeping reads monotonic).
    last_zxid: i64,
    /// A `close` op is open for it (the connection was lost).
    close_open: bool,
    /// Where its `close` invoke goes if it ends: just after the last line this session's
    /// client recorded (`World::slot`). The leader may expire a session its client still
    /// thinks it holds (the client was idle, or its server was cut off from the leader), and
    /// another session may see the ephemerals go before this client notices anything.
    close_slot: (usize, u64),
}

/// One client's loop until `deadline`.
pub struct Client {
    /// The shared world.
    pub world: Arc<World>,
    /// The servers' client addresses.
    pub servers: Vec<SocketAddr>,
    /// What the seed chose (op mix, keys).
    pub swarm: Swarm,
    /// This client's randomness.
    pub rng: ChaCha8Rng,
    /// Session timeout asked for.
    pub timeout_ms: i32,
}

impl Client {
    /// Runs until `deadline` (simulated).
    pub async fn run(mut self, deadline: Instant) {
        let mut held: Option<Held> = None;
        let mut memory = Memory::default();
        while Instant::now() < deadline {
            let slot = self.rng.random_range(0..self.servers.len());
            let Some(mut stream) = self.connect(self.servers[slot], &mut held).await else {
                tokio::time::sleep(Duration::from_millis(self.rng.random_range(20..200))).await;
                continue;
            };
            let session = held.as_mut().expect("connect leaves a session");
            match self.ops((&mut stream, slot), session, &mut memory, deadline).await {
                End::Lost => {
                    session.close_open = true;
                    self.world.record_close_at(session.close_slot, session.process);
                }
                End::Closed => held = None,
                End::Deadline => break,
            }
        }
        // The run ends with the session held: the servers go on (heal, liveness write) and
        // expire it, and other sessions may still see its ephemerals go. Its end is open.
        if let Some(session) = held.filter(|h| !h.close_open) {
            self.world.record_close_at(session.close_slot, session.process);
        }
    }

    /// Connects and opens or resumes a session; `None` if the server cannot be reached or
    /// refused us (then `held` is updated as the refusal says).
    async fn connect(&mut self, server: SocketAddr, held: &mut Option<Held>) -> Option<TcpStream> {
        let limit = Duration::from_millis(self.timeout_ms as u64 / 3);
        let mut stream =
            tokio::time::timeout(limit, TcpStream::connect(server)).await.ok()?.ok()?;
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: held.as_ref().map_or(0, |h| h.last_zxid),
            timeout_ms: self.timeout_ms,
            session_id: held.as_ref().map_or(0, |h| h.id),
            passwd: held.as_ref().map_or(vec![0; 16], |h| h.passwd.clone()),
            read_only: Some(false),
        };
        let frame = codec::encode_connect_request(&request);
        if let Some(h) = held {
            self.world.session_sent(h.id, h.timeout_ms);
        }
        stream.write_all(&frame).await.ok()?;
        stream.flush().await.ok()?;
        let payload = tokio::time::timeout(limit, read_frame(&mut stream)).await.ok()?.ok()?;
        let response = codec::decode_connect_response(&payload).ok()?;
        let now = self.world.now_us();
        if response.timeout_ms <= 0 {
            if let Some(h) = held.take() {
                let expired = Some("SessionExpired");
                self.world.record(workload::bare(
                    h.process,
                    Kind::Info,
                    F::Close,
                    None,
                    expired,
                    now,
                ));
            }
            return None;
        }
        match held {
            Some(h) if h.id == response.session_id => {
                if h.close_open {
                    let again = Some("Reconnected");
                    self.world.record(workload::bare(
                        h.process,
                        Kind::Info,
                        F::Close,
                        None,
                        again,
                        now,
                    ));
                    h.close_open = false;
                }
                h.close_slot = self.world.slot();
            }
            _ => {
                let process = self.world.process();
                self.world.session_sent(response.session_id, response.timeout_ms);
                *held = Some(Held {
                    id: response.session_id,
                    passwd: response.passwd.clone(),
                    timeout_ms: response.timeout_ms,
                    process,
                    last_zxid: 0,
                    close_open: false,
                    close_slot: self.world.slot(),
                });
            }
        }
        Some(stream)
    }

    /// Issues ops until the deadline, the session closes or the connection is lost. Requests
    /// go out in bursts of up to `max_in_flight` (pipelined, as real clients do); replies must
    /// come back in request order, or the session's FIFO order is broken.
    async fn ops(
        &mut self,
        (stream, slot): (&mut TcpStream, usize),
        held: &mut Held,
        memory: &mut Memory,
        deadline: Instant,
    ) -> End {
        let mut next_xid = 1;
        while Instant::now() < deadline {
            let burst = self.rng.random_range(1..=self.swarm.max_in_flight.max(1));
            let mut pending = Vec::new();
            for _ in 0..burst {
                let kind = workload::pick_kind(&self.swarm, &mut self.rng);
                let req = if kind == OpKind::Close {
                    Request::CloseSession
                } else {
                    workload::next_request(kind, &self.swarm, memory, held.process, &mut self.rng)
                };
                let closing = matches!(req, Request::CloseSession);
                pending.push((next_xid, req));
                next_xid += 1;
                if closing {
                    break;
                }
            }
            match self.burst((stream, slot), held, memory, pending).await {
                Burst::Done => {}
                Burst::Closed => return End::Closed,
                Burst::Lost => return End::Lost,
            }
            let (lo, hi) = self.swarm.think_ns;
            let think = self.rng.random_range(lo..=hi.max(lo));
            tokio::time::sleep(Duration::from_nanos(think)).await;
        }
        End::Deadline
    }

    /// Sends `pending` at once to server `slot` and collects their replies in order. A
    /// successful reply from a server that led one term from before the send is the leader
    /// hearing from the session (`sessions`' lower bound); one from a learner is a touch it
    /// must report to its leader (`follower_expiry`).
    async fn burst(
        &mut self,
        (stream, slot): (&mut TcpStream, usize),
        held: &mut Held,
        memory: &mut Memory,
        pending: Vec<(i32, Request)>,
    ) -> Burst {
        let read_timeout = Duration::from_millis(self.timeout_ms as u64 * 2 / 3);
        let mut sent = true;
        let leading = self.world.leading(slot);
        let relay = self.world.relay_start(slot);
        self.world.session_sent(held.id, held.timeout_ms);
        if pending.iter().any(|(_, r)| matches!(r, Request::CloseSession)) {
            self.world.close_requested(held.id);
        }
        for (xid, req) in &pending {
            self.world.record(workload::invoke(held.process, *xid, req, self.world.now_us()));
            let header = codec::request_header(*xid, req);
            sent = sent && stream.write_all(&codec::encode_request(&header, req)).await.is_ok();
        }
        sent = sent && stream.flush().await.is_ok();
        let mut cuts = self.world.cuts.subscribe();
        for (i, (xid, req)) in pending.iter().enumerate() {
            let reply = if sent {
                tokio::select! {
                    biased;
                    _ = cuts.changed() => Err("cut by the nemesis".to_string()),
                    reply = tokio::time::timeout(read_timeout, receive(stream, *xid, req)) => {
                        reply.unwrap_or_else(|_| Err("timed out".to_string()))
                    }
                }
            } else {
                Err("send failed".to_string())
            };
            let now = self.world.now_us();
            match reply {
                Ok((header, _)) if header.xid != *xid => {
                    let message = format!(
                        "session {:#x} got the reply for xid {} while waiting for {xid}",
                        held.id, header.xid
                    );
                    self.world.violation("session_fifo", message);
                    self.lose(held, &pending[i..], now);
                    return Burst::Lost;
                }
                Ok((header, body)) => {
                    held.last_zxid = held.last_zxid.max(header.zxid);
                    if let (0, Some(term)) = (header.err, leading) {
                        self.world.heard(slot, term, held.id, held.timeout_ms);
                    }
                    if let (0, Some(start)) = (header.err, relay) {
                        self.world.relayed(slot, start, held.id, held.timeout_ms);
                    }
                    if header.err == 0 && workload::is_write(req) {
                        self.world.acked.lock().expect("acked").insert(header.zxid);
                    }
                    let line = workload::completion(
                        held.process,
                        req,
                        &header,
                        body.as_ref(),
                        memory,
                        now,
                    );
                    self.world.record(line);
                    held.close_slot = self.world.slot();
                    if matches!(req, Request::CloseSession) {
                        return Burst::Closed;
                    }
                }
                Err(_) => {
                    self.lose(held, &pending[i..], now);
                    let closing = pending.iter().any(|(_, r)| matches!(r, Request::CloseSession));
                    return if closing { Burst::Closed } else { Burst::Lost };
                }
            }
        }
        Burst::Done
    }

    /// The requests in `unanswered` will never be answered on this connection: `info`.
    fn lose(&self, held: &Held, unanswered: &[(i32, Request)], now: u64) {
        for (xid, req) in unanswered {
            let f = workload::function(req).expect("workload requests have a function");
            let lost = Some("ConnectionLoss");
            let line = workload::bare(held.process, Kind::Info, f, Some(*xid), lost, now);
            self.world.record(line);
        }
    }
}

/// Why a connection's run of ops ended.
enum End {
    /// The session was closed (or its close was sent and the connection is gone).
    Closed,
    /// The connection is lost with the session held.
    Lost,
    /// The run's deadline passed with the session held.
    Deadline,
}

/// How a burst of requests ended.
enum Burst {
    /// Every reply arrived.
    Done,
    /// The session was closed (or its close was sent and the connection is gone).
    Closed,
    /// The connection is lost with the session held.
    Lost,
}

/// The next reply (skipping pings and notifications), its body decoded as `request`'s if it is
/// `xid`'s and succeeded (the caller reports a reply for another xid).
async fn receive(
    stream: &mut TcpStream,
    xid: i32,
    request: &Request,
) -> Result<(ReplyHeader, Option<Response>), String> {
    loop {
        let payload = read_frame(stream).await.map_err(|e| e.to_string())?;
        let mut r = Reader::new(&payload);
        let reply = codec::decode_reply_header(&mut r).map_err(|e| format!("{e:?}"))?;
        if reply.xid == xid::NOTIFICATION || reply.xid == xid::PING {
            continue;
        }
        if reply.err != 0 || reply.xid != xid {
            return Ok((reply, None));
        }
        let op = codec::request_op(request);
        let body = codec::decode_response(op, &mut r).map_err(|e| format!("{e:?}"))?;
        return Ok((reply, Some(body)));
    }
}

/// Opens a fresh session on `addr` and creates `/live-<n>`: true once the create is
/// acknowledged (or the node exists: an earlier probe's create committed).
pub async fn write_once(addr: SocketAddr, n: u64) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 4_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        stream.write_all(&codec::encode_connect_request(&request)).await.ok()?;
        stream.flush().await.ok()?;
        let response = codec::decode_connect_response(&read_frame(&mut stream).await.ok()?).ok()?;
        if response.timeout_ms <= 0 {
            return None;
        }
        let create = Request::Create {
            op: zkr_core::proto::client::OpCode::Create,
            path: format!("/live-{n}"),
            data: Some(b"live".to_vec()),
            acl: zkr_core::types::Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        };
        let (header, _) = call(&mut stream, 1, &create).await.ok()?;
        const NODE_EXISTS: i32 = -110;
        (header.err == 0 || header.err == NODE_EXISTS).then_some(())
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), attempt).await, Ok(Some(())))
}

/// Sends `request` as `xid` and waits for its reply, skipping pings and notifications.
async fn call(
    stream: &mut TcpStream,
    xid: i32,
    request: &Request,
) -> Result<(ReplyHeader, Option<Response>), String> {
    let header = codec::request_header(xid, request);
    let frame = codec::encode_request(&header, request);
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    loop {
        let payload = read_frame(stream).await.map_err(|e| e.to_string())?;
        let mut r = Reader::new(&payload);
        let reply = codec::decode_reply_header(&mut r).map_err(|e| format!("{e:?}"))?;
        if reply.xid == xid::NOTIFICATION || reply.xid == xid::PING {
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

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes")));
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}
