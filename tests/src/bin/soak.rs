//! `soak`: a real server under mixed load and abuse for a long time (issue 13). Not a test and
//! not in CI; `tests/soak.sh` builds the release binaries, raises the fd limit and runs it.
//!
//! Load, all at once, for `--secs`:
//! - `--workers` sessions run a paced mix (`--rate` ops/s in total): creates (persistent,
//!   ephemeral sequential), setData, getData/exists/getChildren with watches, multi, deletes, on
//!   a bounded key space (the tree does not grow), and writes to one shared node whose watches
//!   every worker keeps setting;
//! - session churn: sessions that create ephemerals and set watches, then close, or vanish and
//!   expire (4 s timeout);
//! - abuse: garbage handshakes, bad frame lengths, half handshakes left hanging, clients that
//!   pipeline reads and never read the replies, connections opened and closed at once.
//!
//! Every `--interval` it prints the server's RSS and open fds, its `mntr` connection and watch
//! counts, the number of ops, their latency percentiles, sessions churned and abusive
//! connections made. At the end it fails (exit 1) if, compared with the first interval after
//! the warm-up, RSS grew by more than `--rss-growth-mib`, fds by more than `--fd-growth`, or the
//! last interval's p99 is over `--p99-factor` times the first's (plus 20 ms), or if any worker
//! saw an unexpected error.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use zkr_tests::raw::{MultiOp, RawClient};
use zkr_tests::{ServerOptions, Target, TestServer};

#[derive(Parser, Debug)]
#[command(about = "Mixed load plus abuse against a real server; RSS, fds and latency over time")]
struct Args {
    /// Total run time, seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// Seconds between reports.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Seconds of warm-up before the baseline interval (counted in `--secs`).
    #[arg(long, default_value_t = 60)]
    warmup: u64,
    /// zkr or apache.
    #[arg(long, default_value = "zkr")]
    target: String,
    /// Load sessions.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Total ops/s offered by the load sessions.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Allowed RSS growth over the baseline, MiB.
    #[arg(long, default_value_t = 48)]
    rss_growth_mib: u64,
    /// Allowed growth of open fds over the baseline.
    #[arg(long, default_value_t = 64)]
    fd_growth: u64,
    /// Allowed ratio of the last interval's p99 to the baseline's.
    #[arg(long, default_value_t = 3.0)]
    p99_factor: f64,
}

/// Counters and latencies shared by the load threads; the reporter swaps the histograms.
struct Shared {
    stop: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    ops: AtomicU64,
    errors: AtomicU64,
    churned: AtomicU64,
    abusive: AtomicU64,
    events: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 2).expect("histogram")
}

fn timed<T>(shared: &Shared, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let us = started.elapsed().as_micros().max(1) as u64;
    shared.latency.lock().expect("latency lock").saturating_record(us);
    shared.ops.fetch_add(1, Ordering::Relaxed);
    out
}

/// Counts a reply code that the mix does not expect (0, NoNode, NodeExists, NotEmpty are).
fn expect_ok(shared: &Shared, what: &str, err: i32) {
    if ![0, -101, -110, -111].contains(&err) {
        eprintln!("soak: {what}: unexpected error {err}");
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn code<T>(r: Result<T, i32>) -> i32 {
    r.err().unwrap_or(0)
}

/// One load session: op `i` of worker `w` on key `i % 50`, paced to `per_worker` ops/s.
fn worker(addr: SocketAddr, w: usize, per_worker: f64, shared: Arc<Shared>) {
    let mut c = RawClient::connect(addr, 10_000).expect("worker session");
    let dir = format!("/soak/w{w}");
    expect_ok(&shared, "mkdir", code(c.create(&dir, b"", 0)));
    let pause = Duration::from_secs_f64(1.0 / per_worker);
    let started = Instant::now();
    let mut i: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let key = format!("{dir}/k{}", i % 50);
        let data = vec![b'x'; 100 + (i as usize * 37) % 900];
        let err = timed(&shared, || match i % 10 {
            0 => code(c.create(&key, &data, 0)),
            1 => code(c.set_data(&key, &data, -1)),
            2 => code(c.get_data(&key, true)),
            3 => code(c.get_children(&dir, true)),
            4 => code(c.exists(&key, true)),
            5 => {
                let tmp = format!("{dir}/m{}", i % 7);
                let ops = [
                    MultiOp::Create { path: &tmp, data: b"m", flags: 0 },
                    MultiOp::Delete { path: &tmp, version: -1 },
                ];
                c.multi(&ops).0
            }
            6 => code(c.delete(&key, -1)),
            7 => match c.create(&format!("{dir}/e-"), b"e", 3) {
                Ok(path) => code(c.delete(&path, -1)),
                Err(err) => err,
            },
            8 => code(c.set_data("/soak/shared", &data, -1)),
            _ => code(c.get_data("/soak/shared", true)),
        });
        expect_ok(&shared, "load op", err);
        shared.events.fetch_add(c.events.len() as u64, Ordering::Relaxed);
        c.events.clear();
        i += 1;
        let due = started + pause.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    c.close_session();
}

/// Sessions that come and go: ephemerals and watches, then a close or an expiry.
fn churn(addr: SocketAddr, shared: Arc<Shared>) {
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut c = RawClient::connect(addr, 4000).expect("churn session");
        for e in 0..3 {
            let path = format!("/soak/churn/s{n}-{e}");
            expect_ok(&shared, "churn ephemeral", code(c.create(&path, b"e", 1)));
        }
        expect_ok(&shared, "churn exists", code(c.exists("/soak/shared", true)));
        expect_ok(&shared, "churn list", code(c.get_children("/soak/churn", true)));
        if n.is_multiple_of(2) {
            c.close_session();
        } else {
            c.abandon();
        }
        shared.churned.fetch_add(1, Ordering::Relaxed);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads until the server closes or `timeout` passes.
fn drain_until_closed(stream: &mut TcpStream, timeout: Duration) {
    let _ = stream.set_read_timeout(Some(timeout));
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn get_data_frame(xid: i32, path: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&xid.to_be_bytes());
    body.extend_from_slice(&4i32.to_be_bytes());
    body.extend_from_slice(&(path.len() as i32).to_be_bytes());
    body.extend_from_slice(path.as_bytes());
    body.push(0);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// One abusive connection of kind `n % 5`; half handshakes and non-readers are kept open in
/// `held` (at most 16, oldest closed first) until the server closes them or we drop them.
fn abuse_once(addr: SocketAddr, n: u64, held: &mut VecDeque<TcpStream>) {
    let Ok(mut s) = TcpStream::connect(addr) else { return };
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match n % 5 {
        0 => {
            let garbage: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut frame = 44i32.to_be_bytes().to_vec();
            frame.extend_from_slice(&garbage[..44]);
            let _ = s.write_all(&frame);
            drain_until_closed(&mut s, Duration::from_secs(2));
        }
        1 => {
            let _ = s.write_all(&[0x7f, 0xff, 0xff, 0xff]);
            drain_until_closed(&mut s, Duration::from_secs(2));
        }
        2 => {
            let _ = s.write_all(&[0, 0, 0, 44, 0, 0, 0, 0, 0]);
            held.push_back(s);
        }
        3 => {
            if let Ok((mut s, _)) = zkr_tests::wire::connect(addr) {
                let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                for xid in 1..=200 {
                    if s.write_all(&get_data_frame(xid, "/soak/big")).is_err() {
                        break;
                    }
                }
                held.push_back(s);
            }
        }
        _ => drop(s),
    }
    while held.len() > 16 {
        held.pop_front();
    }
}

fn abuse(addr: SocketAddr, shared: Arc<Shared>) {
    let mut held = VecDeque::new();
    let mut n = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        abuse_once(addr, n, &mut held);
        shared.abusive.fetch_add(1, Ordering::Relaxed);
        n += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

fn mntr_value(server: &TestServer, key: &str) -> String {
    let text = server.four_letter("mntr");
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(key));
    line.and_then(|l| l.split_whitespace().nth(1)).unwrap_or("-").to_string()
}

/// One report line's figures.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rss_mib: f64,
    fds: u64,
    p99_ms: f64,
}

fn report(server: &TestServer, pid: u32, shared: &Shared, t: u64, ops_before: u64) -> Sample {
    let h = std::mem::replace(&mut *shared.latency.lock().expect("latency lock"), histogram());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let sample = Sample { rss_mib: rss_mib(pid), fds: fds(pid), p99_ms: ms(0.99) };
    let ops = shared.ops.load(Ordering::Relaxed);
    println!(
        "{t:>6}s {:>8.1} {:>5} {:>6} {:>8} {:>8} {:>7.2} {:>7.2} {:>8.2} {:>8.2} {:>8} {:>8} {:>6}",
        sample.rss_mib,
        sample.fds,
        mntr_value(server, "zk_num_alive_connections"),
        mntr_value(server, "zk_watch_count"),
        ops - ops_before,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        shared.churned.load(Ordering::Relaxed),
        shared.abusive.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
    );
    sample
}

fn start(args: &Args) -> TestServer {
    let target = match args.target.as_str() {
        "zkr" => Target::Zkr,
        "apache" => Target::Apache,
        other => panic!("--target {other}: expected zkr or apache"),
    };
    TestServer::start_target(target, ServerOptions::new())
}

fn main() {
    let args = Args::parse();
    assert!(args.interval > 0 && args.secs > args.warmup, "--secs must exceed --warmup");
    let server = start(&args);
    let pid = server.pid().expect("server pid");
    let addr = server.addr();
    let mut setup = RawClient::connect(addr, 30_000).expect("setup session");
    for path in ["/soak", "/soak/churn", "/soak/shared"] {
        setup.create(path, b"", 0).expect("setup node");
    }
    setup.create("/soak/big", &vec![7u8; 10_000], 0).expect("setup node");
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        latency: Mutex::new(histogram()),
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        churned: AtomicU64::new(0),
        abusive: AtomicU64::new(0),
        events: AtomicU64::new(0),
    });
    let per_worker = args.rate as f64 / args.workers as f64;
    let mut threads: Vec<_> = (0..args.workers)
        .map(|w| {
            let shared = shared.clone();
            std::thread::spawn(move || worker(addr, w, per_worker, shared))
        })
        .collect();
    let (s1, s2) = (shared.clone(), shared.clone());
    threads.push(std::thread::spawn(move || churn(addr, s1)));
    threads.push(std::thread::spawn(move || abuse(addr, s2)));

    println!(
        "soak: {:?} pid {pid}, {} s, {} workers at {} ops/s, churn, abuse; every {} s",
        server.target(),
        args.secs,
        args.workers,
        args.rate,
        args.interval
    );
    println!(
        "{:>7} {:>8} {:>5} {:>6} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "t",
        "rss MiB",
        "fds",
        "conns",
        "watches",
        "ops",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "churned",
        "abusive",
        "errors"
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ops_before = 0;
    let mut t = 0;
    while t < args.secs {
        t = (t + args.interval).min(args.secs);
        let due = started + Duration::from_secs(t);
        while Instant::now() < due {
            assert!(threads.iter().all(|h| !h.is_finished()), "a load thread stopped early");
            std::thread::sleep(Duration::from_millis(200));
        }
        let sample = report(&server, pid, &shared, t, ops_before);
        ops_before = shared.ops.load(Ordering::Relaxed);
        if t > args.warmup {
            samples.push(sample);
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for h in threads {
        h.join().expect("a load thread panicked");
    }
    println!(
        "watch events received by the load sessions: {}",
        shared.events.load(Ordering::Relaxed)
    );
    std::process::exit(verdict(&args, &samples, shared.errors.load(Ordering::Relaxed)));
}

/// Compares the last sample after the warm-up with the first; prints each bound and returns
/// the exit code.
fn verdict(args: &Args, samples: &[Sample], errors: u64) -> i32 {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("soak: no interval after the warm-up; nothing to compare");
        return 1;
    };
    let peak = samples.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
    let rss_bound = first.rss_mib + args.rss_growth_mib as f64;
    let fd_bound = first.fds + args.fd_growth;
    let p99_bound = first.p99_ms * args.p99_factor + 20.0;
    let checks = [
        (format!("RSS peak {peak:.1} MiB <= {rss_bound:.1}"), peak <= rss_bound),
        (format!("fds {} <= {fd_bound}", last.fds), last.fds <= fd_bound),
        (format!("p99 {:.2} ms <= {p99_bound:.2}", last.p99_ms), last.p99_ms <= p99_bound),
        (format!("unexpected errors {errors} == 0"), errors == 0),
    ];
    let mut failed = 0;
    for (what, ok) in &checks {
        println!("soak: {} {what}", if *ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    }
    i32::from(failed > 0)
}
