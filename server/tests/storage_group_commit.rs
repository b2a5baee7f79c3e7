//! Tests for `StorageThread`: group commit, durability reports, background snapshots,
//! truncation and failure reporting.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use zkr_server::storage::{Storage, StorageEvent, StorageThread};

mod common;
use common::TempDir;

fn payload(zxid: i64) -> Vec<u8> {
    format!("txn {zxid}").into_bytes()
}

fn spawn(dir: &Path) -> (StorageThread, UnboundedReceiver<StorageEvent>) {
    let (storage, _) = Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), dir, dir).unwrap();
    let (events_tx, events) = unbounded_channel();
    (StorageThread::spawn(storage, events_tx).unwrap(), events)
}

/// Receives events until `stop` says so; fails the test after 30 s without one.
fn wait_for(
    events: &mut UnboundedReceiver<StorageEvent>,
    mut stop: impl FnMut(&StorageEvent) -> bool,
) -> Vec<StorageEvent> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match events.try_recv() {
            Ok(event) => {
                let done = stop(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                assert!(std::time::Instant::now() < deadline, "no event; saw {seen:?}");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("event channel closed: {e}; saw {seen:?}"),
        }
    }
}

fn durable_upto(events: &[StorageEvent]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            StorageEvent::Durable { upto } => Some(*upto),
            _ => None,
        })
        .collect()
}

#[test]
fn many_submits_share_few_syncs_and_the_report_reaches_the_last_zxid() {
    let dir = TempDir::new("batches");
    let (writer, mut events) = spawn(&dir.0);
    let batches = 2000i64;
    for zxid in 1..=batches {
        writer.append(vec![(zxid, payload(zxid))]).unwrap();
    }
    let seen =
        wait_for(&mut events, |e| matches!(e, StorageEvent::Durable { upto } if *upto == batches));
    let reports = durable_upto(&seen);
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
    let syncs = writer.sync_count();
    assert!(syncs >= 1);
    assert!(syncs < batches as u64, "{syncs} syncs for {batches} batches");
    assert_eq!(syncs, reports.len() as u64);
    writer.shutdown().unwrap();
    let (_, recovered) =
        Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), &dir.0, &dir.0).unwrap();
    assert_eq!(recovered.txns.len(), batches as usize);
    assert_eq!(recovered.last_zxid(), batches);
}

#[test]
fn submits_from_a_busy_producer_thread() {
    let dir = TempDir::new("producer");
    let (writer, mut events) = spawn(&dir.0);
    let writer = std::sync::Arc::new(writer);
    let producer = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            for start in (1..=3000i64).step_by(3) {
                let batch = (start..start + 3).map(|z| (z, payload(z))).collect();
                writer.append(batch).unwrap();
            }
        })
    };
    producer.join().unwrap();
    let seen = wait_for(&mut events, |e| matches!(e, StorageEvent::Durable { upto: 3000 }));
    assert_eq!(durable_upto(&seen).last(), Some(&3000));
    assert!(writer.sync_count() < 1000);
}

#[test]
fn snapshots_are_written_in_the_background_and_the_log_rolls() {
    let dir = TempDir::new("snap");
    let (writer, mut events) = spawn(&dir.0);
    writer.append((1..=100).map(|z| (z, payload(z))).collect()).unwrap();
    writer.save_snapshot(100, vec![7u8; 1 << 20]).unwrap();
    writer.append((101..=200).map(|z| (z, payload(z))).collect()).unwrap();
    let mut saved = false;
    let mut durable = 0;
    wait_for(&mut events, |e| {
        match e {
            StorageEvent::SnapshotSaved { zxid } => saved = *zxid == 100,
            StorageEvent::Durable { upto } => durable = *upto,
            _ => {}
        }
        saved && durable == 200
    });
    writer.shutdown().unwrap();
    assert!(dir.0.join("version-2/log.65").exists(), "log rolled at zxid 101");
    let (_, recovered) =
        Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), &dir.0, &dir.0).unwrap();
    assert_eq!(recovered.snapshot_blob(&zkr_server::fs::OsFs), Some((100, vec![7u8; 1 << 20])));
    let zxids: Vec<i64> = recovered.txns.iter().map(|(z, _)| *z).collect();
    assert_eq!(zxids, (101..=200).collect::<Vec<_>>());
}

#[test]
fn truncation_and_purge_through_the_thread() {
    let dir = TempDir::new("truncate");
    let (writer, mut events) = spawn(&dir.0);
    for round in 0..5i64 {
        let first = round * 10 + 1;
        writer.append((first..first + 10).map(|z| (z, payload(z))).collect()).unwrap();
        writer.save_snapshot(first + 9, format!("at {}", first + 9).into_bytes()).unwrap();
    }
    writer.append((51..=55).map(|z| (z, payload(z))).collect()).unwrap();
    writer.truncate_after(52).unwrap();
    writer.append(vec![(53, b"rewritten".to_vec())]).unwrap();
    writer.purge(3).unwrap();
    let mut truncated = None;
    let mut purged = None;
    wait_for(&mut events, |e| {
        match e {
            StorageEvent::Truncated { last_zxid } => truncated = Some(*last_zxid),
            StorageEvent::Purged(report) => purged = Some(report.clone()),
            _ => {}
        }
        purged.is_some()
    });
    assert_eq!(truncated, Some(52));
    let purged = purged.unwrap();
    assert_eq!(purged.snapshots_removed.len(), 2);
    writer.shutdown().unwrap();
    let (_, recovered) =
        Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), &dir.0, &dir.0).unwrap();
    assert_eq!(recovered.snapshot.as_ref().map(|s| s.zxid), Some(50));
    assert_eq!(
        recovered.txns,
        vec![(51, payload(51)), (52, payload(52)), (53, b"rewritten".to_vec())]
    );
}

#[test]
fn an_append_that_breaks_the_history_stops_the_thread_with_an_event() {
    let dir = TempDir::new("fail");
    let (writer, mut events) = spawn(&dir.0);
    writer.append(vec![(1, payload(1)), (5, payload(5))]).unwrap();
    let seen = wait_for(&mut events, |e| matches!(e, StorageEvent::Failed { .. }));
    match seen.last() {
        Some(StorageEvent::Failed { error }) => {
            assert!(error.contains("does not follow"), "{error}")
        }
        other => panic!("unexpected {other:?}"),
    }
    // The thread is gone: further submits fail once it has exited.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while writer.append(vec![(2, payload(2))]).is_ok() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
}
