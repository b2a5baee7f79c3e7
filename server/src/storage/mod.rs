//! Durable storage: the txn log, snapshots, recovery, truncation and autopurge.
//!
//! The core treats storage as opaque. It hands the shell txns to persist, which the shell encodes
//! to bytes, and snapshots, which arrive as blobs. This module stores `(zxid, bytes)` records and
//! snapshot blobs, and gives them back after a restart. The format is our own (see `log.rs` and
//! `snap.rs`), but the ideas are ZooKeeper's (reference §14):
//!
//! ```text
//! <dataDir>/version-2/snapshot.<hex zxid>    the state after applying every txn up to zxid
//! <dataLogDir>/version-2/log.<hex zxid>      records from zxid on (hex is lowercase, unpadded)
//! <dir>/version-2/zkr.lock                   held (flock) while a Storage is open
//! ```
//!
//! Invariants:
//! - Record zxids increase strictly across all log files taken in name order, and the history
//!   has no holes: each record after the snapshot is either `previous + 1` or opens a later
//!   epoch (Zab counters never skip inside an epoch). Appends that would break this are refused.
//! - Every log file except the newest is complete and synced: a roll syncs the old file first.
//! - What `open` recovers is durable before it returns (the newest log file read is fsynced, and
//!   the directories holding the logs, snapshots and epoch files): a killed predecessor may have
//!   left records in the page cache only, and a later power loss must not take away what the
//!   server has since acted on (found by `zkr_sim::simfs`).
//! - Recovery = newest valid snapshot + every record with a greater zxid. A torn last write of
//!   the newest log file is cut off with a warning; any other damage refuses to start with a
//!   `StorageError` naming the file and offset, because the lost records may have been
//!   acknowledged to clients.
//! - A new log file is started after each snapshot (at once, or `roll_ahead_txns` records later
//!   into a file made ahead: `roll_soon`) and after each open, so purge can delete whole files.
//!   Any roll point will do: the newest file starting at or before a snapshot holds the records
//!   after it.
//!
//! `Storage` is blocking; every file operation goes through an `Arc<dyn Fs>` (`OsFs` in
//! production, `SimFs` in the simulator). `StorageThread` (in `thread.rs`) runs it on its own
//! thread with group commit and writes snapshots on a second thread.

pub mod log;
pub mod pace;
mod recovery;
pub mod snap;
pub mod thread;

pub use recovery::{DryRunAction, RangeRead, dry_run};
pub use thread::{StorageEvent, StorageStopped, StorageThread};

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bugs::ShellBugs;
use crate::fs::{Fs, FsLock};

/// The subdirectory ZooKeeper uses for its version-2 file formats; we keep the name.
pub const VERSION_DIR: &str = "version-2";
/// The lock file inside each version directory.
pub const LOCK_FILE: &str = "zkr.lock";
/// ZooKeeper's minimum for `autopurge.snapRetainCount`.
pub const MIN_SNAP_RETAIN_COUNT: usize = 3;

/// The name of the log file whose first record has `zxid`.
pub fn log_file_name(zxid: i64) -> String {
    format!("log.{zxid:x}")
}

/// The name of the snapshot file taken at `zxid`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// Parses `<prefix>.<hex>` into the zxid, or `None` for any other name (`log.<hex>.tmp` too).
pub fn parse_file_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(hex, 16).ok()
}

/// Files named `<prefix>.<hex zxid>` in `dir`, sorted by zxid.
fn list_files(fs: &dyn Fs, dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    let names: Vec<OsString> = fs.list_dir(dir).map_err(StorageError::io(dir, "list directory"))?;
    let mut files = Vec::new();
    for name in names {
        if let Some(zxid) = name.to_str().and_then(|n| parse_file_name(n, prefix)) {
            files.push((zxid, dir.join(name)));
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `next` may follow `previous` in the history: the next counter of the same epoch, or
/// anything in a later epoch (a new leader, or a learner catching up across epochs).
pub fn zxid_follows(previous: i64, next: i64) -> bool {
    let epoch = |z: i64| (z as u64) >> 32;
    next == previous.wrapping_add(1) || (next > previous && epoch(next) > epoch(previous))
}

/// Whether `next` is the txn right after `previous` in a Zab history: the next counter of the
/// same epoch, or the first txn (counter 1) of a later epoch, as a leader numbers its first
/// proposal (`next_zxid` in core's `zab/leader.rs`). Stricter than [`zxid_follows`], which an
/// append after an installed snapshot needs; recovery and DIFF reads replay a history, where a
/// later epoch entered at another counter means that epoch's first txns are in no file.
pub fn zxid_continues(previous: i64, next: i64) -> bool {
    let epoch = |z: i64| (z as u64) >> 32;
    let counter = |z: i64| (z as u64) & 0xffff_ffff;
    next == previous.wrapping_add(1) || (epoch(next) > epoch(previous) && counter(next) == 1)
}

/// Why storage cannot be opened or used. The `Display` text is written for an operator.
#[derive(Debug)]
pub enum StorageError {
    /// An operating-system call failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Another process (or another `Storage` in this one) holds the directory lock.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A log file is damaged in a way that is not a torn last write.
    CorruptLog {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// A txn is missing between a snapshot or record and the record found next.
    Gap {
        /// The file holding the record after the hole.
        path: PathBuf,
        /// Offset of that record.
        offset: u64,
        /// The zxid before the hole (a snapshot's or a record's; 0 = empty start).
        previous: i64,
        /// The zxid after the hole.
        found: i64,
    },
    /// A snapshot was skipped as invalid, and the log cannot rebuild the state it held: it was
    /// installed from a leader (SNAP), so no record leads to it, or the log that led to it is
    /// gone. Starting from an older snapshot would serve a state without those txns.
    SnapshotNotRebuilt {
        /// The invalid snapshot.
        path: PathBuf,
        /// Its zxid.
        zxid: i64,
        /// What the log lacks.
        what: String,
    },
}

impl StorageError {
    /// Adapter for `map_err`: wraps an `io::Error` with the path and action.
    fn io(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, action, source }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Io { path, action, source } => {
                write!(f, "storage: cannot {action} {}: {source}", path.display())
            }
            StorageError::Locked { path } => write!(
                f,
                "storage: {} is locked by another server process; two servers must not share \
                 a data directory",
                path.display()
            ),
            StorageError::CorruptLog { path, offset, what } => write!(
                f,
                "txn log {} is corrupt at byte offset {offset}: {what}. Refusing to start: this \
                 is not a torn last write, so the records involved may have been acknowledged. \
                 Restore the file from a replica or backup",
                path.display()
            ),
            StorageError::Gap { path, offset, previous, found } => write!(
                f,
                "txn log {} at byte offset {offset}: zxid {found:#x} does not follow \
                 {previous:#x}; txns are missing (a log file was deleted, or no valid snapshot \
                 covers them). Refusing to start",
                path.display()
            ),
            StorageError::SnapshotNotRebuilt { path, zxid, what } => write!(
                f,
                "snapshot {} (zxid {zxid:#x}) is invalid and the txn log cannot rebuild what it \
                 held: {what}. Refusing to start rather than serve a state without those txns: \
                 restore the snapshot from a backup, or, in an ensemble, move this data \
                 directory away so that the server syncs from the leader",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What `Storage::open` found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The newest valid snapshot file.
    pub snapshot: Option<RecoveredSnapshot>,
    /// Every logged record with a zxid above the snapshot's, in zxid order.
    pub txns: Vec<(i64, Vec<u8>)>,
}

impl Recovered {
    /// The zxid of the last recovered txn, or the snapshot's, or 0 for an empty start.
    pub fn last_zxid(&self) -> i64 {
        match (self.txns.last(), &self.snapshot) {
            (Some((zxid, _)), _) => *zxid,
            (None, Some(snapshot)) => snapshot.zxid,
            (None, None) => 0,
        }
    }

    /// The snapshot's zxid and whole blob, read again from its file (tests).
    pub fn snapshot_blob(&self, fs: &dyn Fs) -> Option<(i64, Vec<u8>)> {
        let snapshot = self.snapshot.as_ref()?;
        Some((snapshot.zxid, snapshot.read_blob(fs).expect("the recovered snapshot reads")))
    }
}

/// The snapshot file recovery chose: its framing and crc32c held when it was chosen (read in
/// pieces); the blob is read again, in pieces, as it is decoded (`read_blob_in_pieces`), so a
/// restart never holds it whole (issue 16: memory after a restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredSnapshot {
    /// The zxid in its name and header.
    pub zxid: i64,
    /// The file.
    pub path: PathBuf,
    /// The blob's length.
    pub blob_len: usize,
}

impl RecoveredSnapshot {
    /// The whole blob, checked again (the simulator's small trees; tests).
    pub fn read_blob(&self, fs: &dyn Fs) -> Result<Vec<u8>, String> {
        snap::read_snapshot(fs, &self.path, self.zxid)
    }

    /// The blob in pieces of at most 1 MiB, in order (`snap::read_blob_in_pieces`).
    pub fn read_blob_in_pieces(
        &self,
        fs: &dyn Fs,
        sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        snap::read_blob_in_pieces(fs, &self.path, self.blob_len, sink)
    }
}

/// The log file made ahead of a pending roll (`Storage::roll_soon`).
#[derive(Debug)]
struct NextLog {
    /// The zxid in its name: the append of this zxid rolls into it.
    first_zxid: i64,
    /// The file, once created and synced, or why not.
    ready: std::sync::mpsc::Receiver<io::Result<log::ActiveLog>>,
}

/// What `purge` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Snapshot files removed.
    pub snapshots_removed: Vec<PathBuf>,
    /// Log files removed.
    pub logs_removed: Vec<PathBuf>,
    /// The first zxid of the oldest log file left, when log files were removed: the files
    /// hold no record before it any more.
    pub oldest_log_kept: Option<i64>,
}

/// Histograms the log sync feeds (shared: a clone counts into the same buckets).
#[derive(Clone, Debug)]
pub struct SyncMetrics {
    /// Seconds per log sync (flush plus fdatasync).
    pub latency: prometheus_client::metrics::histogram::Histogram,
    /// Records made durable per sync: the group-commit batch size.
    pub batch_records: prometheus_client::metrics::histogram::Histogram,
}

/// An open data directory pair: appends records, syncs, saves snapshots. Blocking; run it on a
/// thread of its own (see `StorageThread`).
#[derive(Debug)]
pub struct Storage {
    fs: Arc<dyn Fs>,
    bugs: ShellBugs,
    snap_dir: PathBuf,
    log_dir: PathBuf,
    force_sync: bool,
    active: Option<log::ActiveLog>,
    /// The file made ahead of a pending roll (see `roll_soon`).
    next_log: Option<NextLog>,
    /// How many records after a snapshot the log rolls (`roll_soon`); 0: at once.
    roll_ahead_txns: i64,
    /// What log files are sized ahead by (`set_prealloc_bytes`; 0: not).
    prealloc_bytes: u64,
    /// The highest zxid appended, recovered, or covered by a saved snapshot.
    last_zxid: i64,
    /// The highest zxid known durable.
    durable_zxid: i64,
    sync_count: u64,
    /// Records appended since the last sync that wrote (one group commit's size).
    appended_since_sync: u64,
    /// Where sync latency and group-commit sizes go, when metrics are served (`metrics`).
    sync_metrics: Option<SyncMetrics>,
    /// Every sync's latency, for the snapshot thread's pacing and the summary at shutdown.
    sync_watch: Arc<pace::LogSyncWatch>,
    /// Whether the snapshot thread paces its writes (`pace.rs`).
    snapshot_pacing: bool,
    /// Held for the lifetime of the storage; dropping them releases the locks.
    _locks: Vec<Box<dyn FsLock>>,
}

impl Storage {
    /// Opens (creating if needed) `<data_dir>/version-2` and `<data_log_dir>/version-2`, locks
    /// them, and recovers the newest valid snapshot plus the later log records. A torn last write
    /// is cut off (with a warning); other damage is an error. `force_sync` starts on.
    pub fn open(
        fs: Arc<dyn Fs>,
        data_dir: &Path,
        data_log_dir: &Path,
    ) -> Result<(Storage, Recovered), StorageError> {
        Storage::open_with(fs, data_dir, data_log_dir, ShellBugs::default())
    }

    /// `open`, with the deliberate shell bugs of `bugs` (tests only; a build without the `bugs`
    /// feature refuses any, with `StorageError::Io` of kind `Unsupported`).
    pub fn open_with(
        fs: Arc<dyn Fs>,
        data_dir: &Path,
        data_log_dir: &Path,
        bugs: ShellBugs,
    ) -> Result<(Storage, Recovered), StorageError> {
        bugs.validate().map_err(|e| StorageError::Io {
            path: data_dir.to_path_buf(),
            action: "open with deliberate bugs",
            source: io::Error::new(io::ErrorKind::Unsupported, e),
        })?;
        let snap_dir = data_dir.join(VERSION_DIR);
        let log_dir = data_log_dir.join(VERSION_DIR);
        let mut locks = vec![lock_dir(&*fs, &snap_dir)?];
        let same = |a: &Path, b: &Path| match (fs.canonicalize(a), fs.canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        fs.create_dir_all(&log_dir).map_err(StorageError::io(&log_dir, "create"))?;
        if !same(&snap_dir, &log_dir) {
            locks.push(lock_dir(&*fs, &log_dir)?);
        }
        let recovered = recovery::recover(&*fs, &snap_dir, &log_dir, bugs)?;
        // Directory entries a killed predecessor created (a log file, a snapshot's or an epoch
        // file's rename) may not be durable yet; recovery just relied on them.
        let mut dirs = vec![log_dir.as_path(), snap_dir.as_path(), data_dir];
        dirs.dedup();
        for dir in dirs {
            fs.sync_dir(dir).map_err(StorageError::io(dir, "fsync"))?;
        }
        let last_zxid = recovered.last_zxid();
        let storage = Storage {
            fs,
            bugs,
            snap_dir,
            log_dir,
            force_sync: true,
            active: None,
            next_log: None,
            roll_ahead_txns: 0,
            prealloc_bytes: 0,
            last_zxid,
            durable_zxid: last_zxid,
            sync_count: 0,
            appended_since_sync: 0,
            sync_metrics: None,
            sync_watch: Arc::default(),
            snapshot_pacing: false,
            _locks: locks,
        };
        Ok((storage, recovered))
    }

    /// `forceSync` from zoo.cfg: when off, `sync` only hands bytes to the OS (no fdatasync).
    pub fn set_force_sync(&mut self, force_sync: bool) {
        self.force_sync = force_sync;
    }

    /// Whether `sync` fsyncs.
    pub fn force_sync(&self) -> bool {
        self.force_sync
    }

    /// zoo.cfg `preAllocSize`: log files are kept sized ahead of their records by this many
    /// bytes at a time (0, the default here: not; the server's default is ZooKeeper's 64 MB).
    /// Takes effect from the next file. See `log::ActiveLog`.
    pub fn set_prealloc_bytes(&mut self, bytes: u64) {
        self.prealloc_bytes = bytes;
    }

    /// How many records after a snapshot `roll_soon` rolls the log (0, the default: at once,
    /// as `roll`). Set it above what is appended while a file is created and synced.
    pub fn set_roll_ahead_txns(&mut self, txns: u64) {
        self.roll_ahead_txns = i64::try_from(txns).unwrap_or(i64::MAX);
    }

    /// `zkr.snapshotPacing`: whether the snapshot thread paces its writes against this log's
    /// syncs (off by default; see `pace.rs`). Either way it reports the log's slowest sync
    /// during each snapshot.
    pub fn set_snapshot_pacing(&mut self, pacing: bool) {
        self.snapshot_pacing = pacing;
    }

    /// Whether the snapshot thread paces its writes.
    pub fn snapshot_pacing(&self) -> bool {
        self.snapshot_pacing
    }

    /// The filesystem this storage lives on.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// The deliberate shell bugs it was opened with (all off outside tests).
    pub fn bugs(&self) -> ShellBugs {
        self.bugs
    }

    /// Writes the epoch files in `dir` durably (see `epochs::write`), on this storage's
    /// filesystem and with its deliberate bugs.
    pub fn write_epochs(&self, dir: &Path, accepted: u32, current: u32) -> io::Result<()> {
        crate::epochs::write_with(&*self.fs, dir, accepted, current, self.bugs)
    }

    /// `<dataDir>/version-2`.
    pub fn snap_dir(&self) -> &Path {
        &self.snap_dir
    }

    /// `<dataLogDir>/version-2`.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The highest zxid appended, recovered or snapshotted.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The highest zxid made durable by `sync` (or found at open).
    pub fn durable_zxid(&self) -> i64 {
        self.durable_zxid
    }

    /// Records every later sync in `metrics` (its latency and how many records it made
    /// durable).
    pub fn set_sync_metrics(&mut self, metrics: SyncMetrics) {
        self.sync_metrics = Some(metrics);
    }

    /// The latencies of this log's syncs (shared with the snapshot thread, which paces by them).
    pub fn sync_watch(&self) -> &Arc<pace::LogSyncWatch> {
        &self.sync_watch
    }

    /// How many times `sync` actually flushed (and, with `force_sync`, fsynced) the log.
    pub fn sync_count(&self) -> u64 {
        self.sync_count
    }

    /// Buffers one record. `zxid` must follow `last_zxid()` (see `zxid_follows`); otherwise the
    /// record is refused with `InvalidInput`, since recovery would later reject the hole.
    pub fn append(&mut self, zxid: i64, payload: &[u8]) -> io::Result<()> {
        if !zxid_follows(self.last_zxid, zxid) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("zxid {zxid:#x} does not follow the last logged {:#x}", self.last_zxid),
            ));
        }
        if payload.len() > log::MAX_PAYLOAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "txn too large to log"));
        }
        if self.next_log.as_ref().is_some_and(|next| zxid >= next.first_zxid) {
            self.roll_into_next(zxid)?;
        }
        if self.active.is_none() {
            let prealloc = self.prealloc_bytes;
            self.active = Some(log::ActiveLog::create(&*self.fs, &self.log_dir, zxid, prealloc)?);
        }
        let active = self.active.as_mut().expect("just created");
        active.append(zxid, payload)?;
        self.last_zxid = zxid;
        self.appended_since_sync += 1;
        Ok(())
    }

    /// Makes every appended record durable: flush, then fdatasync (unless `force_sync` is off).
    /// After an error the log's state on disk is unknown; the caller must stop (fsyncgate).
    pub fn sync(&mut self) -> io::Result<()> {
        const SLOW_SYNC_MS: u128 = 50;
        if let Some(active) = self.active.as_mut()
            && active.is_dirty()
        {
            let began = std::time::Instant::now();
            let cpu_began = tracing::enabled!(tracing::Level::DEBUG).then(thread_cpu_time);
            // The deliberate bug hands the bytes to the OS and calls that durable.
            let fsync = self.force_sync && !self.bugs.durable_before_fsync();
            active.sync(&*self.fs, fsync)?;
            self.sync_count += 1;
            // Replies wait for this: a slow one is worth a line (issue 16 measured them).
            let sync_ms = began.elapsed().as_millis();
            self.sync_watch.record(began.elapsed());
            if let Some(metrics) = &self.sync_metrics {
                metrics.latency.observe(began.elapsed().as_secs_f64());
                metrics.batch_records.observe(self.appended_since_sync as f64);
            }
            // Every sync, off unless RUST_LOG asks for it (`zkr_server::storage=debug`), with
            // the thread's CPU time: a sync much longer than that waited for the device or a core.
            let (sync_us, records) = (began.elapsed().as_micros(), self.appended_since_sync);
            if let Some(cpu_began) = cpu_began {
                let cpu_us = (thread_cpu_time() - cpu_began).as_micros();
                tracing::debug!(sync_us, cpu_us, records, "txn log sync");
            }
            self.appended_since_sync = 0;
            if sync_ms >= SLOW_SYNC_MS {
                tracing::info!(sync_ms, "slow txn log sync");
            }
        }
        assert!(self.active.as_ref().is_none_or(|a| !a.is_dirty()));
        self.durable_zxid = self.last_zxid;
        Ok(())
    }

    /// After a write that found the disk full (`log::is_disk_full`): forgets every record
    /// appended since the last `sync`, so that they can be appended again once there is space.
    /// The active log file is cut back to the end of its last synced record, and the cut made
    /// durable before anything else is written (else a crash could bring the cut records back
    /// in front of a newer file holding the same zxids); a file with no synced record is
    /// removed. Either way the next append starts a new log file: the old handle's position is
    /// past the cut. Nothing reported durable is touched, and the freed blocks are the disk's
    /// again. An error here leaves the log's state unknown: the caller must stop.
    pub fn discard_unsynced(&mut self) -> io::Result<()> {
        // The deliberate bug skips the fsyncs that make the cut durable.
        let fsync = self.force_sync && !self.bugs.cut_without_fsync();
        // A file made ahead holds a synced header and no synced record: it is removed.
        if let Some(active) = self.active.take() {
            let path = active.path.clone();
            let (file, synced_len) = active.into_unsynced_parts();
            if synced_len <= log::LOG_HEADER_LEN as u64 {
                drop(file);
                match self.fs.remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                if fsync {
                    self.fs.sync_dir(&self.log_dir)?;
                }
            } else {
                file.set_len(synced_len)?;
                if fsync {
                    file.sync_all()?;
                }
            }
        }
        tracing::debug!(
            kept_upto = %format!("{:#x}", self.durable_zxid),
            cut_upto = %format!("{:#x}", self.last_zxid),
            "txn log: unsynced records cut off, to be written again"
        );
        assert!(self.durable_zxid <= self.last_zxid, "durable records were appended first");
        self.last_zxid = self.durable_zxid;
        self.appended_since_sync = 0;
        assert!(self.active.is_none());
        Ok(())
    }

    /// Syncs and closes the active log file: the next append starts `log.<its zxid>`. A file
    /// made ahead (`roll_soon`) is removed (`cancel_next_log`).
    pub fn roll(&mut self) -> io::Result<()> {
        self.sync()?;
        self.active = None;
        self.cancel_next_log()
    }

    /// The roll after a snapshot, off the log's path (issue 16): syncs, then has the next log
    /// file, `log.<last zxid + roll_ahead_txns>`, created and made durable (its header and its
    /// directory entry) by `run` (a thread of the caller's), while appends go on into the
    /// active file. The append of that zxid switches files (`roll_into_next`): the roll then
    /// costs no file creation and no directory fsync on the log's path. Measured on the
    /// benchmark's disk (ext4 without a journal, 1M creates): creating and syncing a new file
    /// and its directory took 10-44 ms, beside syncs of 0.4 ms (p50), and was the longest log
    /// sync, hence the longest reply (docs/PERFORMANCE.md, 2026-12-03 run 9).
    ///
    /// Recovery and purge take any roll point: the newest file starting at or before a
    /// snapshot holds the records after it. Invariant: while `log.<X>` exists with no record,
    /// no record `>= X` is in any other file (a zxid past X, as a new epoch's, removes it and
    /// rolls at once), so a crash leaves it as the newest file, which recovery removes. With
    /// `roll_ahead_txns` 0, or with a roll already pending, this is `roll` (resp. a sync).
    pub fn roll_soon(&mut self, run: &dyn Fn(Box<dyn FnOnce() + Send>)) -> io::Result<()> {
        if self.roll_ahead_txns == 0 {
            return self.roll();
        }
        self.sync()?;
        if self.active.is_none() || self.next_log.is_some() {
            // The next append starts a new file anyway, or a roll is on its way.
            return Ok(());
        }
        let first_zxid = self.last_zxid.saturating_add(self.roll_ahead_txns);
        assert!(first_zxid > self.last_zxid, "the next file starts after every record");
        let (done, ready) = std::sync::mpsc::channel();
        let (fs, dir, force_sync) = (self.fs.clone(), self.log_dir.clone(), self.force_sync);
        let prealloc = self.prealloc_bytes;
        run(Box::new(move || {
            let made = log::ActiveLog::create_synced(&*fs, &dir, first_zxid, force_sync, prealloc);
            let _ = done.send(made);
        }));
        self.next_log = Some(NextLog { first_zxid, ready });
        Ok(())
    }

    /// The append of `zxid` reached the file made ahead: the active file is synced (a torn
    /// tail is only ever in the newest file holding records: recovery cuts it there, after
    /// removing newer files that hold none) and the new one becomes active. If `zxid` jumped
    /// past it, or making it failed, it is removed and the log rolls as `roll` does (the new
    /// file's first sync fsyncs the directory: the removal is durable before any record past
    /// it). The sync makes earlier records of this batch durable before its `Durable`: the
    /// log thread does not write those again after a full disk (`rewrite_unsynced`).
    fn roll_into_next(&mut self, zxid: i64) -> io::Result<()> {
        let next = self.next_log.take().expect("a file made ahead");
        assert!(zxid >= next.first_zxid, "the roll is due");
        let made = next.ready.recv().unwrap_or_else(|_| Err(io::Error::other("not made")));
        self.sync()?;
        self.active = None;
        match made {
            Ok(file) if zxid == next.first_zxid => {
                assert_eq!(file.first_zxid, zxid);
                self.active = Some(file);
            }
            made => {
                if let Err(e) = &made {
                    tracing::warn!("the next txn log file could not be made ahead: {e}");
                }
                drop(made);
                let path = self.log_dir.join(log_file_name(next.first_zxid));
                match self.fs.remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Removes the file made ahead of a pending roll, if any, once it is made (a roll, a
    /// truncation, an install, a shutdown). Not synced here: until a later file's first sync
    /// fsyncs the directory, a crash may leave it, empty and newest, for recovery to remove.
    fn cancel_next_log(&mut self) -> io::Result<()> {
        let Some(next) = self.next_log.take() else {
            return Ok(());
        };
        drop(next.ready.recv());
        match self.fs.remove_file(&self.log_dir.join(log_file_name(next.first_zxid))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Rolls the log, then writes the snapshot taken at `zxid` atomically. The caller must have
    /// appended every txn up to `zxid` that the snapshot reflects (or, when installing a leader's
    /// snapshot, call `truncate_after(zxid)` first). `zxid` may be above `last_zxid()`; later
    /// appends must then follow it.
    pub fn save_snapshot(&mut self, zxid: i64, blob: &[u8]) -> io::Result<()> {
        self.save_snapshot_of(zxid, &blob)
    }

    /// `save_snapshot` of a blob written as it is produced (see `snap::SnapshotBlob`).
    pub fn save_snapshot_of(&mut self, zxid: i64, blob: &dyn snap::SnapshotBlob) -> io::Result<()> {
        self.roll()?;
        snap::write_snapshot(&*self.fs, &self.snap_dir, zxid, blob, self.force_sync)?;
        self.note_snapshot(zxid);
        Ok(())
    }

    /// Records that a snapshot at `zxid` is on disk (used when another thread wrote it).
    pub(crate) fn note_snapshot(&mut self, zxid: i64) {
        if zxid > self.last_zxid {
            assert!(self.active.is_none(), "a snapshot ahead of the log needs a rolled log");
            self.last_zxid = zxid;
            self.durable_zxid = zxid;
        }
    }

    /// Drops every record with a zxid above `zxid` and every snapshot above it (Zab TRUNC).
    /// Afterwards `last_zxid()` is the last kept record or snapshot.
    pub fn truncate_after(&mut self, zxid: i64) -> Result<(), StorageError> {
        let path = self.log_dir.clone();
        self.roll().map_err(StorageError::io(&path, "sync the txn log in"))?;
        let fs = &*self.fs;
        let last_record = recovery::truncate_logs_after(fs, &self.log_dir, zxid, self.bugs)?;
        let mut last_snapshot = 0;
        for (snap_zxid, path) in list_files(fs, &self.snap_dir, "snapshot")? {
            if snap_zxid > zxid {
                remove_file(fs, &path)?;
            } else {
                last_snapshot = last_snapshot.max(snap_zxid);
            }
        }
        if self.force_sync {
            fs.sync_dir(&self.snap_dir).map_err(StorageError::io(&self.snap_dir, "fsync"))?;
        }
        self.last_zxid = last_record.max(last_snapshot);
        self.durable_zxid = self.last_zxid;
        assert!(self.last_zxid <= zxid);
        Ok(())
    }

    /// The records in `(after, upto]` of the log files, for a DIFF (see `recovery::read_range`):
    /// everything appended so far is synced first, so the files hold it.
    pub fn read_range(
        &mut self,
        after: i64,
        upto: i64,
        max_records: u64,
    ) -> Result<recovery::RangeRead, StorageError> {
        let path = self.log_dir.clone();
        self.sync().map_err(StorageError::io(&path, "sync the txn log in"))?;
        let dirs = (self.snap_dir.as_path(), self.log_dir.as_path());
        recovery::read_range(&*self.fs, dirs, after, upto, max_records)
    }

    /// Autopurge: keeps the newest `retain_count` snapshots (at least 3) and the log files needed
    /// to recover from the oldest one kept; removes the rest.
    pub fn purge(&self, retain_count: usize) -> Result<PurgeReport, StorageError> {
        purge_dirs(&*self.fs, &self.snap_dir, &self.log_dir, retain_count)
    }
}

impl Drop for Storage {
    /// A file made ahead of a roll that never came is removed once made: left behind, it
    /// would not be the newest file for long (a `Storage` opened on the directory again starts
    /// its own files below its name).
    fn drop(&mut self) {
        if let Err(e) = self.cancel_next_log() {
            tracing::warn!("cannot remove the txn log file made ahead of a roll: {e}");
        }
    }
}

/// `Storage::purge` on explicit directories (`<dir>/version-2` paths), for the snapshot thread.
/// Only removes files older than the oldest kept snapshot, so it is safe to run while the log is
/// being appended: the active log file is always kept.
pub fn purge_dirs(
    fs: &dyn Fs,
    snap_dir: &Path,
    log_dir: &Path,
    retain_count: usize,
) -> Result<PurgeReport, StorageError> {
    let retain = retain_count.max(MIN_SNAP_RETAIN_COUNT);
    let snapshots = list_files(fs, snap_dir, "snapshot")?;
    let mut report = PurgeReport::default();
    if snapshots.len() <= retain {
        return Ok(report);
    }
    let (oldest_kept, _) = snapshots[snapshots.len() - retain];
    for (_, path) in &snapshots[..snapshots.len() - retain] {
        remove_file(fs, path)?;
        report.snapshots_removed.push(path.clone());
    }
    let logs = list_files(fs, log_dir, "log")?;
    // Keep the newest file starting at or before the snapshot (it holds the records right after
    // it) and everything newer.
    let needed_from = logs.iter().rposition(|(first, _)| *first <= oldest_kept).unwrap_or(0);
    for (_, path) in &logs[..needed_from] {
        remove_file(fs, path)?;
        report.logs_removed.push(path.clone());
    }
    if needed_from > 0 {
        report.oldest_log_kept = Some(logs[needed_from].0);
    }
    Ok(report)
}

/// Removes a file; one already gone is fine (a concurrent purge or truncation got there first).
fn remove_file(fs: &dyn Fs, path: &Path) -> Result<(), StorageError> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::Io { path: path.to_path_buf(), action: "remove", source: e }),
    }
}

/// Creates `dir` if needed and takes an exclusive lock on `dir/zkr.lock`.
fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<Box<dyn FsLock>, StorageError> {
    fs.create_dir_all(dir).map_err(StorageError::io(dir, "create"))?;
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(lock) => Ok(lock),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(StorageError::Locked { path }),
        Err(source) => Err(StorageError::Io { path, action: "lock", source }),
    }
}

/// The CPU time the calling thread has used (a system call: only for traced log syncs and
/// driver turns).
#[cfg(not(madsim))]
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Zero under madsim: the host's CPU time (rustix's system call passes madsim's clock by) made
/// tier 2's log lines (`sim-shell --log debug`, `cpu_us=`) differ between two runs of a seed.
#[cfg(madsim)]
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    std::time::Duration::ZERO
}
