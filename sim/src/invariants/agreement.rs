//! Agreement: no two servers commit different txns at one zxid, and one server never commits two
//! different txns at one zxid across its restarts.
//!
//! Source: Zab paper (Junqueira, Reed, Serafini, DSN 2011) §3, "Agreement" and "Total order";
//! the TLA+ spec's `PrefixConsistency`. A server "commits" a txn when its applied zxid moves past
//! it (standalone: after the txn is durable; under Zab: after the leader's COMMIT).

use std::sync::Arc;

use zkr_core::txn::LoggedTxn;
use zkr_core::types::Zxid;

use super::Violation;
use super::by_zxid::ByZxid;

/// Every txn any server committed, by zxid.
#[derive(Debug, Default)]
pub struct Agreement {
    committed: ByZxid<Arc<LoggedTxn>>,
}

impl Agreement {
    /// Server `node` committed `txn`.
    pub fn committed(&mut self, node: usize, txn: &Arc<LoggedTxn>, now: u64) -> Option<Violation> {
        let zxid = txn.header.zxid;
        // One search of the map per commit (this runs for every txn on every server).
        let earlier = self.committed.first_or_record(zxid, || Arc::clone(txn))?;
        (earlier != txn).then(|| Violation {
            invariant: "agreement",
            at_ns: now,
            message: format!(
                "n{node} committed {txn:?} at {zxid}, but {earlier:?} was committed there before"
            ),
        })
    }

    /// Server `node` committed a zxid it never logged (a bookkeeping hole).
    pub fn unlogged(node: usize, zxid: Zxid, now: u64) -> Violation {
        Violation {
            invariant: "agreement",
            at_ns: now,
            message: format!("n{node} applied {zxid} without having logged a txn there"),
        }
    }

    /// Every committed txn, in zxid order.
    pub fn all(&self) -> &[(Zxid, Arc<LoggedTxn>)] {
        self.committed.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkr_core::txn::{Txn, TxnHeader};
    use zkr_core::types::SessionId;

    fn txn(zxid: i64, path: &str) -> Arc<LoggedTxn> {
        let header = TxnHeader { session_id: SessionId(1), cxid: 1, zxid: Zxid(zxid), time_ms: 0 };
        Arc::new(LoggedTxn { header, txn: Txn::Delete { path: path.into() } })
    }

    /// Equal txns at a zxid (shared or separate copies) agree; a different one is reported.
    #[test]
    fn a_different_txn_at_a_committed_zxid_is_reported() {
        let mut agreement = Agreement::default();
        assert!(agreement.committed(0, &txn(5, "/a"), 1).is_none());
        assert!(agreement.committed(1, &txn(5, "/a"), 2).is_none(), "an equal copy agrees");
        assert!(agreement.committed(2, &txn(6, "/b"), 3).is_none());
        let v = agreement.committed(2, &txn(5, "/b"), 4).expect("a different txn at 5");
        assert_eq!((v.invariant, v.at_ns), ("agreement", 4));
        assert_eq!(agreement.all().len(), 2, "the first txn at each zxid is kept");
        assert_eq!(agreement.all()[0].1.txn, Txn::Delete { path: "/a".into() });
        assert!(agreement.committed(0, &txn(4, "/c"), 5).is_none(), "an older zxid, in place");
        let zxids: Vec<Zxid> = agreement.all().iter().map(|(z, _)| *z).collect();
        assert_eq!(zxids, [Zxid(4), Zxid(5), Zxid(6)], "in zxid order");
    }
}
