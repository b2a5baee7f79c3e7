//! `StorageThread`: group commit on a dedicated log thread, snapshots on a second thread.
//!
//! The driver submits commands over a channel and learns the outcome from `StorageEvent`s on a
//! channel it can `recv().await` (`bell`: outside madsim each event also rings a socket, so the
//! driver is woken through the runtime's I/O driver, not its remote queue). Threads:
//!
//! ```text
//! driver --Command--> log thread (owns Storage) --SnapJob--> snapshot thread
//!                                              --ReadJob--> log reader thread
//! driver <--StorageEvent-- log thread:      Durable{upto}, Truncated, DiskFull,
//!                                            DiskSpaceAvailable, Failed
//! driver <--StorageEvent-- snapshot thread: SnapshotSaved, SnapshotFailed, Purged
//! driver <--StorageEvent-- reader thread:   LogRead
//! ```
//!
//! Invariants:
//! - Commands take effect in submission order. The log thread blocks for one command, then drains
//!   everything queued, appends it all and syncs once: the more the driver submits while a sync
//!   is running, the bigger the next batch (group commit).
//! - `Durable { upto }` is sent only after the sync covering `upto` returned; `upto` never goes
//!   down except through `Truncated`.
//! - A snapshot request syncs the log on the log thread, then the blob is written on the
//!   snapshot thread while appends go on. The log rolls `roll_ahead_txns` records later into a
//!   file made ahead on a short-lived thread (`Storage::roll_soon`; at once when that is 0), so
//!   no file creation or directory fsync is on the log's path (issue 16: they were its longest
//!   syncs). Recovery from the new snapshot finds every later record (in the file holding the
//!   snapshot's zxid and after), and recovery from an older one still finds all of them.
//!   A snapshot ahead of the log (installing a leader's snapshot) is written on the log thread
//!   before anything else, since later records depend on it.
//! - A snapshot comes as a `SnapshotBlob`, usually an O(1) clone of the tree that is encoded
//!   piece by piece as the file is written: the snapshot thread does that at the lowest CPU
//!   priority (nice 19), so encoding and writing a big tree take what the log thread, the
//!   driver and the connections leave (issue 16: at a million znodes they competed with them on
//!   2 cores and stretched replies to 4-17x the p99), and no 200 MB blob is ever allocated and
//!   released (its release, at nice 19, stalled the driver for 50-150 ms). An install ahead of
//!   the log is written on the log thread, at normal priority, since every later record waits
//!   for it.
//! - The snapshot thread paces its writes against the log's sync latency (`pace.rs`), so a
//!   200 MB snapshot does not keep the disk's queue full under the log's fsyncs.
//! - Truncation and snapshot installs first wait for the snapshot and reader threads to go
//!   idle, so no snapshot newer than the truncation point lands afterwards and no read sees a
//!   file being cut.
//! - A log read (a DIFF for a learner, issue 16) is handed to the reader thread after the
//!   appends queued before it are synced (the files hold every record it asks for), and runs
//!   there with recovery's checks, decoding the records to txns, off the driver and off the log
//!   thread: appends go on meanwhile (a read of 19,526 records held them back 152 ms when it
//!   ran on the log thread). Later appends only add records after `upto` (or a new file), which
//!   the read never needs. Its failure is only reported (`LogRead` with `Err`): the leader
//!   falls back to a SNAP, the log goes on. `LogRead` may now come after later `Durable`s.
//! - After a log I/O error the log thread reports `Failed` and stops: after a failed fsync the
//!   file's contents are unknown, and retrying could report lost data as durable.
//! - Except a *write* that finds the disk full (ENOSPC, EDQUOT; never an fsync's error, but
//!   for the epoch files' temporary file, which is thrown away, see `epochs.rs`): the log
//!   thread reports `DiskFull`, cuts the file back to its last synced record
//!   (`Storage::discard_unsynced`), keeps the unsynced records and every later command in
//!   memory, and every `DISK_FULL_RETRY` writes the records again and syncs. When that works it
//!   reports them `Durable`, then `DiskSpaceAvailable`, and carries on with the commands in
//!   order. Nothing is reported durable before its sync returned, nothing is reordered or
//!   skipped: to Zab a full disk is a disk that does not sync for a while. A shutdown while the
//!   disk is full stops without writing them (none was acknowledged). Under madsim a full disk
//!   still stops storage (`Failed`): the retry loop sleeps on the thread.
//!
//! Under `--cfg madsim` (tier 2 of `sim`) there are no threads: the log worker is a task that
//! awaits its commands and runs the same `process` on each drained batch, and snapshot and
//! read jobs run inline on it, unpaced. The order of effects and events is the same; only the
//! overlap of a snapshot write or a log read with later appends is lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::log::is_disk_full;
use super::pace::{LogSyncWatch, SnapshotPacer};
use super::snap::SnapshotBlob;
use super::{PurgeReport, Storage, purge_dirs, snap};

/// How often a log thread whose disk is full tries its writes again.
pub const DISK_FULL_RETRY: Duration = Duration::from_millis(200);

/// What the storage threads report to the driver.
#[derive(Debug)]
pub enum StorageEvent {
    /// Every appended record up to and including `upto` is durable (→ `Input::Persisted`).
    Durable {
        /// The highest durable zxid.
        upto: i64,
    },
    /// The snapshot at `zxid` is durable.
    SnapshotSaved {
        /// Its zxid.
        zxid: i64,
    },
    /// Writing the snapshot at `zxid` failed; the log is unaffected and older snapshots remain.
    SnapshotFailed {
        /// Its zxid.
        zxid: i64,
        /// The error, for the operator.
        error: String,
    },
    /// `truncate_after` is done; the log now ends at `last_zxid`.
    Truncated {
        /// The last kept record or snapshot zxid.
        last_zxid: i64,
    },
    /// An autopurge pass finished.
    Purged(PurgeReport),
    /// A log write found the disk full. Nothing was lost: the records not yet durable are kept
    /// and written again every `DISK_FULL_RETRY`; until `DiskSpaceAvailable` nothing more
    /// becomes durable (the driver refuses new client writes meanwhile).
    DiskFull {
        /// The error, for the operator.
        error: String,
    },
    /// The writes kept while the disk was full are durable (their `Durable` came first).
    DiskSpaceAvailable,
    /// The answer to `read_log` (→ `Input::LogRead`).
    LogRead {
        /// The request it answers.
        request: u64,
        /// The record `after` is in the files.
        found_after: bool,
        /// The records in `(after, upto]`, decoded and checked, or why not.
        txns: Result<Vec<zkr_core::txn::LoggedTxn>, String>,
    },
    /// The log thread hit an I/O error and stopped; nothing more will become durable.
    Failed {
        /// The error, for the operator.
        error: String,
    },
}

/// A snapshot's blob, encoded (if it is a tree) on a storage thread, not on the driver.
pub type SnapshotToWrite = Box<dyn SnapshotBlob>;

/// Where the log thread answers a synchronous command: `Err` carries the I/O error.
type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

/// The storage threads are gone (after `Failed`, a panic, or shutdown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageStopped;

impl std::fmt::Display for StorageStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the storage thread has stopped")
    }
}

impl std::error::Error for StorageStopped {}

enum Command {
    Append(Vec<(i64, Vec<u8>)>),
    /// Sync everything before it, then write the epoch files, then answer.
    WriteEpochs {
        dir: std::path::PathBuf,
        accepted: u32,
        current: u32,
        done: Done,
    },
    /// Answer once everything before it is done and durable.
    Barrier(Done),
    Snapshot {
        zxid: i64,
        blob: SnapshotToWrite,
    },
    TruncateAfter(i64),
    ReadLog {
        request: u64,
        after: i64,
        upto: i64,
        max_records: u64,
    },
    Purge(usize),
    Shutdown,
}

enum SnapJob {
    Write { zxid: i64, blob: SnapshotToWrite },
    Purge(usize),
    Barrier(mpsc::Sender<()>),
}

enum ReadJob {
    Read { request: u64, after: i64, upto: i64, max_records: u64 },
    Barrier(mpsc::Sender<()>),
}

/// Handle to the storage threads. Dropping it shuts them down after the queued commands.
#[derive(Debug)]
pub struct StorageThread {
    commands: UnboundedSender<Command>,
    sync_count: Arc<AtomicU64>,
    #[cfg(not(madsim))]
    log_thread: Option<std::thread::JoinHandle<()>>,
}

impl StorageThread {
    /// Moves `storage` onto a new log thread (and starts the snapshot thread). Events go to
    /// `events`; a dropped receiver is ignored. Call `Storage::set_force_sync` before this: the
    /// snapshot thread copies the setting at spawn.
    pub fn spawn(
        storage: Storage,
        events: UnboundedSender<StorageEvent>,
    ) -> std::io::Result<StorageThread> {
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let snap_worker = SnapWorker {
            fs: storage.fs().clone(),
            snap_dir: storage.snap_dir().to_path_buf(),
            log_dir: storage.log_dir().to_path_buf(),
            force_sync: storage.force_sync(),
            events: events.clone(),
            sync_watch: None,
            pacing: false,
        };
        let reader = LogReader {
            fs: storage.fs().clone(),
            snap_dir: storage.snap_dir().to_path_buf(),
            log_dir: storage.log_dir().to_path_buf(),
            events: events.clone(),
        };
        let sync_count = Arc::new(AtomicU64::new(storage.sync_count()));
        #[cfg(madsim)]
        {
            let mut worker = LogWorker {
                storage,
                events,
                snap: SnapQueue::Inline(snap_worker),
                reader: ReadQueue::Inline(reader),
                sync_count: sync_count.clone(),
                unsynced: Vec::new(),
            };
            tokio::spawn(async move { worker.run_async(command_rx).await });
            Ok(StorageThread { commands, sync_count })
        }
        #[cfg(not(madsim))]
        {
            let workers = (snap_worker, reader);
            Self::spawn_threads(storage, events, workers, command_rx, commands, sync_count)
        }
    }

    #[cfg(not(madsim))]
    fn spawn_threads(
        storage: Storage,
        events: UnboundedSender<StorageEvent>,
        (mut snap_worker, reader): (SnapWorker, LogReader),
        command_rx: UnboundedReceiver<Command>,
        commands: UnboundedSender<Command>,
        sync_count: Arc<AtomicU64>,
    ) -> std::io::Result<StorageThread> {
        snap_worker.sync_watch = Some(storage.sync_watch().clone());
        snap_worker.pacing = storage.snapshot_pacing();
        let (snap_tx, snap_rx) = mpsc::channel();
        let snap_thread = std::thread::Builder::new()
            .name("zkr-snapshot".into())
            .spawn(move || snap_worker.run(snap_rx))?;
        let (read_tx, read_rx) = mpsc::channel();
        let read_thread = std::thread::Builder::new()
            .name("zkr-logread".into())
            .spawn(move || reader.run(read_rx))?;
        let mut worker = LogWorker {
            storage,
            events,
            snap: SnapQueue::Thread(snap_tx),
            reader: ReadQueue::Thread(read_tx),
            sync_count: sync_count.clone(),
            unsynced: Vec::new(),
        };
        let log_thread =
            std::thread::Builder::new().name("zkr-txnlog".into()).spawn(move || {
                worker.run(command_rx);
                worker.storage.sync_watch().stop();
                let syncs = worker.storage.sync_watch().summary();
                tracing::info!(
                    syncs = syncs.count,
                    p50_us = syncs.p50_us,
                    p99_us = syncs.p99_us,
                    p999_us = syncs.p999_us,
                    max_us = syncs.max_us,
                    "txn log syncs since start"
                );
                // Closing the job channels ends the other threads after their queued jobs.
                drop(worker);
                let _ = snap_thread.join();
                let _ = read_thread.join();
            })?;
        Ok(StorageThread { commands, sync_count, log_thread: Some(log_thread) })
    }

    /// Queues records for appending; `Durable` follows once they are synced.
    pub fn append(&self, batch: Vec<(i64, Vec<u8>)>) -> Result<(), StorageStopped> {
        self.send(Command::Append(batch))
    }

    /// Queues a snapshot taken at `zxid` (after the appends already queued). The log rolls now
    /// or soon after (`Storage::roll_soon`); the blob is written in the background;
    /// `SnapshotSaved` follows.
    pub fn save_snapshot(&self, zxid: i64, blob: Vec<u8>) -> Result<(), StorageStopped> {
        self.save_snapshot_of(zxid, Box::new(blob))
    }

    /// `save_snapshot` of a blob encoded on a storage thread as it is written (see the module
    /// doc), so the caller never waits for the encoding.
    pub fn save_snapshot_of(&self, zxid: i64, blob: SnapshotToWrite) -> Result<(), StorageStopped> {
        self.send(Command::Snapshot { zxid, blob })
    }

    /// Queues `Storage::truncate_after`; `Truncated` follows.
    pub fn truncate_after(&self, zxid: i64) -> Result<(), StorageStopped> {
        self.send(Command::TruncateAfter(zxid))
    }

    /// Writes the epoch files after every record queued before is durable, so an epoch never
    /// becomes durable ahead of the txns it was adopted over (ZOOKEEPER-4643). Resolves once
    /// both are durable.
    pub async fn write_epochs(
        &self,
        dir: &std::path::Path,
        accepted: u32,
        current: u32,
    ) -> Result<(), String> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let dir = dir.to_path_buf();
        self.send(Command::WriteEpochs { dir, accepted, current, done })
            .map_err(|e| e.to_string())?;
        answer.await.map_err(|_| StorageStopped.to_string())?
    }

    /// Resolves once everything queued before it (appends, truncation, snapshot installs) is
    /// done and durable.
    pub async fn barrier(&self) -> Result<(), String> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.send(Command::Barrier(done)).map_err(|e| e.to_string())?;
        answer.await.map_err(|_| StorageStopped.to_string())?
    }

    /// Queues a read of the log records in `(after, upto]` behind the appends queued before;
    /// `LogRead { request, .. }` follows.
    pub fn read_log(
        &self,
        request: u64,
        after: i64,
        upto: i64,
        max_records: u64,
    ) -> Result<(), StorageStopped> {
        self.send(Command::ReadLog { request, after, upto, max_records })
    }

    /// Queues an autopurge pass (run on the snapshot thread); `Purged` follows.
    pub fn purge(&self, retain_count: usize) -> Result<(), StorageStopped> {
        self.send(Command::Purge(retain_count))
    }

    /// How many syncs the log thread has done: fewer than `append` calls under load.
    pub fn sync_count(&self) -> u64 {
        self.sync_count.load(Ordering::Acquire)
    }

    /// Finishes the queued commands, stops both threads and waits for them.
    pub fn shutdown(mut self) -> Result<(), StorageStopped> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StorageStopped> {
        let _ = self.commands.send(Command::Shutdown);
        #[cfg(not(madsim))]
        if let Some(handle) = self.log_thread.take() {
            return handle.join().map_err(|_| StorageStopped);
        }
        Ok(())
    }

    fn send(&self, command: Command) -> Result<(), StorageStopped> {
        self.commands.send(command).map_err(|_| StorageStopped)
    }
}

impl Drop for StorageThread {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Where the log worker sends snapshot jobs.
enum SnapQueue {
    /// To the snapshot thread.
    #[cfg_attr(madsim, allow(dead_code))]
    Thread(mpsc::Sender<SnapJob>),
    /// Run at once on the log worker (madsim has no threads).
    #[cfg_attr(not(madsim), allow(dead_code))]
    Inline(SnapWorker),
}

/// Where the log worker sends log reads.
enum ReadQueue {
    /// To the reader thread.
    #[cfg_attr(madsim, allow(dead_code))]
    Thread(mpsc::Sender<ReadJob>),
    /// Run at once on the log worker (madsim has no threads).
    #[cfg_attr(not(madsim), allow(dead_code))]
    Inline(LogReader),
}

struct LogWorker {
    storage: Storage,
    events: UnboundedSender<StorageEvent>,
    snap: SnapQueue,
    reader: ReadQueue,
    sync_count: Arc<AtomicU64>,
    /// The records appended since the last sync, in order, not yet reported durable. Kept
    /// (they are the commands' own buffers, not copies) so that after a write that found the
    /// disk full they can be written again.
    unsynced: Vec<(i64, Vec<u8>)>,
}

/// Why a command could not be carried out.
#[derive(Debug)]
enum Stop {
    /// A write found the disk full. Nothing was reported durable; the command (if any) is back
    /// at the front of the queue, and the unsynced records are kept.
    Full(String),
    /// Any other I/O error: storage stops.
    Failed(String),
}

impl Stop {
    fn from_io(error: std::io::Error) -> Stop {
        match is_disk_full(&error) {
            true => Stop::Full(error.to_string()),
            false => Stop::Failed(error.to_string()),
        }
    }
}

/// What the worker does after a batch.
enum Next {
    /// Wait for more commands.
    Go,
    /// Shut down (a `Shutdown` command, or an error already reported).
    End,
    /// The disk is full: wait for space, then carry out what is queued.
    Full(String),
}

impl LogWorker {
    #[cfg_attr(madsim, allow(dead_code))]
    fn run(&mut self, mut commands: UnboundedReceiver<Command>) {
        let mut queue = VecDeque::new();
        loop {
            if queue.is_empty() {
                match commands.blocking_recv() {
                    Some(first) => queue.push_back(first),
                    None => break,
                }
            }
            match self.process_drained(&mut queue, &mut commands) {
                Next::Go => {}
                Next::End => return,
                Next::Full(error) => {
                    if !self.wait_for_space(&error, &mut queue, &mut commands) {
                        return;
                    }
                }
            }
        }
        self.finish();
    }

    /// `run` as a task (madsim).
    #[cfg(madsim)]
    async fn run_async(&mut self, mut commands: UnboundedReceiver<Command>) {
        let mut queue = VecDeque::new();
        while let Some(first) = commands.recv().await {
            // A slow disk: the batch (and everything queued meanwhile) waits for the sync.
            let delay = self.storage.fs().sync_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            queue.push_back(first);
            match self.process_drained(&mut queue, &mut commands) {
                Next::Go => {}
                Next::End => return,
                // No retry loop here (it sleeps on a thread): a full disk stops storage.
                Next::Full(error) => return self.report_failed(error),
            }
        }
        self.finish();
    }

    /// Processes `queue` and everything queued behind it as one batch.
    fn process_drained(
        &mut self,
        queue: &mut VecDeque<Command>,
        commands: &mut UnboundedReceiver<Command>,
    ) -> Next {
        while let Ok(next) = commands.try_recv() {
            queue.push_back(next);
        }
        match self.process(queue) {
            Ok(true) => Next::Go,
            Ok(false) => Next::End,
            Err(Stop::Full(error)) => Next::Full(error),
            Err(Stop::Failed(error)) => {
                self.report_failed(error);
                Next::End
            }
        }
    }

    fn report_failed(&mut self, error: String) {
        tracing::error!("txn log failed, storage stops: {error}");
        let _ = self.events.send(StorageEvent::Failed { error });
    }

    /// The disk is full: reports it, then every `DISK_FULL_RETRY` cuts off what the failed
    /// write left and writes the unsynced records again, until that works (true: go on with
    /// `queue`) or a shutdown is queued (false: stop, leaving them unwritten; none of them was
    /// reported durable, so none was acknowledged) or another error stops storage (false).
    #[cfg_attr(madsim, allow(dead_code))]
    fn wait_for_space(
        &mut self,
        error: &str,
        queue: &mut VecDeque<Command>,
        commands: &mut UnboundedReceiver<Command>,
    ) -> bool {
        let waiting = self.unsynced.len();
        tracing::error!(
            records_waiting = waiting,
            "txn log: disk full ({error}); new writes are refused until space is freed, reads \
             and sessions go on; retrying every {DISK_FULL_RETRY:?}"
        );
        let _ = self.events.send(StorageEvent::DiskFull { error: error.to_string() });
        let began = std::time::Instant::now();
        loop {
            if let Err(e) = self.storage.discard_unsynced() {
                self.report_failed(format!("cannot cut the txn log back after ENOSPC: {e}"));
                return false;
            }
            std::thread::sleep(DISK_FULL_RETRY);
            let closed = loop {
                match commands.try_recv() {
                    Ok(next) => queue.push_back(next),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break false,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break true,
                }
            };
            if closed || queue.iter().any(|c| matches!(c, Command::Shutdown)) {
                let waiting = self.unsynced.len();
                tracing::warn!(records_waiting = waiting, "shutting down with the disk full");
                return false;
            }
            match self.rewrite_unsynced().and_then(|()| self.retry_queued_epochs(queue)) {
                Ok(()) => break,
                Err(Stop::Full(_)) => continue,
                Err(Stop::Failed(error)) => {
                    self.report_failed(error);
                    return false;
                }
            }
        }
        assert!(self.unsynced.is_empty(), "the kept records are durable");
        let full_ms = began.elapsed().as_millis();
        tracing::info!(full_ms, "txn log: disk space available again; writes resume");
        let _ = self.events.send(StorageEvent::DiskSpaceAvailable);
        true
    }

    /// Writes the epoch files, after the appends before them are durable. A full disk
    /// (`Stop::Full`) left both files as they were (`epochs.rs`): the write can be tried again.
    /// Any other error, the directory's fsync's included, stops storage.
    fn write_epochs(
        &mut self,
        dir: &std::path::Path,
        accepted: u32,
        current: u32,
    ) -> Result<(), Stop> {
        assert!(self.unsynced.is_empty(), "earlier appends are durable first");
        assert!(current <= accepted, "currentEpoch ≤ acceptedEpoch");
        self.storage.write_epochs(dir, accepted, current).map_err(|e| {
            let error = format!("cannot write the epoch files: {e}");
            if is_disk_full(&e) { Stop::Full(error) } else { Stop::Failed(error) }
        })
    }

    /// Tries the epoch write at the front of `queue`, if there is one (the retry of
    /// `wait_for_space`). It stays queued: `process` writes it once more and answers it.
    #[cfg_attr(madsim, allow(dead_code))]
    fn retry_queued_epochs(&mut self, queue: &VecDeque<Command>) -> Result<(), Stop> {
        match queue.front() {
            Some(Command::WriteEpochs { dir, accepted, current, .. }) => {
                self.write_epochs(dir, *accepted, *current)
            }
            _ => Ok(()),
        }
    }

    /// Appends the kept records again (after `discard_unsynced`) and syncs them. Those a roll
    /// made durable already (`Storage::roll_into_next` syncs the file it leaves) stay as they
    /// are.
    #[cfg_attr(madsim, allow(dead_code))]
    fn rewrite_unsynced(&mut self) -> Result<(), Stop> {
        let durable = self.storage.durable_zxid();
        assert_eq!(self.storage.last_zxid(), durable, "cut back first");
        for (zxid, payload) in self.unsynced.iter().filter(|(zxid, _)| *zxid > durable) {
            self.storage.append(*zxid, payload).map_err(Stop::from_io)?;
        }
        self.flush()
    }

    /// Every handle is gone: makes what was appended durable before exiting.
    fn finish(&mut self) {
        match self.flush() {
            Ok(()) => {}
            Err(Stop::Full(error) | Stop::Failed(error)) => {
                let _ = self.events.send(StorageEvent::Failed { error });
            }
        }
    }

    /// Carries out the queued commands in order; ends with one sync. `Ok(false)` = shut down.
    /// On `Stop::Full` the command that could not be carried out is back at the front of
    /// `queue`.
    fn process(&mut self, queue: &mut VecDeque<Command>) -> Result<bool, Stop> {
        while let Some(command) = queue.pop_front() {
            // Every command but an append or a purge starts by syncing what came before it. A
            // full disk here leaves the command for after the retry.
            if !matches!(command, Command::Append(_) | Command::Purge(_))
                && let Err(stop) = self.flush()
            {
                queue.push_front(command);
                return Err(stop);
            }
            if let Command::WriteEpochs { dir, accepted, current, .. } = &command
                && let Err(stop) = self.write_epochs(dir, *accepted, *current)
            {
                match (&stop, command) {
                    // Nothing changed on disk: the write is tried again once there is space.
                    (Stop::Full(_), command) => queue.push_front(command),
                    (Stop::Failed(error), Command::WriteEpochs { done, .. }) => {
                        let _ = done.send(Err(error.clone()));
                    }
                    (Stop::Failed(_), _) => unreachable!("matched a WriteEpochs above"),
                }
                return Err(stop);
            }
            if !self.carry_out(command)? {
                return Ok(false);
            }
        }
        self.flush()?;
        Ok(true)
    }

    /// One command, after the sync of what came before it (but appends). `Ok(false)` = shut
    /// down.
    fn carry_out(&mut self, command: Command) -> Result<bool, Stop> {
        match command {
            Command::Append(records) => {
                let from = self.unsynced.len();
                self.unsynced.extend(records);
                for (zxid, payload) in &self.unsynced[from..] {
                    self.storage.append(*zxid, payload).map_err(Stop::from_io)?;
                }
            }
            Command::Snapshot { zxid, blob } => self.snapshot(zxid, blob)?,
            Command::TruncateAfter(zxid) => {
                self.wait_for_background_threads();
                let truncated = self.storage.truncate_after(zxid);
                truncated.map_err(|e| Stop::Failed(e.to_string()))?;
                let last_zxid = self.storage.last_zxid();
                let _ = self.events.send(StorageEvent::Truncated { last_zxid });
            }
            Command::WriteEpochs { done, .. } => {
                // Written by `process` just before (`write_epochs`).
                let _ = done.send(Ok(()));
            }
            Command::Barrier(done) => {
                let _ = done.send(Ok(()));
            }
            Command::ReadLog { request, after, upto, max_records } => {
                // `process` synced what came before: the files hold every record up to `upto`.
                assert!(self.unsynced.is_empty(), "synced before the read");
                self.to_reader(ReadJob::Read { request, after, upto, max_records });
            }
            Command::Purge(retain) => self.to_snapshot_thread(SnapJob::Purge(retain)),
            Command::Shutdown => return Ok(false),
        }
        Ok(true)
    }

    fn snapshot(&mut self, zxid: i64, blob: SnapshotToWrite) -> Result<(), Stop> {
        assert!(self.unsynced.is_empty(), "synced before the snapshot");
        if zxid <= self.storage.last_zxid() {
            let rolled = self.storage.roll_soon(&make_next_log_beside);
            rolled.map_err(|e| Stop::Failed(e.to_string()))?;
            self.to_snapshot_thread(SnapJob::Write { zxid, blob });
            return Ok(());
        }
        // Ahead of the log: later records follow this snapshot, so it must be durable first.
        self.wait_for_background_threads();
        let saved = self.storage.save_snapshot_of(zxid, &*blob);
        saved.map_err(|e| Stop::Failed(format!("cannot install snapshot {zxid:#x}: {e}")))?;
        assert_eq!(self.storage.last_zxid(), zxid);
        let _ = self.events.send(StorageEvent::SnapshotSaved { zxid });
        Ok(())
    }

    /// Syncs what was appended and reports it durable.
    fn flush(&mut self) -> Result<(), Stop> {
        let Some(&(upto, _)) = self.unsynced.last() else {
            return Ok(());
        };
        self.storage.sync().map_err(Stop::from_io)?;
        assert!(self.storage.durable_zxid() >= upto);
        self.sync_count.store(self.storage.sync_count(), Ordering::Release);
        self.unsynced.clear();
        let _ = self.events.send(StorageEvent::Durable { upto });
        Ok(())
    }

    fn to_snapshot_thread(&self, job: SnapJob) {
        match &self.snap {
            SnapQueue::Thread(sender) => {
                if sender.send(job).is_err() {
                    tracing::error!("the snapshot thread is gone; snapshot or purge dropped");
                }
            }
            SnapQueue::Inline(worker) => worker.handle(job),
        }
    }

    fn to_reader(&self, job: ReadJob) {
        match &self.reader {
            ReadQueue::Thread(sender) => {
                if sender.send(job).is_err() {
                    tracing::error!("the log reader thread is gone; log read dropped");
                }
            }
            ReadQueue::Inline(reader) => reader.handle(job),
        }
    }

    /// Blocks until the snapshot and reader threads have finished everything queued before now.
    fn wait_for_background_threads(&self) {
        if let SnapQueue::Thread(_) = self.snap {
            let (done_tx, done_rx) = mpsc::channel();
            self.to_snapshot_thread(SnapJob::Barrier(done_tx));
            let _ = done_rx.recv();
        }
        if let ReadQueue::Thread(_) = self.reader {
            let (done_tx, done_rx) = mpsc::channel();
            self.to_reader(ReadJob::Barrier(done_tx));
            let _ = done_rx.recv();
        }
    }
}

/// Runs the making of the next log file (`Storage::roll_soon`) on a short-lived thread,
/// `zkr-logroll`, beside the log thread; inline under madsim. If no thread starts, the job is
/// dropped: the roll then makes the file itself, as before.
fn make_next_log_beside(job: Box<dyn FnOnce() + Send>) {
    #[cfg(madsim)]
    job();
    #[cfg(not(madsim))]
    if let Err(e) = std::thread::Builder::new().name("zkr-logroll".into()).spawn(job) {
        tracing::warn!("cannot start a thread to make the next txn log file: {e}");
    }
}

/// Reads the log files for DIFFs, on a thread of its own (see the module doc).
struct LogReader {
    fs: Arc<dyn crate::fs::Fs>,
    snap_dir: std::path::PathBuf,
    log_dir: std::path::PathBuf,
    events: UnboundedSender<StorageEvent>,
}

impl LogReader {
    #[cfg_attr(madsim, allow(dead_code))]
    fn run(self, jobs: mpsc::Receiver<ReadJob>) {
        for job in jobs {
            self.handle(job);
        }
    }

    fn handle(&self, job: ReadJob) {
        match job {
            ReadJob::Read { request, after, upto, max_records } => {
                let event = self.read_log(request, after, upto, max_records);
                let _ = self.events.send(event);
            }
            ReadJob::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    /// Reads and decodes the records in `(after, upto]`; each must decode to a txn whose zxid is
    /// the record's, as at recovery (`driver::recover_node`).
    fn read_log(&self, request: u64, after: i64, upto: i64, max_records: u64) -> StorageEvent {
        let began = std::time::Instant::now();
        let dirs = (self.snap_dir.as_path(), self.log_dir.as_path());
        let read = super::recovery::read_range(&*self.fs, dirs, after, upto, max_records);
        let read = read.map_err(|e| e.to_string());
        let (found_after, records) = match read {
            Ok((found_after, records)) => (found_after, Ok(records)),
            Err(e) => (false, Err(e)),
        };
        let txns = records.and_then(|records| {
            let decode = |(zxid, bytes): (i64, Vec<u8>)| {
                let txn = zkr_core::proto::txn::decode_txn(&bytes)
                    .map_err(|e| format!("log record {zxid:#x} does not decode as a txn: {e}"))?;
                match txn.header.zxid.0 == zxid {
                    true => Ok(txn),
                    false => Err(format!("log record {zxid:#x} holds txn {}", txn.header.zxid)),
                }
            };
            records.into_iter().map(decode).collect::<Result<Vec<_>, String>>()
        });
        let read_ms = began.elapsed().as_millis();
        match &txns {
            Ok(txns) => tracing::info!(after = %format!("{after:#x}"), records = txns.len(),
                found_after, read_ms, "read the txn log for a DIFF"),
            Err(e) => tracing::warn!(after = %format!("{after:#x}"), "txn log read failed: {e}"),
        }
        StorageEvent::LogRead { request, found_after, txns }
    }
}

struct SnapWorker {
    fs: Arc<dyn crate::fs::Fs>,
    snap_dir: std::path::PathBuf,
    log_dir: std::path::PathBuf,
    force_sync: bool,
    events: UnboundedSender<StorageEvent>,
    /// The log's sync latencies, to pace snapshot writes by; `None`: unpaced (madsim).
    sync_watch: Option<Arc<LogSyncWatch>>,
    /// `zkr.snapshotPacing`: idle between chunks (else only report the log's syncs).
    pacing: bool,
}

impl SnapWorker {
    #[cfg_attr(madsim, allow(dead_code))]
    fn run(self, jobs: mpsc::Receiver<SnapJob>) {
        // Background work: the lowest CPU priority (Linux nice values are per thread).
        if let Err(e) = rustix::process::setpriority_process(None, 19) {
            tracing::warn!("cannot lower the snapshot thread's priority: {e}");
        }
        for job in jobs {
            self.handle(job);
        }
    }

    fn handle(&self, job: SnapJob) {
        let event = match job {
            SnapJob::Write { zxid, blob } => {
                let fs = &*self.fs;
                let watch = self.sync_watch.clone();
                let mut pacer = watch.map(|watch| SnapshotPacer::new(watch, self.pacing));
                let (dir, force_sync) = (&self.snap_dir, self.force_sync);
                let written =
                    snap::write_snapshot_paced(fs, dir, zxid, &*blob, force_sync, pacer.as_mut());
                match written {
                    Ok(path) => {
                        tracing::info!(path = %path.display(), "snapshot saved");
                        StorageEvent::SnapshotSaved { zxid }
                    }
                    Err(e) => {
                        tracing::error!("writing snapshot {zxid:#x} failed: {e}");
                        StorageEvent::SnapshotFailed { zxid, error: e.to_string() }
                    }
                }
            }
            SnapJob::Purge(retain) => {
                match purge_dirs(&*self.fs, &self.snap_dir, &self.log_dir, retain) {
                    Ok(report) => StorageEvent::Purged(report),
                    Err(e) => {
                        tracing::warn!("autopurge failed: {e}");
                        return;
                    }
                }
            }
            SnapJob::Barrier(done) => {
                let _ = done.send(());
                return;
            }
        };
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Fs, FsFile};

    type Events = tokio::sync::mpsc::UnboundedReceiver<StorageEvent>;

    /// Runs a log worker over `commands` (which must end with `Shutdown`) in this thread, on a
    /// fresh directory named after `name`; returns the worker and what it reported.
    fn run_worker(name: &str, commands: Vec<Command>) -> (LogWorker, Events, std::path::PathBuf) {
        run_worker_on(Arc::new(crate::fs::OsFs), name, commands)
    }

    /// `run_worker` on `fs`.
    fn run_worker_on(
        fs: Arc<dyn crate::fs::Fs>,
        name: &str,
        commands: Vec<Command>,
    ) -> (LogWorker, Events, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("zkr-thread-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (storage, _) = Storage::open(fs, &dir, &dir).unwrap();
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (sender, command_rx) = tokio::sync::mpsc::unbounded_channel();
        for command in commands {
            sender.send(command).unwrap();
        }
        drop(sender);
        let (snap_tx, _snap_rx) = mpsc::channel();
        let mut worker = LogWorker {
            storage,
            events: events_tx,
            snap: SnapQueue::Thread(snap_tx),
            reader: ReadQueue::Thread(mpsc::channel().0),
            sync_count: Arc::new(AtomicU64::new(0)),
            unsynced: Vec::new(),
        };
        worker.run(command_rx);
        (worker, events, dir)
    }

    fn append(zxid: i64) -> Command {
        Command::Append(vec![(zxid, vec![zxid as u8])])
    }

    /// Deterministic group commit: everything queued before the worker looks is one batch.
    #[test]
    fn queued_appends_are_synced_once() {
        let mut commands: Vec<Command> = (1..=100).map(append).collect();
        commands.push(Command::Shutdown);
        let (worker, mut events, dir) = run_worker("unit", commands);
        assert_eq!(worker.storage.sync_count(), 1);
        assert_eq!(worker.sync_count.load(Ordering::Acquire), 1);
        assert!(matches!(events.try_recv(), Ok(StorageEvent::Durable { upto: 100 })));
        assert!(events.try_recv().is_err());
        drop(worker);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// ZOOKEEPER-4643 in the shell: an epoch write syncs the appends queued before it first, so
    /// the epoch files never say "epoch e+1" over a log that lacks the txns synced before it.
    #[test]
    fn epochs_are_written_after_earlier_appends_are_durable() {
        let dir = std::env::temp_dir().join(format!("zkr-thread-epochs-{}", std::process::id()));
        let (done, mut answer) = tokio::sync::oneshot::channel();
        let mut commands: Vec<Command> = (1..=3).map(append).collect();
        commands.push(Command::WriteEpochs { dir, accepted: 2, current: 2, done });
        commands.extend([append(4), Command::Shutdown]);
        let (worker, mut events, dir) = run_worker("epochs", commands);
        assert_eq!(answer.try_recv(), Ok(Ok(())));
        assert_eq!(crate::epochs::read(&crate::fs::OsFs, &dir), Ok((2, 2)));
        assert!(matches!(events.try_recv(), Ok(StorageEvent::Durable { upto: 3 })), "synced first");
        assert!(matches!(events.try_recv(), Ok(StorageEvent::Durable { upto: 4 })));
        assert!(events.try_recv().is_err());
        assert_eq!(worker.storage.sync_count(), 2, "one sync before the epochs, one after");
        drop(worker);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A disk whose reads of txn log files (with `dir_syncs`: whose directory fsyncs) wait
    /// while the gate is shut.
    #[derive(Debug)]
    struct Gated {
        open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        dir_syncs: bool,
    }

    impl Gated {
        fn pass(&self) {
            let (open, changed) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
        }
    }

    impl crate::fs::Fs for Gated {
        fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.create_dir_all(dir)
        }
        fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::ffi::OsString>> {
            crate::fs::OsFs.list_dir(dir)
        }
        fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("log.") && !self.dir_syncs {
                self.pass();
            }
            crate::fs::OsFs.read(path)
        }
        fn create_new(
            &self,
            path: &std::path::Path,
        ) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
            crate::fs::OsFs.create_new(path)
        }
        fn create(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
            crate::fs::OsFs.create(path)
        }
        fn open_write(
            &self,
            path: &std::path::Path,
        ) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
            crate::fs::OsFs.open_write(path)
        }
        fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
            if self.dir_syncs {
                self.pass();
            }
            crate::fs::OsFs.sync_dir(dir)
        }
        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.rename(from, to)
        }
        fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.remove_file(path)
        }
        fn canonicalize(&self, path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
            crate::fs::OsFs.canonicalize(path)
        }
        fn try_lock(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::FsLock>> {
            crate::fs::OsFs.try_lock(path)
        }
    }

    /// The OS's filesystem, but every file write fails with ENOSPC while `full` holds, and
    /// every directory fsync with ENOSPC while `dir_sync_fails` holds.
    #[derive(Debug, Default)]
    struct FullFs {
        full: Arc<std::sync::atomic::AtomicBool>,
        dir_sync_fails: Arc<std::sync::atomic::AtomicBool>,
    }

    #[derive(Debug)]
    struct FullFile {
        file: std::fs::File,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    const ENOSPC: i32 = 28;

    impl std::io::Write for FullFile {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.full.load(Ordering::Acquire) {
                return Err(std::io::Error::from_raw_os_error(ENOSPC));
            }
            self.file.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    impl crate::fs::FsFile for FullFile {
        fn sync_data(&self) -> std::io::Result<()> {
            self.file.sync_data()
        }

        fn sync_all(&self) -> std::io::Result<()> {
            self.file.sync_all()
        }

        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.file.set_len(len)
        }
    }

    impl crate::fs::Fs for FullFs {
        fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.create_dir_all(dir)
        }

        fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::ffi::OsString>> {
            crate::fs::OsFs.list_dir(dir)
        }

        fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
            crate::fs::OsFs.read(path)
        }

        fn create_new(&self, path: &std::path::Path) -> std::io::Result<Box<dyn FsFile>> {
            let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            Ok(Box::new(FullFile { file, full: self.full.clone() }))
        }

        fn create(&self, path: &std::path::Path) -> std::io::Result<Box<dyn FsFile>> {
            let file = std::fs::File::create(path)?;
            Ok(Box::new(FullFile { file, full: self.full.clone() }))
        }

        fn open_write(&self, path: &std::path::Path) -> std::io::Result<Box<dyn FsFile>> {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            Ok(Box::new(FullFile { file, full: self.full.clone() }))
        }

        fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
            if self.dir_sync_fails.load(Ordering::Acquire) {
                return Err(std::io::Error::from_raw_os_error(ENOSPC));
            }
            crate::fs::OsFs.sync_dir(dir)
        }

        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.rename(from, to)
        }

        fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            crate::fs::OsFs.remove_file(path)
        }

        fn canonicalize(&self, path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
            crate::fs::OsFs.canonicalize(path)
        }

        fn try_lock(&self, path: &std::path::Path) -> std::io::Result<Box<dyn crate::fs::FsLock>> {
            crate::fs::OsFs.try_lock(path)
        }
    }

    /// Opens the gate when dropped: a failing test must not leave the log thread stuck (the
    /// `StorageThread`'s drop joins it).
    struct OpenOnDrop(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.0.1.notify_all();
        }
    }

    /// The next event within `within`, or `None`.
    fn next_event(events: &mut Events, within: std::time::Duration) -> Option<StorageEvent> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(event) = events.try_recv() {
                return Some(event);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }

    /// Issue 16: a DIFF's read of the log files runs beside the appends, not in front of them.
    /// The read is stuck on the disk (the gate); an append queued after it still becomes
    /// durable. Then the read answers, with its checks (these records are no txns). With the
    /// read on the log thread (as before) the append's `Durable` never comes while it waits.
    #[test]
    fn a_log_read_does_not_hold_back_later_appends() {
        let dir = std::env::temp_dir().join(format!("zkr-thread-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let fs = Arc::new(Gated { open: open.clone(), dir_syncs: false });
        let (storage, _) = Storage::open(fs, &dir, &dir).unwrap();
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let thread = StorageThread::spawn(storage, events_tx).unwrap();
        let _open_on_drop = OpenOnDrop(open.clone());
        let second = std::time::Duration::from_secs(10);
        thread.append((1..=10).map(|zxid| (zxid, vec![zxid as u8])).collect()).unwrap();
        let durable = next_event(&mut events, second);
        assert!(matches!(durable, Some(StorageEvent::Durable { upto: 10 })), "{durable:?}");
        thread.read_log(7, 0, 10, 100).unwrap();
        thread.append(vec![(11, vec![11])]).unwrap();
        let durable = next_event(&mut events, second);
        assert!(matches!(durable, Some(StorageEvent::Durable { upto: 11 })), "{durable:?}");
        assert!(events.try_recv().is_err(), "the read is still waiting for the disk");
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        match next_event(&mut events, second) {
            Some(StorageEvent::LogRead { request: 7, found_after: true, txns: Err(why) }) => {
                assert!(why.contains("does not decode as a txn"), "{why}");
            }
            other => panic!("expected the read's answer, got {other:?}"),
        }
        thread.shutdown().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 16: the roll after a snapshot makes its new file, and fsyncs the directory, beside
    /// the log thread. Directory fsyncs are stuck on the disk (the gate); an append after the
    /// snapshot still becomes durable. With the roll on the log thread (`roll_ahead_txns` 0,
    /// as before) the append's `Durable` never comes while the gate is shut.
    #[test]
    fn a_roll_does_not_hold_back_later_appends() {
        let dir = std::env::temp_dir().join(format!("zkr-thread-roll-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new()));
        let fs = Arc::new(Gated { open: open.clone(), dir_syncs: true });
        let (mut storage, _) = Storage::open(fs, &dir, &dir).unwrap();
        storage.set_roll_ahead_txns(100);
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let thread = StorageThread::spawn(storage, events_tx).unwrap();
        let _open_on_drop = OpenOnDrop(open.clone());
        let second = std::time::Duration::from_secs(10);
        thread.append((1..=10).map(|zxid| (zxid, vec![zxid as u8])).collect()).unwrap();
        let durable = next_event(&mut events, second);
        assert!(matches!(durable, Some(StorageEvent::Durable { upto: 10 })), "{durable:?}");
        *open.0.lock().unwrap() = false;
        thread.save_snapshot(10, vec![1, 2, 3]).unwrap();
        thread.append(vec![(11, vec![11])]).unwrap();
        let durable = next_event(&mut events, second);
        assert!(matches!(durable, Some(StorageEvent::Durable { upto: 11 })), "{durable:?}");
        assert!(events.try_recv().is_err(), "the snapshot waits for its directory fsync");
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        let saved = next_event(&mut events, second);
        assert!(matches!(saved, Some(StorageEvent::SnapshotSaved { zxid: 10 })), "{saved:?}");
        thread.shutdown().unwrap();
        let logs: Vec<_> = std::fs::read_dir(dir.join(crate::storage::VERSION_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("log."))
            .collect();
        assert_eq!(logs, ["log.1"], "the file made ahead (log.6e) is removed at shutdown");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A full disk under the epoch files leaves them as they were (no temporary file either)
    /// and reads as a full disk; a failed directory fsync never does, even with ENOSPC.
    #[test]
    fn a_full_disk_leaves_the_epoch_files_as_they_were() {
        let dir = std::env::temp_dir().join(format!("zkr-epochs-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fs = FullFs::default();
        crate::epochs::write(&fs, &dir, 3, 2).unwrap();
        fs.full.store(true, Ordering::Release);
        let error = crate::epochs::write(&fs, &dir, 4, 4).expect_err("the disk is full");
        assert!(is_disk_full(&error), "{error}");
        assert_eq!(crate::epochs::read(&fs, &dir), Ok((3, 2)), "unchanged");
        let mut names = crate::fs::OsFs.list_dir(&dir).unwrap();
        names.sort();
        assert_eq!(names, ["acceptedEpoch", "currentEpoch"], "no temporary file left");
        fs.full.store(false, Ordering::Release);
        fs.dir_sync_fails.store(true, Ordering::Release);
        let error = crate::epochs::write(&fs, &dir, 4, 4).expect_err("the fsync fails");
        assert!(!is_disk_full(&error), "a failed directory fsync is never a full disk: {error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An epoch write that finds the disk full is reported (`DiskFull`), kept, and tried every
    /// `DISK_FULL_RETRY` until there is space; then it is answered, `DiskSpaceAvailable`
    /// follows, and the commands behind it are carried out in order. Before this change
    /// storage stopped (`Failed`).
    #[test]
    fn an_epoch_write_on_a_full_disk_waits_for_space() {
        let fs = Arc::new(FullFs::default());
        let full = fs.full.clone();
        let name = format!("zkr-thread-epochs-full-{}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let (storage, _) = Storage::open(fs.clone(), &dir, &dir).unwrap();
        crate::epochs::write(&*fs, &dir, 1, 1).unwrap();
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let (sender, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let (snap_tx, _snap_rx) = mpsc::channel();
        let mut worker = LogWorker {
            storage,
            events: events_tx,
            snap: SnapQueue::Thread(snap_tx),
            reader: ReadQueue::Thread(mpsc::channel().0),
            sync_count: Arc::new(AtomicU64::new(0)),
            unsynced: Vec::new(),
        };
        full.store(true, Ordering::Release);
        let (done, answer) = tokio::sync::oneshot::channel();
        let epochs_dir = dir.clone();
        sender
            .send(Command::WriteEpochs { dir: epochs_dir, accepted: 2, current: 2, done })
            .unwrap();
        sender.send(append(1)).unwrap();
        let thread = std::thread::spawn(move || {
            worker.run(command_rx);
            worker
        });
        std::thread::sleep(DISK_FULL_RETRY * 3);
        assert_eq!(crate::epochs::read(&*fs, &dir), Ok((1, 1)), "unchanged while full");
        full.store(false, Ordering::Release);
        let answered = answer.blocking_recv();
        assert_eq!(answered, Ok(Ok(())), "answered once written");
        assert_eq!(crate::epochs::read(&*fs, &dir), Ok((2, 2)));
        sender.send(Command::Shutdown).unwrap();
        let worker = thread.join().unwrap();
        assert!(matches!(events.try_recv(), Ok(StorageEvent::DiskFull { .. })));
        assert!(matches!(events.try_recv(), Ok(StorageEvent::DiskSpaceAvailable)));
        assert!(matches!(events.try_recv(), Ok(StorageEvent::Durable { upto: 1 })));
        assert!(events.try_recv().is_err(), "one DiskFull for the whole wait, no Failed");
        drop(worker);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
