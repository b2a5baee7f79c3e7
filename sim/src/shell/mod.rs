//! Tier 2: the real `zkr-server` (its driver, storage worker, txn-log bytes, recovery, quorum
//! and client sockets, timers) under madsim, with the same verdicts as tier 1. Compiled only
//! with `--cfg madsim` (`tests/sim-shell.sh` builds it into `target/sim`).
//!
//! ```text
//!  seed ──▶ madsim Runtime (seeded scheduler, network, clock)
//!    nodes s1..sN (10.0.0.i): Server::start_in(zoo.cfg, ServerEnv { SimClock, seed, Watcher })
//!    nodes c1..cK (10.0.1.j): Client (wire protocol, reconnect + resume) ─▶ World.history
//!    main task: nemesis (kill/restart, pause, partitions, clock steps) ─▶ World.history
//!  Watcher after every driver step: one leader per epoch, equal digest at equal zxid
//!  end: heal, liveness write, history check (zkr-jepsen), trace hash
//! ```
//!
//! Every seed runs on a fresh OS thread with a fresh runtime, so thread-local state (std's
//! `HashMap` keys, tokio's `select!` RNG) cannot leak between seeds; selects in the shell are
//! `biased`. The trace hash covers history lines, nemesis actions and server observations with
//! their simulated times; two runs of one seed must give the same hash (`--determinism`).

mod client;
pub mod log;
mod nemesis;
pub mod sessions;
mod world;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkr_server::config::ServerConfig;
use zkr_server::env::ServerEnv;

use crate::invariants::Violation;
use crate::swarm::Swarm;
pub use world::World;

/// The client port of every simulated server.
pub const CLIENT_PORT: u16 = 2181;
/// The quorum port of every simulated server.
pub const QUORUM_PORT: u16 = 2888;

/// How to run a tier-2 seed.
#[derive(Clone, Debug)]
pub struct ShellOptions {
    /// Voting servers (3 or 5); `None` = drawn from the seed. A seed may add 1 or 2 observers.
    pub servers: Option<usize>,
    /// Client nodes.
    pub clients: usize,
    /// Simulated seconds of workload under faults.
    pub fault_secs: u64,
    /// Deliberate core bugs to switch on in every server.
    pub bugs: zkr_core::config::Bugs,
    /// Deliberate storage bugs to switch on in every server.
    pub shell_bugs: zkr_server::bugs::ShellBugs,
    /// Keep the trace text.
    pub trace: bool,
    /// Keep the history text.
    pub keep_history: bool,
    /// A deliberate harness bug: leave the nodes alive at the end of the seed, so that madsim
    /// keeps their tasks and the world (shows that the campaign's leak check works).
    pub leak_nodes: bool,
}

impl Default for ShellOptions {
    fn default() -> ShellOptions {
        ShellOptions {
            servers: None,
            clients: 3,
            fault_secs: 10,
            bugs: Default::default(),
            shell_bugs: Default::default(),
            trace: false,
            keep_history: false,
            leak_nodes: false,
        }
    }
}

/// What one tier-2 seed found.
#[derive(Clone, Debug, Default)]
pub struct ShellReport {
    /// The seed.
    pub seed: u64,
    /// Voting servers in the ensemble.
    pub servers: usize,
    /// Observers besides them.
    pub observers: usize,
    /// Simulated time at the end, ns.
    pub sim_ns: u64,
    /// Client ops invoked.
    pub ops: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// Everything broken.
    pub violations: Vec<Violation>,
    /// Hash of the trace.
    pub trace_hash: u64,
    /// Trace events.
    pub events: u64,
    /// The trace text (with `trace`).
    pub trace: Option<String>,
    /// The history (with `keep_history`).
    pub history: Option<String>,
    /// Each fault on the leader (kill, pause, isolation, disk): when it hit, and from it to the
    /// next leader, ns.
    pub recoveries_ns: Vec<(u64, u64)>,
    /// What the session-timer and fail-over checks covered.
    pub timers: sessions::Counts,
}

impl ShellReport {
    /// True if nothing was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one seed on a fresh thread with a fresh madsim runtime. Never panics: a panic in a
/// server or the harness is reported as a violation named `panic`.
pub fn run_seed(seed: u64, options: &ShellOptions) -> ShellReport {
    let options = options.clone();
    let thread = std::thread::Builder::new().name(format!("seed-{seed}")).spawn(move || {
        let mut config = madsim::Config::default();
        config.net.send_latency = Duration::from_micros(200)..Duration::from_millis(2);
        let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, config);
        runtime.set_time_limit(Duration::from_secs(options.fault_secs + 300));
        runtime.block_on(scenario(seed, options))
    });
    let joined = thread.map_err(|e| e.to_string()).and_then(|t| {
        t.join().map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into())
        })
    });
    match joined {
        Ok(report) => report,
        Err(message) => ShellReport {
            seed,
            violations: vec![Violation { invariant: "panic", at_ns: 0, message }],
            ..ShellReport::default()
        },
    }
}

fn server_ip(slot: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, slot as u8 + 1))
}

/// The zoo.cfg every server reads: `n` servers, the last `observers` of them observers. Log
/// files are preallocated 16 KB at a time (not ZooKeeper's 64 MB: `SimFs` holds files in memory,
/// and small steps put many extensions between the crashes).
fn zoo_cfg(n: usize, observers: usize, swarm: &Swarm) -> String {
    let mut text = format!(
        "tickTime={}\ninitLimit={}\nsyncLimit={}\nclientPort={CLIENT_PORT}\ndataDir=/unused\n\
         snapCount=200\n4lw.commands.whitelist=*\nzkr.commitLogCount={}\n\
         zkr.diskDiffMaxTxns={}\npreAllocSize=16\n",
        swarm.tick_time_ms,
        swarm.init_limit,
        swarm.sync_limit,
        swarm.commit_log_count,
        swarm.disk_diff_max_txns.min(200)
    );
    for slot in 0..n {
        let ip = server_ip(slot);
        let kind = if slot >= n - observers { ":observer" } else { "" };
        text.push_str(&format!("server.{}={ip}:{QUORUM_PORT}:3888{kind}\n", slot + 1));
    }
    text
}

/// Everything a server node's init needs (it is re-run on every restart).
#[derive(Clone)]
struct ServerSpec {
    slot: usize,
    cfg_text: String,
    dir: PathBuf,
    bugs: zkr_core::config::Bugs,
    shell_bugs: zkr_server::bugs::ShellBugs,
    world: Arc<World>,
    incarnation: Arc<std::sync::atomic::AtomicU64>,
}

async fn serve(spec: ServerSpec) {
    let slot = spec.slot;
    let mut cfg = ServerConfig::parse(&spec.cfg_text).expect("the generated zoo.cfg parses");
    cfg.data_dir = spec.dir.clone();
    cfg.data_log_dir = spec.dir.clone();
    cfg.core.bugs = spec.bugs.clone();
    cfg.set_myid(slot as u64 + 1).expect("the id has a server line");
    let incarnation = spec.incarnation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let env = ServerEnv {
        fs: Arc::new(spec.world.disks[slot].clone()),
        clock: spec.world.clocks[slot].clone(),
        seed: spec.world.seed ^ ((slot as u64 + 1) << 48) ^ (incarnation << 32),
        observer: Some(Arc::new(world::Watcher { world: spec.world.clone(), slot, incarnation })),
        bugs: spec.shell_bugs,
        cuts: Some(spec.world.peer_cuts[slot].subscribe()),
    };
    let line = format!("s{} starts (incarnation {incarnation})", slot + 1);
    spec.world.event("server", &[slot as u64], line.as_bytes(), || line.clone());
    match zkr_server::Server::start_in(cfg, env).await {
        Ok(server) => {
            if let Err(e) = server.wait().await {
                let line = format!("s{} stopped: {e}", slot + 1);
                server_failed(&spec.world, slot, "server", line);
            }
        }
        // A disk frozen on purpose may fail the recovery itself (the `point` fault's trigger
        // can fire at its fsyncs): the nemesis restarts it on a working disk.
        Err(e) => {
            let line = format!("s{} cannot start: {e}", slot + 1);
            server_failed(&spec.world, slot, "recovery", line);
        }
    }
}

async fn scenario(seed: u64, options: ShellOptions) -> ShellReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut swarm = Swarm::draw(&mut rng);
    swarm.draw_sync_knobs(seed);
    swarm.watch_probability = 0.0;
    let voters = options.servers.unwrap_or(if rng.random_bool(0.5) { 3 } else { 5 });
    let observers = if rng.random_bool(0.3) { rng.random_range(1..=2) } else { 0 };
    let n = voters + observers;
    let world = Arc::new(World::new(seed, n, voters, options.trace));
    world.checks.lock().expect("checks").sessions.budget = sessions::Budget {
        tick_time_ms: swarm.tick_time_ms as u64,
        drift_ppm_max: nemesis::DRIFT_PPM_MAX as u64,
    };
    let handle = Handle::current();
    let cfg_text = zoo_cfg(n, observers, &swarm);
    let servers: Vec<NodeHandle> = (0..n)
        .map(|slot| {
            let mut cfg_text = cfg_text.clone();
            if slot >= voters {
                cfg_text.push_str("peerType=observer\n");
            }
            let spec = ServerSpec {
                slot,
                cfg_text,
                dir: PathBuf::from(format!("/zkr/s{}", slot + 1)),
                bugs: options.bugs.clone(),
                shell_bugs: options.shell_bugs,
                world: world.clone(),
                incarnation: Default::default(),
            };
            handle
                .create_node()
                .name(format!("s{}", slot + 1))
                .ip(server_ip(slot))
                .init(move || serve(spec.clone()))
                .build()
        })
        .collect();
    let mut nodes: Vec<NodeId> = servers.iter().map(|s| s.id()).collect();
    let addrs: Vec<SocketAddr> =
        (0..n).map(|slot| SocketAddr::new(server_ip(slot), CLIENT_PORT)).collect();
    let fault_end = Instant::now() + Duration::from_secs(options.fault_secs);
    let mut client_tasks = Vec::new();
    for c in 0..options.clients {
        let node = handle
            .create_node()
            .name(format!("c{}", c + 1))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, c as u8 + 1)))
            .build();
        nodes.push(node.id());
        let (lo, hi) = swarm.session_timeout_ms;
        let client = client::Client {
            world: world.clone(),
            servers: addrs.clone(),
            swarm: swarm.clone(),
            rng: ChaCha8Rng::seed_from_u64(rng.random()),
            timeout_ms: rng.random_range(lo..=hi.max(lo)),
        };
        client_tasks.push(node.spawn(client.run(fault_end)));
    }
    let nemesis_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let mut nemesis = nemesis::Nemesis::new(world.clone(), servers, nemesis_rng, failover(&swarm));
    nemesis.run(fault_end).await;
    nemesis.heal_all().await;
    let healed_ns = world.now_ns();
    for task in client_tasks {
        let _ = task.await;
    }
    let live = liveness(&world, &addrs, Duration::from_secs(60)).await;
    if !live {
        world.violation("liveness", "no write committed within 60 s of the heal".to_string());
    } else {
        silent_sessions_end(&world, healed_ns, nemesis.clogged()).await;
    }
    let report = finish(seed, (voters, observers), &world, &options, nemesis.faults);
    if !options.leak_nodes {
        release(&nodes).await;
    }
    report
}

/// A server that stopped or could not start, `line` saying why: expected while the nemesis
/// has faulted its disk on purpose (a trace event), else a violation of `invariant`.
fn server_failed(world: &World, slot: usize, invariant: &'static str, line: String) {
    if world.stop_expected(slot) {
        world.event("server", &[slot as u64], line.as_bytes(), || line.clone());
    } else {
        world.violation(invariant, line);
    }
}

/// Ends a seed whose report is made: kills every node, so that the executor drops their tasks
/// at its next turn. madsim (0.2.34) never drops the tasks still pending when `block_on`'s
/// future returns: the servers' tasks (trees, storage, sockets) and the watchers' `Arc<World>`
/// (every disk, the history) outlived their seed, 3-5 MB each (18 GB after 4,000 seeds of
/// one campaign). Killed, each task is woken, and its next turn drops it.
async fn release(nodes: &[NodeId]) {
    let handle = Handle::current();
    for node in nodes {
        handle.kill(*node);
    }
    handle.kill("live");
    // One simulated millisecond: the killed tasks' turns all come before it ends.
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The longest a clean kill of the leader may take to a new established leader: tier 1's
/// bound (election finalize waits and a resend round, FOLLOWERINFO's resend, ticks, message
/// delays and fsyncs, all of the seed's tier-1 network and disk, slower than madsim's) in the
/// slowest clock the `clock` fault allows. Never `syncLimit`: the survivors see the leader's
/// connections end and elect at once (`Input::PeerLost`).
fn failover(swarm: &Swarm) -> Duration {
    let mut swarm = swarm.clone();
    swarm.drift_ppm_max = swarm.drift_ppm_max.max(nemesis::DRIFT_PPM_MAX);
    Duration::from_nanos(crate::invariants::failover::bound_ns(&swarm))
}

/// madsim's longest retry backoff for bytes held by a clogged link: a frame sent into a
/// partition may reach its server this long after the heal (and touch its session then).
const REDELIVERY_NS: u64 = 10_500_000_000;

/// After the heal and the liveness write: waits until every session the clients left must be
/// gone (`sessions`' upper bound, checked by the leader's observer meanwhile). The bound holds
/// from the liveness write, or from madsim's redelivery of held bytes after a partition's heal.
async fn silent_sessions_end(world: &World, healed_ns: u64, clogged: bool) {
    let now = world.now_ns();
    let redelivered = if clogged { healed_ns + REDELIVERY_NS } else { healed_ns };
    let last = {
        let mut checks = world.checks.lock().expect("checks");
        checks.sessions.healthy_from(now.max(redelivered));
        checks.sessions.last_deadline_ns()
    };
    let line = format!("sessions checked until {:.3}s", last.unwrap_or(now) as f64 / 1e9);
    world.event("sessions", &[], line.as_bytes(), || line.clone());
    if let Some(last) = last {
        // A second past the last deadline: every server ticks within it.
        let wait = last.saturating_sub(now) + 1_000_000_000;
        tokio::time::sleep(Duration::from_nanos(wait)).await;
    }
}

/// A fresh session writes one znode through any server within `bound`.
async fn liveness(world: &World, addrs: &[SocketAddr], bound: Duration) -> bool {
    let node = Handle::current()
        .create_node()
        .name("live")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)))
        .build();
    let addrs = addrs.to_vec();
    let attempt = node.spawn(async move {
        let end = Instant::now() + bound;
        let mut i = 0usize;
        while Instant::now() < end {
            let addr = addrs[i % addrs.len()];
            i += 1;
            if client::write_once(addr, i as u64).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    let ok = attempt.await.unwrap_or(false);
    let line = format!("liveness write {}", if ok { "committed" } else { "never committed" });
    world.event("liveness", &[], line.as_bytes(), || line.clone());
    ok
}

fn finish(
    seed: u64,
    (servers, observers): (usize, usize),
    world: &World,
    options: &ShellOptions,
    faults: BTreeMap<&'static str, u32>,
) -> ShellReport {
    let events = std::mem::take(&mut *world.history.lock().expect("history"));
    let inserts = std::mem::take(&mut *world.close_inserts.lock().expect("close inserts"));
    let events = crate::merge_inserts(events, inserts);
    let ops = events.iter().filter(|e| e.kind == Some(zkr_jepsen::Kind::Invoke)).count();
    let history = crate::invariants::history::history(events, seed);
    let now = world.now_ns();
    let (mut violations, recoveries_ns, timers) = {
        let mut checks = world.checks.lock().expect("checks");
        let timers = checks.sessions.counts();
        (std::mem::take(&mut checks.violations), std::mem::take(&mut checks.recoveries_ns), timers)
    };
    if violations.is_empty() {
        let outcome = crate::invariants::history::check(&history, now);
        violations.extend(outcome.violations);
    }
    let trace = std::mem::replace(
        &mut *world.trace.lock().expect("trace"),
        crate::trace::Trace::new(false),
    );
    ShellReport {
        seed,
        servers,
        observers,
        sim_ns: now,
        ops,
        faults,
        violations,
        trace_hash: trace.hash(),
        events: trace.events(),
        trace: trace.into_text(),
        history: options.keep_history.then(|| history.to_jsonl()),
        recoveries_ns,
        timers,
    }
}
