//! Equal state at equal zxid: every server (and every incarnation of one, including one rebuilt
//! by replaying its durable log on restart) that applied the same last zxid has the same tree
//! digest.
//!
//! Source: ZooKeeper's `DigestCalculator` and the digest check added by ZOOKEEPER-3114; the
//! simulator records the digest each time a server's applied zxid moves.

use zkr_core::types::Zxid;

use super::Violation;
use super::by_zxid::ByZxid;

/// The digest first seen at each zxid, and who showed it.
#[derive(Debug, Default)]
pub struct Digests {
    seen: ByZxid<(u64, usize)>,
}

impl Digests {
    /// Server `node` has applied up to `zxid` and its tree hashes to `digest`.
    pub fn observe(&mut self, node: usize, zxid: Zxid, digest: u64, now: u64) -> Option<Violation> {
        // One search per observation (every applied step of every server), none for a zxid
        // newer than all seen.
        let &(d, first) = self.seen.first_or_record(zxid, || (digest, node))?;
        (d != digest).then(|| Violation {
            invariant: "digest",
            at_ns: now,
            message: format!("n{node} has digest {digest:#018x} at {zxid}, n{first} had {d:#018x}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal digests at a zxid pass; a different one is reported against the first seen.
    #[test]
    fn a_different_digest_at_a_zxid_is_reported() {
        let mut digests = Digests::default();
        assert!(digests.observe(0, Zxid(5), 0xaa, 1).is_none());
        assert!(digests.observe(1, Zxid(5), 0xaa, 2).is_none());
        assert!(digests.observe(1, Zxid(6), 0xbb, 3).is_none());
        let v = digests.observe(2, Zxid(5), 0xcc, 4).expect("a different digest at 5");
        assert_eq!((v.invariant, v.at_ns), ("digest", 4));
        assert!(v.message.contains("n0 had 0x00000000000000aa"), "{}", v.message);
        assert!(digests.observe(2, Zxid(5), 0xaa, 5).is_none(), "the first digest is kept");
    }
}
