//! Four-letter words (ruok, srvr, stat, mntr, conf, cons, envi, wchs, wchc, wchp, dump, isro, ...),
//! answered as plain text in ZooKeeper's formats. Everything here is formatting over a read-only
//! view of the node and the shell's counters; nothing changes state except the `*rst` resets,
//! which the driver applies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use zkr_core::Node;
use zkr_core::proto::client::OpCode;
use zkr_core::types::ConnId;

/// The version string we report: the ZooKeeper protocol level we follow, then our own version.
pub const VERSION: &str = concat!("3.9.3-zkr-", env!("CARGO_PKG_VERSION"));

/// `ZooTrace`'s default trace mask (CLIENT_REQUEST | SERVER_PACKET | SESSION | WARNING), which
/// `gtmk` prints.
pub const DEFAULT_TRACE_MASK: u64 = 306;

/// Server-wide counters kept by the shell.
#[derive(Clone, Debug)]
pub struct ServerStats {
    /// When the server started serving.
    pub started: Instant,
    /// Frames received from clients.
    pub packets_received: u64,
    /// Frames sent to clients.
    pub packets_sent: u64,
    /// Request latency bookkeeping.
    pub latency: Latency,
    /// Bytes of the last reply.
    pub last_response_size: usize,
    /// Smallest reply, bytes.
    pub min_response_size: usize,
    /// Largest reply, bytes.
    pub max_response_size: usize,
    /// Request latency in seconds by opcode, as Prometheus histograms (see `metrics`); a clone
    /// shares the counts, so a scrape reads them without copying.
    pub op_latency: OpLatency,
}

/// Latency histograms labelled `op="getData"` etc.
pub type OpLatency = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

/// A latency histogram in seconds ([`ServerStats::op_latency`], log syncs): 100 µs to about
/// 13 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl ServerStats {
    /// Records one reply to a request of raw opcode `op` that arrived `d` ago.
    pub fn record_latency(&mut self, op: i32, d: Duration) {
        self.latency.record(d);
        let name = match OpCode::from_i32(op) {
            Some(code) => {
                let debug = format!("{code:?}");
                let mut chars = debug.chars();
                let first = chars.next().map(|c| c.to_ascii_lowercase());
                first.into_iter().chain(chars).collect()
            }
            None => "unknown".to_string(),
        };
        let label = vec![("op".to_string(), name)];
        self.op_latency.get_or_create(&label).observe(d.as_secs_f64());
    }
}

impl ServerStats {
    /// Fresh counters.
    pub fn new() -> ServerStats {
        ServerStats {
            started: Instant::now(),
            packets_received: 0,
            packets_sent: 0,
            latency: Latency::default(),
            last_response_size: 0,
            min_response_size: usize::MAX,
            max_response_size: 0,
            op_latency: Family::new_with_constructor(latency_histogram),
        }
    }

    /// `srst`.
    pub fn reset(&mut self) {
        let started = self.started;
        *self = ServerStats::new();
        self.started = started;
    }
}

impl Default for ServerStats {
    fn default() -> ServerStats {
        ServerStats::new()
    }
}

/// Min/avg/max request latency in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Smallest, ms.
    pub min_ms: u64,
    /// Largest, ms.
    pub max_ms: u64,
    /// Sum, ms.
    pub total_ms: u64,
    /// Samples.
    pub count: u64,
}

impl Latency {
    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let ms = d.as_millis() as u64;
        self.min_ms = if self.count == 0 { ms } else { self.min_ms.min(ms) };
        self.max_ms = self.max_ms.max(ms);
        self.total_ms += ms;
        self.count += 1;
    }

    /// Average, ms.
    pub fn avg(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total_ms as f64 / self.count as f64 }
    }
}

/// Per-connection counters kept by the shell.
#[derive(Clone, Debug)]
pub struct ConnStats {
    /// Peer address.
    pub remote: SocketAddr,
    /// Frames received.
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// When the connection was accepted (ms since epoch).
    pub established_ms: u128,
    /// Latency of this connection's requests.
    pub latency: Latency,
    /// Requests received but not yet answered: (xid, raw opcode, arrival).
    pub in_flight: std::collections::VecDeque<(i32, i32, Instant)>,
    /// The last answered request, for `cons` (`lop`, `lcxid`, `lzxid`, `lresp`, `llat`).
    pub last: Option<LastReply>,
}

/// The last request a connection had answered, as ZooKeeper's `cons` prints it.
#[derive(Clone, Copy, Debug)]
pub struct LastReply {
    /// The request's raw opcode.
    pub op: i32,
    /// Its xid (`lcxid` is printed only when not negative).
    pub cxid: i32,
    /// The zxid of its reply header.
    pub zxid: i64,
    /// When it was answered, ms since the server started (ZooKeeper's elapsed-time clock).
    pub responded_ms: u128,
    /// How long it took, ms.
    pub latency_ms: u128,
}

/// `FinalRequestProcessor`'s four-letter name of a request (`lastOp`), by raw opcode.
pub fn last_op_name(op: i32) -> &'static str {
    match op {
        11 => "PING",
        -10 => "SESS",
        14 => "MULT",
        22 => "MLTR",
        1 | 15 | 19 | 21 => "CREA",
        2 | 20 => "DELE",
        5 => "SETD",
        16 => "RECO",
        7 => "SETA",
        -11 => "CLOS",
        9 => "SYNC",
        13 => "CHEC",
        3 => "EXIS",
        4 => "GETD",
        101 => "SETW",
        105 => "STW2",
        106 => "ADDW",
        6 => "GETA",
        8 | 12 => "GETC",
        104 => "GETACN",
        17 => "CHKW",
        18 => "REMW",
        107 => "HOMI",
        103 => "GETE",
        _ => "NA",
    }
}

/// What a four-letter word may look at.
pub struct AdminView<'a> {
    /// The node.
    pub node: &'a Node,
    /// Server counters.
    pub stats: &'a ServerStats,
    /// Connection counters, by id.
    pub conns: &'a BTreeMap<ConnId, ConnStats>,
    /// `key=value` lines for `conf`.
    pub conf_lines: &'a [(String, String)],
    /// Whether the command is whitelisted.
    pub allowed: &'a dyn Fn(&str) -> bool,
    /// Data directory and log directory, for `dirs`.
    pub dirs: (&'a std::path::Path, &'a std::path::Path),
}

/// Answers one four-letter word.
pub fn answer(cmd: [u8; 4], view: &AdminView<'_>) -> String {
    if cmd == [0xff, 0xf4, 0xff, 0xfd] {
        return String::new();
    }
    let name = String::from_utf8_lossy(&cmd).to_string();
    if !(view.allowed)(&name) {
        return format!("{name} is not executed because it is not in the whitelist.\n");
    }
    let needs_serving = ["srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"];
    if !view.node.is_serving() && needs_serving.contains(&name.as_str()) {
        return "This ZooKeeper instance is not currently serving requests\n".to_string();
    }
    match name.as_str() {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => server_lines(view, false),
        "stat" => server_lines(view, true),
        "mntr" => mntr(view),
        "conf" => view.conf_lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        "cons" => cons(view),
        "envi" => envi(),
        "wchs" => wchs(view),
        "wchc" => wchc(view),
        "wchp" => wchp(view),
        "dump" => dump(view),
        "crst" => "Connection stats reset.\n".to_string(),
        "srst" => "Server stats reset.\n".to_string(),
        // ZooTrace's default mask (ZooKeeper prints it without a newline); we trace nothing
        // through it, so stmk leaves it as it is.
        "gtmk" | "stmk" => DEFAULT_TRACE_MASK.to_string(),
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(view.dirs.0),
            dir_size(view.dirs.1)
        ),
        "hash" => format!("{:x}: {}\n", view.node.last_zxid().0, view.node.tree().digest()),
        _ => format!("Unknown command {name}\n"),
    }
}

fn server_lines(view: &AdminView<'_>, with_clients: bool) -> String {
    let mut out = format!("Zookeeper version: {VERSION}, built on unknown\n");
    if with_clients {
        out.push_str("Clients:\n");
        for stats in view.conns.values() {
            let _ = writeln!(
                out,
                " /{}[1](queued={},recved={},sent={})",
                stats.remote,
                stats.in_flight.len(),
                stats.received,
                stats.sent
            );
        }
        out.push('\n');
    }
    let s = view.stats;
    let l = s.latency;
    let _ = writeln!(out, "Latency min/avg/max: {}/{:.4}/{}", l.min_ms, l.avg(), l.max_ms);
    let _ = writeln!(out, "Received: {}", s.packets_received);
    let _ = writeln!(out, "Sent: {}", s.packets_sent);
    let _ = writeln!(out, "Connections: {}", view.conns.len());
    let _ = writeln!(out, "Outstanding: {}", outstanding(view));
    let _ = writeln!(out, "Zxid: 0x{:x}", view.node.last_zxid().0);
    let _ = writeln!(out, "Mode: {}", mode(view.node));
    let _ = writeln!(out, "Node count: {}", view.node.tree().node_count() + 1);
    out
}

/// `Mode:` as ZooKeeper prints it.
pub fn mode(node: &Node) -> &'static str {
    use zkr_core::zab::message::PeerState;
    if node.config().is_standalone() {
        return "standalone";
    }
    match node.peer_state() {
        PeerState::Leading => "leader",
        PeerState::Following => "follower",
        PeerState::Observing => "observer",
        PeerState::Looking => "looking",
    }
}

fn outstanding(view: &AdminView<'_>) -> usize {
    view.conns.values().map(|c| c.in_flight.len()).sum()
}

fn mntr(view: &AdminView<'_>) -> String {
    let s = view.stats;
    let node = view.node;
    let tree = node.tree();
    let ephemerals: usize = tree.all_ephemerals().values().map(|v| v.len()).sum();
    let (fds, max_fds) = fd_counts();
    let min_size = if s.min_response_size == usize::MAX { 0 } else { s.min_response_size };
    let rows: Vec<(&str, String)> = vec![
        ("version", format!("{VERSION}, built on unknown")),
        ("server_state", mode(node).into()),
        ("avg_latency", format!("{:.4}", s.latency.avg())),
        ("max_latency", s.latency.max_ms.to_string()),
        ("min_latency", s.latency.min_ms.to_string()),
        ("packets_received", s.packets_received.to_string()),
        ("packets_sent", s.packets_sent.to_string()),
        ("num_alive_connections", view.conns.len().to_string()),
        ("outstanding_requests", outstanding(view).to_string()),
        ("znode_count", (tree.node_count() + 1).to_string()),
        ("watch_count", node.watches().count().to_string()),
        ("ephemerals_count", ephemerals.to_string()),
        ("approximate_data_size", tree.approximate_data_size().to_string()),
        ("open_file_descriptor_count", fds.to_string()),
        ("max_file_descriptor_count", max_fds.to_string()),
        ("uptime", s.started.elapsed().as_millis().to_string()),
        ("global_sessions", node.sessions().len().to_string()),
        ("local_sessions", "0".into()),
        ("connection_drop_probability", "0.0".into()),
        ("outstanding_tls_handshake", "0".into()),
        ("last_client_response_size", s.last_response_size.to_string()),
        ("max_client_response_size", s.max_response_size.to_string()),
        ("min_client_response_size", min_size.to_string()),
        ("auth_failed_count", "0".into()),
        ("last_proposal_zxid", format!("0x{:x}", node.last_zxid().0)),
        ("outstanding_proposals", node.outstanding_proposals().to_string()),
    ];
    let mut out: String = rows.into_iter().map(|(k, v)| format!("zk_{k}\t{v}\n")).collect();
    // A leader's gauges, as `LeaderZooKeeperServer.registerMetrics` names them.
    if let Some(c) = node.leader_counts() {
        let _ = writeln!(out, "zk_learners\t{}", c.learners);
        let _ = writeln!(out, "zk_synced_followers\t{}", c.synced_followers);
        let _ = writeln!(out, "zk_synced_non_voting_followers\t0");
        let _ = writeln!(out, "zk_synced_observers\t{}", c.synced_observers);
        let _ = writeln!(out, "zk_pending_syncs\t{}", c.pending_syncs);
    }
    out
}

/// `ServerCnxn.dumpConnectionInfo`: the brief form for a connection without a session (a
/// four-letter word, a handshake in progress), the full one with `lop`/`lcxid`/`lzxid`/`lresp`
/// /`llat` otherwise; latencies are whole ms, as ZooKeeper keeps them.
fn cons(view: &AdminView<'_>) -> String {
    let mut out = String::new();
    for (conn, c) in view.conns {
        let session = view.node.connection_session(*conn);
        let counts = format!("queued={},recved={},sent={}", c.in_flight.len(), c.received, c.sent);
        let Some(session) = session else {
            let _ = writeln!(out, " /{}[0]({counts})", c.remote);
            continue;
        };
        let timeout = view.node.sessions().get(session).map(|s| s.timeout_ms).unwrap_or(0);
        let mut last = String::new();
        if let Some(l) = c.last {
            if l.cxid >= 0 {
                let _ = write!(last, ",lcxid=0x{:x}", l.cxid);
            }
            let _ = write!(
                last,
                ",lzxid=0x{:x},lresp={},llat={}",
                l.zxid, l.responded_ms, l.latency_ms
            );
        } else {
            last.push_str(",lzxid=0xffffffffffffffff,lresp=0,llat=0");
        }
        let lop = c.last.map_or("NA", |l| last_op_name(l.op));
        let l = c.latency;
        let avg = if l.count == 0 { 0 } else { l.total_ms / l.count };
        let _ = writeln!(
            out,
            " /{}[1]({counts},sid=0x{:x},lop={lop},est={},to={timeout}{last},\
             minlat={},avglat={avg},maxlat={})",
            c.remote, session.0 as u64, c.established_ms, l.min_ms, l.max_ms
        );
    }
    out.push('\n');
    out
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={VERSION}, built on unknown\nhost.name={}\n\
         os.name={}\nos.arch={}\nos.version={}\nuser.name={user}\nuser.home={home}\n\
         user.dir={cwd}\n",
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        os_version.trim(),
    )
}

fn session_of(view: &AdminView<'_>, conn: ConnId) -> String {
    let session = view.node.connection_session(conn);
    format!("0x{:x}", session.map(|s| s.0 as u64).unwrap_or(0))
}

fn wchs(view: &AdminView<'_>) -> String {
    let (conns, paths, watches) = view.node.watches().data_summary();
    format!("{conns} connections watching {paths} paths\nTotal watches:{watches}\n")
}

fn wchc(view: &AdminView<'_>) -> String {
    let mut out = String::new();
    for (conn, paths) in view.node.watches().by_conn() {
        let _ = writeln!(out, "{}", session_of(view, conn));
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out
}

fn wchp(view: &AdminView<'_>) -> String {
    let mut out = String::new();
    for (path, conns) in view.node.watches().by_path() {
        let _ = writeln!(out, "{path}");
        for conn in conns {
            let _ = writeln!(out, "\t{}", session_of(view, conn));
        }
    }
    out
}

/// ZooKeeper's `ExpiryQueue.dump`: `Sets (buckets)/(elements):`, then each bucket in time
/// order as `N expire at <date>:` and its elements, one a line after a tab.
fn expiry_sets(out: &mut String, buckets: &BTreeMap<i64, Vec<String>>) {
    let elements: usize = buckets.values().map(Vec::len).sum();
    let _ = writeln!(out, "Sets ({})/({elements}):", buckets.len());
    for (at_ms, items) in buckets {
        let _ =
            writeln!(out, "{} expire at {}:", items.len(), crate::cli::format::java_date(*at_ms));
        for item in items {
            let _ = writeln!(out, "\t{item}");
        }
    }
}

/// `dump` as ZooKeeper 3.9 prints it: the session expiry queue (buckets of `tickTime`), the
/// ephemerals by session, then the connection expiry queue (a connection expires with its
/// session; one without a session 10 s after it was accepted, `sessionlessCnxnTimeout`).
fn dump(view: &AdminView<'_>) -> String {
    let node = view.node;
    let now_ms = now_ms() as i64;
    let tick_ms = i64::from(node.config().tick_ms);
    let expiry_ms = |tick: u64| now_ms + (tick as i64 - node.now_tick() as i64) * tick_ms;
    let mut sessions: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (id, s) in node.sessions().iter() {
        sessions.entry(expiry_ms(s.expiry_tick)).or_default().push(format!("{id}"));
    }
    let mut out = String::from("SessionTracker dump:\nSession ");
    expiry_sets(&mut out, &sessions);
    let ephemerals = node.tree().all_ephemerals();
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", ephemerals.len());
    for (session, paths) in ephemerals {
        let _ = writeln!(out, "{session}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out.push_str("Connections dump:\n");
    let mut conns: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (conn, c) in view.conns {
        let session = node.connection_session(*conn).and_then(|s| node.sessions().get(s));
        let at = match session {
            Some(s) => expiry_ms(s.expiry_tick),
            None => c.established_ms as i64 + SESSIONLESS_CONNECTION_TIMEOUT_MS,
        };
        let item = format!("ip: /{} sessionId: {}", c.remote, session_of(view, *conn));
        conns.entry(at).or_default().push(item);
    }
    out.push_str("Connections ");
    expiry_sets(&mut out, &conns);
    out
}

/// ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout` default.
const SESSIONLESS_CONNECTION_TIMEOUT_MS: i64 = 10_000;

fn fd_counts() -> (usize, u64) {
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (open, max)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Milliseconds since the Unix epoch (for connection establishment times).
pub fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_op_names_follow_final_request_processor() {
        assert_eq!(last_op_name(4), "GETD");
        assert_eq!(last_op_name(12), "GETC");
        assert_eq!(last_op_name(104), "GETACN");
        assert_eq!(last_op_name(9999), "NA");
    }
}
