//! The data tree: znodes with data, ACL, persisted stat and children; the ephemeral index; the
//! quota bookkeeping; the incremental tree digest; `lastProcessedZxid`. Writes happen only via
//! [`DataTree::apply`] (in `apply.rs`) with fully decided txns, so every replica that applies the
//! same txns in the same order holds an equal tree (and an equal [`DataTree::digest`]).
//!
//! Invariants (checked by [`DataTree::invariants`]):
//! - `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` always exist;
//! - every key passes `path::validate_path`; every node but `/` has its parent in the map, and
//!   the parent's `children` holds exactly the last segments of its child keys;
//! - only `Ephemeral` nodes are in the ephemeral index, each under its owner; normal ephemerals
//!   have no children;
//! - `ZNode::stat.ephemeral_owner == ZNode::kind.ephemeral_owner()`;
//! - `digest` is the wrapping sum of `digest::node_hash` over all nodes, `data_size` the sum of
//!   path and data lengths, `quota_roots` the roots whose limits node exists;
//! - iteration order is BTree order everywhere: nothing depends on hashing.

pub mod acl;
mod apply;
pub mod digest;
pub mod path;
pub mod quota;

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::client::EventType;
use crate::proto::error::ZkError;
use crate::types::{Acl, SessionId, Stat, Zxid};

/// `StatPersisted`: the stat as stored (no dataLength or numChildren; cversion counts creates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatPersisted {
    /// zxid of the create.
    pub czxid: i64,
    /// zxid of the last setData (or the create).
    pub mzxid: i64,
    /// Create time, ms.
    pub ctime: i64,
    /// Last setData time, ms.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Stored child version: the number of child creations (deletes do not count).
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Raw owner encoding: 0, a session id, `i64::MIN` (container) or `0xFF..|ttl` (TTL).
    pub ephemeral_owner: i64,
    /// zxid of the last child create/delete.
    pub pzxid: i64,
}

/// What a node is; decides its raw `ephemeralOwner` (reference §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// Persistent (owner 0).
    Persistent,
    /// Ephemeral, owned by this session.
    Ephemeral(SessionId),
    /// Container (owner `Long.MIN_VALUE`).
    Container,
    /// TTL node with this TTL in ms (owner `0xFF00_0000_0000_0000 | ttl`).
    Ttl(i64),
}

impl NodeKind {
    /// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
    pub const CONTAINER_OWNER: i64 = i64::MIN;
    /// The high byte that marks an extended (TTL) owner.
    pub const EXTENDED_MASK: u64 = 0xff00_0000_0000_0000;
    /// The largest TTL, ms (40 bits).
    pub const TTL_MAX_MS: i64 = 0xff_ffff_ffff;

    /// The raw `StatPersisted.ephemeralOwner`.
    pub fn ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(s) => s.0,
            NodeKind::Container => Self::CONTAINER_OWNER,
            NodeKind::Ttl(ttl) => {
                (Self::EXTENDED_MASK | (ttl as u64 & Self::TTL_MAX_MS as u64)) as i64
            }
        }
    }

    /// The session a normal ephemeral belongs to.
    pub fn owner_session(self) -> Option<SessionId> {
        match self {
            NodeKind::Ephemeral(s) => Some(s),
            _ => None,
        }
    }
}

/// One znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZNode {
    /// Data; `None` (jute null) stays distinct from empty.
    pub data: Option<Vec<u8>>,
    /// ACL as stored (after fix-up).
    pub acl: Vec<Acl>,
    /// Persisted stat.
    pub stat: StatPersisted,
    /// Kind (persistent, ephemeral, container, TTL).
    pub kind: NodeKind,
    /// Names (last segments) of the children.
    pub children: BTreeSet<String>,
}

impl ZNode {
    /// The client-visible stat (`DataNode.copyStat`): cversion = 2*stored − numChildren,
    /// ephemeralOwner 0 for containers and TTL nodes, dataLength 0 for null.
    pub fn client_stat(&self) -> Stat {
        let num_children = self.children.len() as i32;
        let ephemeral_owner = match self.kind {
            NodeKind::Ephemeral(s) => s.0,
            _ => 0,
        };
        Stat {
            czxid: self.stat.czxid,
            mzxid: self.stat.mzxid,
            ctime: self.stat.ctime,
            mtime: self.stat.mtime,
            version: self.stat.version,
            cversion: self.stat.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.stat.aversion,
            ephemeral_owner,
            data_length: self.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children,
            pzxid: self.stat.pzxid,
        }
    }

    fn data_len(&self) -> i64 {
        self.data.as_ref().map_or(0, |d| d.len() as i64)
    }
}

/// One watch trigger produced by apply, in ZooKeeper's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTrigger {
    /// The path the watches are on.
    pub path: String,
    /// The event.
    pub event: EventType,
}

/// What applying one txn did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A node was created.
    Created {
        /// Its full path.
        path: String,
        /// Its client-visible stat right after the create.
        stat: Stat,
    },
    /// A node was deleted (delete or deleteContainer).
    Deleted,
    /// setData; the new stat.
    DataSet {
        /// Stat after the change.
        stat: Stat,
    },
    /// setACL; the new stat.
    AclSet {
        /// Stat after the change.
        stat: Stat,
    },
    /// check: nothing changed.
    Checked,
    /// Either an `Error` txn (with its code; `Ok` for the ops before a multi's failing op) or a
    /// txn the tree could not apply (the caller treats that as a broken invariant).
    Failed(ZkError),
    /// Sub-outcomes of a multi, in order.
    Multi(Vec<ApplyOutcome>),
    /// createSession (the tree does not track sessions).
    SessionCreated,
    /// closeSession; its deletes are in the triggers.
    SessionClosed,
}

/// The result of [`DataTree::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// What happened.
    pub outcome: ApplyOutcome,
    /// Watch triggers, in the order ZooKeeper fires them.
    pub triggers: Vec<WatchTrigger>,
}

/// The data tree. Clone is a deep copy; equality compares everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTree {
    nodes: BTreeMap<String, ZNode>,
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    /// Container and TTL paths (ContainerManager candidates come from here).
    containers_and_ttls: BTreeSet<String>,
    /// `/p` for every existing `/zookeeper/quota/p/zookeeper_limits`.
    quota_roots: BTreeSet<String>,
    last_processed_zxid: Zxid,
    data_size: i64,
    digest: u64,
}

/// ZooKeeper's `ZooDefs.CONFIG_NODE`.
pub const CONFIG_NODE: &str = "/zookeeper/config";

impl Default for DataTree {
    fn default() -> DataTree {
        DataTree::new()
    }
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` (open ACL) and `/zookeeper/config`
    /// (READ_ACL_UNSAFE), all with all-zero stats and empty (not null) data, as ZooKeeper makes
    /// them (`new DataNode(new byte[0], -1L, new StatPersisted())`).
    pub fn new() -> DataTree {
        let mut tree = DataTree {
            nodes: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers_and_ttls: BTreeSet::new(),
            quota_roots: BTreeSet::new(),
            last_processed_zxid: Zxid::ZERO,
            data_size: 0,
            digest: 0,
        };
        let system = [
            ("/", Acl::open_unsafe()),
            ("/zookeeper", Acl::open_unsafe()),
            ("/zookeeper/quota", Acl::open_unsafe()),
            ("/zookeeper/config", Acl::read_unsafe()),
        ];
        for (p, acl) in system {
            // ZooKeeper gives /zookeeper/config its ACL with `setACL(..., -1)` at start-up, which
            // leaves its aversion at -1 (seen on Apache 3.8 by tests/tests/differential.rs).
            let aversion = if p == "/zookeeper/config" { -1 } else { 0 };
            let node = ZNode {
                data: Some(Vec::new()),
                acl,
                stat: StatPersisted { aversion, ..StatPersisted::default() },
                kind: NodeKind::Persistent,
                children: BTreeSet::new(),
            };
            tree.insert_node(p.to_string(), node);
        }
        tree.invariants();
        tree
    }

    /// Sets the data of `/zookeeper/config`, the ensemble's membership (ZooKeeper's
    /// `ZKDatabase.initConfigInZKDatabase`: `setData(config, text, -1, version, now)`). This is
    /// local state, not a txn: every member sets it from its own configuration at start (and
    /// after installing a leader's snapshot). As in ZooKeeper, `dataVersion` becomes -1 and
    /// `mzxid` the config version (0 for a static configuration); `mtime` stays 0 (ZooKeeper
    /// writes its start time) so that members with the same configuration keep equal digests.
    pub fn set_config_data(&mut self, data: &[u8]) {
        self.update_node(CONFIG_NODE, |node| {
            node.data = Some(data.to_vec());
            node.stat.version = -1;
            node.stat.mzxid = 0;
            node.stat.mtime = 0;
        });
        let node = self.nodes.get(CONFIG_NODE).expect("the config node always exists");
        assert_eq!(node.data.as_deref(), Some(data));
        assert_eq!(node.stat.version, -1);
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&ZNode> {
        self.nodes.get(path)
    }

    /// The client-visible stat of `path`.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(ZNode::client_stat)
    }

    /// The children names of `path`, sorted.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.nodes.get(path).map(|n| n.children.iter().cloned().collect())
    }

    /// The ACL of `path`.
    pub fn acl(&self, path: &str) -> Option<&[Acl]> {
        self.nodes.get(path).map(|n| n.acl.as_slice())
    }

    /// getAllChildrenNumber: all descendants (for `/` this includes the `/zookeeper` nodes).
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        self.nodes.get(path)?;
        if path == "/" {
            return Some(self.nodes.len() as i32 - 1);
        }
        Some(self.descendants(path).count() as i32)
    }

    /// Keys strictly below `path` (which must not be `/`).
    fn descendants<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a String, &'a ZNode)> {
        let prefix = format!("{path}/");
        // '0' is the character after '/', so the range covers exactly the keys with the prefix.
        let end = format!("{path}0");
        self.nodes.range(prefix..end)
    }

    /// The ephemerals of `session`, sorted.
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        self.ephemerals.get(&session).map_or_else(Vec::new, |s| s.iter().cloned().collect())
    }

    /// Every session's ephemerals (for the `dump` four-letter word).
    pub fn all_ephemerals(&self) -> BTreeMap<SessionId, Vec<String>> {
        self.ephemerals.iter().map(|(s, p)| (*s, p.iter().cloned().collect())).collect()
    }

    /// Number of nodes (the root counted once; ZooKeeper's `zk_znode_count` counts it twice).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum over nodes of path length + data length (`DataTree.approximateDataSize`; lengths in
    /// UTF-8 bytes where Java counts UTF-16 units).
    pub fn approximate_data_size(&self) -> i64 {
        self.data_size
    }

    /// The zxid of the last applied txn.
    pub fn last_processed_zxid(&self) -> Zxid {
        self.last_processed_zxid
    }

    /// The tree digest (see `digest.rs`); O(1).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The quota roots (`/p` with an existing limits node), sorted.
    pub fn quota_roots(&self) -> Vec<String> {
        self.quota_roots.iter().cloned().collect()
    }

    /// Every node, in path order.
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &ZNode)> {
        self.nodes.iter()
    }

    /// ContainerManager candidates (reference §10.8) with `maxNeverUsedIntervalMs = 0` (never
    /// delete a container that never had a child), ZooKeeper 3.9's default.
    pub fn expired_containers_and_ttls(
        &self,
        now_wall_ms: i64,
        extended_types: bool,
    ) -> Vec<String> {
        self.expired_containers_and_ttls_with(now_wall_ms, extended_types, 0)
    }

    /// ContainerManager candidates: empty containers with stored cversion > 0 (or never used and
    /// older than `max_never_used_ms` when that is not 0), and, with extended types on, empty
    /// TTL nodes with `now - mtime > ttl`. Sorted.
    pub fn expired_containers_and_ttls_with(
        &self,
        now_wall_ms: i64,
        extended_types: bool,
        max_never_used_ms: i64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers_and_ttls {
            let node = &self.nodes[p];
            if !node.children.is_empty() {
                continue;
            }
            let elapsed = now_wall_ms.saturating_sub(node.stat.mtime);
            let expired = match node.kind {
                NodeKind::Container if node.stat.cversion > 0 => true,
                NodeKind::Container => max_never_used_ms != 0 && elapsed > max_never_used_ms,
                NodeKind::Ttl(ttl) => extended_types && ttl != 0 && elapsed > ttl,
                _ => unreachable!("only containers and TTL nodes are indexed: {p}"),
            };
            if expired {
                out.push(p.clone());
            }
        }
        out
    }

    // ---- internal mutators: the only places that touch `nodes` ----

    /// Adds a node under an existing parent and keeps every index up to date.
    fn insert_node(&mut self, path: String, node: ZNode) {
        assert!(!self.nodes.contains_key(&path), "insert over an existing node {path}");
        assert!(node.children.is_empty(), "a new node has no children: {path}");
        assert_eq!(node.stat.ephemeral_owner, node.kind.ephemeral_owner(), "owner of {path}");
        if path != "/" {
            let parent = self.nodes.get_mut(path::parent(&path)).expect("parent of a new node");
            assert!(parent.kind.owner_session().is_none(), "child of an ephemeral: {path}");
            parent.children.insert(path::last_segment(&path).to_string());
        }
        self.index_add(&path, &node);
        self.nodes.insert(path, node);
    }

    /// Removes a childless node and keeps every index up to date.
    fn remove_node(&mut self, path: &str) -> ZNode {
        assert!(path != "/", "the root is never removed");
        let node = self.nodes.remove(path).expect("remove of a missing node");
        assert!(node.children.is_empty(), "remove of a node with children: {path}");
        let parent = self.nodes.get_mut(path::parent(path)).expect("parent of a live node");
        let removed = parent.children.remove(path::last_segment(path));
        assert!(removed, "parent did not list {path}");
        self.index_remove(path, &node);
        node
    }

    /// Changes a node in place (data, ACL, stat; never its kind or children) and returns what
    /// `f` returns. The digest and data size follow.
    fn update_node<R>(&mut self, path: &str, f: impl FnOnce(&mut ZNode) -> R) -> R {
        let node = self.nodes.get_mut(path).expect("update of a missing node");
        let before = (node.kind, node.children.len());
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        self.data_size -= node.data_len();
        let r = f(node);
        assert_eq!(before, (node.kind, node.children.len()), "update changed kind or children");
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        self.data_size += node.data_len();
        r
    }

    fn index_add(&mut self, path: &str, node: &ZNode) {
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        self.data_size += path.len() as i64 + node.data_len();
        match node.kind {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(path.to_string());
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.containers_and_ttls.insert(path.to_string());
            }
            NodeKind::Persistent => {}
        }
    }

    fn index_remove(&mut self, path: &str, node: &ZNode) {
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        self.data_size -= path.len() as i64 + node.data_len();
        match node.kind {
            NodeKind::Ephemeral(s) => {
                let set = self.ephemerals.get_mut(&s).expect("ephemeral index entry");
                assert!(set.remove(path), "ephemeral {path} missing from the index");
                if set.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                assert!(self.containers_and_ttls.remove(path), "{path} missing from the index");
            }
            NodeKind::Persistent => {}
        }
    }

    /// Sets `lastProcessedZxid` forward (never back, as `DataTree.processTxn`).
    fn advance_zxid(&mut self, zxid: Zxid) {
        if zxid > self.last_processed_zxid {
            self.last_processed_zxid = zxid;
        }
    }

    /// Rebuilds a tree from decoded nodes (snapshot load). Checks structure; `Err` with a reason.
    pub(crate) fn from_nodes(
        nodes: BTreeMap<String, ZNode>,
        zxid: Zxid,
    ) -> Result<DataTree, &'static str> {
        let mut tree = DataTree {
            nodes: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers_and_ttls: BTreeSet::new(),
            quota_roots: BTreeSet::new(),
            last_processed_zxid: zxid,
            data_size: 0,
            digest: 0,
        };
        // BTree order puts a parent before its children only for some names ("/a-b" sorts
        // between "/a" and "/a/b"), so insert by depth.
        let mut by_depth: Vec<(String, ZNode)> = nodes.into_iter().collect();
        by_depth
            .sort_by_key(|(p, _)| (if p == "/" { 0 } else { p.matches('/').count() }, p.clone()));
        for (p, mut node) in by_depth {
            path::validate_path(&p).map_err(|_| "invalid path")?;
            if node.stat.ephemeral_owner != node.kind.ephemeral_owner() {
                return Err("ephemeral owner does not match the node kind");
            }
            if p != "/" {
                let parent = tree.nodes.get(path::parent(&p)).ok_or("parent missing")?;
                if parent.kind.owner_session().is_some() {
                    return Err("child of an ephemeral");
                }
            } else if !tree.nodes.is_empty() {
                return Err("root not first");
            }
            node.children.clear();
            tree.insert_node(p, node);
        }
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            tree.nodes.get(p).ok_or("system node missing")?;
        }
        let roots: Vec<String> = tree
            .nodes
            .keys()
            .filter_map(|p| match quota::quota_node_root(p) {
                Some((root, true)) => Some(root),
                _ => None,
            })
            .collect();
        tree.quota_roots.extend(roots);
        tree.invariants();
        Ok(tree)
    }

    /// Checks every invariant of the module doc in O(n). Panics on a violation.
    pub fn invariants(&self) {
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert!(self.nodes.contains_key(p), "system node {p} missing");
        }
        let (mut digest, mut size) = (0u64, 0i64);
        let mut ephemerals: BTreeMap<SessionId, BTreeSet<String>> = BTreeMap::new();
        let mut special = BTreeSet::new();
        for (p, node) in &self.nodes {
            assert!(path::validate_path(p).is_ok(), "invalid key {p:?}");
            assert_eq!(node.stat.ephemeral_owner, node.kind.ephemeral_owner(), "owner of {p}");
            if p != "/" {
                let parent = &self.nodes[path::parent(p)];
                assert!(parent.children.contains(path::last_segment(p)), "{p} not listed");
            }
            for c in &node.children {
                assert!(self.nodes.contains_key(&path::join(p, c)), "{p} lists a missing {c}");
            }
            match node.kind {
                NodeKind::Ephemeral(s) => {
                    assert!(node.children.is_empty(), "ephemeral {p} has children");
                    ephemerals.entry(s).or_default().insert(p.clone());
                }
                NodeKind::Container | NodeKind::Ttl(_) => {
                    special.insert(p.clone());
                }
                NodeKind::Persistent => {}
            }
            digest = digest.wrapping_add(node_hash(p, node));
            size += p.len() as i64 + node.data_len();
        }
        assert_eq!(digest, self.digest, "incremental digest drifted");
        assert_eq!(size, self.data_size, "data size drifted");
        assert_eq!(ephemerals, self.ephemerals, "ephemeral index drifted");
        assert_eq!(special, self.containers_and_ttls, "container/TTL index drifted");
        for root in &self.quota_roots {
            assert!(self.nodes.contains_key(&quota::limit_path(root)), "stale quota root {root}");
        }
    }
}

fn node_hash(path: &str, node: &ZNode) -> u64 {
    digest::node_hash(path, node.data.as_deref(), &node.acl, &node.stat)
}
