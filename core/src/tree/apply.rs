//! `DataTree::apply`: ZooKeeper's `DataTree.processTxn` for our `Txn`.
//!
//! Rules (reference §10.1, §10.2, §10.6, §10.9):
//! - `lastProcessedZxid` moves forward on every txn, failed ones included;
//! - create: czxid = mzxid = pzxid = zxid, ctime = mtime = header time; the parent takes the
//!   txn's `parent_cversion` and pzxid = zxid only if that cversion is greater than its own
//!   (so a replayed create cannot move it back);
//! - delete: the parent's pzxid becomes zxid only if greater; its stored cversion is untouched;
//! - closeSession deletes the listed paths that exist, then any ephemeral of the session the
//!   list missed (`DataTree.killSession`);
//! - a txn that cannot be applied returns `Failed` and changes nothing; apply never panics on
//!   txn content (a broken tree invariant still panics).

use std::sync::Arc;

use crate::proto::client::EventType;
use crate::proto::error::ZkError;
use crate::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use crate::types::{Acl, SessionId, Zxid};

use super::quota::{self, StatsTrack};
use super::{
    Applied, ApplyOutcome, DataTree, NodeKind, StatPersisted, WatchTrigger, ZNode, digest, path,
};

/// The node kind a create txn makes; BADARGUMENTS for a TTL out of range.
fn node_kind(kind: CreateKind, session: SessionId) -> Result<NodeKind, ZkError> {
    Ok(match kind {
        CreateKind::Persistent => NodeKind::Persistent,
        // Owner 0 reads back as persistent in ZooKeeper too (`EphemeralType.get`).
        CreateKind::Ephemeral if session.0 == 0 => NodeKind::Persistent,
        CreateKind::Ephemeral => NodeKind::Ephemeral(session),
        CreateKind::Container => NodeKind::Container,
        CreateKind::Ttl(ttl) if ttl <= 0 || ttl > NodeKind::TTL_MAX_MS => {
            return Err(ZkError::BadArguments);
        }
        CreateKind::Ttl(ttl) => NodeKind::Ttl(ttl),
    })
}

/// Counts a new child of `parent`, created at `zxid`: the parent takes the txn's
/// `parent_cversion` (-1: one more than its own) and pzxid = zxid only if that cversion is
/// greater than its own. `head` is the parent's digest hash state after the fields this leaves
/// alone (`HeadCache`). Returns the parent's digest term before and after.
fn link_child(
    parent: &mut ZNode,
    head: digest::Fnv64,
    parent_cversion: i32,
    zxid: i64,
) -> (u64, u64) {
    let (children_before, stat_before) = (parent.num_children, parent.stat);
    let hash_before = digest::node_hash_with_stat_tail(head, &parent.stat);
    let parent_cversion = match parent_cversion {
        -1 => parent.stat.cversion.wrapping_add(1),
        cversion => cversion,
    };
    if parent_cversion > parent.stat.cversion {
        parent.stat.cversion = parent_cversion;
        parent.stat.pzxid = zxid;
    }
    parent.num_children = children_before.checked_add(1).expect("u32 children");
    assert_eq!(parent.num_children, children_before + 1, "the new node is not linked");
    assert!(parent.stat.cversion >= stat_before.cversion, "a create never moves cversion back");
    let stat_unchanged =
        StatPersisted { cversion: stat_before.cversion, pzxid: stat_before.pzxid, ..parent.stat };
    assert_eq!(stat_unchanged, stat_before, "only cversion and pzxid change: the head holds");
    (hash_before, digest::node_hash_with_stat_tail(head, &parent.stat))
}

/// The fields of a `Txn::Create`.
struct CreateArgs<'a> {
    path: &'a str,
    data: &'a Option<Vec<u8>>,
    acl: &'a [Acl],
    kind: CreateKind,
    parent_cversion: i32,
}

impl DataTree {
    /// Applies one committed txn. See the module doc for the rules.
    pub fn apply(&mut self, txn: &LoggedTxn) -> Applied {
        let mut triggers = Vec::new();
        let outcome = self.apply_into(txn, &mut triggers);
        Applied { outcome, triggers }
    }

    /// [`DataTree::apply`] into a list of triggers the caller keeps (empty on entry): the
    /// server's apply path reuses one list, where a list per txn was an allocation and a free
    /// for every txn that fires a watch (most of them).
    pub fn apply_into(
        &mut self,
        txn: &LoggedTxn,
        triggers: &mut Vec<WatchTrigger>,
    ) -> ApplyOutcome {
        assert!(triggers.is_empty(), "the caller's list holds no trigger of an earlier txn");
        let before = self.last_processed_zxid;
        let outcome = self.apply_txn(&txn.header, &txn.txn, triggers, false);
        self.advance_zxid(txn.header.zxid);
        assert!(self.last_processed_zxid >= before, "lastProcessedZxid moved back");
        assert!(self.last_processed_zxid >= txn.header.zxid, "lastProcessedZxid not advanced");
        outcome
    }

    fn apply_txn(
        &mut self,
        header: &TxnHeader,
        txn: &Txn,
        triggers: &mut Vec<WatchTrigger>,
        in_multi: bool,
    ) -> ApplyOutcome {
        let (zxid, time) = (header.zxid, header.time_ms);
        match txn {
            Txn::CreateSession { .. } | Txn::CloseSession { .. } | Txn::Multi(_) if in_multi => {
                ApplyOutcome::Failed(ZkError::MarshallingError)
            }
            Txn::CreateSession { .. } => ApplyOutcome::SessionCreated,
            Txn::CloseSession { paths_to_delete } => {
                self.close_session(header.session_id, paths_to_delete, zxid, triggers);
                ApplyOutcome::SessionClosed
            }
            Txn::Create { path, data, acl, kind, parent_cversion } => {
                let args =
                    CreateArgs { path, data, acl, kind: *kind, parent_cversion: *parent_cversion };
                self.apply_create(header, &args, triggers)
            }
            Txn::Delete { path } | Txn::DeleteContainer { path } => {
                match self.apply_delete(path, zxid, triggers) {
                    Ok(()) => ApplyOutcome::Deleted,
                    Err(e) => ApplyOutcome::Failed(e),
                }
            }
            Txn::SetData { path, data, version } => {
                let outcome = self.apply_set_data(path, data, *version, zxid, time);
                if matches!(outcome, ApplyOutcome::DataSet { .. }) {
                    let event = EventType::NodeDataChanged;
                    let (path, node) = self
                        .nodes
                        .get_key_value(path.as_str())
                        .expect("set data on an existing node");
                    let (path, acl) = (path.clone(), node.acl.clone());
                    triggers.push(WatchTrigger { path, event, acl });
                }
                outcome
            }
            Txn::SetAcl { path, acl, version } => self.apply_set_acl(path, acl, *version),
            Txn::Check { .. } => ApplyOutcome::Checked,
            Txn::Error { err } => ApplyOutcome::Failed(*err),
            Txn::Multi(subs) => {
                let outcomes =
                    subs.iter().map(|s| self.apply_txn(header, s, triggers, true)).collect();
                ApplyOutcome::Multi(outcomes)
            }
        }
    }

    fn apply_create(
        &mut self,
        header: &TxnHeader,
        args: &CreateArgs<'_>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> ApplyOutcome {
        let p = args.path;
        if path::validate_path(p).is_err() || p == "/" {
            return ApplyOutcome::Failed(ZkError::BadArguments);
        }
        // One look-up of the new path and one of the parent serve every check and update below
        // (the parent's stat, child count and digest term, and its watch trigger's key). A node
        // at `p` implies its parent (a tree invariant), so asking for both first keeps the order
        // of errors: NONODE, then NODEEXISTS.
        let exists = self.nodes.contains_key(p);
        let parent_path = path::parent(p);
        let Some((parent_key, parent)) = self.nodes.get_key_value_mut(parent_path) else {
            assert!(!exists, "{p} exists without its parent");
            return ApplyOutcome::Failed(ZkError::NoNode);
        };
        if exists {
            return ApplyOutcome::Failed(ZkError::NodeExists);
        }
        if parent.kind().owner_session().is_some() {
            return ApplyOutcome::Failed(ZkError::NoChildrenForEphemerals);
        }
        let kind = match node_kind(args.kind, header.session_id) {
            Ok(kind) => kind,
            Err(e) => return ApplyOutcome::Failed(e),
        };
        let zxid = header.zxid.0;
        let parent_trigger = parent_key.clone();
        let parent_acl = parent.acl.clone();
        let head = self.heads.head(parent_key, parent);
        let (hash_before, hash_after) =
            link_child(Arc::make_mut(parent), head, args.parent_cversion, zxid);
        self.digest = self.digest.wrapping_sub(hash_before).wrapping_add(hash_after);
        let stat = StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            ctime: header.time_ms,
            mtime: header.time_ms,
            ephemeral_owner: kind.ephemeral_owner(),
            pzxid: zxid,
            ..StatPersisted::default()
        };
        // The cache's copy of the list when a node holds one: no allocation for it.
        let acl = self.acl_hold_slice(args.acl);
        let node_acl = acl.clone();
        let data = args.data.as_deref().map(Box::from);
        let node = ZNode::new(data, acl, stat, kind);
        let bytes = node.data_len();
        let client_stat = node.client_stat();
        assert_eq!(client_stat.czxid, zxid, "a new node's czxid is its txn's zxid");
        let key = self.insert_linked(p, node);
        self.quota_after_create(p, bytes);
        let event = EventType::NodeCreated;
        triggers.push(WatchTrigger { path: key.clone(), event, acl: node_acl });
        let event = EventType::NodeChildrenChanged;
        triggers.push(WatchTrigger { path: parent_trigger, event, acl: parent_acl });
        assert_eq!(&*key, p, "the outcome names the node created");
        ApplyOutcome::Created { path: key, stat: client_stat }
    }

    fn apply_delete(
        &mut self,
        p: &str,
        zxid: Zxid,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ZkError> {
        if path::is_special_path(p) {
            return Err(ZkError::BadArguments);
        }
        let super::Removed { key, node: removed, parent_key: parent_trigger, parent_acl } =
            self.remove_node(p, zxid.0)?;
        self.quota_after_delete(p, removed.data_len());
        assert_eq!(removed.num_children, 0, "only a childless node is deleted");
        assert_eq!(&*key, p, "the node removed is the one deleted");
        let acl = removed.acl.clone();
        triggers.push(WatchTrigger { path: key, event: EventType::NodeDeleted, acl });
        let event = EventType::NodeChildrenChanged;
        triggers.push(WatchTrigger { path: parent_trigger, event, acl: parent_acl });
        Ok(())
    }

    fn apply_set_data(
        &mut self,
        p: &str,
        data: &Option<Vec<u8>>,
        version: i32,
        zxid: Zxid,
        time_ms: i64,
    ) -> ApplyOutcome {
        if !self.nodes.contains_key(p) {
            return ApplyOutcome::Failed(ZkError::NoNode);
        }
        let (old_len, stat) = self.update_node(p, |node| {
            let old_len = node.data_len();
            node.data = data.as_deref().map(Box::from);
            node.stat.mtime = time_ms;
            node.stat.mzxid = zxid.0;
            node.stat.version = version;
            (old_len, node.client_stat())
        });
        let new_len = data.as_ref().map_or(0, |d| d.len() as i64);
        if let Some(prefix) = self.max_quota_prefix(p) {
            self.update_quota_stat(&prefix, new_len - old_len, 0);
        }
        assert_eq!(stat.mzxid, zxid.0, "setData sets mzxid");
        assert_eq!(stat.version, version, "setData sets the txn's version");
        ApplyOutcome::DataSet { stat }
    }

    fn apply_set_acl(&mut self, p: &str, acl: &[Acl], version: i32) -> ApplyOutcome {
        if !self.nodes.contains_key(p) {
            return ApplyOutcome::Failed(ZkError::NoNode);
        }
        let stat = self.set_node_acl(p, acl, version);
        assert_eq!(stat.aversion, version, "setACL sets the txn's aversion");
        ApplyOutcome::AclSet { stat }
    }

    /// `killSession`: the listed paths first (those that exist and can be deleted), then any
    /// ephemeral of the session that the list missed, in path order.
    fn close_session(
        &mut self,
        session: SessionId,
        listed: &[String],
        zxid: Zxid,
        triggers: &mut Vec<WatchTrigger>,
    ) {
        for p in listed {
            // A missing path is normal (ZooKeeper logs NoNode and goes on).
            let _ = self.apply_delete(p, zxid, triggers);
        }
        let rest = self.ephemerals(session);
        for p in &rest {
            let deleted = self.apply_delete(p, zxid, triggers);
            assert!(deleted.is_ok(), "an ephemeral is always deletable: {p}");
        }
        assert!(self.ephemerals(session).is_empty(), "session {session} kept ephemerals");
    }

    // ---- quotas (reference §10.9) ----

    /// The longest quota root that is `p` or an ancestor of `p` (`getMaxPrefixWithQuota`).
    pub(super) fn max_quota_prefix(&self, p: &str) -> Option<String> {
        if self.quota_roots.is_empty() {
            return None;
        }
        let mut cur = p;
        while cur != "/" {
            if self.quota_roots.contains(cur) {
                return Some(cur.to_string());
            }
            cur = path::parent(cur);
        }
        None
    }

    fn quota_after_create(&mut self, p: &str, bytes: i64) {
        match quota::quota_node_root(p) {
            Some((root, true)) => {
                self.quota_roots.insert(root);
            }
            Some((root, false)) => self.update_quota_for_path(&root),
            None => {}
        }
        if let Some(prefix) = self.max_quota_prefix(p) {
            self.update_quota_stat(&prefix, bytes, 1);
        }
    }

    fn quota_after_delete(&mut self, p: &str, bytes: i64) {
        if let Some((root, true)) = quota::quota_node_root(p) {
            self.quota_roots.remove(&root);
        }
        if let Some(prefix) = self.max_quota_prefix(p) {
            self.update_quota_stat(&prefix, -bytes, -1);
        }
    }

    /// `updateQuotaForPath`: recounts the subtree at `root` (itself included) into its stats
    /// node, replacing the stats node's text.
    fn update_quota_for_path(&mut self, root: &str) {
        let stat_path = quota::stat_path(root);
        if !self.nodes.contains_key(stat_path.as_str()) {
            return;
        }
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(node) = self.nodes.get(root) {
            count += 1;
            bytes += node.data_len();
            for (_, d) in self.descendants(root) {
                count += 1;
                bytes += d.data_len();
            }
        }
        assert!(count >= 0 && bytes >= 0, "subtree counts are never negative");
        assert!(count > 0 || !self.nodes.contains_key(root), "a live root counts itself");
        let mut track = StatsTrack::default();
        track.set_count(count);
        track.set_bytes(bytes);
        self.update_node(&stat_path, |n| n.data = Some(track.to_bytes().into()));
    }

    /// `updateQuotaStat`: adds the differences to the stats node's text, in place.
    fn update_quota_stat(&mut self, prefix: &str, bytes_diff: i64, count_diff: i64) {
        let stat_path = quota::stat_path(prefix);
        let Some(node) = self.nodes.get(stat_path.as_str()) else {
            return;
        };
        let mut track = StatsTrack::parse(node.data.as_deref());
        track.set_count(track.count().wrapping_add(count_diff));
        track.set_bytes(track.bytes().wrapping_add(bytes_diff));
        self.update_node(&stat_path, |n| n.data = Some(track.to_bytes().into()));
    }

    /// `ZooKeeperServer.checkQuota` against this (committed) tree: QUOTAEXCEEDED when a hard
    /// limit of the longest matching quota root would be passed. Soft limits never fail.
    pub fn check_quota(&self, p: &str, bytes_diff: i64, count_diff: i64) -> Result<(), ZkError> {
        let Some(prefix) = self.max_quota_prefix(p) else {
            return Ok(());
        };
        let Some(limit_node) = self.nodes.get(quota::limit_path(&prefix).as_str()) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(limit_node.data.as_deref());
        let check_count =
            count_diff != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
        let check_bytes = bytes_diff != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
        let Some(stat_node) = self.nodes.get(quota::stat_path(&prefix).as_str()) else {
            return Ok(());
        };
        let current = StatsTrack::parse(stat_node.data.as_deref());
        let hard_count = limits.count_hard_limit();
        if check_count && hard_count > -1 && current.count() + count_diff > hard_count {
            return Err(ZkError::QuotaExceeded);
        }
        let hard_bytes = limits.byte_hard_limit();
        if check_bytes && hard_bytes > -1 && current.bytes() + bytes_diff > hard_bytes {
            return Err(ZkError::QuotaExceeded);
        }
        Ok(())
    }
}
