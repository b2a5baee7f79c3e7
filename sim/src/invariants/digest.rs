//! Equal state at equal zxid: every server (and every incarnation of one, including one rebuilt
//! by replaying its durable log on restart) that applied the same last zxid has the same tree
//! digest.
//!
//! Source: ZooKeeper's `DigestCalculator` and the digest check added by ZOOKEEPER-3114; the
//! simulator records the digest each time a server's applied zxid moves.

use std::collections::BTreeMap;

use zkr_core::types::Zxid;

use super::Violation;

/// The digest first seen at each zxid, and who showed it.
#[derive(Debug, Default)]
pub struct Digests {
    seen: BTreeMap<Zxid, (u64, usize)>,
}

impl Digests {
    /// Server `node` has applied up to `zxid` and its tree hashes to `digest`.
    pub fn observe(&mut self, node: usize, zxid: Zxid, digest: u64, now: u64) -> Option<Violation> {
        match self.seen.get(&zxid) {
            None => {
                self.seen.insert(zxid, (digest, node));
                None
            }
            Some((d, _)) if *d == digest => None,
            Some((d, first)) => Some(Violation {
                invariant: "digest",
                at_ns: now,
                message: format!(
                    "n{node} has digest {digest:#018x} at {zxid}, n{first} had {d:#018x}"
                ),
            }),
        }
    }
}
