//! The sequential specification of the znode operations: a pure model.
//!
//! [`Tree::step`] applies one request with its observed outcome to a state and returns the next
//! state, or the reason the outcome is impossible there. The model is a versioned register per
//! path (create, setData with and without version, delete, getData, exists), children lists,
//! sequential names (unique and increasing per parent), multi (all or nothing) and sessions
//! owning ephemerals. It is the `init`/`step` of STYLE.md practice 14: no clocks, no I/O, and
//! states are plain values that hash and compare, so the search can memoise them.
//!
//! A state covers only the paths of one partition ([`Scope`]); what lies outside is unknown and
//! never checked: a parent outside the scope is assumed to exist, and the children count,
//! children version and pzxid of a node are checked only when all its children are in scope.
//! Fields a write did not reveal (the zxid of an `info` write) are `None` until a read shows
//! them, and are then pinned to what was seen.

use crate::history::{CreateMode, F, Stat, SubResult, parent};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

/// One znode as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Znode {
    /// The data (shared: a step that copies the node, to bump its cversion or pin a zxid,
    /// copies a reference, not the data).
    pub data: Arc<str>,
    /// Data version.
    pub version: i32,
    /// Children created under it, ZooKeeper's stored cversion (exact only when the node's
    /// children are in scope). It numbers sequential children; deletes leave it alone (since
    /// ZooKeeper 3.4, ZOOKEEPER-1046); the cversion a client sees is `2 * cversion - children`.
    pub cversion: i32,
    /// zxid of the create, if known.
    pub czxid: Option<i64>,
    /// zxid of the last data change, if known.
    pub mzxid: Option<i64>,
    /// The process (session) owning it, for an ephemeral.
    pub owner: Option<u64>,
}

/// The model state of one partition.
///
/// The search does not copy states: it keeps one and changes it in place
/// ([`Tree::step_mut`]), and every change is written to an undo log first, so that going back
/// to an earlier configuration ([`Tree::undo_to`]) costs what was changed since, not a copy
/// per candidate tried nor a replay from a kept state. The log is not part of the value: a
/// clone starts with an empty one, and equality and the hash ignore it. `digest` is kept up
/// to date on every change (an XOR of the entries' hashes), so hashing a state for the memo
/// costs O(1), not O(nodes).
///
/// Nodes sit in a vector indexed by path number ([`Nodes`]): a state and its copies number
/// paths alike, so a lookup is a hash of the path and an index, and a node's children are
/// counted as they come and go, where a string-keyed ordered map compared paths byte by byte
/// at every level and walked a range to count children. A copy costs O(paths) (a pointer
/// per path), which only the reports and the window's starting states pay.
#[derive(Debug, Default)]
pub struct Tree {
    /// Existing nodes of the partition, by path number. Change it only through
    /// [`Tree::put_id`], [`Tree::take_id`] and [`Tree::modify_id`], which keep `digest` and
    /// write `undo`.
    nodes: Nodes,
    /// XOR of [`entry_hash`] over `nodes`.
    digest: u64,
    /// Highest sequence number handed out under each parent.
    pub last_seq: Arc<BTreeMap<String, i64>>,
    /// What each change since the last [`Tree::forget_undo`] replaced, oldest first.
    undo: Vec<Change>,
}

/// One change to a [`Tree`], as its undo log keeps it: what to put back.
#[derive(Debug)]
enum Change {
    /// The entry of path number `id` was `old` (absent: `None`) and the digest was `digest`.
    Node { id: u32, old: Option<Arc<Znode>>, digest: u64 },
    /// `last_seq` was this.
    LastSeq(Arc<BTreeMap<String, i64>>),
}

impl Clone for Tree {
    fn clone(&self) -> Tree {
        let (nodes, last_seq) = (self.nodes.clone(), self.last_seq.clone());
        Tree { nodes, digest: self.digest, last_seq, undo: Vec::new() }
    }
}

impl Tree {
    /// [`Nodes::invariants`], and the digest recounted from the paths' strings: the steps
    /// hash entries by number ([`Names::hashes`]), and a wrong number's hash would leave a
    /// digest that no longer names the nodes (memo keys that collide or differ wrongly).
    #[cfg(test)]
    fn invariants(&self) {
        self.nodes.invariants();
        let recount = (self.nodes.entries().iter()).fold(0, |d, (p, n)| d ^ entry_hash(p, n));
        assert_eq!(self.digest, recount, "the digest is the entries' hashes");
    }
}

impl PartialEq for Tree {
    fn eq(&self, other: &Tree) -> bool {
        self.digest == other.digest && self.nodes == other.nodes && self.last_seq == other.last_seq
    }
}

impl Eq for Tree {}

/// The paths a state and its copies name, numbered once: a path's number, its parent's, and
/// the numbers of its children, for [`Nodes`]. Shared by the copies (a state names a new path
/// when a create makes it, so the table grows during a search).
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<Arc<str>, u32, BuildHasherDefault<PathHasher>>,
    paths: Vec<Arc<str>>,
    parents: Vec<Option<u32>>,
    children: Vec<Vec<u32>>,
    /// Per path, [`entry_hash`]'s state once the path is folded in ([`path_hash`]): every
    /// change to a node hashes its entry twice (out of the digest and back in), and the path
    /// part is the same each time.
    hashes: Vec<u64>,
}

impl Names {
    /// Room for `more` paths without growing.
    fn reserve(&mut self, more: usize) {
        self.ids.reserve(more);
        self.paths.reserve(more);
        self.parents.reserve(more);
        self.children.reserve(more);
        self.hashes.reserve(more);
    }

    fn intern(&mut self, path: &str) -> u32 {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let up = parent(path).map(|p| self.intern(p));
        let id = u32::try_from(self.paths.len()).expect("fewer than 2^32 paths");
        let path: Arc<str> = Arc::from(path);
        self.ids.insert(path.clone(), id);
        self.hashes.push(path_hash(&path));
        self.paths.push(path);
        self.parents.push(up);
        self.children.push(Vec::new());
        if let Some(up) = up {
            self.children[up as usize].push(id);
        }
        assert_eq!(self.paths.len(), self.children.len(), "a children list per path");
        assert_eq!(self.paths.len(), self.hashes.len(), "a hash per path");
        id
    }
}

/// The hash of the path tables (this model's [`Names`], the checker's partition by key): paths
/// are short, and a step looks up a few, so SipHash (keyed against flooding, which a history
/// cannot usefully do) cost more than the lookup. Eight bytes at a time through a multiply and
/// rotate (FxHash's step). Only lookups use it: nothing iterates those maps, so their order
/// never shows.
#[derive(Default)]
pub(crate) struct PathHasher(u64);

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("eight bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.mix(u64::from_le_bytes(tail) ^ (bytes.len() as u64) << 56);
    }

    fn write_u8(&mut self, b: u8) {
        self.mix(u64::from(b));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl PathHasher {
    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
}

/// The hash of the checker's maps keyed by session (a history's process id): one multiply
/// for the one `u64` (FxHash's step), where a `BTreeMap` descended comparing keys and SipHash
/// ran a dozen rounds. Pairing the ops, their deadlines, and every search's session order and
/// ephemerals look a session up per op. Only lookups use these maps: nothing iterates one
/// where its order could show.
#[derive(Default)]
pub(crate) struct SessionHasher(u64);

impl Hasher for SessionHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for a `u64` key (`write_u64` below); any other key still hashes whole.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by session (process id), hashed by [`SessionHasher`].
pub(crate) type BySession<V> = HashMap<u64, V, BuildHasherDefault<SessionHasher>>;

/// A state's nodes by path number ([`Names`], shared with its copies), with each path's
/// count of existing children and the count of nodes.
///
/// Invariant: `children[i]` is the number of existing nodes whose parent is path `i`, and
/// `len` the number of existing nodes (checked by [`Nodes::invariants`] in tests).
#[derive(Default)]
struct Nodes {
    names: Rc<RefCell<Names>>,
    slots: Vec<Option<Arc<Znode>>>,
    children: Vec<u32>,
    len: usize,
}

impl Clone for Nodes {
    fn clone(&self) -> Nodes {
        Nodes {
            names: self.names.clone(),
            slots: self.slots.clone(),
            children: self.children.clone(),
            len: self.len,
        }
    }
}

impl Nodes {
    /// The number of `path`, if any state of this family named it.
    fn id(&self, path: &str) -> Option<u32> {
        self.names.borrow().ids.get(path).copied()
    }

    fn intern(&self, path: &str) -> u32 {
        self.names.borrow_mut().intern(path)
    }

    fn slot(&self, id: u32) -> Option<&Arc<Znode>> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The node numbered `id`, if `id` is some and the node exists.
    fn slot_of(&self, id: Option<u32>) -> Option<&Arc<Znode>> {
        self.slot(id?)
    }

    fn get(&self, path: &str) -> Option<&Arc<Znode>> {
        self.slot(self.id(path)?)
    }

    fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The hash of path `id`'s entry holding `node` ([`entry_hash`], its path's part kept).
    fn entry_hash(&self, id: u32, node: &Znode) -> u64 {
        node_hash(self.names.borrow().hashes[id as usize], node)
    }

    /// The number of the parent of path `id` (`None` for `/`).
    fn parent(&self, id: u32) -> Option<u32> {
        self.names.borrow().parents[id as usize]
    }

    /// Sets the node of path `id` (absent: `None`), keeping the counts; returns the old one.
    fn set(&mut self, id: u32, node: Option<Arc<Znode>>) -> Option<Arc<Znode>> {
        let i = id as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        let now = node.is_some();
        let old = std::mem::replace(&mut self.slots[i], node);
        if old.is_some() != now {
            let up = self.names.borrow().parents[i];
            if now {
                self.len += 1;
            } else {
                assert!(self.len > 0, "a node to remove");
                self.len -= 1;
            }
            if let Some(up) = up.map(|u| u as usize) {
                if self.children.len() <= up {
                    self.children.resize(up + 1, 0);
                }
                if now {
                    self.children[up] += 1;
                } else {
                    assert!(self.children[up] > 0, "a child to remove");
                    self.children[up] -= 1;
                }
            }
        }
        old
    }

    /// How many existing nodes have path `id` as their parent.
    fn child_count_id(&self, id: u32) -> usize {
        self.children.get(id as usize).map_or(0, |&n| n as usize)
    }

    /// The last components of the existing children of `path`, in no order.
    fn child_names(&self, path: &str) -> Vec<String> {
        let Some(id) = self.id(path) else { return Vec::new() };
        let names = self.names.borrow();
        let kids = names.children[id as usize].iter();
        let kids = kids.filter(|&&c| self.slot(c).is_some());
        kids.map(|&c| short_name(&names.paths[c as usize])).collect()
    }

    /// The numbers of the nodes `session` owns.
    fn owned_by(&self, session: u64) -> Vec<u32> {
        let owned = self.slots.iter().enumerate().filter_map(|(i, n)| {
            let n = n.as_ref()?;
            (n.owner == Some(session)).then_some(u32::try_from(i).expect("a path number"))
        });
        owned.collect()
    }

    /// Every (path, node), in path order (for equality across tables and for printing).
    fn entries(&self) -> Vec<(Arc<str>, Arc<Znode>)> {
        let names = self.names.borrow();
        let mut out: Vec<(Arc<str>, Arc<Znode>)> = (self.slots.iter().enumerate())
            .filter_map(|(i, n)| Some((names.paths[i].clone(), n.clone()?)))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Recounts what [`Nodes`] keeps counted; panics on a difference.
    #[cfg(test)]
    fn invariants(&self) {
        let names = self.names.borrow();
        let mut children = vec![0u32; names.paths.len()];
        let mut len = 0;
        for (i, n) in self.slots.iter().enumerate() {
            if n.is_some() {
                len += 1;
                if let Some(up) = names.parents[i] {
                    children[up as usize] += 1;
                }
            }
        }
        assert_eq!(len, self.len, "the node count");
        for (i, &n) in children.iter().enumerate() {
            assert_eq!(n, self.children.get(i).copied().unwrap_or(0), "children of {i}");
        }
        // The table: each path's kept hash and parent are its string's.
        for (i, path) in names.paths.iter().enumerate() {
            assert_eq!(names.hashes[i], path_hash(path), "the kept hash of {path}");
            let up = parent(path).map(|p| names.ids[p]);
            assert_eq!(names.parents[i], up, "the parent of {path}");
        }
    }
}

impl PartialEq for Nodes {
    fn eq(&self, other: &Nodes) -> bool {
        if self.len != other.len {
            return false;
        }
        if !Rc::ptr_eq(&self.names, &other.names) {
            return self.entries() == other.entries();
        }
        let n = self.slots.len().max(other.slots.len());
        (0..n).all(|i| {
            let i = u32::try_from(i).expect("a path number");
            self.slot(i) == other.slot(i)
        })
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

impl Hash for Tree {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
        self.nodes.len().hash(state);
        self.last_seq.hash(state);
    }
}

/// The hash of one (path, node) entry, the same in every run: every field, strings with
/// their lengths (so no two entries share an input), folded eight bytes at a time through
/// SplitMix64's finaliser. Every step of the search hashes the entries it changes, and
/// SipHash through `Hash` (a call per field) was a quarter of a step; a memo key that
/// collided would prune a configuration wrongly, and this hash is as spread as SipHash for
/// that (each word is mixed in full before the next).
#[cfg(test)]
fn entry_hash(path: &str, node: &Znode) -> u64 {
    node_hash(path_hash(path), node)
}

/// [`entry_hash`]'s state after the path: the first part of an entry's hash, kept per path
/// number ([`Names::hashes`]).
fn path_hash(path: &str) -> u64 {
    let mut h = EntryHasher(0x243F_6A88_85A3_08D3);
    h.bytes(path.as_bytes());
    h.0
}

/// [`entry_hash`] from its path's part ([`path_hash`]): the node's fields folded in after it.
fn node_hash(path_hash: u64, node: &Znode) -> u64 {
    let mut h = EntryHasher(path_hash);
    h.bytes(node.data.as_bytes());
    h.word(u64::from(node.version as u32) | u64::from(node.cversion as u32) << 32);
    let flags = |o: bool, shift: u32| u64::from(o) << shift;
    let some = flags(node.czxid.is_some(), 0)
        | flags(node.mzxid.is_some(), 1)
        | flags(node.owner.is_some(), 2);
    h.word(some);
    h.word(node.czxid.unwrap_or(0) as u64);
    h.word(node.mzxid.unwrap_or(0) as u64);
    h.word(node.owner.unwrap_or(0));
    h.0
}

/// [`entry_hash`]'s state.
struct EntryHasher(u64);

impl EntryHasher {
    fn word(&mut self, w: u64) {
        let mut x = (self.0 ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = x ^ (x >> 31);
    }

    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("eight bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(tail));
        self.word(b.len() as u64);
    }
}

/// What a partition's state covers.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Paths whose existence and data the state tracks.
    pub paths: BTreeSet<String>,
    /// Paths whose children are all tracked (so children lists and counts are exact).
    pub children_exact: BTreeSet<String>,
}

/// Model checks that the diagnosis may switch off to find which guarantee a history breaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelRelax {
    /// Do not require sequential names to be unique and increasing.
    pub seq_names: bool,
    /// Let an indeterminate sequential create take any number not below the parent's
    /// cversion (by default it must equal it: the search is then near-linear, but an unseen
    /// indeterminate create just before it could make that too strict; the checker retries
    /// with this on before reporting a violation).
    pub loose_seq: bool,
    /// Closing a session leaves its ephemerals in place (and, in the search, need not follow
    /// the session's other ops).
    pub ephemerals: bool,
}

/// A request, as the model sees it. Its strings are the history's, borrowed (`'h`): planning
/// turns every op of a history into actions, and copying each op's path and data into owned
/// strings (and dropping them with the key group) was a large share of planning. Only a
/// created name the history does not spell (an unrecorded sequential name, a candidate name
/// from the path table) is owned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action<'h> {
    /// `create`; `name` is the created name (the server's choice for sequential nodes).
    Create {
        /// Requested path (prefix, for sequential).
        path: &'h str,
        /// Data.
        data: &'h str,
        /// Mode.
        mode: CreateMode,
        /// Created name, when known (always for non-sequential).
        name: Option<Cow<'h, str>>,
    },
    /// `delete`.
    Delete {
        /// Path.
        path: &'h str,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// `setData`.
    Set {
        /// Path.
        path: &'h str,
        /// Data.
        data: &'h str,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// `check` (in a multi).
    Check {
        /// Path.
        path: &'h str,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// `getData`.
    Get {
        /// Path.
        path: &'h str,
    },
    /// `exists`.
    Exists {
        /// Path.
        path: &'h str,
    },
    /// `getChildren`.
    Children {
        /// Path.
        path: &'h str,
    },
    /// `sync`: no effect on the tree.
    Sync,
    /// `multi`: all sub-actions or none.
    Multi(Vec<Action<'h>>),
    /// The session `session` ends.
    Close {
        /// The process whose session ends.
        session: u64,
    },
}

/// What came back, as the model checks it: the history's reply, borrowed (`'h`, as in
/// [`Action`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reply<'h> {
    /// Stat, if the reply carried one.
    pub stat: Option<&'h Stat>,
    /// Data read.
    pub data: Option<&'h str>,
    /// Children read, sorted (borrowed when the history recorded them sorted).
    pub children: Option<Cow<'h, [String]>>,
    /// Multi sub-results (of a multi's piece: its own one).
    pub results: Option<&'h [SubResult]>,
}

/// The outcome a step must reproduce.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome<'h> {
    /// Success with these reply facts; `zxid` is the write's own zxid when known.
    Ok {
        /// Reply facts to check (borrowed from the history, so copies cost no allocation).
        reply: Reply<'h>,
        /// The zxid of this write, if known.
        zxid: Option<i64>,
    },
    /// Failure with this tree-determined error code.
    Fail(&'static str),
    /// Unknown: any outcome; a step that would fail is reported as `Err` (no effect).
    Unknown,
}

type StepResult = Result<Tree, String>;

/// Why a step is impossible ([`Tree::step_mut`]), kept as its parts and written out only when
/// read: the search tries many steps that fail and reads the reason of almost none, and
/// formatting each one was about a tenth of a model step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// A sequential create of unknown outcome whose number is not its parent's cversion.
    NotNumberedHere,
    /// The op would fail with `code` (`at`: which of a multi's ops), not succeed or fail with
    /// `not`.
    WouldFail {
        /// The error the model gives.
        code: &'static str,
        /// Which op of a multi fails first ([`Tree::failing_sub_op`]), or "".
        at: String,
        /// The error the history recorded, if it recorded one.
        not: Option<&'static str>,
    },
    /// The op would succeed, not fail with this.
    WouldSucceed(&'static str),
    /// An op of unknown outcome that cannot take effect (with the error it would get).
    NoEffect(&'static str),
    /// The reply disagrees with the state after the op.
    Reply(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::NotNumberedHere => {
                write!(f, "no effect here (its number is not the parent's cversion)")
            }
            StepError::WouldFail { code, at, not: None } => write!(f, "would fail with {code}{at}"),
            StepError::WouldFail { code, at, not: Some(want) } => {
                write!(f, "would fail with {code}{at}, not {want}")
            }
            StepError::WouldSucceed(want) => write!(f, "would succeed, not fail with {want}"),
            StepError::NoEffect(code) => write!(f, "no effect ({code})"),
            StepError::Reply(why) => write!(f, "{why}"),
        }
    }
}

impl Tree {
    /// The initial state of a partition: `/` and the declared nodes that are in scope.
    pub fn init(scope: &Scope, initial: &[(String, String, i32, i32)]) -> Tree {
        let mut tree = Tree::default();
        // A search names about the scope's paths (and their parents): room for them up front,
        // instead of growing the map and the four lists by doubling from empty.
        tree.nodes.names.borrow_mut().reserve(scope.paths.len() + 1);
        let root = ("/".to_string(), String::new(), 0, 0);
        for (path, data, version, cversion) in std::iter::once(&root).chain(initial) {
            if scope.paths.contains(path) {
                // The declared cversion is the one a client sees: creates plus deletes.
                let children = initial.iter().filter(|n| parent(&n.0) == Some(path)).count();
                let created = (i64::from(*cversion) + children as i64) / 2;
                let node = Znode {
                    data: Arc::from(data.as_str()),
                    version: *version,
                    cversion: i32::try_from(created).unwrap_or(i32::MAX),
                    czxid: None,
                    mzxid: None,
                    owner: None,
                };
                tree.put(path, node);
            }
        }
        tree
    }

    /// The node at `path`, if it exists.
    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path).map(|node| &**node)
    }

    /// Adds or replaces the node at `path`.
    fn put(&mut self, path: &str, node: Znode) {
        let id = self.nodes.intern(path);
        self.put_id(id, node);
    }

    /// [`Tree::put`] by number. A step looks each path up once and goes on by its number:
    /// every lookup hashes the path, and a create looked its name up four times and its
    /// parent three.
    fn put_id(&mut self, id: u32, node: Znode) {
        let digest = self.digest;
        self.digest ^= self.nodes.entry_hash(id, &node);
        let old = self.nodes.set(id, Some(Arc::new(node)));
        if let Some(old) = &old {
            self.digest ^= self.nodes.entry_hash(id, old);
        }
        self.undo.push(Change::Node { id, old, digest });
    }

    /// Removes the node at `path`, if any.
    #[cfg(test)]
    fn take(&mut self, path: &str) -> Option<Arc<Znode>> {
        let id = self.nodes.id(path)?;
        self.take_id(id)
    }

    /// Removes the node numbered `id`, if any.
    fn take_id(&mut self, id: u32) -> Option<Arc<Znode>> {
        let old = self.nodes.set(id, None)?;
        let digest = self.digest;
        self.digest ^= self.nodes.entry_hash(id, &old);
        self.undo.push(Change::Node { id, old: Some(old.clone()), digest });
        Some(old)
    }

    /// Changes the node at `path` in place; false if there is none.
    #[cfg(test)]
    fn modify(&mut self, path: &str, change: impl FnOnce(&mut Znode)) -> bool {
        self.nodes.id(path).is_some_and(|id| self.modify_id(id, change))
    }

    /// [`Tree::modify`] by number.
    fn modify_id(&mut self, id: u32, change: impl FnOnce(&mut Znode)) -> bool {
        let digest = self.digest;
        let hash = self.nodes.names.borrow().hashes[id as usize];
        let Some(Some(node)) = self.nodes.slots.get_mut(id as usize) else { return false };
        // The log shares the old node, so the change copies it (its data is shared).
        let old = node.clone();
        let node = Arc::make_mut(node);
        self.digest ^= node_hash(hash, node);
        change(node);
        self.digest ^= node_hash(hash, node);
        self.undo.push(Change::Node { id, old: Some(old), digest });
        true
    }

    /// `last_seq`, to change (its old value kept in the undo log).
    fn last_seq_mut(&mut self) -> &mut BTreeMap<String, i64> {
        self.undo.push(Change::LastSeq(self.last_seq.clone()));
        Arc::make_mut(&mut self.last_seq)
    }

    /// Where the undo log is now: [`Tree::undo_to`] this mark puts the state back as it is.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Puts back every change made since `mark` ([`Tree::mark`]), latest first.
    pub fn undo_to(&mut self, mark: usize) {
        assert!(mark <= self.undo.len(), "a mark of this log, not of a forgotten part");
        while self.undo.len() > mark {
            match self.undo.pop().expect("longer than the mark") {
                Change::Node { id, old, digest } => {
                    self.nodes.set(id, old);
                    self.digest = digest;
                }
                Change::LastSeq(old) => self.last_seq = old,
            }
        }
        assert_eq!(self.undo.len(), mark, "undone down to the mark");
    }

    /// Forgets the undo log: the state as it is can no longer be undone (marks taken before
    /// are void). The search calls this when nothing can come back to an earlier state.
    pub fn forget_undo(&mut self) {
        self.undo.clear();
    }

    /// Cheap pre-check for a sequential create with a known name: true unless the parent is
    /// tracked here and its cversion is not the name's number.
    pub fn numbered_here(&self, action: &Action) -> bool {
        let Action::Create { path, name: Some(name), mode, .. } = action else { return true };
        if !mode.is_sequential() {
            return true;
        }
        let (Some(seq), Some(p)) = (sequence_number(path, name), parent(path)) else {
            return true;
        };
        self.nodes.get(p).is_none_or(|node| i64::from(node.cversion) == seq)
    }

    /// Applies `action` by `process` with the observed `outcome`.
    pub fn step(
        &self,
        scope: &Scope,
        relax: ModelRelax,
        process: u64,
        action: &Action,
        outcome: &Outcome,
    ) -> StepResult {
        let mut next = self.clone();
        next.step_mut(scope, relax, process, action, outcome).map_err(|e| e.to_string())?;
        next.forget_undo();
        Ok(next)
    }

    /// [`Tree::step`] in place: on `Ok` the state is the next one (the changes in the undo
    /// log), on `Err` it is unchanged (whatever was tried undone). The reason is written out
    /// only when read ([`StepError`]).
    pub fn step_mut(
        &mut self,
        scope: &Scope,
        relax: ModelRelax,
        process: u64,
        action: &Action,
        outcome: &Outcome,
    ) -> Result<(), StepError> {
        if matches!(outcome, Outcome::Unknown)
            && !relax.loose_seq
            && !relax.seq_names
            && let Action::Create { path, mode, name: Some(name), .. } = action
            && mode.is_sequential()
            && let Some(seq) = sequence_number(path, name)
        {
            let parent_path = parent(path).unwrap_or("/");
            let cversion = self.nodes.get(parent_path).map(|p| i64::from(p.cversion));
            if scope.children_exact.contains(parent_path) && cversion != Some(seq) {
                return Err(StepError::NotNumberedHere);
            }
        }
        let mark = self.mark();
        let zxid = match outcome {
            Outcome::Ok { zxid, .. } => *zxid,
            _ => None,
        };
        let applied = self.apply(scope, relax, process, action, zxid);
        // Every arm but the two that keep the effect goes back to the state before: a failed
        // op changes nothing, and an impossible one is not taken.
        if !matches!((outcome, &applied), (Outcome::Ok { .. } | Outcome::Unknown, Ok(()))) {
            self.undo_to(mark);
        }
        let result = match (outcome, applied) {
            (Outcome::Ok { reply, .. }, Ok(())) => {
                self.check_reply(scope, action, reply).map_err(StepError::Reply)
            }
            (Outcome::Ok { .. }, Err(code)) => {
                let at = self.failing_sub_op(scope, relax, process, action, zxid);
                Err(StepError::WouldFail { code, at, not: None })
            }
            (Outcome::Fail(want), Err(code)) if code == *want => Ok(()),
            (Outcome::Fail(want), Err(code)) => {
                let at = self.failing_sub_op(scope, relax, process, action, zxid);
                Err(StepError::WouldFail { code, at, not: Some(want) })
            }
            (Outcome::Fail(want), Ok(())) if unverifiable(scope, action, want) => Ok(()),
            (Outcome::Fail(want), Ok(())) => Err(StepError::WouldSucceed(want)),
            (Outcome::Unknown, Ok(())) => Ok(()),
            (Outcome::Unknown, Err(code)) => Err(StepError::NoEffect(code)),
        };
        if result.is_err() {
            self.undo_to(mark);
        }
        result
    }

    /// For a multi that fails from this state: which of its ops fails first, as the step's
    /// message names it (` at its check /a version 0 (/a is absent)`); "" for any other action
    /// (a multi's ops on paths outside the key group are not here, so no index is given). Only
    /// called on the way to an error message, so the second application costs nothing the
    /// search pays for.
    fn failing_sub_op(
        &self,
        scope: &Scope,
        relax: ModelRelax,
        process: u64,
        action: &Action,
        zxid: Option<i64>,
    ) -> String {
        let Action::Multi(actions) = action else { return String::new() };
        let mut next = self.clone();
        for sub in actions {
            if next.apply(scope, relax, process, sub, zxid).is_err() {
                let what = match sub {
                    Action::Create { path, .. } => format!("create {path}"),
                    Action::Delete { path, version } => format!("delete {path} version {version}"),
                    Action::Set { path, version, .. } => format!("set {path} version {version}"),
                    Action::Check { path, version } => format!("check {path} version {version}"),
                    other => format!("{other:?}"),
                };
                let state = match sub {
                    Action::Create { path, .. } if !next.nodes.contains_key(path) => {
                        let parent_path = parent(path).unwrap_or("/");
                        let known = scope.paths.contains(parent_path);
                        match next.nodes.get(parent_path) {
                            None if known => format!(" ({parent_path} is absent)"),
                            _ => String::new(),
                        }
                    }
                    Action::Create { path, .. }
                    | Action::Delete { path, .. }
                    | Action::Set { path, .. }
                    | Action::Check { path, .. } => match next.nodes.get(path) {
                        Some(node) => format!(" ({path} is at version {})", node.version),
                        None => format!(" ({path} is absent)"),
                    },
                    _ => String::new(),
                };
                return format!(" at its {what}{state}");
            }
        }
        String::new()
    }

    /// Applies a request to `self`; `Err(code)` is the error ZooKeeper would return. The code
    /// `"?"` means the scope cannot tell (e.g. a parent outside the partition). On `Err` the
    /// state may be partly changed (a multi's earlier ops, a sequential create's parent): the
    /// caller undoes it ([`Tree::step_mut`]) or drops the state.
    fn apply(
        &mut self,
        scope: &Scope,
        relax: ModelRelax,
        process: u64,
        action: &Action,
        zxid: Option<i64>,
    ) -> Result<(), &'static str> {
        match action {
            Action::Create { path, data, mode, name } => {
                self.create(scope, relax, process, path, data, *mode, name.as_deref(), zxid)
            }
            Action::Delete { path, version } => {
                let id = self.check_version(path, *version)?;
                if self.nodes.child_count_id(id) > 0 {
                    return Err("NotEmpty");
                }
                // A delete leaves the parent's stored cversion alone.
                let taken = self.take_id(id);
                assert!(taken.is_some(), "checked");
                Ok(())
            }
            Action::Set { path, data, version } => {
                let id = self.check_version(path, *version)?;
                let found = self.modify_id(id, |node| {
                    node.data = Arc::from(*data);
                    node.version += 1;
                    node.mzxid = zxid;
                });
                assert!(found, "checked");
                Ok(())
            }
            Action::Check { path, version } => self.check_version(path, *version).map(|_| ()),
            Action::Get { path } | Action::Children { path } => {
                if self.nodes.contains_key(path) {
                    Ok(())
                } else {
                    Err("NoNode")
                }
            }
            Action::Exists { .. } | Action::Sync => Ok(()),
            Action::Multi(actions) => {
                // All or nothing: on an error the caller undoes what the ops before did.
                for sub in actions {
                    self.apply(scope, relax, process, sub, zxid)?;
                }
                Ok(())
            }
            Action::Close { session } => {
                if !relax.ephemerals {
                    for id in self.nodes.owned_by(*session) {
                        self.take_id(id);
                    }
                }
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        scope: &Scope,
        relax: ModelRelax,
        process: u64,
        path: &str,
        data: &str,
        mode: CreateMode,
        name: Option<&str>,
        zxid: Option<i64>,
    ) -> Result<(), &'static str> {
        let parent_path = parent(path).unwrap_or("/");
        // Looked up once: the parent is read up to three times and changed up to twice.
        let parent_id = self.nodes.id(parent_path);
        if scope.paths.contains(parent_path) {
            match self.nodes.slot_of(parent_id) {
                None => return Err("NoNode"),
                Some(p) if p.owner.is_some() => return Err("NoChildrenForEphemerals"),
                Some(_) => {}
            }
        }
        let name = match (mode.is_sequential(), name) {
            (false, _) => Cow::Borrowed(path),
            (true, Some(name)) if name.strip_prefix(path).is_some_and(|s| s.starts_with('?')) => {
                // An acknowledged create whose name was not recorded: nothing to check.
                Cow::Borrowed(name)
            }
            (true, Some(name)) => {
                let seq = sequence_number(path, name).ok_or("a malformed sequential name")?;
                // ZooKeeper numbers a sequential child with its parent's cversion. The model's
                // cversion is a lower bound (creates of unknown outcome may have bumped it).
                let exact = scope.children_exact.contains(parent_path);
                if let Some(p) = self.nodes.slot_of(parent_id)
                    && exact
                    && !relax.seq_names
                {
                    if seq < i64::from(p.cversion) {
                        return Err("a sequence number below the parent's cversion");
                    }
                    let cversion = i32::try_from(seq).unwrap_or(i32::MAX);
                    let id = parent_id.expect("the parent exists");
                    self.modify_id(id, |p| p.cversion = cversion);
                }
                let last = self.last_seq.get(parent_path).copied();
                if !relax.seq_names && last.is_some_and(|last| seq <= last) {
                    return Err("a sequence number not above the last one");
                }
                let last_seq = self.last_seq_mut();
                last_seq.insert(parent_path.to_string(), seq.max(last.unwrap_or(seq)));
                Cow::Borrowed(name)
            }
            (true, None) => {
                // A create of unknown outcome whose name nobody saw (see `partition::convert`):
                // ZooKeeper names it with its parent's cversion, known here only where all the
                // parent's children are.
                let exact = scope.children_exact.contains(parent_path);
                let Some(p) = self.nodes.slot_of(parent_id).filter(|_| exact) else {
                    return Err("?: sequential name unknown");
                };
                let cversion = p.cversion;
                let seq = i64::from(cversion);
                let last = self.last_seq.get(parent_path).copied();
                if !relax.seq_names && last.is_some_and(|last| seq <= last) {
                    return Err("a sequence number not above the last one");
                }
                let last_seq = self.last_seq_mut();
                last_seq.insert(parent_path.to_string(), seq.max(last.unwrap_or(seq)));
                Cow::Owned(sequential_name(path, cversion))
            }
        };
        let id = self.nodes.intern(&name);
        if self.nodes.slot(id).is_some() && !(relax.seq_names && mode.is_sequential()) {
            return Err(if mode.is_sequential() {
                "a duplicate sequential name"
            } else {
                "NodeExists"
            });
        }
        let owner = mode.is_ephemeral().then_some(process);
        let node = Znode {
            data: Arc::from(data),
            version: 0,
            cversion: 0,
            czxid: zxid,
            mzxid: zxid,
            owner,
        };
        self.put_id(id, node);
        // One more child created under the parent: one more for its stored cversion (a Java
        // int: after 2147483647 comes -2147483648).
        if let Some(up) = self.nodes.parent(id) {
            self.modify_id(up, |node| node.cversion = node.cversion.wrapping_add(1));
        }
        Ok(())
    }

    /// The number of the node at `path` if it exists at `version` (-1: any).
    fn check_version(&self, path: &str, version: i32) -> Result<u32, &'static str> {
        let id = self.nodes.id(path).ok_or("NoNode")?;
        let node = self.nodes.slot(id).ok_or("NoNode")?;
        if version != -1 && version != node.version {
            return Err("BadVersion");
        }
        Ok(id)
    }

    /// Checks the reply facts of a successful op against the state after it; pins unknown zxids.
    fn check_reply(&mut self, scope: &Scope, action: &Action, reply: &Reply) -> Result<(), String> {
        match action {
            Action::Set { path, .. } | Action::Get { path } | Action::Children { path } => {
                if let Some(data) = reply.data
                    && matches!(action, Action::Get { .. })
                {
                    let have = self.nodes.get(path).map(|n| &*n.data).unwrap_or("");
                    if have != data {
                        return Err(format!("read {data:?} but {path} holds {have:?}"));
                    }
                }
                if let Some(children) = &reply.children {
                    let mut have: Vec<String> = self.nodes.child_names(path);
                    have.sort();
                    if scope.children_exact.contains(*path) && have[..] != children[..] {
                        return Err(format!("children {children:?} but {path} has {have:?}"));
                    }
                }
                self.check_stat(scope, path, reply.stat)
            }
            Action::Exists { path } => match (reply.stat, self.nodes.contains_key(path)) {
                (Some(_), false) => Err(format!("exists saw {path} but it does not exist")),
                (None, true) => Err(format!("exists missed {path} which exists")),
                (None, false) => Ok(()),
                (Some(stat), true) => self.check_stat(scope, path, Some(stat)),
            },
            Action::Create { path, mode, name, .. } => {
                let name = name.as_deref().unwrap_or(path);
                if !mode.is_sequential() && name != *path {
                    return Err(format!("created {name} for a create of {path}"));
                }
                self.check_stat(scope, name, reply.stat)
            }
            Action::Multi(actions) => {
                let Some(results) = reply.results else { return Ok(()) };
                let mut paths: Vec<&str> = actions.iter().filter_map(action_path).collect();
                paths.sort();
                paths.dedup();
                if paths.len() != actions.len() {
                    // Stats of a path touched twice would need the state between sub-ops.
                    return Ok(());
                }
                for (sub, result) in actions.iter().zip(results) {
                    let sub_reply = Reply { stat: result.stat.as_ref(), ..Reply::default() };
                    match sub {
                        Action::Set { .. } | Action::Create { .. } => {
                            self.check_reply(scope, sub, &sub_reply)?
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Action::Delete { .. } | Action::Check { .. } | Action::Sync | Action::Close { .. } => {
                Ok(())
            }
        }
    }

    fn check_stat(&mut self, scope: &Scope, path: &str, stat: Option<&Stat>) -> Result<(), String> {
        let Some(stat) = stat else { return Ok(()) };
        let exact = scope.children_exact.contains(path);
        // Looked up once (read here, and changed below if a zxid is pinned).
        let id = self.nodes.id(path);
        let Some((id, node)) = id.and_then(|id| Some((id, self.nodes.slot(id)?))) else {
            return Err(format!("{path}: reply has a stat but the node does not exist"));
        };
        let num_children = self.nodes.child_count_id(id) as i32;
        // The zxids are checked on a copy, written back (through `modify`) only if one was
        // pinned; the node itself is not copied (its data would be, for every stat checked).
        let before = (node.czxid, node.mzxid);
        let (mut czxid, mut mzxid) = before;
        let mismatch = |what: &str, want: String, have: String| {
            Err(format!("{path}: reply {what} {want} but the model has {have}"))
        };
        if let Some(v) = stat.version
            && v != node.version
        {
            return mismatch("version", v.to_string(), node.version.to_string());
        }
        if let Some(n) = stat.data_length
            && n as usize != node.data.len()
        {
            return mismatch("data_length", n.to_string(), node.data.len().to_string());
        }
        if let Some(owner) = stat.ephemeral_owner
            && (owner != 0) != node.owner.is_some()
        {
            return mismatch("ephemeral_owner", owner.to_string(), format!("{:?}", node.owner));
        }
        if exact {
            // What a client sees is 2 * creates - children (creates plus deletes), in Java's
            // wrapping int arithmetic (`DataNode.copyStat`).
            let seen = node.cversion.wrapping_mul(2).wrapping_sub(num_children);
            if let Some(c) = stat.cversion
                && c != seen
            {
                return mismatch("cversion", c.to_string(), seen.to_string());
            }
            if let Some(n) = stat.num_children
                && n != num_children
            {
                return mismatch("num_children", n.to_string(), num_children.to_string());
            }
        }
        for (what, seen, known) in
            [("czxid", stat.czxid, &mut czxid), ("mzxid", stat.mzxid, &mut mzxid)]
        {
            match (seen, *known) {
                (Some(s), Some(k)) if s != k => {
                    return mismatch(what, s.to_string(), k.to_string());
                }
                (Some(s), None) => *known = Some(s),
                _ => {}
            }
        }
        if (czxid, mzxid) != before {
            self.modify_id(id, |n| (n.czxid, n.mzxid) = (czxid, mzxid));
        }
        Ok(())
    }

    /// The session owning `path`, if the node exists and is ephemeral.
    pub fn owner(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).and_then(|n| n.owner)
    }

    /// A short description of the state of `paths`, for reports.
    pub fn describe(&self, paths: &BTreeSet<String>) -> String {
        let mut out = Vec::new();
        for path in paths.iter().take(8) {
            match self.nodes.get(path.as_str()) {
                None => out.push(format!("{path}: absent")),
                Some(n) => {
                    let eph = n.owner.map(|o| format!(" ephemeral of p{o}")).unwrap_or_default();
                    out.push(format!("{path}: {:?} v{}{eph}", n.data, n.version));
                }
            }
        }
        if paths.len() > 8 {
            out.push(format!("… {} more paths", paths.len() - 8));
        }
        out.join("; ")
    }
}

/// How an action depends on a path ([`footprint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Reads or writes the node itself (or its children list, or its cversion as a number).
    Node,
    /// Only creates a child with a name of its own under it: needs it to exist and not be
    /// ephemeral, and adds one to its stored cversion. Two such creates commute (an addition
    /// commutes with an addition), and so does one with any op on another child.
    Count,
}

/// The paths an action depends on, with how (`None`: possibly any path, for `close`, whose
/// footprint is its session's ephemerals: the search knows them, the action does not).
///
/// A sequential create reads its parent's cversion (its number), so it touches the parent as
/// a node; a create with a name of its own only counts ([`Touch::Count`]).
pub fn footprint<'a>(action: &'a Action<'_>) -> Option<Vec<(&'a str, Touch)>> {
    let mut v = Vec::new();
    footprint_each(action, &mut |path, how| v.push((path, how))).then_some(v)
}

/// [`footprint`] without collecting it: `each` gets every (path, how) in order; false for a
/// `close` (whose footprint the action does not know; `each` may have seen part of a multi
/// by then). The search lays every op's footprint into one list through this.
pub fn footprint_each<'a>(action: &'a Action<'_>, each: &mut impl FnMut(&'a str, Touch)) -> bool {
    match action {
        Action::Create { path, name, mode, .. } => {
            let parent_path = parent(path).unwrap_or("/");
            let how = if mode.is_sequential() { Touch::Node } else { Touch::Count };
            each(parent_path, how);
            each(name.as_deref().unwrap_or(path), Touch::Node);
        }
        Action::Delete { path, .. }
        | Action::Set { path, .. }
        | Action::Check { path, .. }
        | Action::Get { path }
        | Action::Exists { path }
        | Action::Children { path } => each(path, Touch::Node),
        Action::Sync => {}
        Action::Multi(subs) => {
            for sub in subs {
                if !footprint_each(sub, each) {
                    return false;
                }
            }
        }
        Action::Close { .. } => return false,
    }
    true
}

/// True unless two footprints certainly commute: applying their actions in either order gives
/// the same state and the same outcomes. Ops on one node, or on a node and its child, do not
/// commute (a delete needs no children, a read lists them); creating a child counts against
/// its parent, which conflicts with the parent's own ops (and its parent's) but commutes with
/// other creates of named children and with ops on the other children (the model's cversion
/// counts creates only; deletes leave it, as in ZooKeeper since 3.4).
pub fn footprints_conflict<S: AsRef<str>>(a: &[(S, Touch)], b: &[(S, Touch)]) -> bool {
    let one = |(p, tp): (&str, Touch), (q, tq): (&str, Touch)| -> bool {
        let child_of = |c: &str, p: &str| parent(c) == Some(p);
        match (tp, tq) {
            (Touch::Node, Touch::Node) => p == q || child_of(p, q) || child_of(q, p),
            (Touch::Count, Touch::Count) => false,
            // Counted under `p`; `q` the parent itself or the parent's parent.
            (Touch::Count, Touch::Node) => p == q || child_of(p, q),
            (Touch::Node, Touch::Count) => p == q || child_of(q, p),
        }
    };
    a.iter().any(|(p, tp)| b.iter().any(|(q, tq)| one((p.as_ref(), *tp), (q.as_ref(), *tq))))
}

/// True unless `a` and `b` certainly commute ([`footprints_conflict`]; a `close` conflicts
/// with everything, not knowing its session's ephemerals).
pub fn conflicts(a: &Action, b: &Action) -> bool {
    let (Some(fa), Some(fb)) = (footprint(a), footprint(b)) else { return true };
    footprints_conflict(&fa, &fb)
}

/// True if `code` may come from state outside the scope (a parent not tracked here).
fn unverifiable(scope: &Scope, action: &Action, code: &str) -> bool {
    match action {
        Action::Create { path, .. } => {
            let parent_path = parent(path).unwrap_or("/");
            !scope.paths.contains(parent_path)
                && matches!(code, "NoNode" | "NoChildrenForEphemerals")
        }
        Action::Multi(subs) => subs.iter().any(|sub| unverifiable(scope, sub, code)),
        _ => false,
    }
}

fn action_path<'a>(action: &'a Action<'_>) -> Option<&'a str> {
    match action {
        Action::Create { path, name, .. } => Some(name.as_deref().unwrap_or(path)),
        Action::Delete { path, .. } | Action::Set { path, .. } | Action::Check { path, .. } => {
            Some(path)
        }
        _ => None,
    }
}

fn short_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The sequence number of a sequential `name` created for `prefix`, if it has the ZooKeeper
/// form (the prefix followed by 10 digits).
pub fn sequence_number(prefix: &str, name: &str) -> Option<i64> {
    let suffix = name.strip_prefix(prefix)?;
    if suffix.len() != 10 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse().ok()
}

/// True if `f` is a pure query (never changes the tree).
pub fn is_query(f: F) -> bool {
    matches!(f, F::Get | F::Exists | F::Children)
}

/// `path` followed by `cversion` as `%010d` (the server's sequential suffix: ten characters,
/// the sign counted), what `format!("{path}{cversion:010}")` makes, without the formatting
/// machinery (the model names a node this way on every sequential create it tries). Apart from
/// core's `prep::sequential_name` on purpose: the model must not share the code it checks.
fn sequential_name(path: &str, cversion: i32) -> String {
    let mut digits = [b'0'; 10];
    let mut rest = cversion.unsigned_abs();
    let mut at = digits.len();
    while rest > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let width = if cversion < 0 { 9 } else { 10 };
    let mut out = String::with_capacity(path.len() + 11);
    out.push_str(path);
    if cversion < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at.min(digits.len() - width)..]).expect("digits"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_names_are_what_format_writes() {
        let mut values = vec![i32::MIN, i32::MIN + 1, i32::MAX, 0];
        for digits in 0..10 {
            let p = 10i32.pow(digits);
            values.extend([p - 1, p, p + 1, -p, -p + 1, -p - 1]);
        }
        for v in values {
            assert_eq!(sequential_name("/s/q-", v), format!("/s/q-{v:010}"));
        }
    }

    /// Entries that differ in any one field, or only in where the path ends and the data
    /// begins, hash apart; equal entries hash alike (the memo relies on both).
    #[test]
    fn entry_hash_separates_fields() {
        let node = |data: &str| Znode {
            data: Arc::from(data),
            version: 1,
            cversion: 2,
            czxid: Some(5),
            mzxid: None,
            owner: Some(7),
        };
        let base = entry_hash("/a/b", &node("cd"));
        assert_eq!(base, entry_hash("/a/b", &node("cd")), "deterministic");
        let mut variants = vec![
            entry_hash("/a/bc", &node("d")),
            entry_hash("/a/b", &node("cd\0")),
            entry_hash("/a/b\0", &node("cd")),
            entry_hash("/a/c", &node("cd")),
            entry_hash("/a/b", &node("ce")),
            entry_hash("/a/b/ccccccccccc", &node("")),
            entry_hash("/a/b/cccccccccc", &node("c")),
        ];
        let changes: [fn(&mut Znode); 8] = [
            |n| n.version = 2,
            |n| n.cversion = 1,
            |n| n.czxid = None,
            |n| n.czxid = Some(0),
            |n| n.mzxid = Some(0),
            |n| n.mzxid = Some(5),
            |n| n.owner = None,
            |n| n.owner = Some(0),
        ];
        for change in changes {
            let mut n = node("cd");
            change(&mut n);
            variants.push(entry_hash("/a/b", &n));
        }
        variants.push(base);
        let count = variants.len();
        variants.sort_unstable();
        variants.dedup();
        assert_eq!(variants.len(), count, "every variant hashes apart");
    }

    /// A small generator for the undo tests (SplitMix64: no dependency, the same every run).
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = self.0;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (x ^ (x >> 31)) % n
        }

        fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
            of[self.below(of.len() as u64) as usize]
        }
    }

    /// A random request with a random outcome over a few paths (a parent with plain and
    /// sequential children, a node outside, ephemerals of two sessions): most of them fit
    /// some state, many fail, some fail half-way (a multi's second op, a sequential create
    /// after it moved its parent's cversion).
    fn random_step(d: &mut Draw) -> (u64, Action<'static>, Outcome<'static>) {
        const PATHS: [&str; 5] = ["/a", "/a/b", "/a/c", "/q", "/x"];
        // The replies' stats (borrowed, as from a history): version by 3, then czxid.
        static STATS: std::sync::LazyLock<Vec<Stat>> = std::sync::LazyLock::new(|| {
            let stat = |i: i32| Stat {
                version: Some(i / 3),
                czxid: Some(i64::from(i % 3)),
                ..Stat::default()
            };
            (0..9).map(stat).collect()
        });
        let one = |d: &mut Draw| -> Action<'static> {
            let path = d.pick(&PATHS);
            let version = d.below(3) as i32 - 1;
            let data = d.pick(&["", "1", "22"]);
            match d.below(7) {
                0 | 1 => {
                    let modes = [
                        CreateMode::Persistent,
                        CreateMode::Ephemeral,
                        CreateMode::PersistentSequential,
                        CreateMode::EphemeralSequential,
                    ];
                    let mode = modes[d.below(4) as usize];
                    let (path, name) = if mode.is_sequential() {
                        let prefix = d.pick(&["/q/s-", "/a/s-"]);
                        let name = match d.below(3) {
                            0 => None,
                            n => Some(sequential_name(prefix, d.below(4) as i32 + n as i32 - 1)),
                        };
                        (prefix, name.map(Cow::Owned))
                    } else {
                        (path, Some(Cow::Borrowed(path)))
                    };
                    Action::Create { path, data, mode, name }
                }
                2 => Action::Delete { path, version },
                3 => Action::Set { path, data, version },
                4 => Action::Check { path, version },
                5 => Action::Get { path },
                _ => Action::Children { path },
            }
        };
        let process = d.below(2) + 1;
        let action = match d.below(10) {
            0 | 1 => Action::Multi(vec![one(d), one(d)]),
            2 => Action::Close { session: process },
            _ => one(d),
        };
        let stat = (d.below(2) == 0).then(|| {
            let version = d.below(3) as usize;
            &STATS[version * 3 + d.below(3) as usize]
        });
        let data = (d.below(3) == 0).then(|| d.pick(&["", "1"]));
        let reply = Reply { stat, data, ..Reply::default() };
        let outcome = match d.below(6) {
            0 | 1 => Outcome::Ok { reply, zxid: Some(d.below(50) as i64) },
            2 => Outcome::Ok { reply, zxid: None },
            3 => Outcome::Fail(d.pick(&["NoNode", "NodeExists", "BadVersion", "NotEmpty"])),
            _ => Outcome::Unknown,
        };
        (process, action, outcome)
    }

    /// Steps in place and undo: a step that fails leaves the state as it was, one that
    /// succeeds gives what a step of a copy gives, and going back to a mark gives exactly the
    /// state (nodes, digest, sequence numbers) the mark was taken at, however many steps and
    /// failed tries came between. The search relies on all three instead of copying states.
    #[test]
    fn step_mut_and_undo_give_back_each_state() {
        let scope = Scope {
            paths: ["/", "/a", "/a/b", "/a/c", "/q"].map(String::from).into(),
            children_exact: ["/", "/a", "/q"].map(String::from).into(),
        };
        let initial = vec![("/a".to_string(), "0".to_string(), 0, 0)];
        let relaxed = [
            ModelRelax::default(),
            ModelRelax { loose_seq: true, ..ModelRelax::default() },
            ModelRelax { seq_names: true, ephemerals: true, ..ModelRelax::default() },
        ];
        for (seed, relax) in (1..).zip(relaxed) {
            let mut d = Draw(seed);
            let mut state = Tree::init(&scope, &initial);
            // (mark, a copy of the state at it)
            let mut saved: Vec<(usize, Tree)> = vec![(state.mark(), state.clone())];
            let (mut taken, mut failed, mut undone) = (0, 0, 0);
            for _ in 0..4000 {
                if d.below(4) == 0 && saved.len() > 1 {
                    let back = d.below(saved.len() as u64) as usize;
                    saved.truncate(back + 1);
                    let (mark, copy) = saved.last().expect("kept");
                    state.undo_to(*mark);
                    state.invariants();
                    assert_eq!(state, *copy, "undone to the mark's state");
                    assert_eq!(state.digest, copy.digest, "and its digest");
                    undone += 1;
                    continue;
                }
                let (process, action, outcome) = random_step(&mut d);
                let before = state.clone();
                let copied = before.step(&scope, relax, process, &action, &outcome);
                let mark = state.mark();
                match state.step_mut(&scope, relax, process, &action, &outcome) {
                    Ok(()) => {
                        state.invariants();
                        assert_eq!(Ok(&state), copied.as_ref(), "{action:?} {outcome:?}");
                        saved.push((state.mark(), state.clone()));
                        taken += 1;
                    }
                    Err(why) => {
                        let why = why.to_string();
                        assert_eq!(copied.as_ref().err(), Some(&why), "as a copy fails");
                        assert_eq!(state, before, "a failed step changes nothing: {why}");
                        assert_eq!(state.digest, before.digest, "nor the digest");
                        assert_eq!(state.mark(), mark, "and leaves nothing to undo");
                        failed += 1;
                    }
                }
            }
            assert!(taken > 500 && failed > 500 && undone > 500, "{taken} {failed} {undone}");
        }
    }

    /// A step's reason, written out when read, is the text the reports have always shown.
    #[test]
    fn step_errors_read_as_before() {
        let at = " at its check /a version 0 (/a is absent)".to_string();
        let cases = [
            (
                StepError::NotNumberedHere,
                "no effect here (its number is not the parent's cversion)",
            ),
            (
                StepError::WouldFail { code: "NoNode", at: String::new(), not: None },
                "would fail with NoNode",
            ),
            (
                StepError::WouldFail { code: "BadVersion", at: at.clone(), not: None },
                "would fail with BadVersion at its check /a version 0 (/a is absent)",
            ),
            (
                StepError::WouldFail { code: "NoNode", at, not: Some("NodeExists") },
                "would fail with NoNode at its check /a version 0 (/a is absent), not NodeExists",
            ),
            (StepError::WouldSucceed("NotEmpty"), "would succeed, not fail with NotEmpty"),
            (StepError::NoEffect("NoNode"), "no effect (NoNode)"),
            (
                StepError::Reply("read \"1\" but /a holds \"2\"".into()),
                "read \"1\" but /a holds \"2\"",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    /// The digest follows the nodes through put, modify and take: equal trees reached by
    /// different steps have equal digests, and a changed node changes it.
    #[test]
    fn digest_follows_changes() {
        let node = |data: &str| Znode {
            data: Arc::from(data),
            version: 0,
            cversion: 0,
            czxid: None,
            mzxid: None,
            owner: None,
        };
        let mut a = Tree::default();
        a.put("/x", node("1"));
        a.put("/y", node("2"));
        let mut b = Tree::default();
        b.put("/y", node("0"));
        b.put("/z", node("3"));
        b.put("/x", node("1"));
        assert_ne!(a.digest, b.digest, "different nodes");
        assert!(b.modify("/y", |n| n.data = Arc::from("2")), "/y exists");
        assert!(b.take("/z").is_some(), "/z exists");
        assert_eq!(a.digest, b.digest, "same nodes, same digest");
        assert_eq!(a, b);
    }
}
