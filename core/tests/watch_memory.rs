//! Bytes per watch (issue 14: 40 or fewer at a million watches): 1,000,000 standard data
//! watches on distinct paths (`/bench/n-0000000000`…, the paths of the million-znode
//! benchmark) from 4 connections, set in path order. Prints the resident memory the watch
//! table added per watch and fails above the aim. The paths are allocated before the
//! measurement, as the data tree holds them: a watch on an existing node shares the tree's
//! allocation of its path (`WatchManager::add_shared`), so the path is the tree's cost, not the
//! watch's. For comparison it also prints the cost when every watch brings its own path (a
//! watch on a missing node). It checks itself: the table held twice must break the bound.
//!
//! Resident memory (VmRSS, Linux only) as in `tree_memory.rs`; this file holds one test, so the
//! harness runs nothing beside it in this process.

use std::sync::Arc;

use zkr_core::types::ConnId;
use zkr_core::watch::{Table, WatchManager, mode};

const WATCHES: usize = 1_000_000;
/// The most resident bytes one watch may add (issue 14's aim).
const BYTES_PER_WATCH_MAX: usize = 40;

fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn watches_on(paths: &[Arc<str>]) -> WatchManager {
    let mut watches = WatchManager::new();
    for (i, path) in paths.iter().enumerate() {
        let conn = ConnId(1 + (i % 4) as u64);
        watches.add_shared(Table::Data, path.clone(), conn, mode::STANDARD);
    }
    assert_eq!(watches.count(), paths.len());
    watches
}

/// Resident bytes per watch that `build` adds (what it returns is kept until measured).
fn bytes_per_watch<T>(build: impl FnOnce() -> T) -> Option<(usize, T)> {
    let before = rss_bytes()?;
    let built = build();
    let after = rss_bytes()?;
    Some((after.saturating_sub(before) / WATCHES, built))
}

fn check(bytes_per_watch: usize) -> Result<(), String> {
    if bytes_per_watch > BYTES_PER_WATCH_MAX {
        return Err(format!("{bytes_per_watch} B/watch is over {BYTES_PER_WATCH_MAX}"));
    }
    Ok(())
}

#[test]
fn a_watch_takes_at_most_40_bytes() {
    let paths: Vec<Arc<str>> =
        (0..WATCHES).map(|i| Arc::from(format!("/bench/n-{i:010}").as_str())).collect();
    let Some((per_watch, watches)) = bytes_per_watch(|| watches_on(&paths)) else {
        println!("no /proc/self/status here: bytes per watch not measured");
        return;
    };
    println!("{WATCHES} watches, paths shared with the tree: {per_watch} bytes per watch (RSS)");
    watches.invariants();
    check(per_watch).unwrap();
    let (doubled, both) = bytes_per_watch(|| (watches_on(&paths), watches_on(&paths))).unwrap();
    println!("the same table held twice: {doubled} bytes per watch");
    assert!(check(doubled).is_err(), "a table twice the size ({doubled} B/watch) passes");
    assert_eq!(both.0.count(), both.1.count());
    let (own, unshared) = bytes_per_watch(|| {
        let mut unshared = WatchManager::new();
        for (i, path) in paths.iter().enumerate() {
            unshared.add(Table::Data, path, ConnId(1 + (i % 4) as u64), mode::STANDARD);
        }
        unshared
    })
    .unwrap();
    println!("each watch with its own copy of its path: {own} bytes per watch");
    assert_eq!(unshared.count(), WATCHES);
}
