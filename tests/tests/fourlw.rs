//! Four-letter words (ruok, srvr, stat, mntr, conf, isro), the whitelist refusal message, and
//! clean shutdown on SIGTERM.

use zkr_tests::client::{EPHEMERAL, PERSISTENT};
use zkr_tests::{ServerOptions, TestServer, connect, op};

/// `key<TAB>value` from mntr output.
fn mntr_value(mntr: &str, key: &str) -> Option<i64> {
    mntr.lines().find_map(|line| {
        let (k, v) = line.split_once('\t')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

/// The `Zxid: 0x<hex>` value from srvr/stat output.
fn srvr_zxid(text: &str) -> i64 {
    let line = text.lines().find(|l| l.starts_with("Zxid: 0x")).expect("a Zxid: line");
    i64::from_str_radix(line.trim_start_matches("Zxid: 0x").trim(), 16).expect("hex zxid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_report_the_server_state() {
    let server = TestServer::start();
    assert_eq!(server.four_letter("ruok"), "imok");
    assert_eq!(server.four_letter("isro"), "rw");

    let srvr = server.four_letter("srvr");
    for needle in ["Zookeeper version: ", "Mode: standalone", "Zxid: 0x", "Node count: "] {
        assert!(srvr.contains(needle), "srvr lacks {needle:?}:\n{srvr}");
    }
    let mntr = server.four_letter("mntr");
    let znodes_before = mntr_value(&mntr, "zk_znode_count").expect("zk_znode_count");
    assert!(mntr.contains("zk_server_state\tstandalone"), "{mntr}");
    assert_eq!(mntr_value(&mntr, "zk_ephemerals_count"), Some(0), "{mntr}");

    let zk = connect(&server).await;
    op("create /a", zk.create("/a", b"", &PERSISTENT)).await;
    op("create /a/b", zk.create("/a/b", b"", &PERSISTENT)).await;
    let (last, _) = op("create /e", zk.create("/e", b"", &EPHEMERAL)).await;

    let srvr = server.four_letter("srvr");
    assert!(srvr_zxid(&srvr) >= last.czxid, "srvr zxid behind the last write:\n{srvr}");
    let mntr = server.four_letter("mntr");
    assert_eq!(mntr_value(&mntr, "zk_znode_count"), Some(znodes_before + 3), "{mntr}");
    assert_eq!(mntr_value(&mntr, "zk_ephemerals_count"), Some(1), "{mntr}");
    assert!(mntr_value(&mntr, "zk_num_alive_connections").is_some_and(|n| n >= 1), "{mntr}");

    let stat = server.four_letter("stat");
    for needle in ["Zookeeper version: ", "Clients:", "Mode: standalone", "Zxid: 0x"] {
        assert!(stat.contains(needle), "stat lacks {needle:?}:\n{stat}");
    }
    let conf = server.four_letter("conf");
    for needle in [
        format!("clientPort={}", server.port()),
        "tickTime=2000".to_string(),
        "minSessionTimeout=4000".to_string(),
        "maxSessionTimeout=40000".to_string(),
    ] {
        assert!(conf.lines().any(|l| l == needle), "conf lacks {needle:?}:\n{conf}");
    }
}

#[test]
fn commands_outside_the_whitelist_are_refused() {
    let server =
        TestServer::start_with(ServerOptions::new().set("4lw.commands.whitelist", "ruok, stat"));
    assert_eq!(server.four_letter("ruok"), "imok");
    assert!(server.four_letter("stat").contains("Mode: standalone"));
    assert!(server.four_letter("srvr").contains("Mode: standalone"), "srvr is always allowed");
    for cmd in ["conf", "mntr", "envi"] {
        assert_eq!(
            server.four_letter(cmd),
            format!("{cmd} is not executed because it is not in the whitelist.\n")
        );
    }
}

#[test]
fn sigterm_shuts_the_server_down_cleanly() {
    let server = TestServer::start();
    if server.target().is_apache() {
        eprintln!("NOTE: skipped for apache: the JVM exits with 143 on SIGTERM");
        return;
    }
    let port = server.port();
    let status = server.stop().expect("our own child process");
    assert!(status.success(), "zkr-server exit status after SIGTERM: {status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the client port is closed after shutdown"
    );
}
