//! Newtypes and plain data records shared by every module: zxids, ids, ACLs and Stat.
//!
//! Invariants: `Zxid` orders totally as ZooKeeper's signed 64-bit zxid does; its epoch is the high
//! 32 bits and its counter the low 32 bits (`ZxidUtils`). Ids are opaque to everything but their
//! owner: `SessionId` to the session table, `ConnId` to the shell that assigned it.

use std::fmt;

/// A ZooKeeper transaction id: `epoch << 32 | counter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid(pub i64);

impl Zxid {
    /// The zxid before any transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// Builds a zxid from its epoch and counter.
    pub fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid(((epoch as u64) << 32 | counter as u64) as i64)
    }

    /// The epoch: the high 32 bits.
    pub fn epoch(self) -> u32 {
        ((self.0 as u64) >> 32) as u32
    }

    /// The counter: the low 32 bits.
    pub fn counter(self) -> u32 {
        (self.0 as u64 & 0xffff_ffff) as u32
    }

    /// The next zxid in the same epoch. Panics if the counter would wrap: a leader must start a
    /// new epoch before that (Zab: zxid counters never wrap inside an epoch).
    pub fn next(self) -> Zxid {
        assert!(self.counter() < u32::MAX, "zxid counter exhausted in epoch {}", self.epoch());
        Zxid::new(self.epoch(), self.counter() + 1)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A client session id as it appears on the wire (`ConnectResponse.sessionId`, `ephemeralOwner`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0 as u64)
    }
}

/// A client connection, numbered by the shell. Never reused within one `Node`'s life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// A server in the ensemble (`myid`). Standalone servers use 1 for session ids, as ZooKeeper does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u64);

/// ACL permission bits (`ZooDefs.Perms`).
pub mod perms {
    /// READ.
    pub const READ: i32 = 1;
    /// WRITE.
    pub const WRITE: i32 = 2;
    /// CREATE.
    pub const CREATE: i32 = 4;
    /// DELETE.
    pub const DELETE: i32 = 8;
    /// ADMIN.
    pub const ADMIN: i32 = 16;
    /// ALL.
    pub const ALL: i32 = 31;
}

/// An identity: `scheme:id` (`world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`, `auth:`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    /// The scheme (`world`, `auth`, `digest`, `ip`, `super`).
    pub scheme: String,
    /// The scheme-specific id.
    pub id: String,
}

impl Id {
    /// Builds an id.
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.to_string(), id: id.to_string() }
    }
}

/// One ACL entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    /// Permission bits, see [`perms`].
    pub perms: i32,
    /// Who gets them.
    pub id: Id,
}

impl Acl {
    /// `OPEN_ACL_UNSAFE`: ALL for world:anyone.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl { perms: perms::ALL, id: Id::new("world", "anyone") }]
    }

    /// `READ_ACL_UNSAFE`: READ for world:anyone.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl { perms: perms::READ, id: Id::new("world", "anyone") }]
    }
}

/// The client-visible Stat (68 bytes on the wire), exactly as `DataNode.copyStat` computes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    /// zxid of the create.
    pub czxid: i64,
    /// zxid of the last setData (or the create).
    pub mzxid: i64,
    /// Create time, ms.
    pub ctime: i64,
    /// Last modification time, ms.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Client-visible child version: `2 * stored_cversion - num_children`.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owning session for ephemerals; 0 otherwise (also 0 for containers and TTL nodes).
    pub ephemeral_owner: i64,
    /// Length of the data (0 for null).
    pub data_length: i32,
    /// Number of live children.
    pub num_children: i32,
    /// zxid of the last child create/delete.
    pub pzxid: i64,
}
