//! Agreement: no two servers commit different txns at one zxid, and one server never commits two
//! different txns at one zxid across its restarts.
//!
//! Source: Zab paper (Junqueira, Reed, Serafini, DSN 2011) §3, "Agreement" and "Total order";
//! the TLA+ spec's `PrefixConsistency`. A server "commits" a txn when its applied zxid moves past
//! it (standalone: after the txn is durable; under Zab: after the leader's COMMIT).

use std::collections::BTreeMap;
use std::sync::Arc;

use zkr_core::txn::LoggedTxn;
use zkr_core::types::Zxid;

use super::Violation;

/// Every txn any server committed, by zxid.
#[derive(Debug, Default)]
pub struct Agreement {
    committed: BTreeMap<Zxid, Arc<LoggedTxn>>,
}

impl Agreement {
    /// Server `node` committed `txn`.
    pub fn committed(&mut self, node: usize, txn: &Arc<LoggedTxn>, now: u64) -> Option<Violation> {
        let zxid = txn.header.zxid;
        match self.committed.get(&zxid) {
            None => {
                self.committed.insert(zxid, Arc::clone(txn));
                None
            }
            Some(earlier) if earlier == txn => None,
            Some(earlier) => Some(Violation {
                invariant: "agreement",
                at_ns: now,
                message: format!(
                    "n{node} committed {txn:?} at {zxid}, but {earlier:?} was committed there \
                     before"
                ),
            }),
        }
    }

    /// Server `node` committed a zxid it never logged (a bookkeeping hole).
    pub fn unlogged(node: usize, zxid: Zxid, now: u64) -> Violation {
        Violation {
            invariant: "agreement",
            at_ns: now,
            message: format!("n{node} applied {zxid} without having logged a txn there"),
        }
    }

    /// Every committed txn, by zxid.
    pub fn all(&self) -> &BTreeMap<Zxid, Arc<LoggedTxn>> {
        &self.committed
    }
}
