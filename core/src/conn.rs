//! A client connection's state in the core: its phase, auth ids, SASL exchange and the queue of
//! requests in the order the client sent them (`serve` and `sasl` work on it). Kept apart from
//! both so the node-wide state (`Shared`) can hold connections without importing the code that
//! works on them (which imports `Shared`).
//!
//! Invariants (`Conn::invariants`, part of the node's full sweep): frames are deferred only while
//! connecting; nothing is queued before the handshake; an established connection holds its
//! session unless the session is gone; a local request never waits at the front of the queue.

use std::collections::VecDeque;

use crate::proto::client::Request;
use crate::reply::ReplyShape;
use crate::session::SessionTable;
use crate::types::{ConnId, Id, SessionId, Zxid};

/// Where a connection's DIGEST-MD5 exchange is (see `sasl`, which drives it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SaslState {
    /// The challenge with this nonce was sent; the digest response is due.
    AwaitResponse {
        /// The server nonce.
        nonce: String,
    },
    /// The exchange succeeded; any further token is a protocol error.
    Complete,
}

/// Where a connection is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the ConnectRequest.
    AwaitConnect,
    /// CreateSession proposed; waiting for it to apply.
    Connecting {
        /// The new session.
        session: SessionId,
        /// Echo of the client's readOnly byte.
        read_only: Option<bool>,
    },
    /// Serving requests for `session`.
    Established {
        /// The session.
        session: SessionId,
    },
    /// ClientClose emitted; waiting for the shell's ClientClosed.
    Closing,
}

/// One request waiting in a connection's queue.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    /// A request served locally when it reaches the front.
    Local {
        /// Client xid.
        xid: i32,
        /// The request.
        req: Request,
    },
    /// A sync waiting for the leader's commit point to pass what was proposed before it.
    Sync {
        /// Client xid.
        xid: i32,
        /// The path, echoed in the reply.
        path: String,
        /// The commit point has passed.
        done: bool,
    },
    /// A write waiting for its txn; `reply` is filled at commit.
    Write {
        /// Client xid (the txn's cxid).
        xid: i32,
        /// The last zxid this server had logged when the write was submitted. Its txn comes
        /// later; a txn of the session with the same cxid at or before this one was another
        /// connection's (clients may start xids again on a new connection).
        after: Zxid,
        /// How to build the reply.
        shape: ReplyShape,
        /// The framed reply once the txn applied.
        reply: Option<Vec<u8>>,
        /// Close the connection after sending the reply (closeSession).
        close_after: bool,
    },
}

/// A client connection's state in the core.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) phase: Phase,
    /// Auth ids: `ip:<remote>` first, then what `auth` packets added. Shared: a write on the
    /// leader holds them while it prepares (`Shared::requester_ids_shared`) for the price of a
    /// reference count instead of a copy of every id; the rare `auth` copies on write.
    pub(crate) ids: std::sync::Arc<Vec<Id>>,
    pub(crate) queue: VecDeque<Pending>,
    pub(crate) deferred: VecDeque<Vec<u8>>,
    /// The SASL exchange, once the client started one (see `sasl`).
    pub(crate) sasl: Option<SaslState>,
}

impl Conn {
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self.phase {
            Phase::Established { session } | Phase::Connecting { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Holds or is creating a session (not awaiting its handshake, not closing).
    pub(crate) fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Established { .. } | Phase::Connecting { .. })
    }

    pub(crate) fn invariants(&self, id: ConnId, sessions: &SessionTable) {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            assert!(self.deferred.is_empty(), "{id:?}: deferred frames only while connecting");
        }
        if matches!(self.phase, Phase::AwaitConnect) {
            assert!(self.queue.is_empty(), "{id:?}: no requests before the handshake");
        }
        if let Phase::Established { session } = self.phase
            && let Some(s) = sessions.get(session)
        {
            assert_eq!(s.conn, Some(id), "{id:?}: established conn holds its session");
        }
        if let Some(Pending::Local { .. }) = self.queue.front() {
            panic!("{id:?}: a local request at the front must have been served");
        }
    }
}
