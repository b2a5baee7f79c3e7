//! What the checks need to remember across a script: every txn an established leader proposed,
//! every txn each server delivered (committed, in the order it did), the established leaders of
//! each epoch, and the violations that can only be seen at the moment they happen (primary
//! integrity: a primary proposing before it delivered an earlier epoch's txns).

use std::collections::{BTreeMap, BTreeSet};

use zkr_core::Node;
use zkr_core::txn::LoggedTxn;
use zkr_core::types::Zxid;
use zkr_core::zab::message::{SessionMessage, ZabMessage};

use super::cluster::Disk;
use super::fmt::zx;

/// The record.
#[derive(Debug, Default)]
pub struct Observer {
    /// Txns appended by an established leader, by zxid: the broadcasts (Zab's `propose`).
    pub proposed: BTreeMap<Zxid, (u64, LoggedTxn)>,
    /// Per server: the zxids it ever had in its log (recovered or appended).
    pub appended: BTreeMap<u64, BTreeSet<Zxid>>,
    /// Per server: what it delivered, first delivery only, in delivery order.
    pub delivered: BTreeMap<u64, Vec<(Zxid, LoggedTxn)>>,
    /// Per server: the commit point up to which deliveries were recorded.
    pub delivered_upto: BTreeMap<u64, Zxid>,
    /// Per server: the newest snapshot it holds (txns at or below it were not seen one by one).
    pub snapshot_base: BTreeMap<u64, Zxid>,
    /// Established leaders by epoch.
    pub leaders: BTreeMap<u32, BTreeSet<u64>>,
    /// Violations seen as they happened: (check name, description).
    pub violations: Vec<(String, String)>,
}

impl Observer {
    /// A server (re)started from its disk.
    pub fn on_start(&mut self, id: u64, node: &Node, disk: &Disk) {
        let appended = self.appended.entry(id).or_default();
        appended.extend(disk.durable.iter().map(|t| t.header.zxid));
        if let Some(s) = &disk.snapshot {
            let base = self.snapshot_base.entry(id).or_default();
            *base = (*base).max(s.zxid);
        }
        // It delivers again what it delivered before; only new deliveries are recorded.
        let upto = self.delivered_upto.entry(id).or_default();
        *upto = (*upto).max(node.committed());
    }

    /// Server `id` asked for `txn` to be appended.
    pub fn on_append(&mut self, id: u64, node: Option<&Node>, txn: &LoggedTxn) {
        let zxid = txn.header.zxid;
        self.appended.entry(id).or_default().insert(zxid);
        let Some(node) = node.filter(|n| n.is_established_leader()) else { return };
        if let Some((by, earlier)) = self.proposed.get(&zxid) {
            if earlier != txn {
                let what = format!("{} proposed by {by} and again, differently, by {id}", zx(zxid));
                self.violations.push(("integrity".into(), what));
            }
            return;
        }
        self.proposed.insert(zxid, (id, txn.clone()));
        self.check_primary_integrity(id, node, zxid);
    }

    /// Zab's primary integrity: before a primary broadcasts in epoch e, it has delivered every
    /// txn any server delivered from an earlier epoch.
    fn check_primary_integrity(&mut self, id: u64, node: &Node, zxid: Zxid) {
        self.on_proposal_applied(id, node.last_zxid(), zxid);
    }

    /// The primary integrity check proper: server `id`, having applied up to `applied`,
    /// proposes `zxid`.
    pub fn on_proposal_applied(&mut self, id: u64, applied: Zxid, zxid: Zxid) {
        let earlier = self.delivered.values().flatten().map(|(z, _)| *z);
        let missing = earlier.filter(|z| z.epoch() < zxid.epoch() && *z > applied).min();
        if let Some(z) = missing {
            let what = format!(
                "server {id} proposed {} before delivering {} (it applied up to {})",
                zx(zxid),
                zx(z),
                zx(applied)
            );
            self.violations.push(("primary-integrity".into(), what));
        }
    }

    /// Zab's discovery phase: a follower that accepted epoch e has promised to ignore leaders
    /// of older epochs, so it never acknowledges (NEWLEADER or a proposal) in an epoch below
    /// the one it accepted.
    pub fn on_send(&mut self, id: u64, node: Option<&Node>, msg: &ZabMessage) {
        let ZabMessage::Session { msg, .. } = msg else { return };
        let (SessionMessage::Ack { zxid }, Some(node)) = (msg, node) else { return };
        let accepted = node.epochs().0;
        if zxid.epoch() < accepted {
            let what = format!(
                "server {id} acknowledged {} in epoch {} after accepting epoch {accepted}",
                zx(*zxid),
                zxid.epoch()
            );
            self.violations.push(("epoch-promise".into(), what));
        }
    }

    /// Server `id` installed a snapshot at `zxid`.
    pub fn on_snapshot(&mut self, id: u64, zxid: Zxid) {
        let base = self.snapshot_base.entry(id).or_default();
        *base = (*base).max(zxid);
        let upto = self.delivered_upto.entry(id).or_default();
        *upto = (*upto).max(zxid);
    }

    /// Looks at a server after each of its steps. A delivered txn is read from the node's
    /// in-memory log, or from its disk when the node already trimmed it (it keeps only
    /// `commit_log_count` applied txns, and one step may apply more).
    pub fn after_step(&mut self, id: u64, node: &Node, disk: &Disk) {
        if node.is_established_leader() {
            self.leaders.entry(node.epochs().1).or_default().insert(id);
        }
        let committed = node.committed();
        let upto = self.delivered_upto.get(&id).copied().unwrap_or_default();
        if committed <= upto {
            return;
        }
        let zxids: Vec<Zxid> = self.appended.get(&id).map_or_else(Vec::new, |a| {
            a.range((std::ops::Bound::Excluded(upto), std::ops::Bound::Included(committed)))
                .copied()
                .collect()
        });
        for zxid in zxids {
            let on_disk =
                || disk.durable.iter().chain(&disk.unsynced).find(|t| t.header.zxid == zxid);
            if let Some(txn) = node.logged_txn(zxid).or_else(on_disk) {
                self.delivered.entry(id).or_default().push((zxid, txn.clone()));
            }
        }
        self.delivered_upto.insert(id, committed);
    }
}
