//! `SimDisk`: one node's txn log as a disk with a volatile page cache.
//!
//! `Output::Persist` appends a txn to the cache. An fsync covers everything appended before it
//! started (group commit) and completes after a random delay; then the covered records are
//! durable and the node is told `Input::Persisted{upto}`. A crash keeps the durable records,
//! keeps a random prefix of the unsynced ones (the page cache may have been written back) and
//! may tear the last kept record (a partial write that recovery's CRC rejects, so it is lost).
//!
//! Zab's synchronous outputs are durable at once: `PersistEpochs` sets the epochs,
//! `TruncateLog{after}` drops every record after a zxid (durable or not), `InstallSnapshot`
//! replaces the log with a snapshot. Those are the only ways durable records go away, and
//! the durability invariants check that no committed txn goes with them.
//!
//! Invariants: durable records are never lost or reordered by a crash; zxids in the log strictly
//! increase and are all above the snapshot's; `Persisted` is only reported for records that are
//! durable.
//!
//! Records are `Arc<LoggedTxn>`s shared with the node's own log (`Output::Persist` hands one
//! over): a disk never changes a record, so sharing it is the same as copying it, without the
//! copy.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zkr_core::snapshot::Snapshot;
use zkr_core::txn::LoggedTxn;
use zkr_core::types::Zxid;

/// What a crash did to the unsynced tail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashLoss {
    /// Unsynced records that survived anyway.
    pub kept: usize,
    /// Unsynced records lost.
    pub lost: usize,
    /// True if the last kept record was torn (and so lost too).
    pub torn: bool,
}

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    snapshot: Option<Snapshot>,
    epochs: (u32, u32),
    durable: Vec<Arc<LoggedTxn>>,
    unsynced: Vec<Arc<LoggedTxn>>,
    /// Number of unsynced records the fsync in progress covers (0: none in progress).
    syncing: usize,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// The durable log, oldest first.
    pub fn durable(&self) -> &[Arc<LoggedTxn>] {
        &self.durable
    }

    /// The records a read of the log files sees (durable, then the page cache), oldest first,
    /// with zxid in `[from, upto]` (the one at `from` alone if `upto` is below it): a log read's
    /// answer depends on nothing else (`LogReadRequest::answer_from`), and copying only those
    /// keeps a read from copying the whole log.
    pub fn records(&self, from: Zxid, upto: Zxid) -> Vec<LoggedTxn> {
        let upto = upto.max(from);
        let within = |log: &[Arc<LoggedTxn>]| {
            let start = log.partition_point(|t| t.header.zxid < from);
            let end = log.partition_point(|t| t.header.zxid <= upto).max(start);
            log[start..end].iter().map(|t| LoggedTxn::clone(t)).collect::<Vec<_>>()
        };
        let mut records = within(&self.durable);
        records.extend(within(&self.unsynced));
        assert!(records.windows(2).all(|w| w[0].header.zxid < w[1].header.zxid), "zxids increase");
        records
    }

    /// The last durable zxid (zero if none).
    pub fn last_durable(&self) -> Zxid {
        self.durable.last().map_or(Zxid::ZERO, |t| t.header.zxid)
    }

    /// The durable snapshot, if one was installed.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The zxid the snapshot covers (zero without one).
    pub fn snapshot_zxid(&self) -> Zxid {
        self.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid)
    }

    /// The durable `(accepted_epoch, current_epoch)`.
    pub fn epochs(&self) -> (u32, u32) {
        self.epochs
    }

    /// `Output::PersistEpochs`: durable at once.
    pub fn persist_epochs(&mut self, accepted_epoch: u32, current_epoch: u32) {
        self.epochs = (accepted_epoch, current_epoch);
    }

    /// `Output::TruncateLog`: every record after `after` goes, durable or not. Returns how many
    /// durable records went. The running fsync (if any) covers only what is left.
    pub fn truncate(&mut self, after: Zxid) -> usize {
        let before = self.durable.len();
        self.durable.retain(|t| t.header.zxid <= after);
        let kept_unsynced = self.unsynced.iter().filter(|t| t.header.zxid <= after).count();
        self.unsynced.truncate(kept_unsynced);
        self.syncing = self.syncing.min(kept_unsynced);
        before - self.durable.len()
    }

    /// `Output::InstallSnapshot`: the log is replaced by the snapshot.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        self.durable.clear();
        self.unsynced.clear();
        self.syncing = 0;
        self.snapshot = Some(snapshot);
    }

    /// True if an fsync is running.
    pub fn is_syncing(&self) -> bool {
        self.syncing > 0
    }

    /// Appends a txn to the cache. Returns true if an fsync should start now (none running).
    pub fn append(&mut self, txn: Arc<LoggedTxn>) -> bool {
        let last = self.unsynced.last().or(self.durable.last()).map(|t| t.header.zxid);
        let floor = last.unwrap_or(self.snapshot_zxid());
        assert!(floor < txn.header.zxid || floor == Zxid::ZERO, "log zxids increase");
        self.unsynced.push(txn);
        self.syncing == 0
    }

    /// Starts an fsync of everything appended so far. Returns false if there is nothing to do.
    pub fn start_fsync(&mut self) -> bool {
        assert_eq!(self.syncing, 0, "one fsync at a time");
        self.syncing = self.unsynced.len();
        self.syncing > 0
    }

    /// Completes the running fsync: its records become durable (after a truncation it may
    /// cover nothing: then `None`). Returns the new last durable
    /// zxid to report and whether another fsync should start (more was appended meanwhile).
    pub fn finish_fsync(&mut self) -> (Option<Zxid>, bool) {
        assert!(self.syncing <= self.unsynced.len());
        if self.syncing == 0 {
            return (None, !self.unsynced.is_empty());
        }
        self.durable.extend(self.unsynced.drain(..self.syncing));
        self.syncing = 0;
        (Some(self.last_durable()), !self.unsynced.is_empty())
    }

    /// The node crashed: unsynced records survive only as a random prefix, and the last kept one
    /// may be torn.
    pub fn crash(&mut self, rng: &mut ChaCha8Rng, tear_probability: f64) -> CrashLoss {
        let pending = std::mem::take(&mut self.unsynced);
        self.syncing = 0;
        let mut kept = if pending.is_empty() { 0 } else { rng.random_range(0..=pending.len()) };
        let torn = kept > 0 && rng.random_bool(tear_probability);
        if torn {
            kept -= 1;
        }
        let lost = pending.len() - kept;
        self.durable.extend(pending.into_iter().take(kept));
        CrashLoss { kept, lost, torn }
    }

    /// Records appended but not yet durable.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use zkr_core::txn::{Txn, TxnHeader};
    use zkr_core::types::SessionId;

    fn txn(z: i64) -> Arc<LoggedTxn> {
        let header = TxnHeader { session_id: SessionId(1), cxid: 0, zxid: Zxid(z), time_ms: 0 };
        Arc::new(LoggedTxn { header, txn: Txn::Delete { path: format!("/{z}") } })
    }

    #[test]
    fn group_commit_covers_what_was_appended_before_it_started() {
        let mut d = SimDisk::new();
        assert!(d.append(txn(1)), "first append starts an fsync");
        assert!(d.start_fsync());
        assert!(!d.append(txn(2)), "no second fsync while one runs");
        assert!(!d.append(txn(3)));
        assert_eq!(d.finish_fsync(), (Some(Zxid(1)), true), "only txn 1 was covered");
        assert!(d.start_fsync());
        assert_eq!(d.finish_fsync(), (Some(Zxid(3)), false), "the next fsync takes both");
        assert_eq!(d.durable().len(), 3);
        assert_eq!(d.unsynced_len(), 0);
    }

    #[test]
    fn crash_keeps_durable_and_maybe_a_prefix_of_the_rest() {
        let mut saw_loss = false;
        let mut saw_keep = false;
        let mut saw_tear = false;
        for seed in 0..64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut d = SimDisk::new();
            d.append(txn(1));
            d.start_fsync();
            d.finish_fsync();
            for z in 2..6 {
                d.append(txn(z));
            }
            let loss = d.crash(&mut rng, 0.5);
            assert_eq!(loss.kept + loss.lost, 4);
            assert_eq!(d.durable()[0], txn(1), "durable records survive");
            let zs: Vec<i64> = d.durable().iter().map(|t| t.header.zxid.0).collect();
            assert_eq!(zs, (1..=(1 + loss.kept as i64)).collect::<Vec<_>>(), "a prefix survives");
            saw_loss |= loss.lost > 0;
            saw_keep |= loss.kept > 0;
            saw_tear |= loss.torn;
        }
        assert!(saw_loss && saw_keep && saw_tear, "every crash outcome occurs");
    }

    #[test]
    fn truncation_drops_durable_and_unsynced_records_after_the_zxid() {
        let mut d = SimDisk::new();
        for z in 1..=3 {
            d.append(txn(z));
        }
        d.start_fsync();
        d.finish_fsync();
        d.append(txn(4));
        d.start_fsync();
        assert_eq!(d.truncate(Zxid(2)), 1, "txn 3 was durable and goes");
        assert_eq!(d.finish_fsync(), (None, false), "the fsync of txn 4 covers nothing now");
        assert_eq!(d.last_durable(), Zxid(2));
        d.persist_epochs(2, 1);
        assert_eq!(d.epochs(), (2, 1));
    }

    /// A log read sees the same answer from the records `records` copies as from the whole
    /// log (durable and unsynced), for every range, including ranges past either end.
    #[test]
    fn records_answer_a_log_read_as_the_whole_log_does() {
        use zkr_core::io::ready::LogReadRequest;
        let mut d = SimDisk::new();
        for z in [2, 3, 5, 8] {
            d.append(txn(z));
        }
        d.start_fsync();
        d.finish_fsync();
        for z in [9, 12] {
            d.append(txn(z));
        }
        let whole: Vec<LoggedTxn> =
            d.durable.iter().chain(&d.unsynced).map(|t| LoggedTxn::clone(t)).collect();
        for after in 0..14 {
            for upto in 0..14 {
                let read = LogReadRequest {
                    request: 1,
                    after: Zxid(after),
                    upto: Zxid(upto),
                    max_txns: 3,
                };
                let some = d.records(Zxid(after), Zxid(upto));
                assert!(some.len() <= whole.len());
                assert_eq!(read.answer_from(&some), read.answer_from(&whole), "{after}..{upto}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "log zxids increase")]
    fn out_of_order_append_is_a_bug() {
        let mut d = SimDisk::new();
        d.append(txn(2));
        d.append(txn(1));
    }
}
