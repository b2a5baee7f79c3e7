//! What every task of a tier-2 run shares: the history, the trace, the invariant state the
//! servers' observers feed, and the simulated clocks. madsim runs every task on one thread in a
//! seeded order, so a `Mutex` here is never contended and the order of updates is the seed's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zkr_core::Node;
use zkr_core::txn::{LoggedTxn, Txn};
use zkr_core::types::Zxid;
use zkr_jepsen::history::{Event, Kind, Phase};
use zkr_server::env::{Clock, Observer};

use super::sessions::{RelayStart, Sessions, Term};
use crate::invariants::{Violation, digest::Digests, leaders, session_ids::SessionIds};
use crate::simfs::SimFs;
use crate::trace::Trace;

/// The shared state of one seed.
#[derive(Debug)]
pub struct World {
    /// The run's seed.
    pub seed: u64,
    started: Instant,
    /// History lines in the order they happened.
    pub history: Mutex<Vec<Event>>,
    /// `close` invokes to insert into `history` at the given index (see `crate::shell::client`:
    /// a session may end any time after its last reply, not only once its client notices).
    pub close_inserts: Mutex<Vec<(usize, Event)>>,
    /// Hash (and optionally text) of everything observed.
    pub trace: Mutex<Trace>,
    /// Continuously checked invariants.
    pub checks: Mutex<Checks>,
    /// Next jepsen process id.
    next_process: AtomicU64,
    /// One clock per server, by slot (server id - 1).
    pub clocks: Vec<Arc<SimClock>>,
    /// One disk per server, by slot: it outlives the server's incarnations.
    pub disks: Vec<SimFs>,
    /// Servers whose disk is failing on purpose, with the disk's count of refused operations
    /// when the fault began: their stopping is expected once the disk has refused one since.
    disk_faulted: Mutex<std::collections::BTreeMap<usize, u64>>,
    /// zxids of writes acknowledged to clients.
    pub acked: Mutex<std::collections::BTreeSet<i64>>,
    /// Slots `0..voters` vote; the rest are observers.
    pub voters: usize,
    /// Bumped to make every client drop its connection mid-request.
    pub cuts: zkr_server::signal::Sender<u64>,
    /// One per server: bumped to cut its quorum connections mid-stream.
    pub peer_cuts: Vec<zkr_server::signal::Sender<u64>>,
}

/// Invariant state fed by the observers.
#[derive(Debug, Default)]
pub struct Checks {
    /// Established leader per epoch.
    pub leaders: leaders::Leaders,
    /// Digest per applied zxid.
    pub digests: Digests,
    /// Applied zxid per server slot (for the digest check and the trace).
    pub applied: BTreeMap<usize, Zxid>,
    /// The established leader as last observed: (slot, epoch).
    pub leader: Option<(usize, u32)>,
    /// Everything broken so far.
    pub violations: Vec<Violation>,
    /// A fault hit the leader of this epoch at this time (ns) and no later leader is
    /// established yet.
    pub leader_fault: Option<(u32, u64)>,
    /// Each leader fault: when it hit (ns since the seed began) and ns from it to the next
    /// established leader.
    pub recoveries_ns: Vec<(u64, u64)>,
    /// Session timers: expiry never too soon, silent sessions gone in time.
    pub sessions: Sessions,
    /// Every session id created once (tier 1's `session_ids`), from the CreateSession txns
    /// each server applies.
    pub session_ids: SessionIds,
}

/// Worlds created and not yet dropped, in this process (see [`World::live`]).
static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Drop for World {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl World {
    /// A disk fault on `slot` begins: from the disk's next refused operation on, the server's
    /// stop (or failed start) is expected.
    pub fn disk_fault_begins(&self, slot: usize) {
        let refused = self.disks[slot].stats().injected_errors;
        self.disk_faulted.lock().expect("faulted").entry(slot).or_insert(refused);
    }

    /// The disk fault on `slot` ends (the disk replaced, or the trigger never fired).
    pub fn disk_fault_ends(&self, slot: usize) {
        self.disk_faulted.lock().expect("faulted").remove(&slot);
    }

    /// Whether `slot`'s server may stop now: a disk fault on it is running and its disk has
    /// refused an operation since the fault began. A server that stops while its disk fault is
    /// only armed (a `point` trigger that has not fired, a freeze still some operations away)
    /// stopped for another reason, which is a violation.
    pub fn stop_expected(&self, slot: usize) -> bool {
        let faulted = self.disk_faulted.lock().expect("faulted").get(&slot).copied();
        faulted.is_some_and(|at_start| self.disks[slot].stats().injected_errors > at_start)
    }

    /// Worlds alive in this process. After a campaign, 0: a world still alive means some
    /// seed's tasks or nodes were never dropped (see `crate::shell::release`), and with them
    /// its disks, history and servers, 3-5 MB per seed.
    pub fn live() -> usize {
        LIVE.load(Ordering::Relaxed)
    }

    /// A world for `servers` servers.
    pub fn new(seed: u64, servers: usize, voters: usize, keep_trace: bool) -> World {
        LIVE.fetch_add(1, Ordering::Relaxed);
        World {
            seed,
            started: Instant::now(),
            history: Mutex::new(Vec::new()),
            close_inserts: Mutex::new(Vec::new()),
            trace: Mutex::new(Trace::new(keep_trace)),
            checks: Mutex::new(Checks::default()),
            next_process: AtomicU64::new(0),
            clocks: (0..servers).map(|_| Arc::new(SimClock::default())).collect(),
            disks: (0..servers).map(|_| SimFs::new()).collect(),
            disk_faulted: Mutex::new(Default::default()),
            acked: Mutex::new(Default::default()),
            voters,
            cuts: zkr_server::signal::Sender::new(0),
            peer_cuts: (0..servers).map(|_| zkr_server::signal::Sender::new(0)).collect(),
        }
    }

    /// Simulated ns since the run began.
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Simulated µs since the run began (history times).
    pub fn now_us(&self) -> u64 {
        self.now_ns() / 1_000
    }

    /// A fresh jepsen process id.
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends a history line and hashes it into the trace. A nemesis mark also tells the
    /// session checks which servers a fault touches (`sessions::Faults`).
    pub fn record(&self, event: Event) {
        if let (Some(Kind::Nemesis), Some(desc), Some(phase)) =
            (event.kind, event.fault.as_deref(), event.phase)
        {
            let now = self.now_ns();
            let start = phase == Phase::Start;
            let mut checks = self.checks.lock().expect("checks");
            checks.sessions.faults.mark(desc, start, self.clocks.len(), now);
        }
        let line = serde_json::to_string(&event).expect("events serialize");
        self.event("op", &[event.process], line.as_bytes(), || line.clone());
        self.history.lock().expect("history").push(event);
    }

    /// Where a `close` invoke would go if the session ended now: after every line so far, at
    /// the current time.
    pub fn slot(&self) -> (usize, u64) {
        (self.history.lock().expect("history").len(), self.now_us())
    }

    /// Inserts a `close` invoke for `process` at `slot` (an earlier [`World::slot`]): the
    /// session may have ended (expired) any time after that point, unseen by its client.
    pub fn record_close_at(&self, slot: (usize, u64), process: u64) {
        let (at, time_us) = slot;
        let event = zkr_jepsen::record::close_invoke(process, time_us);
        let line = serde_json::to_string(&event).expect("events serialize");
        self.event("close-at", &[process, at as u64], line.as_bytes(), || line.clone());
        let len = self.history.lock().expect("history").len();
        assert!(at <= len, "a close slot {at} lies beyond the history ({len} lines)");
        self.close_inserts.lock().expect("close inserts").push((at, event));
    }

    /// Records a trace event.
    pub fn event(&self, tag: &str, ids: &[u64], bytes: &[u8], line: impl FnOnce() -> String) {
        let now = self.now_ns();
        self.trace.lock().expect("trace").event(now, tag, ids, bytes, line);
    }

    /// Records a broken invariant.
    pub fn violation(&self, invariant: &'static str, message: String) {
        let at_ns = self.now_ns();
        self.event("violation", &[], message.as_bytes(), || message.clone());
        let v = Violation { invariant, at_ns, message };
        self.checks.lock().expect("checks").violations.push(v);
    }

    /// A fault is about to hit `slot`: if it leads, the time to the next leader is measured.
    pub fn fault_on(&self, slot: usize) {
        let now = self.now_ns();
        let mut checks = self.checks.lock().expect("checks");
        if let Some((leader, epoch)) = checks.leader
            && leader == slot
            && checks.leader_fault.is_none()
        {
            checks.leader_fault = Some((epoch, now));
        }
    }

    /// The fault on `slot` is over: if its leader still leads the same epoch, no fail-over
    /// happened and nothing is measured.
    pub fn fault_over(&self, slot: usize) {
        let mut checks = self.checks.lock().expect("checks");
        if let (Some((leader, epoch)), Some((faulted, _))) = (checks.leader, checks.leader_fault)
            && leader == slot
            && epoch == faulted
        {
            checks.leader_fault = None;
        }
    }

    /// Every write acknowledged to a client is durable on a majority of the servers: in what
    /// their disks would keep through a power loss now, recovered by the real storage code.
    /// Checked at every crash (ZooKeeper's reliability guarantee; tier 1's `acked_writes`).
    pub fn check_acked_durable(&self) {
        let acked = self.acked.lock().expect("acked").clone();
        if acked.is_empty() {
            return;
        }
        let images: Vec<(i64, std::collections::BTreeSet<i64>)> =
            (0..self.voters).map(|slot| durable_zxids(&self.disks[slot], slot)).collect();
        let majority = crate::invariants::majority(self.voters);
        for z in acked {
            let holders = images.iter().filter(|(snap, txns)| *snap >= z || txns.contains(&z));
            let count = holders.count();
            if count < majority {
                let n = self.voters;
                let message = format!(
                    "the write at zxid {z:#x}, acknowledged to a client, is durable on {count} of \
                     {n} voting servers"
                );
                self.violation("acked_writes", message);
                return;
            }
        }
    }

    /// A client is about to send a frame for `session` (of `timeout_ms`, negotiated).
    pub fn session_sent(&self, session: i64, timeout_ms: i32) {
        let now = self.now_ns();
        self.checks.lock().expect("checks").sessions.sent(session, timeout_ms, now);
    }

    /// A client is about to send a CloseSession for `session`: its end is not an expiry.
    pub fn close_requested(&self, session: i64) {
        self.checks.lock().expect("checks").sessions.close_requested(session);
    }

    /// The term `slot` leads and its tick, as its observer last saw them.
    pub fn leading(&self, slot: usize) -> Option<(Term, u64)> {
        self.checks.lock().expect("checks").sessions.leading(slot)
    }

    /// A client got a successful reply from `slot` for a frame of `session` sent when `slot`
    /// led `term` at `tick`; it still leads it.
    pub fn heard(&self, slot: usize, (term, tick): (Term, u64), session: i64, timeout_ms: i32) {
        let mut checks = self.checks.lock().expect("checks");
        if checks.sessions.leading(slot).map(|(t, _)| t) == Some(term) {
            checks.sessions.heard(slot, term, session, tick, timeout_ms);
        }
    }

    /// What learner `slot` follows as a client is about to send it a frame (`sessions`'
    /// `follower_expiry`), if it serves an established leader.
    pub fn relay_start(&self, slot: usize) -> Option<RelayStart> {
        let now = self.now_ns();
        self.checks.lock().expect("checks").sessions.relay_start(slot, now)
    }

    /// A client got a successful reply from learner `slot` for a frame of `session` sent at
    /// `start`: the learner must report it to its leader.
    pub fn relayed(&self, slot: usize, start: RelayStart, session: i64, timeout_ms: i32) {
        let mut checks = self.checks.lock().expect("checks");
        checks.sessions.relayed(slot, start, session, timeout_ms);
    }

    /// `bound` after the leader `slot` was killed at `killed_ns` (all others up, links
    /// settled): a newer leader must be established by now (`failover`). `killed_ns` is the
    /// time `fault_on` recorded for it (the same instant), so a fault found pending from
    /// earlier is not this one.
    pub fn check_failover(&self, slot: usize, killed_ns: u64, bound: Duration) {
        let pending = {
            let mut checks = self.checks.lock().expect("checks");
            checks.sessions.counts.failovers += 1;
            checks.leader_fault
        };
        if let Some((epoch, at)) = pending.filter(|(_, at)| *at == killed_ns) {
            let message = format!(
                "s{} (leader of epoch {epoch}) was killed at {:.3}s; no newer leader {:.3}s \
                 later (bound {:.3}s)",
                slot + 1,
                at as f64 / 1e9,
                (self.now_ns() - at) as f64 / 1e9,
                bound.as_secs_f64()
            );
            self.violation("failover", message);
        }
    }

    /// The slot of the established leader last observed, if any.
    pub fn leader(&self) -> Option<usize> {
        self.checks.lock().expect("checks").leader.map(|(slot, _)| slot)
    }
}

/// Watches one server: after every driver step, the leader and digest checks of tier 1.
pub struct Watcher {
    /// The shared world.
    pub world: Arc<World>,
    /// The server's slot (id - 1).
    pub slot: usize,
    /// Which start of the server this is (its ticks count from 0 at each).
    pub incarnation: u64,
}

impl Observer for Watcher {
    fn stepped(&self, node: &Node) {
        let now = self.world.now_ns();
        let mut found = Vec::new();
        let mut trace = Vec::new();
        {
            let mut checks = self.world.checks.lock().expect("checks");
            let epoch = node.epochs().1;
            if let Some(v) = checks.leaders.observe(self.slot, node, now) {
                found.push(v);
            }
            let leading = node.is_established_leader();
            if leading && checks.leader != Some((self.slot, epoch)) {
                checks.leader = Some((self.slot, epoch));
                if let Some((faulted, at)) = checks.leader_fault
                    && epoch > faulted
                {
                    checks.recoveries_ns.push((at, now.saturating_sub(at)));
                    checks.leader_fault = None;
                }
                checks.sessions.leader_since_ns = now;
                trace.push(format!("s{} leads epoch {epoch}", self.slot + 1));
            } else if !leading && checks.leader.is_some_and(|(s, _)| s == self.slot) {
                checks.leader = None;
            }
            let current = node.committed().min(node.last_zxid());
            let before = checks.applied.get(&self.slot).copied().unwrap_or(Zxid(0));
            if current != before {
                for txn in created_sessions(node, before, current) {
                    found.extend(checks.session_ids.committed(self.slot, &txn, now));
                }
                checks.applied.insert(self.slot, current);
                if node.last_zxid() == current {
                    let digest = node.tree().digest();
                    found.extend(checks.digests.observe(self.slot, current, digest, now));
                }
            }
            // Only the leader of the latest epoch must have closed the silent sessions: a
            // deposed one that has not noticed yet cannot commit a close.
            let latest = checks.leaders.newest() == Some((epoch, self.slot));
            let term = (self.incarnation, epoch);
            found.extend(checks.sessions.stepped(self.slot, term, latest, node, now));
            for v in &found {
                trace.push(format!("violation {}: {}", v.invariant, v.message));
            }
            checks.violations.extend(found);
        }
        for line in trace {
            self.world.event("server", &[self.slot as u64], line.as_bytes(), || line.clone());
        }
    }
}

/// The CreateSession txns `node` applied in `(before, current]` that its in-memory log still
/// holds (a restart's replay of its log included: the observer's first step after it). The
/// zxids of an epoch run without holes, so each epoch's are walked from its first counter
/// (`before`'s next in `before`'s epoch) to its last held one, or to `current` in its epoch.
fn created_sessions(node: &Node, before: Zxid, current: Zxid) -> Vec<Arc<LoggedTxn>> {
    let mut found = Vec::new();
    if current <= before {
        return found;
    }
    for epoch in before.epoch()..=current.epoch() {
        let first = if epoch == before.epoch() { before.counter() + 1 } else { 1 };
        let last = if epoch == current.epoch() { current.counter() } else { u32::MAX };
        for counter in first..=last {
            let Some(txn) = node.logged_txn(Zxid::new(epoch, counter)) else {
                if epoch == current.epoch() {
                    // An entry dropped from memory after a snapshot: later ones may be held.
                    continue;
                }
                break;
            };
            assert!(txn.header.zxid <= current, "walked up to the applied zxid only");
            if matches!(txn.txn, Txn::CreateSession { .. }) {
                found.push(Arc::new(txn.clone()));
            }
        }
    }
    found
}

/// A server's clock: madsim's global time, stepped by `offset_ms` (wall time only: znode
/// timestamps and the core's tick wall readings) and drifted by `drift_ppm` (how fast ticks
/// come, read when the driver starts, so a drift change takes effect at the next restart).
#[derive(Debug, Default)]
pub struct SimClock {
    /// Added to the wall reading; may step backwards.
    pub offset_ms: AtomicI64,
    /// Parts per million the local clock runs fast (positive) or slow.
    pub drift_ppm: AtomicI64,
}

impl Clock for SimClock {
    fn wall_ms(&self) -> i64 {
        zkr_server::env::WallClock.wall_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    fn runtime_duration(&self, local: Duration) -> Duration {
        let ppm = self.drift_ppm.load(Ordering::Relaxed).clamp(-500_000, 500_000);
        let nanos = local.as_nanos() as i128 * 1_000_000 / (1_000_000 + ppm as i128);
        Duration::from_nanos(nanos.max(1) as u64)
    }
}

/// What server `slot`'s disk would recover after a power loss now: (snapshot zxid, logged zxids).
fn durable_zxids(disk: &SimFs, slot: usize) -> (i64, std::collections::BTreeSet<i64>) {
    use zkr_server::fs::Fs;
    let image = SimFs::new();
    let copy = |path: &std::path::Path, bytes: &[u8]| -> std::io::Result<()> {
        let parent = path.parent().unwrap_or(std::path::Path::new("/"));
        image.create_dir_all(parent)?;
        let mut file = image.create(path)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        image.sync_dir(parent)
    };
    for path in disk.list_durable_files() {
        if let Some(bytes) = disk.durable_bytes(&path)
            && copy(&path, &bytes).is_err()
        {
            return (0, Default::default());
        }
    }
    let dir = std::path::PathBuf::from(format!("/zkr/s{}", slot + 1));
    match zkr_server::storage::Storage::open(Arc::new(image), &dir, &dir) {
        Ok((_, recovered)) => {
            let snap = recovered.snapshot.as_ref().map_or(0, |s| s.zxid);
            (snap, recovered.txns.iter().map(|(z, _)| *z).collect())
        }
        Err(_) => (0, Default::default()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use zkr_server::fs::Fs;

    use super::World;

    /// A disk fault makes a server's stop expected only once its disk has refused an operation
    /// since the fault began: armed but not yet firing (a freeze some operations away, a
    /// `point` trigger not reached), a stop has another cause and is reported.
    #[test]
    fn a_stop_is_expected_only_after_the_faulted_disk_refused_something() {
        madsim::runtime::Runtime::new().block_on(async {
            let world = World::new(1, 2, 2, false);
            let disk = &world.disks[0];
            disk.create_dir_all(Path::new("/d")).expect("dir");
            let mut file = disk.create_new(Path::new("/d/a")).expect("file");
            disk.fail_next_write();
            assert!(file.write(b"x").is_err(), "a refusal before the fault");
            assert!(!world.stop_expected(0), "no fault running");
            world.disk_fault_begins(0);
            disk.freeze_after_ops(1);
            file.write_all(b"1").expect("one more operation allowed");
            assert!(!world.stop_expected(0), "armed, nothing refused since it began");
            assert!(file.write(b"2").is_err(), "frozen");
            assert!(world.stop_expected(0), "refused during the fault");
            assert!(!world.stop_expected(1), "only the faulted disk's server");
            world.disk_fault_ends(0);
            assert!(!world.stop_expected(0), "the fault is over");
        });
    }
}
