//! Swarm testing: the seed chooses the cluster size, the fault kinds and their rates, the
//! workload mix and the timing knobs, so a campaign explores many configurations instead of one
//! tuned mix (TigerBeetle's VOPR `options_swarm`). Everything here is drawn from the seed's own
//! ChaCha8 stream before the run starts, so it is part of what a seed replays.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::net::NetConfig;

/// The cluster sizes a seed may choose from. Standalone only until Zab lands in core; then this
/// becomes `&[3, 5, 7]` (and the simulator opens peer links between the nodes).
pub const CLUSTER_SIZES: &[usize] = &[1, 3, 5, 7];

/// How long the fault phase lasts, simulated ns (the liveness phase follows).
pub const FAULT_PHASE_NS: u64 = 10_000_000_000;

/// After healing, a fresh client's write to a single server must be acknowledged within this
/// bound, ns. Ensembles get `Swarm::liveness_bound_ns`, which adds Zab's own detection times.
pub const LIVENESS_BOUND_NS: u64 = 3_000_000_000;

/// The kinds of client operation the workload issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// `create /kN` (persistent).
    Create,
    /// `create /kN/cM` (a child).
    CreateChild,
    /// `create /kN/s-` sequential.
    CreateSequential,
    /// `create /kN/e` or `/kN/eM` ephemeral.
    CreateEphemeral,
    /// `create /kN/q-` ephemeral sequential.
    CreateEphemeralSequential,
    /// `setData` with version -1.
    Set,
    /// `setData` with an expected version.
    SetVersioned,
    /// `delete` with version -1.
    Delete,
    /// `delete` with an expected version.
    DeleteVersioned,
    /// `multi` of 2 or 3 sub-ops.
    Multi,
    /// `getData`, maybe with a watch.
    Get,
    /// `exists`, maybe with a watch.
    Exists,
    /// `getChildren`, maybe with a watch.
    Children,
    /// `sync`.
    Sync,
    /// `closeSession`, then a new session.
    Close,
}

/// Every op kind, in weight-table order.
pub const OP_KINDS: [OpKind; 15] = [
    OpKind::Create,
    OpKind::CreateChild,
    OpKind::CreateSequential,
    OpKind::CreateEphemeral,
    OpKind::CreateEphemeralSequential,
    OpKind::Set,
    OpKind::SetVersioned,
    OpKind::Delete,
    OpKind::DeleteVersioned,
    OpKind::Multi,
    OpKind::Get,
    OpKind::Exists,
    OpKind::Children,
    OpKind::Sync,
    OpKind::Close,
];

/// The fault kinds the nemesis injects; each is switched on or off per seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A node crashes (unsynced writes lost, maybe torn) and restarts later.
    Crash,
    /// A crash in the middle of carrying out one step's outputs.
    CrashMidStep,
    /// A network partition of a random kind, healed later.
    Partition,
    /// One link's session breaks (message loss).
    LinkBreak,
    /// One link becomes slow (long delays).
    SlowLink,
    /// One node receives nothing for a while.
    Pause,
    /// A node's wall clock jumps.
    ClockStep,
    /// A node's tick rate drifts.
    ClockDrift,
    /// A client drops its connection and reconnects, maybe to another node.
    ClientReconnect,
    /// A client goes silent (its session may expire), maybe for good.
    ClientSilence,
}

/// Every fault kind, in table order.
pub const FAULT_KINDS: [FaultKind; 10] = [
    FaultKind::Crash,
    FaultKind::CrashMidStep,
    FaultKind::Partition,
    FaultKind::LinkBreak,
    FaultKind::SlowLink,
    FaultKind::Pause,
    FaultKind::ClockStep,
    FaultKind::ClockDrift,
    FaultKind::ClientReconnect,
    FaultKind::ClientSilence,
];

/// The configuration one seed runs with.
#[derive(Clone, Debug)]
pub struct Swarm {
    /// Number of nodes.
    pub cluster_size: usize,
    /// Number of simulated clients.
    pub clients: usize,
    /// Requests a client keeps in flight at most (pipelining).
    pub max_in_flight: usize,
    /// Pause between a client's actions, ns (min, max).
    pub think_ns: (u64, u64),
    /// Weight of each op kind, in [`OP_KINDS`] order; zero switches it off.
    pub mix: [u32; OP_KINDS.len()],
    /// Number of top-level keys `/k0..`.
    pub keys: u32,
    /// Probability a read leaves a watch.
    pub watch_probability: f64,
    /// Mean time between injections of each fault kind, ns; `None` switches it off.
    pub fault_mean_ns: [Option<u64>; FAULT_KINDS.len()],
    /// Network delays.
    pub net: NetConfig,
    /// fsync latency, ns (min, max).
    pub fsync_ns: (u64, u64),
    /// Probability a crash tears the last surviving unsynced record.
    pub tear_probability: f64,
    /// ZooKeeper's tickTime, ms.
    pub tick_time_ms: u32,
    /// The core tick, ms.
    pub tick_ms: u32,
    /// Session timeouts clients ask for, ms (min, max).
    pub session_timeout_ms: (i32, i32),
    /// Largest clock drift a node may get, parts per million.
    pub drift_ppm_max: i64,
    /// Zab's `initLimit` (tickTimes): discovery plus sync.
    pub init_limit: u32,
    /// Zab's `syncLimit` (tickTimes): how long a learner or the leader may stay silent.
    pub sync_limit: u32,
    /// Crashes at the points where Zab's durability argument is delicate (`None`: off).
    pub point_crash: Option<PointCrash>,
    /// Committed txns a node keeps in memory for DIFF syncs (`Config::commit_log_count`).
    pub commit_log_count: usize,
    /// The largest gap a leader syncs by a DIFF read from its log (`Config::disk_diff_max_txns`).
    pub disk_diff_max_txns: u64,
}

/// Crashes at protocol points (FoundationDB's "buggify"): right after a synchronous disk
/// output, right after an acknowledgement leaves, between NEWLEADER and UPTODATE. Random
/// crashes almost never land in these windows (ZOOKEEPER-4643 needs a crash between a
/// learner's epoch write and the fsync of its synced txns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointCrash {
    /// Probability of a crash at a point of weight 1 (see `sim::CrashPoint::weight`).
    pub probability: f64,
    /// How many such crashes the seed may inject in its fault phase.
    pub budget: u32,
    /// Probability that a learner's crash takes its leader down at the same moment (a
    /// correlated failure: one power cut, one rack). The learner then restarts into an
    /// election, not into a sync with the leader it had.
    pub with_leader: f64,
}

impl Swarm {
    /// The configuration `seed` runs with, as [`crate::sim::Sim::new`] draws it first thing
    /// from the seed's stream (and the sync knobs from their own).
    pub fn of_seed(seed: u64) -> Swarm {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let mut swarm = Swarm::draw(&mut rng);
        swarm.draw_sync_knobs(seed);
        swarm
    }

    /// Draws a configuration from the seed's stream.
    pub fn draw(rng: &mut ChaCha8Rng) -> Swarm {
        let cluster_size = CLUSTER_SIZES[rng.random_range(0..CLUSTER_SIZES.len())];
        let mut mix = [0u32; OP_KINDS.len()];
        for w in mix.iter_mut() {
            // Each kind is off in about one seed in five, else weighted 1..=10.
            *w = if rng.random_bool(0.2) { 0 } else { rng.random_range(1..=10) };
        }
        mix[OpKind::Close as usize] = mix[OpKind::Close as usize].min(1);
        if mix.iter().all(|w| *w == 0) {
            mix[OpKind::Set as usize] = 1;
        }
        let mut fault_mean_ns = [None; FAULT_KINDS.len()];
        for (i, m) in fault_mean_ns.iter_mut().enumerate() {
            let on = match FAULT_KINDS[i] {
                FaultKind::CrashMidStep => 0.3,
                _ => 0.6,
            };
            if rng.random_bool(on) {
                *m = Some(rng.random_range(500_000_000..4_000_000_000));
            }
        }
        let tick_time_ms = [500, 1000, 2000][rng.random_range(0..3)];
        let tick_ms = (tick_time_ms / 10).max(10);
        let timeout_min = 2 * tick_time_ms as i32;
        let delay_ns_max = [500_000, 2_000_000, 20_000_000][rng.random_range(0..3)];
        let fsync_max = [200_000, 2_000_000, 20_000_000][rng.random_range(0..3)];
        // Peer datagrams: often clean, sometimes lossy and duplicating (reordering comes from
        // the delay spread). Zab's numbered sessions must keep all of it safe.
        let (datagram_loss, datagram_dup) = match rng.random_range(0..3) {
            0 => (0.0, 0.0),
            1 => (rng.random_range(0.0..0.05), 0.0),
            _ => (rng.random_range(0.0..0.05), rng.random_range(0.0..0.05)),
        };
        Swarm {
            cluster_size,
            clients: rng.random_range(1..=6),
            max_in_flight: rng.random_range(1..=4),
            think_ns: (1_000_000, rng.random_range(20_000_000..200_000_000)),
            mix,
            keys: rng.random_range(1..=10),
            watch_probability: rng.random_range(0.0..0.6),
            fault_mean_ns,
            net: NetConfig { delay_ns_min: 20_000, delay_ns_max, datagram_loss, datagram_dup },
            fsync_ns: (10_000, fsync_max),
            tear_probability: rng.random_range(0.0..0.5),
            tick_time_ms,
            tick_ms,
            session_timeout_ms: (timeout_min, timeout_min * 3),
            drift_ppm_max: [0, 1_000, 50_000][rng.random_range(0..3)],
            init_limit: rng.random_range(5..=10),
            sync_limit: rng.random_range(2..=5),
            point_crash: rng.random_bool(0.7).then(|| PointCrash {
                probability: rng.random_range(0.3..1.0),
                budget: rng.random_range(1..=4),
                with_leader: rng.random_range(0.0..0.7),
            }),
            commit_log_count: zkr_core::Config::default().commit_log_count,
            disk_diff_max_txns: zkr_core::Config::default().disk_diff_max_txns,
        }
    }

    /// Draws the sync knobs from their own stream (`seed` mixed), so that seeds keep the rest
    /// of their configuration and run: half the seeds keep a short in-memory log, so learners
    /// that fall behind are synced from the leader's log files (or by SNAP past a bound).
    pub fn draw_sync_knobs(&mut self, seed: u64) {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0xd15c_d1ff_5eed);
        if rng.random_bool(0.5) {
            self.commit_log_count = rng.random_range(2..=40);
            self.disk_diff_max_txns = match rng.random_range(0..4) {
                0 => 0,
                1 => rng.random_range(1..=60),
                _ => self.disk_diff_max_txns,
            };
        }
    }

    /// The liveness bound for this seed, ns. An ensemble may first have to notice a dead
    /// leader (syncLimit), elect (a few finalize waits), and sync (within initLimit), so its
    /// bound grows with those timeouts; a single server only has to serve.
    pub fn liveness_bound_ns(&self) -> u64 {
        if self.cluster_size == 1 {
            return LIVENESS_BOUND_NS;
        }
        let tick_times = (self.init_limit + self.sync_limit + 2) as u64;
        tick_times * self.tick_time_ms as u64 * 1_000_000 + LIVENESS_BOUND_NS
    }

    /// The mean gap of a fault kind, if it is on.
    pub fn fault_mean(&self, kind: FaultKind) -> Option<u64> {
        self.fault_mean_ns[kind as usize]
    }

    /// One line for the trace and the summary.
    pub fn describe(&self) -> String {
        let faults: Vec<String> = FAULT_KINDS
            .iter()
            .filter(|k| self.fault_mean(**k).is_some())
            .map(|k| format!("{k:?}"))
            .collect();
        let points = match self.point_crash {
            Some(p) => format!(" point_crash={:.2}x{}", p.probability, p.budget),
            None => String::new(),
        };
        format!(
            "nodes={} clients={} in_flight={} keys={} tick={}ms/{}ms limits={}/{} loss={:.3} \
             dup={:.3} faults=[{}]{points} mix={:?} commit_log={} disk_diff={}",
            self.cluster_size,
            self.clients,
            self.max_in_flight,
            self.keys,
            self.tick_ms,
            self.tick_time_ms,
            self.init_limit,
            self.sync_limit,
            self.net.datagram_loss,
            self.net.datagram_dup,
            faults.join(","),
            self.mix,
            self.commit_log_count,
            self.disk_diff_max_txns
        )
    }
}
