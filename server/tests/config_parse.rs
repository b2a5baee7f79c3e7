//! Tests for zoo.cfg parsing (`zkr_server::config`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use zkr_server::config::{
    ConfigError, FourLetterWhitelist, PeerType, ServerConfig, parse_properties,
};

/// ZooKeeper's `conf/zoo_sample.cfg`, verbatim.
const ZOO_SAMPLE_CFG: &str = "\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial
# synchronization phase can take
initLimit=10
# The number of ticks that can pass between
# sending a request and getting an acknowledgement
syncLimit=5
# the directory where the snapshot is stored.
# do not use /tmp for storage, /tmp here is just
# example sakes.
dataDir=/tmp/zookeeper
# the port at which the clients will connect
clientPort=2181
# the maximum number of client connections.
# increase this if you need to handle more clients
#maxClientCnxns=60
#
# Be sure to read the maintenance section of the
# administrator guide before turning on autopurge.
#
# https://zookeeper.apache.org/doc/current/zookeeperAdmin.html#sc_maintenance
#
# The number of snapshots to retain in dataDir
#autopurge.snapRetainCount=3
# Purge task interval in hours
# Set to \"0\" to disable auto purge feature
#autopurge.purgeInterval=1

## Metrics Providers
#
# https://prometheus.io Metrics Exporter
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpHost=0.0.0.0
#metricsProvider.httpPort=7000
#metricsProvider.exportJvmInfo=true
";

#[test]
fn the_zookeeper_sample_config_parses() {
    let config = ServerConfig::parse(ZOO_SAMPLE_CFG).unwrap();
    assert_eq!(config.core.tick_time_ms, 2000);
    assert_eq!(config.core.tick_ms, 100);
    assert_eq!(config.init_limit, Some(10));
    assert_eq!(config.sync_limit, Some(5));
    assert_eq!(config.data_dir, PathBuf::from("/tmp/zookeeper"));
    assert_eq!(config.data_log_dir, PathBuf::from("/tmp/zookeeper"));
    assert_eq!(config.client_port, 2181);
    assert_eq!(config.client_port_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(config.max_client_cnxns, 60);
    assert_eq!(config.core.session_timeout_ms_min, 4000);
    assert_eq!(config.core.session_timeout_ms_max, 40000);
    assert_eq!(config.snap_count, 100_000);
    assert_eq!(config.autopurge_snap_retain_count, 3);
    assert_eq!(config.autopurge_purge_interval_hours, 0);
    assert!(config.force_sync);
    assert_eq!(config.four_letter_words, FourLetterWhitelist::zookeeper_default());
    assert!(config.servers.is_empty());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn every_supported_key() {
    let text = "\
tickTime = 50
dataDir: /var/zk/data
dataLogDir /var/zk/log
clientPort=2281
clientPortAddress=127.0.0.1
minSessionTimeout=500
maxSessionTimeout=9000
maxClientCnxns=0
snapCount=5000
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
forceSync=no
4lw.commands.whitelist=stat, ruok ,conf
jute.maxbuffer=0x200000
zookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
zookeeper.extendedTypesEnabled=true
znode.container.checkIntervalMs=1000
znode.container.maxPerMinute=500
skipACL=yes
enforceQuota=true
electionAlg=3
peerType=observer
admin.enableServer=false
admin.serverPort=9090
metricsProvider.className=org.example.Metrics
preAllocSize=1024
zkr.workerThreads=1
";
    let config = ServerConfig::parse(text).unwrap();
    assert_eq!(config.core.tick_time_ms, 50);
    assert_eq!(config.core.tick_ms, 50, "a tickTime below 100 ms is also the core tick");
    assert_eq!(config.data_dir, PathBuf::from("/var/zk/data"));
    assert_eq!(config.data_log_dir, PathBuf::from("/var/zk/log"));
    assert_eq!(config.client_port, 2281);
    assert_eq!(config.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.core.session_timeout_ms_min, 500);
    assert_eq!(config.core.session_timeout_ms_max, 9000);
    assert_eq!(config.max_client_cnxns, 0);
    assert_eq!(config.snap_count, 5000);
    assert_eq!(config.autopurge_snap_retain_count, 5);
    assert_eq!(config.autopurge_purge_interval_hours, 24);
    assert!(!config.force_sync);
    let words = ["conf", "ruok", "srvr", "stat"].map(String::from).into_iter().collect();
    assert_eq!(config.four_letter_words, FourLetterWhitelist::Only(words));
    assert_eq!(config.core.max_frame_bytes, 0x200000);
    assert_eq!(config.core.super_digest.as_deref(), Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="));
    assert!(config.core.extended_types_enabled);
    assert_eq!(config.core.container_check_interval_ms, 1000);
    assert_eq!(config.core.container_max_per_minute, 500);
    assert!(config.core.skip_acl);
    assert!(config.core.enforce_quota);
    assert_eq!(config.election_alg, Some(3));
    assert_eq!(config.peer_type, PeerType::Observer);
    assert_eq!((config.admin.enabled, config.admin.port), (false, 9090));
    assert_eq!(config.prealloc_bytes, 1024 * 1024, "preAllocSize is in KB");
    assert_eq!(config.extra.get("preAllocSize"), None, "a key this server uses");
    assert_eq!(config.worker_threads, 1);
    assert_eq!(config.extra.get("zkr.workerThreads"), None, "a key this server uses");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_short_superdigest_spelling_and_decimal_jute_maxbuffer() {
    let text = "dataDir=/d\nDigestAuthenticationProvider.superDigest=super:abc=\n\
                jute.maxbuffer=4096\nextendedTypesEnabled=false\n";
    let config = ServerConfig::parse(text).unwrap();
    assert_eq!(config.core.super_digest.as_deref(), Some("super:abc="));
    assert_eq!(config.core.max_frame_bytes, 4096);
    assert!(!config.core.extended_types_enabled);
}

/// Asserts that `line` (appended as line 3 after tickTime and dataDir) is rejected with an error
/// naming `key`, its value and line 3.
fn assert_bad_value(line: &str, key: &str) {
    let text = format!("tickTime=2000\ndataDir=/d\n{line}\n");
    let error = ServerConfig::parse(&text).expect_err(line);
    match &error {
        ConfigError::BadValue { key: k, line: l, value, .. } => {
            assert_eq!(k, key, "{line}");
            assert_eq!(*l, 3, "{line}");
            assert!(line.contains(value.as_str()), "{line}: value {value:?}");
        }
        other => panic!("{line}: unexpected {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains(key) && text.contains("line 3"), "{text}");
}

#[test]
fn each_malformed_value_names_the_key_the_value_and_the_line() {
    let cases = [
        ("tickTime=fast", "tickTime"),
        ("tickTime=0", "tickTime"),
        ("tickTime=-5", "tickTime"),
        ("clientPort=70000", "clientPort"),
        ("clientPort=abc", "clientPort"),
        ("clientPortAddress=not-an-ip", "clientPortAddress"),
        ("minSessionTimeout=x", "minSessionTimeout"),
        ("maxSessionTimeout=0", "maxSessionTimeout"),
        ("maxClientCnxns=-1", "maxClientCnxns"),
        ("snapCount=many", "snapCount"),
        ("autopurge.snapRetainCount=three", "autopurge.snapRetainCount"),
        ("autopurge.purgeInterval=1.5", "autopurge.purgeInterval"),
        ("forceSync=maybe", "forceSync"),
        ("jute.maxbuffer=0xZZ", "jute.maxbuffer"),
        ("jute.maxbuffer=0", "jute.maxbuffer"),
        ("jute.maxbuffer=4294967296", "jute.maxbuffer"),
        (
            "DigestAuthenticationProvider.superDigest=nocolon",
            "DigestAuthenticationProvider.superDigest",
        ),
        ("extendedTypesEnabled=2", "extendedTypesEnabled"),
        ("znode.container.checkIntervalMs=soon", "znode.container.checkIntervalMs"),
        ("znode.container.maxPerMinute=-3", "znode.container.maxPerMinute"),
        ("skipACL=perhaps", "skipACL"),
        ("enforceQuota=1", "enforceQuota"),
        ("initLimit=ten", "initLimit"),
        ("syncLimit=0", "syncLimit"),
        ("electionAlg=1", "electionAlg"),
        ("peerType=leader", "peerType"),
        ("server.x=a:1:2", "server.x"),
        ("server.1=host", "server.1"),
        ("server.1=host:2888:2888", "server.1"),
        ("server.1=host:2888:3888:voter", "server.1"),
        ("server.1=host:2888:3888;notaport", "server.1"),
        ("server.1=a:1:2|b:1:2", "server.1"),
        ("dataLogDir=", "dataLogDir"),
        ("zkr.workerThreads=-1", "zkr.workerThreads"),
        ("zkr.workerThreads=2000", "zkr.workerThreads"),
    ];
    for (line, key) in cases {
        assert_bad_value(line, key);
    }
}

#[test]
fn an_unknown_key_warns_and_is_kept() {
    let config =
        ServerConfig::parse("dataDir=/d\ntickTime=2000\nfrobnicate=yes\nclientPort=1\n").unwrap();
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("frobnicate"));
    assert!(config.warnings[0].contains("line 3"));
    assert_eq!(config.extra.get("frobnicate").map(String::as_str), Some("yes"));
}

#[test]
fn missing_data_dir_is_an_error() {
    let error = ServerConfig::parse("tickTime=2000\nclientPort=2181\n").unwrap_err();
    assert!(matches!(error, ConfigError::Missing { key: "dataDir" }), "{error:?}");
    assert_eq!(error.to_string(), "dataDir is not set");
}

#[test]
fn defaults_for_a_minimal_file() {
    let config = ServerConfig::parse("dataDir=/d\n").unwrap();
    assert_eq!(config.core.tick_time_ms, 2000);
    assert_eq!(config.client_port, 2181);
    assert_eq!(config.data_log_dir, PathBuf::from("/d"));
    assert_eq!(config.core.session_timeout_ms_min, 4000);
    assert_eq!(config.core.session_timeout_ms_max, 40000);
    assert_eq!(config.core.max_frame_bytes, 0xfffff);
    assert_eq!(config.worker_threads, 0, "one worker per core unless set");
    assert_eq!(config.warnings.len(), 2, "tickTime and clientPort: {:?}", config.warnings);
}

#[test]
fn session_timeout_defaults_follow_tick_time_in_any_order() {
    let config = ServerConfig::parse("minSessionTimeout=-1\ndataDir=/d\ntickTime=3000\n").unwrap();
    assert_eq!(config.core.session_timeout_ms_min, 6000);
    assert_eq!(config.core.session_timeout_ms_max, 60000);
}

#[test]
fn min_session_timeout_above_max_is_rejected() {
    let text = "tickTime=2000\ndataDir=/d\nminSessionTimeout=30000\nmaxSessionTimeout=10000\n";
    let error = ServerConfig::parse(text).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Invalid(_)), "{error:?}");
    assert!(message.contains("minSessionTimeout 30000"), "{message}");
    assert!(message.contains("maxSessionTimeout 10000"), "{message}");
    // A min above the default max (20 ticks) is rejected too.
    let error = ServerConfig::parse("tickTime=1000\ndataDir=/d\nminSessionTimeout=30000\n");
    assert!(error.unwrap_err().to_string().contains("default"));
}

#[test]
fn clamped_values_warn() {
    let text = "dataDir=/d\ntickTime=2000\nclientPort=1\nsnapCount=1\nautopurge.snapRetainCount=1\n\
                autopurge.purgeInterval=-2\n";
    let config = ServerConfig::parse(text).unwrap();
    assert_eq!(config.snap_count, 2);
    assert_eq!(config.autopurge_snap_retain_count, 3);
    assert_eq!(config.autopurge_purge_interval_hours, 0);
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
}

#[test]
fn whitelist_parsing() {
    let (all, unknown) = FourLetterWhitelist::parse("ruok, *");
    assert_eq!(all, FourLetterWhitelist::All);
    assert!(unknown.is_empty());
    assert!(all.allows("dump"));

    let (some, unknown) = FourLetterWhitelist::parse(" RUOK,stat,, zzzz ");
    assert_eq!(unknown, vec!["zzzz".to_string()]);
    assert!(some.allows("ruok"));
    assert!(some.allows("stat"));
    assert!(some.allows("srvr"), "srvr is always allowed");
    assert!(!some.allows("dump"));

    let (empty, _) = FourLetterWhitelist::parse("");
    assert!(empty.allows("srvr"));
    assert!(!empty.allows("ruok"));

    let config =
        ServerConfig::parse("dataDir=/d\ntickTime=2000\n4lw.commands.whitelist=*\n").unwrap();
    assert_eq!(config.four_letter_words, FourLetterWhitelist::All);
    let config =
        ServerConfig::parse("dataDir=/d\ntickTime=2000\n4lw.commands.whitelist=bogus\n").unwrap();
    assert!(config.warnings.iter().any(|w| w.contains("bogus")), "{:?}", config.warnings);
}

#[test]
fn server_lines_for_the_quorum_mode() {
    let text = "\
dataDir=/d
tickTime=2000
initLimit=10
syncLimit=5
server.1=zk1:2888:3888
server.2=zk2.example.com:2888:3888:participant;2181
server.3=[::1]:2888:3888:observer;127.0.0.1:2182
server.4=10.0.0.4:2888:3888;[::1]:2183
";
    let config = ServerConfig::parse(text).unwrap();
    assert_eq!(config.servers.len(), 4);
    let s1 = &config.servers[&1];
    assert_eq!((s1.host.as_str(), s1.quorum_port, s1.election_port), ("zk1", 2888, 3888));
    assert_eq!(s1.peer_type, PeerType::Participant);
    assert_eq!(s1.client, None);
    assert_eq!(config.servers[&2].client, Some((None, 2181)));
    let s3 = &config.servers[&3];
    assert_eq!(s3.host, "::1");
    assert_eq!(s3.peer_type, PeerType::Observer);
    assert_eq!(s3.client, Some((Some("127.0.0.1".to_string()), 2182)));
    assert_eq!(config.servers[&4].client, Some((Some("::1".to_string()), 2183)));
    // /zookeeper/config as ZooKeeper 3.8 writes it (QuorumVerifier.toString()): the client part
    // only where the server line has one, 0.0.0.0 for a bare port, IPv6 in brackets.
    let expected = "server.1=zk1:2888:3888:participant\n\
                    server.2=zk2.example.com:2888:3888:participant;0.0.0.0:2181\n\
                    server.3=[::1]:2888:3888:observer;127.0.0.1:2182\n\
                    server.4=10.0.0.4:2888:3888:participant;[::1]:2183\n\
                    version=0";
    assert_eq!(config.membership_text(), expected);
}

#[test]
fn membership_text_matches_apache_zookeeper_for_a_plain_ensemble() {
    // Read back with zkCli.sh `config` from a real Apache ZooKeeper 3.8.0 ensemble started with
    // these server lines and `clientPort=24181` (138 bytes, dataVersion -1).
    let text = "dataDir=/d\nclientPort=24181\nserver.1=127.0.0.1:24281:24381\n\
                server.2=127.0.0.1:24282:24382\nserver.3=127.0.0.1:24283:24383\n";
    let config = ServerConfig::parse(text).unwrap();
    let apache = "server.1=127.0.0.1:24281:24381:participant\n\
                  server.2=127.0.0.1:24282:24382:participant\n\
                  server.3=127.0.0.1:24283:24383:participant\n\
                  version=0";
    assert_eq!(config.membership_text(), apache);
    assert_eq!(apache.len(), 138);
}

#[test]
fn properties_syntax() {
    let text = "\
  # indented comment
! bang comment
key1=value1
key2 : value two  
key3   spaced value
long = first \\
       second \\
    third
escaped\\=key = tab\\there
unicode=\\u0041BC
empty=
lonely
";
    let properties = parse_properties(text).unwrap();
    let pairs: Vec<(&str, &str, usize)> =
        properties.iter().map(|p| (p.key.as_str(), p.value.as_str(), p.line)).collect();
    assert_eq!(
        pairs,
        vec![
            ("key1", "value1", 3),
            ("key2", "value two", 4),
            ("key3", "spaced value", 5),
            ("long", "first second third", 6),
            ("escaped=key", "tab\there", 9),
            ("unicode", "ABC", 10),
            ("empty", "", 11),
            ("lonely", "", 12),
        ]
    );
    let error = parse_properties("a=\\u12\n").unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");
}

#[test]
fn a_continued_line_reports_its_first_line_number() {
    let error = ServerConfig::parse("dataDir=/d\ntickTime=\\\n  abc\n").unwrap_err();
    assert!(error.to_string().contains("line 2"), "{error}");
}

#[test]
fn standalone_default() {
    let config = ServerConfig::standalone_default();
    assert_eq!(config.client_port, 2181);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.data_log_dir, PathBuf::from("./data"));
    assert_eq!(config.core.tick_time_ms, 2000);
    assert_eq!(config.core.ensemble_config_text, None, "standalone: /zookeeper/config empty");
    for word in [
        "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump",
        "isro",
    ] {
        assert!(config.four_letter_words.allows(word), "{word}");
    }
    assert!(!config.four_letter_words.allows("stmk"));
    assert!(config.warnings.is_empty());
}

#[test]
fn conf_lines_in_zookeeper_order() {
    let config = ServerConfig::parse(ZOO_SAMPLE_CFG).unwrap();
    let lines = config.to_conf_lines();
    let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "clientPort",
            "secureClientPort",
            "dataDir",
            "dataDirSize",
            "dataLogDir",
            "dataLogSize",
            "tickTime",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "clientPortListenBacklog",
            "serverId",
        ]
    );
    let get = |key: &str| lines.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(get("dataDir"), "/tmp/zookeeper/version-2");
    assert_eq!(get("tickTime"), "2000");
    assert_eq!(get("minSessionTimeout"), "4000");
    assert_eq!(get("serverId"), "0");
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("zkr-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("zoo.cfg");
    std::fs::write(&good, ZOO_SAMPLE_CFG).unwrap();
    assert_eq!(ServerConfig::load(&good).unwrap().client_port, 2181);
    let bad = dir.join("bad.cfg");
    std::fs::write(&bad, "dataDir=/d\nclientPort=x\n").unwrap();
    let message = ServerConfig::load(&bad).unwrap_err().to_string();
    assert!(message.contains("bad.cfg") && message.contains("line 2"), "{message}");
    let missing = ServerConfig::load(&dir.join("absent.cfg")).unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }));
    // Quorum mode reads myid from dataDir.
    let quorum = dir.join("quorum.cfg");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "2\n").unwrap();
    let text = format!(
        "dataDir={}\ntickTime=2000\nserver.1=a:2888:3888\nserver.2=b:2888:3888\n",
        data.display()
    );
    std::fs::write(&quorum, text).unwrap();
    let config = ServerConfig::load(&quorum).unwrap();
    assert_eq!(config.core.server_id.0, 2);
    let members = "server.1=a:2888:3888:participant\nserver.2=b:2888:3888:participant\nversion=0";
    assert_eq!(config.core.ensemble_config_text.as_deref(), Some(members), "for the core");
    assert_eq!(config.to_conf_lines().iter().find(|(k, _)| k == "serverId").unwrap().1, "2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connection_bounds_default_to_zookeepers_and_can_be_set() {
    let defaults = ServerConfig::parse("dataDir=/d\nclientPort=1\ntickTime=2000\n").unwrap();
    let policy = defaults.conn_policy();
    assert_eq!(policy.handshake_timeout, Duration::from_secs(10), "NIO sessionlessCnxnTimeout");
    assert_eq!(policy.outstanding_max, 1000, "globalOutstandingLimit");
    assert_eq!(policy.output_bytes_max, 1 << 20);
    assert_eq!(policy.write_stall_timeout, Duration::from_secs(40), "maxSessionTimeout");
    let text = "dataDir=/d\nclientPort=1\ntickTime=2000\n\
                zookeeper.nio.sessionlessCnxnTimeout=1500\nglobalOutstandingLimit=7\n\
                zkr.clientOutputLimitBytes=4194304\nzkr.clientWriteStallMs=900\nmaxCnxns=5\n";
    let config = ServerConfig::parse(text).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let policy = config.conn_policy();
    assert_eq!(policy.handshake_timeout, Duration::from_millis(1500));
    assert_eq!(policy.outstanding_max, 7);
    assert_eq!(policy.output_bytes_max, 4 << 20);
    assert_eq!(policy.write_stall_timeout, Duration::from_millis(900));
    assert_eq!((defaults.max_cnxns, config.max_cnxns), (0, 5), "maxCnxns: 0 = unlimited");
    // The output bound is never below one whole frame (a single reply must fit).
    let small = ServerConfig::parse("dataDir=/d\nzkr.clientOutputLimitBytes=10\n").unwrap();
    assert_eq!(small.conn_policy().output_bytes_max, small.core.max_frame_bytes);
    assert!(ServerConfig::parse("dataDir=/d\nglobalOutstandingLimit=0\n").is_err());
}

#[test]
fn the_watch_limit_defaults_high_and_zero_means_unlimited() {
    let defaults = ServerConfig::parse("dataDir=/d\n").unwrap();
    assert_eq!(defaults.core.max_watches_per_session, 1_000_000);
    let set = ServerConfig::parse("dataDir=/d\nzkr.maxWatchesPerSession=50\n").unwrap();
    assert!(!set.warnings.iter().any(|w| w.contains("maxWatches")), "{:?}", set.warnings);
    assert_eq!(set.core.max_watches_per_session, 50);
    let off = ServerConfig::parse("dataDir=/d\nzkr.maxWatchesPerSession=0\n").unwrap();
    assert_eq!(off.core.max_watches_per_session, 0);
    assert!(ServerConfig::parse("dataDir=/d\nzkr.maxWatchesPerSession=-1\n").is_err());
}

/// `zkr.bugs` and `zkr.diskFaultFile` break the server on purpose (for `jepsen test`): a build
/// without the `bugs` feature must refuse them, naming the key; one with it takes them.
#[test]
fn test_only_keys_need_the_bugs_feature() {
    let text = "dataDir=/tmp/zkr-bugs\nzkr.bugs=commit-after-one-ack, durable-before-fsync\n";
    let disk = "dataDir=/tmp/zkr-bugs\nzkr.diskFaultFile=/tmp/zkr-bugs/disk\n";
    if cfg!(feature = "bugs") {
        let config = ServerConfig::parse(text).expect("a bugs build takes them");
        assert!(config.core.bugs.commit_after_one_ack);
        assert!(config.shell_bugs.durable_before_fsync);
        let config = ServerConfig::parse(disk).expect("a bugs build takes the fault file");
        assert_eq!(config.disk_fault_file, Some(PathBuf::from("/tmp/zkr-bugs/disk")));
        let error = ServerConfig::parse("dataDir=/d\nzkr.bugs=no-such-bug\n").unwrap_err();
        assert!(error.to_string().contains("no-such-bug"), "{error}");
    } else {
        for text in [text, disk] {
            let error = ServerConfig::parse(text).expect_err("a production build refuses");
            assert!(error.to_string().contains("zkr."), "names the key: {error}");
            assert!(error.to_string().contains("`bugs` feature"), "says why: {error}");
        }
    }
    let plain = ServerConfig::parse("dataDir=/d\n").expect("no test keys");
    assert_eq!(plain.core.bugs, Default::default());
    assert_eq!(plain.disk_fault_file, None);
}

/// The AdminServer is off unless asked for (ZooKeeper's default is on; see
/// `config::AdminServerConfig`), on ZooKeeper's port and URL by default, and takes its keys
/// from zoo.cfg or the system-property spelling.
#[test]
fn admin_server_keys() {
    let off = ServerConfig::parse("dataDir=/tmp/z\n").expect("parses");
    assert!(!off.admin.enabled);
    assert_eq!((off.admin.port, off.admin.command_url.as_str()), (8080, "/commands"));
    assert_eq!(off.admin.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let text = "dataDir=/tmp/z\nadmin.enableServer=true\nadmin.serverAddress=127.0.0.1\n\
                zookeeper.admin.serverPort=9090\nadmin.commandURL=/zk/\n";
    let on = ServerConfig::parse(text).expect("parses");
    assert!(on.admin.enabled);
    assert_eq!(on.admin.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!((on.admin.port, on.admin.command_url.as_str()), (9090, "/zk"));
    assert_eq!(on.initial_text, text, "kept for initial_configuration");
    assert_bad_value("admin.serverPort=http", "admin.serverPort");
    assert_bad_value("admin.enableServer=maybe", "admin.enableServer");
    assert_bad_value("admin.commandURL=commands", "admin.commandURL");
}

/// `-Dzookeeper.admin.enableServer=true` in `SERVER_JVMFLAGS`, ZooKeeper's usual spelling,
/// turns the AdminServer on as the zoo.cfg key does.
#[test]
fn admin_server_from_jvm_flags() {
    let flags = zkr_server::security::jvm_flag_properties(
        "-Xmx1g -Dzookeeper.admin.enableServer=true -Dzookeeper.admin.serverPort=9191",
        "",
    );
    let config = ServerConfig::parse_with_flags("dataDir=/tmp/z\n", &flags).expect("parses");
    assert!(config.admin.enabled);
    assert_eq!(config.admin.port, 9191);
}
