//! Crash recovery: a write load of creates from several sessions, `kill -9` of the server while
//! creates are in flight, restart on the same data dir, then every acknowledged create must be
//! there with its data, nothing that was never sent may appear, and each session's creates must
//! survive as a prefix of what it sent (sessions are FIFO, so no gaps). Two crash rounds, so the
//! second recovery also replays what the first recovery wrote.
//!
//! Runs on both targets: for Apache, [`TestServer::kill9`] / `start_again` relaunch the JVM with
//! its recorded argv on the same data dir.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zkr_tests::client::PERSISTENT;
use zkr_tests::{TestServer, connect, op, wait_until, within};

const WRITERS: usize = 4;
const ACKS_BEFORE_CRASH: usize = 300;

#[derive(Default)]
struct Ledger {
    /// Paths whose create was acknowledged with Ok.
    acked: BTreeSet<String>,
    /// Paths whose create was sent (acknowledged or not).
    sent: BTreeSet<String>,
}

fn node_path(round: usize, writer: usize, i: usize) -> String {
    format!("/load/r{round}-w{writer}-{i:06}")
}

fn node_data(path: &str) -> Vec<u8> {
    format!("data of {path}").into_bytes()
}

/// Runs WRITERS sequential create loops until `stop`; returns when all have ended.
async fn load_until_crash(server: &mut TestServer, round: usize, ledger: Arc<Mutex<Ledger>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let zk = connect(server).await;
        let stop = stop.clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = node_path(round, writer, i);
                ledger.lock().unwrap().sent.insert(path.clone());
                let data = node_data(&path);
                let create = zk.create(&path, &data, &PERSISTENT);
                match tokio::time::timeout(Duration::from_secs(10), create).await {
                    Ok(Ok(_)) => {
                        ledger.lock().unwrap().acked.insert(path);
                    }
                    // Connection loss or timeout once the server is gone: this writer is done.
                    _ => break,
                }
            }
        }));
    }
    let target = ACKS_BEFORE_CRASH * (round + 1);
    wait_until(Duration::from_secs(120), "enough acknowledged creates", || {
        let ledger = ledger.clone();
        async move { ledger.lock().unwrap().acked.len() >= target }
    })
    .await;
    server.kill9(); // while the writers are still sending
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        within(Duration::from_secs(60), "writer task ends", task).await.expect("writer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_kill_9() {
    let mut server = TestServer::start();
    {
        let zk = connect(&server).await;
        op("create /load", zk.create("/load", b"", &PERSISTENT)).await;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..2 {
        load_until_crash(&mut server, round, ledger.clone()).await;
        server.start_again();
    }

    let zk = connect(&server).await;
    let children = op("ls /load", zk.list_children("/load")).await;
    let present: BTreeSet<String> = children.iter().map(|c| format!("/load/{c}")).collect();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let lost: Vec<&String> = ledger.acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let phantom: Vec<&String> = present.difference(&ledger.sent).collect();
    assert!(phantom.is_empty(), "nodes nobody created: {phantom:?}");
    for round in 0..2 {
        for writer in 0..WRITERS {
            let kept: Vec<usize> = (0..)
                .map(|i| node_path(round, writer, i))
                .take_while(|p| ledger.sent.contains(p))
                .enumerate()
                .filter(|(_, p)| present.contains(p))
                .map(|(i, _)| i)
                .collect();
            let prefix: Vec<usize> = (0..kept.len()).collect();
            assert_eq!(kept, prefix, "round {round} writer {writer}: creates kept with a gap");
        }
    }
    println!(
        "crash test: {} acknowledged, {} sent, {} present after 2 kill -9 rounds",
        ledger.acked.len(),
        ledger.sent.len(),
        present.len()
    );
    for path in ledger.acked.iter().step_by(37) {
        let (data, _) = op("get acked node", zk.get_data(path)).await;
        assert_eq!(data, node_data(path), "{path}");
    }
}
