//! `jepsen test`: runs a seeded workload against real ZooKeeper servers over the wire protocol
//! while a nemesis kills, pauses and partitions them (halves, isolation, one way, bridge),
//! loses their packets (in the cluster's own network namespace, see `netns`), and moves their
//! clocks or slows their disks; records the history in the documented format, checks it, and
//! writes the reports.
//!
//! ```text
//!  Cluster (local processes or attached) ◀── nemesis thread: kill -9 + restart, SIGSTOP/CONT
//!      ▲  client protocol over loopback
//!  worker threads, one session each ── invoke/complete lines ──▶ history (one Mutex, so the
//!                                                                 line order is real time)
//!  at the end: heal, close sessions, check::check ──▶ history.jsonl, report.txt, report.html
//! ```
//!
//! A worker whose call fails or times out records the op `info` (it may or may not have taken
//! effect) and the session's `close`, which a thread of its own completes by reattaching to
//! the session from a new connection and closing it (`close_lost`; the close's reply bounds
//! when the lost op took effect), and goes on with a new session as a new history process.
//! The workload writes under its own root (`/jepsen-<id>`), so an attached ensemble's other
//! data is never touched and the checker may start from an empty tree: registers `k0..`,
//! created, set (often with the version last seen), deleted, read (some leaving a watch, whose
//! notifications are recorded as `event` lines), checked with `exists`, synced and then read;
//! sequential creates under `q`; ephemerals `e0..e2`, gone when their session closes (the
//! workload closes sessions now and then); and multis over two registers.

pub mod client;
pub mod cluster;
pub mod netns;
pub mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::types::Acl;

use crate::history::{Event, F, Header, History, Kind, Phase, SyncZxid};
use crate::{Options, check, record, report};
use client::Client;
use cluster::Cluster;

/// A fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a member (the leader half the time), restart it later on its data.
    Kill,
    /// SIGSTOP a member (the leader half the time), SIGCONT it later.
    Pause,
    /// Cut a member (the leader half the time) off from the others, or split the ensemble in
    /// two halves, or cut one direction between two members (a one-way partition); heal later.
    Partition,
    /// Cut the leader off silently: its links hold every byte both ways but stay open, so
    /// both sides find out only by their timeouts (`syncLimit`), as behind a firewall that
    /// drops packets. The leader may keep serving its clients until then.
    IsolateLeader,
    /// Step a member's clock (wall and, for zkr, monotonic) by up to ±`interval`, or make it
    /// drift 2-25% fast or slow; set it right later (libfaketime).
    Clock,
    /// Make a member's disk syncs slow (50-1000 ms each) or stall them; heal later (zkr built
    /// with the `bugs` feature only: `zkr.diskFaultFile`).
    Disk,
    /// Lose 20-90% of the TCP segments to and from one member (the leader half the time) or
    /// every member, each segment drawn on its own (nftables in the cluster's network
    /// namespace); heal later. TCP retransmits what is lost, late, so calls slow down or time
    /// out, and a member may lose its leader.
    Loss,
}

impl Fault {
    /// The name `--nemesis` takes and the history's nemesis lines use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Clock => "clock",
            Fault::Disk => "disk",
            Fault::Loss => "loss",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(text: &str) -> Result<Fault, String> {
        let all = [
            Fault::Kill,
            Fault::Pause,
            Fault::Partition,
            Fault::IsolateLeader,
            Fault::Clock,
            Fault::Disk,
            Fault::Loss,
        ];
        all.into_iter().find(|f| f.name() == text).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|f| f.name()).collect();
            format!("unknown fault {text:?} ({})", names.join(", "))
        })
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Concurrent client sessions.
    pub clients: usize,
    /// How long the workload runs.
    pub duration: Duration,
    /// Seed of the workload and the nemesis.
    pub seed: u64,
    /// Faults to inject (none for an attached ensemble).
    pub faults: Vec<Fault>,
    /// Mean time between faults; each fault lasts up to this long.
    pub fault_interval: Duration,
    /// Registers per run.
    pub keys: u32,
    /// Session timeout asked for, ms.
    pub session_timeout_ms: i32,
    /// How long a call may take before it is given up as `info`.
    pub call_timeout: Duration,
    /// Where the history and reports go.
    pub out: PathBuf,
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// True if the checker accepted the history.
    pub valid: bool,
    /// The summary printed for people.
    pub summary: String,
}

/// Shared state of one run.
struct Run {
    root: String,
    events: Mutex<Vec<Event>>,
    started: Instant,
    next_process: AtomicU64,
    stop: AtomicBool,
    /// How each lost session's reattach ended (`close_lost`), for `reattach.txt`.
    reattaches: Mutex<Vec<String>>,
}

impl Run {
    fn push(&self, mut event: Event) {
        event.time = Some(self.started.elapsed().as_micros() as u64);
        self.events.lock().expect("no panics while held").push(event);
    }
}

/// Runs the workload against `cluster`, injects faults if it is local, checks the history.
/// A cluster started in a network namespace ([`cluster::Setup::netns`]) must be run from the
/// thread that started it (the workers' sockets open in the namespace that thread is in).
pub fn run(cluster: Cluster, options: &TestOptions) -> Result<Outcome, String> {
    if cluster.netns().is_some_and(|ns| !ns.is_joined()) {
        return Err("run the cluster from the thread that started it (its netns)".into());
    }
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let run = Arc::new(Run {
        root: format!("/jepsen-{id}"),
        events: Mutex::new(Vec::new()),
        started: Instant::now(),
        next_process: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        reattaches: Mutex::new(Vec::new()),
    });
    let addrs = cluster.addrs().to_vec();
    setup(&run, &addrs, options)?;
    let sync_zxid = cluster.sync_zxid();
    let cluster = Arc::new(Mutex::new(cluster));
    let workers: Vec<_> = (0..options.clients)
        .map(|w| {
            let (run, addrs, options) = (run.clone(), addrs.clone(), options.clone());
            std::thread::spawn(move || worker(&run, &addrs, w, &options))
        })
        .collect();
    let faults = nemesis(&run, &cluster, options);
    run.stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    drop(cluster);
    finish(&run, options, &faults, sync_zxid)
}

/// Creates the run's root and the queue parent, recorded as process 0's ops.
fn setup(run: &Run, addrs: &[SocketAddr], options: &TestOptions) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, addr) in addrs.iter().enumerate() {
            let Ok(mut c) =
                Client::connect(*addr, options.session_timeout_ms, options.call_timeout)
            else {
                continue;
            };
            let mut ok = true;
            for (xid, path) in [(1, run.root.clone()), (2, format!("{}/q", run.root))] {
                let req = create(path, Vec::new(), 0);
                run.push(record::invoke(0, xid, &req, 0));
                let mut versions = BTreeMap::new();
                match c.call(xid, &req) {
                    Ok((h, body)) => {
                        let line = record::completion(0, &req, &h, body.as_ref(), &mut versions, 0);
                        ok &= line.kind == Some(Kind::Ok);
                        run.push(line);
                    }
                    Err(e) => return Err(format!("setup on member {}: {e}", i + 1)),
                }
            }
            return if ok { Ok(()) } else { Err("could not create the run's root".into()) };
        }
        if Instant::now() > deadline {
            return Err("no server accepted a session within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create(path: String, data: Vec<u8>, flags: i32) -> Request {
    let acl = Acl::open_unsafe();
    Request::Create { op: OpCode::Create, path, data: Some(data), acl, flags, ttl: -1 }
}

/// How a session ended.
enum End {
    /// The run is over: close it.
    Stop,
    /// The workload chose to close it (its ephemerals go away).
    Close,
    /// A call failed or timed out: the session is abandoned and may expire at any time.
    Lost,
}

/// One client: sessions one after another until the run stops.
fn worker(run: &Arc<Run>, addrs: &[SocketAddr], w: usize, options: &TestOptions) {
    // Threads closing this worker's lost sessions (`close_lost`), joined at the end.
    let mut closers = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed.wrapping_mul(1000).wrapping_add(w as u64));
    let mut versions: BTreeMap<String, i32> = BTreeMap::new();
    let mut counter = 0u64;
    while !run.stop.load(Ordering::SeqCst) {
        let addr = addrs[rng.random_range(0..addrs.len())];
        let Ok(mut c) = Client::connect(addr, options.session_timeout_ms, options.call_timeout)
        else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let process = run.next_process.fetch_add(1, Ordering::SeqCst);
        let mut xid = 1;
        // After a sync, the session reads the synced path (sync-then-read).
        let mut then_read: Option<String> = None;
        let end = loop {
            if run.stop.load(Ordering::SeqCst) {
                break End::Stop;
            }
            counter += 1;
            let req = match then_read.take() {
                Some(path) => Request::GetData { path, watch: rng.random_bool(0.3) },
                None => {
                    match next_request(&mut rng, run, options.keys, &versions, process, counter) {
                        Some(req) => req,
                        None => break End::Close,
                    }
                }
            };
            if let Request::Sync { path } = &req {
                then_read = Some(path.clone());
            }
            run.push(record::invoke(process, xid, &req, 0));
            let result = c.call(xid, &req);
            for (zxid, event) in std::mem::take(&mut c.events) {
                run.push(record::watch_event(process, zxid, event.event_type, &event.path, 0));
            }
            match result {
                Ok((h, body)) => {
                    let line =
                        record::completion(process, &req, &h, body.as_ref(), &mut versions, 0);
                    run.push(line);
                }
                Err(_) => {
                    let f = record::function(&req).expect("workload ops are recorded");
                    run.push(record::bare(process, Kind::Info, f, Some(xid), None, 0));
                    break End::Lost;
                }
            }
            xid += 1;
            std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
        };
        match end {
            End::Stop | End::Close => {
                let req = Request::CloseSession;
                run.push(record::invoke(process, xid, &req, 0));
                // An error reply (SessionExpired: the session was marked closing) is no commit.
                let answered = c.call(xid, &req).is_ok_and(|(h, _)| h.err == 0);
                let kind = if answered { Kind::Ok } else { Kind::Info };
                run.push(record::bare(process, kind, F::Close, Some(xid), None, 0));
            }
            End::Lost => {
                // Closed from a new connection, in the background, while this worker goes on
                // with a new session (see `close_lost`).
                let xid = xid + 1;
                run.push(record::invoke(process, xid, &Request::CloseSession, 0));
                let lost = Lost {
                    process,
                    xid,
                    session_id: c.session_id,
                    passwd: c.passwd.clone(),
                    first: rng.random_range(0..addrs.len()),
                    at: run.started.elapsed(),
                };
                drop(c);
                let (run, addrs, options) = (run.clone(), addrs.to_vec(), options.clone());
                closers.push(std::thread::spawn(move || close_lost(&run, &addrs, &options, lost)));
            }
        }
    }
    for closer in closers {
        let _ = closer.join();
    }
}

/// A session whose call got no reply, to be closed from a new connection.
struct Lost {
    /// Its history process.
    process: u64,
    /// The xid its close is recorded with (its `invoke` is in the history already).
    xid: i32,
    session_id: i64,
    passwd: Vec<u8>,
    /// The member tried first (then the others in turn).
    first: usize,
    /// When the call was given up, since the run's start.
    at: Duration,
}

/// How long after a loss a lost session is still tried, in session timeouts: a close that is
/// answered settles it, and every new leader restarts each session's timeout, so once the
/// faults' elections are over a member closes it well within this (the latest in a 150 s run
/// under kill, pause and partition: 8.9 s after the loss, at 10 s sessions).
const REATTACH_TIMEOUTS: u32 = 3;

/// Closes a lost session as a ZooKeeper client would, from a new connection: the leader takes
/// a session's requests in order and refuses those of a closed session, so the op that got no
/// reply took effect before the close's reply or never. The checker needs that bound: an op
/// left pending until the end of the history may take effect anywhere, and every fault leaves
/// a burst of them (one per client) that makes the search of a long run thrash.
///
/// Members refuse connections while they elect a leader (and a killed, paused or cut-off
/// member does not answer), and a leader that has lost its quorum without knowing it yet
/// accepts the session but never answers the close, so the members are tried in turn,
/// backing off from 100 ms to 1 s, until a close is answered or [`REATTACH_TIMEOUTS`]
/// session timeouts have passed (once the run is over, half a timeout more at most: the
/// nemesis has healed everything by then). A refusal (the session expired) does not stop the
/// tries: a leader refuses a session once it marks it closing, before the closeSession
/// commits, and if it loses its quorum first the next leader restores the session, which a
/// later try then closes. A session refused to the end is recorded as
/// docs/HISTORY-FORMAT.md says, its close completed `info` (`SessionExpired`): it may take
/// effect (and its ephemerals go) at any time after the loss; taking the refusal as the
/// close's completion would not be sound (docs/JEPSEN.md, "Lost ops"). The close's `invoke`
/// is recorded at the loss, where the session may first expire. Each lost session is a line
/// of `reattach.txt`.
fn close_lost(run: &Run, addrs: &[SocketAddr], options: &TestOptions, lost: Lost) {
    let timeout = options.session_timeout_ms;
    let timeout_d = Duration::from_millis(u64::try_from(timeout).unwrap_or(0));
    let lost_at = run.started + lost.at;
    let over = run.started + options.duration + timeout_d / 2;
    let give_up = (lost_at + timeout_d * REATTACH_TIMEOUTS).min(over.max(lost_at));
    let (mut tries, mut unreachable, mut backoff) = (0u32, 0u32, Duration::from_millis(100));
    let (mut unanswered_closes, mut refusals) = (0u32, 0u32);
    let mut last_error = String::new();
    let outcome = loop {
        let addr = addrs[(lost.first + tries as usize) % addrs.len()];
        tries += 1;
        let io = options.call_timeout;
        match Client::reattach(addr, timeout, io, lost.session_id, lost.passwd.clone()) {
            Ok(mut c) => match c.call(lost.xid, &Request::CloseSession) {
                // Only a reply without an error is the commit of the close.
                Ok((h, _)) if h.err == 0 => {
                    let (p, x) = (lost.process, Some(lost.xid));
                    run.push(record::bare(p, Kind::Ok, F::Close, x, None, 0));
                    break "closed";
                }
                // A session marked closing meanwhile is refused (SessionExpired), before
                // its closeSession commits: as a refused reattach below.
                Ok((h, _)) => {
                    refusals += 1;
                    last_error = format!("the close was refused with error {}", h.err);
                }
                // A member that accepts the session may be a leader that has lost its quorum
                // and does not know it yet (cut off, or its followers killed): its close never
                // commits, or commits with no reply. That close is lost like the op was, and
                // the next reattach bounds both: a session still open after it is closed by
                // a later close; one it closed is refused (and stays unbounded).
                Err(e) => {
                    unanswered_closes += 1;
                    last_error = e;
                }
            },
            // Not the end: the leader that refused may lose its quorum before the close
            // commits, and the next one restores the session (a later try then closes it).
            Err(client::Reattach::Expired) => {
                refusals += 1;
                last_error = "the reattach was refused (session expired)".to_string();
            }
            Err(client::Reattach::Unreachable(e)) => {
                unreachable += 1;
                last_error = e;
            }
        }
        if Instant::now() + backoff >= give_up && refusals > 0 {
            // Not `ok`: the refusal can precede the closeSession's commit (see
            // docs/HISTORY-FORMAT.md), so the close, and the lost op, stay unbounded.
            let (p, x) = (lost.process, Some(lost.xid));
            run.push(record::bare(p, Kind::Info, F::Close, x, Some("SessionExpired"), 0));
            break "refused as expired";
        }
        if Instant::now() + backoff >= give_up {
            break "gave up";
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(1));
    };
    let after = lost_at.elapsed().as_secs_f64();
    let mut line = format!(
        "{:8.3}s p{} session {:#x}: {outcome} after {after:.3}s, {tries} tries \
         ({unreachable} unanswered, {unanswered_closes} closes unanswered, {refusals} refused)",
        lost.at.as_secs_f64(),
        lost.process,
        lost.session_id
    );
    if !last_error.is_empty() {
        line.push_str(&format!("; last error: {last_error}"));
    }
    run.reattaches.lock().expect("no panics while held").push(line);
}

/// The next request, or `None` to close the session: mostly reads and versioned sets of a
/// few registers (`k<i>`), some creates, deletes, syncs (each followed by a read of the synced
/// register), sequential creates under `q`, ephemerals (`e<i>`, created, read, sometimes
/// deleted by another session, gone when their session closes), multis, and reads that leave
/// a watch. Data is unique per op (`p<process>.<n>`).
fn next_request(
    rng: &mut ChaCha8Rng,
    run: &Run,
    keys: u32,
    versions: &BTreeMap<String, i32>,
    process: u64,
    counter: u64,
) -> Option<Request> {
    let pick = |rng: &mut ChaCha8Rng, prefix: &str, n: u32| {
        format!("{}/{prefix}{}", run.root, rng.random_range(0..n.max(1)))
    };
    let key = pick(rng, "k", keys);
    let ephemeral = pick(rng, "e", 3);
    let data = format!("p{process}.{counter}").into_bytes();
    let known = versions.get(&key).copied().unwrap_or(-1);
    let watch = rng.random_bool(0.3);
    Some(match rng.random_range(0..100) {
        0..25 => Request::GetData { path: key, watch },
        25..43 => {
            let version = if rng.random_bool(0.5) { known } else { -1 };
            Request::SetData { path: key, data: Some(data), version }
        }
        43..51 => create(key, data, 0),
        51..55 => Request::Delete { path: key, version: -1 },
        55..60 => Request::Exists { path: key, watch },
        60..65 => Request::Sync { path: key },
        65..72 => create(format!("{}/q/s-", run.root), data, 2),
        72..79 => create(ephemeral, data, 1),
        79..83 => Request::Exists { path: ephemeral, watch: false },
        83..85 => Request::GetData { path: ephemeral, watch: false },
        85..86 => Request::Delete { path: ephemeral, version: -1 },
        86..93 => multi(rng, run, keys, key, known, data),
        93..95 => return None,
        _ => Request::GetData { path: key, watch: false },
    })
}

/// A multi over two distinct registers (all or nothing): a versioned check of one and a set of
/// the other, two sets, or the check with an ephemeral create.
fn multi(
    rng: &mut ChaCha8Rng,
    run: &Run,
    keys: u32,
    key: String,
    known: i32,
    data: Vec<u8>,
) -> Request {
    let n = keys.max(2);
    let first: u32 = key.rsplit('k').next().and_then(|i| i.parse().ok()).unwrap_or(0);
    let other = format!("{}/k{}", run.root, (first + 1 + rng.random_range(0..n - 1)) % n);
    let set =
        |path: String, data: Vec<u8>| Request::SetData { path, data: Some(data), version: -1 };
    let check = Request::Check { path: key.clone(), version: known };
    Request::Multi(match rng.random_range(0..3) {
        0 => vec![check, set(other, data)],
        1 => vec![set(key, data.clone()), set(other, data)],
        _ => {
            let ephemeral = format!("{}/e{}", run.root, rng.random_range(0..3));
            vec![check, create(ephemeral, data, 1)]
        }
    })
}

/// Injects faults until the run's time is up, then heals everything. Returns the fault log.
fn nemesis(run: &Run, cluster: &Mutex<Cluster>, options: &TestOptions) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x006e_656d_6573_6973);
    let mut log = Vec::new();
    let end = run.started + options.duration;
    let n = cluster.lock().expect("not poisoned").addrs().len();
    let local = cluster.lock().expect("not poisoned").is_local();
    let interval = options.fault_interval.as_millis().max(1) as u64;
    let stamp = |run: &Run| format!("{:8.3}s", run.started.elapsed().as_secs_f64());
    // The kinds take turns from a random first one, so a short run sees each of them.
    let mut turn = rng.random_range(0..options.faults.len().max(1));
    while Instant::now() < end {
        let quiet = Duration::from_millis(rng.random_range(interval / 2..=interval));
        std::thread::sleep(quiet.min(end.saturating_duration_since(Instant::now())));
        if !local || options.faults.is_empty() || Instant::now() >= end {
            continue;
        }
        let fault = options.faults[turn % options.faults.len()];
        turn += 1;
        let leader = cluster.lock().expect("not poisoned").leader();
        let target = match leader {
            Some(l) if fault == Fault::IsolateLeader || rng.random_bool(0.5) => l,
            _ => rng.random_range(0..n),
        };
        let hold = Duration::from_millis(rng.random_range(interval / 4..=interval));
        let mut c = cluster.lock().expect("not poisoned");
        let (what, active) = inject(&mut c, fault, target, leader, interval, &mut rng);
        drop(c);
        let name = format!("{} {what}", fault.name());
        run.push(nemesis_line(&name, Phase::Start));
        log.push(format!("{} {name}", stamp(run)));
        // Hold it; a drifting clock is moved on as the hold goes.
        let began = Instant::now();
        let until = began + hold.min(end.saturating_duration_since(began));
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(100)));
            if let Active::Clock { target, drift: Some(rate) } = active {
                let offset = rate * began.elapsed().as_secs_f64();
                let _ = cluster.lock().expect("not poisoned").set_clock(target, offset);
            }
        }
        let healed = heal(&mut cluster.lock().expect("not poisoned"), active);
        run.push(nemesis_line(&name, Phase::Stop));
        let error = healed.err().map_or(String::new(), |e| format!(": {e}"));
        log.push(format!("{} heal {}{error}", stamp(run), fault.name()));
    }
    log
}

/// A fault in progress, as [`heal`] undoes it.
#[derive(Clone, Copy, Debug)]
enum Active {
    /// Member killed: restart it.
    Kill(usize),
    /// Member stopped: continue it.
    Pause(usize),
    /// Links cut, held or stalled: heal them all.
    Partition,
    /// Member's clock off (and drifting at `drift` s/s): set it right.
    Clock { target: usize, drift: Option<f64> },
    /// Member's disk slow or stalled: make it healthy.
    Disk(usize),
    /// Packets lost: remove the rules.
    Loss,
}

/// Starts `fault` on `target`; returns what it did (for the history and the log) and how to
/// undo it.
fn inject(
    c: &mut Cluster,
    fault: Fault,
    target: usize,
    leader: Option<usize>,
    interval_ms: u64,
    rng: &mut ChaCha8Rng,
) -> (String, Active) {
    let n = c.addrs().len();
    let role = if Some(target) == leader { " (leader)" } else { "" };
    let member = format!("n{}{role}", target + 1);
    let failed = |what: String, e: Result<(), String>| match e {
        Ok(()) => what,
        Err(e) => format!("{what} (not injected: {e})"),
    };
    match fault {
        Fault::Kill => {
            c.kill(target);
            (member, Active::Kill(target))
        }
        Fault::Pause => {
            c.set_paused(target, true);
            (member, Active::Pause(target))
        }
        Fault::Partition if rng.random_bool(0.3) => {
            c.partition(&[target]);
            (format!("isolates {member}"), Active::Partition)
        }
        Fault::Partition if n >= 3 && rng.random_bool(0.35) => {
            // The target stays in both halves; the others are split around it.
            let (left, right) = c.bridge(target);
            let names = |side: &[usize]| {
                side.iter().map(|i| format!("n{}", i + 1)).collect::<Vec<_>>().join(",")
            };
            let what = format!("bridge {} | {member} | {}", names(&left), names(&right));
            (what, Active::Partition)
        }
        Fault::Partition if rng.random_bool(0.5) => {
            // One way: the target's messages to another member are lost, not theirs to it.
            let other = (target + 1 + rng.random_range(0..n.max(2) - 1)) % n;
            c.one_way(target, other);
            (format!("one-way {member} -> n{}", other + 1), Active::Partition)
        }
        Fault::Partition => {
            let half: Vec<usize> = (0..n / 2).collect();
            c.partition(&half);
            (format!("halves: n1..n{} | the rest", n / 2), Active::Partition)
        }
        Fault::IsolateLeader => {
            c.silence(&[target]);
            let what = if leader.is_some() { member } else { format!("{member}, no leader seen") };
            (what, Active::Partition)
        }
        Fault::Clock if rng.random_bool(0.5) => {
            let step = rng.random_range(500..=interval_ms.max(500)) as f64 / 1000.0;
            let step = if rng.random_bool(0.5) { step } else { -step };
            let what = failed(format!("{member} step {step:+.3}s"), c.set_clock(target, step));
            (what, Active::Clock { target, drift: None })
        }
        Fault::Clock => {
            let rate = rng.random_range(2..=25) as f64 / 100.0;
            let rate = if rng.random_bool(0.5) { rate } else { -rate };
            let what = format!("{member} drift {:+.0}%", rate * 100.0);
            let what = failed(what, c.set_clock(target, 0.0));
            (what, Active::Clock { target, drift: Some(rate) })
        }
        Fault::Disk => {
            let ms = rng.random_range(50..=1000);
            let (text, shown) = match rng.random_bool(0.5) {
                true => ("stall".to_string(), "stall".to_string()),
                false => (format!("slow {ms}"), format!("slow {ms}ms")),
            };
            let what = failed(format!("{member} {shown}"), c.set_disk(target, &text));
            (what, Active::Disk(target))
        }
        Fault::Loss => {
            let percent = rng.random_range(20..=90);
            let (members, who) = match rng.random_bool(0.25) {
                true => ((0..n).collect(), "all".to_string()),
                false => (vec![target], member),
            };
            let what = failed(format!("{who} {percent}%"), c.set_loss(&members, percent));
            (what, Active::Loss)
        }
    }
}

/// Undoes a fault [`inject`] started.
fn heal(c: &mut Cluster, active: Active) -> Result<(), String> {
    match active {
        Active::Kill(target) => c.restart(target),
        Active::Pause(target) => {
            c.set_paused(target, false);
            Ok(())
        }
        Active::Partition => {
            c.heal_partitions();
            Ok(())
        }
        Active::Clock { target, .. } => c.set_clock(target, 0.0),
        Active::Disk(target) => c.set_disk(target, ""),
        Active::Loss => c.heal_loss(),
    }
}

/// A `nemesis` history line: the fault's start or stop, drawn as a band in the reports.
fn nemesis_line(fault: &str, phase: Phase) -> Event {
    Event {
        kind: Some(Kind::Nemesis),
        fault: Some(fault.to_string()),
        phase: Some(phase),
        ..Event::default()
    }
}

/// Writes the history, checks it, writes the reports; returns the verdict and the summary.
/// The history's header says what the servers' sync replies mean (`sync_zxid`), so that
/// `jepsen check` of the file later gives the same verdict.
fn finish(
    run: &Run,
    options: &TestOptions,
    faults: &[String],
    sync_zxid: SyncZxid,
) -> Result<Outcome, String> {
    let events = std::mem::take(&mut *run.events.lock().expect("workers are done"));
    let description = Some(format!("jepsen test, seed {}, root {}", options.seed, run.root));
    let header = Header { description, sync_zxid, ..Header::default() };
    let history = History { header, events };
    let write = |name: &str, text: &str| {
        let path = options.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("history.jsonl", &history.to_jsonl())?;
    write("faults.txt", &faults.join("\n"))?;
    let mut reattaches = std::mem::take(&mut *run.reattaches.lock().expect("closers are done"));
    reattaches.sort();
    write("reattach.txt", &reattaches.join("\n"))?;
    let verdict = check(&history, &Options::default()).map_err(|e| e.to_string())?;
    let text = report::text(&history, &verdict);
    write("report.txt", &text)?;
    write("report.html", &report::html(&history, &verdict))?;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for e in &history.events {
        if let Some(kind) = e.kind.filter(|k| !matches!(k, Kind::Invoke | Kind::Nemesis)) {
            *outcomes.entry(format!("{kind:?}").to_lowercase()).or_default() += 1;
        }
    }
    let mut summary = format!(
        "{} sessions, outcomes {outcomes:?}, {} faults\n{}\n{}\n",
        run.next_process.load(Ordering::SeqCst) - 1,
        faults.len() / 2,
        latency_line(&history.events, options.duration),
        leader_line(&history.events)
    );
    summary.push_str(&lost_line(&reattaches));
    for line in faults {
        summary.push_str(&format!("  {line}\n"));
    }
    if sync_zxid == SyncZxid::LowerBound {
        summary.push_str(
            "sync reply zxids checked as lower bounds (not zkr: Apache ZooKeeper's leader \
             answers a sync like a read; see docs/JEPSEN.md)\n",
        );
    }
    summary.push_str(&text);
    summary.push_str(&format!("history and reports in {}\n", options.out.display()));
    Ok(Outcome { valid: verdict.is_valid(), summary })
}

/// Lost sessions by how their reattach ended (`reattach.txt` has one line each).
fn lost_line(reattaches: &[String]) -> String {
    const ENDS: [&str; 5] =
        ["closed", "close refused", "close got no reply", "refused as expired", "gave up"];
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for line in reattaches {
        let end = ENDS.into_iter().find(|end| line.contains(&format!(": {end} after")));
        *ends.entry(end.unwrap_or("other")).or_default() += 1;
    }
    if reattaches.is_empty() {
        return "lost sessions 0\n".to_string();
    }
    let ends: Vec<String> = ends.iter().map(|(end, n)| format!("{end} {n}")).collect();
    format!("lost sessions {} ({}; see reattach.txt)\n", reattaches.len(), ends.join(", "))
}

/// Leader changes as the clients saw them: each new leader starts a new epoch, the high 32
/// bits of every zxid it hands out, so the epochs in reply zxids count the leaders that served
/// this run (a member elected again counts again: it was a new election). Leaders that served
/// no client between two others are not seen. Lists when each epoch's first reply came.
fn leader_line(events: &[Event]) -> String {
    let mut first: BTreeMap<i64, u64> = BTreeMap::new();
    for e in events {
        let (Some(zxid), Some(time)) = (e.zxid, e.time) else { continue };
        if zxid > 0 && matches!(e.kind, Some(Kind::Ok | Kind::Fail)) {
            let seen = first.entry(zxid >> 32).or_insert(time);
            *seen = (*seen).min(time);
        }
    }
    let changes = first.len().saturating_sub(1);
    assert!(changes < first.len() || first.is_empty(), "one change fewer than epochs");
    const SHOWN: usize = 12;
    let mut epochs: Vec<String> = first
        .iter()
        .take(SHOWN)
        .map(|(epoch, us)| format!("{epoch} from {:.1}s", *us as f64 / 1e6))
        .collect();
    if first.len() > SHOWN {
        epochs.push(format!("{} more", first.len() - SHOWN));
    }
    format!(
        "leader changes {changes} ({} epochs in reply zxids: {})",
        first.len(),
        if epochs.is_empty() { "none".to_string() } else { epochs.join(", ") }
    )
}

/// Latency percentiles of the completed calls (from invoke to `ok`/`fail`) and throughput.
fn latency_line(events: &[Event], duration: Duration) -> String {
    let mut invoked: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    for e in events {
        let (Some(xid), Some(time)) = (e.xid, e.time) else { continue };
        match e.kind {
            Some(Kind::Invoke) => {
                invoked.insert((e.process, xid), time);
            }
            Some(Kind::Ok | Kind::Fail) => {
                if let Some(start) = invoked.remove(&(e.process, xid)) {
                    latencies.push(time.saturating_sub(start));
                }
            }
            _ => {}
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize;
        latencies.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let rate = latencies.len() as f64 / duration.as_secs_f64().max(1e-9);
    format!(
        "completed calls {} ({rate:.0}/s); latency ms p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: Kind, zxid: i64, seconds: f64) -> Event {
        Event {
            kind: Some(kind),
            zxid: Some(zxid),
            time: Some((seconds * 1e6) as u64),
            ..Event::default()
        }
    }

    /// Lost sessions are counted by how their close ended, as `close_lost` words it.
    #[test]
    fn lost_sessions_are_counted_by_how_their_close_ended() {
        let lines: Vec<String> = [
            "   1.000s p3 session 0x1: closed after 0.100s, 1 tries (0 unanswered, ...)",
            "   1.000s p4 session 0x2: closed after 6.000s, 5 tries (3 unanswered, ...)",
            "   2.000s p5 session 0x3: refused as expired after 3.000s, 3 tries (...)",
            "   3.000s p6 session 0x4: gave up after 30.000s, 40 tries (40 unanswered, ...)",
        ]
        .map(String::from)
        .to_vec();
        let line = lost_line(&lines);
        let expected =
            "lost sessions 4 (closed 2, gave up 1, refused as expired 1; see reattach.txt)\n";
        assert_eq!(line, expected);
        assert_eq!(lost_line(&[]), "lost sessions 0\n");
    }

    /// Epochs are counted from ok and fail replies only (an invoke carries no zxid worth
    /// counting), each listed from its first reply, whatever order the events are in.
    #[test]
    fn leader_changes_are_the_epochs_seen_in_replies_less_one() {
        let events = vec![
            reply(Kind::Ok, (1 << 32) + 5, 0.5),
            reply(Kind::Fail, (3 << 32) + 1, 40.0),
            reply(Kind::Ok, (3 << 32) + 2, 36.25),
            reply(Kind::Ok, (1 << 32) + 9, 1.0),
            reply(Kind::Invoke, 7 << 32, 2.0),
            reply(Kind::Ok, 0, 3.0),
        ];
        let line = leader_line(&events);
        assert_eq!(line, "leader changes 1 (2 epochs in reply zxids: 1 from 0.5s, 3 from 36.2s)");
        assert_eq!(leader_line(&[]), "leader changes 0 (0 epochs in reply zxids: none)");
    }
}
