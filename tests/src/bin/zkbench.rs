//! `zkbench`: a load generator speaking the ZooKeeper wire protocol (through zkr-core's codec)
//! to any server, printing throughput and latency percentiles. `tests/bench.sh` runs it against
//! zkr and Apache ZooKeeper in the same run and prints the ratios.
//!
//! Each client is a thread with its own session and a window of pipelined requests, like an
//! asynchronous ZooKeeper client. Workloads: `create` (sequential-free creates of new nodes),
//! `seqcreate` (PERSISTENT_SEQUENTIAL creates of `/bench/n-`: every node under one parent, as
//! issue 16's million-znode load), `set` (setData on a few hot nodes), `get` (getData), `mixed`
//! (90% get, 10% set).
//!
//! `--wait-ready MS` instead polls until a new session answers `exists /` (restart-to-serving
//! time, measured by `tests/bigtree-bench.sh`), or `exists PATH` finds the node with
//! `--probe-path PATH`; `--create-path PATH` creates one node and exits (with `--probe-path` on
//! a restarted follower: a read that sees the last write, `tests/rejoin-vs-zk-bench.sh`).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use clap::Parser;
use hdrhistogram::Histogram;
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;
use zkr_core::types::Acl;

#[derive(Parser, Debug, Clone)]
#[command(about = "ZooKeeper wire-protocol load generator")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:2181")]
    addr: SocketAddr,
    /// More servers (comma-separated, e.g. an ensemble's other members): client `c` uses the
    /// `c % n`th of `addr` and these, so the load spreads over the ensemble.
    #[arg(long, value_delimiter = ',')]
    also: Vec<SocketAddr>,
    /// Workload: create, set, get or mixed.
    #[arg(long, default_value = "mixed")]
    workload: String,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests in flight per client.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 5000)]
    ops: usize,
    /// Bytes of data per node.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// A label printed with the results.
    #[arg(long, default_value = "server")]
    label: String,
    /// Only wait (up to this many ms) until the server opens a session and answers `exists /`,
    /// then print the time waited and exit.
    #[arg(long)]
    wait_ready: Option<u64>,
    /// With `--wait-ready`: the node whose `exists` must find it (a read that sees a write).
    #[arg(long, default_value = "/")]
    probe_path: String,
    /// Only create this node (`--size` bytes of data), then exit.
    #[arg(long)]
    create_path: Option<String>,
    /// Also print, to stderr, when replies slower than this many ms arrived (wall clock, grouped
    /// by 100 ms), to line them up with the server's log (issue 16: where long replies come from).
    #[arg(long)]
    slow_ms: Option<u64>,
}

/// A reply slower than `--slow-ms`: when it arrived (ms since the Unix epoch) and its latency.
type SlowReply = (u128, u64);

fn unix_ms() -> u128 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis()).unwrap_or(0)
}

/// Prints slow replies grouped by the 100 ms window they arrived in.
fn print_slow(mut slow: Vec<SlowReply>) {
    slow.sort_unstable();
    let mut groups: Vec<(u128, usize, u64)> = Vec::new();
    for (at, us) in slow {
        match groups.last_mut() {
            Some((window, n, max)) if *window == at / 100 => {
                *n += 1;
                *max = (*max).max(us);
            }
            _ => groups.push((at / 100, 1, us)),
        }
    }
    for (window, n, max_us) in groups {
        let ms = window * 100;
        let (secs, milli) = ((ms / 1000) % 86_400, ms % 1000);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        eprintln!(
            "slow replies at {h:02}:{m:02}:{s:02}.{milli:03} UTC: {n}, max {} ms",
            max_us / 1000
        );
    }
}

fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    zkr_tests::wire::read_frame(stream).ok_or_else(|| std::io::Error::other("connection closed"))
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    zkr_tests::wire::connect(addr).map(|(stream, _)| stream)
}

fn request(args: &Args, client: usize, i: usize, data: &[u8]) -> Request {
    let hot = format!("/bench/hot{}", i % 8);
    let set = Request::SetData { path: hot.clone(), data: Some(data.to_vec()), version: -1 };
    match args.workload.as_str() {
        "create" => Request::Create {
            op: OpCode::Create,
            // Unique per run too: a warm-up run before the measured one creates its own.
            path: format!("/bench/c{}-{client}-{i}", std::process::id()),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
        "seqcreate" => Request::Create {
            op: OpCode::Create,
            path: "/bench/n-".to_string(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: 2,
            ttl: -1,
        },
        "set" => set,
        "get" => Request::GetData { path: hot, watch: false },
        _ if i.is_multiple_of(10) => set,
        _ => Request::GetData { path: hot, watch: false },
    }
}

/// Runs one client's requests with a pipelining window; returns latencies in µs.
///
/// Cheap on purpose (issue 14): the load generator shares the two cores with the server, so
/// every µs it spends per op is taken from the server under test. Replies are read in chunks
/// (one `read` for all that arrived, not two per reply), and the window is refilled once per
/// chunk with one `write` carrying every new request, as an asynchronous client's send queue
/// does. Both servers get the same load; at most `window` requests are in flight.
fn run_client(
    args: &Args,
    client: usize,
    start: &Barrier,
) -> std::io::Result<(Histogram<u64>, Vec<SlowReply>)> {
    let slow_us = args.slow_ms.map_or(u64::MAX, |ms| ms * 1000);
    let mut slow = Vec::new();
    let servers: Vec<SocketAddr> = std::iter::once(args.addr).chain(args.also.clone()).collect();
    let mut stream = connect(servers[client % servers.len()])?;
    let data = vec![b'x'; args.size];
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut sent_at = std::collections::VecDeque::with_capacity(args.window);
    let (mut sent, mut done) = (0, 0);
    let mut outgoing = Vec::new();
    let mut incoming = Replies::default();
    start.wait();
    while done < args.ops {
        outgoing.clear();
        let mut new = 0;
        while sent < args.ops && sent_at.len() + new < args.window {
            let req = request(args, client, sent, &data);
            let header = codec::request_header(sent as i32 + 1, &req);
            outgoing.extend_from_slice(&codec::encode_request(&header, &req));
            sent += 1;
            new += 1;
        }
        if new > 0 {
            let now = Instant::now();
            sent_at.extend(std::iter::repeat_n(now, new));
            stream.write_all(&outgoing)?;
        }
        incoming.fill(&mut stream)?;
        // Replies taken from one read arrived together: one clock read for all of them.
        let arrived = Instant::now();
        while let Some(payload) = incoming.next_frame() {
            let reply = codec::decode_reply_header(&mut Reader::new(payload)).expect("reply");
            if reply.xid < 0 {
                continue;
            }
            assert_eq!(reply.err, 0, "request failed with {}", reply.err);
            let t = sent_at.pop_front().expect("in flight");
            let us = arrived.duration_since(t).as_micros() as u64;
            hist.record(us).expect("record");
            if us >= slow_us {
                slow.push((unix_ms(), us));
            }
            done += 1;
        }
    }
    Ok((hist, slow))
}

/// Bytes read from a client's socket and not yet taken as frames.
struct Replies {
    /// Allocated (and zeroed) once; `buf[at..end]` is unread.
    buf: Vec<u8>,
    /// Where the next frame's length prefix starts.
    at: usize,
    end: usize,
}

impl Default for Replies {
    fn default() -> Replies {
        Replies { buf: vec![0; 64 * 1024], at: 0, end: 0 }
    }
}

impl Replies {
    /// One blocking `read` of whatever the socket holds (at least one byte).
    fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        use std::io::Read;
        // Keep the unread part at the front; grow only for a frame bigger than the buffer.
        self.buf.copy_within(self.at..self.end, 0);
        (self.end, self.at) = (self.end - self.at, 0);
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        self.end += n;
        Ok(())
    }

    /// The next complete frame's payload, if one is buffered.
    fn next_frame(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.at..self.end];
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().expect("4 bytes")) as usize;
        let payload = rest.get(4..4 + len)?;
        self.at += 4 + len;
        Some(payload)
    }
}

fn setup(args: &Args) -> std::io::Result<()> {
    let mut stream = connect(args.addr)?;
    let mut xid = 0;
    let mut call = |req: Request| -> std::io::Result<()> {
        xid += 1;
        stream.write_all(&codec::encode_request(&codec::request_header(xid, &req), &req))?;
        read_frame(&mut stream).map(|_| ())
    };
    let data = Some(vec![b'x'; args.size]);
    let create = |path: String| Request::Create {
        op: OpCode::Create,
        path,
        data: data.clone(),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    };
    call(create("/bench".into()))?;
    for i in 0..8 {
        call(create(format!("/bench/hot{i}")))?;
    }
    Ok(())
}

/// Creates `path` (persistent, `--size` bytes) in a session of its own; Err unless it was created.
fn create_one(args: &Args, path: &str) -> std::io::Result<()> {
    let mut stream = connect(args.addr)?;
    let req = Request::Create {
        op: OpCode::Create,
        path: path.to_string(),
        data: Some(vec![b'x'; args.size]),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    };
    stream.write_all(&codec::encode_request(&codec::request_header(1, &req), &req))?;
    let payload = read_frame(&mut stream)?;
    let reply = codec::decode_reply_header(&mut Reader::new(&payload))
        .map_err(|e| std::io::Error::other(format!("bad reply: {e}")))?;
    if reply.err != 0 {
        return Err(std::io::Error::other(format!("create {path} failed with {}", reply.err)));
    }
    Ok(())
}

/// One new session's `exists path` round trip; Ok once the server serves requests and the
/// node is there.
fn probe(addr: SocketAddr, path: &str) -> std::io::Result<()> {
    let timeout = std::time::Duration::from_secs(5);
    let (mut stream, _) = zkr_tests::wire::connect_within(addr, timeout)?;
    let req = Request::Exists { path: path.to_string(), watch: false };
    stream.write_all(&codec::encode_request(&codec::request_header(1, &req), &req))?;
    let payload = read_frame(&mut stream)?;
    let reply = codec::decode_reply_header(&mut Reader::new(&payload))
        .map_err(|e| std::io::Error::other(format!("bad reply: {e}")))?;
    if reply.err != 0 {
        return Err(std::io::Error::other(format!("exists {path} failed with {}", reply.err)));
    }
    Ok(())
}

fn wait_ready(addr: SocketAddr, path: &str, limit_ms: u64) {
    let began = Instant::now();
    while probe(addr, path).is_err() {
        if began.elapsed().as_millis() as u64 > limit_ms {
            eprintln!("zkbench: {addr} not serving after {limit_ms} ms");
            std::process::exit(1);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    println!("ready_ms={}", began.elapsed().as_millis());
}

fn main() {
    let args = Args::parse();
    if let Some(limit_ms) = args.wait_ready {
        wait_ready(args.addr, &args.probe_path, limit_ms);
        return;
    }
    if let Some(path) = &args.create_path {
        create_one(&args, path).expect("create --create-path");
        return;
    }
    setup(&args).expect("setup: create /bench and its hot nodes");
    if !args.also.is_empty() {
        // Let the other members apply the setup's creates before their clients read them.
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let start = Arc::new(Barrier::new(args.clients + 1));
    let threads: Vec<_> = (0..args.clients)
        .map(|c| {
            let (args, start) = (args.clone(), start.clone());
            std::thread::spawn(move || run_client(&args, c, &start))
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut total = Histogram::<u64>::new(3).expect("histogram");
    let mut slow = Vec::new();
    for t in threads {
        let (hist, slow_replies) = t.join().expect("client thread").expect("client I/O");
        total.add(hist).expect("merge");
        slow.extend(slow_replies);
    }
    let secs = began.elapsed().as_secs_f64();
    let ops = total.len();
    println!(
        "{:<8} {:<7} clients={:<3} window={:<3} ops={:<7} {:>9.0} ops/s  p50={:>6}µs \
         p99={:>7}µs p999={:>7}µs max={:>8}µs",
        args.label,
        args.workload,
        args.clients,
        args.window,
        ops,
        ops as f64 / secs,
        total.value_at_quantile(0.5),
        total.value_at_quantile(0.99),
        total.value_at_quantile(0.999),
        total.max(),
    );
    print_slow(slow);
}
