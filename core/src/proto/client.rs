//! Client protocol records: handshake, headers, opcodes, and the typed `Request`/`Response`
//! model of every client op (see `docs/CLIENT-PROTOCOL-REFERENCE.md` §4, §5, §9).
//!
//! Invariants: `OpCode` values are frozen wire values. A `Request` is what one client frame
//! (after the `RequestHeader`) decodes to; a `Response` is the body written after a
//! `ReplyHeader` with `err == 0`.

use crate::proto::error::ZkError;
use crate::types::{Acl, Stat};

/// `ZooDefs.OpCode`: frozen wire values. 10 is unused; never reuse it.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Server→client watch notification (xid -1).
    Notification = 0,
    /// create.
    Create = 1,
    /// delete.
    Delete = 2,
    /// exists.
    Exists = 3,
    /// getData.
    GetData = 4,
    /// setData.
    SetData = 5,
    /// getACL.
    GetAcl = 6,
    /// setACL.
    SetAcl = 7,
    /// getChildren.
    GetChildren = 8,
    /// sync.
    Sync = 9,
    // 10: unused.
    /// ping (xid -2).
    Ping = 11,
    /// getChildren2.
    GetChildren2 = 12,
    /// check (inside multi only).
    Check = 13,
    /// multi.
    Multi = 14,
    /// create2.
    Create2 = 15,
    /// reconfig (not supported: standalone answers UNIMPLEMENTED).
    Reconfig = 16,
    /// checkWatches.
    CheckWatches = 17,
    /// removeWatches.
    RemoveWatches = 18,
    /// createContainer.
    CreateContainer = 19,
    /// deleteContainer (server-internal).
    DeleteContainer = 20,
    /// createTTL.
    CreateTtl = 21,
    /// multiRead.
    MultiRead = 22,
    /// auth (xid -4).
    Auth = 100,
    /// setWatches (xid -8).
    SetWatches = 101,
    /// sasl (unsupported).
    Sasl = 102,
    /// getEphemerals.
    GetEphemerals = 103,
    /// getAllChildrenNumber.
    GetAllChildrenNumber = 104,
    /// setWatches2 (xid -8).
    SetWatches2 = 105,
    /// addWatch.
    AddWatch = 106,
    /// whoAmI.
    WhoAmI = 107,
    /// createSession (internal).
    CreateSession = -10,
    /// closeSession.
    CloseSession = -11,
    /// error (txn/result type of a failed op).
    Error = -1,
}

impl OpCode {
    /// Every defined opcode, for parsing and exhaustive tests.
    pub const ALL: [OpCode; 33] = [
        OpCode::Notification,
        OpCode::Create,
        OpCode::Delete,
        OpCode::Exists,
        OpCode::GetData,
        OpCode::SetData,
        OpCode::GetAcl,
        OpCode::SetAcl,
        OpCode::GetChildren,
        OpCode::Sync,
        OpCode::Ping,
        OpCode::GetChildren2,
        OpCode::Check,
        OpCode::Multi,
        OpCode::Create2,
        OpCode::Reconfig,
        OpCode::CheckWatches,
        OpCode::RemoveWatches,
        OpCode::CreateContainer,
        OpCode::DeleteContainer,
        OpCode::CreateTtl,
        OpCode::MultiRead,
        OpCode::Auth,
        OpCode::SetWatches,
        OpCode::Sasl,
        OpCode::GetEphemerals,
        OpCode::GetAllChildrenNumber,
        OpCode::SetWatches2,
        OpCode::AddWatch,
        OpCode::WhoAmI,
        OpCode::CreateSession,
        OpCode::CloseSession,
        OpCode::Error,
    ];

    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// True for a request that changes the tree or the session table: the leader decides it
    /// as a txn with a zxid of its own, and its reply carries that zxid. ZooKeeper's
    /// `Request.isQuorum` list without `check` (alone it is not a write: it is answered
    /// UNIMPLEMENTED, and inside a multi the multi is the write) and without `error`.
    /// `reconfig`, `createSession` and `deleteContainer` are writes too, though a client never
    /// gets one decoded into a `Request` (reconfig is refused as an error txn; the other two are
    /// server-internal). The one definition the server's pipeline and the simulator's history
    /// share, so a write the server logs is a write the checker checks.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }

    /// Parses a wire value; `None` for a value ZooKeeper does not define (including 10).
    pub fn from_i32(code: i32) -> Option<OpCode> {
        OpCode::ALL.iter().copied().find(|op| op.code() == code)
    }
}

/// Special xids.
pub mod xid {
    /// Watch notification.
    pub const NOTIFICATION: i32 = -1;
    /// Ping.
    pub const PING: i32 = -2;
    /// Auth.
    pub const AUTH: i32 = -4;
    /// setWatches / setWatches2.
    pub const SET_WATCHES: i32 = -8;
}

/// `ConnectRequest`; `read_only` is `None` when the client left the optional byte out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The newest zxid the client has seen.
    pub last_zxid_seen: i64,
    /// Requested session timeout, ms.
    pub timeout_ms: i32,
    /// 0 for a new session.
    pub session_id: i64,
    /// Session password (16 bytes for a reconnect); null decodes as empty.
    pub passwd: Vec<u8>,
    /// The optional trailing readOnly byte.
    pub read_only: Option<bool>,
}

/// `ConnectResponse`; `read_only` is written only when `Some` (echo of what the client sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// Negotiated timeout, ms (0 = session expired / refused).
    pub timeout_ms: i32,
    /// The session id (0 = refused).
    pub session_id: i64,
    /// 16-byte password.
    pub passwd: Vec<u8>,
    /// Written only when the client sent the byte.
    pub read_only: Option<bool>,
}

/// `RequestHeader{xid, type}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// Client xid, or a special xid.
    pub xid: i32,
    /// Raw opcode (may be unknown).
    pub op: i32,
}

/// `ReplyHeader{xid, zxid, err}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Echo of the request xid, or a special xid.
    pub xid: i32,
    /// The server's last processed zxid when the reply is sent.
    pub zxid: i64,
    /// Error code (0 = ok).
    pub err: i32,
}

/// `WatcherEvent.type` values the server sends.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// NodeCreated.
    NodeCreated = 1,
    /// NodeDeleted.
    NodeDeleted = 2,
    /// NodeDataChanged.
    NodeDataChanged = 3,
    /// NodeChildrenChanged.
    NodeChildrenChanged = 4,
}

impl EventType {
    /// Parses a wire value; `None` for a type the server never sends.
    pub fn from_i32(code: i32) -> Option<EventType> {
        [
            EventType::NodeCreated,
            EventType::NodeDeleted,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged,
        ]
        .into_iter()
        .find(|t| *t as i32 == code)
    }
}

/// The only `KeeperState` the server puts in notifications.
pub const STATE_SYNC_CONNECTED: i32 = 3;

/// `WatcherEvent{type, state, path}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    /// The event type.
    pub event_type: EventType,
    /// Always [`STATE_SYNC_CONNECTED`] from the server.
    pub state: i32,
    /// Full server-side path.
    pub path: String,
}

/// `WatcherType` in check/removeWatches.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatcherType {
    /// Children.
    Children = 1,
    /// Data.
    Data = 2,
    /// Any.
    Any = 3,
    /// Persistent (3.9).
    Persistent = 4,
    /// PersistentRecursive (3.9).
    PersistentRecursive = 5,
}

/// `AddWatchMode`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddWatchMode {
    /// PERSISTENT.
    Persistent = 0,
    /// PERSISTENT_RECURSIVE.
    PersistentRecursive = 1,
}

/// `ClientInfo{authScheme, user}` for whoAmI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The scheme.
    pub auth_scheme: String,
    /// The provider's user name.
    pub user: String,
}

/// One client request body, typed. Raw values that the server must validate itself (flags, watcher
/// types, modes, TTL) are kept raw, because their errors have a place in ZooKeeper's precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15), createContainer (19), createTTL (21). `ttl` is -1 unless `op` is
    /// `CreateTtl`.
    Create {
        /// Which of the four create opcodes.
        op: OpCode,
        /// Path as sent.
        path: String,
        /// Data (null stays `None`).
        data: Option<Vec<u8>>,
        /// ACL as sent (null decodes as empty).
        acl: Vec<Acl>,
        /// Raw CreateMode flags.
        flags: i32,
        /// TTL in ms for createTTL, else -1.
        ttl: i64,
    },
    /// delete.
    Delete {
        /// Path.
        path: String,
        /// Expected version or -1.
        version: i32,
    },
    /// exists.
    Exists {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// getData.
    GetData {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// setData.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Option<Vec<u8>>,
        /// Expected version or -1.
        version: i32,
    },
    /// getACL.
    GetAcl {
        /// Path.
        path: String,
    },
    /// setACL.
    SetAcl {
        /// Path.
        path: String,
        /// New ACL.
        acl: Vec<Acl>,
        /// Expected aversion or -1.
        version: i32,
    },
    /// getChildren (8) or getChildren2 (12).
    GetChildren {
        /// `GetChildren` or `GetChildren2`.
        op: OpCode,
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// sync.
    Sync {
        /// Path (echoed back).
        path: String,
    },
    /// ping (no body).
    Ping,
    /// check (valid only inside multi; alone it is answered UNIMPLEMENTED).
    Check {
        /// Path.
        path: String,
        /// Expected version or -1.
        version: i32,
    },
    /// multi: only Create, Delete, SetData and Check inside.
    Multi(Vec<Request>),
    /// multiRead: only GetData and GetChildren (op 8) inside; watch flags are dropped.
    MultiRead(Vec<Request>),
    /// checkWatches.
    CheckWatches {
        /// Path.
        path: String,
        /// Raw WatcherType.
        watcher_type: i32,
    },
    /// removeWatches.
    RemoveWatches {
        /// Path.
        path: String,
        /// Raw WatcherType.
        watcher_type: i32,
    },
    /// auth (xid -4).
    Auth {
        /// Always 0 from the Java client.
        auth_type: i32,
        /// Scheme (`digest`, `ip`, ...).
        scheme: String,
        /// Scheme-specific bytes (`user:password` for digest).
        auth: Vec<u8>,
    },
    /// setWatches (101) or setWatches2 (105); the persistent lists are empty for 101.
    SetWatches {
        /// The newest zxid the client has seen.
        relative_zxid: i64,
        /// Data watches.
        data: Vec<String>,
        /// Exist watches.
        exist: Vec<String>,
        /// Child watches.
        child: Vec<String>,
        /// Persistent watches.
        persistent: Vec<String>,
        /// Persistent recursive watches.
        persistent_recursive: Vec<String>,
    },
    /// getEphemerals.
    GetEphemerals {
        /// String prefix.
        prefix: String,
    },
    /// getAllChildrenNumber.
    GetAllChildrenNumber {
        /// Path.
        path: String,
    },
    /// addWatch.
    AddWatch {
        /// Path.
        path: String,
        /// Raw AddWatchMode.
        mode: i32,
    },
    /// whoAmI (no body).
    WhoAmI,
    /// closeSession (no body).
    CloseSession,
}

/// One result inside a multi or multiRead response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    /// create (1): `CreateResponse`.
    Create {
        /// Created path.
        path: String,
    },
    /// create2/createContainer/createTTL: reported as type 15 with `Create2Response`.
    Create2 {
        /// Created path.
        path: String,
        /// Stat of the new node.
        stat: Stat,
    },
    /// delete: no body.
    Delete,
    /// setData: `SetDataResponse`.
    SetData {
        /// New Stat.
        stat: Stat,
    },
    /// check: no body.
    Check,
    /// getData (multiRead).
    GetData {
        /// Data.
        data: Option<Vec<u8>>,
        /// Stat.
        stat: Stat,
    },
    /// getChildren (multiRead).
    GetChildren {
        /// Children.
        children: Vec<String>,
    },
    /// `MultiHeader{type=-1, err}` + `ErrorResponse{err}`.
    Error(ZkError),
}

/// A reply body (written only when `err == 0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, setWatches, checkWatches, removeWatches, closeSession, ping, auth.
    Empty,
    /// `CreateResponse{path}`.
    Create {
        /// Created path.
        path: String,
    },
    /// `Create2Response{path, stat}`.
    Create2 {
        /// Created path.
        path: String,
        /// Stat of the new node.
        stat: Stat,
    },
    /// `ExistsResponse` / `SetDataResponse` / `SetACLResponse`: a Stat alone.
    Stat(Stat),
    /// `GetDataResponse{data, stat}`.
    GetData {
        /// Data.
        data: Option<Vec<u8>>,
        /// Stat.
        stat: Stat,
    },
    /// `GetACLResponse{acl, stat}`.
    GetAcl {
        /// ACL.
        acl: Vec<Acl>,
        /// Stat.
        stat: Stat,
    },
    /// `GetChildrenResponse{children}`.
    GetChildren {
        /// Children names.
        children: Vec<String>,
    },
    /// `GetChildren2Response{children, stat}`.
    GetChildren2 {
        /// Children names.
        children: Vec<String>,
        /// Stat.
        stat: Stat,
    },
    /// `SyncResponse{path}`.
    Sync {
        /// Path as sent.
        path: String,
    },
    /// Multi / multiRead results.
    Multi(Vec<MultiResult>),
    /// `GetEphemeralsResponse{ephemerals}`.
    GetEphemerals {
        /// Paths.
        paths: Vec<String>,
    },
    /// `GetAllChildrenNumberResponse{totalNumber}`.
    GetAllChildrenNumber {
        /// All descendants.
        total: i32,
    },
    /// addWatch: `ErrorResponse{0}` (a 4-byte body).
    AddWatch,
    /// `WhoAmIResponse{clientInfo}`.
    WhoAmI(Vec<ClientInfo>),
}
