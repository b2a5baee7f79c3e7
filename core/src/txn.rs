//! Transactions: the idempotent, fully decided state changes that Zab orders and the data tree
//! applies. A `Txn` is what goes into the txn log and into PROPOSAL packets.
//!
//! Invariants:
//! - a txn carries every decision (sequential names, ephemeral owner, ACL after fix-up, times), so
//!   applying it is deterministic on every replica;
//! - `Txn::Error` records a failed write: it takes a zxid and changes nothing in the tree;
//! - `Txn::Multi` holds only Create, Delete, SetData, Check or Error sub-txns, all sharing one
//!   header (one zxid, one time). A failed multi is a `Multi` of `Error`s (0 before the failing op,
//!   its code, then RUNTIMEINCONSISTENCY), as ZooKeeper logs it.
//!
//! The jute encoding (ZooKeeper's `TxnHeader` + txn record types) lives in `proto::txn`.

use crate::proto::error::ZkError;
use crate::types::{Acl, SessionId, Zxid};

/// `TxnHeader{clientId, cxid, zxid, time, type}` without the type (the `Txn` variant is the type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnHeader {
    /// The session that asked for the change (0 for server-made txns such as container deletes).
    pub session_id: SessionId,
    /// The client's xid for the request, so the server holding the connection can reply.
    pub cxid: i32,
    /// The zxid given out by the leader.
    pub zxid: Zxid,
    /// The leader's wall-clock time in ms; becomes ctime/mtime.
    pub time_ms: i64,
}

/// What kind of node a create makes. Encodes to `CreateTxn` (ephemeral flag), `CreateContainerTxn`
/// or `CreateTTLTxn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateKind {
    /// A persistent node (sequential or not: the name is already decided).
    Persistent,
    /// An ephemeral owned by the txn header's session.
    Ephemeral,
    /// A container node.
    Container,
    /// A TTL node with this TTL in ms.
    Ttl(i64),
}

/// A transaction body; the variant is ZooKeeper's txn type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Txn {
    /// `createSession` (-10): `CreateSessionTxn{timeOut}`; the session id is the header's.
    CreateSession {
        /// The negotiated timeout in ms.
        timeout_ms: i32,
    },
    /// `closeSession` (-11): `CloseSessionTxn{paths2Delete}`; deletes the session's ephemerals.
    CloseSession {
        /// The ephemerals to delete, as the leader saw them when it prepared the txn.
        paths_to_delete: Vec<String>,
    },
    /// `create` (1), `createContainer` (19), `createTTL` (21).
    Create {
        /// Full path, with any sequential suffix already added.
        path: String,
        /// Data; `None` is jute null and stays distinct from empty.
        data: Option<Vec<u8>>,
        /// ACL after fix-up.
        acl: Vec<Acl>,
        /// The node's kind.
        kind: CreateKind,
        /// The parent's stored cversion after this create.
        parent_cversion: i32,
    },
    /// `delete` (2): `DeleteTxn{path}`.
    Delete {
        /// The node to delete.
        path: String,
    },
    /// `deleteContainer` (20): the container manager's delete; same effect as `Delete`.
    DeleteContainer {
        /// The container or TTL node to delete.
        path: String,
    },
    /// `setData` (5): `SetDataTxn{path, data, version}` with the new version.
    SetData {
        /// The node.
        path: String,
        /// The new data.
        data: Option<Vec<u8>>,
        /// The node's version after this change.
        version: i32,
    },
    /// `setACL` (7): `SetACLTxn{path, acl, version}` with the new aversion.
    SetAcl {
        /// The node.
        path: String,
        /// The new ACL after fix-up.
        acl: Vec<Acl>,
        /// The node's aversion after this change.
        version: i32,
    },
    /// `check` (13): `CheckVersionTxn{path, version}`; applying it changes nothing.
    Check {
        /// The node.
        path: String,
        /// The version checked, plus one (as ZooKeeper logs it).
        version: i32,
    },
    /// `error` (-1): `ErrorTxn{err}`; a failed write that still took a zxid.
    Error {
        /// The error the request failed with.
        err: ZkError,
    },
    /// `multi` (14): `MultiTxn{vector<Txn>}`.
    Multi(Vec<Txn>),
}

impl Txn {
    /// ZooKeeper's txn type code (`ZooDefs.OpCode`).
    pub fn type_code(&self) -> i32 {
        match self {
            Txn::CreateSession { .. } => -10,
            Txn::CloseSession { .. } => -11,
            Txn::Create { kind: CreateKind::Container, .. } => 19,
            Txn::Create { kind: CreateKind::Ttl(_), .. } => 21,
            Txn::Create { .. } => 1,
            Txn::Delete { .. } => 2,
            Txn::DeleteContainer { .. } => 20,
            Txn::SetData { .. } => 5,
            Txn::SetAcl { .. } => 7,
            Txn::Check { .. } => 13,
            Txn::Error { .. } => -1,
            Txn::Multi(_) => 14,
        }
    }
}

/// A txn with its header: the unit of the log, of proposals and of apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedTxn {
    /// The header.
    pub header: TxnHeader,
    /// The body.
    pub txn: Txn,
}
