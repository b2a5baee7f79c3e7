//! Recovery policy and log truncation: which snapshot to trust, which log files to read, what
//! damage to repair (a torn last write of the newest file) and what to refuse (everything else).
//!
//! Every log file is read with `Fs::read_data`: up to the end of its written data, never its
//! preallocated (sparse) zero tail, so a restart or a DIFF reads and holds the records only, not
//! `preAllocSize` of zeros per file (issue 16). The zeros in front of a valid record (a hole in
//! the middle) are read, so such a record is still found and reported as corruption.

use std::path::{Path, PathBuf};

use super::log::{self, ScanEnd};
use super::zxid_continues;
use super::{Recovered, RecoveredSnapshot, StorageError, list_files, remove_file, snap};
use crate::bugs::ShellBugs;
use crate::fs::Fs;

/// Reads the newest valid snapshot and the log records after it. Repairs a torn tail of the
/// newest log file in place.
pub(super) fn recover(
    fs: &dyn Fs,
    snap_dir: &Path,
    log_dir: &Path,
    bugs: ShellBugs,
) -> Result<Recovered, StorageError> {
    remove_tmp_snapshots(fs, snap_dir)?;
    let (snapshot, skipped) = newest_valid_snapshot(fs, snap_dir)?;
    let snap_zxid = snapshot.as_ref().map_or(0, |s| s.zxid);
    let mut logs = list_files(fs, log_dir, "log")?;
    // The newest file's bytes, read once: `read_log` takes them instead of reading it again.
    let mut newest_bytes = remove_newest_without_records(fs, log_dir, &mut logs)?;
    // The newest file starting at or before the snapshot holds the records right after it.
    let start = logs.iter().rposition(|(first, _)| *first <= snap_zxid).unwrap_or(0);
    let mut txns: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut previous_record: Option<i64> = None;
    let mut cursor = snap_zxid;
    let mut newest_read = None;
    for (index, (name_zxid, path)) in logs.iter().enumerate().skip(start) {
        let is_last = index + 1 == logs.len();
        let file = LogFile { fs, path, name_zxid: *name_zxid, is_last, log_dir };
        let read = if is_last { newest_bytes.take() } else { None };
        assert!(read.is_none() || is_last, "only the newest file was read before");
        let Some((bytes, records)) = read_log(&file, read, bugs)? else {
            continue;
        };
        newest_read = Some(path);
        for record in records {
            if let Some(previous) = previous_record.filter(|p| record.zxid <= *p) {
                return Err(corrupt(
                    path,
                    record.offset,
                    format!("zxid {:#x} does not increase over {previous:#x}", record.zxid),
                ));
            }
            previous_record = Some(record.zxid);
            if record.zxid <= snap_zxid {
                continue;
            }
            if !zxid_continues(cursor, record.zxid) {
                return Err(StorageError::Gap {
                    path: path.clone(),
                    offset: record.offset as u64,
                    previous: cursor,
                    found: record.zxid,
                });
            }
            cursor = record.zxid;
            txns.push((record.zxid, bytes[record.payload.clone()].to_vec()));
        }
    }
    // The server acts on what recovery returns (votes with its last zxid, serves it, logs after
    // it), but a killed predecessor may have left the newest file's tail in the page cache only
    // (older files were synced when the log rolled past them): make it durable first, or a later
    // power loss opens a hole under newer, synced files.
    if let Some(path) = newest_read {
        let sync = fs.open_write(path).and_then(|file| file.sync_data());
        sync.map_err(StorageError::io(path, "fsync"))?;
    }
    assert!(txns.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(txns.first().is_none_or(|(zxid, _)| *zxid > snap_zxid));
    check_skipped_snapshots_rebuilt(&skipped, snap_zxid, &txns)?;
    Ok(Recovered { snapshot, txns })
}

/// A snapshot skipped as invalid may be passed over only when the log rebuilds what it held.
/// A snapshot the server took itself reflects logged records up to its zxid (a txn is durable
/// before it is applied), so the replay must hold the record at its zxid: a snapshot a learner
/// installed from its leader (SNAP) has none, and the records before it in this log may be
/// txns the leader's history does not hold. Falling back to no snapshot at all also needs the
/// log to start where every history starts (zxid 1 standalone, 0x100000001 in an ensemble):
/// otherwise older files may have been purged with the snapshots that covered them. Refusing
/// here turns what would be a silent loss of acknowledged txns into an operator's decision.
fn check_skipped_snapshots_rebuilt(
    skipped: &[(i64, PathBuf)],
    snap_zxid: i64,
    txns: &[(i64, Vec<u8>)],
) -> Result<(), StorageError> {
    // Only snapshots newer than the one loaded are skipped; with none valid, a snapshot at 0
    // (nothing to rebuild) may be among them.
    assert!(skipped.iter().all(|(zxid, _)| *zxid > snap_zxid || *zxid == 0));
    // Newest first, as skipped: the newest unrebuilt one is the loss an operator must know of.
    let mut rebuilt = skipped.iter().filter(|(zxid, _)| *zxid > snap_zxid).peekable();
    let newest = rebuilt.peek().copied();
    for (zxid, path) in rebuilt {
        if txns.binary_search_by_key(zxid, |(z, _)| *z).is_err() {
            let what = format!(
                "no record {zxid:#x} follows {snap_zxid:#x} in the txn log (the snapshot was \
                 installed from a leader, or the log that led to it is gone)"
            );
            return Err(StorageError::SnapshotNotRebuilt { path: path.clone(), zxid: *zxid, what });
        }
    }
    let first = txns.first().map(|(z, _)| *z);
    let history_start = first == Some(1) || first == Some((1 << 32) | 1);
    if let Some((zxid, path)) = newest.filter(|_| snap_zxid == 0 && !history_start) {
        let what = format!(
            "no valid snapshot is left and the txn log starts at {:#x}, not at the first txn \
             of a history (older log files may have been purged with the snapshots that \
             covered them)",
            first.unwrap_or(0)
        );
        return Err(StorageError::SnapshotNotRebuilt { path: path.clone(), zxid: *zxid, what });
    }
    Ok(())
}

/// Removes the newest log files while they hold no record (a file made ahead of a roll,
/// `Storage::roll_soon`, or a torn creation): the file before them is then the newest, whose
/// torn tail recovery may cut. Only the newest file holding records can be torn: the log syncs
/// a file before it writes a record into the next one. Returns the bytes of the newest file
/// left (`None` when none is), so that recovery reads it once: a restart's largest read.
fn remove_newest_without_records(
    fs: &dyn Fs,
    log_dir: &Path,
    logs: &mut Vec<(i64, PathBuf)>,
) -> Result<Option<Vec<u8>>, StorageError> {
    while let Some((name_zxid, path)) = logs.last() {
        let (bytes, _) = fs.read_data(path).map_err(StorageError::io(path, "read"))?;
        let no_record = match log::check_header(&bytes, *name_zxid) {
            Err(_) => log::find_valid_record(&bytes, 0, Some(name_zxid - 1)).is_none(),
            Ok(()) => {
                let scan = log::scan(&bytes);
                let damaged =
                    matches!(scan.end, ScanEnd::Corrupt { .. } | ScanEnd::OutOfOrder { .. });
                scan.records.is_empty() && !damaged
            }
        };
        if !no_record {
            return Ok(Some(bytes));
        }
        tracing::warn!(path = %path.display(), "removing the newest txn log: it holds no record");
        remove_file(fs, path)?;
        fs.sync_dir(log_dir).map_err(StorageError::io(log_dir, "fsync"))?;
        logs.pop();
    }
    assert!(logs.is_empty(), "the loop ends early at a file with records");
    Ok(None)
}

/// What `read_range` found: whether the record `after` itself is in the files (or `after` is 0,
/// the empty history), and the records in `(after, upto]`.
pub type RangeRead = (bool, Vec<(i64, Vec<u8>)>);

/// Reads the records with zxid in `(after, upto]` for a DIFF from the log files, read-only, with
/// recovery's checks on every file it reads (header, first record named by the file, record
/// crcs and order through `log::scan`) and on the records it returns (each follows the one
/// before, as `recover` requires: `zxid_continues`, and none steps over a snapshot's zxid, where
/// a learner installed its leader's state). The range must end exactly at `upto`, within
/// the valid part of the files; more than `max_records` records is an error. When the record
/// `after` is not in the files (purged, or never ours), nothing is returned: `(false, [])`.
pub(super) fn read_range(
    fs: &dyn Fs,
    dirs: (&Path, &Path),
    after: i64,
    upto: i64,
    max_records: u64,
) -> Result<RangeRead, StorageError> {
    assert!(after < upto, "a range of at least one record");
    let (snap_dir, log_dir) = dirs;
    // A snapshot at a zxid the log steps over was installed from a leader (SNAP): the records
    // on either side of it are not one history, however well their zxids follow each other.
    let snapshots: Vec<i64> =
        list_files(fs, snap_dir, "snapshot")?.into_iter().map(|s| s.0).collect();
    let logs = list_files(fs, log_dir, "log")?;
    // The newest file starting at or before `after` holds its record and those right after it.
    let start = logs.iter().rposition(|(first, _)| *first <= after).unwrap_or(0);
    let mut found_after = after == 0;
    let mut cursor = after;
    let mut records = Vec::new();
    for (name_zxid, path) in logs.iter().skip(start) {
        let (bytes, _) = fs.read_data(path).map_err(StorageError::io(path, "read"))?;
        log::check_header(&bytes, *name_zxid).map_err(|p| corrupt(path, 0, p.to_string()))?;
        let scan = log::scan(&bytes);
        if let Some(first) = scan.records.first().filter(|r| r.zxid != *name_zxid) {
            let what = format!("the first record has zxid {:#x}, not {name_zxid:#x}", first.zxid);
            return Err(corrupt(path, first.offset, what));
        }
        for record in &scan.records {
            if record.zxid <= after {
                found_after |= record.zxid == after;
                continue;
            }
            if !found_after {
                return Ok((false, Vec::new()));
            }
            let over_snapshot = snapshots.iter().any(|z| cursor < *z && *z < record.zxid);
            if !zxid_continues(cursor, record.zxid) || over_snapshot || record.zxid > upto {
                let (offset, found) = (record.offset as u64, record.zxid);
                return Err(StorageError::Gap {
                    path: path.clone(),
                    offset,
                    previous: cursor,
                    found,
                });
            }
            cursor = record.zxid;
            records.push((record.zxid, bytes[record.payload.clone()].to_vec()));
            if records.len() as u64 > max_records {
                let what = format!("more than {max_records} records after {after:#x}");
                return Err(corrupt(path, record.offset, what));
            }
            if cursor == upto {
                assert!(records.first().is_some_and(|(z, _)| zxid_continues(after, *z)));
                return Ok((true, records));
            }
        }
        if !matches!(scan.end, ScanEnd::Clean | ScanEnd::ZeroTail) {
            let what = format!("damaged before {upto:#x}: {:?}", scan.end);
            return Err(corrupt(path, scan.valid_len, what));
        }
    }
    if !found_after {
        return Ok((false, Vec::new()));
    }
    let path = log_dir.to_path_buf();
    let what = format!("the log files end at {cursor:#x}, before {upto:#x}");
    Err(StorageError::CorruptLog { path, offset: 0, what })
}

/// Removes `snapshot.*.tmp` files: snapshots whose writing a crash interrupted.
fn remove_tmp_snapshots(fs: &dyn Fs, snap_dir: &Path) -> Result<(), StorageError> {
    let names = fs.list_dir(snap_dir).map_err(StorageError::io(snap_dir, "list"))?;
    for name in names {
        let path = snap_dir.join(&name);
        let name = name.to_string_lossy();
        if name.starts_with("snapshot.") && name.ends_with(snap::TMP_SUFFIX) {
            tracing::info!(path = %path.display(), "removing an unfinished snapshot");
            remove_file(fs, &path)?;
        }
    }
    Ok(())
}

/// The newest snapshot that passes its checks; broken ones are skipped with a warning.
fn newest_valid_snapshot(
    fs: &dyn Fs,
    snap_dir: &Path,
) -> Result<(Option<RecoveredSnapshot>, SkippedSnapshots), StorageError> {
    let mut skipped = Vec::new();
    for (zxid, path) in list_files(fs, snap_dir, "snapshot")?.into_iter().rev() {
        match snap::check_snapshot_file(fs, &path, zxid) {
            Ok(blob_len) => {
                tracing::info!(path = %path.display(), zxid = %format!("{zxid:#x}"),
                    "loading snapshot");
                return Ok((Some(RecoveredSnapshot { zxid, path, blob_len }), skipped));
            }
            Err(what) => {
                tracing::warn!(
                    path = %path.display(),
                    "skipping invalid snapshot ({what}); trying an older one"
                );
                skipped.push((zxid, path));
            }
        }
    }
    Ok((None, skipped))
}

/// The snapshots recovery skipped as invalid, newest first: `(zxid, path)`.
type SkippedSnapshots = Vec<(i64, PathBuf)>;

/// A log file's bytes and the records found in them.
type ReadLog = (Vec<u8>, Vec<log::ScannedRecord>);

fn corrupt(path: &Path, offset: usize, what: String) -> StorageError {
    StorageError::CorruptLog { path: path.to_path_buf(), offset: offset as u64, what }
}

/// One log file as recovery sees it.
struct LogFile<'a> {
    fs: &'a dyn Fs,
    path: &'a Path,
    /// The zxid in its name.
    name_zxid: i64,
    /// Whether it is the newest log file (the only one a crash can leave torn).
    is_last: bool,
    log_dir: &'a Path,
}

/// Reads one log file (unless `read` already holds its bytes) and applies the damage policy.
/// Returns `None` when the file was the newest one and held nothing but a torn header (it is
/// removed).
fn read_log(
    file: &LogFile<'_>,
    read: Option<Vec<u8>>,
    bugs: ShellBugs,
) -> Result<Option<ReadLog>, StorageError> {
    let LogFile { fs, path, name_zxid, is_last, log_dir } = *file;
    let bytes = match read {
        Some(bytes) => bytes,
        None => fs.read_data(path).map_err(StorageError::io(path, "read"))?.0,
    };
    if let Err(problem) = log::check_header(&bytes, name_zxid) {
        let floor = Some(name_zxid - 1);
        if is_last && log::find_valid_record(&bytes, 0, floor).is_none() {
            tracing::warn!(path = %path.display(), "removing the newest txn log: its header is \
                torn ({problem}) and it holds no record");
            remove_file(fs, path)?;
            fs.sync_dir(log_dir).map_err(StorageError::io(log_dir, "fsync"))?;
            return Ok(None);
        }
        return Err(corrupt(path, 0, problem.to_string()));
    }
    let mut scan = log::scan(&bytes);
    if let Some(first) = scan.records.first()
        && first.zxid != name_zxid
    {
        let what = format!("the first record has zxid {:#x}, not {name_zxid:#x}", first.zxid);
        return Err(corrupt(path, first.offset, what));
    }
    match scan.end {
        // A zero tail (a preallocated one, or a torn write's length without its bytes) is left
        // as it is, in the newest file too: the server appends to a new file after a restart,
        // so nothing is ever written after these zeros, and readers stop at them.
        ScanEnd::Clean | ScanEnd::ZeroTail => {}
        ScanEnd::Torn { .. } if is_last && bugs.keep_past_torn_tail() => {
            keep_torn_record(&bytes, &mut scan);
        }
        ScanEnd::Torn { what } if is_last => {
            tracing::warn!(path = %path.display(), offset = scan.valid_len,
                "cutting a torn last write off the newest txn log: {what}");
            cut(fs, path, scan.valid_len, true)?;
        }
        ScanEnd::Torn { what } => {
            let what = format!("{what}, in a log file that is not the newest");
            return Err(corrupt(path, scan.valid_len, what));
        }
        ScanEnd::Corrupt { what, resumes_at } => {
            let what = format!("{what}, yet a valid record follows at offset {resumes_at}");
            return Err(corrupt(path, scan.valid_len, what));
        }
        ScanEnd::OutOfOrder { offset, zxid, previous } => {
            let what = format!("zxid {zxid:#x} does not increase over {previous:#x}");
            return Err(corrupt(path, offset, what));
        }
    }
    if is_last && scan.records.is_empty() {
        tracing::warn!(path = %path.display(), "removing the newest txn log: it holds no record");
        remove_file(fs, path)?;
        fs.sync_dir(log_dir).map_err(StorageError::io(log_dir, "fsync"))?;
        return Ok(None);
    }
    Ok(Some((bytes, scan.records)))
}

/// The deliberate bug `keep_past_torn_tail`: trusts the length field of the torn record after
/// the valid prefix (no checksum) and keeps whatever payload bytes are there; the file is not
/// cut either.
fn keep_torn_record(bytes: &[u8], scan: &mut log::Scan) {
    let offset = scan.valid_len;
    if bytes.len() - offset < 12 {
        return;
    }
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
    let zxid = i64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().expect("8 bytes"));
    let end = (offset + 12).saturating_add(len as usize).min(bytes.len());
    scan.records.push(log::ScannedRecord { zxid, offset, payload: offset + 12..end });
}

/// Truncates `path` to `len` bytes and syncs it (`fsync` is false only for the deliberate bug
/// `trunc_without_fsync`).
fn cut(fs: &dyn Fs, path: &Path, len: usize, fsync: bool) -> Result<(), StorageError> {
    let file = fs.open_write(path).map_err(StorageError::io(path, "open for truncation"))?;
    file.set_len(len as u64).map_err(StorageError::io(path, "truncate"))?;
    if fsync {
        file.sync_all().map_err(StorageError::io(path, "fsync"))?;
    }
    Ok(())
}

/// Drops every record above `zxid` from the log files in `log_dir` (newest file first: whole
/// files starting above `zxid` go, the one holding `zxid` is cut after it). Returns the zxid of
/// the last record kept, or 0.
pub(super) fn truncate_logs_after(
    fs: &dyn Fs,
    log_dir: &Path,
    zxid: i64,
    bugs: ShellBugs,
) -> Result<i64, StorageError> {
    let logs: Vec<(i64, PathBuf)> = list_files(fs, log_dir, "log")?;
    let mut last_kept = 0;
    for (first, path) in logs.iter().rev() {
        if *first > zxid {
            tracing::info!(path = %path.display(), "truncation removes txn log");
            remove_file(fs, path)?;
            continue;
        }
        let (bytes, file_len) = fs.read_data(path).map_err(StorageError::io(path, "read"))?;
        log::check_header(&bytes, *first).map_err(|p| corrupt(path, 0, p.to_string()))?;
        let scan = log::scan(&bytes);
        let cut_at = scan.records.iter().position(|r| r.zxid > zxid);
        let damaged = !matches!(scan.end, ScanEnd::Clean | ScanEnd::ZeroTail);
        if cut_at.is_none() && damaged {
            let what = "damaged before the truncation point".to_string();
            return Err(corrupt(path, scan.valid_len, what));
        }
        let kept = &scan.records[..cut_at.unwrap_or(scan.records.len())];
        let Some(last) = kept.last() else {
            remove_file(fs, path)?;
            continue;
        };
        // Cut at the record's end, whatever follows (records above `zxid`, a preallocated
        // tail): a record that was cut off must never come back behind zeros.
        if last.end() as u64 != file_len {
            // The removals of newer files must be durable before the cut is: otherwise a power
            // loss can bring them back behind the cut, after a hole (found by zkr_sim::simfs).
            fs.sync_dir(log_dir).map_err(StorageError::io(log_dir, "fsync"))?;
            tracing::info!(path = %path.display(), offset = last.end(), "truncating txn log");
            // The deliberate bug leaves the cut to the page cache.
            cut(fs, path, last.end(), !bugs.trunc_without_fsync())?;
        }
        last_kept = last.zxid;
        break;
    }
    fs.sync_dir(log_dir).map_err(StorageError::io(log_dir, "fsync"))?;
    assert!(last_kept <= zxid);
    Ok(last_kept)
}

/// What recovery would change on disk, as `dry_run` records it instead of doing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DryRunAction {
    /// A file recovery removes: an unfinished snapshot (`.tmp`), or the newest log file when
    /// it holds no record.
    Remove(PathBuf),
    /// A log file recovery truncates to `len` bytes: a torn last write cut off.
    Cut {
        /// The file.
        path: PathBuf,
        /// Its length after the cut.
        len: u64,
    },
}

/// What `recover` would return for `<data_dir>/version-2` and `<data_log_dir>/version-2`, and
/// the removals and cuts it would make on the way, without changing anything: the real recovery
/// code runs over a file system that reads the real files and keeps its removals and cuts in
/// memory (later reads see them, as they would), syncs nothing, and refuses any other write.
/// For `zkr-dump dir`, which must report the server's own verdict and never write.
pub fn dry_run(
    data_dir: &Path,
    data_log_dir: &Path,
) -> (Result<Recovered, StorageError>, Vec<DryRunAction>) {
    let fs = DryRunFs::default();
    let snap_dir = data_dir.join(super::VERSION_DIR);
    let log_dir = data_log_dir.join(super::VERSION_DIR);
    let result = recover(&fs, &snap_dir, &log_dir, ShellBugs::default());
    let actions = fs.overlay.lock().expect("not poisoned").actions.clone();
    (result, actions)
}

/// The removals and cuts a dry run made, in order, and the state they leave.
#[derive(Debug, Default)]
struct Overlay {
    actions: Vec<DryRunAction>,
    removed: std::collections::BTreeSet<PathBuf>,
    cut: std::collections::BTreeMap<PathBuf, u64>,
}

impl Overlay {
    /// The file's bytes as the recorded actions leave them.
    fn apply(&self, path: &Path, mut bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
        if self.removed.contains(path) {
            return Err(dry_run_error(std::io::ErrorKind::NotFound, "removed by the dry run"));
        }
        if let Some(len) = self.cut.get(path) {
            bytes.truncate(*len as usize);
        }
        Ok(bytes)
    }
}

fn dry_run_error(kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, format!("dry run: {what}"))
}

/// The OS file system for reading, with removals and cuts kept in `overlay` (see `dry_run`).
#[derive(Debug, Default)]
struct DryRunFs {
    overlay: std::sync::Arc<std::sync::Mutex<Overlay>>,
}

impl DryRunFs {
    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.overlay.lock().expect("not poisoned")
    }
}

/// A log file opened for its cut (`set_len`) and sync; it takes no bytes.
#[derive(Debug)]
struct DryRunFile {
    path: PathBuf,
    overlay: std::sync::Arc<std::sync::Mutex<Overlay>>,
}

impl std::io::Write for DryRunFile {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery wrote bytes"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl crate::fs::FsFile for DryRunFile {
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut overlay = self.overlay.lock().expect("not poisoned");
        let path = self.path.clone();
        overlay.actions.push(DryRunAction::Cut { path: path.clone(), len });
        let shorter = overlay.cut.get(&path).map_or(len, |was| len.min(*was));
        overlay.cut.insert(path, shorter);
        Ok(())
    }
}

impl Fs for DryRunFs {
    fn create_dir_all(&self, _: &Path) -> std::io::Result<()> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery made a directory"))
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        let names = match crate::fs::OsFs.list_dir(dir) {
            // `Storage::open` creates the directories before recovery lists them: one that is
            // missing would be listed empty.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            listed => listed?,
        };
        let overlay = self.overlay();
        Ok(names.into_iter().filter(|n| !overlay.removed.contains(&dir.join(n))).collect())
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let bytes = crate::fs::OsFs.read(path)?;
        self.overlay().apply(path, bytes)
    }

    fn read_in_pieces(
        &self,
        path: &Path,
        piece_len: usize,
        sink: &mut dyn FnMut(Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        {
            let overlay = self.overlay();
            if overlay.removed.contains(path) || overlay.cut.contains_key(path) {
                drop(overlay);
                let bytes = self.read(path)?;
                return bytes.chunks(piece_len).try_for_each(|piece| sink(piece.to_vec()));
            }
        }
        // Untouched (every snapshot file is): read in pieces, as recovery does.
        crate::fs::OsFs.read_in_pieces(path, piece_len, sink)
    }

    fn read_data(&self, path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
        let (bytes, len) = crate::fs::OsFs.read_data(path)?;
        let overlay = self.overlay();
        let len = overlay.cut.get(path).map_or(len, |cut| len.min(*cut));
        Ok((overlay.apply(path, bytes)?, len))
    }

    fn create_new(&self, _: &Path) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery made a file"))
    }

    fn create(&self, _: &Path) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery made a file"))
    }

    fn open_write(&self, path: &Path) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
        // The file must exist, as for the real open.
        std::fs::metadata(path)?;
        self.overlay().apply(path, Vec::new())?;
        let overlay = self.overlay.clone();
        Ok(Box::new(DryRunFile { path: path.to_path_buf(), overlay }))
    }

    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        Ok(())
    }

    fn rename(&self, _: &Path, _: &Path) -> std::io::Result<()> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery renamed a file"))
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::metadata(path)?;
        let mut overlay = self.overlay();
        if !overlay.removed.insert(path.to_path_buf()) {
            return Err(dry_run_error(std::io::ErrorKind::NotFound, "removed already"));
        }
        overlay.actions.push(DryRunAction::Remove(path.to_path_buf()));
        Ok(())
    }

    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        path.canonicalize()
    }

    fn try_lock(&self, _: &Path) -> std::io::Result<Box<dyn crate::fs::FsLock>> {
        Err(dry_run_error(std::io::ErrorKind::PermissionDenied, "recovery took a lock"))
    }
}
