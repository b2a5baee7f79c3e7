//! Splitting a history into independent sub-histories (P-compositionality, Horn & Kroening).
//!
//! Each op touches a set of paths (its footprint); paths that some op touches together are
//! merged (union-find) and each resulting set of paths is checked on its own. What links paths:
//! a `create`/`delete` links a node to its parent when the parent's children are observed
//! (`getChildren`, a `delete` of it, or sequential creates under it); a `multi` links all its
//! paths unless it carries a zxid (then its copies are pinned to one point of the zxid order in
//! every partition, which keeps it atomic). `sync` and `close` are copied into every partition
//! of their session where they matter, so they never merge partitions.
//!
//! Invariant: every op that can change or observe a tracked path is in exactly the partitions
//! whose paths it touches, and in each it keeps its invoke/complete positions, so real-time
//! and session order are preserved inside every partition.

use crate::history::{CreateMode, Event, F, History, Op, Outcome, SubOp, definite_error};
use crate::history::{SubResult, SyncZxid, parent};
use crate::model::PathHasher;
use crate::model::{self, Action, Reply, Scope, sequence_number};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

/// One op as placed in a partition.
#[derive(Clone, Debug)]
pub(crate) struct POp<'h> {
    /// Index of the op in `History::ops`.
    pub op: usize,
    /// The process (session).
    pub process: u64,
    /// Event index of the invoke.
    pub inv: usize,
    /// Event index of the completion; `usize::MAX` for `info` (it may take effect any time).
    pub ret: usize,
    /// Must be linearized (ok, or fail with a tree-determined error).
    pub must: bool,
    /// Cannot change the state (queries, syncs, failed writes).
    pub pure: bool,
    /// A query (getData, exists, getChildren): reads are not linearizable in ZooKeeper.
    pub query: bool,
    /// A sync.
    pub sync: bool,
    /// Position in the zxid order: (zxid, 0 for a write at that zxid / 1 for an observation
    /// after it, op id).
    pub key: Option<(i64, u8, usize)>,
    /// The request.
    pub action: Action<'h>,
    /// What came back.
    pub outcome: model::Outcome<'h>,
    /// Alternatives of one indeterminate op (at most one of a group takes effect).
    pub group: Option<usize>,
    /// For an op of unknown outcome: the completion of its session's next acknowledged op.
    /// If it took effect, it did so before then (a session's ops take effect in the order it
    /// issued them), so no write invoked after this may precede it. `usize::MAX`: unbounded.
    pub deadline: usize,
}

/// An independent sub-history.
#[derive(Clone, Debug)]
pub(crate) struct Partition<'h> {
    /// What the model state covers.
    pub scope: Scope,
    /// Ops in invoke order.
    pub ops: Vec<POp<'h>>,
    /// Declared initial nodes in scope: (path, data, version, cversion).
    pub initial: Vec<(String, String, i32, i32)>,
    /// When this is a stretch of a key group (a window): the ephemerals the key group's
    /// sessions may create, before the stretch too (a `close`'s footprint, see
    /// `linear::footprints`). `None`: the ops here are the whole key group.
    pub ephemerals: Option<std::sync::Arc<super::linear::Ephemerals>>,
}

impl<'h> Partition<'h> {
    /// This partition without its ops (its scope, initial nodes and ephemerals).
    pub(crate) fn clone_empty(&self) -> Partition<'h> {
        Partition {
            scope: self.scope.clone(),
            ops: Vec::new(),
            initial: self.initial.clone(),
            ephemerals: self.ephemerals.clone(),
        }
    }
}

/// How partitioning treats ops (set by the diagnosis).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Split {
    /// Use reply zxids of reads to pin them in the zxid order.
    pub use_read_zxids: bool,
    /// Split every multi into independent indeterminate sub-ops (diagnosis only).
    pub multi_not_atomic: bool,
    /// What a sync's reply zxid means. With [`SyncZxid::Exact`] a sync is placed just after
    /// it, and after every op completed before the sync began. With [`SyncZxid::LowerBound`]
    /// and read zxids, syncs are left out of the search: the zxid checks ([`super::zxid`])
    /// hold each read after a sync at or above every acknowledged write completed before the
    /// sync began, and at or above the sync's zxid; in the search the sync would add only
    /// session order, or, bound by real time to the reads and failed writes completed before
    /// it (observations pinned at their zxids), an order a lagging leader does not keep.
    /// Without read zxids a sync stays in the search, unpinned, after every op completed
    /// before it began: the reads after it cannot be checked otherwise.
    pub sync_zxid: SyncZxid,
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

/// Every path a history names, numbered once (a path table, per history): planning's sets,
/// maps and union-find are indexed by a path's number, found with one hash per occurrence,
/// instead of keyed by a copy of the path (a `String` per footprint path and per map entry,
/// compared byte by byte at every level of a `BTreeMap`). Paths are borrowed from the history;
/// only the names built from a children list or for an unrecorded sequential name are owned.
///
/// A path's parent is numbered with it (`parents`), so that planning goes from a path to its
/// parent by index, not by cutting the string and hashing the cut.
#[derive(Default)]
struct Paths<'h> {
    names: Vec<Cow<'h, str>>,
    ids: HashMap<Cow<'h, str>, u32, BuildHasherDefault<PathHasher>>,
    /// Per path number: its parent's number (`None` for `/`).
    parents: Vec<Option<u32>>,
}

impl<'h> Paths<'h> {
    /// The number of `path`, numbering it if it is new.
    fn intern(&mut self, path: &'h str) -> u32 {
        match self.ids.get(path) {
            Some(&id) => id,
            None => self.add(Cow::Borrowed(path)),
        }
    }

    /// [`Paths::intern`] for a path the history does not hold as such (copied if new).
    fn intern_copy(&mut self, path: &str) -> u32 {
        match self.ids.get(path) {
            Some(&id) => id,
            None => self.add(Cow::Owned(path.to_string())),
        }
    }

    fn add(&mut self, path: Cow<'h, str>) -> u32 {
        // The parent first (a borrowed path's parent is borrowed too: a prefix of it).
        let up = match &path {
            Cow::Borrowed(p) => parent(p).map(|q| self.intern(q)),
            Cow::Owned(p) => parent(p).map(|q| self.intern_copy(q)),
        };
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 paths");
        assert!(!self.ids.contains_key(path.as_ref()), "a path is numbered once");
        assert!(up.is_none_or(|u| u < id), "a parent is numbered before its children");
        self.names.push(path.clone());
        self.ids.insert(path, id);
        self.parents.push(up);
        id
    }

    /// The number of the parent of the path numbered `id` (`None` for `/`).
    fn parent(&self, id: u32) -> Option<u32> {
        self.parents[id as usize]
    }

    /// The number of `path`, if it has one.
    fn id(&self, path: &str) -> Option<u32> {
        self.ids.get(path).copied()
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// The path numbered `id` as an action holds it: borrowed from the history when the table
    /// borrowed it, else copied.
    fn name_cow(&self, id: u32) -> Cow<'h, str> {
        match &self.names[id as usize] {
            Cow::Borrowed(name) => Cow::Borrowed(name),
            Cow::Owned(name) => Cow::Owned(name.clone()),
        }
    }
}

/// Which paths have observed children, and which names were seen but never created by an
/// acknowledged create (candidates for the name of an indeterminate sequential create).
/// Paths by their number in the history's [`Paths`].
struct Facts {
    /// Per path number: whether its children are observed (absent: not observed).
    children_observed: Vec<bool>,
    /// Unacknowledged names in name order, with the event index where each was first seen.
    orphans: Vec<(u32, usize)>,
    /// Acknowledged sequential creates per parent: (invoke, completion, sequence number).
    acked_seq: HashMap<u32, Vec<(usize, usize, i64)>, BuildHasherDefault<PathHasher>>,
    /// Per op (by id): the completion of the session's first acknowledged op invoked after it
    /// ([`POp::deadline`]).
    deadlines: Vec<usize>,
    /// The path numbers of every op's sub-operations ([`sub_ops`]), in order, all ops in one
    /// list: op `id`'s are `sub_paths[sub_at[id]..sub_at[id + 1]]`. Numbered once here, while
    /// the history is read for the facts, and not looked up again to build footprints.
    sub_paths: Vec<u32>,
    sub_at: Vec<u32>,
}

impl Facts {
    /// Whether the children of the path numbered `id` are observed.
    fn observed(&self, id: u32) -> bool {
        self.children_observed.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether the children of `path` are observed (a path without a number is not).
    fn observed_path(&self, paths: &Paths, path: &str) -> bool {
        paths.id(path).is_some_and(|id| self.observed(id))
    }

    /// The path numbers of op `id`'s sub-operations, in order.
    fn sub_paths(&self, id: usize) -> &[u32] {
        &self.sub_paths[self.sub_at[id] as usize..self.sub_at[id + 1] as usize]
    }
}

/// Sets `flags[id]`, growing `flags` as needed.
fn flag(flags: &mut Vec<bool>, id: u32) {
    let i = id as usize;
    if flags.len() <= i {
        flags.resize(i + 1, false);
    }
    flags[i] = true;
}

fn facts<'h>(history: &'h History, ops: &[Op], paths: &mut Paths<'h>) -> Facts {
    let mut children_observed: Vec<bool> = Vec::new();
    // Per path number: the event index where its name was first seen (`usize::MAX`: never).
    let mut seen: Vec<usize> = Vec::new();
    let mut created: Vec<bool> = Vec::new();
    let mut acked_seq: HashMap<u32, Vec<(usize, usize, i64)>, _> = HashMap::default();
    let mut joined = String::new();
    let mut sub_paths: Vec<u32> = Vec::with_capacity(ops.len());
    let mut sub_at: Vec<u32> = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        assert_eq!(op.id, sub_at.len(), "ops in id order");
        sub_at.push(u32::try_from(sub_paths.len()).expect("fewer than 2^32 sub-operations"));
        let req = history.request(op);
        let reply = history.reply(op).filter(|_| op.outcome == Outcome::Ok);
        let when = op.complete.unwrap_or(op.invoke);
        let see = |seen: &mut Vec<usize>, id: u32| {
            let i = id as usize;
            if seen.len() <= i {
                seen.resize(i + 1, usize::MAX);
            }
            seen[i] = seen[i].min(when);
        };
        // Only observations that show a node exists count as seeing its name.
        let shows_existence = reply.is_some_and(|r| op.f != F::Exists || r.stat.is_some());
        for sub in sub_ops(req) {
            let id = paths.intern(sub.path);
            sub_paths.push(id);
            if shows_existence && sub.f != F::Create {
                see(&mut seen, id);
            }
            let observed = match sub.f {
                F::Delete | F::Children => Some(id),
                F::Create if sub.mode.unwrap_or_default().is_sequential() => {
                    Some(paths.intern(parent(sub.path).unwrap_or("/")))
                }
                _ => None,
            };
            if let Some(id) = observed {
                flag(&mut children_observed, id);
            }
        }
        if let Some(reply) = reply {
            if let Some(name) = reply.name() {
                flag(&mut created, paths.intern(name));
                let prefix = req.path.as_deref().unwrap_or("");
                if let Some(seq) = sequence_number(prefix, name) {
                    let p = paths.intern(parent(prefix).unwrap_or("/"));
                    acked_seq.entry(p).or_default().push((op.invoke, when, seq));
                }
            }
            for result in reply.results().iter().flatten() {
                if let Some(name) = &result.name {
                    flag(&mut created, paths.intern(name));
                }
            }
            if op.f == F::Create && reply.name().is_none() {
                flag(&mut created, paths.intern(req.path.as_deref().unwrap_or_default()));
            }
            if let (Some(children), Some(path)) = (reply.children(), &req.path) {
                for child in children {
                    join_into(&mut joined, path, child);
                    see(&mut seen, paths.intern_copy(&joined));
                }
            }
        }
    }
    let is_created = |id: usize| created.get(id).copied().unwrap_or(false);
    let mut orphans: Vec<(u32, usize)> = (seen.iter().enumerate())
        .filter(|&(id, &first)| first != usize::MAX && !is_created(id))
        .map(|(id, &first)| (u32::try_from(id).expect("a path number"), first))
        .collect();
    orphans.sort_unstable_by(|a, b| paths.name(a.0).cmp(paths.name(b.0)));
    sub_at.push(u32::try_from(sub_paths.len()).expect("fewer than 2^32 sub-operations"));
    let deadlines = deadlines(history, ops);
    Facts { children_observed, orphans, acked_seq, deadlines, sub_paths, sub_at }
}

/// For each op, the completion of the first acknowledged op (ok, or failed with an error the
/// tree decides) its session invoked after it; `usize::MAX` if none. A session's ops take
/// effect in the order it issued them, so an op of unknown outcome that took effect did so
/// before that completion: this bounds where the search may place it.
fn deadlines(history: &History, ops: &[Op]) -> Vec<usize> {
    let mut deadlines = vec![usize::MAX; ops.len()];
    // Per session, walking back in invoke order: the least completion among later ops.
    let mut order: Vec<&Op> = ops.iter().collect();
    order.sort_by_key(|op| std::cmp::Reverse(op.invoke));
    let mut earliest: model::BySession<usize> = Default::default();
    for op in order {
        assert!(op.id < deadlines.len(), "op ids index the ops");
        deadlines[op.id] = earliest.get(&op.process).copied().unwrap_or(usize::MAX);
        let acknowledged = match op.outcome {
            Outcome::Ok => true,
            Outcome::Fail => {
                let error = history.reply(op).and_then(|r| r.error().as_deref());
                error.and_then(definite_error).is_some()
            }
            Outcome::Info => false,
        };
        if let (true, Some(done)) = (acknowledged, op.complete) {
            let entry = earliest.entry(op.process).or_insert(done);
            *entry = (*entry).min(done);
        }
    }
    deadlines
}

/// Writes the path of `child` under `parent` into `out` (its old content replaced).
fn join_into(out: &mut String, parent: &str, child: &str) {
    out.clear();
    if parent != "/" {
        out.push_str(parent);
    }
    out.push('/');
    out.push_str(child);
}

/// A [`SubOp`] borrowed from the history (converting an op copies its strings once, into
/// its action, instead of into a `SubOp` first).
#[derive(Clone, Copy)]
struct SubRef<'e> {
    f: F,
    path: &'e str,
    data: Option<&'e str>,
    version: Option<i32>,
    mode: Option<CreateMode>,
}

impl<'e> From<&'e SubOp> for SubRef<'e> {
    fn from(sub: &'e SubOp) -> SubRef<'e> {
        let (f, path, data) = (sub.f, sub.path.as_str(), sub.data.as_deref());
        SubRef { f, path, data, version: sub.version, mode: sub.mode }
    }
}

/// The request's sub-operations (one for a plain op), without collecting them: this runs
/// twice per op of every history checked.
fn sub_ops(req: &Event) -> SubOps<'_> {
    match req.f {
        Some(F::Multi) => SubOps::Many(req.ops().as_deref().unwrap_or_default().iter()),
        Some(F::Close) | None => SubOps::One(None),
        Some(f) => SubOps::One(Some(SubRef {
            f,
            path: req.path.as_deref().unwrap_or_default(),
            data: req.data.as_deref(),
            version: req.version,
            mode: req.mode,
        })),
    }
}

/// [`sub_ops`]'s iterator: a plain op's one sub-operation, or a multi's list.
enum SubOps<'e> {
    One(Option<SubRef<'e>>),
    Many(std::slice::Iter<'e, SubOp>),
}

impl<'e> Iterator for SubOps<'e> {
    type Item = SubRef<'e>;

    fn next(&mut self) -> Option<SubRef<'e>> {
        match self {
            SubOps::One(one) => one.take(),
            SubOps::Many(subs) => subs.next().map(SubRef::from),
        }
    }
}

/// The key groups of a history, planned but not yet built: their paths, and where each
/// converted op goes. [`Plan::build`] makes one key group's ops on demand, so a check holds
/// the ops of one key group at a time instead of a converted copy of the whole history
/// next to it (that copy was the largest part of a long check's peak memory).
pub(crate) struct Plan<'h> {
    /// The history's paths, numbered ([`Facts`] and the footprints use the numbers).
    paths: Paths<'h>,
    facts: Facts,
    split: Split,
    /// Per key group: its scope and declared initial nodes (ops are built later).
    shells: Vec<Partition<'h>>,
    /// Per key group, the ids of the ops with a piece in it, ascending.
    members: Vec<Vec<u32>>,
    /// Per op id: where its pieces' key groups start in `targets` (one more entry at the end).
    first: Vec<u32>,
    /// Per converted piece, in op order: its key group.
    targets: Vec<u32>,
    /// Syncs and closes, copied into the key groups that need them ([`spread`]).
    broadcast: Vec<POp<'h>>,
    /// Per session, its syncs' invokes in order, with their index in `broadcast`.
    syncs: BTreeMap<u64, Vec<(usize, usize)>>,
    /// Per converted piece (as `targets`): the piece itself, kept from planning when the
    /// history is short enough ([`KEEP_PIECES_OPS_MAX`]) and moved out by [`Plan::build`];
    /// empty when long histories convert again instead.
    kept: Vec<Option<POp<'h>>>,
}

/// Up to this many ops, [`Plan::new`] keeps the converted pieces for [`Plan::build`] instead
/// of converting every op twice (half of planning's cost). Above it, a check holds one key
/// group's ops at a time (a converted copy of a long history was the largest part of its
/// peak memory); a simulator seed has a few thousand.
const KEEP_PIECES_OPS_MAX: usize = 100_000;

impl<'h> Plan<'h> {
    /// Plans the key groups of a history.
    ///
    /// The paths ops link are merged (union-find) in one pass that converts every op and
    /// keeps only where each piece goes; [`Plan::build`] converts a key group's ops again.
    pub(crate) fn new(history: &'h History, ops: &[Op], split: Split) -> Plan<'h> {
        Plan::with_keep(history, ops, split, ops.len() <= KEEP_PIECES_OPS_MAX)
    }

    /// [`Plan::new`], keeping the converted pieces for [`Plan::build`] or not as `keep` says
    /// (the tests build the same key groups both ways).
    fn with_keep(history: &'h History, ops: &[Op], split: Split, keep: bool) -> Plan<'h> {
        let mut paths = Paths::default();
        let facts = facts(history, ops, &mut paths);
        // Union-find over path numbers; `registered`: the numbers some op links (the key
        // groups' paths).
        let mut uf = UnionFind { parent: Vec::new() };
        let mut registered: Vec<bool> = Vec::new();
        let register = |id: u32, uf: &mut UnionFind, registered: &mut Vec<bool>| -> usize {
            let i = id as usize;
            if uf.parent.len() <= i {
                uf.parent.extend(uf.parent.len()..=i);
            }
            flag(registered, id);
            i
        };
        // Per converted op, in order: a path of it that is registered (its partition's member).
        // Most ops convert to one piece: room for that up front (growing `kept`, pieces of a
        // few hundred bytes each, by doubling copied it a dozen times per history).
        let mut homes: Vec<u32> = Vec::with_capacity(ops.len());
        let mut first: Vec<u32> = Vec::with_capacity(ops.len() + 1);
        let mut broadcast: Vec<POp<'h>> = Vec::new();
        let mut kept: Vec<Option<POp<'h>>> = Vec::with_capacity(if keep { ops.len() } else { 0 });
        // A one-piece op's group of paths, reused from op to op.
        let mut scratch: Vec<u32> = Vec::new();
        for op in ops {
            first.push(u32::try_from(homes.len()).expect("fewer than 2^32 pieces"));
            let link = |ids: &[u32], uf: &mut UnionFind, registered: &mut Vec<bool>| {
                let mut previous = None;
                for &p in ids {
                    let id = register(p, uf, registered);
                    if let Some(previous) = previous {
                        uf.union(previous, id);
                    }
                    previous = Some(id);
                }
            };
            let home = |pop: &POp, hint: Option<u32>, registered: &[bool], paths: &Paths| {
                let is_registered = |id: u32| registered.get(id as usize).copied().unwrap_or(false);
                let index = |path: &str| paths.id(path).filter(|&id| is_registered(id));
                // The hint is the first path `registered_home` tries, by number: almost
                // always registered (the op's footprint holds it), and then the answer.
                let home = hint.filter(|&id| is_registered(id));
                let home = home.or_else(|| registered_home(&pop.action, &index));
                home.expect("every op's paths were registered")
            };
            match convert(history, op, &facts, &mut paths, split, &mut scratch) {
                None => {}
                Some(Converted::Broadcast(pop)) => broadcast.push(pop),
                Some(Converted::One { pop, hint }) => {
                    link(&scratch, &mut uf, &mut registered);
                    homes.push(home(&pop, hint, &registered, &paths));
                    if keep {
                        kept.push(Some(pop));
                    }
                }
                Some(Converted::Owned { pops, links }) => {
                    for ids in links {
                        link(&ids, &mut uf, &mut registered);
                    }
                    for (pop, hint) in pops {
                        homes.push(home(&pop, hint, &registered, &paths));
                        if keep {
                            kept.push(Some(pop));
                        }
                    }
                }
            }
        }
        first.push(u32::try_from(homes.len()).expect("fewer than 2^32 pieces"));
        for node in &history.header.initial {
            if let Some(p) = parent(&node.path)
                && facts.observed_path(&paths, p)
            {
                let (a, b) = (paths.intern(&node.path), paths.intern(p));
                let a = register(a, &mut uf, &mut registered);
                let b = register(b, &mut uf, &mut registered);
                uf.union(a, b);
            }
        }
        let mut roots: BTreeMap<usize, usize> = BTreeMap::new();
        let mut shells: Vec<Partition<'h>> = Vec::new();
        let mut part_of = |id: usize, uf: &mut UnionFind, shells: &mut Vec<Partition<'h>>| -> u32 {
            let root = uf.find(id);
            let p = *roots.entry(root).or_insert_with(|| {
                let empty = Partition {
                    scope: Scope::default(),
                    ops: Vec::new(),
                    initial: vec![],
                    ephemerals: None,
                };
                shells.push(empty);
                shells.len() - 1
            });
            u32::try_from(p).expect("fewer than 2^32 key groups")
        };
        let mut by_path: Vec<(&str, u32)> = (registered.iter().enumerate())
            .filter(|&(_, &r)| r)
            .map(|(id, _)| u32::try_from(id).expect("a path number"))
            .map(|id| (paths.name(id), id))
            .collect();
        by_path.sort_unstable();
        // Each key group's paths arrive in order: listed first and made into sets at once (a
        // set built from a sorted list is laid out in one pass; inserting one path at a time
        // descended the tree comparing strings).
        let mut scopes: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for (path, id) in by_path {
            let p = part_of(id as usize, &mut uf, &mut shells) as usize;
            if scopes.len() <= p {
                scopes.resize_with(p + 1, Default::default);
            }
            let (paths, exact) = &mut scopes[p];
            assert!(paths.last().is_none_or(|last| last.as_str() < path), "paths in order");
            paths.push(path.to_string());
            if facts.observed(id) {
                exact.push(path.to_string());
            }
        }
        for (shell, (paths, exact)) in shells.iter_mut().zip(scopes) {
            shell.scope.paths = paths.into_iter().collect();
            shell.scope.children_exact = exact.into_iter().collect();
        }
        let targets: Vec<u32> =
            homes.into_iter().map(|home| part_of(home as usize, &mut uf, &mut shells)).collect();
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); shells.len()];
        for (id, w) in first.windows(2).enumerate() {
            for &t in &targets[w[0] as usize..w[1] as usize] {
                let list = &mut members[t as usize];
                let id = u32::try_from(id).expect("fewer than 2^32 ops");
                if list.last() != Some(&id) {
                    list.push(id);
                }
            }
        }
        for part in &mut shells {
            for node in &history.header.initial {
                if part.scope.paths.contains(&node.path) {
                    let n = (node.path.clone(), node.data.clone(), node.version, node.cversion);
                    part.initial.push(n);
                }
            }
        }
        let mut syncs: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, pop) in broadcast.iter().enumerate().filter(|(_, p)| p.sync) {
            syncs.entry(pop.process).or_default().push((pop.inv, i));
        }
        for list in syncs.values_mut() {
            list.sort_unstable();
        }
        assert!(kept.is_empty() || kept.len() == targets.len(), "a kept piece per target");
        Plan { paths, facts, split, shells, members, first, targets, broadcast, syncs, kept }
    }

    /// The number of key groups planned (some may turn out empty: [`Plan::build`] says).
    pub(crate) fn len(&self) -> usize {
        self.shells.len()
    }

    /// Builds key group `k`: its ops converted again, with the syncs and closes it needs, in
    /// invoke order. `None` if no op of the history lands in it. Each key group is built at
    /// most once (its kept pieces move into it).
    pub(crate) fn build(
        &mut self,
        history: &'h History,
        ops: &[Op],
        k: usize,
    ) -> Option<Partition<'h>> {
        let members = &self.members[k];
        if members.is_empty() {
            return None;
        }
        // Taken, not copied: a key group is built once, and nothing reads its shell after
        // (a copy of its scope's two sets of paths per key group, and their drop at the end).
        let taken = Partition {
            scope: Scope::default(),
            ops: Vec::new(),
            initial: Vec::new(),
            ephemerals: None,
        };
        let mut part = std::mem::replace(&mut self.shells[k], taken);
        assert!(part.ops.is_empty(), "a shell holds no ops");
        assert!(!part.scope.paths.is_empty(), "each key group is built once");
        let target = u32::try_from(k).expect("fewer than 2^32 key groups");
        // Room for exactly the pieces that land here: an op of unknown outcome may put several
        // alternatives in one key group, and growing the list by doubling from the member
        // count copied a long key group's pieces (a few hundred bytes each) several times.
        let pieces_of = |id: u32| {
            let (from, to) =
                (self.first[id as usize] as usize, self.first[id as usize + 1] as usize);
            self.targets[from..to].iter().filter(|&&t| t == target).count()
        };
        let pieces: usize = members.iter().map(|&id| pieces_of(id)).sum();
        assert!(pieces >= members.len(), "every member has a piece here");
        if !self.kept.is_empty() {
            self.build_kept(&mut part, k, pieces);
            return Some(part);
        }
        part.ops.reserve_exact(pieces);
        let mut scratch: Vec<u32> = Vec::new(); // the groups of paths, not needed here
        for &id in members {
            let op = &ops[id as usize];
            let from = self.first[op.id] as usize;
            let (facts, split) = (&self.facts, self.split);
            let converted = convert(history, op, facts, &mut self.paths, split, &mut scratch);
            let pops = match converted {
                Some(Converted::Owned { pops, .. }) => pops,
                Some(Converted::One { pop, hint }) => vec![(pop, hint)],
                _ => unreachable!("an op with pieces converts to pieces again"),
            };
            for (j, (pop, _)) in pops.into_iter().enumerate() {
                if self.targets[from + j] == target {
                    part.ops.push(pop);
                }
            }
        }
        spread(&mut part, &self.broadcast, &self.syncs);
        part.ops.sort_by_key(|pop| (pop.inv, pop.op));
        part.ops.shrink_to_fit();
        Some(part)
    }

    /// [`Plan::build`] from the kept pieces: the syncs and closes the key group needs are
    /// found first, so the list is sized once for all (adding them after the pieces grew it,
    /// a copy of every piece, and the shrink after could copy again), and the two lists are
    /// merged in invoke order instead of sorted. Both are already in that order: the
    /// members' pieces in op id order (an op's id is its place in invoke order, and one op's
    /// pieces keep their order), the broadcast ones likewise; a sync or close is never a
    /// member's piece, so the two never tie.
    fn build_kept(&mut self, part: &mut Partition<'h>, k: usize, pieces: usize) {
        let target = u32::try_from(k).expect("fewer than 2^32 key groups");
        let members = &self.members[k];
        let (first, targets) = (&self.first, &self.targets);
        let here = |id: &u32| {
            let (from, to) = (first[*id as usize] as usize, first[*id as usize + 1] as usize);
            (from..to).filter(move |&j| targets[j] == target)
        };
        let kept = &self.kept;
        let mine = members.iter().flat_map(here).map(|j| kept[j].as_ref().expect("not built"));
        let wanted = wanted(mine, &self.broadcast, &self.syncs);
        let total = pieces + wanted.len();
        part.ops.reserve_exact(total);
        let mut extra = wanted.into_iter().map(|i| &self.broadcast[i]).peekable();
        for &id in members {
            let (from, to) = (first[id as usize] as usize, first[id as usize + 1] as usize);
            for j in (from..to).filter(|&j| targets[j] == target) {
                let pop = self.kept[j].take().expect("each key group is built once");
                assert_eq!(pop.op, id as usize, "a kept piece belongs to its op");
                while let Some(b) = extra.next_if(|b| (b.inv, b.op) < (pop.inv, pop.op)) {
                    part.ops.push(b.clone());
                }
                part.ops.push(pop);
            }
        }
        part.ops.extend(extra.cloned());
        assert_eq!(part.ops.len(), total, "every piece here and every sync or close it needs");
        assert!(part.ops.is_sorted_by_key(|pop| (pop.inv, pop.op)), "merged in invoke order");
    }
}

/// Builds every partition of a history (the diagnosis's splits; the check itself builds one
/// at a time through [`Plan`]).
pub(crate) fn partitions<'h>(history: &'h History, ops: &[Op], split: Split) -> Vec<Partition<'h>> {
    let mut plan = Plan::new(history, ops, split);
    (0..plan.len()).filter_map(|k| plan.build(history, ops, k)).collect()
}

/// Copies into `part` each `sync` after which its session reads there (before its next sync),
/// and each `close` of a session that created ephemerals there.
///
/// A sync changes no state and orders only its session's later ops, and of those only the
/// reads need it: a later write of the session is bound to come after everything completed
/// before it began by real time already, and so is anything ordered after the sync. A read's
/// constraint is its session's latest sync before it (a later sync of the session sees at
/// least what an earlier one saw, as it began after it completed), so a partition needs only
/// the syncs that are the latest before one of its reads; without them, any order of its ops
/// has room for the sync at its zxid (the zxid checks see a sync whose zxid goes back in its
/// session). Copying every sync into every partition of its session made the partitions of a
/// long history with many paths several times larger than its ops.
fn spread<'h>(
    part: &mut Partition<'h>,
    broadcast: &[POp<'h>],
    syncs: &BTreeMap<u64, Vec<(usize, usize)>>,
) {
    let wanted = wanted(&part.ops, broadcast, syncs);
    part.ops.reserve_exact(wanted.len());
    part.ops.extend(wanted.into_iter().map(|i| broadcast[i].clone()));
}

/// The syncs and closes ([`spread`]) a key group of these ops needs: their indices in
/// `broadcast`, ascending.
fn wanted<'p, 'h: 'p>(
    ops: impl IntoIterator<Item = &'p POp<'h>> + Clone,
    broadcast: &[POp<'h>],
    syncs: &BTreeMap<u64, Vec<(usize, usize)>>,
) -> BTreeSet<usize> {
    let mut wanted: BTreeSet<usize> = BTreeSet::new();
    for p in ops.clone().into_iter().filter(|p| p.query) {
        let Some(list) = syncs.get(&p.process) else { continue };
        let before = list.partition_point(|&(inv, _)| inv < p.inv);
        if let Some(&(_, i)) = before.checked_sub(1).map(|b| &list[b]) {
            wanted.insert(i);
        }
    }
    let owners: BTreeSet<u64> =
        (ops.into_iter()).filter(|p| creates_ephemeral(&p.action)).map(|p| p.process).collect();
    let closes = broadcast.iter().enumerate().filter(|(_, pop)| {
        matches!(pop.action, Action::Close { .. }) && owners.contains(&pop.process)
    });
    wanted.extend(closes.map(|(i, _)| i));
    wanted
}

fn creates_ephemeral(action: &Action) -> bool {
    match action {
        Action::Create { mode, .. } => mode.is_ephemeral(),
        Action::Multi(subs) => subs.iter().any(creates_ephemeral),
        _ => false,
    }
}

impl<'h> POp<'h> {
    /// An acknowledged write other than a session close: one that bounds when ops of unknown
    /// outcome may still take effect ([`POp::deadline`]).
    pub(crate) fn acked_write(&self) -> bool {
        self.must && !self.pure && !matches!(self.action, Action::Close { .. })
    }

    /// One of the named alternatives of a sequential create of unknown outcome (a name seen
    /// later); its alternative without a name is not one.
    pub(crate) fn named_alternative(&self) -> bool {
        self.group.is_some() && matches!(self.action, Action::Create { name: Some(_), .. })
    }

    /// A multi as independent pieces of unknown outcome, one per sub-op (what a multi that
    /// is not atomic would look like); any other op as it is. For the diagnosis only.
    ///
    /// A failed multi keeps its whole self too, as the observation it is: its error says what
    /// state it met. Partial application lets pieces take effect; it does not excuse a multi
    /// that failed against a state no order has (a lost write, e.g. a BadVersion from a
    /// cut-off leader where the committed history has NoNode): that stays unexplained and is
    /// named write linearizability.
    pub(crate) fn multi_pieces(&self) -> Vec<POp<'h>> {
        let Action::Multi(subs) = &self.action else { return vec![self.clone()] };
        let mut pieces: Vec<POp<'h>> = Vec::new();
        if self.failed_multi() {
            pieces.push(self.clone());
        }
        let piece = |sub: &Action<'h>| POp {
            action: Action::Multi(vec![sub.clone()]),
            outcome: model::Outcome::Unknown,
            must: false,
            pure: false,
            ret: usize::MAX,
            key: None,
            ..self.clone()
        };
        pieces.extend(subs.iter().map(piece));
        pieces
    }

    /// A multi that definitely failed: it changed nothing, and its error is an observation.
    pub(crate) fn failed_multi(&self) -> bool {
        let failed = matches!(self.outcome, model::Outcome::Fail(_));
        failed && self.must && matches!(self.action, Action::Multi(_))
    }
}

/// The number of the first of `action`'s paths ([`action_paths`], in that order) that
/// `index` numbers, without copying the paths.
fn registered_home(action: &Action, index: &impl Fn(&str) -> Option<u32>) -> Option<u32> {
    match action {
        Action::Create { path, name, mode, .. } => {
            if mode.is_sequential() {
                index(parent(path).unwrap_or("/"))
            } else {
                index(name.as_deref().unwrap_or(path))
            }
        }
        Action::Delete { path, .. }
        | Action::Set { path, .. }
        | Action::Check { path, .. }
        | Action::Get { path }
        | Action::Exists { path }
        | Action::Children { path } => index(path),
        Action::Multi(subs) => subs.iter().find_map(|sub| registered_home(sub, index)),
        Action::Sync | Action::Close { .. } => None,
    }
}

/// The number of the first path [`registered_home`] looks at, from the numbers of the action's
/// request paths (`ids`, as for [`footprint`]); `None` when that path is not one of them (a
/// create whose recorded name differs from its path: the lookup by string decides).
fn home_hint(action: &Action, ids: &[u32], paths: &Paths) -> Option<u32> {
    match action {
        Action::Create { mode, .. } if mode.is_sequential() => paths.parent(ids[0]),
        Action::Create { path, name, .. } => {
            name.as_ref().is_none_or(|name| name == path).then_some(ids[0])
        }
        Action::Delete { .. }
        | Action::Set { .. }
        | Action::Check { .. }
        | Action::Get { .. }
        | Action::Exists { .. }
        | Action::Children { .. } => Some(ids[0]),
        Action::Multi(subs) => home_hint(subs.first()?, &ids[..1], paths),
        Action::Sync | Action::Close { .. } => None,
    }
}

/// The paths [`registered_home`] looks for, in its order (its test's reference).
#[cfg(test)]
fn action_paths(action: &Action) -> Vec<String> {
    match action {
        Action::Create { path, name, mode, .. } => {
            if mode.is_sequential() {
                vec![parent(path).unwrap_or("/").to_string()]
            } else {
                vec![name.as_deref().unwrap_or(path).to_string()]
            }
        }
        Action::Delete { path, .. }
        | Action::Set { path, .. }
        | Action::Check { path, .. }
        | Action::Get { path }
        | Action::Exists { path }
        | Action::Children { path } => vec![path.to_string()],
        Action::Multi(subs) => subs.iter().flat_map(action_paths).collect(),
        Action::Sync | Action::Close { .. } => Vec::new(),
    }
}

enum Converted<'h> {
    /// Ops (one, or several alternatives / per-path pieces) with the groups of paths (by
    /// number) that must share a partition.
    /// Each op comes with the number of the path [`registered_home`] looks at first
    /// ([`home_hint`]).
    Owned { pops: Vec<(POp<'h>, Option<u32>)>, links: Vec<Vec<u32>> },
    /// [`Converted::Owned`] for the usual op: one piece, with its one group of paths in the
    /// caller's list (`convert`'s `links`). Three lists per op (the pieces, the groups, the
    /// group) were three allocations, and the piece was copied into and out of one.
    One { pop: POp<'h>, hint: Option<u32> },
    /// Copied into partitions later.
    Broadcast(POp<'h>),
}

/// Turns a paired op into partition ops; `None` drops it (it cannot matter: a failed op with
/// an error that says nothing about the tree, an indeterminate query, or a sync whose zxid is
/// a lower bound, which the zxid checks handle: [`Split::sync_zxid`]).
fn convert<'h>(
    history: &'h History,
    op: &Op,
    facts: &Facts,
    paths: &mut Paths<'h>,
    split: Split,
    links: &mut Vec<u32>,
) -> Option<Converted<'h>> {
    let req = history.request(op);
    let reply = history.reply(op);
    let zxid = reply.and_then(|r| r.zxid);
    let query = model::is_query(op.f);
    let exact_sync = split.sync_zxid == SyncZxid::Exact;
    if op.f == F::Sync && !exact_sync && split.use_read_zxids {
        return None; // the zxid checks hold the session's reads to it (see `Split::sync_zxid`)
    }
    let outcome = match op.outcome {
        Outcome::Ok => model::Outcome::Ok {
            reply: reply_facts(reply.expect("ok has a reply")),
            zxid: zxid.filter(|_| !query && op.f != F::Sync),
        },
        Outcome::Fail => {
            let code = reply.and_then(|r| r.error().as_deref()).and_then(definite_error)?;
            model::Outcome::Fail(code)
        }
        Outcome::Info if query || op.f == F::Sync => return None,
        Outcome::Info => model::Outcome::Unknown,
    };
    let must = op.outcome != Outcome::Info;
    let pure = query || op.f == F::Sync || op.outcome == Outcome::Fail;
    let pinned = if op.f == F::Sync { exact_sync } else { split.use_read_zxids || !query };
    let key = match (op.outcome, zxid) {
        (Outcome::Ok, Some(z)) if !pure => Some((z, 0, op.id)),
        (Outcome::Ok | Outcome::Fail, Some(z)) if pinned => Some((z, 1, op.id)),
        _ => None,
    };
    let base = POp {
        op: op.id,
        process: op.process,
        inv: op.invoke,
        ret: op.complete.filter(|_| must).unwrap_or(usize::MAX),
        must,
        pure,
        query,
        sync: op.f == F::Sync,
        key,
        action: Action::Sync,
        outcome,
        group: None,
        deadline: if must { op.complete.unwrap_or(usize::MAX) } else { facts.deadlines[op.id] },
    };
    match op.f {
        F::Sync => return Some(Converted::Broadcast(base)),
        F::Close => {
            let action = Action::Close { session: op.process };
            return Some(Converted::Broadcast(POp { action, ..base }));
        }
        _ => {}
    }
    let ok_reply = reply.filter(|_| op.outcome == Outcome::Ok);
    if op.f == F::Multi {
        // The names the multi's creates got, by sub-operation.
        let results: &[SubResult] =
            ok_reply.and_then(|r| r.results().as_deref()).unwrap_or_default();
        let name = |i: usize| results.get(i).and_then(|r| r.name.as_deref()).map(Cow::Borrowed);
        let subs = sub_ops(req).enumerate();
        let actions: Vec<Action<'h>> = subs.map(|(i, sub)| to_action(sub, name(i))).collect();
        let ids = facts.sub_paths(op.id);
        return Some(convert_multi(base, actions, ids, facts, paths, split, links));
    }
    let name = ok_reply.and_then(|r| r.name().as_deref()).map(Cow::Borrowed);
    let mut action = sub_ops(req).next().map(|sub| to_action(sub, name))?;
    if let Action::Create { path, mode, name, .. } = &mut action
        && mode.is_sequential()
        && name.is_none()
        && op.outcome == Outcome::Ok
    {
        // An acknowledged sequential create whose name was not recorded: a name nobody saw.
        *name = Some(Cow::Owned(format!("{path}?{}", op.id)));
    }
    let ids = facts.sub_paths(op.id);
    links.clear();
    footprint_ids(&action, ids, facts, paths, links);
    if let Action::Create { path, mode, name: None, .. } = &action
        && mode.is_sequential()
        && op.outcome == Outcome::Info
    {
        // The name an indeterminate sequential create got is unknown: try every name first
        // seen after its invoke, never acknowledged, and numbered above every acknowledged
        // name before its invoke. Its node may also never have been seen and still have
        // changed what others see: the parent's cversion and child count, shown in any stat
        // of the parent, count it while it exists and after it is gone (deleted by an op of
        // unknown outcome, or with its session if ephemeral). So one more alternative leaves
        // the name to the model, which takes the parent's cversion where it is placed.
        // The op's id names its group: unique, and the same however often it is converted.
        let group = Some(op.id);
        let mut pops = Vec::new();
        // Numbers acknowledged before its invoke are below its own; numbers of creates invoked
        // after its deadline (by which it had taken effect, if ever) are above it.
        let acked = (paths.id(parent(path).unwrap_or("/"))).and_then(|p| facts.acked_seq.get(&p));
        let acked = acked.map(Vec::as_slice).unwrap_or_default();
        let floor = (acked.iter()).filter(|a| a.1 < op.invoke).map(|a| a.2).max().unwrap_or(-1);
        let deadline = base.deadline;
        let ceiling = (acked.iter()).filter(|a| a.0 > deadline).map(|a| a.2).min();
        let ceiling = ceiling.unwrap_or(i64::MAX);
        let candidates = facts.orphans.iter().filter(|&&(n, first)| {
            first > op.invoke
                && sequence_number(path, paths.name(n))
                    .is_some_and(|seq| seq > floor && seq < ceiling)
        });
        for &(candidate, _) in candidates {
            let mut alt = action.clone();
            if let Action::Create { name: n, .. } = &mut alt {
                *n = Some(paths.name_cow(candidate));
            }
            links.push(candidate);
            let hint = home_hint(&alt, ids, paths);
            pops.push((POp { action: alt, group, ..base.clone() }, hint));
        }
        let hint = home_hint(&action, ids, paths);
        pops.push((POp { action, group, ..base }, hint));
        return Some(Converted::Owned { pops, links: vec![links.clone()] });
    }
    let hint = home_hint(&action, ids, paths);
    Some(Converted::One { pop: POp { action, ..base }, hint })
}

fn convert_multi<'h>(
    base: POp<'h>,
    actions: Vec<Action<'h>>,
    ids: &[u32],
    facts: &Facts,
    paths: &mut Paths<'h>,
    split: Split,
    links: &mut Vec<u32>,
) -> Converted<'h> {
    let keyed_ok = base.key.is_some() && !base.pure;
    if split.multi_not_atomic || keyed_ok {
        // One piece per sub-op; a keyed ok multi keeps all pieces at its zxid.
        let mut pops = Vec::new();
        let mut links = Vec::new();
        if split.multi_not_atomic && matches!(base.outcome, model::Outcome::Fail(_)) && base.must {
            // A failed multi stays an observation ([`POp::multi_pieces`]).
            let whole = Action::Multi(actions.clone());
            links.push(footprint(&whole, ids, facts, paths));
            let hint = home_hint(&whole, ids, paths);
            pops.push((POp { action: whole, ..base.clone() }, hint));
        }
        let results = match &base.outcome {
            model::Outcome::Ok { reply, .. } => reply.results,
            _ => None,
        };
        for (i, action) in actions.into_iter().enumerate() {
            let piece_ids = &ids[i..=i];
            links.push(footprint(&action, piece_ids, facts, paths));
            let outcome = match (&base.outcome, split.multi_not_atomic) {
                (_, true) => model::Outcome::Unknown,
                (model::Outcome::Ok { zxid, .. }, false) => {
                    // Its own result, borrowed as a list of one.
                    let result = results.and_then(|r| r.get(i..=i));
                    let reply = Reply { results: result, ..Reply::default() };
                    model::Outcome::Ok { reply, zxid: *zxid }
                }
                (other, false) => other.clone(),
            };
            let must = base.must && !split.multi_not_atomic;
            let ret = if must { base.ret } else { usize::MAX };
            let key = base.key.filter(|_| must);
            let action = Action::Multi(vec![action]);
            let hint = home_hint(&action, piece_ids, paths);
            let piece = POp { action, outcome, must, ret, key, pure: false, ..base.clone() };
            pops.push((piece, hint));
        }
        return Converted::Owned { pops, links };
    }
    let action = Action::Multi(actions);
    links.clear();
    footprint_ids(&action, ids, facts, paths, links);
    let hint = home_hint(&action, ids, paths);
    Converted::One { pop: POp { action, ..base }, hint }
}

/// Paths an action touches (by number), parent first when the parent's children are observed.
/// `ids` are the numbers of the action's paths as its op's request gives them (for a multi,
/// one per sub-operation; [`Facts::sub_paths`]): paths and parents are found by number, and
/// only a sequential create's name is looked up by its string.
fn footprint(action: &Action, ids: &[u32], facts: &Facts, paths: &mut Paths) -> Vec<u32> {
    // Room for what the action can name (a sub-op names at most three: a multi's create its
    // parent twice and its own path), so the list is allocated once, not grown from empty.
    let most = match action {
        Action::Multi(subs) => 3 * subs.len(),
        _ => 2,
    };
    let mut out = Vec::with_capacity(most);
    footprint_ids(action, ids, facts, paths, &mut out);
    out
}

/// [`footprint_into`] with the path numbers given (see [`footprint`]).
fn footprint_ids(
    action: &Action,
    ids: &[u32],
    facts: &Facts,
    paths: &mut Paths,
    out: &mut Vec<u32>,
) {
    let observed_parent = |paths: &Paths, id: u32| paths.parent(id).filter(|&p| facts.observed(p));
    match action {
        Action::Create { path, name, mode, .. } => {
            let id = ids[0];
            debug_assert_eq!(paths.name(id), *path, "the number of the create's path");
            out.extend(observed_parent(paths, id));
            if !mode.is_sequential() {
                out.push(id);
            } else if let Some(name) = name {
                out.push(paths.intern_copy(name));
            }
        }
        Action::Delete { .. } => {
            out.extend(observed_parent(paths, ids[0]));
            out.push(ids[0]);
        }
        Action::Multi(subs) => {
            assert_eq!(subs.len(), ids.len(), "a number per sub-operation");
            for (sub, id) in subs.iter().zip(ids) {
                // As in `footprint_into`: a create's parent, unless it is the root.
                if let Action::Create { .. } = sub
                    && let Some(p) = paths.parent(*id).filter(|&p| paths.name(p) != "/")
                {
                    out.push(p);
                }
                footprint_ids(sub, std::slice::from_ref(id), facts, paths, out);
            }
        }
        Action::Set { .. }
        | Action::Check { .. }
        | Action::Get { .. }
        | Action::Exists { .. }
        | Action::Children { .. } => out.push(ids[0]),
        Action::Sync | Action::Close { .. } => {}
    }
}

/// The reference for [`footprint_ids`]: the same, each path looked up by its string.
#[cfg(test)]
fn footprint_into(action: &Action, facts: &Facts, paths: &mut Paths, out: &mut Vec<u32>) {
    match action {
        Action::Create { path, name, mode, .. } => {
            let parent_path = parent(path).unwrap_or("/");
            out.extend(paths.id(parent_path).filter(|&p| facts.observed(p)));
            if !mode.is_sequential() {
                out.push(paths.intern_copy(path));
            } else if let Some(name) = name {
                out.push(paths.intern_copy(name));
            }
        }
        Action::Delete { path, .. } => {
            let parent_path = parent(path).unwrap_or("/");
            out.extend(paths.id(parent_path).filter(|&p| facts.observed(p)));
            out.push(paths.intern_copy(path));
        }
        Action::Multi(subs) => {
            for sub in subs {
                // A multi's result codes are checked op by op: a create's NONODE vs success
                // depends on its parent, so the parent must be in the same partition, unless
                // it is the root (there all along; linking it would merge every partition).
                if let Action::Create { path, .. } = sub
                    && let Some(p) = parent(path).filter(|p| *p != "/")
                {
                    out.push(paths.intern_copy(p));
                }
                footprint_into(sub, facts, paths, out);
            }
        }
        Action::Set { path, .. }
        | Action::Check { path, .. }
        | Action::Get { path }
        | Action::Exists { path }
        | Action::Children { path } => out.push(paths.intern_copy(path)),
        Action::Sync | Action::Close { .. } => {}
    }
}

fn to_action<'h>(sub: SubRef<'h>, name: Option<Cow<'h, str>>) -> Action<'h> {
    let path = sub.path;
    let data = sub.data.unwrap_or_default();
    let version = sub.version.unwrap_or(-1);
    match sub.f {
        F::Create => {
            let mode = sub.mode.unwrap_or(CreateMode::Persistent);
            Action::Create { path, data, mode, name }
        }
        F::Delete => Action::Delete { path, version },
        F::Set => Action::Set { path, data, version },
        F::Check => Action::Check { path, version },
        F::Get => Action::Get { path },
        F::Exists => Action::Exists { path },
        F::Children => Action::Children { path },
        F::Sync | F::Multi | F::Close => unreachable!("not a sub-operation: validated"),
    }
}

/// The reply's facts, borrowed from the history; only children recorded out of order are
/// copied (sorted, as the model lists them).
fn reply_facts(reply: &Event) -> Reply<'_> {
    let children = reply.children().as_deref().map(|c| {
        if c.is_sorted() {
            Cow::Borrowed(c)
        } else {
            let mut sorted = c.to_vec();
            sorted.sort();
            Cow::Owned(sorted)
        }
    });
    Reply {
        stat: reply.stat.as_deref(),
        data: reply.data.as_deref(),
        children,
        results: reply.results().as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    /// A key group built from the kept pieces (sized once, merged with its syncs and closes
    /// in invoke order) is the key group built by converting its ops again and sorting (the
    /// way long histories go): the same ops in the same order, the same scope and initial
    /// nodes; over generated histories with syncs, closes, ephemerals, multis and ops of
    /// unknown outcome, with and without read zxids, both meanings of a sync's zxid.
    #[test]
    fn kept_pieces_build_what_converting_again_builds() {
        let (mut groups, mut merged) = (0, 0);
        for seed in 1..=6 {
            let config = crate::generate::Config {
                ops: 1500,
                paths: 6,
                sessions: 6,
                info_rate: 0.1,
                seed,
                close_rate: 0.03,
                multi_rate: 0.05,
                ..Default::default()
            };
            let history = crate::generate::generate(&config);
            let ops = history.ops();
            for (use_read_zxids, sync_zxid) in
                [(true, SyncZxid::Exact), (true, SyncZxid::LowerBound), (false, SyncZxid::Exact)]
            {
                let split = Split { use_read_zxids, multi_not_atomic: false, sync_zxid };
                let mut kept = Plan::with_keep(&history, &ops, split, true);
                let mut again = Plan::with_keep(&history, &ops, split, false);
                assert!(!kept.kept.is_empty() && again.kept.is_empty(), "the two ways");
                assert_eq!(kept.len(), again.len(), "the same key groups planned");
                for k in 0..kept.len() {
                    let (a, b) = (kept.build(&history, &ops, k), again.build(&history, &ops, k));
                    let (Some(a), Some(b)) = (a, b) else {
                        assert!(again.members[k].is_empty(), "both empty or neither");
                        continue;
                    };
                    groups += 1;
                    assert_eq!(a.scope.paths, b.scope.paths, "seed {seed} key group {k}");
                    let exact = (&a.scope.children_exact, &b.scope.children_exact);
                    assert_eq!(exact.0, exact.1, "seed {seed} key group {k}");
                    assert_eq!(a.initial, b.initial, "seed {seed} key group {k}");
                    assert_eq!(format!("{:?}", a.ops), format!("{:?}", b.ops), "seed {seed} {k}");
                    // A sync or close that is not the last op: the merge placed it inside.
                    let last = a.ops.len() - 1;
                    let broadcast = |p: &POp| p.sync || matches!(p.action, Action::Close { .. });
                    merged += a.ops[..last].iter().filter(|p| broadcast(p)).count();
                }
            }
        }
        assert!(groups > 50, "key groups compared: {groups}");
        assert!(merged > 20, "syncs and closes merged before a key group's end: {merged}");
    }

    /// The session maps' hash spreads keys over the low bits (the bucket) and the high bits
    /// (the tag) for small process ids, large ones, and ids differing only in high bits.
    #[test]
    fn session_hash_spreads_process_ids() {
        let hash = |x: u64| {
            let mut h = model::SessionHasher::default();
            h.write_u64(x);
            h.finish()
        };
        let keys: Vec<u64> =
            (0..4096).chain((0..60).map(|b| 1u64 << b)).chain([u64::MAX]).collect();
        let low: BTreeSet<u64> = keys.iter().map(|&k| hash(k) & 0xFFFF).collect();
        let high: BTreeSet<u64> = keys.iter().map(|&k| hash(k) >> 57).collect();
        assert!(low.len() > keys.len() * 9 / 10, "low bits spread: {}", low.len());
        assert_eq!(high.len(), 128, "every tag used");
        // And the map finds what a BTreeMap finds.
        let mut map: model::BySession<usize> = Default::default();
        let mut tree: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, &k) in keys.iter().enumerate().chain(keys.iter().enumerate().step_by(7)) {
            *map.entry(k).or_default() += i;
            *tree.entry(k).or_default() += i;
        }
        assert_eq!(map.len(), tree.len(), "one entry per process");
        assert!(tree.iter().all(|(k, v)| map.get(k) == Some(v)), "the same values");
    }

    /// A path has one number however it is given (borrowed from the history or built, as a
    /// child's path from a children list is), numbers are dense, and each names its path.
    #[test]
    fn paths_number_each_path_once() {
        let history_paths: Vec<String> = ["/a", "/a/b", "/", "/a"].map(String::from).into();
        let mut paths = Paths::default();
        let ids: Vec<u32> = history_paths.iter().map(|p| paths.intern(p)).collect();
        // A path's parent is numbered first ("/" before "/a").
        assert_eq!(ids, vec![1, 2, 0, 1], "the same path, the same number");
        let mut built = String::new();
        join_into(&mut built, "/a", "b");
        assert_eq!(paths.intern_copy(&built), 2, "a built path finds the borrowed one");
        join_into(&mut built, "/", "c");
        assert_eq!(built, "/c", "a child of the root");
        assert_eq!(paths.intern_copy(&built), 3, "a new path takes the next number");
        assert_eq!(paths.id("/c"), Some(3));
        assert_eq!(paths.id("/d"), None, "an unknown path has no number");
        for (id, name) in [(0, "/"), (1, "/a"), (2, "/a/b"), (3, "/c")] {
            assert_eq!(paths.name(id), name);
        }
    }

    /// The table's hash tells apart paths that differ in one byte, in their length only
    /// (trailing zero bytes), or across the eight-byte boundary.
    #[test]
    fn path_hash_separates_paths() {
        use std::hash::Hash;
        let hash = |p: &str| {
            let mut h = PathHasher::default();
            p.hash(&mut h);
            h.finish()
        };
        let mut hashes: Vec<u64> = ["/a", "/b", "/a\0", "/a/b/c/d", "/a/b/c/e", "/a/b/c/d/", "/"]
            .iter()
            .map(|p| hash(p))
            .collect();
        assert_eq!(hash("/a/b/c/d"), hash("/a/b/c/d"), "deterministic");
        let count = hashes.len();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), count, "every path hashes apart");
    }

    /// Actions over a small tree, with the request paths of each in order (a multi's one
    /// per sub-operation), as `sub_ops` gives them: every kind, sequential creates named,
    /// unnamed and of unrecorded name, a create whose recorded name is not its path, children
    /// of the root and deeper, multis with and without creates.
    fn sample_actions() -> Vec<(Action<'static>, Vec<&'static str>)> {
        let create = |path: &'static str, mode, name: Option<&'static str>| Action::Create {
            path,
            data: "",
            mode,
            name: name.map(Cow::Borrowed),
        };
        let (p, e) = (CreateMode::Persistent, CreateMode::Ephemeral);
        let (ps, es) = (CreateMode::PersistentSequential, CreateMode::EphemeralSequential);
        let set = |path: &'static str| Action::Set { path, data: "", version: 1 };
        vec![
            (create("/a", p, Some("/a")), vec!["/a"]),
            (create("/a/b", e, None), vec!["/a/b"]),
            (create("/a/b", p, Some("/a/x")), vec!["/a/b"]),
            (create("/a/s-", ps, Some("/a/s-0000000001")), vec!["/a/s-"]),
            (create("/a/s-", es, None), vec!["/a/s-"]),
            (create("/a/s-", ps, Some("/a/s-?7")), vec!["/a/s-"]),
            (create("/s-", ps, Some("/s-0000000003")), vec!["/s-"]),
            (Action::Delete { path: "/a", version: -1 }, vec!["/a"]),
            (Action::Delete { path: "/a/b/c", version: 2 }, vec!["/a/b/c"]),
            (set("/q"), vec!["/q"]),
            (Action::Check { path: "/a/b", version: 0 }, vec!["/a/b"]),
            (Action::Get { path: "/z" }, vec!["/z"]),
            (Action::Exists { path: "/a/b" }, vec!["/a/b"]),
            (Action::Children { path: "/a" }, vec!["/a"]),
            (
                Action::Multi(vec![
                    create("/a/c", p, Some("/a/c")),
                    set("/z"),
                    create("/q/s-", ps, Some("/q/s-0000000000")),
                    create("/r", p, None),
                ]),
                vec!["/a/c", "/z", "/q/s-", "/r"],
            ),
            (Action::Multi(vec![set("/z"), create("/a/b/d", p, None)]), vec!["/z", "/a/b/d"]),
            (Action::Multi(vec![create("/a/b", p, Some("/a/y"))]), vec!["/a/b"]),
            (Action::Sync, vec![]),
            (Action::Close { session: 3 }, vec![]),
        ]
    }

    /// Facts observing the children of `observed` (numbered in `paths`).
    fn facts_observing(paths: &mut Paths, observed: &[&'static str]) -> Facts {
        let mut children_observed = Vec::new();
        for path in observed {
            flag(&mut children_observed, paths.intern(path));
        }
        Facts {
            children_observed,
            orphans: Vec::new(),
            acked_seq: HashMap::default(),
            deadlines: Vec::new(),
            sub_paths: Vec::new(),
            sub_at: vec![0],
        }
    }

    /// A path's parent is numbered with it, borrowed or copied, and the parent number names
    /// the parent (the root has none).
    #[test]
    fn paths_number_parents() {
        let mut paths = Paths::default();
        let deep = paths.intern("/a/b/c");
        let built = paths.intern_copy("/x/y");
        for id in [deep, built] {
            let mut at = id;
            while let Some(up) = paths.parent(at) {
                assert_eq!(Some(paths.name(up)), parent(paths.name(at)), "the parent of {at}");
                assert!(up < at, "numbered first");
                at = up;
            }
            assert_eq!(paths.name(at), "/", "every chain ends at the root");
        }
        assert_eq!(paths.id("/a/b"), paths.parent(deep), "the parent has the number it names");
        assert_eq!(paths.names.len(), 6, "/, /a, /a/b, /a/b/c, /x, /x/y");
    }

    /// The footprint by numbers is the footprint by strings, for every kind of action and
    /// either way a parent's children are observed.
    #[test]
    fn footprint_by_numbers_is_footprint_by_strings() {
        for observed in [&[][..], &["/", "/a", "/a/b", "/q"][..], &["/a"][..]] {
            let mut paths = Paths::default();
            let facts = facts_observing(&mut paths, observed);
            let mut checked = 0;
            for (action, request) in sample_actions() {
                let ids: Vec<u32> = request.iter().map(|p| paths.intern(p)).collect();
                let by_number = footprint(&action, &ids, &facts, &mut paths);
                let mut by_string = Vec::new();
                footprint_into(&action, &facts, &mut paths, &mut by_string);
                assert_eq!(by_number, by_string, "{action:?} observing {observed:?}");
                checked += usize::from(!by_number.is_empty());
            }
            assert!(checked >= 15, "the samples have footprints");
        }
    }

    /// The hint is what `registered_home` finds whenever the hinted path is registered, and it
    /// is given for every action whose first looked-at path is a request path.
    #[test]
    fn home_hint_is_the_first_path_looked_at() {
        let mut paths = Paths::default();
        let mut hinted = 0;
        for (action, request) in sample_actions() {
            let ids: Vec<u32> = request.iter().map(|p| paths.intern(p)).collect();
            let everything = |path: &str| paths.id(path);
            let hint = home_hint(&action, &ids, &paths);
            if let Some(hint) = hint {
                assert_eq!(Some(hint), registered_home(&action, &everything), "{action:?}");
                hinted += 1;
            }
            let first = action_paths(&action).into_iter().next();
            let named = first.as_deref().and_then(|p| paths.id(p));
            assert_eq!(hint.is_some(), named.is_some() && hint == named, "{action:?}");
        }
        assert_eq!(hinted, 15, "all but the two renamed creates, sync and close");
    }

    /// `registered_home` finds what the first registered path of `action_paths` finds.
    #[test]
    fn registered_home_agrees_with_action_paths() {
        let create = |path: &'static str, mode, name: Option<&'static str>| Action::Create {
            path,
            data: "",
            mode,
            name: name.map(Cow::Borrowed),
        };
        let actions = vec![
            create("/a/b", CreateMode::Persistent, None),
            create("/a/s-", CreateMode::PersistentSequential, Some("/a/s-0000000001")),
            create("/q/s-", CreateMode::EphemeralSequential, None),
            Action::Delete { path: "/a", version: -1 },
            Action::Get { path: "/z" },
            Action::Multi(vec![
                Action::Set { path: "/z", data: "", version: 1 },
                Action::Check { path: "/a", version: 0 },
            ]),
            Action::Sync,
            Action::Close { session: 3 },
        ];
        let index: HashMap<String, u32> =
            [("/a", 0), ("/a/b", 1), ("/q", 2)].map(|(p, i)| (p.to_string(), i)).into();
        let lookup = |p: &str| index.get(p).copied();
        let mut found = 0;
        for action in &actions {
            let want = action_paths(action).iter().find_map(|p| index.get(p).copied());
            assert_eq!(registered_home(action, &lookup), want, "{action:?}");
            found += usize::from(want.is_some());
        }
        assert_eq!(found, 5, "the cases cover found and not found");
    }

    /// A reply's facts borrow the history's reply: its stat, data and results are the
    /// reply's own (the same memory, no copy), and its children are the reply's sorted,
    /// borrowed when recorded in order and a sorted copy otherwise; an absent field stays
    /// absent. Over replies with children in order, out of order, with ties and empty.
    #[test]
    fn reply_facts_borrow_the_reply() {
        let lists: [&[&str]; 5] =
            [&["a", "b", "c"], &["c", "a", "b"], &["b", "a", "a"], &[], &["x"]];
        let mut cases = 0;
        for (i, list) in lists.iter().enumerate() {
            let mut reply = Event { data: Some(format!("d{i}")), ..Event::default() };
            reply.stat = Some(Box::new(crate::history::Stat {
                version: Some(i as i32),
                ..Default::default()
            }));
            reply.rare_mut().children = Some(list.iter().map(|c| c.to_string()).collect());
            let result = SubResult { name: Some(format!("/n{i}")), ..SubResult::default() };
            reply.rare_mut().results = Some(vec![result]);
            let facts = reply_facts(&reply);
            let recorded = reply.children().as_deref().expect("children");
            let mut sorted = recorded.to_vec();
            sorted.sort();
            let children = facts.children.as_deref().expect("children kept");
            assert_eq!(children, sorted.as_slice(), "the children, sorted");
            let borrowed = matches!(facts.children, Some(Cow::Borrowed(_)));
            assert_eq!(borrowed, recorded.is_sorted(), "borrowed exactly when in order: {list:?}");
            if borrowed {
                assert!(std::ptr::eq(children, recorded), "the reply's own list");
            }
            assert!(std::ptr::eq(facts.stat.expect("stat"), &**reply.stat.as_ref().expect("s")));
            assert!(std::ptr::eq(facts.data.expect("data"), reply.data.as_deref().expect("d")));
            let results = reply.results().as_deref().expect("results");
            assert!(std::ptr::eq(facts.results.expect("results"), results), "the reply's results");
            cases += usize::from(!borrowed);
        }
        assert_eq!(cases, 2, "two lists out of order");
        let empty = Event::default();
        assert_eq!(reply_facts(&empty), Reply::default(), "nothing recorded, nothing to check");
    }
}
