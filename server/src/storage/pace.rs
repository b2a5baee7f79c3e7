//! Pacing the snapshot writer against the txn log's fsyncs (issue 16), and the log sync
//! latencies that pacing and the benchmarks read.
//!
//! At a million znodes a snapshot is ~200 MB. Written as fast as the disk takes it, it filled
//! the disk's queue: every client reply waits for a txn log fsync, and those fsyncs took 55-206
//! ms while 15 snapshots were written (max reply / p99 = 15.3, the aim is 2). The snapshot is
//! background work with no deadline; the log's fsync is on every write's path. So:
//! - The log thread records every sync's latency in a [`LogSyncWatch`] (a histogram for the
//!   summary the server logs when it stops, and the longest sync since the pacer last looked).
//! - The snapshot thread writes the file in chunks, each synced before the next (`snap.rs`:
//!   at most one chunk is dirty), and after each chunk a [`SnapshotPacer`] idles for
//!   `idle_per_busy` times as long as the chunk took. The ratio adapts to the log (AIMD, as TCP
//!   does to a queue): a log sync slower than `LOG_SYNC_TARGET` since the last chunk doubles it
//!   (up to `IDLE_PER_BUSY_MAX`), a quiet log lets it shrink by a fifth (down to
//!   `IDLE_PER_BUSY_MIN`). The snapshot then takes at most half of the disk's time, and less
//!   whenever the log's syncs say the disk's queue is long.
//!
//! Off by default (`zkr.snapshotPacing`): measured back to back at a million znodes on the
//! shared machine, the log's slow syncs (50-330 ms) came as often with pacing as without, and
//! without it none fell inside a snapshot's write (docs/PERFORMANCE.md, run 7). The pacer still
//! watches when it does not idle: each "snapshot written" line gives the log's slowest sync
//! meanwhile, the evidence for or against pacing on another disk.
//!
//! Invariants: the pacer only ever delays the snapshot thread (it never holds a lock or a file
//! the log needs); an idle is bounded (`IDLE_MAX`), so a snapshot always finishes; nothing
//! here runs under madsim or on the log thread (an install ahead of the log is written there
//! unpaced: later records wait for it).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A log sync slower than this while a snapshot is written means the snapshot takes too much
/// of the disk. The log's syncs take 0.5-1 ms (median) and 10-12 ms (p99) during a 1M load on
/// the shared machine, with or without snapshots (docs/PERFORMANCE.md, run 7); a reply's p99 is
/// ~20 ms, and the aim is a max within 2x of it.
pub const LOG_SYNC_TARGET: Duration = Duration::from_millis(20);
/// The snapshot idles at least as long as it wrote: at most half of the disk's time.
pub const IDLE_PER_BUSY_MIN: f64 = 1.0;
/// Under a congested log the snapshot takes down to 1/33 of the disk's time.
pub const IDLE_PER_BUSY_MAX: f64 = 32.0;
/// The longest single idle between two chunks.
pub const IDLE_MAX: Duration = Duration::from_millis(250);

/// Log syncs are counted in buckets of this many microseconds, up to `HISTOGRAM_BUCKETS` of them
/// (one second); longer ones land in one overflow bucket (the maximum is kept exactly).
const BUCKET_US: u64 = 100;
const HISTOGRAM_BUCKETS: usize = 10_000;

/// The txn log's sync latencies, shared by the log thread (which records them) and the snapshot
/// thread (which paces itself by them).
#[derive(Debug)]
pub struct LogSyncWatch {
    /// The longest sync since `take_max_us` was last called, in microseconds.
    max_us_since_taken: AtomicU64,
    /// Every sync since the storage was opened.
    histogram: Mutex<Histogram>,
    /// Set when the log thread stops: a snapshot still being written is no longer paced (the
    /// shutdown waits for it, and no log sync needs the disk any more).
    stopping: AtomicBool,
}

/// Counts of log syncs by latency.
#[derive(Debug)]
struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max_us: u64,
}

/// What the log's syncs took since the storage was opened (the upper bound of the bucket holding
/// each quantile; `max_us` is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Syncs that wrote something.
    pub count: u64,
    /// Median, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// The longest, microseconds.
    pub max_us: u64,
}

impl Default for LogSyncWatch {
    fn default() -> LogSyncWatch {
        let histogram = Histogram { counts: vec![0; HISTOGRAM_BUCKETS + 1], count: 0, max_us: 0 };
        LogSyncWatch {
            max_us_since_taken: AtomicU64::new(0),
            histogram: Mutex::new(histogram),
            stopping: AtomicBool::new(false),
        }
    }
}

impl LogSyncWatch {
    /// Records one log sync (called by the log thread after each sync that wrote).
    pub fn record(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.max_us_since_taken.fetch_max(us, Ordering::AcqRel);
        let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = ((us / BUCKET_US) as usize).min(HISTOGRAM_BUCKETS);
        histogram.counts[bucket] += 1;
        histogram.count += 1;
        histogram.max_us = histogram.max_us.max(us);
    }

    /// The log thread has stopped: pacing stops too.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The longest sync since the last call (0: none), and starts a new period.
    pub fn take_max_us(&self) -> u64 {
        self.max_us_since_taken.swap(0, Ordering::AcqRel)
    }

    /// Every sync recorded so far.
    pub fn summary(&self) -> SyncSummary {
        let histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        let quantile = |q: f64| {
            let rank = ((histogram.count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bucket, count) in histogram.counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    // The bucket's upper bound, but never above the true maximum.
                    return ((bucket as u64 + 1) * BUCKET_US).min(histogram.max_us);
                }
            }
            histogram.max_us
        };
        if histogram.count == 0 {
            return SyncSummary::default();
        }
        SyncSummary {
            count: histogram.count,
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: histogram.max_us,
        }
    }
}

/// The idle ratio after a chunk, given the longest log sync since the chunk before (0: none).
pub fn next_idle_per_busy(idle_per_busy: f64, log_sync_max_us: u64) -> f64 {
    assert!(idle_per_busy >= IDLE_PER_BUSY_MIN, "the ratio stays in its range");
    assert!(idle_per_busy <= IDLE_PER_BUSY_MAX, "the ratio stays in its range");
    let target_us = LOG_SYNC_TARGET.as_micros() as u64;
    if log_sync_max_us > target_us {
        (idle_per_busy * 2.0).min(IDLE_PER_BUSY_MAX)
    } else if log_sync_max_us <= target_us / 2 {
        (idle_per_busy * 0.8).max(IDLE_PER_BUSY_MIN)
    } else {
        idle_per_busy
    }
}

/// Paces one snapshot's writing (see the module doc). Made per snapshot. With pacing off
/// (`zkr.snapshotPacing=false`) it only watches: the same figures, no idling.
#[derive(Debug)]
pub struct SnapshotPacer {
    watch: std::sync::Arc<LogSyncWatch>,
    pacing: bool,
    idle_per_busy: f64,
    /// Totals for the "snapshot written" line.
    pub idled: Duration,
    /// The longest log sync seen while this snapshot was written, microseconds.
    pub log_sync_max_us: u64,
    /// Chunks after which the log was slower than the target.
    pub congested_chunks: u64,
}

impl SnapshotPacer {
    /// A pacer reading the log's syncs from `watch`; starts at the lowest idle ratio. Idles
    /// only if `pacing`.
    pub fn new(watch: std::sync::Arc<LogSyncWatch>, pacing: bool) -> SnapshotPacer {
        // Log syncs from before this snapshot say nothing about it.
        watch.take_max_us();
        let idled = Duration::ZERO;
        let idle_per_busy = IDLE_PER_BUSY_MIN;
        let log_sync_max_us = 0;
        SnapshotPacer { watch, pacing, idle_per_busy, idled, log_sync_max_us, congested_chunks: 0 }
    }

    /// After a chunk that took `busy` (writing it and waiting for its sync): idles.
    pub fn after_chunk(&mut self, busy: Duration) {
        let log_us = self.watch.take_max_us();
        self.log_sync_max_us = self.log_sync_max_us.max(log_us);
        if log_us > LOG_SYNC_TARGET.as_micros() as u64 {
            self.congested_chunks += 1;
        }
        self.idle_per_busy = next_idle_per_busy(self.idle_per_busy, log_us);
        if !self.pacing || self.watch.stopping.load(Ordering::Acquire) {
            return;
        }
        let idle = busy.mul_f64(self.idle_per_busy).min(IDLE_MAX);
        std::thread::sleep(idle);
        self.idled += idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow log sync doubles the snapshot's idle ratio, up to the cap; a quiet log brings it
    /// back down to the floor; a sync near the target keeps it.
    #[test]
    fn the_idle_ratio_follows_the_log() {
        let slow = LOG_SYNC_TARGET.as_micros() as u64 + 1;
        let mut ratio = IDLE_PER_BUSY_MIN;
        ratio = next_idle_per_busy(ratio, slow);
        assert_eq!(ratio, 2.0 * IDLE_PER_BUSY_MIN);
        for _ in 0..20 {
            ratio = next_idle_per_busy(ratio, slow);
        }
        assert_eq!(ratio, IDLE_PER_BUSY_MAX);
        let near = LOG_SYNC_TARGET.as_micros() as u64 * 3 / 4;
        assert_eq!(next_idle_per_busy(ratio, near), ratio);
        for _ in 0..100 {
            ratio = next_idle_per_busy(ratio, 0);
        }
        assert_eq!(ratio, IDLE_PER_BUSY_MIN);
    }

    /// The summary's quantiles are bucket upper bounds, never above the exact maximum.
    #[test]
    fn the_summary_counts_every_sync() {
        let watch = LogSyncWatch::default();
        assert_eq!(watch.summary(), SyncSummary::default());
        for ms in 1..=1000u64 {
            watch.record(Duration::from_micros(ms * 1000 - 50));
        }
        watch.record(Duration::from_secs(3));
        let summary = watch.summary();
        assert_eq!(summary.count, 1001);
        assert_eq!(summary.p50_us, 501_000);
        assert_eq!(summary.p99_us, 991_000);
        assert_eq!(summary.max_us, 3_000_000);
        assert_eq!(watch.take_max_us(), 3_000_000);
        assert_eq!(watch.take_max_us(), 0, "a new period starts");
    }
}
