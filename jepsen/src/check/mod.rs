//! The checker: does ZooKeeper's contract allow this history?
//!
//! ```text
//!  History ──pair──▶ ops ──┬─▶ zxid::check     fast checks on the zxids replies carry
//!                          ├─▶ key groups ─▶ linear::search (per key group, memoised WGL)
//!                          │                   └─ on failure: diagnose (which guarantee)
//!                          └─▶ watch::check    events arrive before the data they announce
//! ```
//!
//! The contract checked (ZooKeeper's, not a stronger one): writes are linearizable; a session's
//! ops take effect in the order it issued them; reads may be stale but never go back within a
//! session; a read after `sync` sees every write completed before the sync began; a watch
//! event reaches the client before it can read the change. [`Options::linearizable_reads`]
//! asks for linearizable reads as well.
//!
//! A violation names the [`Guarantee`] it breaks. For a failed search the guarantee is found
//! by switching constraints off one at a time, weakest first, and naming the first whose
//! removal lets the key group pass; if none does, the values themselves are impossible and the
//! guarantee is write linearizability (a lost or invented write).

mod explain;
pub(crate) mod linear;
pub(crate) mod partition;
mod watch;
mod window;
mod zxid;

use crate::history::{History, HistoryError, Op, SyncZxid};
use crate::model::Tree;
use linear::Relax;
use partition::{Partition, Split};
use std::fmt;

/// What to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Require reads to be linearizable too (stronger than ZooKeeper promises).
    pub linearizable_reads: bool,
    /// Trust the zxid of read replies as the serving server's last applied zxid.
    pub use_read_zxids: bool,
    /// Search budget per key group, in configurations; beyond it the verdict is unknown.
    pub max_configs: u64,
    /// What a sync's reply zxid means; `None`: what the history's header says.
    pub sync_zxid: Option<SyncZxid>,
}

impl Default for Options {
    fn default() -> Self {
        let max_configs = 2_000_000;
        Options { linearizable_reads: false, use_read_zxids: true, max_configs, sync_zxid: None }
    }
}

impl Options {
    /// What a sync's reply zxid means for `history`: the option, else the header's.
    pub fn sync_zxid_of(&self, history: &History) -> SyncZxid {
        self.sync_zxid.unwrap_or(history.header.sync_zxid)
    }
}

/// The guarantees a violation may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guarantee {
    /// Writes are linearizable: a single order, consistent with real time, explains every
    /// acknowledged write and every value read (no lost, duplicated or invented writes).
    WriteLinearizability,
    /// A session's ops take effect in the order it issued them.
    SessionOrder,
    /// A session never reads older data than it has seen or written (single system image).
    MonotonicReads,
    /// A read after `sync` sees every write completed before the sync began.
    SyncReads,
    /// Reads are linearizable (only with [`Options::linearizable_reads`]).
    LinearizableReads,
    /// Watch events arrive once, for the right change, before the changed data is read.
    Watches,
    /// Sequential names are unique and increasing per parent.
    SequentialNames,
    /// A multi takes effect entirely or not at all.
    MultiAtomicity,
    /// Ephemeral nodes go away with their session, and a closed session creates none.
    Ephemerals,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Guarantee::WriteLinearizability => "write linearizability",
            Guarantee::SessionOrder => "session order (FIFO client order)",
            Guarantee::MonotonicReads => "monotonic reads (single system image)",
            Guarantee::SyncReads => "read after sync",
            Guarantee::LinearizableReads => "linearizable reads",
            Guarantee::Watches => "watch before data",
            Guarantee::SequentialNames => "sequential names unique and increasing",
            Guarantee::MultiAtomicity => "multi atomicity",
            Guarantee::Ephemerals => "ephemerals end with their session",
        };
        f.write_str(text)
    }
}

/// One way the history breaks the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The guarantee broken.
    pub guarantee: Guarantee,
    /// What went wrong, for a person.
    pub message: String,
    /// Ops (indices into `History::ops`) that cannot be ordered: mark these.
    pub marked: Vec<usize>,
    /// Ops placed just before the failure (the end of the longest valid prefix), oldest first.
    pub context: Vec<usize>,
    /// The failing window: first and last event index to show.
    pub window: (usize, usize),
    /// The ops of the failing window, when it was minimised: the timeline shows only these
    /// (empty: every event in `window`).
    pub ops: Vec<usize>,
    /// The cause: the ops that make the contradiction, and the contradiction in one sentence.
    pub explanation: Explanation,
}

/// Why a violation is one: the few operations that fix the contradiction, each with its role,
/// and one sentence stating it in ZooKeeper's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explanation {
    /// The contradiction, e.g. `p2 read /a = "v1" at zxid 0x5, but "v2" (p5 set, acknowledged
    /// at zxid 0x7 before p2's read was invoked) had already replaced it; ...`.
    pub sentence: String,
    /// The ops the sentence names, in the order it names them.
    pub causes: Vec<Cause>,
}

/// One operation of an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// The op (an index into `History::ops`).
    pub op: usize,
    /// Its part in the contradiction: "the read", "wrote the value read", "overwrote it", ...
    pub role: String,
}

impl Explanation {
    /// An explanation naming `causes` as (op, role).
    pub fn new(sentence: String, causes: &[(usize, &str)]) -> Explanation {
        let causes = causes.iter().map(|&(op, role)| Cause { op, role: role.to_string() });
        Explanation { sentence, causes: causes.collect() }
    }

    /// True if the op is one of the causes.
    pub fn names(&self, op: usize) -> bool {
        self.causes.iter().any(|c| c.op == op)
    }
}

/// The overall answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// The contract allows the history.
    Valid,
    /// The history breaks the contract.
    Invalid,
    /// The search ran out of budget somewhere and found no violation elsewhere.
    Unknown,
}

/// Counters about a check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Paired ops.
    pub ops: usize,
    /// Key groups: sets of paths no op spans, checked independently (not network partitions).
    pub key_groups: usize,
    /// Ops in the largest key group.
    pub largest_key_group: usize,
    /// Some paths of the largest key group.
    pub largest_key_group_paths: Vec<String>,
    /// Configurations explored by the searches.
    pub configs: u64,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Valid, invalid or unknown.
    pub validity: Validity,
    /// Every violation found (empty when valid).
    pub violations: Vec<Violation>,
    /// Descriptions of key groups whose search ran out of budget.
    pub unknown: Vec<String>,
    /// Counters.
    pub stats: Stats,
}

impl Verdict {
    /// True if the contract allows the history.
    pub fn is_valid(&self) -> bool {
        self.validity == Validity::Valid
    }
}

/// Checks `history` against ZooKeeper's contract. Errs only on a malformed history (an
/// unpaired completion, or an event missing what its kind requires).
pub fn check(history: &History, options: &Options) -> Result<Verdict, HistoryError> {
    let ops = history.validated_ops()?;
    let mut violations = zxid::check(history, &ops, options);
    violations.extend(watch::check(history, &ops, options));
    let sync_zxid = options.sync_zxid_of(history);
    let split =
        Split { use_read_zxids: options.use_read_zxids, multi_not_atomic: false, sync_zxid };
    // Key groups are built one at a time and dropped once checked (see `partition::Plan`).
    let mut plan = partition::Plan::new(history, &ops, split);
    let mut stats = Stats { ops: ops.len(), ..Stats::default() };
    let mut unknown = Vec::new();
    for k in 0..plan.len() {
        let Some(part) = plan.build(history, &ops, k) else { continue };
        stats.key_groups += 1;
        // The last of the largest, as `max_by_key` picked it.
        if part.ops.len() >= stats.largest_key_group {
            stats.largest_key_group = part.ops.len();
            stats.largest_key_group_paths = part.scope.paths.iter().take(6).cloned().collect();
        }
        let part = &part;
        let budget = options.max_configs;
        let (mut outcome, configs) =
            linear::search(part, Relax::default(), options.linearizable_reads, budget);
        stats.configs += configs;
        if !matches!(outcome, linear::Outcome::Valid) && has_indeterminate_sequential(part) {
            let model = crate::model::ModelRelax { loose_seq: true, ..Default::default() };
            let relax = Relax { model, ..Relax::default() };
            let (loose, configs) = linear::search(part, relax, options.linearizable_reads, budget);
            stats.configs += configs;
            match (&outcome, loose) {
                (_, linear::Outcome::Valid) => outcome = linear::Outcome::Valid,
                (linear::Outcome::Invalid(_), linear::Outcome::Unknown(deepest)) => {
                    outcome = linear::Outcome::Unknown(deepest)
                }
                _ => {}
            }
        }
        match outcome {
            linear::Outcome::Valid => {}
            linear::Outcome::Unknown(deepest) => {
                let mut text = describe_paths(part);
                if let Some(failure) = deepest {
                    let v = explain(history, &ops, part, &failure, Guarantee::WriteLinearizability);
                    text = format!("{text}; deepest dead end: {}", v.message);
                }
                unknown.push(text);
            }
            linear::Outcome::Invalid(failure) => {
                let resume = window::Resume::Checkpoints;
                let violation = violation_of(history, &ops, part, &failure, options, resume);
                violations.push(violation);
            }
        }
    }
    for v in violations.iter_mut().filter(|v| v.explanation.sentence.is_empty()) {
        v.explanation = explain::explain(history, &ops, v, options);
    }
    violations.sort_by_key(|v| (v.window.1, v.guarantee));
    let validity = match (violations.is_empty(), unknown.is_empty()) {
        (false, _) => Validity::Invalid,
        (true, true) => Validity::Valid,
        (true, false) => Validity::Unknown,
    };
    Ok(Verdict { validity, violations, unknown, stats })
}

/// The violation a key group whose search failed with `failure` breaks: its smallest
/// failing window (searched as `resume` says), the guarantee named, explained.
fn violation_of(
    history: &History,
    ops: &[Op],
    part: &Partition,
    failure: &linear::Failure,
    options: &Options,
    resume: window::Resume,
) -> Violation {
    let lin = options.linearizable_reads;
    let budget = options.max_configs.min(WINDOW_BUDGET);
    let Some(w) = window::smallest(part, lin, budget, resume) else {
        let guarantee = diagnose(history, ops, part, options, budget);
        return explain(history, ops, part, failure, guarantee);
    };
    // From the window's start state, earlier constraints are baked in: if no relaxation
    // frees the window, look further back (a stale read, a session's earlier op).
    let start = w.start.as_ref();
    let mut guarantee = diagnose_from(&[(&w.part, start)], lin, budget);
    if guarantee == Guarantee::WriteLinearizability && start.is_some() {
        let budget = budget / 4; // the stretch may be long
        for searches in window::look_back(part, &w) {
            let searches: Vec<(&Partition, Option<&Tree>)> =
                searches.iter().map(|(p, s)| (p, s.as_ref())).collect();
            guarantee = diagnose_from(&searches, lin, budget);
            if guarantee != Guarantee::WriteLinearizability {
                break;
            }
        }
    }
    explain_window(history, ops, part, &w, guarantee)
}

fn has_indeterminate_sequential(part: &Partition) -> bool {
    part.ops.iter().any(|p| p.group.is_some())
}

fn describe_paths(part: &Partition) -> String {
    let paths: Vec<&str> = part.scope.paths.iter().take(5).map(String::as_str).collect();
    format!("{} ops on {}", part.ops.len(), paths.join(", "))
}

/// The constraints the diagnosis switches off, weakest first, with the guarantee each names.
fn relaxations(lin: bool) -> Vec<(Relax, Guarantee)> {
    let mut tries: Vec<(Relax, Guarantee)> = Vec::new();
    if lin {
        tries.push((
            Relax { read_realtime: true, ..Relax::default() },
            Guarantee::LinearizableReads,
        ));
    }
    tries.push((Relax { sync: true, ..Relax::default() }, Guarantee::SyncReads));
    tries.push((Relax { read_session: true, ..Relax::default() }, Guarantee::MonotonicReads));
    let mut model = crate::model::ModelRelax { seq_names: true, ..Default::default() };
    tries.push((Relax { model, ..Relax::default() }, Guarantee::SequentialNames));
    model = crate::model::ModelRelax { ephemerals: true, ..Default::default() };
    tries.push((Relax { model, ..Relax::default() }, Guarantee::Ephemerals));
    tries.push((Relax { write_session: true, ..Relax::default() }, Guarantee::SessionOrder));
    tries
}

/// Names the guarantee a failed key group breaks: the first constraint, weakest first, whose
/// removal lets it pass. Used when no window could be certified (it searches the whole
/// key group, so it is slow on long ones).
fn diagnose(
    history: &History,
    ops: &[Op],
    part: &Partition,
    options: &Options,
    budget: u64,
) -> Guarantee {
    let lin = options.linearizable_reads;
    let passes =
        |relax: Relax| matches!(linear::search(part, relax, lin, budget).0, linear::Outcome::Valid);
    for (relax, guarantee) in relaxations(lin) {
        if passes(relax) {
            return guarantee;
        }
    }
    // Multi atomicity: split every multi into independent indeterminate pieces.
    let has_multi = part.ops.iter().any(|p| matches!(p.action, crate::model::Action::Multi(_)));
    if has_multi {
        let sync_zxid = options.sync_zxid_of(history);
        let split =
            Split { use_read_zxids: options.use_read_zxids, multi_not_atomic: true, sync_zxid };
        let pieces = partition::partitions(history, ops, split);
        let mine = |p: &Partition| p.scope.paths.iter().any(|x| part.scope.paths.contains(x));
        let all_pass = pieces.iter().filter(|p| mine(p)).all(|p| {
            matches!(linear::search(p, Relax::default(), lin, budget).0, linear::Outcome::Valid)
        });
        if all_pass {
            return Guarantee::MultiAtomicity;
        }
    }
    Guarantee::WriteLinearizability
}

/// [`diagnose`] on a certified window (or a stretch before it): the same relaxations,
/// searched over the window's few ops from its start state, so naming the guarantee costs
/// little however long the history. A relaxation is named when its search passes from any of
/// `searches` (each a partition and its start state, `None` for the initial one).
fn diagnose_from(searches: &[(&Partition, Option<&Tree>)], lin: bool, budget: u64) -> Guarantee {
    let passes = |part: &Partition, start: Option<&Tree>, relax: Relax| {
        matches!(linear::search_from(part, start, relax, lin, budget).0, linear::Outcome::Valid)
    };
    for (relax, guarantee) in relaxations(lin) {
        if searches.iter().any(|&(part, start)| passes(part, start, relax)) {
            return guarantee;
        }
    }
    // Multi atomicity: every multi split into independent pieces of unknown outcome.
    let is_multi = |p: &partition::POp| matches!(p.action, crate::model::Action::Multi(_));
    for &(part, start) in searches {
        if part.ops.iter().any(is_multi) {
            let mut split = part.clone();
            split.ops = (part.ops.iter()).flat_map(partition::POp::multi_pieces).collect();
            if passes(&split, start, Relax::default()) {
                return Guarantee::MultiAtomicity;
            }
        }
    }
    Guarantee::WriteLinearizability
}

/// Search budget per step of the window minimisation and of the diagnosis (they run a few
/// dozen searches).
const WINDOW_BUDGET: u64 = 200_000;

/// Builds the violation report of a failed key group from its smallest failing window.
fn explain_window(
    history: &History,
    ops: &[Op],
    part: &Partition,
    w: &window::Window,
    guarantee: Guarantee,
) -> Violation {
    let mut v = explain(history, ops, &w.part, &w.failure, guarantee);
    let start = match (&w.start, w.starts) {
        (None, _) => "from the initial state".to_string(),
        (Some(state), 1) => format!("from the state the earlier ops leave ({})", {
            state.describe(&part.scope.paths)
        }),
        (Some(_), n) => format!("from each of the {n} states the earlier ops may leave"),
    };
    let header = format!(
        "smallest failing window: events {}..={}, {} of the key group's {} ops, checked {start}",
        w.from,
        w.to,
        w.ops.len(),
        part.ops.len(),
    );
    v.message = format!("{header}\n{}", v.message);
    v.window = (w.from, w.to);
    v.ops = w.ops.iter().map(|&i| part.ops[i].op).collect();
    v.ops.sort_unstable();
    v.ops.dedup();
    v
}

/// Builds the violation report of a failed key group.
fn explain(
    history: &History,
    ops: &[Op],
    part: &Partition,
    failure: &linear::Failure,
    guarantee: Guarantee,
) -> Violation {
    let marked: Vec<usize> = {
        let mut m: Vec<usize> = failure.stuck.iter().map(|(i, _)| part.ops[*i].op).collect();
        m.dedup();
        m
    };
    let context: Vec<usize> = {
        let tail = failure.order.len().saturating_sub(4);
        failure.order[tail..].iter().map(|&i| part.ops[i].op).collect()
    };
    let mut lines = vec![format!(
        "no order of the {} satisfies ZooKeeper's contract; after {} ops the state is: {}",
        describe_paths(part),
        failure.order.len(),
        failure.state.describe(&part.scope.paths)
    )];
    for (i, why) in &failure.stuck {
        let op = &ops[part.ops[*i].op];
        lines.push(format!("  cannot place {}: {why}", crate::report::describe_op(history, op)));
    }
    let window = window_of(ops, marked.iter().chain(&context).copied(), history.events.len());
    let message = lines.join("\n");
    let explanation = Explanation::default();
    Violation { guarantee, message, marked, context, window, ops: Vec::new(), explanation }
}

/// The event range covering these ops (invoke to completion, or invoke only for info).
pub(crate) fn window_of(
    ops: &[Op],
    ids: impl Iterator<Item = usize>,
    events: usize,
) -> (usize, usize) {
    let mut lo = usize::MAX;
    let mut hi = 0;
    for id in ids {
        let op = &ops[id];
        lo = lo.min(op.invoke);
        hi = hi.max(op.complete.unwrap_or(op.invoke));
    }
    if lo == usize::MAX { (0, events.saturating_sub(1)) } else { (lo, hi) }
}
