//! `connbench`: what an idle client connection costs a server. Opens `--conns` connections with
//! a completed handshake (a session each) to zkr and to Apache ZooKeeper, started side by side
//! with `maxClientCnxns=0`, and prints each server's RSS growth per connection and the ratio.
//! `tests/conn-bench.sh` builds the release binaries, raises the fd limit and runs it.
//!
//! With `--watches N`, one more session then sets N exists-watches on distinct absent paths
//! (`/absent/NNNNNNNN`) on each server, and the RSS growth per watch is printed too: what
//! `zkr.maxWatchesPerSession` bounds (docs/RELIABILITY.md).
//!
//! Figures, not a test: RSS moves with the allocator and (for the JVM) the garbage collector,
//! so a warm-up batch is opened and closed before the baseline is read.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Parser;
use zkr_tests::{ServerOptions, Target, TestServer};

#[derive(Parser, Debug)]
#[command(about = "RSS per idle client connection, zkr vs Apache ZooKeeper")]
struct Args {
    /// Idle connections to open on each server.
    #[arg(long, default_value_t = 3000)]
    conns: usize,
    /// Connections opened and closed before the baseline is read.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Which servers: zkr, apache or both.
    #[arg(long, default_value = "both")]
    target: String,
    /// Exists-watches to set from one session after the connections (0 = skip).
    #[arg(long, default_value_t = 0)]
    watches: usize,
}

/// Sets `n` exists-watches on absent paths from one session, pipelined 500 at a time; returns
/// the RSS growth per watch in bytes.
fn watch_cost(server: &TestServer, n: usize) -> f64 {
    use zkr_core::proto::client::{Request, RequestHeader};
    let pid = server.pid().expect("the server runs");
    let (mut stream, _) = zkr_tests::wire::connect(server.addr()).expect("watch session");
    let before = rss_kib(pid);
    let started = Instant::now();
    for batch in 0..n.div_ceil(500) {
        let mut bytes = Vec::new();
        let ids = batch * 500..((batch + 1) * 500).min(n);
        for i in ids.clone() {
            let req = Request::Exists { path: format!("/absent/{i:08}"), watch: true };
            let header = RequestHeader { xid: i as i32 + 1, op: 3 };
            bytes.extend(zkr_core::proto::codec::encode_request(&header, &req));
        }
        stream.write_all(&bytes).expect("send exists");
        for _ in ids {
            let reply = zkr_tests::wire::read_frame(&mut stream).expect("exists reply");
            let err = i32::from_be_bytes(reply[12..16].try_into().expect("header"));
            assert_eq!(err, -101, "exists of an absent path sets a watch and says NoNode");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(pid);
    let per_watch = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    println!(
        "{:?}: {n} watches set in {:.1} s; RSS {before} -> {after} KiB: {per_watch:.0} bytes each",
        server.target(),
        started.elapsed().as_secs_f64()
    );
    per_watch
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

fn open(server: &TestServer, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| match zkr_tests::wire::connect(server.addr()) {
            Ok((stream, _)) => stream,
            Err(e) => panic!("connection {i} of {n}: {e} (fd limit? maxClientCnxns?)"),
        })
        .collect()
}

/// A ping on every connection keeps the sessions alive; the replies stay unread in the
/// client's socket buffers, which cost the server nothing.
fn ping_all(conns: &mut [TcpStream]) {
    let ping = zkr_core::proto::frame::frame(&[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);
    for stream in conns {
        stream.write_all(&ping).expect("ping");
    }
}

/// Returns (baseline KiB, with connections KiB, bytes per watch).
fn measure(target: Target, args: &Args) -> (u64, u64, f64) {
    let options = ServerOptions::new().set("maxClientCnxns", "0");
    let server = TestServer::start_target(target, options);
    let pid = server.pid().expect("the server runs");
    drop(open(&server, args.warmup));
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut conns = open(&server, args.conns);
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    ping_all(&mut conns);
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(pid);
    println!(
        "{target:?}: {} connections opened in {:.1} s; RSS {} -> {} KiB",
        args.conns,
        opened_in.as_secs_f64(),
        before,
        after
    );
    let per_watch = if args.watches > 0 { watch_cost(&server, args.watches) } else { 0.0 };
    drop(conns);
    drop(server);
    (before, after, per_watch)
}

fn main() {
    let args = Args::parse();
    let targets = match args.target.as_str() {
        "zkr" => vec![Target::Zkr],
        "apache" => vec![Target::Apache],
        _ => vec![Target::Zkr, Target::Apache],
    };
    let mut per_conn = Vec::new();
    let mut per_watch = Vec::new();
    for target in targets {
        let (before, after, watch) = measure(target, &args);
        per_watch.push(watch);
        let bytes = after.saturating_sub(before) as f64 * 1024.0 / args.conns as f64;
        println!("{target:?}: {bytes:.0} bytes of RSS per idle connection");
        per_conn.push(bytes);
    }
    if let [zkr, apache] = per_conn[..] {
        println!("ratio zkr/apache: {:.2}", zkr / apache.max(1.0));
    }
    if let [zkr, apache] = per_watch[..]
        && args.watches > 0
    {
        println!("per watch, ratio zkr/apache: {:.2}", zkr / apache.max(1.0));
    }
}
