//! `jepsen test` against a real three-server zkr ensemble on loopback: a short run with kills,
//! pauses, partitions and packet loss must be valid, and the history it recorded, with one
//! read's value replaced by a value nobody wrote, must be reported. Servers built with a
//! deliberate bug (`zkr-server --features bugs`, `zkr.bugs` in zoo.cfg) must be reported, the
//! same run without the bug must pass, and clock and disk faults must be injected and
//! recorded. Packet loss and bridge partitions must act and be removed; and the same kind of
//! run against Apache ZooKeeper (Debian's package) must be valid.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use zkr_jepsen::run::{self, Fault, TestOptions, cluster};
use zkr_jepsen::{History, Kind, Options, check};

/// A base port whose ports are all free for 3 members (see `jepsen::run::cluster`), inside
/// `ZKR_TEST_PORTS` (`low-high`) when it is set, else below Linux's ephemeral range (32768 and
/// up): a member killed by the nemesis rebinds its ports on restart, and meanwhile any outgoing
/// connection (a worker's, a proxy's, a `srvr` probe's) may be given one of them as its local
/// port if they lie in that range, and the restart then fails with "address in use".
fn free_base() -> u16 {
    let (low, high) = std::env::var("ZKR_TEST_PORTS")
        .ok()
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?))
        })
        .filter(|(a, b)| a.checked_add(400).is_some_and(|a| a < *b))
        .unwrap_or((20_000, 32_000));
    // Each call starts elsewhere: the tests of this file each start an ensemble.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let span = high - low - 320;
    let start = ((std::process::id() % 200) as u16 * 50 + call * 331) % span;
    (0..100)
        .map(|k| low + (start + k * 7) % span)
        .find(|base| {
            // Client, quorum and election ports, and the proxies at +300..+318.
            let members = (0..3u16).flat_map(|i| [base + i, base + 100 + i, base + 200 + i]);
            let ports = members.chain((0..18).map(|k| base + 300 + k));
            let held: Vec<_> = ports.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
            held.iter().all(|l| l.is_ok())
        })
        .expect("a free range of ports")
}

/// The runs of this file one at a time: they measure timeouts, which a 2-core machine running
/// three ensembles at once would stretch.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_short_run_under_kills_pauses_and_partitions_is_valid_and_a_corrupted_copy_is_not() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::env::temp_dir().join(format!("zkr-jepsen-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let launch = cluster::Launch::Zkr(zkr_tests::server::zkr_bin());
    // In a network namespace of its own, so packet loss is among the faults.
    let setup = cluster::Setup { proxied: true, netns: true, ..cluster::Setup::default() };
    let servers = cluster::Cluster::start(launch, 3, free_base(), &out.join("servers"), &setup)
        .expect("the ensemble starts");
    assert!(servers.wait_ready(Duration::from_secs(30)), "a leader within 30 s");
    let options = TestOptions {
        clients: 4,
        duration: Duration::from_secs(15),
        seed: 7,
        faults: vec![Fault::Kill, Fault::Pause, Fault::Partition, Fault::Loss],
        fault_interval: Duration::from_secs(3),
        keys: 4,
        session_timeout_ms: 10_000,
        call_timeout: Duration::from_secs(2),
        out: out.clone(),
    };
    let outcome = run::run(servers, &options).expect("the run completes");
    assert!(
        outcome.valid,
        "zkr passes under kills, pauses, partitions, loss:\n{}",
        outcome.summary
    );
    let faults = std::fs::read_to_string(out.join("faults.txt")).expect("fault log");
    assert!(faults.lines().count() >= 4, "faults were injected and healed:\n{faults}");
    let text = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    let history = History::parse(&text).expect("the recorded history parses");
    let exact = zkr_jepsen::history::SyncZxid::Exact;
    assert_eq!(history.header.sync_zxid, exact, "zkr's syncs are checked at full strength");
    assert!(!history.faults().is_empty(), "the faults are in the history as nemesis lines");
    let names: Vec<String> = history.faults().into_iter().map(|f| f.name).collect();
    assert!(!names.iter().any(|n| n.contains("not injected")), "all injected: {names:?}");
    let oks = history.events.iter().filter(|e| e.kind == Some(Kind::Ok)).count();
    assert!(oks > 200, "the workload made progress: {oks} ok ops");
    // The workload's kinds of op all ran: ephemerals, multis, syncs then reads, closes, and
    // watches whose notifications were recorded.
    let invoked = |f: zkr_jepsen::F| {
        history.events.iter().any(|e| e.kind == Some(Kind::Invoke) && e.f == Some(f))
    };
    for f in [zkr_jepsen::F::Multi, zkr_jepsen::F::Sync, zkr_jepsen::F::Close] {
        assert!(invoked(f), "{f:?} in the workload");
    }
    let ephemeral = history.events.iter().any(|e| e.mode.is_some_and(|m| m.is_ephemeral()));
    assert!(ephemeral, "ephemerals in the workload");
    let events = history.events.iter().filter(|e| e.kind == Some(Kind::Event)).count();
    assert!(events > 0, "watch notifications recorded");
    // Each op that got no reply is followed by its session's close, which `reattach.txt`
    // says how it ended; a close completed `ok` is one a member answered.
    let lost = history
        .events
        .iter()
        .filter(|e| e.kind == Some(Kind::Info) && e.f != Some(zkr_jepsen::F::Close))
        .count();
    let reattaches = std::fs::read_to_string(out.join("reattach.txt")).expect("reattach log");
    assert_eq!(reattaches.lines().count(), lost, "a line per lost session:\n{reattaches}");
    let closed = reattaches.lines().filter(|l| l.contains(": closed after")).count();
    let closes_ok = {
        let mut after_info = std::collections::BTreeSet::new();
        let mut ok = 0;
        for e in &history.events {
            match (e.kind, e.f) {
                (Some(Kind::Info), Some(f)) if f != zkr_jepsen::F::Close => {
                    after_info.insert(e.process);
                }
                (Some(Kind::Ok), Some(zkr_jepsen::F::Close)) => {
                    ok += usize::from(after_info.contains(&e.process));
                }
                _ => {}
            }
        }
        ok
    };
    assert_eq!(closed, closes_ok, "each close the log calls closed is ok in the history");
    let (none, some) = (format!("lost sessions {lost}\n"), format!("lost sessions {lost} ("));
    let counted = outcome.summary.contains(&none) || outcome.summary.contains(&some);
    assert!(counted, "the summary counts them:\n{}", outcome.summary);

    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let read = lines
        .iter()
        .rposition(|l| l.contains("\"type\":\"ok\"") && l.contains("\"data\":\"p"))
        .expect("a successful read of a written value");
    lines[read] = lines[read].replacen("\"data\":\"p", "\"data\":\"never-written-p", 1);
    let corrupted = History::parse(&lines.join("\n")).expect("still well formed");
    let verdict = check(&corrupted, &Options::default()).expect("checks");
    assert!(!verdict.is_valid(), "a value nobody wrote is reported");
    std::fs::remove_dir_all(&out).expect("clean up");
}

/// zkr-server built with the `bugs` feature: `ZKR_SERVER_BUGS_BIN`, or
/// `target/debug/zkr-server-bugs`, which `tests/run-all.sh` builds (`cargo build -p zkr-server
/// --features bugs` copied aside, then the plain build again, so `zkr-server` stays plain).
fn zkr_bugs_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ZKR_SERVER_BUGS_BIN") {
        return PathBuf::from(bin);
    }
    let plain = zkr_tests::server::zkr_bin();
    let bin = plain.with_file_name("zkr-server-bugs");
    assert!(
        bin.is_file(),
        "{} not found: build it with `cargo build -p zkr-server --features bugs && cp \
         target/debug/zkr-server target/debug/zkr-server-bugs && cargo build -p zkr-server` \
         (tests/run-all.sh does), or set ZKR_SERVER_BUGS_BIN",
        bin.display()
    );
    bin
}

/// A run's output directory (history, reports, server logs): removed when dropped, unless the
/// test is failing, so that what its summary points to is still there for the post-mortem.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One short `jepsen test` run on three servers of the `bugs` build with `zoo_cfg` lines and
/// `faults`, a fault every `interval_s` on average; returns whether it was valid, its summary,
/// its history and its directory.
fn short_run(
    name: &str,
    zoo_cfg: &[&str],
    faults: Vec<Fault>,
    secs: u64,
    seed: u64,
    interval_s: u64,
) -> (bool, String, History, RunDir) {
    let out = std::env::temp_dir().join(format!("zkr-jepsen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let launch = cluster::Launch::Zkr(zkr_bugs_bin());
    // Short timeouts (syncLimit 5 × 200 ms), so a silenced leader is given up within the run.
    let mut lines = vec!["tickTime=200".to_string()];
    lines.extend(zoo_cfg.iter().map(|l| l.to_string()));
    let setup = cluster::Setup {
        proxied: faults
            .iter()
            .any(|f| matches!(f, Fault::Partition | Fault::IsolateLeader | Fault::Loss)),
        zoo_cfg: lines,
        faketime: faults.contains(&Fault::Clock),
        disk_faults: faults.contains(&Fault::Disk),
        netns: faults.contains(&Fault::Loss),
    };
    let servers = cluster::Cluster::start(launch, 3, free_base(), &out.join("servers"), &setup)
        .expect("the ensemble starts");
    assert!(servers.wait_ready(Duration::from_secs(30)), "a leader within 30 s ({name})");
    let options = TestOptions {
        clients: 5,
        duration: Duration::from_secs(secs),
        seed,
        faults,
        fault_interval: Duration::from_secs(interval_s),
        keys: 3,
        session_timeout_ms: 4_000,
        call_timeout: Duration::from_secs(2),
        out: out.clone(),
    };
    let outcome = run::run(servers, &options).expect("the run completes");
    let text = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    let history = History::parse(&text).expect("the recorded history parses");
    (outcome.valid, outcome.summary, history, RunDir(out))
}

/// Writes an isolated leader acknowledged on its own: `ok` writes invoked after an
/// `isolate-leader` fault began and completed before it ended, in the epoch of the newest
/// reply before it began, where a later epoch also replied before it ended. The others elected
/// that later leader without those writes (the isolated leader's proposals were held), so they
/// are lost; a correct leader cannot acknowledge them (no follower could ack them before the
/// heal, and a follower still following it at the heal leaves no quorum to elect another).
/// It undercounts: followers that give the leader up before the heal but elect after it lose
/// the writes too (runs reported without any such write were seen), so it only tells a run
/// whose lost writes the checker must find.
fn acknowledged_alone(history: &History) -> usize {
    let epoch = |e: &zkr_jepsen::Event| {
        e.zxid.filter(|z| *z > 0 && matches!(e.kind, Some(Kind::Ok | Kind::Fail))).map(|z| z >> 32)
    };
    let mut count = 0;
    let isolations = history.faults().into_iter().filter(|f| f.name.starts_with("isolate-leader"));
    for fault in isolations {
        let events = &history.events;
        let Some(old) = events[..fault.from].iter().filter_map(epoch).max() else { continue };
        let window = &events[fault.from..=fault.to];
        if !window.iter().filter_map(epoch).any(|e| e > old) {
            continue;
        }
        // Each process has one op in flight: its last invoke is the one a completion ends.
        let mut invoked: std::collections::BTreeMap<u64, zkr_jepsen::F> = Default::default();
        for e in window {
            match e.kind {
                Some(Kind::Invoke) => {
                    invoked.insert(e.process, e.f.expect("an invoke names its function"));
                }
                Some(Kind::Ok) => {
                    let f = invoked.remove(&e.process);
                    let write = f.is_some_and(|f| f.is_write() && f != zkr_jepsen::F::Close);
                    count += usize::from(write && epoch(e) == Some(old));
                }
                _ => {}
            }
        }
    }
    count
}

/// How many runs with the bug may be made before the test gives up on hitting its window.
const BUG_RUNS: u64 = 4;

/// The mean time between isolations in the runs with and without the bug (each held 1-4 s).
const BUG_INTERVAL_S: u64 = 4;

/// The leader commits once its own copy is durable (`commit-after-one-ack`); cut off silently,
/// it keeps acknowledging writes the others never see and elect past, so acknowledged writes
/// are lost: the run must be reported. The same run without the bug must pass.
///
/// Whether a 12 s run opens the bug's window is up to the scheduler: the followers must give
/// the isolated leader up (`syncLimit`, 1 s here) before the heal, or the held proposals reach
/// them and nothing is lost. Under load they often do not: at load 19-32 (2026-12-04) two of
/// six runs with seeds 11-16 were valid, each with isolations held 1.0-2.2 s and no new
/// leader seen until after the heal; the 2026-12-03 failures (two of four at load ~37, ~20
/// ops/s) were presumably the same. So the run is repeated with the next seed, at most
/// [`BUG_RUNS`] times, until one is reported, with isolations held 1-4 s; if none is, the test
/// fails, its message telling runs that never opened the window from runs whose history shows
/// writes surely lost ([`acknowledged_alone`]) that the checker did not report.
#[test]
fn a_deliberate_bug_in_real_servers_is_reported_and_the_run_without_it_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bug = ["zkr.bugs=commit-after-one-ack"];
    let isolate = || vec![Fault::IsolateLeader];
    let mut runs = Vec::new();
    let (valid, summary, history, _bug_dir) = loop {
        let seed = 11 + runs.len() as u64;
        let name = format!("bug{seed}");
        let run = short_run(&name, &bug, isolate(), 12, seed, BUG_INTERVAL_S);
        let alone = acknowledged_alone(&run.2);
        runs.push(format!("seed {seed}: valid {}, {alone} writes acknowledged alone", run.0));
        if !run.0 || runs.len() as u64 == BUG_RUNS {
            break run;
        }
    };
    eprintln!("commit-after-one-ack runs: {runs:?}");
    // A valid run with writes acknowledged alone had its lost writes missed by the checker
    // (or never observed: an isolation healed as the run ends leaves no time to read them).
    assert!(
        !valid,
        "commit-after-one-ack under leader isolation is reported within {BUG_RUNS} runs \
         ({runs:?}):\n{summary}"
    );
    // Lost acknowledged writes show as writes no order explains. A multi that failed against
    // the cut-off leader's state (seen in CI on 2026-12-03: BadVersion where the committed
    // history has NoNode) is named write linearizability too since the diagnosis keeps a
    // failed multi's error (violations.rs,
    // `failed_multi_against_a_state_no_order_has_is_write_linearizability`). An acknowledged
    // multi that was lost whole can still be named multi atomicity (its pieces may all be
    // dropped), so both names stay accepted. The checker reports the first contradiction it
    // meets in each group of keys, and which lost writes there are is the scheduler's
    // choice: under load the only violation found was, in 2 of 8 runs, a lost acknowledged
    // sequential create (a sequence number given out twice, the new leader's counter not
    // having seen it) or a lost acknowledged ephemeral create (a later create of the path
    // contradicting it). So any guarantee about acknowledged writes taking effect is a right
    // diagnosis; one about reads or watches would not be.
    let named = [
        "write linearizability",
        "multi atomicity",
        "sequential names unique and increasing",
        "ephemerals end with their session",
    ];
    assert!(named.iter().any(|g| summary.contains(g)), "names the guarantee:\n{summary}");
    let faults = history.faults();
    let isolations = faults.iter().filter(|f| f.name.starts_with("isolate-leader"));
    assert!(isolations.count() >= 1, "the leader was isolated");
    // Writes are lost only if the others elected past the cut-off leader, and they are seen
    // lost only by replies from that new epoch: the summary counts at least that change, and
    // as many as the history's reply zxids show.
    let epochs: std::collections::BTreeSet<i64> = history
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::Ok | Kind::Fail)))
        .filter_map(|e| e.zxid.filter(|z| *z > 0).map(|z| z >> 32))
        .collect();
    assert!(epochs.len() >= 2, "a new leader served clients: {epochs:?}");
    let counted = format!("leader changes {} ({} epochs", epochs.len() - 1, epochs.len());
    assert!(summary.contains(&counted), "the summary says {counted}:\n{summary}");
    let (valid, summary, history, _nobug_dir) =
        short_run("nobug", &[], isolate(), 12, 11, BUG_INTERVAL_S);
    assert!(valid, "the same run without the bug is valid:\n{summary}");
    // The window's witness counts nothing a correct leader does.
    let alone = acknowledged_alone(&history);
    assert_eq!(alone, 0, "no write is acknowledged alone without the bug:\n{summary}");
}

/// Clock steps and drift (libfaketime) and slow or stalled disks (`zkr.diskFaultFile`) are
/// injected, healed and recorded as nemesis lines; zkr stays valid under them.
#[test]
fn clock_and_disk_faults_are_injected_recorded_and_survived() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let faults = vec![Fault::Clock, Fault::Disk];
    let (valid, summary, history, _dir) = short_run("clock-disk", &[], faults, 12, 11, 3);
    assert!(valid, "zkr is valid under clock and disk faults:\n{summary}");
    let names: Vec<String> = history.faults().into_iter().map(|f| f.name).collect();
    assert!(names.iter().any(|n| n.starts_with("clock n")), "a clock fault: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("disk n")), "a disk fault: {names:?}");
    assert!(!names.iter().any(|n| n.contains("not injected")), "all injected: {names:?}");
}

/// Starts three servers of the `bugs` build (tickTime 200 ms, so `syncLimit` is 1 s) with
/// `setup`; returns them and the leader.
fn small_ensemble(name: &str, setup: cluster::Setup) -> (cluster::Cluster, usize, PathBuf) {
    let out = std::env::temp_dir().join(format!("zkr-jepsen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let launch = cluster::Launch::Zkr(zkr_bugs_bin());
    let setup = cluster::Setup { zoo_cfg: vec!["tickTime=200".into()], ..setup };
    let servers = cluster::Cluster::start(launch, 3, free_base(), &out.join("servers"), &setup)
        .expect("the ensemble starts");
    assert!(servers.wait_ready(Duration::from_secs(30)), "a leader within 30 s ({name})");
    // Asked again with the patient `mode`: `leader()` gives up on a member after 500 ms.
    let mut leader = None;
    let found = within(Duration::from_secs(30), || {
        leader = (0..3).find(|i| mode(&servers, *i) == "leader");
        leader.is_some()
    });
    assert!(found, "the leader answers srvr ({name})");
    (servers, leader.expect("found"), out)
}

/// What member `i` says its mode is (`srvr`), "" if it does not serve. The answer is waited
/// for up to 10 s: `cluster::four_letter` gives up after 500 ms, which a loaded machine can
/// exceed, and a member that leads would then read as one that does not.
fn mode(servers: &cluster::Cluster, i: usize) -> String {
    let addr = servers.addrs()[i];
    let text = zkr_tests::fourlw::four_letter(addr, "srvr", Duration::from_secs(10));
    let text = text.unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").to_string()
}

/// Polls `ok` every 100 ms for at most `limit`; true once it holds.
fn within(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Packet loss (nftables `numgen random` rules in the cluster's own network namespace) acts:
/// at 90% on the leader's segments, its followers give it up and elect another leader. Healed,
/// the rules are gone; dropped, the namespace is gone (no task is left in it, not even this
/// thread, which went back to its own).
#[test]
fn packet_loss_acts_in_the_clusters_namespace_and_is_removed() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = cluster::Setup { netns: true, ..cluster::Setup::default() };
    let (servers, leader, out) = small_ensemble("loss", setup);
    let ns = servers.netns().expect("started in a namespace");
    let inode = ns.inode().expect("the namespace's inode");
    let holder = ns.holder_pid();
    assert!(ns.is_joined(), "this thread runs the clients from inside");
    servers.set_loss(&[leader], 90).expect("loss rules load");
    let rules = ns.ruleset().expect("nft lists the rules");
    assert!(rules.contains("numgen random mod 100 < 90 drop"), "the rule is there:\n{rules}");
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let replaced =
        within(Duration::from_secs(30), || others.iter().any(|i| mode(&servers, *i) == "leader"));
    assert!(replaced, "under 90% loss, n{} is given up and another member leads", leader + 1);
    servers.heal_loss().expect("loss rules removed");
    let rules = ns.ruleset().expect("nft lists the rules");
    assert!(!rules.contains("drop"), "no rule left after the heal:\n{rules}");
    let all_serve = within(Duration::from_secs(30), || {
        (0..3).all(|i| matches!(mode(&servers, i).as_str(), "leader" | "follower"))
    });
    assert!(all_serve, "every member serves again once healed");
    drop(servers);
    assert!(
        !std::path::Path::new(&format!("/proc/{holder}")).exists(),
        "the namespace's holder is gone"
    );
    let left = zkr_jepsen::run::netns::tasks_in(inode);
    assert!(left.is_empty(), "no task is left in the namespace: {left:?}");
    std::fs::remove_dir_all(&out).expect("clean up");
}

/// Whether a connection through the proxy by which member `i` reaches member `j`'s quorum port is
/// carried (open after 300 ms) or refused by a cut (closed at once).
fn link_open(base: u16, i: usize, j: usize) -> bool {
    use std::io::Read;
    let port = base + 300 + 2 * (i * 3 + j) as u16;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        || e.kind() == std::io::ErrorKind::TimedOut)
}

/// A bridge partition around a follower: the other two members cannot reach each other, the
/// bridge reaches both. So the leader keeps its quorum through the bridge (it stays leader and
/// the bridge its follower) while the third member, cut from the leader, stops serving; healed,
/// it follows again.
#[test]
fn a_bridge_keeps_its_member_in_both_halves() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = cluster::Setup { proxied: true, ..cluster::Setup::default() };
    let (servers, leader, out) = small_ensemble("bridge", setup);
    let base = servers.addrs()[0].port();
    let bridge = (leader + 1) % 3;
    let cut_off = (leader + 2) % 3;
    let (left, right) = servers.bridge(bridge);
    let mut halves = [left, right].concat();
    halves.sort();
    let mut expected = vec![leader, cut_off];
    expected.sort();
    assert_eq!(halves, expected, "the halves are the other two members");
    for (i, j) in [(bridge, leader), (leader, bridge), (bridge, cut_off), (cut_off, bridge)] {
        assert!(link_open(base, i, j), "n{} still reaches n{} through the bridge", i + 1, j + 1);
    }
    for (i, j) in [(leader, cut_off), (cut_off, leader)] {
        assert!(!link_open(base, i, j), "n{} and n{} are cut", i + 1, j + 1);
    }
    let gone = within(Duration::from_secs(20), || mode(&servers, cut_off) != "follower");
    assert!(gone, "n{}, cut off from the leader, stops following", cut_off + 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(mode(&servers, leader), "leader", "the leader keeps its quorum via the bridge");
    assert_eq!(mode(&servers, bridge), "follower", "the bridge still follows it");
    assert_ne!(mode(&servers, cut_off), "follower", "the cut-off member still does not");
    servers.heal_partitions();
    assert!(link_open(base, leader, cut_off), "healed");
    let back = within(Duration::from_secs(30), || mode(&servers, cut_off) == "follower");
    assert!(back, "n{} follows again once healed", cut_off + 1);
    drop(servers);
    std::fs::remove_dir_all(&out).expect("clean up");
}

/// Apache ZooKeeper from Debian's package (`tests/setup.sh` installs it), as a `jepsen test`
/// command template: `java` with the package's jars, at most 256 MB of heap per member.
fn apache_launch() -> cluster::Launch {
    let jar = "/usr/share/java/zookeeper.jar";
    assert!(
        std::path::Path::new(jar).is_file(),
        "{jar} missing: install Debian's zookeeper package (bash tests/setup.sh does)"
    );
    let java = std::process::Command::new("java").arg("-version").output();
    assert!(java.is_ok_and(|o| o.status.success()), "java missing (bash tests/setup.sh)");
    let mut cp = jar.to_string();
    let jars = ["netty-codec", "netty-resolver", "netty-transport-native-unix-common"];
    for j in jars.iter().chain(&["netty-all", "slf4j-simple"]) {
        let path = format!("/usr/share/java/{j}.jar");
        if std::path::Path::new(&path).is_file() {
            cp.push(':');
            cp.push_str(&path);
        }
    }
    cluster::Launch::Template(format!(
        "exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp {cp} \
         org.apache.zookeeper.server.quorum.QuorumPeerMain {{cfg}}"
    ))
}

/// The same kind of run against a three-server Apache ZooKeeper 3.8 ensemble (the reference
/// this checker is meant to pass): kills, pauses and partitions, and 0 anomalies.
#[test]
fn a_short_run_against_apache_zookeeper_is_valid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::env::temp_dir().join(format!("zkr-jepsen-apache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let setup = cluster::Setup { proxied: true, ..cluster::Setup::default() };
    let servers =
        cluster::Cluster::start(apache_launch(), 3, free_base(), &out.join("servers"), &setup)
            .expect("the ensemble starts");
    assert!(servers.wait_ready(Duration::from_secs(60)), "a leader within 60 s (JVMs start)");
    let options = TestOptions {
        clients: 4,
        duration: Duration::from_secs(20),
        seed: 5,
        faults: vec![Fault::Kill, Fault::Pause, Fault::Partition],
        fault_interval: Duration::from_secs(3),
        keys: 4,
        session_timeout_ms: 10_000,
        call_timeout: Duration::from_secs(2),
        out: out.clone(),
    };
    let outcome = run::run(servers, &options).expect("the run completes");
    assert!(outcome.valid, "Apache ZooKeeper passes:\n{}", outcome.summary);
    let text = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    let history = History::parse(&text).expect("the recorded history parses");
    // Not zkr (`srvr` says so): a sync's zxid is a lower bound (docs/JEPSEN.md).
    let lower_bound = zkr_jepsen::history::SyncZxid::LowerBound;
    assert_eq!(history.header.sync_zxid, lower_bound, "Apache's leader answers syncs as reads");
    let names: Vec<String> = history.faults().into_iter().map(|f| f.name).collect();
    for kind in ["kill ", "pause ", "partition "] {
        assert!(names.iter().any(|n| n.starts_with(kind)), "a {kind}fault: {names:?}");
    }
    let oks = history.events.iter().filter(|e| e.kind == Some(Kind::Ok)).count();
    assert!(oks > 100, "the workload made progress: {oks} ok ops");
    std::fs::remove_dir_all(&out).expect("clean up");
}
