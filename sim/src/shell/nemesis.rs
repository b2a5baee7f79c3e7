//! Tier-2 faults, drawn from the seed and applied through madsim: kill -9 and restart,
//! pause/resume (a stalled process), partitions (one server isolated, the ensemble split, or one
//! link cut in one direction) and clock steps and drift. Each fault is written to the history
//! as nemesis lines (start and end), so reports shade it.
//!
//! Random moments seldom cut the storage code where its durability argument is delicate (the
//! lesson of ZOOKEEPER-4643: crash at the protocol's points, as tier 1's `crash_at_*` do). The
//! `point` fault loses power exactly at one of [`POINTS`]: it sets a `simfs::Trigger` on a
//! server's disk (the next operation of some kinds on a file named so, after another one armed
//! it), provokes an election where the point needs one, waits for the point, and crashes the
//! disk once it froze there. It is drawn from a stream of its own (`POINT_STREAM`), so a seed
//! that does not draw it runs as before; the summary counts each point drawn and fired.
//!
//! madsim's TCP never drops bytes under a partition: it holds them and delivers them after the
//! heal (with up to ~10 s of retry backoff). So a partition here looks to the servers like a
//! very slow network, which only the servers' own heartbeats and timeouts detect, as with a
//! real silent partition; connections are not reset by it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkr_jepsen::history::{Event, Kind, Phase};

use super::world::World;
use crate::simfs::{CrashKind, OpKind, OpMatch, Trigger};

/// The most a `clock` fault makes a server's ticks run fast or slow, parts per million.
pub const DRIFT_PPM_MAX: i64 = 20_000;

/// What the nemesis does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Pause,
    Isolate,
    Split,
    OneWay,
    Clock,
    Disk,
    SlowDisk,
    Cut,
    PeerCut,
    MidWrite,
    Point,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Isolate => "isolate",
            Fault::Split => "split",
            Fault::OneWay => "one-way",
            Fault::Clock => "clock",
            Fault::Disk => "disk",
            Fault::SlowDisk => "slow-disk",
            Fault::Cut => "cut",
            Fault::PeerCut => "peer-cut",
            Fault::MidWrite => "mid-write",
            Fault::Point => "point",
        }
    }
}

/// A storage point where the `point` fault loses power.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// Its name in the history and the summary.
    pub name: &'static str,
    /// The summary's keys: drawn, and fired (the disk froze there).
    keys: (&'static str, &'static str),
    /// Operations that arm it, and how many.
    arm: Option<(OpMatch, u32)>,
    /// The operation it freezes at.
    fire: OpMatch,
    /// The most operations allowed from that one on (drawn in `0..=extra_max`; 0 fails it).
    extra_max: u64,
    /// It comes only with a new epoch: the nemesis kills the leader first (kill -9: its disk
    /// keeps what it wrote) and restarts it at once.
    elect: bool,
    /// Aimed at that leader, cut off from everyone until a newer leader is established before
    /// its kill: it logs its clients' writes as proposals no one else gets, and its restart
    /// rejoins with them (the new leader sends a TRUNC).
    on_leader: bool,
}

const EPOCH_OPS: &[OpKind] = &[OpKind::Create, OpKind::Write, OpKind::Sync, OpKind::Rename];
const RENAME: &[OpKind] = &[OpKind::Rename];
const LOG_WRITE: &[OpKind] = &[OpKind::Write];
const LOG_SYNC: &[OpKind] = &[OpKind::Sync];
const LOG_CUT: &[OpKind] = &[OpKind::Shrink, OpKind::Remove];

/// The storage points. Both epoch files are rewritten at every epoch change (a temporary file,
/// its fsync, a rename, for each; then the directory's fsync): a learner writes them at
/// LEADERINFO (acceptedEpoch) and at NEWLEADER (currentEpoch), a leader when it decides its
/// epoch and when a quorum acknowledged it. So the second rename of `currentEpoch` after the
/// trigger is set is usually the adoption of a new current epoch.
pub const POINTS: &[Point] = &[
    // Anywhere in the next epoch write (9 operations: 4 per file and the directory's fsync).
    Point {
        name: "epoch-files",
        keys: ("pt epoch-files", "pt epoch-files fired"),
        arm: None,
        fire: OpMatch { kinds: EPOCH_OPS, name: "Epoch" },
        extra_max: 8,
        elect: true,
        on_leader: false,
    },
    // The rename that adopts a new current epoch: fails, or lands undurable.
    Point {
        name: "current-epoch-adopted",
        keys: ("pt current-epoch-adopted", "pt current-epoch-adopted fired"),
        arm: Some((OpMatch { kinds: RENAME, name: "currentEpoch" }, 1)),
        fire: OpMatch { kinds: RENAME, name: "currentEpoch" },
        extra_max: 1,
        elect: true,
        on_leader: false,
    },
    // The first sync of the log after a new epoch was accepted: a learner's DIFF or its first
    // proposals, a leader's own history before it adopts the epoch.
    Point {
        name: "sync-after-epoch-accepted",
        keys: ("pt sync-after-epoch-accepted", "pt sync-after-epoch-accepted fired"),
        arm: Some((OpMatch { kinds: RENAME, name: "acceptedEpoch" }, 1)),
        fire: OpMatch { kinds: LOG_SYNC, name: "log." },
        extra_max: 1,
        elect: true,
        on_leader: false,
    },
    // The first log write after the new current epoch (after NEWLEADER, or establishment).
    Point {
        name: "append-after-newleader",
        keys: ("pt append-after-newleader", "pt append-after-newleader fired"),
        arm: Some((OpMatch { kinds: RENAME, name: "currentEpoch" }, 2)),
        fire: OpMatch { kinds: LOG_WRITE, name: "log." },
        extra_max: 2,
        elect: true,
        on_leader: false,
    },
    // The first log fsync after a log file was cut or removed (TRUNC, mostly: aimed at the
    // killed leader, which rejoins with the proposals only it logged): the cut's own fsync, or
    // the next file's first one (its DIFF), failed or landed with up to 4 operations after it
    // (the new file's directory entry made durable, the epoch files begun).
    Point {
        name: "log-after-trunc",
        keys: ("pt log-after-trunc", "pt log-after-trunc fired"),
        arm: Some((OpMatch { kinds: LOG_CUT, name: "log." }, 1)),
        fire: OpMatch { kinds: LOG_SYNC, name: "log." },
        extra_max: 4,
        elect: true,
        on_leader: true,
    },
    // A snapshot's rename (the snapshot thread's, or a SNAP's install): fails, or lands
    // before the directory's fsync.
    Point {
        name: "snapshot-rename",
        keys: ("pt snapshot-rename", "pt snapshot-rename fired"),
        arm: None,
        fire: OpMatch { kinds: RENAME, name: "snapshot." },
        extra_max: 1,
        elect: false,
        on_leader: false,
    },
];

/// The longest the `point` fault keeps a leader cut off while the others elect without it.
const ISOLATION_MAX: Duration = Duration::from_secs(10);

/// The stream (xored into the seed) that decides whether a seed uses the `point` fault: apart
/// from the nemesis' own, so seeds without it draw what they drew before it existed.
const POINT_STREAM: u64 = 0x706f_696e_7473_0001;

/// The fault injector of one seed.
pub struct Nemesis {
    world: Arc<World>,
    servers: Vec<NodeHandle>,
    rng: ChaCha8Rng,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// Kinds this seed uses (a seed draws a subset, as tier 1's swarm does).
    kinds: Vec<Fault>,
    /// The longest a clean kill of the leader may take to a new established leader.
    failover_bound: Duration,
    /// When a clogged link last opened (madsim may deliver its held bytes up to
    /// `REDELIVERY_NS` later, and reconnects wait out its backoff).
    unclogged_at: Option<Instant>,
}

impl Nemesis {
    /// A nemesis over `servers`.
    pub fn new(
        world: Arc<World>,
        servers: Vec<NodeHandle>,
        mut rng: ChaCha8Rng,
        failover_bound: Duration,
    ) -> Nemesis {
        let all = [
            Fault::Kill,
            Fault::Pause,
            Fault::Isolate,
            Fault::Split,
            Fault::OneWay,
            Fault::Disk,
            Fault::SlowDisk,
            Fault::Cut,
            Fault::PeerCut,
            Fault::MidWrite,
        ];
        let mut kinds: Vec<Fault> = all.into_iter().filter(|_| rng.random_bool(0.6)).collect();
        if kinds.is_empty() {
            kinds.push(Fault::Kill);
        }
        if rng.random_bool(0.3) {
            kinds.push(Fault::Clock);
        }
        // Half the seeds; in those, drawn three times as often as any other kind (a point
        // is seldom reached by the one drawn, and each kind of point by a sixth of them).
        let mut points = ChaCha8Rng::seed_from_u64(world.seed ^ POINT_STREAM);
        if points.random_bool(0.5) {
            kinds.extend([Fault::Point; 3]);
        }
        let faults = BTreeMap::new();
        Nemesis { world, servers, rng, faults, kinds, failover_bound, unclogged_at: None }
    }

    /// Injects faults until `end`, one at a time: a quiet gap, the fault, a hold, the repair.
    pub async fn run(&mut self, end: Instant) {
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(500..1500))).await;
        while Instant::now() < end {
            let fault = self.kinds[self.rng.random_range(0..self.kinds.len())];
            *self.faults.entry(fault.name()).or_default() += 1;
            let hold = Duration::from_millis(self.rng.random_range(200..4000));
            self.apply(fault, hold).await;
            let gap = Duration::from_millis(self.rng.random_range(100..2000));
            tokio::time::sleep(gap.min(end.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// A server slot: the leader (when known) half the time, else any.
    fn target(&mut self) -> usize {
        match self.world.leader() {
            Some(slot) if self.rng.random_bool(0.5) => slot,
            _ => self.rng.random_range(0..self.servers.len()),
        }
    }

    /// No link opened within madsim's redelivery time: every quorum connection carries its
    /// bytes at once (the fail-over bound is claimed only then).
    fn settled(&self) -> bool {
        let redelivery = Duration::from_nanos(super::REDELIVERY_NS);
        self.unclogged_at.is_none_or(|at| at.elapsed() > redelivery)
    }

    fn name(&self, slot: usize) -> String {
        format!("s{}", slot + 1)
    }

    async fn apply(&mut self, fault: Fault, hold: Duration) {
        let handle = Handle::current();
        let net = NetSim::current();
        match fault {
            Fault::Kill => {
                let slot = self.target();
                let leads = self.world.leader() == Some(slot);
                let clean = leads && self.settled();
                self.world.fault_on(slot);
                let name = self.name(slot);
                // A kill -9 keeps what the OS had; a power loss keeps what was synced and a
                // random prefix of the rest (the disk crashes first: the dropped tasks flush).
                let kind =
                    if self.rng.random_bool(0.5) { CrashKind::Power } else { CrashKind::Process };
                let name = format!("{name} ({kind:?})");
                self.mark(fault, Phase::Start, &name);
                self.world.disks[slot].crash(kind, &mut self.rng);
                handle.kill(self.name(slot));
                let killed_ns = self.world.now_ns();
                self.world.check_acked_durable();
                if clean && hold > self.failover_bound {
                    tokio::time::sleep(self.failover_bound).await;
                    self.world.check_failover(slot, killed_ns, self.failover_bound);
                    tokio::time::sleep(hold - self.failover_bound).await;
                } else {
                    tokio::time::sleep(hold).await;
                }
                handle.restart(self.name(slot));
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::MidWrite => {
                // Power fails in the middle of the server's next few disk operations: the disk
                // freezes after 0-5 more changes (the server fails on the next one and stops),
                // then loses power, keeping a random, possibly torn, prefix of what was not
                // synced: where torn log tails and half-written epoch files come from.
                let slot = self.target();
                self.world.fault_on(slot);
                let name = format!("{} power loss mid-write", self.name(slot));
                self.world.disk_fault_begins(slot);
                self.mark(fault, Phase::Start, &name);
                self.world.disks[slot].freeze_after_ops(self.rng.random_range(0..6));
                tokio::time::sleep(hold).await;
                self.replace_disk(slot, CrashKind::Power);
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Point => {
                let point = POINTS[self.rng.random_range(0..POINTS.len())];
                let slot = match self.world.leader() {
                    Some(leader) if point.on_leader => leader,
                    _ => self.target(),
                };
                let extra_ops = self.rng.random_range(0..=point.extra_max);
                let window = hold.max(Duration::from_secs(1));
                self.power_loss_at(point, slot, extra_ops, window).await;
            }
            Fault::PeerCut => {
                // Every quorum connection of one server (in and out) ends mid-stream, as a
                // middlebox reset would; the server and its peers reconnect.
                let slot = self.target();
                let name = self.name(slot);
                self.mark(fault, Phase::Start, &name);
                self.world.peer_cuts[slot].send_modify(|n| *n += 1);
                tokio::time::sleep(hold.min(Duration::from_millis(50))).await;
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Cut => {
                // Every client drops its connection with a request in flight (the server sees
                // the connection end mid-stream; the client resumes its session elsewhere).
                self.mark(fault, Phase::Start, "clients");
                self.world.cuts.send_modify(|n| *n += 1);
                tokio::time::sleep(hold.min(Duration::from_millis(50))).await;
                self.mark(fault, Phase::Stop, "clients");
            }
            Fault::SlowDisk => {
                // Every sync takes this long: group commit grows, followers' acks lag.
                let slot = self.target();
                let delay = Duration::from_millis(self.rng.random_range(20..1500));
                let name = format!("{} fsync {} ms", self.name(slot), delay.as_millis());
                self.mark(fault, Phase::Start, &name);
                self.world.disks[slot].set_fsync_delay(delay);
                tokio::time::sleep(hold).await;
                self.world.disks[slot].set_fsync_delay(Duration::ZERO);
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Disk => {
                // The next fsync or write fails (EIO), or the disk is full: the server must
                // stop (never carry on as if durable; under madsim a full disk stops it too,
                // the retry loop of a threaded server is tested in sim/tests/simfs_storage.rs);
                // after the hold it is restarted on a disk that works again.
                let slot = self.target();
                self.world.fault_on(slot);
                let disk = &self.world.disks[slot];
                let what = match self.rng.random_range(0..3) {
                    0 => {
                        disk.fail_next_fsync();
                        "fsync EIO"
                    }
                    1 => {
                        disk.fail_next_write();
                        "write EIO"
                    }
                    _ => {
                        disk.set_space_limit(Some(disk.used_bytes()));
                        "ENOSPC"
                    }
                };
                let name = format!("{} {what}", self.name(slot));
                self.world.disk_fault_begins(slot);
                self.mark(fault, Phase::Start, &name);
                tokio::time::sleep(hold).await;
                self.replace_disk(slot, CrashKind::Process);
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Pause => {
                let slot = self.target();
                self.world.fault_on(slot);
                let name = self.name(slot);
                self.mark(fault, Phase::Start, &name);
                handle.pause(&name);
                tokio::time::sleep(hold).await;
                handle.resume(&name);
                self.world.fault_over(slot);
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Isolate => {
                let slot = self.target();
                self.world.fault_on(slot);
                let id = self.servers[slot].id();
                let name = self.name(slot);
                self.mark(fault, Phase::Start, &name);
                net.clog_node(id);
                tokio::time::sleep(hold).await;
                net.unclog_node(id);
                self.unclogged_at = Some(Instant::now());
                self.world.fault_over(slot);
                self.mark(fault, Phase::Stop, &name);
            }
            Fault::Split => {
                let n = self.servers.len();
                let cut = self.rng.random_range(1..n);
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, self.rng.random_range(0..=i));
                }
                let (a, b) = order.split_at(cut);
                let desc = format!(
                    "{:?} | {:?}",
                    a.iter().map(|s| s + 1).collect::<Vec<_>>(),
                    b.iter().map(|s| s + 1).collect::<Vec<_>>()
                );
                self.mark(fault, Phase::Start, &desc);
                let links = self.links(a, b);
                for (x, y) in &links {
                    net.clog_link(*x, *y);
                }
                tokio::time::sleep(hold).await;
                for (x, y) in &links {
                    net.unclog_link(*x, *y);
                }
                self.unclogged_at = Some(Instant::now());
                self.mark(fault, Phase::Stop, &desc);
            }
            Fault::OneWay => {
                let from = self.target();
                let mut to = self.rng.random_range(0..self.servers.len() - 1);
                if to >= from {
                    to += 1;
                }
                let desc = format!("s{} -> s{}", from + 1, to + 1);
                let (x, y) = (self.servers[from].id(), self.servers[to].id());
                self.mark(fault, Phase::Start, &desc);
                net.clog_link(x, y);
                tokio::time::sleep(hold).await;
                net.unclog_link(x, y);
                self.unclogged_at = Some(Instant::now());
                self.mark(fault, Phase::Stop, &desc);
            }
            Fault::Clock => {
                let slot = self.rng.random_range(0..self.servers.len());
                let step = self.rng.random_range(-5_000..5_000i64);
                let drift = self.rng.random_range(-DRIFT_PPM_MAX..DRIFT_PPM_MAX);
                let desc = format!("s{} wall {step:+} ms, drift {drift:+} ppm", slot + 1);
                self.mark(fault, Phase::Start, &desc);
                let clock = &self.world.clocks[slot];
                clock.offset_ms.fetch_add(step, Ordering::Relaxed);
                clock.drift_ppm.store(drift, Ordering::Relaxed);
                tokio::time::sleep(hold).await;
                self.mark(fault, Phase::Stop, &desc);
            }
        }
    }

    /// The `point` fault: kills and restarts the leader if the point needs a new epoch, sets
    /// `point`'s trigger on `slot`'s disk (with `extra_ops`), and waits up to `window`
    /// for the point. Once it fired, lets the freeze start (at most 100 ms), then the disk loses
    /// power and the server restarts (`replace_disk`); if it never fired, the trigger is
    /// disarmed and nothing is crashed.
    async fn power_loss_at(&mut self, point: Point, slot: usize, extra_ops: u64, window: Duration) {
        *self.faults.entry(point.keys.0).or_default() += 1;
        let name = format!("{} {} (+{extra_ops})", self.name(slot), point.name);
        let disk = self.world.disks[slot].clone();
        let fired_before = disk.stats().triggers_fired;
        let (arm, arm_count) = match point.arm {
            Some((arm, count)) => (Some(arm), count),
            None => (None, 0),
        };
        // Its stopping is expected from now on: the freeze may come at any operation.
        self.world.disk_fault_begins(slot);
        self.mark(Fault::Point, Phase::Start, &name);
        if point.elect
            && let Some(leader) = self.world.leader()
        {
            if point.on_leader {
                // Until the others elect without it (they wait out `syncLimit`), and a little
                // longer, for the new leader to commit past the tail only the old one holds;
                // else the old leader, with the longest log, wins again and no TRUNC comes.
                self.isolate_until_replaced(leader, ISOLATION_MAX).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // A new epoch: the leader goes (a kill -9, its page cache kept) and comes back at
            // once; a crash clears a trigger, so the trigger is set after it.
            self.world.fault_on(leader);
            self.world.disks[leader].crash(CrashKind::Process, &mut self.rng);
            Handle::current().kill(self.name(leader));
            Handle::current().restart(self.name(leader));
        }
        disk.set_trigger(Some(Trigger { arm, arm_count, fire: point.fire, extra_ops }));
        let step = Duration::from_millis(10);
        let end = Instant::now() + window;
        let fired = || disk.stats().triggers_fired > fired_before;
        while !fired() && Instant::now() < end {
            tokio::time::sleep(step).await;
        }
        disk.set_trigger(None);
        if !fired() {
            self.world.disk_fault_ends(slot);
            self.mark(Fault::Point, Phase::Stop, &format!("{name} never reached"));
            return;
        }
        *self.faults.entry(point.keys.1).or_default() += 1;
        self.world.fault_on(slot);
        for _ in 0..10 {
            if disk.frozen() {
                break;
            }
            tokio::time::sleep(step).await;
        }
        self.replace_disk(slot, CrashKind::Power);
        self.mark(Fault::Point, Phase::Stop, &name);
    }

    /// Cuts the leader `slot` off from the other servers, not from its clients (their writes
    /// become proposals only it logs), until a newer leader is established, or `window` ends;
    /// then reconnects it (its held bytes may arrive up to madsim's redelivery time later).
    async fn isolate_until_replaced(&mut self, slot: usize, window: Duration) {
        let net = NetSim::current();
        let others: Vec<usize> = (0..self.servers.len()).filter(|s| *s != slot).collect();
        let links = self.links(&[slot], &others);
        let end = Instant::now() + window;
        for (x, y) in &links {
            net.clog_link(*x, *y);
        }
        while self.world.leader().is_none_or(|leader| leader == slot) && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (x, y) in &links {
            net.unclog_link(*x, *y);
        }
        self.unclogged_at = Some(Instant::now());
    }

    /// Ends a disk fault on `slot`: the disk crashes (`kind`), the server is killed, every
    /// acknowledged write must still be durable on a majority, and the server restarts on a disk
    /// without faults.
    fn replace_disk(&mut self, slot: usize, kind: CrashKind) {
        self.world.disks[slot].crash(kind, &mut self.rng);
        Handle::current().kill(self.name(slot));
        self.world.check_acked_durable();
        self.world.disks[slot].set_faults(Default::default());
        self.world.disk_fault_ends(slot);
        Handle::current().restart(self.name(slot));
    }

    /// Both directions of every link between `a` and `b`.
    fn links(&self, a: &[usize], b: &[usize]) -> Vec<(madsim::task::NodeId, madsim::task::NodeId)> {
        let mut links = Vec::new();
        for x in a {
            for y in b {
                let (i, j) = (self.servers[*x].id(), self.servers[*y].id());
                links.push((i, j));
                links.push((j, i));
            }
        }
        links
    }

    /// True if some fault clogged links (madsim holds their bytes and delivers them after the
    /// heal, up to its longest retry backoff later).
    pub fn clogged(&self) -> bool {
        let faults = ["isolate", "split", "one-way"].iter().any(|f| self.faults.contains_key(f));
        // The `point` fault's isolation of a leader, too.
        faults || self.unclogged_at.is_some()
    }

    /// Undoes anything still in effect: every server running and reachable.
    pub async fn heal_all(&mut self) {
        let net = NetSim::current();
        for node in &self.servers {
            net.unclog_node(node.id());
        }
        let line = "heal all".to_string();
        self.world.event("nemesis", &[], line.as_bytes(), || line.clone());
    }

    /// A nemesis line in the history (and the trace): the fault's kind and target.
    fn mark(&self, fault: Fault, phase: Phase, target: &str) {
        self.world.record(Event {
            kind: Some(Kind::Nemesis),
            fault: Some(format!("{} {target}", fault.name())),
            phase: Some(phase),
            time: Some(self.world.now_us()),
            ..Event::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::POINTS;

    /// The summary's keys of each storage point are its name's (`keys` is written out because
    /// the summary's map takes `&'static str`): one edited without the other would count a
    /// point under another's name.
    #[test]
    fn each_points_summary_keys_are_its_name() {
        for point in POINTS {
            let (drawn, fired) = point.keys;
            assert_eq!(drawn, format!("pt {}", point.name));
            assert_eq!(fired, format!("pt {} fired", point.name));
        }
        let mut names: Vec<&str> = POINTS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), POINTS.len(), "names are distinct");
    }
}
