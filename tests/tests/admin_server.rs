//! The AdminServer (`admin.enableServer=true`, `admin.serverAddress`, `admin.serverPort`,
//! `admin.commandURL`) through curl: every command ZooKeeper 3.8 lists answers JSON, and the
//! objects carry exactly the field names Apache ZooKeeper 3.8.0's AdminServer wrote for the
//! same state (a standalone server, one session with an ephemeral node, two data watches and a
//! child watch), recorded below from `curl http://127.0.0.1:8080/commands/<name>` against it.
//!
//! Skipped with a note when curl is missing, except in CI (CI=true).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use zkr_tests::client::{EPHEMERAL, PERSISTENT};
use zkr_tests::server::free_port;
use zkr_tests::tools::{require, run_bounded};
use zkr_tests::{ServerOptions, TestServer, connect, op};

/// Apache ZooKeeper 3.8.0's top-level field names per command (`command` and `error` are in
/// every answer, so they are left out here).
const APACHE_FIELDS: &[(&str, &[&str])] = &[
    ("ruok", &[]),
    ("server_stats", &["version", "read_only", "server_stats", "client_response", "node_count"]),
    (
        "stats",
        &[
            "version",
            "read_only",
            "server_stats",
            "client_response",
            "node_count",
            "connections",
            "secure_connections",
        ],
    ),
    (
        "configuration",
        &[
            "client_port",
            "data_dir",
            "data_log_dir",
            "tick_time",
            "max_client_cnxns",
            "min_session_timeout",
            "max_session_timeout",
            "server_id",
            "client_port_listen_backlog",
        ],
    ),
    ("connections", &["connections", "secure_connections"]),
    ("dump", &["expiry_time_to_session_ids", "session_id_to_ephemeral_paths"]),
    ("watches", &["session_id_to_watched_paths"]),
    ("watches_by_path", &["path_to_session_ids"]),
    ("watch_summary", &["num_connections", "num_paths", "num_total_watches"]),
    ("is_read_only", &["read_only"]),
    ("dirs", &["datadir_size", "logdir_size"]),
    ("initial_configuration", &["initial_configuration"]),
    ("last_snapshot", &["zxid", "timestamp"]),
    ("voting_view", &["current_config"]),
    ("hash", &["digests"]),
    ("get_trace_mask", &["tracemask"]),
    ("observers", &["synced_observers", "observers"]),
    ("zabstate", &["voting", "zabstate"]),
    ("connection_stat_reset", &[]),
    ("stat_reset", &[]),
    ("observer_connection_stat_reset", &[]),
];

/// `server_stats.server_stats` in Apache ZooKeeper 3.8.0.
const APACHE_SERVER_STATS: &[&str] = &[
    "packets_sent",
    "packets_received",
    "fsync_threshold_exceed_count",
    "client_response_stats",
    "data_dir_size",
    "log_dir_size",
    "server_state",
    "last_processed_zxid",
    "outstanding_requests",
    "avg_latency",
    "max_latency",
    "min_latency",
    "num_alive_client_connections",
    "uptime",
    "auth_failed_count",
    "non_mtlsremote_conn_count",
    "non_mtlslocal_conn_count",
    "provider_null",
];

/// One entry of `connections.connections` in Apache ZooKeeper 3.8.0 (a connection with a
/// session); `stats.connections` lists the first five only.
const APACHE_CONNECTION: &[&str] = &[
    "remote_socket_address",
    "interest_ops",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "session_id",
    "last_operation",
    "established",
    "session_timeout",
    "last_cxid",
    "last_zxid",
    "last_response_time",
    "last_latency",
    "min_latency",
    "avg_latency",
    "max_latency",
];

/// ZooKeeper 3.8's `/commands` list (the primary names).
const APACHE_COMMANDS: &[&str] = &[
    "configuration",
    "connection_stat_reset",
    "connections",
    "dirs",
    "dump",
    "environment",
    "get_trace_mask",
    "hash",
    "initial_configuration",
    "is_read_only",
    "last_snapshot",
    "leader",
    "monitor",
    "observer_connection_stat_reset",
    "observers",
    "ruok",
    "server_stats",
    "set_trace_mask",
    "stat_reset",
    "stats",
    "system_properties",
    "voting_view",
    "watch_summary",
    "watches",
    "watches_by_path",
    "zabstate",
];

/// `curl -s -i`: (status line, body).
fn curl(args: &[&str], url: &str) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "20"]).args(args).arg(url);
    let out = run_bounded(&mut cmd, "", Duration::from_secs(30));
    assert!(out.success(), "curl {url} failed: {out:?}");
    let (head, body) = out.stdout.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

fn get_json(base: &str, command: &str) -> serde_json::Map<String, Value> {
    let (status, body) = curl(&[], &format!("{base}/{command}"));
    assert!(status.contains(" 200"), "{command}: {status}\n{body}");
    match serde_json::from_str(&body) {
        Ok(Value::Object(map)) => map,
        other => panic!("{command}: not a JSON object ({other:?}):\n{body}"),
    }
}

fn keys(map: &serde_json::Map<String, Value>) -> BTreeSet<&str> {
    map.keys().map(String::as_str).collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_server_answers_zookeepers_commands_with_its_field_names() {
    if require("curl", which_curl()).is_none() {
        return;
    }
    let port = free_port();
    let options = ServerOptions::new()
        .set("admin.enableServer", "true")
        .set("admin.serverAddress", "127.0.0.1")
        .set("admin.serverPort", &port.to_string())
        .set("admin.commandURL", "/zk");
    let server = TestServer::start_with(options);
    let base = format!("http://127.0.0.1:{port}/zk");

    let zk = connect(&server).await;
    op("create /w", zk.create("/w", b"x", &PERSISTENT)).await;
    op("create /e", zk.create("/e", b"", &EPHEMERAL)).await;
    let (_, _, _w) = op("getData watch", zk.get_and_watch_data("/w")).await;
    let (_, _c) = op("ls watch", zk.list_and_watch_children("/")).await;
    let _n = op("exists watch", zk.check_and_watch_stat("/nope")).await;
    let session = zk.session_id().0;

    // Before the loop below runs stat_reset.
    let stats = get_json(&base, "stats");
    for (command, fields) in APACHE_FIELDS {
        let map = get_json(&base, command);
        assert_eq!(map.get("command"), Some(&Value::from(*command)), "{map:?}");
        assert_eq!(map.get("error"), Some(&Value::Null), "{command}: {map:?}");
        let mut expected = set(fields);
        expected.extend(["command", "error"]);
        assert_eq!(keys(&map), expected, "{command}: field names differ from ZooKeeper's");
    }
    let server_stats = stats["server_stats"].as_object().expect("server_stats object");
    assert_eq!(keys(server_stats), set(APACHE_SERVER_STATS));
    let connections = get_json(&base, "connections");
    let conns = connections["connections"].as_array().expect("connections array");
    let ours = conns.iter().find(|c| c["session_id"] == session);
    let ours = ours.and_then(Value::as_object).expect("our session's connection");
    assert_eq!(keys(ours), set(APACHE_CONNECTION));
    let brief = stats["connections"][0].as_object().expect("a brief connection");
    assert_eq!(keys(brief), set(&APACHE_CONNECTION[..5]));

    // Values: the state the client made, in ZooKeeper's shapes.
    let id = session.to_string();
    let dump = get_json(&base, "dump");
    assert_eq!(dump["session_id_to_ephemeral_paths"][&id], serde_json::json!(["/e"]));
    let watches = get_json(&base, "watches");
    let watched = &watches["session_id_to_watched_paths"][&id];
    assert_eq!(watched, &serde_json::json!(["/nope", "/w"]), "data watches only, as ZooKeeper");
    // The four-letter words read the same data watches (ZooKeeper's dataWatches), in its text.
    let hex = format!("0x{:x}", session as u64);
    assert_eq!(server.four_letter("wchc"), format!("{hex}\n\t/nope\n\t/w\n\n"));
    assert_eq!(server.four_letter("wchp"), format!("/nope\n\t{hex}\n/w\n\t{hex}\n\n"));
    let summary = get_json(&base, "wchs");
    assert_eq!(summary["command"], "watch_summary", "an alias runs its command");
    assert_eq!(
        (summary["num_paths"].as_i64(), summary["num_total_watches"].as_i64()),
        (Some(2), Some(2))
    );
    let by_path = get_json(&base, "watches_by_path");
    assert_eq!(by_path["path_to_session_ids"]["/w"], serde_json::json!([session]));
    let monitor = get_json(&base, "mntr");
    assert_eq!(monitor["server_state"], "standalone");
    assert_eq!(monitor["ephemerals_count"], 1);
    for key in ["znode_count", "watch_count", "avg_latency", "num_alive_connections", "uptime"] {
        assert!(monitor[key].is_number(), "monitor {key}: {monitor:?}");
    }
    let conf = get_json(&base, "conf");
    assert_eq!(conf["client_port"], server.port());
    let initial = get_json(&base, "initial_configuration");
    let text = initial["initial_configuration"].as_str().expect("text");
    assert!(text.contains(&format!("admin.serverPort={port}")), "{text}");
    let leader = get_json(&base, "leader");
    assert_eq!(leader["error"], "server is not initialized", "standalone, as ZooKeeper says");
    let environment = get_json(&base, "environment");
    assert!(environment["zookeeper.version"].as_str().is_some_and(|v| v.contains("zkr")));

    // stat_reset empties the server's counters (ZooKeeper's srst).
    let before = stats["server_stats"]["packets_received"].as_i64().expect("a count");
    assert!(before >= 5, "{stats:?}");
    let _ = get_json(&base, "stat_reset");
    let after = get_json(&base, "server_stats");
    let received = after["server_stats"]["packets_received"].as_i64().expect("a count");
    assert!(received < before, "stat_reset left {received} of {before}");

    // The list, an unknown command, and what is not a command.
    let (status, listing) = curl(&[], &base);
    assert!(status.contains(" 200"), "{status}");
    for command in APACHE_COMMANDS {
        assert!(listing.contains(&format!("href=\"/zk/{command}\"")), "{command}:\n{listing}");
    }
    let bogus = get_json(&base, "bogus");
    assert_eq!(bogus["error"], "Unknown command: bogus");
    let (status, _) = curl(&["-X", "POST"], &format!("{base}/ruok"));
    assert!(status.contains(" 405"), "POST: {status}");
    let (status, _) = curl(&[], &format!("http://127.0.0.1:{port}/elsewhere"));
    assert!(status.contains(" 404"), "outside the command URL: {status}");
    drop(zk);
}

/// zkr-server processes killed on drop.
struct Members(Vec<std::process::Child>, std::path::PathBuf);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Three members, each with an AdminServer; returns them and their command URLs.
fn ensemble() -> (Members, Vec<String>) {
    let root = std::env::temp_dir().join(format!("zkr-admin-ens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ports: Vec<[u16; 4]> =
        (0..3).map(|_| [free_port(), free_port(), free_port(), free_port()]).collect();
    let servers: String = (0..3)
        .map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[i][1], ports[i][2]))
        .collect();
    let mut members = Members(Vec::new(), root.clone());
    let mut urls = Vec::new();
    for (i, [client, _, _, admin]) in ports.iter().enumerate() {
        let dir = root.join(format!("s{}", i + 1));
        std::fs::create_dir_all(dir.join("data")).expect("member dir");
        std::fs::write(dir.join("data/myid"), (i + 1).to_string()).expect("myid");
        let cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=true\n\
             admin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n{servers}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
        let log = std::fs::File::create(dir.join("server.log")).expect("log");
        let child = Command::new(zkr_tests::server::zkr_bin())
            .arg(dir.join("zoo.cfg"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn zkr-server");
        members.0.push(child);
        urls.push(format!("http://127.0.0.1:{admin}/commands"));
    }
    (members, urls)
}

/// In an ensemble, `leader`, `zabstate` and `voting_view` carry ZooKeeper 3.8's quorum fields
/// (the names are in its `Commands$LeaderCommand`/`$ZabStateCommand` classes) and agree on
/// one leader.
#[test]
fn admin_server_reports_the_ensemble_as_zookeeper_does() {
    if require("curl", which_curl()).is_none() {
        return;
    }
    let (_members, urls) = ensemble();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Until every member listens and has joined (curl fails while a member starts).
    let serving = |url: &String| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "5"]).arg(format!("{url}/zabstate"));
        let out = run_bounded(&mut cmd, "", Duration::from_secs(10));
        out.success() && out.stdout.contains("\"broadcast\"")
    };
    while !urls.iter().all(serving) {
        assert!(std::time::Instant::now() < deadline, "no ensemble within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let zab_fields = [
        "myid",
        "is_leader",
        "quorum_address",
        "election_address",
        "client_address",
        "voting",
        "last_zxid",
        "zab_epoch",
        "zab_counter",
        "zabstate",
        "command",
        "error",
    ];
    let mut leaders = BTreeSet::new();
    let mut leading = 0;
    for (i, url) in urls.iter().enumerate() {
        let base = url.as_str();
        let zab = get_json(base, "zabstate");
        assert_eq!(keys(&zab), set(&zab_fields), "{zab:?}");
        assert_eq!(zab["myid"], i + 1);
        let leader = get_json(base, "leader");
        let fields = ["is_leader", "leader_id", "leader_ip", "command", "error"];
        assert_eq!(keys(&leader), set(&fields), "{leader:?}");
        assert_eq!(leader["leader_ip"], "127.0.0.1");
        assert_eq!(leader["is_leader"], zab["is_leader"]);
        leading += usize::from(leader["is_leader"] == true);
        leaders.insert(leader["leader_id"].as_u64().expect("a leader id"));
        let view = get_json(base, "voting_view");
        let members = view["current_config"].as_object().expect("members");
        assert_eq!(members.len(), 3, "{view:?}");
        assert!(members["1"].as_str().is_some_and(|m| m.ends_with(":participant")), "{view:?}");
    }
    assert_eq!((leaders.len(), leading), (1, 1), "one leader, named alike by all");
}

fn which_curl() -> Option<()> {
    let probe = Command::new("curl").arg("--version").output();
    matches!(probe, Ok(o) if o.status.success()).then_some(())
}
