//! Fast checks on the zxids that replies carry, across all paths, in one pass each.
//!
//! - every acknowledged write has its own zxid (Zab gives each proposal a unique zxid);
//! - zxid order agrees with real time: an op that completed before a write began has a
//!   smaller zxid, so a write never gets a zxid at or below one already seen by anyone;
//! - per session, in issue order: a write's zxid exceeds every zxid the session saw before
//!   (FIFO), a read's zxid is not below one the session saw before (no going back, even after
//!   moving to another server), and a read after an acknowledged `sync` is at or above every
//!   write that completed before the sync began;
//! - with `linearizable_reads`, a read is at or above every write completed before it began.
//!
//! A sync's own reply zxid is held to the sync rule only with [`SyncZxid::Exact`]; with
//! [`SyncZxid::LowerBound`] (Apache ZooKeeper, whose leader answers a sync like a read) it only
//! raises what the session must see next, and the reads after the sync are checked as before.
//!
//! Read zxids are used only with `use_read_zxids` (the reply zxid of a read must be the
//! serving server's last applied zxid, as in ZooKeeper). These checks see across partitions,
//! which the per-partition search cannot.

use super::explain::short;
use super::{Explanation, Guarantee, Options, Violation, window_of};
use crate::history::{F, History, Op, Outcome, SyncZxid};
use crate::model::PathHasher;
use crate::report::describe_op;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Runs the zxid checks.
pub(crate) fn check(history: &History, ops: &[Op], options: &Options) -> Vec<Violation> {
    let mut out = Vec::new();
    // Each op's usable zxid, read from its reply once (the three checks ask for it up to
    // three times per op). An acknowledged write's zxid is its own; any other reply's zxid (a
    // read, a sync, a failure) is a point of the order the serving server had reached.
    let zxids: Vec<Option<i64>> = (ops.iter())
        .map(|op| {
            let own = op.f.is_write() && op.outcome == Outcome::Ok;
            let usable = own || (op.outcome != Outcome::Info && options.use_read_zxids);
            history.reply(op).and_then(|reply| reply.zxid).filter(|_| usable)
        })
        .collect();
    assert_eq!(zxids.len(), ops.len(), "a zxid (or none) per op");
    let zx = |op: &Op| -> Option<i64> { zxids[op.id] };
    duplicates(history, ops, &zx, &mut out);
    let floors = realtime(history, ops, options, &zx, &mut out);
    let exact_sync = options.sync_zxid_of(history) == SyncZxid::Exact;
    sessions(history, ops, &zx, &floors, exact_sync, &mut out);
    out
}

fn violation(
    history: &History,
    ops: &[Op],
    guarantee: Guarantee,
    message: String,
    marked: Vec<usize>,
    explanation: Explanation,
) -> Violation {
    let window = window_of(ops, marked.iter().copied(), history.events.len());
    let context = Vec::new();
    Violation { guarantee, message, marked, context, window, ops: Vec::new(), explanation }
}

fn duplicates(
    history: &History,
    ops: &[Op],
    zx: &dyn Fn(&Op) -> Option<i64>,
    out: &mut Vec<Violation>,
) {
    // Only looked up (never iterated): hashed, not a tree of thousands of zxids.
    let mut by_zxid: HashMap<i64, usize, BuildHasherDefault<PathHasher>> = HashMap::default();
    for op in ops.iter().filter(|op| op.f.is_write() && op.outcome == Outcome::Ok) {
        let Some(z) = zx(op) else { continue };
        if let Some(&first) = by_zxid.get(&z) {
            let message = format!(
                "two acknowledged writes share zxid {z:#x}: {} and {}",
                describe_op(history, &ops[first]),
                describe_op(history, op)
            );
            let sentence = format!(
                "{} and {} were both acknowledged with zxid {z:#x}; Zab gives every committed \
                 proposal its own zxid",
                short(history, &ops[first]),
                short(history, op)
            );
            let causes = [(first, "the first write"), (op.id, "the write with the same zxid")];
            let explanation = Explanation::new(sentence, &causes);
            let g = Guarantee::WriteLinearizability;
            out.push(violation(history, ops, g, message, vec![first, op.id], explanation));
        } else {
            by_zxid.insert(z, op.id);
        }
    }
}

/// The highest (zxid, op) of the writes completed before each op began, by op id.
type Floors = Vec<Option<(i64, usize)>>;

/// Sweeps events in time order, keeping the highest zxid of completed ops.
fn realtime(
    history: &History,
    ops: &[Op],
    options: &Options,
    zx: &dyn Fn(&Op) -> Option<i64>,
    out: &mut Vec<Violation>,
) -> Floors {
    // The op each event invokes or completes (an event does one or the other, or neither):
    // flat arrays, not maps, since a long history has millions of events.
    let mut owner: Vec<u32> = vec![u32::MAX; history.events.len()];
    for op in ops {
        let id = u32::try_from(op.id).expect("fewer than 2^32 ops");
        owner[op.invoke] = id;
        if let Some(c) = op.complete {
            owner[c] = id;
        }
    }
    // (zxid, op) maxima over completed ops: all ops, and writes only.
    let mut max_any: Option<(i64, usize)> = None;
    let mut max_write: Option<(i64, usize)> = None;
    let mut floor_any: Floors = vec![None; ops.len()];
    let mut floor_write: Floors = vec![None; ops.len()];
    for (index, &id) in owner.iter().enumerate() {
        let Some(op) = ops.get(id as usize) else { continue };
        let id = op.id;
        if op.invoke == index {
            floor_any[id] = max_any;
            floor_write[id] = max_write;
            continue;
        }
        assert_eq!(op.complete, Some(index), "an event owned by an op invokes or completes it");
        {
            let Some(z) = zx(op) else { continue };
            if op.f.is_write() && op.outcome == Outcome::Ok {
                if let Some((fz, fid)) = floor_any[id]
                    && z <= fz
                {
                    let message = format!(
                        "{} got zxid {z:#x}, but {} had already completed with zxid {fz:#x} \
                         before it began",
                        describe_op(history, op),
                        describe_op(history, &ops[fid])
                    );
                    let sentence = format!(
                        "{} was invoked after {} had been acknowledged at zxid {fz:#x}, yet got \
                         zxid {z:#x}; a write that begins after another completed is ordered \
                         after it, and zxids follow that order",
                        short(history, op),
                        short(history, &ops[fid])
                    );
                    let causes = [(fid, "completed first"), (id, "the write with a lower zxid")];
                    let explanation = Explanation::new(sentence, &causes);
                    let g = Guarantee::WriteLinearizability;
                    out.push(violation(history, ops, g, message, vec![fid, id], explanation));
                }
                max_write = max_write.max(Some((z, id)));
            } else if options.linearizable_reads
                && op.outcome == Outcome::Ok
                && crate::model::is_query(op.f)
                && let Some((fz, fid)) = floor_write[id]
                && z < fz
            {
                let message = format!(
                    "{} read at zxid {z:#x}, older than {} (zxid {fz:#x}) which completed before \
                     it began",
                    describe_op(history, op),
                    describe_op(history, &ops[fid])
                );
                let sentence = format!(
                    "p{} read{} at zxid {z:#x}, but {} had been acknowledged at zxid {fz:#x} \
                     before the read was invoked; with --linearizable-reads a read sees every \
                     write completed before it began",
                    op.process,
                    history.request(op).path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(),
                    short(history, &ops[fid])
                );
                let causes = [(id, "the read"), (fid, "the write it missed")];
                let explanation = Explanation::new(sentence, &causes);
                let g = Guarantee::LinearizableReads;
                out.push(violation(history, ops, g, message, vec![fid, id], explanation));
            }
            max_any = max_any.max(Some((z, id)));
        }
    }
    floor_write
}

/// Per session, in issue order: FIFO writes, monotone reads, reads after sync. With
/// `exact_sync` a sync's own zxid is held to the sync rule too (it is where the sync took
/// effect); without, it is a lower bound of what the session sees next, nothing more.
fn sessions(
    history: &History,
    ops: &[Op],
    zx: &dyn Fn(&Op) -> Option<i64>,
    floors: &Floors,
    exact_sync: bool,
    out: &mut Vec<Violation>,
) {
    // Each session's ops in issue order, the sessions taken in process order (the order
    // their violations are found in): a list per session found through a hashed map, and
    // the few sessions sorted once, instead of a `BTreeMap` descended for every op.
    let mut lists: Vec<(u64, Vec<&Op>)> = Vec::new();
    let mut index: crate::model::BySession<usize> = Default::default();
    for op in ops {
        let i = *index.entry(op.process).or_insert_with(|| {
            lists.push((op.process, Vec::new()));
            lists.len() - 1
        });
        lists[i].1.push(op);
    }
    lists.sort_unstable_by_key(|&(process, _)| process);
    assert!(lists.windows(2).all(|w| w[0].0 < w[1].0), "one list per session");
    for (_, session_ops) in &lists {
        let mut seen: Option<(i64, usize)> = None;
        let mut sync_floor: Option<(i64, usize, usize)> = None;
        for op in session_ops {
            if op.f == F::Sync
                && op.outcome == Outcome::Ok
                && let Some((z, w)) = floors[op.id]
            {
                sync_floor = sync_floor.max(Some((z, w, op.id)));
            }
            let Some(z) = zx(op) else { continue };
            let is_write = op.f.is_write() && op.outcome == Outcome::Ok;
            let bound_by_sync = !is_write && (exact_sync || op.f != F::Sync);
            if bound_by_sync
                && let Some((fz, w, s)) = sync_floor
                && z < fz
            {
                let message = format!(
                    "{} read at zxid {z:#x} after {}, but {} (zxid {fz:#x}) completed before \
                     the sync began",
                    describe_op(history, op),
                    describe_op(history, &ops[s]),
                    describe_op(history, &ops[w])
                );
                let sentence = format!(
                    "p{} read{} at zxid {z:#x} after its sync (op {s}), but {} had been \
                     acknowledged at zxid {fz:#x} before the sync was invoked; a read after \
                     sync sees every write completed before the sync began",
                    op.process,
                    history.request(op).path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(),
                    short(history, &ops[w])
                );
                let causes =
                    [(op.id, "the read"), (w, "the write it missed"), (s, "the session's sync")];
                let explanation = Explanation::new(sentence, &causes);
                let g = Guarantee::SyncReads;
                out.push(violation(history, ops, g, message, vec![w, s, op.id], explanation));
            } else if let Some((sz, sid)) = seen
                && (z < sz || (is_write && z == sz))
            {
                // A sync's reply zxid is the point the session's server reached by syncing
                // with the leader: a read below it is stale because the sync was ignored.
                let after_sync = ops[sid].f == F::Sync;
                let (guarantee, verb) = if is_write {
                    (Guarantee::SessionOrder, "took effect at")
                } else if after_sync {
                    (Guarantee::SyncReads, "read at")
                } else {
                    (Guarantee::MonotonicReads, "read at")
                };
                let message = format!(
                    "{} {verb} zxid {z:#x}, but the session had already seen zxid {sz:#x} in {} \
                     which it issued earlier",
                    describe_op(history, op),
                    describe_op(history, &ops[sid])
                );
                let rule = if is_write {
                    "a session's ops take effect in the order it issued them"
                } else if after_sync {
                    "a read after sync sees at least the state the sync reached"
                } else {
                    "a session never reads older data than it has seen or written"
                };
                let sentence = format!(
                    "{} {verb} zxid {z:#x}, but p{} had already seen zxid {sz:#x} in {}, \
                     issued earlier; {rule}",
                    short(history, op),
                    op.process,
                    short(history, &ops[sid])
                );
                let earlier =
                    if after_sync { "the session's sync" } else { "the session's earlier op" };
                let causes = [(sid, earlier), (op.id, "went back")];
                let explanation = Explanation::new(sentence, &causes);
                out.push(violation(
                    history,
                    ops,
                    guarantee,
                    message,
                    vec![sid, op.id],
                    explanation,
                ));
            }
            seen = seen.max(Some((z, op.id)));
        }
    }
}
