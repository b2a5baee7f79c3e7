//! The in-memory view of this server's txn log: what is logged, what of it is durable, what is
//! known committed, and a window of committed txns kept for DIFF syncs.
//!
//! Invariants (`invariants()`):
//! - entries have strictly increasing zxids, all after `base` (the snapshot/installed state);
//! - `applied ≤ committed ≤ last_logged` and `durable ≤ last_logged`, where `applied` is the data
//!   tree's last processed zxid, kept by the caller;
//! - every entry after `applied` is still present (nothing logged and unapplied is ever trimmed).
//!
//! `on_disk_from` is the oldest zxid whose successors this server's txn log files still hold as
//! its own history: the recovered base (the newest snapshot: records before it may be a tail
//! a later snapshot install replaced), an installed snapshot's zxid, or where autopurge left
//! the oldest file. A leader may DIFF a learner from the files only from there on.
//!
//! Entries are shared (`Arc`) with the `Persist` output that logs them and with the commit that
//! applies them: a txn's data and ACL are not copied on the way (issue 14).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::txn::LoggedTxn;
use crate::types::Zxid;

/// This server's log, as the core sees it.
#[derive(Clone, Debug, Default)]
pub struct ZabLog {
    base: Zxid,
    entries: VecDeque<Arc<LoggedTxn>>,
    durable: Zxid,
    committed: Zxid,
    on_disk_from: Zxid,
}

impl ZabLog {
    /// A log that starts after `base` (the state already in the tree), with `txns` recovered
    /// from disk (durable, not known committed).
    pub fn recovered(base: Zxid, txns: Vec<LoggedTxn>) -> ZabLog {
        let mut log = ZabLog {
            base,
            entries: VecDeque::new(),
            durable: base,
            committed: base,
            on_disk_from: base,
        };
        for txn in txns {
            log.append(Arc::new(txn));
        }
        log.durable = log.last_logged();
        // A recovered txn may be one no quorum acknowledged: whether it is committed is for
        // the next leader's synchronization to decide (Zab phase 2; ZOOKEEPER-2845 is what
        // comes of treating such a txn as settled).
        assert_eq!(log.committed, base, "recovered txns are not known committed");
        assert!(log.durable >= log.committed, "what recovery read is on disk");
        log
    }

    /// The zxid the log starts after.
    pub fn base(&self) -> Zxid {
        self.base
    }

    /// The last logged zxid (or `base`).
    pub fn last_logged(&self) -> Zxid {
        self.entries.back().map(|t| t.header.zxid).unwrap_or(self.base)
    }

    /// The last durable zxid.
    pub fn durable(&self) -> Zxid {
        self.durable
    }

    /// The last zxid known committed.
    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// Appends a txn; its zxid must follow the last one.
    pub fn append(&mut self, txn: Arc<LoggedTxn>) {
        assert!(txn.header.zxid > self.last_logged(), "log zxids strictly increase");
        assert!(txn.header.zxid > self.base);
        self.entries.push_back(txn);
    }

    /// Marks everything up to `upto` durable; returns whether it moved.
    pub fn mark_durable(&mut self, upto: Zxid) -> bool {
        // The shell reports durability by batch; a point between entries (or a stale report
        // after a truncation) means the last whole entry at or below it.
        let upto = self.floor(upto.min(self.last_logged()));
        if upto <= self.durable {
            return false;
        }
        self.durable = upto;
        // A durable point is one this server may acknowledge (Zab phase 3: ACK means on disk),
        // so it must name a logged entry, never a point past the log.
        assert!(self.durable <= self.last_logged(), "durable only what is logged");
        assert!(self.contains(self.durable), "durable points name entries");
        true
    }

    /// Marks everything up to `upto` committed. The commit point becomes the last logged zxid at
    /// or below `upto` (a point such as NEWLEADER's `(epoch, 0)` is not an entry).
    pub fn mark_committed(&mut self, upto: Zxid) {
        assert!(upto <= self.last_logged(), "cannot commit {upto} beyond the log");
        let upto = self.floor(upto);
        if upto > self.committed {
            self.committed = upto;
        }
    }

    /// The entry with this zxid.
    pub fn get(&self, zxid: Zxid) -> Option<&LoggedTxn> {
        let i = self.entries.binary_search_by(|t| t.header.zxid.cmp(&zxid)).ok()?;
        self.entries.get(i).map(|t| &**t)
    }

    /// True if the log holds `zxid`, or it is the base. The last entry is asked first: the
    /// zxid asked for is most often the newest (a durable point after an fsync that caught up).
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base
            || self.entries.back().is_some_and(|t| t.header.zxid == zxid)
            || self.get(zxid).is_some()
    }

    /// The oldest zxid a DIFF can start from.
    pub fn oldest(&self) -> Zxid {
        self.base
    }

    /// The oldest zxid whose successors the log files hold as this server's history (see the
    /// module doc).
    pub fn on_disk_from(&self) -> Zxid {
        self.on_disk_from
    }

    /// Autopurge removed old log files: they now start at `oldest_on_disk`. Only moves forward.
    pub fn disk_trimmed(&mut self, oldest_on_disk: Zxid) {
        self.on_disk_from = self.on_disk_from.max(oldest_on_disk);
        assert!(self.on_disk_from >= oldest_on_disk);
    }

    /// Entries with zxid in `(after, upto]`.
    pub fn range(&self, after: Zxid, upto: Zxid) -> impl Iterator<Item = &LoggedTxn> {
        self.range_shared(after, upto).map(|t| &**t)
    }

    /// Entries with zxid in `(after, upto]`, shared. O(log n + the range): entries are sorted.
    pub fn range_shared(&self, after: Zxid, upto: Zxid) -> impl Iterator<Item = &Arc<LoggedTxn>> {
        let start = self.entries.partition_point(|t| t.header.zxid <= after);
        let end = self.entries.partition_point(|t| t.header.zxid <= upto).max(start);
        self.entries.range(start..end)
    }

    /// The largest logged zxid that is ≤ `zxid` (or the base).
    pub fn floor(&self, zxid: Zxid) -> Zxid {
        self.entries.iter().rev().map(|t| t.header.zxid).find(|z| *z <= zxid).unwrap_or(self.base)
    }

    /// Drops every entry after `zxid`. Never drops committed entries.
    pub fn truncate_after(&mut self, zxid: Zxid) {
        assert!(zxid >= self.committed, "never truncate committed txns");
        while self.entries.back().is_some_and(|t| t.header.zxid > zxid) {
            self.entries.pop_back();
        }
        self.durable = self.durable.min(self.last_logged());
    }

    /// Replaces everything with an installed snapshot at `zxid`.
    pub fn reset(&mut self, zxid: Zxid) {
        self.entries.clear();
        self.base = zxid;
        self.durable = zxid;
        self.committed = zxid;
        // Log records older than an installed snapshot may be a tail it replaced.
        self.on_disk_from = zxid;
    }

    /// Forgets applied entries beyond the newest `keep`, moving `base` forward.
    pub fn trim(&mut self, applied: Zxid, keep: usize) {
        let before = self.base;
        // Only applied entries go: an unapplied one is still needed to apply, and a committed
        // but unapplied one may be the only copy of a commit the tree has not seen.
        while self.entries.len() > keep
            && self.entries.front().is_some_and(|t| t.header.zxid <= applied)
        {
            let first = self.entries.pop_front().expect("front exists");
            self.base = first.header.zxid;
        }
        assert!(self.base == before || self.base <= applied, "only applied entries are trimmed");
        assert!(self.entries.front().is_none_or(|t| t.header.zxid > self.base), "after base");
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entries are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the log invariants against the tree's applied zxid; panics when broken.
    pub fn invariants(&self, applied: Zxid) {
        assert!(applied <= self.committed, "applied {applied} ≤ committed {}", self.committed);
        assert!(self.committed <= self.last_logged(), "committed ≤ last logged");
        assert!(self.durable <= self.last_logged(), "durable ≤ last logged");
        assert!(applied >= self.base, "entries after applied are kept");
        // `append` asserts each zxid exceeds the last, so order needs checking only at the ends
        // (keeps this O(1): it runs after every step, in release builds too).
        if let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) {
            assert!(first.header.zxid > self.base, "entries start after the base");
            assert!(first.header.zxid <= last.header.zxid, "entries in zxid order");
        }
    }
}
