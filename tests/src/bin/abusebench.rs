//! `abusebench`: more load than a server can take, and a reconnect storm, on zkr and Apache
//! ZooKeeper in the same run (issue 13). Figures, not a test; `tests/abuse-bench.sh` builds the
//! release binaries, raises the fd limit and runs it.
//!
//! - overload: measures the sustainable setData rate (closed loop), then offers `--factor` times
//!   that rate open loop from flood connections for `--secs`, while `--probes` well-behaved
//!   sessions (6 s session timeout) each write once every 100 ms. Prints the flood's achieved
//!   rate, errors and latency, the probes' latency during and after the flood, and how many
//!   probe sessions expired (must be 0).
//! - storm: opens `--sessions` sessions, kills the server (-9), restarts it on the same data,
//!   and reconnects every session (resume with id and password) from 16 threads; prints how
//!   long until all were back and how many had expired (must be 0).
//! - storm to another member (`--mode storm-ensemble`, zkr only: the shared Apache tool runs
//!   standalone servers only): a three-member ensemble, `--sessions` sessions on one follower,
//!   that follower killed (-9), every session resumed on another member at once.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use zkr_core::proto::client::{Request, RequestHeader};
use zkr_core::proto::codec;
use zkr_tests::raw::{RawClient, RawError};
use zkr_tests::{ServerOptions, Target, TestServer};

#[derive(Parser, Debug)]
#[command(about = "Overload and reconnect storm, zkr vs Apache ZooKeeper")]
struct Args {
    /// overload, storm, both, or storm-ensemble (zkr only, not part of both).
    #[arg(long, default_value = "both")]
    mode: String,
    /// Which servers: zkr, apache or both.
    #[arg(long, default_value = "both")]
    target: String,
    /// Seconds of overload.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Offered load as a multiple of the sustainable rate.
    #[arg(long, default_value_t = 4.0)]
    factor: f64,
    /// Well-behaved sessions during the overload.
    #[arg(long, default_value_t = 8)]
    probes: usize,
    /// Flood connections.
    #[arg(long, default_value_t = 16)]
    floods: usize,
    /// Sessions in the reconnect storm.
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
}

const SET_OP: i32 = 5;
const PROBE_TIMEOUT_MS: i32 = 6000;
const STORM_TIMEOUT_MS: i32 = 30_000;

fn set_data_frame(xid: i32, path: &str) -> Vec<u8> {
    let req = Request::SetData { path: path.into(), data: Some(vec![7; 100]), version: -1 };
    codec::encode_request(&RequestHeader { xid, op: SET_OP }, &req)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Closed loop: `conns` connections with 16 setData in flight each for `secs`; ops/s.
fn sustainable_rate(addr: SocketAddr, conns: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut stream, _) = zkr_tests::wire::connect(addr).expect("connect");
                let path = format!("/flood{c}");
                for xid in 1..=16 {
                    stream.write_all(&set_data_frame(xid, &path)).expect("send");
                }
                let mut xid = 17;
                while started.elapsed() < Duration::from_secs(secs) {
                    let Some(_) = zkr_tests::wire::read_frame(&mut stream) else { return };
                    done.fetch_add(1, Ordering::Relaxed);
                    stream.write_all(&set_data_frame(xid, &path)).expect("send");
                    xid += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("closed-loop thread");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[derive(Default)]
struct FloodStats {
    sent: u64,
    replies: u64,
    errors: std::collections::BTreeMap<i32, u64>,
    closed: u64,
}

/// One open-loop flood connection offering `rate` setData/s until `stop`.
fn flood(
    addr: SocketAddr,
    c: usize,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> (FloodStats, Histogram<u64>) {
    let (mut stream, _) = zkr_tests::wire::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = stream.try_clone().expect("clone");
    let sent_at: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let queue = sent_at.clone();
    let read = std::thread::spawn(move || {
        let mut stats = FloodStats::default();
        let mut lat = histogram();
        while let Some(frame) = zkr_tests::wire::read_frame(&mut reader) {
            let Some(at) = queue.lock().expect("queue").pop_front() else { break };
            lat.record(at.elapsed().as_micros() as u64).ok();
            stats.replies += 1;
            let err = i32::from_be_bytes(frame[12..16].try_into().expect("header"));
            if err != 0 {
                *stats.errors.entry(err).or_default() += 1;
            }
        }
        (stats, lat)
    });
    let path = format!("/flood{c}");
    let started = Instant::now();
    let mut sent = 0u64;
    let mut closed = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            sent_at.lock().expect("queue").push_back(Instant::now());
            if stream.write_all(&set_data_frame(sent as i32 + 1, &path)).is_err() {
                closed = 1;
                break;
            }
            sent += 1;
        }
        if closed == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the replies already owed arrive, then stop the reader.
    std::thread::sleep(Duration::from_secs(2));
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let (mut stats, lat) = read.join().expect("reader");
    stats.sent = sent;
    stats.closed = closed;
    (stats, lat)
}

#[derive(Default)]
struct ProbeStats {
    during: Option<Histogram<u64>>,
    after: Option<Histogram<u64>>,
    errors: u64,
    reconnects: u64,
    expired: u64,
}

/// A well-behaved session writing every 100 ms; `phase` is 0 before, 1 during, 2 after the
/// flood, 3 to stop.
fn probe(addr: SocketAddr, i: usize, phase: Arc<AtomicU64>) -> ProbeStats {
    let mut client = RawClient::connect(addr, PROBE_TIMEOUT_MS).expect("probe session");
    let path = format!("/probe{i}");
    let _ = client.create(&path, b"", 0);
    let body = {
        let req = Request::SetData { path: path.clone(), data: Some(vec![1; 10]), version: -1 };
        codec::encode_request(&RequestHeader { xid: 0, op: SET_OP }, &req)[12..].to_vec()
    };
    let (mut during, mut after) = (histogram(), histogram());
    let mut stats = ProbeStats::default();
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p >= 3 {
            break;
        }
        let started = Instant::now();
        match client.call(SET_OP, &body) {
            Ok((0, _, _)) => {
                let h = if p == 2 { &mut after } else { &mut during };
                if p >= 1 {
                    h.record(started.elapsed().as_micros() as u64).ok();
                }
            }
            Ok((-112, _, _)) => {
                stats.expired += 1;
                break;
            }
            Ok(_) => stats.errors += 1,
            Err(_) => {
                stats.reconnects += 1;
                let s = client.session.clone();
                match RawClient::resume(addr, s.timeout_ms, s.id, &s.passwd, client.last_zxid) {
                    Ok(c) => client = c,
                    Err(RawError::Expired) => {
                        stats.expired += 1;
                        break;
                    }
                    Err(_) => stats.errors += 1,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stats.during = Some(during);
    stats.after = Some(after);
    stats
}

fn overload(target: Target, args: &Args) {
    let server = TestServer::start_target(target, ServerOptions::new().set("maxClientCnxns", "0"));
    let addr = server.addr();
    let mut setup = RawClient::connect(addr, 30_000).expect("setup session");
    for c in 0..args.floods.max(16) {
        let _ = setup.create(&format!("/flood{c}"), b"", 0);
    }
    let rate = sustainable_rate(addr, 16, 5);
    let offered = rate * args.factor;
    println!("{target:?}: sustainable setData rate {rate:.0}/s; offering {offered:.0}/s");
    let phase = Arc::new(AtomicU64::new(0));
    let probes: Vec<_> = (0..args.probes)
        .map(|i| {
            let phase = phase.clone();
            std::thread::spawn(move || probe(addr, i, phase))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    phase.store(1, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let per_conn = offered / args.floods as f64;
    let floods: Vec<_> = (0..args.floods)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || flood(addr, c, per_conn, stop))
        })
        .collect();
    let flood_started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.secs));
    stop.store(true, Ordering::Relaxed);
    let flood_secs = flood_started.elapsed().as_secs_f64();
    phase.store(2, Ordering::Relaxed);
    let mut total = FloodStats::default();
    let mut lat = histogram();
    for f in floods {
        let (s, l) = f.join().expect("flood");
        total.sent += s.sent;
        total.replies += s.replies;
        total.closed += s.closed;
        for (code, n) in s.errors {
            *total.errors.entry(code).or_default() += n;
        }
        lat.add(l).expect("merge");
    }
    std::thread::sleep(Duration::from_secs(5));
    phase.store(3, Ordering::Relaxed);
    let (mut during, mut after) = (histogram(), histogram());
    let (mut expired, mut errors, mut reconnects) = (0, 0, 0);
    for p in probes {
        let s = p.join().expect("probe");
        during.add(s.during.expect("during")).expect("merge");
        after.add(s.after.expect("after")).expect("merge");
        expired += s.expired;
        errors += s.errors;
        reconnects += s.reconnects;
    }
    println!(
        "{target:?}: flood sent {} ({:.0}/s), answered {} ({:.0}/s), errors {:?}, \
         connections closed {}; latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        total.sent,
        total.sent as f64 / flood_secs,
        total.replies,
        total.replies as f64 / flood_secs,
        total.errors,
        total.closed,
        ms(&lat, 0.5),
        ms(&lat, 0.99),
        lat.max() as f64 / 1000.0
    );
    println!(
        "{target:?}: probes ({} sessions, 6 s timeout): during p50 {:.1} ms p99 {:.1} ms max \
         {:.1} ms; after p50 {:.1} ms p99 {:.1} ms; errors {errors}, reconnects {reconnects}, \
         EXPIRED {expired}",
        args.probes,
        ms(&during, 0.5),
        ms(&during, 0.99),
        during.max() as f64 / 1000.0,
        ms(&after, 0.5),
        ms(&after, 0.99)
    );
}

/// Runs `f` over `items` split across 16 threads.
fn in_threads<T: Send + 'static, R: Send + 'static>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let f = Arc::new(f);
    let mut chunks: Vec<Vec<T>> = (0..16).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % 16].push(item);
    }
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let f = f.clone();
            std::thread::spawn(move || chunk.into_iter().map(|x| f(x)).collect::<Vec<R>>())
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
}

fn storm(target: Target, args: &Args) {
    let mut server =
        TestServer::start_target(target, ServerOptions::new().set("maxClientCnxns", "0"));
    let addr = server.addr();
    let started = Instant::now();
    let clients = in_threads((0..args.sessions).collect(), move |i| {
        RawClient::connect(addr, STORM_TIMEOUT_MS)
            .unwrap_or_else(|e| panic!("session {i}: {e:?} (fd limit?)"))
    });
    println!(
        "{target:?}: {} sessions opened in {:.1} s",
        clients.len(),
        started.elapsed().as_secs_f64()
    );
    let sessions: Vec<_> = clients.iter().map(|c| (c.session.clone(), c.last_zxid)).collect();
    server.kill9();
    drop(clients);
    let down = Instant::now();
    server.start_again();
    let restarted_in = down.elapsed();
    let back = Instant::now();
    let results = in_threads(sessions, move |(s, zxid)| {
        let started = Instant::now();
        loop {
            match RawClient::resume(addr, s.timeout_ms, s.id, &s.passwd, zxid) {
                Ok(c) => return Some(c),
                Err(RawError::Expired) => return None,
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("session {:#x} not back in 30 s: {e:?}", s.id),
            }
        }
    });
    let all_back = back.elapsed();
    let expired = results.iter().filter(|c| c.is_none()).count();
    println!(
        "{target:?}: restart (kill -9 to ruok) {:.1} s; {} sessions reconnected in {:.2} s \
         after it; EXPIRED {expired}",
        restarted_in.as_secs_f64(),
        results.len(),
        all_back.as_secs_f64()
    );
}

/// The storm moved to another member: sessions opened on a follower of a zkr ensemble, the
/// follower killed (-9), every session resumed on the other follower (the leader stays, so
/// this measures the session move alone, not an election).
fn storm_ensemble(args: &Args) {
    use zkr_tests::ensemble::{three_members, wait_for_roles};
    let root = std::env::temp_dir().join(format!("zkr-abusebench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut members = three_members(&root, |_, _| "maxClientCnxns=0\n".to_string());
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "start-up");
    let (from, to) = ((leader + 1) % 3, (leader + 2) % 3);
    let addr_of = |i: usize| -> SocketAddr {
        format!("127.0.0.1:{}", members[i].client_port).parse().expect("address")
    };
    let (from_addr, to_addr) = (addr_of(from), addr_of(to));
    let started = Instant::now();
    let clients = in_threads((0..args.sessions).collect(), move |i| {
        RawClient::connect(from_addr, STORM_TIMEOUT_MS)
            .unwrap_or_else(|e| panic!("session {i}: {e:?} (fd limit?)"))
    });
    let opened = started.elapsed();
    let sessions: Vec<_> = clients.iter().map(|c| (c.session.clone(), c.last_zxid)).collect();
    members[from].kill9();
    drop(clients);
    let back = Instant::now();
    let results = in_threads(sessions, move |(s, zxid)| {
        let started = Instant::now();
        loop {
            match RawClient::resume(to_addr, s.timeout_ms, s.id, &s.passwd, zxid) {
                Ok(c) => return Some(c),
                Err(RawError::Expired) => return None,
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("session {:#x} not back in 30 s: {e:?}", s.id),
            }
        }
    });
    let all_back = back.elapsed();
    let expired = results.iter().filter(|c| c.is_none()).count();
    let roles_kept = wait_for_roles(&members, 2, "after the storm") == leader;
    println!(
        "Zkr ensemble: {} sessions opened on a follower in {:.1} s; follower killed (-9); all \
         resumed on the other follower in {:.2} s; EXPIRED {expired}; leader unchanged: \
         {roles_kept}",
        results.len(),
        opened.as_secs_f64(),
        all_back.as_secs_f64()
    );
    drop(results);
    drop(members);
    let _ = std::fs::remove_dir_all(&root);
}

fn main() {
    let args = Args::parse();
    if args.mode == "storm-ensemble" {
        return storm_ensemble(&args);
    }
    let targets: Vec<Target> = match args.target.as_str() {
        "zkr" => vec![Target::Zkr],
        "apache" => vec![Target::Apache],
        _ => vec![Target::Zkr, Target::Apache],
    };
    for &target in &targets {
        if args.mode != "storm" {
            overload(target, &args);
        }
        if args.mode != "overload" {
            storm(target, &args);
        }
    }
}
