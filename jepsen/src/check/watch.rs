//! Watches: a client receives the event for a change before it can read the change.
//!
//! A watch is left by an acknowledged read with `watch: true` whose reply carries the zxid it
//! was served at (`getData`/`exists` on an existing node: a data watch; `exists` on a missing
//! node: a creation watch; `getChildren`: a child watch). Its trigger is the first
//! acknowledged write after that zxid that changes what the watch covers (from the zxids of
//! write replies). Then, per session, in the order the process saw things:
//! - an event must match a pending watch of that path (one event per watch: watches fire once);
//! - an event carrying a zxid must not be later than the trigger (it announces the first
//!   change; an earlier one is possible, made by a write whose outcome is unknown);
//! - a later read of that path that shows the trigger (reply zxid, or stat mzxid/pzxid/czxid
//!   at or after it) before the event arrived breaks "watch before data".
//!
//! Changes made by `close` (ephemerals going away) are not used as triggers: which nodes a
//! session owned is the search's business, not this pass's.

use super::explain::short;
use super::{Explanation, Guarantee, Options, Violation, window_of};
use crate::history::{Event, F, History, Kind, Op, Outcome, SubResult, WatchType, parent};
use crate::model::PathHasher;
use crate::report::describe_op;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

/// The maps of this pass are keyed by paths (borrowed from the history) and only looked up,
/// never iterated in an order that shows (each change list is sorted on its own), so they hash
/// with the path tables' hasher instead of comparing paths byte by byte at every level of a
/// `BTreeMap`.
type Hashed = BuildHasherDefault<PathHasher>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Data,
    Creation,
    Child,
}

impl Class {
    fn fired_by(self, t: WatchType) -> bool {
        match self {
            Class::Data => matches!(t, WatchType::NodeDataChanged | WatchType::NodeDeleted),
            Class::Creation => t == WatchType::NodeCreated,
            Class::Child => matches!(t, WatchType::NodeChildrenChanged | WatchType::NodeDeleted),
        }
    }
}

struct Registration {
    op: usize,
    class: Class,
    at: i64,
    trigger: Option<(i64, usize)>,
}

/// Per watched path: (zxid, change type, op) of every acknowledged write with a zxid, in zxid
/// order. Paths are borrowed from the history (a copy per recorded change was most of this
/// pass).
type Changes<'h> = HashMap<&'h str, Vec<(i64, WatchType, usize)>, Hashed>;

/// Watches left, by (process, path).
type Pending<'h> = HashMap<(u64, &'h str), Vec<Registration>, Hashed>;

/// [`Changes`] of the paths a read left a watch on (the only paths [`check`] asks about: a
/// trigger is looked up for an acknowledged read that set a watch): a history's writes touch
/// many paths, its watches few, and the lists of the others were built and sorted for
/// nothing. No watch at all: nothing to build.
fn changes<'h>(history: &'h History, ops: &[Op]) -> Changes<'h> {
    let watched: HashSet<&'h str, Hashed> = (ops.iter())
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|op| history.request(op))
        .filter(|req| req.watch)
        .map(|req| req.path.as_deref().unwrap_or_default())
        .collect();
    if watched.is_empty() {
        return Changes::default();
    }
    changes_where(history, ops, |path| watched.contains(path))
}

/// [`Changes`] of the paths `keep` keeps.
fn changes_where<'h>(history: &'h History, ops: &[Op], keep: impl Fn(&str) -> bool) -> Changes<'h> {
    let mut out: Changes = HashMap::default();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let req = history.request(op);
        let Some(reply) = history.reply(op) else { continue };
        let Some(z) = reply.zxid else { continue };
        let mut record = |path: &'h str, t: WatchType| {
            if keep(path) {
                out.entry(path).or_default().push((z, t, op.id));
            }
        };
        let mut change = |f: F, path: &'h str, name: Option<&'h str>| match f {
            F::Create => {
                let name = name.unwrap_or(path);
                record(name, WatchType::NodeCreated);
                if let Some(p) = parent(name) {
                    record(p, WatchType::NodeChildrenChanged);
                }
            }
            F::Delete => {
                record(path, WatchType::NodeDeleted);
                if let Some(p) = parent(path) {
                    record(p, WatchType::NodeChildrenChanged);
                }
            }
            F::Set => record(path, WatchType::NodeDataChanged),
            _ => {}
        };
        // A multi's sub-operations, or the op itself (walked, not collected: an allocation
        // per op).
        match op.f {
            F::Multi => {
                let results: &[SubResult] = reply.results().as_deref().unwrap_or_default();
                for (i, sub) in req.ops().iter().flatten().enumerate() {
                    let name = results.get(i).and_then(|r| r.name.as_deref());
                    change(sub.f, sub.path.as_str(), name);
                }
            }
            f => change(f, req.path.as_deref().unwrap_or_default(), reply.name().as_deref()),
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// Runs the watch checks.
pub(crate) fn check(history: &History, ops: &[Op], options: &Options) -> Vec<Violation> {
    let changes = changes(history, ops);
    // The op each event invokes or completes, if any (flat: millions of events).
    let mut owner: Vec<u32> = vec![u32::MAX; history.events.len()];
    for op in ops {
        let id = u32::try_from(op.id).expect("fewer than 2^32 ops");
        owner[op.invoke] = id;
        if let Some(c) = op.complete {
            owner[c] = id;
        }
    }
    let invoking = |index: usize| ops.get(owner[index] as usize).filter(|op| op.invoke == index);
    let completing =
        |index: usize| ops.get(owner[index] as usize).filter(|op| op.complete == Some(index));
    // Keyed by (process, path), the path borrowed from the history.
    let mut pending: Pending = HashMap::default();
    // Watches whose registration point is unknown (no reply zxid, or an unknown outcome):
    // their events are accepted without checks.
    let mut vague: HashSet<(u64, &str), Hashed> = HashSet::default();
    let mut out = Vec::new();
    for (index, event) in history.events.iter().enumerate() {
        if event.kind == Some(Kind::Event) {
            let key = (event.process, event.path.as_deref().unwrap_or_default());
            let vague = vague.contains(&key);
            on_event(history, ops, (index, event), vague, &mut pending, &mut out);
            continue;
        }
        if event.kind == Some(Kind::Invoke) && event.watch {
            let certain = invoking(index).is_some_and(|op| {
                op.outcome == Outcome::Ok
                    && options.use_read_zxids
                    && history.reply(op).is_some_and(|r| r.zxid.is_some())
            });
            if !certain {
                vague.insert((event.process, event.path.as_deref().unwrap_or_default()));
            }
        }
        let Some(op) = completing(index) else { continue };
        let id = op.id;
        if op.outcome != Outcome::Ok || !crate::model::is_query(op.f) {
            continue;
        }
        let req = history.request(op);
        let path = req.path.as_deref().unwrap_or_default();
        let key = (op.process, path);
        for reg in pending.get(&key).into_iter().flatten() {
            let Some((tz, tid)) = reg.trigger else { continue };
            if let Some(shown) = shows(event, reg.class, tz, options) {
                let message = format!(
                    "{} saw the change at zxid {tz:#x} ({}) through its {shown}, before the \
                     event for the watch left by {} arrived",
                    describe_op(history, op),
                    describe_op(history, &ops[tid]),
                    describe_op(history, &ops[reg.op])
                );
                let sentence = format!(
                    "p{} saw the change of zxid {tz:#x} ({}) through its {shown} before the event \
                     for the watch it left with {} arrived; a client receives a watch's event \
                     before any reply that shows the change",
                    op.process,
                    short(history, &ops[tid]),
                    short(history, &ops[reg.op]),
                );
                let causes = [
                    (reg.op, "left the watch"),
                    (tid, "the change that fires it"),
                    (id, "saw the change first"),
                ];
                let explanation = Explanation::new(sentence, &causes);
                let marked = vec![reg.op, tid, id];
                let window = window_of(ops, marked.iter().copied(), history.events.len());
                let g = Guarantee::Watches;
                out.push(Violation {
                    guarantee: g,
                    message,
                    marked,
                    context: vec![],
                    window,
                    ops: vec![],
                    explanation,
                });
                break;
            }
        }
        if req.watch
            && let Some(at) = event.zxid
        {
            let class = match op.f {
                F::Children => Class::Child,
                F::Exists if event.stat.is_none() => Class::Creation,
                _ => Class::Data,
            };
            let trigger = (changes.get(path).into_iter().flatten())
                .find(|(z, t, _)| *z > at && class.fired_by(*t))
                .map(|(z, _, id)| (*z, *id));
            pending.entry(key).or_default().push(Registration { op: id, class, at, trigger });
        }
    }
    out
}

/// Which reply field shows the change at `tz`, if any.
fn shows(reply: &Event, class: Class, tz: i64, options: &Options) -> Option<&'static str> {
    if options.use_read_zxids && reply.zxid.is_some_and(|z| z >= tz) {
        return Some("reply zxid");
    }
    let stat = reply.stat.as_ref()?;
    let field = match class {
        Class::Data => stat.mzxid.map(|z| (z, "mzxid")),
        Class::Creation => stat.czxid.map(|z| (z, "czxid")),
        Class::Child => stat.pzxid.map(|z| (z, "pzxid")),
    };
    field.filter(|(z, _)| *z >= tz).map(|(_, name)| name)
}

fn on_event<'h>(
    history: &'h History,
    ops: &[Op],
    (index, event): (usize, &'h Event),
    vague: bool,
    pending: &mut Pending<'h>,
    out: &mut Vec<Violation>,
) {
    let t = event.event().expect("validated");
    let path = event.path.as_deref().expect("validated");
    let regs = pending.entry((event.process, path)).or_default();
    let fired: Vec<Registration> = {
        let (fired, kept) = std::mem::take(regs).into_iter().partition(|r| r.class.fired_by(t));
        *regs = kept;
        fired
    };
    let push = |out: &mut Vec<Violation>, message: String, marked: Vec<usize>, sentence| {
        let (lo, hi) = window_of(ops, marked.iter().copied(), history.events.len());
        let window = (lo.min(index), hi.max(index));
        let roles = ["left the watch", "the change it should have fired for"];
        let causes: Vec<(usize, &str)> = marked.iter().copied().zip(roles).collect();
        let explanation = Explanation::new(sentence, &causes);
        out.push(Violation {
            guarantee: Guarantee::Watches,
            message,
            marked,
            context: vec![],
            window,
            ops: vec![],
            explanation,
        });
    };
    if fired.is_empty() && !vague {
        let message = format!(
            "process {} received {t:?} for {path} (event #{index}) without a pending watch",
            event.process
        );
        let sentence = format!(
            "p{} received {t:?} for {path} (event #{index}) but had no watch pending on it; a \
             watch fires once, for a watch a read left",
            event.process
        );
        push(out, message, vec![], sentence);
        return;
    }
    let Some(ez) = event.zxid else { return };
    for reg in fired {
        let late = reg.trigger.filter(|(tz, _)| ez > *tz);
        let early = ez <= reg.at;
        if let Some((tz, tid)) = late {
            let message = format!(
                "{t:?} for {path} (event #{index}) is for zxid {ez:#x}, but the watch left by {} \
                 should have fired for {} at zxid {tz:#x}",
                describe_op(history, &ops[reg.op]),
                describe_op(history, &ops[tid])
            );
            let sentence = format!(
                "p{}'s watch (left by {}) fired for zxid {ez:#x}, but {} changed {path} first, \
                 at zxid {tz:#x}; a watch fires for the first change after it was set",
                event.process,
                short(history, &ops[reg.op]),
                short(history, &ops[tid])
            );
            push(out, message, vec![reg.op, tid], sentence);
        } else if early {
            let message = format!(
                "{t:?} for {path} (event #{index}) is for zxid {ez:#x}, not after the watch left \
                 by {} at zxid {:#x}",
                describe_op(history, &ops[reg.op]),
                reg.at
            );
            let sentence = format!(
                "p{}'s watch (left by {} at zxid {:#x}) fired for zxid {ez:#x}, which is not \
                 after it; a watch fires for a change after it was set",
                event.process,
                short(history, &ops[reg.op]),
                reg.at
            );
            push(out, message, vec![reg.op], sentence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The changes recorded for the watched paths only are every path's changes, for each
    /// path a read left a watch on (over generated histories with watches, creates and
    /// deletes that change a parent's children, multis); and no list is kept for a path
    /// without a watch.
    #[test]
    fn watched_changes_are_the_changes_of_watched_paths() {
        let mut compared = 0;
        for seed in 1..=5 {
            let config = crate::generate::Config {
                ops: 1500,
                paths: 8,
                seed,
                multi_rate: 0.05,
                ..Default::default()
            };
            let history = crate::generate::generate(&config);
            let ops = history.ops();
            let all = changes_where(&history, &ops, |_| true);
            let watched = changes(&history, &ops);
            let is_watched = |path: &str| {
                (ops.iter()).filter(|o| o.outcome == Outcome::Ok).any(|op| {
                    let req = history.request(op);
                    req.watch && req.path.as_deref() == Some(path)
                })
            };
            assert!(watched.keys().all(|p| is_watched(p)), "only watched paths, seed {seed}");
            for (path, list) in &all {
                if is_watched(path) {
                    assert_eq!(watched.get(path), Some(list), "{path}, seed {seed}");
                    compared += 1;
                }
            }
            assert!(all.len() > watched.len(), "some paths unwatched, seed {seed}");
        }
        assert!(compared > 20, "watched paths compared: {compared}");
    }
}
