//! A real three-server zkr ensemble on loopback: an election, writes through a follower that
//! every server then serves, the leader killed with SIGKILL, a new leader taking over with
//! nothing committed lost, and the old leader rejoining as a follower (zkr target only). Every
//! member serves the membership at `/zookeeper/config` (getConfig, zkCli.sh `config`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use zkr_tests::client::PERSISTENT;
use zkr_tests::ensemble::{Member, three_members, wait_for_roles};
use zkr_tests::fourlw::four_letter;
use zkr_tests::server::Target;
use zkr_tests::tools::{require, run_bounded, zkcli};
use zkr_tests::{op, within};
use zookeeper_client::Client;

fn ensemble(root: &Path) -> Vec<Member> {
    three_members(root, |_, _| String::new())
}

async fn client(member: &Member) -> Client {
    let hosts = format!("127.0.0.1:{}", member.client_port);
    let connect = Client::connector().with_session_timeout(Duration::from_secs(10)).connect(&hosts);
    within(Duration::from_secs(30), "connect to an ensemble member", connect)
        .await
        .expect("connected")
}

/// `/zookeeper/config` as Apache ZooKeeper 3.8 serves it for these `server.N` lines (which give
/// no client port): `server.N=host:quorum:election:participant` lines, then `version=0`.
fn expected_config(member: &Member) -> String {
    let cfg = std::fs::read_to_string(member.dir.join("zoo.cfg")).unwrap();
    let mut text: String = cfg
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(|l| format!("{l}:participant\n"))
        .collect();
    text.push_str("version=0");
    text
}

/// Every member serves the membership at /zookeeper/config (a client's getConfig), as
/// ZooKeeper's `config` command (zkCli.sh) shows it.
async fn check_config_node(members: &[Member]) {
    let expected = expected_config(&members[0]);
    for m in members {
        let zk = client(m).await;
        let (data, stat) = op("getConfig", zk.get_config()).await;
        assert_eq!(String::from_utf8_lossy(&data), expected, "server {}", m.id);
        assert_eq!((stat.version, stat.mzxid), (-1, 0), "ZooKeeper's stat of the config node");
    }
    let Some(cli) = require("zkCli.sh", zkcli()) else { return };
    let mut cmd = Command::new(cli);
    cmd.arg("-server").arg(format!("127.0.0.1:{}", members[1].client_port)).arg("config");
    let out = run_bounded(&mut cmd, "", Duration::from_secs(120));
    assert!(out.success(), "zkCli config: {}{}", out.stdout, out.stderr);
    let shown: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("server.")).collect();
    let wanted: Vec<&str> = expected.lines().filter(|l| l.starts_with("server.")).collect();
    assert_eq!(shown, wanted, "zkCli.sh config:\n{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l == "version=0"), "{}", out.stdout);
}

/// The leader's `mntr` carries ZooKeeper's leader gauges (issue 12): both followers connected
/// and synced; a follower's has none of them.
fn check_leader_gauges(members: &[Member], leader: usize) {
    let mntr = |m: &Member| {
        let addr = format!("127.0.0.1:{}", m.client_port).parse().unwrap();
        four_letter(addr, "mntr", Duration::from_secs(2)).expect("mntr")
    };
    let wanted = ["zk_learners\t2", "zk_synced_followers\t2", "zk_synced_observers\t0"];
    // Followers report their mode before the leader has their NEWLEADER ack: allow a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = mntr(&members[leader]);
        let missing: Vec<&str> =
            wanted.iter().copied().filter(|w| !text.lines().any(|l| l == *w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "leader's mntr lacks {missing:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let follower = mntr(&members[(leader + 1) % 3]);
    assert!(!follower.contains("zk_learners"), "a follower reports no learners:\n{follower}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_elect_replicate_fail_over_and_rejoin() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = std::env::temp_dir().join(format!("zkr-ensemble-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut members = ensemble(&root);
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "start-up");
    check_config_node(&members).await;
    check_leader_gauges(&members, leader);
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    let zk = client(&members[follower]).await;
    op("create via a follower", zk.create("/e2e", b"one", &PERSISTENT)).await;
    let zk_other = client(&members[other]).await;
    op("sync", zk_other.sync("/e2e")).await;
    let (data, stat) = op("read on another follower", zk_other.get_data("/e2e")).await;
    assert_eq!(data, b"one");
    assert_eq!(stat.czxid >> 32, stat.mzxid >> 32, "an epoch-numbered zxid");
    assert!(stat.czxid >> 32 >= 1, "ensemble zxids carry an epoch ≥ 1");
    drop(zk);
    drop(zk_other);

    members[leader].kill9();
    let new_leader = wait_for_roles(&members, 2, "after killing the leader");
    assert_ne!(new_leader, leader);
    for m in members.iter().filter(|m| m.id != members[leader].id) {
        // The survivors elect because the leader's connection closed, not after syncLimit.
        let log = m.log();
        assert!(log.contains("lost the connection to the leader"), "server {}: {log}", m.id);
        assert!(!log.contains("leader silent"), "server {} waited for silence: {log}", m.id);
    }
    let zk = client(&members[new_leader]).await;
    let (data, _) = op("committed data survives", zk.get_data("/e2e")).await;
    assert_eq!(data, b"one");
    op("write after fail-over", zk.create("/after", b"two", &PERSISTENT)).await;
    drop(zk);

    members[leader].start();
    let settled = wait_for_roles(&members, 3, "after the old leader restarts");
    assert_eq!(settled, new_leader, "the old leader rejoins as a follower");
    let zk = client(&members[leader]).await;
    op("sync", zk.sync("/after")).await;
    let (data, _) = op("the rejoined server has the new write", zk.get_data("/after")).await;
    assert_eq!(data, b"two");
    drop(zk);
    drop(members);
    let _ = std::fs::remove_dir_all(&root);
}

/// Issue 16: a follower that missed more txns than the leader keeps in memory (500) is synced
/// by a DIFF read from the leader's txn log files, not by a SNAP, and ends with the leader's
/// data (same zxid, same tree digest through `hash`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_missed_3000_writes_rejoins_by_a_diff_from_the_leaders_log() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = std::env::temp_dir().join(format!("zkr-diskdiff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut members = ensemble(&root);
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "start-up");
    let follower = (leader + 1) % 3;
    members[follower].kill9();
    let zk = client(&members[leader]).await;
    op("create the parent", zk.create("/missed", b"", &PERSISTENT)).await;
    for window in 0..30 {
        // Pipelined: each create is sent when called; the replies are awaited after.
        let data = vec![b'x'; 100];
        let paths: Vec<String> =
            (0..100).map(|i| format!("/missed/n{}", window * 100 + i)).collect();
        let pending: Vec<_> = paths.iter().map(|p| zk.create(p, &data, &PERSISTENT)).collect();
        for reply in pending {
            reply.await.expect("create");
        }
    }
    members[follower].start();
    wait_for_roles(&members, 3, "after the follower restarts");
    let leader_log = members[leader].log();
    assert!(
        leader_log.contains("syncing a learner by DIFF from the txn log files"),
        "the leader read its log files:\n{leader_log}"
    );
    let follower_log = members[follower].log();
    assert!(!follower_log.contains("installing the leader's snapshot"), "no SNAP:\n{follower_log}");
    let zk_follower = client(&members[follower]).await;
    op("sync", zk_follower.sync("/missed")).await;
    let children = op("children on the follower", zk_follower.get_children("/missed")).await;
    assert_eq!(children.0.len(), 3000);
    let hash = |m: &Member| {
        let addr = format!("127.0.0.1:{}", m.client_port).parse().unwrap();
        four_letter(addr, "hash", Duration::from_secs(2)).expect("hash")
    };
    // The follower applies the last commit a moment after the leader: wait for equal zxids.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hash(&members[leader]) != hash(&members[follower]) {
        assert!(
            Instant::now() < deadline,
            "{} vs {}",
            hash(&members[leader]),
            hash(&members[follower])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(zk);
    drop(zk_follower);
    drop(members);
    let _ = std::fs::remove_dir_all(&root);
}
