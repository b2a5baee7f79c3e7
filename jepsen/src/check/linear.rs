//! The search for an order of one partition's ops that ZooKeeper's contract allows.
//!
//! Wing & Gong's depth-first search with Lowe's memoisation of (linearized set, state), over
//! the partition's ops, where the order must respect:
//! - zxid order: ops whose reply carried a zxid are taken in zxid order (writes at their zxid,
//!   reads and syncs just after the zxid they report); this makes a history whose replies all
//!   carry zxids a single forced path, checked in near-linear time;
//! - real time for writes and syncs: an op that completed before a write (or sync) was invoked
//!   comes before it; reads are not linearizable in ZooKeeper, so a read may be placed before
//!   writes that completed before it began (stale), but never after a write invoked after it
//!   returned (unless `linearizable_reads`, then reads obey real time like writes);
//! - session order: a session's ops take effect in the order it issued them (writes FIFO,
//!   reads never go back, read-your-writes, a read after `sync` sees what the sync saw);
//! - `info` ops may be placed anywhere after their invoke, or never; but not after their
//!   session's next acknowledged write, nor after a write invoked once that session's next
//!   acknowledged op had completed (session order: it took effect, if ever, before then).
//!
//! Pure ops (reads, syncs, failed writes) that fit the current state are taken greedily: taking
//! them as early as possible never hurts (they change no state and only unblock others). The
//! memo prunes a configuration when one with the same acknowledged ops, the same state and a
//! subset of the indeterminate ops used has already failed (it had every option this one has).
//!
//! Each configuration offers only the *live* ops of unknown outcome or without zxid: invoked
//! before the earliest pending completion, not yet placed, not yet out of time. The live set
//! is carried from frame to frame, so a step costs what is live, not what the partition holds.
//!
//! Invariant: a returned `Failed` means no order exists (within the chosen relaxations); the
//! search is exhaustive up to the budget, beyond which it says `Unknown`.

use super::partition::{POp, Partition};
use crate::model::{Action, BySession, ModelRelax, Touch, Tree};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Constraints the diagnosis may switch off, to name the guarantee a history breaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Relax {
    /// A sync need not follow the ops completed before it began.
    pub sync: bool,
    /// Reads need not follow the session's earlier ops.
    pub read_session: bool,
    /// Writes need not follow the session's earlier ops.
    pub write_session: bool,
    /// Writes need not follow ops completed before they began.
    pub write_realtime: bool,
    /// Reads are not linearizable (overrides `linearizable_reads`).
    pub read_realtime: bool,
    /// Model relaxations.
    pub model: ModelRelax,
}

/// Why no order exists: the longest prefix found and what could not come next.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// Partition op indices in the order found (the longest prefix).
    pub order: Vec<usize>,
    /// Ops that could not be placed next, with the reason.
    pub stuck: Vec<(usize, String)>,
    /// The model state after the prefix.
    pub state: Tree,
}

/// Result of a search.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// An order exists.
    Valid,
    /// No order exists.
    Invalid(Box<Failure>),
    /// The configuration budget ran out; the deepest dead end so far, if any.
    Unknown(Option<Box<Failure>>),
}

/// Why an op cannot come next.
enum Block {
    Placed,
    Session(usize),
    Zxid(usize),
    RealTime(usize),
}

/// The sets of used ops of unknown outcome remembered for one memo key. Nearly every key
/// has one (most often empty, which allocates nothing): kept inline, it costs 16 bytes where a
/// vector of vectors cost a 24-byte header and a heap block of four.
enum Used {
    One(Box<[u32]>),
    Many(Vec<Box<[u32]>>),
}

/// One open choice of the search. Frames hold no state: the search keeps one [`Tree`] and
/// changes it in place, and a frame's state is the search's state undone down to its `mark`.
struct Frame {
    /// The undo log's mark ([`Tree::mark`]) where the state is this frame's: the state after
    /// `applied` (and the frames below). Trying a candidate starts from there and comes back.
    mark: usize,
    kptr: usize,
    rptr: usize,
    cands: Vec<usize>,
    next: usize,
    applied: Vec<usize>,
    /// Unkeyed writes that may still be placed (see [`Search::live_after`]).
    live: Vec<usize>,
    /// How many of `Search::by_inv` have been considered for `live`.
    entered: usize,
    /// The latest invoke of a placed acknowledged write: ops of unknown outcome whose
    /// deadline is before it can no longer be placed.
    horizon: usize,
}

struct Search<'a> {
    part: &'a Partition<'a>,
    relax: Relax,
    linearizable_reads: bool,
    lin: Vec<bool>,
    keyed: Vec<usize>,
    by_ret: Vec<usize>,
    unkeyed_pure: Vec<usize>,
    /// Unkeyed state-changing ops in invoke order.
    by_inv: Vec<usize>,
    /// For an op of unknown outcome: its session's next acknowledged write in the partition
    /// (once that is placed, it is too late for this one).
    successor: Vec<Option<usize>>,
    /// Whether session order and real time bound ops of unknown outcome (off when the
    /// diagnosis relaxes either).
    deadlines: bool,
    preds: Vec<Preds>,
    /// Per op, the paths it depends on ([`crate::model::footprint`]); a `close` depends on
    /// the ephemerals its session may own here ([`footprints`]).
    footprints: Footprints<'a>,
    /// Per `close` of unknown outcome: whether its session may own an ephemeral whose name
    /// is not in its footprint (a sequential one of unknown name), so that only placing the
    /// close can tell whether it removes anything.
    close_unnamed: Vec<bool>,
    zobrist: Vec<u64>,
    /// Alternatives of each indeterminate op, by group.
    groups: HashMap<usize, Vec<usize>>,
    must_total: usize,
    must_done: usize,
    must_hash: u64,
    info_used: Vec<usize>,
    memo: HashMap<(u64, u64), Used>,
    configs: u64,
    /// Where to start (default: the partition's declared initial nodes).
    start: Option<Tree>,
    /// Collecting end states (and the most to collect) instead of stopping at the first.
    collect: Option<(Vec<EndState>, usize)>,
    best: Option<Failure>,
    best_done: usize,
}

/// Searches for an order of `part` allowed by the contract (minus `relax`).
pub(crate) fn search(
    part: &Partition,
    relax: Relax,
    linearizable_reads: bool,
    budget: u64,
) -> (Outcome, u64) {
    search_from(part, None, relax, linearizable_reads, budget)
}

/// [`search`], starting from `start` instead of the partition's declared initial nodes.
pub(crate) fn search_from(
    part: &Partition,
    start: Option<&Tree>,
    relax: Relax,
    linearizable_reads: bool,
    budget: u64,
) -> (Outcome, u64) {
    let mut s = Search::new(part, relax, linearizable_reads);
    s.start = start.cloned();
    let outcome = s.run(budget);
    (outcome, s.configs)
}

/// A state the partition can end in once every acknowledged op is placed, with the ops of
/// unknown outcome placed on the way there (partition op indices).
pub(crate) type EndState = (Tree, Vec<usize>);

/// What [`end_states_from`] found.
pub(crate) enum Ends {
    /// Every state an allowed order can end in (at most the cap).
    States(Vec<EndState>),
    /// No allowed order exists.
    Fails,
    /// More states than the cap, or the budget ran out.
    Unknown,
}

/// Every state (up to `cap` of them) that an allowed order of all of `part`'s acknowledged
/// ops can end in, starting from `start` (default: the partition's declared initial nodes).
pub(crate) fn end_states_from(
    part: &Partition,
    start: Option<&Tree>,
    linearizable_reads: bool,
    budget: u64,
    cap: usize,
) -> Ends {
    let mut s = Search::new(part, Relax::default(), linearizable_reads);
    s.start = start.cloned();
    s.collect = Some((Vec::new(), cap));
    match s.run(budget) {
        Outcome::Valid => {
            let (found, _) = s.collect.expect("collecting");
            assert!(!found.is_empty(), "a valid search ends somewhere");
            Ends::States(found)
        }
        Outcome::Invalid(_) => Ends::Fails,
        Outcome::Unknown(_) => Ends::Unknown,
    }
}

/// The indices of the ops that `key` gives a key, in the order of their keys. Each key is one
/// `u128` that ends with the op's index ([`packed_key`], [`packed_pair`]), so keys never tie
/// and sorting them gives the stable sort's order by (key, index). Sorting indices by
/// fetching each op's `Option<(i64, u8, usize)>` for every compare was a third of a search's
/// set-up.
fn sorted_by<T>(ops: &[T], key: impl Fn(usize, &T) -> Option<u128>) -> Vec<usize> {
    let mut keys: Vec<u128> = ops.iter().enumerate().filter_map(|(i, op)| key(i, op)).collect();
    // Unstable: the keys never tie, so it gives the one order (the stable sort, for the runs
    // the zxid order keeps along the invoke order, measured 3% slower here).
    keys.sort_unstable();
    let low = |k: u128| (k as u64 & u64::from(u32::MAX)) as usize;
    let out: Vec<usize> = keys.into_iter().map(low).collect();
    assert!(out.iter().all(|&i| i < ops.len()), "an index of an op");
    out
}

/// A zxid-order key (zxid, 0 for a write or 1 for an observation after it, op id) and the
/// op's index, packed so that `u128` order is the order of (key, index): the zxid with its sign
/// bit flipped (so negative zxids sort first), then the flag in one bit, the op id in 31 and
/// the index in 32.
fn packed_key((zxid, after, op): (i64, u8, usize), index: usize) -> u128 {
    assert!(after <= 1, "a write (0) or an observation after it (1)");
    assert!(op < 1 << 31, "op ids fit in 31 bits");
    let index = u32::try_from(index).expect("fewer than 2^32 ops in a key group");
    let high = (zxid as u64) ^ (1 << 63);
    let low = u64::from(after) << 63 | (op as u64) << 32 | u64::from(index);
    u128::from(high) << 64 | u128::from(low)
}

/// An event index and an op's index packed so that `u128` order is their order.
fn packed_pair(at: usize, index: usize) -> u128 {
    let index = u32::try_from(index).expect("fewer than 2^32 ops in a key group");
    (at as u128) << 64 | u128::from(index)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<'a> Search<'a> {
    fn new(part: &'a Partition<'a>, relax: Relax, linearizable_reads: bool) -> Search<'a> {
        let ops = &part.ops;
        let keyed = sorted_by(ops, |i, op| op.key.map(|key| packed_key(key, i)));
        let by_ret = sorted_by(ops, |i, op| op.must.then(|| packed_pair(op.ret, i)));
        let unkeyed_pure: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].key.is_none() && ops[i].pure && ops[i].must)
            .collect();
        let by_inv =
            sorted_by(ops, |i, op| (op.key.is_none() && !op.pure).then(|| packed_pair(op.inv, i)));
        let preds = session_preds(ops, relax);
        let successor = successors(ops);
        let (footprints, close_unnamed) = footprints(part);
        let must_total = by_ret.len();
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(g) = op.group {
                groups.entry(g).or_default().push(i);
            }
        }
        Search {
            groups,
            part,
            relax,
            linearizable_reads,
            lin: vec![false; ops.len()],
            keyed,
            by_ret,
            unkeyed_pure,
            by_inv,
            successor,
            deadlines: !relax.write_session && !relax.write_realtime,
            preds,
            footprints,
            close_unnamed,
            zobrist: (0..ops.len() as u64).map(splitmix).collect(),
            must_total,
            must_done: 0,
            must_hash: 0,
            info_used: Vec::new(),
            memo: HashMap::new(),
            configs: 0,
            start: None,
            collect: None,
            best: None,
            best_done: 0,
        }
    }

    fn run(&mut self, budget: u64) -> Outcome {
        let mut state = match &self.start {
            Some(tree) => tree.clone(),
            None => Tree::init(&self.part.scope, &self.part.initial),
        };
        let (mut kptr, mut rptr) = (0, 0);
        let applied = self.greedy(&mut state, &mut kptr, &mut rptr);
        if self.must_done == self.must_total {
            if let Some((found, _)) = &mut self.collect {
                found.push((state, self.info_used.clone()));
            }
            return Outcome::Valid;
        }
        // Nothing goes back behind the bottom frame.
        state.forget_undo();
        let (live, entered) = self.live_after(&[], 0, 0, &mut rptr);
        let cands = self.candidates(&mut state, kptr, rptr, &live, 0);
        let mark = state.mark();
        let frame = Frame { mark, kptr, rptr, cands, next: 0, applied, live, entered, horizon: 0 };
        let mut frames = vec![frame];
        while let Some(top) = frames.last_mut() {
            assert_eq!(state.mark(), top.mark, "the state is the top frame's");
            if top.next >= top.cands.len() {
                let top = frames.pop().expect("non-empty");
                self.dead_end(&state, &frames, &top);
                for &i in top.applied.iter().rev() {
                    self.unset(i);
                }
                if let Some(below) = frames.last() {
                    state.undo_to(below.mark);
                }
                continue;
            }
            let c = top.cands[top.next];
            top.next += 1;
            let op = &self.part.ops[c];
            let stepped = state.step_mut(
                &self.part.scope,
                self.relax.model,
                op.process,
                &op.action,
                &op.outcome,
            );
            if stepped.is_err() {
                continue;
            }
            let (mut kptr, mut rptr) = (top.kptr, top.rptr);
            let horizon = if op.acked_write() { top.horizon.max(op.inv) } else { top.horizon };
            let top_mark = top.mark;
            self.set(c);
            let mut applied = vec![c];
            applied.extend(self.greedy(&mut state, &mut kptr, &mut rptr));
            if self.must_done == self.must_total {
                let Some((found, cap)) = &mut self.collect else { return Outcome::Valid };
                let end = (state.clone(), self.info_used.clone());
                if !found.contains(&end) {
                    found.push(end);
                }
                if found.len() > *cap {
                    return Outcome::Unknown(None);
                }
                for &i in applied.iter().rev() {
                    self.unset(i);
                }
                state.undo_to(top_mark);
                continue;
            }
            self.configs += 1;
            if self.configs > budget {
                return Outcome::Unknown(self.best.take().map(Box::new));
            }
            // Every frame below the top still has candidates to try (see below); when the top
            // has none left either, no other path can come back to this configuration, so
            // there is nothing to remember it for.
            let top = frames.last().expect("the parent frame");
            let open = frames.len() > 1 || top.next < top.cands.len();
            if open && self.seen(&state, horizon) {
                for &i in applied.iter().rev() {
                    self.unset(i);
                }
                state.undo_to(top_mark);
                continue;
            }
            let top = frames.last_mut().expect("the parent frame");
            let (live, entered) = self.live_after(&top.live, top.entered, horizon, &mut rptr);
            let cands = self.candidates(&mut state, kptr, rptr, &live, horizon);
            if top.next >= top.cands.len() {
                // The parent's last candidate: if this fails, so does the parent, so the new
                // frame replaces it instead of being pushed (keeping its placed ops, undone
                // with it). Along a forced path the stack then stays one frame deep instead
                // of holding a state per op.
                top.applied.extend(applied);
                if frames.len() == 1 {
                    // The bottom frame's old state is never gone back to (popping the bottom
                    // ends the search): its log can go, so a forced path keeps none.
                    state.forget_undo();
                }
                let top = frames.last_mut().expect("the parent frame");
                top.mark = state.mark();
                (top.kptr, top.rptr, top.cands, top.next) = (kptr, rptr, cands, 0);
                (top.live, top.entered, top.horizon) = (live, entered, horizon);
                continue;
            }
            let mark = state.mark();
            let frame = Frame { mark, kptr, rptr, cands, next: 0, applied, live, entered, horizon };
            frames.push(frame);
        }
        if self.collect.as_ref().is_some_and(|(found, _)| !found.is_empty()) {
            return Outcome::Valid;
        }
        let failure = self.best.take().expect("a dead end was recorded");
        Outcome::Invalid(Box::new(failure))
    }

    fn set(&mut self, i: usize) {
        let op = &self.part.ops[i];
        assert!(!self.lin[i], "op linearized twice");
        self.lin[i] = true;
        if op.must {
            self.must_done += 1;
            self.must_hash ^= self.zobrist[i];
        } else {
            let at = self.info_used.binary_search(&i).expect_err("not yet used");
            self.info_used.insert(at, i);
        }
        if let Some(g) = op.group {
            for &j in &self.groups[&g] {
                // Alternatives of the same indeterminate op are used up with it.
                self.lin[j] = true;
            }
        }
    }

    fn unset(&mut self, i: usize) {
        let op = &self.part.ops[i];
        assert!(self.lin[i], "undo of an op not linearized");
        self.lin[i] = false;
        if op.must {
            self.must_done -= 1;
            self.must_hash ^= self.zobrist[i];
        } else {
            let at = self.info_used.binary_search(&i).expect("was used");
            self.info_used.remove(at);
        }
        if let Some(g) = op.group {
            for &j in &self.groups[&g] {
                self.lin[j] = false;
            }
        }
    }

    /// Memo: true if an equivalent or stronger configuration was already explored.
    ///
    /// Ops of unknown outcome that are out of time (see [`Search::expired`]) are left out of
    /// the used set remembered: whether they were used shows in the state, and from here on
    /// they can be placed no more, used or not. Which are out of time depends only on the
    /// acknowledged ops placed, the same in every configuration of one memo key. Remembering
    /// every one used made the memo grow with the square of a long key group.
    fn seen(&mut self, state: &Tree, horizon: usize) -> bool {
        let mut h = DefaultHasher::new();
        state.hash(&mut h);
        let key = (self.must_hash, h.finish());
        let used: Vec<usize> =
            (self.info_used.iter()).copied().filter(|&i| !self.expired(i, horizon)).collect();
        let covers = |old: &[u32]| old.iter().all(|&i| used.binary_search(&(i as usize)).is_ok());
        let compact = || -> Box<[u32]> {
            used.iter().map(|&i| u32::try_from(i).expect("fewer than 2^32 ops")).collect()
        };
        match self.memo.entry(key) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Used::One(compact()));
                false
            }
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let seen = match entry.get() {
                    Used::One(old) => covers(old),
                    Used::Many(olds) => olds.iter().any(|old| covers(old)),
                };
                if !seen {
                    let new = compact();
                    match entry.get_mut() {
                        Used::One(old) => {
                            let old = std::mem::take(old);
                            entry.insert(Used::Many(vec![old, new]));
                        }
                        Used::Many(olds) => olds.push(new),
                    }
                }
                seen
            }
        }
    }

    fn min_ret(&self, rptr: &mut usize) -> usize {
        while *rptr < self.by_ret.len() && self.lin[self.by_ret[*rptr]] {
            *rptr += 1;
        }
        self.by_ret.get(*rptr).map_or(usize::MAX, |&i| self.part.ops[i].ret)
    }

    fn next_keyed(&self, kptr: &mut usize) -> Option<usize> {
        while *kptr < self.keyed.len() && self.lin[self.keyed[*kptr]] {
            *kptr += 1;
        }
        self.keyed.get(*kptr).copied()
    }

    /// Whether op `i` must obey real time from the left.
    fn realtime(&self, op: &POp) -> bool {
        if op.sync {
            !self.relax.sync
        } else if op.query {
            self.linearizable_reads && !self.relax.read_realtime
        } else {
            !self.relax.write_realtime
        }
    }

    /// Why op `i` cannot come next (ignoring the model), or `None` if it can. Cheap: no
    /// allocation (it runs for every candidate of every configuration).
    fn blocker(&self, i: usize, kptr: &mut usize, rptr: &mut usize) -> Option<Block> {
        let op = &self.part.ops[i];
        if self.lin[i] {
            return Some(Block::Placed);
        }
        if let Some(p) = self.preds[i].iter().find(|&p| !self.lin[p]) {
            return Some(Block::Session(p));
        }
        if op.key.is_some()
            && let Some(k) = self.next_keyed(kptr)
            && k != i
        {
            return Some(Block::Zxid(k));
        }
        if self.realtime(op) && op.inv >= self.min_ret(rptr) {
            return Some(Block::RealTime(self.by_ret[*rptr]));
        }
        None
    }

    /// [`Search::blocker`], for a person.
    fn blocked(&self, i: usize, kptr: &mut usize, rptr: &mut usize) -> Option<String> {
        let ops = &self.part.ops;
        Some(match self.blocker(i, kptr, rptr)? {
            Block::Placed => "already placed".into(),
            Block::Session(p) => {
                format!("session order: op {} of the same session comes first", ops[p].op)
            }
            Block::Zxid(k) => {
                let z = ops[k].key.expect("keyed").0;
                format!("zxid order: op {} (zxid {z:#x}) comes first", ops[k].op)
            }
            Block::RealTime(r) => {
                format!("real time: op {} completed before this began", ops[r].op)
            }
        })
    }

    /// Takes every pure op that fits, as long as one does.
    fn greedy(&mut self, state: &mut Tree, kptr: &mut usize, rptr: &mut usize) -> Vec<usize> {
        let mut applied = Vec::new();
        loop {
            let mut progress = false;
            let keyed_next = self.next_keyed(kptr).filter(|&k| self.part.ops[k].pure);
            // By position, not a collected list (an allocation per round): `set` below
            // needs `self` mutably. `None` stands for `keyed_next`.
            for j in std::iter::once(None).chain((0..self.unkeyed_pure.len()).map(Some)) {
                let Some(i) = j.map_or(keyed_next, |j| Some(self.unkeyed_pure[j])) else {
                    continue;
                };
                if self.blocker(i, kptr, rptr).is_some() {
                    continue;
                }
                let op = &self.part.ops[i];
                let scope = &self.part.scope;
                if state
                    .step_mut(scope, self.relax.model, op.process, &op.action, &op.outcome)
                    .is_ok()
                {
                    self.set(i);
                    applied.push(i);
                    progress = true;
                }
            }
            if !progress {
                return applied;
            }
        }
    }

    /// State-changing ops that may come next, likeliest first.
    ///
    /// When the next op in zxid order (K) may come next, an indeterminate op that commutes
    /// with K, and that K does not put out of time, is not offered before it: any order placing
    /// it before K is matched by one placing it just after K, which K's subtree explores. The
    /// offered set is closed under conflicts (see below). Of the offered ops, the ones after
    /// which K fits are tried first.
    fn candidates(
        &self,
        state: &mut Tree,
        kptr: usize,
        rptr: usize,
        live: &[usize],
        horizon: usize,
    ) -> Vec<usize> {
        let (mut kptr, mut rptr) = (kptr, rptr);
        let mut out = Vec::new();
        let next = self.next_keyed(&mut kptr);
        let next = next.filter(|&k| self.blocker(k, &mut kptr, &mut rptr).is_none());
        let relax = self.relax.model;
        // A sequential create of unknown outcome whose name was seen later can only take
        // effect while the parent's cversion equals its number: now or never, so now first.
        // (Its alternative without a name fits whenever the parent exists: offered below,
        // like any other op.)
        if !relax.loose_seq {
            for &i in live {
                let op = &self.part.ops[i];
                if op.named_alternative()
                    && state.numbered_here(&op.action)
                    && self.blocker(i, &mut kptr, &mut rptr).is_none()
                    && self.fits(state, &[i])
                {
                    out.push(i);
                }
            }
        }
        if let Some(k) = next
            && !self.part.ops[k].pure
        {
            out.push(k);
        }
        let mut helpful = Vec::new();
        let mut others = Vec::new();
        let mut deferred = Vec::new();
        for &i in live {
            if self.blocker(i, &mut kptr, &mut rptr).is_some() || self.idle_close(i, state) {
                continue;
            }
            let op = &self.part.ops[i];
            if out.contains(&i) {
                continue;
            }
            let Some(k) = next.filter(|_| !op.must) else {
                out.push(i);
                continue;
            };
            if op.named_alternative() && !relax.loose_seq {
                continue; // offered above when its number came up, never otherwise
            }
            if self.conflict(i, k) || self.kills(k, i, horizon) {
                others.push((i, k));
            } else {
                deferred.push((i, k));
            }
        }
        // An op that commutes with K can come just after K instead (K's subtree offers it
        // again), unless it must precede an op offered before K, one it does not commute
        // with: the offered set is closed under conflicts.
        loop {
            let before = deferred.len();
            deferred.retain(|&(i, k)| {
                let hit = others.iter().any(|&(j, _)| self.conflict(i, j));
                if hit {
                    others.push((i, k));
                }
                !hit
            });
            if deferred.len() == before {
                break;
            }
        }
        // The most recent first; of those, the ones after which K fits first (tested for a
        // few only, to keep a step cheap when many ops of unknown outcome are pending).
        others.reverse();
        let mut rest = Vec::new();
        for (n, (i, k)) in others.into_iter().enumerate() {
            let fits = n < 4 && self.fits(state, &[i, k]);
            if fits { helpful.push(i) } else { rest.push(i) }
        }
        out.extend(helpful);
        out.extend(rest);
        out
    }

    /// Whether `ops` can be placed in this order from `state` (the model only); `state` is
    /// left as it was.
    fn fits(&self, state: &mut Tree, ops: &[usize]) -> bool {
        let (scope, relax) = (&self.part.scope, self.relax.model);
        let mark = state.mark();
        let fits = ops.iter().all(|&i| {
            let op = &self.part.ops[i];
            state.step_mut(scope, relax, op.process, &op.action, &op.outcome).is_ok()
        });
        state.undo_to(mark);
        fits
    }

    /// Whether ops `i` and `j` may not commute ([`crate::model::footprints_conflict`]).
    fn conflict(&self, i: usize, j: usize) -> bool {
        crate::model::footprints_conflict(self.footprints.of(i), self.footprints.of(j))
    }

    /// Whether op `i` is a `close` of unknown outcome that would change nothing in `state`:
    /// its session owns none of the nodes here. Such a close need not be offered: it changes
    /// no state, and it is its session's last op, so nothing after it depends on it; leaving
    /// it out allows every order placing it allows (an op of unknown outcome may never take
    /// effect). When its session comes to own an ephemeral, it is offered again.
    fn idle_close(&self, i: usize, state: &Tree) -> bool {
        let op = &self.part.ops[i];
        let Action::Close { session } = op.action else { return false };
        if op.must || self.close_unnamed[i] || self.relax.model.ephemerals {
            return false;
        }
        let owned = |(path, _): &(Cow<str>, Touch)| state.owner(path) == Some(session);
        !self.footprints.of(i).iter().any(owned)
    }

    /// Whether placing acknowledged write `k` puts op `i` (of unknown outcome) out of time.
    fn kills(&self, k: usize, i: usize, horizon: usize) -> bool {
        let (kop, op) = (&self.part.ops[k], &self.part.ops[i]);
        if !self.deadlines || op.must || !kop.acked_write() {
            return false;
        }
        self.successor[i] == Some(k) || horizon.max(kop.inv) > op.deadline
    }

    /// Whether op `i`, not placed, can no longer be (only ops of unknown outcome expire).
    fn expired(&self, i: usize, horizon: usize) -> bool {
        let op = &self.part.ops[i];
        if !self.deadlines || op.must {
            return false;
        }
        horizon > op.deadline || self.successor[i].is_some_and(|s| self.lin[s])
    }

    /// The live unkeyed writes of a new frame: those of the parent frame still unplaced and
    /// in time, plus those invoked before the earliest pending completion (real time keeps the
    /// others back). Acknowledged ones first, then by invoke: the likelier order first.
    fn live_after(
        &self,
        parent: &[usize],
        entered: usize,
        horizon: usize,
        rptr: &mut usize,
    ) -> (Vec<usize>, usize) {
        let ops = &self.part.ops;
        let limit = if self.relax.write_realtime { usize::MAX } else { self.min_ret(rptr) };
        let mut entered = entered;
        let mut live: Vec<usize> = parent.to_vec();
        while entered < self.by_inv.len() && ops[self.by_inv[entered]].inv < limit {
            live.push(self.by_inv[entered]);
            entered += 1;
        }
        live.retain(|&i| !self.lin[i] && !self.expired(i, horizon));
        live.sort_by_key(|&i| (!ops[i].must, ops[i].inv, i));
        assert!(live.iter().all(|&i| ops[i].key.is_none()), "keyed ops follow the zxid order");
        (live, entered)
    }

    /// Records the deepest dead end, for the report.
    fn dead_end(&mut self, state: &Tree, frames: &[Frame], top: &Frame) {
        if self.best.is_some() && self.must_done <= self.best_done {
            return;
        }
        self.best_done = self.must_done;
        let state = state.clone();
        let order: Vec<usize> =
            frames.iter().chain([top]).flat_map(|f| f.applied.iter().copied()).collect();
        let (mut kptr, mut rptr) = (top.kptr, top.rptr);
        let mut suspects: Vec<usize> = Vec::new();
        suspects.extend(self.next_keyed(&mut kptr));
        self.min_ret(&mut rptr);
        suspects.extend(self.by_ret.get(rptr).copied());
        suspects.extend(self.unkeyed_pure.iter().copied().filter(|&i| !self.lin[i]).take(3));
        suspects.extend(top.cands.iter().copied().filter(|&i| self.part.ops[i].must).take(3));
        let waiting = (0..self.part.ops.len()).filter(|&i| self.part.ops[i].must && !self.lin[i]);
        suspects.extend(waiting.take(3));
        let mut seen = Vec::new();
        let mut stuck = Vec::new();
        for i in suspects {
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let op = &self.part.ops[i];
            let reason = match self.blocked(i, &mut kptr, &mut rptr) {
                Some(why) => why,
                None => match state.step(
                    &self.part.scope,
                    self.relax.model,
                    op.process,
                    &op.action,
                    &op.outcome,
                ) {
                    Err(why) => why,
                    Ok(_) => "fits, but nothing after it does".into(),
                },
            };
            stuck.push((i, reason));
        }
        self.best = Some(Failure { order, stuck, state });
    }
}

/// Per session: the ephemeral nodes its ops may create (as [`Touch::Node`] footprints), and
/// whether one of them is sequential of unknown name.
pub(crate) type Ephemerals = BySession<(Vec<(String, Touch)>, bool)>;

/// The ephemerals the sessions of `ops` may create ([`Ephemerals`]): a sequential one by its
/// name, or by its parent when the name is not known. A path is copied once, when first met
/// (most ops create no ephemeral, and a session's creates repeat their paths).
pub(crate) fn ephemerals(ops: &[POp]) -> Ephemerals {
    let mut out: Ephemerals = Ephemerals::default();
    for op in ops {
        ephemeral_creates(&op.action, &mut |path, named| {
            let (paths, unnamed) = out.entry(op.process).or_default();
            if !paths.iter().any(|(p, _)| p == path) {
                paths.push((path.to_string(), Touch::Node));
            }
            *unnamed |= !named;
        });
    }
    out
}

/// Per op, the paths it depends on, and per `close`, whether its session may own an
/// ephemeral of unknown name ([`Search::close_unnamed`]).
///
/// A `close` removes its session's ephemerals: its footprint is the ephemeral paths its
/// session creates in the key group ([`Partition::ephemerals`] when `part` is a stretch of
/// one: the creates may lie before the stretch, and a close whose footprint missed them would
/// look idle and never be offered), each as a node (a read or a create there, or a listing
/// of their parent, sees the difference). Ephemerals of other sessions it leaves alone.
fn footprints<'a>(part: &'a Partition<'a>) -> (Footprints<'a>, Vec<bool>) {
    let ops = &part.ops;
    // Computed only for a partition with a close: most have none.
    let mut own: Option<Ephemerals> = None;
    let mut out = Footprints { paths: Vec::with_capacity(ops.len()), ends: Vec::new() };
    out.ends.reserve_exact(ops.len());
    let mut close_unnamed = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        let before = out.paths.len();
        let known = crate::model::footprint_each(&op.action, &mut |path, how| {
            out.paths.push((Cow::Borrowed(path), how));
        });
        if !known {
            out.paths.truncate(before);
            let Action::Close { session } = op.action else {
                unreachable!("only a close has no footprint of its own")
            };
            assert_eq!(session, op.process, "a session closes itself");
            let ephemerals = match &part.ephemerals {
                Some(whole) => whole.as_ref(),
                None => own.get_or_insert_with(|| ephemerals(ops)),
            };
            if let Some((paths, unnamed)) = ephemerals.get(&session) {
                let paths = paths.iter().map(|(p, t)| (Cow::Owned(p.clone()), *t));
                out.paths.extend(paths);
                close_unnamed[i] = *unnamed;
            }
        }
        out.ends.push(u32::try_from(out.paths.len()).expect("fewer than 2^32 footprint paths"));
    }
    assert_eq!(out.ends.len(), ops.len(), "a footprint per op");
    (out, close_unnamed)
}

/// Every op's footprint in one list (one allocation for a partition, not one or more per
/// op): op `i`'s paths are `paths[ends[i - 1]..ends[i]]`, borrowed from its action, or
/// copied for a `close` (its session's ephemerals).
struct Footprints<'a> {
    paths: Vec<(Cow<'a, str>, Touch)>,
    ends: Vec<u32>,
}

impl<'a> Footprints<'a> {
    fn of(&self, i: usize) -> &[(Cow<'a, str>, Touch)] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.paths[start..self.ends[i] as usize]
    }
}

/// The ops of its session that must precede an op ([`session_preds`]): at most two, in the
/// order they are checked (held inline: a vector per op cost an allocation for each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Preds([Option<usize>; 2]);

impl Preds {
    fn of(ops: impl IntoIterator<Item = usize>) -> Preds {
        let mut out = Preds::default();
        for (n, p) in ops.into_iter().enumerate() {
            assert!(n < 2, "at most two predecessors");
            out.0[n] = Some(p);
        }
        out
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flatten().copied()
    }
}

/// Calls `each` with the ephemeral nodes an action may create, in order: its path, or its
/// parent's when its name is not known, and whether the name is known. Borrowed from the
/// action (a list of copies per op cost an allocation per op of every key group with a close).
fn ephemeral_creates<'a>(action: &'a Action, each: &mut impl FnMut(&'a str, bool)) {
    match action {
        Action::Create { path, name, mode, .. } if mode.is_ephemeral() => {
            match (mode.is_sequential(), name) {
                (false, _) => each(path, true),
                (true, Some(name)) => each(name, true),
                (true, None) => each(crate::history::parent(path).unwrap_or("/"), false),
            }
        }
        Action::Multi(subs) => {
            for sub in subs {
                ephemeral_creates(sub, each);
            }
        }
        _ => {}
    }
}

/// For each op of unknown outcome, its session's first acknowledged write invoked after it.
pub(crate) fn successors(ops: &[POp]) -> Vec<Option<usize>> {
    // By session, looked up per op (one multiply to hash; lookups only).
    let mut next_write: BySession<usize> = BySession::default();
    let mut out = vec![None; ops.len()];
    // Ops are in invoke order; walk back so each sees the first later write of its session.
    for i in (0..ops.len()).rev() {
        let op = &ops[i];
        if !op.must {
            out[i] = next_write.get(&op.process).copied();
            assert!(out[i].is_none_or(|s| ops[s].inv > op.inv), "a successor comes after");
        }
        if op.acked_write() {
            next_write.insert(op.process, i);
        }
    }
    out
}

/// For each op, the ops of its session that must precede it: the latest earlier
/// acknowledged write-class op and the latest earlier acknowledged query (each chain is
/// ordered in turn, so this is transitive).
///
/// With `relax.sync`, a read need not follow its session's syncs (only what they follow): a
/// sync's reply zxid pins it in the zxid order, so a read below that zxid is stale because of
/// the sync, and the diagnosis should say so.
fn session_preds(ops: &[POp], relax: Relax) -> Vec<Preds> {
    // Per session: the latest write-class op, the latest query, the latest write-class op
    // that is not a sync.
    type Last = (Option<usize>, Option<usize>, Option<usize>);
    let mut last: BySession<Last> = BySession::default();
    let mut preds = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let (last_write, last_query, last_change) =
            last.get(&op.process).copied().unwrap_or_default();
        let relaxed = if op.query { relax.read_session } else { relax.write_session };
        let mine = if relaxed {
            Preds::default()
        } else {
            let write = if op.query && relax.sync { last_change } else { last_write };
            Preds::of(write.into_iter().chain(last_query))
        };
        preds.push(mine);
        if op.must && !matches!(op.action, Action::Close { .. }) {
            let entry = last.entry(op.process).or_default();
            if op.query {
                entry.1 = Some(i);
            } else {
                entry.0 = Some(i);
                if !op.sync {
                    entry.2 = Some(i);
                }
            }
        }
    }
    if !relax.model.ephemerals {
        // A session does nothing after it ends: its close comes after all its other ops.
        for (i, op) in ops.iter().enumerate() {
            if matches!(op.action, Action::Close { .. }) {
                let (last_write, last_query, _) =
                    last.get(&op.process).copied().unwrap_or_default();
                preds[i] = Preds::of(last_write.into_iter().chain(last_query).filter(|&p| p != i));
            }
        }
    }
    preds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed keys give the order the search took before: a stable sort of the indices by
    /// (zxid, flag, op id), and by (event index, index), over keys with negative and extreme
    /// zxids, equal keys (the index decides) and ops without a key (left out).
    #[test]
    fn packed_keys_sort_as_the_keys() {
        let zxids = [i64::MIN, -5, -1, 0, 1, 2, 7, 1 << 40, i64::MAX];
        let mut x = 7u64;
        let mut keys: Vec<Option<(i64, u8, usize)>> = Vec::new();
        for _ in 0..2_000 {
            x = splitmix(x);
            let zxid = zxids[(x % zxids.len() as u64) as usize];
            let key = (zxid, (x >> 20) as u8 & 1, (x >> 24) as usize % 5);
            keys.push((!(x >> 40).is_multiple_of(7)).then_some(key));
        }
        let mut want: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].is_some()).collect();
        want.sort_by_key(|&i| keys[i]);
        let got = sorted_by(&keys, |i, k| k.map(|k| packed_key(k, i)));
        assert_eq!(got, want, "the keyed order");
        let ats: Vec<usize> = keys.iter().map(|k| k.map_or(usize::MAX, |k| k.2 * 3)).collect();
        let mut want: Vec<usize> = (0..ats.len()).collect();
        want.sort_by_key(|&i| (ats[i], i));
        assert_eq!(sorted_by(&ats, |i, &at| Some(packed_pair(at, i))), want, "by event index");
    }
}
