//! Client-visible error codes (`KeeperException.Code`) and decode errors.
//!
//! `ZkError` values are frozen wire values: never renumber, never reuse a retired value.
//! `DecodeError` is for untrusted bytes (clients, peers, disk); it never becomes a panic.

use std::fmt;

/// ZooKeeper's numeric error codes, exactly as they appear in `ReplyHeader.err`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZkError {
    /// Success.
    Ok = 0,
    /// Marks the start of the system error range; never sent.
    SystemError = -1,
    /// Multi results after the failing op.
    RuntimeInconsistency = -2,
    /// Data inconsistency.
    DataInconsistency = -3,
    /// Client-side only.
    ConnectionLoss = -4,
    /// Bad request bytes, a bad op inside multi, mixed read/write multi.
    MarshallingError = -5,
    /// Unknown opcode; TTL with extended types off; reconfig in standalone.
    Unimplemented = -6,
    /// Operation timeout.
    OperationTimeout = -7,
    /// Bad path, flags, TTL; deleting a system node.
    BadArguments = -8,
    /// Internal.
    UnknownSession = -12,
    /// Reconfig.
    NewConfigNoQuorum = -13,
    /// Reconfig.
    ReconfigInProgress = -14,
    /// Marks the start of the API error range; never sent.
    ApiError = -100,
    /// The node does not exist.
    NoNode = -101,
    /// Not authorised.
    NoAuth = -102,
    /// Version mismatch.
    BadVersion = -103,
    /// Ephemerals cannot have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has expired.
    SessionExpired = -112,
    /// Client-side only.
    InvalidCallback = -113,
    /// Invalid ACL.
    InvalidAcl = -114,
    /// Authentication failed; the connection is then closed.
    AuthFailed = -115,
    /// Never sent as a reply: the connection is closed instead.
    SessionMoved = -118,
    /// A write sent to a read-only server.
    NotReadOnly = -119,
    /// Ephemeral create on a local session.
    EphemeralOnLocalSession = -120,
    /// check/removeWatches found no such watch.
    NoWatcher = -121,
    /// Client-side only.
    RequestTimeout = -122,
    /// Reconfig disabled.
    ReconfigDisabled = -123,
    /// SASL required.
    SessionClosedRequireSaslAuth = -124,
    /// Hard quota exceeded (enforceQuota only).
    QuotaExceeded = -125,
    /// Throttled.
    ThrottledOp = -127,
}

impl ZkError {
    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Parses a wire value; `None` for a value ZooKeeper does not define.
    pub fn from_code(code: i32) -> Option<ZkError> {
        use ZkError::*;
        const ALL: [ZkError; 32] = [
            Ok,
            SystemError,
            RuntimeInconsistency,
            DataInconsistency,
            ConnectionLoss,
            MarshallingError,
            Unimplemented,
            OperationTimeout,
            BadArguments,
            UnknownSession,
            NewConfigNoQuorum,
            ReconfigInProgress,
            ApiError,
            NoNode,
            NoAuth,
            BadVersion,
            NoChildrenForEphemerals,
            NodeExists,
            NotEmpty,
            SessionExpired,
            InvalidCallback,
            InvalidAcl,
            AuthFailed,
            SessionMoved,
            NotReadOnly,
            EphemeralOnLocalSession,
            NoWatcher,
            RequestTimeout,
            ReconfigDisabled,
            SessionClosedRequireSaslAuth,
            QuotaExceeded,
            ThrottledOp,
        ];
        ALL.iter().copied().find(|e| e.code() == code)
    }
}

impl fmt::Display for ZkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self, self.code())
    }
}

/// Why untrusted bytes could not be decoded. Small and flat on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the record did.
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A length field is negative (other than the -1 null marker) or larger than allowed.
    BadLength {
        /// What was being read.
        what: &'static str,
        /// The length found.
        len: i64,
    },
    /// A string was not valid UTF-8.
    BadUtf8 {
        /// What was being read.
        what: &'static str,
    },
    /// A value is outside what the record allows (unknown opcode in a multi, bad bool, ...).
    BadValue {
        /// What was being read.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// Bytes were left over after a record that must fill its frame.
    TrailingBytes {
        /// What was being read.
        what: &'static str,
        /// How many.
        len: usize,
    },
    /// A checksum did not match (disk records).
    BadChecksum,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what } => write!(f, "truncated {what}"),
            DecodeError::BadLength { what, len } => write!(f, "bad length {len} for {what}"),
            DecodeError::BadUtf8 { what } => write!(f, "invalid UTF-8 in {what}"),
            DecodeError::BadValue { what, value } => write!(f, "bad value {value} for {what}"),
            DecodeError::TrailingBytes { what, len } => {
                write!(f, "{len} trailing bytes after {what}")
            }
            DecodeError::BadChecksum => write!(f, "checksum mismatch"),
        }
    }
}

impl std::error::Error for DecodeError {}
