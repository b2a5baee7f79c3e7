//! Scenario scripts (`core/testdata/*.txt`, language in `scenario/mod.rs`) run against pure core
//! nodes; each transcript is a golden file (`core/testdata/snapshots/`). Scripts named after
//! ZooKeeper's Zab bugs also run with the deliberate bug that reintroduces the bug switched on,
//! and must then report the violation (core's `bugs` feature, enabled for this crate's tests by
//! its dev-dependency on itself).

mod scenario;

use zkr_core::config::Bugs;
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{SessionId, Zxid};

/// Compares a transcript with its golden file `core/testdata/snapshots/NAME.snap` (update with
/// `INSTA_UPDATE=always` or `cargo insta review`).
fn snapshot(name: &str, transcript: &str) {
    insta::with_settings!({
        snapshot_path => "../testdata/snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, transcript);
    });
}

/// Runs a script with no bug: every check passes and the transcript matches its golden file.
fn golden(name: &str) {
    let outcome = scenario::run_file(name, Bugs::default());
    assert!(
        outcome.failures.is_empty(),
        "{name} failed: {:?}\n{}",
        outcome.failures,
        outcome.transcript
    );
    snapshot(name, &outcome.transcript);
}

/// Runs a script with a deliberate bug: the named check must report a violation. The
/// transcript is kept too (`NAME@bug`), as the evidence of how it fails.
fn fails_with(name: &str, bugs: Bugs, check: &str) {
    let outcome = scenario::run_file(name, bugs);
    assert!(
        outcome.failures.iter().any(|(c, _)| c == check),
        "{name} with the bug must fail `{check}`; failures: {:?}\n{}",
        outcome.failures,
        outcome.transcript
    );
    snapshot(&format!("{name}@bug"), &outcome.transcript);
}

#[test]
fn basics() {
    golden("basics");
}

#[test]
fn zk1154_diff_instead_of_trunc() {
    let name = "zk1154_diff_instead_of_trunc";
    golden(name);
    fails_with(name, Bugs { diff_instead_of_trunc: true, ..Bugs::default() }, "agreement");
}

#[test]
fn zk3911_ack_newleader_before_sync() {
    let name = "zk3911_ack_newleader_before_sync";
    golden(name);
    let bugs = Bugs { ack_newleader_before_sync: true, ..Bugs::default() };
    fails_with(name, bugs, "durable-committed");
}

#[test]
fn zk4643_epoch_before_sync() {
    let name = "zk4643_epoch_before_sync";
    golden(name);
    fails_with(name, Bugs { epoch_before_sync: true, ..Bugs::default() }, "durable-committed");
}

#[test]
fn zk2845_trunc_keeps_memory() {
    let name = "zk2845_trunc_keeps_memory";
    golden(name);
    fails_with(name, Bugs { trunc_keeps_memory: true, ..Bugs::default() }, "agreement");
}

#[test]
fn zk1675_stale_leader_sync() {
    let name = "zk1675_stale_leader_sync";
    golden(name);
    // Two defences now: the leader steps down by syncLimit, and a sync needs a quorum's
    // proof that it still leads. Only both broken bring the stale read back.
    let bugs = Bugs { stale_leader_lease: true, sync_without_quorum: true, ..Bugs::default() };
    fails_with(name, bugs, "no-stale-read");
}

#[test]
fn paper_integrity() {
    golden("paper_integrity");
}

#[test]
fn paper_total_order() {
    golden("paper_total_order");
}

#[test]
fn paper_agreement() {
    golden("paper_agreement");
}

#[test]
fn paper_primary_order() {
    golden("paper_primary_order");
}

#[test]
fn paper_primary_integrity() {
    golden("paper_primary_integrity");
}

#[test]
fn paper_synchronization() {
    golden("paper_synchronization");
}

/// Two leaders established in one epoch (found by this script; fixed in zab). A learner
/// acknowledged a LEADERINFO whose epoch equals its accepted epoch and the leader counted that
/// ACKEPOCH, so two leaders established epoch 1 and both numbered a txn 1:1. Now, as in
/// ZooKeeper, the learner answers with current epoch -1 and the leader does not count it; the
/// `ack_repeated_epoch` switch brings the old behaviour back.
#[test]
fn two_leaders_one_epoch() {
    let name = "two_leaders_one_epoch";
    golden(name);
    let bugs = Bugs { ack_repeated_epoch: true, ..Bugs::default() };
    fails_with(name, bugs.clone(), "one-leader-per-epoch");
    fails_with(name, bugs, "integrity");
}

/// The cost of the ZOOKEEPER-1675 fix: one round trip to a quorum per sync, shared by the syncs
/// of a step, and none when a later write's acknowledgements prove the leadership.
#[test]
fn sync_quorum_round() {
    let name = "sync_quorum_round";
    golden(name);
}

/// ZOOKEEPER-1675 with a paused leader (still open upstream): a leader paused while the others
/// elect resumes believing it leads. A sync is answered only once a quorum has answered a ping
/// round sent after it arrived (or acknowledged a later proposal), which the resumed leader
/// never gets; `sync_without_quorum` brings back the stale read.
#[test]
fn zk1675_paused_leader_sync() {
    let name = "zk1675_paused_leader_sync";
    golden(name);
    fails_with(name, Bugs { sync_without_quorum: true, ..Bugs::default() }, "no-stale-read");
}

fn txn(epoch: u32, counter: u32) -> (Zxid, LoggedTxn) {
    let zxid = Zxid::new(epoch, counter);
    let header = TxnHeader { session_id: SessionId(1), cxid: 1, zxid, time_ms: 0 };
    (zxid, LoggedTxn { header, txn: Txn::Delete { path: format!("/{epoch}-{counter}") } })
}

/// The order checks the scripts above never see fail: fed a made-up record, each reports it.
#[test]
fn the_order_checks_report_made_up_violations() {
    let mut env = scenario::cluster::Env::new(Bugs::default());
    env.add_servers(3, 0);
    let run = |env: &scenario::cluster::Env, name| scenario::checks::run(env, name);
    let (a, b, c) = (txn(1, 1), txn(1, 2), txn(1, 3));
    for t in [&a, &b, &c] {
        env.observer.proposed.insert(t.0, (3, t.1.clone()));
    }
    env.observer.delivered.insert(1, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(run(&env, "total-order"), Ok(()));
    assert_eq!(run(&env, "primary-order"), Ok(()));
    assert_eq!(run(&env, "integrity"), Ok(()));
    env.observer.delivered.insert(2, vec![b.clone(), a.clone()]);
    assert!(run(&env, "total-order").is_err(), "1:2 before 1:1");
    env.observer.delivered.insert(2, vec![a.clone(), c.clone()]);
    assert!(run(&env, "primary-order").is_err(), "a hole: 1:3 right after 1:1");
    assert!(run(&env, "agreement").is_err(), "2 skipped what 1 delivered");
    let (_, mut other) = txn(1, 2);
    other.header.cxid = 7;
    env.observer.delivered.insert(2, vec![a, (b.0, other)]);
    assert!(run(&env, "integrity").is_err(), "a 1:2 nobody proposed");
    env.observer.on_proposal_applied(3, Zxid::new(1, 2), Zxid::new(2, 1));
    assert!(run(&env, "primary-integrity").is_err(), "proposed 2:1 before applying 1:3");
}

#[test]
fn accept_stale_epoch() {
    let name = "accept_stale_epoch";
    golden(name);
    let bugs = Bugs { accept_stale_epoch: true, ..Bugs::default() };
    fails_with(name, bugs.clone(), "epoch-promise");
    fails_with(name, bugs, "durable-committed");
}

#[test]
fn paper_synchronization_snap() {
    golden("paper_synchronization_snap");
}

/// Issue 16: a follower behind the leader's in-memory log is synced by a DIFF read from the
/// leader's log files; the off-by-one on the read's start is caught.
#[test]
fn paper_synchronization_disk_diff() {
    let name = "paper_synchronization_disk_diff";
    golden(name);
    fails_with(name, Bugs { disk_diff_skips_one: true, ..Bugs::default() }, "agreement");
}

#[test]
fn failover_unbacked_leader() {
    golden("failover_unbacked_leader");
}

/// Tier 1 seed 65160: an unestablished leader that a later epoch has superseded steps down.
#[test]
fn failover_superseded_leader() {
    golden("failover_superseded_leader");
}

/// Tier 1 seed 214269: a FOLLOWERINFO of a learner's earlier session (a duplicate still in the
/// network) replaces its live session at the leader's next incarnation; the learner must see
/// it from the LEADERINFO on the old session and start over, not serve on a dead session.
#[test]
fn failover_stale_followerinfo() {
    let name = "failover_stale_followerinfo";
    golden(name);
    let bugs = Bugs { ignore_replaced_session: true, ..Bugs::default() };
    fails_with(name, bugs, "expect-read");
}

/// Tier 1 seed 158547: a learner in synchronization leaves a leader that crashed unannounced,
/// restarted, and follows another server in a later round (`Learner::left_by_leader`).
#[test]
fn failover_restarted_leader_moved_on() {
    golden("failover_restarted_leader_moved_on");
}
