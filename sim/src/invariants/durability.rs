//! Durability: committed txns are never lost or truncated. Checked after every crash (the only
//! moment data can be lost): each committed txn must still be in the durable log of a quorum,
//! identical.
//!
//! Source: the TLA+ spec's `CommittedLogDurability`; Zab paper §3 "Integrity" (a delivered txn
//! was broadcast and stays delivered). Standalone, the quorum is the one server.

use std::sync::Arc;

use zkr_core::txn::LoggedTxn;
use zkr_core::types::Zxid;

use super::{Violation, majority};

/// One server's durable state as the checks see it.
#[derive(Clone, Copy, Debug)]
pub struct Log<'a> {
    /// Durable txns after the snapshot, sorted by zxid.
    pub txns: &'a [Arc<LoggedTxn>],
    /// The zxid the durable snapshot covers (zero without one).
    pub snapshot: Zxid,
}

impl Log<'_> {
    /// True if the log holds `txn` at its zxid, or a snapshot covers it (a snapshot holds
    /// applied state, which the digest check compares).
    pub fn holds(&self, txn: &LoggedTxn, same: impl Fn(&LoggedTxn) -> bool) -> bool {
        let zxid = txn.header.zxid;
        zxid <= self.snapshot || find(self.txns, zxid).is_some_and(same)
    }
}

/// The txn at `zxid` in a durable log sorted by zxid.
pub fn find(log: &[Arc<LoggedTxn>], zxid: Zxid) -> Option<&LoggedTxn> {
    log.binary_search_by_key(&zxid, |t| t.header.zxid).ok().map(|i| &*log[i])
}

/// Checks every committed txn against the durable logs of all servers.
pub fn check(committed: &[(Zxid, Arc<LoggedTxn>)], logs: &[Log<'_>], now: u64) -> Vec<Violation> {
    let need = majority(logs.len());
    let mut out = Vec::new();
    for (zxid, txn) in committed {
        let same = |t: &LoggedTxn| std::ptr::eq(t, &**txn) || t == &**txn;
        let holders = logs.iter().filter(|log| log.holds(txn, same)).count();
        if holders < need {
            let mine: Vec<String> = logs
                .iter()
                .map(|log| format!("{:?}", find(log.txns, *zxid).map(|t| &t.txn)))
                .collect();
            out.push(Violation {
                invariant: "durability",
                at_ns: now,
                message: format!(
                    "committed {zxid} ({:?}) is durable on {holders} of {} servers, need {need}; \
                     the logs hold {}",
                    txn.txn,
                    logs.len(),
                    mine.join(", ")
                ),
            });
            break;
        }
    }
    out
}
