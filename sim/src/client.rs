//! Simulated clients: each holds at most one connection and one session, handshakes, pipelines
//! requests from the seed's op mix, pings when idle, detects a dead connection by silence (the
//! Java client's read timeout, 2/3 of the session timeout), reconnects to a random node with its
//! session id and password, and records everything in the history (see `workload.rs`).
//!
//! A jepsen process is one session: a client that starts a new session gets a new process id.
//! Session end in the history: a `close` op is invoked whenever the client loses its connection
//! while holding a session (the session may expire from then on); it completes `fail` if a
//! reconnect finds the session alive, `info` (`SessionExpired`) if the server refuses it as
//! expired, and stays open (`info`) if the client never comes back. A refusal is not `ok`: the
//! leader refuses a session as soon as it marks it closing, before its closeSession commits; a
//! leader that loses its quorum first never commits it, and the next leader expires the
//! session again later, so its ephemerals can outlive the refusal (ZooKeeper's
//! `SessionTrackerImpl.touchSession` does the same). An explicit `closeSession` is a `close` op
//! on the wire, `ok` once committed. So the checker is told exactly what the client can know.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zkr_core::proto::client::{ConnectRequest, EventType, Request, Response, xid};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;
use zkr_core::types::{SessionId, Zxid};
use zkr_jepsen::history::{F, Kind};

use crate::invariants::ephemerals::Ephemerals;
use crate::invariants::{Violation, session_fifo};
use crate::net::{Addr, LinkId, LinkKind};
use crate::sim::{Ev, Msg, Phase, Sim};
use crate::swarm::{OpKind, Swarm};
use crate::workload::{self, Memory};

/// A connection as the client sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientConn {
    pub link: LinkId,
    pub handshake_done: bool,
    pub since: u64,
}

/// A session the client holds.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    pub id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    pub process: u64,
}

/// A request waiting for its reply.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub xid: i32,
    /// Index of its invoke in the history.
    pub invoke: usize,
    /// The request as far as its reply needs it (`invoke_line`): a create's path, data and ACL,
    /// a setData's data and a delete's or sync's path are in the history line instead (empty
    /// here).
    pub req: Request,
    pub process: u64,
}

/// Watches the client has left and not yet seen fire, by path, with the history index of the
/// read that left each. ZooKeeper clients re-register watches after a reconnect (`setWatches`),
/// but that loses events (an exists watch misses a create and delete that happened meanwhile)
/// and its events carry no zxid, which the history format cannot express. So the simulated
/// client drops its watches when its connection drops and clears the `watch` flag of the reads
/// that left them: the history then claims only the watches the client really kept.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watches {
    pub data: std::collections::BTreeMap<String, Vec<usize>>,
    pub exist: std::collections::BTreeMap<String, Vec<usize>>,
    pub child: std::collections::BTreeMap<String, Vec<usize>>,
}

impl Watches {
    fn left(&mut self, req: &Request, err: i32, body: Option<&Response>, invoke: usize) {
        let table = match (req, body) {
            (Request::GetData { watch: true, .. }, Some(_))
            | (Request::Exists { watch: true, .. }, Some(_)) => &mut self.data,
            (Request::Exists { watch: true, .. }, None) if err != 0 => &mut self.exist,
            (Request::GetChildren { watch: true, .. }, Some(_)) => &mut self.child,
            _ => return,
        };
        let path = match req {
            Request::GetData { path, .. }
            | Request::Exists { path, .. }
            | Request::GetChildren { path, .. } => path,
            _ => unreachable!("matched above"),
        };
        table.entry(path.clone()).or_default().push(invoke);
    }

    fn fired(&mut self, event: EventType, path: &str) {
        match event {
            EventType::NodeCreated => {
                self.exist.remove(path);
            }
            EventType::NodeDataChanged => {
                self.data.remove(path);
            }
            EventType::NodeDeleted => {
                self.data.remove(path);
                self.child.remove(path);
            }
            EventType::NodeChildrenChanged => {
                self.child.remove(path);
            }
        }
    }

    /// The invokes whose watches are lost with the connection.
    fn lost(&mut self) -> Vec<usize> {
        let all = std::mem::take(self);
        [all.data, all.exist, all.child]
            .into_iter()
            .flat_map(|t| t.into_values().flatten())
            .collect()
    }
}

/// One simulated client.
pub(crate) struct Client {
    pub addr: Addr,
    /// The liveness phase's fresh client: one write, then idle.
    pub liveness: bool,
    pub conn: Option<ClientConn>,
    pub session: Option<Held>,
    /// A `close` invoke is open in the history (connection lost while holding the session).
    pub close_open: bool,
    /// An explicit closeSession is in flight: issue nothing more on this session.
    pub closing: bool,
    pub pending: VecDeque<Pending>,
    pub next_xid: i32,
    pub last_heard: u64,
    /// Where a `close` invoke goes in the history if the session turns out to have ended: just
    /// after what the client had received when it last heard from a server (history length
    /// then, and the time). The server may expire the session any time after that, before the
    /// client notices, so the close's window must open there.
    pub close_slot: (usize, u64),
    pub last_sent: u64,
    pub silent_until: u64,
    pub memory: Memory,
    pub requested_timeout_ms: i32,
    pub last_zxid_seen: i64,
    /// The liveness client issued its write (and has no lost one to retry).
    pub done: bool,
    /// The liveness client's writes issued so far: one unless a connection was lost with the
    /// write in flight, which an application retries (seed 342174).
    pub live_attempts: u32,
    pub watches: Watches,
}

impl Client {
    pub(crate) fn new(addr: Addr, liveness: bool, swarm: &Swarm, rng: &mut ChaCha8Rng) -> Client {
        let (lo, hi) = swarm.session_timeout_ms;
        Client {
            addr,
            liveness,
            conn: None,
            session: None,
            close_open: false,
            closing: false,
            close_slot: (0, 0),
            pending: VecDeque::new(),
            next_xid: 1,
            last_heard: 0,
            last_sent: 0,
            silent_until: 0,
            memory: Memory::default(),
            requested_timeout_ms: rng.random_range(lo..=hi),
            last_zxid_seen: 0,
            done: false,
            live_attempts: 0,
            watches: Watches::default(),
        }
    }

    fn timeout_ms(&self) -> i32 {
        self.session.as_ref().map_or(self.requested_timeout_ms, |s| s.timeout_ms)
    }
}

fn us(now: u64) -> u64 {
    now / 1_000
}

/// The history's `invoke` line of `req`, whose frame is already encoded, and `req` stripped to
/// what its reply needs (`record::completion`, the watches left, the checks): the line takes
/// the path of a create, delete or sync and the data of a create or setData instead of copies
/// (the reply of these reads neither), and a create's ACL goes back to `memory` for the next
/// create. Reads and setData keep their path (the reply's stat and watch are filed under it);
/// a multi keeps everything. The line is the one `record::invoke` makes of the whole request
/// (unit test `invoke_line_is_the_recorders_line`).
fn invoke_line(
    process: u64,
    xid: i32,
    req: &mut Request,
    time_us: u64,
    memory: &mut Memory,
) -> zkr_jepsen::history::Event {
    let (path, data) = match req {
        Request::Create { path, data, acl, .. } => {
            memory.give_back_acl(std::mem::take(acl));
            (Some(std::mem::take(path)), data.take())
        }
        Request::SetData { data, .. } => (None, data.take()),
        Request::Delete { path, .. } | Request::Sync { path } => (Some(std::mem::take(path)), None),
        _ => (None, None),
    };
    let mut event = workload::invoke(process, xid, req, time_us);
    if let Some(path) = path {
        assert_eq!(event.path.as_deref(), Some(""), "the recorder took the emptied path");
        event.path = Some(path);
    }
    if let Some(data) = data {
        assert!(event.data.is_none(), "the recorder saw no data");
        // Valid UTF-8 (the workload's data always is) becomes the `String` without a copy;
        // anything else as the recorder would write it.
        let text = String::from_utf8(data)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        event.data = Some(text);
    }
    event
}

impl Sim {
    pub(crate) fn client_wake(&mut self, c: usize) {
        let think = self.rng.random_range(self.swarm.think_ns.0..=self.swarm.think_ns.1);
        let client = &self.clients[c];
        if client.silent_until == u64::MAX {
            return;
        }
        if client.silent_until > self.now {
            let at = client.silent_until;
            self.schedule(at, Ev::ClientWake { client: c });
            return;
        }
        self.schedule(self.now + think, Ev::ClientWake { client: c });
        let timeout_ns = self.clients[c].timeout_ms() as u64 * 1_000_000;
        match self.clients[c].conn {
            None => self.client_connect(c),
            Some(conn) if !conn.handshake_done => {
                if self.now > conn.since + timeout_ns * 2 / 3 {
                    self.break_link(conn.link, "connect timed out");
                }
            }
            Some(conn) => {
                let client = &self.clients[c];
                if self.now > client.last_heard + timeout_ns * 2 / 3 {
                    self.break_link(conn.link, "read timeout");
                } else if client.pending.len() < self.swarm.max_in_flight
                    && !client.closing
                    && !client.done
                {
                    self.client_issue(c, conn.link);
                } else if self.now > client.last_sent + timeout_ns / 3 {
                    self.client_send(c, conn.link, xid::PING, &Request::Ping);
                }
            }
        }
    }

    fn client_connect(&mut self, c: usize) {
        let node = self.rng.random_range(0..self.nodes.len());
        let to = self.nodes[node].addr;
        let from = self.clients[c].addr;
        let Some(link) = self.net.open(from, to, LinkKind::Stream) else {
            self.trace.event(self.now, "refused", &[c as u64, node as u64], &[], || {
                format!("client {c} cannot reach n{node}")
            });
            return;
        };
        let client = &mut self.clients[c];
        client.conn = Some(ClientConn { link, handshake_done: false, since: self.now });
        client.last_heard = self.now;
        let (session_id, passwd) =
            client.session.as_ref().map_or((0, vec![0; 16]), |s| (s.id, s.passwd.clone()));
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: client.last_zxid_seen,
            timeout_ms: client.requested_timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        };
        if session_id != 0 {
            let max_delay = self.swarm.net.delay_ns_max * crate::nemesis::SLOW_FACTOR_MAX;
            self.checks.ephemerals.touched(SessionId(session_id), self.now + max_delay);
        }
        self.trace.event(self.now, "connect", &[c as u64, node as u64, link.0], &[], || {
            format!("client {c} -> n{node} c{} session {session_id:#x}", link.0)
        });
        self.send(link, from, Msg::Open);
        let frame = codec::encode_connect_request(&req);
        self.send(link, from, Msg::payload(frame));
        self.clients[c].last_sent = self.now;
    }

    fn client_send(&mut self, c: usize, link: LinkId, xid: i32, req: &Request) {
        let header = codec::request_header(xid, req);
        let frame = codec::encode_request(&header, req);
        let from = self.clients[c].addr;
        self.send(link, from, Msg::payload(frame));
        self.clients[c].last_sent = self.now;
    }

    fn client_issue(&mut self, c: usize, link: LinkId) {
        let Some(process) = self.clients[c].session.as_ref().map(|s| s.process) else {
            return;
        };
        let req = if self.clients[c].liveness {
            let client = &mut self.clients[c];
            client.done = true;
            client.live_attempts += 1;
            // A retry takes a new path: the lost attempt may have committed, and the retry
            // must be a write that can succeed, not NodeExists.
            let path = match client.live_attempts {
                1 => "/live".to_string(),
                n => format!("/live{n}"),
            };
            let acl = zkr_core::types::Acl::open_unsafe();
            let op = zkr_core::proto::client::OpCode::Create;
            let data = Some(b"live".to_vec());
            Request::Create { op, path, data, acl, flags: 0, ttl: -1 }
        } else {
            match workload::pick_kind(&self.swarm, &mut self.rng) {
                OpKind::Close => {
                    self.clients[c].closing = true;
                    Request::CloseSession
                }
                kind => {
                    let memory = &mut self.clients[c].memory;
                    workload::next_request(kind, &self.swarm, memory, process, &mut self.rng)
                }
            }
        };
        let client = &mut self.clients[c];
        let xid = client.next_xid;
        client.next_xid += 1;
        self.trace.event(self.now, "invoke", &[c as u64, process, xid as u64], &[], || {
            format!("client {c} p{process} xid {xid} {req:?}")
        });
        self.client_send(c, link, xid, &req);
        // The frame is on its way: what only the frame and the history need moves into the
        // history line, and the request kept for the reply holds the rest.
        let mut req = req;
        let event = invoke_line(process, xid, &mut req, us(self.now), &mut self.clients[c].memory);
        let invoke = self.history.len();
        self.history.push(event);
        self.clients[c].pending.push_back(Pending { xid, invoke, req, process });
    }

    /// A frame from the server reached client `c`.
    pub(crate) fn client_frame(&mut self, c: usize, link: LinkId, payload: Vec<u8>) {
        let Some(conn) = self.clients[c].conn.filter(|k| k.link == link) else {
            return;
        };
        self.clients[c].last_heard = self.now;
        if !conn.handshake_done {
            self.client_handshake(c, link, &payload);
        } else {
            self.client_reply(c, payload);
        }
        // Whatever this frame completed is now in the history: a later `close` goes after it.
        self.clients[c].close_slot = (self.history.len(), us(self.now));
    }

    fn client_reply(&mut self, c: usize, payload: Vec<u8>) {
        let mut r = Reader::new(&payload);
        let header = match codec::decode_reply_header(&mut r) {
            Ok(h) => h,
            Err(e) => return self.bad_frame(c, &format!("reply header: {e:?}")),
        };
        let Some(process) = self.clients[c].session.as_ref().map(|s| s.process) else {
            return;
        };
        if header.xid == xid::NOTIFICATION {
            let event = match codec::decode_watcher_event(&mut r) {
                Ok(e) => e,
                Err(e) => return self.bad_frame(c, &format!("notification: {e:?}")),
            };
            let line = workload::watch_event(
                process,
                header.zxid,
                event.event_type,
                &event.path,
                us(self.now),
            );
            self.trace.event(
                self.now,
                "watch",
                &[c as u64, header.zxid as u64],
                event.path.as_bytes(),
                || {
                    format!(
                        "client {c} p{process} {:?} {} zxid {:#x}",
                        event.event_type, event.path, header.zxid
                    )
                },
            );
            self.history.push(line);
            self.clients[c].watches.fired(event.event_type, &event.path);
            return;
        }
        if header.xid == xid::PING || header.xid == xid::SET_WATCHES {
            return;
        }
        let expected = self.clients[c].pending.front().map(|p| p.xid);
        if let Some(v) = session_fifo::check(c, expected, header.xid, self.now) {
            self.violation(v);
            return;
        }
        let pending = self.clients[c].pending.pop_front().expect("checked above");
        let body = if header.err == 0 && r.remaining() > 0 {
            match codec::decode_response(codec::request_op(&pending.req), &mut r) {
                Ok(b) => Some(b),
                Err(e) => return self.bad_frame(c, &format!("reply body: {e:?}")),
            }
        } else {
            None
        };
        let memory = &mut self.clients[c].memory;
        let line = workload::completion(
            process,
            &pending.req,
            &header,
            body.as_ref(),
            memory,
            us(self.now),
        );
        let ok = line.kind == Some(Kind::Ok);
        self.trace.event(
            self.now,
            "reply",
            &[c as u64, header.xid as u64, header.zxid as u64],
            &[],
            || {
                format!(
                    "client {c} p{process} xid {} err {} zxid {:#x} {body:?}",
                    header.xid, header.err, header.zxid
                )
            },
        );
        self.history.push(line);
        let client = &mut self.clients[c];
        client.last_zxid_seen = client.last_zxid_seen.max(header.zxid);
        client.watches.left(&pending.req, header.err, body.as_ref(), pending.invoke);
        let session = SessionId(client.session.as_ref().map_or(0, |s| s.id));
        if ok && workload::is_write(&pending.req) {
            let zxid = Zxid(header.zxid);
            if let Some(v) = self.checks.acked.acked(zxid, session, pending.xid, self.now) {
                self.violation(v);
            }
        }
        let create = matches!(pending.req, Request::Create { .. });
        if ok && self.clients[c].liveness && create && self.liveness_acked.is_none() {
            self.liveness_acked = Some(self.now);
            self.mix.events_to_liveness_ack = self.trace.events();
        }
        if matches!(pending.req, Request::CloseSession) && ok {
            self.session_closed(c, session, header.zxid);
        }
    }

    fn session_closed(&mut self, c: usize, session: SessionId, zxid: i64) {
        let client = &mut self.clients[c];
        client.session = None;
        client.closing = false;
        for n in 0..self.nodes.len() {
            let Some(node) = &self.nodes[n].node else {
                continue;
            };
            if node.last_zxid().0 >= zxid
                && let Some(v) = Ephemerals::closed(n, session, node.tree(), self.now)
            {
                self.violation(v);
            }
        }
    }

    fn bad_frame(&mut self, c: usize, what: &str) {
        let message = format!("client {c} cannot decode a server frame: {what}");
        self.violation(Violation { invariant: "session_fifo", at_ns: self.now, message });
    }

    fn client_handshake(&mut self, c: usize, link: LinkId, payload: &[u8]) {
        let resp = match codec::decode_connect_response(payload) {
            Ok(r) => r,
            Err(e) => return self.bad_frame(c, &format!("connect response: {e:?}")),
        };
        let now_us = us(self.now);
        let client = &mut self.clients[c];
        if resp.timeout_ms <= 0 {
            // Refused: the session expired (or never existed). Its end is decided, but its
            // closeSession may not be committed yet, nor ever by this leader: the close's
            // outcome stays unknown (see the module doc).
            if let Some(held) = client.session.take() {
                if !client.close_open {
                    let (at, time) = client.close_slot;
                    self.close_inserts.push((at, workload::close_invoke(held.process, time)));
                }
                let expired = Some("SessionExpired");
                let end = workload::bare(held.process, Kind::Info, F::Close, None, expired, now_us);
                self.history.push(end);
            }
            let client = &mut self.clients[c];
            client.close_open = false;
            client.closing = false;
            client.watches = Watches::default();
            self.trace.event(self.now, "expired", &[c as u64], &[], || format!("client {c}"));
            self.break_link(link, "session expired");
            return;
        }
        match &client.session {
            Some(held) if held.id == resp.session_id => {
                let process = held.process;
                if client.close_open {
                    let fail = workload::bare(
                        process,
                        Kind::Fail,
                        F::Close,
                        None,
                        Some("Reconnected"),
                        now_us,
                    );
                    self.history.push(fail);
                }
                self.checks.ephemerals.resumed(SessionId(resp.session_id));
            }
            Some(held) => {
                let message = format!(
                    "client {c} reconnected with session {:#x} but was given {:#x}",
                    held.id, resp.session_id
                );
                return self.violation(Violation {
                    invariant: "session_fifo",
                    at_ns: self.now,
                    message,
                });
            }
            None => {
                let process = self.next_process;
                self.next_process += 1;
                client.watches = Watches::default();
                client.memory.ephemeral_parent_requested = false;
                client.session = Some(Held {
                    id: resp.session_id,
                    passwd: resp.passwd.clone(),
                    timeout_ms: resp.timeout_ms,
                    process,
                });
            }
        }
        let client = &mut self.clients[c];
        client.close_open = false;
        client.conn = Some(ClientConn { link, handshake_done: true, since: self.now });
        let id = resp.session_id;
        self.trace.event(self.now, "session", &[c as u64, id as u64], &[], || {
            format!("client {c} holds {id:#x} timeout {}", resp.timeout_ms)
        });
    }

    /// Client `c` lost its connection `link` (either end closed it, or it broke).
    pub(crate) fn client_disconnected(&mut self, c: usize, link: LinkId) {
        if self.clients[c].conn.is_none_or(|k| k.link != link) {
            return;
        }
        let now_us = us(self.now);
        let client = &mut self.clients[c];
        client.conn = None;
        for invoke in client.watches.lost() {
            self.history[invoke].watch = false;
        }
        let client = &mut self.clients[c];
        for p in std::mem::take(&mut client.pending) {
            // The liveness client's write was lost with the connection: like an application
            // that gets ConnectionLoss, it writes again once it has a connection.
            if self.clients[c].liveness && matches!(p.req, Request::Create { .. }) {
                self.clients[c].done = false;
            }
            let Some(f) = workload::function(&p.req) else {
                continue;
            };
            let line = workload::bare(
                p.process,
                Kind::Info,
                f,
                Some(p.xid),
                Some("ConnectionLoss"),
                now_us,
            );
            self.history.push(line);
        }
        let client = &mut self.clients[c];
        let Some(held) = client.session.clone() else {
            return;
        };
        if client.closing {
            // The explicit close's outcome is unknown: give the session up.
            client.session = None;
            client.closing = false;
        } else if !client.close_open {
            client.close_open = true;
            let (at, time) = client.close_slot;
            self.close_inserts.push((at, workload::close_invoke(held.process, time)));
        }
        self.checks.ephemerals.silent(SessionId(held.id), held.timeout_ms, self.now);
    }

    /// The nemesis makes client `c` drop its connection; it stays silent until `until`.
    pub(crate) fn client_drop(&mut self, c: usize, until: u64, why: &str) {
        if let Some(conn) = self.clients[c].conn {
            self.break_link(conn.link, why);
        }
        // The client's wake chain sees `silent_until` and sleeps until then (or for good).
        self.clients[c].silent_until = until;
    }

    /// True while the run still injects faults.
    pub(crate) fn in_fault_phase(&self) -> bool {
        self.phase == Phase::Faults
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use zkr_core::types::Acl;

    use super::*;
    use crate::swarm::OP_KINDS;

    /// Every kind of request the workload makes (a multi, the first creates of `/seq` and
    /// `/e<p>`, invalid UTF-8 data) gets the line `record::invoke` makes of the whole request,
    /// and the stripped request still gives the reply what it reads: its op code, its function,
    /// whether it writes, and the path of a read or setData.
    #[test]
    fn invoke_line_is_the_recorders_line() {
        let swarm = Swarm::of_seed(7);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut memory = Memory::default();
        let mut requests = Vec::new();
        for round in 0..40 {
            for kind in OP_KINDS.into_iter().filter(|k| *k != OpKind::Close) {
                let process = 1 + round % 3;
                requests.push(workload::next_request(kind, &swarm, &mut memory, process, &mut rng));
            }
        }
        let (op, flags) = (zkr_core::proto::client::OpCode::Create, 0);
        let (path, data, acl) = ("/bad".to_string(), Some(vec![b'a', 0xff]), Acl::open_unsafe());
        requests.push(Request::Create { op, path, data, acl, flags, ttl: -1 });
        requests.push(Request::CloseSession);
        let mut kept_acl = 0;
        for (i, whole) in requests.into_iter().enumerate() {
            let xid = i32::try_from(i).expect("few");
            let expected = workload::invoke(9, xid, &whole, 5);
            let mut stripped = whole.clone();
            let mut memory = Memory::default();
            let line = invoke_line(9, xid, &mut stripped, 5, &mut memory);
            assert_eq!(line, expected, "{whole:?}");
            kept_acl += usize::from(memory.spare_open_acl.is_some());
            assert_eq!(codec::request_op(&stripped), codec::request_op(&whole));
            assert_eq!(workload::function(&stripped), workload::function(&whole));
            assert_eq!(workload::is_write(&stripped), workload::is_write(&whole));
            match (&stripped, &whole) {
                (Request::SetData { path: a, .. }, Request::SetData { path: b, .. })
                | (Request::GetData { path: a, .. }, Request::GetData { path: b, .. })
                | (Request::Exists { path: a, .. }, Request::Exists { path: b, .. })
                | (Request::GetChildren { path: a, .. }, Request::GetChildren { path: b, .. }) => {
                    assert_eq!(a, b, "the reply files its stat and watch under the path");
                }
                (Request::Multi(a), Request::Multi(b)) => assert_eq!(a, b),
                _ => {}
            }
        }
        assert!(kept_acl > 40, "creates hand their ACL back: {kept_acl}");
    }
}
