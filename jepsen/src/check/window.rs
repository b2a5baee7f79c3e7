//! The smallest failing window of a partition that no allowed order explains.
//!
//! A window is a stretch of the history `[from, to)` (event indices) whose ops alone, started
//! from every state the earlier ops can leave, cannot be ordered. It is found in two steps:
//!
//! 1. The end: the shortest failing prefix. A prefix of a history is itself a history (ops
//!    still running at the cut become ops of unknown outcome; pending reads are dropped), and a
//!    prefix of an allowed history is allowed; so a failing prefix is a certificate, and the
//!    failing prefixes are closed upwards, which lets a binary search find the shortest.
//! 2. The start: the latest sound cut (see [`cut_points`]: the acknowledged ops running at it
//!    carry zxids that order them after everything ahead, and join the window), such that the
//!    ops of the window fail from *each* state an allowed order of the earlier ops can end in
//!    (collected by the search, at most [`MAX_START_STATES`] of them). Earlier ops of unknown
//!    outcome not used on the way to a state stay available after the cut. Dropping the
//!    earlier reads only weakens the window, so a failure of the window is a failure of the
//!    history.
//!
//! Invariant: every window returned was checked to fail; when a step cannot be certified
//! (too many start states, search budget), the window stays wider, never wrong.

use super::linear::{self, Failure, Outcome, Relax};
use super::partition::{POp, Partition};
use crate::model::{self, Tree};

/// At most this many start states are tried for a cut.
const MAX_START_STATES: usize = 16;

/// A certified failing window of one partition.
pub(crate) struct Window {
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
    pub part: Partition,
    /// The state the window's search started from, when not the initial one.
    pub start: Option<Tree>,
    /// The whole partition cut at the window's end (from the initial state).
    pub prefix: Partition,
}

/// Finds the smallest failing window of `part`, a partition whose search failed with
/// `failure`. `None` if not even the whole partition can be certified within `budget` per
/// search.
///
/// Cost: both ends are found by galloping from where the failure is (the end forward from
/// the furthest point the failed search reached, the start back from the end), so the number
/// of probes grows with the log of the distance to the failure, not of the key group. Each
/// probe still searches its prefix from the start: a long key group still pays its length per
/// probe (see docs/JEPSEN.md, "The checker at scale").
pub(crate) fn smallest(
    part: &Partition,
    failure: &Failure,
    lin: bool,
    budget: u64,
) -> Option<Window> {
    let (end, failure) = shortest_prefix(part, failure, lin, budget)?;
    let prefix = prefix(part, end);
    let mut window = whole(&prefix, failure)?;
    window.to = window.to.min(end.saturating_sub(1));
    // Cuts: invoke points where no acknowledged op is running. Failing cuts are not
    // guaranteed to be contiguous, so the search keeps the latest certified one it meets.
    let cuts: Vec<usize> = cut_points(&prefix.part, lin);
    // Invariant: no cut probed at `hi` or after was certified; a window from a cut before
    // `lo` is held.
    let (mut lo, mut hi) = (0, cuts.len());
    let mut step = 1;
    while hi > 0 {
        let probe = hi.saturating_sub(step);
        if let Some(found) = from_cut(&prefix, cuts[probe], lin, budget) {
            window = Window { to: window.to, ..found };
            lo = probe + 1;
            break;
        }
        hi = probe;
        step *= 2;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match from_cut(&prefix, cuts[mid], lin, budget) {
            Some(found) => {
                window = Window { to: window.to, ..found };
                lo = mid + 1;
            }
            None => hi = mid,
        }
    }
    assert!(window.from <= window.to, "a window is not empty");
    Some(window)
}

/// A partition restricted to a prefix, remembering where its ops came from.
struct Prefix {
    part: Partition,
    origin: Vec<usize>,
}

/// The ops of `part` as a history cut at event `t`: ops invoked from `t` on are gone; those
/// running at `t` have an unknown outcome (a query or sync then tells nothing and is gone).
fn prefix(part: &Partition, t: usize) -> Prefix {
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    for (i, op) in part.ops.iter().enumerate() {
        if op.inv >= t {
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
        ops.push(op);
        origin.push(i);
    }
    let part = Partition { scope: part.scope.clone(), ops, initial: part.initial.clone() };
    Prefix { part, origin }
}

fn fails(part: &Partition, start: Option<&Tree>, lin: bool, budget: u64) -> Option<Failure> {
    match linear::search_from(part, start, Relax::default(), lin, budget).0 {
        Outcome::Invalid(failure) => Some(*failure),
        Outcome::Valid | Outcome::Unknown(_) => None,
    }
}

/// The shortest failing prefix: the least cut `t` (an event index) whose prefix fails, with
/// that prefix's failure. `whole` is the failure of all of `part`.
///
/// The order `whole` found places every acknowledged op that completed before the first one
/// it could not place, and no write invoked after that one completed (real time), so cut
/// there the prefix has that order minus some reads: it passes, and the search gallops
/// forward from it. Checked, not assumed: if that prefix fails, the search covers the cuts
/// before it instead.
fn shortest_prefix(
    part: &Partition,
    whole: &Failure,
    lin: bool,
    budget: u64,
) -> Option<(usize, Failure)> {
    let mut cuts: Vec<usize> = part.ops.iter().map(|op| op.inv + 1).collect();
    cuts.extend(part.ops.iter().filter(|op| op.must).map(|op| op.ret + 1));
    cuts.sort_unstable();
    cuts.dedup();
    let last = *cuts.last()?;
    // The whole partition failed within the caller's budget; certified within this one, or
    // the window search would spend its budget on every probe and end at the whole anyway.
    let mut failure = fails(&prefix(part, last).part, None, lin, budget)?;
    let mut placed = vec![false; part.ops.len()];
    for &i in &whole.order {
        placed[i] = true;
    }
    let unplaced = (0..part.ops.len()).filter(|&i| part.ops[i].must && !placed[i]);
    let reached = unplaced.map(|i| part.ops[i].ret).min().unwrap_or(last);
    // Failing prefixes are closed upwards. Invariant: the cut at `hi` fails; the cut at `lo`
    // passes, or `lo` is 0 (not known).
    let (mut lo, mut hi) = (0, cuts.len() - 1);
    let start = cuts.partition_point(|&c| c <= reached).saturating_sub(1).min(hi);
    if start > 0 && start < hi {
        match fails(&prefix(part, cuts[start]).part, None, lin, budget) {
            Some(found) => (failure, hi) = (found, start),
            None => {
                lo = start;
                let mut step = 1;
                while lo + step < hi {
                    let probe = lo + step;
                    match fails(&prefix(part, cuts[probe]).part, None, lin, budget) {
                        Some(found) => {
                            (failure, hi) = (found, probe);
                            break;
                        }
                        None => lo = probe,
                    }
                    step *= 2;
                }
                lo += 1; // `lo` passes: the least failing cut is after it.
            }
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match fails(&prefix(part, cuts[mid]).part, None, lin, budget) {
            Some(found) => {
                failure = found;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Some((cuts[lo], failure))
}

/// The whole (prefix) partition as a window from the initial state, with its failure.
fn whole(prefix: &Prefix, failure: Failure) -> Option<Window> {
    let ops: Vec<usize> = prefix.origin.clone();
    let from = prefix.part.ops.iter().map(|op| op.inv).min()?;
    let to = prefix.part.ops.iter().map(last_event).max()?;
    let part = prefix.part.clone();
    Some(Window { ops, from, to, starts: 0, failure, prefix: part.clone(), part, start: None })
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

/// The window of ops invoked from event `s` on, if it fails from every state the earlier ops
/// can end in.
fn from_cut(prefix: &Prefix, s: usize, lin: bool, budget: u64) -> Option<Window> {
    let ops = &prefix.part.ops;
    // Acknowledged ops running at the cut belong to the window ([`cut_points`]).
    let straddles = |i: usize| ops[i].inv < s && ops[i].must && ops[i].ret > s;
    let before: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].inv < s && !straddles(i)).collect();
    let after: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].inv >= s || straddles(i)).collect();
    assert!(before.iter().all(|&i| !ops[i].must || ops[i].ret < s), "a cut splits no op");
    assert!(after.iter().all(|&i| ops[i].inv >= s || ops[i].key.is_some()), "straddlers keyed");
    if after.is_empty() {
        return None;
    }
    let earlier = Partition {
        scope: prefix.part.scope.clone(),
        ops: before.iter().map(|&i| ops[i].clone()).collect(),
        initial: prefix.part.initial.clone(),
    };
    let starts = linear::end_states(&earlier, lin, budget, MAX_START_STATES)?;
    // Earlier ops of unknown outcome that are out of time once every earlier acknowledged op
    // is placed (as the search decides it) took effect before the cut or never.
    let writes = || earlier.ops.iter().filter(|o| o.acked_write());
    let horizon = writes().map(|o| o.inv).max().unwrap_or(0);
    let in_time = |op: &POp| {
        !op.must
            && op.deadline >= horizon
            && !writes().any(|o| o.process == op.process && o.inv > op.inv)
    };
    let mut first: Option<Window> = None;
    for (state, used) in &starts {
        // Earlier ops of unknown outcome not used on the way here may still take effect.
        let used_groups: Vec<Option<usize>> = used.iter().map(|&u| earlier.ops[u].group).collect();
        let pending = (0..before.len()).filter(|&j| {
            let op = &earlier.ops[j];
            in_time(op)
                && !used.contains(&j)
                && (op.group.is_none() || !used_groups.contains(&op.group))
        });
        let mut members: Vec<usize> = pending.map(|j| before[j]).collect();
        members.extend(&after);
        members.sort_by_key(|&i| (ops[i].inv, i));
        let part = Partition {
            scope: prefix.part.scope.clone(),
            ops: members.iter().map(|&i| ops[i].clone()).collect(),
            initial: prefix.part.initial.clone(),
        };
        let failure = fails(&part, Some(state), lin, budget)?;
        if first.is_none() {
            let shown: Vec<usize> = after.iter().map(|&i| prefix.origin[i]).collect();
            let to = after.iter().map(|&i| last_event(&ops[i])).max().expect("not empty");
            let from = after.iter().map(|&i| ops[i].inv).min().expect("not empty");
            first = Some(Window {
                ops: shown,
                from,
                to,
                starts: starts.len(),
                failure,
                part,
                start: Some(state.clone()),
                prefix: prefix.part.clone(),
            });
        }
    }
    first
}
