//! The tree digest: a 64-bit value equal on replicas with equal trees, used by the simulator to
//! compare replicas at equal zxids (ZooKeeper's `DigestCalculator` idea, our own hash).
//!
//! The digest is the wrapping sum of one hash per node, so it is updated incrementally:
//! subtract a node's hash before changing it, add it back after. Each node hash covers the path,
//! the data (null distinct from empty), the ACL and every persisted stat field; the children
//! set is implied by the other nodes' paths. The hash is FNV-1a 64 with a splitmix64 finish, so
//! that sums of hashes do not cancel on simple changes. It is not cryptographic.

use crate::types::Acl;

use super::StatPersisted;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 state.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64(FNV_OFFSET)
    }
}

impl Fnv64 {
    /// Feeds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Feeds an i64 (big-endian).
    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }

    /// Feeds a length-prefixed byte string, so adjacent fields cannot run together.
    pub fn field(&mut self, bytes: &[u8]) {
        self.i64(bytes.len() as i64);
        self.bytes(bytes);
    }

    /// The raw FNV-1a value.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// splitmix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of one node.
pub fn node_hash(path: &str, data: Option<&[u8]>, acl: &[Acl], stat: &StatPersisted) -> u64 {
    node_hash_with_stat(node_hash_prefix(path, data, acl), stat)
}

/// The state of `node_hash` after the path, data and ACL: a change of the stat alone (a
/// parent's cversion and pzxid at every create and delete under it) hashes only the stat
/// again, from here (issue 14: the digest was 6-8% of a standalone server's CPU).
pub fn node_hash_prefix(path: &str, data: Option<&[u8]>, acl: &[Acl]) -> Fnv64 {
    let mut h = Fnv64::default();
    h.field(path.as_bytes());
    match data {
        None => h.i64(-1),
        Some(d) => h.field(d),
    }
    h.i64(acl.len() as i64);
    for a in acl {
        h.i64(a.perms as i64);
        h.field(a.id.scheme.as_bytes());
        h.field(a.id.id.as_bytes());
    }
    h
}

/// `node_hash` from its `node_hash_prefix`.
pub fn node_hash_with_stat(prefix: Fnv64, stat: &StatPersisted) -> u64 {
    let mut h = prefix;
    for v in [stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.ephemeral_owner, stat.pzxid] {
        h.i64(v);
    }
    for v in [stat.version, stat.cversion, stat.aversion] {
        h.i64(v as i64);
    }
    mix(h.finish())
}
