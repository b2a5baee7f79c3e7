//! `jepsen test` against a real three-server zkr ensemble on loopback: a short run with kills,
//! pauses and partitions must be valid, and the history it recorded, with one read's value
//! replaced by a value nobody wrote, must be reported.

use std::net::TcpListener;
use std::time::Duration;

use zkr_jepsen::run::{self, Fault, TestOptions, cluster};
use zkr_jepsen::{History, Kind, Options, check};

/// A base port whose ports are all free for 3 members (see `jepsen::run::cluster`).
fn free_base() -> u16 {
    let start = 30_000 + (std::process::id() % 200) as u16 * 50;
    (0..100)
        .map(|k| start.wrapping_add(k * 7) % 20_000 + 20_000)
        .find(|base| {
            // Client, quorum and election ports, and the proxies at +300..+318.
            let members = (0..3u16).flat_map(|i| [base + i, base + 100 + i, base + 200 + i]);
            let ports = members.chain((0..18).map(|k| base + 300 + k));
            let held: Vec<_> = ports.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
            held.iter().all(|l| l.is_ok())
        })
        .expect("a free range of ports")
}

#[test]
fn a_short_run_under_kills_pauses_and_partitions_is_valid_and_a_corrupted_copy_is_not() {
    let out = std::env::temp_dir().join(format!("zkr-jepsen-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let launch = cluster::Launch::Zkr(zkr_tests::server::zkr_bin());
    let servers = cluster::Cluster::start(launch, 3, free_base(), &out.join("servers"), true)
        .expect("the ensemble starts");
    assert!(servers.wait_ready(Duration::from_secs(30)), "a leader within 30 s");
    let options = TestOptions {
        clients: 4,
        duration: Duration::from_secs(15),
        seed: 7,
        faults: vec![Fault::Kill, Fault::Pause, Fault::Partition],
        fault_interval: Duration::from_secs(3),
        keys: 4,
        session_timeout_ms: 10_000,
        call_timeout: Duration::from_secs(2),
        out: out.clone(),
    };
    let outcome = run::run(servers, &options).expect("the run completes");
    assert!(outcome.valid, "zkr passes under kills and pauses:\n{}", outcome.summary);
    let faults = std::fs::read_to_string(out.join("faults.txt")).expect("fault log");
    assert!(faults.lines().count() >= 4, "faults were injected and healed:\n{faults}");
    let text = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    let history = History::parse(&text).expect("the recorded history parses");
    assert!(!history.faults().is_empty(), "the faults are in the history as nemesis lines");
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
