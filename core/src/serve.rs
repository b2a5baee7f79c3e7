//! The per-connection pipeline: handshake, auth, and requests served in the order the client sent
//! them. Reads run locally when they reach the front of their connection's queue, so a read after
//! a write of the same session sees that write (FIFO per session, read-your-writes); writes go to
//! `prep` and wait for their txn to commit.
//!
//! Invariants:
//! - replies leave in request order per connection (the Java client fails on "xid out of order");
//! - a queued read runs only when every earlier request of its connection has been answered;
//! - a connection in `Connecting` has proposed a CreateSession and queues frames in `deferred`
//!   (ZooKeeper stops reading until the session is set up);
//! - an `Established` connection's session names this connection as its holder, unless the
//!   session is gone (closed or expired) and the connection is closing.

use std::collections::VecDeque;

use crate::conn::{Conn, Pending, Phase};
use crate::io::Output;
use crate::proto::client::{
    ConnectRequest, ConnectResponse, OpCode, ReplyHeader, Request, Response,
};
use crate::proto::codec::{self, BodyError};
use crate::proto::error::ZkError;
use crate::reply::ReplyShape;
use crate::session::session_password;
use crate::shared::{Shared, Upstream};
use crate::tree::ApplyOutcome;
use crate::txn::TxnHeader;
use crate::types::{ConnId, Id, SessionId};

/// A request the leader decides as a txn (see [`OpCode::is_write`]).
fn is_write(req: &Request) -> bool {
    codec::request_op(req).is_write()
}

fn shape_of(req: &Request) -> ReplyShape {
    match req {
        Request::Create { op, .. } => ReplyShape::Create(*op),
        Request::SetData { .. } | Request::SetAcl { .. } => ReplyShape::Stat,
        Request::Multi(ops) => ReplyShape::Multi(
            ops.iter()
                .map(|op| match op {
                    // The multi is refused as a whole (MARSHALLINGERROR) when the flags are bad.
                    Request::Create { op, flags, .. } => {
                        crate::prep::multi_create_opcode(*op, *flags).unwrap_or(*op)
                    }
                    Request::Delete { .. } => OpCode::Delete,
                    Request::SetData { .. } => OpCode::SetData,
                    _ => OpCode::Check,
                })
                .collect(),
        ),
        _ => ReplyShape::Empty,
    }
}

impl Shared {
    pub(crate) fn on_client_connected(&mut self, conn: ConnId, remote_ip: String) {
        assert!(!self.conns.contains_key(&conn), "connection ids are never reused");
        let ids = std::sync::Arc::new(vec![Id::new("ip", &remote_ip)]);
        let c = Conn {
            phase: Phase::AwaitConnect,
            ids,
            queue: VecDeque::new(),
            deferred: VecDeque::new(),
            sasl: None,
        };
        self.conns.insert(conn, c);
    }

    pub(crate) fn on_client_closed(&mut self, conn: ConnId, role: &mut dyn Upstream) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.watches.remove_conn(conn);
        if let Some(session) = c.session() {
            if self.connecting.get(&session) == Some(&conn) {
                self.connecting.remove(&session);
            }
            role.conn_closed(conn, session);
            if self.sessions.get(session).and_then(|s| s.conn) == Some(conn) {
                self.sessions.set_conn(session, None);
            }
        }
        assert!(!self.conns.contains_key(&conn));
    }

    /// Emits a close for the connection and stops serving it.
    pub(crate) fn close_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.phase == Phase::Closing {
            return;
        }
        c.phase = Phase::Closing;
        c.queue.clear();
        c.deferred.clear();
        self.watches.remove_conn(conn);
        self.outputs.push(Output::ClientClose { conn });
    }

    pub(crate) fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.outputs.push(Output::ClientSend { conn, frame });
    }

    pub(crate) fn on_client_frame(
        &mut self,
        conn: ConnId,
        payload: Vec<u8>,
        role: &mut dyn Upstream,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.phase {
            Phase::AwaitConnect => self.on_connect_request(conn, &payload, role),
            Phase::Connecting { .. } => c.deferred.push_back(payload),
            Phase::Established { session } => self.on_request(conn, session, &payload, role),
            Phase::Closing => {}
        }
    }

    fn on_connect_request(&mut self, conn: ConnId, payload: &[u8], role: &mut dyn Upstream) {
        let req = match codec::decode_connect_request(payload) {
            Ok(req) => req,
            Err(err) => {
                tracing::info!(?conn, %err, "malformed ConnectRequest; closing");
                return self.close_conn(conn);
            }
        };
        if !role.serving() {
            tracing::info!(?conn, "not serving (no established leader); closing");
            return self.close_conn(conn);
        }
        if req.last_zxid_seen > self.tree.last_processed_zxid().0 {
            tracing::info!(
                ?conn,
                "client has seen zxid {:#x}, newer than ours; closing",
                req.last_zxid_seen
            );
            return self.close_conn(conn);
        }
        let timeout_ms = req
            .timeout_ms
            .clamp(self.config.session_timeout_ms_min, self.config.session_timeout_ms_max);
        if req.session_id == 0 {
            self.create_session(conn, timeout_ms, req.read_only, role);
        } else {
            self.reconnect_session(conn, &req, timeout_ms, role);
        }
    }

    fn create_session(
        &mut self,
        conn: ConnId,
        timeout_ms: i32,
        read_only: Option<bool>,
        role: &mut dyn Upstream,
    ) {
        // `first_session_id` starts after the clock (`initial_session_id`, as ZooKeeper's
        // `SessionTrackerImpl`) and after the own sessions it sees at start, but a server starts
        // before its log is applied, and its clock may have stepped back since an earlier
        // incarnation: sim seed 46734 restarted with its snapshot's `…0000`, the log's `…0001`
        // applied later, and handed `…0001` out again. Never give out an id a live session
        // holds: the new client would share it (the password is derived from the id) and take
        // over its connection. Since then the start counts the log's creations and applying one
        // moves past it (`session::past_created`); this check stays as the last line.
        let mut id = self.next_session_id;
        while id as u64 == 0x8000_0000_0000_0000
            || self.sessions.get(SessionId(id)).is_some()
            || self.connecting.contains_key(&SessionId(id))
        {
            id += 1;
        }
        self.next_session_id = id + 1;
        let session = SessionId(id);
        assert!(self.sessions.get(session).is_none(), "a new session id is not in use");
        assert!(!self.connecting.contains_key(&session), "nor being created");
        let c = self.conns.get_mut(&conn).expect("caller checked");
        c.phase = Phase::Connecting { session, read_only };
        self.connecting.insert(session, conn);
        // Proposed by a leader, forwarded by a learner.
        role.create_session(self, session, timeout_ms);
    }

    fn reconnect_session(
        &mut self,
        conn: ConnId,
        req: &ConnectRequest,
        timeout_ms: i32,
        role: &mut dyn Upstream,
    ) {
        let session = SessionId(req.session_id);
        // A learner may lag behind the session's creation or expiry: only the leader knows,
        // so a learner checks the password alone and asks the leader (REVALIDATE).
        let alive = role.is_learner() || self.sessions.get(session).is_some_and(|s| !s.closing);
        let valid = alive && req.passwd == session_password(session);
        if !valid {
            tracing::info!(%session, ?conn, "reconnect refused: unknown, expired or bad password");
            return self.refuse_session(conn, req.read_only);
        }
        if role.is_learner() {
            // The connection that holds the session here is closed first, as ZooKeeper's
            // `processConnectRequest` does (`closeSession` before `reopenSession`): our
            // REVALIDATE makes this server the session's owner again at the leader, so a
            // request still arriving on the old connection, sent before the client moved on,
            // would be forwarded after it, pass the owner check and land after the session's
            // newer writes elsewhere (tier 2 seed 97456: a create held by a pause).
            let held = self.sessions.get(session).and_then(|s| s.conn).filter(|c| *c != conn);
            if let Some(held) = held {
                tracing::info!(%session, old = ?held, ?conn, "reconnect here; old one closed");
                self.close_conn(held);
            }
            // The leader decides whether the session is still alive (this server may lag
            // behind its expiry); the handshake completes when it answers.
            let stale = role.revalidating(session, (conn, timeout_ms, req.read_only));
            let c = self.conns.get_mut(&conn).expect("caller checked");
            c.phase = Phase::Connecting { session, read_only: req.read_only };
            if let Some(stale) = stale {
                self.close_conn(stale);
            }
            return role.revalidate(self, session);
        }
        self.sessions.set_owner(session, self.config.server_id);
        self.resume_session(conn, session, timeout_ms, req.read_only, role);
    }

    fn refuse_session(&mut self, conn: ConnId, read_only: Option<bool>) {
        let refusal = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only,
        };
        self.send(conn, codec::encode_connect_response(&refusal));
        self.close_conn(conn);
    }

    /// The leader answered a learner's REVALIDATE of `session`, which `waiter` (the connection,
    /// the negotiated timeout, the readOnly byte) waited for.
    pub(crate) fn on_revalidated(
        &mut self,
        session: SessionId,
        waiter: (ConnId, i32, Option<bool>),
        valid: bool,
        role: &mut dyn Upstream,
    ) {
        let (conn, timeout_ms, read_only) = waiter;
        if self.conns.get(&conn).is_none_or(|c| c.session() != Some(session)) {
            return;
        }
        if valid && self.sessions.get(session).is_some() {
            self.resume_session(conn, session, timeout_ms, read_only, role);
        } else {
            tracing::info!(%session, ?conn, "the leader refused the reconnect (session expired)");
            self.refuse_session(conn, read_only);
        }
    }

    /// Moves the session onto `conn` (closing any older holder) and completes the handshake.
    fn resume_session(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        ro: Option<bool>,
        role: &mut dyn Upstream,
    ) {
        if let Some(old) = self.sessions.set_conn(session, Some(conn))
            && old != conn
        {
            tracing::info!(%session, ?old, ?conn, "session moved; closing old connection");
            self.close_conn(old);
        }
        self.sessions.touch(session, self.now_tick);
        self.establish(conn, session, timeout_ms, ro, role);
    }

    /// Sends the ConnectResponse and starts serving the connection, then replays what the client
    /// pipelined behind its ConnectRequest.
    fn establish(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        ro: Option<bool>,
        role: &mut dyn Upstream,
    ) {
        self.sessions.set_conn(session, Some(conn));
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: session.0,
            passwd: session_password(session),
            read_only: ro.map(|_| false),
        };
        self.send(conn, codec::encode_connect_response(&response));
        let c = self.conns.get_mut(&conn).expect("caller checked");
        c.phase = Phase::Established { session };
        let deferred = std::mem::take(&mut c.deferred);
        for payload in deferred {
            self.on_client_frame(conn, payload, role);
        }
    }

    pub(crate) fn on_session_created(&mut self, session: SessionId, role: &mut dyn Upstream) {
        let Some(conn) = self.connecting.remove(&session) else {
            return;
        };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Phase::Connecting { read_only, .. } = c.phase else {
            return;
        };
        let timeout_ms = self.sessions.get(session).expect("just created").timeout_ms;
        self.establish(conn, session, timeout_ms, read_only, role);
    }

    fn on_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        payload: &[u8],
        role: &mut dyn Upstream,
    ) {
        self.sessions.touch(session, self.now_tick);
        role.touched(session);
        let (header, body) = match codec::decode_request(payload) {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::info!(?conn, %err, "unreadable request header; closing");
                return self.close_conn(conn);
            }
        };
        if self.refuse_unauthenticated(conn, header.xid, header.op) {
            return;
        }
        let req = match body {
            Ok(req) => req,
            Err(BodyError::UnknownOp(op)) if op == OpCode::Sasl.code() => {
                return self.on_sasl(conn, header.xid, payload);
            }
            Err(BodyError::UnknownOp(op)) if op == OpCode::Reconfig.code() => {
                // reconfig is refused in PrepRequestProcessor, so it takes a zxid as an error txn.
                let err = ZkError::ReconfigDisabled;
                return self.submit_failed_write(
                    conn,
                    session,
                    header.xid,
                    OpCode::Reconfig,
                    err,
                    role,
                );
            }
            Err(BodyError::UnknownOp(op)) => {
                tracing::info!(?conn, op, "unknown opcode; replying UNIMPLEMENTED and closing");
                return self.reply_and_close(conn, header.xid, ZkError::Unimplemented);
            }
            Err(BodyError::Malformed(err)) => {
                tracing::info!(?conn, %err, op = header.op, "malformed request body");
                if let Some(op) = OpCode::from_i32(header.op).filter(|op| op.is_write()) {
                    let err = ZkError::MarshallingError;
                    return self.submit_failed_write(conn, session, header.xid, op, err, role);
                }
                return self.queue_error(conn, header.xid, ZkError::MarshallingError);
            }
        };
        match req {
            Request::Check { .. } => self.reply_and_close(conn, header.xid, ZkError::Unimplemented),
            Request::Auth { scheme, auth, .. } => self.on_auth(conn, header.xid, &scheme, &auth),
            Request::Sync { path } => {
                let entry = Pending::Sync { xid: header.xid, path, done: false };
                self.conns.get_mut(&conn).expect("established").queue.push_back(entry);
                role.sync(self, conn, header.xid);
            }
            req if is_write(&req) => self.submit_write(conn, session, header.xid, req, role),
            req if self.config.bugs.reads_skip_queue => self.serve_local(conn, header.xid, &req),
            req => {
                let c = self.conns.get_mut(&conn).expect("established");
                c.queue.push_back(Pending::Local { xid: header.xid, req });
                self.drain(conn);
            }
        }
    }

    /// UNIMPLEMENTED then close (`UnimplementedRequestProcessor`: the reply's zxid is -1).
    fn reply_and_close(&mut self, conn: ConnId, xid: i32, err: ZkError) {
        self.queue_reply(conn, xid, -1, err);
        let c = self.conns.get_mut(&conn).expect("established");
        if c.queue.is_empty() {
            self.close_conn(conn);
        } else if let Some(Pending::Write { close_after, .. }) = c.queue.back_mut() {
            *close_after = true;
        }
    }

    /// Queues an error reply in order, as a completed write entry with no txn behind it.
    fn queue_error(&mut self, conn: ConnId, xid: i32, err: ZkError) {
        let zxid = self.tree.last_processed_zxid().0;
        self.queue_reply(conn, xid, zxid, err);
    }

    fn queue_reply(&mut self, conn: ConnId, xid: i32, zxid: i64, err: ZkError) {
        let frame = codec::encode_reply(&ReplyHeader { xid, zxid, err: err.code() }, None);
        let c = self.conns.get_mut(&conn).expect("established");
        let entry = Pending::Write {
            xid,
            after: self.log.last_logged(),
            shape: ReplyShape::Empty,
            reply: Some(frame),
            close_after: false,
        };
        c.queue.push_back(entry);
        self.drain(conn);
    }

    /// The connection's auth ids, shared: what a write prepared on this server reads while
    /// `Shared` is borrowed mutably, and what a learner's forwarded write carries to the
    /// leader (a reference count, not a copy of every id string); none for a connection that
    /// is gone.
    pub(crate) fn requester_ids_shared(&self, conn: ConnId) -> std::sync::Arc<Vec<Id>> {
        self.conns.get(&conn).map(|c| c.ids.clone()).unwrap_or_default()
    }

    fn submit_write(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
        role: &mut dyn Upstream,
    ) {
        if req == Request::CloseSession {
            return self.close_session_request(conn, session, xid, role);
        }
        let after = self.log.last_logged();
        let shape = shape_of(&req);
        let entry = Pending::Write { xid, after, shape, reply: None, close_after: false };
        self.conns.get_mut(&conn).expect("established").queue.push_back(entry);
        // Prepared and proposed by a leader, forwarded by a learner.
        role.write(self, conn, session, xid, req);
    }

    /// A write that fails before it is decided (malformed body, reconfig): an error txn.
    fn submit_failed_write(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        op: OpCode,
        err: ZkError,
        role: &mut dyn Upstream,
    ) {
        assert!(op.is_write(), "only a write becomes an error txn");
        if role.is_learner() {
            // A learner cannot forward what it could not decode: answer here.
            return self.queue_error(conn, xid, err);
        }
        let after = self.log.last_logged();
        let zxid = role.failed_write(self, session, xid, err);
        assert!(zxid > self.tree.last_processed_zxid());
        assert!(zxid > after, "a new proposal follows the log");
        let shape =
            if op == OpCode::Multi { ReplyShape::Multi(Vec::new()) } else { ReplyShape::Empty };
        let entry = Pending::Write { xid, after, shape, reply: None, close_after: false };
        self.conns.get_mut(&conn).expect("established").queue.push_back(entry);
    }

    fn close_session_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        role: &mut dyn Upstream,
    ) {
        let after = self.log.last_logged();
        let entry =
            Pending::Write { xid, after, shape: ReplyShape::Empty, reply: None, close_after: true };
        self.conns.get_mut(&conn).expect("established").queue.push_back(entry);
        // Forwarded by a learner; a leader proposes the CloseSession txn, unless the session is
        // already closing: its CloseSession txn answers this entry when it applies.
        role.close_session(self, conn, session, xid);
    }

    /// Fills the reply of the write that produced `header`; returns whether one was waiting.
    pub(crate) fn complete_write(
        &mut self,
        conn: ConnId,
        header: &TxnHeader,
        outcome: &ApplyOutcome,
    ) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        // The first unanswered write with this cxid submitted before the txn existed: a txn
        // logged before the write was submitted came from an earlier connection whose
        // requests reused the xid (ZooKeeper matches on cxid alone and relies on clients not
        // reusing xids; a client's choice must never make a reply of the wrong shape).
        let waiting = c.queue.iter_mut().find(|p| {
            matches!(p, Pending::Write { xid, after, reply: None, .. }
                if *xid == header.cxid && header.zxid > *after)
        });
        let Some(Pending::Write { xid, shape, reply, .. }) = waiting else {
            return false;
        };
        if matches!(outcome, ApplyOutcome::Failed(ZkError::SessionMoved)) {
            // SESSIONMOVED is never a reply: the connection is closed instead.
            self.close_conn(conn);
            return true;
        }
        let (err, body) = crate::reply::write_reply(shape, outcome);
        let reply_header = ReplyHeader { xid: *xid, zxid: header.zxid.0, err: err.code() };
        *reply = Some(codec::encode_reply(&reply_header, body.as_ref()));
        self.drain(conn);
        true
    }

    /// Sends every answered entry at the front of the queue and serves local requests that
    /// reached the front.
    pub(crate) fn drain(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.queue.front() {
                None => return,
                Some(Pending::Write { reply: None, .. }) => return,
                Some(Pending::Write { .. }) => {
                    let Some(Pending::Write { reply, close_after, .. }) = c.queue.pop_front()
                    else {
                        unreachable!()
                    };
                    self.send(conn, reply.expect("answered"));
                    if close_after {
                        return self.close_conn(conn);
                    }
                }
                Some(Pending::Sync { done: false, .. }) => return,
                Some(Pending::Sync { .. }) => {
                    let Some(Pending::Sync { xid, path, .. }) = c.queue.pop_front() else {
                        unreachable!()
                    };
                    let zxid = self.tree.last_processed_zxid().0;
                    let header = ReplyHeader { xid, zxid, err: 0 };
                    let frame = codec::encode_reply(&header, Some(&Response::Sync { path }));
                    self.send(conn, frame);
                }
                Some(Pending::Local { .. }) => {
                    let Some(Pending::Local { xid, req }) = c.queue.pop_front() else {
                        unreachable!()
                    };
                    self.serve_local(conn, xid, &req);
                }
            }
        }
    }

    /// Marks a client's sync as answered.
    pub(crate) fn sync_done(&mut self, conn: ConnId, sync_xid: i32) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let entry = c
            .queue
            .iter_mut()
            .find(|p| matches!(p, Pending::Sync { xid, done: false, .. } if *xid == sync_xid));
        if let Some(Pending::Sync { done, .. }) = entry {
            *done = true;
            self.drain(conn);
        }
    }

    /// auth is answered at once, out of band, echoing the request's xid (-4 from the Java
    /// client, an ordinary xid from others), with zxid 0, as `ZooKeeperServer.processPacket`.
    fn on_auth(&mut self, conn: ConnId, xid: i32, scheme: &str, auth: &[u8]) {
        let result = crate::reply::authenticate(&self.config, scheme, auth, &self.conns[&conn].ids);
        match result {
            Ok(new_ids) => {
                let c = self.conns.get_mut(&conn).expect("established");
                let ids = std::sync::Arc::make_mut(&mut c.ids);
                for id in new_ids {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                crate::tree::acl::java_auth_order(ids);
                let header = ReplyHeader { xid, zxid: 0, err: 0 };
                self.send(conn, codec::encode_reply(&header, None));
            }
            Err(err) => {
                tracing::info!(?conn, scheme, "auth failed; closing");
                let header = ReplyHeader { xid, zxid: 0, err: err.code() };
                self.send(conn, codec::encode_reply(&header, None));
                self.close_conn(conn);
            }
        }
    }

    /// Serves a request that needs no txn, against the applied tree, and sends its reply.
    fn serve_local(&mut self, conn: ConnId, xid: i32, req: &Request) {
        let zxid = self.tree.last_processed_zxid().0;
        if let Request::MultiRead(ops) = req {
            // A failed multiRead still carries the results before the failure (ZooKeeper
            // serializes its response whatever the error).
            let (err, body) = self.multi_read(conn, ops);
            let err = err.map_or(0, |e| e.code());
            let frame = codec::encode_reply(&ReplyHeader { xid, zxid, err }, Some(&body));
            return self.send(conn, frame);
        }
        let result = match req {
            Request::Ping => Ok(Response::Empty),
            Request::SetWatches { .. } => self.set_watches(conn, req),
            _ => self.read(conn, req),
        };
        // A ping is answered with the ping xid (-2) whatever xid it came with.
        let reply_xid = if *req == Request::Ping { crate::proto::client::xid::PING } else { xid };
        let frame = match result {
            Ok(Response::Empty) => {
                codec::encode_reply(&ReplyHeader { xid: reply_xid, zxid, err: 0 }, None)
            }
            Ok(body) => {
                codec::encode_reply(&ReplyHeader { xid: reply_xid, zxid, err: 0 }, Some(&body))
            }
            Err(err) => {
                codec::encode_reply(&ReplyHeader { xid: reply_xid, zxid, err: err.code() }, None)
            }
        };
        self.send(conn, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writes are ZooKeeper's quorum requests (`Request.isQuorum`) less check and error;
    /// everything else is served locally.
    #[test]
    fn is_write_is_zookeepers_list() {
        let writes: Vec<OpCode> = OpCode::ALL.iter().copied().filter(|op| op.is_write()).collect();
        let expected = [
            OpCode::Create,
            OpCode::Delete,
            OpCode::SetData,
            OpCode::SetAcl,
            OpCode::Multi,
            OpCode::Create2,
            OpCode::Reconfig,
            OpCode::CreateContainer,
            OpCode::DeleteContainer,
            OpCode::CreateTtl,
            OpCode::CreateSession,
            OpCode::CloseSession,
        ];
        assert_eq!(writes, expected);
        let set_acl = Request::SetAcl { path: "/a".into(), acl: vec![], version: -1 };
        assert!(is_write(&set_acl), "setACL is a write (the simulator's list once missed it)");
        assert!(!is_write(&Request::Sync { path: "/a".into() }), "sync is not a write");
    }
}
