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

/// FNV-1a over the 8 bytes of `word`, most significant first: the same steps as a byte loop
/// over `word.to_be_bytes()`, written out so that a byte costs a shift, a mask, a xor and a
/// multiply, with no store, load or loop (the digest hashes nine stat fields and the lengths
/// of every node it changes; the digest is about a third of a create's apply). Slices are
/// cheaper byte by byte (measured: splitting them into such words cost more instructions).
#[inline(always)]
fn fnv_word(mut h: u64, word: u64) -> u64 {
    h = (h ^ (word >> 56)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 48) & 0xff)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 40) & 0xff)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 32) & 0xff)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 24) & 0xff)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 16) & 0xff)).wrapping_mul(FNV_PRIME);
    h = (h ^ ((word >> 8) & 0xff)).wrapping_mul(FNV_PRIME);
    (h ^ (word & 0xff)).wrapping_mul(FNV_PRIME)
}

impl Fnv64 {
    /// Feeds bytes (the state kept in a local, not written back after every byte).
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    /// Feeds an i64 (big-endian).
    pub fn i64(&mut self, v: i64) {
        self.0 = fnv_word(self.0, v as u64);
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
    node_hash_with_stat_tail(node_hash_stat_head(prefix, stat), stat)
}

/// The state of `node_hash` after the stat fields a child's create or delete never changes
/// (czxid, mzxid, ctime, mtime, ephemeralOwner): the parent's digest terms before and after
/// hash only the rest from here, [`node_hash_with_stat_tail`].
pub fn node_hash_stat_head(prefix: Fnv64, stat: &StatPersisted) -> Fnv64 {
    let mut h = prefix;
    for v in [stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.ephemeral_owner] {
        h.i64(v);
    }
    h
}

/// `node_hash` from its [`node_hash_stat_head`]: pzxid, version, cversion, aversion.
pub fn node_hash_with_stat_tail(head: Fnv64, stat: &StatPersisted) -> u64 {
    let mut h = head;
    h.i64(stat.pzxid);
    for v in [stat.version, stat.cversion, stat.aversion] {
        h.i64(v as i64);
    }
    mix(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a byte by byte, as the digest and the snapshot checksum were first written.
    fn reference(bytes: &[u8]) -> u64 {
        let mut h = FNV_OFFSET;
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(FNV_PRIME);
        }
        h
    }

    /// `bytes` and the word-at-a-time `i64` give the byte loop's value for every length up to
    /// 39 and for values with every byte set, high ones included.
    #[test]
    fn word_steps_equal_the_byte_loop() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut draw = || {
            state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            state
        };
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|_| draw() as u8).collect();
            let mut h = Fnv64::default();
            h.bytes(&bytes);
            assert_eq!(h.finish(), reference(&bytes), "length {len}");
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 0x0102_0304_0506_0708]
            .into_iter()
            .chain((0..100).map(|_| draw() as i64))
        {
            let mut h = Fnv64::default();
            h.i64(v);
            assert_eq!(h.finish(), reference(&v.to_be_bytes()), "{v:#x}");
        }
        let mut h = Fnv64::default();
        h.field(b"/a/b");
        let mut expected = 4i64.to_be_bytes().to_vec();
        expected.extend_from_slice(b"/a/b");
        assert_eq!(h.finish(), reference(&expected), "a field is its length, then its bytes");
    }
}
