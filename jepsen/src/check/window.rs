//! The smallest failing window of a partition that no allowed order explains.
//!
//! A window is a stretch of the history `[from, to)` (event indices) whose ops alone, started
//! from every state the earlier ops can leave, cannot be ordered. It is found in three steps:
//!
//! 1. Checkpoints: walking forward over the sound cuts (see [`cut_points`]), the states the
//!    ops ahead of each cut can leave (at most [`MAX_START_STATES`], each with the ops of
//!    unknown outcome used on the way) are computed from the previous checkpoint's states by
//!    searching only the ops between the two cuts, until the ops up to a cut fail from every
//!    state of the previous one. So the walk costs one pass over the history up to the
//!    failure, and every later search starts from the latest checkpoint before it instead of
//!    the beginning: the cost of what follows tracks the window, not the history.
//! 2. The end: the shortest failing prefix. A prefix of a history is itself a history (ops
//!    still running at the cut become ops of unknown outcome; pending reads are dropped), and a
//!    prefix of an allowed history is allowed; so a failing prefix is a certificate, and the
//!    failing prefixes are closed upwards, which lets a binary search find the shortest. It is
//!    searched between the last checkpoint and the cut where the walk failed, each probe from
//!    the checkpoint's states.
//! 3. The start: the latest sound cut (the acknowledged ops running at it carry zxids that
//!    order them after everything ahead, and join the window), such that the ops of the window
//!    fail from *each* state an allowed order of the earlier ops can end in (resumed from the
//!    latest checkpoint before the cut). Earlier ops of unknown outcome not used on the way to
//!    a state stay available after the cut. Dropping the earlier reads only weakens the
//!    window, so a failure of the window is a failure of the history.
//!
//! Why resuming is sound: a checkpoint's cut separates the whole key group (every allowed
//! order of it puts the ops ahead of the cut first), so every allowed order of the history,
//! restricted to a prefix, is an allowed order of the prefix that puts those ops first. A
//! prefix (or window) that fails from every checkpoint state fails under that constraint,
//! hence so does the history.
//!
//! Invariant: every window returned was checked to fail; when a step cannot be certified
//! (too many start states, search budget), the window stays wider, never wrong.

use super::linear::{self, EndState, Ends, Failure, Outcome, Relax};
use super::partition::{POp, Partition};
use crate::model::{self, Tree};
use std::sync::Arc;

/// At most this many start states are tried for a cut.
const MAX_START_STATES: usize = 16;

/// The walk of step 1 keeps a checkpoint once this many ops lie between it and the last.
const STRIDE: usize = 512;

/// A certified failing window of one partition.
pub(crate) struct Window<'h> {
    /// The partition's ops inside the window (indices into the partition's ops).
    pub ops: Vec<usize>,
    /// First event of the window.
    pub from: usize,
    /// Last event of the window.
    pub to: usize,
    /// How many start states the window was checked from (0: the initial state).
    pub starts: usize,
    /// The failure of the window's search (indices into `part` below).
    pub failure: Failure,
    /// The window as a partition (its ops, and earlier ops of unknown outcome still pending).
    pub part: Partition<'h>,
    /// The state the window's search started from, when not the initial one.
    pub start: Option<Tree>,
    /// The end of the shortest failing prefix (an event index; the window ends before it).
    end: usize,
    /// The checkpoints the search resumed from ([`look_back`] starts there).
    checkpoints: Vec<Checkpoint>,
}

/// The diagnosis looks back over at most about this many ops before a window
/// ([`look_back`]).
const LOOK_BACK: usize = 2_000;

/// Where the diagnosis looks for a cause before the window `w` of `part` (a stale read
/// reads a value from before the window's start state, a session's earlier op lies before
/// it): nearest first, the latest checkpoint before the window, then the earliest one at most
/// about [`LOOK_BACK`] ops before it (the initial state for a short history). Each as the
/// searches to run from that checkpoint, one per state: the ops from there to the window's
/// end with the earlier ops of unknown outcome still pending, and the state (`None`: the
/// initial one). A search that passes from one of them under a relaxation shows an order of
/// the whole prefix under it (the checkpoint's state was reached by an allowed order).
pub(crate) fn look_back<'h>(
    part: &Partition<'h>,
    w: &Window<'_>,
) -> Vec<Vec<(Partition<'h>, Option<Tree>)>> {
    let ix = Index::new(part);
    let checkpoints = &w.checkpoints;
    let before = checkpoints.partition_point(|c| c.cut < w.from);
    let first = |cut: usize| part.ops.partition_point(|op| op.inv < cut);
    let reach = first(w.from);
    let far = (0..before).find(|&k| reach - first(checkpoints[k].cut) <= LOOK_BACK);
    let mut picks: Vec<usize> = before.checked_sub(1).into_iter().collect();
    picks.extend(far.filter(|k| !picks.contains(k)));
    let Some(&lo) = picks.last() else { return Vec::new() };
    let view = prefix(&ix, checkpoints[lo].cut.saturating_sub(ix.max_span), w.end);
    let stretch = |c: &Checkpoint, used: &[usize]| {
        let mut members = view.pending(&ix, c.cut, used);
        members.extend(view.between(&ix, c.cut, usize::MAX));
        view.select(members).1
    };
    let searches = |c: &Checkpoint| -> Vec<(Partition<'h>, Option<Tree>)> {
        let states = c.states.iter();
        states.map(|(state, used)| (stretch(c, used), (c.cut > 0).then(|| state.clone()))).collect()
    };
    picks.iter().map(|&k| searches(&checkpoints[k])).collect()
}

/// How the window search starts its searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// From checkpoints along the history (step 1).
    Checkpoints,
    /// Every search from the initial state (the reference the tests compare with).
    #[cfg(test)]
    FromStart,
}

/// Finds the smallest failing window of `part`, a partition whose search failed. `None` if
/// not even the whole partition can be certified within `budget` per search.
///
/// Cost: the walk to the failure (one pass, segment by segment), then searches over the ops
/// from the last checkpoint before the failure: a number of probes that grows with the log
/// of the failing segment, each costing the segment.
pub(crate) fn smallest<'h>(
    part: &Partition<'h>,
    lin: bool,
    budget: u64,
    resume: Resume,
) -> Option<Window<'h>> {
    let ix = Index::new(part);
    let init = Tree::init(&part.scope, &part.initial);
    let mut checkpoints = vec![Checkpoint { cut: 0, states: vec![(init, Vec::new())] }];
    let mut failed_at = None;
    if resume == Resume::Checkpoints {
        failed_at = walk(&ix, &mut checkpoints, lin, budget);
    }
    let (end, mut window) = shortest_prefix(&ix, &checkpoints, failed_at, lin, budget)?;
    let view = prefix(&ix, 0, end);
    window.to = window.to.min(end.saturating_sub(1));
    // Cuts: invoke points where no acknowledged op is running. Failing cuts are not
    // guaranteed to be contiguous, so the search keeps the latest certified one it meets.
    let cuts: Vec<usize> = cut_points(&view.part, lin);
    // Invariant: no cut probed at `hi` or after was certified; a window from a cut before
    // `lo` is held.
    let (mut lo, mut hi) = (0, cuts.len());
    let mut step = 1;
    while hi > 0 {
        let probe = hi.saturating_sub(step);
        if let Some(found) = from_cut(&ix, &view, &checkpoints, cuts[probe], lin, budget) {
            window = Window { to: window.to, ..found };
            lo = probe + 1;
            break;
        }
        hi = probe;
        step *= 2;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match from_cut(&ix, &view, &checkpoints, cuts[mid], lin, budget) {
            Some(found) => {
                window = Window { to: window.to, ..found };
                lo = mid + 1;
            }
            None => hi = mid,
        }
    }
    assert!(window.from <= window.to, "a window is not empty");
    window.end = end;
    window.checkpoints = checkpoints;
    Some(window)
}

/// The states the ops ahead of a cut of the whole key group can leave.
struct Checkpoint {
    /// The cut (an event index; 0 before everything).
    cut: usize,
    /// The states, each with the ops of unknown outcome used on the way (key group indices,
    /// sorted).
    states: Vec<EndState>,
}

/// What the resumed searches need to know about the whole key group, computed once.
struct Index<'a, 'h> {
    part: &'a Partition<'h>,
    /// For an op of unknown outcome: its session's next acknowledged write.
    successor: Vec<Option<usize>>,
    /// Acknowledged writes by completion: (completion, the latest invoke of those so far).
    horizons: Vec<(usize, usize)>,
    /// The longest an acknowledged op ran, in events.
    max_span: usize,
    /// The ephemerals of the key group's sessions, for the closes of its stretches.
    ephemerals: Arc<linear::Ephemerals>,
}

impl<'a, 'h> Index<'a, 'h> {
    fn new(part: &'a Partition<'h>) -> Index<'a, 'h> {
        let ops = &part.ops;
        let mut writes: Vec<(usize, usize)> =
            ops.iter().filter(|op| op.acked_write()).map(|op| (op.ret, op.inv)).collect();
        writes.sort_unstable();
        let mut latest = 0;
        let horizons = (writes.into_iter())
            .map(|(ret, inv)| {
                latest = latest.max(inv);
                (ret, latest)
            })
            .collect();
        let spans = ops.iter().filter(|op| op.must).map(|op| op.ret - op.inv);
        let max_span = spans.max().unwrap_or(0);
        let ephemerals = match &part.ephemerals {
            Some(whole) => whole.clone(),
            None => Arc::new(linear::ephemerals(ops)),
        };
        Index { part, successor: linear::successors(ops), horizons, max_span, ephemerals }
    }

    /// Whether key group op `i` lies ahead of cut `s`: invoked before it and not running at
    /// it (an acknowledged op running at a cut belongs to the window after it).
    fn ahead(&self, i: usize, s: usize) -> bool {
        let op = &self.part.ops[i];
        op.inv < s && !(op.must && op.ret > s)
    }

    /// The latest invoke of an acknowledged write ahead of cut `s`: ops of unknown outcome
    /// whose deadline is before it took effect before the cut or never.
    fn horizon(&self, s: usize) -> usize {
        let k = self.horizons.partition_point(|&(ret, _)| ret < s);
        if k == 0 { 0 } else { self.horizons[k - 1].1 }
    }
}

/// A partition restricted to a prefix, remembering where its ops came from.
struct Prefix<'h> {
    part: Partition<'h>,
    origin: Vec<usize>,
    /// Its ops of unknown outcome, in invoke order.
    unknown: Vec<usize>,
}

impl<'h> Prefix<'h> {
    /// Whether op `j` lies ahead of cut `s` in this prefix (an op running at the prefix's end
    /// has an unknown outcome here, so it is ahead of a cut it was invoked before).
    fn ahead(&self, j: usize, s: usize) -> bool {
        let op = &self.part.ops[j];
        op.inv < s && !(op.must && op.ret > s)
    }

    /// The ops ahead of cut `to` here and not ahead of checkpoint cut `from` in the key group.
    fn between(&self, ix: &Index, from: usize, to: usize) -> Vec<usize> {
        let ops = &self.part.ops;
        // Every op invoked before this is ahead of `from` (it ran no longer than `max_span`).
        let lo = ops.partition_point(|op| op.inv < from.saturating_sub(ix.max_span));
        let hi = ops.partition_point(|op| op.inv < to);
        (lo..hi).filter(|&j| self.ahead(j, to) && !ix.ahead(self.origin[j], from)).collect()
    }

    /// The ops of unknown outcome ahead of cut `s` that may still take effect after it, for a
    /// state reached using `used` (key group indices, sorted): not used, not an alternative of
    /// one used, and in time (not past its deadline, its session's next write not ahead).
    fn pending(&self, ix: &Index, s: usize, used: &[usize]) -> Vec<usize> {
        let horizon = ix.horizon(s);
        let groups: Vec<usize> = used.iter().filter_map(|&u| ix.part.ops[u].group).collect();
        let end = self.unknown.partition_point(|&j| self.part.ops[j].inv < s);
        let in_time = |j: usize| {
            let (op, g) = (&self.part.ops[j], self.origin[j]);
            op.deadline >= horizon
                && ix.successor[g].is_none_or(|w| !ix.ahead(w, s))
                && used.binary_search(&g).is_err()
                && op.group.is_none_or(|group| !groups.contains(&group))
        };
        self.unknown[..end].iter().copied().filter(|&j| in_time(j)).collect()
    }

    /// These ops (indices here) as a partition of their own, in invoke order.
    fn select(&self, mut members: Vec<usize>) -> (Vec<usize>, Partition<'h>) {
        assert!(self.part.ephemerals.is_some(), "a stretch knows its key group's ephemerals");
        members.sort_unstable_by_key(|&j| (self.part.ops[j].inv, j));
        members.dedup();
        let ops = members.iter().map(|&j| self.part.ops[j].clone()).collect();
        let part = Partition { ops, ..self.part.clone_empty() };
        (members, part)
    }
}

/// The ops of `part` invoked before event `t`, as a history cut there: ops running at `t`
/// have an unknown outcome (a query or sync then tells nothing and is gone). Acknowledged ops
/// invoked before `lo` are left out (the caller resumes after them).
fn prefix<'h>(ix: &Index<'_, 'h>, lo: usize, t: usize) -> Prefix<'h> {
    let part = ix.part;
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    let mut unknown = Vec::new();
    for (i, op) in part.ops.iter().enumerate() {
        if op.inv >= t || (op.inv < lo && op.must) {
            continue;
        }
        let mut op = op.clone();
        if op.must && op.ret >= t {
            if op.pure {
                continue;
            }
            op.must = false;
            op.ret = usize::MAX;
            op.key = None;
            op.outcome = model::Outcome::Unknown;
        }
        if !op.must && op.deadline >= t {
            op.deadline = usize::MAX;
        }
        if !op.must {
            unknown.push(ops.len());
        }
        ops.push(op);
        origin.push(i);
    }
    let ephemerals = Some(ix.ephemerals.clone());
    let part = Partition { ops, ephemerals, ..part.clone_empty() };
    Prefix { part, origin, unknown }
}

fn fails(part: &Partition, start: Option<&Tree>, lin: bool, budget: u64) -> Option<Failure> {
    match linear::search_from(part, start, Relax::default(), lin, budget).0 {
        Outcome::Invalid(failure) => Some(*failure),
        Outcome::Valid | Outcome::Unknown(_) => None,
    }
}

/// Step 1: extends `checkpoints` (holding the initial state) along the key group's sound
/// cuts, a checkpoint once [`STRIDE`] ops lie between it and the last, until the ops ahead
/// of a cut fail from every state of the last checkpoint: that cut is returned. A cut whose
/// states cannot be certified (more than [`MAX_START_STATES`], or the budget) is passed by,
/// and the next try waits for twice as many ops, so a stretch that never certifies costs a
/// few searches, not one per cut.
fn walk(ix: &Index, checkpoints: &mut Vec<Checkpoint>, lin: bool, budget: u64) -> Option<usize> {
    let view = prefix(ix, 0, usize::MAX);
    let cuts = cut_points(&view.part, lin);
    let mut need = STRIDE;
    let mut first = 0; // the first op not ahead of the last checkpoint
    for s in cuts {
        let last = checkpoints.last().expect("the initial state");
        let upto = view.part.ops.partition_point(|op| op.inv < s);
        if upto.saturating_sub(first) < need {
            continue;
        }
        match advance(ix, &view, last, s, lin, budget) {
            None => need = need.saturating_mul(2),
            Some(states) if states.is_empty() => return Some(s),
            Some(states) => {
                checkpoints.push(Checkpoint { cut: s, states });
                need = STRIDE;
                first = upto;
            }
        }
    }
    None
}

/// The states the ops of `view` ahead of cut `s` can leave, resumed from checkpoint `from`
/// (at or before `s`): from each of its states, the ops between the two cuts and the earlier
/// ops of unknown outcome still pending. Empty if no order exists from any; `None` if more
/// than [`MAX_START_STATES`] or the budget ran out.
fn advance(
    ix: &Index,
    view: &Prefix,
    from: &Checkpoint,
    s: usize,
    lin: bool,
    budget: u64,
) -> Option<Vec<EndState>> {
    assert!(from.cut <= s, "a checkpoint before the cut");
    let segment = view.between(ix, from.cut, s);
    let mut out: Vec<EndState> = Vec::new();
    for (state, used) in &from.states {
        let mut members = view.pending(ix, from.cut, used);
        members.extend(&segment);
        let (members, part) = view.select(members);
        let found = match linear::end_states_from(&part, Some(state), lin, budget, MAX_START_STATES)
        {
            Ends::States(found) => found,
            Ends::Fails => continue,
            Ends::Unknown => return None,
        };
        for (end, more) in found {
            let mut all = used.clone();
            all.extend(more.iter().map(|&k| view.origin[members[k]]));
            all.sort_unstable();
            all.dedup();
            let state = (end, all);
            if !out.contains(&state) {
                out.push(state);
            }
        }
        if out.len() > MAX_START_STATES {
            return None;
        }
    }
    Some(minimal(ix, s, out))
}

/// The start states that matter at cut `s`: an op of unknown outcome out of time there can be
/// placed no more, so whether it was used shows in the state alone and is forgotten; and of
/// two states with the same tree, the one that used a subset of the other's ops leaves more
/// ops pending, so a window failing from it fails from the other: only it is kept.
fn minimal(ix: &Index, s: usize, mut states: Vec<EndState>) -> Vec<EndState> {
    let horizon = ix.horizon(s);
    for (_, used) in &mut states {
        used.retain(|&g| {
            ix.part.ops[g].deadline >= horizon && ix.successor[g].is_none_or(|w| !ix.ahead(w, s))
        });
    }
    let covers =
        |small: &[usize], big: &[usize]| small.iter().all(|g| big.binary_search(g).is_ok());
    let mut out: Vec<EndState> = Vec::new();
    states.sort_by_key(|(_, used)| used.len());
    for (tree, used) in states {
        if !out.iter().any(|(t, u)| *t == tree && covers(u, &used)) {
            out.push((tree, used));
        }
    }
    out
}

/// The window of `view`'s ops not ahead of cut `s`, if it fails from each of `states` (the
/// states the ops ahead can leave) with the earlier ops of unknown outcome still pending.
fn window_from<'h>(
    ix: &Index<'_, 'h>,
    view: &Prefix<'h>,
    s: usize,
    states: &[EndState],
    lin: bool,
    budget: u64,
) -> Option<Window<'h>> {
    let ops = &view.part.ops;
    let lo = ops.partition_point(|op| op.inv < s.saturating_sub(ix.max_span));
    let after: Vec<usize> = (lo..ops.len()).filter(|&j| !view.ahead(j, s)).collect();
    assert!(after.iter().all(|&j| ops[j].inv >= s || ops[j].must), "only ops at a cut straddle");
    if after.is_empty() || states.is_empty() {
        return None;
    }
    let mut first: Option<Window> = None;
    for (state, used) in states {
        let mut members = view.pending(ix, s, used);
        members.extend(&after);
        let (_, part) = view.select(members);
        let failure = fails(&part, Some(state), lin, budget)?;
        if first.is_none() {
            let shown: Vec<usize> = after.iter().map(|&j| view.origin[j]).collect();
            let to = after.iter().map(|&j| last_event(&ops[j])).max().expect("not empty");
            let from = after.iter().map(|&j| ops[j].inv).min().expect("not empty");
            first = Some(Window {
                ops: shown,
                from,
                to,
                starts: if s == 0 { 0 } else { states.len() },
                failure,
                part,
                start: (s > 0).then(|| state.clone()),
                end: usize::MAX,
                checkpoints: Vec::new(),
            });
        }
    }
    first
}

/// The window from cut `s` of `view` ([`window_from`]), its start states resumed from the
/// latest checkpoint at or before `s`.
fn from_cut<'h>(
    ix: &Index<'_, 'h>,
    view: &Prefix<'h>,
    checkpoints: &[Checkpoint],
    s: usize,
    lin: bool,
    budget: u64,
) -> Option<Window<'h>> {
    let at = checkpoints.partition_point(|c| c.cut <= s);
    let base = &checkpoints[at.checked_sub(1).expect("the initial state is at 0")];
    let states = advance(ix, view, base, s, lin, budget)?;
    window_from(ix, view, s, &states, lin, budget)
}

/// Step 2, the shortest failing prefix: the least cut `t` (an event index) whose prefix
/// fails from every state of the last checkpoint, with its window from that checkpoint.
/// `failed_at` is the cut where the walk failed (the prefix there fails), if it did; else
/// the whole key group is the upper end.
fn shortest_prefix<'h>(
    ix: &Index<'_, 'h>,
    checkpoints: &[Checkpoint],
    failed_at: Option<usize>,
    lin: bool,
    budget: u64,
) -> Option<(usize, Window<'h>)> {
    let part = ix.part;
    let base = checkpoints.last().expect("the initial state");
    let mut cuts: Vec<usize> = part.ops.iter().map(|op| op.inv + 1).collect();
    cuts.extend(part.ops.iter().filter(|op| op.must).map(|op| op.ret + 1));
    cuts.sort_unstable();
    cuts.dedup();
    // Prefixes ending at or before the checkpoint pass (its ops have an order, which orders
    // every shorter prefix), and the one at `failed_at` fails.
    cuts.retain(|&t| t > base.cut);
    if let Some(f) = failed_at {
        let upto = cuts.partition_point(|&t| t < f);
        cuts.truncate((upto + 1).min(cuts.len()));
    }
    let lo_inv = base.cut.saturating_sub(ix.max_span);
    let probe = |t: usize| {
        let view = prefix(ix, lo_inv, t);
        window_from(ix, &view, base.cut, &base.states, lin, budget)
    };
    // Failing prefixes are closed upwards. Invariant: the cut at `hi` fails.
    let (mut lo, mut hi) = (0, cuts.len().checked_sub(1)?);
    let mut failure = probe(cuts[hi])?;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match probe(cuts[mid]) {
            Some(found) => {
                failure = found;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Some((cuts[lo], failure))
}

fn is_close(op: &POp) -> bool {
    matches!(op.action, model::Action::Close { .. })
}

fn last_event(op: &POp) -> usize {
    if op.ret == usize::MAX { op.inv } else { op.ret }
}

/// Cuts (invoke points) that separate the history soundly: the ops after a cut cannot be
/// ordered before the ops ahead of it. That holds when every acknowledged op still running at
/// the cut (a *straddler*, which then belongs to the window) carries a zxid and began after
/// every acknowledged op without one ahead of the cut had completed (so real time and zxid
/// order put all of those before it); ops ahead of the cut that are not running completed
/// before it (real time orders writes and syncs); the zxids ahead of it are all below those of
/// the window (zxid order); a read with a zxid in the window, which may be stale, comes after
/// the acknowledged writes without a zxid ahead of the cut only through a write with a zxid
/// begun after they completed, so one must exist; and no read without a zxid is the first op
/// of its session after the cut (such a read may be stale, so placed before the cut); with
/// linearizable reads, real time orders reads too. Straddlers let histories of clients
/// without think time, where some op is always running, be cut too. The first invoke is
/// excluded: cutting there is the whole partition.
fn cut_points(part: &Partition, lin: bool) -> Vec<usize> {
    let ops = &part.ops;
    let n = ops.len();
    // Suffix minima: the least key after, and the earliest anchor of a floating read after.
    let mut key_after = vec![None; n + 1];
    let mut anchor_after = vec![usize::MAX; n + 1];
    let anchors = read_anchors(ops);
    for i in (0..n).rev() {
        key_after[i] = match (ops[i].key, key_after[i + 1]) {
            (Some(k), Some(m)) => Some(k.min(m)),
            (k, m) => k.or(m),
        };
        anchor_after[i] = anchor_after[i + 1].min(anchors[i]);
    }
    let keyed_query = |op: &POp| op.query && op.key.is_some();
    let mut keyed_query_after = vec![false; n + 1];
    for i in (0..n).rev() {
        keyed_query_after[i] = keyed_query_after[i + 1] || keyed_query(&ops[i]);
    }
    let mut cuts = Vec::new();
    // Ahead of the cut and not running: the latest completion of an acknowledged write
    // without a zxid, and the latest invoke of an acknowledged write with one.
    let mut unkeyed_write_ret = None;
    let mut keyed_write_inv = None;
    // Acknowledged ops ahead of the cut, still running at it: by completion.
    let mut running: std::collections::BTreeMap<usize, usize> = Default::default();
    // Ahead of the cut and not running: the greatest key, and the latest completion of an
    // acknowledged op without a key.
    let mut key_before = None;
    let mut unkeyed_ret = None;
    for i in 0..n {
        if i > 0 && ops[i - 1].inv < ops[i].inv {
            let s = ops[i].inv;
            while let Some((&ret, &j)) = running.first_key_value().filter(|(r, _)| **r < s) {
                running.remove(&ret);
                key_before = key_before.max(ops[j].key);
                if ops[j].key.is_none() {
                    unkeyed_ret = unkeyed_ret.max(Some(ret));
                }
                match (ops[j].pure, ops[j].key) {
                    (true, _) => {}
                    (false, None) => unkeyed_write_ret = unkeyed_write_ret.max(Some(ret)),
                    (false, Some(_)) => keyed_write_inv = keyed_write_inv.max(Some(ops[j].inv)),
                }
            }
            let straddlers = || running.values().map(|&j| &ops[j]);
            let all_keyed = straddlers().all(|op| op.key.is_some());
            let first_inv = straddlers().map(|op| op.inv).min();
            let after_started = match (unkeyed_ret, first_inv) {
                (Some(r), Some(inv)) => r < inv,
                _ => true,
            };
            let key_window = straddlers().filter_map(|op| op.key).chain(key_after[i]).min();
            let keys_ok = match (key_before, key_window) {
                (Some(b), Some(a)) => b < a,
                _ => true,
            };
            let reads_ok = lin || anchor_after[i] >= i;
            let stale_ok = !(keyed_query_after[i] || straddlers().any(keyed_query))
                || match (unkeyed_write_ret, keyed_write_inv) {
                    (None, _) => true,
                    (Some(r), w) => w.is_some_and(|w| w > r),
                };
            if all_keyed && after_started && keys_ok && reads_ok && stale_ok {
                cuts.push(s);
            }
        }
        if ops[i].must {
            running.insert(ops[i].ret, i);
        } else {
            key_before = key_before.max(ops[i].key);
        }
    }
    cuts
}

/// For each acknowledged read without a zxid: the index of its session's previous acknowledged
/// op (it cannot move before that one), or 0 if none; `usize::MAX` for every other op.
fn read_anchors(ops: &[POp]) -> Vec<usize> {
    let mut last: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    let mut anchors = vec![usize::MAX; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        if op.must && op.query && op.key.is_none() {
            anchors[i] = last.get(&op.process).copied().unwrap_or(0);
        }
        if op.must && !is_close(op) {
            last.insert(op.process, i);
        }
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Guarantee, Options, Violation, partition, violation_of};
    use crate::history::{F, History, Outcome as Reply};

    /// Corrupts the first fitting reply after event `at`: `Invent` a read value, drop a
    /// `Child` from a children listing, or make a read `Stale` (the value an earlier read of
    /// its path returned). False if no reply fits.
    #[derive(Clone, Copy, Debug)]
    enum Corruption {
        Invent,
        Child,
        Stale,
    }

    fn corrupt(history: &mut History, at: usize, how: Corruption) -> bool {
        let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for op in history.ops() {
            let Some(c) = op.complete.filter(|_| op.outcome == Reply::Ok) else { continue };
            let path = history.events[op.invoke].path.clone().unwrap_or_default();
            let data = history.events[c].data.clone();
            let events = &mut history.events;
            match (how, op.f) {
                (Corruption::Invent, F::Get) if c >= at && data.is_some() => {
                    events[c].data = Some("invented".into());
                    return true;
                }
                (Corruption::Child, F::Children) if c >= at => {
                    let children = &mut events[c].rare_mut().children;
                    if children.as_ref().is_some_and(|c| c.len() >= 2) {
                        children.as_mut().expect("checked").remove(0);
                        return true;
                    }
                }
                (Corruption::Stale, F::Get) if data.is_some() => {
                    let data = data.expect("checked");
                    let older = seen.get(&path).and_then(|v| v.iter().rev().find(|d| **d != data));
                    if c >= at
                        && let Some(older) = older
                    {
                        events[c].data = Some(older.clone());
                        return true;
                    }
                    seen.entry(path).or_default().push(data);
                }
                _ => {}
            }
        }
        false
    }

    /// For each key group of `history` whose search fails: its violation and window found by
    /// the resumed search, and by the search from the start.
    fn both(history: &History) -> Vec<[(Violation, Option<Window<'_>>); 2]> {
        let ops = history.validated_ops().expect("well formed");
        // A small budget keeps the diagnosis's relaxed searches short (the same for both).
        let options = Options { max_configs: 20_000, ..Options::default() };
        let split = partition::Split { use_read_zxids: true, ..partition::Split::default() };
        let mut out = Vec::new();
        for part in partition::partitions(history, &ops, split) {
            let budget = options.max_configs;
            let Outcome::Invalid(failure) =
                linear::search(&part, Relax::default(), false, budget).0
            else {
                continue;
            };
            let run = |resume: Resume| {
                let v = violation_of(history, &ops, &part, &failure, &options, resume);
                (v, smallest(&part, false, budget, resume))
            };
            out.push([run(Resume::Checkpoints), run(Resume::FromStart)]);
        }
        out
    }

    /// The resumed search finds the violation the search from the start finds: the same
    /// guarantee, window, ops and number of start states, on corruptions early, midway and
    /// late in key groups long enough to hold many checkpoints.
    #[test]
    fn resumed_window_is_the_window_of_the_full_search() {
        let mut resumed = 0;
        for (seed, how) in [(1, Corruption::Invent), (2, Corruption::Child), (3, Corruption::Stale)]
        {
            for fraction in [0.2, 0.5, 0.9] {
                let config = crate::generate::Config {
                    ops: 4000,
                    paths: 2,
                    sessions: 8,
                    info_rate: 0.03,
                    seed,
                    ..Default::default()
                };
                let mut history = crate::generate::generate(&config);
                let at = (history.events.len() as f64 * fraction) as usize;
                assert!(corrupt(&mut history, at, how), "{how:?} fits seed {seed}");
                let found = both(&history);
                assert!(!found.is_empty(), "{how:?} at {fraction} of seed {seed} is caught");
                for [(v, w), (full_v, full_w)] in found {
                    let case = format!("{how:?} at {fraction} of seed {seed}");
                    assert_eq!(v.guarantee, full_v.guarantee, "{case}");
                    assert_eq!(v.window, full_v.window, "{case}");
                    assert_eq!(v.ops, full_v.ops, "{case}");
                    assert_eq!(v.marked, full_v.marked, "{case}");
                    let (w, full_w) = (w.expect("certified"), full_w.expect("certified"));
                    assert_eq!((w.from, w.to, w.end), (full_w.from, full_w.to, full_w.end));
                    assert_eq!(w.starts, full_w.starts, "{case}");
                    assert_eq!(full_w.checkpoints.len(), 1, "the full search starts once");
                    if w.checkpoints.len() > 2 {
                        resumed += 1;
                    }
                }
            }
        }
        assert!(resumed >= 4, "cases resumed from a checkpoint: {resumed}");
    }

    /// A history whose later reads are allowed only by an early write: `/a` is created once,
    /// then `/b` (in one key group with `/a`: a listing of the root names both) is set 1,500
    /// times while `/a` is read every hundred sets; a read of `/b` near the end returns a
    /// value nobody wrote. A checkpoint state that lost `/a` would fail at the first read of
    /// `/a` after it, and the window would be there instead of at the invented read.
    #[test]
    fn resumed_state_carries_what_the_prefix_wrote() {
        let mut lines = vec![r#"{"zkr_history":1,"initial":[]}"#.to_string()];
        let mut zxid: i64 = 1;
        let ok = |lines: &mut Vec<String>, p: u64, invoke: String, reply: String| {
            lines.push(format!(r#"{{"process":{p},"type":"invoke",{invoke}}}"#));
            lines.push(format!(r#"{{"process":{p},"type":"ok",{reply}}}"#));
        };
        ok(
            &mut lines,
            1,
            r#""f":"create","path":"/a","data":"x","mode":"persistent""#.into(),
            format!(r#""f":"create","zxid":{zxid},"name":"/a""#),
        );
        zxid += 1;
        ok(
            &mut lines,
            1,
            concat!(
                r#""f":"multi","ops":[{"f":"set","path":"/a","data":"x","version":-1},"#,
                r#"{"f":"create","path":"/b","data":"0"}]"#
            )
            .into(),
            format!(r#""f":"multi","zxid":{zxid},"results":[{{}},{{"name":"/b"}}]"#),
        );
        // A listing of the root spans both paths: they form one key group.
        let list = r#""f":"children","path":"/""#.to_string();
        ok(&mut lines, 2, list, format!(r#""f":"children","zxid":{zxid},"children":["a","b"]"#));
        let mut invented = 0;
        for i in 1..=1500 {
            zxid += 1;
            let set = format!(r#""f":"set","path":"/b","data":"v{i}","version":-1"#);
            ok(&mut lines, 1, set, format!(r#""f":"set","zxid":{zxid}"#));
            if i % 100 == 0 {
                let get = r#""f":"get","path":"/a""#.to_string();
                ok(&mut lines, 2, get, format!(r#""f":"get","data":"x","zxid":{zxid}"#));
            }
            if i == 1400 {
                // The header is not an event: the invented read's reply is event `invented`.
                invented = lines.len();
                let get = r#""f":"get","path":"/b""#.to_string();
                ok(&mut lines, 3, get, format!(r#""f":"get","data":"invented","zxid":{zxid}"#));
            }
        }
        let history = History::parse(&lines.join("\n")).expect("well formed");
        let verdict = crate::check::check(&history, &Options::default()).expect("well formed");
        assert_eq!(verdict.violations.len(), 1, "{verdict:?}");
        let v = &verdict.violations[0];
        assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
        assert!(v.window.0 <= invented && invented <= v.window.1, "{:?}", v.window);
        assert!(v.window.1 - v.window.0 < 20, "a small window: {:?}", v.window);
        let found = both(&history);
        assert_eq!(found.len(), 1);
        let [(v, w), (full_v, _)] = &found[0];
        assert_eq!((v.guarantee, v.window), (full_v.guarantee, full_v.window));
        let w = w.as_ref().expect("certified");
        assert!(w.checkpoints.len() > 2, "resumed from a checkpoint");
        let start = w.start.as_ref().expect("a start state after the prefix");
        let paths = &w.part.scope.paths;
        let text = start.describe(paths);
        assert_eq!(start.node("/a").map(|n| &*n.data), Some("x"), "{paths:?} {text}");
    }
}
