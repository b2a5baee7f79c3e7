//! `memory::give_back_freed_memory_soon` makes mimalloc, the server binary's allocator, return
//! memory freed in a burst to the OS while the process is otherwise idle (issues 14 and 16: RSS
//! after a restart no higher than before it). This test binary allocates with mimalloc as
//! `main.rs` does, frees 96 MiB of small blocks, and requires RSS to fall by at least half of
//! that once the call's thread has exited. Resident memory (VmRSS, Linux only): the workspace
//! forbids `unsafe`, so no allocator statistics. One test in this file, so the harness runs
//! nothing beside it in this process.

#![cfg(not(madsim))]

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BURST_BYTES: usize = 96 << 20;

/// VmRSS in bytes, or None where /proc is not available.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Allocates `BURST_BYTES` in blocks the size of a znode's data (as a restart's txns do) and
/// frees them; returns RSS while they were held.
fn burst() -> usize {
    let blocks: Vec<Box<[u8]>> =
        (0..BURST_BYTES / 100).map(|i| vec![i as u8; 100].into()).collect();
    let held = rss_bytes().expect("RSS read before");
    assert_eq!(blocks.len(), BURST_BYTES / 100);
    drop(blocks);
    held
}

#[test]
fn memory_freed_in_a_burst_is_given_back_while_idle() {
    let Some(before) = rss_bytes() else {
        println!("no /proc/self/status here: not measured");
        return;
    };
    let held = burst();
    assert!(held >= before + BURST_BYTES / 2, "the burst was resident: {before} -> {held}");
    // Past mimalloc's purge delay with no allocator event: the freed pages stay resident (the
    // problem; printed, not asserted, since it is the allocator's behaviour, not ours).
    std::thread::sleep(zkr_server::memory::PURGE_AFTER);
    let idle = rss_bytes().unwrap();
    println!("RSS {before} before, {held} holding the burst, {idle} idle after freeing it");
    zkr_server::memory::give_back_freed_memory_soon();
    let deadline = Instant::now() + zkr_server::memory::PURGE_AFTER + Duration::from_secs(30);
    let mut now = rss_bytes().unwrap();
    while now > held - BURST_BYTES / 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = rss_bytes().unwrap();
    }
    println!("RSS {now} after give_back_freed_memory_soon");
    assert!(now <= held - BURST_BYTES / 2, "freed memory still resident: {held} -> {now}");
}
