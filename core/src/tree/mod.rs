//! The data tree: znodes with data, ACL, persisted stat and children; the ephemeral index; the
//! quota bookkeeping; the incremental tree digest; `lastProcessedZxid`. Writes happen only via
//! [`DataTree::apply`] (in `apply.rs`) with fully decided txns, so every replica that applies the
//! same txns in the same order holds an equal tree (and an equal [`DataTree::digest`]).
//!
//! Invariants (checked by [`DataTree::invariants`]):
//! - `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` always exist;
//! - every key passes `path::validate_path`; every node but `/` has its parent in the map, and
//!   the parent's `num_children` counts exactly its child keys;
//! - only `Ephemeral` nodes are in the ephemeral index, each under its owner; normal ephemerals
//!   have no children;
//! - `ZNode::stat.ephemeral_owner == ZNode::kind().ephemeral_owner()`;
//! - every node's ACL is the cache's allocation of that list, and the cache holds exactly the
//!   lists in use, each with its number of holders;
//! - `digest` is the wrapping sum of `digest::node_hash` over all nodes, `data_size` the sum of
//!   path and data lengths, `quota_roots` the roots whose limits node exists;
//! - iteration order is BTree order everywhere: nothing depends on hashing.
//!
//! Layout (issue 16): the maps are persistent B-trees (`imbl`), nodes and paths sit behind `Arc`,
//! so `clone()` is O(1) and a snapshot shares structure with the live tree instead of copying
//! it on the driver; a write after a snapshot copies only the B-tree chunks on its path. A node
//! keeps only a count of its children: their names are the keys right under its path in the
//! ordered map (see [`DataTree::children`]), so no name is stored twice. Equal ACL lists are
//! stored once, in a cache counting the nodes that hold each (ZooKeeper's
//! `ReferenceCountedACLCache`, with the list's `Arc` as its id); the txn log and snapshots still
//! write every list in full. A node's kind is a 1-byte tag beside `stat.ephemeral_owner`.

pub mod acl;
mod apply;
pub mod digest;
pub mod path;
pub mod quota;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

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

/// How a node's [`NodeKind`] is stored: the tag alone, since the session or TTL it carries is
/// `stat.ephemeral_owner` already (issue 16: 1 byte instead of 16 per znode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KindTag {
    Persistent,
    Ephemeral,
    Container,
    Ttl,
}

/// One znode. 104 bytes (its `Arc` makes an allocation of 128 with glibc's malloc); the data,
/// the ACL list (shared by every node with an equal list) and the path key are apart.
#[derive(Clone, PartialEq, Eq)]
pub struct ZNode {
    /// Data; `None` (jute null) stays distinct from empty. A boxed slice: no capacity kept.
    pub data: Option<Box<[u8]>>,
    /// ACL as stored (after fix-up): the tree's one copy of this list (see `DataTree::acls`).
    pub acl: Arc<[Acl]>,
    /// Persisted stat.
    pub stat: StatPersisted,
    /// Number of children (their names are the tree's keys right under this path).
    pub num_children: u32,
    /// Kind (persistent, ephemeral, container, TTL); its payload is `stat.ephemeral_owner`.
    kind: KindTag,
}

/// Prints what the node was before its kind became a tag (the simulator's traces print
/// trees in SNAP messages, and stay byte-identical).
impl std::fmt::Debug for ZNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZNode")
            .field("data", &self.data)
            .field("acl", &self.acl)
            .field("stat", &self.stat)
            .field("kind", &self.kind())
            .field("num_children", &self.num_children)
            .finish()
    }
}

impl ZNode {
    /// A node of `kind` without children; `stat.ephemeral_owner` must be
    /// `kind.ephemeral_owner()` (the owner is where the kind's session or TTL is kept).
    pub fn new(
        data: Option<Box<[u8]>>,
        acl: Arc<[Acl]>,
        stat: StatPersisted,
        kind: NodeKind,
    ) -> ZNode {
        assert_eq!(stat.ephemeral_owner, kind.ephemeral_owner(), "the owner encodes the kind");
        let tag = match kind {
            NodeKind::Persistent => KindTag::Persistent,
            NodeKind::Ephemeral(_) => KindTag::Ephemeral,
            NodeKind::Container => KindTag::Container,
            NodeKind::Ttl(_) => KindTag::Ttl,
        };
        let node = ZNode { data, acl, stat, num_children: 0, kind: tag };
        assert_eq!(node.kind(), kind, "the kind reads back");
        node
    }

    /// Kind (persistent, ephemeral, container, TTL).
    pub fn kind(&self) -> NodeKind {
        let owner = self.stat.ephemeral_owner;
        match self.kind {
            KindTag::Persistent => NodeKind::Persistent,
            KindTag::Ephemeral => NodeKind::Ephemeral(SessionId(owner)),
            KindTag::Container => NodeKind::Container,
            KindTag::Ttl => NodeKind::Ttl(owner & NodeKind::TTL_MAX_MS),
        }
    }

    /// The client-visible stat (`DataNode.copyStat`): cversion = 2*stored − numChildren,
    /// ephemeralOwner 0 for containers and TTL nodes, dataLength 0 for null.
    pub fn client_stat(&self) -> Stat {
        let num_children = self.num_children as i32;
        let ephemeral_owner = match self.kind {
            KindTag::Ephemeral => self.stat.ephemeral_owner,
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

    pub(crate) fn data_len(&self) -> i64 {
        self.data.as_ref().map_or(0, |d| d.len() as i64)
    }
}

/// What `DataTree::remove_node` took out: the node with its key, and what its parent's
/// NodeChildrenChanged trigger needs (the parent's key and ACL).
struct Removed {
    key: PathKey,
    node: Arc<ZNode>,
    parent_key: PathKey,
    parent_acl: Arc<[Acl]>,
}

/// One watch trigger produced by apply, in ZooKeeper's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTrigger {
    /// The path the watches are on (the tree's allocation of it: no copy per trigger).
    pub path: Arc<str>,
    /// The event.
    pub event: EventType,
    /// The ACL whose READ permission a watcher needs to be told (CVE-2024-23944, ZooKeeper
    /// 3.9.2's `ServerCnxn.process(event, znodeAcl)`): the node's own for NodeCreated,
    /// NodeDataChanged and NodeDeleted, the parent's for NodeChildrenChanged, as it was when
    /// the txn changed the node (`DataTree.createNode/deleteNode/setData` pass the same). Taken
    /// at apply, not looked up at delivery: a deleted node has no ACL left to look up, and a
    /// later op of the same multi may have changed or removed the node.
    pub acl: Arc<[Acl]>,
}

/// What applying one txn did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A node was created.
    Created {
        /// Its full path: the tree's own allocation of it (no copy per create).
        path: Arc<str>,
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

/// A path as the tree stores it, shared by the node map and the indexes.
type PathKey = Arc<str>;

/// The data tree. Clone is O(1) (structure is shared, copied on write); equality compares
/// everything.
#[derive(Clone, PartialEq, Eq)]
pub struct DataTree {
    nodes: OrdMap<PathKey, Arc<ZNode>>,
    /// ZooKeeper's `ReferenceCountedACLCache`: every distinct ACL list held once, with the
    /// number of nodes that hold it; a node's `acl` is the key's allocation. A function of the
    /// nodes alone, so equal trees have equal caches.
    acls: OrdMap<Arc<[Acl]>, u32>,
    ephemerals: OrdMap<SessionId, OrdSet<PathKey>>,
    /// Container and TTL paths (ContainerManager candidates come from here).
    containers_and_ttls: OrdSet<PathKey>,
    /// `/p` for every existing `/zookeeper/quota/p/zookeeper_limits`.
    quota_roots: BTreeSet<String>,
    last_processed_zxid: Zxid,
    data_size: i64,
    digest: u64,
    /// The digest's hash state of the last parents that gained or lost a child (see
    /// [`HeadCache`]); not part of the tree's value.
    heads: HeadCache,
}

/// Parents whose digest term a create or delete under them changes, with each one's hash state
/// after the fields such a change leaves alone (`digest::node_hash_stat_head`: the path, data,
/// ACL, czxid, mzxid, ctime, mtime and owner). A create or delete then hashes only the parent's
/// pzxid, version, cversion and aversion, twice, where it hashed the path, data and ACL too:
/// about 500 of the 2,200 instructions of a create's apply. Creates and deletes come in runs
/// under a few parents (a queue, a lock directory, a session's ephemerals), so a few entries,
/// replaced in turn, hold them (in the simulator's workload 4 entries served 60% of the parents
/// asked for, 8 entries 78%).
///
/// An entry names its node by the tree's `Arc` of the node's path, held here, and is used only
/// for the node whose key is that very allocation: a node deleted and created again gets a new
/// key, so an entry of the old one never serves the new one. The node's data, ACL and those stat
/// fields change only in `update_node` and `set_node_acl`, which drop its entry first, and
/// `remove_node` drops the removed node's. [`DataTree::invariants`] rehashes every entry whose
/// node is live. Like the ACL cache it is a function of what was applied, not of the tree's
/// value: trees compare equal whatever their entries, and `Debug` leaves them out.
#[derive(Clone, Default)]
struct HeadCache {
    entries: [Option<(PathKey, digest::Fnv64)>; HEAD_CACHE_ENTRIES],
    /// The entry the next miss replaces.
    next: usize,
}

/// Parents held by [`HeadCache`].
const HEAD_CACHE_ENTRIES: usize = 8;

impl PartialEq for HeadCache {
    /// Always equal: the entries are a cache, not part of the tree (see the type's doc).
    fn eq(&self, _: &HeadCache) -> bool {
        true
    }
}

impl Eq for HeadCache {}

impl HeadCache {
    /// The hash state of `node` (at the map's key `key`) after its head fields, from the
    /// cache or hashed now and kept, replacing the oldest entry.
    fn head(&mut self, key: &PathKey, node: &ZNode) -> digest::Fnv64 {
        let held = self.entries.iter().flatten().find(|(k, _)| Arc::ptr_eq(k, key));
        if let Some((_, head)) = held {
            // Debug builds (core's own tests) check every use; `invariants` checks the entries.
            debug_assert_eq!(head.finish(), node_hash_head(key, node).finish(), "head of {key}");
            return *head;
        }
        let head = node_hash_head(key, node);
        let slot = self.next;
        self.entries[slot] = Some((key.clone(), head));
        self.next = (slot + 1) % HEAD_CACHE_ENTRIES;
        assert!(self.next < HEAD_CACHE_ENTRIES, "the next slot is an entry");
        assert!(self.entries[slot].as_ref().is_some_and(|(k, _)| Arc::ptr_eq(k, key)), "kept");
        head
    }

    /// Drops the entry of the node whose key is `key`, if any: its head fields change.
    fn forget(&mut self, key: &PathKey) {
        for entry in &mut self.entries {
            if entry.as_ref().is_some_and(|(k, _)| Arc::ptr_eq(k, key)) {
                *entry = None;
            }
        }
        assert!(self.entries.iter().flatten().all(|(k, _)| !Arc::ptr_eq(k, key)), "forgotten");
    }
}

/// Prints every field but the ACL cache (a function of the nodes), as before the cache.
impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.nodes)
            .field("ephemerals", &self.ephemerals)
            .field("containers_and_ttls", &self.containers_and_ttls)
            .field("quota_roots", &self.quota_roots)
            .field("last_processed_zxid", &self.last_processed_zxid)
            .field("data_size", &self.data_size)
            .field("digest", &self.digest)
            .finish()
    }
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
        let mut tree = DataTree::empty(Zxid::ZERO);
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
            let stat = StatPersisted { aversion, ..StatPersisted::default() };
            let node = ZNode::new(Some(Box::default()), acl.into(), stat, NodeKind::Persistent);
            tree.insert_node(p, node);
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
            node.data = Some(data.into());
            node.stat.version = -1;
            node.stat.mzxid = 0;
            node.stat.mtime = 0;
        });
        let node = self.nodes.get(CONFIG_NODE).expect("the config node always exists");
        assert_eq!(node.data.as_deref(), Some(data));
        assert_eq!(node.stat.version, -1);
    }

    fn empty(zxid: Zxid) -> DataTree {
        DataTree {
            nodes: OrdMap::new(),
            acls: OrdMap::new(),
            ephemerals: OrdMap::new(),
            containers_and_ttls: OrdSet::new(),
            quota_roots: BTreeSet::new(),
            last_processed_zxid: zxid,
            data_size: 0,
            digest: 0,
            heads: HeadCache::default(),
        }
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&ZNode> {
        self.nodes.get(path).map(|n| &**n)
    }

    /// The tree's allocation of `path`, to share (a watch on the node holds no copy of it).
    pub fn path_key(&self, path: &str) -> Option<Arc<str>> {
        self.nodes.get_key_value(path).map(|(key, _)| key.clone())
    }

    /// The client-visible stat of `path`.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.get(path).map(ZNode::client_stat)
    }

    /// The children names of `path`, sorted. They are the keys `path/name` of the ordered map:
    /// a walk over the keys after `path/` that jumps over each child's subtree (the keys
    /// `path/name/...` sort before `path/name0`), so it costs O(children × log n), not O(subtree).
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let node = self.get(path)?;
        let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
        // '0' is the character after '/': every key below `path` sorts before `end`.
        let end = format!("{}0", &prefix[..prefix.len() - 1]);
        let mut names = Vec::with_capacity(node.num_children as usize);
        let mut from = Bound::Excluded(prefix.clone());
        'restart: loop {
            let range = (from.as_ref().map(String::as_str), Bound::Excluded(end.as_str()));
            for (key, _) in self.nodes.range::<_, str>(range) {
                let rest = &key[prefix.len()..];
                match rest.find('/') {
                    None => names.push(rest.to_string()),
                    Some(i) => {
                        // A grandchild: skip the rest of that child's subtree.
                        from = Bound::Included(format!("{prefix}{}0", &rest[..i]));
                        continue 'restart;
                    }
                }
            }
            break;
        }
        assert_eq!(names.len(), node.num_children as usize, "children of {path} counted");
        assert!(names.is_sorted(), "children of {path} in order");
        Some(names)
    }

    /// The ACL of `path`.
    pub fn acl(&self, path: &str) -> Option<&[Acl]> {
        self.get(path).map(|n| &*n.acl)
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
    fn descendants<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a str, &'a ZNode)> {
        let prefix = format!("{path}/");
        // '0' is the character after '/', so the range covers exactly the keys with the prefix.
        let end = format!("{path}0");
        let range = (Bound::Included(prefix.as_str()), Bound::Excluded(end.as_str()));
        self.nodes.range::<_, str>(range).map(|(k, n)| (&**k, &**n))
    }

    /// The ephemerals of `session`, sorted.
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        let paths = |set: &OrdSet<PathKey>| set.iter().map(|p| p.to_string()).collect();
        self.ephemerals.get(&session).map_or_else(Vec::new, paths)
    }

    /// The paths of `session`'s ephemerals, in order, without copying them.
    pub fn ephemeral_paths(&self, session: SessionId) -> impl Iterator<Item = &str> {
        self.ephemerals.get(&session).into_iter().flat_map(|set| set.iter().map(|p| &**p))
    }

    /// Whether `path` is one of `session`'s ephemerals (by the per-session index).
    pub fn is_ephemeral_of(&self, path: &str, session: SessionId) -> bool {
        self.ephemerals.get(&session).is_some_and(|set| set.contains(path))
    }

    /// Every session's ephemerals (for the `dump` four-letter word).
    pub fn all_ephemerals(&self) -> BTreeMap<SessionId, Vec<String>> {
        let paths = |set: &OrdSet<PathKey>| set.iter().map(|p| p.to_string()).collect();
        self.ephemerals.iter().map(|(s, set)| (*s, paths(set))).collect()
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
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &ZNode)> {
        self.nodes.iter().map(|(k, n)| (&**k, &**n))
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
            let node = &self.nodes[&**p];
            if node.num_children != 0 {
                continue;
            }
            let elapsed = now_wall_ms.saturating_sub(node.stat.mtime);
            let expired = match node.kind() {
                NodeKind::Container if node.stat.cversion > 0 => true,
                NodeKind::Container => max_never_used_ms != 0 && elapsed > max_never_used_ms,
                NodeKind::Ttl(ttl) => extended_types && ttl != 0 && elapsed > ttl,
                _ => unreachable!("only containers and TTL nodes are indexed: {p}"),
            };
            if expired {
                out.push(p.to_string());
            }
        }
        out
    }

    // ---- internal mutators: the only places that touch `nodes` ----

    /// Adds a node under an existing parent and keeps every index up to date; returns the
    /// node's key.
    fn insert_node(&mut self, path: &str, mut node: ZNode) -> PathKey {
        node.acl = self.acl_hold(node.acl, 1);
        if path != "/" {
            let parent = self.nodes.get_mut(path::parent(path)).expect("parent of a new node");
            assert!(parent.kind().owner_session().is_none(), "child of an ephemeral: {path}");
            Arc::make_mut(parent).num_children += 1;
        }
        self.insert_linked(path, node)
    }

    /// Inserts a new node whose parent already counts it and whose ACL the cache already
    /// counts (`insert_node` does both; a create's apply does them with its one look-up of the
    /// parent).
    fn insert_linked(&mut self, path: &str, node: ZNode) -> PathKey {
        assert_eq!(node.num_children, 0, "a new node has no children: {path}");
        assert_eq!(node.stat.ephemeral_owner, node.kind().ephemeral_owner(), "owner of {path}");
        let key: PathKey = path.into();
        self.index_add(&key, &node);
        let previous = self.nodes.insert(key.clone(), Arc::new(node));
        assert!(previous.is_none(), "insert over an existing node {path}");
        key
    }

    /// The tree's copy of an ACL list equal to `acl`, if a node holds one: a create or setACL
    /// with a list already in use allocates nothing for it.
    pub fn interned_acl(&self, acl: &[Acl]) -> Option<Arc<[Acl]>> {
        self.acls.get_key_value(acl).map(|(held, _)| held.clone())
    }

    /// Counts `nodes` more holders of `acl` and returns the cache's copy of it (`acl` itself
    /// when the list is new). Sharing never changes what is stored, only where.
    fn acl_hold(&mut self, acl: Arc<[Acl]>, nodes: u32) -> Arc<[Acl]> {
        assert!(nodes > 0, "a hold counts at least one node");
        if let Some((held, count)) = self.acls.get_key_value_mut(&*acl) {
            *count = count.checked_add(nodes).expect("u32 holders");
            return held.clone();
        }
        self.acls.insert(acl.clone(), nodes);
        assert!(self.acls.contains_key(&*acl), "a new list is cached");
        acl
    }

    /// `acl_hold` of one node for a list given by reference: one look-up in the cache, and an
    /// allocation only for a list no node holds yet.
    fn acl_hold_slice(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        if let Some((held, count)) = self.acls.get_key_value_mut(acl) {
            assert!(*count > 0, "cached lists have holders");
            *count = count.checked_add(1).expect("u32 holders");
            return held.clone();
        }
        self.acl_hold(acl.into(), 1)
    }

    /// One node less holds `acl`; the list leaves the cache with its last holder.
    fn acl_release(&mut self, acl: &[Acl]) {
        let count = self.acls.get_mut(acl).expect("a node's ACL is in the cache");
        assert!(*count > 0, "cached lists have holders");
        *count -= 1;
        if *count == 0 {
            self.acls.remove(acl);
        }
    }

    /// Removes a childless node and keeps every index up to date; the parent's pzxid becomes
    /// `zxid` if greater (its stored cversion is untouched). Returns the node's key, the node
    /// and the parent's key and ACL: one look-up of the parent serves its child count, its
    /// stat, its digest term and its watch trigger's key and ACL. NONODE for a missing node;
    /// NOTEMPTY, with nothing changed, for a node with children.
    ///
    /// The node is taken out first and put back (its own key and node) when it has children:
    /// one descent of the map for a delete that succeeds, where a look-up before the removal
    /// made two (about 400 instructions; a NOTEMPTY now costs a descent more than it did).
    fn remove_node(&mut self, path: &str, zxid: i64) -> Result<Removed, ZkError> {
        assert!(path != "/", "the root is never removed");
        let count = self.nodes.len();
        let (key, node) = self.nodes.remove_with_key(path).ok_or(ZkError::NoNode)?;
        if node.num_children != 0 {
            let replaced = self.nodes.insert(key, node);
            assert!(replaced.is_none(), "the node put back is the one taken out: {path}");
            assert_eq!(self.nodes.len(), count, "a refused delete leaves the map as it was");
            return Err(ZkError::NotEmpty);
        }
        assert_eq!(self.nodes.len(), count - 1, "the deleted node left the map");
        self.heads.forget(&key);
        let parent_path = path::parent(path);
        let (parent_key, parent) =
            self.nodes.get_key_value_mut(parent_path).expect("parent of a live node");
        // The child count is not hashed (the children are the other nodes' paths): only a
        // change of pzxid moves the parent's digest term. pzxid comes after the fields a
        // delete leaves alone: their hash state serves both terms (see `HeadCache`).
        let head = (zxid > parent.stat.pzxid).then(|| self.heads.head(parent_key, parent));
        let parent_key = parent_key.clone();
        let parent_acl = parent.acl.clone();
        let parent = Arc::make_mut(parent);
        assert!(parent.num_children > 0, "parent did not count {path}");
        parent.num_children -= 1;
        if let Some(head) = head {
            let hash_before = digest::node_hash_with_stat_tail(head, &parent.stat);
            parent.stat.pzxid = zxid;
            let hash_after = digest::node_hash_with_stat_tail(head, &parent.stat);
            self.digest = self.digest.wrapping_sub(hash_before).wrapping_add(hash_after);
        }
        assert!(parent.stat.pzxid >= zxid, "a delete leaves the parent's pzxid at least zxid");
        self.index_remove(path, &node);
        self.acl_release(&node.acl);
        Ok(Removed { key, node, parent_key, parent_acl })
    }

    /// Changes a node in place (data, stat; never its kind, ACL or children) and returns what
    /// `f` returns. The digest and data size follow. A node shared with a snapshot is copied
    /// first (`Arc::make_mut`), so the snapshot keeps the old version.
    fn update_node<R>(&mut self, path: &str, f: impl FnOnce(&mut ZNode) -> R) -> R {
        let (key, node) = self.nodes.get_key_value_mut(path).expect("update of a missing node");
        self.heads.forget(key);
        let node = Arc::make_mut(node);
        let before = (node.kind(), node.num_children, Arc::as_ptr(&node.acl));
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        self.data_size -= node.data_len();
        let r = f(node);
        let after = (node.kind(), node.num_children, Arc::as_ptr(&node.acl));
        assert_eq!(before.0, after.0, "update changed the kind");
        assert_eq!(before.1, after.1, "update changed the children");
        assert!(std::ptr::eq(before.2, after.2), "update changed the ACL (see set_node_acl)");
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        self.data_size += node.data_len();
        r
    }

    /// setACL's change: the node takes the cache's copy of `acl` and `aversion`; the digest and
    /// the cache follow. Returns the new client-visible stat.
    fn set_node_acl(&mut self, path: &str, acl: &[Acl], aversion: i32) -> Stat {
        let new = self.interned_acl(acl).unwrap_or_else(|| acl.into());
        let new = self.acl_hold(new, 1);
        let (key, node) = self.nodes.get_key_value_mut(path).expect("setACL of a missing node");
        self.heads.forget(key);
        let node = Arc::make_mut(node);
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        let old = std::mem::replace(&mut node.acl, new);
        node.stat.aversion = aversion;
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        let stat = node.client_stat();
        self.acl_release(&old);
        assert_eq!(stat.aversion, aversion, "setACL sets the aversion");
        assert_eq!(self.acl(path), Some(acl), "setACL stores the ACL");
        stat
    }

    fn index_add(&mut self, path: &PathKey, node: &ZNode) {
        self.digest = self.digest.wrapping_add(node_hash(path, node));
        self.index_add_unhashed(path, node);
    }

    /// `index_add` without the digest (a loader that takes the stored digest).
    fn index_add_unhashed(&mut self, path: &PathKey, node: &ZNode) {
        self.data_size += path.len() as i64 + node.data_len();
        match node.kind() {
            NodeKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(path.clone());
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.containers_and_ttls.insert(path.clone());
            }
            NodeKind::Persistent => {}
        }
    }

    fn index_remove(&mut self, path: &str, node: &ZNode) {
        self.digest = self.digest.wrapping_sub(node_hash(path, node));
        self.data_size -= path.len() as i64 + node.data_len();
        match node.kind() {
            NodeKind::Ephemeral(s) => {
                let set = self.ephemerals.get_mut(&s).expect("ephemeral index entry");
                assert!(set.remove(path).is_some(), "ephemeral {path} missing from the index");
                if set.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                let removed = self.containers_and_ttls.remove(path);
                assert!(removed.is_some(), "{path} missing from the index");
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

    /// A loader for a tree decoded node by node (snapshot load), at `zxid`.
    pub(crate) fn loader(zxid: Zxid) -> TreeLoader {
        let tree = DataTree::empty(zxid);
        TreeLoader {
            tree,
            previous: None,
            held_acl: None,
            hash_nodes: true,
            parent: None,
            window: Vec::with_capacity(LOAD_WINDOW_NODES),
            odd: Vec::with_capacity(LOAD_WINDOW_NODES / 2),
        }
    }

    /// A loader that does not hash the nodes: [`TreeLoader::finish_with_digest`] then gives the
    /// tree the stored digest, and [`DataTree::invariants`] (which the caller must run) checks
    /// it against the nodes. Hashing is a third of a snapshot load's CPU (issue 16).
    pub(crate) fn loader_deferring_digest(zxid: Zxid) -> TreeLoader {
        TreeLoader { hash_nodes: false, ..DataTree::loader(zxid) }
    }
    /// Checks every invariant of the module doc in O(n log n). Panics on a violation.
    pub fn invariants(&self) {
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert!(self.nodes.contains_key(p), "system node {p} missing");
        }
        let (mut digest, mut size) = (0u64, 0i64);
        let mut ephemerals: OrdMap<SessionId, OrdSet<PathKey>> = OrdMap::new();
        let mut special = OrdSet::new();
        let mut counted: BTreeMap<&str, u32> = BTreeMap::new();
        let mut acl_holders: BTreeMap<&[Acl], u32> = BTreeMap::new();
        for (p, node) in &self.nodes {
            assert!(path::validate_path(p).is_ok(), "invalid key {p:?}");
            assert_eq!(node.stat.ephemeral_owner, node.kind().ephemeral_owner(), "owner of {p}");
            let (cached, _) = self.acls.get_key_value(&*node.acl).expect("ACL list cached");
            assert!(Arc::ptr_eq(cached, &node.acl), "{p} holds its own copy of a cached ACL");
            *acl_holders.entry(&node.acl).or_default() += 1;
            if &**p != "/" {
                let parent = path::parent(p);
                assert!(self.nodes.contains_key(parent), "{p} has no parent");
                *counted.entry(parent).or_default() += 1;
            }
            match node.kind() {
                NodeKind::Ephemeral(s) => {
                    assert_ne!(s.0, 0, "ephemeral {p} without an owner");
                    assert_eq!(node.num_children, 0, "ephemeral {p} has children");
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
        for (p, node) in &self.nodes {
            let children = counted.get(&**p).copied().unwrap_or(0);
            assert_eq!(node.num_children, children, "children of {p} miscounted");
        }
        assert_eq!(acl_holders.len(), self.acls.len(), "ACL cache holds unused lists");
        for (acl, holders) in &self.acls {
            assert_eq!(acl_holders.get(&**acl), Some(holders), "ACL cache count of {acl:?}");
        }
        assert_eq!(digest, self.digest, "incremental digest drifted");
        assert_eq!(size, self.data_size, "data size drifted");
        assert_eq!(ephemerals, self.ephemerals, "ephemeral index drifted");
        assert_eq!(special, self.containers_and_ttls, "container/TTL index drifted");
        for root in &self.quota_roots {
            assert!(self.nodes.contains_key(&*quota::limit_path(root)), "stale quota root {root}");
        }
        for (key, head) in self.heads.entries.iter().flatten() {
            // An entry whose node is gone (or was made again, under a new key) is never used.
            if let Some((live, node)) = self.nodes.get_key_value(&**key)
                && Arc::ptr_eq(live, key)
            {
                let hashed = node_hash_head(key, node).finish();
                assert_eq!(head.finish(), hashed, "cached digest head of {key} is stale");
            }
        }
    }
}

/// Rebuilds a tree from nodes in strictly increasing path order, checking the structure as it
/// goes (a parent's path is a prefix of its child's, so every parent comes first). Nodes go
/// into the tree a window at a time: a million-node snapshot never sits in memory twice. Two
/// map look-ups per node (the parent, the insert): restart time is mostly this loop.
///
/// The order of the inserts within a window (see [`LOAD_WINDOW_NODES`]) fills the map's
/// leaves: `imbl`'s B-tree splits a full leaf at its median, so keys inserted in increasing
/// order leave every leaf half full (8 of 16 entries), as the creates of a live server do.
/// A window's even-numbered nodes go in first (so each leaf holds 8 of them, spread over a
/// range of 16 keys), then the odd-numbered ones, each into the leaf of the even one before
/// it, which it fills without a split (issues 14 and 16: RSS after a restart no higher than
/// after the load; half as many leaves, ~28 bytes per znode).
pub(crate) struct TreeLoader {
    tree: DataTree,
    previous: Option<PathKey>,
    /// The last node's ACL list (from the tree's cache) and the nodes holding it that are not
    /// yet counted there: nodes mostly repeat the previous node's list, so the cache is
    /// updated once per run of equal lists, not once per node.
    held_acl: Option<(Arc<[Acl]>, u32)>,
    /// Whether the digest is summed as nodes come in (else the stored one is taken).
    hash_nodes: bool,
    /// The parent of the last node pushed: its path and the children counted for it and not
    /// yet added to its `num_children`. Siblings mostly come in a row (a million under
    /// one parent in issue 16's load), so most nodes need one map operation, not two.
    parent: Option<(PathKey, u32)>,
    /// Nodes checked and not yet in the map, in path order: at most [`LOAD_WINDOW_NODES`].
    window: Vec<(PathKey, Arc<ZNode>)>,
    /// The window's odd-numbered nodes while its even ones go in (kept for its allocation).
    odd: Vec<(PathKey, Arc<ZNode>)>,
}

/// Nodes a [`TreeLoader`] holds before it puts them into the map. A multiple of 32 (two leaves
/// of 16), so every window starts on an even node; leaves at a window's two ends may stay
/// part full (2 of 256 leaves per window).
pub(crate) const LOAD_WINDOW_NODES: usize = 4096;

impl TreeLoader {
    /// Adds the next node; `Err` with a reason for anything a tree cannot hold.
    pub(crate) fn push(&mut self, key: PathKey, mut node: ZNode) -> Result<(), &'static str> {
        let p = &*key;
        match self.previous.as_deref() {
            Some(previous) if previous == p => return Err("duplicate snapshot path"),
            Some(previous) if previous > p => return Err("snapshot paths out of order"),
            None if p != "/" => return Err("root not first"),
            _ => {}
        }
        path::validate_path(p).map_err(|_| "invalid path")?;
        if node.stat.ephemeral_owner != node.kind().ephemeral_owner() {
            return Err("ephemeral owner does not match the node kind");
        }
        node.num_children = 0;
        if p != "/" {
            self.count_child_of(path::parent(p))?;
        }
        node.acl = self.hold_acl(node.acl);
        if self.hash_nodes {
            self.tree.index_add(&key, &node);
        } else {
            self.tree.index_add_unhashed(&key, &node);
        }
        self.window.push((key.clone(), Arc::new(node)));
        self.previous = Some(key);
        if self.window.len() == LOAD_WINDOW_NODES {
            self.insert_window();
        }
        Ok(())
    }

    /// Puts the window's nodes into the map: the even-numbered ones, then the odd ones (see
    /// the type's doc: this order fills the map's leaves).
    fn insert_window(&mut self) {
        let before = self.tree.nodes.len();
        let count = self.window.len();
        assert!(self.odd.is_empty(), "the odd nodes of the last window went in");
        for (index, (key, node)) in self.window.drain(..).enumerate() {
            if index % 2 == 1 {
                self.odd.push((key, node));
                continue;
            }
            let replaced = self.tree.nodes.insert(key, node);
            assert!(replaced.is_none(), "paths strictly increase, so each is new");
        }
        for (key, node) in self.odd.drain(..) {
            let replaced = self.tree.nodes.insert(key, node);
            assert!(replaced.is_none(), "paths strictly increase, so each is new");
        }
        assert_eq!(self.tree.nodes.len(), before + count, "every node of the window went in");
    }

    /// The node pushed at `path` and its key, in the window or the map.
    fn pushed(&self, path: &str) -> Option<(&PathKey, &Arc<ZNode>)> {
        match self.window.binary_search_by(|(key, _)| (**key).cmp(path)) {
            Ok(index) => self.window.get(index).map(|(key, node)| (key, node)),
            Err(_) => self.tree.nodes.get_key_value(path),
        }
    }

    /// [`TreeLoader::pushed`]'s node, to change.
    fn pushed_mut(&mut self, path: &str) -> Option<&mut Arc<ZNode>> {
        match self.window.binary_search_by(|(key, _)| (**key).cmp(path)) {
            Ok(index) => self.window.get_mut(index).map(|(_, node)| node),
            Err(_) => self.tree.nodes.get_mut(path),
        }
    }

    /// The cache's copy of `acl` for the next node, counted in `held_acl` while the nodes
    /// repeat it (compared by pointer first: the decoder shares a repeated list).
    fn hold_acl(&mut self, acl: Arc<[Acl]>) -> Arc<[Acl]> {
        if let Some((held, count)) = self.held_acl.as_mut()
            && (Arc::ptr_eq(held, &acl) || **held == *acl)
        {
            *count += 1;
            return held.clone();
        }
        self.count_held_acl();
        let held = self.tree.interned_acl(&acl).unwrap_or(acl);
        self.held_acl = Some((held.clone(), 1));
        held
    }

    /// Adds the holders counted in `held_acl` to the tree's ACL cache.
    fn count_held_acl(&mut self) {
        if let Some((acl, count)) = self.held_acl.take() {
            let cached = self.tree.acl_hold(acl.clone(), count);
            assert!(Arc::ptr_eq(&cached, &acl), "the held list is the cache's");
        }
    }

    /// Counts one more child of `parent` (in `self.parent` while its children come in a row).
    /// Looks the parent up only when it changes, after adding the count held for the one
    /// before.
    fn count_child_of(&mut self, parent: &str) -> Result<(), &'static str> {
        if let Some((held, count)) = self.parent.as_mut()
            && **held == *parent
        {
            *count += 1;
            return Ok(());
        }
        self.add_held_children();
        let (key, node) = self.pushed(parent).ok_or("parent missing")?;
        if node.kind().owner_session().is_some() {
            return Err("child of an ephemeral");
        }
        self.parent = Some((key.clone(), 1));
        Ok(())
    }

    /// Adds the children counted in `self.parent` to its node.
    fn add_held_children(&mut self) {
        if let Some((held, count)) = self.parent.take() {
            assert!(count > 0, "a parent is held only once a child is counted");
            let node = self.pushed_mut(&held).expect("a held parent was pushed");
            // A parent's children can come in several runs ("/a/x", "/a/x/y", "/a/z"): add.
            let before = node.num_children;
            Arc::make_mut(node).num_children = before.checked_add(count).expect("u32 children");
        }
    }

    /// The tree, once every node is in; checks the system nodes. The caller runs
    /// [`DataTree::invariants`] (see `snapshot::decode`).
    pub(crate) fn finish(self) -> Result<DataTree, &'static str> {
        assert!(self.hash_nodes, "a loader deferring the digest finishes with the stored one");
        self.finish_unchecked()
    }

    /// [`TreeLoader::finish`] for a loader made by [`DataTree::loader_deferring_digest`]: the
    /// tree takes `stored_digest`, unchecked until [`DataTree::invariants`] runs.
    pub(crate) fn finish_with_digest(self, stored_digest: u64) -> Result<DataTree, &'static str> {
        assert!(!self.hash_nodes, "a hashing loader checks the digest itself");
        assert_eq!(self.tree.digest, 0, "no node was hashed");
        let mut tree = self.finish_unchecked()?;
        tree.digest = stored_digest;
        Ok(tree)
    }

    fn finish_unchecked(mut self) -> Result<DataTree, &'static str> {
        self.add_held_children();
        self.insert_window();
        self.count_held_acl();
        let mut tree = self.tree;
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
        assert!(tree.nodes.len() >= 4, "the system nodes are in");
        Ok(tree)
    }
}

fn node_hash(path: &str, node: &ZNode) -> u64 {
    digest::node_hash(path, node.data.as_deref(), &node.acl, &node.stat)
}

/// `node_hash`'s state after the fields a child's create or delete leaves alone.
fn node_hash_head(path: &str, node: &ZNode) -> digest::Fnv64 {
    let prefix = digest::node_hash_prefix(path, node.data.as_deref(), &node.acl);
    digest::node_hash_stat_head(prefix, &node.stat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};

    /// Applies `txn` at counter `n` of epoch 1 and runs the invariants (with the cached heads).
    fn apply(tree: &mut DataTree, n: u32, txn: Txn) -> ApplyOutcome {
        let zxid = Zxid::new(1, n);
        let header =
            TxnHeader { session_id: SessionId(5), cxid: n as i32, zxid, time_ms: n as i64 };
        let outcome = tree.apply(&LoggedTxn { header, txn }).outcome;
        tree.invariants();
        outcome
    }

    fn create(path: &str) -> Txn {
        let (path, data, acl) = (path.to_string(), Some(b"x".to_vec()), Acl::open_unsafe());
        Txn::Create { path, data, acl, kind: CreateKind::Persistent, parent_cversion: -1 }
    }

    fn cached(tree: &DataTree, path: &str) -> bool {
        let key = tree.path_key(path).expect("a live node");
        tree.heads.entries.iter().flatten().any(|(k, _)| Arc::ptr_eq(k, &key))
    }

    /// A parent's cached digest head is dropped when its data or ACL changes, and a parent
    /// deleted and made again is hashed afresh: the digest stays the sum of the node hashes
    /// through creates and deletes under a parent around each change.
    #[test]
    fn cached_parent_heads_follow_changes_of_the_parent() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/a"));
        apply(&mut tree, 2, create("/a/b"));
        assert!(cached(&tree, "/a"), "a create caches its parent's head");
        let data = Some(b"longer data".to_vec());
        apply(&mut tree, 3, Txn::SetData { path: "/a".into(), data, version: 1 });
        assert!(!cached(&tree, "/a"), "setData drops the entry");
        apply(&mut tree, 4, create("/a/c"));
        let acl = Acl::read_unsafe();
        apply(&mut tree, 5, Txn::SetAcl { path: "/a".into(), acl, version: 1 });
        apply(&mut tree, 6, Txn::Delete { path: "/a/c".into() });
        apply(&mut tree, 7, Txn::Delete { path: "/a/b".into() });
        apply(&mut tree, 8, Txn::Delete { path: "/a".into() });
        apply(&mut tree, 9, create("/a"));
        apply(&mut tree, 10, create("/a/d"));
        assert!(cached(&tree, "/a"), "the new /a is cached under its own key");
        let entries = tree.heads.entries.iter().flatten().count();
        assert!(entries <= HEAD_CACHE_ENTRIES, "{entries} entries");
    }

    /// A delete refused for the node's children (taken out of the map, then put back) leaves
    /// the nodes, the digest and the node's own key (shared with watches and the indexes) as
    /// they were; a delete of a missing node is NONODE.
    #[test]
    fn a_refused_delete_puts_the_node_back_as_it_was() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/a"));
        apply(&mut tree, 2, create("/a/b"));
        let key = tree.path_key("/a").expect("created");
        let (nodes, digest) = (tree.nodes.clone(), tree.digest());
        let refused = apply(&mut tree, 3, Txn::Delete { path: "/a".into() });
        assert_eq!(refused, ApplyOutcome::Failed(ZkError::NotEmpty));
        assert!(tree.nodes == nodes && tree.digest() == digest, "nothing changed");
        let back = tree.path_key("/a").expect("put back");
        assert!(Arc::ptr_eq(&back, &key), "the node keeps its key");
        let missing = apply(&mut tree, 4, Txn::Delete { path: "/c".into() });
        assert_eq!(missing, ApplyOutcome::Failed(ZkError::NoNode));
        assert_eq!(apply(&mut tree, 5, Txn::Delete { path: "/a/b".into() }), ApplyOutcome::Deleted);
        assert_eq!(apply(&mut tree, 6, Txn::Delete { path: "/a".into() }), ApplyOutcome::Deleted);
        assert!(tree.get("/a").is_none(), "deleted once empty");
    }

    /// `invariants` notices a parent whose child count is off by one, either way.
    #[test]
    fn invariants_catch_a_miscounted_parent() {
        for delta in [1i64, -1] {
            let mut tree = DataTree::new();
            tree.invariants();
            let node = Arc::make_mut(tree.nodes.get_mut("/zookeeper").unwrap());
            node.num_children = (node.num_children as i64 + delta) as u32;
            let caught = std::panic::catch_unwind(|| tree.invariants());
            let message = *caught.expect_err("a miscount is caught").downcast::<String>().unwrap();
            assert!(message.contains("children of /zookeeper miscounted"), "{message}");
        }
    }

    /// `invariants` notices a node with its own copy of a cached ACL list, and a cache count
    /// that does not match the nodes holding the list.
    #[test]
    fn invariants_catch_an_uncached_acl_and_a_miscounted_one() {
        let mut tree = DataTree::new();
        let node = Arc::make_mut(tree.nodes.get_mut("/zookeeper").unwrap());
        node.acl = node.acl.to_vec().into();
        let caught = std::panic::catch_unwind(|| tree.invariants());
        let message = *caught.expect_err("a copy is caught").downcast::<String>().unwrap();
        assert!(message.contains("/zookeeper holds its own copy"), "{message}");
        let mut tree = DataTree::new();
        let open: Arc<[Acl]> = Acl::open_unsafe().into();
        let held = tree.interned_acl(&open).expect("the system nodes hold the open ACL");
        assert_eq!(tree.acls.get(&*open), Some(&3), "/, /zookeeper and /zookeeper/quota");
        tree.acls.insert(held, 4);
        let caught = std::panic::catch_unwind(|| tree.invariants());
        let message = *caught.expect_err("a miscount is caught").downcast::<String>().unwrap();
        assert!(message.contains("ACL cache count"), "{message}");
    }
}
