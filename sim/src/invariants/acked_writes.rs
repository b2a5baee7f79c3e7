//! Acknowledged writes survive: once a client got a reply to a write (success or a failure that
//! took a zxid), the txn at that zxid, with that session and xid, stays in the durable log of a
//! quorum, across every crash and restart.
//!
//! Source: ZooKeeper's "Reliability" guarantee ("once an update has been applied, it will
//! persist from that time forward until a client overwrites the update") and io.rs's durability
//! contract (no reply before `Persisted`).

use std::collections::BTreeMap;

use zkr_core::types::{SessionId, Zxid};

use super::durability::{Log, find};
use super::{Violation, majority};

/// Writes clients saw acknowledged, by zxid: (session, xid).
#[derive(Debug, Default)]
pub struct AckedWrites {
    acked: BTreeMap<Zxid, (SessionId, i32)>,
}

impl AckedWrites {
    /// A client got the reply to its write `xid` of `session`, carrying `zxid`.
    pub fn acked(
        &mut self,
        zxid: Zxid,
        session: SessionId,
        xid: i32,
        now: u64,
    ) -> Option<Violation> {
        match self.acked.insert(zxid, (session, xid)) {
            Some(old) if old != (session, xid) => Some(Violation {
                invariant: "acked_writes",
                at_ns: now,
                message: format!(
                    "two acknowledged writes share {zxid}: {old:?} and {:?}",
                    (session, xid)
                ),
            }),
            _ => None,
        }
    }

    /// Checks every acknowledged write against the durable logs of all servers.
    pub fn check(&self, logs: &[Log<'_>], now: u64) -> Vec<Violation> {
        let need = majority(logs.len());
        for (zxid, (session, xid)) in &self.acked {
            let holders = logs
                .iter()
                .filter(|log| {
                    *zxid <= log.snapshot
                        || find(log.txns, *zxid).is_some_and(|t| {
                            t.header.session_id == *session && t.header.cxid == *xid
                        })
                })
                .count();
            if holders < need {
                let found: Vec<String> = logs
                    .iter()
                    .map(|log| match find(log.txns, *zxid) {
                        None => "nothing".to_string(),
                        Some(t) => format!("{} xid {}", t.header.session_id, t.header.cxid),
                    })
                    .collect();
                return vec![Violation {
                    invariant: "acked_writes",
                    at_ns: now,
                    message: format!(
                        "write xid {xid} of {session} was acknowledged at {zxid}, but after a \
                         crash the logs hold {} there",
                        found.join(", ")
                    ),
                }];
            }
        }
        Vec::new()
    }

    /// Number of acknowledged writes.
    pub fn len(&self) -> usize {
        self.acked.len()
    }

    /// True if no write was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.acked.is_empty()
    }
}
