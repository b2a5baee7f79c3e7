//! `zkr-sim`: a deterministic discrete-event simulator (tier 1, step level, no async) that
//! drives `zkr-core` nodes directly through `Node::step` / `Node::take_outputs`.
//!
//! ```text
//!  seed ──ChaCha8──▶ Swarm (cluster size, fault kinds and rates, op mix, timing)
//!                      │
//!                      ▼
//!  ┌──────────────────────────── Sim (sim.rs) ────────────────────────────┐
//!  │ event queue (time, seq) ─▶ nodes: Node + SimDisk (disk.rs) + Clock    │
//!  │                            network: Network<Msg> (net.rs), links      │
//!  │                            clients (client.rs) ─▶ history (jepsen)    │
//!  │                            nemesis (nemesis.rs): faults, repairs      │
//!  │ invariants/ : hooks after steps, crashes, restarts, replies, ticks    │
//!  └───────────────────────────────────────────────────────────────────────┘
//!        │ fault phase (FAULT_PHASE_NS) → liveness phase (heal, restart, fresh write)
//!        ▼
//!  SeedReport { violations, trace hash, faults per kind, ops checked, ... }
//! ```
//!
//! [`run_seed`] runs one seed inside `catch_unwind`, so a panic in core's own checks
//! (`check_step` after every step, `check_full` every few steps and at the end, see `sim.rs`)
//! becomes a reported failure of that seed. The same seed always produces the same trace
//! hash; `sim --seed N --trace` prints the trace.
//!
//! Module map: [`swarm`] (what a seed chooses), [`sim`] (world and event loop), [`net`]
//! (links, partitions), [`disk`] (txn log with fsync and crash loss), [`client`] and
//! [`workload`] (clients, op mix, history recording), [`nemesis`] (faults), [`invariants`]
//! (one module per property), [`trace`] (hash and text), [`simfs`] (a byte-level disk that
//! crashes like a real one, under the real `zkr-server` storage code; tier 2).

pub(crate) mod client;
pub mod disk;
pub mod invariants;
pub mod nemesis;
pub mod net;
#[cfg(madsim)]
pub mod shell;
pub mod sim;
pub mod simfs;
pub mod swarm;
pub mod trace;
pub mod workload;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use zkr_core::config::Bugs;

/// Switches on the deliberate core bug named `name` (the `--bug` names of `sim` and
/// `sim-shell`; the table is `zkr_server::bugs::set_by_name`); false for an unknown name or a
/// storage bug (those are `sim-shell`'s alone).
pub fn set_bug(bugs: &mut Bugs, name: &str) -> bool {
    let mut shell = zkr_server::bugs::ShellBugs::default();
    let mut core = bugs.clone();
    if !zkr_server::bugs::set_by_name(&mut core, &mut shell, name) || shell.any() {
        return false;
    }
    *bugs = core;
    true
}

use crate::invariants::Violation;

/// How to run one seed.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Keep the trace text (it is always hashed).
    pub trace: bool,
    /// Keep the recorded history (JSON lines) in the report.
    pub keep_history: bool,
    /// Deliberate bugs to switch on in every node (tests only).
    pub bugs: Bugs,
    /// Skip the end-of-seed history check (to measure the simulator alone).
    pub skip_history_check: bool,
}

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Cluster size the seed chose.
    pub cluster_size: usize,
    /// One line describing the swarm configuration.
    pub swarm: String,
    /// Simulated time reached, ns.
    pub sim_ns: u64,
    /// Faults injected, per kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Client operations recorded (invokes).
    pub ops: usize,
    /// Operations the history checker paired and checked.
    pub ops_checked: usize,
    /// The history checker ran out of budget somewhere (neither valid nor invalid).
    pub history_unknown: bool,
    /// Acknowledged writes tracked by the durability checks.
    pub acked_writes: usize,
    /// Events traced.
    pub events: u64,
    /// Node steps by kind of input (`sim --mix`).
    pub mix: sim::StepMix,
    /// Every violation found (the run stops at the first event that produced any).
    pub violations: Vec<Violation>,
    /// The trace hash.
    pub trace_hash: u64,
    /// The trace text, when asked for.
    pub trace: Option<String>,
    /// The history as JSON lines, when asked for.
    pub history: Option<String>,
    /// Wall-clock time the seed took, ns (for the speed figures only; never in the trace).
    pub wall_ns: u64,
    /// Crashes of an established leader, and how many were clean (see `invariants::failover`).
    pub leader_crashes: (u64, u64),
    /// Per leader crash: ns to the next established leader.
    pub failover_established_ns: Vec<u64>,
    /// Per leader crash: ns to the next committed write of a newer epoch.
    pub failover_write_ns: Vec<u64>,
    /// Per clean leader crash: ns to the next established leader.
    pub failover_clean_ns: Vec<u64>,
    /// What `invariants::follower_expiry` covered.
    pub follower_expiry: invariants::follower_expiry::Counts,
}

impl SeedReport {
    /// True if no invariant was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one seed. Never panics: a panic inside the run (core's `check_step`/`check_full`, or
/// the simulator's own assertions) is reported as a violation named `panic`.
pub fn run_seed(seed: u64, options: &RunOptions) -> SeedReport {
    let started = std::time::Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| run_inner(seed, options)));
    match result {
        Ok(mut report) => {
            report.wall_ns = started.elapsed().as_nanos() as u64;
            report
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            SeedReport {
                seed,
                violations: vec![Violation { invariant: "panic", at_ns: 0, message }],
                ..SeedReport::default()
            }
        }
    }
}

fn run_inner(seed: u64, options: &RunOptions) -> SeedReport {
    let mut sim = sim::Sim::new(seed, options.bugs.clone(), options.trace);
    sim.run();
    let merged =
        merge_inserts(std::mem::take(&mut sim.history), std::mem::take(&mut sim.close_inserts));
    let ops = merged.iter().filter(|e| e.kind == Some(zkr_jepsen::Kind::Invoke)).count();
    let history = invariants::history::history(merged, seed);
    let mut report = SeedReport {
        seed,
        cluster_size: sim.swarm.cluster_size,
        swarm: sim.swarm.describe(),
        sim_ns: sim.now,
        faults: std::mem::take(&mut sim.faults),
        ops,
        acked_writes: sim.checks.acked.len(),
        leader_crashes: sim.checks.failover.crashes,
        failover_established_ns: std::mem::take(&mut sim.checks.failover.established_ns),
        failover_write_ns: std::mem::take(&mut sim.checks.failover.write_ns),
        failover_clean_ns: std::mem::take(&mut sim.checks.failover.clean_established_ns),
        follower_expiry: sim.checks.follower_expiry.counts,
        ..SeedReport::default()
    };
    if sim.violations.is_empty() && !options.skip_history_check {
        let outcome = invariants::history::check(&history, sim.now);
        report.ops_checked = outcome.ops;
        report.history_unknown = outcome.unknown;
        for v in outcome.violations {
            sim.violation(v);
        }
    }
    report.violations = std::mem::take(&mut sim.violations);
    report.events = sim.trace.events();
    report.mix = sim.mix;
    report.trace_hash = sim.trace.hash();
    report.trace = std::mem::replace(&mut sim.trace, trace::Trace::new(false)).into_text();
    if options.keep_history {
        report.history = Some(history.to_jsonl());
    }
    report
}

/// Puts each `(index, event)` before the event at `index` (after everything for an index past
/// the end), keeping the order in which inserts at one index were made.
pub(crate) fn merge_inserts(
    events: Vec<zkr_jepsen::history::Event>,
    mut inserts: Vec<(usize, zkr_jepsen::history::Event)>,
) -> Vec<zkr_jepsen::history::Event> {
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(events.len() + inserts.len());
    let mut pending = inserts.into_iter().peekable();
    for (i, event) in events.into_iter().enumerate() {
        while pending.peek().is_some_and(|(at, _)| *at <= i) {
            out.push(pending.next().expect("peeked").1);
        }
        out.push(event);
    }
    out.extend(pending.map(|(_, e)| e));
    out
}

/// Checks a history given as JSON lines the way a seed's history is checked (for tests that
/// inject anomalies into a recorded history).
pub fn check_history_text(text: &str) -> Result<Vec<Violation>, String> {
    let history = zkr_jepsen::History::parse(text).map_err(|e| e.to_string())?;
    Ok(invariants::history::check(&history, 0).violations)
}
