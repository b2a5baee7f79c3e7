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
use serde_json::Value;
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
    /// `op_latency`'s histogram of each raw opcode seen, looked up (and its label built) once
    /// per opcode rather than once per reply (issue 14: that was five allocations per reply).
    op_histograms: BTreeMap<i32, Histogram>,
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
        let family = &self.op_latency;
        // Every unknown opcode shares one entry, so a client cannot grow the map.
        let key = if OpCode::from_i32(op).is_some() { op } else { i32::MIN };
        let histogram = self.op_histograms.entry(key).or_insert_with(|| op_histogram(family, op));
        histogram.observe(d.as_secs_f64());
    }
}

/// The histogram of `family` labelled with the name of raw opcode `op` (`op="getData"`).
fn op_histogram(family: &OpLatency, op: i32) -> Histogram {
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
    family.get_or_create(&label).clone()
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
            op_histograms: BTreeMap::new(),
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
    /// Accepted on `secureClientPort` (the AdminServer lists it under `secure_connections`).
    pub secure: bool,
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
        let avg = l.total_ms.checked_div(l.count).unwrap_or(0);
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
    let lines: String = environment().into_iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    format!("Environment:\n{lines}")
}

/// `envi`'s properties in its order (ZooKeeper's `Environment.list` without the `java.*` ones,
/// as there is no JVM here); the AdminServer's `environment` too.
pub fn environment() -> Vec<(String, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let pairs = [
        ("zookeeper.version", format!("{VERSION}, built on unknown")),
        ("host.name", host.trim().to_string()),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        ("os.version", os_version.trim().to_string()),
        ("user.name", std::env::var("USER").unwrap_or_default()),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.dir", cwd),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn session_of(view: &AdminView<'_>, conn: ConnId) -> String {
    let session = view.node.connection_session(conn);
    format!("0x{:x}", session.map(|s| s.0 as u64).unwrap_or(0))
}

fn wchs(view: &AdminView<'_>) -> String {
    let (conns, paths, watches) = view.node.watches().data_summary();
    format!("{conns} connections watching {paths} paths\nTotal watches:{watches}\n")
}

/// `WatchManager.dumpWatches(byPath=false)` over the data watches only (as `wchs`), then the
/// blank line the command prints after it.
fn wchc(view: &AdminView<'_>) -> String {
    let mut by_session: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, conns) in data_watches(view.node) {
        for conn in conns {
            by_session.entry(session_of(view, conn)).or_default().push(path.clone());
        }
    }
    let mut out = String::new();
    for (session, paths) in by_session {
        let _ = writeln!(out, "{session}");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push('\n');
    out
}

/// `WatchManager.dumpWatches(byPath=true)` over the data watches only, then a blank line.
fn wchp(view: &AdminView<'_>) -> String {
    let mut out = String::new();
    for (path, conns) in data_watches(view.node) {
        let _ = writeln!(out, "{path}");
        for conn in conns {
            let _ = writeln!(out, "\t{}", session_of(view, conn));
        }
    }
    out.push('\n');
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

/// The AdminServer's commands (ZooKeeper 3.8's `Commands`): the primary name, then its
/// aliases (the four-letter word among them, where there is one). `/commands` lists the
/// primary names; any name or alias runs the command.
pub const ADMIN_COMMANDS: [&[&str]; 26] = [
    &["configuration", "conf", "config"],
    &["connection_stat_reset", "crst"],
    &["connections", "cons"],
    &["dirs"],
    &["dump"],
    &["environment", "env", "envi"],
    &["get_trace_mask", "gtmk"],
    &["hash"],
    &["initial_configuration", "icfg"],
    &["is_read_only", "isro"],
    &["last_snapshot", "lsnp"],
    &["leader", "lead"],
    &["monitor", "mntr"],
    &["observer_connection_stat_reset", "orst"],
    &["observers", "obsr"],
    &["ruok"],
    &["server_stats", "srvr"],
    &["set_trace_mask", "stmk"],
    &["stat_reset", "srst"],
    &["stats", "stat"],
    &["system_properties", "sysp"],
    &["voting_view"],
    &["watch_summary", "wchs"],
    &["watches", "wchc"],
    &["watches_by_path", "wchp"],
    &["zabstate"],
];

/// The primary name of an AdminServer command or alias.
pub fn admin_command(name: &str) -> Option<&'static str> {
    ADMIN_COMMANDS.iter().find(|names| names.contains(&name)).map(|names| names[0])
}

/// Commands that need a serving server (ZooKeeper's `isServerRequired`), answered otherwise
/// with the error below.
const ADMIN_NEEDS_SERVING: [&str; 12] = [
    "connections",
    "dump",
    "hash",
    "last_snapshot",
    "monitor",
    "server_stats",
    "stats",
    "watch_summary",
    "watches",
    "watches_by_path",
    "connection_stat_reset",
    "stat_reset",
];

/// ZooKeeper's error for a command that needs a serving server.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The JSON object of an AdminServer command that reads the node or the counters (the others
/// are answered by `admin_server` without the driver), with ZooKeeper's field names; `command`
/// and `error` are added by the caller. `name` is a primary name.
pub fn command_json(name: &str, view: &AdminView<'_>) -> Result<Map, String> {
    if !view.node.is_serving() && ADMIN_NEEDS_SERVING.contains(&name) {
        return Err(NOT_SERVING.to_string());
    }
    let node = view.node;
    let mut out = Map::new();
    match name {
        "stats" | "server_stats" => {
            out = server_stats_json(view);
            if name == "stats" {
                connections_json(view, false, &mut out);
            }
        }
        "connections" => connections_json(view, true, &mut out),
        "monitor" => out = mntr_json(&mntr(view)),
        "configuration" => out = conf_json(view.conf_lines),
        "dump" => out = dump_json(view),
        "watches" => {
            let mut by_session: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (path, conns) in data_watches(node) {
                for conn in conns {
                    let session = session_number(view, conn).to_string();
                    by_session.entry(session).or_default().push(path.clone().into());
                }
            }
            let by_session = by_session.into_iter().map(|(s, paths)| (s, Value::Array(paths)));
            out.insert("session_id_to_watched_paths".into(), Value::Object(by_session.collect()));
        }
        "watches_by_path" => {
            let by_path = data_watches(node).into_iter().map(|(path, conns)| {
                let ids = conns.into_iter().map(|c| Value::from(session_number(view, c)));
                (path, Value::Array(ids.collect()))
            });
            out.insert("path_to_session_ids".into(), Value::Object(by_path.collect()));
        }
        "watch_summary" => {
            let (conns, paths, watches) = node.watches().data_summary();
            out.insert("num_connections".into(), conns.into());
            out.insert("num_paths".into(), paths.into());
            out.insert("num_total_watches".into(), watches.into());
        }
        "hash" => {
            let digest = serde_json::json!({
                "zxid": node.last_zxid().0,
                "digest": node.tree().digest(),
            });
            out.insert("digests".into(), Value::Array(vec![digest]));
        }
        "is_read_only" => {
            out.insert("read_only".into(), false.into());
        }
        "leader" => return leader_json(node),
        "observers" => {
            let synced = node.leader_counts().map_or(0, |c| c.synced_observers);
            out.insert("synced_observers".into(), synced.into());
            out.insert("observers".into(), Value::Array(vec![]));
        }
        "zabstate" => out = zab_state_json(node),
        "dirs" => {
            out.insert("datadir_size".into(), dir_size(view.dirs.0).into());
            out.insert("logdir_size".into(), dir_size(view.dirs.1).into());
        }
        // The driver applies the resets (see `reset`); ZooKeeper answers with no fields.
        "connection_stat_reset" | "stat_reset" | "observer_connection_stat_reset" => {}
        _ => return Err(format!("Unknown command: {name}")),
    }
    Ok(out)
}

/// A JSON object.
pub type Map = serde_json::Map<String, Value>;

/// `stat_reset`/`srst` and `connection_stat_reset`/`crst`: what the driver resets.
pub fn reset(name: &str, stats: &mut ServerStats, conns: &mut BTreeMap<ConnId, ConnStats>) {
    match name {
        "srst" | "stat_reset" => stats.reset(),
        "crst" | "connection_stat_reset" => {
            for c in conns.values_mut() {
                c.latency = Latency::default();
            }
        }
        _ => {}
    }
}

/// `ServerStats` as ZooKeeper's `server_stats` writes it (`ZooKeeperServer.serverStats`).
fn server_stats_json(view: &AdminView<'_>) -> Map {
    let s = view.stats;
    let l = s.latency;
    let min_size = if s.min_response_size == usize::MAX { 0 } else { s.min_response_size };
    let response = serde_json::json!({
        "last_buffer_size": s.last_response_size,
        "min_buffer_size": min_size,
        "max_buffer_size": s.max_response_size,
    });
    let avg = (l.avg() * 10_000.0).round() / 10_000.0;
    let server_stats = serde_json::json!({
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "fsync_threshold_exceed_count": 0,
        "client_response_stats": response.clone(),
        "data_dir_size": dir_size(view.dirs.0),
        "log_dir_size": dir_size(view.dirs.1),
        "server_state": mode(view.node),
        "last_processed_zxid": view.node.last_zxid().0,
        "outstanding_requests": outstanding(view),
        "avg_latency": avg,
        "max_latency": l.max_ms,
        "min_latency": l.min_ms,
        "num_alive_client_connections": view.conns.len(),
        "uptime": s.started.elapsed().as_millis() as u64,
        "auth_failed_count": 0,
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
        "provider_null": false,
    });
    let mut out = Map::new();
    out.insert("version".into(), format!("{VERSION}, built on unknown").into());
    out.insert("read_only".into(), false.into());
    out.insert("server_stats".into(), server_stats);
    out.insert("client_response".into(), response);
    out.insert("node_count".into(), (view.node.tree().node_count() + 1).into());
    out
}

/// `connections` and `secure_connections` (the plain and the TLS port's), each connection in
/// the full form or the brief one `stats` uses.
fn connections_json(view: &AdminView<'_>, full: bool, out: &mut Map) {
    for (key, secure) in [("connections", false), ("secure_connections", true)] {
        let listed = view.conns.iter().filter(|(_, c)| c.secure == secure);
        let listed = listed.map(|(id, c)| Value::Object(conn_json(view, full.then_some(*id), c)));
        out.insert(key.into(), Value::Array(listed.collect()));
    }
}

/// One connection as `ServerCnxn.getConnectionInfo(brief)` lists it; `conn` gives the full form.
fn conn_json(view: &AdminView<'_>, conn: Option<ConnId>, c: &ConnStats) -> Map {
    let mut out = Map::new();
    out.insert("remote_socket_address".into(), c.remote.to_string().into());
    out.insert("interest_ops".into(), 1.into());
    out.insert("outstanding_requests".into(), c.in_flight.len().into());
    out.insert("packets_received".into(), c.received.into());
    out.insert("packets_sent".into(), c.sent.into());
    let Some(conn) = conn else {
        return out;
    };
    let Some(session) = view.node.connection_session(conn) else {
        return out;
    };
    let timeout = view.node.sessions().get(session).map_or(0, |s| s.timeout_ms);
    let last = c.last;
    let l = c.latency;
    out.insert("session_id".into(), session.0.into());
    out.insert("last_operation".into(), c.last.map_or("NA", |l| last_op_name(l.op)).into());
    out.insert("established".into(), (c.established_ms as u64).into());
    out.insert("session_timeout".into(), timeout.into());
    out.insert("last_cxid".into(), last.map_or(-1, |l| i64::from(l.cxid)).into());
    out.insert("last_zxid".into(), last.map_or(-1, |l| l.zxid).into());
    out.insert("last_response_time".into(), last.map_or(0, |l| l.responded_ms as u64).into());
    out.insert("last_latency".into(), last.map_or(0, |l| l.latency_ms as u64).into());
    out.insert("min_latency".into(), l.min_ms.into());
    out.insert("avg_latency".into(), l.total_ms.checked_div(l.count).unwrap_or(0).into());
    out.insert("max_latency".into(), l.max_ms.into());
    out
}

/// `mntr`'s rows without the `zk_` prefix, numbers as JSON numbers (ZooKeeper's `monitor`).
fn mntr_json(text: &str) -> Map {
    let mut out = Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('\t') else {
            continue;
        };
        let key = key.strip_prefix("zk_").unwrap_or(key).to_string();
        let number = match value.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok().map(Value::from),
            None => value.parse::<i64>().map(Value::from).ok().or_else(|| {
                let float = value.parse::<f64>().ok()?;
                serde_json::Number::from_f64(float).map(Value::Number)
            }),
        };
        out.insert(key, number.unwrap_or_else(|| value.into()));
    }
    out
}

/// `ZooKeeperServerConf` from the `conf` lines: snake_case names, numbers as numbers.
fn conf_json(lines: &[(String, String)]) -> Map {
    let keys = [
        ("clientPort", "client_port"),
        ("dataDir", "data_dir"),
        ("dataLogDir", "data_log_dir"),
        ("tickTime", "tick_time"),
        ("maxClientCnxns", "max_client_cnxns"),
        ("minSessionTimeout", "min_session_timeout"),
        ("maxSessionTimeout", "max_session_timeout"),
        ("serverId", "server_id"),
        ("clientPortListenBacklog", "client_port_listen_backlog"),
    ];
    let mut out = Map::new();
    for (conf, json) in keys {
        let Some((_, value)) = lines.iter().find(|(k, _)| k == conf) else {
            continue;
        };
        let value = value.parse::<i64>().map(Value::from).unwrap_or_else(|_| value.clone().into());
        out.insert(json.to_string(), value);
    }
    out
}

/// `dump`: session expiry times (ms) to session ids, and session ids to ephemeral paths.
fn dump_json(view: &AdminView<'_>) -> Map {
    let node = view.node;
    let now_ms = now_ms() as i64;
    let tick_ms = i64::from(node.config().tick_ms);
    let mut expiry: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for (id, s) in node.sessions().iter() {
        let at = now_ms + (s.expiry_tick as i64 - node.now_tick() as i64) * tick_ms;
        expiry.entry(at).or_default().push(id.0.into());
    }
    let expiry = expiry.into_iter().map(|(at, ids)| (at.to_string(), Value::Array(ids)));
    let ephemerals = node.tree().all_ephemerals().into_iter().map(|(session, paths)| {
        let paths = paths.into_iter().map(|p| Value::String(p.to_string())).collect();
        (session.0.to_string(), Value::Array(paths))
    });
    let mut out = Map::new();
    out.insert("expiry_time_to_session_ids".into(), Value::Object(expiry.collect()));
    out.insert("session_id_to_ephemeral_paths".into(), Value::Object(ephemerals.collect()));
    out
}

/// `leader`: ZooKeeper answers a standalone server with an error, an ensemble member with the
/// leader it knows.
fn leader_json(node: &Node) -> Result<Map, String> {
    if node.config().is_standalone() {
        return Err("server is not initialized".to_string());
    }
    let mut out = Map::new();
    let leader = node.leader();
    out.insert("is_leader".into(), (leader == Some(node.config().server_id)).into());
    out.insert("leader_id".into(), leader.map_or(-1, |l| l.0 as i64).into());
    Ok(out)
}

/// `zabstate` (`Commands.ZabStateCommand`): a standalone server votes in nothing and has no
/// state; an ensemble member reports its id, role, last zxid split into epoch and counter, and
/// the `QuorumPeer.ZabState` name in lower case (`admin_server` adds the addresses).
fn zab_state_json(node: &Node) -> Map {
    use zkr_core::zab::message::PeerState;
    let mut out = Map::new();
    if node.config().is_standalone() {
        out.insert("voting".into(), false.into());
        out.insert("zabstate".into(), "".into());
        return out;
    }
    let state = match node.peer_state() {
        PeerState::Looking => "election",
        _ if node.is_serving() => "broadcast",
        _ if node.leader().is_some() => "synchronization",
        _ => "discovery",
    };
    let zxid = node.last_zxid().0 as u64;
    out.insert("myid".into(), node.config().server_id.0.into());
    out.insert("is_leader".into(), node.is_established_leader().into());
    out.insert("voting".into(), (node.peer_state() != PeerState::Observing).into());
    out.insert("last_zxid".into(), format!("0x{zxid:x}").into());
    out.insert("zab_epoch".into(), (zxid >> 32).into());
    out.insert("zab_counter".into(), (zxid & 0xffff_ffff).into());
    out.insert("zabstate".into(), state.into());
    out
}

/// Data watches by path: ZooKeeper's `watches` and `watches_by_path` read only its
/// `dataWatches` table (as `watch_summary` does), not the child watches.
fn data_watches(node: &Node) -> Vec<(String, Vec<ConnId>)> {
    use zkr_core::watch::Table;
    let watches = node.watches();
    let by_path = watches.by_path().into_iter().map(|(path, conns)| {
        let data = conns.into_iter().filter(|c| watches.modes(Table::Data, &path, *c) != 0);
        let data: Vec<ConnId> = data.collect();
        (path, data)
    });
    by_path.filter(|(_, conns)| !conns.is_empty()).collect()
}

fn session_number(view: &AdminView<'_>, conn: ConnId) -> i64 {
    view.node.connection_session(conn).map_or(0, |s| s.0)
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

    /// Replies are counted under their opcode's name, every unknown opcode under one
    /// `unknown` entry, and `srst` starts a family whose cached handles are new too.
    #[test]
    fn request_latency_is_labelled_by_opcode_and_unknown_opcodes_share_one_entry() {
        let mut stats = ServerStats::new();
        let ms = Duration::from_millis(1);
        for op in [OpCode::GetData.code(), OpCode::GetData.code(), OpCode::SetData.code()] {
            stats.record_latency(op, ms);
        }
        for op in [9_999, 10_000, -77] {
            stats.record_latency(op, ms);
        }
        let count = |stats: &ServerStats, name: &str| {
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register("lat", "latency", stats.op_latency.clone());
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
            let line = format!("lat_count{{op=\"{name}\"}} ");
            let found = text.lines().find_map(|l| l.strip_prefix(line.as_str()));
            found.map_or(0, |n| n.trim().parse::<u64>().expect("a count"))
        };
        assert_eq!(count(&stats, "getData"), 2);
        assert_eq!(count(&stats, "setData"), 1);
        assert_eq!(count(&stats, "unknown"), 3);
        assert_eq!(stats.op_histograms.len(), 3, "getData, setData and one unknown");
        stats.reset();
        stats.record_latency(OpCode::GetData.code(), ms);
        assert_eq!(count(&stats, "getData"), 1, "counted in the new family");
    }

    #[test]
    fn last_op_names_follow_final_request_processor() {
        assert_eq!(last_op_name(4), "GETD");
        assert_eq!(last_op_name(12), "GETC");
        assert_eq!(last_op_name(104), "GETACN");
        assert_eq!(last_op_name(9999), "NA");
    }
}
