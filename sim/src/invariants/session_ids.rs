//! Session ids are never reused: every committed CreateSession, on any server, in any epoch,
//! across restarts and elections, names an id no other CreateSession ever named. The same
//! txn committed again (by another server, or replayed by a restart) is the same creation.
//!
//! Source: ZooKeeper programmer's guide, "ZooKeeper Sessions" (the id is unique; the password
//! is derived from it) and `SessionTrackerImpl.initializeNextSessionId` (server id in the top
//! byte, the start time below it, so ids do not repeat across servers and restarts). A reused
//! id lets two clients share one session, or the client of an expired session claim the new
//! one with its old password. Sim seeds 46734 (a live id handed out again) and 48581 (an
//! expired one) were this fault; they were caught late by `Conn::invariants` and
//! [`super::ephemerals`], this catches it at the second creation.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use zkr_core::txn::{LoggedTxn, Txn};
use zkr_core::types::SessionId;

use super::Violation;

/// The first committed creation of every session id, and the server that committed it first.
#[derive(Debug, Default)]
pub struct SessionIds {
    created: BTreeMap<SessionId, (usize, Arc<LoggedTxn>)>,
}

impl SessionIds {
    /// Server `node` committed `txn`; anything but a CreateSession is ignored.
    pub fn committed(&mut self, node: usize, txn: &Arc<LoggedTxn>, now: u64) -> Option<Violation> {
        if !matches!(txn.txn, Txn::CreateSession { .. }) {
            return None;
        }
        let id = txn.header.session_id;
        let (first_node, first) = match self.created.entry(id) {
            Entry::Vacant(vacant) => {
                vacant.insert((node, Arc::clone(txn)));
                return None;
            }
            Entry::Occupied(occupied) => occupied.into_mut(),
        };
        // The same creation seen again: another server, or a restart replaying its log.
        (first != txn).then(|| Violation {
            invariant: "session_ids",
            at_ns: now,
            message: format!(
                "n{node} committed a CreateSession of {id} at {}, but n{first_node} committed \
                 one at {} before: the id was handed out twice",
                txn.header.zxid, first.header.zxid
            ),
        })
    }

    /// Number of distinct session ids created so far.
    pub fn len(&self) -> usize {
        self.created.len()
    }

    /// True when no session was created.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkr_core::txn::TxnHeader;
    use zkr_core::types::Zxid;

    fn txn(zxid: i64, session: i64, txn: Txn) -> Arc<LoggedTxn> {
        let header =
            TxnHeader { session_id: SessionId(session), cxid: 0, zxid: Zxid(zxid), time_ms: 0 };
        Arc::new(LoggedTxn { header, txn })
    }

    fn create(zxid: i64, session: i64) -> Arc<LoggedTxn> {
        txn(zxid, session, Txn::CreateSession { timeout_ms: 4000 })
    }

    /// One creation seen by many servers (or replayed) is fine; a second creation of an id,
    /// at another zxid, is reported, whichever server commits it.
    #[test]
    fn a_second_creation_of_an_id_is_reported() {
        let mut ids = SessionIds::default();
        assert!(ids.committed(0, &create(5, 0x100), 1).is_none());
        assert!(ids.committed(1, &create(5, 0x100), 2).is_none(), "an equal copy, same zxid");
        assert!(ids.committed(0, &create(5, 0x100), 3).is_none(), "a restart replaying it");
        assert!(ids.committed(1, &create(6, 0x101), 4).is_none(), "another id");
        let close = txn(7, 0x100, Txn::CloseSession { paths_to_delete: vec![] });
        assert!(ids.committed(1, &close, 5).is_none(), "a close is not a creation");
        assert_eq!(ids.len(), 2);
        let v = ids.committed(2, &create(9, 0x100), 6).expect("0x100 created again at 9");
        assert_eq!((v.invariant, v.at_ns), ("session_ids", 6));
        assert!(v.message.contains("n0 committed one"), "{}", v.message);
        // Another txn at the same zxid is still a second creation (agreement reports it too).
        let other = txn(5, 0x100, Txn::CreateSession { timeout_ms: 6000 });
        assert!(ids.committed(1, &other, 7).is_some());
    }
}
